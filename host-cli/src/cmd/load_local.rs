//! `ddiff load` without a registry: into the local Docker engine (a `docker load` stream that
//! carries only the bundle's layers), into an OCI image layout (`--to oci:DIR`), or into a
//! `docker load` archive file (`--to docker-archive:FILE`).
//!
//! Nothing is written until every target was checked: for the engine, that it has the base
//! (an image whose layers are a prefix of the target's, covering every layer the bundle does
//! not carry); for a layout, that it holds every relied-on layer (by digest or diff_id).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bytes::Bytes;
use ddiff_core::bundle::Report;
use ddiff_core::engine_plan::{
    base_covers, docker_load_archive, docker_load_archive_indexed, docker_load_archive_omitting,
    layout_index_with,
};
use ddiff_core::{
    check_tag, plan_load, Descriptor, DestinationState, Digest, ImageConfig, ImageRef, LoadArchive,
    RawManifest, Reference, TagHolder, TagMove, TargetIndex,
};

use super::load::{verify_with_progress, LoadArgs, LoadSummary};
use super::Global;
use crate::archive::{load_stream_size, write_load_stream};
use crate::bundle_io::{open_blob, VerifiedBundle};
use crate::durable::{AtomicFile, TempSet};
use crate::engine::Engine;
use crate::source::LayoutStore;

/// Where a registry-less load goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalDest {
    /// The local engine; optionally renamed (one-target bundles).
    Engine(Option<String>),
    /// An OCI image layout directory.
    Layout(PathBuf),
    /// A tar of an OCI image layout (`oci-archive:FILE`), rewritten whole.
    OciArchive(PathBuf),
    /// A `docker load` archive file.
    Archive(PathBuf),
}

/// Whether `--to` (or its absence) means a registry-less load. Without `--to`, the engine is
/// used when no registry is configured (`DDIFF_URL`/`DDIFF_PORT` unset) and nothing answers
/// at `localhost:5000`.
pub async fn local_destination(to: Option<&str>) -> Result<Option<LocalDest>> {
    let Some(to) = to else {
        let configured =
            std::env::var_os("DDIFF_URL").is_some() || std::env::var_os("DDIFF_PORT").is_some();
        if configured {
            return Ok(None);
        }
        let answers = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            tokio::net::TcpStream::connect("localhost:5000"),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        return Ok((!answers).then_some(LocalDest::Engine(None)));
    };
    if to == "docker-daemon:" || to == "docker-daemon" {
        return Ok(Some(LocalDest::Engine(None)));
    }
    if let Some(rest) = to.strip_prefix("oci-archive:") {
        match ImageRef::parse(to).with_context(|| format!("--to {to:?}"))? {
            ImageRef::OciArchive {
                reference: None, ..
            } => return Ok(Some(LocalDest::OciArchive(PathBuf::from(rest)))),
            _ => bail!(
                "--to {to:?}: name the file only (oci-archive:FILE); images keep the bundle's tags"
            ),
        }
    }
    if to.starts_with("docker-daemon:")
        || to.starts_with("oci:")
        || to.starts_with("docker-archive:")
    {
        return Ok(Some(
            match ImageRef::parse(to).with_context(|| format!("--to {to:?}"))? {
                ImageRef::DockerDaemon(r) => LocalDest::Engine(Some(r.familiar())),
                ImageRef::Oci { path, reference } => {
                    if reference.is_some() {
                        bail!("--to {to:?}: name the layout only (oci:DIR); images keep the bundle's tags");
                    }
                    LocalDest::Layout(PathBuf::from(path))
                }
                ImageRef::DockerArchive { path, reference } => {
                    if reference.is_some() {
                        bail!("--to {to:?}: name the file only (docker-archive:FILE)");
                    }
                    LocalDest::Archive(PathBuf::from(path))
                }
                _ => unreachable!("prefix checked above"),
            },
        ));
    }
    Ok(None)
}

