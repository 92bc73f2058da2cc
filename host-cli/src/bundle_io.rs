//! Reading bundle files from disk: detection of the format (a ddiff v1 bundle, or an original
//! DockerDiff `.tar.gz`), streaming them through the core decoders, and reading blob ranges
//! back for loading. All format logic is in `ddiff_core::bundle`; this is the file loop.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ddiff_core::bundle::legacy::{looks_like_legacy, LegacyDecoder};
use ddiff_core::bundle::{BundleError, DecodeOptions, Decoder, Event, Report};

use crate::hash::fast_hasher;

/// Read size for streaming files through the decoder.
const CHUNK: usize = 1 << 20;

/// The two bundle formats ddiff reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ddiff bundle format version 1 (an uncompressed tar starting with `ddiff.json`).
    V1,
    /// A bundle written by the original DockerDiff (gzip of a tar of `.ddiff-image/`).
    Legacy,
}

/// A verified bundle on disk.
pub struct VerifiedBundle {
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// What the decoder reported.
    pub report: Report,
    /// Size of the file.
    pub file_size: u64,
}

/// Sniffs the format from the first bytes.
pub fn detect(path: &Path) -> Result<Format> {
    let mut f =
        File::open(path).with_context(|| format!("cannot open bundle {}", path.display()))?;
    let mut head = [0u8; 2];
    let n = f
        .read(&mut head)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if n == 2 && head == [0x1f, 0x8b] {
        return Ok(Format::Legacy);
    }
    Ok(Format::V1)
}

/// Streams a bundle through the core decoder, verifying everything.
/// `progress(done, total)` is called as bytes are read (`total` is the file size).
pub fn verify_file(path: &Path, mut progress: impl FnMut(u64, u64)) -> Result<VerifiedBundle> {
    let format = detect(path)?;
    let file =
        File::open(path).with_context(|| format!("cannot open bundle {}", path.display()))?;
    let file_size = file.metadata()?.len();
    let where_ = path.display().to_string();
    let report = match format {
        Format::V1 => {
            let mut dec = Decoder::with_options(DecodeOptions { hasher: fast_hasher });
            run(file, file_size, &mut progress, |chunk| drive(chunk, |c| dec.decode(c)))
                .and_then(|r| finish(r, dec.finish()))
        }
        Format::Legacy => {
            let gz = flate2::read::GzDecoder::new(BufReader::with_capacity(CHUNK, file));
            let mut dec = LegacyDecoder::with_hasher(fast_hasher);
            let mut peeked = false;
            run(
                gz,
                file_size,
                &mut progress,
                |chunk| {
                    if !peeked {
                        peeked = true;
                        if !looks_like_legacy(chunk) {
                            return Err(BundleError::Layout {
                                file: "bundle",
                                problem: "a gzip file that is not an original DockerDiff bundle (no .ddiff-image/)".into(),
                            });
                        }
                    }
                    drive(chunk, |c| dec.decode(c))
                },
            )
            .and_then(|r| finish(r, dec.finish()))
        }
    }
    .with_context(|| format!("{where_}: bundle is not intact"))?;
    Ok(VerifiedBundle {
        path: path.to_path_buf(),
        format,
        report,
        file_size,
    })
}

/// Feeds one chunk fully; returns the report if the archive ended in it.
fn drive<'a>(
    mut chunk: &'a [u8],
    mut decode: impl FnMut(&'a [u8]) -> Result<(usize, Option<Event<'a>>), BundleError>,
) -> Result<Option<Report>, BundleError> {
    let mut report = None;
    loop {
        let (n, ev) = decode(chunk)?;
        chunk = &chunk[n..];
        match ev {
            Some(Event::End(r)) => report = Some(*r),
            Some(_) => {}
            None => return Ok(report),
        }
    }
}

fn run<R: Read>(
    mut input: R,
    total: u64,
    progress: &mut impl FnMut(u64, u64),
    mut feed: impl FnMut(&[u8]) -> Result<Option<Report>, BundleError>,
) -> Result<Option<Report>> {
    let mut buf = vec![0u8; CHUNK];
    let mut report = None;
    let mut done = 0u64;
    loop {
        let n = input.read(&mut buf).context("read error")?;
        if n == 0 {
            break;
        }
        done += n as u64;
        if let Some(r) = feed(&buf[..n])? {
            report = Some(r);
        }
        progress(done.min(total), total);
    }
    Ok(report)
}

