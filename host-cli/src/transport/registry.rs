//! `docker://`: a repository of a registry as a source (resolve a reference, manifests and
//! blobs by digest: [`super::Location::Registry`]) and as a destination: a bundle's targets
//! loaded (blobs sent resumably or mounted across repositories, manifests children first,
//! tags last) or an engine image pushed.
//!
//! What the destination holds is asked here (HEAD per repository and blob, remembered for the
//! whole load; the base's layers by diff_id) and turned into a plan by the core
//! (`DestinationState`, `plan_load`, `check_tag`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use ddiff_core::bundle::Report;
use ddiff_core::destination::{base_repository, destination_repository};
use ddiff_core::engine_plan::engine_manifest;
use ddiff_core::oci_layout::target_name;
use ddiff_core::{
    check_tag, plan_load, Descriptor, DestinationState, Digest, ExportedLayer, ImageConfig,
    LoadPlan, Platform, RawManifest, Reference, TagHolder, TargetIndex,
};

use super::{LoadSummary, LocalImage, Location};
use crate::bundle_io::{open_blob_range, VerifiedBundle};
use crate::progress::{Item, Progress};
use crate::registry::client::{ClientOptions, Registry};

/// The repository and top manifest a `docker://` reference names, and the name a bundle
/// gives it.
pub async fn top(
    reference: &Reference,
    opts: &ClientOptions,
) -> Result<(Location, String, RawManifest)> {
    let client = Arc::new(Registry::new(reference.registry(), opts.clone())?);
    let loc = Location::Registry {
        client,
        repo: reference.repository().to_string(),
    };
    let tag_or_digest = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".into(),
    };
    let top = loc.manifest(&tag_or_digest).await?;
    Ok((loc, target_name(reference), top))
}

/// The layers of `repo:tag` (the platform's image of an index), with their diff_ids, that
/// the repository holds; `None` when the image cannot be read.
pub async fn image_layers(
    client: &Registry,
    repo: &str,
    tag: &str,
    platform: Option<&Platform>,
) -> Option<Vec<(Descriptor, Digest)>> {
    let m = client.get_manifest(repo, tag).await.ok()?;
    let img = match (m.as_index(), platform) {
        (Some(idx), Some(p)) => {
            let d = idx.select_platform(p).ok()?;
            client
                .get_manifest(repo, &d.digest.to_string())
                .await
                .ok()?
        }
        (Some(_), None) => return None,
        (None, _) => m,
    };
    let im = img.as_image()?;
    let cb = client.get_blob_bytes(repo, &im.config).await.ok()?;
    let cfg = ImageConfig::parse(&cb).ok()?;
    Some(
        im.layers
            .iter()
            .cloned()
            .zip(cfg.rootfs.diff_ids.iter().cloned())
            .collect(),
    )
}

// ---------------------------------------------------------------------------------------
// Loading a bundle.

/// One target planned for a registry load.
struct TargetPlan {
    report: Report,
    repo: String,
    tag: String,
    plan: LoadPlan,
    /// Base blobs to link from the base's repository (blob, from repository).
    mounts: Vec<(Digest, String)>,
}

/// Where the targets of a registry load went: `(repository, tag)` in target order.
pub type Written = Vec<(String, String)>;

