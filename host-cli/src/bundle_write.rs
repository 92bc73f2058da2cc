//! Writing a bundle file: crash-safe (a [`crate::durable::AtomicFile`] beside it: temporary
//! file, fsync, rename, fsync the directory), so an interrupted `diff` never leaves a
//! half-written bundle under the final name, and the temporary file of a killed one is
//! removed by the next bundle written into that directory.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ddiff_core::bundle::{BundleMeta, EncodeOptions, Encoder};

use crate::durable::{self, AtomicFile};
use crate::hash::fast_hasher;
use crate::volume_io::{SetWriter, VolumeArgs};

/// An in-progress bundle. Dropping it without [`BundleWriter::finish`] removes the temporary.
pub struct BundleWriter {
    encoder: Encoder,
    out: Out,
    buf: Vec<u8>,
    written: u64,
    total: u64,
}

impl BundleWriter {
    /// Starts writing `meta`'s bundle to `dest`. With `verify`, every blob is hashed again as
    /// it is written (use it when the source did not already verify the bytes).
    pub fn create(dest: &Path, meta: BundleMeta, verify: bool) -> Result<BundleWriter> {
        Self::create_in_volumes(dest, meta, verify, &VolumeArgs::default())
    }

    /// [`BundleWriter::create`], cut into volumes (`dest.001`, …, plus parity) when
    /// `volumes` asks for them and the bundle needs them (docs/bundle-format.md section 9).
    pub fn create_in_volumes(
        dest: &Path,
        meta: BundleMeta,
        verify: bool,
        volumes: &VolumeArgs,
    ) -> Result<BundleWriter> {
        let encoder = Encoder::new(
            meta,
            EncodeOptions {
                mtime: 0,
                verify,
                hasher: fast_hasher,
            },
        )
        .context("internal error: inconsistent bundle plan")?;
        let dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // Left by a diff that was killed here (no chance to clean up).
        durable::sweep(dir);
        let total = encoder.total_size();
        let out = match volumes.geometry(total)? {
            Some(g) => Out::Set(Box::new(SetWriter::create(dest, g)?)),
            None => {
                let file = AtomicFile::create(dest, "bundle").with_context(|| {
                    format!(
                        "cannot create a temporary file beside {} (is {} writable?)",
                        dest.display(),
                        dir.display()
                    )
                })?;
                Out::File(BufWriter::with_capacity(1 << 20, file))
            }
        };
        let mut w = BundleWriter {
            encoder,
            out,
            buf: Vec::with_capacity(1 << 20),
            written: 0,
            total,
        };
        w.encoder.start(&mut w.buf)?;
        w.flush_buf()?;
        Ok(w)
    }

    /// The final size of the bundle.
    pub fn total_size(&self) -> u64 {
        self.total
    }

    /// The metadata.
    pub fn meta(&self) -> &BundleMeta {
        self.encoder.meta()
    }

    /// Whether the bundle is being written as a volume set.
    pub fn is_set(&self) -> bool {
        matches!(self.out, Out::Set(_))
    }

    fn flush_buf(&mut self) -> Result<()> {
        match &mut self.out {
            Out::File(out) => out
                .write_all(&self.buf)
                .with_context(|| format!("cannot write {}", out.get_ref().temp_path().display()))?,
            Out::Set(set) => set.write(&self.buf)?,
        }
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Starts the next blob (in `meta.blobs` order); returns its index.
    pub fn begin_blob(&mut self) -> Result<usize> {
        let i = self.encoder.begin_blob(&mut self.buf)?;
        self.flush_buf()?;
        Ok(i)
    }

    /// Writes a chunk of the current blob.
    pub fn data(&mut self, chunk: &[u8]) -> Result<()> {
        self.encoder.blob_data(chunk, &mut self.buf)?;
        self.flush_buf()
    }

    /// Ends the current blob.
    pub fn end_blob(&mut self) -> Result<()> {
        self.encoder.end_blob(&mut self.buf)?;
        self.flush_buf()
    }

    /// Writes a whole small blob.
    pub fn blob(&mut self, bytes: &[u8]) -> Result<()> {
        self.begin_blob()?;
        self.data(bytes)?;
        self.end_blob()
    }

    /// Ends the archive, syncs it to disk and renames it into place. Returns its size.
    pub fn finish(self) -> Result<u64> {
        Ok(self.finish_files()?.0)
    }

    /// [`BundleWriter::finish`], also returning the files written (the volumes of a set).
    pub fn finish_files(mut self) -> Result<(u64, Vec<PathBuf>)> {
        self.encoder.finish(&mut self.buf)?;
        self.flush_buf()?;
        let out = match self.out {
            Out::File(out) => out,
            Out::Set(set) => {
                let files = set.finish()?;
                return Ok((self.written, files));
            }
        };
        let tmp = out.get_ref().temp_path().to_path_buf();
        let file = out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let dest = file.dest().to_path_buf();
        file.commit()
            .with_context(|| format!("cannot move the bundle into place at {}", dest.display()))?;
        Ok((self.written, vec![dest]))
    }
}

/// Where a bundle's bytes go: one file, or a volume set.
enum Out {
    File(BufWriter<AtomicFile>),
    Set(Box<SetWriter>),
}

/// The default bundle file name for a target, after the original tool's pattern
/// (`<repository with / as -->-<tag>`) with the `.ddiff` extension.
pub fn default_name(target: &str) -> String {
    let (repo, tag) = match target.split_once('@') {
        Some((r, d)) => (
            r,
            d.split(':')
                .nth(1)
                .map(|h| &h[..h.len().min(12)])
                .unwrap_or("digest"),
        ),
        None => match target.rsplit_once(':') {
            Some((r, t)) if !t.contains('/') => (r, t),
            _ => (target, "latest"),
        },
    };
    format!("{}-{tag}.ddiff", repo.replace('/', "--"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_follow_the_original_pattern() {
        assert_eq!(default_name("app:2"), "app-2.ddiff");
        assert_eq!(default_name("team/app:2"), "team--app-2.ddiff");
        assert_eq!(default_name("app"), "app-latest.ddiff");
        assert_eq!(
            default_name(&format!("app@sha256:{}", "ab".repeat(32))),
            "app-abababababab.ddiff"
        );
    }
}