/// Runs a registry-less load.
pub async fn load_local(args: &LoadArgs, global: &Global, dest: LocalDest) -> Result<LoadSummary> {
    let progress = global.progress();
    let bundle = Arc::new(verify_with_progress(args.bundle.clone(), &progress).await?);
    let meta = &bundle.report.meta;
    let rename = match &dest {
        LocalDest::Engine(Some(n)) => Some(n.clone()),
        _ => None,
    };
    if rename.is_some() && meta.targets.len() != 1 {
        bail!(
            "--to docker-daemon:NAME needs a one-target bundle; this one has {}",
            meta.targets.len()
        );
    }
    match dest {
        LocalDest::Engine(_) => to_engine(&bundle, rename.as_deref(), global).await,
        LocalDest::Archive(path) => {
            if meta.targets.len() != 1 {
                bail!("--to docker-archive: needs a one-target bundle");
            }
            let a = docker_load_archive(&bundle.report, 0, None)?;
            let b = bundle.clone();
            tokio::task::spawn_blocking(move || write_archive_file(&b, &a, &path)).await??;
            Ok(LoadSummary {
                images: meta.targets.iter().map(|t| t.reference.clone()).collect(),
                uploaded_blobs: meta.blobs.len(),
                uploaded_bytes: meta.carried_bytes(),
                skipped_blobs: meta.relied.len(),
                ..LoadSummary::default()
            })
        }
        LocalDest::Layout(dir) => {
            let b = bundle.clone();
            tokio::task::spawn_blocking(move || to_layout(&b, &dir)).await?
        }
        LocalDest::OciArchive(path) => {
            let b = bundle.clone();
            tokio::task::spawn_blocking(move || to_oci_archive(&b, &path)).await?
        }
    }
}

fn write_archive_file(bundle: &VerifiedBundle, a: &LoadArchive, path: &Path) -> Result<()> {
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
    write_load_stream(bundle, a, &mut f, None)?;
    f.into_inner()
        .map_err(|e| e.into_error())
        .and_then(AtomicFile::commit)
        .with_context(|| format!("cannot create {}", path.display()))?;
    Ok(())
}

/// Names under which the engine may hold the base: as written, and without a registry host.
fn base_candidates(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for r in report.meta.base.iter().flat_map(|b| b.references.iter()) {
        let Ok(ir) = ImageRef::parse(r) else { continue };
        if let Some(reference) = ir.reference() {
            out.push(reference.familiar());
            let short = format!("{}:{}", reference.repository(), reference.tag_or_latest());
            if let Ok(s) = Reference::parse(&short) {
                out.push(s.familiar());
            }
        } else if let ImageRef::DockerArchive {
            reference: Some(n), ..
        } = ir
        {
            out.push(n);
        }
    }
    out.dedup();
    out
}

