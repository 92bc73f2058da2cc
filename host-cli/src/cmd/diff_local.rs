//! `ddiff diff` when the base or a target is in the local Docker engine (plain names,
//! `docker-daemon:`) or in a `docker save` archive (`docker-archive:`).
//!
//! The base is known by its layer diff_ids alone (image inspect, or the archive's config): it
//! is never exported. A target from the engine is streamed once through image save; layers
//! the base lacks are compressed on all cores as they pass, the others are only counted.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ddiff_core::{plan, BaseImage, Digest, ImageRef, TargetImageInput, TargetInput};

use super::diff::{DiffArgs, DiffSummary};
use super::{parse_image_ref, Global};
use crate::archive::{image_from_archive, image_from_stream, LocalImage, TarIndex};
use crate::bundle_write::default_name;
use crate::engine::Engine;
use crate::source::{resolve, Resolved};

/// Whether a reference needs this module (engine or docker-archive).
pub fn is_local(r: &ImageRef) -> bool {
    matches!(
        r,
        ImageRef::Bare(_) | ImageRef::DockerDaemon(_) | ImageRef::DockerArchive { .. }
    )
}

/// The engine, connected once on first use.
struct LazyEngine(Option<Engine>);

impl LazyEngine {
    async fn get(&mut self) -> Result<&Engine> {
        if self.0.is_none() {
            self.0 = Some(Engine::connect().await?);
        }
        // Set just above.
        self.0.as_ref().context("engine")
    }
}

enum Target {
    Local(LocalImage),
    Remote(Resolved),
}

/// The base's layer diff_ids and the planner's view of it. `scratch` is no base at all.
async fn base_of(
    arg: &str,
    engine: &mut LazyEngine,
    global: &Global,
    args: &DiffArgs,
) -> Result<Vec<BaseImage>> {
    if arg == "scratch" {
        return Ok(Vec::new());
    }
    let r = parse_image_ref(arg)?;
    match &r {
        ImageRef::Bare(n) | ImageRef::DockerDaemon(n) => {
            let name = n.familiar();
            let img = engine.get().await?.inspect(&name).await?.with_context(|| {
                format!("base {arg}: the local Docker engine has no image {name} (docker pull/load it, or name it as docker://HOST/REPO:TAG or docker-archive:FILE)")
            })?;
            Ok(vec![BaseImage::from_diff_ids(arg, img.diff_ids)])
        }
        ImageRef::DockerArchive { path, reference } => {
            let idx = TarIndex::open(Path::new(path)).with_context(|| format!("base {arg}"))?;
            let (_, _, cfg) = crate::archive::archive_image(&idx, reference.as_deref())
                .with_context(|| format!("base {arg}"))?;
            Ok(vec![BaseImage::from_diff_ids(arg, cfg.rootfs.diff_ids)])
        }
        ImageRef::Docker(_) | ImageRef::Oci { .. } | ImageRef::OciArchive { .. } => {
            let res = resolve(&r, &args.platform.choice()?, &global.client_options())
                .await
                .with_context(|| format!("base {arg}"))?;
            res.base_inputs()
        }
    }
}

