//! Site inventories: what an offline site holds (a registry, an OCI layout, a Docker engine),
//! as a small document the online side plans a delivery against (docs/inventory.md).
//!
//! ```text
//!  offline host reads a source ──► InventoryBuilder ──► Inventory::to_bytes (compact, sorted,
//!                                                        its own content digest inside)
//!  online host: Inventory::parse (refuses any flipped byte) ──► Have::new(&[inventories])
//!        ──► Have::bases (diff::plan's input, the one planner) ──► Have::annotate(meta)
//! ```
//!
//! The document's bytes are a function of its content: keys in a fixed (sorted) order, lists
//! sorted and without duplicates, no whitespace. [`Inventory::parse`] requires the exact bytes
//! [`Inventory::to_bytes`] writes for what it read, and the `digest` field to be the SHA-256
//! of the document written without it, so any changed byte is refused.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::bundle::BundleMeta;
use crate::destination::Destination;
use crate::diff::{BaseImage, BaseLayer};
use crate::{Digest, ImageConfig, ImageRef, MediaType, RawManifest};

/// The `format` of an inventory document.
pub const INVENTORY_FORMAT: &str = "ddiff-inventory";
/// The version this code writes and the highest it reads.
pub const INVENTORY_VERSION: u32 = 1;
/// The largest inventory document read (about 300 bytes per layer: most of a million layers).
pub const MAX_INVENTORY_BYTES: usize = 256 << 20;

/// Why an inventory document is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    /// Larger than [`MAX_INVENTORY_BYTES`].
    #[error("inventory is {size} bytes, more than the {max} an inventory may have")]
    TooLarge { size: usize, max: usize },
    /// Not JSON of the inventory's shape.
    #[error("not an inventory document: {problem}")]
    Syntax { problem: String },
    /// Another format.
    #[error("format is {found:?}, expected \"ddiff-inventory\"")]
    Format { found: String },
    /// A newer version.
    #[error(
        "inventory version {found} is newer than this ddiff reads (up to {INVENTORY_VERSION})"
    )]
    Version { found: u32 },
    /// The content digest does not match.
    #[error("content digest mismatch: the document says {stated}, its content is {computed} (damaged or edited)")]
    Digest { stated: Digest, computed: Digest },
    /// Not a source `ddiff inventory` reads.
    #[error("{text:?} is not an inventory source (docker://HOST[/REPO[:TAG]], oci:DIR, oci-archive:FILE or docker-daemon:)")]
    Source { text: String },
    /// The bytes are not the canonical form of what they say.
    #[error("not in canonical form at byte {offset} (damaged or edited: an inventory is compact JSON with sorted keys and lists)")]
    NotCanonical { offset: usize },
}

/// What `ddiff inventory` reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InventorySource {
    /// A registry: every repository (`docker://HOST`), one repository (`docker://HOST/REPO`)
    /// or one image (`docker://HOST/REPO:TAG`, `@DIGEST`).
    Registry {
        /// `host[:port]`.
        host: String,
        /// The repository, when one is named.
        repository: Option<String>,
        /// The tag or digest, when one is named.
        reference: Option<String>,
    },
    /// An OCI layout (`oci:DIR`) or a tar of one (`oci-archive:FILE`): every entry.
    Layout(ImageRef),
    /// The local Docker engine (`docker-daemon:`): every image.
    Engine,
}

