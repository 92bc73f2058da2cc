//! Image provenance across the gap (issue 14, docs/provenance.md): finding each target's
//! cosign artifacts and OCI referrers at a registry or layout source, and writing them at a
//! registry destination. What an artifact is, which tag it gets and how a fallback index is
//! built are the core's ([`ddiff_core::provenance`]); this module moves the bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use ddiff_core::bundle::meta::BlobInfo;
use ddiff_core::provenance::{
    artifact_blobs, cosign_tag, fallback_index_with, referrers_fallback_tag, referrers_of,
    Artifact, ArtifactKind,
};
use ddiff_core::{Descriptor, Digest, RawManifest};

use super::Location;
use crate::bundle_io::VerifiedBundle;
use crate::progress::Progress;
use crate::registry::client::Registry;

/// What a source holds about the targets: the artifacts, their blobs, the exact bytes of
/// their manifests and configs, and where their layers are.
#[derive(Default)]
pub struct Found {
    /// The `ddiff.json` entries.
    pub artifacts: Vec<Artifact>,
    /// Every blob of every artifact (manifests, configs, layers).
    pub blobs: Vec<BlobInfo>,
    /// Manifests and configs, by digest.
    pub json: BTreeMap<Digest, Vec<u8>>,
    /// Layers, with where to fetch them.
    pub layers: BTreeMap<Digest, (Location, Descriptor)>,
    /// Index artifacts that were left out (ddiff does not follow their children).
    pub skipped: Vec<Digest>,
}

/// Finds the artifacts of `subjects` (target manifest digests) at `loc`: for each, the
/// cosign tags `sha256-<hex>.sig`/`.att`/`.sbom` and the referrers (registry: the referrers
/// API, else the `sha256-<hex>` fallback tag; layout: the `index.json` entries whose manifest
/// has that `subject`, and the fallback tag).
pub async fn discover(loc: &Location, subjects: &[Digest]) -> Result<Found> {
    let mut found = Found::default();
    let layout_index = match loc {
        Location::Layout(store) => Some(store.index_json()?),
        Location::Registry { .. } => None,
    };
    for subject in subjects {
        let mut manifests: Vec<(ArtifactKind, RawManifest)> = Vec::new();
        for kind in ArtifactKind::COSIGN {
            let Some(tag) = cosign_tag(subject, kind) else {
                continue;
            };
            let m = match (loc, &layout_index) {
                (Location::Registry { client, repo }, _) => {
                    match client.head_manifest(repo, &tag).await? {
                        Some(d) => Some(client.get_manifest(repo, &d.to_string()).await?),
                        None => None,
                    }
                }
                (Location::Layout(store), Some(index)) => {
                    match ddiff_core::oci_layout::tags(index).get(&tag) {
                        Some(d) => Some(store.manifest_by_descriptor(d)?),
                        None => None,
                    }
                }
                (Location::Layout(_), None) => None,
            };
            if let Some(m) = m {
                manifests.push((kind, m));
            }
        }
        let listed: Vec<Descriptor> = match (loc, &layout_index) {
            (Location::Registry { client, repo }, _) => client
                .referrers(repo, subject)
                .await
                .with_context(|| format!("referrers of {subject} at {}", loc.describe()))?
                .map(|b| referrers_of(&b))
                .unwrap_or_default(),
            (Location::Layout(_), Some(index)) => {
                let mut l = ddiff_core::oci_layout::entries(index);
                if let Some(d) =
                    ddiff_core::oci_layout::tags(index).get(&referrers_fallback_tag(subject))
                {
                    if let Location::Layout(store) = loc {
                        l.extend(referrers_of(store.manifest_by_descriptor(d)?.bytes()));
                    }
                }
                l
            }
            (Location::Layout(_), None) => Vec::new(),
        };
        for d in listed {
            if &d.digest == subject
                || !d.media_type.is_manifest()
                || manifests.iter().any(|(_, m)| m.digest() == &d.digest)
            {
                continue;
            }
            let m = loc.manifest_by_descriptor(&d).await?;
            let names_subject = match m.manifest() {
                ddiff_core::Manifest::Image(i) => i.subject.as_ref(),
                ddiff_core::Manifest::Index(i) => i.subject.as_ref(),
            }
            .is_some_and(|s| &s.digest == subject);
            if names_subject {
                manifests.push((ArtifactKind::Referrer, m));
            }
        }
        for (kind, m) in manifests {
            let Some(blobs) = artifact_blobs(&m) else {
                found.skipped.push(m.digest().clone());
                continue;
            };
            let img = m.as_image().context("internal error: image artifact")?;
            found.json.insert(m.digest().clone(), m.bytes().to_vec());
            found.json.insert(
                img.config.digest.clone(),
                loc.blob_bytes(&img.config).await?,
            );
            for l in &img.layers {
                found
                    .layers
                    .insert(l.digest.clone(), (loc.clone(), l.clone()));
            }
            found.blobs.extend(blobs);
            found.artifacts.push(Artifact {
                subject: subject.clone(),
                kind,
                digest: m.digest().clone(),
                media_type: m.media_type().clone(),
                size: m.bytes().len() as u64,
            });
        }
    }
    Ok(found)
}

