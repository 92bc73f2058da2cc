//! Issue 12: a delivery planned from a site inventory, for a set of images at once. The
//! offline site is Debian's `docker-registry` holding five images of earlier rounds; the
//! online side is `ddiff server` with a new release of three of them plus a new image.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use ddiff_core::bundle::BlobKind;
use ddiff_core::{Digest, Inventory};

use crate::common::{
    ddiff_quiet, docker, docker_build, fails, push, require_peer, run, skopeo, stderr, stdout,
    DdiffServer, RefRegistry,
};

/// Earlier rounds (`inv/a:1` … `inv/e:1`) and the new release (`inv/a:2`, `inv/b:2`,
/// `inv/c:2`, `inv/f:1`), built in the engine as `<prefix>-<name>:<tag>`; two shared bases
/// (busybox, and busybox + a "mid" layer).
fn build_images(prefix: &str) -> Vec<(String, &'static str)> {
    let base = format!("{prefix}-base:1");
    let mid = format!("{prefix}-mid:1");
    crate::common::docker_image(&base, &format!("{prefix} base"));
    docker_build(&base, &mid, &[&format!("RUN echo {prefix} mid > /mid.txt")]);
    let mut out = Vec::new();
    let mut img = |from: &str, name: &'static str, msg: &str| {
        let tag = format!("{prefix}-{}", name.replace(['/', ':'], "-"));
        docker_build(
            from,
            &tag,
            &[
                &format!("RUN echo {msg} > /msg.txt"),
                "CMD [\"cat\", \"/msg.txt\"]",
            ],
        );
        out.push((tag, name));
    };
    img(&base, "inv/a:1", "a1");
    img(&base, "inv/b:1", "b1");
    img(&mid, "inv/c:1", "c1");
    img(&mid, "inv/d:1", "d1");
    img(&mid, "inv/e:1", "e1");
    let a1 = format!("{prefix}-inv-a-1");
    let b1 = format!("{prefix}-inv-b-1");
    img(&a1, "inv/a:2", "a2");
    img(&b1, "inv/b:2", "b2");
    img(&mid, "inv/c:2", "c2");
    img(&mid, "inv/f:1", "f1");
    out
}

fn report(bundle: &Path) -> ddiff_core::bundle::Report {
    ddiff_cli::bundle_io::verify_file(bundle, |_, _| {})
        .unwrap()
        .report
}

fn inventory(addr_or_source: &str, out: &Path) -> Inventory {
    run(ddiff_quiet()
        .args(["inventory", addr_or_source, "-o"])
        .arg(out));
    Inventory::parse(&std::fs::read(out).unwrap()).unwrap()
}

/// Every file under a registry's storage with its size.
fn listing(root: &Path) -> Vec<(String, u64)> {
    crate::common::files_under(root)
        .into_iter()
        .map(|f| {
            let len = std::fs::metadata(root.join(&f)).map_or(0, |m| m.len());
            (f.display().to_string(), len)
        })
        .collect()
}

const OLD: [&str; 5] = ["inv/a:1", "inv/b:1", "inv/c:1", "inv/d:1", "inv/e:1"];
const NEW: [&str; 4] = ["inv/a:2", "inv/b:2", "inv/c:2", "inv/f:1"];