async fn to_engine(
    bundle: &Arc<VerifiedBundle>,
    rename: Option<&str>,
    global: &Global,
) -> Result<LoadSummary> {
    let progress = global.progress();
    let engine = Engine::connect().await?;
    let (version, major) = engine.version().await?;
    let meta = &bundle.report.meta;
    let base_name = meta
        .base
        .as_ref()
        .and_then(|b| b.references.first().cloned())
        .unwrap_or_else(|| "(none)".into());
    // Phase 1: check every target; nothing is sent before all pass.
    let mut archives = Vec::new();
    let mut all_images: Option<Vec<(String, Vec<Digest>)>> = None;
    let mut moves = Vec::new();
    let index = TargetIndex::new(&bundle.report);
    for ti in 0..meta.targets.len() {
        let a = docker_load_archive_indexed(&index, ti, rename)?;
        if a.zstd && major < 25 {
            bail!(
                "{}: the bundle's layers are zstd-compressed and this Docker engine ({version}) reads only gzip; make the bundle with --compression gzip (nothing was loaded)",
                a.tag
            );
        }
        if a.absent.iter().any(|x| *x) {
            let mut ok = false;
            for c in base_candidates(&bundle.report) {
                if let Some(img) = engine.inspect(&c).await? {
                    if base_covers(&a.diff_ids, &a.absent, &img.diff_ids) {
                        ok = true;
                        break;
                    }
                }
            }
            if !ok {
                // The base may be there under another name: look at every image.
                if all_images.is_none() {
                    let mut v = Vec::new();
                    for (id, _) in engine.list().await? {
                        if let Some(img) = engine.inspect(&id).await? {
                            v.push((id, img.diff_ids));
                        }
                    }
                    all_images = Some(v);
                }
                ok = all_images
                    .iter()
                    .flatten()
                    .any(|(_, ids)| base_covers(&a.diff_ids, &a.absent, ids));
            }
            if !ok {
                let n = a.absent.iter().filter(|x| **x).count();
                bail!(
                    "the local Docker engine lacks the base {base_name} of {} ({n} layer(s) the bundle does not carry); nothing was loaded. Bring the base first (docker load -i base.tar, or ddiff load of a bundle made with base scratch), then run this again",
                    a.tag
                );
            }
        }
        // The name it will take: never the base's; moving any other is reported.
        let holder = engine.inspect(&a.tag).await?.map(|img| TagHolder {
            digest: img.id,
            diff_ids: Some(img.diff_ids),
        });
        let dest = Reference::parse(&a.tag).ok();
        moves.extend(
            check_tag(meta, &a.tag, dest.as_ref(), holder.as_ref(), &a.image_id).with_context(
                || {
                    format!(
                        "{}: cannot load {}: nothing was loaded",
                        bundle.path.display(),
                        a.tag
                    )
                },
            )?,
        );
        archives.push(a);
    }
    // Phase 2: one docker load stream per target. Layers an earlier target of this load
    // already gave the engine (same layers below them) are left out of the later streams,
    // as the base's are: layers shared by many targets are streamed once.
    let mut summary = LoadSummary {
        targets: archives.len(),
        moved_tags: moves,
        ..LoadSummary::default()
    };
    let mut chains: std::collections::BTreeSet<Digest> = std::collections::BTreeSet::new();
    let mut had: std::collections::BTreeSet<Digest> = std::collections::BTreeSet::new();
    for (ti, first) in archives.into_iter().enumerate() {
        let ids = ddiff_core::engine_plan::chain_ids(&first.diff_ids);
        let a = if ids.iter().any(|c| chains.contains(c)) {
            docker_load_archive_omitting(&index, ti, rename, &|i| chains.contains(&ids[i]))?
        } else {
            first
        };
        let item = progress.item(format!("docker load {}", a.tag), load_stream_size(&a));
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let (b, a2, it) = (bundle.clone(), a.clone(), item.clone());
        let writer = tokio::task::spawn_blocking(move || {
            let mut w = ChannelWriter { tx: tx.clone() };
            let r = write_load_stream(&b, &a2, &mut w, Some(&it));
            if let Err(e) = &r {
                let _ = tx.blocking_send(Err(std::io::Error::other(crate::cmd::error_line(e))));
            }
            r
        });
        let msgs = engine.load(rx).await;
        let written = writer.await?;
        let msgs = msgs.with_context(|| format!("docker load of {}", a.tag))?;
        written?;
        item.finish("loaded");
        for m in &msgs {
            progress.println(m);
        }
        let got = engine
            .inspect(&a.tag)
            .await?
            .ok_or_else(|| anyhow!("docker load reported success but {} is not there", a.tag))?;
        if got.id != a.image_id {
            bail!(
                "{} is image {} after the load, expected {}",
                a.tag,
                got.id,
                a.image_id
            );
        }
        summary.images.push(format!("{}@{}", a.tag, a.image_id));
        for (i, e) in a.entries.iter().enumerate() {
            let _ = i;
            if let ddiff_core::LoadEntry::Blob { size, .. } = e {
                summary.uploaded_blobs += 1;
                summary.uploaded_bytes += size;
            }
        }
        // Left out and not given by an earlier target: the engine had them (the base).
        for (i, absent) in a.absent.iter().enumerate() {
            if *absent && !chains.contains(&ids[i]) {
                had.insert(ids[i].clone());
            }
        }
        chains.extend(ids);
    }
    summary.skipped_blobs = had.len();
    Ok(summary)
}

struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::other("the engine stopped reading the load stream"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// OCI image layouts.

fn layout_blob(dir: &Path, d: &Digest) -> PathBuf {
    dir.join(d.layout_path())
}

/// What the layout was found to hold, remembered across the targets of one load (many
/// targets sharing blobs look each up once), and its base layers by diff_id once read.
#[derive(Default)]
struct Presence {
    has: std::collections::HashMap<Digest, bool>,
    by_diff_id: Option<DestinationState>,
}

/// What the layout holds of the report's blobs, and its base layers by diff_id. `None`: a
/// layout that does not exist yet (it holds nothing).
fn layout_state(
    store: Option<&LayoutStore>,
    report: &Report,
    cache: &mut Presence,
) -> Result<DestinationState> {
    let mut state = DestinationState::default();
    let Some(store) = store else {
        return Ok(state);
    };
    let meta = &report.meta;
    for d in meta
        .relied
        .iter()
        .map(|r| &r.digest)
        .chain(meta.blobs.iter().map(|b| &b.digest))
    {
        let here = *cache
            .has
            .entry(d.clone())
            .or_insert_with(|| store.size(&d.layout_path()).is_some());
        if here {
            state.present.insert(d.clone());
        }
    }
    let missing = meta
        .relied
        .iter()
        .any(|r| !state.present.contains(&r.digest));
    if !missing {
        return Ok(state);
    }
    if cache.by_diff_id.is_none() {
        cache.by_diff_id = Some(layout_by_diff_id(store)?);
    }
    if let Some(b) = &cache.by_diff_id {
        for id in meta.relied.iter().filter_map(|r| r.diff_id.as_ref()) {
            if let Some(l) = b.by_diff_id.get(id) {
                state.present.insert(l.digest.clone());
                state.by_diff_id.insert(id.clone(), l.clone());
            }
        }
    }
    Ok(state)
}

/// Every layer of every image of the layout, by diff_id (for relied-on layers stored under
/// another digest).
fn layout_by_diff_id(store: &LayoutStore) -> Result<DestinationState> {
    let mut state = DestinationState::default();
    let has = |d: &Digest| store.size(&d.layout_path()).is_some();
    // Relied layers stored under another digest (compressed differently): map every image
    // of the layout by diff_id.
    let small = ddiff_core::manifest::MAX_MANIFEST_BYTES as u64;
    let Ok(bytes) = store.read_small("index.json", small) else {
        return Ok(state);
    };
    let mut stack: Vec<Descriptor> = RawManifest::parse(bytes, None)
        .ok()
        .and_then(|m| m.as_index().map(|i| i.manifests.clone()))
        .unwrap_or_default();
    let mut seen = std::collections::BTreeSet::new();
    while let Some(d) = stack.pop() {
        if !seen.insert(d.digest.clone()) {
            continue;
        }
        let Ok(b) = store.read_small(&d.digest.layout_path(), small) else {
            continue;
        };
        let Ok(m) = RawManifest::parse_with_digest(b, Some(d.media_type.as_str()), Some(&d.digest))
        else {
            continue;
        };
        if let Some(i) = m.as_index() {
            stack.extend(i.manifests.iter().cloned());
        } else if let Some(img) = m.as_image() {
            let Ok(cb) = store.read_small(&img.config.digest.layout_path(), small) else {
                continue;
            };
            let Ok(cfg) = ImageConfig::parse(&cb) else {
                continue;
            };
            for (l, id) in img.layers.iter().zip(&cfg.rootfs.diff_ids) {
                if has(&l.digest) {
                    state.present.insert(l.digest.clone());
                    state.by_diff_id.insert(id.clone(), l.clone());
                }
            }
        }
    }
    Ok(state)
}

/// Removes the temporary files (`blobs/<alg>/.ddiff-*.tmp`) left by a load that was killed
/// (SIGKILL gives no chance to clean up), keeping those of loads still running.
fn sweep_stale_temps(blobs: &Path) {
    let Ok(algs) = std::fs::read_dir(blobs) else {
        return;
    };
    for alg in algs.flatten() {
        crate::durable::sweep(&alg.path());
    }
}

/// One target's load into a layout: its report, plan, and manifests as written (OCI).
type LayoutPlan = (Report, ddiff_core::LoadPlan, Vec<ddiff_core::ManifestPut>);

/// index.json entries to add: descriptor, full name, tag.
type IndexEntry = (Descriptor, String, String);

/// Phase 1 of a layout load: every target planned against what the layout holds, and its
/// manifests converted to OCI media types. Writes nothing.
fn plan_layout(
    bundle: &VerifiedBundle,
    store: Option<&LayoutStore>,
    label: &str,
) -> Result<(Vec<LayoutPlan>, Vec<TagMove>)> {
    let meta = &bundle.report.meta;
    // The layout's tags, read once (a load of many targets must not re-read index.json).
    let tags = store.map(layout_tags).unwrap_or_default();
    let mut moves = Vec::new();
    let index = TargetIndex::new(&bundle.report);
    let mut plans = Vec::new();
    let mut has = Presence::default();
    for ti in 0..meta.targets.len() {
        let report = index.restrict(ti).context("internal error: target index")?;
        let state = layout_state(store, &report, &mut has)?;
        let what = || {
            format!(
                "cannot load {} into {label}: nothing was written",
                report.meta.targets[0].reference
            )
        };
        let plan = plan_load(&report, &state).with_context(what)?;
        // OCI tools resolve names in a layout only to OCI manifests: Docker ones are
        // rewritten as skopeo does (same config and layer bytes, new manifest digests).
        // Converted before anything is written, so a failure leaves the layout as it was.
        let manifests = ddiff_core::oci_convert::to_oci(&plan.manifests).with_context(what)?;
        // The entry it will replace (same ref.name): never the base's; other moves reported.
        let t = &report.meta.targets[0];
        let tag = Reference::parse(&t.reference)
            .with_context(|| format!("bundle target {:?}", t.reference))?
            .tag_or_latest()
            .to_string();
        let new = manifests
            .iter()
            .find(|m| m.target.is_some())
            .map(|m| m.digest.clone())
            .context("internal error: no target manifest")?;
        // An entry that already names the target is no move; its image is not read.
        let holder = match (store, tags.get(&tag)) {
            (Some(store), Some(entry)) if entry.digest != new => {
                Some(layout_tag_holder(store, entry))
            }
            (_, Some(entry)) => Some(TagHolder {
                digest: entry.digest.clone(),
                diff_ids: None,
            }),
            _ => None,
        };
        let full = Reference::parse(&t.reference).ok();
        moves.extend(
            check_tag(
                meta,
                &format!("{label}:{tag}"),
                full.as_ref(),
                holder.as_ref(),
                &new,
            )
            .with_context(|| format!("{}: {}", bundle.path.display(), what()))?,
        );
        plans.push((report, plan, manifests));
    }
    Ok((plans, moves))
}

/// The layout's entries by tag, read once per load (the format is core's).
fn layout_tags(store: &LayoutStore) -> std::collections::HashMap<String, Descriptor> {
    let small = ddiff_core::manifest::MAX_MANIFEST_BYTES as u64;
    store
        .read_small("index.json", small)
        .map(|b| ddiff_core::engine_plan::layout_tags(&b))
        .unwrap_or_default()
}

/// What a layout entry names, with its image's diff_ids when it is an image whose config the
/// layout holds.
fn layout_tag_holder(store: &LayoutStore, entry: &Descriptor) -> TagHolder {
    let small = ddiff_core::manifest::MAX_MANIFEST_BYTES as u64;
    let diff_ids = (|| {
        let b = store.read_small(&entry.digest.layout_path(), small).ok()?;
        let m = RawManifest::parse(b, Some(entry.media_type.as_str())).ok()?;
        let cfg = store
            .read_small(&m.as_image()?.config.digest.layout_path(), 16 << 20)
            .ok()?;
        Some(ImageConfig::parse(&cfg).ok()?.rootfs.diff_ids)
    })();
    TagHolder {
        digest: entry.digest.clone(),
        diff_ids,
    }
}

/// Where phase 2 of a layout load writes: a directory (`oci:`) or a new archive that
/// replaces the old one when complete (`oci-archive:`).
trait LayoutSink {
    /// Writes a blob if the layout lacks it, verifying it on the way.
    fn put(&mut self, d: &Digest, src: &mut dyn std::io::Read, size: u64) -> Result<()>;
}

/// Blobs into a layout directory. Each is verified into a temporary file beside its final
/// name (a [`TempSet`] member); none is fsynced or renamed into place until
/// [`DirSink::commit`], which makes them all durable at once (so a load of many small blobs
/// is not one fsync per blob), then renames them. A blob file under its digest's name is
/// therefore always complete, and index.json (written after `commit`) only ever names
/// durable blobs.
struct DirSink<'a> {
    dir: &'a Path,
    /// Written and not yet renamed (removed if the load stops before `commit`).
    pending: TempSet,
    /// Directories created or checked.
    dirs: std::collections::BTreeSet<PathBuf>,
}