impl InventorySource {
    /// Parses a source as `ddiff inventory` takes it.
    pub fn parse(s: &str) -> Result<InventorySource, InventoryError> {
        let unsupported = || InventoryError::Source {
            text: crate::digest::truncate_for_error(s),
        };
        if s == "docker-daemon:" || s == "docker-daemon" {
            return Ok(InventorySource::Engine);
        }
        if let Some(rest) = s.strip_prefix("docker://") {
            let rest = rest.trim_end_matches('/');
            if !rest.contains('/') {
                let ok = !rest.is_empty()
                    && rest.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    });
                return if ok {
                    Ok(InventorySource::Registry {
                        host: rest.to_string(),
                        repository: None,
                        reference: None,
                    })
                } else {
                    Err(unsupported())
                };
            }
        }
        match ImageRef::parse(s).map_err(|_| unsupported())? {
            ImageRef::Docker(r) => {
                // A reference fills in `latest`; here no tag means the whole repository.
                let last = s.rsplit('/').next().unwrap_or(s);
                let named = last.contains(':') || last.contains('@');
                Ok(InventorySource::Registry {
                    host: r.registry().to_string(),
                    repository: Some(r.repository().to_string()),
                    reference: named
                        .then(|| {
                            r.digest()
                                .map(ToString::to_string)
                                .or_else(|| r.tag().map(str::to_string))
                        })
                        .flatten(),
                })
            }
            r @ (ImageRef::Oci { .. } | ImageRef::OciArchive { .. }) => {
                Ok(InventorySource::Layout(r))
            }
            _ => Err(unsupported()),
        }
    }

    /// What `ddiff load --update-inventory` reads again after a load into `dest`, and how
    /// the inventory names it; `None` for a `docker-archive:` file (not a site).
    pub fn of_destination(dest: &Destination) -> Option<(InventorySource, String)> {
        match dest {
            Destination::Registry { host, .. } => Some((
                InventorySource::Registry {
                    host: host.clone(),
                    repository: None,
                    reference: None,
                },
                format!("docker://{host}"),
            )),
            Destination::Engine { .. } => {
                Some((InventorySource::Engine, "docker-daemon:".to_string()))
            }
            Destination::Layout { path } => Some((
                InventorySource::Layout(ImageRef::Oci {
                    path: path.clone(),
                    reference: None,
                }),
                format!("oci:{path}"),
            )),
            Destination::OciArchive { path } => Some((
                InventorySource::Layout(ImageRef::OciArchive {
                    path: path.clone(),
                    reference: None,
                }),
                format!("oci-archive:{path}"),
            )),
            Destination::DockerArchive { .. } => None,
        }
    }

    /// The kind of inventory it gives.
    pub fn kind(&self) -> SourceKind {
        match self {
            InventorySource::Registry { .. } => SourceKind::Registry,
            InventorySource::Layout(_) => SourceKind::Layout,
            InventorySource::Engine => SourceKind::Engine,
        }
    }
}

/// What kind of place an inventory describes: how its blobs are known.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A registry: blobs by digest, per repository.
    Registry,
    /// An OCI image layout (directory or archive): blobs by digest.
    Layout,
    /// A Docker engine: layers by diff_id only (it keeps no compressed blobs).
    Engine,
}

/// A blob the site holds. Fields in serialisation order (sorted keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryBlob {
    /// The uncompressed digest of a layer, when the site's config says it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
    /// The blob digest (for an engine's layers: the diff_id, the digest of the layer tar).
    pub digest: Digest,
    /// Reserved for the delta planner: per-layer fingerprints. Not filled by this version;
    /// kept verbatim (and covered by the content digest) by every version-1 reader.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprints: Option<serde_json::Value>,
    /// The media type of the descriptor that names it.
    pub media_type: MediaType,
    /// The repositories (registries) holding it, sorted; empty for layouts and engines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
    /// Size in bytes, when known (an engine does not say its layers' sizes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

/// A manifest the site holds (for an engine: an image ID) and the references naming it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InventoryManifest {
    /// Its digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: MediaType,
    /// The references naming it (`repo:tag`), sorted; empty for children of an index.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
}

/// An inventory document. Fields in serialisation order (sorted keys).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Inventory {
    /// Every blob, sorted by digest.
    pub blobs: Vec<InventoryBlob>,
    /// SHA-256 of the document written without this field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// [`INVENTORY_FORMAT`].
    pub format: String,
    /// How blobs are known.
    pub kind: SourceKind,
    /// Every manifest, sorted by digest.
    pub manifests: Vec<InventoryManifest>,
    /// What was read, as the user named it (`docker://site:5000`).
    pub source: String,
    /// [`INVENTORY_VERSION`].
    pub version: u32,
}

