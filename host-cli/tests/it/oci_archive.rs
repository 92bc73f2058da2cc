//! `oci-archive:` inputs (a tar of an OCI image layout, as `skopeo copy … oci-archive:` writes
//! it): read in place by `diff` and `inspect`, with the same result as the unpacked layout,
//! and hostile archives refused with one line naming the file and the blob.

use std::path::Path;
use std::process::Command;

use ddiff_core::synth::{config_json, layer_tar, manifest, plain_layer};
use ddiff_core::{Digest, MediaType, RawManifest};

use crate::common::{ddiff, run, tar_of};

/// Writes an OCI image layout holding `blobs` and one manifest tagged `tag`.
pub(crate) fn write_layout(dir: &Path, blobs: &[&[u8]], m: &RawManifest, tag: &str) {
    let blob_dir = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blob_dir).unwrap();
    for b in blobs.iter().copied().chain([m.bytes()]) {
        let d = Digest::sha256(b);
        std::fs::write(blob_dir.join(d.hex()), b).unwrap();
    }
    std::fs::write(dir.join("oci-layout"), ddiff_core::bundle::meta::OCI_LAYOUT).unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": m.media_type().as_str(),
            "digest": m.digest().to_string(),
            "size": m.bytes().len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

pub(crate) struct Images {
    pub(crate) base_dir: std::path::PathBuf,
    pub(crate) app_dir: std::path::PathBuf,
    pub(crate) app_layer: Vec<u8>,
}

/// A base with one layer and an app with that layer plus one more, as layouts.
pub(crate) fn images(root: &Path) -> Images {
    let base_t = layer_tar(&[("etc/base.txt", b"the base layer")], 0);
    let app_t = layer_tar(&[("app/run.sh", b"the-app-layer-content-0123456789")], 0);
    let (bl, al) = (
        plain_layer(&base_t, "ADD base /"),
        plain_layer(&app_t, "COPY app /app"),
    );
    let when = "2026-01-01T00:00:00Z";
    let bc = config_json(std::slice::from_ref(&bl), "linux", "amd64", when);
    let ac = config_json(&[bl.clone(), al.clone()], "linux", "amd64", when);
    let bm = manifest(&MediaType::OciManifest, &bc, std::slice::from_ref(&bl));
    let am = manifest(&MediaType::OciManifest, &ac, &[bl, al]);
    let (base_dir, app_dir) = (root.join("base"), root.join("app"));
    write_layout(&base_dir, &[&base_t, &bc], &bm, "1");
    write_layout(&app_dir, &[&base_t, &app_t, &ac], &am, "2");
    Images {
        base_dir,
        app_dir,
        app_layer: app_t,
    }
}

/// `tar -cf` of a layout, entries named `./…` as GNU tar and skopeo write them.
fn tar_layout(dir: &Path, out: &Path) {
    run(Command::new("tar")
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg("."));
}

/// `ddiff diff BASE TARGET -o OUT`, which must succeed.
fn make_bundle(base: &str, target: &str, out: &Path) {
    run(ddiff()
        .args(["--quiet", "diff", base, target, "-o"])
        .arg(out));
}

