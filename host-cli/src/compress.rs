//! Parallel, streaming layer compression: gzip (one member, as pigz writes it: raw deflate
//! chunks joined by sync flushes, each primed with the last 32 KiB of the chunk before as its
//! dictionary, one CRC; so the output is as small as a serial compressor's) or zstd (one frame
//! per chunk; decoders read concatenated frames as one stream). Memory is bounded: at most `2 × threads + 2` chunks are
//! in flight. The compressed bytes are hashed as they are written, the uncompressed bytes as
//! they arrive, so one pass yields the blob digest, its size and the layer's diff_id.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::{Digest, MediaType};

/// Compression of carried layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Codec {
    /// gzip: every Docker version and registry reads it.
    Gzip,
    /// zstd: smaller and faster; Docker 25+ and containerd read it, Docker 24 and older do not.
    Zstd,
}

impl Codec {
    /// The OCI media type of a layer compressed with this codec.
    pub fn media_type(self) -> MediaType {
        match self {
            Codec::Gzip => MediaType::OciLayerGzip,
            Codec::Zstd => MediaType::OciLayerZstd,
        }
    }

    /// The default level. gzip 9: on real layers (binaries, libraries, text) it carries
    /// 0.1-3% fewer bytes than `docker push` (Go's gzip, what the original DockerDiff carries),
    /// where level 6 carries as many or up to 0.15% more; it costs 1.3-3x the CPU time of
    /// level 6 (docs/benchmarks.md, "Layer compression"). `--fast` gives level 6.
    pub fn default_level(self) -> i32 {
        match self {
            Codec::Gzip => 9,
            Codec::Zstd => 3,
        }
    }

    /// The level of `--fast`: gzip 6 (as many bytes as `docker push`, 2-3x faster than 9),
    /// zstd 1.
    pub fn fast_level(self) -> i32 {
        match self {
            Codec::Gzip => 6,
            Codec::Zstd => 1,
        }
    }

    /// Input bytes per chunk (each compressed on its own; part of the output's identity,
    /// so it is recorded in a patch's recipe).
    pub fn chunk(self) -> usize {
        match self {
            // Small enough that a 100 MB layer keeps both cores busy; each chunk restarts the
            // deflate window (as pigz without dictionaries), costing well under 1%.
            Codec::Gzip => 1 << 20,
            Codec::Zstd => 4 << 20,
        }
    }
}

/// Compression flags (`diff`, `build`, `push`).
#[derive(clap::Args, Debug, Clone)]
pub struct CompressArgs {
    /// How to compress layers taken uncompressed from a Docker engine or archive.
    #[arg(long, value_enum, default_value_t = Codec::Gzip)]
    pub compression: Codec,
    /// Compression level (gzip 1-9, default 9: fewer bytes than docker push; zstd 1-19,
    /// default 3).
    #[arg(long, conflicts_with = "fast")]
    pub level: Option<i32>,
    /// Compress faster, carrying a little more: gzip level 6 (about the bytes of docker push,
    /// 2-3x faster than the default 9), zstd level 1.
    #[arg(long)]
    pub fast: bool,
    /// Compression threads [default: the number of CPUs].
    #[arg(long)]
    pub threads: Option<usize>,
}

impl Default for CompressArgs {
    fn default() -> Self {
        CompressArgs {
            compression: Codec::Gzip,
            level: None,
            fast: false,
            threads: None,
        }
    }
}

impl CompressArgs {
    /// The settings, checked.
    pub fn settings(&self) -> Result<Settings> {
        let level = self.level.unwrap_or(if self.fast {
            self.compression.fast_level()
        } else {
            self.compression.default_level()
        });
        let ok = match self.compression {
            Codec::Gzip => (1..=9).contains(&level),
            Codec::Zstd => (1..=19).contains(&level),
        };
        if !ok {
            bail!(
                "--level {level} is out of range for {:?} (gzip 1-9, zstd 1-19)",
                self.compression
            );
        }
        let threads = self
            .threads
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            })
            .clamp(1, 64);
        Ok(Settings {
            codec: self.compression,
            level,
            threads,
        })
    }
}

/// Checked compression settings.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// The codec.
    pub codec: Codec,
    /// Its level.
    pub level: i32,
    /// Worker threads.
    pub threads: usize,
}

