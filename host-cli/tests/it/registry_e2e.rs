//! End to end over registries (issue 4): the original project's own test replayed with the real
//! Docker engine, into `ddiff server` and into Debian's `docker-registry`; a destination without
//! the base; an interrupted load; a multi-platform index.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use crate::common::{
    ddiff, docker, docker_build, push, require_peer, run, stderr, DdiffServer, RefRegistry,
};

/// Base and delta exactly as the original project's test: FROM base + RUN echo. The base's
/// content names `prefix`, so tests running at once never share an image ID through the
/// engine's build cache (one test's `rmi` then deleted the image another was tagging:
/// "failed to get digest ... no such file or directory").
fn build_base_and_delta(prefix: &str) -> (String, String) {
    let base = format!("{prefix}-base:1");
    let delta = format!("{prefix}-delta:1");
    crate::common::docker_image(&base, &format!("{prefix} base"));
    docker_build(
        &base,
        &delta,
        &["RUN echo \"Hello DockerDiff!\" > hello_ddiff.txt"],
    );
    (base, delta)
}

/// Every file under a registry's storage, with sizes: what "unchanged" is compared on.
fn listing(root: &Path) -> Vec<(String, u64)> {
    crate::common::files_under(root)
        .into_iter()
        .map(|f| {
            let len = std::fs::metadata(root.join(&f)).map_or(0, |m| m.len());
            (f.display().to_string(), len)
        })
        .collect()
}

enum Dest {
    Ddiff(DdiffServer),
    Reference(RefRegistry),
}

impl Dest {
    fn start(kind: &str, root: &Path) -> Dest {
        match kind {
            "ddiff" => Dest::Ddiff(DdiffServer::start(root, &[])),
            _ => Dest::Reference(RefRegistry::start(root)),
        }
    }
    fn addr(&self) -> &str {
        match self {
            Dest::Ddiff(s) => &s.addr,
            Dest::Reference(r) => &r.addr,
        }
    }
}

