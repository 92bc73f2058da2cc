//! `ddiff pull REF...`: copy images from the default registry into the local Docker engine.
//! ddiff downloads the blobs itself and streams them into `docker load` (Engine API), so the
//! engine needs no `insecure-registries` entry. Layers the engine already has (a prefix of
//! the image's layers held by some local image) are not downloaded.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use ddiff_core::engine_plan::docker_load_image;
use ddiff_core::{ImageRef, LoadEntry};

use super::load::destination_repository;
use super::{default_registry, parse_image_ref, Global};
use crate::engine::Engine;
use crate::progress::human_bytes;
use crate::source::{host_platform, resolve, PlatformChoice};

/// Pull images from the registry into the local Docker engine (no docker pull needed).
///
/// The registry is $DDIFF_URL, else localhost:$DDIFF_PORT, else localhost:5000. Goes through
/// the Engine API natively, so no insecure-registries setting is needed.
///
/// Example: ddiff pull app:2
#[derive(clap::Args, Debug)]
pub struct PullArgs {
    /// Images in the registry (NAME:TAG); they are tagged so in the engine.
    #[arg(required = true)]
    pub refs: Vec<String>,
}

/// Runs `pull`.
pub async fn run(args: PullArgs, global: &Global) -> Result<ExitCode> {
    let host = default_registry();
    let mut engine = EnginePuller::connect().await?;
    for written in &args.refs {
        let r = match parse_image_ref(written)? {
            ImageRef::Bare(r) | ImageRef::DockerDaemon(r) => r,
            other => bail!("{other}: pull takes NAME:TAG (from the registry {host})"),
        };
        let repo = destination_repository(written, &r);
        let p = engine
            .pull(&host, &repo, r.tag_or_latest(), &r.familiar(), global)
            .await
            .with_context(|| format!("cannot pull {written} from {host}"))?;
        println!(
            "pulled {} from {host}/{repo} ({} downloaded, {} layer(s) already here)",
            p.name,
            human_bytes(p.downloaded),
            p.layers_present
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// What one pull did.
pub struct Pulled {
    /// The name the image has in the engine.
    pub name: String,
    /// Layer bytes downloaded.
    pub downloaded: u64,
    /// Layers the engine already had (not downloaded).
    pub layers_present: usize,
}

/// The local engine, with what it holds, for pulling images from a registry into it: ddiff
/// downloads the blobs itself and streams them into `docker load`, so the engine needs no
/// `insecure-registries` entry, and the image gets the name the caller gives it (no
/// registry-prefixed name is left behind, as with the original DockerDiff).
pub struct EnginePuller {
    engine: Engine,
    version: String,
    major: u32,
    /// Every local image's layers, to leave out the layers the engine has.
    local: Vec<Vec<ddiff_core::Digest>>,
}

impl EnginePuller {
    /// Connects to the engine and lists its images' layers.
    pub async fn connect() -> Result<EnginePuller> {
        let engine = Engine::connect().await?;
        let (version, major) = engine.version().await?;
        let mut local = Vec::new();
        for (id, _) in engine.list().await? {
            if let Some(i) = engine.inspect(&id).await? {
                local.push(i.diff_ids);
            }
        }
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
        global: &Global,
    ) -> Result<Pulled> {
        let progress = global.progress();
        let engine = &self.engine;
        let remote = ImageRef::parse(&format!("docker://{host}/{repo}:{tag}"))?;
        let res = resolve(
            &remote,
            &PlatformChoice::One(host_platform()),
            &global.client_options(),
        )
        .await?;
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
        let item = progress.item(format!("pulling {name}"), total);
        let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(8);
        let load = async move { engine.load(rx).await };
        let feed = async {
            let res: Result<()> = async {
                for e in &a.entries {
                    let mut hdr = Vec::new();
                    match e {
                        LoadEntry::File { path, bytes } => {
                            ddiff_core::tar::write_file(&mut hdr, path, bytes, 0o644, 0);
                            send(&tx, hdr).await?;
                        }
                        LoadEntry::Blob { path, index, size } => {
                            ddiff_core::tar::write_header(&mut hdr, path, *size, 0o644, 0);
                            send(&tx, hdr).await?;
                            // Stream through a channel rather than a buffer: chunk by chunk.
                            stream_blob(&res, &layers[*index], &tx, &item).await?;
                            send(&tx, vec![0u8; ddiff_core::tar::padding(*size)]).await?;
                        }
                    }
                }
                let mut end = Vec::new();
                ddiff_core::tar::write_end(&mut end);
                send(&tx, end).await
            }
            .await;
            if let Err(e) = &res {
                let _ = tx
                    .send(Err(std::io::Error::other(crate::cmd::error_line(e))))
                    .await;
            }
            drop(tx);
            res
        };
        let (loaded, fed) = tokio::join!(load, feed);
        fed?;
        loaded.with_context(|| format!("docker load of {name}"))?;
        item.finish("loaded");
        let got = self
            .engine
            .inspect(name)
            .await?
            .with_context(|| format!("{name} is not in the engine after the load"))?;
        if got.id != a.image_id {
            bail!(
                "{name} is {} after the load, expected {}",
                got.id,
                a.image_id
            );
        }
        self.local.push(ids.clone());
        Ok(Pulled {
            name: name.to_string(),
            downloaded: total,
            layers_present: have,
        })
    }
}

async fn send(tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>, b: Vec<u8>) -> Result<()> {
    if b.is_empty() {
        return Ok(());
    }
    tx.send(Ok(Bytes::from(b)))
        .await
        .map_err(|_| anyhow::anyhow!("the engine stopped reading the load stream"))
}

/// Downloads one blob (verified) into the load stream.
async fn stream_blob(
    res: &crate::source::Resolved,
    desc: &ddiff_core::Descriptor,
    tx: &tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
    item: &crate::progress::Item,
) -> Result<()> {
    // The registry client's sink is synchronous: hand chunks to a bounded queue drained here
    // (block_in_place lets the sink wait without stalling the runtime).
    let (ctx, mut crx) = tokio::sync::mpsc::channel::<Bytes>(16);
    let loc = res.location.clone();
    let d = desc.clone();
    let it = item.clone();
    let dl = tokio::spawn(async move {
        loc.blob_stream(&d, &mut |c| {
            it.inc(c.len() as u64);
            let c = Bytes::copy_from_slice(c);
            tokio::task::block_in_place(|| ctx.blocking_send(c))
                .map_err(|_| anyhow::anyhow!("load stream closed"))
        })
        .await
    });
    while let Some(c) = crx.recv().await {
        tx.send(Ok(c))
            .await
            .map_err(|_| anyhow::anyhow!("the engine stopped reading the load stream"))?;
    }
    dl.await??;
    Ok(())
}
