//! Images as tar streams: `docker save` output (from the engine, or a `docker-archive:` file),
//! `oci-archive:` files, and the `docker load` stream written from a bundle. Which layers to
//! carry, how to describe them and what goes into a load stream is decided by
//! `ddiff_core::engine_plan`; this module moves the bytes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::docker_archive::{normalize_entry_path, parse_manifest, ManifestEntry};
use ddiff_core::engine_plan::{carried_layers, engine_manifest, is_layer_path, layer_hint};
use ddiff_core::tar::{TarEvent, TarReader};
use ddiff_core::{
    Algorithm, Descriptor, Digest, ExportedLayer, ImageConfig, LayerHint, LoadArchive, LoadEntry,
    RawManifest,
};

use crate::bundle_io::{open_blob, VerifiedBundle};
use crate::compress::{ParallelCompressor, Settings};
use crate::durable::TempSet;
use crate::progress::Item;

/// Largest metadata file (manifest.json, configs, v1 json) kept in memory.
const MAX_SMALL: u64 = 16 << 20;
const CHUNK: usize = 1 << 20;

/// An image taken out of an engine or an archive, its carried layers compressed into
/// temporary files, ready for the planner.
pub struct LocalImage {
    /// The name to tag it with at the destination (`app:2`).
    pub name: String,
    /// The engine's exact config bytes.
    pub config_bytes: Vec<u8>,
    /// Parsed config.
    pub config: ImageConfig,
    /// The OCI manifest built for it.
    pub manifest: RawManifest,
    /// Compressed carried layers, by blob digest.
    pub carried: BTreeMap<Digest, PathBuf>,
    /// Keeps the files alive (and marks them live for a sweep of their directory).
    pub temps: TempSet,
    /// Bytes of `docker save | gzip` as the user would otherwise carry it is unknown; this is
    /// the uncompressed size of all layers plus the config.
    pub full_bytes: u64,
}

/// A new temporary file of `temps` in `dir` (next to the output, so on the same disk).
fn temp_file(temps: &mut TempSet, dir: &Path, what: &str) -> Result<(PathBuf, File)> {
    temps
        .create(dir, what)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}

// ---------------------------------------------------------------------------------------
// Archive files: an index of entries, read by offset.

/// The entries of a tar file, by normalised path: (data offset, size).
pub struct TarIndex {
    /// The file.
    pub path: PathBuf,
    /// Entries.
    pub entries: BTreeMap<String, (u64, u64)>,
    /// Every entry in file order (directories and links too): its normalised path for
    /// files (`None` for the others) and the byte range of its header(s), data and padding,
    /// so an archive can be rewritten by copying ranges.
    pub spans: Vec<(Option<String>, u64, u64)>,
}

impl TarIndex {
    /// Reads every header of `path`, seeking over the data.
    pub fn open(path: &Path) -> Result<TarIndex> {
        let mut f = BufReader::new(
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        );
        let len = f.get_ref().metadata()?.len();
        let mut entries = BTreeMap::new();
        let mut spans = Vec::new();
        let mut pos = 0u64;
        let mut block = [0u8; 512];
        'entries: while pos < len {
            let mut r = TarReader::new();
            let start = pos;
            loop {
                f.read_exact(&mut block).with_context(|| {
                    format!("{}: truncated tar header at offset {pos}", path.display())
                })?;
                pos += 512;
                if block.iter().all(|&b| b == 0) {
                    break 'entries;
                }
                let (_, ev) = r
                    .feed(&block)
                    .with_context(|| format!("{}: offset {start}", path.display()))?;
                if let Some(TarEvent::Header(e)) = ev {
                    // Only files are looked up; directories (`./`) and links are skipped.
                    let mut file_name = None;
                    if e.kind == ddiff_core::tar::EntryKind::File {
                        let name = normalize_entry_path(&e.path)
                            .with_context(|| format!("{}: entry {:?}", path.display(), e.path))?;
                        entries.insert(name.clone(), (pos, e.size));
                        file_name = Some(name);
                    }
                    pos += e.size + ddiff_core::tar::padding(e.size) as u64;
                    spans.push((file_name, start, pos));
                    if pos > len {
                        bail!("{}: truncated in entry {:?}", path.display(), e.path);
                    }
                    f.seek(SeekFrom::Start(pos))?;
                    continue 'entries;
                }
            }
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            entries,
            spans,
        })
    }

    /// Whether an entry exists.
    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Size of an entry.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.entries.get(name).map(|e| e.1)
    }

    /// Reads a small entry whole.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let &(off, size) = self
            .entries
            .get(name)
            .ok_or_else(|| anyhow!("{}: no entry {name}", self.path.display()))?;
        if size > MAX_SMALL {
            bail!("{}: {name} is {size} bytes, too large", self.path.display());
        }
        let mut v = Vec::with_capacity(size as usize);
        self.open_entry(name)?.read_to_end(&mut v)?;
        let _ = off;
        Ok(v)
    }

    /// A reader over one entry.
    pub fn open_entry(&self, name: &str) -> Result<impl Read + Send> {
        let &(off, size) = self
            .entries
            .get(name)
            .ok_or_else(|| anyhow!("{}: no entry {name}", self.path.display()))?;
        let mut f = File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        f.seek(SeekFrom::Start(off))?;
        Ok(BufReader::with_capacity(CHUNK, f).take(size))
    }
}

