//! The local Docker engine, through its API (bollard): reachability and pulls after a load.
//! `DOCKER_HOST` is honoured as by the docker CLI.

use anyhow::{Context, Result};
use bollard::Docker;
use futures::StreamExt;

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
}
