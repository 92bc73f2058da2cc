//! `ddiff.json`: the metadata document, the first entry of every bundle.
//!
//! See `docs/bundle-format.md` for the normative description. Everything a reader needs to
//! verify the bundle and to show progress is here, before the first blob.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::delta::PatchInfo;
use crate::{Digest, MediaType, Platform, Reference, ReferenceError};

use super::BundleError;

/// The value of `format`.
pub const FORMAT_NAME: &str = "ddiff-bundle";
/// The format version of a bundle that needs nothing a version 1 reader lacks: what ddiff
/// writes unless a layer travels as a patch or provenance artifacts are carried.
pub const FORMAT_VERSION: u32 = 1;
/// The version of a bundle with layers carried as patches (`blobs[].patch`, section 8) or
/// provenance artifacts (`artifacts`, section 10): a version 1 reader would take a patch entry
/// for the layer itself, or refuse artifact manifests as unreferenced, so such bundles say
/// version 2 and version 1 readers refuse them by version.
pub const FORMAT_VERSION_PATCHES: u32 = 2;
/// The newest format version this crate reads.
pub const MAX_FORMAT_VERSION: u32 = FORMAT_VERSION_PATCHES;
/// Every version this crate reads.
pub const SUPPORTED_VERSIONS: [u32; 2] = [FORMAT_VERSION, FORMAT_VERSION_PATCHES];
/// Largest `ddiff.json` accepted.
pub const MAX_META_BYTES: u64 = 16 * 1024 * 1024;
/// Largest config blob accepted (configs are buffered for cross-checks).
pub const MAX_JSON_BLOB_BYTES: u64 = 16 * 1024 * 1024;
/// Largest manifest or index blob accepted: the limit of [`crate::manifest::MAX_MANIFEST_BYTES`],
/// which is also what registries (distribution, containerd) accept.
pub const MAX_MANIFEST_BLOB_BYTES: u64 = crate::manifest::MAX_MANIFEST_BYTES as u64;
/// Largest total of all manifest, index and config blobs of one bundle. Readers buffer these
/// documents to cross-check them, so their total is capped: a bundle cannot make a reader's
/// memory grow with its size. Real bundles hold a few kB per image.
pub const MAX_JSON_TOTAL_BYTES: u64 = 64 * 1024 * 1024;
/// The annotation of `index.json` that records the digest of the exact `ddiff.json` bytes.
/// `ddiff.json` states some facts only once (target references, platforms, the base); this
/// digest makes every one of its bytes matter, and `index.json` must be exactly the bytes
/// [`BundleMeta::oci_index_json`] gives for it, so no flip in either document goes unseen.
pub const METADATA_DIGEST_ANNOTATION: &str = "io.ddiff.metadata.digest";

/// The role of a carried blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlobKind {
    /// An image index / manifest list.
    Index,
    /// An image manifest.
    Manifest,
    /// An image config (or an artifact's config blob).
    Config,
    /// A layer (or any other blob a manifest lists in `layers`).
    Layer,
}

impl BlobKind {
    /// Manifests, indexes and configs are small JSON documents buffered by readers.
    pub fn is_json(self) -> bool {
        !matches!(self, BlobKind::Layer)
    }
}

/// A blob stored in the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobInfo {
    /// Content digest.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Media type, as the referencing descriptor says.
    pub media_type: MediaType,
    /// Role.
    pub kind: BlobKind,
    /// Set when the layer travels as a patch: the bundle entry then holds the patch (named by
    /// its own digest) and the loader rebuilds this blob from it (docs/bundle-format.md
    /// section 8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchInfo>,
}

impl BlobInfo {
    /// The digest that names this blob's bundle entry: the patch's when it travels as one.
    pub fn entry_digest(&self) -> &Digest {
        self.patch.as_ref().map_or(&self.digest, |p| &p.digest)
    }

    /// The size of this blob's bundle entry: the patch's when it travels as one.
    pub fn entry_size(&self) -> u64 {
        self.patch.as_ref().map_or(self.size, |p| p.size)
    }
}

