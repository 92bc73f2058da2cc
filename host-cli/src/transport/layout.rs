//! `oci:` and `oci-archive:`: an OCI image layout (a directory, or a tar of one read in place
//! by offset) as a source ([`LayoutStore`], [`super::Location::Layout`]) and as a load
//! destination: blobs verified into place and `index.json` written last (a directory), or a
//! new archive (the old one's entries copied by byte range, never unpacked) renamed over the
//! old one when complete.
//!
//! Which entry a reference names, the tags the layout has and its `index.json` after a load
//! are the core's (`ddiff_core::oci_layout`); what the layout holds is asked here and turned
//! into a plan by the core (`DestinationState`, `plan_load`, `check_tag`).

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::bundle::Report;
use ddiff_core::oci_layout::{index_with, NewEntry};
use ddiff_core::{
    check_tag, plan_load, Descriptor, DestinationState, Digest, ImageConfig, ImageRef, RawManifest,
    Reference, TagHolder, TagMove, TargetIndex,
};

use super::tar_file::{TarIndex, TarOut};
use super::LoadSummary;
use crate::bundle_io::{open_blob, VerifiedBundle};
use crate::durable::{AtomicFile, TempSet};

/// An OCI image layout: a directory (`oci:DIR`) or a tar of one (`oci-archive:FILE`), read
/// in place (the archive is indexed once and its entries are read by offset, never
/// unpacked).
#[derive(Clone)]
pub enum LayoutStore {
    /// A directory.
    Dir(PathBuf),
    /// A tar file.
    Archive(Arc<TarIndex>),
}

impl LayoutStore {
    /// Opens the layout an `oci:` / `oci-archive:` path names.
    pub fn open(r: &ImageRef) -> Result<LayoutStore> {
        match r {
            ImageRef::Oci { path, .. } => Ok(LayoutStore::Dir(PathBuf::from(path))),
            ImageRef::OciArchive { path, .. } => Ok(LayoutStore::Archive(Arc::new(
                TarIndex::open(Path::new(path))?,
            ))),
            other => bail!("{other}: not an OCI image layout"),
        }
    }

    /// `oci:DIR` or `oci-archive:FILE`, for messages.
    pub fn describe(&self) -> String {
        match self {
            LayoutStore::Dir(d) => format!("oci:{}", d.display()),
            LayoutStore::Archive(i) => format!("oci-archive:{}", i.path.display()),
        }
    }

    /// A name for images found only by their `ref.name` tag: the directory's or file's
    /// name (the core's rule).
    fn repository_guess(&self) -> String {
        let stem = match self {
            LayoutStore::Dir(d) => d.file_name(),
            LayoutStore::Archive(i) => i.path.file_stem(),
        };
        ddiff_core::oci_layout::repository_guess(stem.map(|s| s.to_string_lossy()).as_deref())
    }

    /// The size of a file of the layout (`index.json`, `blobs/sha256/…`), `None` if absent.
    pub(crate) fn size(&self, rel: &str) -> Option<u64> {
        match self {
            LayoutStore::Dir(d) => std::fs::metadata(d.join(rel))
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
            LayoutStore::Archive(i) => i.size(rel),
        }
    }

    /// A reader over a file of the layout.
    pub(crate) fn open_file(&self, rel: &str) -> Result<Box<dyn std::io::Read + Send>> {
        match self {
            LayoutStore::Dir(d) => {
                let path = d.join(rel);
                let f = std::fs::File::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                Ok(Box::new(f))
            }
            LayoutStore::Archive(i) => Ok(Box::new(i.open_entry(rel)?)),
        }
    }

    /// Reads a file of at most `limit` bytes whole.
    pub(crate) fn read_small(&self, rel: &str, limit: u64) -> Result<Vec<u8>> {
        use std::io::Read;
        let size = self
            .size(rel)
            .ok_or_else(|| anyhow!("{}: {rel} missing", self.describe()))?;
        if size > limit.max(1) {
            bail!(
                "{}: {rel} is {size} bytes, expected at most {limit}",
                self.describe()
            );
        }
        let mut v = Vec::with_capacity(size as usize);
        self.open_file(rel)?
            .take(size)
            .read_to_end(&mut v)
            .with_context(|| format!("{}: cannot read {rel}", self.describe()))?;
        Ok(v)
    }

