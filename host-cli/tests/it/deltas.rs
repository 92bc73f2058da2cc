//! Deltas inside layers with real peers: a rebuilt layer travels as a patch against the
//! destination's own copy of a similar layer, and every destination gets, byte for byte,
//! the image the whole bundle gives (the Docker engine, Debian's docker-registry, an OCI
//! layout, checked by skopeo); where the reference is missing, the load is refused and the
//! destination is unchanged.

use std::path::Path;
use std::process::Command;

use crate::common::{
    ddiff, ddiff_quiet, docker, fails, image_id, ok, require_peer, run, skopeo, stderr, RefRegistry,
};

fn base_image() -> String {
    std::env::var("DDIFF_TEST_BASE_IMAGE").unwrap_or_else(|_| "bb:base".into())
}

/// A build context of `n` varied text files (about 2.5 MB); `edit` changes one of them.
fn context(dir: &Path, edit: bool) {
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    for i in 0..50u32 {
        let mut body = String::new();
        for k in 0..1500u32 {
            body.push_str(&format!(
                "line {k} of module {i}: value {} and more text\n",
                (k * 7919 + i * 104_729) % 100_003
            ));
        }
        if edit && i == 17 {
            body.push_str("one more line in the new release\n");
        }
        std::fs::write(dir.join(format!("lib/m{i}.txt")), body).unwrap();
    }
    std::fs::write(
        dir.join("Dockerfile"),
        format!("FROM {}\nCOPY lib /app/lib\n", base_image()),
    )
    .unwrap();
}

fn build(tag: &str, ctx: &Path) {
    run(docker()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "--network", "none", "-t", tag])
        .arg(ctx));
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// The digest and layer digests skopeo sees for an image.
fn skopeo_layers(image: &str) -> (String, Vec<String>) {
    let o = run(skopeo().args(["inspect", "--tls-verify=false", image]));
    let v = json(&String::from_utf8_lossy(&o.stdout));
    let layers = v["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap().to_string())
        .collect();
    (v["Digest"].as_str().unwrap().to_string(), layers)
}

fn listing(dir: &Path) -> Vec<(String, u64)> {
    crate::common::files_under(dir)
        .into_iter()
        .map(|f| {
            let len = std::fs::metadata(dir.join(&f)).unwrap().len();
            (f.display().to_string(), len)
        })
        .collect()
}

#[test]
fn engine_layers_travel_as_patches_and_load_bit_for_bit_everywhere() {
    if !require_peer("docker") || !require_peer("docker-registry") || !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (v1, v2) = ("ddiff-it-delta/app:1", "ddiff-it-delta/app:2");
    context(&d.join("c1"), false);
    context(&d.join("c2"), true);
    build(v1, &d.join("c1"));
    build(v2, &d.join("c2"));
    let id2 = image_id(v2).unwrap();

    // The site holds app:1 (whole bundle); app:2 travels against it, with and without deltas.
    let b1 = d.join("app1.ddiff");
    let patched = d.join("app2.ddiff");
    let whole = d.join("app2-whole.ddiff");
    ok(ddiff_quiet().args(["diff", "scratch", v1, "-o"]).arg(&b1));
    let s = json(&ok(ddiff_quiet()
        .args(["--json", "diff", v1, v2, "-o"])
        .arg(&patched)));
    ok(ddiff_quiet()
        .args(["diff", "--no-deltas", v1, v2, "-o"])
        .arg(&whole));
    assert_eq!(s["deltas"]["patched_layers"], 1, "{s}");
    let (p, w) = (
        std::fs::metadata(&patched).unwrap().len(),
        std::fs::metadata(&whole).unwrap().len(),
    );
    assert!(p * 20 < w, "patched bundle {p} bytes vs whole {w}");
    ok(ddiff_quiet().arg("verify").arg(&patched));
    let insp = ok(ddiff().arg("inspect").arg(&patched));
    assert!(insp.contains("B patch against"), "{insp}");

    // An OCI layout and Debian's docker-registry, each holding app:1: the patched bundle
    // gives exactly what the whole bundle gives.
    let reg = RefRegistry::start(&d.join("reg"));
    let reg_whole = RefRegistry::start(&d.join("reg-whole"));
    for (to, whole_to) in [
        (
            format!("oci:{}", d.join("lay").display()),
            format!("oci:{}", d.join("lay-whole").display()),
        ),
        (
            format!("docker://{}", reg.addr),
            format!("docker://{}", reg_whole.addr),
        ),
    ] {
        for (bundle, dest) in [(&patched, &to), (&whole, &whole_to)] {
            ok(ddiff_quiet()
                .arg("load")
                .arg(&b1)
                .args(["--no-pull", "--to", dest]));
            ok(ddiff_quiet()
                .arg("load")
                .arg(bundle)
                .args(["--no-pull", "--to", dest]));
        }
        let name = |t: &str| {
            if t.starts_with("oci:") {
                format!("{t}:2")
            } else {
                format!("{t}/ddiff-it-delta/app:2")
            }
        };
        let got = skopeo_layers(&name(&to));
        let want = skopeo_layers(&name(&whole_to));
        assert_eq!(got, want, "{to}");
        // skopeo reads every blob back, verifying its digest.
        let out = d.join(format!("copy-{}", got.0.replace(':', "-")));
        run(skopeo()
            .args(["copy", "--src-tls-verify=false", &name(&to)])
            .arg(format!("oci:{}", out.display())));
    }

    // The engine: app:2 removed, then loaded from the patched bundle; same image, and it runs.
    run(docker().args(["rmi", v2]));
    let o = run(ddiff_quiet()
        .arg("load")
        .arg(&patched)
        .args(["--to", "docker-daemon:"]));
    assert!(o.status.success());
    assert_eq!(image_id(v2).as_deref(), Some(id2.as_str()));
    let o = run(docker().args([
        "run",
        "--rm",
        "--network",
        "none",
        v2,
        "tail",
        "-n",
        "1",
        "/app/lib/m17.txt",
    ]));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "one more line in the new release"
    );

    // No reference at the destination: refused, naming it, and nothing written.
    let empty = d.join("empty-lay");
    let base_bundle = d.join("base.ddiff");
    ok(ddiff_quiet()
        .args(["diff", "scratch", &base_image(), "-o"])
        .arg(&base_bundle));
    ok(ddiff_quiet()
        .arg("load")
        .arg(&base_bundle)
        .arg("--to")
        .arg(format!("oci:{}", empty.display())));
    let before = listing(&empty);
    let e = stderr(&fails(
        ddiff_quiet()
            .arg("load")
            .arg(&patched)
            .arg("--to")
            .arg(format!("oci:{}", empty.display())),
    ));
    assert!(e.contains("lacks the layer(s) that patches"), "{e}");
    assert_eq!(listing(&empty), before);

    // docker-archive: holds no layers to rebuild from: refused by name, no file made.
    let arch = d.join("out.tar");
    let e = stderr(&fails(
        ddiff_quiet()
            .arg("load")
            .arg(&patched)
            .arg("--to")
            .arg(format!("docker-archive:{}", arch.display())),
    ));
    assert!(e.contains("travel as patches"), "{e}");
    assert!(!arch.exists());
}