/// A blob the bundle does not carry: the destination must already have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReliedBlob {
    /// Content digest, as the target's manifest references it.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// Media type.
    pub media_type: MediaType,
    /// The uncompressed layer digest, which lets a loader find the same layer stored with a
    /// different compression at the destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
    /// Repositories of the site that held it when its inventory was taken (bundles planned
    /// with `--have`): where a registry load looks for it (docs/inventory.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
}

/// The base image the bundle was made against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct BaseInfo {
    /// References of the base as the user named them (`base:1`, `docker://host/base:1`).
    pub references: Vec<String>,
    /// Manifest digests of the base on the source side (empty when the base came from a
    /// Docker engine, which has no manifests).
    #[serde(default)]
    pub manifests: Vec<Digest>,
    /// The base's layer diff_ids, base first.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
    /// Content digests of the site inventories the bundle was planned against (`--have`);
    /// empty for a named base.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventories: Vec<Digest>,
}

/// One image of a target: a platform-specific manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetImage {
    /// Digest of the image manifest (a carried blob).
    pub manifest: Digest,
    /// Digest of its config (a carried blob).
    pub config: Digest,
    /// Its platform, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// A target: what the user asked to carry, under the name it will be tagged with.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetInfo {
    /// The reference (`app:2`, `registry.example.com/team/app:2`).
    pub reference: String,
    /// Media type of the top manifest (an index or an image manifest).
    pub media_type: MediaType,
    /// Digest of the top manifest (a carried blob).
    pub digest: Digest,
    /// Size of the top manifest.
    pub size: u64,
    /// The images (one, or one per platform for an index).
    pub images: Vec<TargetImage>,
}

impl TargetInfo {
    /// The target's reference, parsed as every loader parses it.
    pub fn parsed_reference(&self) -> Result<Reference, BundleError> {
        Reference::parse(&self.reference).map_err(|source: ReferenceError| {
            BundleError::InvalidTargetReference {
                reference: crate::digest::truncate_for_error(&self.reference),
                source,
            }
        })
    }
}

/// The metadata document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BundleMeta {
    /// Always `ddiff-bundle`.
    pub format: String,
    /// Format version: [`BundleMeta::needed_version`].
    pub version: u32,
    /// Writer, e.g. `ddiff 0.1.0`.
    pub tool: String,
    /// RFC 3339 creation time, supplied by the host (the core has no clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The base the destination must hold; `None` for a self-contained bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseInfo>,
    /// Targets, in the order given.
    pub targets: Vec<TargetInfo>,
    /// Carried blobs, in archive order: manifests and configs first, then layers.
    pub blobs: Vec<BlobInfo>,
    /// Blobs referenced by the targets but not carried.
    #[serde(default)]
    pub relied: Vec<ReliedBlob>,
    /// Provenance artifacts of the targets (section 10.2; version 2).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<crate::provenance::Artifact>,
}