struct World {
    _dir: tempfile::TempDir,
    dir: std::path::PathBuf,
    online: DdiffServer,
    site: RefRegistry,
    site_root: std::path::PathBuf,
    images: Vec<(String, &'static str)>,
}

fn world(prefix: &str) -> World {
    let images = build_images(prefix);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let online = DdiffServer::start(&dir.join("online"), &[]);
    let site_root = dir.join("site");
    let site = RefRegistry::start(&site_root);
    for (local, name) in &images {
        if OLD.contains(name) {
            push(local, &format!("{}/{name}", site.addr));
        } else {
            push(local, &format!("{}/{name}", online.addr));
        }
    }
    World {
        _dir: tmp,
        dir,
        online,
        site,
        site_root,
        images,
    }
}

fn targets_file(w: &World) -> std::path::PathBuf {
    let f = w.dir.join("release.txt");
    let mut text = String::from("# the release\n\n");
    for n in NEW {
        text.push_str(&format!("docker://{}/{n}   # {n}\n", w.online.addr));
    }
    std::fs::write(&f, text).unwrap();
    f
}

#[test]
fn one_inventory_one_bundle_for_a_release_of_several_images() {
    if !require_peer("docker") || !require_peer("docker-registry") || !require_peer("skopeo") {
        return;
    }
    let w = world("inv1");
    // Offline: the inventory of the whole registry.
    let inv_path = w.dir.join("site.inventory.json");
    let inv = inventory(&format!("docker://{}", w.site.addr), &inv_path);
    let refs: BTreeSet<&str> = inv
        .manifests
        .iter()
        .flat_map(|m| m.references.iter().map(String::as_str))
        .collect();
    assert_eq!(refs, OLD.into_iter().collect::<BTreeSet<_>>());
    let held: BTreeSet<&Digest> = inv.blobs.iter().map(|b| &b.digest).collect();
    // Online: one bundle for the four targets.
    let bundle = w.dir.join("release.ddiff");
    let out = run(ddiff_quiet()
        .args(["diff", "--have"])
        .arg(&inv_path)
        .arg("--targets")
        .arg(targets_file(&w))
        .arg("-o")
        .arg(&bundle));
    assert!(stdout(&out).contains("carries"), "{out:?}");
    let r = report(&bundle);
    // Each needed blob once, and nothing the site had.
    let carried: Vec<&Digest> = r.meta.blobs.iter().map(|b| &b.digest).collect();
    let distinct: BTreeSet<&Digest> = carried.iter().copied().collect();
    assert_eq!(carried.len(), distinct.len(), "a blob carried twice");
    for b in &r.meta.blobs {
        assert!(
            !held.contains(&b.digest),
            "carries {} the site has",
            b.digest
        );
    }
    // The four new layers (one RUN each), four configs, four manifests.
    let layers = r
        .meta
        .blobs
        .iter()
        .filter(|b| b.kind == BlobKind::Layer)
        .count();
    assert_eq!(layers, 4, "{:?}", r.meta.blobs);
    // Relied on: the two base layers, mid, a1 and b1; each names where the site held it.
    assert_eq!(r.meta.relied.len(), 5, "{:?}", r.meta.relied);
    assert!(r.meta.relied.iter().all(|b| !b.repositories.is_empty()));
    assert_eq!(
        r.meta.base.as_ref().unwrap().inventories,
        [inv.content_digest()]
    );
    // Offline: load; inv/f is a new repository, its layers come from the others.
    for (local, name) in &w.images {
        if NEW.contains(name) {
            let _ = docker().args(["rmi", "-f", local, name]).output();
        }
    }
    let updated = w.dir.join("updated.inventory.json");
    let out = run(ddiff_quiet()
        .arg("load")
        .arg(&bundle)
        .args(["--to", &format!("docker://{}", w.site.addr)])
        .arg("--update-inventory")
        .arg(&updated));
    let text = stdout(&out);
    assert!(text.contains("uploaded 8 blob(s)"), "{text}");
    for n in NEW {
        // Every target pulls with skopeo (every blob fetched) and runs in the engine.
        let oci = w.dir.join(format!("pulled-{}", n.replace(['/', ':'], "-")));
        run(skopeo()
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{}/{n}", w.site.addr))
            .arg(format!("oci:{}:x", oci.display())));
        let out = run(docker().args(["run", "--rm", n]));
        let want = match n {
            "inv/a:2" => "a2",
            "inv/b:2" => "b2",
            "inv/c:2" => "c2",
            _ => "f1",
        };
        assert_eq!(stdout(&out).trim(), want);
        let _ = docker().args(["rmi", "-f", n]).output();
    }
    // --update-inventory wrote what `ddiff inventory` writes now: the next round starts
    // from the truth.
    let again = inventory(&format!("docker://{}", w.site.addr), &inv_path);
    assert_eq!(
        again
            .manifests
            .iter()
            .filter(|m| !m.references.is_empty())
            .count(),
        9
    );
    assert_eq!(
        std::fs::read(&updated).unwrap(),
        std::fs::read(&inv_path).unwrap()
    );
}

#[test]
fn a_site_that_changed_after_its_inventory_is_refused_unchanged() {
    if !require_peer("docker") || !require_peer("docker-registry") || !require_peer("skopeo") {
        return;
    }
    let mut w = world("inv2");
    let inv_path = w.dir.join("site.inventory.json");
    inventory(&format!("docker://{}", w.site.addr), &inv_path);
    let bundle = w.dir.join("release.ddiff");
    run(ddiff_quiet()
        .args(["diff", "--have"])
        .arg(&inv_path)
        .arg("--targets")
        .arg(targets_file(&w))
        .arg("-o")
        .arg(&bundle));
    let r = report(&bundle);
    // The site deletes inv/b:1 and collects garbage: b1's layer (relied on by b:2) is gone.
    let b1_layer = {
        let out = run(skopeo()
            .args(["inspect", "--raw", "--tls-verify=false"])
            .arg(format!("docker://{}/inv/b:1", w.site.addr)));
        let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        m["layers"].as_array().unwrap().last().unwrap()["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(r
        .meta
        .relied
        .iter()
        .any(|b| b.digest.to_string() == b1_layer));
    run(skopeo()
        .args(["delete", "--tls-verify=false"])
        .arg(format!("docker://{}/inv/b:1", w.site.addr)));
    drop(std::mem::replace(
        &mut w.site,
        RefRegistry::start(&w.dir.join("scratch")),
    ));
    let config = w.dir.join("gc.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n",
            w.site_root.display()
        ),
    )
    .unwrap();
    run(Command::new("docker-registry")
        .args(["garbage-collect", "--delete-untagged"])
        .arg(&config));
    w.site = RefRegistry::start(&w.site_root);
    let before = listing(&w.site_root);
    let out = fails(
        ddiff_quiet()
            .args(["load", "--no-pull"])
            .arg(&bundle)
            .args(["--to", &format!("docker://{}", w.site.addr)]),
    );
    let err = stderr(&out);
    let line = err.lines().last().unwrap_or_default();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(line.starts_with("ddiff: error:"), "{err}");
    assert!(
        line.contains("no longer holds what its inventory said"),
        "{err}"
    );
    assert!(
        line.contains(&b1_layer),
        "the missing blob is not named: {err}"
    );
    assert_eq!(listing(&w.site_root), before, "the site changed");
}

#[test]
fn inventories_of_a_layout_and_the_engine_work_as_have() {
    if !require_peer("docker") || !require_peer("docker-registry") || !require_peer("skopeo") {
        return;
    }
    let w = world("inv3");
    // A layout holding inv/a:1, as skopeo writes it.
    let layout = w.dir.join("layout");
    run(skopeo()
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{}/inv/a:1", w.site.addr))
        .arg(format!("oci:{}:a1", layout.display())));
    let lpath = w.dir.join("layout.json");
    let linv = inventory(&format!("oci:{}", layout.display()), &lpath);
    assert_eq!(linv.kind, ddiff_core::SourceKind::Layout);
    let target = format!("docker://{}/inv/a:2", w.online.addr);
    let bundle = w.dir.join("layout.ddiff");
    // The whole repository inv/a of the online side (its one tag, 2) as the targets.
    run(ddiff_quiet()
        .args(["diff", "--have"])
        .arg(&lpath)
        .arg("--repository")
        .arg(format!("docker://{}/inv/a", w.online.addr))
        .arg("-o")
        .arg(&bundle));
    let r = report(&bundle);
    let names: Vec<&str> = r
        .meta
        .targets
        .iter()
        .map(|t| t.reference.as_str())
        .collect();
    assert_eq!(names, ["inv/a:2"]);
    // inv/a:1 is busybox, the base's message and a1: relied on; a2 carried.
    assert_eq!(
        r.meta
            .blobs
            .iter()
            .filter(|b| b.kind == BlobKind::Layer)
            .count(),
        1
    );
    assert_eq!(r.meta.relied.len(), 3);
    run(ddiff_quiet()
        .arg("load")
        .arg(&bundle)
        .arg("--to")
        .arg(format!("oci:{}", layout.display())));
    run(skopeo()
        .arg("inspect")
        .arg(format!("oci:{}:2", layout.display())));
    // The engine: it holds every image built here, by diff_id.
    let epath = w.dir.join("engine.json");
    let einv = inventory("docker-daemon:", &epath);
    assert_eq!(einv.kind, ddiff_core::SourceKind::Engine);
    let bundle = w.dir.join("engine.ddiff");
    run(ddiff_quiet()
        .args(["diff", "--have"])
        .arg(&epath)
        .arg(&target)
        .arg("-o")
        .arg(&bundle));
    let r = report(&bundle);
    // The engine has inv/a:2's own layer too (it was built here): nothing to carry but
    // the manifest and config.
    assert_eq!(
        r.meta
            .blobs
            .iter()
            .filter(|b| b.kind == BlobKind::Layer)
            .count(),
        0
    );
    assert_eq!(r.meta.relied.len(), 4);
    // Two sites (the layout and the engine): only what both hold is relied on.
    let bundle = w.dir.join("both.ddiff");
    run(ddiff_quiet()
        .args(["diff", "--have"])
        .arg(&lpath)
        .arg("--have")
        .arg(&epath)
        .arg(&target)
        .arg("-o")
        .arg(&bundle));
    let r = report(&bundle);
    assert_eq!(
        r.meta
            .blobs
            .iter()
            .filter(|b| b.kind == BlobKind::Layer)
            .count(),
        1
    );
    assert_eq!(r.meta.relied.len(), 3);
    // The registry inventory as --have was the first test; a damaged one is refused with one
    // line.
    let mut bytes = std::fs::read(&lpath).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    let bad = w.dir.join("bad.json");
    std::fs::write(&bad, &bytes).unwrap();
    let out = fails(
        ddiff_quiet()
            .args(["diff", "--have"])
            .arg(&bad)
            .arg(&target)
            .arg("-o")
            .arg(w.dir.join("never.ddiff")),
    );
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("ddiff: error: inventory {}: ", bad.display())),
        "{err}"
    );
    assert!(!w.dir.join("never.ddiff").exists());
}
