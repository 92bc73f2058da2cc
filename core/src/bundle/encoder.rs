//! The push-style bundle encoder: the host feeds blob bytes, the encoder appends archive bytes
//! to a caller-owned buffer, which the host writes out.

use crate::digest::{default_hasher, HasherFactory, Verifier};
use crate::tar;

use super::meta::{BundleMeta, OCI_LAYOUT};
use super::BundleError;

/// Encoder settings.
#[derive(Clone, Copy)]
pub struct EncodeOptions {
    /// Modification time written into every tar header (the core has no clock; use 0 or a
    /// fixed build time for reproducible bundles).
    pub mtime: u64,
    /// Hash every blob while encoding and refuse one that does not match. Hosts that already
    /// verified the bytes on the way in (a registry download) may turn this off.
    pub verify: bool,
    /// The hasher used when `verify` is on.
    pub hasher: HasherFactory,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            mtime: 0,
            verify: true,
            hasher: default_hasher,
        }
    }
}

enum State {
    Start,
    Between {
        next: usize,
    },
    InBlob {
        index: usize,
        written: u64,
        verifier: Option<Verifier>,
    },
    Finished,
}

/// Writes a bundle. Calls, in order: [`Encoder::start`], then for every blob of
/// `meta.blobs` in order [`Encoder::begin_blob`], [`Encoder::blob_data`]…, [`Encoder::end_blob`],
/// and finally [`Encoder::finish`]. Any other order is a [`BundleError::Misuse`].
///
/// ```
/// # use ddiff_core::bundle::*;
/// # fn enc(meta: BundleMeta, blobs: Vec<Vec<u8>>) -> Result<Vec<u8>, BundleError> {
/// let mut out = Vec::new();
/// let mut e = Encoder::new(meta, EncodeOptions::default())?;
/// e.start(&mut out)?;
/// for blob in &blobs {
///     e.begin_blob(&mut out)?;
///     e.blob_data(blob, &mut out)?;   // any number of chunks
///     e.end_blob(&mut out)?;
/// }
/// e.finish(&mut out)?;
/// # Ok(out) }
/// ```
pub struct Encoder {
    meta: BundleMeta,
    opts: EncodeOptions,
    state: State,
}

impl Encoder {
    /// Validates the metadata and prepares to write.
    pub fn new(meta: BundleMeta, opts: EncodeOptions) -> Result<Encoder, BundleError> {
        meta.validate()?;
        Ok(Encoder {
            meta,
            opts,
            state: State::Start,
        })
    }

    /// The metadata being written.
    pub fn meta(&self) -> &BundleMeta {
        &self.meta
    }

    /// Writes `ddiff.json`, `oci-layout` and `index.json`.
    pub fn start(&mut self, out: &mut Vec<u8>) -> Result<(), BundleError> {
        if !matches!(self.state, State::Start) {
            return Err(BundleError::Misuse("start called twice"));
        }
        let m = self.opts.mtime;
        let meta_bytes = self.meta.to_bytes();
        tar::write_file(out, "ddiff.json", &meta_bytes, 0o644, m);
        tar::write_file(out, "oci-layout", OCI_LAYOUT, 0o644, m);
        let index = self.meta.oci_index_json(&meta_bytes);
        tar::write_file(out, "index.json", &index, 0o644, m);
        self.state = State::Between { next: 0 };
        Ok(())
    }

    /// Starts the next blob in `meta.blobs` order; returns its index.
    pub fn begin_blob(&mut self, out: &mut Vec<u8>) -> Result<usize, BundleError> {
        let State::Between { next } = self.state else {
            return Err(BundleError::Misuse(
                "begin_blob outside of the blob sequence",
            ));
        };
        let Some(b) = self.meta.blobs.get(next) else {
            return Err(BundleError::Misuse("begin_blob after the last listed blob"));
        };
        // A patched layer's entry is the patch, named by its own digest.
        let (digest, size) = (b.entry_digest(), b.entry_size());
        tar::write_header(out, &digest.layout_path(), size, 0o644, self.opts.mtime);
        let verifier = self
            .opts
            .verify
            .then(|| Verifier::with_factory(digest.clone(), size, self.opts.hasher));
        self.state = State::InBlob {
            index: next,
            written: 0,
            verifier,
        };
        Ok(next)
    }

    /// Appends a chunk of the current blob.
    pub fn blob_data(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), BundleError> {
        let State::InBlob {
            index,
            written,
            verifier,
        } = &mut self.state
        else {
            return Err(BundleError::Misuse("blob_data outside of a blob"));
        };
        let b = &self.meta.blobs[*index];
        let found = *written + data.len() as u64;
        if found > b.entry_size() {
            return Err(BundleError::SizeMismatch {
                offset: 0,
                digest: b.entry_digest().clone(),
                expected: b.entry_size(),
                found,
            });
        }
        if let Some(v) = verifier {
            v.update(data).map_err(|source| BundleError::CorruptBlob {
                offset: 0,
                digest: b.entry_digest().clone(),
                source,
            })?;
        }
        *written = found;
        out.extend_from_slice(data);
        Ok(())
    }

    /// Ends the current blob: checks its size (and digest) and pads.
    pub fn end_blob(&mut self, out: &mut Vec<u8>) -> Result<(), BundleError> {
        let state = std::mem::replace(&mut self.state, State::Finished);
        let State::InBlob {
            index,
            written,
            verifier,
        } = state
        else {
            return Err(BundleError::Misuse("end_blob outside of a blob"));
        };
        let b = &self.meta.blobs[index];
        if written != b.entry_size() {
            return Err(BundleError::SizeMismatch {
                offset: 0,
                digest: b.entry_digest().clone(),
                expected: b.entry_size(),
                found: written,
            });
        }
        if let Some(v) = verifier {
            v.finish().map_err(|source| BundleError::CorruptBlob {
                offset: 0,
                digest: b.entry_digest().clone(),
                source,
            })?;
        }
        out.extend(std::iter::repeat_n(0u8, tar::padding(b.entry_size())));
        self.state = State::Between { next: index + 1 };
        Ok(())
    }

    /// Writes the end-of-archive marker; errors if blobs are missing.
    pub fn finish(&mut self, out: &mut Vec<u8>) -> Result<(), BundleError> {
        match self.state {
            State::Between { next } if next == self.meta.blobs.len() => {
                tar::write_end(out);
                self.state = State::Finished;
                Ok(())
            }
            State::Between { next } => Err(BundleError::MissingBlob {
                digest: self.meta.blobs[next].digest.clone(),
            }),
            _ => Err(BundleError::Misuse(
                "finish in the middle of a blob or twice",
            )),
        }
    }

    /// The exact size of the finished bundle, known before writing it (for progress and
    /// free-space checks).
    pub fn total_size(&self) -> u64 {
        let m = &self.meta;
        let small =
            |path: &str, len: u64| tar::header_len(path, len) + len + tar::padding(len) as u64;
        let meta_bytes = m.to_bytes();
        let mut n = small("ddiff.json", meta_bytes.len() as u64)
            + small("oci-layout", OCI_LAYOUT.len() as u64)
            + small("index.json", m.oci_index_json(&meta_bytes).len() as u64);
        for b in &m.blobs {
            n += small(&b.entry_digest().layout_path(), b.entry_size());
        }
        n + 2 * tar::BLOCK as u64
    }
}
