//! `ddiff load BUNDLE`: verify the bundle, check the destination has the base, upload only
//! what is missing, write manifests (children first, the tag last), then pull into Docker.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::bundle::Report;
use ddiff_core::{
    check_tag, plan_load, Descriptor, DestinationState, Digest, ImageConfig, LoadPlan, Reference,
    TagHolder, TagMove, TargetIndex,
};

use super::{default_registry, Global};
use crate::bundle_io::{open_blob_range, verify_file, VerifiedBundle};
use crate::progress::{human_bytes, Progress};
use crate::registry::client::Registry;

/// Load a bundle into a registry, then into the local Docker engine.
///
/// The registry is --to, else $DDIFF_URL, else localhost:$DDIFF_PORT, else localhost:5000;
/// --to also takes docker-daemon:, oci:DIR, oci-archive:FILE and docker-archive:FILE.
///
/// The bundle is verified completely first, and the destination is checked for every layer
/// the bundle relies on (the base) before anything is uploaded: a damaged bundle or a missing
/// base leaves the destination exactly as it was. Re-running an interrupted load finishes it
/// without re-sending what is already there. Bundles of the original DockerDiff
/// (.tar.gz) load too.
///
/// After a registry load each target is pulled into the local Docker engine under the name it
/// had on the online side, without the registry host (perf/app:2, or the --to rename), as
/// the original DockerDiff does, so `docker run perf/app:2` works next; this holds for
/// bundles made from a registry too (docker://online:5000/perf/app:2 gives perf/app:2).
/// ddiff streams the layers into the engine itself (no insecure-registries needed) and skips
/// the layers the engine already has.
///
/// Tags: a target's tag that names another image at the destination is moved, as docker load
/// and skopeo copy do, and every move is printed ("moved tag NAME: OLD -> NEW", and
/// moved_tags in --json); the tag of the base the bundle relies on is never moved (such a
/// load is refused before anything is written). A bundle proves its integrity, not who made
/// it.
///
/// Example: ddiff load app-2.ddiff --to docker://registry.local:5000
#[derive(clap::Args, Debug)]
pub struct LoadArgs {
    /// The bundle file.
    pub bundle: PathBuf,
    /// Destination: docker://HOST (keep the bundle's names) or docker://HOST/REPO:TAG
    /// (one-target bundles); docker-daemon: (the local engine, no registry needed;
    /// docker-daemon:NAME:TAG renames), oci:DIR (merge into a layout holding the base),
    /// oci-archive:FILE (the same for a tar of a layout; rewritten beside it, then renamed
    /// over it) or docker-archive:FILE (a `docker load` file). Without --to and with no registry
    /// configured or answering at localhost:5000, the local engine.
    #[arg(long, value_name = "REF")]
    pub to: Option<String>,
    /// Do not pull the loaded images into the local Docker engine afterwards (by default
    /// they are, named as on the online side without the registry host: perf/app:2).
    #[arg(long)]
    pub no_pull: bool,
    /// Parallel uploads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub jobs: u16,
}

/// What `load` reports (`--json`). Every count is of what really happened: a blob shared by
/// many targets is counted once.
#[derive(serde::Serialize, Default)]
pub struct LoadSummary {
    /// Images written, as `host/repo:tag@digest`.
    pub images: Vec<String>,
    /// Targets of the bundle.
    pub targets: usize,
    /// Blobs whose bytes were sent (registry), written (layout, archive) or streamed
    /// (engine), each distinct blob once per destination.
    pub uploaded_blobs: usize,
    /// Bytes of those blobs.
    pub uploaded_bytes: u64,
    /// Blobs linked into a repository from another one without sending their bytes again
    /// (base blobs from the base's repository; blobs shared by targets in several
    /// repositories).
    pub mounted_blobs: usize,
    /// Distinct blobs the targets need that were already at the destination (per
    /// repository for registries), the relied-on base included.
    pub skipped_blobs: usize,
    /// Base layers found by diff_id under another digest.
    pub substituted_layers: usize,
    /// Docker manifests written with OCI media types (`oci:` destinations).
    pub converted_manifests: usize,
    /// Pulled into the local engine.
    pub pulled: bool,
    /// The names the images have in the local engine after the pull.
    pub pulled_as: Vec<String>,
    /// Tags that named another image before the load, and now name the target.
    pub moved_tags: Vec<TagMove>,
}

/// The engine name of a target loaded into a registry at `repo:tag`: the same name without
/// the registry host (`perf/app:2`), which is the name it had on the online side unless `--to`
/// renamed it.
fn engine_name(repo: &str, tag: &str) -> Result<String> {
    Ok(Reference::parse(&format!("{repo}:{tag}"))
        .with_context(|| format!("destination name {repo}:{tag}"))?
        .familiar())
}