/// Loads a verified bundle into the registry at `host`, each target under its own name or
/// `rename` (one-target bundles). Phase 1 plans every target (nothing is written, so a
/// missing base or a refused tag stops everything); phase 2 writes.
///
/// Linear in the bundle's entries and in its targets: the report is indexed once and
/// narrowed to each target without copying the rest, HEAD answers are remembered per
/// repository and blob, and each distinct blob is sent once per load (linked into the other
/// repositories that need it), however many targets share it.
pub async fn load(
    bundle: &Arc<VerifiedBundle>,
    host: &str,
    rename: Option<&Reference>,
    opts: &ClientOptions,
    jobs: u16,
    progress: &Progress,
) -> Result<(LoadSummary, Written)> {
    let meta = &bundle.report.meta;
    let client = Arc::new(Registry::new(host, opts.clone())?);
    client
        .ping()
        .await
        .with_context(|| format!("destination registry {host} does not answer"))?;
    let index = TargetIndex::new(&bundle.report);
    let mut probe = Probe::new(&client);
    let mut plans = Vec::new();
    let mut moves = Vec::new();
    for ti in 0..meta.targets.len() {
        let report = index.restrict(ti).context("internal error: target index")?;
        let t = &report.meta.targets[0];
        let (repo, tag) = match rename {
            Some(r) => (r.repository().to_string(), r.tag_or_latest().to_string()),
            None => {
                let r = Reference::parse(&t.reference)
                    .with_context(|| format!("bundle target {:?}", t.reference))?;
                (
                    destination_repository(&t.reference, &r),
                    r.tag_or_latest().to_string(),
                )
            }
        };
        let (state, mounts) = probe.state(&repo, &report).await?;
        let plan = plan_load(&report, &state).with_context(|| {
            let base = report.meta.base.as_ref().and_then(|b| b.references.first().cloned()).unwrap_or_else(|| "(unknown)".into());
            if report.meta.base.as_ref().is_some_and(|b| !b.inventories.is_empty()) {
                return format!("cannot load {} into {host}/{repo}: nothing was written; the site no longer holds what its inventory said (run `ddiff inventory` there again and plan a new bundle)", t.reference);
            }
            format!("cannot load {} into {host}/{repo}: nothing was written; push the base there first, e.g. `ddiff push {base}` or `skopeo copy ... docker://{host}/...`", t.reference)
        })?;
        // The tag it will move: never the base's; every other move is reported.
        let name = format!("{host}/{repo}:{tag}");
        let holder = client
            .head_manifest(&repo, &tag)
            .await
            .with_context(|| format!("reading {name}"))?
            .map(|digest| TagHolder {
                digest,
                diff_ids: None,
            });
        let new = plan
            .target_digest(0)
            .context("internal error: no target manifest")?;
        let dest_ref = Reference::parse(&format!("{repo}:{tag}"))
            .with_context(|| format!("destination name {repo}:{tag}"))?;
        moves.extend(
            check_tag(&report.meta, &name, Some(&dest_ref), holder.as_ref(), new).with_context(
                || {
                    format!(
                        "{}: cannot load {}: nothing was written",
                        bundle.path.display(),
                        t.reference
                    )
                },
            )?,
        );
        plans.push(TargetPlan {
            report,
            repo,
            tag,
            plan,
            mounts,
        });
    }
    let mut summary = write(bundle, &index, &client, &plans, host, jobs, progress).await?;
    summary.moved_tags = moves;
    if !meta.artifacts.is_empty() {
        let repos: Vec<(String, Vec<Digest>)> = plans
            .iter()
            .map(|p| {
                let t = &p.report.meta.targets[0];
                let mut s = vec![t.digest.clone()];
                s.extend(t.images.iter().map(|i| i.manifest.clone()));
                (p.repo.clone(), s)
            })
            .collect();
        summary.artifacts =
            super::provenance::load_registry(bundle, &client, &repos, progress).await?;
    }
    let written = plans.into_iter().map(|p| (p.repo, p.tag)).collect();
    Ok((summary, written))
}