impl Inventory {
    /// The canonical bytes, with the content digest filled in.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut doc = self.clone();
        doc.digest = Some(doc.content_digest());
        // Serialising plain structs, strings and numbers to a Vec cannot fail.
        #[allow(clippy::expect_used)]
        serde_json::to_vec(&doc).expect("inventory serialises")
    }

    /// The SHA-256 of the document without its `digest` field.
    pub fn content_digest(&self) -> Digest {
        let mut doc = self.clone();
        doc.digest = None;
        // As in `to_bytes`: cannot fail.
        #[allow(clippy::expect_used)]
        Digest::sha256(&serde_json::to_vec(&doc).expect("inventory serialises"))
    }

    /// Reads and checks a document: its format and version, its content digest, and that
    /// its bytes are exactly the canonical form.
    pub fn parse(bytes: &[u8]) -> Result<Inventory, InventoryError> {
        if bytes.len() > MAX_INVENTORY_BYTES {
            return Err(InventoryError::TooLarge {
                size: bytes.len(),
                max: MAX_INVENTORY_BYTES,
            });
        }
        // Format and version first, so a newer document says so rather than "unknown field".
        #[derive(Deserialize)]
        struct Head {
            format: Option<String>,
            version: Option<u32>,
        }
        let head: Head = serde_json::from_slice(bytes).map_err(|e| InventoryError::Syntax {
            problem: crate::digest::truncate_for_error(&e.to_string()),
        })?;
        match head.format {
            Some(f) if f == INVENTORY_FORMAT => {}
            f => {
                return Err(InventoryError::Format {
                    found: crate::digest::truncate_for_error(&f.unwrap_or_default()),
                })
            }
        }
        if let Some(v) = head.version.filter(|v| *v > INVENTORY_VERSION) {
            return Err(InventoryError::Version { found: v });
        }
        let inv: Inventory = serde_json::from_slice(bytes).map_err(|e| InventoryError::Syntax {
            problem: crate::digest::truncate_for_error(&e.to_string()),
        })?;
        let computed = inv.content_digest();
        match &inv.digest {
            Some(stated) if *stated == computed => {}
            stated => {
                return Err(InventoryError::Digest {
                    stated: stated.clone().unwrap_or_else(|| Digest::sha256(b"")),
                    computed,
                })
            }
        }
        let canonical = inv.to_bytes();
        if canonical != bytes {
            let offset = canonical
                .iter()
                .zip(bytes)
                .position(|(a, b)| a != b)
                .unwrap_or(canonical.len().min(bytes.len()));
            return Err(InventoryError::NotCanonical { offset });
        }
        Ok(inv)
    }

    /// Layer blobs (and every other blob) count, manifests, and the bytes of sized blobs.
    pub fn summary(&self) -> InventorySummary {
        InventorySummary {
            source: self.source.clone(),
            kind: self.kind,
            digest: self.content_digest(),
            manifests: self.manifests.len(),
            references: self.manifests.iter().map(|m| m.references.len()).sum(),
            blobs: self.blobs.len(),
            layers: self
                .blobs
                .iter()
                .filter(|b| b.media_type.is_layer())
                .count(),
            bytes: self.blobs.iter().filter_map(|b| b.size).sum(),
        }
    }
}

/// What the page shows of a file dropped on it that is a site inventory: its summary with the
/// texts people read (`ok: true`), or why it is refused (`ok: false, error`). Every string is
/// made safe to show; the page adds no text of its own to these facts.
pub fn shown_summary_json(bytes: &[u8]) -> String {
    use crate::display::{error_chain, human_bytes, safe_text};
    let v = match Inventory::parse(bytes) {
        Ok(inv) => {
            let s = inv.summary();
            serde_json::json!({
                "ok": true,
                "source": safe_text(&s.source),
                "kind": s.kind,
                "digest": s.digest.to_string(),
                "manifests": s.manifests,
                "references": s.references,
                "blobs": s.blobs,
                "layers": s.layers,
                "bytes": s.bytes,
                "bytesText": human_bytes(s.bytes),
            })
        }
        Err(e) => serde_json::json!({ "ok": false, "error": safe_text(&error_chain(&e)) }),
    };
    v.to_string()
}

/// What an inventory holds, in numbers (`ddiff inventory`'s summary).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InventorySummary {
    /// The source read.
    pub source: String,
    /// Its kind.
    pub kind: SourceKind,
    /// The content digest.
    pub digest: Digest,
    /// Manifests (image IDs for an engine).
    pub manifests: usize,
    /// References naming them.
    pub references: usize,
    /// Blobs.
    pub blobs: usize,
    /// Of which layers.
    pub layers: usize,
    /// Bytes of the blobs whose size is known.
    pub bytes: u64,
}

/// Builds an inventory from what a host reads, in any order; duplicates merge.
#[derive(Clone, Debug)]
pub struct InventoryBuilder {
    kind: SourceKind,
    source: String,
    blobs: BTreeMap<Digest, InventoryBlob>,
    manifests: BTreeMap<Digest, InventoryManifest>,
}

impl InventoryBuilder {
    /// An empty inventory of `source`.
    pub fn new(kind: SourceKind, source: &str) -> InventoryBuilder {
        InventoryBuilder {
            kind,
            source: source.to_string(),
            blobs: BTreeMap::new(),
            manifests: BTreeMap::new(),
        }
    }

