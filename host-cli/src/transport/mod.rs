//! Where images come from and go to: one module per transport, each written once.
//!
//! | transport | module | as a source (`diff`, `list`, `pull`) | as a destination (`load`, `push`) |
//! |-----------|--------|--------------------------------------|-----------------------------------|
//! | `docker://` | [`registry`] | manifests, configs, blobs by digest ([`Location::Registry`]) | blobs (resumable, mounted across repositories), manifests children first, tags last |
//! | `oci:` / `oci-archive:` | [`layout`] | the same, read in place ([`layout::LayoutStore`]) | blobs verified into place (a directory) or a new archive renamed over the old one; `index.json` last |
//! | `docker-daemon:` / bare `NAME:TAG` | [`engine`] | image inspect (a base: its diff_ids) and image save, carried layers compressed as they stream | a `docker load` stream with only the layers the engine lacks |
//! | `docker-archive:` | [`docker_archive`] | `docker save` files, read by offset | a `docker load` file |
//!
//! Every decision about formats and what to carry is the core's: which entry of a layout or
//! archive a reference names (`ddiff_core::oci_layout`, `ddiff_core::docker_archive`), what a
//! destination holds and what a load writes (`ddiff_core::DestinationState`, `plan_load`),
//! how a tar is framed (`ddiff_core::tar::Framer`, written through [`tar_file::TarOut`]),
//! where `--to` points (`ddiff_core::destination`). The modules here ask the questions and
//! move the bytes.
//!
//! Sources are read through [`Source`] (diff's pipeline) and [`resolve`] (registries and
//! layouts); destinations are written through each module's `load` function, called by the
//! one pipeline in `cmd/load.rs`: verify the bundle, plan every target against the
//! destination (nothing written), then write.

pub mod docker_archive;
pub mod engine;
pub mod layout;
pub mod provenance;
pub mod registry;
pub mod tar_file;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::{
    BaseImage, Descriptor, Digest, ImageConfig, ImageRef, Platform, RawManifest, TagMove,
    TargetImageInput, TargetInput, Verifier,
};

use crate::compress::Settings;
use crate::hash::fast_hasher;
use crate::progress::Progress;
use crate::registry::client::{ClientOptions, Registry};
use layout::LayoutStore;

/// A place holding manifests and blobs by digest: a repository of a registry, or an OCI
/// image layout (a directory or an archive).
#[derive(Clone)]
pub enum Location {
    /// A repository in a registry.
    Registry {
        /// The client.
        client: Arc<Registry>,
        /// The repository path.
        repo: String,
    },
    /// An OCI image layout, a directory or an archive.
    Layout(LayoutStore),
}

impl Location {
    /// Fetches a manifest by tag/ref name or digest.
    pub async fn manifest(&self, reference: &str) -> Result<RawManifest> {
        match self {
            Location::Registry { client, repo } => client.get_manifest(repo, reference).await,
            Location::Layout(store) => store.manifest(reference),
        }
    }

    /// Fetches a manifest given its descriptor (media type known).
    pub async fn manifest_by_descriptor(&self, d: &Descriptor) -> Result<RawManifest> {
        match self {
            Location::Registry { .. } => self.manifest(&d.digest.to_string()).await,
            Location::Layout(store) => store.manifest_by_descriptor(d),
        }
    }

    /// Fetches a small blob whole, verified.
    pub async fn blob_bytes(&self, d: &Descriptor) -> Result<Vec<u8>> {
        match self {
            Location::Registry { client, repo } => client.get_blob_bytes(repo, d).await,
            Location::Layout(store) => store.blob_bytes(d),
        }
    }

    /// Streams a blob into `sink`, verified.
    pub async fn blob_stream(
        &self,
        d: &Descriptor,
        sink: &mut (dyn FnMut(&[u8]) -> Result<()> + Send),
    ) -> Result<()> {
        match self {
            Location::Registry { client, repo } => client.download_blob(repo, d, sink).await,
            Location::Layout(store) => store.blob_stream(d, sink),
        }
    }

    /// Whether this place holds the blob `d` (by digest, with its size).
    pub async fn has_blob(&self, d: &Descriptor) -> Result<bool> {
        Ok(match self {
            Location::Registry { client, repo } => {
                client.blob_exists(repo, &d.digest).await? == Some(d.size)
            }
            Location::Layout(store) => store.size(&d.digest.layout_path()) == Some(d.size),
        })
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Location::Registry { client, repo } => format!("{}/{}", client.host(), repo),
            Location::Layout(store) => store.describe(),
        }
    }
}

