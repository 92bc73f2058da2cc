//! `ddiff inventory SOURCE`: write what a site holds (docs/inventory.md), for
//! `ddiff diff --have` on the online side. The document is the core's
//! (`ddiff_core::inventory`); this reads the source through the transports and writes the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use ddiff_core::inventory::{InventorySummary, MAX_INVENTORY_BYTES};
use ddiff_core::{
    Descriptor, Digest, ImageConfig, Inventory, InventoryBuilder, InventorySource, RawManifest,
};

use super::Global;
use crate::progress::human_bytes;
use crate::registry::client::Registry;
use crate::transport::engine::Engine;
use crate::transport::layout::LayoutStore;
use crate::transport::Location;

/// Write an inventory of what a site holds, for `ddiff diff --have` on the online side.
///
/// SOURCE is docker://HOST (every repository and tag of the registry, through its paginated
/// catalog), docker://HOST/REPO (every tag of one repository), docker://HOST/REPO:TAG (one
/// image), oci:DIR or oci-archive:FILE (every entry of an OCI layout) or docker-daemon: (every
/// image of the local Docker engine). Every platform of a multi-platform image is listed.
///
/// The file lists manifests (digest, media type, the references naming them) and blobs
/// (digest, size, media type, diff_id where known, the repositories holding them), as compact
/// JSON with sorted keys and its own content digest inside: any changed byte is refused when
/// it is read. About 300 bytes per layer (docs/inventory.md). It is written atomically.
///
/// Example: ddiff inventory docker://registry.local:5000 -o site.inventory.json
#[derive(clap::Args, Debug)]
pub struct InventoryArgs {
    /// What to list: docker://HOST[/REPO[:TAG]], oci:DIR, oci-archive:FILE or docker-daemon:.
    pub source: String,
    /// Output file.
    #[arg(short, long, value_name = "FILE", default_value = "inventory.json")]
    pub output: PathBuf,
}

/// What `inventory` reports (`--json`).
#[derive(serde::Serialize)]
pub struct InventoryReport {
    /// The file written.
    pub file: String,
    /// Its size.
    pub file_bytes: u64,
    /// What it holds.
    #[serde(flatten)]
    pub summary: InventorySummary,
}

