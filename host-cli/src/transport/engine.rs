//! `docker-daemon:` (and bare `NAME:TAG`): the local Docker engine through its API (bollard;
//! `DOCKER_HOST` is honoured as by the docker CLI). As a source: image inspect (a base is
//! known by its diff_ids) and image save, read in one pass with the carried layers
//! compressed as they stream ([`Engine::export`]). As a destination: a `docker load` stream
//! that carries only the layers the engine lacks, from a bundle ([`load`]) or from a registry
//! ([`EnginePuller`], after a registry load and for `ddiff pull`).
//!
//! Which layers the engine must already have, the stream's entries and the image ID to
//! expect are the core's (`ddiff_core::engine_plan`); the stream is framed by
//! [`super::docker_archive::write_load_stream`].

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use bollard::Docker;
use bytes::Bytes;
use ddiff_core::destination::engine_names;
use ddiff_core::engine_plan::{
    base_covers, chain_ids, docker_load_archive_indexed, docker_load_archive_omitting,
    docker_load_image,
};
use ddiff_core::{check_tag, Digest, ImageRef, LoadArchive, Reference, TagHolder, TargetIndex};
use futures::StreamExt;

use super::docker_archive::{image_from_stream, write_load_stream};
use super::{host_platform, resolve, LoadSummary, LocalImage, PlatformChoice};
use crate::bundle_io::{open_blob, VerifiedBundle};
use crate::compress::Settings;
use crate::progress::{Item, Progress};
use crate::registry::client::ClientOptions;

/// What image inspect says about an image.
#[derive(Clone, Debug)]
pub struct EngineImage {
    /// The image ID (config digest).
    pub id: Digest,
    /// Layer diff_ids, base first.
    pub diff_ids: Vec<Digest>,
    /// Its tags.
    pub repo_tags: Vec<String>,
    /// Size on disk (uncompressed), for progress estimates.
    pub size: u64,
}

/// A connected engine.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

impl Engine {
    /// Connects (local socket or `DOCKER_HOST`) and negotiates the API version.
    pub async fn connect() -> Result<Engine> {
        let docker = Docker::connect_with_defaults()
            .context("cannot configure the Docker engine connection")?;
        let docker = docker
            .negotiate_version()
            .await
            .context("cannot reach the Docker engine (is it running? is DOCKER_HOST right?)")?;
        Ok(Engine { docker })
    }

    /// The bollard client.
    pub fn api(&self) -> &Docker {
        &self.docker
    }

    /// `docker pull REF` (the engine talks to the registry itself).
    pub async fn pull(&self, reference: &str) -> Result<()> {
        let opts = bollard::query_parameters::CreateImageOptionsBuilder::default()
            .from_image(reference)
            .build();
        let mut s = self.docker.create_image(Some(opts), None, None);
        while let Some(msg) = s.next().await {
            let m = msg.with_context(|| format!("docker pull {reference}"))?;
            if let Some(e) = m.error_detail.and_then(|d| d.message) {
                anyhow::bail!("docker pull {reference}: {e}");
            }
        }
        Ok(())
    }

    /// Image inspect; `Ok(None)` when the engine has no such image.
    pub async fn inspect(&self, name: &str) -> Result<Option<EngineImage>> {
        match self.docker.inspect_image(name).await {
            Ok(i) => {
                let id =
                    i.id.as_deref()
                        .ok_or_else(|| anyhow!("image inspect {name}: no Id"))?;
                let id = Digest::parse(id).with_context(|| format!("image inspect {name}"))?;
                let diff_ids = i
                    .root_fs
                    .and_then(|r| r.layers)
                    .unwrap_or_default()
                    .iter()
                    .map(|l| Digest::parse(l))
                    .collect::<Result<Vec<_>, _>>()
                    .with_context(|| format!("image inspect {name}: RootFS.Layers"))?;
                Ok(Some(EngineImage {
                    id,
                    diff_ids,
                    repo_tags: i.repo_tags.unwrap_or_default(),
                    size: i.size.unwrap_or(0).max(0) as u64,
                }))
            }
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(anyhow!(e)).with_context(|| format!("image inspect {name}")),
        }
    }

    /// Every image ID with its tags (for finding a base under another name).
    pub async fn list(&self) -> Result<Vec<(String, Vec<String>)>> {
        let l = self
            .docker
            .list_images(None::<bollard::query_parameters::ListImagesOptions>)
            .await
            .context("listing the engine's images")?;
        Ok(l.into_iter().map(|i| (i.id, i.repo_tags)).collect())
    }