fn inspect_json(bundle: &Path) -> serde_json::Value {
    let out = run(ddiff().arg("--json").arg("inspect").arg(bundle));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// (carried, relied on) layer digests of a bundle's first target image.
fn layer_split(v: &serde_json::Value) -> (Vec<String>, Vec<String>) {
    let mut split = (Vec::new(), Vec::new());
    for row in v["inspection"]["targets"][0]["images"][0]["layers"]
        .as_array()
        .unwrap()
    {
        let d = row["digest"].as_str().unwrap().to_string();
        if row["carried"] == true {
            split.0.push(d);
        } else {
            split.1.push(d);
        }
    }
    split
}

#[test]
fn diff_and_inspect_read_oci_archives_like_layouts() {
    let dir = tempfile::tempdir().unwrap();
    let img = images(dir.path());
    let (base_tar, app_tar) = (dir.path().join("base.tar"), dir.path().join("app.tar"));
    tar_layout(&img.base_dir, &base_tar);
    tar_layout(&img.app_dir, &app_tar);

    let from_dirs = dir.path().join("dirs.ddiff");
    make_bundle(
        &format!("oci:{}", img.base_dir.display()),
        &format!("oci:{}:2", img.app_dir.display()),
        &from_dirs,
    );
    let from_tars = dir.path().join("tars.ddiff");
    make_bundle(
        &format!("oci-archive:{}", base_tar.display()),
        &format!("oci-archive:{}:2", app_tar.display()),
        &from_tars,
    );

    let (a, b) = (inspect_json(&from_dirs), inspect_json(&from_tars));
    assert_eq!(a["ok"], true);
    assert_eq!(b["ok"], true);
    let app_digest = Digest::sha256(&img.app_layer).to_string();
    assert_eq!(layer_split(&b).0, vec![app_digest.clone()], "{b}");
    assert_eq!(layer_split(&b).1.len(), 1, "{b}");
    assert_eq!(layer_split(&a), layer_split(&b));
    assert_eq!(
        a["inspection"]["targets"][0]["images"][0]["manifestDigest"],
        b["inspection"]["targets"][0]["images"][0]["manifestDigest"]
    );
    // The name comes from the file name and the ref.name tag, as for a directory.
    assert_eq!(b["inspection"]["targets"][0]["reference"], "app:2", "{b}");

    // inspect takes the archive directly (a temporary self-contained bundle).
    let image = format!("oci-archive:{}", app_tar.display());
    let out = run(ddiff().args(["--json", "inspect", "--files", &image]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(layer_split(&v).0.len(), 2, "self-contained: {v}");
    assert!(v.to_string().contains("app/run.sh"), "{v}");

    // Entries without the ./ prefix read the same.
    let plain = dir.path().join("plain.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&img.app_dir)
        .arg("-cf")
        .arg(&plain)
        .args(["oci-layout", "index.json", "blobs"]));
    let out = run(ddiff().args([
        "--json",
        "inspect",
        &format!("oci-archive:{}", plain.display()),
    ]));
    let w: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(layer_split(&w), layer_split(&v));
}

#[test]
fn hostile_oci_archives_are_refused_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let img = images(dir.path());
    let base = format!("oci:{}", img.base_dir.display());
    let fails = |target: &str, out: &Path| -> String {
        let o = ddiff()
            .args(["--quiet", "diff", &base, target, "-o"])
            .arg(out)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{target} was accepted");
        assert!(!out.exists(), "{target}: a bundle was left behind");
        let err = String::from_utf8_lossy(&o.stderr).trim().to_string();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };

    // One flipped byte in the app layer: the blob is named.
    let app_tar = dir.path().join("app.tar");
    tar_layout(&img.app_dir, &app_tar);
    let mut bytes = std::fs::read(&app_tar).unwrap();
    let at = bytes
        .windows(img.app_layer.len())
        .position(|w| w == img.app_layer.as_slice())
        .unwrap();
    bytes[at + 600] ^= 0x20;
    let bad = dir.path().join("flipped.tar");
    std::fs::write(&bad, &bytes).unwrap();
    let err = fails(
        &format!("oci-archive:{}", bad.display()),
        &dir.path().join("a.ddiff"),
    );
    let app_digest = Digest::sha256(&img.app_layer).to_string();
    assert!(
        err.contains(&app_digest) && err.contains("flipped.tar"),
        "{err}"
    );

    // Truncated inside the app layer.
    let cut = dir.path().join("cut.tar");
    std::fs::write(&cut, &std::fs::read(&app_tar).unwrap()[..at + 100]).unwrap();
    let err = fails(
        &format!("oci-archive:{}", cut.display()),
        &dir.path().join("b.ddiff"),
    );
    assert!(
        err.contains("cut.tar") && err.contains("truncated"),
        "{err}"
    );

    // A path that climbs out of the archive.
    let evil = tar_of(&[("../../etc/index.json", b"{}")]);
    let evil_path = dir.path().join("evil.tar");
    std::fs::write(&evil_path, &evil).unwrap();
    let err = fails(
        &format!("oci-archive:{}", evil_path.display()),
        &dir.path().join("c.ddiff"),
    );
    assert!(err.contains("evil.tar") && err.contains("../"), "{err}");

    // Not an OCI layout at all, and a missing file.
    let other = tar_of(&[("manifest.json", b"[]")]);
    let other_path = dir.path().join("docker-save.tar");
    std::fs::write(&other_path, &other).unwrap();
    let err = fails(
        &format!("oci-archive:{}", other_path.display()),
        &dir.path().join("d.ddiff"),
    );
    assert!(err.contains("is this an OCI image layout?"), "{err}");
    let err = fails(
        &format!("oci-archive:{}", dir.path().join("nope.tar").display()),
        &dir.path().join("e.ddiff"),
    );
    assert!(err.contains("nope.tar"), "{err}");

    // --to oci-archive:FILE with a name: refused (images keep the bundle's tags).
    let bundle = dir.path().join("good.ddiff");
    make_bundle(&base, &format!("oci:{}:2", img.app_dir.display()), &bundle);
    let dest = dir.path().join("out.tar");
    let o = ddiff()
        .args(["--quiet", "load"])
        .arg(&bundle)
        .arg("--to")
        .arg(format!("oci-archive:{}:v1", dest.display()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("name the file only"),
        "{err}"
    );
    assert!(!dest.exists());
}

fn load_to(bundle: &Path, dest: &str) -> std::process::Output {
    ddiff()
        .args(["--quiet", "load"])
        .arg(bundle)
        .arg("--to")
        .arg(dest)
        .output()
        .unwrap()
}

#[test]
fn load_into_oci_archives_rewrites_them_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let img = images(dir.path());
    let bundle = dir.path().join("app.ddiff");
    make_bundle(
        &format!("oci:{}", img.base_dir.display()),
        &format!("oci:{}:2", img.app_dir.display()),
        &bundle,
    );

    // Into an archive that holds the base: the app joins it; the base's entries are kept.
    let archive = dir.path().join("site.tar");
    tar_layout(&img.base_dir, &archive);
    let out = load_to(&bundle, &format!("oci-archive:{}", archive.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let loaded = String::from_utf8_lossy(&out.stdout);
    assert!(
        loaded.contains(&format!("oci-archive:{}:2@sha256:", archive.display())),
        "{loaded}"
    );
    for tag in ["1", "2"] {
        let v = inspect_json_of(&format!("oci-archive:{}:{tag}", archive.display()));
        assert_eq!(v["ok"], true, "{tag}: {v}");
    }
    let files = run(ddiff().args([
        "--json",
        "inspect",
        "--files",
        &format!("oci-archive:{}:2", archive.display()),
    ]));
    assert!(String::from_utf8_lossy(&files.stdout).contains("app/run.sh"));
    // GNU tar reads it, with exactly one index.json.
    let listing = run(Command::new("tar").arg("-tf").arg(&archive));
    let names = String::from_utf8_lossy(&listing.stdout);
    assert_eq!(
        names.lines().filter(|l| l.ends_with("index.json")).count(),
        1,
        "{names}"
    );
    // A second load changes nothing but the file's identity: same entries, same index.
    let before = std::fs::read(&archive).unwrap();
    let out = load_to(&bundle, &format!("oci-archive:{}", archive.display()));
    assert!(out.status.success());
    assert_eq!(
        std::fs::read(&archive).unwrap(),
        before,
        "a repeated load is idempotent"
    );
    if crate::common::require_peer("skopeo") {
        let o = run(crate::common::skopeo().args([
            "inspect",
            "--raw",
            &format!("oci-archive:{}:2", archive.display()),
        ]));
        let m: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            m["layers"][1]["digest"],
            Digest::sha256(&img.app_layer).to_string()
        );
    }

    // Into an archive without the base: refused, the file is byte for byte as it was.
    let empty_dir = dir.path().join("empty");
    std::fs::create_dir_all(empty_dir.join("blobs/sha256")).unwrap();
    std::fs::write(
        empty_dir.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(
        empty_dir.join("index.json"),
        r#"{"schemaVersion":2,"manifests":[]}"#,
    )
    .unwrap();
    let bare = dir.path().join("bare.tar");
    tar_layout(&empty_dir, &bare);
    let bare_before = std::fs::read(&bare).unwrap();
    let out = load_to(&bundle, &format!("oci-archive:{}", bare.display()));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("nothing was written"),
        "{err}"
    );
    assert_eq!(std::fs::read(&bare).unwrap(), bare_before);
    // ... and into a file that does not exist: refused, nothing created.
    let new = dir.path().join("new.tar");
    let out = load_to(&bundle, &format!("oci-archive:{}", new.display()));
    assert!(!out.status.success());
    assert!(!new.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".ddiff-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");

    // A self-contained bundle makes a new archive.
    let whole = dir.path().join("whole.ddiff");
    make_bundle(
        "scratch",
        &format!("oci:{}:2", img.app_dir.display()),
        &whole,
    );
    let out = load_to(&whole, &format!("oci-archive:{}", new.display()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = inspect_json_of(&format!("oci-archive:{}", new.display()));
    assert_eq!(v["ok"], true, "{v}");
}

fn inspect_json_of(image: &str) -> serde_json::Value {
    let out = run(ddiff().args(["--json", "inspect", image]));
    serde_json::from_slice(&out.stdout).unwrap()
}
