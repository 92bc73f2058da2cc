//! `ddiff diff BASE TARGET...`: write a bundle carrying only what the targets add to the base.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ddiff_core::bundle::BlobKind;
use ddiff_core::{plan, Descriptor, Digest, ImageRef};

use super::{parse_image_ref, Global, PlatformArgs};
use crate::bundle_write::{default_name, BundleWriter};
use crate::progress::human_bytes;
use crate::source::{resolve, Location, Resolved};

/// Write a bundle that carries only the blobs TARGET adds to BASE.
///
/// References take a transport prefix as skopeo does: docker://HOST/REPO:TAG (a registry),
/// oci:DIR[:REF] (an OCI image layout), oci-archive:FILE[:REF] (a tar of one, read in place),
/// docker-daemon:NAME:TAG or a bare NAME:TAG (the local Docker engine),
/// docker-archive:FILE[:NAME:TAG] (a docker save file); scratch as BASE carries everything.
/// Several targets share blobs once.
///
/// Example: ddiff diff docker://localhost:5000/base:1 docker://localhost:5000/app:2
#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The image the destination already has.
    pub base: String,
    /// The image(s) to carry.
    #[arg(required = true)]
    pub targets: Vec<String>,
    /// Output file [default: <repository with / as -->-<tag>.ddiff after the first target].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub platform: PlatformArgs,
    #[command(flatten)]
    pub compress: crate::compress::CompressArgs,
}

/// What `diff` reports (`--json`).
#[derive(serde::Serialize)]
pub struct DiffSummary {
    /// The bundle written.
    pub bundle: String,
    /// Its size.
    pub bundle_bytes: u64,
    /// Targets.
    pub targets: Vec<String>,
    /// Base.
    pub base: String,
    /// Bytes of blobs carried.
    pub carried_bytes: u64,
    /// Number of blobs carried.
    pub carried_blobs: usize,
    /// Bytes of blobs relied on at the destination.
    pub relied_bytes: u64,
    /// What a full copy of the targets would move.
    pub full_bytes: u64,
}

/// Runs `diff`.
pub async fn run(args: DiffArgs, global: &Global) -> Result<ExitCode> {
    let summary = diff(&args, global).await?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        let saved = 100.0 * (1.0 - summary.carried_bytes as f64 / summary.full_bytes.max(1) as f64);
        println!(
            "wrote {} ({}): carries {} blob(s), {} of {} ({saved:.1}% saved); relies on {} already at the destination",
            summary.bundle,
            human_bytes(summary.bundle_bytes),
            summary.carried_blobs,
            human_bytes(summary.carried_bytes),
            human_bytes(summary.full_bytes),
            human_bytes(summary.relied_bytes),
        );
        println!("offline, run: ddiff load {}", summary.bundle);
    }
    Ok(ExitCode::SUCCESS)
}

fn resolvable(r: &ImageRef, arg: &str) -> Result<()> {
    match r {
        ImageRef::Docker(_) | ImageRef::Oci { .. } | ImageRef::OciArchive { .. } => Ok(()),
        _ => bail!("{arg}: only docker://, oci: and oci-archive: references are read here"),
    }
}

/// The work of `diff`, reusable by `demo` and `build`.
pub async fn diff(args: &DiffArgs, global: &Global) -> Result<DiffSummary> {
    // The local Docker engine and docker save archives have their own path.
    let mut local =
        args.base != "scratch" && super::diff_local::is_local(&parse_image_ref(&args.base)?);
    for t in &args.targets {
        local |= super::diff_local::is_local(&parse_image_ref(t)?);
    }
    if local || args.base == "scratch" {
        return super::diff_local::diff_local(args, global).await;
    }
    let progress = global.progress();
    let choice = args.platform.choice()?;
    let opts = global.client_options();
    let base_ref = parse_image_ref(&args.base)?;
    resolvable(&base_ref, &args.base)?;
    let base = resolve(&base_ref, &choice, &opts)
        .await
        .with_context(|| format!("base {}", args.base))?;
    let mut targets: Vec<Resolved> = Vec::new();
    for t in &args.targets {
        let r = parse_image_ref(t)?;
        resolvable(&r, t)?;
        targets.push(
            resolve(&r, &choice, &opts)
                .await
                .with_context(|| format!("target {t}"))?,
        );
    }
    let bases = base.base_inputs()?;
    let inputs: Vec<_> = targets.iter().map(Resolved::target_input).collect();
    let mut p = plan(
        &bases,
        &inputs,
        concat!("ddiff ", env!("CARGO_PKG_VERSION")),
        None,
    )?;
    if let Some(b) = p.meta.base.as_mut() {
        b.references = vec![args.base.clone()];
    }
    let mut sources = BlobSources::default();
    for t in &targets {
        sources.add_resolved(t);
    }
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(default_name(&p.meta.targets[0].reference)));
    let meta = p.meta.clone();
    // Registry downloads are verified by the client; layouts too. No second hash needed.
    let size = sources.write_bundle(&out, &meta, false, &progress).await?;
    Ok(DiffSummary {
        bundle: out.display().to_string(),
        bundle_bytes: size,
        targets: meta.targets.iter().map(|t| t.reference.clone()).collect(),
        base: args.base.clone(),
        carried_bytes: meta.carried_bytes(),
        carried_blobs: meta.blobs.len(),
        relied_bytes: meta.relied_bytes(),
        full_bytes: p.full_bytes,
    })
}