/// Phase 2 of a registry load: base blobs linked, every distinct blob sent once (in bundle
/// order, so an original `.tar.gz` is inflated once) and linked into the other repositories
/// that need it, then manifests by digest, then each target's tag.
async fn write(
    bundle: &Arc<VerifiedBundle>,
    index: &TargetIndex<'_>,
    client: &Arc<Registry>,
    plans: &[TargetPlan],
    host: &str,
    jobs: u16,
    progress: &Progress,
) -> Result<LoadSummary> {
    let mut summary = LoadSummary {
        targets: plans.len(),
        ..LoadSummary::default()
    };
    // Base blobs found in the base's repository are linked only now, after every target
    // was planned: a refused load must not have written even a link.
    let mut linked: BTreeSet<(&str, &Digest)> = BTreeSet::new();
    for p in plans {
        for (digest, from) in &p.mounts {
            if !linked.insert((&p.repo, digest)) {
                continue;
            }
            if !client.mount_blob(&p.repo, digest, from).await? {
                bail!(
                    "{host}: cannot mount {digest} from {from} into {} (the registry refused a cross-repository mount)",
                    p.repo
                );
            }
            summary.mounted_blobs += 1;
        }
    }
    // What each repository needs, each (repository, blob) once; a blob goes over the wire
    // to the first repository that needs it and is linked into the others.
    let mut needed: BTreeSet<(&str, &Digest)> = BTreeSet::new();
    let mut sent_to: BTreeMap<&Digest, &str> = BTreeMap::new();
    let mut sends: Vec<(usize, &str)> = Vec::new();
    let mut links: Vec<(usize, &str, &str)> = Vec::new();
    let mut present: BTreeSet<(&str, &Digest)> = BTreeSet::new();
    let mut substituted: BTreeSet<(&str, &Digest)> = BTreeSet::new();
    for p in plans {
        let repo = p.repo.as_str();
        for &i in &p.plan.uploads {
            let d = &p.report.meta.blobs[i].digest;
            if !needed.insert((repo, d)) {
                continue;
            }
            let full = index.carried(d).context("internal error: blob index")?;
            match sent_to.get(d) {
                Some(from) => links.push((full, repo, from)),
                None => {
                    sent_to.insert(d, repo);
                    sends.push((full, repo));
                }
            }
        }
        for &i in &p.plan.already_present {
            present.insert((repo, &p.report.meta.blobs[i].digest));
        }
        // The base: there already, unless it was linked from the base's repository (under
        // its own digest, or under another one matched by diff_id).
        let subst: BTreeMap<&Digest, &Digest> = p
            .plan
            .substitutions
            .iter()
            .map(|(d, desc)| (d, &desc.digest))
            .collect();
        for r in &p.report.meta.relied {
            let there = subst.get(&r.digest).copied().unwrap_or(&r.digest);
            if !linked.contains(&(repo, there)) {
                present.insert((repo, &r.digest));
            }
        }
        for (d, _) in &p.plan.substitutions {
            substituted.insert((repo, d));
        }
    }
    summary.skipped_blobs = present.len();
    summary.substituted_layers = substituted.len();
    // In bundle order: an original bundle's blobs are then read in one inflating pass.
    sends.sort_by_key(|(i, _)| bundle.report.offsets[*i]);
    let sem = Arc::new(tokio::sync::Semaphore::new(usize::from(jobs)));
    let mut tasks = tokio::task::JoinSet::new();
    let sent = |summary: &mut LoadSummary, r: Result<Result<u64>, tokio::task::JoinError>| {
        let size = r??;
        summary.uploaded_bytes += size;
        summary.uploaded_blobs += 1;
        Ok::<(), anyhow::Error>(())
    };
    let upload = |full: usize, repo: &str, permit| {
        upload_one(
            client.clone(),
            bundle.clone(),
            full,
            repo.to_string(),
            progress.clone(),
            permit,
        )
    };
    for (full, repo) in sends {
        // Started in order: the permit is taken before the task exists.
        let permit = sem.clone().acquire_owned().await?;
        tasks.spawn(upload(full, repo, permit));
        while let Some(r) = tasks.try_join_next() {
            sent(&mut summary, r)?;
        }
    }
    while let Some(r) = tasks.join_next().await {
        sent(&mut summary, r)?;
    }
    for (full, repo, from) in links {
        let b = &bundle.report.meta.blobs[full];
        if client.mount_blob(repo, &b.digest, from).await? {
            summary.mounted_blobs += 1;
        } else {
            // The registry does not link across repositories: send it again.
            let permit = sem.clone().acquire_owned().await?;
            let r = upload(full, repo, permit).await;
            sent(&mut summary, Ok(r))?;
        }
    }
    // Manifests by digest, each (repository, manifest) once: image manifests in parallel,
    // then indexes in order (an index after its children). Then the tags, in parallel:
    // every tag's children are there by now.
    let mut put_done: BTreeSet<(&str, &Digest)> = BTreeSet::new();
    let mut images = Vec::new();
    let mut indexes = Vec::new();
    for p in plans {
        for m in &p.plan.manifests {
            if m.target.is_none() && put_done.insert((&p.repo, &m.digest)) {
                if m.media_type.is_index() {
                    indexes.push((p.repo.as_str(), m));
                } else {
                    images.push((p.repo.as_str(), m));
                }
            }
        }
    }
    let put = |repo: &str, reference: String, m: &ddiff_core::ManifestPut| {
        let client = client.clone();
        let (repo, mt, bytes, digest) = (
            repo.to_string(),
            m.media_type.as_str().to_string(),
            m.bytes.clone(),
            m.digest.clone(),
        );
        let host = host.to_string();
        async move {
            client
                .put_manifest(&repo, &reference, &mt, &bytes)
                .await
                .with_context(|| format!("writing manifest {digest} to {host}/{repo}"))
        }
    };
    for (repo, m) in images {
        let permit = sem.clone().acquire_owned().await?;
        let f = put(repo, m.digest.to_string(), m);
        tasks.spawn(async move {
            let _permit = permit;
            f.await.map(|()| 0)
        });
        while let Some(r) = tasks.try_join_next() {
            r??;
        }
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    for (repo, m) in indexes {
        put(repo, m.digest.to_string(), m).await?;
    }
    let mut tags = tokio::task::JoinSet::new();
    let mut tagged = Vec::new();
    for (ti, p) in plans.iter().enumerate() {
        for m in p.plan.manifests.iter().filter(|m| m.target.is_some()) {
            let permit = sem.clone().acquire_owned().await?;
            let f = put(&p.repo, p.tag.clone(), m);
            let name = format!("{host}/{}:{}@{}", p.repo, p.tag, m.digest);
            tags.spawn(async move {
                let _permit = permit;
                f.await.map(|()| (ti, name))
            });
            while let Some(r) = tags.try_join_next() {
                tagged.push(r??);
            }
        }
    }
    while let Some(r) = tags.join_next().await {
        tagged.push(r??);
    }
    tagged.sort_by_key(|(ti, _)| *ti);
    summary.images = tagged.into_iter().map(|(_, name)| name).collect();
    Ok(summary)
}

/// Sends one blob of the bundle (resumably) to `repo`; returns its size.
async fn upload_one(
    client: Arc<Registry>,
    bundle: Arc<VerifiedBundle>,
    full: usize,
    repo: String,
    progress: Progress,
    _permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<u64> {
    let b = bundle.report.meta.blobs[full].clone();
    let item = progress.item(format!("{} {}", b.kind_label(), b.digest.short()), b.size);
    let it = item.clone();
    let open =
        move |from: u64, len: u64| body_from_blob(bundle.clone(), full, from, len, it.clone());
    client
        .upload_blob_resumable(&repo, &b.digest, b.size, &open)
        .await?;
    item.finish("uploaded");
    Ok(b.size)
}

trait KindLabel {
    fn kind_label(&self) -> &'static str;
}

impl KindLabel for ddiff_core::bundle::BlobInfo {
    fn kind_label(&self) -> &'static str {
        match self.kind {
            ddiff_core::bundle::BlobKind::Config => "config",
            ddiff_core::bundle::BlobKind::Layer => "layer",
            _ => "manifest",
        }
    }
}

/// The destination's answers, remembered for the whole load: many targets sharing blobs
/// (or a base) ask about each blob of each repository once.
struct Probe<'a> {
    client: &'a Registry,
    exists: HashMap<(String, Digest), bool>,
    /// The base's layers with their diff_ids, by (repository, tag, platform).
    base_layers: HashMap<String, Option<Vec<(Descriptor, Digest)>>>,
}

