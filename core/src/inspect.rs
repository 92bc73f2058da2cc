//! What a bundle holds, for people: the view `ddiff inspect` prints and the browser page shows.
//!
//! ```text
//!   bundle bytes ──► Inspector ──► bundle::Decoder (verifies every blob)
//!   (any chunks)        │  JSON blobs ──► inspect() ──► Inspection (targets, base, layer rows)
//!                       │  carried layer bytes ──► LayerLister ──► LayerListing (file trees)
//!                       ▼
//!                    Outcome { ok | Problem (corrupt / truncated / …, which blob, where) }
//! ```
//!
//! [`inspect`] is a pure function of the metadata and the exact manifest and config bytes
//! (a [`Report`] has both). [`Inspector`] drives the decoder for hosts that want everything
//! in one pass, including the verdict for a damaged bundle, which no `Report` exists for:
//!
//! ```
//! use ddiff_core::inspect::{InspectOptions, Inspector};
//! # fn run(bundle: &[u8]) {
//! let mut ins = Inspector::new(InspectOptions::default());
//! for chunk in bundle.chunks(64 * 1024) {
//!     if ins.feed(chunk).is_err() {
//!         break; // the outcome names the problem
//!     }
//! }
//! let outcome = ins.finish();
//! println!("intact: {}", outcome.ok);
//! # }
//! ```
//!
//! **Invariant: `feed` consumes the whole chunk or fails; after the first failure, stop
//! feeding and call [`Inspector::finish`].**

pub mod shown;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::bundle::{
    BaseInfo, BlobInfo, BlobKind, BundleError, BundleMeta, DecodeOptions, Decoder, Event,
    ReliedBlob, Report, TargetImage,
};
use crate::digest::{default_hasher, HasherFactory};
use crate::display::error_chain;
use crate::layer_files::{FileEntry, LayerLister};
use crate::tar::TarError;
use crate::{Digest, ImageConfig, MediaType, RawManifest};

/// Everything a person wants to know about a bundle before loading it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Inspection {
    /// The writer (`ddiff 0.1.0`).
    pub tool: String,
    /// When it was written (RFC 3339), if recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The base the destination must already hold; `None` for a self-contained bundle.
    pub base: Option<BaseInfo>,
    /// The targets, in bundle order.
    pub targets: Vec<TargetView>,
    /// Number of blobs carried.
    pub blob_count: usize,
    /// Bytes of all carried blobs.
    pub carried_bytes: u64,
    /// Bytes of all relied-on blobs (what the destination must already have).
    pub relied_bytes: u64,
    /// The targets' provenance carried (cosign signatures, attestations, SBOMs, referrers).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<crate::provenance::ArtifactView>,
}

/// One target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetView {
    /// The reference it will be tagged as.
    pub reference: String,
    /// Media type of the top manifest.
    pub media_type: MediaType,
    /// Digest of the top manifest.
    pub digest: Digest,
    /// The platform images.
    pub images: Vec<ImageView>,
}

/// One platform image of a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageView {
    /// `os/arch[/variant]`, or `unknown`.
    pub platform: String,
    /// Digest of the image manifest.
    pub manifest: Digest,
    /// Digest of the config.
    pub config: Digest,
    /// The layers, base first.
    pub layers: Vec<LayerRow>,
    /// Bytes of this image's manifest, config and layers that the bundle carries.
    pub carried_bytes: u64,
    /// Bytes of the whole image (manifest, config and every layer).
    pub full_bytes: u64,
}

/// One layer of an image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerRow {
    /// Digest of the stored (compressed) blob.
    pub digest: Digest,
    /// Size of the stored blob.
    pub size: u64,
    /// Its media type.
    pub media_type: MediaType,
    /// True when the bundle carries it; false when the destination must have it.
    pub carried: bool,
    /// Index into the bundle's blobs (`ddiff.json` order) when carried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_index: Option<usize>,
    /// The uncompressed digest, from the config (or `ddiff.json` for relied-on layers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff_id: Option<Digest>,
    /// True when `diff_id` is one of the base's layers.
    pub in_base: bool,
    /// The history line that made it (a Dockerfile step).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When that step ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Set when the layer travels as a patch (it is rebuilt at load).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<crate::delta::PatchInfo>,
}

impl Inspection {
    /// The inspection of a verified bundle.
    pub fn from_report(report: &Report) -> Result<Inspection, BundleError> {
        inspect(&report.meta, &report.json_blobs)
    }
}