    fn blob(
        &mut self,
        digest: &Digest,
        media_type: &MediaType,
        size: Option<u64>,
        diff_id: Option<&Digest>,
        repository: Option<&str>,
    ) {
        let b = self
            .blobs
            .entry(digest.clone())
            .or_insert_with(|| InventoryBlob {
                diff_id: None,
                digest: digest.clone(),
                fingerprints: None,
                media_type: media_type.clone(),
                repositories: Vec::new(),
                size,
            });
        if b.diff_id.is_none() {
            b.diff_id = diff_id.cloned();
        }
        if let Some(r) = repository {
            if let Err(i) = b.repositories.binary_search_by(|x| x.as_str().cmp(r)) {
                b.repositories.insert(i, r.to_string());
            }
        }
    }

    /// Records a manifest (image or index) named by `reference` (`None` for an index's
    /// children and untagged manifests).
    pub fn manifest(&mut self, manifest: &RawManifest, reference: Option<&str>) {
        let m = self
            .manifests
            .entry(manifest.digest().clone())
            .or_insert_with(|| InventoryManifest {
                digest: manifest.digest().clone(),
                media_type: manifest.media_type().clone(),
                references: Vec::new(),
            });
        if let Some(r) = reference {
            if let Err(i) = m.references.binary_search_by(|x| x.as_str().cmp(r)) {
                m.references.insert(i, r.to_string());
            }
        }
    }

    /// Records an image manifest's config and layers (with the config's diff_ids, paired by
    /// position when their counts agree), held in `repository` (registries).
    pub fn image(
        &mut self,
        manifest: &RawManifest,
        config: Option<&ImageConfig>,
        repository: Option<&str>,
    ) {
        let Some(img) = manifest.as_image() else {
            return;
        };
        let c = &img.config;
        self.blob(&c.digest, &c.media_type, Some(c.size), None, repository);
        let ids = config
            .map(|c| &c.rootfs.diff_ids)
            .filter(|ids| ids.len() == img.layers.len());
        for (i, l) in img.layers.iter().enumerate() {
            let id = ids.and_then(|ids| ids.get(i));
            self.blob(&l.digest, &l.media_type, Some(l.size), id, repository);
        }
    }

    /// Records an engine image: its ID, tags and layers (diff_ids).
    pub fn engine_image(&mut self, id: &Digest, tags: &[String], diff_ids: &[Digest]) {
        let m = self
            .manifests
            .entry(id.clone())
            .or_insert_with(|| InventoryManifest {
                digest: id.clone(),
                media_type: MediaType::parse("application/vnd.oci.image.config.v1+json"),
                references: Vec::new(),
            });
        for t in tags {
            if let Err(i) = m.references.binary_search(t) {
                m.references.insert(i, t.clone());
            }
        }
        let mt = MediaType::parse("application/vnd.oci.image.layer.v1.tar");
        for d in diff_ids {
            self.blob(d, &mt, None, Some(d), None);
        }
    }

    /// The document.
    pub fn finish(self) -> Inventory {
        let mut inv = Inventory {
            blobs: self.blobs.into_values().collect(),
            digest: None,
            format: INVENTORY_FORMAT.to_string(),
            kind: self.kind,
            manifests: self.manifests.into_values().collect(),
            source: self.source,
            version: INVENTORY_VERSION,
        };
        inv.digest = Some(inv.content_digest());
        inv
    }
}

/// What one or several sites hold, as the planner and a bundle see it.
///
/// Several inventories mean several sites and **one bundle that loads at every site**: a
/// layer is relied on only when every site holds it (a registry or layout by its digest, an
/// engine by its diff_id); everything some site lacks is carried.
#[derive(Clone, Debug)]
pub struct Have {
    /// The relied-on candidates, as one base for [`crate::diff::plan`].
    base: BaseImage,
    /// The layers every site holds whose blob and diff_id are known: what patches may be made
    /// against (`ddiff_core::delta`).
    held: Vec<HeldLayer>,
    /// Repositories holding each blob (registries), the union over the sites.
    hints: BTreeMap<Digest, BTreeSet<String>>,
    /// The inventories' content digests.
    digests: Vec<Digest>,
}

