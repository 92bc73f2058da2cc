//! Where images come from and go to: registries and OCI image layouts (the Docker engine and
//! archives live in `engine.rs` / `archive.rs`). Resolution of references and platforms.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::{
    Descriptor, Digest, ImageConfig, ImageRef, Platform, RawManifest, Reference, TargetImageInput,
    Verifier,
};

use crate::hash::fast_hasher;
use crate::registry::client::{ClientOptions, Registry};

/// A place holding manifests and blobs.
#[derive(Clone)]
pub enum Location {
    /// A repository in a registry.
    Registry {
        /// The client.
        client: Arc<Registry>,
        /// The repository path.
        repo: String,
    },
    /// An OCI image layout directory.
    Layout {
        /// The directory.
        dir: PathBuf,
    },
}

impl Location {
    /// Fetches a manifest by tag/ref name or digest.
    pub async fn manifest(&self, reference: &str) -> Result<RawManifest> {
        match self {
            Location::Registry { client, repo } => client.get_manifest(repo, reference).await,
            Location::Layout { dir } => {
                let d = Digest::parse(reference).with_context(|| {
                    format!("oci:{}: {reference:?} is not a digest", dir.display())
                })?;
                let bytes =
                    read_layout_blob(dir, &d, ddiff_core::manifest::MAX_MANIFEST_BYTES as u64)?;
                RawManifest::parse_with_digest(bytes, None, Some(&d))
                    .with_context(|| format!("oci:{}", dir.display()))
            }
        }
    }

    /// Fetches a manifest given its descriptor (media type known).
    pub async fn manifest_by_descriptor(&self, d: &Descriptor) -> Result<RawManifest> {
        match self {
            Location::Registry { .. } => self.manifest(&d.digest.to_string()).await,
            Location::Layout { dir } => {
                let bytes = read_layout_blob(dir, &d.digest, d.size)?;
                RawManifest::parse_with_digest(bytes, Some(d.media_type.as_str()), Some(&d.digest))
                    .with_context(|| format!("oci:{}", dir.display()))
            }
        }
    }

    /// Fetches a small blob whole, verified.
    pub async fn blob_bytes(&self, d: &Descriptor) -> Result<Vec<u8>> {
        match self {
            Location::Registry { client, repo } => client.get_blob_bytes(repo, d).await,
            Location::Layout { dir } => {
                let b = read_layout_blob(dir, &d.digest, d.size)?;
                check_bytes(&b, d).with_context(|| format!("oci:{}", dir.display()))?;
                Ok(b)
            }
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
            Location::Layout { dir } => {
                use std::io::Read;
                let path = dir.join(d.digest.layout_path());
                let mut f = std::fs::File::open(&path)
                    .with_context(|| format!("oci:{}: blob {} missing", dir.display(), d.digest))?;
                let mut v = Verifier::with_factory(d.digest.clone(), d.size, fast_hasher);
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = f
                        .read(&mut buf)
                        .with_context(|| format!("read {}", path.display()))?;
                    if n == 0 {
                        break;
                    }
                    v.update(&buf[..n])
                        .with_context(|| format!("oci:{}: blob {}", dir.display(), d.digest))?;
                    sink(&buf[..n])?;
                }
                v.finish()
                    .with_context(|| format!("oci:{}: blob {}", dir.display(), d.digest))?;
                Ok(())
            }
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Location::Registry { client, repo } => format!("{}/{}", client.host(), repo),
            Location::Layout { dir } => format!("oci:{}", dir.display()),
        }
    }
}

fn check_bytes(b: &[u8], d: &Descriptor) -> Result<()> {
    let mut v = Verifier::with_factory(d.digest.clone(), d.size, fast_hasher);
    v.update(b)?;
    v.finish()?;
    Ok(())
}

fn read_layout_blob(dir: &Path, d: &Digest, limit: u64) -> Result<Vec<u8>> {
    let path = dir.join(d.layout_path());
    let meta = std::fs::metadata(&path)
        .with_context(|| format!("oci:{}: blob {d} missing", dir.display()))?;
    if meta.len() > limit.max(1) {
        bail!(
            "oci:{}: blob {d} is {} bytes, expected at most {limit}",
            dir.display(),
            meta.len()
        );
    }
    std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))
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