impl BundleMeta {
    /// Parses and validates a `ddiff.json`.
    pub fn parse(bytes: &[u8]) -> Result<BundleMeta, BundleError> {
        // Check the version before the full schema so that a future format gets the right error.
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            version: Option<u32>,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| BundleError::MetadataJson {
            message: e.to_string(),
        })?;
        if head.format.as_deref() != Some(FORMAT_NAME) {
            return Err(BundleError::NotABundle {
                found: head.format.unwrap_or_default(),
            });
        }
        if !head
            .version
            .is_some_and(|v| SUPPORTED_VERSIONS.contains(&v))
        {
            return Err(BundleError::UnsupportedVersion {
                found: head.version.unwrap_or(0),
            });
        }
        let meta: BundleMeta =
            serde_json::from_slice(bytes).map_err(|e| BundleError::MetadataJson {
                message: e.to_string(),
            })?;
        meta.validate()?;
        Ok(meta)
    }

    /// The canonical bytes (pretty-printed JSON, fields in declared order): deterministic.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain structs of strings and integers cannot fail.
        serde_json::to_vec_pretty(self).expect("BundleMeta serialises")
    }

    /// Checks the document's internal consistency (without the blobs).
    pub fn validate(&self) -> Result<(), BundleError> {
        let bad =
            |digest: Option<&Digest>, problem: &'static str| BundleError::MetadataInconsistent {
                digest: digest.cloned(),
                problem,
            };
        if self.targets.is_empty() {
            return Err(bad(None, "no targets"));
        }
        if self.version != self.needed_version() {
            return Err(bad(
                None,
                "version does not match the content (2 exactly when a layer travels as a patch or artifacts are carried)",
            ));
        }
        let mut carried: BTreeMap<&Digest, &BlobInfo> = BTreeMap::new();
        let mut seen_layer = false;
        let mut json_total: u64 = 0;
        for b in &self.blobs {
            if carried.insert(&b.digest, b).is_some() {
                return Err(bad(Some(&b.digest), "blob listed twice"));
            }
            if b.kind == BlobKind::Layer {
                seen_layer = true;
            } else if seen_layer {
                return Err(bad(
                    Some(&b.digest),
                    "manifests and configs must come before layers",
                ));
            }
            if b.kind.is_json() {
                json_total = json_total.saturating_add(b.size);
            }
            if b.kind == BlobKind::Config && b.size > MAX_JSON_BLOB_BYTES {
                return Err(bad(Some(&b.digest), "config larger than 16 MiB"));
            }
            if matches!(b.kind, BlobKind::Index | BlobKind::Manifest)
                && b.size > MAX_MANIFEST_BLOB_BYTES
            {
                return Err(bad(Some(&b.digest), "manifest or index larger than 4 MiB"));
            }
            let kind_ok = match b.kind {
                BlobKind::Index => b.media_type.is_index(),
                BlobKind::Manifest => b.media_type.is_image_manifest(),
                _ => !b.media_type.is_manifest(),
            };
            if !kind_ok {
                return Err(bad(
                    Some(&b.digest),
                    "blob kind does not match its media type",
                ));
            }
            if let Some(p) = &b.patch {
                self.validate_patch(b, p)?;
            }
        }
        // Entry names are unique too: a patch is never named like another blob or patch.
        let mut entries = BTreeSet::new();
        for b in &self.blobs {
            if !entries.insert(b.entry_digest()) {
                return Err(bad(Some(b.entry_digest()), "bundle entry named twice"));
            }
        }
        if json_total > MAX_JSON_TOTAL_BYTES {
            return Err(BundleError::JsonBudget {
                total: json_total,
                limit: MAX_JSON_TOTAL_BYTES,
            });
        }
        crate::provenance::validate(self, &carried)?;
        let mut relied = BTreeSet::new();
        for r in &self.relied {
            if carried.contains_key(&r.digest) {
                return Err(bad(Some(&r.digest), "blob both carried and relied on"));
            }
            if !relied.insert(&r.digest) {
                return Err(bad(Some(&r.digest), "relied blob listed twice"));
            }
        }
        let mut refs = BTreeSet::new();
        for t in &self.targets {
            // The name a loader will tag: it must parse exactly as loaders parse it, so that
            // `verify` refuses what `load` would refuse, before anything is written.
            let parsed = t.parsed_reference()?;
            if let Some(pinned) = parsed.digest() {
                if pinned != &t.digest {
                    return Err(BundleError::PinnedDigestMismatch {
                        reference: crate::digest::truncate_for_error(&t.reference),
                        pinned: pinned.clone(),
                        digest: t.digest.clone(),
                    });
                }
            }
            if !refs.insert(parsed) {
                return Err(bad(Some(&t.digest), "target reference listed twice"));
            }
            let top = carried
                .get(&t.digest)
                .ok_or_else(|| bad(Some(&t.digest), "target manifest is not carried"))?;
            if top.size != t.size
                || top.media_type != t.media_type
                || !top.kind.is_json()
                || top.kind == BlobKind::Config
            {
                return Err(bad(Some(&t.digest), "target disagrees with its blob entry"));
            }
            if t.images.is_empty() {
                return Err(bad(Some(&t.digest), "target has no images"));
            }
            for img in &t.images {
                match carried.get(&img.manifest) {
                    Some(b) if b.kind == BlobKind::Manifest => {}
                    _ => {
                        return Err(bad(
                            Some(&img.manifest),
                            "target image manifest is not a carried manifest",
                        ))
                    }
                }
                match carried.get(&img.config) {
                    Some(b) if b.kind == BlobKind::Config => {}
                    _ => {
                        return Err(bad(
                            Some(&img.config),
                            "target image config is not a carried config",
                        ))
                    }
                }
            }
        }
        Ok(())
    }

    /// The version this content needs: [`FORMAT_VERSION_PATCHES`] when a layer travels as a
    /// patch or artifacts are carried, else [`FORMAT_VERSION`] (so such bundles stay readable
    /// by version 1 readers, and a version number never claims what the content does not
    /// hold).
    pub fn needed_version(&self) -> u32 {
        if self.blobs.iter().any(|b| b.patch.is_some()) || !self.artifacts.is_empty() {
            FORMAT_VERSION_PATCHES
        } else {
            FORMAT_VERSION
        }
    }

    /// The diff_ids a patch may be made against: layers the destination is known to hold
    /// (the base's, and those of relied-on layers).
    pub fn reference_diff_ids(&self) -> BTreeSet<&Digest> {
        let mut ids: BTreeSet<&Digest> = self.base.iter().flat_map(|b| b.diff_ids.iter()).collect();
        ids.extend(self.relied.iter().filter_map(|r| r.diff_id.as_ref()));
        ids
    }

    fn validate_patch(&self, b: &BlobInfo, p: &PatchInfo) -> Result<(), BundleError> {
        let bad = |problem: &'static str| BundleError::MetadataInconsistent {
            digest: Some(b.digest.clone()),
            problem,
        };
        if b.kind != BlobKind::Layer {
            return Err(bad("only layers may travel as patches"));
        }
        if !p.recipe.makes(&b.media_type) {
            return Err(bad("the patch's recipe cannot make the layer's media type"));
        }
        if p.tar_size > crate::delta::MAX_PATCH_TAR
            || p.reference.tar_size > crate::delta::MAX_PATCH_TAR
        {
            return Err(bad("patched layer or reference larger than 2 GiB"));
        }
        if p.recipe == crate::delta::Recipe::None && (p.tar_size != b.size || p.diff_id != b.digest)
        {
            return Err(bad("an uncompressed layer's diff_id and size are its own"));
        }
        // Planned against inventories, a reference is any layer they list (the bundle does
        // not repeat them); the loader checks it is there before writing.
        let from_inventories = self
            .base
            .as_ref()
            .is_some_and(|b| !b.inventories.is_empty());
        if !from_inventories && !self.reference_diff_ids().contains(&p.reference.diff_id) {
            return Err(bad(
                "the patch's reference is not a layer the destination is known to hold",
            ));
        }
        Ok(())
    }

    /// Looks up a carried blob.
    pub fn blob(&self, digest: &Digest) -> Option<&BlobInfo> {
        self.blobs.iter().find(|b| &b.digest == digest)
    }

    /// Bytes of carried blobs, as they travel (a patch counts its own size).
    pub fn carried_bytes(&self) -> u64 {
        self.blobs.iter().map(BlobInfo::entry_size).sum()
    }

    /// Bytes of the carried blobs once rebuilt (patches count the layer they make).
    pub fn delivered_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }

    /// Bytes of relied-on blobs.
    pub fn relied_bytes(&self) -> u64 {
        self.relied.iter().map(|b| b.size).sum()
    }

    /// The `index.json` of the bundle's OCI layout for the exact `ddiff.json` bytes
    /// `meta_bytes` (normally [`BundleMeta::to_bytes`]): one entry per target, in order, with
    /// `org.opencontainers.image.ref.name` set to the tag and `io.containerd.image.name` to the
    /// full reference, and the index annotated with the digest of `meta_bytes`
    /// ([`METADATA_DIGEST_ANNOTATION`]). Deterministic: readers require these exact bytes.
    pub fn oci_index_json(&self, meta_bytes: &[u8]) -> Vec<u8> {
        self.sealed_index_json(&Digest::sha256(meta_bytes))
    }

    /// [`BundleMeta::oci_index_json`] for a `ddiff.json` whose digest is `meta_digest`.
    pub fn sealed_index_json(&self, meta_digest: &Digest) -> Vec<u8> {
        self.index_json(Some(meta_digest))
    }

    /// The `index.json` that ddiff wrote before the metadata digest was recorded: still
    /// accepted (byte for byte), but such a bundle's `ddiff.json` is not sealed.
    pub fn unsealed_index_json(&self) -> Vec<u8> {
        self.index_json(None)
    }

    fn index_json(&self, meta_digest: Option<&Digest>) -> Vec<u8> {
        let manifests: Vec<serde_json::Value> = self
            .targets
            .iter()
            .map(|t| {
                let tag = ref_tag(&t.reference);
                serde_json::json!({
                    "mediaType": t.media_type.as_str(),
                    "digest": t.digest.to_string(),
                    "size": t.size,
                    "annotations": {
                        "io.containerd.image.name": t.reference,
                        "org.opencontainers.image.ref.name": tag,
                    }
                })
            })
            .collect();
        let mut v = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MediaType::OciIndex.as_str(),
            "manifests": manifests,
        });
        if let Some(d) = meta_digest {
            v["annotations"] = serde_json::json!({ METADATA_DIGEST_ANNOTATION: d.to_string() });
        }
        // A json! value always serialises.
        serde_json::to_vec(&v).expect("index.json serialises")
    }
}