    /// The engine's version string (`20.10.24+dfsg1`) and its major version.
    pub async fn version(&self) -> Result<(String, u32)> {
        let v = self
            .docker
            .version()
            .await
            .context("asking the engine its version")?;
        let s = v.version.unwrap_or_default();
        let major = s
            .split('.')
            .next()
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        Ok((s, major))
    }

    /// `docker save NAME` as a blocking reader (to run on a blocking thread).
    pub fn export_reader(&self, name: &str) -> ChannelReader {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
        let docker = self.docker.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            let mut s = docker.export_image(&name);
            while let Some(item) = s.next().await {
                let item =
                    item.map_err(|e| std::io::Error::other(format!("image save {name}: {e}")));
                let stop = item.is_err();
                if tx.send(item).await.is_err() || stop {
                    return;
                }
            }
        });
        ChannelReader::new(rx)
    }

    /// Reads image `name` through image save, compressing the layers whose diff_ids are not
    /// in `base_ids` into temporary files in `tmp_dir` as they stream (the others are only
    /// counted).
    pub async fn export(
        &self,
        name: &str,
        base_ids: &[Digest],
        settings: Settings,
        tmp_dir: &Path,
        progress: &Progress,
    ) -> Result<LocalImage> {
        let img = self
            .inspect(name)
            .await?
            .with_context(|| format!("the local Docker engine has no image {name}"))?;
        let item = progress.item(format!("exporting {name}"), img.size);
        let reader = self.export_reader(name);
        let (base_ids, tmp_dir, it, nm) = (
            base_ids.to_vec(),
            tmp_dir.to_path_buf(),
            item.clone(),
            name.to_string(),
        );
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
        .await??;
        item.finish("exported");
        Ok(local)
    }

    /// Streams the `docker load` archive `a` into the engine, blob entries read from `open`
    /// on a blocking thread, and checks the engine then has the expected image under the
    /// archive's tag. Returns the engine's messages.
    async fn load_archive(
        &self,
        a: &LoadArchive,
        mut open: impl FnMut(usize) -> Result<Box<dyn Read + Send>> + Send + 'static,
        item: &Item,
    ) -> Result<Vec<String>> {
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let (a2, it) = (a.clone(), item.clone());
        let writer = tokio::task::spawn_blocking(move || {
            let mut w = ChannelWriter { tx: tx.clone() };
            let r = write_load_stream(&a2, &mut open, &mut w, Some(&it));
            if let Err(e) = &r {
                let _ = tx.blocking_send(Err(std::io::Error::other(format!("{e:#}"))));
            }
            r
        });
        let msgs = self.load(rx).await;
        let written = writer.await?;
        let msgs = msgs.with_context(|| format!("docker load of {}", a.tag))?;
        written?;
        let got = self
            .inspect(&a.tag)
            .await?
            .ok_or_else(|| anyhow!("docker load reported success but {} is not there", a.tag))?;
        if got.id != a.image_id {
            bail!(
                "{} is image {} after the load, expected {}",
                a.tag,
                got.id,
                a.image_id
            );
        }
        Ok(msgs)
    }

    /// `docker load` of a stream of tar chunks; returns the engine's messages
    /// (`Loaded image: app:2`). An error message from the engine is an error.
    pub async fn load(
        &self,
        body: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    ) -> Result<Vec<String>> {
        let stream =
            futures::stream::unfold(
                body,
                |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
            );
        let opts = bollard::query_parameters::ImportImageOptionsBuilder::default()
            .quiet(true)
            .build();
        let mut s = self.docker.import_image_stream(opts, stream, None);
        let mut out = Vec::new();
        while let Some(m) = s.next().await {
            let m = m.map_err(|e| anyhow!("docker load: {e}"))?;
            if let Some(t) = m.stream {
                let t = t.trim();
                if !t.is_empty() {
                    out.push(t.to_string());
                }
            }
        }
        Ok(out)
    }
}