/// Builds the inspection from the metadata and the exact manifest and config bytes.
/// Configs that are not image configs (artifacts) give rows without history.
pub fn inspect(
    meta: &BundleMeta,
    json_blobs: &BTreeMap<Digest, Vec<u8>>,
) -> Result<Inspection, BundleError> {
    let carried: BTreeMap<&Digest, (usize, &BlobInfo)> = meta
        .blobs
        .iter()
        .enumerate()
        .map(|(i, b)| (&b.digest, (i, b)))
        .collect();
    let relied: BTreeMap<&Digest, &ReliedBlob> =
        meta.relied.iter().map(|b| (&b.digest, b)).collect();
    let base_ids: BTreeSet<&Digest> = meta.base.iter().flat_map(|b| b.diff_ids.iter()).collect();
    let ctx = Ctx {
        json_blobs,
        carried: &carried,
        relied: &relied,
        base_ids: &base_ids,
    };
    let mut targets = Vec::with_capacity(meta.targets.len());
    for t in &meta.targets {
        let images = t
            .images
            .iter()
            .map(|img| ctx.image(img))
            .collect::<Result<Vec<_>, _>>()?;
        targets.push(TargetView {
            reference: t.reference.clone(),
            media_type: t.media_type.clone(),
            digest: t.digest.clone(),
            images,
        });
    }
    Ok(Inspection {
        tool: meta.tool.clone(),
        created: meta.created.clone(),
        base: meta.base.clone(),
        targets,
        blob_count: meta.blobs.len(),
        carried_bytes: meta.carried_bytes(),
        relied_bytes: meta.relied_bytes(),
        artifacts: crate::provenance::views(meta, json_blobs),
    })
}

struct Ctx<'a> {
    json_blobs: &'a BTreeMap<Digest, Vec<u8>>,
    carried: &'a BTreeMap<&'a Digest, (usize, &'a BlobInfo)>,
    relied: &'a BTreeMap<&'a Digest, &'a ReliedBlob>,
    base_ids: &'a BTreeSet<&'a Digest>,
}

impl Ctx<'_> {
    fn image(&self, img: &TargetImage) -> Result<ImageView, BundleError> {
        let missing = |d: &Digest| BundleError::MissingBlob { digest: d.clone() };
        let (_, mblob) = self
            .carried
            .get(&img.manifest)
            .ok_or_else(|| missing(&img.manifest))?;
        let bytes = self
            .json_blobs
            .get(&img.manifest)
            .ok_or_else(|| missing(&img.manifest))?;
        let raw = RawManifest::parse(bytes.clone(), Some(mblob.media_type.as_str())).map_err(
            |source| BundleError::Manifest {
                digest: img.manifest.clone(),
                source,
            },
        )?;
        let m = raw
            .as_image()
            .ok_or_else(|| BundleError::MetadataInconsistent {
                digest: Some(img.manifest.clone()),
                problem: "target image is not an image manifest",
            })?;
        let config = self
            .json_blobs
            .get(&img.config)
            .and_then(|b| ImageConfig::parse(b).ok());
        let history = config.as_ref().map(|c| c.layer_history());
        let platform = img
            .platform
            .clone()
            .or_else(|| config.as_ref().map(|c| c.platform()))
            .map_or_else(|| "unknown".to_string(), |p| p.to_string());
        let mut carried_bytes = 0;
        let mut full_bytes = mblob.size + m.config.size;
        carried_bytes += mblob.size;
        if self.carried.contains_key(&m.config.digest) {
            carried_bytes += m.config.size;
        }
        let mut layers = Vec::with_capacity(m.layers.len());
        for (i, l) in m.layers.iter().enumerate() {
            let blob_index = self.carried.get(&l.digest).map(|(i, _)| *i);
            let diff_id = config
                .as_ref()
                .and_then(|c| c.rootfs.diff_ids.get(i).cloned())
                .or_else(|| self.relied.get(&l.digest).and_then(|r| r.diff_id.clone()));
            let step = history.as_ref().and_then(|h| h.get(i).copied().flatten());
            full_bytes += l.size;
            let patch = self
                .carried
                .get(&l.digest)
                .and_then(|(_, b)| b.patch.clone());
            if blob_index.is_some() {
                carried_bytes += patch.as_ref().map_or(l.size, |p| p.size);
            }
            layers.push(LayerRow {
                digest: l.digest.clone(),
                size: l.size,
                media_type: l.media_type.clone(),
                carried: blob_index.is_some(),
                blob_index,
                in_base: diff_id.as_ref().is_some_and(|d| self.base_ids.contains(d)),
                diff_id,
                created_by: step.and_then(|h| h.created_by.clone()),
                created: step.and_then(|h| h.created.clone()),
                patch,
            });
        }
        Ok(ImageView {
            platform,
            manifest: img.manifest.clone(),
            config: img.config.clone(),
            layers,
            carried_bytes,
            full_bytes,
        })
    }
}

