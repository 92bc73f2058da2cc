//! `ddiff load BUNDLE`: verify the bundle, check the destination has the base, upload only
//! what is missing, write manifests (children first, the tag last), then pull into Docker.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use ddiff_core::destination::{engine_name, Destination};

use super::{default_registry, Global};
use crate::bundle_io::{verify_source, VerifiedBundle};
use crate::progress::{human_bytes, Progress};
use crate::transport::engine::{self, EnginePuller};
use crate::transport::{docker_archive, layout, registry};

/// Load a bundle into a registry, then into the local Docker engine.
///
/// The registry is --to, else $DDIFF_URL, else localhost:$DDIFF_PORT, else localhost:5000;
/// --to also takes docker-daemon:, oci:DIR, oci-archive:FILE and docker-archive:FILE.
///
/// The bundle is verified completely first, and the destination is checked for every layer
/// the bundle relies on (the base) before anything is uploaded: a damaged bundle or a missing
/// base leaves the destination exactly as it was. Re-running an interrupted load finishes it
/// without re-sending what is already there. Layers that travel as patches are rebuilt from
/// the destination's own copy of the layer they were made against, every digest checked,
/// before anything is written (a docker-archive: destination holds no layers, so it cannot
/// take them). Bundles of the original DockerDiff
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
    /// The bundle file, or any volume of a set (NAME.ddiff.001 …; the others are looked
    /// for beside it).
    pub bundle: PathBuf,
    /// More volumes of the set, or directories holding them (several media mounted at once),
    /// in any order. Missing or damaged volumes are rebuilt from parity as they are read.
    #[arg(value_name = "VOLUME")]
    pub more: Vec<PathBuf>,
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
    /// After a successful load, read the destination again and write its inventory to FILE
    /// (as `ddiff inventory` does), so the next delivery is planned from the truth.
    #[arg(long, value_name = "FILE")]
    pub update_inventory: Option<PathBuf>,
    /// The largest reference layer (uncompressed) a patched layer may be rebuilt from: it is
    /// held in memory while its layers are rebuilt (e.g. 512M, 4G).
    #[arg(long, default_value = "4G", value_parser = crate::delta::parse_size)]
    pub delta_memory: u64,
    /// Parallel uploads.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=32))]
    pub jobs: u16,
    #[command(flatten)]
    pub key: crate::signing::KeyArgs,
    /// Refuse the load, before anything is written, unless every target carries a cosign
    /// signature by --key (a simple-signing payload naming its manifest digest). BUNDLE.sig
    /// is then checked when present, not required.
    #[arg(long, requires = "key")]
    pub require_signature: bool,
}

pub use crate::transport::LoadSummary;

