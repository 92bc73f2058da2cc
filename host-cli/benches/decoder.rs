//! Micro-benchmark of the core decoder's verify throughput (issue 2), side by side with
//! `sha256sum` of the same bytes, and peak memory.
//!
//! `cargo bench -p ddiff --bench decoder [-- SIZE_MIB]` (default 1024). Writes a synthetic
//! bundle of that size (one big layer plus small blobs) to a temp file, then times, one after
//! another on one core: `sha256sum FILE`; the core decoder over the file with the host's `ring`
//! hasher; the same with the core's pure-Rust `sha2` (what the wasm build uses). Peak RSS of
//! this process is read from /proc (VmHWM) after the decoder runs: it must not depend on the
//! blob size.

// A benchmark: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::time::Instant;

use ddiff_core::bundle::{DecodeOptions, Decoder, Event};
use ddiff_core::synth::{config_json, manifest, plain_layer};
use ddiff_core::{
    plan, BaseImage, Digest, DigestBuilder, HasherFactory, MediaType, TargetImageInput, TargetInput,
};

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Deterministic pseudo-random bytes (xorshift), the same sequence every time.
fn generate(size: u64, mut f: impl FnMut(&[u8])) {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut buf = vec![0u8; 1 << 20];
    let mut left = size;
    while left > 0 {
        for w in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            w.copy_from_slice(&state.to_le_bytes()[..w.len()]);
        }
        let n = left.min(buf.len() as u64) as usize;
        f(&buf[..n]);
        left -= n as u64;
    }
}

/// Streams a bundle with one `size`-byte layer (pseudo-random bytes; the decoder does not
/// look inside layers) to `path`.
fn write_bundle(path: &std::path::Path, size: u64) {
    let mut h =
        DigestBuilder::with_factory(ddiff_core::Algorithm::Sha256, ddiff_cli::hash::fast_hasher);
    generate(size, |c| h.update(c));
    let (digest, _) = h.finish();
    let base_t = ddiff_core::synth::layer_tar(&[("base", b"base")], 0);
    let base_l = plain_layer(&base_t, "base");
    let mut big = base_l.clone();
    big.descriptor.digest = digest.clone();
    big.descriptor.size = size;
    big.diff_id = digest;
    big.created_by = "RUN generate".into();
    let bc = config_json(
        std::slice::from_ref(&base_l),
        "linux",
        "amd64",
        "2026-01-01T00:00:00Z",
    );
    let ac = config_json(
        &[base_l.clone(), big.clone()],
        "linux",
        "amd64",
        "2026-01-01T00:00:00Z",
    );
    let bm = manifest(&MediaType::OciManifest, &bc, std::slice::from_ref(&base_l));
    let am = manifest(&MediaType::OciManifest, &ac, &[base_l, big]);
    let base = BaseImage::from_manifest(
        "base:1",
        &bm,
        Some(&ddiff_core::ImageConfig::parse(&bc).unwrap()),
    )
    .unwrap();
    let t = TargetInput {
        reference: "app:2".into(),
        top: am.clone(),
        images: vec![TargetImageInput {
            manifest: am.clone(),
            config: Some(ddiff_core::ImageConfig::parse(&ac).unwrap()),
        }],
    };
    let p = plan(&[base], &[t], "bench", None).unwrap();
    let mut enc = ddiff_core::bundle::Encoder::new(
        p.meta.clone(),
        ddiff_core::bundle::EncodeOptions {
            verify: false,
            ..Default::default()
        },
    )
    .unwrap();
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut buf = Vec::new();
    enc.start(&mut buf).unwrap();
    for b in &p.meta.blobs {
        enc.begin_blob(&mut buf).unwrap();
        if b.digest == *am.digest() {
            enc.blob_data(am.bytes(), &mut buf).unwrap();
        } else if b.digest == Digest::sha256(&ac) {
            enc.blob_data(&ac, &mut buf).unwrap();
        } else {
            out.write_all(&buf).unwrap();
            buf.clear();
            generate(size, |chunk| {
                enc.blob_data(chunk, &mut buf).unwrap();
                out.write_all(&buf).unwrap();
                buf.clear();
            });
        }
        enc.end_blob(&mut buf).unwrap();
    }
    enc.finish(&mut buf).unwrap();
    out.write_all(&buf).unwrap();
    out.flush().unwrap();
}

fn decode_file(path: &std::path::Path, hasher: HasherFactory) -> f64 {
    let t = Instant::now();
    let mut f = std::fs::File::open(path).unwrap();
    let mut dec = Decoder::with_options(DecodeOptions { hasher });
    let mut buf = vec![0u8; 1 << 20];
    let mut ended = false;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        let mut c = &buf[..n];
        loop {
            let (used, ev) = dec.decode(c).unwrap();
            c = &c[used..];
            match ev {
                Some(Event::End(_)) => ended = true,
                Some(_) => {}
                None => break,
            }
        }
    }
    dec.finish().unwrap();
    assert!(ended);
    t.elapsed().as_secs_f64()
}

fn main() {
    let mib: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1024);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.ddiff");
    write_bundle(&path, mib << 20);
    let bytes = std::fs::metadata(&path).unwrap().len() as f64;
    // Warm the page cache so all three read from memory.
    let _ = std::process::Command::new("cat")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .status();
    let t = Instant::now();
    let st = std::process::Command::new("sha256sum")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let sha = t.elapsed().as_secs_f64();
    let hwm_before = vm_hwm_kib();
    let ring = decode_file(&path, ddiff_cli::hash::fast_hasher);
    let pure = decode_file(&path, ddiff_core::digest::default_hasher);
    let hwm = vm_hwm_kib();
    let mb = |s: f64| bytes / s / 1e6;
    println!("decoder verify throughput, {mib} MiB synthetic bundle, one core, page cache warm");
    println!("| reader | MB/s | vs sha256sum |");
    println!("|---|---:|---:|");
    println!("| sha256sum | {:.0} | 1.00x |", mb(sha));
    println!(
        "| core decoder + ring (CLI) | {:.0} | {:.2}x |",
        mb(ring),
        sha / ring
    );
    println!(
        "| core decoder + sha2 (wasm build's hasher) | {:.0} | {:.2}x |",
        mb(pure),
        sha / pure
    );
    println!("peak RSS of the benchmark process: {} KiB before decoding, {} KiB after (the generator's buffers included)", hwm_before, hwm);
}