/// What kind of damage a problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ProblemKind {
    /// A blob's content does not match its digest or size.
    Corrupt,
    /// The file ends early.
    Truncated,
    /// The archive ended cleanly but without every listed blob.
    Missing,
    /// Not a ddiff bundle, or a version this reader does not know.
    NotABundle,
    /// The tar structure or the entries are wrong.
    Structure,
    /// `ddiff.json`, `index.json`, manifests and configs disagree.
    Metadata,
    /// The host drove the codec wrongly (a bug, not bad input).
    Misuse,
}

impl ProblemKind {
    /// Classifies a decoder error.
    pub fn of(e: &BundleError) -> ProblemKind {
        match e {
            BundleError::CorruptBlob { .. } | BundleError::SizeMismatch { .. } => {
                ProblemKind::Corrupt
            }
            BundleError::Truncated { .. } | BundleError::Tar(TarError::Truncated { .. }) => {
                ProblemKind::Truncated
            }
            BundleError::MissingBlob { .. } => ProblemKind::Missing,
            BundleError::MetadataJson { .. }
            | BundleError::NotABundle { .. }
            | BundleError::UnsupportedVersion { .. } => ProblemKind::NotABundle,
            BundleError::Tar(_)
            | BundleError::UnexpectedEntry { .. }
            | BundleError::DuplicateEntry { .. }
            | BundleError::UnsafePath { .. }
            | BundleError::ForbiddenEntry { .. }
            | BundleError::Typeflag { .. }
            | BundleError::TooLarge { .. } => ProblemKind::Structure,
            BundleError::MetadataInconsistent { .. }
            | BundleError::Manifest { .. }
            | BundleError::Config { .. }
            | BundleError::DanglingReference { .. }
            | BundleError::UnreferencedBlob { .. }
            | BundleError::DescriptorMismatch { .. }
            | BundleError::DiffIdMismatch { .. }
            | BundleError::InvalidTargetReference { .. }
            | BundleError::PinnedDigestMismatch { .. }
            | BundleError::JsonBudget { .. }
            | BundleError::MetadataAltered { .. }
            | BundleError::Layout { .. } => ProblemKind::Metadata,
            BundleError::Misuse(_) => ProblemKind::Misuse,
        }
    }
}

/// A blob a problem is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobRef {
    /// Index in `ddiff.json`'s blob list.
    pub index: usize,
    /// Its digest.
    pub digest: Digest,
    /// Its role.
    pub kind: BlobKind,
    /// Its size.
    pub size: u64,
    /// Bytes of it that were read before the problem (for truncation: how far it got).
    pub bytes_read: u64,
}

/// Why a bundle is not intact, structured for display.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The class of problem.
    pub kind: ProblemKind,
    /// The full message (what and where).
    pub message: String,
    /// Stream offset where it was noticed.
    pub offset: u64,
    /// The blob it concerns, when one does: the blob being read, or for a truncation between
    /// blobs the next one expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob: Option<BlobRef>,
}

/// The file list of one carried layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerListing {
    /// Index in `ddiff.json`'s blob list.
    pub blob_index: usize,
    /// The layer's digest.
    pub digest: Digest,
    /// The entries (at most [`InspectOptions::max_files`] over all layers).
    pub files: Vec<FileEntry>,
    /// Entries found, including those not kept.
    pub file_count: u64,
    /// Size of the uncompressed tar.
    pub uncompressed_bytes: u64,
    /// Why the listing stopped early (`zstd listing not supported`, a broken gzip…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How far an inspection got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    /// Bytes of the bundle consumed.
    pub bytes: u64,
    /// Blobs fully verified.
    pub blobs_done: usize,
    /// Blobs in the bundle (0 before the metadata).
    pub blobs_total: usize,
}

