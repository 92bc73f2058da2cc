//! The bundle format, version 1 (normative text: `docs/bundle-format.md`).
//!
//! A bundle is one uncompressed tar file:
//!
//! ```text
//! ddiff.json            metadata: base, targets, every carried and relied-on blob
//! oci-layout            {"imageLayoutVersion":"1.0.0"}
//! index.json            one entry per target
//! blobs/sha256/<hex>    manifests and configs first, then layers, in ddiff.json order
//! <two zero blocks>
//! ```
//!
//! ## Decoding loop
//!
//! The host feeds chunks of any size; the decoder returns how much it consumed and at most
//! one event. **Invariant: call again with the unconsumed rest until the event is `None`,
//! which means the whole chunk was consumed; then read more input. At end of input call
//! [`Decoder::finish`], which reports truncation.**
//!
//! ```
//! use ddiff_core::bundle::{Decoder, Event};
//! # fn run(bundle: &[u8]) -> Result<(), ddiff_core::bundle::BundleError> {
//! let mut dec = Decoder::new();
//! for mut chunk in bundle.chunks(64 * 1024) {
//!     loop {
//!         let (used, event) = dec.decode(chunk)?;
//!         chunk = &chunk[used..];
//!         match event {
//!             Some(Event::Metadata(meta)) => println!("{} targets", meta.targets.len()),
//!             Some(Event::BlobData { data, .. }) => { let _ = data; /* upload / write */ }
//!             Some(_) => {}
//!             None => break, // need more input
//!         }
//!     }
//! }
//! let report = dec.finish()?; // errors if the input was truncated
//! # let _ = report; Ok(()) }
//! ```
//!
//! Every blob's digest and size is verified as it streams; manifests, configs and
//! `index.json` are cross-checked against `ddiff.json` before the first layer. Any
//! inconsistency is a typed [`BundleError`] naming what and where.

mod decoder;
mod encoder;
pub mod legacy;
pub mod meta;

pub use decoder::{DecodeOptions, Decoder, Event, Report};
pub use encoder::{EncodeOptions, Encoder};
pub use meta::{BaseInfo, BlobInfo, BlobKind, BundleMeta, ReliedBlob, TargetImage, TargetInfo};

use crate::tar::{EntryKind, TarError};
use crate::{ConfigError, Digest, ManifestError, VerifyError};