/// Where to load.
struct Dest {
    host: String,
    /// Repository and tag override (one-target bundles).
    rename: Option<Reference>,
}

fn parse_to(to: Option<&str>) -> Result<Dest> {
    let Some(to) = to else {
        return Ok(Dest {
            host: default_registry(),
            rename: None,
        });
    };
    let rest = to
        .strip_prefix("docker://")
        .ok_or_else(|| anyhow!("--to {to:?}: expected docker://HOST or docker://HOST/REPO:TAG"))?;
    if !rest.contains('/') {
        return Ok(Dest {
            host: rest.to_string(),
            rename: None,
        });
    }
    let r = Reference::parse(rest).with_context(|| format!("--to {to:?}"))?;
    Ok(Dest {
        host: r.registry().to_string(),
        rename: Some(r),
    })
}

/// Runs `load`.
pub async fn run(args: LoadArgs, global: &Global) -> Result<ExitCode> {
    let s = load(&args, global).await?;
    if global.json {
        println!("{}", ddiff_core::display::json_pretty(&s)?);
    } else {
        for i in &s.images {
            println!("loaded {}", ddiff_core::display::Safe(i));
        }
        for m in &s.moved_tags {
            println!(
                "moved tag {}: {} -> {}",
                ddiff_core::display::Safe(&m.name),
                m.from,
                m.to
            );
        }
        for n in &s.pulled_as {
            println!("pulled into Docker as {n}");
        }
        let mut line = format!(
            "uploaded {} blob(s), {}",
            s.uploaded_blobs,
            human_bytes(s.uploaded_bytes)
        );
        if s.targets > 1 {
            line.push_str(&format!(
                " for {} targets (blobs they share counted once)",
                s.targets
            ));
        }
        if s.mounted_blobs > 0 {
            line.push_str(&format!(
                "; {} linked from another repository of the registry (not sent again)",
                s.mounted_blobs
            ));
        }
        line.push_str(&format!("; {} already present", s.skipped_blobs));
        if s.substituted_layers > 0 {
            line.push_str(&format!(
                "; {} base layer(s) matched by diff_id (the destination stores them with another compression; manifests were rewritten to point at its blobs)",
                s.substituted_layers
            ));
        }
        if s.converted_manifests > 0 {
            line.push_str(&format!(
                "; {} Docker manifest(s) written with OCI media types, as skopeo does for oci: (same config and layers, so the digest above differs from the source's)",
                s.converted_manifests
            ));
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Verifies a bundle file with progress.
pub async fn verify_with_progress(path: PathBuf, progress: &Progress) -> Result<VerifiedBundle> {
    let size = std::fs::metadata(&path)
        .with_context(|| format!("cannot open bundle {}", path.display()))?
        .len();
    let item = progress.item(format!("verifying {}", path.display()), size);
    let it = item.clone();
    let vb = tokio::task::spawn_blocking(move || {
        let mut last = 0;
        verify_file(&path, |done, _| {
            it.inc(done.saturating_sub(last));
            last = done;
        })
    })
    .await??;
    item.finish("intact");
    Ok(vb)
}

/// One target planned for a registry load.
struct TargetPlan {
    report: Report,
    repo: String,
    tag: String,
    plan: LoadPlan,
    /// Base blobs to link from the base's repository (blob, from repository).
    mounts: Vec<(Digest, String)>,
}

/// The work of `load`, reusable by `demo`.
///
/// Linear in the bundle's entries and in its targets: the report is indexed once and
/// narrowed to each target without copying the rest, HEAD answers are remembered per
/// repository and blob, and each distinct blob is sent once per load (linked into the other
/// repositories that need it), however many targets share it.
pub async fn load(args: &LoadArgs, global: &Global) -> Result<LoadSummary> {
    // No registry: the local engine, an OCI layout or a docker load archive.
    if let Some(dest) = super::load_local::local_destination(args.to.as_deref()).await? {
        return super::load_local::load_local(args, global, dest).await;
    }
    let progress = global.progress();
    let dest = parse_to(args.to.as_deref())?;
    let bundle = Arc::new(verify_with_progress(args.bundle.clone(), &progress).await?);
    let meta = &bundle.report.meta;
    if dest.rename.is_some() && meta.targets.len() != 1 {
        bail!("--to with a repository needs a one-target bundle; this one has {} targets (use --to docker://HOST)", meta.targets.len());
    }
    let client = Arc::new(Registry::new(&dest.host, global.client_options())?);
    client
        .ping()
        .await
        .with_context(|| format!("destination registry {} does not answer", dest.host))?;
    let index = TargetIndex::new(&bundle.report);
    let mut probe = Probe::new(&client);
    let mut plans = Vec::new();
    let mut moves = Vec::new();
    // Phase 1: plan every target (no writes) so that a missing base stops everything.
    for ti in 0..meta.targets.len() {
        let report = index.restrict(ti).context("internal error: target index")?;
        let t = &report.meta.targets[0];
        let (repo, tag) = match &dest.rename {
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
        let (state, mounts) = destination_state(&mut probe, &repo, &report).await?;
        let plan = plan_load(&report, &state).with_context(|| {
            let base = report.meta.base.as_ref().and_then(|b| b.references.first().cloned()).unwrap_or_else(|| "(unknown)".into());
            format!("cannot load {} into {}/{repo}: nothing was written; push the base there first, e.g. `ddiff push {base}` or `skopeo copy ... docker://{}/...`", t.reference, dest.host, dest.host)
        })?;
        // The tag it will move: never the base's; every other move is reported.
        let name = format!("{}/{repo}:{tag}", dest.host);
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
                        args.bundle.display(),
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
    let summary = write_registry(
        &bundle, &index, &client, &plans, &dest.host, args, &progress,
    )
    .await?;
    let mut summary = summary;
    summary.moved_tags = moves;
    if !args.no_pull {
        match super::pull::EnginePuller::connect().await {
            Ok(mut engine) => {
                for p in &plans {
                    // The name the image had on the online side (or the --to rename), without
                    // the registry host: `docker run perf/app:2` works right after the load,
                    // as with the original DockerDiff.
                    let (repo, tag) = (&p.repo, &p.tag);
                    let name = engine_name(repo, tag)?;
                    progress.println(format!(
                        "pulling {}/{repo}:{tag} into the local Docker engine as {name}",
                        dest.host
                    ));
                    engine
                        .pull(&dest.host, repo, tag, &name, global)
                        .await
                        .with_context(|| {
                            format!("pulling {}/{repo}:{tag} into Docker", dest.host)
                        })?;
                    summary.pulled_as.push(name);
                }
                summary.pulled = true;
            }
            Err(e) => progress.println(format!(
                "note: not pulled into Docker ({}); use --no-pull to skip this step",
                super::error_line(&e)
            )),
        }
    }
    Ok(summary)
}

/// Phase 2 of a registry load: base blobs linked, every distinct blob sent once (in bundle
/// order, so an original `.tar.gz` is inflated once) and linked into the other repositories
/// that need it, then manifests by digest, then each target's tag.
async fn write_registry(
    bundle: &Arc<VerifiedBundle>,
    index: &TargetIndex<'_>,
    client: &Arc<Registry>,
    plans: &[TargetPlan],
    host: &str,
    args: &LoadArgs,
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
    let sem = Arc::new(tokio::sync::Semaphore::new(usize::from(args.jobs)));
    let mut tasks = tokio::task::JoinSet::new();
    let sent = |summary: &mut LoadSummary, r: Result<Result<u64>, tokio::task::JoinError>| {
        let size = r??;
        summary.uploaded_bytes += size;
        summary.uploaded_blobs += 1;
        Ok::<(), anyhow::Error>(())
    };
    for (full, repo) in sends {
        // Started in order: the permit is taken before the task exists.
        let permit = sem.clone().acquire_owned().await?;
        tasks.spawn(upload_one(
            client.clone(),
            bundle.clone(),
            full,
            repo.to_string(),
            progress.clone(),
            permit,
        ));
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
            let r = upload_one(
                client.clone(),
                bundle.clone(),
                full,
                repo.to_string(),
                progress.clone(),
                permit,
            )
            .await;
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

    /// The layers of the base image `brepo:btag` (the platform's image of an index), with
    /// their diff_ids; `None` when it cannot be read.
    async fn base_layers(
        &mut self,
        brepo: &str,
        btag: &str,
        platform: Option<&ddiff_core::Platform>,
    ) -> Option<Vec<(Descriptor, Digest)>> {
        let key = format!("{brepo}:{btag} {platform:?}");
        if let Some(v) = self.base_layers.get(&key) {
            return v.clone();
        }
        let v = self.read_base_layers(brepo, btag, platform).await;
        self.base_layers.insert(key, v.clone());
        v
    }

    async fn read_base_layers(
        &self,
        brepo: &str,
        btag: &str,
        platform: Option<&ddiff_core::Platform>,
    ) -> Option<Vec<(Descriptor, Digest)>> {
        let client = self.client;
        let m = client.get_manifest(brepo, btag).await.ok()?;
        let img = match (m.as_index(), platform) {
            (Some(idx), Some(p)) => {
                let d = idx.select_platform(p).ok()?;
                client
                    .get_manifest(brepo, &d.digest.to_string())
                    .await
                    .ok()?
            }
            (Some(_), None) => return None,
            (None, _) => m,
        };
        let im = img.as_image()?;
        let cb = client.get_blob_bytes(brepo, &im.config).await.ok()?;
        let cfg = ImageConfig::parse(&cb).ok()?;
        Some(
            im.layers
                .iter()
                .cloned()
                .zip(cfg.rootfs.diff_ids.iter().cloned())
                .collect(),
        )
    }
}

/// What the destination repository already holds of this report's blobs; for missing base
/// layers, those in the base repository (to mount) and, failing that, the base's layers by
/// diff_id. Read-only: the mounts are returned (blob, from repository) for the caller to do
/// once every target was planned.
async fn destination_state(
    probe: &mut Probe<'_>,
    repo: &str,
    report: &Report,
) -> Result<(DestinationState, Vec<(Digest, String)>)> {
    let mut mounts = Vec::new();
    let meta = &report.meta;
    let mut state = DestinationState::default();
    let base_repo = meta
        .base
        .as_ref()
        .and_then(|b| b.references.first())
        .and_then(|r| {
            base_reference(r)
                .map(|p| (destination_repository(r, &p), p.tag_or_latest().to_string()))
        });
    let mut missing_relied = Vec::new();
    for r in &meta.relied {
        if probe.has(repo, &r.digest).await? {
            state.present.insert(r.digest.clone());
        } else {
            missing_relied.push(r);
        }
    }
    if let Some((brepo, _)) = &base_repo {
        if brepo != repo {
            let mut still = Vec::new();
            for r in missing_relied {
                if probe.has(brepo, &r.digest).await? {
                    state.present.insert(r.digest.clone());
                    mounts.push((r.digest.clone(), brepo.clone()));
                } else {
                    still.push(r);
                }
            }
            missing_relied = still;
        }
    }
    if !missing_relied.is_empty() {
        if let Some((brepo, btag)) = &base_repo {
            // The base may be there under other blob digests (recompressed): match diff_ids.
            let wanted_platform = meta.targets[0]
                .images
                .first()
                .and_then(|i| i.platform.clone());
            if let Some(layers) = probe
                .base_layers(brepo, btag, wanted_platform.as_ref())
                .await
            {
                let needed: BTreeSet<&Digest> = missing_relied
                    .iter()
                    .filter_map(|r| r.diff_id.as_ref())
                    .collect();
                for (l, d) in &layers {
                    if !needed.contains(d) {
                        continue;
                    }
                    let here = probe.has(repo, &l.digest).await?;
                    let mountable = !here && brepo != repo && probe.has(brepo, &l.digest).await?;
                    if mountable {
                        mounts.push((l.digest.clone(), brepo.clone()));
                    }
                    if here || mountable {
                        state.present.insert(l.digest.clone());
                        state.by_diff_id.insert(
                            d.clone(),
                            Descriptor::new(l.media_type.clone(), l.digest.clone(), l.size),
                        );
                    }
                }
            }
        }
    }
    for b in &meta.blobs {
        if matches!(
            b.kind,
            ddiff_core::bundle::BlobKind::Config | ddiff_core::bundle::BlobKind::Layer
        ) && probe.has(repo, &b.digest).await?
        {
            state.present.insert(b.digest.clone());
        }
    }
    Ok((state, mounts))
}

/// The repository an image named `written` goes to in a private registry: names written
/// without a registry (`bb:new`, as the original tool and Docker users write them) keep their
/// short path (`bb`), not Docker Hub's `library/bb`.
pub fn destination_repository(written: &str, parsed: &Reference) -> String {
    let w = written
        .strip_prefix("docker://")
        .or_else(|| written.strip_prefix("docker-daemon:"))
        .unwrap_or(written);
    let explicit_hub = w.starts_with("docker.io/") || w.starts_with("index.docker.io/");
    if parsed.registry() == "docker.io" && !explicit_hub {
        parsed.familiar_name()
    } else {
        parsed.repository().to_string()
    }
}

/// The base reference of a bundle as the destination would know it: its repository and tag
/// (whatever transport or registry it was named with on the source side).
fn base_reference(s: &str) -> Option<Reference> {
    let s = s
        .strip_prefix("docker://")
        .or_else(|| s.strip_prefix("docker-daemon:"))
        .unwrap_or(s);
    Reference::parse(s).ok()
}

/// A streamed request body over a range of one blob of the bundle, read on a blocking thread.
fn body_from_blob(
    bundle: Arc<VerifiedBundle>,
    index: usize,
    from: u64,
    len: u64,
    item: crate::progress::Item,
) -> Result<reqwest::Body> {
    Ok(crate::registry::client::body_from_blocking_reader(
        move || open_blob_range(&bundle, index, from, len),
        move |n| item.inc(n),
    ))
}
