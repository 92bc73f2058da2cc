//! Diff planning: which blobs a bundle must carry and which it relies on the destination
//! already having.
//!
//! A target layer is *relied on* when a base has the same blob digest, or — because registries
//! and engines recompress layers (Docker recompresses on push) — the same uncompressed
//! `diff_id`. Everything else a target references is *carried*. Several targets share blobs
//! once.

use std::collections::{BTreeMap, BTreeSet};

use crate::bundle::meta::{FORMAT_NAME, FORMAT_VERSION};
use crate::bundle::{
    BaseInfo, BlobInfo, BlobKind, BundleMeta, ReliedBlob, TargetImage, TargetInfo,
};
use crate::{Descriptor, Digest, ImageConfig, Platform, RawManifest};

/// Planning errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiffError {
    /// A target image was given with a manifest that is not an image manifest.
    #[error("{reference}: {digest} is not an image manifest")]
    NotAnImage { reference: String, digest: Digest },
    /// The config's diff_ids do not line up with the manifest's layers.
    #[error("{reference}: config has {diff_ids} diff_ids but the manifest has {layers} layers")]
    LayerCount {
        reference: String,
        diff_ids: usize,
        layers: usize,
    },
    /// An index child manifest was not supplied.
    #[error("{reference}: index entry {digest} was not supplied (resolve every child, or select one platform)")]
    MissingChild { reference: String, digest: Digest },
    /// No targets.
    #[error("nothing to diff: no targets")]
    NoTargets,
}

/// A layer of a base image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseLayer {
    /// The blob digest, when the base came from a registry or layout (an engine knows only
    /// diff_ids).
    pub digest: Option<Digest>,
    /// The uncompressed digest.
    pub diff_id: Option<Digest>,
}

/// What is known of a base image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseImage {
    /// How the user named it.
    pub reference: String,
    /// Its manifest digest, when it has one.
    pub manifest: Option<Digest>,
    /// Its layers, base first.
    pub layers: Vec<BaseLayer>,
}

impl BaseImage {
    /// A base from a manifest and its parsed config (diff_ids paired with layers by position).
    pub fn from_manifest(
        reference: &str,
        manifest: &RawManifest,
        config: Option<&ImageConfig>,
    ) -> Result<BaseImage, DiffError> {
        let img = manifest.as_image().ok_or_else(|| DiffError::NotAnImage {
            reference: reference.to_string(),
            digest: manifest.digest().clone(),
        })?;
        let diff_ids = diff_ids_for(reference, &img.layers, config)?;
        Ok(BaseImage {
            reference: reference.to_string(),
            manifest: Some(manifest.digest().clone()),
            layers: img
                .layers
                .iter()
                .zip(diff_ids)
                .map(|(l, d)| BaseLayer {
                    digest: Some(l.digest.clone()),
                    diff_id: d,
                })
                .collect(),
        })
    }

    /// A base known only by its diff_ids (a Docker engine's image inspect).
    pub fn from_diff_ids(reference: &str, diff_ids: Vec<Digest>) -> BaseImage {
        BaseImage {
            reference: reference.to_string(),
            manifest: None,
            layers: diff_ids
                .into_iter()
                .map(|d| BaseLayer {
                    digest: None,
                    diff_id: Some(d),
                })
                .collect(),
        }
    }
}

fn diff_ids_for(
    reference: &str,
    layers: &[Descriptor],
    config: Option<&ImageConfig>,
) -> Result<Vec<Option<Digest>>, DiffError> {
    match config {
        Some(c) => {
            if c.rootfs.diff_ids.len() != layers.len() {
                return Err(DiffError::LayerCount {
                    reference: reference.to_string(),
                    diff_ids: c.rootfs.diff_ids.len(),
                    layers: layers.len(),
                });
            }
            Ok(c.rootfs.diff_ids.iter().cloned().map(Some).collect())
        }
        None => Ok(vec![None; layers.len()]),
    }
}

/// One platform image of a target.
#[derive(Clone, Debug)]
pub struct TargetImageInput {
    /// The image manifest.
    pub manifest: RawManifest,
    /// The parsed config, `None` for artifacts whose config is not an image config.
    pub config: Option<ImageConfig>,
}

/// A target: a top manifest (an image manifest, or an index whose children are all given).
#[derive(Clone, Debug)]
pub struct TargetInput {
    /// The reference it will be tagged with at the destination.
    pub reference: String,
    /// The top manifest.
    pub top: RawManifest,
    /// Its images: the top itself, or every child of the index.
    pub images: Vec<TargetImageInput>,
}

/// The result of planning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The bundle metadata (blobs in archive order).
    pub meta: BundleMeta,
    /// Bytes of every distinct blob the targets reference (what a full copy would move).
    pub full_bytes: u64,
}

impl Plan {
    /// The layers (and other non-JSON blobs) the host must fetch, in archive order.
    pub fn layers_to_fetch(&self) -> impl Iterator<Item = &BlobInfo> {
        self.meta.blobs.iter().filter(|b| b.kind == BlobKind::Layer)
    }
}