/// Picks the image of a `docker save` archive's manifest.json: by `NAME:TAG`, `@N`, or the
/// only one.
pub fn select_entry(
    entries: Vec<ManifestEntry>,
    select: Option<&str>,
    what: &str,
) -> Result<ManifestEntry> {
    match select {
        None if entries.len() == 1 => Ok(entries.into_iter().next().context("one entry")?),
        None => bail!(
            "{what} holds {} images; name one as docker-archive:FILE:NAME:TAG",
            entries.len()
        ),
        Some(s) if s.starts_with('@') => {
            let n: usize = s[1..].parse().with_context(|| format!("{what}: bad {s}"))?;
            entries
                .into_iter()
                .nth(n)
                .ok_or_else(|| anyhow!("{what}: no image {s}"))
        }
        Some(s) => {
            let want = ddiff_core::Reference::parse(s)
                .with_context(|| format!("{what}: {s:?}"))?
                .familiar();
            let names: Vec<String> = entries
                .iter()
                .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
                .collect();
            entries
                .into_iter()
                .find(|e| {
                    e.repo_tags.iter().flatten().any(|t| {
                        ddiff_core::Reference::parse(t).is_ok_and(|r| r.familiar() == want)
                    })
                })
                .ok_or_else(|| anyhow!("{what}: no image {s}; it has {}", names.join(", ")))
        }
    }
}

/// The image of a docker-archive file: its manifest.json entry, config bytes and config.
pub fn archive_image(
    index: &TarIndex,
    select: Option<&str>,
) -> Result<(ManifestEntry, Vec<u8>, ImageConfig)> {
    let what = format!("docker-archive:{}", index.path.display());
    let mj = index
        .read_small("manifest.json")
        .with_context(|| format!("{what}: not a docker save archive"))?;
    let entries = parse_manifest(&mj).with_context(|| what.clone())?;
    let e = select_entry(entries, select, &what)?;
    let cfg_path = normalize_entry_path(&e.config)?;
    let config = index.read_small(&cfg_path)?;
    if let Some(d) = e.config_digest() {
        if Digest::sha256(&config) != d {
            bail!("{what}: config {cfg_path} does not hash to {d}");
        }
    }
    let parsed = ImageConfig::parse(&config).with_context(|| format!("{what}: {cfg_path}"))?;
    if parsed.rootfs.diff_ids.len() != e.layers.len() {
        bail!(
            "{what}: config lists {} layers, manifest.json {}",
            parsed.rootfs.diff_ids.len(),
            e.layers.len()
        );
    }
    Ok((e, config, parsed))
}

/// The name an archive image gets in a bundle: its first tag, else the file's stem.
fn archive_name(e: &ManifestEntry, select: Option<&str>, path: &Path) -> String {
    if let Some(s) = select.filter(|s| !s.starts_with('@')) {
        if let Ok(r) = ddiff_core::Reference::parse(s) {
            return r.familiar();
        }
    }
    e.repo_tags
        .iter()
        .flatten()
        .next()
        .and_then(|t| ddiff_core::Reference::parse(t).ok())
        .map(|r| r.familiar())
        .unwrap_or_else(|| {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().to_lowercase())
                .unwrap_or_else(|| "image".into());
            let clean: String = stem
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            format!("{}:latest", clean.trim_matches('-'))
        })
}