/// Where the bytes of each blob of a planned bundle come from: manifests and configs in
/// memory, layers in local files (compressed from an engine or archive) or at a registry or
/// layout. `diff` and its engine variant fill it, then write the bundle the same way.
#[derive(Default)]
pub struct BlobSources {
    /// Exact bytes of manifests, indexes and configs.
    pub json: BTreeMap<Digest, Vec<u8>>,
    /// Layers in local files.
    pub files: BTreeMap<Digest, PathBuf>,
    /// Layers to fetch, with where from.
    pub remote: BTreeMap<Digest, (Location, Descriptor)>,
}

impl BlobSources {
    /// Adds a resolved registry or layout image: its manifests, configs and layer locations.
    pub fn add_resolved(&mut self, t: &Resolved) {
        self.json
            .insert(t.top.digest().clone(), t.top.bytes().to_vec());
        for i in &t.images {
            self.json
                .insert(i.manifest.digest().clone(), i.manifest.bytes().to_vec());
            if let Some(img) = i.manifest.as_image() {
                self.json
                    .insert(img.config.digest.clone(), i.config_bytes.clone());
                for l in &img.layers {
                    self.remote
                        .entry(l.digest.clone())
                        .or_insert_with(|| (t.location.clone(), l.clone()));
                }
            }
        }
    }

    /// Writes the bundle of `meta` to `out` (crash-safe), with progress; returns its size.
    /// `verify` hashes every blob again on the way in (for sources not verified already).
    pub async fn write_bundle(
        &self,
        out: &std::path::Path,
        meta: &ddiff_core::bundle::BundleMeta,
        verify: bool,
        progress: &crate::progress::Progress,
    ) -> Result<u64> {
        let mut w = BundleWriter::create(out, meta.clone(), verify)?;
        let item = progress.item(format!("writing {}", out.display()), w.total_size());
        for b in &meta.blobs {
            if b.kind != BlobKind::Layer {
                let bytes = self
                    .json
                    .get(&b.digest)
                    .context("internal error: manifest or config bytes missing")?;
                w.blob(bytes)?;
                item.inc(bytes.len() as u64);
            } else if let Some(f) = self.files.get(&b.digest) {
                use std::io::Read;
                w.begin_blob()?;
                let mut file = std::fs::File::open(f)
                    .with_context(|| format!("cannot open {}", f.display()))?;
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file
                        .read(&mut buf)
                        .with_context(|| format!("cannot read {}", f.display()))?;
                    if n == 0 {
                        break;
                    }
                    item.inc(n as u64);
                    w.data(&buf[..n])?;
                }
                w.end_blob()?;
            } else {
                let (loc, desc) = self
                    .remote
                    .get(&b.digest)
                    .context("internal error: carried layer without a source")?;
                w.begin_blob()?;
                loc.blob_stream(desc, &mut |chunk| {
                    item.inc(chunk.len() as u64);
                    w.data(chunk)
                })
                .await
                .with_context(|| format!("fetching layer {} from {}", b.digest, loc.describe()))?;
                w.end_blob()?;
            }
        }
        let size = w.finish()?;
        item.finish("written");
        Ok(size)
    }
}