/// A carried artifact's manifest as the bundle verified it: its exact bytes, parsed (digest
/// checked), and the blobs it references (config first, then layers). Every destination
/// that takes artifacts reads them through this.
pub fn artifact_manifest<'a>(
    bundle: &'a VerifiedBundle,
    a: &Artifact,
) -> Result<(&'a [u8], RawManifest, Vec<BlobInfo>)> {
    let bytes = bundle
        .report
        .json_blobs
        .get(&a.digest)
        .context("internal error: artifact manifest not read")?;
    let m = RawManifest::parse_with_digest(
        bytes.clone(),
        Some(a.media_type.as_str()),
        Some(&a.digest),
    )?;
    let blobs = artifact_blobs(&m).context("internal error: index artifact")?;
    Ok((bytes, m, blobs))
}

/// Writes the bundle's artifacts into a registry after its targets: each artifact's blobs
/// (those missing), its manifest by digest, then its cosign tag; a referrer is indexed by the
/// registry (it answers `OCI-Subject`) or, when it is not, added to the `sha256-<hex>`
/// fallback tag's index. `repos` names, per repository written, the target manifests there.
/// Returns the number of artifacts written.
pub async fn load_registry(
    bundle: &Arc<VerifiedBundle>,
    client: &Arc<Registry>,
    repos: &[(String, Vec<Digest>)],
    progress: &Progress,
) -> Result<usize> {
    let meta = &bundle.report.meta;
    let mut written = 0;
    for a in &meta.artifacts {
        let (bytes, m, blobs) = artifact_manifest(bundle, a)?;
        for (repo, _) in repos.iter().filter(|(_, s)| s.contains(&a.subject)) {
            for b in blobs.iter().skip(1) {
                if client.blob_exists(repo, &b.digest).await?.is_some() {
                    continue;
                }
                let i = meta
                    .blobs
                    .iter()
                    .position(|x| x.digest == b.digest)
                    .with_context(|| format!("artifact blob {} is not in the bundle", b.digest))?;
                let item = progress.item(format!("artifact blob {}", b.digest.short()), b.size);
                let (bd, it) = (bundle.clone(), item.clone());
                let open = move |from: u64, len: u64| {
                    super::registry::body_from_blob(bd.clone(), i, from, len, it.clone())
                };
                client
                    .upload_blob_resumable(repo, &b.digest, b.size, &open)
                    .await
                    .with_context(|| format!("uploading artifact blob {} to {repo}", b.digest))?;
                item.finish("uploaded");
            }
            let mt = a.media_type.as_str();
            let what = || format!("writing artifact {} to {}/{repo}", a.digest, client.host());
            if a.kind == ArtifactKind::Referrer {
                let indexed = client
                    .put_referrer(repo, &a.digest, mt, bytes)
                    .await
                    .with_context(what)?;
                if !indexed {
                    let tag = referrers_fallback_tag(&a.subject);
                    let existing = match client.head_manifest(repo, &tag).await? {
                        Some(_) => Some(client.get_manifest(repo, &tag).await?.bytes().to_vec()),
                        None => None,
                    };
                    let index = fallback_index_with(existing.as_deref(), &m);
                    client
                        .put_manifest(repo, &tag, ddiff_core::MediaType::OciIndex.as_str(), &index)
                        .await
                        .with_context(what)?;
                }
            } else {
                client
                    .put_manifest(repo, &a.digest.to_string(), mt, bytes)
                    .await
                    .with_context(what)?;
            }
            if let Some(tag) = a.tag() {
                client
                    .put_manifest(repo, &tag, mt, bytes)
                    .await
                    .with_context(what)?;
            }
            written += 1;
        }
    }
    Ok(written)
}
