//! Deltas inside layers, the host's half: moving and (de)compressing the bytes the core's
//! decisions (`ddiff_core::delta`) name.
//!
//! ```text
//!  diff:  target blob ─► tar ─► fingerprint ─┐   base layers ─► tar ─► fingerprints
//!                                            └─► choose_references (core)
//!         recipe proven: tar ─► recompress ─► == blob, byte for byte (early exit)
//!         patch = zstd(tar, prefix = reference tar); proven: unpatch ─► == diff_id
//!  load:  reference (from the destination) ─► tar ─► unpatch ─► diff_id checked
//!                                                          └─► recompress ─► digest checked
//! ```
//!
//! One recompression ([`Recompressor`]) serves the proof at `diff` and the rebuild at `load`,
//! and one patch decoder ([`unpatch`]) serves both too, so what `diff` proved is exactly what
//! `load` does. Memory: a patch holds its reference tar whole in memory on both sides (zstd
//! refers into it anywhere), so `--delta-memory` caps the reference size; zstd's own window
//! is the same size again at most.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::bundle::{BlobKind, BundleMeta};
use ddiff_core::delta::{
    choose_references, worth_carrying, Fingerprint, FingerprintBuilder, PatchEncoding, PatchInfo,
    PatchReference, Recipe,
};
use ddiff_core::{Compression, Descriptor, Digest, MediaType};

use crate::compress::{Codec, ParallelCompressor, Settings};
use crate::hash::fast_hasher;
use crate::progress::Progress;
use crate::transport::Location;

/// Layers smaller than this always travel whole: a patch would save little and cost a
/// reference read at the destination.
pub const MIN_PATCHED_LAYER: u64 = 64 * 1024;

/// Delta flags (`diff`, `build`).
#[derive(clap::Args, Debug, Clone)]
pub struct DeltaArgs {
    /// Carry every new layer whole, never as a patch against a layer the destination holds.
    #[arg(long)]
    pub no_deltas: bool,
    /// zstd level of patches (1-19). Higher is slower and usually smaller: 19 took 2-7x the
    /// time of the default and saved 0-30% of the patch bytes in our measurements, and was
    /// larger on one big layer (docs/benchmarks.md).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(i32).range(1..=19))]
    pub delta_level: i32,
    /// How many of the most similar base layers to try as the reference of each new layer
    /// (the smallest patch wins).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=8))]
    pub delta_candidates: u16,
    /// The largest reference layer (uncompressed) a patch may use, e.g. 512M, 2G. Both
    /// sides hold the reference in memory while patching, so this caps the memory of diff
    /// and load (about twice this at most). Larger layers travel whole.
    #[arg(long, default_value = "2G", value_parser = parse_size)]
    pub delta_memory: u64,
}

impl Default for DeltaArgs {
    fn default() -> Self {
        DeltaArgs {
            no_deltas: false,
            delta_level: 12,
            delta_candidates: 2,
            delta_memory: 2 << 30,
        }
    }
}

/// A size: `512M`, `2G`, `1.5GiB`, `4096` (bytes); K/M/G/T are powers of 1024, KB/MB/GB
/// powers of 1000. The one size parser (`ddiff_core::volume::parse_volume_size`).
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    ddiff_core::volume::parse_volume_size(s).map_err(|e| ddiff_core::display::error_chain(&e))
}

// ---------------------------------------------------------------------------------------
// Bytes: decompression, recompression, comparison.

/// A reader of the tar inside a layer blob of `compression`.
pub fn tar_reader<'r>(
    blob: impl Read + Send + 'r,
    compression: Compression,
) -> Result<Box<dyn Read + Send + 'r>> {
    let blob = BufReader::with_capacity(1 << 20, blob);
    Ok(match compression {
        Compression::None => Box::new(blob),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(blob)),
        Compression::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(blob).context("zstd decoder")?)
        }
    })
}

/// Hashes (SHA-256) and counts what passes through to `inner`, refusing more than `limit`
/// bytes (a patch that expands past its declared size stops there).
pub struct Hashing<W> {
    inner: W,
    ctx: ring::digest::Context,
    len: u64,
    limit: u64,
}

impl<W: Write> Hashing<W> {
    /// Passes at most `limit` bytes to `inner`.
    pub fn new(inner: W, limit: u64) -> Self {
        Hashing {
            inner,
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            len: 0,
            limit,
        }
    }

