//! `ddiff list REF`: the blobs of an image with media types and sizes.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ddiff_core::ImageRef;

use super::{default_registry, parse_image_ref, Global, PlatformArgs};
use crate::progress::human_bytes;
use crate::transport::resolve;
use ddiff_core::destination::destination_repository;

/// List the blobs of an image (manifests, config, layers) with media types and sizes.
///
/// A bare NAME:TAG is looked up in the default registry ($DDIFF_URL, else
/// localhost:$DDIFF_PORT, else localhost:5000), as the original tool did; HOST/NAME:TAG in
/// that registry. For the local engine or a docker save file, `ddiff inspect IMAGE` shows
/// the layers.
///
/// Example: ddiff list docker://localhost:5000/app:2
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// The image: NAME:TAG (default registry), docker://HOST/REPO:TAG, oci:DIR[:REF] or
    /// oci-archive:FILE[:REF].
    pub image: String,
    #[command(flatten)]
    pub platform: PlatformArgs,
}

#[derive(serde::Serialize)]
struct Row {
    digest: String,
    media_type: String,
    size: u64,
    role: &'static str,
}

/// Runs `list`.
pub async fn run(args: ListArgs, global: &Global) -> Result<ExitCode> {
    let r = match parse_image_ref(&args.image)? {
        ImageRef::Bare(n) => {
            let at = match (n.digest(), n.tag()) {
                (Some(d), _) => format!("@{d}"),
                (None, t) => format!(":{}", t.unwrap_or("latest")),
            };
            let written = args.image.as_str();
            let explicit_hub = written.starts_with("docker.io/") || written.starts_with("index.docker.io/");
            let remote = if n.registry() == "docker.io" && !explicit_hub {
                format!("docker://{}/{}{at}", default_registry(), destination_repository(written, &n))
            } else {
                format!("docker://{}/{}{at}", n.registry(), n.repository())
            };
            ImageRef::parse(&remote)?
        }
        ImageRef::DockerDaemon(_) | ImageRef::DockerArchive { .. } => bail!(
            "{}: list reads registries and OCI layouts; `ddiff inspect {}` shows the layers of an engine image or a docker save file",
            args.image,
            args.image
        ),
        other => other,
    };
    let resolved = resolve(&r, &args.platform.choice()?, &global.client_options())
        .await
        .with_context(|| args.image.clone())?;
    let mut rows = vec![Row {
        digest: resolved.top.digest().to_string(),
        media_type: resolved.top.media_type().to_string(),
        size: resolved.top.bytes().len() as u64,
        role: if resolved.top.as_index().is_some() {
            "index"
        } else {
            "manifest"
        },
    }];
    for i in &resolved.images {
        if i.manifest.digest() != resolved.top.digest() {
            rows.push(Row {
                digest: i.manifest.digest().to_string(),
                media_type: i.manifest.media_type().to_string(),
                size: i.manifest.bytes().len() as u64,
                role: "manifest",
            });
        }
        if let Some(img) = i.manifest.as_image() {
            rows.push(Row {
                digest: img.config.digest.to_string(),
                media_type: img.config.media_type.to_string(),
                size: img.config.size,
                role: "config",
            });
            for l in &img.layers {
                rows.push(Row {
                    digest: l.digest.to_string(),
                    media_type: l.media_type.to_string(),
                    size: l.size,
                    role: "layer",
                });
            }
        }
    }
    if global.json {
        println!("{}", ddiff_core::display::json_pretty(&rows)?);
    } else {
        for r in &rows {
            println!(
                "{}  {:8}  {:>10}  {}",
                r.digest,
                r.role,
                human_bytes(r.size),
                ddiff_core::display::Safe(&r.media_type)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
