//! Engine images in: the `docker load` stream of a bundle's target (only the layers the
//! engine lacks) or of a registry image, as entries the host frames with `tar::Framer`.

use std::collections::BTreeSet;

use super::EngineError;
use crate::bundle::{BlobKind, Report};
use crate::{Descriptor, Digest, ImageConfig, MediaType, RawManifest, Reference};

/// One entry of a `docker load` stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadEntry {
    /// A small file written whole.
    File {
        /// Path in the archive.
        path: String,
        /// Content.
        bytes: Vec<u8>,
    },
    /// A carried blob of the bundle, copied from it.
    Blob {
        /// Path in the archive.
        path: String,
        /// Index into the report's `meta.blobs`.
        index: usize,
        /// Size.
        size: u64,
    },
}

impl LoadEntry {
    /// The path in the archive.
    pub fn path(&self) -> &str {
        match self {
            LoadEntry::File { path, .. } | LoadEntry::Blob { path, .. } => path,
        }
    }
}

/// What to stream into `docker load` for one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadArchive {
    /// Entries in order: `oci-layout`, blobs, `index.json`, `manifest.json`.
    pub entries: Vec<LoadEntry>,
    /// The image's layer diff_ids, base first.
    pub diff_ids: Vec<Digest>,
    /// For each layer, whether its file is left out (the engine must have it).
    pub absent: Vec<bool>,
    /// Whether a carried layer is zstd-compressed (Docker < 25 refuses those).
    pub zstd: bool,
    /// The tag written into `manifest.json` (`RepoTags`) and `index.json`.
    pub tag: String,
    /// The image ID the engine will report (the config digest).
    pub image_id: Digest,
}

impl LoadArchive {
    /// Bytes of the `docker load` stream: a tar of [`LoadArchive::entries`] as
    /// [`crate::tar::Framer`] frames it (for progress).
    pub fn stream_len(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| {
                let size = match e {
                    LoadEntry::File { bytes, .. } => bytes.len() as u64,
                    LoadEntry::Blob { size, .. } => *size,
                };
                crate::tar::Framer::entry_len(e.path(), size)
            })
            .sum::<u64>()
            + crate::tar::Framer::END_LEN
    }
}

/// Plans the `docker load` stream for target `target` of `report`, tagged `tag` (familiar
/// form, e.g. `app:2`; `None` keeps the bundle's name). The archive is both Docker's classic
/// `manifest.json` format and an OCI layout (`oci-layout`, `index.json`, `blobs/`), as Docker
/// 25+ writes it; every path is `blobs/sha256/<hex>`. Layers the bundle relies on are listed
/// (by diff_id) but absent.
pub fn docker_load_archive(
    report: &Report,
    target: usize,
    tag: Option<&str>,
) -> Result<LoadArchive, EngineError> {
    docker_load_archive_indexed(&crate::TargetIndex::new(report), target, tag)
}

/// [`docker_load_archive`] with the bundle's index built once (for many targets: each
/// layer is then found in logarithmic time instead of by a scan of every blob).
pub fn docker_load_archive_indexed(
    index: &crate::TargetIndex<'_>,
    target: usize,
    tag: Option<&str>,
) -> Result<LoadArchive, EngineError> {
    docker_load_archive_omitting(index, target, tag, &|_| false)
}

/// [`docker_load_archive_indexed`], also leaving out (listed by diff_id, like the base) the
/// carried layers at the positions `loaded` says the engine already has: those an earlier
/// target of the same load gave it with the same layers below them (see [`chain_ids`]), so
/// that layers many targets share are streamed once.
pub fn docker_load_archive_omitting(
    index: &crate::TargetIndex<'_>,
    target: usize,
    tag: Option<&str>,
    loaded: &dyn Fn(usize) -> bool,
) -> Result<LoadArchive, EngineError> {
    let report = index.report();
    let meta = &report.meta;
    let t = meta.targets.get(target).ok_or(EngineError::Target {
        target: format!("#{target}"),
        problem: "no such target",
    })?;
    let terr = |problem| EngineError::Target {
        target: t.reference.clone(),
        problem,
    };
    let [img] = &t.images[..] else {
        return Err(terr(
            "has several platforms; an engine loads one (make the bundle with --platform)",
        ));
    };
    let json = |d: &Digest| {
        report.json_blobs.get(d).ok_or(EngineError::Blob {
            digest: d.clone(),
            problem: "missing from the bundle",
        })
    };
    let mbytes = json(&img.manifest)?;
    let manifest = RawManifest::parse(
        mbytes.clone(),
        index
            .carried(&img.manifest)
            .map(|i| meta.blobs[i].media_type.as_str()),
    )
    .map_err(|_| EngineError::Blob {
        digest: img.manifest.clone(),
        problem: "not a valid manifest",
    })?;
    let m = manifest.as_image().ok_or(EngineError::Blob {
        digest: img.manifest.clone(),
        problem: "not an image manifest",
    })?;
    let cfg = ImageConfig::parse(json(&img.config)?).map_err(|e| EngineError::Config {
        digest: img.config.clone(),
        message: e.to_string(),
    })?;
    if cfg.rootfs.diff_ids.len() != m.layers.len() {
        return Err(EngineError::LayerCount {
            digest: img.config.clone(),
            expected: cfg.rootfs.diff_ids.len(),
            found: m.layers.len(),
        });
    }
    let tag = match tag {
        Some(t) => t.to_string(),
        None => Reference::parse(&t.reference)
            .map(|r| r.familiar())
            .map_err(|_| terr("is not a valid image name"))?,
    };
    let cfg_bytes = json(&img.config)?;
    assemble(&manifest, cfg_bytes, cfg, tag, |pos, l| {
        if loaded(pos) {
            return None;
        }
        let i = index
            .carried(&l.digest)
            .filter(|&i| meta.blobs[i].kind == BlobKind::Layer)?;
        Some((i, meta.blobs[i].size))
    })
}