/// Reads an image from a docker-archive file, compressing the layers whose diff_ids the base
/// lacks. Relied-on layers are not read at all.
pub fn image_from_archive(
    path: &Path,
    select: Option<&str>,
    base_diff_ids: &[Digest],
    settings: Settings,
    tmp_dir: &Path,
    item: &Item,
) -> Result<LocalImage> {
    let index = TarIndex::open(path)?;
    let (entry, config_bytes, config) = archive_image(&index, select)?;
    let ids = config.rootfs.diff_ids.clone();
    let carry = carried_layers(base_diff_ids, &ids);
    let mut temps = TempSet::new();
    let mut carried = BTreeMap::new();
    let mut layers = Vec::new();
    let mut full = config_bytes.len() as u64;
    for (i, lp) in entry.layers.iter().enumerate() {
        let lp = normalize_entry_path(lp)?;
        let size = index
            .size(&lp)
            .ok_or_else(|| anyhow!("{}: layer file {lp} is missing", path.display()))?;
        full += size;
        if !carry[i] {
            layers.push(ExportedLayer {
                diff_id: ids[i].clone(),
                tar_size: size,
                carried: None,
            });
            continue;
        }
        let (tmp, _) = temp_file(&mut temps, tmp_dir, "layer")?;
        let mut c = ParallelCompressor::create(&tmp, settings)?;
        let mut r = index.open_entry(&lp)?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            item.inc(n as u64);
            c.write(&buf[..n])?;
        }
        let done = c.finish()?;
        if done.diff_id != ids[i] {
            bail!(
                "{}: layer {lp} hashes to {}, the config says {}",
                path.display(),
                done.diff_id,
                ids[i]
            );
        }
        carried.insert(done.digest.clone(), tmp);
        layers.push(ExportedLayer {
            diff_id: done.diff_id,
            tar_size: done.raw_size,
            carried: Some(Descriptor::new(
                settings.codec.media_type(),
                done.digest,
                done.size,
            )),
        });
    }
    let (manifest, config) = engine_manifest(&config_bytes, &layers)?;
    Ok(LocalImage {
        name: archive_name(&entry, select, path),
        config_bytes,
        config,
        manifest,
        carried,
        temps,
        full_bytes: full,
    })
}

// ---------------------------------------------------------------------------------------
// Streams (the engine's image save): one pass, layers identified before they are read.

enum Found {
    /// Compressed while streaming.
    Carried(crate::compress::Compressed),
    /// Skipped; its index as hinted.
    Relied { size: u64, index: usize },
    /// Not identifiable before reading: spooled uncompressed.
    Spooled {
        path: PathBuf,
        diff_id: Digest,
        size: u64,
    },
}

