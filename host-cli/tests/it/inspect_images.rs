//! `ddiff inspect` of images (not bundles): an OCI layout made by skopeo from the original
//! tool's base image fixture.

use std::process::Command;

use crate::common::{ddiff, fails, require_peer, run, stderr};

#[test]
fn inspects_an_oci_layout_image() {
    if !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let fixture = crate::common::bb_base_dir();
    let layout = dir.path().join("layout");
    run(Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("dir:{}", fixture.display()))
        .arg(format!("oci:{}:base", layout.display())));
    let image = format!("oci:{}:base", layout.display());
    let out = run(ddiff().args(["--json", "inspect", "--files", &image]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v.to_string();
    // skopeo's OCI manifest of bb:base, its one busybox layer, and the file list.
    assert!(
        text.contains("sha256:b4dca03c643dd84e55cd28d4535200e394ca295cd9904acd68609115940318c3"),
        "{text}"
    );
    assert!(
        text.contains("sha256:feb157206a4db810badbff0da9a6c48c9f399cbf83ae6b0d7df8ce9daa022749"),
        "{text}"
    );
    assert!(text.contains("bin/busybox"), "{text}");
    assert_eq!(v["ok"], true, "{text}");
    let human = run(ddiff().args(["inspect", &image]));
    let h = String::from_utf8_lossy(&human.stdout);
    assert!(
        h.starts_with(&format!("Bundle   {image}")) && h.contains("none (self-contained)"),
        "{h}"
    );
    // A path that is not an image layout: one clear line.
    let bad = fails(ddiff().args([
        "inspect",
        &format!("oci:{}", dir.path().join("nope").display()),
    ]));
    assert!(stderr(&bad).contains("is this an OCI image layout?"));
}
