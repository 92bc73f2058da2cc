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
//!
//! For volume sets, provenance and signatures (issues 13 and 14) also:
//! `provenance.bundle` (a cosign signature, an attestation and an SBOM of the target);
//! `good.bundle.sig` (a signature of good.bundle by `signing.pub`, written as `ddiff diff
//! --sign-key` writes it), `other.pub` (another key) and `meta-flipped.bundle` (good.bundle
//! with one byte of its ddiff.json changed); and volume sets of a 300 kB bundle in 64 KiB
//! volumes with 2 parity volumes, written by the CLI's own set writer: `set-ok/` (intact),
//! `set-recoverable/` (volume 2 deleted, volume 1 damaged), `set-lost/` (volumes 1, 2 and 4
//! deleted), `set-foreign/` (volume 2 replaced by volume 2 of another set).

use std::io::Write;

use anyhow::{Context, Result};
use ddiff_cli::signing::SigningKey;
use ddiff_cli::volume_io::SetWriter;
use ddiff_core::bundle::{Decoder, Event};
use ddiff_core::display::safe_text;
use ddiff_core::synth_bundle::{
    sample, SampleOptions, HOSTILE_CREATED_BY, HOSTILE_NAMES, HOSTILE_TOOL,
};

/// Writes `bundle` as a set of 64 KiB volumes with `parity` parity volumes beside `dest`.
fn write_set(
    dest: &std::path::Path,
    bundle: &[u8],
    parity: u32,
) -> Result<Vec<std::path::PathBuf>> {
    let g =
        ddiff_core::volume::Geometry::plan(bundle.len() as u64, 65536, parity)?.context("a set")?;
    let mut w = SetWriter::create(dest, g)?;
    w.write(bundle)?;
    w.finish()
}

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

    // Provenance carried with the target.
    let prov = sample(SampleOptions {
        provenance: true,
        ..SampleOptions::default()
    });
    std::fs::write(out.join("provenance.bundle"), prov.encode())?;
    let artifacts: Vec<_> = prov
        .meta
        .artifacts
        .iter()
        .map(|a| serde_json::json!({"kind": a.kind, "digest": a.digest.to_string()}))
        .collect();

    // A signed bundle: the signature over ddiff.json's exact bytes, as `diff --sign-key`.
    let meta_bytes = {
        let mut ins = ddiff_core::Inspector::new(ddiff_core::inspect::InspectOptions::default());
        ins.feed(&bytes)?;
        ins.meta_bytes().context("no ddiff.json")?.to_vec()
    };
    let key = SigningKey::P256(p256::ecdsa::SigningKey::from_slice(&[7u8; 32])?);
    let other = SigningKey::P256(p256::ecdsa::SigningKey::from_slice(&[8u8; 32])?);
    ddiff_cli::signing::write_bundle_signature(&good, &meta_bytes, &key)?;
    let pem = |k: &SigningKey| -> Result<String> {
        let SigningKey::P256(k) = k else {
            anyhow::bail!("P-256 keys only here")
        };
        use p256::pkcs8::EncodePublicKey as _;
        Ok(k.verifying_key()
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)?)
    };
    std::fs::write(out.join("signing.pub"), pem(&key)?)?;
    std::fs::write(out.join("other.pub"), pem(&other)?)?;
    // One byte of ddiff.json changed inside its tool string, so it still parses.
    let at = bytes
        .windows(12)
        .position(|w| w == b"ddiff sample")
        .context("tool string")?;
    let mut flipped = bytes.clone();
    flipped[at + 6] ^= 0x01;
    std::fs::write(out.join("meta-flipped.bundle"), &flipped)?;

    // Volume sets, written by the CLI's writer.
    let big = sample(SampleOptions {
        big_layer_bytes: 250_000,
        ..SampleOptions::default()
    })
    .encode();
    let other_big = sample(SampleOptions {
        big_layer_bytes: 250_000,
        hostile_text: true,
        ..SampleOptions::default()
    })
    .encode();
    let mut sets = serde_json::Map::new();
    for (dir, change) in [
        ("set-ok", 0),
        ("set-recoverable", 1),
        ("set-lost", 2),
        ("set-foreign", 3),
    ] {
        let d = out.join(dir);
        if d.exists() {
            std::fs::remove_dir_all(&d)?;
        }
        std::fs::create_dir_all(&d)?;
        let files = write_set(&d.join("app.ddiff"), &big, 2)?;
        match change {
            1 => {
                std::fs::remove_file(&files[1])?;
                let mut v = std::fs::read(&files[0])?;
                v[30_000] ^= 0x20;
                std::fs::write(&files[0], v)?;
            }
            2 => {
                for i in [0, 1, 3] {
                    std::fs::remove_file(&files[i])?;
                }
            }
            3 => {
                let o = out.join("set-other");
                std::fs::create_dir_all(&o)?;
                let ofiles = write_set(&o.join("app.ddiff"), &other_big, 2)?;
                std::fs::copy(&ofiles[1], &files[1])?;
                std::fs::remove_dir_all(&o)?;
            }
            _ => {}
        }
        sets.insert(dir.into(), serde_json::json!({"volumes": files.len()}));
    }
    let set_geometry =
        ddiff_core::volume::Geometry::plan(big.len() as u64, 65536, 2)?.context("a set")?;

    let expect = serde_json::json!({
        "artifacts": artifacts,
        "keyId": key.public_key()?.key_id().to_string(),
        "sets": sets,
        "setData": set_geometry.data,
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