/// Reads an image from a `docker save` stream of one image whose diff_ids (from image
/// inspect) are `target_diff_ids`. Carried layers are compressed as they stream through;
/// relied-on layers are skipped; a layer that cannot be identified from its name (neither
/// format nor v1 ID matched) is spooled to a temporary file and decided once hashed.
pub fn image_from_stream(
    mut input: impl Read,
    name: &str,
    target_diff_ids: &[Digest],
    base_diff_ids: &[Digest],
    settings: Settings,
    tmp_dir: &Path,
    item: &Item,
) -> Result<LocalImage> {
    let carry = carried_layers(base_diff_ids, target_diff_ids);
    let mut temps = TempSet::new();
    let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut found: BTreeMap<String, Found> = BTreeMap::new();
    let mut reader = TarReader::new();
    let mut buf = vec![0u8; CHUNK];

    enum Cur {
        None,
        Small(String, Vec<u8>),
        Compress(String, ParallelCompressor),
        Skip(String, u64, usize),
        Spool(String, PathBuf, BufWriterHash),
    }
    let mut cur = Cur::None;
    let mut ended = false;
    while !ended {
        let n = input.read(&mut buf).context("reading the image export")?;
        if n == 0 {
            break;
        }
        item.inc(n as u64);
        let mut chunk = &buf[..n];
        loop {
            let (used, ev) = reader.feed(chunk).context("image export")?;
            chunk = &chunk[used..];
            match ev {
                // "Need more input" only once the chunk is used up (the reader also returns
                // no event after consuming padding or a partial header).
                None if chunk.is_empty() || used == 0 => break,
                None => {}
                Some(TarEvent::End) => {
                    ended = true;
                    break;
                }
                Some(TarEvent::Header(e)) => {
                    if e.kind != ddiff_core::tar::EntryKind::File {
                        continue;
                    }
                    let p = normalize_entry_path(&e.path)?;
                    let json_of = |p: &str| {
                        p.strip_suffix("/layer.tar")
                            .and_then(|d| small.get(&format!("{d}/json")))
                            .map(Vec::as_slice)
                    };
                    let hint = if is_layer_path(&p) {
                        Some(layer_hint(&p, json_of(&p), target_diff_ids))
                    } else {
                        None
                    };
                    cur = match hint {
                        Some(LayerHint::Index(i)) if carry[i] => {
                            let (tmp, _) = temp_file(&mut temps, tmp_dir, "layer")?;
                            Cur::Compress(p, ParallelCompressor::create(&tmp, settings)?)
                        }
                        Some(LayerHint::Index(i)) => Cur::Skip(p, e.size, i),
                        _ if e.size <= MAX_SMALL && !p.ends_with("layer.tar") => {
                            Cur::Small(p, Vec::with_capacity(e.size as usize))
                        }
                        _ => {
                            let (tmp, f) = temp_file(&mut temps, tmp_dir, "spool")?;
                            Cur::Spool(p, tmp, BufWriterHash::new(f))
                        }
                    };
                }
                Some(TarEvent::Data(d)) => match &mut cur {
                    Cur::Small(_, v) => v.extend_from_slice(d),
                    Cur::Compress(_, c) => c.write(d)?,
                    Cur::Spool(_, _, w) => w.write(d)?,
                    Cur::Skip(..) | Cur::None => {}
                },
                Some(TarEvent::EntryEnd) => match std::mem::replace(&mut cur, Cur::None) {
                    Cur::Small(p, v) => {
                        small.insert(p, v);
                    }
                    Cur::Compress(p, c) => {
                        found.insert(p, Found::Carried(c.finish()?));
                    }
                    Cur::Skip(p, size, index) => {
                        found.insert(p, Found::Relied { size, index });
                    }
                    Cur::Spool(p, path, w) => {
                        let (diff_id, size) = w.finish()?;
                        found.insert(
                            p,
                            Found::Spooled {
                                path,
                                diff_id,
                                size,
                            },
                        );
                    }
                    Cur::None => {}
                },
            }
        }
    }
    if !ended {
        reader.finish().context("the image export ended early")?;
    }
    let mj = small
        .get("manifest.json")
        .ok_or_else(|| anyhow!("the image export of {name} has no manifest.json"))?;
    let entries = parse_manifest(mj).context("image export manifest.json")?;
    let entry = select_entry(entries, None, &format!("the image export of {name}"))?;
    let cfg_path = normalize_entry_path(&entry.config)?;
    let config_bytes = small
        .get(&cfg_path)
        .ok_or_else(|| anyhow!("the image export of {name} lacks its config {cfg_path}"))?
        .clone();
    if let Some(d) = entry.config_digest() {
        if Digest::sha256(&config_bytes) != d {
            bail!("the image export of {name}: config does not hash to {d}");
        }
    }
    let cfg = ImageConfig::parse(&config_bytes).context("image export config")?;
    let ids = &cfg.rootfs.diff_ids;
    if ids != target_diff_ids {
        bail!("{name} changed while it was exported (its layers differ from image inspect)");
    }
    let mut carried = BTreeMap::new();
    let mut layers = Vec::new();
    let mut full = config_bytes.len() as u64;
    for (i, lp) in entry.layers.iter().enumerate() {
        let lp = normalize_entry_path(lp)?;
        if !found.contains_key(&lp) {
            // A small layer file that could not be identified was kept in memory.
            let bytes = small
                .get(&lp)
                .ok_or_else(|| anyhow!("the image export of {name} lacks layer file {lp}"))?;
            let (tmp, mut f) = temp_file(&mut temps, tmp_dir, "spool")?;
            f.write_all(bytes)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            found.insert(
                lp.clone(),
                Found::Spooled {
                    path: tmp,
                    diff_id: Digest::sha256(bytes),
                    size: bytes.len() as u64,
                },
            );
        }
        let f = &found[&lp];
        let mismatch = |got: &Digest| {
            anyhow!(
                "the image export of {name}: layer {i} ({lp}) hashes to {got}, the config says {}",
                ids[i]
            )
        };
        let layer = match f {
            Found::Carried(c) => {
                full += c.raw_size;
                if c.diff_id != ids[i] {
                    return Err(mismatch(&c.diff_id));
                }
                carried.insert(c.digest.clone(), c.path.clone());
                ExportedLayer {
                    diff_id: c.diff_id.clone(),
                    tar_size: c.raw_size,
                    carried: Some(Descriptor::new(
                        settings.codec.media_type(),
                        c.digest.clone(),
                        c.size,
                    )),
                }
            }
            Found::Relied { size, index } => {
                full += size;
                if *index != i || carry[i] {
                    bail!("the image export of {name}: layer file {lp} was identified as layer {index}, manifest.json says {i}");
                }
                ExportedLayer {
                    diff_id: ids[i].clone(),
                    tar_size: *size,
                    carried: None,
                }
            }
            Found::Spooled {
                path,
                diff_id,
                size,
            } => {
                full += size;
                if diff_id != &ids[i] {
                    return Err(mismatch(diff_id));
                }
                if carry[i] {
                    let (tmp, _) = temp_file(&mut temps, tmp_dir, "layer")?;
                    let mut c = ParallelCompressor::create(&tmp, settings)?;
                    let mut r = File::open(path)?;
                    let mut b = vec![0u8; CHUNK];
                    loop {
                        let n = r.read(&mut b)?;
                        if n == 0 {
                            break;
                        }
                        c.write(&b[..n])?;
                    }
                    let c = c.finish()?;
                    carried.insert(c.digest.clone(), tmp);
                    ExportedLayer {
                        diff_id: c.diff_id,
                        tar_size: c.raw_size,
                        carried: Some(Descriptor::new(
                            settings.codec.media_type(),
                            c.digest,
                            c.size,
                        )),
                    }
                } else {
                    ExportedLayer {
                        diff_id: diff_id.clone(),
                        tar_size: *size,
                        carried: None,
                    }
                }
            }
        };
        layers.push(layer);
    }
    for f in found.values() {
        if let Found::Spooled { path, .. } = f {
            let _ = std::fs::remove_file(path);
        }
    }
    let (manifest, config) = engine_manifest(&config_bytes, &layers)?;
    Ok(LocalImage {
        name: name.to_string(),
        config_bytes,
        config,
        manifest,
        carried,
        temps,
        full_bytes: full,
    })
}