/// `ddiff diff` with engine or archive references; same result as the registry path.
pub async fn diff_local(args: &DiffArgs, global: &Global) -> Result<DiffSummary> {
    let progress = global.progress();
    let settings = args.compress.settings()?;
    let mut engine = LazyEngine(None);
    let bases = base_of(&args.base, &mut engine, global, args).await?;
    let base_ids: Vec<Digest> = bases
        .iter()
        .flat_map(|b| b.layers.iter().filter_map(|l| l.diff_id.clone()))
        .collect();
    // Temporary layer files go next to the output (same disk).
    let tmp_dir = match args.output.as_deref().and_then(Path::parent) {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut targets = Vec::new();
    for t in &args.targets {
        let r = parse_image_ref(t)?;
        let target = match &r {
            ImageRef::Bare(n) | ImageRef::DockerDaemon(n) => {
                let name = n.familiar();
                let eng = engine.get().await?;
                let img = eng.inspect(&name).await?.with_context(|| {
                    format!("target {t}: the local Docker engine has no image {name}")
                })?;
                let item = progress.item(format!("exporting {name}"), img.size);
                let reader = eng.export_reader(&name);
                let (base_ids, tmp_dir, it) = (base_ids.clone(), tmp_dir.clone(), item.clone());
                let nm = name.clone();
                let local = tokio::task::spawn_blocking(move || {
                    image_from_stream(
                        reader,
                        &nm,
                        &img.diff_ids,
                        &base_ids,
                        settings,
                        &tmp_dir,
                        &it,
                    )
                })
                .await?
                .with_context(|| format!("target {t}"))?;
                item.finish("exported");
                Target::Local(local)
            }
            ImageRef::DockerArchive { path, reference } => {
                let size = std::fs::metadata(path)
                    .with_context(|| format!("target {t}: cannot open {path}"))?
                    .len();
                let item = progress.item(format!("reading {path}"), size);
                let (base_ids, tmp_dir, it) = (base_ids.clone(), tmp_dir.clone(), item.clone());
                let (p, sel) = (PathBuf::from(path), reference.clone());
                let local = tokio::task::spawn_blocking(move || {
                    image_from_archive(&p, sel.as_deref(), &base_ids, settings, &tmp_dir, &it)
                })
                .await?
                .with_context(|| format!("target {t}"))?;
                item.finish("read");
                Target::Local(local)
            }
            ImageRef::Docker(_) | ImageRef::Oci { .. } | ImageRef::OciArchive { .. } => {
                Target::Remote(
                    resolve(&r, &args.platform.choice()?, &global.client_options())
                        .await
                        .with_context(|| format!("target {t}"))?,
                )
            }
        };
        targets.push(target);
    }
    let inputs: Vec<TargetInput> = targets
        .iter()
        .map(|t| match t {
            Target::Local(l) => TargetInput {
                reference: l.name.clone(),
                top: l.manifest.clone(),
                images: vec![TargetImageInput {
                    manifest: l.manifest.clone(),
                    config: Some(l.config.clone()),
                }],
            },
            Target::Remote(r) => r.target_input(),
        })
        .collect();
    let mut p = plan(
        &bases,
        &inputs,
        concat!("ddiff ", env!("CARGO_PKG_VERSION")),
        None,
    )?;
    if let Some(b) = p.meta.base.as_mut() {
        b.references = vec![args.base.clone()];
    }
    // Where every blob's bytes are.
    let mut sources = super::diff::BlobSources::default();
    for t in &targets {
        match t {
            Target::Local(l) => {
                sources
                    .json
                    .insert(l.manifest.digest().clone(), l.manifest.bytes().to_vec());
                sources
                    .json
                    .insert(Digest::sha256(&l.config_bytes), l.config_bytes.clone());
                for (d, f) in &l.carried {
                    sources.files.insert(d.clone(), f.clone());
                }
            }
            Target::Remote(r) => sources.add_resolved(r),
        }
    }
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(default_name(&p.meta.targets[0].reference)));
    let meta = p.meta.clone();
    // Local layers were hashed as they were compressed; hash again on the way into the
    // bundle so a temporary file damaged on disk cannot slip through.
    let size = sources.write_bundle(&out, &meta, true, &progress).await?;
    let full_bytes = targets
        .iter()
        .map(|t| match t {
            Target::Local(l) => l.full_bytes,
            Target::Remote(r) => r.full_size(),
        })
        .sum::<u64>()
        .max(p.full_bytes);
    Ok(DiffSummary {
        bundle: out.display().to_string(),
        bundle_bytes: size,
        targets: meta.targets.iter().map(|t| t.reference.clone()).collect(),
        base: args.base.clone(),
        carried_bytes: meta.carried_bytes(),
        carried_blobs: meta.blobs.len(),
        relied_bytes: meta.relied_bytes(),
        full_bytes,
    })
}