/// Plans the `docker load` stream of one image pulled from a registry: `skip[i]` marks layers
/// the engine already has (left out); the others are [`LoadEntry::Blob`] with `index` = the
/// layer's position in the manifest, for the host to stream from the registry.
pub fn docker_load_image(
    manifest: &RawManifest,
    config: &[u8],
    skip: &[bool],
    tag: &str,
) -> Result<LoadArchive, EngineError> {
    let digest = Digest::sha256(config);
    let m = manifest.as_image().ok_or(EngineError::Blob {
        digest: manifest.digest().clone(),
        problem: "not an image manifest",
    })?;
    let cfg = ImageConfig::parse(config).map_err(|e| EngineError::Config {
        digest: digest.clone(),
        message: e.to_string(),
    })?;
    if cfg.rootfs.diff_ids.len() != m.layers.len() || skip.len() != m.layers.len() {
        return Err(EngineError::LayerCount {
            digest,
            expected: cfg.rootfs.diff_ids.len(),
            found: m.layers.len(),
        });
    }
    assemble(manifest, config, cfg, tag.to_string(), |i, l| {
        (!skip[i]).then_some((i, l.size))
    })
}

/// The entries of a load stream: `oci-layout`, config, manifest, the layers `layer` returns
/// `(index, size)` for, `index.json`, `manifest.json`. Layers without an entry are listed by
/// diff_id and left out.
fn assemble(
    manifest: &RawManifest,
    config: &[u8],
    cfg: ImageConfig,
    tag: String,
    mut layer: impl FnMut(usize, &Descriptor) -> Option<(usize, u64)>,
) -> Result<LoadArchive, EngineError> {
    let blob_path = |d: &Digest| format!("blobs/{}/{}", d.algorithm().name(), d.hex());
    let Some(m) = manifest.as_image() else {
        return Err(EngineError::Blob {
            digest: manifest.digest().clone(),
            problem: "not an image manifest",
        });
    };
    let config_digest = Digest::sha256(config);
    let mut entries = vec![
        LoadEntry::File {
            path: "oci-layout".into(),
            bytes: crate::bundle::meta::OCI_LAYOUT.to_vec(),
        },
        LoadEntry::File {
            path: blob_path(&config_digest),
            bytes: config.to_vec(),
        },
        LoadEntry::File {
            path: blob_path(manifest.digest()),
            bytes: manifest.bytes().to_vec(),
        },
    ];
    let mut seen = BTreeSet::new();
    let mut layer_paths = Vec::new();
    let mut absent = Vec::new();
    let mut zstd = false;
    for (i, (l, diff_id)) in m.layers.iter().zip(&cfg.rootfs.diff_ids).enumerate() {
        match layer(i, l) {
            Some((index, size)) => {
                if seen.insert(l.digest.clone()) {
                    entries.push(LoadEntry::Blob {
                        path: blob_path(&l.digest),
                        index,
                        size,
                    });
                }
                layer_paths.push(blob_path(&l.digest));
                zstd |= l.media_type == MediaType::OciLayerZstd;
                absent.push(false);
            }
            None => {
                layer_paths.push(blob_path(diff_id));
                absent.push(true);
            }
        }
    }
    let full_name = Reference::parse(&tag)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| tag.clone());
    let ref_name = tag
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or("latest", |(_, t)| t)
        .to_string();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciIndex.as_str(),
        "manifests": [{
            "mediaType": manifest.media_type().as_str(),
            "digest": manifest.digest().to_string(),
            "size": manifest.bytes().len(),
            "annotations": {
                "io.containerd.image.name": full_name,
                "org.opencontainers.image.ref.name": ref_name,
            }
        }]
    });
    // A json! value always serialises.
    #[allow(clippy::expect_used)]
    let index = serde_json::to_vec(&index).expect("index.json serialises");
    entries.push(LoadEntry::File {
        path: "index.json".into(),
        bytes: index,
    });
    let entry = crate::ManifestEntry {
        config: blob_path(&config_digest),
        repo_tags: Some(vec![tag.clone()]),
        layers: layer_paths,
        parent: None,
        layer_sources: None,
    };
    let mut mj = Vec::new();
    crate::docker_archive::encode_manifest(&[entry], &mut mj);
    entries.push(LoadEntry::File {
        path: crate::docker_archive::MANIFEST_PATH.into(),
        bytes: mj,
    });
    Ok(LoadArchive {
        entries,
        diff_ids: cfg.rootfs.diff_ids,
        absent,
        zstd,
        tag,
        image_id: config_digest,
    })
}