/// The result of a whole pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    /// True when every blob, the structure and the metadata checked out to the end marker.
    pub ok: bool,
    /// What is wrong, when not ok.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// Bytes consumed.
    pub bytes: u64,
    /// Blobs verified.
    pub blobs_verified: usize,
    /// The contents; present once the manifests and configs were read, even for a bundle
    /// whose layers are damaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inspection: Option<Inspection>,
    /// File lists of the carried layers that were verified (empty unless
    /// [`InspectOptions::list_files`]): a damaged bundle shows the files of the layers before
    /// the damage, never of the layer that failed or was cut, nor of any after it.
    pub layers: Vec<LayerListing>,
}

/// Inspector settings.
#[derive(Clone, Copy)]
pub struct InspectOptions {
    /// The hasher for blob verification.
    pub hasher: HasherFactory,
    /// List the files of carried layers (inflates them: costs CPU).
    pub list_files: bool,
    /// Keep at most this many file entries over all layers (the rest are only counted).
    pub max_files: usize,
}

impl Default for InspectOptions {
    fn default() -> Self {
        InspectOptions {
            hasher: default_hasher,
            list_files: true,
            max_files: 200_000,
        }
    }
}

struct Listing {
    lister: LayerLister,
    out: LayerListing,
}

/// One-pass verification, inspection and file listing. See the [module docs](self).
pub struct Inspector {
    opts: InspectOptions,
    dec: Decoder,
    meta: Option<BundleMeta>,
    json: BTreeMap<Digest, Vec<u8>>,
    json_buf: Option<Vec<u8>>,
    current: Option<(usize, u64)>,
    blobs_done: usize,
    kept_files: usize,
    listing: Option<Listing>,
    layers: Vec<LayerListing>,
    inspection: Option<Inspection>,
    report: Option<Report>,
    problem: Option<Problem>,
    /// Check the CRC-32 of inflated layers (false in an [`UnverifiedLister`]).
    check_crc: bool,
}

impl Inspector {
    /// A fresh inspector.
    pub fn new(opts: InspectOptions) -> Inspector {
        Self::with_decoder(
            opts,
            Decoder::with_options(DecodeOptions {
                hasher: opts.hasher,
            }),
        )
    }

    fn with_decoder(opts: InspectOptions, dec: Decoder) -> Inspector {
        Inspector {
            opts,
            dec,
            meta: None,
            json: BTreeMap::new(),
            json_buf: None,
            current: None,
            blobs_done: 0,
            kept_files: 0,
            listing: None,
            layers: Vec::new(),
            inspection: None,
            report: None,
            problem: None,
            check_crc: true,
        }
    }

    /// Progress so far.
    pub fn progress(&self) -> Progress {
        Progress {
            bytes: self.dec.offset(),
            blobs_done: self.blobs_done,
            blobs_total: self.meta.as_ref().map_or(0, |m| m.blobs.len()),
        }
    }

    /// The metadata, once read.
    pub fn meta(&self) -> Option<&BundleMeta> {
        self.meta.as_ref()
    }

    /// The exact bytes of `ddiff.json`, once read (what a bundle signature signs).
    pub fn meta_bytes(&self) -> Option<&[u8]> {
        self.dec.meta_bytes()
    }

    /// The inspection, once every manifest and config was read.
    pub fn inspection(&self) -> Option<&Inspection> {
        self.inspection.as_ref()
    }

    /// The problem found, if any.
    pub fn problem(&self) -> Option<&Problem> {
        self.problem.as_ref()
    }