/// A file writer that hashes what it writes (spooled layers).
struct BufWriterHash {
    out: std::io::BufWriter<File>,
    ctx: ring::digest::Context,
    size: u64,
}

impl BufWriterHash {
    fn new(f: File) -> Self {
        BufWriterHash {
            out: std::io::BufWriter::with_capacity(CHUNK, f),
            ctx: ring::digest::Context::new(&ring::digest::SHA256),
            size: 0,
        }
    }
    fn write(&mut self, d: &[u8]) -> Result<()> {
        self.ctx.update(d);
        self.size += d.len() as u64;
        self.out.write_all(d).context("cannot spool layer")
    }
    fn finish(mut self) -> Result<(Digest, u64)> {
        self.out.flush().context("cannot spool layer")?;
        let d = Digest::from_raw(Algorithm::Sha256, self.ctx.finish().as_ref())
            .context("internal error: sha256 length")?;
        Ok((d, self.size))
    }
}

// ---------------------------------------------------------------------------------------
// docker load streams.

/// Writes the `docker load` stream planned by the core into `out`, copying carried layers
/// from the verified bundle. Returns the bytes written.
pub fn write_load_stream(
    bundle: &VerifiedBundle,
    archive: &LoadArchive,
    out: &mut dyn Write,
    item: Option<&Item>,
) -> Result<u64> {
    let mut hdr = Vec::with_capacity(1024);
    let mut total = 0u64;
    let mut emit = |out: &mut dyn Write, b: &[u8]| -> Result<()> {
        out.write_all(b).context("writing the docker load stream")?;
        total += b.len() as u64;
        if let Some(i) = item {
            i.inc(b.len() as u64);
        }
        Ok(())
    };
    for e in &archive.entries {
        hdr.clear();
        match e {
            LoadEntry::File { path, bytes } => {
                ddiff_core::tar::write_file(&mut hdr, path, bytes, 0o644, 0);
                emit(out, &hdr)?;
            }
            LoadEntry::Blob { path, index, size } => {
                ddiff_core::tar::write_header(&mut hdr, path, *size, 0o644, 0);
                emit(out, &hdr)?;
                let mut r = open_blob(bundle, *index)?;
                let mut buf = vec![0u8; CHUNK];
                let mut n_total = 0u64;
                loop {
                    let n = r.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    n_total += n as u64;
                    emit(out, &buf[..n])?;
                }
                if n_total != *size {
                    bail!("bundle blob {path} is {n_total} bytes, expected {size}");
                }
                let pad = vec![0u8; ddiff_core::tar::padding(*size)];
                emit(out, &pad)?;
            }
        }
    }
    hdr.clear();
    ddiff_core::tar::write_end(&mut hdr);
    emit(out, &hdr)?;
    Ok(total)
}

