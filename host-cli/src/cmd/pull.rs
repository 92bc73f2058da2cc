//! `ddiff pull REF...`: copy images from the default registry into the local Docker engine.
//! ddiff downloads the blobs itself and streams them into `docker load` (Engine API), so the
//! engine needs no `insecure-registries` entry. Layers the engine already has (a prefix of
//! the image's layers held by some local image) are not downloaded.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ddiff_core::destination::destination_repository;
use ddiff_core::ImageRef;

use super::{default_registry, parse_image_ref, Global};
use crate::progress::human_bytes;
use crate::transport::engine::EnginePuller;

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
            .pull(
                &host,
                &repo,
                r.tag_or_latest(),
                &r.familiar(),
                &global.client_options(),
                &global.progress(),
            )
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
