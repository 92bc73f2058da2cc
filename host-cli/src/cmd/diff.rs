//! `ddiff diff BASE TARGET...` / `ddiff diff --have INVENTORY TARGET...`: write a bundle
//! carrying only what the targets add to the base, or to what a site holds.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ddiff_core::bundle::BlobKind;
use ddiff_core::{plan, Descriptor, Digest, Have};

use super::{parse_image_ref, Global, PlatformArgs};
use crate::bundle_write::{default_name, BundleWriter};
use crate::progress::human_bytes;
use crate::transport::{Location, Resolved, SourceImage, Sources};

/// Write a bundle that carries only the blobs TARGET adds to BASE, or to what a site holds.
///
/// Two forms. `ddiff diff BASE TARGET...`: the first image is the base the destination
/// already has, every other one a target. `ddiff diff --have INVENTORY TARGET...`: the
/// destination holds what the inventory lists (written there by `ddiff inventory`), and
/// every image named is a target. With several --have (several sites) one bundle is made
/// that loads at every site: a layer is relied on only when every site holds it. --targets
/// FILE adds targets, one reference per line (# starts a comment, blank lines are skipped);
/// --repository docker://HOST/REPO adds every tag of a repository.
///
/// References take a transport prefix as skopeo does: docker://HOST/REPO:TAG (a registry),
/// oci:DIR[:REF] (an OCI image layout), oci-archive:FILE[:REF] (a tar of one, read in place),
/// docker-daemon:NAME:TAG or a bare NAME:TAG (the local Docker engine),
/// docker-archive:FILE[:NAME:TAG] (a docker save file); scratch as BASE carries everything.
/// Several targets share blobs once.
///
/// A new layer whose content is close to a layer the destination holds travels as a patch
/// of its tar, and `load` rebuilds the exact blob from the destination's copy (same digest;
/// docs/deltas.md): --no-deltas turns this off. --sign-key signs the bundle; --volume-size and
/// --parity cut it into volumes for size-limited media.
///
/// Example: ddiff diff docker://localhost:5000/base:1 docker://localhost:5000/app:2
///
/// Example: ddiff diff --have site.inventory.json --targets release.txt -o release.ddiff
#[derive(clap::Args, Debug)]
pub struct DiffCli {
    /// BASE then TARGET... (without --have), or TARGET... (with --have).
    #[arg(value_name = "IMAGE", required_unless_present_any = ["have", "targets", "repository"])]
    pub images: Vec<String>,
    /// An inventory of what the destination site holds (from `ddiff inventory`); repeat for
    /// several sites (what any of them lacks is carried).
    #[arg(long, value_name = "INVENTORY")]
    pub have: Vec<PathBuf>,
    /// A file of targets, one reference per line (# comments and blank lines skipped).
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// Every tag of a registry repository as targets (docker://HOST/REPO); repeatable.
    #[arg(long, value_name = "docker://HOST/REPO")]
    pub repository: Vec<String>,
    /// Output file [default: <repository with / as -->-<tag>.ddiff after the first target].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub platform: PlatformArgs,
    #[command(flatten)]
    pub compress: crate::compress::CompressArgs,
    #[command(flatten)]
    pub delta: crate::delta::DeltaArgs,
    #[command(flatten)]
    pub sign: crate::signing::SignArgs,
    /// Leave the targets' provenance behind. By default, for targets read from a registry or
    /// an OCI layout, their cosign signatures, attestations and SBOMs (sha256-<hex>.sig, .att,
    /// .sbom) and their OCI referrers are carried and written at the destination.
    #[arg(long)]
    pub no_provenance: bool,
    #[command(flatten)]
    pub volumes: crate::volume_io::VolumeArgs,
}

/// `diff` against a named base (also what `build` and `demo` run).
#[derive(Debug)]
pub struct DiffArgs {
    /// The image the destination already has.
    pub base: String,
    /// The image(s) to carry.
    pub targets: Vec<String>,
    /// Output file [default: <repository with / as -->-<tag>.ddiff after the first target].
    pub output: Option<PathBuf>,
    /// Platform selection.
    pub platform: PlatformArgs,
    /// Compression of layers taken from an engine or archive.
    pub compress: crate::compress::CompressArgs,
    /// Deltas inside layers.
    pub delta: crate::delta::DeltaArgs,
    /// Signing of the bundle.
    pub sign: crate::signing::SignArgs,
    /// Leave the targets' provenance behind.
    pub no_provenance: bool,
    /// Volumes and parity of the bundle written.
    pub volumes: crate::volume_io::VolumeArgs,
}