impl<'a> Probe<'a> {
    fn new(client: &'a Registry) -> Self {
        Probe {
            client,
            exists: HashMap::new(),
            base_layers: HashMap::new(),
        }
    }

    async fn has(&mut self, repo: &str, digest: &Digest) -> Result<bool> {
        let key = (repo.to_string(), digest.clone());
        if let Some(&b) = self.exists.get(&key) {
            return Ok(b);
        }
        let b = self.client.blob_exists(repo, digest).await?.is_some();
        self.exists.insert(key, b);
        Ok(b)
    }

    async fn base_layers(
        &mut self,
        brepo: &str,
        btag: &str,
        platform: Option<&Platform>,
    ) -> Option<Vec<(Descriptor, Digest)>> {
        let key = format!("{brepo}:{btag} {platform:?}");
        if let Some(v) = self.base_layers.get(&key) {
            return v.clone();
        }
        let v = image_layers(self.client, brepo, btag, platform).await;
        self.base_layers.insert(key, v.clone());
        v
    }

    /// What repository `repo` holds of `report` (the core's questions, answered by HEAD);
    /// relied-on layers it lacks may be in the base's repository (to mount) or stored there
    /// under another digest (matched by diff_id). Read-only: the mounts are returned (blob,
    /// from repository) for the caller to do once every target was planned.
    async fn state(
        &mut self,
        repo: &str,
        report: &Report,
    ) -> Result<(DestinationState, Vec<(Digest, String)>)> {
        let mut state = DestinationState::default();
        let mut mounts = Vec::new();
        for d in DestinationState::questions(report) {
            if self.has(repo, d).await? {
                state.present.insert(d.clone());
            }
        }
        // Bundles planned against an inventory say where the site held each relied blob:
        // link it from there (the core's hint, asked by HEAD like the rest).
        for r in state.missing_relied(report) {
            // A hint from the bundle: only repository names in the grammar are asked.
            let valid = |f: &&String| {
                f.as_str() != repo && ddiff_core::reference::validate_repository(f).is_ok()
            };
            for from in r.repositories.iter().filter(valid) {
                if self.has(from, &r.digest).await? {
                    state.present.insert(r.digest.clone());
                    mounts.push((r.digest.clone(), from.clone()));
                    break;
                }
            }
        }
        let base = report
            .meta
            .base
            .as_ref()
            .and_then(|b| b.references.first())
            .and_then(|r| base_repository(r));
        let Some((brepo, btag)) = base else {
            return Ok((state, mounts));
        };
        let other_repo = brepo != repo;
        if other_repo {
            for r in state.missing_relied(report) {
                if self.has(&brepo, &r.digest).await? {
                    state.present.insert(r.digest.clone());
                    mounts.push((r.digest.clone(), brepo.clone()));
                }
            }
        }
        if state.missing_relied(report).is_empty() {
            return Ok((state, mounts));
        }
        // The base may be there under other blob digests (recompressed): match diff_ids.
        let platform = report.meta.targets[0]
            .images
            .first()
            .and_then(|i| i.platform.clone());
        let Some(layers) = self.base_layers(&brepo, &btag, platform.as_ref()).await else {
            return Ok((state, mounts));
        };
        for (l, id) in state
            .stand_ins(report, &layers)
            .into_iter()
            .cloned()
            .collect::<Vec<_>>()
        {
            let here = self.has(repo, &l.digest).await?;
            let mountable = !here && other_repo && self.has(&brepo, &l.digest).await?;
            if mountable {
                mounts.push((l.digest.clone(), brepo.clone()));
            }
            if here || mountable {
                state.stand_in(&l, &id);
            }
        }
        Ok((state, mounts))
    }
}