/// What a finished compression produced.
#[derive(Clone, Debug)]
pub struct Compressed {
    /// The file written.
    pub path: PathBuf,
    /// Digest of the compressed bytes.
    pub digest: Digest,
    /// Size of the compressed bytes.
    pub size: u64,
    /// Digest of the uncompressed bytes (the layer's diff_id).
    pub diff_id: Digest,
    /// Size of the uncompressed bytes.
    pub raw_size: u64,
}

struct Job {
    seq: u64,
    /// The last [`DICT_BYTES`] of the chunk before (gzip; empty for the first chunk and zstd).
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

/// Deflate's window: how much of the previous chunk a gzip chunk may refer to.
const DICT_BYTES: usize = 32 * 1024;

/// A streaming parallel compressor writing to a file.
pub struct ParallelCompressor {
    settings: Settings,
    buf: Vec<u8>,
    /// The dictionary of the next gzip chunk: the end of the one sent before.
    dict: Vec<u8>,
    seq: u64,
    jobs: Option<SyncSender<Job>>,
    tokens: SyncSender<()>,
    workers: Vec<JoinHandle<()>>,
    writer: Option<JoinHandle<Result<(Digest, u64)>>>,
    trailer: Option<std::sync::mpsc::Sender<Vec<u8>>>,
    raw: ring::digest::Context,
    raw_size: u64,
    crc: flate2::Crc,
    /// The file written, removed again unless finished (none for [`Self::to_writer`]).
    path: Option<PathBuf>,
    done: bool,
}

impl ParallelCompressor {
    /// Starts compressing into a new file at `path` (removed again unless finished).
    pub fn create(path: &Path, settings: Settings) -> Result<ParallelCompressor> {
        let file = File::create(path)
            .with_context(|| format!("cannot create temporary file {}", path.display()))?;
        let mut c = ParallelCompressor::to_writer(Box::new(file), settings);
        c.path = Some(path.to_path_buf());
        Ok(c)
    }