/// The references of a `--targets` file: one per line, `#` starts a comment.
pub fn targets_file(path: &std::path::Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read targets file {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        parse_image_ref(line)
            .with_context(|| format!("targets file {} line {}", path.display(), i + 1))?;
        out.push(line.to_string());
    }
    Ok(out)
}

/// Every tag of the registry repository `arg` (`docker://HOST/REPO`) as a reference.
async fn repository_tags(arg: &str, global: &Global) -> Result<Vec<String>> {
    let what = || format!("--repository {arg}");
    let (host, repo) = match ddiff_core::InventorySource::parse(arg).with_context(what)? {
        ddiff_core::InventorySource::Registry {
            host,
            repository: Some(repo),
            reference: None,
        } => (host, repo),
        _ => anyhow::bail!("--repository {arg}: expected docker://HOST/REPO (no tag)"),
    };
    let client = crate::registry::client::Registry::new(&host, global.client_options())?;
    let mut tags = client.tags(&repo).await.with_context(what)?;
    if tags.is_empty() {
        anyhow::bail!("--repository {arg}: the repository has no tags");
    }
    tags.sort();
    Ok(tags
        .into_iter()
        .map(|t| format!("docker://{host}/{repo}:{t}"))
        .collect())
}

impl DiffCli {
    /// The named-base arguments and the inventories, from the command line.
    async fn split(self, global: &Global) -> Result<(DiffArgs, Option<Have>)> {
        let mut images = self.images;
        if let Some(f) = &self.targets {
            images.extend(targets_file(f)?);
        }
        for r in &self.repository {
            images.extend(repository_tags(r, global).await?);
        }
        let have = if self.have.is_empty() {
            None
        } else {
            let invs = self
                .have
                .iter()
                .map(|p| super::inventory::read_file(p))
                .collect::<Result<Vec<_>>>()?;
            Some(Have::new(&invs))
        };
        let base = match &have {
            Some(_) => String::new(),
            None if images.len() < 2 => anyhow::bail!(
                "diff needs BASE and at least one TARGET (or --have INVENTORY and targets)"
            ),
            None => images.remove(0),
        };
        if images.is_empty() {
            anyhow::bail!("nothing to diff: no targets");
        }
        Ok((
            DiffArgs {
                base,
                targets: images,
                output: self.output,
                platform: self.platform,
                compress: self.compress,
                delta: self.delta,
                sign: self.sign,
                no_provenance: self.no_provenance,
                volumes: self.volumes,
            },
            have,
        ))
    }
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
    /// Layers that travel as patches, their bytes as layers and as patches, and why other
    /// layers travel whole.
    pub deltas: crate::delta::DeltaReport,
    /// Provenance artifacts carried.
    pub artifacts: usize,
    /// The signature file written beside the bundle (`--sign-key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// The volumes written, when the bundle was cut into a set (docs/bundle-format.md
    /// section 9).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
}

/// Runs `diff`.
pub async fn run(args: DiffCli, global: &Global) -> Result<ExitCode> {
    let (args, have) = args.split(global).await?;
    let summary = diff_against(&args, have.as_ref(), global).await?;
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
        if summary.deltas.patched_layers > 0 {
            println!(
                "{} layer(s) of {} travel as patches of {} against layers the destination holds; they are rebuilt bit for bit at load",
                summary.deltas.patched_layers,
                human_bytes(summary.deltas.patched_layer_bytes),
                human_bytes(summary.deltas.patch_bytes),
            );
        }
        if summary.artifacts > 0 {
            println!(
                "carries {} provenance artifact(s) (signatures, attestations, SBOMs, referrers)",
                summary.artifacts
            );
        }
        if let Some(sig) = &summary.signature {
            println!("signed: {sig}");
        }
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
    diff_against(args, None, global).await
}