fn original_workflow(kind: &str) {
    if !require_peer("docker") || (kind == "reference" && !require_peer("docker-registry")) {
        return;
    }
    let (base, delta) = build_base_and_delta(&format!("e2e-{kind}"));
    let dir = tempfile::tempdir().unwrap();
    // Online: one registry with both images; diff against it.
    let online_root = dir.path().join("online");
    let online = DdiffServer::start(&online_root, &[]);
    push(&base, &format!("{}/e2e/base:1", online.addr));
    push(&delta, &format!("{}/e2e/delta:1", online.addr));
    let bundle = dir.path().join("delta.ddiff");
    let out = run(ddiff()
        .args([
            "diff",
            &format!("docker://{}/e2e/base:1", online.addr),
            &format!("docker://{}/e2e/delta:1", online.addr),
            "-o",
        ])
        .arg(&bundle));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("carries"),
        "{out:?}"
    );
    // The air gap: the online registry and its data are gone.
    drop(online);
    std::fs::remove_dir_all(&online_root).unwrap();
    // Offline: a fresh registry holding only the base.
    let dest = Dest::start(kind, &dir.path().join("offline"));
    push(&base, &format!("{}/e2e/base:1", dest.addr()));
    let _ = docker().args(["rmi", "-f", &delta]).output();
    let out = run(ddiff()
        .args(["load"])
        .arg(&bundle)
        .args(["--to", &format!("docker://{}", dest.addr())]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("loaded"),
        "{out:?}"
    );
    // `load` pulled it into the engine under the name it had on the online side, without
    // the registry host, as the original tool does (issue 16): run it by that name.
    let image = "e2e/delta:1";
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pulled into Docker as e2e/delta:1"),
        "{out:?}"
    );
    let out = run(docker().args(["run", "--rm", image, "cat", "hello_ddiff.txt"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Hello DockerDiff!"
    );
    // ... and left no registry-prefixed name behind.
    let prefixed = format!("{}/e2e/delta:1", dest.addr());
    let out = docker()
        .args(["image", "inspect", &prefixed])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{prefixed} is in the engine");
    let _ = docker().args(["rmi", "-f", image]).output();
}

/// Issue 16: a bundle made from the engine (`ddiff diff base:1 app:2`), loaded into a registry,
/// is in Docker as `app:2` right after the load, as with the original DockerDiff.
#[test]
fn engine_names_survive_a_registry_load() {
    if !require_peer("docker") {
        return;
    }
    let (base, delta) = build_base_and_delta("e2e-names");
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("names.ddiff");
    run(ddiff().args(["diff", &base, &delta, "-o"]).arg(&bundle));
    let dest = DdiffServer::start(&dir.path().join("offline"), &[]);
    let (brepo, btag) = base.rsplit_once(':').unwrap();
    push(&base, &format!("{}/{brepo}:{btag}", dest.addr));
    run(docker().args(["rmi", "-f", &delta]));
    let out = run(ddiff()
        .arg("load")
        .arg(&bundle)
        .args(["--to", &format!("docker://{}", dest.addr)]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("pulled into Docker as {delta}")),
        "{stdout}"
    );
    let out = run(docker().args(["run", "--rm", &delta, "cat", "hello_ddiff.txt"]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Hello DockerDiff!"
    );
    let prefixed = format!("{}/{delta}", dest.addr);
    let out = docker()
        .args(["image", "inspect", &prefixed])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{prefixed} is in the engine");
    let _ = docker().args(["rmi", "-f", &delta]).output();
}

#[test]
fn original_workflow_into_ddiff_server() {
    original_workflow("ddiff");
}

#[test]
fn original_workflow_into_reference_registry() {
    original_workflow("reference");
}

#[test]
fn destination_without_the_base_is_refused_and_unchanged() {
    if !require_peer("docker") {
        return;
    }
    let (base, delta) = build_base_and_delta("e2e-nobase");
    let dir = tempfile::tempdir().unwrap();
    let online = DdiffServer::start(&dir.path().join("online"), &[]);
    push(&base, &format!("{}/nb/base:1", online.addr));
    push(&delta, &format!("{}/nb/delta:1", online.addr));
    let bundle = dir.path().join("nb.ddiff");
    run(ddiff()
        .args([
            "diff",
            &format!("docker://{}/nb/base:1", online.addr),
            &format!("docker://{}/nb/delta:1", online.addr),
            "-o",
        ])
        .arg(&bundle));
    let root = dir.path().join("empty");
    let dest = DdiffServer::start(&root, &[]);
    // Something unrelated is there already; it must stay exactly as it is.
    push(&delta, &format!("{}/other/thing:1", dest.addr));
    let before = listing(&root);
    let out = ddiff()
        .args(["load", "--no-pull"])
        .arg(&bundle)
        .args(["--to", &format!("docker://{}", dest.addr)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("ddiff: error:") && last.contains("lacks") && last.contains("nb/base:1"),
        "{err}"
    );
    assert_eq!(listing(&root), before, "the destination changed");
}

#[test]
fn multi_platform_index_one_platform_or_all() {
    // No external peer: two ddiff servers and an index built with the core's synthetic images.
    use ddiff_core::synth::{config_json, index, layer_tar, manifest, plain_layer};
    use ddiff_core::{Digest, MediaType};
    let dir = tempfile::tempdir().unwrap();
    let online = DdiffServer::start(&dir.path().join("on"), &[]);
    let offline = DdiffServer::start(&dir.path().join("off"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        use ddiff_cli::registry::client::{ClientOptions, Registry};
        let push_all = |reg: Registry,
                        repo: &'static str,
                        blobs: Vec<Vec<u8>>,
                        manifests: Vec<(String, ddiff_core::RawManifest)>| async move {
            for b in blobs {
                let d = Digest::sha256(&b);
                let len = b.len() as u64;
                reg.upload_blob(repo, &d, len, &move || Ok(reqwest::Body::from(b.clone())))
                    .await
                    .unwrap();
            }
            for (r, m) in manifests {
                reg.put_manifest(repo, &r, m.media_type().as_str(), m.bytes())
                    .await
                    .unwrap();
            }
        };
        let mut images = Vec::new();
        let mut base_images = Vec::new();
        let mut blobs_on = Vec::new();
        let mut blobs_base = Vec::new();
        for arch in ["amd64", "arm64"] {
            let base_t = layer_tar(&[(&format!("{arch}/base"), b"base")], 0);
            let app_t = layer_tar(&[(&format!("{arch}/app"), b"app")], 0);
            let (bl, al) = (plain_layer(&base_t, "base"), plain_layer(&app_t, "app"));
            let bc = config_json(
                std::slice::from_ref(&bl),
                "linux",
                arch,
                "2026-01-01T00:00:00Z",
            );
            let ac = config_json(&[bl.clone(), al], "linux", arch, "2026-01-01T00:00:00Z");
            let bm = manifest(&MediaType::OciManifest, &bc, std::slice::from_ref(&bl));
            let am = manifest(
                &MediaType::OciManifest,
                &ac,
                &[bl, plain_layer(&app_t, "app")],
            );
            blobs_on.extend([base_t.clone(), app_t, bc.clone(), ac]);
            blobs_base.extend([base_t, bc]);
            images.push((am, arch));
            base_images.push((bm, arch));
        }
        let app_idx = index(
            &images
                .iter()
                .map(|(m, a)| (m, "linux", *a))
                .collect::<Vec<_>>(),
        );
        let base_idx = index(
            &base_images
                .iter()
                .map(|(m, a)| (m, "linux", *a))
                .collect::<Vec<_>>(),
        );
        let mut on_manifests: Vec<(String, ddiff_core::RawManifest)> = images
            .iter()
            .chain(&base_images)
            .map(|(m, _)| (m.digest().to_string(), m.clone()))
            .collect();
        on_manifests.push(("1".into(), base_idx.clone()));
        let base_only: Vec<_> = base_images
            .iter()
            .map(|(m, _)| (m.digest().to_string(), m.clone()))
            .chain([("1".to_string(), base_idx.clone())])
            .collect();
        push_all(
            Registry::new(&online.addr, ClientOptions::default()).unwrap(),
            "mp/base",
            blobs_on.clone(),
            on_manifests.clone(),
        )
        .await;
        let mut app_manifests: Vec<_> = images
            .iter()
            .map(|(m, _)| (m.digest().to_string(), m.clone()))
            .collect();
        app_manifests.push(("2".into(), app_idx.clone()));
        push_all(
            Registry::new(&online.addr, ClientOptions::default()).unwrap(),
            "mp/app",
            blobs_on,
            app_manifests,
        )
        .await;
        push_all(
            Registry::new(&offline.addr, ClientOptions::default()).unwrap(),
            "mp/base",
            blobs_base,
            base_only,
        )
        .await;
    });
    let b = format!("docker://{}/mp/base:1", online.addr);
    let a = format!("docker://{}/mp/app:2", online.addr);
    // One platform: the bundle's target is the arm64 image manifest.
    let one = dir.path().join("one.ddiff");
    run(ddiff()
        .args(["diff", &b, &a, "--platform", "linux/arm64", "-o"])
        .arg(&one));
    let out = run(ddiff()
        .args(["--json", "load", "--no-pull"])
        .arg(&one)
        .args(["--to", &format!("docker://{}/mp/app-arm64:2", offline.addr)]));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["uploaded_blobs"], 2, "{s}"); // arm64 config + app layer
                                               // All platforms: the index itself arrives, digest unchanged.
    let all = dir.path().join("all.ddiff");
    run(ddiff()
        .args(["diff", &b, &a, "--all-platforms", "-o"])
        .arg(&all));
    let out = run(ddiff()
        .args(["--json", "load", "--no-pull"])
        .arg(&all)
        .args(["--to", &format!("docker://{}", offline.addr)]));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let online_idx = run(ddiff().args(["--json", "list", &a, "--all-platforms"]));
    let rows: serde_json::Value = serde_json::from_slice(&online_idx.stdout).unwrap();
    let idx_digest = rows[0]["digest"].as_str().unwrap();
    assert!(
        s["images"][0].as_str().unwrap().ends_with(idx_digest),
        "{s} vs {idx_digest}"
    );
    // A platform the index lacks: a clear error listing what there is.
    let out = ddiff()
        .args(["diff", &b, &a, "--platform", "linux/s390x", "-o"])
        .arg(dir.path().join("x.ddiff"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64, linux/arm64"),
        "{err}"
    );
}

/// Bytes sitting in upload sessions under a registry root (`_uploads/*/data`).
fn bytes_in_uploads(root: &Path) -> u64 {
    listing(root)
        .iter()
        .filter(|(p, _)| p.contains("/_uploads/") && p.ends_with("/data"))
        .map(|(_, n)| n)
        .sum()
}

fn tags(addr: &str, repo: &str) -> Vec<String> {
    let out = Command::new("skopeo")
        .args([
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{addr}/{repo}"),
        ])
        .output()
        .unwrap();
    if !out.status.success() {
        return Vec::new(); // NAME_UNKNOWN: no tags at all
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn load_killed_midway_never_tags_and_finishes_when_rerun() {
    if !require_peer("docker") || !require_peer("skopeo") {
        return;
    }
    let (base, _) = build_base_and_delta("e2e-kill");
    let big = "e2e-kill-big:1";
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nRUN /bin/busybox dd if=/dev/urandom of=/big bs=1048576 count=40 2>/dev/null\n"),
    )
    .unwrap();
    run(docker()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", big])
        .arg(ctx.path()));
    let dir = tempfile::tempdir().unwrap();
    let online = DdiffServer::start(&dir.path().join("online"), &[]);
    push(&base, &format!("{}/k/base:1", online.addr));
    push(big, &format!("{}/k/big:1", online.addr));
    let bundle = dir.path().join("big.ddiff");
    run(ddiff()
        .args([
            "diff",
            &format!("docker://{}/k/base:1", online.addr),
            &format!("docker://{}/k/big:1", online.addr),
            "-o",
        ])
        .arg(&bundle));
    // Kill after a little, about half, and most of the 40 MiB layer went up (1 MiB chunks).
    for (round, threshold) in [1u64 << 20, 20 << 20, 36 << 20].into_iter().enumerate() {
        let root = dir.path().join(format!("offline-{round}"));
        let dest = DdiffServer::start(&root, &[]);
        push(&base, &format!("{}/k/base:1", dest.addr));
        let mut child = ddiff()
            .args([
                "load",
                "--no-pull",
                "--jobs",
                "1",
                "--upload-chunk-mib",
                "1",
                "--quiet",
            ])
            .arg(&bundle)
            .args(["--to", &format!("docker://{}", dest.addr)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let killed = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            if bytes_in_uploads(&root) >= threshold {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                break true;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "load neither progressed nor finished"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        if killed {
            assert!(
                !tags(&dest.addr, "k/big").contains(&"1".to_string()),
                "round {round}: a tag points at an incomplete image"
            );
        } else {
            println!(
                "round {round}: the load finished before {threshold} bytes were seen in flight"
            );
        }
        // Re-run: completes, and the image is whole.
        run(ddiff()
            .args(["load", "--no-pull"])
            .arg(&bundle)
            .args(["--to", &format!("docker://{}", dest.addr)]));
        assert_eq!(tags(&dest.addr, "k/big"), vec!["1".to_string()]);
        if round == 2 {
            let image = format!("{}/k/big:1", dest.addr);
            run(docker().args(["pull", &image]).stdout(Stdio::null()));
            let out =
                run(docker().args(["run", "--rm", &image, "/bin/busybox", "wc", "-c", "/big"]));
            assert!(
                String::from_utf8_lossy(&out.stdout).starts_with("41943040"),
                "{out:?}"
            );
            let _ = docker().args(["rmi", "-f", &image]).output();
        }
    }
}
