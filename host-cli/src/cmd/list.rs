//! `ddiff list REF`: the blobs of an image with media types and sizes.

use std::process::ExitCode;

use anyhow::{Context, Result};

use super::{parse_image_ref, Global, PlatformArgs};
use crate::progress::human_bytes;
use crate::source::resolve;

/// List the blobs of an image (manifests, config, layers) with media types and sizes.
///
/// Example: ddiff list docker://localhost:5000/app:2
#[derive(clap::Args, Debug)]
pub struct ListArgs {
    /// The image (docker://HOST/REPO:TAG or oci:DIR[:REF]).
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
    let r = parse_image_ref(&args.image)?;
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
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        for r in &rows {
            println!(
                "{}  {:8}  {:>10}  {}",
                r.digest,
                r.role,
                human_bytes(r.size),
                r.media_type
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