/// [`diff`], against what site inventories list (`have`) instead of `args.base` when given.
pub async fn diff_against(
    args: &DiffArgs,
    have: Option<&Have>,
    global: &Global,
) -> Result<DiffSummary> {
    let progress = global.progress();
    // The key is read (and its password asked for) before any work, so a wrong password
    // costs nothing.
    let sign_key = match &args.sign.sign_key {
        Some(k) => Some(crate::signing::read_signing_key(k)?),
        None => None,
    };
    // Temporary layer files go next to the output (same disk).
    let tmp_dir = match args.output.as_deref().and_then(std::path::Path::parent) {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut sources = Sources::new(
        args.platform.choice()?,
        global.client_options(),
        args.compress.settings()?,
        tmp_dir.clone(),
        &progress,
    );
    // Every reference parses before anything is read.
    if have.is_none() && args.base != "scratch" {
        parse_image_ref(&args.base)?;
    }
    for t in &args.targets {
        parse_image_ref(t)?;
    }
    let bases = match have {
        Some(h) => h.bases(),
        None => sources.base(&args.base).await?,
    };
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
    match have {
        Some(h) => h.annotate(&mut p.meta),
        None => {
            if let Some(b) = p.meta.base.as_mut() {
                b.references = vec![args.base.clone()];
            }
        }
    }
    let mut blobs = BlobSources::default();
    for t in &targets {
        blobs.add(t);
    }
    let mut artifacts = 0;
    let mut artifact_bytes = 0;
    if !args.no_provenance {
        for t in &targets {
            // Engine and docker-archive images have no manifests of their own to sign.
            let SourceImage::Remote(r) = t else { continue };
            let mut subjects = vec![r.top.digest().clone()];
            for i in &r.images {
                if !subjects.contains(i.manifest.digest()) {
                    subjects.push(i.manifest.digest().clone());
                }
            }
            let found = crate::transport::provenance::discover(&r.location, &subjects)
                .await
                .with_context(|| format!("provenance of {} (--no-provenance leaves it)", r.name))?;
            artifacts += found.artifacts.len();
            // A full copy would move them too (skopeo and cosign copy them separately).
            artifact_bytes += found.blobs.iter().map(|b| b.size).sum::<u64>();
            ddiff_core::provenance::attach(&mut p.meta, found.blobs, found.artifacts)
                .context("internal error: artifacts do not fit the bundle")?;
            blobs.json.extend(found.json);
            blobs.remote.extend(found.layers);
        }
    }
    let out = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(default_name(&p.meta.targets[0].reference)));
    // Deltas: carried layers that are close to a layer of the base travel as patches.
    let mut delta_temps = crate::durable::TempSet::new();
    let mut deltas = crate::delta::DeltaReport::default();
    // References: the named base's layers, or (with inventories) the layers every site
    // holds that the targets' registries or layouts have too (the online side reads them
    // there; the site's own copies are what the load rebuilds from).
    if !args.delta.no_deltas {
        let refs = match have {
            None => {
                let ids: Vec<Digest> = p
                    .meta
                    .base
                    .as_ref()
                    .map(|b| b.diff_ids.clone())
                    .unwrap_or_default();
                sources
                    .reference_source(&args.base, &ids)
                    .await?
                    .into_iter()
                    .collect()
            }
            Some(h) => held_reference_sources(h, &targets).await?,
        };
        if !refs.is_empty() {
            let layers = blobs
                .local_layers(&p.meta, &sources.settings, &tmp_dir, &mut delta_temps)
                .await?;
            let (patches, report) = crate::delta::add_patches(
                &mut p.meta,
                layers,
                &refs,
                &args.delta,
                &tmp_dir,
                &mut delta_temps,
                &progress,
            )
            .await?;
            for n in &report.notes {
                progress.println(format!("note: {n}"));
            }
            if let Some(h) = have {
                // Where the site keeps each reference (its registry repositories).
                for b in &mut p.meta.blobs {
                    if let Some(pi) = b.patch.as_mut() {
                        if let Some(l) = h
                            .held_layers()
                            .iter()
                            .find(|l| l.descriptor.digest == pi.reference.digest)
                        {
                            pi.reference.repositories = l.repositories.clone();
                        }
                    }
                }
            }
            blobs.files.extend(patches);
            deltas = report;
        }
    }
    let meta = p.meta.clone();
    // Registry and layout downloads are verified by the client; layers of engine and
    // archive images were hashed as they were compressed, and are hashed again on the way
    // into the bundle so a temporary file damaged on disk cannot slip through (patches and
    // layers fetched for the delta planner are local files too).
    let verify = !blobs.files.is_empty();
    let (size, files) = blobs
        .write_bundle(&out, &meta, verify, &args.volumes, &progress)
        .await?;
    let volumes = if files.len() > 1 || files.first() != Some(&out) {
        files.iter().map(|f| f.display().to_string()).collect()
    } else {
        Vec::new()
    };
    let signature = crate::signing::after_write(&out, &meta.to_bytes(), sign_key.as_ref())?;
    let full_bytes = targets
        .iter()
        .map(SourceImage::full_bytes)
        .sum::<u64>()
        .max(p.full_bytes)
        + artifact_bytes;
    Ok(DiffSummary {
        bundle: out.display().to_string(),
        bundle_bytes: size,
        targets: meta.targets.iter().map(|t| t.reference.clone()).collect(),
        base: meta
            .base
            .as_ref()
            .and_then(|b| b.references.first().cloned())
            .unwrap_or_else(|| args.base.clone()),
        carried_bytes: meta.carried_bytes(),
        carried_blobs: meta.blobs.len(),
        relied_bytes: meta.relied_bytes(),
        full_bytes,
        deltas,
        signature: signature.map(|p| p.display().to_string()),
        artifacts,
        volumes,
    })
}