impl<'a> DirSink<'a> {
    fn new(dir: &'a Path) -> Self {
        DirSink {
            dir,
            pending: TempSet::new(),
            dirs: std::collections::BTreeSet::new(),
        }
    }

    /// Makes every written blob durable, then renames each into place and syncs the
    /// directories holding them.
    fn commit(&mut self) -> Result<()> {
        self.pending
            .commit()
            .with_context(|| format!("cannot write the blobs of {}", self.dir.display()))
    }
}

impl LayoutSink for DirSink<'_> {
    fn put(&mut self, d: &Digest, src: &mut dyn std::io::Read, size: u64) -> Result<()> {
        let dest = layout_blob(self.dir, d);
        if dest.is_file() {
            return Ok(());
        }
        let parent = dest.parent().context("blob path has a parent")?;
        if !self.dirs.contains(parent) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
            self.dirs.insert(parent.to_path_buf());
        }
        // Registered as it is created, so a failure below removes it.
        let (tmp, mut f) = self
            .pending
            .create_for(&dest, "blob")
            .with_context(|| format!("cannot create a temporary file in {}", parent.display()))?;
        crate::hash::copy_verified(src, d, size, &mut |b| {
            f.write_all(b)
                .with_context(|| format!("cannot write {}", tmp.display()))
        })?;
        Ok(())
    }
}