    /// Starts compressing into `out` (the rebuild of a patched layer at load, and the proof
    /// that a layer is this compressor's output, write through here: one compressor).
    pub fn to_writer(out: Box<dyn Write + Send>, settings: Settings) -> ParallelCompressor {
        let file = out;
        let threads = settings.threads;
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(threads);
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (res_tx, res_rx) = sync_channel::<Result<(u64, Vec<u8>)>>(threads + 1);
        // In-flight tokens: the producer takes one per chunk, the writer gives it back once the
        // chunk is on disk. Bounds the reorder buffer however unevenly workers finish.
        let max_inflight = 2 * threads + 2;
        let (tok_tx, tok_rx) = sync_channel::<()>(max_inflight);
        let mut workers = Vec::with_capacity(threads);
        for _ in 0..threads {
            let rx = jobs_rx.clone();
            let tx = res_tx.clone();
            workers.push(std::thread::spawn(move || loop {
                // A poisoned lock means another worker panicked: stop too.
                let job = match rx.lock() {
                    Ok(r) => r.recv(),
                    Err(_) => return,
                };
                let Ok(job) = job else { return };
                let out =
                    compress_chunk(settings, &job.dict, &job.data, job.last).map(|c| (job.seq, c));
                if tx.send(out).is_err() {
                    return;
                }
            }));
        }
        drop(res_tx);
        let header = match settings.codec {
            // ID1 ID2 CM=deflate FLG=0 MTIME=0 XFL=0 OS=255 (unknown), as reproducible tools do.
            Codec::Gzip => vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
            Codec::Zstd => Vec::new(),
        };
        let (trailer_tx, trailer_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        let writer =
            std::thread::spawn(move || write_in_order(file, header, res_rx, tok_rx, trailer_rx));
        ParallelCompressor {
            settings,
            buf: Vec::with_capacity(settings.codec.chunk()),
            dict: Vec::new(),
            seq: 0,
            jobs: Some(jobs_tx),
            tokens: tok_tx,
            workers,
            writer: Some(writer),
            trailer: Some(trailer_tx),
            raw: ring::digest::Context::new(&ring::digest::SHA256),
            raw_size: 0,
            crc: flate2::Crc::new(),
            path: None,
            done: false,
        }
    }

    /// Adds uncompressed bytes.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        self.raw.update(data);
        self.raw_size += data.len() as u64;
        if self.settings.codec == Codec::Gzip {
            self.crc.update(data);
        }
        let chunk = self.settings.codec.chunk();
        while !data.is_empty() {
            let n = (chunk - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == chunk {
                let full = std::mem::replace(&mut self.buf, Vec::with_capacity(chunk));
                self.send(full, false)?;
            }
        }
        Ok(())
    }

    fn send(&mut self, data: Vec<u8>, last: bool) -> Result<()> {
        let failed = || anyhow!("compression stopped (see the error of the writer)");
        self.tokens.send(()).map_err(|_| failed())?;
        let seq = self.seq;
        self.seq += 1;
        let dict = std::mem::take(&mut self.dict);
        if self.settings.codec == Codec::Gzip {
            self.dict = data[data.len().saturating_sub(DICT_BYTES)..].to_vec();
        }
        self.jobs
            .as_ref()
            .ok_or_else(failed)?
            .send(Job {
                seq,
                dict,
                data,
                last,
            })
            .map_err(|_| failed())
    }

    /// Flushes the last chunk, waits for the workers and returns what was written.
    pub fn finish(mut self) -> Result<Compressed> {
        let rest = std::mem::take(&mut self.buf);
        let sent = self.send(rest, true);
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        let trailer = match self.settings.codec {
            Codec::Gzip => {
                let mut t = self.crc.sum().to_le_bytes().to_vec();
                // ISIZE is the size modulo 2^32 (RFC 1952).
                t.extend_from_slice(&((self.raw_size & 0xffff_ffff) as u32).to_le_bytes());
                t
            }
            Codec::Zstd => Vec::new(),
        };
        // The writer appends the trailer after the last chunk (or stops if it was not sent).
        if let Some(t) = self.trailer.take() {
            let _ = t.send(trailer);
        }
        let writer = self.writer.take().context("compressor already finished")?;
        let joined = writer
            .join()
            .map_err(|_| anyhow!("compression writer thread panicked"))?;
        sent?;
        let (digest, size) = joined?;
        let raw = std::mem::replace(
            &mut self.raw,
            ring::digest::Context::new(&ring::digest::SHA256),
        );
        let diff_id = crate::hash::sha256_of(raw);
        self.done = true;
        Ok(Compressed {
            path: self.path.clone().unwrap_or_default(),
            digest,
            size,
            diff_id,
            raw_size: self.raw_size,
        })
    }
}

impl Drop for ParallelCompressor {
    fn drop(&mut self) {
        if !self.done {
            self.jobs = None;
            if let Some(p) = &self.path {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

/// Writes compressed chunks in sequence order, hashing them.
fn write_in_order(
    file: Box<dyn Write + Send>,
    header: Vec<u8>,
    results: Receiver<Result<(u64, Vec<u8>)>>,
    tokens: Receiver<()>,
    trailer: Receiver<Vec<u8>>,
) -> Result<(Digest, u64)> {
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    out.write_all(&header)
        .context("cannot write compressed layer")?;
    ctx.update(&header);
    let mut size = header.len() as u64;
    let mut next = 0u64;
    let mut pending: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for r in results {
        let (seq, data) = r?;
        pending.insert(seq, data);
        while let Some(data) = pending.remove(&next) {
            out.write_all(&data)
                .context("cannot write compressed layer")?;
            ctx.update(&data);
            size += data.len() as u64;
            next += 1;
            let _ = tokens.try_recv();
        }
    }
    if !pending.is_empty() {
        bail!("internal error: compressed chunks missing");
    }
    let trailer = trailer
        .recv()
        .map_err(|_| anyhow!("compression was abandoned"))?;
    out.write_all(&trailer)
        .context("cannot write compressed layer")?;
    ctx.update(&trailer);
    size += trailer.len() as u64;
    // No fsync: this is an intermediate file; the bundle it goes into is synced.
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|mut inner| inner.flush())
        .context("cannot write compressed layer")?;
    let d = crate::hash::sha256_of(ctx);
    Ok((d, size))
}

fn compress_chunk(s: Settings, dict: &[u8], data: &[u8], last: bool) -> Result<Vec<u8>> {
    match s.codec {
        Codec::Zstd => {
            if data.is_empty() && !last {
                return Ok(Vec::new());
            }
            zstd::bulk::compress(data, s.level).context("zstd compression failed")
        }
        Codec::Gzip => {
            use flate2::{Compress, Compression, FlushCompress, Status};
            // `level` was checked to be 1..=9.
            let mut c = Compress::new(Compression::new(s.level as u32), false);
            // Matches may reach into the chunk before, as in one serial stream: after a sync
            // flush the decoder's window holds exactly those bytes.
            if !dict.is_empty() {
                c.set_dictionary(dict)
                    .map_err(|e| anyhow!("deflate dictionary: {e}"))?;
            }
            let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 64);
            let flush = if last {
                FlushCompress::Finish
            } else {
                FlushCompress::Sync
            };
            loop {
                if out.capacity() - out.len() < 1024 {
                    out.reserve(64 * 1024);
                }
                let consumed = c.total_in() as usize;
                let st = c
                    .compress_vec(&data[consumed..], &mut out, flush)
                    .map_err(|e| anyhow!("deflate failed: {e}"))?;
                let all_in = c.total_in() as usize == data.len();
                match (last, st) {
                    (true, Status::StreamEnd) => break,
                    // A flush is complete when it leaves output space unused.
                    (false, _) if all_in && out.len() < out.capacity() => break,
                    _ => {}
                }
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Read;

    fn data(n: usize) -> Vec<u8> {
        // Compressible but not trivial.
        (0..n)
            .map(|i| ((i * 7919) % 251) as u8 ^ (i / 4096) as u8)
            .collect()
    }

    fn roundtrip(codec: Codec, n: usize, threads: usize) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let s = Settings {
            codec,
            level: codec.default_level(),
            threads,
        };
        let input = data(n);
        let mut c = ParallelCompressor::create(&p, s).unwrap();
        for piece in input.chunks(77_777) {
            c.write(piece).unwrap();
        }
        let r = c.finish().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!(r.size, bytes.len() as u64);
        assert_eq!(r.digest, Digest::sha256(&bytes));
        assert_eq!(r.diff_id, Digest::sha256(&input));
        assert_eq!(r.raw_size, n as u64);
        let mut back = Vec::new();
        match codec {
            // A single-member reader: proves it is one gzip member with a valid CRC.
            Codec::Gzip => flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut back)
                .unwrap(),
            Codec::Zstd => zstd::stream::read::Decoder::new(&bytes[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap(),
        };
        assert_eq!(back, input, "{codec:?} {n} {threads}");
    }

    #[test]
    fn gzip_and_zstd_round_trip_at_chunk_edges() {
        for codec in [Codec::Gzip, Codec::Zstd] {
            let chunk = codec.chunk();
            for n in [0, 1, 1024, chunk - 1, chunk, chunk + 1, 3 * chunk + 12345] {
                for threads in [1, 3] {
                    roundtrip(codec, n, threads);
                }
            }
        }
    }

    /// Chunks primed with the end of the chunk before compress like one stream: data that
    /// repeats a 16 KiB random block costs that block once, not once per 1 MiB chunk (as with
    /// independent chunks), and decodes as one gzip member.
    #[test]
    fn gzip_chunks_refer_back_into_the_chunk_before() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let block: Vec<u8> = (0..16 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let chunks = 8;
        let input: Vec<u8> = block
            .iter()
            .copied()
            .cycle()
            .take(chunks * Codec::Gzip.chunk())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let s = Settings {
            codec: Codec::Gzip,
            level: 6,
            threads: 3,
        };
        let mut c = ParallelCompressor::create(&p, s).unwrap();
        c.write(&input).unwrap();
        let r = c.finish().unwrap();
        let independent: usize = input
            .chunks(Codec::Gzip.chunk())
            .enumerate()
            .map(|(i, ch)| compress_chunk(s, &[], ch, i + 1 == chunks).unwrap().len())
            .sum();
        assert!(
            (r.size as usize) + (chunks - 1) * 15 * 1024 < independent,
            "primed {} vs independent {independent}",
            r.size
        );
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&std::fs::read(&p).unwrap()[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == input);
    }

    #[test]
    fn fast_is_level_6_for_gzip() {
        let a = CompressArgs {
            fast: true,
            ..CompressArgs::default()
        };
        assert_eq!(a.settings().unwrap().level, 6);
        assert_eq!(CompressArgs::default().settings().unwrap().level, 9);
    }

    #[test]
    fn dropping_an_unfinished_compressor_removes_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("l");
        let s = CompressArgs::default().settings().unwrap();
        let mut c = ParallelCompressor::create(&p, s).unwrap();
        c.write(&data(3 << 20)).unwrap();
        drop(c);
        assert!(!p.exists());
    }

    #[test]
    fn levels_are_checked() {
        let mut a = CompressArgs {
            level: Some(12),
            ..CompressArgs::default()
        };
        assert!(a.settings().is_err());
        a.compression = Codec::Zstd;
        assert_eq!(a.settings().unwrap().level, 12);
    }
}
