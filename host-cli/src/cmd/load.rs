//! `ddiff load BUNDLE`: verify the bundle, check the destination has the base, upload only
//! what is missing, write manifests (children first, the tag last), then pull into Docker.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::bundle::Report;
use ddiff_core::{
    plan_load, restrict_to_target, Descriptor, DestinationState, Digest, ImageConfig, Reference,
};

use super::{default_registry, Global};
use crate::bundle_io::{open_blob, verify_file, VerifiedBundle};
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

/// What `load` reports (`--json`).
#[derive(serde::Serialize, Default)]
pub struct LoadSummary {
    /// Images written, as `host/repo:tag@digest`.
    pub images: Vec<String>,
    /// Blobs uploaded.
    pub uploaded_blobs: usize,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Blobs already at the destination.
    pub skipped_blobs: usize,
    /// Base layers found by diff_id under another digest.
    pub substituted_layers: usize,
    /// Docker manifests written with OCI media types (`oci:` destinations).
    pub converted_manifests: usize,
    /// Pulled into the local engine.
    pub pulled: bool,
    /// The names the images have in the local engine after the pull.
    pub pulled_as: Vec<String>,
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
        for n in &s.pulled_as {
            println!("pulled into Docker as {n}");
        }
        let mut line = format!(
            "uploaded {} blob(s), {}; {} already present",
            s.uploaded_blobs,
            human_bytes(s.uploaded_bytes),
            s.skipped_blobs
        );
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

/// The work of `load`, reusable by `demo`.
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
    let mut summary = LoadSummary::default();
    let mut plans = Vec::new();
    // Phase 1: plan every target (no writes) so that a missing base stops everything.
    for ti in 0..meta.targets.len() {
        let report =
            restrict_to_target(&bundle.report, ti).context("internal error: target index")?;
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
        let (state, mounts) = destination_state(&client, &repo, &report).await?;
        let plan = plan_load(&report, &state).with_context(|| {
            let base = report.meta.base.as_ref().and_then(|b| b.references.first().cloned()).unwrap_or_else(|| "(unknown)".into());
            format!("cannot load {} into {}/{repo}: nothing was written; push the base there first, e.g. `ddiff push {base}` or `skopeo copy ... docker://{}/...`", t.reference, dest.host, dest.host)
        })?;
        plans.push((report, repo, tag, state, plan, mounts));
    }
    // Phase 2: blobs (parallel), then manifests, tags last.
    for (report, repo, tag, state, plan, mounts) in &plans {
        let _ = state;
        // Base blobs found in the base's repository are linked only now, after every target
        // was planned: a refused load must not have written even a link.
        for (digest, from) in mounts {
            if !client.mount_blob(repo, digest, from).await? {
                bail!(
                    "{}: cannot mount {digest} from {from} into {repo} (the registry refused a cross-repository mount)",
                    dest.host
                );
            }
        }
        summary.substituted_layers += plan.substitutions.len();
        summary.skipped_blobs += plan.already_present.len() + report.meta.relied.len();
        let sem = Arc::new(tokio::sync::Semaphore::new(usize::from(args.jobs)));
        let mut tasks = tokio::task::JoinSet::new();
        for &i in &plan.uploads {
            let b = report.meta.blobs[i].clone();
            // The index of this blob in the full bundle (offsets are per full report).
            let full_index = bundle
                .report
                .meta
                .blobs
                .iter()
                .position(|x| x.digest == b.digest)
                .context("internal error: blob index")?;
            let item = progress.item(format!("{} {}", b.kind_label(), b.digest.short()), b.size);
            let (client, bundle, repo, sem) =
                (client.clone(), bundle.clone(), repo.clone(), sem.clone());
            tasks.spawn(async move {
                let _permit = sem.acquire().await?;
                let it = item.clone();
                let open = move |from: u64, len: u64| {
                    body_from_blob(bundle.clone(), full_index, from, len, it.clone())
                };
                client
                    .upload_blob_resumable(&repo, &b.digest, b.size, &open)
                    .await?;
                item.finish("uploaded");
                Ok::<u64, anyhow::Error>(b.size)
            });
        }
        while let Some(r) = tasks.join_next().await {
            summary.uploaded_bytes += r??;
            summary.uploaded_blobs += 1;
        }
        for m in &plan.manifests {
            let reference = match m.target {
                Some(_) => tag.clone(),
                None => m.digest.to_string(),
            };
            client
                .put_manifest(repo, &reference, m.media_type.as_str(), &m.bytes)
                .await
                .with_context(|| {
                    format!("writing manifest {} to {}/{repo}", m.digest, dest.host)
                })?;
            if m.target.is_some() {
                summary
                    .images
                    .push(format!("{}/{repo}:{tag}@{}", dest.host, m.digest));
            }
        }
    }
    if !args.no_pull {
        match super::pull::EnginePuller::connect().await {
            Ok(mut engine) => {
                for (_, repo, tag, _, _, _) in &plans {
                    // The name the image had on the online side (or the --to rename), without
                    // the registry host: `docker run perf/app:2` works right after the load,
                    // as with the original DockerDiff.
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

/// What the destination repository already holds of this report's blobs; for missing base
/// layers, those in the base repository (to mount) and, failing that, the base's layers by
/// diff_id. Read-only: the mounts are returned (blob, from repository) for the caller to do
/// once every target was planned.
async fn destination_state(
    client: &Registry,
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
        if client.blob_exists(repo, &r.digest).await?.is_some() {
            state.present.insert(r.digest.clone());
        } else {
            missing_relied.push(r);
        }
    }
    if let Some((brepo, _)) = &base_repo {
        if brepo != repo {
            let mut still = Vec::new();
            for r in missing_relied {
                if client.blob_exists(brepo, &r.digest).await?.is_some() {
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
            if let Ok(m) = client.get_manifest(brepo, btag).await {
                let wanted_platform = meta.targets[0]
                    .images
                    .first()
                    .and_then(|i| i.platform.clone());
                let img = match (m.as_index(), &wanted_platform) {
                    (Some(idx), Some(p)) => match idx.select_platform(p) {
                        Ok(d) => client.get_manifest(brepo, &d.digest.to_string()).await.ok(),
                        Err(_) => None,
                    },
                    (Some(_), None) => None,
                    (None, _) => Some(m),
                };
                if let Some(img) = img {
                    if let Some(im) = img.as_image() {
                        if let Ok(cb) = client.get_blob_bytes(brepo, &im.config).await {
                            if let Ok(cfg) = ImageConfig::parse(&cb) {
                                let needed: BTreeSet<&Digest> = missing_relied
                                    .iter()
                                    .filter_map(|r| r.diff_id.as_ref())
                                    .collect();
                                for (l, d) in im.layers.iter().zip(&cfg.rootfs.diff_ids) {
                                    if !needed.contains(d) {
                                        continue;
                                    }
                                    let here = client.blob_exists(repo, &l.digest).await?.is_some();
                                    let mountable = !here
                                        && brepo != repo
                                        && client.blob_exists(brepo, &l.digest).await?.is_some();
                                    if mountable {
                                        mounts.push((l.digest.clone(), brepo.clone()));
                                    }
                                    if here || mountable {
                                        state.present.insert(l.digest.clone());
                                        state.by_diff_id.insert(
                                            d.clone(),
                                            Descriptor::new(
                                                l.media_type.clone(),
                                                l.digest.clone(),
                                                l.size,
                                            ),
                                        );
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for b in &meta.blobs {
        if matches!(
            b.kind,
            ddiff_core::bundle::BlobKind::Config | ddiff_core::bundle::BlobKind::Layer
        ) && client.blob_exists(repo, &b.digest).await?.is_some()
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

/// Opens `len` bytes of blob `index` from offset `from` within the blob.
fn open_blob_range(
    bundle: &VerifiedBundle,
    index: usize,
    from: u64,
    len: u64,
) -> Result<Box<dyn Read + Send>> {
    use std::io::{Seek, SeekFrom};
    match bundle.format {
        crate::bundle_io::Format::V1 => {
            let mut f = std::fs::File::open(&bundle.path)
                .with_context(|| format!("cannot reopen {}", bundle.path.display()))?;
            f.seek(SeekFrom::Start(bundle.report.offsets[index] + from))?;
            Ok(Box::new(
                std::io::BufReader::with_capacity(1 << 20, f).take(len),
            ))
        }
        crate::bundle_io::Format::Legacy => {
            let mut r = open_blob(bundle, index)?;
            std::io::copy(&mut (&mut r).take(from), &mut std::io::sink())?;
            Ok(Box::new(r.take(len)))
        }
    }
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
