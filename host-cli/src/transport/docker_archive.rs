//! `docker-archive:` and the `docker save` format: a `docker save` file as a source (read by
//! offset; the base is known by its config's diff_ids, a target's carried layers are
//! compressed as they are read), the engine's image-save stream read in one pass
//! ([`image_from_stream`], for [`super::engine`]), and the `docker load` stream written from
//! a bundle ([`write_load_stream`]) into a `docker-archive:` file or the engine.
//!
//! Which image of an archive a name means, which layers to carry, the manifests and the
//! load stream's entries are the core's (`ddiff_core::docker_archive`,
//! `ddiff_core::engine_plan`); tar framing is the core's framer through [`TarOut`].

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::docker_archive::{normalize_entry_path, parse_manifest, ManifestEntry};
use ddiff_core::engine_plan::{carried_layers, engine_manifest, is_layer_path, layer_hint};
use ddiff_core::tar::{TarEvent, TarReader};
use ddiff_core::{
    Descriptor, Digest, ExportedLayer, ImageConfig, LayerHint, LoadArchive, LoadEntry,
};

use super::tar_file::{TarIndex, TarOut, CHUNK, MAX_SMALL};
use super::{LoadSummary, LocalImage};
use crate::bundle_io::{open_blob, VerifiedBundle};
use crate::compress::{ParallelCompressor, Settings};
use crate::durable::{AtomicFile, TempSet};
use crate::progress::{Item, Progress};

/// A new temporary file of `temps` in `dir` (next to the output, so on the same disk).
fn temp_file(temps: &mut TempSet, dir: &Path, what: &str) -> Result<(PathBuf, File)> {
    temps
        .create(dir, what)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
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
    let e = ddiff_core::docker_archive::choose(entries, select).with_context(|| what.clone())?;
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

/// Reads an image from a docker-archive file, compressing the layers whose diff_ids the base
/// lacks. Relied-on layers are not read at all.
fn image_from_archive(
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
        name: ddiff_core::docker_archive::image_name(
            &entry,
            select,
            path.file_stem().map(|s| s.to_string_lossy()).as_deref(),
        ),
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
    let entry = ddiff_core::docker_archive::choose(entries, None)
        .with_context(|| format!("the image export of {name}"))?;
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
        Ok((crate::hash::sha256_of(self.ctx), self.size))
    }
}

// ---------------------------------------------------------------------------------------
// docker load streams.

/// Writes the `docker load` stream planned by the core into `out`: its files, and each
/// blob entry's bytes from `open(index)` (a carried blob of a bundle, a layer of a registry
/// image). Returns the bytes written.
pub fn write_load_stream(
    archive: &LoadArchive,
    open: &mut dyn FnMut(usize) -> Result<Box<dyn Read + Send>>,
    out: &mut dyn Write,
    item: Option<&Item>,
) -> Result<u64> {
    let mut tar = TarOut::new(out, item.cloned());
    for e in &archive.entries {
        match e {
            LoadEntry::File { path, bytes } => tar.file(path, bytes)?,
            LoadEntry::Blob { path, index, size } => {
                let mut r = open(*index)?;
                tar.entry_from(path, *size, &mut r)?;
            }
        }
    }
    let (_, n) = tar.finish().context("writing the docker load stream")?;
    Ok(n)
}

/// The base's diff_ids, from the config of the image `select` names in a `docker save` file
/// (its layers are never read).
pub fn diff_ids(path: &Path, select: Option<&str>) -> Result<Vec<Digest>> {
    let idx = TarIndex::open(path)?;
    Ok(archive_image(&idx, select)?.2.rootfs.diff_ids)
}

/// Reads the image `select` names from a `docker save` file, compressing the layers whose
/// diff_ids are not in `base_ids` (on a blocking thread, with progress).
pub async fn read_image(
    path: &Path,
    select: Option<&str>,
    base_ids: &[Digest],
    settings: Settings,
    tmp_dir: &Path,
    progress: &Progress,
) -> Result<LocalImage> {
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot open {}", path.display()))?
        .len();
    let item = progress.item(format!("reading {}", path.display()), size);
    let (base_ids, tmp_dir, it) = (base_ids.to_vec(), tmp_dir.to_path_buf(), item.clone());
    let (p, sel) = (path.to_path_buf(), select.map(str::to_string));
    let local = tokio::task::spawn_blocking(move || {
        image_from_archive(&p, sel.as_deref(), &base_ids, settings, &tmp_dir, &it)
    })
    .await??;
    item.finish("read");
    Ok(local)
}

/// `--to docker-archive:FILE`: the one target's `docker load` file, written beside FILE and
/// renamed over it when complete.
pub fn load(bundle: &VerifiedBundle, path: &Path) -> Result<LoadSummary> {
    let meta = &bundle.report.meta;
    let a = ddiff_core::engine_plan::docker_load_archive(&bundle.report, 0, None)?;
    // Left by a load that was SIGKILLed here (no chance to clean up).
    crate::durable::sweep(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    );
    let mut f = std::io::BufWriter::new(
        AtomicFile::create(path, "archive")
            .with_context(|| format!("cannot create {}", path.display()))?,
    );
    write_load_stream(&a, &mut |i| open_blob(bundle, i), &mut f, None)?;
    f.into_inner()
        .map_err(|e| e.into_error())
        .and_then(AtomicFile::commit)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(LoadSummary {
        images: meta.targets.iter().map(|t| t.reference.clone()).collect(),
        uploaded_blobs: meta.blobs.len(),
        uploaded_bytes: meta.carried_bytes(),
        skipped_blobs: meta.relied.len(),
        ..LoadSummary::default()
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::transport::tar_file::tar_of;

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