    /// Reads a blob of at most `limit` bytes whole (not verified).
    fn read_blob(&self, d: &Digest, limit: u64) -> Result<Vec<u8>> {
        let rel = d.layout_path();
        if self.size(&rel).is_none() {
            bail!("{}: blob {d} missing", self.describe());
        }
        self.read_small(&rel, limit)
    }
    /// `index.json`, whole.
    pub(crate) fn index_json(&self) -> Result<Vec<u8>> {
        self.read_small(
            "index.json",
            ddiff_core::manifest::MAX_MANIFEST_BYTES as u64,
        )
    }

    /// The entry `reference` names (`ref.name`, `@N`, or the only one) and the name a bundle
    /// gives its image.
    pub fn choose(&self, reference: Option<&str>) -> Result<(Descriptor, String)> {
        let label = self.describe();
        let bytes = self.index_json().with_context(|| {
            format!("{label}: cannot read index.json (is this an OCI image layout?)")
        })?;
        let c = ddiff_core::oci_layout::choose(&bytes, reference, &label)
            .with_context(|| label.clone())?;
        let name = c
            .name
            .or_else(|| {
                c.ref_name
                    .map(|t| format!("{}:{t}", self.repository_guess()))
            })
            .unwrap_or_else(|| format!("image@{}", c.descriptor.digest));
        Ok((c.descriptor, name))
    }

    /// A manifest by digest (`reference` must be one).
    pub fn manifest(&self, reference: &str) -> Result<RawManifest> {
        let d = Digest::parse(reference)
            .with_context(|| format!("{}: {reference:?} is not a digest", self.describe()))?;
        let bytes = self.read_blob(&d, ddiff_core::manifest::MAX_MANIFEST_BYTES as u64)?;
        RawManifest::parse_with_digest(bytes, None, Some(&d)).with_context(|| self.describe())
    }

    /// A manifest by descriptor (media type known).
    pub fn manifest_by_descriptor(&self, d: &Descriptor) -> Result<RawManifest> {
        let bytes = self.read_blob(&d.digest, d.size)?;
        RawManifest::parse_with_digest(bytes, Some(d.media_type.as_str()), Some(&d.digest))
            .with_context(|| self.describe())
    }

    /// A small blob whole, verified.
    pub fn blob_bytes(&self, d: &Descriptor) -> Result<Vec<u8>> {
        let b = self.read_blob(&d.digest, d.size)?;
        super::check_bytes(&b, d).with_context(|| self.describe())?;
        Ok(b)
    }

    /// Streams a blob into `sink`, verified.
    pub fn blob_stream(
        &self,
        d: &Descriptor,
        sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
    ) -> Result<()> {
        let rel = d.digest.layout_path();
        if self.size(&rel).is_none() {
            bail!("{}: blob {} missing", self.describe(), d.digest);
        }
        let mut f = self.open_file(&rel)?;
        crate::hash::copy_verified(&mut f, &d.digest, d.size, sink).with_context(|| self.describe())
    }

    /// Whether the layout holds a blob.
    fn has(&self, d: &Digest) -> bool {
        self.size(&d.layout_path()).is_some()
    }