/// The tag part of a reference string (after the last `:` that follows the last `/`),
/// or `latest`. Used for the OCI layout's `ref.name` annotation.
fn ref_tag(reference: &str) -> String {
    let no_digest = reference.split('@').next().unwrap_or(reference);
    let last = no_digest.rsplit('/').next().unwrap_or(no_digest);
    match last.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag.to_string(),
        _ => "latest".to_string(),
    }
}

/// The `oci-layout` file content.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/bundle-format.md section 3 gives these exact bytes; a second implementation
    /// writes them from the text, so the code must not drift from it.
    #[test]
    fn index_json_is_the_documented_bytes() {
        let d = |c: char| Digest::parse(&format!("sha256:{}", c.to_string().repeat(64))).unwrap();
        let meta = BundleMeta {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            tool: "t".into(),
            created: None,
            base: None,
            targets: vec![TargetInfo {
                reference: "team/app:2".into(),
                media_type: MediaType::DockerManifest,
                digest: d('b'),
                size: 942,
                images: vec![],
            }],
            blobs: vec![],
            relied: vec![],
            artifacts: vec![],
        };
        let want = format!(
            concat!(
                r#"{{"annotations":{{"io.ddiff.metadata.digest":"sha256:{a}"}},"#,
                r#""manifests":[{{"annotations":{{"io.containerd.image.name":"team/app:2","#,
                r#""org.opencontainers.image.ref.name":"2"}},"digest":"sha256:{b}","#,
                r#""mediaType":"application/vnd.docker.distribution.manifest.v2+json","size":942}}],"#,
                r#""mediaType":"application/vnd.oci.image.index.v1+json","schemaVersion":2}}"#
            ),
            a = "a".repeat(64),
            b = "b".repeat(64)
        );
        assert_eq!(
            String::from_utf8(meta.sealed_index_json(&d('a'))).unwrap(),
            want
        );
    }

    #[test]
    fn tags_of_references() {
        assert_eq!(ref_tag("app:2"), "2");
        assert_eq!(ref_tag("localhost:5000/team/app:v1"), "v1");
        assert_eq!(ref_tag("localhost:5000/team/app"), "latest");
        assert_eq!(ref_tag("app@sha256:abc"), "latest");
    }
}