/// A resolved image: its location, name and manifests with configs.
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
    pub fn target_input(&self) -> ddiff_core::TargetInput {
        ddiff_core::TargetInput {
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
    pub fn base_inputs(&self) -> Result<Vec<ddiff_core::BaseImage>> {
        self.images
            .iter()
            .map(|i| {
                ddiff_core::BaseImage::from_manifest(&self.name, &i.manifest, i.config.as_ref())
                    .map_err(Into::into)
            })
            .collect()
    }

    /// Total bytes of the distinct blobs of this image.
    pub fn full_size(&self) -> u64 {
        let mut seen = std::collections::BTreeMap::new();
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

/// The name to tag at a destination: `repository:tag` (or `repository@digest`).
pub fn bundle_name(r: &Reference) -> String {
    match (r.tag(), r.digest()) {
        (Some(t), _) => format!("{}:{t}", r.repository()),
        (None, Some(d)) => format!("{}@{d}", r.repository()),
        (None, None) => format!("{}:latest", r.repository()),
    }
}

/// Resolves a registry or layout reference. Engine and archive references are handled by
/// their own modules and rejected here.
pub async fn resolve(
    r: &ImageRef,
    platform: &PlatformChoice,
    opts: &ClientOptions,
) -> Result<Resolved> {
    let (location, name, top) = match r {
        ImageRef::Docker(reference) => {
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
            let top = loc
                .manifest(&tag_or_digest)
                .await
                .with_context(|| format!("cannot resolve {r}"))?;
            (loc, bundle_name(reference), top)
        }
        ImageRef::Oci { path, reference } => {
            let dir = PathBuf::from(path);
            let (desc, name) = pick_from_layout(&dir, reference.as_deref())?;
            let loc = Location::Layout { dir };
            let top = loc.manifest_by_descriptor(&desc).await?;
            (loc, name, top)
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

/// Picks the entry of an OCI layout's `index.json` for `reference` (the `ref.name`
/// annotation, `@N` for the N-th entry, or the only entry). Returns it and a bundle name.
pub fn pick_from_layout(dir: &Path, reference: Option<&str>) -> Result<(Descriptor, String)> {
    let path = dir.join("index.json");
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "oci:{}: cannot read index.json (is this an OCI image layout?)",
            dir.display()
        )
    })?;
    let idx = RawManifest::parse(bytes, None).with_context(|| format!("{}", path.display()))?;
    let idx = idx
        .as_index()
        .ok_or_else(|| anyhow!("{}: not an image index", path.display()))?
        .clone();
    let ref_name = |d: &Descriptor| {
        d.annotations
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.ref.name").cloned())
    };
    let chosen = match reference {
        Some(r) if r.starts_with('@') => {
            let n: usize = r[1..]
                .parse()
                .with_context(|| format!("oci:{}: bad index {r}", dir.display()))?;
            idx.manifests
                .get(n)
                .cloned()
                .ok_or_else(|| anyhow!("oci:{}: no entry {r}", dir.display()))?
        }
        Some(r) => idx
            .manifests
            .iter()
            .find(|d| ref_name(d).as_deref() == Some(r))
            .cloned()
            .ok_or_else(|| {
                let names: Vec<String> = idx.manifests.iter().filter_map(ref_name).collect();
                anyhow!(
                    "oci:{}: no image named {r:?}; the layout has: {}",
                    dir.display(),
                    if names.is_empty() {
                        "(no named images)".into()
                    } else {
                        names.join(", ")
                    }
                )
            })?,
        None if idx.manifests.len() == 1 => idx.manifests[0].clone(),
        None => bail!(
            "oci:{}: the layout holds {} images; name one as oci:DIR:REF",
            dir.display(),
            idx.manifests.len()
        ),
    };
    let full_name = chosen
        .annotations
        .as_ref()
        .and_then(|a| a.get("io.containerd.image.name").cloned())
        .and_then(|n| Reference::parse(&n).ok())
        .map(|r| bundle_name(&r));
    let name = full_name.or_else(|| {
        ref_name(&chosen).map(|t| {
            let base = dir
                .file_name()
                .map(|s| s.to_string_lossy().to_lowercase())
                .unwrap_or_else(|| "image".into());
            let repo: String = base
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            format!("{}:{t}", repo.trim_matches('-'))
        })
    });
    Ok((
        chosen.clone(),
        name.unwrap_or_else(|| format!("image@{}", chosen.digest)),
    ))
}