/// Checks bytes read whole against their descriptor.
fn check_bytes(b: &[u8], d: &Descriptor) -> Result<()> {
    let mut v = Verifier::with_factory(d.digest.clone(), d.size, fast_hasher);
    v.update(b)?;
    v.finish()?;
    Ok(())
}

/// Which platform(s) of an index to take.
#[derive(Clone, Debug)]
pub enum PlatformChoice {
    /// One platform.
    One(Platform),
    /// Every entry of the index.
    All,
}

/// The platform of this machine, as OCI names it.
pub fn host_platform() -> Platform {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        other => other,
    };
    Platform {
        os: "linux".into(),
        architecture: arch.into(),
        ..Platform::default()
    }
}

/// A resolved image of a registry or layout: its location, name and manifests with configs.
pub struct Resolved {
    /// Where its blobs are.
    pub location: Location,
    /// The name a destination should tag it with (`team/app:2`).
    pub name: String,
    /// The top manifest (an image manifest, or the index with `--all-platforms`).
    pub top: RawManifest,
    /// The image manifests with their configs.
    pub images: Vec<ResolvedImage>,
}

/// One platform image.
pub struct ResolvedImage {
    /// The image manifest.
    pub manifest: RawManifest,
    /// Parsed config (image configs only).
    pub config: Option<ImageConfig>,
    /// The exact config bytes.
    pub config_bytes: Vec<u8>,
}

impl Resolved {
    /// The planner's view of this image as a target.
    pub fn target_input(&self) -> TargetInput {
        TargetInput {
            reference: self.name.clone(),
            top: self.top.clone(),
            images: self
                .images
                .iter()
                .map(|i| TargetImageInput {
                    manifest: i.manifest.clone(),
                    config: i.config.clone(),
                })
                .collect(),
        }
    }

    /// The planner's view of this image as a base.
    pub fn base_inputs(&self) -> Result<Vec<BaseImage>> {
        self.images
            .iter()
            .map(|i| {
                BaseImage::from_manifest(&self.name, &i.manifest, i.config.as_ref())
                    .map_err(Into::into)
            })
            .collect()
    }

    /// Total bytes of the distinct blobs of this image.
    pub fn full_size(&self) -> u64 {
        let mut seen = BTreeMap::new();
        seen.insert(self.top.digest().clone(), self.top.bytes().len() as u64);
        for i in &self.images {
            for d in i.manifest.references() {
                seen.insert(d.digest.clone(), d.size);
            }
            seen.insert(i.manifest.digest().clone(), i.manifest.bytes().len() as u64);
        }
        seen.values().sum()
    }
}

/// Resolves a registry or layout reference. Engine and archive references are read by
/// [`Source`] and rejected here.
pub async fn resolve(
    r: &ImageRef,
    platform: &PlatformChoice,
    opts: &ClientOptions,
) -> Result<Resolved> {
    let (location, name, top) = match r {
        ImageRef::Docker(reference) => registry::top(reference, opts)
            .await
            .with_context(|| format!("cannot resolve {r}"))?,
        ImageRef::Oci { reference, .. } | ImageRef::OciArchive { reference, .. } => {
            let store = LayoutStore::open(r)?;
            let (desc, name) = store.choose(reference.as_deref())?;
            let top = store.manifest_by_descriptor(&desc)?;
            (Location::Layout(store), name, top)
        }
        other => bail!("{other}: this transport is not handled here"),
    };
    let mut images = Vec::new();
    let top = match top.as_index() {
        None => top,
        Some(idx) => match platform {
            PlatformChoice::One(p) => {
                let d = idx
                    .select_platform(p)
                    .with_context(|| format!("{r}"))?
                    .clone();
                location.manifest_by_descriptor(&d).await?
            }
            PlatformChoice::All => {
                for d in &idx.manifests {
                    let m = location.manifest_by_descriptor(d).await?;
                    if m.as_image().is_none() {
                        bail!(
                            "{r}: nested indexes are not supported ({} is an index)",
                            d.digest
                        );
                    }
                    images.push(with_config(&location, m).await?);
                }
                top
            }
        },
    };
    if images.is_empty() {
        images.push(with_config(&location, top.clone()).await?);
    }
    Ok(Resolved {
        location,
        name,
        top,
        images,
    })
}