    /// The layers of every image of the layout with their diff_ids (images whose manifest or
    /// config cannot be read are passed over).
    fn all_layers(&self) -> Vec<(Descriptor, Digest)> {
        let small = ddiff_core::manifest::MAX_MANIFEST_BYTES as u64;
        let mut out = Vec::new();
        let Ok(bytes) = self.index_json() else {
            return out;
        };
        let mut stack = ddiff_core::oci_layout::entries(&bytes);
        let mut seen = BTreeSet::new();
        while let Some(d) = stack.pop() {
            if !seen.insert(d.digest.clone()) {
                continue;
            }
            let Ok(b) = self.read_small(&d.digest.layout_path(), small) else {
                continue;
            };
            let Ok(m) =
                RawManifest::parse_with_digest(b, Some(d.media_type.as_str()), Some(&d.digest))
            else {
                continue;
            };
            if let Some(i) = m.as_index() {
                stack.extend(i.manifests.iter().cloned());
            } else if let Some(img) = m.as_image() {
                let Ok(cb) = self.read_small(&img.config.digest.layout_path(), small) else {
                    continue;
                };
                let Ok(cfg) = ImageConfig::parse(&cb) else {
                    continue;
                };
                out.extend(img.layers.iter().cloned().zip(cfg.rootfs.diff_ids));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------------------
// Loading a bundle.

fn layout_blob(dir: &Path, d: &Digest) -> PathBuf {
    dir.join(d.layout_path())
}

/// What the layout was found to hold, remembered across the targets of one load (many
/// targets sharing blobs look each up once), and its images' layers once read.
#[derive(Default)]
struct Presence {
    has: HashMap<Digest, bool>,
    layers: Option<Vec<(Descriptor, Digest)>>,
}

impl Presence {
    fn has(&mut self, store: &LayoutStore, d: &Digest) -> bool {
        *self.has.entry(d.clone()).or_insert_with(|| store.has(d))
    }

    /// What the layout holds of the report's blobs (the core's questions), relied-on layers
    /// stored under another digest matched by diff_id. `None`: a layout that does not exist
    /// yet (it holds nothing).
    fn state(&mut self, store: Option<&LayoutStore>, report: &Report) -> DestinationState {
        let mut state = DestinationState::default();
        let Some(store) = store else {
            return state;
        };
        for d in DestinationState::questions(report) {
            if self.has(store, d) {
                state.present.insert(d.clone());
            }
        }
        if state.missing_relied(report).is_empty() {
            return state;
        }
        let layers = self
            .layers
            .get_or_insert_with(|| store.all_layers())
            .clone();
        for (l, id) in state
            .stand_ins(report, &layers)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
        {
            if self.has(store, &l.digest) {
                state.stand_in(&l, &id);
            }
        }
        state
    }
}

/// One target's load into a layout: its report, plan, and manifests as written (OCI).
type LayoutPlan = (Report, ddiff_core::LoadPlan, Vec<ddiff_core::ManifestPut>);

/// Phase 1 of a layout load: every target planned against what the layout holds, and its
/// manifests converted to OCI media types. Writes nothing.
fn plan(
    bundle: &VerifiedBundle,
    store: Option<&LayoutStore>,
    label: &str,
) -> Result<(Vec<LayoutPlan>, Vec<TagMove>)> {
    let meta = &bundle.report.meta;
    // The layout's tags, read once (a load of many targets must not re-read index.json).
    let tags = store
        .and_then(|s| s.index_json().ok())
        .map(|b| ddiff_core::oci_layout::tags(&b))
        .unwrap_or_default();
    let mut moves = Vec::new();
    let index = TargetIndex::new(&bundle.report);
    let mut plans = Vec::new();
    let mut presence = Presence::default();
    for ti in 0..meta.targets.len() {
        let report = index.restrict(ti).context("internal error: target index")?;
        let state = presence.state(store, &report);
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
            (Some(store), Some(entry)) if entry.digest != new => Some(tag_holder(store, entry)),
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

/// What a layout entry names, with its image's diff_ids when it is an image whose config the
/// layout holds.
fn tag_holder(store: &LayoutStore, entry: &Descriptor) -> TagHolder {
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
    dirs: BTreeSet<PathBuf>,
}

impl<'a> DirSink<'a> {
    fn new(dir: &'a Path) -> Self {
        DirSink {
            dir,
            pending: TempSet::new(),
            dirs: BTreeSet::new(),
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
) -> Result<(LoadSummary, Vec<NewEntry>)> {
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
                entries.push(NewEntry {
                    descriptor: d,
                    name: r.to_string(),
                    tag: r.tag_or_latest().to_string(),
                });
                summary
                    .images
                    .push(format!("{label}:{}@{}", r.tag_or_latest(), m.digest));
            }
        }
    }
    summary.converted_manifests = converted.len();
    Ok((summary, entries))
}

/// `--to oci:DIR`: blobs verified into place, then `index.json` atomically.
pub fn load_dir(bundle: &VerifiedBundle, dir: &Path) -> Result<LoadSummary> {
    let label = format!("oci:{}", dir.display());
    let is_new = !dir.join("index.json").exists();
    let store = LayoutStore::Dir(dir.to_path_buf());
    // Phase 1: plan every target against what the layout holds.
    let (plans, moves) = plan(bundle, Some(&store), &label)?;
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
    let (mut summary, mut entries) = write_plans(bundle, &plans, &mut sink, &label)?;
    summary.moved_tags = moves;
    let referrers = write_artifacts(bundle, &mut sink, &mut entries, &mut summary)?;
    // Every blob durable and in place before index.json names any of them.
    sink.commit()?;
    let index_path = dir.join("index.json");
    let existing = std::fs::read(&index_path).ok();
    let new_index = final_index(existing.as_deref(), &entries, &referrers)?;
    crate::durable::write_whole(&index_path, "index", &new_index)
        .with_context(|| format!("cannot write {}", index_path.display()))?;
    Ok(summary)
}

/// The layout's new `index.json`: `existing` with the named `entries` and the unnamed
/// `referrers` (artifacts found through their `subject`).
fn final_index(
    existing: Option<&[u8]>,
    entries: &[NewEntry],
    referrers: &[Descriptor],
) -> Result<Vec<u8>> {
    let index = index_with(existing, entries)?;
    Ok(if referrers.is_empty() {
        index
    } else {
        ddiff_core::oci_layout::index_with_unnamed(&index, referrers)?
    })
}

/// Writes the bundle's provenance artifacts' blobs into the layout and adds their entries
/// ([`ddiff_core::provenance::layout_entries`]); returns the referrers' descriptors.
fn write_artifacts(
    bundle: &VerifiedBundle,
    sink: &mut dyn LayoutSink,
    entries: &mut Vec<NewEntry>,
    summary: &mut LoadSummary,
) -> Result<Vec<Descriptor>> {
    let meta = &bundle.report.meta;
    let mut wanted: BTreeSet<Digest> = BTreeSet::new();
    for a in &meta.artifacts {
        let (_, _, blobs) = super::provenance::artifact_manifest(bundle, a)?;
        wanted.extend(blobs.into_iter().map(|b| b.digest));
    }
    for (i, b) in meta.blobs.iter().enumerate() {
        if wanted.contains(&b.digest) {
            let mut r = crate::bundle_io::open_blob(bundle, i)?;
            sink.put(&b.digest, &mut r, b.size)?;
        }
    }
    let (named, referrers) = ddiff_core::provenance::layout_entries(meta)?;
    summary.artifacts = meta.artifacts.len();
    entries.extend(named);
    Ok(referrers)
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

/// A new tar being written: the old archive's entries (copied by byte range, index.json
/// left out), then the new blobs, then `oci-layout` if missing and the new `index.json`.
struct ArchiveSink {
    out: TarOut<std::io::BufWriter<AtomicFile>>,
    tmp: PathBuf,
    have: BTreeSet<String>,
}

impl LayoutSink for ArchiveSink {
    fn put(&mut self, d: &Digest, src: &mut dyn std::io::Read, size: u64) -> Result<()> {
        let name = d.layout_path();
        if self.have.contains(&name) {
            return Ok(());
        }
        let tmp = &self.tmp;
        self.out
            .entry(&name, size, |sink| {
                crate::hash::copy_verified(src, d, size, sink)
            })
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        self.have.insert(name);
        Ok(())
    }
}

/// `--to oci-archive:FILE`: the archive is rewritten into a temporary file beside it (its
/// entries copied by byte range, never unpacked) and renamed over it only when complete, so
/// an interrupted or refused load leaves the old file as it was. A missing FILE is created
/// (then the bundle must carry everything).
pub fn load_archive(bundle: &VerifiedBundle, path: &Path) -> Result<LoadSummary> {
    use std::io::{Seek as _, SeekFrom};
    let label = format!("oci-archive:{}", path.display());
    let old = if path.exists() {
        Some(Arc::new(
            TarIndex::open(path).with_context(|| label.clone())?,
        ))
    } else {
        None
    };
    let store = old.clone().map(LayoutStore::Archive);
    if let Some(s) = &store {
        if s.size("index.json").is_none() {
            bail!("{label}: not an OCI image layout archive (no index.json); nothing was written");
        }
    }
    let (plans, moves) = plan(bundle, store.as_ref(), &label)?;
    let existing_index = match &store {
        Some(s) => Some(s.index_json()?),
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
        out: TarOut::new(std::io::BufWriter::with_capacity(1 << 20, file), None),
        tmp: tmp.clone(),
        have: BTreeSet::new(),
    };
    if let Some(idx) = &old {
        let mut f = std::fs::File::open(&idx.path)
            .with_context(|| format!("cannot open {}", idx.path.display()))?;
        for (name, start, end) in &idx.spans {
            if name.as_deref() == Some("index.json") {
                continue;
            }
            f.seek(SeekFrom::Start(*start))?;
            sink.out
                .raw(&mut f, end - start)
                .with_context(|| format!("cannot copy {label} into {}", tmp.display()))?;
            if let Some(n) = name {
                sink.have.insert(n.clone());
            }
        }
    }
    let (mut summary, mut entries) = write_plans(bundle, &plans, &mut sink, &label)?;
    summary.moved_tags = moves;
    let referrers = write_artifacts(bundle, &mut sink, &mut entries, &mut summary)?;
    if !sink.have.contains("oci-layout") {
        sink.out
            .file("oci-layout", ddiff_core::bundle::meta::OCI_LAYOUT)?;
    }
    let new_index = final_index(existing_index.as_deref(), &entries, &referrers)?;
    sink.out.file("index.json", &new_index)?;
    let (out, _) = sink.out.finish()?;
    out.into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("cannot write {}", tmp.display()))?
        .commit()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(summary)
}
