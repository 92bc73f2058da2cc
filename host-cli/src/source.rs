//! Where images come from and go to: registries and OCI image layouts (the Docker engine and
//! archives live in `engine.rs` / `archive.rs`). Resolution of references and platforms.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::{
    Descriptor, Digest, ImageConfig, ImageRef, Platform, RawManifest, Reference, TargetImageInput,
    Verifier,
};

use crate::archive::TarIndex;
use crate::hash::fast_hasher;
use crate::registry::client::{ClientOptions, Registry};

/// An OCI image layout: a directory (`oci:DIR`) or a tar of one (`oci-archive:FILE`), read
/// in place (the archive is indexed once and its entries are read by offset, never
/// unpacked).
#[derive(Clone)]
pub enum LayoutStore {
    /// A directory.
    Dir(PathBuf),
    /// A tar file.
    Archive(Arc<TarIndex>),
}

impl LayoutStore {
    /// Opens the layout an `oci:` / `oci-archive:` path names.
    pub fn open(r: &ImageRef) -> Result<LayoutStore> {
        match r {
            ImageRef::Oci { path, .. } => Ok(LayoutStore::Dir(PathBuf::from(path))),
            ImageRef::OciArchive { path, .. } => Ok(LayoutStore::Archive(Arc::new(
                TarIndex::open(Path::new(path))?,
            ))),
            other => bail!("{other}: not an OCI image layout"),
        }
    }

    /// `oci:DIR` or `oci-archive:FILE`, for messages.
    pub fn describe(&self) -> String {
        match self {
            LayoutStore::Dir(d) => format!("oci:{}", d.display()),
            LayoutStore::Archive(i) => format!("oci-archive:{}", i.path.display()),
        }
    }

    /// A name for images found only by their `ref.name` tag: the directory's or file's
    /// name, lowercased, other characters as `-`.
    fn repository_guess(&self) -> String {
        let stem = match self {
            LayoutStore::Dir(d) => d.file_name().map(|s| s.to_string_lossy().to_lowercase()),
            LayoutStore::Archive(i) => i
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().to_lowercase()),
        };
        let repo: String = stem
            .unwrap_or_else(|| "image".into())
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let repo = repo.trim_matches('-');
        if repo.is_empty() {
            "image".into()
        } else {
            repo.into()
        }
    }

    /// The size of a file of the layout (`index.json`, `blobs/sha256/…`), `None` if absent.
    pub(crate) fn size(&self, rel: &str) -> Option<u64> {
        match self {
            LayoutStore::Dir(d) => std::fs::metadata(d.join(rel))
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
            LayoutStore::Archive(i) => i.size(rel),
        }
    }

    /// A reader over a file of the layout.
    pub(crate) fn open_file(&self, rel: &str) -> Result<Box<dyn std::io::Read + Send>> {
        match self {
            LayoutStore::Dir(d) => {
                let path = d.join(rel);
                let f = std::fs::File::open(&path)
                    .with_context(|| format!("cannot open {}", path.display()))?;
                Ok(Box::new(f))
            }
            LayoutStore::Archive(i) => Ok(Box::new(i.open_entry(rel)?)),
        }
    }

    /// Reads a file of at most `limit` bytes whole.
    pub(crate) fn read_small(&self, rel: &str, limit: u64) -> Result<Vec<u8>> {
        use std::io::Read;
        let size = self
            .size(rel)
            .ok_or_else(|| anyhow!("{}: {rel} missing", self.describe()))?;
        if size > limit.max(1) {
            bail!(
                "{}: {rel} is {size} bytes, expected at most {limit}",
                self.describe()
            );
        }
        let mut v = Vec::with_capacity(size as usize);
        self.open_file(rel)?
            .take(size)
            .read_to_end(&mut v)
            .with_context(|| format!("{}: cannot read {rel}", self.describe()))?;
        Ok(v)
    }

    /// Reads a blob of at most `limit` bytes whole (not verified).
    fn read_blob(&self, d: &Digest, limit: u64) -> Result<Vec<u8>> {
        let rel = d.layout_path();
        if self.size(&rel).is_none() {
            bail!("{}: blob {d} missing", self.describe());
        }
        self.read_small(&rel, limit)
    }
}

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
    /// An OCI image layout, a directory or an archive.
    Layout(LayoutStore),
}