async fn with_config(location: &Location, manifest: RawManifest) -> Result<ResolvedImage> {
    let img = manifest
        .as_image()
        .ok_or_else(|| anyhow!("{} is not an image manifest", manifest.digest()))?;
    let config_bytes = location.blob_bytes(&img.config).await?;
    let config =
        if img.config.media_type.is_image_config() {
            Some(ImageConfig::parse(&config_bytes).with_context(|| {
                format!("config {} of {}", img.config.digest, location.describe())
            })?)
        } else {
            None
        };
    Ok(ResolvedImage {
        manifest,
        config,
        config_bytes,
    })
}

// ---------------------------------------------------------------------------------------
// Sources for `diff`: every transport gives a base (what the destination has) and targets.

/// An image taken out of an engine or an archive, its carried layers compressed into
/// temporary files, ready for the planner.
pub struct LocalImage {
    /// The name to tag it with at the destination (`app:2`).
    pub name: String,
    /// The engine's exact config bytes.
    pub config_bytes: Vec<u8>,
    /// Parsed config.
    pub config: ImageConfig,
    /// The OCI manifest built for it.
    pub manifest: RawManifest,
    /// Compressed carried layers, by blob digest.
    pub carried: BTreeMap<Digest, PathBuf>,
    /// Keeps the files alive (and marks them live for a sweep of their directory).
    pub temps: crate::durable::TempSet,
    /// Bytes of `docker save | gzip` as the user would otherwise carry it is unknown; this is
    /// the uncompressed size of all layers plus the config.
    pub full_bytes: u64,
}

/// An image a source gave `diff`.
pub enum SourceImage {
    /// From the engine or a `docker save` archive: carried layers compressed into files.
    Local(LocalImage),
    /// From a registry or a layout: blobs fetched by digest when the bundle is written.
    Remote(Resolved),
}

impl SourceImage {
    /// The planner's view of it as a target.
    pub fn target_input(&self) -> TargetInput {
        match self {
            SourceImage::Local(l) => TargetInput {
                reference: l.name.clone(),
                top: l.manifest.clone(),
                images: vec![TargetImageInput {
                    manifest: l.manifest.clone(),
                    config: Some(l.config.clone()),
                }],
            },
            SourceImage::Remote(r) => r.target_input(),
        }
    }

    /// What a full copy of it would move.
    pub fn full_bytes(&self) -> u64 {
        match self {
            SourceImage::Local(l) => l.full_bytes,
            SourceImage::Remote(r) => r.full_size(),
        }
    }
}

/// What reading sources needs: options, where temporary files go, and the engine, connected
/// on first use.
pub struct Sources<'a> {
    /// Platform to take from indexes.
    pub platform: PlatformChoice,
    /// Registry client options.
    pub client: ClientOptions,
    /// Compression of carried layers read from an engine or archive.
    pub settings: Settings,
    /// Directory for temporary layer files (the output's, same disk).
    pub tmp_dir: PathBuf,
    /// Progress.
    pub progress: &'a Progress,
    engine: Option<engine::Engine>,
}

impl<'a> Sources<'a> {
    /// Sources with these options; the engine is connected when first needed.
    pub fn new(
        platform: PlatformChoice,
        client: ClientOptions,
        settings: Settings,
        tmp_dir: PathBuf,
        progress: &'a Progress,
    ) -> Self {
        Sources {
            platform,
            client,
            settings,
            tmp_dir,
            progress,
            engine: None,
        }
    }

    async fn engine(&mut self) -> Result<&engine::Engine> {
        if self.engine.is_none() {
            self.engine = Some(engine::Engine::connect().await?);
        }
        self.engine.as_ref().context("engine")
    }

    /// The base `arg` names, as the planner sees it (layers with diff_ids); `scratch` is no
    /// base. An engine's or archive's base is known by its diff_ids alone, never exported.
    pub async fn base(&mut self, arg: &str) -> Result<Vec<BaseImage>> {
        if arg == "scratch" {
            return Ok(Vec::new());
        }
        let r = ImageRef::parse(arg)?;
        match &r {
            ImageRef::Bare(n) | ImageRef::DockerDaemon(n) => {
                let name = n.familiar();
                let img = self.engine().await?.inspect(&name).await?.with_context(|| {
                    format!("base {arg}: the local Docker engine has no image {name} (docker pull/load it, or name it as docker://HOST/REPO:TAG or docker-archive:FILE)")
                })?;
                Ok(vec![BaseImage::from_diff_ids(arg, img.diff_ids)])
            }
            ImageRef::DockerArchive { path, reference } => {
                let ids = docker_archive::diff_ids(Path::new(path), reference.as_deref())
                    .with_context(|| format!("base {arg}"))?;
                Ok(vec![BaseImage::from_diff_ids(arg, ids)])
            }
            ImageRef::Docker(_) | ImageRef::Oci { .. } | ImageRef::OciArchive { .. } => {
                resolve(&r, &self.platform, &self.client)
                    .await
                    .with_context(|| format!("base {arg}"))?
                    .base_inputs()
            }
        }
    }