/// Everything that can be wrong with a bundle, or with how a host drives the codec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The tar structure is broken.
    #[error(transparent)]
    Tar(#[from] TarError),
    /// The input ended early.
    #[error("truncated bundle at offset {offset}: {context}")]
    Truncated { offset: u64, context: String },
    /// `ddiff.json` is not valid JSON for the schema.
    #[error("invalid ddiff.json: {message}")]
    MetadataJson { message: String },
    /// The first entry is not a ddiff bundle's metadata.
    #[error("not a ddiff bundle: ddiff.json has format {found:?}")]
    NotABundle { found: String },
    /// A newer (or unknown) format version.
    #[error("unsupported bundle format version {found} (this ddiff reads versions 1 and 2: use a newer ddiff)")]
    UnsupportedVersion { found: u32 },
    /// `ddiff.json` contradicts itself or the blobs.
    #[error("inconsistent metadata{}: {problem}", digest.as_ref().map(|d| format!(" at {d}")).unwrap_or_default())]
    MetadataInconsistent {
        digest: Option<Digest>,
        problem: &'static str,
    },
    /// An entry that is not where the format puts it.
    #[error("unexpected entry {path:?} at offset {offset}: expected {expected}")]
    UnexpectedEntry {
        offset: u64,
        path: String,
        expected: String,
    },
    /// The same entry twice.
    #[error("duplicate entry {path:?} at offset {offset}")]
    DuplicateEntry { offset: u64, path: String },
    /// An absolute path or one with `..`.
    #[error("unsafe path {path:?} at offset {offset}")]
    UnsafePath { offset: u64, path: String },
    /// A link, device, directory or other non-regular entry.
    #[error(
        "forbidden {kind:?} entry {path:?} at offset {offset}: bundles hold regular files only"
    )]
    ForbiddenEntry {
        offset: u64,
        path: String,
        kind: EntryKind,
    },
    /// A regular file written with a typeflag other than `0` (NUL, `7`): the format allows `0`
    /// only.
    #[error("entry {path:?} at offset {offset} has tar typeflag {typeflag:#04x}; bundle entries must have typeflag '0'")]
    Typeflag {
        offset: u64,
        path: String,
        typeflag: u8,
    },
    /// An entry larger than the format allows for its role.
    #[error("entry {path:?} at offset {offset} is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        offset: u64,
        path: String,
        size: u64,
        limit: u64,
    },
    /// The tar header's size differs from the metadata.
    #[error("blob {digest} at offset {offset}: tar entry is {found} bytes but ddiff.json says {expected}")]
    SizeMismatch {
        offset: u64,
        digest: Digest,
        expected: u64,
        found: u64,
    },
    /// A blob's content does not match its digest.
    #[error("corrupt blob {digest} (entry at offset {offset})")]
    CorruptBlob {
        offset: u64,
        digest: Digest,
        source: VerifyError,
    },
    /// A manifest blob does not parse.
    #[error("manifest {digest}")]
    Manifest {
        digest: Digest,
        source: ManifestError,
    },
    /// A config blob does not parse.
    #[error("config {digest}")]
    Config { digest: Digest, source: ConfigError },
    /// A manifest references a blob that is neither carried nor relied on.
    #[error("manifest {manifest} references {blob}, which the bundle neither carries nor lists as relied on")]
    DanglingReference { manifest: Digest, blob: Digest },
    /// A carried blob no manifest references.
    #[error("blob {digest} is carried but no manifest references it")]
    UnreferencedBlob { digest: Digest },
    /// A descriptor disagrees with the blob entry (size or media type).
    #[error("manifest {manifest} describes {blob} as {described}, but ddiff.json lists {listed}")]
    DescriptorMismatch {
        manifest: Digest,
        blob: Digest,
        described: String,
        listed: String,
    },
    /// A relied-on layer's diff_id disagrees with the config.
    #[error("layer {layer}: ddiff.json says diff_id {listed}, config {config} says {found}")]
    DiffIdMismatch {
        layer: Digest,
        config: Digest,
        listed: Digest,
        found: Digest,
    },
    /// A target's reference is not a valid image reference (loaders could not tag it).
    #[error("target reference {reference:?} is not a valid image reference")]
    InvalidTargetReference {
        reference: String,
        source: crate::ReferenceError,
    },
    /// A digest-pinned target reference names another manifest than the target's.
    #[error("target reference {reference:?} pins {pinned}, but the target's manifest is {digest}")]
    PinnedDigestMismatch {
        reference: String,
        pinned: Digest,
        digest: Digest,
    },
    /// The manifests, indexes and configs together exceed what a reader buffers.
    #[error("the bundle's manifests, indexes and configs total {total} bytes, over the {limit}-byte limit readers buffer")]
    JsonBudget { total: u64, limit: u64 },
    /// `ddiff.json` is not the document `index.json` records the digest of.
    #[error("ddiff.json was altered: its digest is {found}, but index.json records {recorded}")]
    MetadataAltered { recorded: Digest, found: Digest },
    /// `oci-layout` or `index.json` is wrong.
    #[error("invalid {file}: {problem}")]
    Layout { file: &'static str, problem: String },
    /// A listed blob never appeared.
    #[error("blob {digest} listed in ddiff.json is missing from the archive")]
    MissingBlob { digest: Digest },
    /// The host drove the codec wrongly (a bug in the host, never bad input).
    #[error("codec misuse: {0}")]
    Misuse(&'static str),
}

/// Checks that an archive path is relative and free of `..`, empty or `.` components and
/// backslashes.
pub fn check_path(path: &str, offset: u64) -> Result<(), BundleError> {
    let bad = path.is_empty()
        || path.starts_with('/')
        || path.contains('\\')
        || path.contains('\0')
        || path
            .split('/')
            .any(|c| c == ".." || c == "." || c.is_empty());
    if bad {
        return Err(BundleError::UnsafePath {
            offset,
            path: crate::digest::truncate_for_error(path),
        });
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests;