/// Where to load: `--to`, else the default registry, else (no registry configured or
/// answering at `localhost:5000`) the local engine.
async fn destination(to: Option<&str>) -> Result<Destination> {
    if let Some(to) = to {
        return Destination::parse(to).with_context(|| format!("--to {to:?}"));
    }
    let configured =
        std::env::var_os("DDIFF_URL").is_some() || std::env::var_os("DDIFF_PORT").is_some();
    if !configured {
        let answers = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            tokio::net::TcpStream::connect("localhost:5000"),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if !answers {
            return Ok(Destination::Engine { rename: None });
        }
    }
    Ok(Destination::Registry {
        host: default_registry(),
        rename: None,
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
    if s.artifacts > 0 && (s.substituted_layers > 0 || s.converted_manifests > 0) {
        // The manifests got new digests here; cosign signatures name the source's.
        eprintln!(
            "warning: target manifests were rewritten at the destination (new digests), so the {} carried signature(s) and attestation(s), made for the source digests, do not name them: `cosign verify` of the loaded images will not find them (load into a registry holding the same base blobs, or a layout with OCI media types, to keep the digests)",
            s.artifacts
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Verifies a bundle file with progress.
pub async fn verify_with_progress(
    paths: Vec<PathBuf>,
    progress: &Progress,
) -> Result<VerifiedBundle> {
    let path = paths[0].clone();
    let size = if crate::volume_io::names_a_set(&paths) {
        // The logical bundle's size (the set's trailers are read again to verify it).
        crate::volume_io::VolumeSet::open(&paths)?.bundle_size()
    } else {
        std::fs::metadata(&path)
            .with_context(|| format!("cannot open bundle {}", path.display()))?
            .len()
    };
    let item = progress.item(format!("verifying {}", path.display()), size);
    let it = item.clone();
    let vb = tokio::task::spawn_blocking(move || {
        let mut last = 0;
        verify_source(&paths, |done, _| {
            it.inc(done.saturating_sub(last));
            last = done;
        })
    })
    .await??;
    item.finish("intact");
    Ok(vb)
}

/// The work of `load`, reusable by `demo`: one pipeline for every destination. The bundle
/// is verified whole, then the destination's transport plans every target against what it
/// holds (writing nothing, so a missing base or a refused tag changes nothing) and writes;
/// after a registry load, the targets are copied into the local engine.
pub async fn load(args: &LoadArgs, global: &Global) -> Result<LoadSummary> {
    let dest = destination(args.to.as_deref()).await?;
    let update = match &args.update_inventory {
        None => None,
        Some(f) => Some((
            f,
            ddiff_core::InventorySource::of_destination(&dest).with_context(|| {
                format!(
                    "--update-inventory: {} is not a site with an inventory",
                    args.to.as_deref().unwrap_or("")
                )
            })?,
        )),
    };
    let summary = load_into(args, dest, global).await?;
    if let Some((file, (source, name))) = update {
        super::inventory::write(&source, &name, file, global)
            .await
            .with_context(|| {
                format!(
                    "loaded, but the inventory {} was not updated",
                    file.display()
                )
            })?;
    }
    Ok(summary)
}

async fn load_into(args: &LoadArgs, dest: Destination, global: &Global) -> Result<LoadSummary> {
    let progress = global.progress();
    let public_key = args
        .key
        .key
        .as_deref()
        .map(crate::signing::read_public_key)
        .transpose()?;
    let paths = std::iter::once(&args.bundle)
        .chain(&args.more)
        .cloned()
        .collect();
    let mut bundle = verify_with_progress(paths, &progress).await?;
    if let Some(k) = &public_key {
        // Before anything is written to the destination.
        let sig = crate::signing::signature_of(&bundle.path, bundle.set.as_deref());
        let wanted = ddiff_core::provenance::key_checks(
            &bundle.report.meta,
            sig.exists(),
            args.require_signature,
        );
        if wanted.bundle_signature {
            let ok =
                crate::signing::check_bundle_signature(&bundle.path, sig, &bundle.meta_bytes, k)?;
            progress.println(format!(
                "bundle signed by {} key {}",
                ok.algorithm, ok.key_id
            ));
        }
        if wanted.image_signatures {
            for line in crate::signing::check_image_signatures(&bundle, k)? {
                progress.println(line);
            }
        }
    }
    dest.check_targets(bundle.report.meta.targets.len())?;
    let artifacts = bundle.report.meta.artifacts.len();
    if artifacts > 0
        && !matches!(
            dest,
            Destination::Registry { .. }
                | Destination::Layout { .. }
                | Destination::OciArchive { .. }
        )
    {
        // Docker's image store and `docker load` files hold images only: no place for a
        // signature or attestation that cosign or a registry would find.
        progress.println(format!(
            "note: the bundle's {artifacts} provenance artifact(s) (signatures, attestations, SBOMs) are not written: the Docker engine and docker-archive files hold images only; load into a registry or an oci:/oci-archive: layout to keep them"
        ));
    }
    // Layers that travel as patches are rebuilt from the destination's own copy of their
    // reference, every digest checked, before the transport writes anything.
    crate::delta::rebuild_patches(
        &mut bundle,
        &dest,
        &global.client_options(),
        args.delta_memory,
        &progress,
    )
    .await?;
    let bundle = Arc::new(bundle);
    let b = bundle.clone();
    match dest {
        Destination::Registry { host, rename } => {
            let opts = global.client_options();
            let (mut summary, written) =
                registry::load(&bundle, &host, rename.as_ref(), &opts, args.jobs, &progress)
                    .await?;
            if !args.no_pull {
                pull_into_engine(&host, &written, &mut summary, global).await?;
            }
            Ok(summary)
        }
        Destination::Engine { rename } => {
            let rename = rename.map(|r| r.familiar());
            engine::load(&bundle, rename.as_deref(), &progress).await
        }
        Destination::Layout { path } => {
            tokio::task::spawn_blocking(move || layout::load_dir(&b, Path::new(&path))).await?
        }
        Destination::OciArchive { path } => {
            tokio::task::spawn_blocking(move || layout::load_archive(&b, Path::new(&path))).await?
        }
        Destination::DockerArchive { path } => {
            tokio::task::spawn_blocking(move || docker_archive::load(&b, Path::new(&path))).await?
        }
    }
}

/// After a registry load: each target copied into the local engine under the name it had on
/// the online side (or the `--to` rename), without the registry host, so `docker run
/// perf/app:2` works right after the load, as with the original DockerDiff. No engine is a
/// note, not an error.
async fn pull_into_engine(
    host: &str,
    written: &[(String, String)],
    summary: &mut LoadSummary,
    global: &Global,
) -> Result<()> {
    let progress = global.progress();
    let mut engine = match EnginePuller::connect().await {
        Ok(e) => e,
        Err(e) => {
            progress.println(format!(
                "note: not pulled into Docker ({}); use --no-pull to skip this step",
                super::error_line(&e)
            ));
            return Ok(());
        }
    };
    let opts = global.client_options();
    for (repo, tag) in written {
        let name =
            engine_name(repo, tag).with_context(|| format!("destination name {repo}:{tag}"))?;
        progress.println(format!(
            "pulling {host}/{repo}:{tag} into the local Docker engine as {name}"
        ));
        engine
            .pull(host, repo, tag, &name, &opts, &progress)
            .await
            .with_context(|| format!("pulling {host}/{repo}:{tag} into Docker"))?;
        summary.pulled_as.push(name);
    }
    summary.pulled = true;
    Ok(())
}