fn finish(report: Option<Report>, end: Result<(), BundleError>) -> Result<Report> {
    end?;
    match report {
        Some(r) => Ok(r),
        None => bail!("the archive ended without its end marker"),
    }
}

/// Opens a reader over one blob of a verified bundle. For v1 bundles this seeks in the file;
/// for original bundles it inflates from the start and skips (they are small in practice:
/// the original tool wrote only the new layers).
pub fn open_blob(bundle: &VerifiedBundle, index: usize) -> Result<Box<dyn Read + Send>> {
    let offset = bundle.report.offsets[index];
    let size = bundle.report.meta.blobs[index].size;
    let file = File::open(&bundle.path)
        .with_context(|| format!("cannot reopen {}", bundle.path.display()))?;
    match bundle.format {
        Format::V1 => {
            let mut f = BufReader::with_capacity(CHUNK, file);
            f.seek(SeekFrom::Start(offset))?;
            Ok(Box::new(f.take(size)))
        }
        Format::Legacy => {
            let mut gz = flate2::read::GzDecoder::new(BufReader::new(file));
            std::io::copy(&mut (&mut gz).take(offset), &mut std::io::sink())?;
            Ok(Box::new(gz.take(size)))
        }
    }
}

/// What [`stream_file`] read.
pub struct Streamed {
    /// Bytes handed to the consumer.
    pub bytes: u64,
    /// SHA-256 of the whole file, when asked for and the whole file was read.
    pub file_sha256: Option<ddiff_core::Digest>,
}

/// Buffers in flight between the reader thread and the consumer.
const PIPELINE_DEPTH: usize = 4;

/// Streams a file to `consume` with reading (and, with `hash_file`, a SHA-256 of the whole
/// file, as `sha256sum` computes it) on a second thread, so that IO and the consumer's own
/// hashing run on two cores. `consume` returns `false` to stop early (e.g. the bundle is
/// already known to be damaged); the whole-file hash is then `None`.
pub fn stream_file(
    path: &Path,
    hash_file: bool,
    mut consume: impl FnMut(&[u8]) -> bool,
) -> Result<Streamed> {
    use std::sync::mpsc::{channel, sync_channel};
    let mut file =
        File::open(path).with_context(|| format!("cannot open bundle {}", path.display()))?;
    let (full_tx, full_rx) = sync_channel::<(Vec<u8>, usize)>(PIPELINE_DEPTH);
    let (empty_tx, empty_rx) = channel::<Vec<u8>>();
    for _ in 0..PIPELINE_DEPTH {
        // The receiver is alive: it is owned by this function.
        empty_tx.send(vec![0u8; CHUNK]).expect("pool channel open");
    }
    std::thread::scope(|s| {
        let reader = s.spawn(move || -> Result<Option<ddiff_core::Digest>> {
            let mut ctx = hash_file.then(|| ring::digest::Context::new(&ring::digest::SHA256));
            loop {
                // `empty_rx` fails once the consumer stopped and dropped its side.
                let Ok(mut buf) = empty_rx.recv() else {
                    return Ok(None);
                };
                let n = read_full(&mut file, &mut buf).context("read error")?;
                if n == 0 {
                    break;
                }
                if let Some(c) = &mut ctx {
                    c.update(&buf[..n]);
                }
                if full_tx.send((buf, n)).is_err() {
                    return Ok(None);
                }
                if n < CHUNK {
                    break;
                }
            }
            // Signal the end with an empty buffer (the consumer may already be gone).
            let _ = full_tx.send((Vec::new(), 0));
            Ok(ctx.map(|c| {
                // SHA-256 output is always 32 bytes.
                ddiff_core::Digest::from_raw(ddiff_core::Algorithm::Sha256, c.finish().as_ref())
                    .expect("sha256 output")
            }))
        });
        let mut bytes = 0u64;
        let mut complete = false;
        while let Ok((buf, n)) = full_rx.recv() {
            if n == 0 {
                complete = true;
                break;
            }
            bytes += n as u64;
            if !consume(&buf[..n]) {
                break;
            }
            let _ = empty_tx.send(buf);
        }
        drop(full_rx);
        drop(empty_tx);
        // A panic in the reader is a bug; propagate it.
        let hashed = reader.join().expect("reader thread panicked")?;
        Ok(Streamed {
            bytes,
            file_sha256: if complete { hashed } else { None },
        })
    })
}

/// Reads until `buf` is full or the file ends.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
