//! Writes a synthetic bundle for the load scaling benchmark (`tests/bench/load_scaling.sh`).
//!
//! ```text
//! synth_bundle v1 OUT TARGETS LAYERS LAYERS_PER_TARGET [LAYER_BYTES] [shared]
//! synth_bundle legacy OUT LAYERS [LAYER_BYTES]
//! ```
//! `v1`: a ddiff bundle (no base) of TARGETS targets over LAYERS distinct layers; with
//! `shared`, targets with the same layers share one config and manifest. `legacy`: an
//! original DockerDiff `.tar.gz` relying on one base layer (`Digest::sha256("synthetic base
//! layer")`, 20 bytes) and carrying LAYERS layers.

use std::io::Write;

use ddiff_core::bundle::meta::OCI_LAYOUT;
use ddiff_core::synth_bundle::{legacy_many, many, ManyOptions};
use ddiff_core::tar;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: usize| -> Result<usize, Box<dyn std::error::Error>> {
        Ok(match a.get(i) {
            Some(s) => s.parse()?,
            None => default,
        })
    };
    match a.first().map(String::as_str) {
        Some("v1") if a.len() >= 5 => {
            let s = many(ManyOptions {
                targets: num(2, 1)?,
                layers: num(3, 1)?,
                layers_per_target: num(4, 1)?,
                layer_bytes: num(5, 4)?,
                distinct_images: a.get(6).map(String::as_str) != Some("shared"),
                tar_layers: false,
            });
            // Written here rather than by the encoder, with a compact ddiff.json: the
            // encoder's pretty-printed one passes the 16 MiB limit near 75,000 blobs.
            let mut f = std::io::BufWriter::new(std::fs::File::create(&a[1])?);
            let mut out = Vec::new();
            let meta_bytes = serde_json::to_vec(&s.meta)?;
            tar::write_file(&mut out, "ddiff.json", &meta_bytes, 0o644, 0);
            tar::write_file(&mut out, "oci-layout", OCI_LAYOUT, 0o644, 0);
            let index = s.meta.oci_index_json(&meta_bytes);
            tar::write_file(&mut out, "index.json", &index, 0o644, 0);
            for b in &s.meta.blobs {
                tar::write_file(
                    &mut out,
                    &b.digest.layout_path(),
                    &s.blobs[&b.digest],
                    0o644,
                    0,
                );
                if out.len() > 1 << 20 {
                    f.write_all(&out)?;
                    out.clear();
                }
            }
            tar::write_end(&mut out);
            f.write_all(&out)?;
            f.flush()?;
            println!(
                "{} blobs, {} targets",
                s.meta.blobs.len(),
                s.meta.targets.len()
            );
        }
        Some("legacy") if a.len() >= 3 => {
            let inner = legacy_many(num(2, 1)?, num(3, 4)?);
            let mut gz = flate2::write::GzEncoder::new(
                std::fs::File::create(&a[1])?,
                flate2::Compression::fast(),
            );
            gz.write_all(&inner)?;
            gz.finish()?;
            println!("{} layers", num(2, 1)?);
        }
        _ => {
            eprintln!("usage: synth_bundle v1 OUT TARGETS LAYERS LAYERS_PER_TARGET [LAYER_BYTES] [shared]\n       synth_bundle legacy OUT LAYERS [LAYER_BYTES]");
            std::process::exit(2);
        }
    }
    Ok(())
}