/// A streamed request body over a range of one blob of the bundle, read on a blocking thread.
pub(crate) fn body_from_blob(
    bundle: Arc<VerifiedBundle>,
    index: usize,
    from: u64,
    len: u64,
    item: Item,
) -> Result<reqwest::Body> {
    Ok(crate::registry::client::body_from_blocking_reader(
        move || open_blob_range(&bundle, index, from, len),
        move |n| item.inc(n),
    ))
}

// ---------------------------------------------------------------------------------------
// Pushing an engine image.

/// The layers of `repo:tag` the registry holds, by diff_id (empty when there is none): an
/// earlier push of the same image, whose layers need neither compressing nor sending again.
pub async fn known_layers(client: &Registry, repo: &str, tag: &str) -> Vec<(Digest, Descriptor)> {
    let Some(layers) = image_layers(client, repo, tag, None).await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (l, id) in layers {
        if client
            .blob_exists(repo, &l.digest)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            out.push((id, l));
        }
    }
    out
}

/// Pushes an image taken out of the engine to `repo:tag`: its carried layers (those not in
/// `known`, which are described by the registry's own blobs), its config, then the manifest
/// under the tag. Returns the manifest digest and the layer bytes sent.
pub async fn push_local(
    client: &Registry,
    repo: &str,
    tag: &str,
    local: &LocalImage,
    known: &[(Digest, Descriptor)],
    progress: &Progress,
) -> Result<(Digest, u64)> {
    let m = local.manifest.as_image().context("engine manifest")?;
    let layers: Vec<ExportedLayer> = m
        .layers
        .iter()
        .zip(&local.config.rootfs.diff_ids)
        .map(|(l, id)| ExportedLayer {
            diff_id: id.clone(),
            tar_size: l.size,
            carried: Some(
                known
                    .iter()
                    .find(|(k, _)| k == id)
                    .map(|(_, d)| d.clone())
                    .unwrap_or_else(|| l.clone()),
            ),
        })
        .collect();
    let (manifest, _) = engine_manifest(&local.config_bytes, &layers)?;
    let mut sent = 0u64;
    for (d, path) in &local.carried {
        if client.blob_exists(repo, d).await?.is_some() {
            continue;
        }
        let size = std::fs::metadata(path)?.len();
        let it = progress.item(format!("layer {}", d.short()), size);
        let (p, i2) = (path.clone(), it.clone());
        let open = move || {
            let it = i2.clone();
            Ok(crate::registry::client::body_from_file(
                p.clone(),
                move |n| it.inc(n),
            ))
        };
        client.upload_blob(repo, d, size, &open).await?;
        it.finish("pushed");
        sent += size;
    }
    let config_digest = Digest::sha256(&local.config_bytes);
    if client.blob_exists(repo, &config_digest).await?.is_none() {
        let body = Bytes::from(local.config_bytes.clone());
        let open = move || Ok(reqwest::Body::from(body.clone()));
        client
            .upload_blob(repo, &config_digest, local.config_bytes.len() as u64, &open)
            .await?;
    }
    client
        .put_manifest(repo, tag, manifest.media_type().as_str(), manifest.bytes())
        .await?;
    Ok((manifest.digest().clone(), sent))
}
