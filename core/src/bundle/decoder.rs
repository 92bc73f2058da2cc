//! The push-style bundle decoder and verifier.

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::{default_hasher, HasherFactory, Verifier};
use crate::tar::{EntryKind, TarEvent, TarReader};
use crate::{Digest, ImageConfig, Manifest, RawManifest};

use super::meta::{BlobKind, BundleMeta, MAX_META_BYTES, METADATA_DIGEST_ANNOTATION, OCI_LAYOUT};
use super::{check_path, BundleError};

/// Decoder settings.
#[derive(Clone, Copy)]
pub struct DecodeOptions {
    /// The hasher for blob verification (hosts may supply a faster one).
    pub hasher: HasherFactory,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            hasher: default_hasher,
        }
    }
}

/// What the decoder reports. `BlobData` borrows the caller's input.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// `ddiff.json` was read and is internally consistent.
    Metadata(Box<BundleMeta>),
    /// Blob `index` (into `meta.blobs`) starts; its data starts at stream offset `offset`.
    BlobStart { index: usize, offset: u64 },
    /// A piece of blob `index`.
    BlobData { index: usize, data: &'a [u8] },
    /// Blob `index` is complete and its digest and size verified.
    BlobEnd { index: usize },
    /// The archive ended and everything checked out.
    End(Box<Report>),
}

/// The result of a complete, verified decode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The metadata.
    pub meta: BundleMeta,
    /// The exact bytes of every manifest, index and config blob, by digest.
    pub json_blobs: BTreeMap<Digest, Vec<u8>>,
    /// Data offset of every blob in the stream, in `meta.blobs` order.
    pub offsets: Vec<u64>,
    /// Total bytes of the archive up to the end marker.
    pub archive_bytes: u64,
    /// Whether `index.json` records the digest of `ddiff.json`, so that every byte of the
    /// metadata is checked. False for bundles of ddiff versions that did not record it (and for
    /// the original tool's bundles): their facts stated once in `ddiff.json` (target names,
    /// platforms, the base) are then covered only by an external checksum.
    pub metadata_sealed: bool,
}

#[derive(Debug)]
enum Phase {
    Meta,
    Layout,
    Index,
    Blobs { next: usize },
    End,
    Done,
    Failed,
}

enum Current {
    None,
    Small {
        name: &'static str,
        buf: Vec<u8>,
    },
    Blob {
        index: usize,
        verifier: Verifier,
        buf: Option<Vec<u8>>,
    },
}

/// The hasher of [`Decoder::unverified_layers`] for layer blobs: hashes nothing.
struct NoHash(usize);

impl crate::digest::BlobHasher for NoHash {
    fn update(&mut self, _: &[u8]) {}
    fn finalize(self: Box<Self>) -> Vec<u8> {
        vec![0; self.0]
    }
}

fn no_hasher(algorithm: crate::Algorithm) -> Box<dyn crate::digest::BlobHasher> {
    Box::new(NoHash(algorithm.hex_len() / 2))
}

/// Streaming bundle decoder; see the [module docs](super) for the driving loop.
pub struct Decoder {
    opts: DecodeOptions,
    tar: TarReader,
    phase: Phase,
    current: Current,
    current_offset: u64,
    meta: Option<BundleMeta>,
    /// Digest of the exact `ddiff.json` bytes.
    meta_digest: Option<Digest>,
    /// The exact `ddiff.json` bytes (what a bundle signature signs).
    meta_bytes: Option<Vec<u8>>,
    metadata_sealed: bool,
    json_blobs: BTreeMap<Digest, Vec<u8>>,
    offsets: Vec<u64>,
    seen_paths: BTreeSet<String>,
    checked: bool,
    pending: Option<Event<'static>>,
    /// False for [`Decoder::unverified_layers`]: layer blobs are framed but not hashed.
    verify_layers: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with the built-in hasher.
    pub fn new() -> Self {
        Self::with_options(DecodeOptions::default())
    }

    /// A decoder with options.
    pub fn with_options(opts: DecodeOptions) -> Self {
        Decoder {
            opts,
            tar: TarReader::new(),
            phase: Phase::Meta,
            current: Current::None,
            current_offset: 0,
            meta: None,
            meta_digest: None,
            meta_bytes: None,
            metadata_sealed: false,
            json_blobs: BTreeMap::new(),
            offsets: Vec::new(),
            seen_paths: BTreeSet::new(),
            checked: false,
            pending: None,
            verify_layers: true,
        }
    }

