//! `ddiff diff BASE TARGET...`: write a bundle carrying only what the targets add to the base.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ddiff_core::bundle::BlobKind;
use ddiff_core::{plan, Descriptor, Digest};

use super::{parse_image_ref, Global, PlatformArgs};
use crate::bundle_write::{default_name, BundleWriter};
use crate::progress::human_bytes;
use crate::transport::{Location, Resolved, SourceImage, Sources};

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
    #[command(flatten)]
    pub volumes: crate::volume_io::VolumeArgs,
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
    /// The volumes written, when the bundle was cut into a set (docs/bundle-format.md
    /// section 9).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
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
        if let Some(first) = summary.volumes.first() {
            println!(
                "as {} volumes: {first} … {}",
                summary.volumes.len(),
                summary.volumes.last().map_or("", |s| s.as_str())
            );
            println!("offline, run: ddiff verify {first}; ddiff load {first}");
        } else {
            println!("offline, run: ddiff load {}", summary.bundle);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The work of `diff`, reusable by `demo` and `build`: one pipeline for every source. The
/// base is read as the planner sees it (layers with diff_ids; an engine's or archive's is
/// never exported), then each target (carried layers of engine and archive images
/// compressed as they are read), then the core plans the bundle and it is written with
/// every blob fetched from where it is.
pub async fn diff(args: &DiffArgs, global: &Global) -> Result<DiffSummary> {
    let progress = global.progress();
    // Temporary layer files go next to the output (same disk).
    let tmp_dir = match args.output.as_deref().and_then(std::path::Path::parent) {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut sources = Sources::new(
        args.platform.choice()?,
        global.client_options(),
        args.compress.settings()?,
        tmp_dir,
        &progress,
    );
    // Every reference parses before anything is read.
    if args.base != "scratch" {
        parse_image_ref(&args.base)?;
    }
    for t in &args.targets {
        parse_image_ref(t)?;
    }
    let bases = sources.base(&args.base).await?;
    let base_ids: Vec<Digest> = bases
        .iter()
        .flat_map(|b| b.layers.iter().filter_map(|l| l.diff_id.clone()))
        .collect();
    let mut targets: Vec<SourceImage> = Vec::new();
    for t in &args.targets {
        targets.push(
            sources
                .target(t, &base_ids)
                .await
                .with_context(|| format!("target {t}"))?,
        );
    }
    let inputs: Vec<_> = targets.iter().map(SourceImage::target_input).collect();
    let mut p = plan(
        &bases,
        &inputs,
        concat!("ddiff ", env!("CARGO_PKG_VERSION")),
        None,
    )?;
    if let Some(b) = p.meta.base.as_mut() {
        b.references = vec![args.base.clone()];
    }
    let mut blobs = BlobSources::default();
    for t in &targets {
        blobs.add(t);
    }
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(default_name(&p.meta.targets[0].reference)));
    let meta = p.meta.clone();
    // Registry and layout downloads are verified by the client; layers of engine and
    // archive images were hashed as they were compressed, and are hashed again on the way
    // into the bundle so a temporary file damaged on disk cannot slip through.
    let verify = targets.iter().any(|t| matches!(t, SourceImage::Local(_)));
    let (size, files) = blobs
        .write_bundle(&out, &meta, verify, &args.volumes, &progress)
        .await?;
    let volumes = if files.len() > 1 || files.first() != Some(&out) {
        files.iter().map(|f| f.display().to_string()).collect()
    } else {
        Vec::new()
    };
    let full_bytes = targets
        .iter()
        .map(SourceImage::full_bytes)
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
        volumes,
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
    /// Adds an image of a source: its manifests and config, and where its layers are.
    pub fn add(&mut self, t: &SourceImage) {
        match t {
            SourceImage::Local(l) => {
                self.json
                    .insert(l.manifest.digest().clone(), l.manifest.bytes().to_vec());
                self.json
                    .insert(Digest::sha256(&l.config_bytes), l.config_bytes.clone());
                for (d, f) in &l.carried {
                    self.files.insert(d.clone(), f.clone());
                }
            }
            SourceImage::Remote(r) => self.add_resolved(r),
        }
    }

    /// Adds a resolved registry or layout image: its manifests, configs and layer locations.
    fn add_resolved(&mut self, t: &Resolved) {
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

    /// Writes the bundle of `meta` to `out` (crash-safe), or its volumes when `volumes` asks
    /// for them, with progress; returns its size and the files written.
    /// `verify` hashes every blob again on the way in (for sources not verified already).
    pub async fn write_bundle(
        &self,
        out: &std::path::Path,
        meta: &ddiff_core::bundle::BundleMeta,
        verify: bool,
        volumes: &crate::volume_io::VolumeArgs,
        progress: &crate::progress::Progress,
    ) -> Result<(u64, Vec<PathBuf>)> {
        let mut w = BundleWriter::create_in_volumes(out, meta.clone(), verify, volumes)?;
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
        let written = w.finish_files()?;
        item.finish("written");
        Ok(written)
    }
}