/// A blocking `Read` over chunks sent by an async task.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl ChannelReader {
    fn new(rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>) -> Self {
        ChannelReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

/// A blocking `Write` that hands chunks to an async task.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::other("the engine stopped reading the load stream"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Err(e)) => return Err(e),
                Some(Ok(b)) => self.cur = b,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// Loading a bundle.

/// Loads a verified bundle into the engine, each target under its own name or `rename`
/// (one-target bundles). Phase 1 checks every target (the engine has its base: an image
/// whose layers are a prefix of the target's, covering every layer the bundle does not
/// carry; its tag may move); phase 2 streams one `docker load` per target. Layers an earlier
/// target of this load already gave the engine are left out of the later streams, as the
/// base's are: layers shared by many targets are streamed once.
pub async fn load(
    bundle: &Arc<VerifiedBundle>,
    rename: Option<&str>,
    progress: &Progress,
) -> Result<LoadSummary> {
    let engine = Engine::connect().await?;
    let (version, major) = engine.version().await?;
    let meta = &bundle.report.meta;
    let base_name = meta
        .base
        .as_ref()
        .and_then(|b| b.references.first().cloned())
        .unwrap_or_else(|| "(none)".into());
    let candidates: Vec<String> = meta
        .base
        .iter()
        .flat_map(|b| b.references.iter())
        .flat_map(|r| engine_names(r))
        .collect();
    // Phase 1: check every target; nothing is sent before all pass.
    let mut archives = Vec::new();
    let mut all_images: Option<Vec<Vec<Digest>>> = None;
    let mut moves = Vec::new();
    let index = TargetIndex::new(&bundle.report);
    for ti in 0..meta.targets.len() {
        let a = docker_load_archive_indexed(&index, ti, rename)?;
        if a.zstd && major < 25 {
            bail!(
                "{}: the bundle's layers are zstd-compressed and this Docker engine ({version}) reads only gzip; make the bundle with --compression gzip (nothing was loaded)",
                a.tag
            );
        }
        if a.absent.iter().any(|x| *x) {
            let mut ok = false;
            for c in &candidates {
                if let Some(img) = engine.inspect(c).await? {
                    if base_covers(&a.diff_ids, &a.absent, &img.diff_ids) {
                        ok = true;
                        break;
                    }
                }
            }
            if !ok {
                // The base may be there under another name: look at every image.
                if all_images.is_none() {
                    all_images = Some(engine.all_diff_ids().await?);
                }
                ok = all_images
                    .iter()
                    .flatten()
                    .any(|ids| base_covers(&a.diff_ids, &a.absent, ids));
            }
            if !ok {
                let n = a.absent.iter().filter(|x| **x).count();
                bail!(
                    "the local Docker engine lacks the base {base_name} of {} ({n} layer(s) the bundle does not carry); nothing was loaded. Bring the base first (docker load -i base.tar, or ddiff load of a bundle made with base scratch), then run this again",
                    a.tag
                );
            }
        }
        // The name it will take: never the base's; moving any other is reported.
        let holder = engine.inspect(&a.tag).await?.map(|img| TagHolder {
            digest: img.id,
            diff_ids: Some(img.diff_ids),
        });
        let dest = Reference::parse(&a.tag).ok();
        moves.extend(
            check_tag(meta, &a.tag, dest.as_ref(), holder.as_ref(), &a.image_id).with_context(
                || {
                    format!(
                        "{}: cannot load {}: nothing was loaded",
                        bundle.path.display(),
                        a.tag
                    )
                },
            )?,
        );
        archives.push(a);
    }
    // Phase 2: one docker load stream per target.
    let mut summary = LoadSummary {
        targets: archives.len(),
        moved_tags: moves,
        ..LoadSummary::default()
    };
    let mut chains: BTreeSet<Digest> = BTreeSet::new();
    let mut had: BTreeSet<Digest> = BTreeSet::new();
    for (ti, first) in archives.into_iter().enumerate() {
        let ids = chain_ids(&first.diff_ids);
        let a = if ids.iter().any(|c| chains.contains(c)) {
            docker_load_archive_omitting(&index, ti, rename, &|i| chains.contains(&ids[i]))?
        } else {
            first
        };
        let item = progress.item(format!("docker load {}", a.tag), a.stream_len());
        let b = bundle.clone();
        let msgs = engine
            .load_archive(&a, move |i| open_blob(&b, i), &item)
            .await?;
        item.finish("loaded");
        for m in &msgs {
            progress.println(m);
        }
        summary.images.push(format!("{}@{}", a.tag, a.image_id));
        for e in &a.entries {
            if let ddiff_core::LoadEntry::Blob { size, .. } = e {
                summary.uploaded_blobs += 1;
                summary.uploaded_bytes += size;
            }
        }
        // Left out and not given by an earlier target: the engine had them (the base).
        for (i, absent) in a.absent.iter().enumerate() {
            if *absent && !chains.contains(&ids[i]) {
                had.insert(ids[i].clone());
            }
        }
        chains.extend(ids);
    }
    summary.skipped_blobs = had.len();
    Ok(summary)
}

impl Engine {
    /// Every local image's layer diff_ids.
    async fn all_diff_ids(&self) -> Result<Vec<Vec<Digest>>> {
        let mut out = Vec::new();
        for (id, _) in self.list().await? {
            if let Some(img) = self.inspect(&id).await? {
                out.push(img.diff_ids);
            }
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Copying from a registry.

/// What one pull did.
pub struct Pulled {
    /// The name the image has in the engine.
    pub name: String,
    /// Layer bytes downloaded.
    pub downloaded: u64,
    /// Layers the engine already had (not downloaded).
    pub layers_present: usize,
}

/// The local engine, with what it holds, for copying images from a registry into it: ddiff
/// downloads the blobs itself and streams them into `docker load`, so the engine needs no
/// `insecure-registries` entry, and the image gets the name the caller gives it (no
/// registry-prefixed name is left behind, as with the original DockerDiff).
pub struct EnginePuller {
    engine: Engine,
    version: String,
    major: u32,
    /// Every local image's layers, to leave out the layers the engine has.
    local: Vec<Vec<Digest>>,
}

impl EnginePuller {
    /// Connects to the engine and lists its images' layers.
    pub async fn connect() -> Result<EnginePuller> {
        let engine = Engine::connect().await?;
        let (version, major) = engine.version().await?;
        let local = engine.all_diff_ids().await?;
        Ok(EnginePuller {
            engine,
            version,
            major,
            local,
        })
    }

    /// Pulls `host/repo:tag` (the host platform's image) into the engine as `name`.
    pub async fn pull(
        &mut self,
        host: &str,
        repo: &str,
        tag: &str,
        name: &str,
        opts: &ClientOptions,
        progress: &Progress,
    ) -> Result<Pulled> {
        let remote = ImageRef::parse(&format!("docker://{host}/{repo}:{tag}"))?;
        let res = resolve(&remote, &PlatformChoice::One(host_platform()), opts).await?;
        let img = &res.images[0];
        let cfg = img.config.as_ref().context("not an image")?;
        let ids = &cfg.rootfs.diff_ids;
        let have = self
            .local
            .iter()
            .filter(|l| l.len() <= ids.len() && ids[..l.len()] == l[..])
            .map(Vec::len)
            .max()
            .unwrap_or(0);
        let skip: Vec<bool> = (0..ids.len()).map(|i| i < have).collect();
        let a = docker_load_image(&img.manifest, &img.config_bytes, &skip, name)?;
        if a.zstd && self.major < 25 {
            bail!(
                "its layers are zstd-compressed and this Docker engine ({}) reads only gzip",
                self.version
            );
        }
        let layers = img.manifest.as_image().context("image")?.layers.clone();
        let total: u64 = layers
            .iter()
            .zip(&skip)
            .filter(|(_, s)| !**s)
            .map(|(l, _)| l.size)
            .sum();
        let item = progress.item(format!("pulling {name}"), a.stream_len());
        // Each layer is downloaded (verified) by an async task into a bounded queue that the
        // blocking stream writer reads: chunk by chunk, never a whole layer in memory.
        let (loc, rt) = (res.location.clone(), tokio::runtime::Handle::current());
        let open = move |i: usize| {
            let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(16);
            let (loc, d) = (loc.clone(), layers[i].clone());
            rt.spawn(async move {
                let t2 = tx.clone();
                let r = loc
                    .blob_stream(&d, &mut |c| {
                        let c = Bytes::copy_from_slice(c);
                        tokio::task::block_in_place(|| t2.blocking_send(Ok(c)))
                            .map_err(|_| anyhow!("load stream closed"))
                    })
                    .await;
                if let Err(e) = r {
                    let _ = tx.send(Err(std::io::Error::other(format!("{e:#}")))).await;
                }
            });
            Ok(Box::new(ChannelReader::new(rx)) as Box<dyn Read + Send>)
        };
        self.engine
            .load_archive(&a, open, &item)
            .await
            .with_context(|| format!("docker load of {name}"))?;
        item.finish("loaded");
        self.local.push(ids.clone());
        Ok(Pulled {
            name: name.to_string(),
            downloaded: total,
            layers_present: have,
        })
    }
}