    /// Where `diff` reads the layers of the base `arg` that patches may be made against
    /// (only those whose diff_id is in `diff_ids`); `None` for `scratch`. Nothing is read
    /// until the delta planner asks.
    pub async fn reference_source(
        &mut self,
        arg: &str,
        diff_ids: &[Digest],
    ) -> Result<Option<crate::delta::RefSource>> {
        use crate::delta::{RefLayer, RefSource};
        if arg == "scratch" {
            return Ok(None);
        }
        let r = ImageRef::parse(arg)?;
        let diff_ids = diff_ids.to_vec();
        Ok(Some(match &r {
            ImageRef::Bare(n) | ImageRef::DockerDaemon(n) => {
                let name = n.familiar();
                let eng = self.engine().await?.clone();
                let describe = format!("the Docker engine's {name}");
                RefSource::Save {
                    open: Arc::new(move || {
                        Ok(Box::new(eng.export_reader(&name)) as Box<dyn std::io::Read + Send>)
                    }),
                    diff_ids,
                    describe,
                }
            }
            ImageRef::DockerArchive { path, .. } => {
                let path = PathBuf::from(path);
                let describe = path.display().to_string();
                RefSource::Save {
                    open: Arc::new(move || {
                        let f = std::fs::File::open(&path)
                            .with_context(|| format!("cannot open {}", path.display()))?;
                        Ok(Box::new(f) as Box<dyn std::io::Read + Send>)
                    }),
                    diff_ids,
                    describe,
                }
            }
            ImageRef::Docker(_) | ImageRef::Oci { .. } | ImageRef::OciArchive { .. } => {
                let res = resolve(&r, &self.platform, &self.client)
                    .await
                    .with_context(|| format!("base {arg}"))?;
                let mut layers = Vec::new();
                for i in &res.images {
                    if let (Some(img), Some(cfg)) = (i.manifest.as_image(), i.config.as_ref()) {
                        for (desc, id) in img.layers.iter().zip(cfg.rootfs.diff_ids.iter()) {
                            layers.push(RefLayer {
                                desc: desc.clone(),
                                diff_id: id.clone(),
                            });
                        }
                    }
                }
                RefSource::Blobs {
                    location: res.location,
                    layers,
                }
            }
        }))
    }

    /// The target `arg` names. From an engine or archive, the layers whose diff_ids are not
    /// in `base_ids` are compressed into temporary files as they are read (the others are
    /// only counted); from a registry or layout nothing is fetched until the bundle is
    /// written.
    pub async fn target(&mut self, arg: &str, base_ids: &[Digest]) -> Result<SourceImage> {
        let r = ImageRef::parse(arg)?;
        let image = match &r {
            ImageRef::Bare(n) | ImageRef::DockerDaemon(n) => {
                let name = n.familiar();
                let (settings, tmp_dir, progress) =
                    (self.settings, self.tmp_dir.clone(), self.progress.clone());
                let eng = self.engine().await?;
                SourceImage::Local(
                    eng.export(&name, base_ids, settings, &tmp_dir, &progress)
                        .await?,
                )
            }
            ImageRef::DockerArchive { path, reference } => SourceImage::Local(
                docker_archive::read_image(
                    Path::new(path),
                    reference.as_deref(),
                    base_ids,
                    self.settings,
                    &self.tmp_dir,
                    self.progress,
                )
                .await?,
            ),
            ImageRef::Docker(_) | ImageRef::Oci { .. } | ImageRef::OciArchive { .. } => {
                SourceImage::Remote(resolve(&r, &self.platform, &self.client).await?)
            }
        };
        Ok(image)
    }
}

// ---------------------------------------------------------------------------------------
// Destinations: what every transport's `load` reports.

/// What a load reports (`--json`). Every count is of what really happened: a blob shared by
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
    /// Provenance artifacts written (cosign signatures, attestations, SBOMs, referrers), once
    /// per repository.
    pub artifacts: usize,
}