/// Phase 2, common part: the planned blobs and manifests into `sink`, each distinct blob
/// once however many targets share it, in bundle order (an original `.tar.gz` bundle is
/// then inflated once); returns the summary and the index.json entries to add.
fn write_plans(
    bundle: &VerifiedBundle,
    plans: &[LayoutPlan],
    sink: &mut dyn LayoutSink,
    label: &str,
) -> Result<(LoadSummary, Vec<IndexEntry>)> {
    let index = TargetIndex::new(&bundle.report);
    let meta = &bundle.report.meta;
    let mut summary = LoadSummary {
        targets: plans.len(),
        ..LoadSummary::default()
    };
    let mut entries = Vec::new();
    let mut uploads = std::collections::BTreeSet::new();
    let mut present = std::collections::BTreeSet::new();
    let mut substituted = std::collections::BTreeSet::new();
    for (report, plan, _) in plans {
        for &i in &plan.uploads {
            uploads.insert(
                index
                    .carried(&report.meta.blobs[i].digest)
                    .context("internal error: blob index")?,
            );
        }
        present.extend(
            plan.already_present
                .iter()
                .map(|&i| &report.meta.blobs[i].digest),
        );
        present.extend(report.meta.relied.iter().map(|r| &r.digest));
        substituted.extend(plan.substitutions.iter().map(|(d, _)| d));
    }
    summary.skipped_blobs = present.len();
    summary.substituted_layers = substituted.len();
    let mut uploads: Vec<usize> = uploads.into_iter().collect();
    uploads.sort_by_key(|&i| bundle.report.offsets[i]);
    for full in uploads {
        let b = &meta.blobs[full];
        let mut r = open_blob(bundle, full)?;
        sink.put(&b.digest, &mut r, b.size)?;
        summary.uploaded_blobs += 1;
        summary.uploaded_bytes += b.size;
    }
    let mut written = std::collections::BTreeSet::new();
    let mut converted = std::collections::BTreeSet::new();
    for (report, plan, manifests) in plans {
        converted.extend(
            manifests
                .iter()
                .zip(&plan.manifests)
                .filter(|(new, old)| new.digest != old.digest)
                .map(|(new, _)| &new.digest),
        );
        for m in manifests {
            if written.insert(&m.digest) {
                sink.put(&m.digest, &mut &m.bytes[..], m.bytes.len() as u64)?;
            }
            if m.target.is_some() {
                let t = &report.meta.targets[0];
                let r = Reference::parse(&t.reference)
                    .with_context(|| format!("bundle target {:?}", t.reference))?;
                let d =
                    Descriptor::new(m.media_type.clone(), m.digest.clone(), m.bytes.len() as u64);
                entries.push((d, r.to_string(), r.tag_or_latest().to_string()));
                summary
                    .images
                    .push(format!("{label}:{}@{}", r.tag_or_latest(), m.digest));
            }
        }
    }
    summary.converted_manifests = converted.len();
    Ok((summary, entries))
}

