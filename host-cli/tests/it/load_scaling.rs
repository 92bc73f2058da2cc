//! Issue 15: `load` linear in entries and targets, and messages that say what happened. Many
//! targets sharing a few blobs send each blob once and say so; an original `.tar.gz` bundle
//! is read back in one inflating pass and names the base it relies on. No peers needed
//! (`ddiff server` is the registry). Speed itself is measured by
//! `tests/bench/load_scaling.sh`, never asserted here.

use std::path::{Path, PathBuf};
use std::process::Command;

use ddiff_cli::cmd::verify::{render, verify_one, VerifyArgs};
use ddiff_cli::progress::{Mode, Progress};
use ddiff_core::synth_bundle::{legacy_many, many, ManyOptions};
use ddiff_core::Digest;

use crate::common::{ddiff, ok, run, DdiffServer};
use crate::hostile_util::report;

/// The guarantee's name in docs/reliability.md (reached by `tests/reliability.sh`).
const G: &str = "8 load linear in entries and targets, counts say what happened";

/// `n` targets (`synth/app:0..n`) sharing one manifest, one config and two layers; the
/// file and the bytes of its config and layers.
fn shared_bundle(dir: &Path, n: usize) -> (PathBuf, u64) {
    let s = many(ManyOptions {
        targets: n,
        layers: 2,
        layers_per_target: 2,
        distinct_images: false,
        layer_bytes: 4,
        tar_layers: false,
    });
    let path = dir.join(format!("shared-{n}.ddiff"));
    std::fs::write(&path, s.encode()).unwrap();
    assert_eq!(s.meta.blobs.len(), 4);
    let bytes = s.meta.blobs.iter().skip(1).map(|b| b.size).sum();
    (path, bytes)
}

fn load_json(bundle: &Path, to: &str) -> serde_json::Value {
    let out = run(ddiff()
        .args(["--quiet", "--json", "load", "--no-pull"])
        .arg(bundle)
        .args(["--to", to]));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn load_text(bundle: &Path, to: &str) -> String {
    ok(ddiff()
        .args(["--quiet", "load", "--no-pull"])
        .arg(bundle)
        .args(["--to", to]))
}

/// Every file under `dir`, relative.
fn files(dir: &Path) -> Vec<String> {
    crate::common::files_under(dir)
        .iter()
        .map(|f| f.display().to_string())
        .collect()
}

/// Every blob file hashes to its name.
fn check_blobs(layout: &Path) -> usize {
    let mut n = 0;
    for f in files(layout) {
        if let Some(hex) = f.strip_prefix("blobs/sha256/") {
            let bytes = std::fs::read(layout.join(&f)).unwrap();
            assert_eq!(Digest::sha256(&bytes).to_string(), format!("sha256:{hex}"));
            n += 1;
        }
    }
    n
}

/// Issue 15 item 9: 10,000 targets sharing 3 blobs reported "uploaded 30003 blob(s)".
#[test]
fn ten_thousand_targets_sharing_three_blobs_write_three_blobs_into_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let (bundle, bytes) = shared_bundle(dir.path(), 10_000);
    let layout = dir.path().join("layout");
    let to = format!("oci:{}", layout.display());
    let s = load_json(&bundle, &to);
    assert_eq!(s["uploaded_blobs"], 3, "{}", s["uploaded_blobs"]);
    assert_eq!(s["uploaded_bytes"].as_u64().unwrap(), bytes);
    assert_eq!(s["targets"], 10_000);
    assert_eq!(s["skipped_blobs"], 0);
    assert_eq!(s["images"].as_array().unwrap().len(), 10_000);
    // The manifest, the config and two layers: four blob files, nothing else left over.
    assert_eq!(check_blobs(&layout), 4);
    assert_eq!(
        files(&layout),
        {
            let mut v: Vec<String> = files(&layout.join("blobs"))
                .into_iter()
                .map(|f| format!("blobs/{f}"))
                .collect();
            v.extend(["index.json".to_string(), "oci-layout".to_string()]);
            v.sort();
            v
        },
        "no temporary file stays"
    );
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 10_000);
    // Again: nothing to write, the three blobs counted once as present.
    let s = load_json(&bundle, &to);
    assert_eq!(s["uploaded_blobs"], 0);
    assert_eq!(s["skipped_blobs"], 3);
    let said = load_text(&bundle, &to);
    assert!(
        said.contains("uploaded 0 blob(s), 0 B for 10000 targets (blobs they share counted once); 3 already present"),
        "{}",
        said.lines().last().unwrap_or_default()
    );
    report(
        G,
        "oci layout: 10,000 targets sharing 3 blobs: 3 written, 4 blob files, 10,000 index entries, re-run 0 written / 3 present",
        9,
        "held",
    );
}

