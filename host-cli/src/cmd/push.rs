//! `ddiff push REF...`: copy images from the local Docker engine to the default registry
//! (`$DDIFF_URL`, else `localhost:$DDIFF_PORT`, else `localhost:5000`) through the Engine API
//! (image save), without `docker push` and without `insecure-registries` in the engine.
//!
//! Layers the registry already holds under the same repository and tag (matched by diff_id)
//! are neither compressed nor uploaded again.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ddiff_core::destination::destination_repository;
use ddiff_core::{Digest, ImageRef, Reference};

use super::{default_registry, parse_image_ref, Global};
use crate::compress::CompressArgs;
use crate::progress::human_bytes;
use crate::registry::client::Registry;
use crate::transport::engine::Engine;
use crate::transport::registry;

/// Push images from the local Docker engine to the registry (no docker push needed).
///
/// The registry is $DDIFF_URL, else localhost:$DDIFF_PORT, else localhost:5000. Goes through
/// the Engine API natively, so no insecure-registries setting is needed.
///
/// Example: ddiff push bb:base app:2
#[derive(clap::Args, Debug)]
pub struct PushArgs {
    /// Images in the local engine (NAME:TAG).
    #[arg(required = true)]
    pub refs: Vec<String>,
    #[command(flatten)]
    pub compress: CompressArgs,
}

/// Runs `push`.
pub async fn run(args: PushArgs, global: &Global) -> Result<ExitCode> {
    let progress = global.progress();
    let settings = args.compress.settings()?;
    let host = default_registry();
    let client = Arc::new(Registry::new(&host, global.client_options())?);
    client
        .ping()
        .await
        .with_context(|| format!("registry {host} does not answer"))?;
    let engine = Engine::connect().await?;
    let tmp_dir = std::env::temp_dir();
    for written in &args.refs {
        let r = match parse_image_ref(written)? {
            ImageRef::Bare(r) | ImageRef::DockerDaemon(r) => r,
            other => bail!("{other}: push takes images of the local Docker engine (NAME:TAG)"),
        };
        let name = r.familiar();
        let repo = destination_repository(written, &r);
        let tag = r.tag_or_latest().to_string();
        // What the registry has of this image already (an earlier push), by diff_id: those
        // layers are neither compressed nor sent again.
        let known = registry::known_layers(&client, &repo, &tag).await;
        let known_ids: Vec<Digest> = known.iter().map(|(d, _)| d.clone()).collect();
        let local = engine
            .export(&name, &known_ids, settings, &tmp_dir, &progress)
            .await?;
        let (digest, sent) =
            registry::push_local(&client, &repo, &tag, &local, &known, &progress).await?;
        println!(
            "pushed {host}/{repo}:{tag}@{digest} ({} uploaded)",
            human_bytes(sent)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `Reference` of a pushed image as the registry names it.
pub fn pushed_name(host: &str, written: &str, r: &Reference) -> String {
    format!(
        "{host}/{}:{}",
        destination_repository(written, r),
        r.tag_or_latest()
    )
}