    /// A decoder that checks everything except the digests of **layer** blobs: the tar
    /// framing, paths, sizes, `ddiff.json`, `index.json`, and every manifest and config
    /// (hashed and cross-checked as usual, they are small) — but layer bytes are passed through
    /// unhashed, and [`Event::BlobEnd`] for a layer means "all its bytes were read", not
    /// "verified". For a second reader of the same bytes that must not pay for hashing (the
    /// page's file lister, on another thread than the verifying decoder); never the authority
    /// on whether a bundle is intact.
    pub fn unverified_layers() -> Self {
        Decoder {
            verify_layers: false,
            ..Self::new()
        }
    }

    /// Bytes consumed so far (for progress).
    pub fn offset(&self) -> u64 {
        self.tar.offset()
    }

    /// The exact bytes of `ddiff.json`, once read: what a bundle signature signs (see
    /// [`crate::signature`]). Only a complete decode proves the rest of the bundle matches them.
    pub fn meta_bytes(&self) -> Option<&[u8]> {
        self.meta_bytes.as_deref()
    }

    /// The metadata, once read.
    pub fn meta(&self) -> Option<&BundleMeta> {
        self.meta.as_ref()
    }

    /// Feeds input; see the module docs for the loop.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<Event<'a>>), BundleError> {
        if matches!(self.phase, Phase::Failed) {
            return Err(BundleError::Misuse("decode called after an error"));
        }
        let r = self.decode_inner(input);
        if r.is_err() {
            self.phase = Phase::Failed;
        }
        r
    }

    fn decode_inner<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<Event<'a>>), BundleError> {
        let mut used = 0;
        loop {
            if let Some(ev) = self.pending.take() {
                return Ok((used, Some(ev)));
            }
            let (n, tev) = self.tar.feed(&input[used..])?;
            used += n;
            match tev {
                None if n == 0 => return Ok((used, None)),
                None => continue,
                Some(TarEvent::Header(e)) => {
                    if let Some(ev) = self.on_header(e)? {
                        return Ok((used, Some(ev)));
                    }
                }
                Some(TarEvent::Data(d)) => {
                    if let Some(ev) = self.on_data(d)? {
                        return Ok((used, Some(ev)));
                    }
                }
                Some(TarEvent::EntryEnd) => {
                    if let Some(ev) = self.on_entry_end()? {
                        return Ok((used, Some(ev)));
                    }
                }
                Some(TarEvent::End) => {
                    return Ok((used, Some(self.on_end()?)));
                }
            }
        }
    }

    fn on_header(&mut self, e: crate::tar::Entry) -> Result<Option<Event<'static>>, BundleError> {
        let at = e.header_offset;
        check_path(&e.path, at)?;
        if e.kind != EntryKind::File {
            return Err(BundleError::ForbiddenEntry {
                offset: at,
                path: crate::digest::truncate_for_error(&e.path),
                kind: e.kind,
            });
        }
        if e.typeflag != b'0' {
            return Err(BundleError::Typeflag {
                offset: at,
                path: crate::digest::truncate_for_error(&e.path),
                typeflag: e.typeflag,
            });
        }
        if !self.seen_paths.insert(e.path.clone()) {
            return Err(BundleError::DuplicateEntry {
                offset: at,
                path: e.path,
            });
        }
        self.current_offset = at;
        let small = |name: &'static str, limit: u64, e: &crate::tar::Entry| {
            if e.path != name {
                return Err(BundleError::UnexpectedEntry {
                    offset: at,
                    path: crate::digest::truncate_for_error(&e.path),
                    expected: name.to_string(),
                });
            }
            if e.size > limit {
                return Err(BundleError::TooLarge {
                    offset: at,
                    path: e.path.clone(),
                    size: e.size,
                    limit,
                });
            }
            // `size` is at most MAX_META_BYTES, so it fits in usize.
            Ok(Current::Small {
                name,
                buf: Vec::with_capacity(e.size as usize),
            })
        };
        match self.phase {
            Phase::Meta => self.current = small("ddiff.json", MAX_META_BYTES, &e)?,
            Phase::Layout => self.current = small("oci-layout", 4096, &e)?,
            Phase::Index => {
                self.current = small("index.json", crate::manifest::MAX_MANIFEST_BYTES as u64, &e)?
            }
            Phase::Blobs { next } => {
                let meta = self
                    .meta
                    .as_ref()
                    .ok_or(BundleError::Misuse("blobs before metadata"))?;
                let Some(b) = meta.blobs.get(next) else {
                    return Err(BundleError::UnexpectedEntry {
                        offset: at,
                        path: crate::digest::truncate_for_error(&e.path),
                        expected: "the end of the archive (all listed blobs were read)".into(),
                    });
                };
                // A patched layer's entry is its patch, named and sized by the patch.
                let expected_path = b.entry_digest().layout_path();
                if e.path != expected_path {
                    return Err(BundleError::UnexpectedEntry {
                        offset: at,
                        path: crate::digest::truncate_for_error(&e.path),
                        expected: format!(
                            "{expected_path} (blob {} of {})",
                            next + 1,
                            meta.blobs.len()
                        ),
                    });
                }
                if e.size != b.entry_size() {
                    return Err(BundleError::SizeMismatch {
                        offset: at,
                        digest: b.entry_digest().clone(),
                        expected: b.entry_size(),
                        found: e.size,
                    });
                }
                let (kind, digest, size) = (b.kind, b.entry_digest().clone(), b.entry_size());
                if kind == BlobKind::Layer && !self.checked {
                    self.cross_check()?;
                }
                // JSON blobs are at most MAX_JSON_BLOB_BYTES (checked by BundleMeta::validate).
                let buf = kind.is_json().then(|| Vec::with_capacity(size as usize));
                let hasher = if self.verify_layers || kind.is_json() {
                    self.opts.hasher
                } else {
                    no_hasher
                };
                let verifier = Verifier::with_factory(digest, size, hasher);
                self.current = Current::Blob {
                    index: next,
                    verifier,
                    buf,
                };
                self.offsets.push(e.data_offset);
                return Ok(Some(Event::BlobStart {
                    index: next,
                    offset: e.data_offset,
                }));
            }
            Phase::End | Phase::Done | Phase::Failed => {
                return Err(BundleError::UnexpectedEntry {
                    offset: at,
                    path: crate::digest::truncate_for_error(&e.path),
                    expected: "the end of the archive (all listed blobs were read)".into(),
                })
            }
        }
        Ok(None)
    }

    fn on_data<'a>(&mut self, d: &'a [u8]) -> Result<Option<Event<'a>>, BundleError> {
        match &mut self.current {
            Current::Small { buf, .. } => {
                buf.extend_from_slice(d);
                Ok(None)
            }
            Current::Blob {
                index,
                verifier,
                buf,
            } => {
                let index = *index;
                verifier
                    .update(d)
                    .map_err(|source| BundleError::CorruptBlob {
                        offset: self.current_offset,
                        digest: verifier.expected().clone(),
                        source,
                    })?;
                if let Some(b) = buf {
                    b.extend_from_slice(d);
                }
                Ok(Some(Event::BlobData { index, data: d }))
            }
            Current::None => Err(BundleError::Misuse("data outside an entry")),
        }
    }

    fn on_entry_end(&mut self) -> Result<Option<Event<'static>>, BundleError> {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::Small { name, buf } => {
                match name {
                    "ddiff.json" => {
                        let meta = BundleMeta::parse(&buf)?;
                        let mut h = crate::DigestBuilder::with_factory(
                            crate::Algorithm::Sha256,
                            self.opts.hasher,
                        );
                        h.update(&buf);
                        self.meta_digest = Some(h.finish().0);
                        self.meta_bytes = Some(buf);
                        self.meta = Some(meta.clone());
                        self.phase = Phase::Layout;
                        return Ok(Some(Event::Metadata(Box::new(meta))));
                    }
                    "oci-layout" => {
                        check_oci_layout(&buf)?;
                        self.phase = Phase::Index;
                    }
                    _ => {
                        self.check_index_json(&buf)?;
                        self.phase = Phase::Blobs { next: 0 };
                    }
                }
                Ok(None)
            }
            Current::Blob {
                index,
                verifier,
                buf,
            } if !self.verify_layers && buf.is_none() => {
                // A layer read by an unverified_layers decoder: only its size is known good
                // (the tar entry's size was checked against ddiff.json, and the tar reader
                // delivered exactly that many bytes).
                let size = self.meta.as_ref().map(|m| m.blobs[index].entry_size());
                if Some(verifier.bytes_seen()) != size {
                    return Err(BundleError::Misuse("layer ended before its size"));
                }
                self.finish_blob(index)
            }
            Current::Blob {
                index,
                verifier,
                buf,
            } => {
                verifier.finish().map_err(|source| {
                    let digest = match &source {
                        crate::VerifyError::SizeMismatch { digest, .. } => digest.clone(),
                        crate::VerifyError::DigestMismatch { expected, .. } => expected.clone(),
                    };
                    BundleError::CorruptBlob {
                        offset: self.current_offset,
                        digest,
                        source,
                    }
                })?;
                if let Some(buf) = buf {
                    let meta = self
                        .meta
                        .as_ref()
                        .ok_or(BundleError::Misuse("blob before metadata"))?;
                    self.json_blobs
                        .insert(meta.blobs[index].digest.clone(), buf);
                }
                self.finish_blob(index)
            }
            Current::None => Err(BundleError::Misuse("entry end outside an entry")),
        }
    }

    fn finish_blob(&mut self, index: usize) -> Result<Option<Event<'static>>, BundleError> {
        let total = self.meta.as_ref().map_or(0, |m| m.blobs.len());
        self.phase = if index + 1 == total {
            Phase::End
        } else {
            Phase::Blobs { next: index + 1 }
        };
        Ok(Some(Event::BlobEnd { index }))
    }

    fn on_end(&mut self) -> Result<Event<'static>, BundleError> {
        let meta = match (&self.phase, &self.meta) {
            (Phase::End, Some(m)) => m.clone(),
            (Phase::Blobs { next }, Some(m)) => {
                return Err(BundleError::MissingBlob {
                    digest: m.blobs[*next].digest.clone(),
                })
            }
            _ => {
                return Err(BundleError::Truncated {
                    offset: self.tar.offset(),
                    context: "the archive ends before ddiff.json, oci-layout and index.json".into(),
                })
            }
        };
        if !self.checked {
            self.cross_check()?;
        }
        self.phase = Phase::Done;
        Ok(Event::End(Box::new(Report {
            meta,
            json_blobs: std::mem::take(&mut self.json_blobs),
            offsets: std::mem::take(&mut self.offsets),
            archive_bytes: self.tar.offset(),
            metadata_sealed: self.metadata_sealed,
        })))
    }

    /// Call at the end of input: errors if the bundle was truncated, naming where.
    /// Returns nothing new on success (the report came with [`Event::End`]).
    pub fn finish(&self) -> Result<(), BundleError> {
        if matches!(self.phase, Phase::Done) {
            self.tar.finish()?;
            return Ok(());
        }
        let offset = self.tar.offset();
        let context = match (&self.current, &self.meta) {
            (
                Current::Blob {
                    index, verifier, ..
                },
                Some(m),
            ) => {
                let b = &m.blobs[*index];
                format!(
                    "inside blob {} ({:?} {} of {}), {} of {} bytes read",
                    b.entry_digest(),
                    b.kind,
                    index + 1,
                    m.blobs.len(),
                    verifier.bytes_seen(),
                    b.entry_size()
                )
            }
            (Current::Small { name, .. }, _) => format!("inside {name}"),
            (_, Some(m)) => match self.phase {
                Phase::Blobs { next } if next < m.blobs.len() => {
                    format!(
                        "before blob {} ({} of {})",
                        m.blobs[next].entry_digest(),
                        next + 1,
                        m.blobs.len()
                    )
                }
                Phase::End => "before the end-of-archive marker".into(),
                Phase::Layout => "before oci-layout".into(),
                Phase::Index => "before index.json".into(),
                _ => "before the end of the archive".into(),
            },
            _ => "before ddiff.json was complete".into(),
        };
        Err(BundleError::Truncated { offset, context })
    }

    fn check_index_json(&mut self, buf: &[u8]) -> Result<(), BundleError> {
        let meta = self
            .meta
            .as_ref()
            .ok_or(BundleError::Misuse("index before metadata"))?;
        let bad = |problem: String| BundleError::Layout {
            file: "index.json",
            problem,
        };
        let idx = RawManifest::parse(buf.to_vec(), None).map_err(|e| bad(e.to_string()))?;
        let Some(idx) = idx.as_index() else {
            return Err(bad("not an image index".into()));
        };
        if idx.manifests.len() != meta.targets.len() {
            return Err(bad(format!(
                "{} entries, but ddiff.json lists {} targets",
                idx.manifests.len(),
                meta.targets.len()
            )));
        }
        for (d, t) in idx.manifests.iter().zip(&meta.targets) {
            if d.digest != t.digest || d.size != t.size || d.media_type != t.media_type {
                return Err(bad(format!(
                    "entry {} does not match target {} ({})",
                    d.digest, t.reference, t.digest
                )));
            }
        }
        // Every byte must be the one ddiff writes for this ddiff.json: the annotations repeat
        // the target names, which must agree, and the recorded digest of ddiff.json covers
        // the facts stated only there.
        let computed = self
            .meta_digest
            .clone()
            .ok_or(BundleError::Misuse("index before metadata"))?;
        let recorded = idx
            .annotations
            .as_ref()
            .and_then(|a| a.get(METADATA_DIGEST_ANNOTATION));
        let (expected, sealed) = match recorded {
            Some(r) => {
                let recorded = Digest::parse(r)
                    .map_err(|e| bad(format!("annotation {METADATA_DIGEST_ANNOTATION}: {e}")))?;
                if recorded != computed {
                    return Err(BundleError::MetadataAltered {
                        recorded,
                        found: computed,
                    });
                }
                (meta.sealed_index_json(&computed), true)
            }
            None => (meta.unsealed_index_json(), false),
        };
        if buf != expected.as_slice() {
            let at = buf
                .iter()
                .zip(&expected)
                .position(|(a, b)| a != b)
                .unwrap_or(buf.len().min(expected.len()));
            return Err(bad(format!(
                "differs at byte {at} from the index.json ddiff writes for this ddiff.json (target names or annotations altered?)"
            )));
        }
        self.metadata_sealed = sealed;
        Ok(())
    }

    /// Cross-checks manifests, configs and metadata once every JSON blob was read.
    fn cross_check(&mut self) -> Result<(), BundleError> {
        self.checked = true;
        let meta = self
            .meta
            .as_ref()
            .ok_or(BundleError::Misuse("check before metadata"))?;
        let carried: BTreeMap<&Digest, &super::BlobInfo> =
            meta.blobs.iter().map(|b| (&b.digest, b)).collect();
        let relied: BTreeMap<&Digest, &super::ReliedBlob> =
            meta.relied.iter().map(|b| (&b.digest, b)).collect();
        let mut referenced: BTreeSet<Digest> = meta
            .targets
            .iter()
            .map(|t| t.digest.clone())
            .chain(meta.artifacts.iter().map(|a| a.digest.clone()))
            .collect();
        let mut used_relied: BTreeSet<Digest> = BTreeSet::new();
        for b in meta
            .blobs
            .iter()
            .filter(|b| matches!(b.kind, BlobKind::Index | BlobKind::Manifest))
        {
            let bytes = self
                .json_blobs
                .get(&b.digest)
                .ok_or_else(|| BundleError::MissingBlob {
                    digest: b.digest.clone(),
                })?;
            let m = RawManifest::parse(bytes.clone(), Some(b.media_type.as_str())).map_err(
                |source| BundleError::Manifest {
                    digest: b.digest.clone(),
                    source,
                },
            )?;
            crate::provenance::check_artifact_manifest(meta, &b.digest, &m)?;
            for d in m.references() {
                let is_subject = match m.manifest() {
                    Manifest::Image(i) => i.subject.as_ref() == Some(d),
                    Manifest::Index(i) => i.subject.as_ref() == Some(d),
                };
                if let Some(c) = carried.get(&d.digest) {
                    if c.size != d.size || c.media_type != d.media_type {
                        return Err(BundleError::DescriptorMismatch {
                            manifest: b.digest.clone(),
                            blob: d.digest.clone(),
                            described: format!("{} bytes of {}", d.size, d.media_type),
                            listed: format!("{} bytes of {}", c.size, c.media_type),
                        });
                    }
                    referenced.insert(d.digest.clone());
                } else if let Some(r) = relied.get(&d.digest) {
                    if r.size != d.size {
                        return Err(BundleError::DescriptorMismatch {
                            manifest: b.digest.clone(),
                            blob: d.digest.clone(),
                            described: format!("{} bytes", d.size),
                            listed: format!("{} bytes", r.size),
                        });
                    }
                    used_relied.insert(d.digest.clone());
                } else if !is_subject {
                    return Err(BundleError::DanglingReference {
                        manifest: b.digest.clone(),
                        blob: d.digest.clone(),
                    });
                }
            }
            // Image configs: diff_ids must line up with the layers.
            if let Manifest::Image(img) = m.manifest() {
                if img.config.media_type.is_image_config() {
                    let cbytes = self.json_blobs.get(&img.config.digest).ok_or_else(|| {
                        BundleError::MissingBlob {
                            digest: img.config.digest.clone(),
                        }
                    })?;
                    let cfg = ImageConfig::parse(cbytes).map_err(|source| BundleError::Config {
                        digest: img.config.digest.clone(),
                        source,
                    })?;
                    if cfg.rootfs.diff_ids.len() != img.layers.len() {
                        return Err(BundleError::MetadataInconsistent {
                            digest: Some(img.config.digest.clone()),
                            problem: "config lists a different number of diff_ids than the manifest has layers",
                        });
                    }
                    for (layer, diff_id) in img.layers.iter().zip(&cfg.rootfs.diff_ids) {
                        if let Some(r) = relied.get(&layer.digest) {
                            if let Some(listed) = &r.diff_id {
                                if listed != diff_id {
                                    return Err(BundleError::DiffIdMismatch {
                                        layer: layer.digest.clone(),
                                        config: img.config.digest.clone(),
                                        listed: listed.clone(),
                                        found: diff_id.clone(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
        for b in &meta.blobs {
            if !referenced.contains(&b.digest) {
                return Err(BundleError::UnreferencedBlob {
                    digest: b.digest.clone(),
                });
            }
        }
        for r in &meta.relied {
            if !used_relied.contains(&r.digest) {
                return Err(BundleError::MetadataInconsistent {
                    digest: Some(r.digest.clone()),
                    problem: "relied-on blob that no manifest references",
                });
            }
        }
        for t in &meta.targets {
            for img in &t.images {
                let bytes =
                    self.json_blobs
                        .get(&img.manifest)
                        .ok_or_else(|| BundleError::MissingBlob {
                            digest: img.manifest.clone(),
                        })?;
                // Parsed above already; this cannot fail differently.
                let m = RawManifest::parse(bytes.clone(), None).map_err(|source| {
                    BundleError::Manifest {
                        digest: img.manifest.clone(),
                        source,
                    }
                })?;
                if m.as_image().map(|i| &i.config.digest) != Some(&img.config) {
                    return Err(BundleError::MetadataInconsistent {
                        digest: Some(img.manifest.clone()),
                        problem: "target image config differs from the manifest's config",
                    });
                }
            }
        }
        Ok(())
    }
}

/// `oci-layout` must be exactly [`OCI_LAYOUT`]; when it is not, say what differs.
fn check_oci_layout(buf: &[u8]) -> Result<(), BundleError> {
    if buf == OCI_LAYOUT {
        return Ok(());
    }
    let bad = |problem: String| BundleError::Layout {
        file: "oci-layout",
        problem,
    };
    let v: serde_json::Value =
        serde_json::from_slice(buf).map_err(|e| bad(format!("not JSON: {e}")))?;
    let Some(obj) = v.as_object() else {
        return Err(bad("not a JSON object".into()));
    };
    let extra: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| *k != "imageLayoutVersion")
        .collect();
    if !extra.is_empty() {
        return Err(bad(format!(
            "unexpected field(s) {} (a bundle's oci-layout holds imageLayoutVersion only)",
            crate::digest::truncate_for_error(&extra.join(", "))
        )));
    }
    match obj.get("imageLayoutVersion").and_then(|x| x.as_str()) {
        Some("1.0.0") => Err(bad(format!(
            "must be exactly {} (same content, other bytes)",
            String::from_utf8_lossy(OCI_LAYOUT)
        ))),
        Some(other) => Err(bad(format!(
            "imageLayoutVersion is {:?}, must be \"1.0.0\"",
            crate::digest::truncate_for_error(other)
        ))),
        None => Err(bad("imageLayoutVersion is missing or not a string".into())),
    }
}