fn to_layout(bundle: &VerifiedBundle, dir: &Path) -> Result<LoadSummary> {
    let label = format!("oci:{}", dir.display());
    let is_new = !dir.join("index.json").exists();
    let store = LayoutStore::Dir(dir.to_path_buf());
    // Phase 1: plan every target against what the layout holds.
    let (plans, moves) = plan_layout(bundle, Some(&store), &label)?;
    // Phase 2: blobs (verified into place), then index.json atomically.
    std::fs::create_dir_all(dir.join("blobs"))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    sweep_stale_temps(&dir.join("blobs"));
    crate::durable::sweep(dir);
    if is_new {
        crate::durable::write_whole(
            &dir.join("oci-layout"),
            "oci-layout",
            ddiff_core::bundle::meta::OCI_LAYOUT,
        )
        .with_context(|| format!("cannot write {}/oci-layout", dir.display()))?;
    }
    let mut sink = DirSink::new(dir);
    let (mut summary, entries) = write_plans(bundle, &plans, &mut sink, &label)?;
    summary.moved_tags = moves;
    // Every blob durable and in place before index.json names any of them.
    sink.commit()?;
    let index_path = dir.join("index.json");
    let existing = std::fs::read(&index_path).ok();
    let new_index = layout_index_with(existing.as_deref(), &entries)?;
    crate::durable::write_whole(&index_path, "index", &new_index)
        .with_context(|| format!("cannot write {}", index_path.display()))?;
    Ok(summary)
}

/// A new tar being written: the old archive's entries (copied by byte range, index.json
/// left out), then the new blobs, then `oci-layout` if missing and the new `index.json`.
struct ArchiveSink {
    out: std::io::BufWriter<AtomicFile>,
    tmp: PathBuf,
    have: std::collections::BTreeSet<String>,
}

