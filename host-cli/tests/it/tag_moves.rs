//! Issue 15 item 7: a load never moves the tag of the base it relies on (a self-consistent
//! bundle named like its base is refused at every destination: `hostile_bundle.rs`), and
//! every other tag it moves is reported, old digest -> new, in the text and in `--json`.
//! No peers needed (`ddiff server` is the registry).

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ddiff_core::synth_bundle::{many, ManyOptions};

use crate::common::{ddiff_quiet, ok, DdiffServer};

/// A one-target bundle `synth/app:0` whose single layer holds `layer_bytes` bytes: two
/// sizes give two different images under the same name.
fn bundle(dir: &Path, layer_bytes: usize) -> (std::path::PathBuf, String) {
    let s = many(ManyOptions {
        targets: 1,
        layers: 1,
        layers_per_target: 1,
        distinct_images: true,
        layer_bytes,
        tar_layers: false,
    });
    let path = dir.join(format!("app-{layer_bytes}.ddiff"));
    std::fs::write(&path, s.encode()).unwrap();
    (path, s.meta.targets[0].digest.to_string())
}

fn load(bundle: &Path, to: &str, json: bool) -> String {
    let mut c = ddiff_quiet();
    if json {
        c.arg("--json");
    }
    ok(c.args(["load", "--no-pull"]).arg(bundle).args(["--to", to]))
}

#[test]
fn a_tag_moved_by_a_load_is_reported_old_to_new() {
    let dir = tempfile::tempdir().unwrap();
    let (a, _) = bundle(dir.path(), 5);
    let (b, b_digest) = bundle(dir.path(), 6);
    let server = DdiffServer::start(&dir.path().join("reg"), &[]);
    let layout = format!("oci:{}", dir.path().join("layout").display());
    let registry = format!("docker://{}", server.addr);
    for to in [&layout, &registry] {
        let first = load(&a, to, false);
        assert!(
            !first.contains("moved tag"),
            "{to}: a new tag is not a move: {first}"
        );
        let again = load(&a, to, true);
        let v: serde_json::Value = serde_json::from_str(&again).unwrap();
        assert_eq!(
            v["moved_tags"],
            serde_json::json!([]),
            "{to}: the same image again"
        );
        let second = load(&b, to, true);
        let v: serde_json::Value = serde_json::from_str(&second).unwrap();
        let moved = v["moved_tags"].as_array().unwrap();
        assert_eq!(moved.len(), 1, "{to}: {second}");
        assert!(
            moved[0]["name"].as_str().unwrap().ends_with(":0"),
            "{second}"
        );
        // Layouts store OCI manifests (converted), so compare the registry's digest only.
        if to == &registry {
            assert_eq!(moved[0]["to"], b_digest.as_str(), "{second}");
        }
        assert_ne!(moved[0]["from"], moved[0]["to"]);
        let text = load(&a, to, false);
        assert!(
            text.lines()
                .any(|l| l.starts_with("moved tag ") && l.contains(" -> sha256:")),
            "{to}: {text}"
        );
    }
}
