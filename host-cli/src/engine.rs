//! The local Docker engine, through its API (bollard): image inspect, image save (export)
//! and load streams, pulls after a registry load. `DOCKER_HOST` is honoured as by the docker
//! CLI.

use anyhow::{anyhow, Context, Result};
use bollard::Docker;
use bytes::Bytes;
use ddiff_core::Digest;
use futures::StreamExt;

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
        ChannelReader {
            rx,
            cur: Bytes::new(),
        }
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