/// Plans a bundle carrying `targets` to a destination that holds `bases`.
/// `tool` and `created` go into the metadata verbatim.
pub fn plan(
    bases: &[BaseImage],
    targets: &[TargetInput],
    tool: &str,
    created: Option<String>,
) -> Result<Plan, DiffError> {
    if targets.is_empty() {
        return Err(DiffError::NoTargets);
    }
    let base_digests: BTreeSet<&Digest> = bases
        .iter()
        .flat_map(|b| b.layers.iter().filter_map(|l| l.digest.as_ref()))
        .collect();
    let base_diff_ids: BTreeSet<&Digest> = bases
        .iter()
        .flat_map(|b| b.layers.iter().filter_map(|l| l.diff_id.as_ref()))
        .collect();

    let mut indexes: Vec<BlobInfo> = Vec::new();
    let mut manifests: Vec<BlobInfo> = Vec::new();
    let mut configs: Vec<BlobInfo> = Vec::new();
    let mut layers: Vec<BlobInfo> = Vec::new();
    let mut relied: Vec<ReliedBlob> = Vec::new();
    let mut seen: BTreeSet<Digest> = BTreeSet::new();
    let mut all: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut infos = Vec::new();

    let push =
        |list: &mut Vec<BlobInfo>, seen: &mut BTreeSet<Digest>, d: &Descriptor, kind: BlobKind| {
            if seen.insert(d.digest.clone()) {
                list.push(BlobInfo {
                    digest: d.digest.clone(),
                    size: d.size,
                    media_type: d.media_type.clone(),
                    kind,
                    patch: None,
                });
            }
        };

    for t in targets {
        let top = t.top.descriptor();
        all.insert(top.digest.clone(), top.size);
        if let Some(idx) = t.top.as_index() {
            push(&mut indexes, &mut seen, &top, BlobKind::Index);
            for child in &idx.manifests {
                if !t
                    .images
                    .iter()
                    .any(|i| i.manifest.digest() == &child.digest)
                {
                    return Err(DiffError::MissingChild {
                        reference: t.reference.clone(),
                        digest: child.digest.clone(),
                    });
                }
            }
        }
        let mut images = Vec::new();
        for img in &t.images {
            let m = img
                .manifest
                .as_image()
                .ok_or_else(|| DiffError::NotAnImage {
                    reference: t.reference.clone(),
                    digest: img.manifest.digest().clone(),
                })?;
            let md = img.manifest.descriptor();
            all.insert(md.digest.clone(), md.size);
            push(&mut manifests, &mut seen, &md, BlobKind::Manifest);
            all.insert(m.config.digest.clone(), m.config.size);
            push(&mut configs, &mut seen, &m.config, BlobKind::Config);
            let diff_ids = diff_ids_for(&t.reference, &m.layers, img.config.as_ref())?;
            for (l, diff_id) in m.layers.iter().zip(diff_ids) {
                all.insert(l.digest.clone(), l.size);
                let is_base = base_digests.contains(&l.digest)
                    || diff_id.as_ref().is_some_and(|d| base_diff_ids.contains(d));
                if is_base {
                    if !relied.iter().any(|r| r.digest == l.digest) {
                        relied.push(ReliedBlob {
                            digest: l.digest.clone(),
                            size: l.size,
                            media_type: l.media_type.clone(),
                            diff_id,
                            repositories: Vec::new(),
                        });
                    }
                } else {
                    push(&mut layers, &mut seen, l, BlobKind::Layer);
                }
            }
            images.push(TargetImage {
                manifest: md.digest.clone(),
                config: m.config.digest.clone(),
                platform: img
                    .config
                    .as_ref()
                    .map(ImageConfig::platform)
                    .filter(|p: &Platform| !p.os.is_empty())
                    .or_else(|| {
                        t.top
                            .as_index()
                            .and_then(|i| i.manifests.iter().find(|c| c.digest == md.digest))
                            .and_then(|c| c.platform.clone())
                    }),
            });
        }
        infos.push(TargetInfo {
            reference: t.reference.clone(),
            media_type: top.media_type.clone(),
            digest: top.digest.clone(),
            size: top.size,
            images,
        });
    }
    let base = (!bases.is_empty()).then(|| BaseInfo {
        references: bases.iter().map(|b| b.reference.clone()).collect(),
        manifests: bases.iter().filter_map(|b| b.manifest.clone()).collect(),
        diff_ids: bases[0]
            .layers
            .iter()
            .filter_map(|l| l.diff_id.clone())
            .collect(),
        inventories: Vec::new(),
    });
    let mut blobs = indexes;
    blobs.extend(manifests);
    blobs.extend(configs);
    blobs.extend(layers);
    let meta = BundleMeta {
        format: FORMAT_NAME.to_string(),
        version: FORMAT_VERSION,
        tool: tool.to_string(),
        created,
        base,
        targets: infos,
        blobs,
        relied,
        artifacts: Vec::new(),
    };
    Ok(Plan {
        meta,
        full_bytes: all.values().sum(),
    })
}
