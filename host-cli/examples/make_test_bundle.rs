//! Writes the sample bundles the browser test and the benchmarks use, so nothing binary is
//! committed:
//!
//! ```text
//! cargo run -p ddiff --example make_test_bundle -- OUT_DIR [--big-mib N]
//! ```
//!
//! `OUT_DIR/good.bundle` (intact), `OUT_DIR/tampered.bundle` (one flipped byte in the middle
//! of the last carried layer), `OUT_DIR/truncated.bundle` (cut inside that layer),
//! `OUT_DIR/hostile.bundle` (intact, with control characters and bidi overrides in its tool,
//! date, a history line and file names) and `OUT_DIR/expect.json` (what a verifier must say
//! about each; for the hostile one, the escaped texts the page must show). `--big-mib N` adds an N MiB
//! file to a layer (only `good.bundle` is written then).

use std::io::Write;

use anyhow::{Context, Result};
use ddiff_core::bundle::{Decoder, Event};
use ddiff_core::display::safe_text;
use ddiff_core::synth_bundle::{
    sample, SampleOptions, HOSTILE_CREATED_BY, HOSTILE_NAMES, HOSTILE_TOOL,
};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let out = std::path::PathBuf::from(
        args.next()
            .context("usage: make_test_bundle OUT_DIR [--big-mib N]")?,
    );
    let mut big = 0u64;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--big-mib" => big = args.next().context("--big-mib N")?.parse::<u64>()? << 20,
            other => anyhow::bail!("unknown argument {other:?}"),
        }
    }
    std::fs::create_dir_all(&out)?;
    let s = sample(SampleOptions {
        big_layer_bytes: big,
        ..SampleOptions::default()
    });
    let good = out.join("good.bundle");
    let mut f = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&good)?);
    let mut err = None;
    s.encode_to(|b| {
        if err.is_none() {
            err = f.write_all(b).err();
        }
    })?;
    if let Some(e) = err {
        return Err(e.into());
    }
    f.flush()?;
    drop(f);
    if big > 0 {
        println!("{}", good.display());
        return Ok(());
    }
    let bytes = std::fs::read(&good)?;
    // Where the last blob's data is.
    let mut dec = Decoder::new();
    let (mut rest, mut last) = (&bytes[..], (0usize, 0u64));
    loop {
        let (n, ev) = dec.decode(rest)?;
        rest = &rest[n..];
        match ev {
            Some(Event::BlobStart { index, offset }) => last = (index, offset),
            Some(_) => {}
            None => break,
        }
    }
    let blob = &s.meta.blobs[last.0];
    let flip = last.1 + blob.size / 2;
    let mut tampered = bytes.clone();
    tampered[flip as usize] ^= 0x01;
    std::fs::write(out.join("tampered.bundle"), &tampered)?;
    let cut = last.1 + blob.size / 2;
    std::fs::write(out.join("truncated.bundle"), &bytes[..cut as usize])?;
    let hostile = sample(SampleOptions {
        hostile_text: true,
        ..SampleOptions::default()
    });
    std::fs::write(out.join("hostile.bundle"), hostile.encode())?;
    // A site inventory (an engine holding the sample's base), and one with a flipped byte.
    let mut inv =
        ddiff_core::InventoryBuilder::new(ddiff_core::SourceKind::Engine, "docker-daemon:");
    let base_ids: Vec<ddiff_core::Digest> = s
        .meta
        .base
        .as_ref()
        .map(|b| b.diff_ids.clone())
        .unwrap_or_default();
    inv.engine_image(
        &ddiff_core::Digest::sha256(b"the sample's base image"),
        &["demo/base:1".to_string()],
        &base_ids,
    );
    let inv = inv.finish();
    let inv_bytes = inv.to_bytes();
    std::fs::write(out.join("site.inventory.json"), &inv_bytes)?;
    let mut bad_inv = inv_bytes.clone();
    let mid = bad_inv.len() / 2;
    bad_inv[mid] ^= 0x01;
    std::fs::write(out.join("damaged.inventory.json"), &bad_inv)?;
    let expect = serde_json::json!({
        "inventory": {"digest": inv.content_digest().to_string(), "layers": inv.summary().layers, "blobs": inv.summary().blobs},
        "target": s.meta.targets[0].reference,
        "base": s.meta.base.as_ref().map(|b| b.references.clone()),
        "carriedLayers": s.meta.blobs.iter().filter(|b| !b.kind.is_json()).count(),
        "blobs": s.meta.blobs.len(),
        "tampered": {"digest": blob.digest.to_string(), "index": last.0, "offset": flip},
        "truncated": {"digest": blob.digest.to_string(), "offset": cut},
        "hostile": {
            "tool": safe_text(HOSTILE_TOOL),
            "createdBy": safe_text(HOSTILE_CREATED_BY),
            // File names as the tree shows them (the last path component).
            "names": HOSTILE_NAMES.iter().map(|n| safe_text(n)).collect::<Vec<_>>(),
        },
    });
    std::fs::write(out.join("expect.json"), serde_json::to_vec_pretty(&expect)?)?;
    println!("{}", out.display());
    Ok(())
}