/// A layer every site holds, as the delta planner may use it as a patch reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldLayer {
    /// The blob as the site holds it.
    pub descriptor: crate::Descriptor,
    /// Its diff_id.
    pub diff_id: Digest,
    /// The site's repositories holding it (registries).
    pub repositories: Vec<String>,
}

impl Have {
    /// The intersection of what `inventories` hold. Registry and layout blobs are matched by
    /// digest only (a layer recompressed elsewhere is carried: a registry load cannot find a
    /// stand-in for it without naming an image); an engine's by diff_id.
    pub fn new(inventories: &[Inventory]) -> Have {
        let by_digest: Vec<Option<BTreeSet<&Digest>>> = inventories
            .iter()
            .map(|i| {
                (i.kind != SourceKind::Engine).then(|| i.blobs.iter().map(|b| &b.digest).collect())
            })
            .collect();
        let by_diff_id: Vec<BTreeSet<&Digest>> = inventories
            .iter()
            .map(|i| i.blobs.iter().filter_map(|b| b.diff_id.as_ref()).collect())
            .collect();
        let every_site_holds = |b: &InventoryBlob| {
            inventories
                .iter()
                .enumerate()
                .all(|(i, _)| match &by_digest[i] {
                    Some(set) => set.contains(&b.digest),
                    None => b
                        .diff_id
                        .as_ref()
                        .is_some_and(|d| by_diff_id[i].contains(d)),
                })
        };
        // Candidates come from a site that knows blob digests when there is one.
        let lead = inventories
            .iter()
            .position(|i| i.kind != SourceKind::Engine)
            .unwrap_or(0);
        let mut layers = Vec::new();
        let mut held = Vec::new();
        let mut hints: BTreeMap<Digest, BTreeSet<String>> = BTreeMap::new();
        let any_digest_site = by_digest.iter().any(Option::is_some);
        if let Some(inv) = inventories.get(lead) {
            for b in inv.blobs.iter().filter(|b| every_site_holds(b)) {
                if let (true, Some(id), Some(size)) = (any_digest_site, &b.diff_id, b.size) {
                    if b.media_type.layer_compression().is_some() {
                        held.push(HeldLayer {
                            descriptor: crate::Descriptor::new(
                                b.media_type.clone(),
                                b.digest.clone(),
                                size,
                            ),
                            diff_id: id.clone(),
                            repositories: b.repositories.clone(),
                        });
                    }
                }
                layers.push(if any_digest_site {
                    BaseLayer {
                        digest: Some(b.digest.clone()),
                        diff_id: None,
                    }
                } else {
                    BaseLayer {
                        digest: None,
                        diff_id: b.diff_id.clone(),
                    }
                });
            }
        }
        for inv in inventories {
            for b in inv.blobs.iter().filter(|b| !b.repositories.is_empty()) {
                hints
                    .entry(b.digest.clone())
                    .or_default()
                    .extend(b.repositories.iter().cloned());
            }
        }
        let digests: Vec<Digest> = inventories.iter().map(Inventory::content_digest).collect();
        Have {
            base: BaseImage {
                reference: inventory_label(&digests),
                manifest: None,
                layers,
            },
            held,
            hints,
            digests,
        }
    }

    /// The layers every site holds that patches may be made against (blob and diff_id
    /// known; sites known only by diff_ids, engines, give none: the online side fetches a
    /// reference by its blob digest).
    pub fn held_layers(&self) -> &[HeldLayer] {
        &self.held
    }

    /// The planner's input: one base holding every relied-on candidate.
    pub fn bases(&self) -> Vec<BaseImage> {
        vec![self.base.clone()]
    }

    /// Fills what a bundle planned against these inventories says: the base is named after
    /// the inventories (no manifest, no diff_ids: a target may move any tag, as nothing it
    /// relies on is left unnamed by the move), and each relied-on blob lists the site's
    /// repositories that held it, where a registry load looks for it.
    pub fn annotate(&self, meta: &mut BundleMeta) {
        if let Some(b) = meta.base.as_mut() {
            b.references = vec![inventory_label(&self.digests)];
            b.manifests.clear();
            b.diff_ids.clear();
            b.inventories = self.digests.clone();
        }
        for r in &mut meta.relied {
            r.repositories = self
                .hints
                .get(&r.digest)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default();
        }
    }
}

/// How a bundle names the inventories it was planned against.
fn inventory_label(digests: &[Digest]) -> String {
    let list: Vec<String> = digests.iter().map(|d| d.short()).collect();
    format!("inventory {}", list.join(" + "))
}

#[cfg(test)]
mod tests;