impl Location {
    /// Fetches a manifest by tag/ref name or digest.
    pub async fn manifest(&self, reference: &str) -> Result<RawManifest> {
        match self {
            Location::Registry { client, repo } => client.get_manifest(repo, reference).await,
            Location::Layout(store) => {
                let d = Digest::parse(reference).with_context(|| {
                    format!("{}: {reference:?} is not a digest", store.describe())
                })?;
                let bytes = store.read_blob(&d, ddiff_core::manifest::MAX_MANIFEST_BYTES as u64)?;
                RawManifest::parse_with_digest(bytes, None, Some(&d))
                    .with_context(|| store.describe())
            }
        }
    }

    /// Fetches a manifest given its descriptor (media type known).
    pub async fn manifest_by_descriptor(&self, d: &Descriptor) -> Result<RawManifest> {
        match self {
            Location::Registry { .. } => self.manifest(&d.digest.to_string()).await,
            Location::Layout(store) => {
                let bytes = store.read_blob(&d.digest, d.size)?;
                RawManifest::parse_with_digest(bytes, Some(d.media_type.as_str()), Some(&d.digest))
                    .with_context(|| store.describe())
            }
        }
    }

    /// Fetches a small blob whole, verified.
    pub async fn blob_bytes(&self, d: &Descriptor) -> Result<Vec<u8>> {
        match self {
            Location::Registry { client, repo } => client.get_blob_bytes(repo, d).await,
            Location::Layout(store) => {
                let b = store.read_blob(&d.digest, d.size)?;
                check_bytes(&b, d).with_context(|| store.describe())?;
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
            Location::Layout(store) => {
                let rel = d.digest.layout_path();
                if store.size(&rel).is_none() {
                    bail!("{}: blob {} missing", store.describe(), d.digest);
                }
                let mut f = store.open_file(&rel)?;
                crate::hash::copy_verified(&mut f, &d.digest, d.size, sink)
                    .with_context(|| store.describe())
            }
        }
    }

    /// A short description for messages.
    pub fn describe(&self) -> String {
        match self {
            Location::Registry { client, repo } => format!("{}/{}", client.host(), repo),
            Location::Layout(store) => store.describe(),
        }
    }
}

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
        ImageRef::Oci { reference, .. } | ImageRef::OciArchive { reference, .. } => {
            let store = LayoutStore::open(r)?;
            let (desc, name) = pick_from_layout(&store, reference.as_deref())?;
            let loc = Location::Layout(store);
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
pub fn pick_from_layout(
    store: &LayoutStore,
    reference: Option<&str>,
) -> Result<(Descriptor, String)> {
    let label = store.describe();
    let bytes = store
        .read_small(
            "index.json",
            ddiff_core::manifest::MAX_MANIFEST_BYTES as u64,
        )
        .with_context(|| {
            format!("{label}: cannot read index.json (is this an OCI image layout?)")
        })?;
    let idx = RawManifest::parse(bytes, None).with_context(|| format!("{label}: index.json"))?;
    let idx = idx
        .as_index()
        .ok_or_else(|| anyhow!("{label}: index.json is not an image index"))?
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
                .with_context(|| format!("{label}: bad index {r}"))?;
            idx.manifests
                .get(n)
                .cloned()
                .ok_or_else(|| anyhow!("{label}: no entry {r}"))?
        }
        Some(r) => idx
            .manifests
            .iter()
            .find(|d| ref_name(d).as_deref() == Some(r))
            .cloned()
            .ok_or_else(|| {
                let names: Vec<String> = idx.manifests.iter().filter_map(ref_name).collect();
                anyhow!(
                    "{label}: no image named {r:?}; the layout has: {}",
                    if names.is_empty() {
                        "(no named images)".into()
                    } else {
                        names.join(", ")
                    }
                )
            })?,
        None if idx.manifests.len() == 1 => idx.manifests[0].clone(),
        None => bail!(
            "{label}: the layout holds {} images; name one as {label}:REF",
            idx.manifests.len()
        ),
    };
    let full_name = chosen
        .annotations
        .as_ref()
        .and_then(|a| a.get("io.containerd.image.name").cloned())
        .and_then(|n| Reference::parse(&n).ok())
        .map(|r| bundle_name(&r));
    let name = full_name
        .or_else(|| ref_name(&chosen).map(|t| format!("{}:{t}", store.repository_guess())));
    Ok((
        chosen.clone(),
        name.unwrap_or_else(|| format!("image@{}", chosen.digest)),
    ))
}
