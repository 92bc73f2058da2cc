//! Reading bundle files from disk: detection of the format (a ddiff v1 bundle, or an original
//! DockerDiff `.tar.gz`), streaming them through the core decoders, and reading blob ranges
//! back for loading. All format logic is in `ddiff_core::bundle`; this is the file loop.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use ddiff_core::bundle::legacy::{looks_like_legacy, LegacyDecoder};
use ddiff_core::bundle::{BundleError, DecodeOptions, Decoder, Event, Report};

use crate::hash::fast_hasher;
use crate::volume_io::VolumeSet;

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
    /// The exact bytes of `ddiff.json` (empty for the original tool's bundles), which a
    /// bundle signature signs.
    pub meta_bytes: Vec<u8>,
    /// Inflaters of an original `.tar.gz` bundle parked between blob reads.
    inflaters: Arc<Inflaters>,
    /// Layers that travel as patches, rebuilt (`crate::delta::rebuild_patches`) into files:
    /// by blob index. [`open_blob`] reads these instead of the patch entries.
    pub rebuilt: std::collections::BTreeMap<usize, PathBuf>,
    /// The directory of the rebuilt files, removed with the bundle.
    pub rebuilt_dir: Option<tempfile::TempDir>,
    /// The volume set the bundle is read from (docs/bundle-format.md section 9), if any.
    pub set: Option<Arc<VolumeSet>>,
    /// What reading the set found (per-volume states), if it is one.
    pub audit: Option<crate::volume_io::Audit>,
}