    /// Feeds a chunk; all of it is consumed unless the bundle is damaged, in which case the
    /// error is returned (and kept for [`Inspector::finish`]).
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), BundleError> {
        if self.problem.is_some() {
            return Err(BundleError::Misuse("feed after a failure"));
        }
        loop {
            let (n, ev) = match self.dec.decode(chunk) {
                Ok(x) => x,
                Err(e) => {
                    self.fail(&e);
                    return Err(e);
                }
            };
            chunk = &chunk[n..];
            let Some(ev) = ev else { return Ok(()) };
            if let Err(e) = self.on_event(ev) {
                self.fail(&e);
                return Err(e);
            }
        }
    }

    fn on_event(&mut self, ev: Event<'_>) -> Result<(), BundleError> {
        match ev {
            Event::Metadata(m) => self.meta = Some(*m),
            Event::BlobStart { index, .. } => {
                let b = self.blob(index)?.clone();
                self.current = Some((index, 0));
                if b.kind.is_json() {
                    // JSON blobs are at most 16 MiB (checked by the metadata validation).
                    self.json_buf = Some(Vec::with_capacity(b.size as usize));
                } else {
                    if self.inspection.is_none() {
                        // The decoder cross-checked every manifest and config before the
                        // first layer, so the inspection is final from here.
                        let meta = self.meta.as_ref().ok_or(BundleError::Misuse("no meta"))?;
                        self.inspection = Some(inspect(meta, &self.json)?);
                    }
                    if self.opts.list_files && b.patch.is_some() {
                        // A patch is not a layer: its files are known once it is rebuilt
                        // against the destination's reference (at load).
                        self.layers.push(LayerListing {
                            blob_index: index,
                            digest: b.digest.clone(),
                            files: Vec::new(),
                            file_count: 0,
                            uncompressed_bytes: 0,
                            error: Some(crate::display::PATCH_FILES_UNKNOWN.into()),
                        });
                    } else if self.opts.list_files {
                        if let Some(c) = b.media_type.layer_compression() {
                            let out = LayerListing {
                                blob_index: index,
                                digest: b.digest.clone(),
                                files: Vec::new(),
                                file_count: 0,
                                uncompressed_bytes: 0,
                                error: None,
                            };
                            let lister = if self.check_crc {
                                LayerLister::new(c)
                            } else {
                                LayerLister::without_crc(c)
                            };
                            match lister {
                                Ok(lister) => self.listing = Some(Listing { lister, out }),
                                Err(e) => self.layers.push(LayerListing {
                                    error: Some(error_chain(&e)),
                                    ..out
                                }),
                            }
                        }
                    }
                }
            }
            Event::BlobData { data, .. } => {
                if let Some((_, read)) = &mut self.current {
                    *read += data.len() as u64;
                }
                if let Some(buf) = &mut self.json_buf {
                    buf.extend_from_slice(data);
                }
                if let Some(l) = &mut self.listing {
                    let mut files = Vec::new();
                    match l.lister.feed(data, &mut files) {
                        Ok(()) => self.keep(files),
                        Err(e) => {
                            // A layer whose digest verifies but whose tar does not parse is
                            // reported on its listing; the bundle itself is still intact.
                            if let Some(mut l) = self.listing.take() {
                                l.out.error = Some(error_chain(&e));
                                l.out.uncompressed_bytes = l.lister.uncompressed_bytes();
                                self.layers.push(l.out);
                            }
                        }
                    }
                }
            }
            Event::BlobEnd { index } => {
                self.current = None;
                self.blobs_done += 1;
                if let Some(buf) = self.json_buf.take() {
                    let d = self.blob(index)?.digest.clone();
                    self.json.insert(d, buf);
                }
                if let Some(mut l) = self.listing.take() {
                    if let Err(e) = l.lister.finish() {
                        l.out.error = Some(error_chain(&e));
                    }
                    l.out.uncompressed_bytes = l.lister.uncompressed_bytes();
                    self.layers.push(l.out);
                }
            }
            Event::End(r) => {
                if self.inspection.is_none() {
                    self.inspection = Some(Inspection::from_report(&r)?);
                }
                self.report = Some(*r);
            }
        }
        Ok(())
    }

    fn keep(&mut self, files: Vec<FileEntry>) {
        let Some(l) = &mut self.listing else { return };
        l.out.file_count += files.len() as u64;
        let room = self.opts.max_files.saturating_sub(self.kept_files);
        let n = files.len().min(room);
        self.kept_files += n;
        l.out.files.extend(files.into_iter().take(n));
    }

    fn blob(&self, index: usize) -> Result<&BlobInfo, BundleError> {
        self.meta
            .as_ref()
            .and_then(|m| m.blobs.get(index))
            .ok_or(BundleError::Misuse("blob index outside the metadata"))
    }

    fn fail(&mut self, e: &BundleError) {
        let meta = self.meta.as_ref();
        let by_digest = |d: &Digest| {
            meta.and_then(|m| m.blobs.iter().position(|b| &b.digest == d))
                .map(|i| (i, self.current.filter(|c| c.0 == i).map_or(0, |c| c.1)))
        };
        let located = match e {
            BundleError::CorruptBlob { digest, .. }
            | BundleError::SizeMismatch { digest, .. }
            | BundleError::MissingBlob { digest } => by_digest(digest),
            _ => self.current.or_else(|| {
                // Between blobs: the next one is the one that is missing or damaged.
                let total = meta.map_or(0, |m| m.blobs.len());
                (self.blobs_done > 0 && self.blobs_done < total).then_some((self.blobs_done, 0))
            }),
        };
        let blob = located.and_then(|(index, bytes_read)| {
            let b = meta?.blobs.get(index)?;
            Some(BlobRef {
                index,
                digest: b.digest.clone(),
                kind: b.kind,
                size: b.size,
                bytes_read,
            })
        });
        let offset = match e {
            BundleError::Truncated { offset, .. }
            | BundleError::CorruptBlob { offset, .. }
            | BundleError::SizeMismatch { offset, .. }
            | BundleError::UnexpectedEntry { offset, .. } => *offset,
            _ => self.dec.offset(),
        };
        self.problem = Some(Problem {
            kind: ProblemKind::of(e),
            message: error_chain(e),
            offset,
            blob,
        });
    }

    /// Call at the end of input (or after a failure): the verdict, the contents and the file
    /// lists. A bundle that ended before its end marker gets a `truncated` problem here.
    pub fn finish(&mut self) -> Outcome {
        if self.problem.is_none() {
            if let Err(e) = self.dec.finish() {
                self.fail(&e);
            }
        }
        // A layer being read when the input stopped or failed was not verified: its partial
        // listing is dropped, as are lists of layers that failed later (see adopt_listings).
        self.listing = None;
        let ok = self.problem.is_none() && self.report.is_some();
        let mut outcome = Outcome {
            ok,
            problem: self.problem.clone(),
            bytes: self.dec.offset(),
            blobs_verified: self.blobs_done,
            inspection: self.inspection.clone(),
            layers: Vec::new(),
        };
        outcome.adopt_listings(std::mem::take(&mut self.layers));
        outcome
    }
}

