//! `ddiff load --to oci:DIR` of a Docker v2s2 image: the layout is usable by OCI tools. skopeo
//! (a peer we did not write) must find the image by name and copy it out, verifying every
//! blob; the config and layer bytes must be the registry's, and a second load must change
//! nothing.

use crate::common::{ddiff, push_bb_base, require_peer, run, skopeo, DdiffServer};

#[test]
fn docker_images_loaded_into_an_oci_layout_are_found_by_skopeo() {
    if !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    // A Docker v2s2 image (skopeo keeps the fixture's media types when it pushes).
    let image = format!("docker://{}/bb:base", server.addr);
    push_bb_base(&image);
    let bundle = dir.path().join("bb.ddiff");
    run(ddiff()
        .args(["--quiet", "diff", "scratch", &image, "-o"])
        .arg(&bundle));
    let layout = dir.path().join("layout");
    let load = || {
        run(ddiff()
            .args(["--quiet", "load"])
            .arg(&bundle)
            .arg("--to")
            .arg(format!("oci:{}", layout.display())))
    };
    let out = load();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("1 Docker manifest(s) written with OCI media types"),
        "{said}"
    );

    let name = format!("oci:{}:base", layout.display());
    let raw = run(skopeo().args(["inspect", "--raw", &name]));
    let m: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(
        m["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{m}"
    );
    assert_eq!(
        m["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    // The same config and layer bytes as in the registry.
    assert_eq!(
        m["config"]["digest"],
        "sha256:e1c7c6ee7f6d2a068a1de8105334880aa99fde8d44a5524d5d815e826e985a5f"
    );
    assert_eq!(
        m["layers"][0]["digest"],
        "sha256:feb157206a4db810badbff0da9a6c48c9f399cbf83ae6b0d7df8ce9daa022749"
    );
    assert_eq!(
        m["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // skopeo copies it out, checking every blob against the manifest.
    let out = dir.path().join("out");
    run(skopeo()
        .args(["copy", "--quiet", &name])
        .arg(format!("dir:{}", out.display())));
    assert!(out
        .join("feb157206a4db810badbff0da9a6c48c9f399cbf83ae6b0d7df8ce9daa022749")
        .is_file());

    // Loading the same bundle again converts to the same bytes: nothing changes.
    let index_before = std::fs::read(layout.join("index.json")).unwrap();
    let blobs_before = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .count();
    load();
    assert_eq!(
        std::fs::read(layout.join("index.json")).unwrap(),
        index_before
    );
    assert_eq!(
        std::fs::read_dir(layout.join("blobs/sha256"))
            .unwrap()
            .count(),
        blobs_before
    );
}