impl VerifiedBundle {
    /// Bytes inflated so far to read blobs back (original `.tar.gz` bundles; 0 for v1).
    pub fn inflated_bytes(&self) -> u64 {
        self.inflaters.inflated.load(Ordering::Relaxed)
    }
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
    let mut meta_bytes = Vec::new();
    let report = match format {
        Format::V1 => {
            let mut dec = Decoder::with_options(DecodeOptions { hasher: fast_hasher });
            let r = run(file, file_size, &mut progress, |chunk| drive(chunk, |c| dec.decode(c)))
                .and_then(|r| finish(r, dec.finish()));
            meta_bytes = dec.meta_bytes().unwrap_or_default().to_vec();
            r
        }
        Format::Legacy => {
            let mut gz = flate2::bufread::GzDecoder::new(BufReader::with_capacity(CHUNK, file));
            let mut dec = LegacyDecoder::with_hasher(fast_hasher);
            let mut peeked = false;
            run(
                &mut gz,
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
            .and_then(|r| {
                // The original tool writes one gzip member; appended data or a second member
                // would otherwise go unread and unchecked.
                let mut rest = gz.into_inner();
                let buffered = rest.buffer().len() as u64;
                let at = rest.get_mut().stream_position()? - buffered;
                let mut one = [0u8; 1];
                if rest.read(&mut one)? != 0 {
                    bail!(
                        "unexpected data after the end of the gzip stream at byte {at} of {file_size} (an original DockerDiff bundle is one gzip member)"
                    );
                }
                Ok(r)
            })
        }
    }
    .with_context(|| format!("{where_}: bundle is not intact"))?;
    Ok(VerifiedBundle {
        path: path.to_path_buf(),
        format,
        report,
        file_size,
        meta_bytes,
        inflaters: Arc::default(),
        rebuilt: Default::default(),
        rebuilt_dir: None,
        set: None,
        audit: None,
    })
}

/// Verifies the bundle named by `paths`: one plain file, or the volumes of a set (any order,
/// several directories, a directory, or one volume with its siblings beside it), read
/// through once and rebuilt from parity where a volume is missing or damaged.
pub fn verify_source(
    paths: &[PathBuf],
    mut progress: impl FnMut(u64, u64),
) -> Result<VerifiedBundle> {
    if !crate::volume_io::names_a_set(paths) {
        return verify_file(&paths[0], progress);
    }
    let set = Arc::new(VolumeSet::open(paths)?);
    let total = set.bundle_size();
    let where_ = format!("{} (volume set {})", set.name, set.set);
    let mut dec = Decoder::with_options(DecodeOptions {
        hasher: fast_hasher,
    });
    let mut report = None;
    let mut failed = None;
    let mut done = 0u64;
    let audit = set.audit_pipelined(crate::volume_io::AuditOptions::default(), |chunk| {
        done += chunk.len() as u64;
        progress(done.min(total), total);
        match drive(chunk, |c| dec.decode(c)) {
            Ok(r) => {
                report = report.take().or(r);
                true
            }
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    let result = match (failed, &audit.rebuild_error) {
        (Some(e), _) => Err(anyhow::Error::new(e)),
        (None, Some(why)) => Err(anyhow::anyhow!("{why}")),
        (None, None) => finish(report, dec.finish()),
    };
    let report = result.with_context(|| format!("{where_}: bundle is not intact"))?;
    let meta_bytes = dec.meta_bytes().unwrap_or_default().to_vec();
    Ok(VerifiedBundle {
        meta_bytes,
        path: set.dir.join(&set.name),
        format: Format::V1,
        report,
        file_size: total,
        inflaters: Arc::default(),
        set: Some(set),
        audit: Some(audit),
        rebuilt: Default::default(),
        rebuilt_dir: None,
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

/// Opens a reader over one blob of a verified bundle. For v1 bundles this seeks in the file.
/// An original `.tar.gz` bundle cannot seek: its blobs are read from inflaters that are
/// parked after each read and picked up again by the next read at or after their position,
/// so reading the blobs in offset order (as `load` does) inflates the file once, however
/// many blobs it has, instead of once per blob.
pub fn open_blob(bundle: &VerifiedBundle, index: usize) -> Result<Box<dyn Read + Send>> {
    open_blob_range(bundle, index, 0, bundle.report.meta.blobs[index].size)
}

/// Opens `len` bytes of blob `index` from offset `from` within the blob. A layer that
/// travels as a patch is read from its rebuilt file; reading one that was not rebuilt is an
/// error, so a patch can never be sent where its layer belongs.
pub fn open_blob_range(
    bundle: &VerifiedBundle,
    index: usize,
    from: u64,
    len: u64,
) -> Result<Box<dyn Read + Send>> {
    let b = &bundle.report.meta.blobs[index];
    if b.patch.is_some() {
        let Some(path) = bundle.rebuilt.get(&index) else {
            bail!(
                "internal error: layer {} travels as a patch and was not rebuilt",
                b.digest
            );
        };
        let mut f = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        f.seek(SeekFrom::Start(from))?;
        return Ok(Box::new(f.take(len)));
    }
    open_entry_range(bundle, index, from, len)
}

/// Opens the bundle entry of blob `index` as it is stored: for a layer that travels as a
/// patch, the patch.
pub fn open_entry(bundle: &VerifiedBundle, index: usize) -> Result<Box<dyn Read + Send>> {
    open_entry_range(
        bundle,
        index,
        0,
        bundle.report.meta.blobs[index].entry_size(),
    )
}

fn open_entry_range(
    bundle: &VerifiedBundle,
    index: usize,
    from: u64,
    len: u64,
) -> Result<Box<dyn Read + Send>> {
    let offset = bundle.report.offsets[index] + from;
    if let Some(set) = &bundle.set {
        return Ok(Box::new(set.reader_at(offset, len)));
    }
    match bundle.format {
        Format::V1 => {
            // No read buffer: the callers read in pieces of up to 1 MiB themselves, and a
            // buffer here would read 1 MiB of the file for a 4-byte blob.
            let mut f = File::open(&bundle.path)
                .with_context(|| format!("cannot reopen {}", bundle.path.display()))?;
            f.seek(SeekFrom::Start(offset))?;
            Ok(Box::new(f.take(len)))
        }
        Format::Legacy => {
            let pool = bundle.inflaters.clone();
            let mut inf = match pool.take_before(offset) {
                Some(i) => i,
                None => Inflater {
                    gz: flate2::read::GzDecoder::new(BufReader::new(
                        File::open(&bundle.path)
                            .with_context(|| format!("cannot reopen {}", bundle.path.display()))?,
                    )),
                    pos: 0,
                },
            };
            let skip = offset - inf.pos;
            let skipped = std::io::copy(&mut (&mut inf.gz).take(skip), &mut std::io::sink())?;
            inf.pos += skipped;
            pool.inflated.fetch_add(skipped, Ordering::Relaxed);
            if skipped != skip {
                bail!("{}: changed since it was verified", bundle.path.display());
            }
            Ok(Box::new(PooledBlob {
                inf: Some(inf),
                left: len,
                pool,
            }))
        }
    }
}

/// An inflating reader over an original bundle, and its position in the inflated stream.
struct Inflater {
    gz: flate2::read::GzDecoder<BufReader<File>>,
    pos: u64,
}

/// Parked inflaters (at most [`MAX_PARKED`]) and the bytes inflated in all.
#[derive(Default)]
struct Inflaters {
    parked: Mutex<Vec<Inflater>>,
    inflated: AtomicU64,
}

/// More than the parallel uploads of a load (at most 32), so none has to start over.
const MAX_PARKED: usize = 40;

impl Inflaters {
    /// The parked inflater closest before `offset`.
    fn take_before(&self, offset: u64) -> Option<Inflater> {
        let mut p = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        let best = p
            .iter()
            .enumerate()
            .filter(|(_, i)| i.pos <= offset)
            .max_by_key(|(_, i)| i.pos)
            .map(|(k, _)| k)?;
        Some(p.swap_remove(best))
    }

    fn park(&self, inf: Inflater) {
        let mut p = self.parked.lock().unwrap_or_else(|e| e.into_inner());
        p.push(inf);
        if p.len() > MAX_PARKED {
            // Drop the one furthest behind.
            if let Some(k) = p
                .iter()
                .enumerate()
                .min_by_key(|(_, i)| i.pos)
                .map(|(k, _)| k)
            {
                p.swap_remove(k);
            }
        }
    }
}

/// A blob read from a pooled inflater, which goes back to the pool when the reader is
/// dropped (where it stopped, so a partly read blob leaves a usable inflater too).
struct PooledBlob {
    inf: Option<Inflater>,
    left: u64,
    pool: Arc<Inflaters>,
}

impl Read for PooledBlob {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let Some(inf) = self.inf.as_mut() else {
            return Ok(0);
        };
        let want = (buf.len() as u64).min(self.left) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = inf.gz.read(&mut buf[..want])?;
        inf.pos += n as u64;
        self.left -= n as u64;
        self.pool.inflated.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Drop for PooledBlob {
    fn drop(&mut self) {
        if let Some(inf) = self.inf.take() {
            self.pool.park(inf);
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
/// hashing run on two cores; on one thread when the process may use one CPU only.
/// `consume` returns `false` to stop early (e.g. the bundle is already known to be damaged);
/// the whole-file hash is then `None`.
pub fn stream_file(
    path: &Path,
    hash_file: bool,
    consume: impl FnMut(&[u8]) -> bool,
) -> Result<Streamed> {
    let file =
        File::open(path).with_context(|| format!("cannot open bundle {}", path.display()))?;
    // One CPU (`taskset -c 0`, a one-CPU container): one thread, small buffers hashed while
    // they are in L1 (issue 17: 1.03x `openssl dgst -sha256` on one core, was 0.75x).
    if std::thread::available_parallelism().map_or(1, |n| n.get()) == 1 {
        stream_file_one_thread(file, hash_file, consume)
    } else {
        stream_file_two_threads(file, hash_file, consume)
    }
}

/// [`stream_file`] with reading (and the whole-file hash) on a second thread.
fn stream_file_two_threads(
    mut file: File,
    hash_file: bool,
    mut consume: impl FnMut(&[u8]) -> bool,
) -> Result<Streamed> {
    use std::sync::mpsc::{channel, sync_channel};
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
            Ok(ctx.map(crate::hash::sha256_of))
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

/// [`stream_file`] on one thread, for a process that may use one CPU only (`taskset -c 0`, a
/// container limited to one): a second thread would only take turns with the first. Each
/// 16 KiB read is hashed (and decoded) while it is still in L1: with 1 MiB buffers the
/// kernel's copy into them and the hashing after it each went to memory, and verify ran at
/// 0.75x of `openssl dgst -sha256` on one core.
fn stream_file_one_thread(
    mut file: File,
    hash_file: bool,
    mut consume: impl FnMut(&[u8]) -> bool,
) -> Result<Streamed> {
    let mut ctx = hash_file.then(|| ring::digest::Context::new(&ring::digest::SHA256));
    let mut buf = vec![0u8; STREAM_ONE_THREAD_CHUNK];
    let mut bytes = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf).context("read error")?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        if let Some(c) = &mut ctx {
            c.update(&buf[..n]);
        }
        if !consume(&buf[..n]) {
            return Ok(Streamed {
                bytes,
                file_sha256: None,
            });
        }
    }
    Ok(Streamed {
        bytes,
        file_sha256: ctx.map(crate::hash::sha256_of),
    })
}

/// The one-thread path's buffer: read, hashed and decoded while it is still in L1.
const STREAM_ONE_THREAD_CHUNK: usize = 16 << 10;

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

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ways of streaming a file give the consumer the same bytes in order, the same
    /// whole-file SHA-256, and no hash when the consumer stops early, at every size around
    /// their buffer sizes.
    #[test]
    fn one_thread_and_two_threads_stream_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let sizes = [
            0,
            1,
            STREAM_ONE_THREAD_CHUNK,
            STREAM_ONE_THREAD_CHUNK + 1,
            CHUNK - 1,
            CHUNK,
            3 * CHUNK + 7,
        ];
        for size in sizes {
            let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &data).unwrap();
            let mut got = Vec::new();
            let one = stream_file_one_thread(File::open(&path).unwrap(), true, |c| {
                got.extend_from_slice(c);
                true
            })
            .unwrap();
            assert_eq!(got, data, "one thread, {size} bytes");
            let mut got2 = Vec::new();
            let two = stream_file_two_threads(File::open(&path).unwrap(), true, |c| {
                got2.extend_from_slice(c);
                true
            })
            .unwrap();
            assert_eq!(got2, data, "two threads, {size} bytes");
            let want = ddiff_core::Digest::sha256(&data);
            assert_eq!(one.file_sha256.as_ref(), Some(&want), "{size}");
            assert_eq!(two.file_sha256.as_ref(), Some(&want), "{size}");
            assert_eq!((one.bytes, two.bytes), (size as u64, size as u64));
            if size > 0 {
                let stop =
                    stream_file_one_thread(File::open(&path).unwrap(), true, |_| false).unwrap();
                assert_eq!(stop.file_sha256, None, "stopped early: no whole-file hash");
                let stop2 =
                    stream_file_two_threads(File::open(&path).unwrap(), true, |_| false).unwrap();
                assert_eq!(stop2.file_sha256, None);
            }
        }
    }

    fn gzip_file(dir: &Path, inner: &[u8]) -> PathBuf {
        let path = dir.join("legacy.tar.gz");
        let mut gz = flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        std::io::Write::write_all(&mut gz, inner).unwrap();
        gz.finish().unwrap();
        path
    }

    /// Issue 15: reading back each blob of an original `.tar.gz` bundle inflated the file
    /// from its start, so N blobs cost N inflations of the file. Read in bundle order
    /// (as load does), the file is now inflated once.
    #[test]
    fn blobs_of_an_original_bundle_are_read_back_in_one_inflating_pass() {
        let dir = tempfile::tempdir().unwrap();
        let inner = ddiff_core::synth_bundle::legacy_many(400, 1000);
        let path = gzip_file(dir.path(), &inner);
        let vb = verify_file(&path, |_, _| {}).unwrap();
        assert_eq!(vb.format, Format::Legacy);
        let mut order: Vec<usize> = (0..vb.report.meta.blobs.len()).collect();
        order.sort_by_key(|&i| vb.report.offsets[i]);
        for &i in &order {
            let b = &vb.report.meta.blobs[i];
            let mut r = open_blob(&vb, i).unwrap();
            crate::hash::copy_verified(&mut r, &b.digest, b.size, &mut |_| Ok(())).unwrap();
        }
        let inflated = vb.inflated_bytes();
        assert!(
            inflated <= vb.report.archive_bytes,
            "inflated {inflated} bytes to read back an archive of {}",
            vb.report.archive_bytes
        );
        // Out of order (a resumed upload) still reads the right bytes.
        for &i in order.iter().rev().take(3) {
            let b = &vb.report.meta.blobs[i];
            let mut r = open_blob_range(&vb, i, 1, b.size - 1).unwrap();
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            assert_eq!(got.len() as u64, b.size - 1);
        }
    }

    /// Issue 15 item 8: a second gzip member or junk after an original bundle was ignored
    /// (v1 bundles refuse trailing data). Now refused, naming where the gzip stream ended.
    #[test]
    fn data_after_an_original_bundles_gzip_stream_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let inner = ddiff_core::synth_bundle::legacy_many(3, 100);
        let path = gzip_file(dir.path(), &inner);
        assert!(verify_file(&path, |_, _| {}).is_ok());
        let clean = std::fs::read(&path).unwrap();
        let mut second = Vec::new();
        let mut gz = flate2::write::GzEncoder::new(&mut second, flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, b"more").unwrap();
        gz.finish().unwrap();
        for (what, extra) in [("junk", b"x".to_vec()), ("a second member", second)] {
            let mut bytes = clean.clone();
            bytes.extend_from_slice(&extra);
            std::fs::write(&path, &bytes).unwrap();
            let Err(e) = verify_file(&path, |_, _| {}) else {
                panic!("{what}: accepted");
            };
            let err = format!("{e:#}");
            assert!(
                err.contains(&format!(
                    "after the end of the gzip stream at byte {}",
                    clean.len()
                )),
                "{what}: {err}"
            );
        }
    }
}