/// Runs `inventory`.
pub async fn run(args: InventoryArgs, global: &Global) -> Result<ExitCode> {
    let source = InventorySource::parse(&args.source)?;
    let r = write(&source, &args.source, &args.output, global).await?;
    if global.json {
        println!("{}", ddiff_core::display::json_pretty(&r)?);
    } else {
        let s = &r.summary;
        println!(
            "wrote {} ({}): {}: {} manifest(s) under {} reference(s), {} blob(s) ({} layers, {}); {}",
            r.file,
            human_bytes(r.file_bytes),
            ddiff_core::display::Safe(&s.source),
            s.manifests,
            s.references,
            s.blobs,
            s.layers,
            human_bytes(s.bytes),
            s.digest
        );
        println!("online, run: ddiff diff --have {} TARGET...", r.file);
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads `source` (named `written`) and writes its inventory to `out`, atomically.
pub async fn write(
    source: &InventorySource,
    written: &str,
    out: &Path,
    global: &Global,
) -> Result<InventoryReport> {
    let inv = read(source, written, global).await?;
    let bytes = inv.to_bytes();
    crate::durable::write_whole(out, "inventory", &bytes)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(InventoryReport {
        file: out.display().to_string(),
        file_bytes: bytes.len() as u64,
        summary: inv.summary(),
    })
}

/// Reads an inventory file, checked (`--have`).
pub fn read_file(path: &Path) -> Result<Inventory> {
    let what = || format!("inventory {}", path.display());
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot open {}", what()))?
        .len();
    if size > MAX_INVENTORY_BYTES as u64 {
        return Err(ddiff_core::InventoryError::TooLarge {
            size: usize::try_from(size).unwrap_or(usize::MAX),
            max: MAX_INVENTORY_BYTES,
        })
        .with_context(what);
    }
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", what()))?;
    Inventory::parse(&bytes).with_context(what)
}

/// Reads `source` into an inventory.
pub async fn read(source: &InventorySource, written: &str, global: &Global) -> Result<Inventory> {
    let mut b = InventoryBuilder::new(source.kind(), written);
    match source {
        InventorySource::Registry {
            host,
            repository,
            reference,
        } => {
            let client = Arc::new(Registry::new(host, global.client_options())?);
            client
                .ping()
                .await
                .with_context(|| format!("registry {host} does not answer"))?;
            let repos = match repository {
                Some(r) => vec![r.clone()],
                None => client
                    .catalog()
                    .await
                    .with_context(|| format!("listing the repositories of {host}"))?,
            };
            let mut walker = Walker::default();
            for repo in repos {
                let tags = match reference {
                    Some(t) => vec![t.clone()],
                    None => client
                        .tags(&repo)
                        .await
                        .with_context(|| format!("listing the tags of {host}/{repo}"))?,
                };
                let loc = Location::Registry {
                    client: client.clone(),
                    repo: repo.clone(),
                };
                for tag in tags {
                    let top = loc
                        .manifest(&tag)
                        .await
                        .with_context(|| format!("reading {host}/{repo}:{tag}"))?;
                    let name = if tag.contains(':') {
                        format!("{repo}@{tag}")
                    } else {
                        format!("{repo}:{tag}")
                    };
                    walker
                        .walk(&loc, top, Some(&name), Some(&repo), &mut b)
                        .await?;
                }
            }
        }
        InventorySource::Layout(r) => {
            let store = LayoutStore::open(r)?;
            let index = store.index_json().with_context(|| {
                format!(
                    "{}: cannot read index.json (is this an OCI image layout?)",
                    store.describe()
                )
            })?;
            let mut names: HashMap<Digest, Vec<String>> = HashMap::new();
            for (name, d) in ddiff_core::oci_layout::tags(&index) {
                names.entry(d.digest).or_default().push(name);
            }
            let loc = Location::Layout(store);
            let mut walker = Walker::default();
            for d in ddiff_core::oci_layout::entries(&index) {
                let top = loc.manifest_by_descriptor(&d).await?;
                let refs = names.remove(&d.digest).unwrap_or_default();
                if refs.is_empty() {
                    walker.walk(&loc, top, None, None, &mut b).await?;
                    continue;
                }
                for n in refs {
                    walker
                        .walk(&loc, top.clone(), Some(&n), None, &mut b)
                        .await?;
                }
            }
        }
        InventorySource::Engine => {
            let engine = Engine::connect().await?;
            for (id, tags) in engine.list().await? {
                let Some(img) = engine.inspect(&id).await? else {
                    continue; // removed while listing
                };
                let tags: Vec<String> = tags.into_iter().filter(|t| t != "<none>:<none>").collect();
                b.engine_image(&img.id, &tags, &img.diff_ids);
            }
        }
    }
    Ok(b.finish())
}

/// Walks manifests, reading each manifest and config once per source.
#[derive(Default)]
struct Walker {
    configs: HashMap<Digest, Option<ImageConfig>>,
    children: HashMap<Digest, RawManifest>,
}

impl Walker {
    async fn walk(
        &mut self,
        loc: &Location,
        top: RawManifest,
        name: Option<&str>,
        repo: Option<&str>,
        b: &mut InventoryBuilder,
    ) -> Result<()> {
        b.manifest(&top, name);
        let images = match top.as_index() {
            None => vec![top],
            Some(idx) => {
                let mut v = Vec::new();
                for d in &idx.manifests {
                    v.push(self.child(loc, d).await?);
                }
                v
            }
        };
        for m in images {
            if m.as_index().is_some() {
                // A nested index: listed, its children not followed (as `diff` does not).
                b.manifest(&m, None);
                continue;
            }
            b.manifest(&m, None);
            let cfg = match m.as_image() {
                Some(img) => self.config(loc, &img.config).await?,
                None => None,
            };
            b.image(&m, cfg.as_ref(), repo);
        }
        Ok(())
    }

    async fn child(&mut self, loc: &Location, d: &Descriptor) -> Result<RawManifest> {
        if let Some(m) = self.children.get(&d.digest) {
            return Ok(m.clone());
        }
        let m = loc
            .manifest_by_descriptor(d)
            .await
            .with_context(|| format!("reading manifest {} from {}", d.digest, loc.describe()))?;
        self.children.insert(d.digest.clone(), m.clone());
        Ok(m)
    }

    async fn config(&mut self, loc: &Location, d: &Descriptor) -> Result<Option<ImageConfig>> {
        if let Some(c) = self.configs.get(&d.digest) {
            return Ok(c.clone());
        }
        let c = if d.media_type.is_image_config() {
            let bytes = loc
                .blob_bytes(d)
                .await
                .with_context(|| format!("reading config {} from {}", d.digest, loc.describe()))?;
            Some(
                ImageConfig::parse(&bytes)
                    .with_context(|| format!("config {} of {}", d.digest, loc.describe()))?,
            )
        } else {
            None
        };
        self.configs.insert(d.digest.clone(), c.clone());
        Ok(c)
    }
}