    /// The digest and size of what passed, and the inner writer (flushed).
    pub fn finish(mut self) -> io::Result<(Digest, u64, W)> {
        self.inner.flush()?;
        Ok((crate::hash::sha256_of(self.ctx), self.len, self.inner))
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if self.len + b.len() as u64 > self.limit {
            return Err(io::Error::other(format!(
                "more than the declared {} bytes",
                self.limit
            )));
        }
        let n = self.inner.write(b)?;
        self.ctx.update(&b[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The text of the error a [`Compare`] sink fails with.
const MISMATCH: &str = "differs from the blob";

/// A sink that compares what it is given with the bytes of `expected`, failing at the first
/// difference: the proof that a recompression reproduces a blob stops as soon as it cannot.
struct Compare<R> {
    expected: R,
    buf: Vec<u8>,
    pos: u64,
}

impl<R: Read> Write for Compare<R> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.resize(b.len(), 0);
        let mut got = 0;
        while got < b.len() {
            let n = self.expected.read(&mut self.buf[got..])?;
            if n == 0 {
                break;
            }
            got += n;
        }
        if got < b.len() || self.buf[..got] != *b {
            return Err(io::Error::other(format!("{MISMATCH} at byte {}", self.pos)));
        }
        self.pos += b.len() as u64;
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

type Sink<'w> = Box<dyn Write + Send + 'w>;

/// Turns a layer's tar into its exact blob, following a recipe: the one recompression of
/// both the proof (`diff`) and the rebuild (`load`). Feed it the tar with `Write`, then
/// [`Recompressor::finish`] gives the blob's digest and size.
pub enum Recompressor {
    /// The tar is the blob.
    Plain(Hashing<Sink<'static>>),
    /// ddiff's parallel compressor (it hashes its output itself).
    Ddiff(ParallelCompressor),
    /// Go's gzip writer, ported bit for bit (boxed: it holds Go's window and tables).
    Go(Box<goflate::GzipWriter<Hashing<Sink<'static>>>>),
}

impl Recompressor {
    /// A recompressor writing the blob to `out`.
    pub fn new(recipe: &Recipe, out: Sink<'static>) -> Result<Self> {
        Ok(match *recipe {
            Recipe::None => Recompressor::Plain(Hashing::new(out, u64::MAX)),
            Recipe::DdiffGzip { level, chunk } => {
                Recompressor::Ddiff(ddiff_compressor(Codec::Gzip, level, chunk, out)?)
            }
            Recipe::DdiffZstd { level, chunk } => {
                Recompressor::Ddiff(ddiff_compressor(Codec::Zstd, level, chunk, out)?)
            }
            Recipe::GoGzip { level } => Recompressor::Go(Box::new(
                goflate::GzipWriter::new(Hashing::new(out, u64::MAX), level)
                    .map_err(|e| anyhow!("Go gzip recipe: {e}"))?,
            )),
        })
    }

    /// Ends the blob: its digest and size.
    pub fn finish(self) -> Result<(Digest, u64)> {
        match self {
            Recompressor::Plain(h) => {
                let (d, n, _) = h.finish()?;
                Ok((d, n))
            }
            Recompressor::Ddiff(c) => {
                let c = c.finish()?;
                Ok((c.digest, c.size))
            }
            Recompressor::Go(g) => {
                let (d, n, _) = g.finish()?.finish()?;
                Ok((d, n))
            }
        }
    }
}

impl Write for Recompressor {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        match self {
            Recompressor::Plain(h) => h.write(b),
            Recompressor::Ddiff(c) => c
                .write(b)
                .map(|_| b.len())
                .map_err(|e| io::Error::other(format!("{e:#}"))),
            // In 32 KiB pieces, as `docker push` feeds Go's writer (`io.Copy`): Go's block
            // decisions can depend on write sizes in one corner (goflate's crate docs).
            Recompressor::Go(g) => g.write(&b[..b.len().min(32 * 1024)]),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn ddiff_compressor(
    codec: Codec,
    level: u32,
    chunk: u64,
    out: Sink<'static>,
) -> Result<ParallelCompressor> {
    if chunk != codec.chunk() as u64 {
        bail!(
            "recipe {codec:?} with {chunk}-byte chunks: this ddiff compresses in {}-byte chunks (made by another ddiff release)",
            codec.chunk()
        );
    }
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    Ok(ParallelCompressor::to_writer(
        out,
        Settings {
            codec,
            level: level as i32,
            threads,
        },
    ))
}

/// The recipes that could have made a blob of `media_type` starting with `head`, most likely
/// first.
fn candidate_recipes(media_type: &MediaType, head: &[u8]) -> Vec<Recipe> {
    match media_type.layer_compression() {
        Some(Compression::None) => vec![Recipe::None],
        Some(Compression::Gzip) => {
            // Go's levels whose header this is, the default first (Docker, BuildKit,
            // containerd).
            let mut v: Vec<Recipe> = goflate::candidate_levels(head)
                .into_iter()
                .map(|level| Recipe::GoGzip { level })
                .collect();
            // ddiff's gzip header: no name, MTIME 0, XFL 0, OS 255 (`ddiff push`, or a
            // registry filled by an earlier ddiff load of an engine image).
            if head.starts_with(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]) {
                for level in [Codec::Gzip.default_level(), Codec::Gzip.fast_level()] {
                    v.push(Recipe::DdiffGzip {
                        level: level as u32,
                        chunk: Codec::Gzip.chunk() as u64,
                    });
                }
            }
            v
        }
        Some(Compression::Zstd) => [Codec::Zstd.default_level(), Codec::Zstd.fast_level()]
            .into_iter()
            .map(|level| Recipe::DdiffZstd {
                level: level as u32,
                chunk: Codec::Zstd.chunk() as u64,
            })
            .collect(),
        None => Vec::new(),
    }
}

/// Whether recompressing the tar inside `blob` with `recipe` gives the blob (`digest`, a
/// file) byte for byte. Stops at the first differing byte, so a wrong guess costs little.
fn reproduces(
    blob: &Path,
    digest: &Digest,
    compression: Compression,
    recipe: &Recipe,
) -> Result<bool> {
    let expected = BufReader::with_capacity(1 << 20, open(blob)?);
    let cmp = Compare {
        expected,
        buf: Vec::new(),
        pos: 0,
    };
    let mut rec = Recompressor::new(recipe, Box::new(cmp))?;
    let r = io::copy(&mut tar_reader(open(blob)?, compression)?, &mut rec)
        .map_err(anyhow::Error::from)
        .and_then(|_| rec.finish());
    match r {
        Ok((d, _)) => Ok(&d == digest),
        Err(e) if e.chain().any(|c| c.to_string().contains(MISMATCH)) => Ok(false),
        Err(e) => Err(e),
    }
}

fn open(p: &Path) -> Result<File> {
    File::open(p).with_context(|| format!("cannot open {}", p.display()))
}

/// The recipe that rebuilds the blob in file `blob` exactly from its tar, proven by doing
/// it (`None` when no recipe this ddiff knows does: the layer then travels whole). `known`
/// is the recipe when this very run compressed the layer (engine and archive sources): exact
/// by construction, so not run again here (the patch is still proven against the diff_id).
pub fn recognize(blob: &Path, desc: &Descriptor, known: Option<Recipe>) -> Result<Option<Recipe>> {
    if known.is_some() {
        return Ok(known);
    }
    let Some(compression) = desc.media_type.layer_compression() else {
        return Ok(None);
    };
    let mut head = [0u8; 10];
    let n = open(blob)?.read(&mut head)?;
    for r in candidate_recipes(&desc.media_type, &head[..n]) {
        if reproduces(blob, &desc.digest, compression, &r)? {
            return Ok(Some(r));
        }
    }
    Ok(None)
}

// ---------------------------------------------------------------------------------------
// Patches.

/// zstd's window for a patch: enough to reach from the end of the target back to the start
/// of the reference (`zstd --patch-from` sets the same).
fn window_log(reference: u64, target: u64) -> u32 {
    let span = reference.saturating_add(target).max(1 << 10);
    (64 - (span - 1).leading_zeros()).clamp(10, 31)
}

/// Writes a patch of the tar read from `tar` (`tar_size` bytes) against `reference` into
/// `out`; returns the patch's digest and size.
pub fn encode_patch(
    reference: &[u8],
    tar: &mut dyn Read,
    tar_size: u64,
    level: i32,
    out: &mut dyn Write,
) -> Result<(Digest, u64)> {
    let hashing = Hashing::new(io::BufWriter::with_capacity(1 << 20, out), u64::MAX);
    let mut enc = zstd::stream::write::Encoder::with_ref_prefix(hashing, level, reference)
        .context("zstd encoder")?;
    enc.long_distance_matching(true)?;
    enc.window_log(window_log(reference.len() as u64, tar_size))?;
    enc.include_checksum(true)?;
    enc.set_pledged_src_size(Some(tar_size))?;
    io::copy(tar, &mut enc).context("encoding the patch")?;
    let hashing = enc.finish().context("encoding the patch")?;
    let (digest, size, _) = hashing.finish()?;
    Ok((digest, size))
}

/// Decodes a patch against `reference` into `sink`, refusing output past `max` bytes (a
/// patch that expands past its declared size) and zstd windows beyond 2 GiB. The one patch
/// decoder: `diff` proves a patch with it, `load` rebuilds with it.
pub fn unpatch(
    reference: &[u8],
    patch: &mut dyn Read,
    max: u64,
    sink: &mut dyn Write,
) -> Result<()> {
    let mut dec = zstd::stream::read::Decoder::with_ref_prefix(BufReader::new(patch), reference)
        .context("zstd decoder")?;
    dec.window_log_max(31)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = dec.read(&mut buf).context("corrupt patch")?;
        if n == 0 {
            return Ok(());
        }
        total += n as u64;
        if total > max {
            bail!("the patch expands past its declared {max} bytes");
        }
        sink.write_all(&buf[..n])?;
    }
}

/// Rebuilds a patched layer into `out`: unpatches against `reference`, checks the tar's
/// diff_id and size, recompresses it by the recipe and checks the blob's digest and size.
/// What `out` received is the exact blob when this returns `Ok`.
pub fn rebuild(
    reference: &[u8],
    patch: &mut dyn Read,
    info: &PatchInfo,
    blob: &Descriptor,
    out: Sink<'static>,
) -> Result<()> {
    let rec = Recompressor::new(&info.recipe, out)?;
    let mut tar = Hashing::new(rec, info.tar_size);
    unpatch(reference, patch, info.tar_size, &mut tar)?;
    let (diff_id, size, rec) = tar.finish()?;
    if diff_id != info.diff_id || size != info.tar_size {
        bail!(
            "the patch gives {size} bytes hashing to {diff_id}, not the {} bytes of {} the bundle names (wrong reference or corrupt patch)",
            info.tar_size,
            info.diff_id
        );
    }
    let (digest, size) = rec.finish().context("recompressing the rebuilt layer")?;
    if digest != blob.digest || size != blob.size {
        bail!(
            "recompressing the rebuilt layer ({}) gave {size} bytes hashing to {digest}, not {}",
            info.recipe.describe(),
            blob.digest
        );
    }
    Ok(())
}

/// Reads the tar of a reference layer (blob file of `media_type`) into memory, checking
/// that it is `diff_id` and at most `cap` bytes.
pub fn read_reference(
    blob: &Path,
    media_type: &MediaType,
    diff_id: &Digest,
    cap: u64,
) -> Result<Vec<u8>> {
    let compression = media_type
        .layer_compression()
        .ok_or_else(|| anyhow!("reference {diff_id}: {media_type} is not a layer"))?;
    let mut h = Hashing::new(Vec::new(), cap);
    io::copy(&mut tar_reader(open(blob)?, compression)?, &mut h)
        .with_context(|| format!("reading reference layer {diff_id}"))?;
    let (d, _, v) = h.finish()?;
    if &d != diff_id {
        bail!("the reference layer found is {d}, not {diff_id}");
    }
    Ok(v)
}

// ---------------------------------------------------------------------------------------
// Where references are read: a source's layers (diff) or a destination's (load).

/// A layer a patch may be made against, as [`RefSource`] found it.
#[derive(Clone, Debug)]
pub struct RefLayer {
    /// The blob (for engine and archive layers: the uncompressed tar, described by its
    /// diff_id with an uncompressed media type).
    pub desc: Descriptor,
    /// Its diff_id.
    pub diff_id: Digest,
}

/// Where the layers that patches may be made against are read.
pub enum RefSource {
    /// Layers of a registry repository or an OCI layout, fetched by descriptor.
    Blobs {
        /// Where.
        location: Location,
        /// The layers with their diff_ids.
        layers: Vec<RefLayer>,
    },
    /// The layers of an image save stream (a Docker engine image, or a `docker save` file),
    /// limited to these diff_ids.
    Save {
        /// Opens the stream (called once per pass).
        open: std::sync::Arc<dyn Fn() -> Result<Box<dyn Read + Send>> + Send + Sync>,
        /// The diff_ids to take.
        diff_ids: Vec<Digest>,
        /// For messages.
        describe: String,
    },
}

impl RefSource {
    /// For messages.
    pub fn describe(&self) -> String {
        match self {
            RefSource::Blobs { location, .. } => location.describe(),
            RefSource::Save { describe, .. } => describe.clone(),
        }
    }

    /// The diff_ids of the layers it offers.
    pub fn diff_ids(&self) -> Vec<Digest> {
        match self {
            RefSource::Blobs { layers, .. } => layers.iter().map(|l| l.diff_id.clone()).collect(),
            RefSource::Save { diff_ids, .. } => diff_ids.clone(),
        }
    }

    /// Runs `f` on each layer (`wanted`: only those diff_ids) as a local blob file that is
    /// removed afterwards, and collects what it returns.
    pub async fn each<T: Send + 'static>(
        &self,
        wanted: Option<&std::collections::BTreeSet<Digest>>,
        tmp_dir: &Path,
        f: impl FnMut(&Path, &RefLayer) -> Result<T> + Send + 'static,
    ) -> Result<Vec<T>> {
        let mut f = f;
        match self {
            RefSource::Blobs { location, layers } => {
                let mut out = Vec::new();
                let mut seen = std::collections::BTreeSet::new();
                for l in layers {
                    if wanted.is_some_and(|w| !w.contains(&l.diff_id)) || !seen.insert(&l.diff_id) {
                        continue;
                    }
                    let mut temps = crate::durable::TempSet::new();
                    let (path, file) = temps.create(tmp_dir, "reference").with_context(|| {
                        format!("cannot create a file in {}", tmp_dir.display())
                    })?;
                    let mut w = io::BufWriter::with_capacity(1 << 20, file);
                    location
                        .blob_stream(&l.desc, &mut |c| w.write_all(c).map_err(Into::into))
                        .await
                        .with_context(|| {
                            format!(
                                "reading layer {} from {}",
                                l.desc.digest,
                                location.describe()
                            )
                        })?;
                    w.flush()?;
                    drop(w);
                    out.push(f(&path, l)?);
                }
                Ok(out)
            }
            RefSource::Save { open, diff_ids, .. } => {
                let open = open.clone();
                let ids: std::collections::BTreeSet<Digest> = diff_ids
                    .iter()
                    .filter(|d| wanted.is_none_or(|w| w.contains(*d)))
                    .cloned()
                    .collect();
                let dir = tmp_dir.to_path_buf();
                tokio::task::spawn_blocking(move || walk_save(open()?, &ids, &dir, &mut f)).await?
            }
        }
    }
}

/// Walks an image save stream: each layer entry whose diff_id is in `ids` is spooled to a
/// temporary file (its diff_id is known once it is hashed) and handed to `f`.
fn walk_save<T>(
    mut input: Box<dyn Read + Send>,
    ids: &std::collections::BTreeSet<Digest>,
    dir: &Path,
    f: &mut dyn FnMut(&Path, &RefLayer) -> Result<T>,
) -> Result<Vec<T>> {
    use ddiff_core::tar::{EntryKind, TarEvent, TarReader};
    let mut out = Vec::new();
    let mut reader = TarReader::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut cur: Option<(
        crate::durable::TempSet,
        PathBuf,
        Hashing<io::BufWriter<File>>,
    )> = None;
    let mut done = std::collections::BTreeSet::new();
    'outer: loop {
        let n = input
            .read(&mut buf)
            .context("reading the image save stream")?;
        if n == 0 {
            reader
                .finish()
                .context("the image save stream ended early")?;
            break;
        }
        let mut chunk = &buf[..n];
        loop {
            let (used, ev) = reader.feed(chunk).context("image save stream")?;
            chunk = &chunk[used..];
            match ev {
                None if chunk.is_empty() || used == 0 => break,
                None => {}
                Some(TarEvent::End) => break 'outer,
                Some(TarEvent::Header(e)) => {
                    let p = ddiff_core::docker_archive::normalize_entry_path(&e.path)
                        .map_err(|e| anyhow!(e))?;
                    if e.kind == EntryKind::File && ddiff_core::engine_plan::is_layer_path(&p) {
                        let mut temps = crate::durable::TempSet::new();
                        let (path, file) = temps.create(dir, "reference").with_context(|| {
                            format!("cannot create a file in {}", dir.display())
                        })?;
                        cur = Some((
                            temps,
                            path,
                            Hashing::new(io::BufWriter::with_capacity(1 << 20, file), u64::MAX),
                        ));
                    }
                }
                Some(TarEvent::Data(d)) => {
                    if let Some((_, _, w)) = cur.as_mut() {
                        w.write_all(d)?;
                    }
                }
                Some(TarEvent::EntryEnd) => {
                    if let Some((_temps, path, w)) = cur.take() {
                        let (diff_id, size, _) = w.finish()?;
                        if ids.contains(&diff_id) && done.insert(diff_id.clone()) {
                            let l = RefLayer {
                                desc: Descriptor::new(MediaType::OciLayer, diff_id.clone(), size),
                                diff_id,
                            };
                            out.push(f(&path, &l)?);
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// diff: choosing, encoding and proving patches.

/// A carried layer that may travel as a patch: its blob as a local file.
pub struct TargetLayer {
    /// The layer.
    pub desc: Descriptor,
    /// The blob's file.
    pub file: PathBuf,
    /// The recipe when this run compressed it (engine and archive sources).
    pub known: Option<Recipe>,
}

/// What [`add_patches`] did.
#[derive(Default, Debug, serde::Serialize)]
pub struct DeltaReport {
    /// Layers carried as patches.
    pub patched_layers: usize,
    /// Their bytes as blobs.
    pub patched_layer_bytes: u64,
    /// Their bytes as patches.
    pub patch_bytes: u64,
    /// Why layers travel whole (one line each).
    pub notes: Vec<String>,
}

/// Makes the carried layers of `meta` travel as patches against the layers of `refs` where
/// that saves at least a tenth, every patch proven first. Returns the patch files (by layer
/// digest; they live as long as `temps`) and what was done. `meta.version` follows.
#[allow(clippy::too_many_arguments)]
pub async fn add_patches(
    meta: &mut BundleMeta,
    layers: Vec<TargetLayer>,
    refs: &[RefSource],
    args: &DeltaArgs,
    tmp_dir: &Path,
    temps: &mut crate::durable::TempSet,
    progress: &Progress,
) -> Result<(BTreeMap<Digest, PathBuf>, DeltaReport)> {
    let mut report = DeltaReport::default();
    let mut patches = BTreeMap::new();
    // Planned against inventories, every layer `refs` offers is one the sites hold.
    let from_inventories = meta
        .base
        .as_ref()
        .is_some_and(|b| !b.inventories.is_empty());
    let allowed = meta
        .reference_diff_ids()
        .into_iter()
        .cloned()
        .collect::<std::collections::BTreeSet<_>>();
    let layers: Vec<TargetLayer> = layers
        .into_iter()
        .filter(|l| {
            l.desc.size >= MIN_PATCHED_LAYER && l.desc.media_type.layer_compression().is_some()
        })
        .collect();
    if layers.is_empty() || (allowed.is_empty() && !from_inventories) {
        return Ok((patches, report));
    }
    // 1. Fingerprints of the layers the destination holds.
    // Each reference is read from the first source that has it.
    let mut prints: Vec<(RefLayer, Fingerprint)> = Vec::new();
    let mut source_of: BTreeMap<Digest, usize> = BTreeMap::new();
    for (k, src) in refs.iter().enumerate() {
        let wanted: std::collections::BTreeSet<Digest> = src
            .diff_ids()
            .into_iter()
            .filter(|d| (from_inventories || allowed.contains(d)) && !source_of.contains_key(d))
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let item = progress.item(
            format!("fingerprinting base layers of {}", src.describe()),
            0,
        );
        let it = item.clone();
        let got = src
            .each(Some(&wanted), tmp_dir, move |path, l| {
                let (fp, _, _) = fingerprint(path, &l.desc.media_type)?;
                it.inc(l.desc.size);
                Ok((l.clone(), fp))
            })
            .await?;
        item.finish("done");
        for (l, fp) in got {
            source_of.insert(l.diff_id.clone(), k);
            prints.push((l, fp));
        }
    }
    // 2. For each target layer: its fingerprint, the best references, its recipe.
    struct Job {
        desc: Descriptor,
        file: PathBuf,
        recipe: Recipe,
        diff_id: Digest,
        tar_size: u64,
        refs: Vec<RefLayer>,
    }
    let mut jobs = Vec::new();
    let mut wanted = std::collections::BTreeSet::new();
    let cands: Vec<(RefLayer, &Fingerprint)> = prints.iter().map(|(l, f)| (l.clone(), f)).collect();
    for t in layers {
        let (fp, diff_id, tar_size) = fingerprint(&t.file, &t.desc.media_type)
            .with_context(|| format!("layer {}", t.desc.digest))?;
        let chosen = choose_references(
            &fp,
            &cands,
            args.delta_candidates as usize,
            args.delta_memory,
        );
        if chosen.is_empty() {
            continue;
        }
        let item = progress.item(
            format!("recognising the compressor of {}", t.desc.digest.short()),
            0,
        );
        let recipe = recognize(&t.file, &t.desc, t.known)?;
        item.finish("done");
        let Some(recipe) = recipe else {
            report.notes.push(format!(
                "layer {} travels whole: no recipe this ddiff knows rebuilds its exact compressed bytes",
                t.desc.digest
            ));
            continue;
        };
        wanted.extend(chosen.iter().map(|r| r.diff_id.clone()));
        jobs.push(Job {
            desc: t.desc,
            file: t.file,
            recipe,
            diff_id,
            tar_size,
            refs: chosen,
        });
    }
    if jobs.is_empty() {
        return Ok((patches, report));
    }
    // 3. The chosen references as local files, then each job's patches, smallest kept.
    let mut ref_files: BTreeMap<Digest, (PathBuf, MediaType)> = BTreeMap::new();
    for (k, src) in refs.iter().enumerate() {
        let here: std::collections::BTreeSet<Digest> = wanted
            .iter()
            .filter(|d| source_of.get(*d) == Some(&k))
            .cloned()
            .collect();
        if here.is_empty() {
            continue;
        }
        let dir = tmp_dir.to_path_buf();
        let got = src
            .each(Some(&here), tmp_dir, move |path, l| {
                // Keep the file: move it to a name of our own in the same directory.
                let keep = dir.join(format!(".ddiff-ref-{}", l.diff_id.hex()));
                std::fs::rename(path, &keep)?;
                Ok((l.diff_id.clone(), (keep, l.desc.media_type.clone())))
            })
            .await?;
        ref_files.extend(got);
    }
    let _cleanup = RemoveOnDrop(ref_files.values().map(|(p, _)| p.clone()).collect());
    for job in jobs {
        let item = progress.item(
            format!("patching layer {}", job.desc.digest.short()),
            job.tar_size * job.refs.len() as u64,
        );
        let mut best: Option<(PatchInfo, PathBuf)> = None;
        for r in &job.refs {
            let Some((rpath, rmt)) = ref_files.get(&r.diff_id) else {
                continue;
            };
            let reference = read_reference(rpath, rmt, &r.diff_id, args.delta_memory)?;
            let (ppath, pfile) = temps
                .create(tmp_dir, "patch")
                .with_context(|| format!("cannot create a file in {}", tmp_dir.display()))?;
            let compression = job
                .desc
                .media_type
                .layer_compression()
                .unwrap_or(Compression::None);
            let mut tar = tar_reader(open(&job.file)?, compression)?;
            let mut pw = pfile;
            let (pd, ps) = encode_patch(
                &reference,
                &mut tar,
                job.tar_size,
                args.delta_level,
                &mut pw,
            )?;
            item.inc(job.tar_size);
            if best.as_ref().is_some_and(|(b, _)| b.size <= ps) {
                continue;
            }
            // The proof: unpatching gives the tar whose recipe makes the blob.
            let mut h = Hashing::new(io::sink(), job.tar_size);
            unpatch(&reference, &mut open(&ppath)?, job.tar_size, &mut h)
                .with_context(|| format!("proving the patch of layer {}", job.desc.digest))?;
            let (got, n, _) = h.finish()?;
            if got != job.diff_id || n != job.tar_size {
                bail!(
                    "internal error: the patch of layer {} does not give its tar back",
                    job.desc.digest
                );
            }
            best = Some((
                PatchInfo {
                    digest: pd,
                    size: ps,
                    encoding: PatchEncoding::Zstd,
                    reference: PatchReference {
                        digest: r.desc.digest.clone(),
                        size: r.desc.size,
                        media_type: r.desc.media_type.clone(),
                        diff_id: r.diff_id.clone(),
                        tar_size: reference.len() as u64,
                        repositories: Vec::new(),
                    },
                    diff_id: job.diff_id.clone(),
                    tar_size: job.tar_size,
                    recipe: job.recipe,
                },
                ppath,
            ));
        }
        item.finish("done");
        let Some((info, path)) = best else { continue };
        if !worth_carrying(info.size, job.desc.size) {
            report.notes.push(format!(
                "layer {} travels whole: its best patch ({} bytes) saves less than a tenth of {} bytes",
                job.desc.digest, info.size, job.desc.size
            ));
            continue;
        }
        if let Some(b) = meta
            .blobs
            .iter_mut()
            .find(|b| b.digest == job.desc.digest && b.kind == BlobKind::Layer)
        {
            report.patched_layers += 1;
            report.patched_layer_bytes += job.desc.size;
            report.patch_bytes += info.size;
            b.patch = Some(info);
            patches.insert(job.desc.digest.clone(), path);
        }
    }
    meta.version = meta.needed_version();
    Ok((patches, report))
}

struct RemoveOnDrop(Vec<PathBuf>);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The fingerprint, diff_id and tar size of the layer blob in `path`.
pub fn fingerprint(path: &Path, media_type: &MediaType) -> Result<(Fingerprint, Digest, u64)> {
    let compression = media_type
        .layer_compression()
        .ok_or_else(|| anyhow!("{media_type} is not a layer"))?;
    let mut r = tar_reader(open(path)?, compression)?;
    let mut b = FingerprintBuilder::new(fast_hasher);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).context("reading the layer")?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
        b.feed(&buf[..n]).context("the layer's tar")?;
    }
    let fp = b.finish().context("the layer's tar")?;
    let size = fp.tar_size;
    Ok((fp, crate::hash::sha256_of(ctx), size))
}

// ---------------------------------------------------------------------------------------
// load: finding references at the destination and rebuilding patched layers.

/// The patched layers a load must rebuild (their blob indexes), grouped by reference.
fn patched(meta: &BundleMeta) -> BTreeMap<Digest, (PatchReference, Vec<usize>)> {
    let mut by_ref: BTreeMap<Digest, (PatchReference, Vec<usize>)> = BTreeMap::new();
    for (i, b) in meta.blobs.iter().enumerate() {
        if let Some(p) = &b.patch {
            by_ref
                .entry(p.reference.diff_id.clone())
                .or_insert_with(|| (p.reference.clone(), Vec::new()))
                .1
                .push(i);
        }
    }
    by_ref
}

/// Where a destination's references may be read from, most likely first. Registries: the
/// blob by digest in the targets' and the base's repositories, else the base image's layer
/// with that diff_id; layouts: the blob by digest, else any image's layer with that diff_id;
/// engines: an image holding the layer, through image save.
pub async fn destination_refs(
    dest: &ddiff_core::destination::Destination,
    meta: &BundleMeta,
    opts: &crate::registry::client::ClientOptions,
) -> Result<Vec<RefSource>> {
    use ddiff_core::destination::{base_repository, destination_repository, Destination};
    let needed = patched(meta);
    if needed.is_empty() {
        return Ok(Vec::new());
    }
    let base_name = meta
        .base
        .as_ref()
        .and_then(|b| b.references.first())
        .cloned();
    let mut out = Vec::new();
    match dest {
        Destination::Registry { host, rename } => {
            let client =
                std::sync::Arc::new(crate::registry::client::Registry::new(host, opts.clone())?);
            let mut repos: Vec<String> = Vec::new();
            let base = base_name.as_deref().and_then(base_repository);
            if let Some((r, _)) = &base {
                repos.push(r.clone());
            }
            for t in &meta.targets {
                let r = match rename {
                    Some(r) => r.repository().to_string(),
                    None => destination_repository(&t.reference, &t.parsed_reference()?),
                };
                if !repos.contains(&r) {
                    repos.push(r);
                }
            }
            // Where an inventory said the site keeps a reference (only names in Docker's
            // repository grammar are asked).
            for (r, _) in needed.values() {
                for repo in &r.repositories {
                    if ddiff_core::Reference::parse(repo).is_ok() && !repos.contains(repo) {
                        repos.push(repo.clone());
                    }
                }
            }
            let mut left: BTreeMap<&Digest, &PatchReference> =
                needed.iter().map(|(k, (r, _))| (k, r)).collect();
            for repo in &repos {
                let mut layers = Vec::new();
                for (id, r) in left.clone() {
                    if client.blob_exists(repo, &r.digest).await?.is_some() {
                        layers.push(RefLayer {
                            desc: Descriptor::new(r.media_type.clone(), r.digest.clone(), r.size),
                            diff_id: id.clone(),
                        });
                        left.remove(id);
                    }
                }
                if !layers.is_empty() {
                    out.push(RefSource::Blobs {
                        location: Location::Registry {
                            client: client.clone(),
                            repo: repo.clone(),
                        },
                        layers,
                    });
                }
            }
            if let (false, Some((brepo, btag))) = (left.is_empty(), base) {
                let platform = meta.targets[0]
                    .images
                    .first()
                    .and_then(|i| i.platform.clone());
                if let Some(ls) = crate::transport::registry::image_layers(
                    &client,
                    &brepo,
                    &btag,
                    platform.as_ref(),
                )
                .await
                {
                    let layers: Vec<RefLayer> = ls
                        .into_iter()
                        .filter(|(_, id)| left.contains_key(id))
                        .map(|(desc, diff_id)| RefLayer { desc, diff_id })
                        .collect();
                    out.push(RefSource::Blobs {
                        location: Location::Registry {
                            client: client.clone(),
                            repo: brepo,
                        },
                        layers,
                    });
                }
            }
        }
        Destination::Layout { path } | Destination::OciArchive { path } => {
            let r = match dest {
                Destination::Layout { .. } => ddiff_core::ImageRef::Oci {
                    path: path.clone(),
                    reference: None,
                },
                _ => ddiff_core::ImageRef::OciArchive {
                    path: path.clone(),
                    reference: None,
                },
            };
            let store = match crate::transport::layout::LayoutStore::open(&r) {
                Ok(s) => s,
                Err(_) => return Ok(out),
            };
            let mut layers = Vec::new();
            for (id, (r, _)) in &needed {
                if store.size(&r.digest.layout_path()) == Some(r.size) {
                    layers.push(RefLayer {
                        desc: Descriptor::new(r.media_type.clone(), r.digest.clone(), r.size),
                        diff_id: id.clone(),
                    });
                }
            }
            // Else any image of the layout holding a layer with that diff_id.
            if layers.len() < needed.len() {
                if let Ok(index) = store.index_json() {
                    for e in ddiff_core::oci_layout::entries(&index) {
                        let Ok(m) = store.manifest_by_descriptor(&e) else {
                            continue;
                        };
                        let images = match m.as_index() {
                            Some(idx) => idx
                                .manifests
                                .iter()
                                .filter_map(|d| store.manifest_by_descriptor(d).ok())
                                .collect(),
                            None => vec![m],
                        };
                        for im in images {
                            let Some(img) = im.as_image() else { continue };
                            let Ok(cb) = store.blob_bytes(&img.config) else {
                                continue;
                            };
                            let Ok(cfg) = ddiff_core::ImageConfig::parse(&cb) else {
                                continue;
                            };
                            for (d, id) in img.layers.iter().zip(cfg.rootfs.diff_ids.iter()) {
                                if needed.contains_key(id)
                                    && !layers.iter().any(|l: &RefLayer| &l.diff_id == id)
                                {
                                    layers.push(RefLayer {
                                        desc: d.clone(),
                                        diff_id: id.clone(),
                                    });
                                }
                            }
                        }
                    }
                }
            }
            out.push(RefSource::Blobs {
                location: Location::Layout(store),
                layers,
            });
        }
        Destination::Engine { .. } => {
            let eng = crate::transport::engine::Engine::connect().await?;
            let mut names: Vec<String> = base_name
                .as_deref()
                .map(ddiff_core::destination::engine_names)
                .unwrap_or_default();
            for (id, _) in eng.list().await? {
                names.push(id);
            }
            let mut left: std::collections::BTreeSet<Digest> = needed.keys().cloned().collect();
            for name in names {
                if left.is_empty() {
                    break;
                }
                let Some(img) = eng.inspect(&name).await? else {
                    continue;
                };
                let ids: Vec<Digest> = img
                    .diff_ids
                    .iter()
                    .filter(|d| left.contains(*d))
                    .cloned()
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                for d in &ids {
                    left.remove(d);
                }
                let e = eng.clone();
                let describe = format!("the Docker engine's {name}");
                out.push(RefSource::Save {
                    open: std::sync::Arc::new(move || {
                        Ok(Box::new(e.export_reader(&name)) as Box<dyn Read + Send>)
                    }),
                    diff_ids: ids,
                    describe,
                });
            }
        }
        Destination::DockerArchive { .. } => {}
    }
    Ok(out)
}

/// Rebuilds every patched layer of `bundle` from references read at the destination,
/// before anything is written there: each rebuilt blob is checked (diff_id, then digest)
/// into a temporary file that the transports then read instead of the patch. A missing
/// reference or a blob that does not come out refuses the load, naming the layer.
pub async fn rebuild_patches(
    bundle: &mut crate::bundle_io::VerifiedBundle,
    dest: &ddiff_core::destination::Destination,
    opts: &crate::registry::client::ClientOptions,
    memory_cap: u64,
    progress: &Progress,
) -> Result<()> {
    let needed = patched(&bundle.report.meta);
    if needed.is_empty() {
        return Ok(());
    }
    if let ddiff_core::destination::Destination::DockerArchive { path } = dest {
        bail!(
            "docker-archive:{path}: {} layer(s) of this bundle travel as patches against layers the destination holds, and a new docker-archive file holds none; load into docker-daemon:, a registry or an OCI layout, or make the bundle with --no-deltas",
            needed.values().map(|(_, v)| v.len()).sum::<usize>()
        );
    }
    let dir = tempfile::Builder::new()
        .prefix("ddiff-rebuilt-")
        .tempdir()
        .context("cannot create a temporary directory for rebuilt layers")?;
    let sources = destination_refs(dest, &bundle.report.meta, opts).await?;
    let wanted: std::collections::BTreeSet<Digest> = needed.keys().cloned().collect();
    let mut found: BTreeMap<Digest, (PathBuf, MediaType)> = BTreeMap::new();
    for s in &sources {
        let left: std::collections::BTreeSet<Digest> = wanted
            .iter()
            .filter(|d| !found.contains_key(*d))
            .cloned()
            .collect();
        if left.is_empty() {
            break;
        }
        let keep_dir = dir.path().to_path_buf();
        let got = s
            .each(Some(&left), dir.path(), move |path, l| {
                let keep = keep_dir.join(format!("ref-{}", l.diff_id.hex()));
                std::fs::rename(path, &keep)?;
                Ok((l.diff_id.clone(), (keep, l.desc.media_type.clone())))
            })
            .await
            .with_context(|| format!("reading reference layers from {}", s.describe()))?;
        found.extend(got);
    }
    let missing: Vec<String> = needed
        .iter()
        .filter(|(id, _)| !found.contains_key(*id))
        .map(|(id, (_, blobs))| {
            let layers: Vec<String> = blobs
                .iter()
                .map(|i| bundle.report.meta.blobs[*i].digest.to_string())
                .collect();
            format!("{id} (the reference of {})", layers.join(", "))
        })
        .collect();
    if !missing.is_empty() {
        bail!(
            "the destination lacks the layer(s) that patches in this bundle were made against: {}; nothing was written (load the base there first, or make the bundle with --no-deltas)",
            missing.join("; ")
        );
    }
    let total: u64 = needed
        .values()
        .flat_map(|(_, v)| v.iter())
        .map(|i| bundle.report.meta.blobs[*i].size)
        .sum();
    let item = progress.item("rebuilding patched layers", total);
    for (id, (r, blobs)) in &needed {
        let (path, mt) = &found[id];
        if r.tar_size > memory_cap {
            bail!(
                "reference layer {id} is {} bytes uncompressed, over --delta-memory ({memory_cap}); raise it to load this bundle",
                r.tar_size
            );
        }
        let reference = read_reference(path, mt, id, r.tar_size)?;
        for &i in blobs {
            let b = bundle.report.meta.blobs[i].clone();
            let info = b.patch.clone().context("patched blob without a patch")?;
            let out = dir.path().join(format!("blob-{}", b.digest.hex()));
            let f =
                File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
            let mut patch = crate::bundle_io::open_entry(bundle, i)?;
            let desc = Descriptor::new(b.media_type.clone(), b.digest.clone(), b.size);
            rebuild(
                &reference,
                &mut patch,
                &info,
                &desc,
                Box::new(io::BufWriter::with_capacity(1 << 20, f)),
            )
            .with_context(|| format!("rebuilding layer {} from its patch", b.digest))?;
            item.inc(b.size);
            bundle.rebuilt.insert(i, out);
        }
        let _ = std::fs::remove_file(path);
    }
    item.finish("rebuilt, every digest checked");
    bundle.rebuilt_dir = Some(dir);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A tar of `n` files of varied, compressible content; `salt` changes one of them.
    fn tar(n: usize, salt: u8) -> Vec<u8> {
        let files: Vec<(String, Vec<u8>)> = (0..n)
            .map(|i| {
                let body: Vec<u8> = (0..20_000u32)
                    .map(|k| ((k * 31 + i as u32 * 7) % 97) as u8 + if i == 3 { salt } else { 0 })
                    .collect();
                (format!("usr/lib/file{i}"), body)
            })
            .collect();
        let refs: Vec<(&str, &[u8])> = files
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        ddiff_core::synth::layer_tar(&refs, 0)
    }

    const GZ9: Recipe = Recipe::DdiffGzip {
        level: 9,
        chunk: 1 << 20,
    };

    /// The blob `recipe` makes of `tar`, in a file.
    fn blob(dir: &Path, tar: &[u8], recipe: &Recipe) -> (PathBuf, Descriptor) {
        let p = dir.join(format!("blob-{}", Digest::sha256(tar).hex()));
        let f = File::create(&p).unwrap();
        let mut r = Recompressor::new(recipe, Box::new(f)).unwrap();
        r.write_all(tar).unwrap();
        let (d, n) = r.finish().unwrap();
        let mt = match recipe {
            Recipe::None => MediaType::OciLayer,
            _ => MediaType::OciLayerGzip,
        };
        assert_eq!(std::fs::metadata(&p).unwrap().len(), n);
        (p, Descriptor::new(mt, d, n))
    }

    struct Case {
        dir: tempfile::TempDir,
        reference: Vec<u8>,
        patch: Vec<u8>,
        info: PatchInfo,
        desc: Descriptor,
        blob: PathBuf,
    }

    fn case() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let reference = tar(12, 0);
        let target = tar(12, 1);
        let (blob, desc) = blob(dir.path(), &target, &GZ9);
        assert_eq!(recognize(&blob, &desc, None).unwrap(), Some(GZ9));
        let mut patch = Vec::new();
        let (pd, ps) = encode_patch(
            &reference,
            &mut target.as_slice(),
            target.len() as u64,
            3,
            &mut patch,
        )
        .unwrap();
        assert_eq!(ps, patch.len() as u64);
        assert!(ps * 10 < desc.size, "patch {ps} vs blob {}", desc.size);
        let info = PatchInfo {
            digest: pd,
            size: ps,
            encoding: PatchEncoding::Zstd,
            reference: PatchReference {
                digest: Digest::sha256(&reference),
                size: reference.len() as u64,
                media_type: MediaType::OciLayer,
                diff_id: Digest::sha256(&reference),
                tar_size: reference.len() as u64,
                repositories: Vec::new(),
            },
            diff_id: Digest::sha256(&target),
            tar_size: target.len() as u64,
            recipe: GZ9,
        };
        Case {
            dir,
            reference,
            patch,
            info,
            desc,
            blob,
        }
    }

    fn rebuild_case(c: &Case, reference: &[u8], patch: &[u8], info: &PatchInfo) -> Result<Vec<u8>> {
        let out = c.dir.path().join("rebuilt");
        let f = File::create(&out).unwrap();
        rebuild(reference, &mut &patch[..], info, &c.desc, Box::new(f))?;
        Ok(std::fs::read(out).unwrap())
    }

    #[test]
    fn a_patch_rebuilds_the_exact_blob() {
        let c = case();
        let got = rebuild_case(&c, &c.reference, &c.patch, &c.info).unwrap();
        assert_eq!(got, std::fs::read(&c.blob).unwrap());
    }

    #[test]
    fn a_patch_against_the_wrong_reference_is_refused() {
        let c = case();
        // The same layer with a few bytes changed where the patch copies from.
        let mut wrong = c.reference.clone();
        for k in (1000..wrong.len()).step_by(4096) {
            wrong[k] ^= 0x5a;
        }
        let e = rebuild_case(&c, &wrong, &c.patch, &c.info).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("corrupt patch") || msg.contains("wrong reference"),
            "{msg}"
        );
    }

    #[test]
    fn a_corrupt_patch_is_refused() {
        let c = case();
        let mut bad = c.patch.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x40;
        let e = rebuild_case(&c, &c.reference, &bad, &c.info).unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.contains("corrupt patch") || msg.contains("wrong reference"),
            "{msg}"
        );
        // Cut short, too.
        let e =
            rebuild_case(&c, &c.reference, &c.patch[..c.patch.len() - 10], &c.info).unwrap_err();
        assert!(format!("{e:#}").contains("patch"), "{e:#}");
    }

    #[test]
    fn a_patch_that_expands_past_its_declared_size_is_refused() {
        let c = case();
        let mut info = c.info.clone();
        info.tar_size -= 1;
        let e = rebuild_case(&c, &c.reference, &c.patch, &info).unwrap_err();
        assert!(format!("{e:#}").contains("expands past"), "{e:#}");
    }

    #[test]
    fn a_recipe_that_does_not_reproduce_the_digest_is_refused() {
        let c = case();
        let mut info = c.info.clone();
        info.recipe = Recipe::DdiffGzip {
            level: 6,
            chunk: 1 << 20,
        };
        let e = rebuild_case(&c, &c.reference, &c.patch, &info).unwrap_err();
        assert!(
            format!("{e:#}").contains("recompressing the rebuilt layer"),
            "{e:#}"
        );
        // A chunk size this ddiff does not write is refused by name.
        info.recipe = Recipe::DdiffGzip {
            level: 9,
            chunk: 1 << 19,
        };
        let e = rebuild_case(&c, &c.reference, &c.patch, &info).unwrap_err();
        assert!(format!("{e:#}").contains("another ddiff release"), "{e:#}");
    }

    #[test]
    fn a_compressor_we_do_not_know_is_not_recognised() {
        let dir = tempfile::tempdir().unwrap();
        let t = tar(4, 0);
        let p = dir.path().join("other.gz");
        let mut e =
            flate2::write::GzEncoder::new(File::create(&p).unwrap(), flate2::Compression::new(9));
        e.write_all(&t).unwrap();
        e.finish().unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let desc = Descriptor::new(
            MediaType::OciLayerGzip,
            Digest::sha256(&bytes),
            bytes.len() as u64,
        );
        assert_eq!(recognize(&p, &desc, None).unwrap(), None);
        // An uncompressed layer is its own recipe.
        let (p, d) = blob(dir.path(), &t, &Recipe::None);
        assert_eq!(recognize(&p, &d, None).unwrap(), Some(Recipe::None));
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("512M").unwrap(), 512 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5GiB").unwrap(), 3 << 29);
        assert_eq!(parse_size("65536").unwrap(), 65536);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("3X").is_err());
    }
}