impl LayoutSink for ArchiveSink {
    fn put(&mut self, d: &Digest, src: &mut dyn std::io::Read, size: u64) -> Result<()> {
        let name = d.layout_path();
        if self.have.contains(&name) {
            return Ok(());
        }
        let mut header = Vec::new();
        ddiff_core::tar::write_header(&mut header, &name, size, 0o644, 0);
        self.out.write_all(&header)?;
        let (out, tmp) = (&mut self.out, &self.tmp);
        crate::hash::copy_verified(src, d, size, &mut |b| {
            out.write_all(b)
                .with_context(|| format!("cannot write {}", tmp.display()))
        })?;
        self.out
            .write_all(&vec![0u8; ddiff_core::tar::padding(size)])?;
        self.have.insert(name);
        Ok(())
    }
}

/// `--to oci-archive:FILE`: the archive is rewritten into a temporary file beside it (its
/// entries copied by byte range, never unpacked) and renamed over it only when complete, so
/// an interrupted or refused load leaves the old file as it was. A missing FILE is created
/// (then the bundle must carry everything).
fn to_oci_archive(bundle: &VerifiedBundle, path: &Path) -> Result<LoadSummary> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let label = format!("oci-archive:{}", path.display());
    let old = if path.exists() {
        Some(crate::archive::TarIndex::open(path).with_context(|| label.clone())?)
    } else {
        None
    };
    let old = old.map(Arc::new);
    let store = old.clone().map(LayoutStore::Archive);
    if let (Some(s), Some(_)) = (&store, &old) {
        if s.size("index.json").is_none() {
            bail!("{label}: not an OCI image layout archive (no index.json); nothing was written");
        }
    }
    let (plans, moves) = plan_layout(bundle, store.as_ref(), &label)?;
    let existing_index = match &store {
        Some(s) => Some(s.read_small(
            "index.json",
            ddiff_core::manifest::MAX_MANIFEST_BYTES as u64,
        )?),
        None => None,
    };

    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Left by a load that was SIGKILLed here (no chance to clean up).
    crate::durable::sweep(dir);
    let file = AtomicFile::create(path, "oci-archive")
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let tmp = file.temp_path().to_path_buf();
    let mut sink = ArchiveSink {
        out: std::io::BufWriter::with_capacity(1 << 20, file),
        tmp: tmp.clone(),
        have: std::collections::BTreeSet::new(),
    };
    if let Some(idx) = &old {
        let mut f = std::fs::File::open(&idx.path)
            .with_context(|| format!("cannot open {}", idx.path.display()))?;
        for (name, start, end) in &idx.spans {
            if name.as_deref() == Some("index.json") {
                continue;
            }
            f.seek(SeekFrom::Start(*start))?;
            let copied = std::io::copy(&mut (&mut f).take(end - start), &mut sink.out)
                .with_context(|| format!("cannot copy {label} into {}", tmp.display()))?;
            if copied != end - start {
                bail!("{label}: changed while being read");
            }
            if let Some(n) = name {
                sink.have.insert(n.clone());
            }
        }
    }
    let (mut summary, entries) = write_plans(bundle, &plans, &mut sink, &label)?;
    summary.moved_tags = moves;
    let mut tail = Vec::new();
    if !sink.have.contains("oci-layout") {
        ddiff_core::tar::write_file(
            &mut tail,
            "oci-layout",
            ddiff_core::bundle::meta::OCI_LAYOUT,
            0o644,
            0,
        );
    }
    let new_index = layout_index_with(existing_index.as_deref(), &entries)?;
    ddiff_core::tar::write_file(&mut tail, "index.json", &new_index, 0o644, 0);
    ddiff_core::tar::write_end(&mut tail);
    sink.out.write_all(&tail)?;
    sink.out
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", tmp.display()))?
        .commit()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(summary)
}