/// Layers that `docker push` compressed (Go's gzip, level 6) travel as patches and are
/// rebuilt at Debian's docker-registry with the source's exact digests: the loaded image's
/// manifest digest is the source's, and skopeo pulls it verifying every blob.
#[test]
fn engine_pushed_layers_are_rebuilt_with_the_source_digest() {
    if !require_peer("docker") || !require_peer("docker-registry") || !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (v1, v2) = ("ddiff-it-delta-go/app:1", "ddiff-it-delta-go/app:2");
    context(&d.join("c1"), false);
    context(&d.join("c2"), true);
    build(v1, &d.join("c1"));
    build(v2, &d.join("c2"));
    let online = RefRegistry::start(&d.join("online"));
    let site = RefRegistry::start(&d.join("site"));
    for v in [v1, v2] {
        crate::common::push(v, &format!("{}/{v}", online.addr));
    }
    let src = |v: &str| format!("docker://{}/{v}", online.addr);
    // The site holds app:1 as the online registry has it.
    run(skopeo().args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &src(v1),
        &format!("docker://{}/{v1}", site.addr),
    ]));
    let bundle = d.join("b.ddiff");
    let s = json(&ok(ddiff_quiet()
        .args(["--json", "diff", &src(v1), &src(v2), "-o"])
        .arg(&bundle)));
    assert_eq!(s["deltas"]["patched_layers"], 1, "{s}");
    let meta = json(&String::from_utf8_lossy(
        &run(Command::new("tar")
            .arg("-xOf")
            .arg(&bundle)
            .arg("ddiff.json"))
        .stdout,
    ));
    let recipe = meta["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|b| b.get("patch"))
        .unwrap()["recipe"]
        .clone();
    assert_eq!(recipe["kind"], "go-gzip", "{recipe}");
    ok(ddiff_quiet().arg("load").arg(&bundle).args([
        "--no-pull",
        "--to",
        &format!("docker://{}", site.addr),
    ]));
    let (want, _) = skopeo_layers(&src(v2));
    let (got, _) = skopeo_layers(&format!("docker://{}/{v2}", site.addr));
    assert_eq!(got, want);
    run(skopeo()
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/{v2}", site.addr),
        ])
        .arg(format!("oci:{}", d.join("pulled").display())));
}

/// Planned against a site inventory (`diff --have`), a rebuilt layer travels as a patch
/// against a layer the site holds in another repository; the load finds it there (the
/// inventory's repository hint) and the site gets the source's exact manifest.
#[test]
fn inventory_bundles_patch_against_what_the_site_holds() {
    if !require_peer("docker") || !require_peer("docker-registry") || !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (old, new) = ("ddiff-it-delta-inv/old:1", "ddiff-it-delta-inv/app:2");
    context(&d.join("c1"), false);
    context(&d.join("c2"), true);
    build(old, &d.join("c1"));
    build(new, &d.join("c2"));
    let online = RefRegistry::start(&d.join("online"));
    let site = RefRegistry::start(&d.join("site"));
    for v in [old, new] {
        crate::common::push(v, &format!("{}/{v}", online.addr));
    }
    run(skopeo().args([
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{}/{old}", online.addr),
        &format!("docker://{}/{old}", site.addr),
    ]));
    let inv = d.join("site.json");
    ok(ddiff_quiet()
        .args(["inventory", &format!("docker://{}", site.addr), "-o"])
        .arg(&inv));
    let bundle = d.join("b.ddiff");
    let src = format!("docker://{}/{new}", online.addr);
    let s = json(&ok(ddiff_quiet()
        .args(["--json", "diff", "--have"])
        .arg(&inv)
        .arg(&src)
        .arg("-o")
        .arg(&bundle)));
    assert_eq!(s["deltas"]["patched_layers"], 1, "{s}");
    ok(ddiff_quiet().arg("load").arg(&bundle).args([
        "--no-pull",
        "--to",
        &format!("docker://{}", site.addr),
    ]));
    assert_eq!(
        skopeo_layers(&format!("docker://{}/{new}", site.addr)).0,
        skopeo_layers(&src).0
    );
}