/// The bytes [`write_load_stream`] will write (for progress).
pub fn load_stream_size(archive: &LoadArchive) -> u64 {
    let mut n = 1024;
    for e in &archive.entries {
        let (p, s) = match e {
            LoadEntry::File { path, bytes } => (path, bytes.len() as u64),
            LoadEntry::Blob { path, size, .. } => (path, *size),
        };
        n += ddiff_core::tar::header_len(p, s) + s + ddiff_core::tar::padding(s) as u64;
    }
    n
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        for (p, d) in files {
            ddiff_core::tar::write_file(&mut v, p, d, 0o644, 0);
        }
        ddiff_core::tar::write_end(&mut v);
        v
    }

    #[test]
    fn index_reads_entries_by_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar");
        let long = format!("{}/layer.tar", "d".repeat(120));
        std::fs::write(
            &p,
            tar_of(&[("./manifest.json", b"[]"), (&long, b"layer bytes")]),
        )
        .unwrap();
        let idx = TarIndex::open(&p).unwrap();
        assert_eq!(idx.read_small("manifest.json").unwrap(), b"[]");
        assert_eq!(idx.read_small(&long).unwrap(), b"layer bytes");
        assert!(idx.read_small("nope").is_err());
    }
    /// A save stream whose layers cannot be identified from their names (no v1 json): both
    /// are spooled, hashed, and decided afterwards; the carried one is compressed.
    #[test]
    fn unidentified_layers_are_spooled_and_decided_once_hashed() {
        let l0 = tar_of(&[("a", b"base file")]);
        let l1 = tar_of(&[("b", b"app file")]);
        let ids = [Digest::sha256(&l0), Digest::sha256(&l1)];
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": ids},
        }))
        .unwrap();
        let cfg_name = format!("{}.json", Digest::sha256(&config).hex());
        let mj = format!(
            r#"[{{"Config":"{cfg_name}","RepoTags":["app:2"],"Layers":["x0/layer.tar","x1/layer.tar"]}}]"#
        );
        let stream = tar_of(&[
            ("x0/layer.tar", &l0),
            ("x1/layer.tar", &l1),
            (&cfg_name, &config),
            ("manifest.json", mj.as_bytes()),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let settings = crate::compress::CompressArgs::default().settings().unwrap();
        let item = crate::progress::Progress::new(crate::progress::Mode::Quiet).item("t", 0);
        for chunk in [1usize, 7, 512, 65536] {
            let img = image_from_stream(
                ChunkReader(&stream, chunk),
                "app:2",
                &ids,
                &ids[..1],
                settings,
                dir.path(),
                &item,
            )
            .unwrap();
            let m = img.manifest.as_image().unwrap().clone();
            assert_eq!(
                m.layers[0].digest, ids[0],
                "relied: uncompressed descriptor"
            );
            assert_eq!(m.layers[0].size, l0.len() as u64);
            assert_eq!(m.layers[1].media_type, ddiff_core::MediaType::OciLayerGzip);
            assert_eq!(img.carried.len(), 1);
            assert!(img.carried.values().all(|p| p.exists()));
            drop(img);
            // Spool and layer files are gone once the image is dropped.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
        // A layer that does not hash to the config's diff_id is refused.
        let bad = [ids[0].clone(), Digest::sha256(b"other")];
        assert!(image_from_stream(
            ChunkReader(&stream, 4096),
            "app:2",
            &bad,
            &[],
            settings,
            dir.path(),
            &item
        )
        .is_err());
    }

    struct ChunkReader<'a>(&'a [u8], usize);
    impl Read for ChunkReader<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.1.min(buf.len()).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
}