impl Outcome {
    /// Takes the file lists made by an [`UnverifiedLister`] over the same bytes (on another
    /// thread) as this outcome's, keeping only those of layers this outcome verified: a
    /// listing is never shown for a layer whose digest did not check out, or that was not
    /// reached. For an intact bundle that is every listing.
    pub fn adopt_listings(&mut self, listings: Vec<LayerListing>) {
        let verified = self.blobs_verified;
        self.layers = listings
            .into_iter()
            .filter(|l| l.blob_index < verified)
            .collect();
    }
}

/// Lists the files of a bundle's carried layers **without verifying the layers' digests**,
/// so that listing can run on another thread than the verification, over the same chunks.
///
/// It is the [`Inspector`] over [`Decoder::unverified_layers`]: the same tar and bundle
/// framing, metadata and manifest checks, and the same [`LayerLister`], with no SHA-256 of
/// layer bytes. It gives file lists and no verdict; an [`Inspector`] fed the same bytes is
/// the authority, and [`Outcome::adopt_listings`] keeps only the lists of layers it verified.
///
/// It does not compute the gzip CRC-32 of inflated layers ([`LayerLister::without_crc`]):
/// the lists it gives are adopted only for layers whose digest verified, and inflating is a
/// function of those verified bytes, so the CRC could only find a layer its publisher
/// compressed wrongly (which `ddiff inspect --files` still reports), never damage in the
/// bundle; and even on another thread it cost the page 10–15 % on two busy cores.
pub struct UnverifiedLister {
    inner: Inspector,
}

impl UnverifiedLister {
    /// A fresh lister keeping at most `max_files` entries over all layers (all are counted).
    pub fn new(max_files: usize) -> UnverifiedLister {
        let opts = InspectOptions {
            list_files: true,
            max_files,
            ..InspectOptions::default()
        };
        let mut inner = Inspector::with_decoder(opts, Decoder::unverified_layers());
        inner.check_crc = false;
        UnverifiedLister { inner }
    }

    /// Feeds the next chunk; an error means the bundle's framing or metadata is broken (the
    /// verifying inspector will say so too): stop feeding.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), BundleError> {
        self.inner.feed(chunk)
    }

    /// The finished file lists so far (a layer's list is finished at the layer's end, or
    /// earlier when its listing failed); callable at any time, e.g. when the verifier stopped
    /// early and the lister is ahead of it.
    pub fn listings(&self) -> &[LayerListing] {
        &self.inner.layers
    }
}

#[cfg(test)]
mod tests;