/// The same into a registry (`ddiff server`): each blob sent once, one tag per target.
#[test]
fn many_targets_sharing_three_blobs_upload_three_blobs_to_a_registry() {
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    let n = 1_000;
    let (bundle, bytes) = shared_bundle(dir.path(), n);
    let to = format!("docker://{}", server.addr);
    let s = load_json(&bundle, &to);
    assert_eq!(s["uploaded_blobs"], 3, "{s}");
    assert_eq!(s["uploaded_bytes"].as_u64().unwrap(), bytes);
    assert_eq!(s["mounted_blobs"], 0);
    assert_eq!(s["skipped_blobs"], 0);
    assert_eq!(s["targets"], n);
    let images = s["images"].as_array().unwrap();
    assert_eq!(images.len(), n);
    assert!(
        images[7]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/synth/app:7@sha256:", server.addr)),
        "{}",
        images[7]
    );
    let tags: serde_json::Value = serde_json::from_str(&reqwest_get(
        &server.url("/v2/synth/app/tags/list?n=100000"),
    ))
    .unwrap();
    assert_eq!(tags["tags"].as_array().unwrap().len(), n);
    // A re-run sends nothing and counts the three blobs once.
    let said = load_text(&bundle, &to);
    assert!(
        said.contains(&format!(
            "uploaded 0 blob(s), 0 B for {n} targets (blobs they share counted once); 3 already present"
        )),
        "{}",
        said.lines().last().unwrap_or_default()
    );
    report(
        G,
        "ddiff server: 1,000 targets sharing 3 blobs: 3 uploaded, 1,000 tags, re-run 0 uploaded / 3 present",
        8,
        "held",
    );
}

fn reqwest_get(url: &str) -> String {
    let out = run(Command::new("curl").args(["-sf", url]));
    String::from_utf8(out.stdout).unwrap()
}

/// An original-format bundle relies on a base: verify says so (it said "self-contained").
#[test]
fn verify_of_an_original_bundle_names_the_base_it_needs() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/tests/data/original-ddiff/bb-new.tar.gz");
    let r = verify_one(
        &fixture,
        &VerifyArgs {
            bundles: vec![],
            write_checksum: false,
            no_checksum: true,
            key: Default::default(),
            require_signature: false,
            repair: false,
        },
        &Progress::new(Mode::Quiet),
    );
    let line = render(&r);
    assert!(r.ok, "{line}");
    assert!(line.contains("needs base bb:base"), "{line}");
    assert!(!line.contains("self-contained"), "{line}");
    report(
        G,
        "verify of an original .tar.gz bundle relying on bb:base names it (was: self-contained)",
        3,
        "held",
    );
}

/// An original bundle of many layers loads into a layout holding its base: every layer
/// written once and verified, the base counted as present.
#[test]
fn an_original_bundle_of_many_layers_loads_into_a_layout() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("legacy.tar.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::fs::File::create(&path).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::Write::write_all(&mut gz, &legacy_many(500, 300)).unwrap();
    gz.finish().unwrap();
    let layout = dir.path().join("layout");
    let base = Digest::sha256(b"synthetic base layer");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(layout.join(base.layout_path()), b"synthetic base layer").unwrap();
    let s = load_json(&path, &format!("oci:{}", layout.display()));
    assert_eq!(s["uploaded_blobs"], 501, "{s}"); // the config and 500 layers
    assert_eq!(s["skipped_blobs"], 1, "{s}"); // the base layer
    assert_eq!(check_blobs(&layout), 503); // + the (converted) manifest and the base
    report(
        G,
        "oci layout: original .tar.gz of 500 layers: 501 blobs written and verified, base counted present",
        3,
        "held",
    );
}

/// Into the Docker engine (one `docker load` per target): layers an earlier target gave
/// the engine are left out of the later streams, as the base's are, so three targets on
/// the same two layers stream two layers, and each image is there with its own ID.
#[test]
fn targets_sharing_layers_stream_them_once_into_the_engine() {
    if !crate::common::require_peer("docker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = many(ManyOptions {
        targets: 3,
        layers: 2,
        layers_per_target: 2,
        distinct_images: true,
        layer_bytes: 100,
        tar_layers: true,
    });
    let bundle = dir.path().join("engine.ddiff");
    std::fs::write(&bundle, s.encode()).unwrap();
    let names: Vec<String> = (0..3).map(|t| format!("synth/app:{t}")).collect();
    let rmi = || {
        let _ = crate::common::docker()
            .args(["rmi", "-f"])
            .args(&names)
            .output();
    };
    rmi();
    let out = run(crate::common::ddiff_quiet()
        .args(["--json", "load"])
        .arg(&bundle)
        .args(["--to", "docker-daemon:"]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["uploaded_blobs"], 2, "{v}");
    assert_eq!(v["skipped_blobs"], 0, "{v}");
    assert_eq!(v["images"].as_array().unwrap().len(), 3, "{v}");
    for (t, name) in names.iter().enumerate() {
        let id =
            run(crate::common::docker().args(["image", "inspect", "--format", "{{.Id}}", name]));
        assert_eq!(
            String::from_utf8_lossy(&id.stdout).trim(),
            s.meta.targets[t].images[0].config.to_string(),
            "{name}"
        );
    }
    rmi();
    report(
        G,
        "docker engine: 3 targets on the same 2 layers: 2 layers streamed, 3 images with their own IDs",
        5,
        "held",
    );
}
