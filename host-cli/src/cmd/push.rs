//! `ddiff push REF...`: copy images from the local Docker engine to the default registry
//! (`$DDIFF_URL`, else `localhost:$DDIFF_PORT`, else `localhost:5000`) through the Engine API
//! (image save), without `docker push` and without `insecure-registries` in the engine.
//!
//! Layers the registry already holds under the same repository and tag (matched by diff_id)
//! are neither compressed nor uploaded again.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use ddiff_core::engine_plan::engine_manifest;
use ddiff_core::{Descriptor, Digest, ExportedLayer, ImageConfig, ImageRef, Reference};

use super::load::destination_repository;
use super::{default_registry, parse_image_ref, Global};
use crate::archive::image_from_stream;
use crate::compress::CompressArgs;
use crate::engine::Engine;
use crate::progress::human_bytes;
use crate::registry::client::Registry;

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
        let img = engine
            .inspect(&name)
            .await?
            .with_context(|| format!("the local Docker engine has no image {name}"))?;
        let repo = destination_repository(written, &r);
        let tag = r.tag_or_latest().to_string();
        // What the registry has of this image already (an earlier push), by diff_id.
        let known = existing_layers(&client, &repo, &tag).await;
        let known_ids: Vec<Digest> = known.iter().map(|(d, _)| d.clone()).collect();
        let item = progress.item(format!("exporting {name}"), img.size);
        let reader = engine.export_reader(&name);
        let (ids, it, nm, tmp) = (
            img.diff_ids.clone(),
            item.clone(),
            name.clone(),
            tmp_dir.clone(),
        );
        let local = tokio::task::spawn_blocking(move || {
            image_from_stream(reader, &nm, &ids, &known_ids, settings, &tmp, &it)
        })
        .await??;
        item.finish("exported");
        // Layers kept from the registry are described by the registry's own blobs.
        let m = local.manifest.as_image().context("engine manifest")?;
        let layers: Vec<ExportedLayer> = m
            .layers
            .iter()
            .zip(&local.config.rootfs.diff_ids)
            .map(|(l, id)| ExportedLayer {
                diff_id: id.clone(),
                tar_size: l.size,
                carried: Some(
                    known
                        .iter()
                        .find(|(k, _)| k == id)
                        .map(|(_, d)| d.clone())
                        .unwrap_or_else(|| l.clone()),
                ),
            })
            .collect();
        let (manifest, _) = engine_manifest(&local.config_bytes, &layers)?;
        let mut sent = 0u64;
        for (d, path) in &local.carried {
            if client.blob_exists(&repo, d).await?.is_some() {
                continue;
            }
            let size = std::fs::metadata(path)?.len();
            let it = progress.item(format!("layer {}", d.short()), size);
            let (p, i2) = (path.clone(), it.clone());
            let open = move || file_body(p.clone(), i2.clone());
            client.upload_blob(&repo, d, size, &open).await?;
            it.finish("pushed");
            sent += size;
        }
        let config_digest = Digest::sha256(&local.config_bytes);
        if client.blob_exists(&repo, &config_digest).await?.is_none() {
            let body = Bytes::from(local.config_bytes.clone());
            let open = move || Ok(reqwest::Body::from(body.clone()));
            client
                .upload_blob(
                    &repo,
                    &config_digest,
                    local.config_bytes.len() as u64,
                    &open,
                )
                .await?;
        }
        client
            .put_manifest(
                &repo,
                &tag,
                manifest.media_type().as_str(),
                manifest.bytes(),
            )
            .await?;
        println!(
            "pushed {host}/{repo}:{tag}@{} ({} uploaded)",
            manifest.digest(),
            human_bytes(sent)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The layers of `repo:tag` in the registry, by diff_id (empty when there is none).
async fn existing_layers(client: &Registry, repo: &str, tag: &str) -> Vec<(Digest, Descriptor)> {
    let Ok(m) = client.get_manifest(repo, tag).await else {
        return Vec::new();
    };
    let Some(img) = m.as_image() else {
        return Vec::new();
    };
    let Ok(cb) = client.get_blob_bytes(repo, &img.config).await else {
        return Vec::new();
    };
    let Ok(cfg) = ImageConfig::parse(&cb) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (l, id) in img.layers.iter().zip(cfg.rootfs.diff_ids) {
        if client
            .blob_exists(repo, &l.digest)
            .await
            .ok()
            .flatten()
            .is_some()
        {
            out.push((id, l.clone()));
        }
    }
    out
}

/// A streamed request body over a file.
pub(crate) fn file_body(path: PathBuf, item: crate::progress::Item) -> Result<reqwest::Body> {
    Ok(crate::registry::client::body_from_blocking_reader(
        move || {
            let f = std::fs::File::open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            Ok(Box::new(f) as Box<dyn std::io::Read + Send>)
        },
        move |n| item.inc(n),
    ))
}

/// `Reference` of a pushed image as the registry names it.
pub fn pushed_name(host: &str, written: &str, r: &Reference) -> String {
    format!(
        "{host}/{}:{}",
        destination_repository(written, r),
        r.tag_or_latest()
    )
}