/// The layers the sites of `have` hold (every one of them) that the online side has too, as
/// patch references read there: in the targets' registry repositories or layouts, or, on a
/// target's registry, in the repositories where the site keeps them (a registry scopes blobs
/// by repository). Empty when no target comes from a registry or layout.
async fn held_reference_sources(
    have: &Have,
    targets: &[SourceImage],
) -> Result<Vec<crate::delta::RefSource>> {
    use crate::transport::Location;
    let mut places: Vec<Location> = Vec::new();
    for t in targets {
        if let SourceImage::Remote(r) = t {
            if !places.iter().any(|p| p.describe() == r.location.describe()) {
                places.push(r.location.clone());
            }
        }
    }
    let clients: Vec<_> = places
        .iter()
        .filter_map(|p| match p {
            Location::Registry { client, .. } => Some(client.clone()),
            Location::Layout(_) => None,
        })
        .collect();
    for l in have.held_layers() {
        for repo in &l.repositories {
            if ddiff_core::Reference::parse(repo).is_err() {
                continue;
            }
            for c in &clients {
                let p = Location::Registry {
                    client: c.clone(),
                    repo: repo.clone(),
                };
                if !places.iter().any(|q| q.describe() == p.describe()) {
                    places.push(p);
                }
            }
        }
    }
    let mut out = Vec::new();
    let mut found = std::collections::BTreeSet::new();
    for location in places {
        let mut layers = Vec::new();
        for l in have.held_layers() {
            if !found.contains(&l.diff_id) && location.has_blob(&l.descriptor).await? {
                found.insert(l.diff_id.clone());
                layers.push(crate::delta::RefLayer {
                    desc: l.descriptor.clone(),
                    diff_id: l.diff_id.clone(),
                });
            }
        }
        if !layers.is_empty() {
            out.push(crate::delta::RefSource::Blobs { location, layers });
        }
    }
    Ok(out)
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

    /// Every carried layer of `meta` big enough to travel as a patch, as a local file:
    /// engine and archive layers are already (with the recipe this run compressed them by);
    /// registry and layout layers are fetched into `temps` in `dir` (and the bundle is then
    /// written from those files, not fetched again).
    pub async fn local_layers(
        &mut self,
        meta: &ddiff_core::bundle::BundleMeta,
        settings: &crate::compress::Settings,
        dir: &std::path::Path,
        temps: &mut crate::durable::TempSet,
    ) -> Result<Vec<crate::delta::TargetLayer>> {
        use ddiff_core::delta::Recipe;
        let known = match settings.codec {
            crate::compress::Codec::Gzip => Recipe::DdiffGzip {
                level: settings.level as u32,
                chunk: settings.codec.chunk() as u64,
            },
            crate::compress::Codec::Zstd => Recipe::DdiffZstd {
                level: settings.level as u32,
                chunk: settings.codec.chunk() as u64,
            },
        };
        let mut out = Vec::new();
        for b in &meta.blobs {
            if b.kind != BlobKind::Layer || b.size < crate::delta::MIN_PATCHED_LAYER {
                continue;
            }
            let desc = Descriptor::new(b.media_type.clone(), b.digest.clone(), b.size);
            if let Some(f) = self.files.get(&b.digest) {
                out.push(crate::delta::TargetLayer {
                    desc,
                    file: f.clone(),
                    known: Some(known),
                });
            } else if let Some((loc, d)) = self.remote.get(&b.digest) {
                use std::io::Write;
                let (path, file) = temps
                    .create(dir, "layer")
                    .with_context(|| format!("cannot create a file in {}", dir.display()))?;
                let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
                loc.blob_stream(d, &mut |c| w.write_all(c).map_err(Into::into))
                    .await
                    .with_context(|| {
                        format!("fetching layer {} from {}", b.digest, loc.describe())
                    })?;
                w.flush()?;
                self.files.insert(b.digest.clone(), path.clone());
                out.push(crate::delta::TargetLayer {
                    desc,
                    file: path,
                    known: None,
                });
            }
        }
        Ok(out)
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
