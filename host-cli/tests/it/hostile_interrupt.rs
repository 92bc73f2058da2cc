//! Issue 7, guarantee 2: `ddiff load` killed (SIGKILL) at many points never leaves a tag on
//! an incomplete image, and the re-run completes — into `ddiff server` (kill points chosen by
//! bytes seen in upload sessions) and into an `oci:` layout (kill points in time).

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{ddiff_quiet, docker, push, require_peer, run, DdiffServer};
use crate::hostile_util::{bundle_from_engine, listing, Group};

const G2: &str = "2 interrupted load finishes when re-run";

/// A bundle carrying a 24 MiB random layer on top of a small base.
fn big_bundle(prefix: &str, dir: &Path) -> (std::path::PathBuf, String) {
    let base = format!("{prefix}-base:1");
    let big = format!("{prefix}-big:1");
    let bundle = dir.join("big.ddiff");
    bundle_from_engine(
        prefix,
        dir,
        "big",
        &["RUN /bin/busybox dd if=/dev/urandom of=/big bs=1048576 count=24 2>/dev/null"],
        &bundle,
    );
    let _ = docker().args(["rmi", &big]).output();
    (bundle, base)
}

fn uploads_bytes(root: &Path) -> u64 {
    fn walk(d: &Path, n: &mut u64) {
        for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if p.to_string_lossy().contains("/_uploads/") && p.ends_with("data") {
                *n += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    let mut n = 0;
    walk(root, &mut n);
    n
}

fn has_tag(addr: &str, repo: &str, tag: &str) -> bool {
    let o = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args([
            "-H",
            "Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
        ])
        .arg(format!("http://{addr}/v2/{repo}/manifests/{tag}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout) == "200"
}

#[test]
fn hostile_load_killed_at_many_points_into_ddiff_server() {
    if !require_peer("docker") {
        return;
    }
    let prefix = "hostile-kill";
    let dir = tempfile::tempdir().unwrap();
    let (bundle, base) = big_bundle(prefix, dir.path());
    let thresholds: Vec<u64> = (0..8).map(|k| (k * 3 + 1) << 20).collect();
    let mut g = Group::new(
        G2,
        format!(
            "ddiff server: SIGKILL at {} points (1..22 MiB of a 24 MiB layer uploaded), no tag before the re-run, re-run completes, image runs",
            thresholds.len()
        ),
    );
    let mut killed_n = 0;
    for (round, threshold) in thresholds.into_iter().enumerate() {
        let root = dir.path().join(format!("dest-{round}"));
        let dest = DdiffServer::start(&root, &[]);
        push(&base, &format!("{}/{prefix}/base:1", dest.addr));
        let mut child = ddiff_quiet()
            .args([
                "load",
                "--no-pull",
                "--jobs",
                "1",
                "--upload-chunk-mib",
                "1",
            ])
            .arg(&bundle)
            .args(["--to", &format!("docker://{}", dest.addr)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let killed = loop {
            if child.try_wait().unwrap().is_some() {
                break false;
            }
            if uploads_bytes(&root) >= threshold {
                child.kill().unwrap();
                child.wait().unwrap();
                break true;
            }
            assert!(
                Instant::now() < deadline,
                "load neither progressed nor finished"
            );
            std::thread::sleep(Duration::from_millis(2));
        };
        killed_n += usize::from(killed);
        if killed {
            g.check(!has_tag(&dest.addr, &format!("{prefix}/big"), "1"), || {
                format!("killed at {threshold} bytes: a tag on an incomplete image")
            });
        }
        let out = ddiff_quiet()
            .args(["load", "--no-pull"])
            .arg(&bundle)
            .args(["--to", &format!("docker://{}", dest.addr)])
            .output()
            .unwrap();
        g.check(out.status.success(), || {
            format!(
                "re-run after a kill at {threshold}: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        g.check(has_tag(&dest.addr, &format!("{prefix}/big"), "1"), || {
            format!("re-run after a kill at {threshold}: no tag")
        });
        if round == 3 {
            let image = format!("{}/{prefix}/big:1", dest.addr);
            run(docker().args(["pull", "-q", &image]));
            let out = run(docker().args([
                "run",
                "--rm",
                "--network",
                "none",
                &image,
                "/bin/busybox",
                "wc",
                "-c",
                "/big",
            ]));
            g.check(
                String::from_utf8_lossy(&out.stdout).starts_with("25165824"),
                || format!("the image does not run right: {out:?}"),
            );
            let _ = docker().args(["rmi", "-f", &image]).output();
        }
    }
    println!("ddiff server: {killed_n} of 8 loads were killed before finishing");
    let f = g.finish();
    assert!(f.is_empty(), "{f:#?}");
}

/// The moments at which the layout and archive loads are killed.
const KILL_DELAYS_MS: [u64; 8] = [5, 20, 40, 80, 120, 200, 300, 500];

/// Copies the engine's `base` image to `dest` (an `oci:` or `oci-archive:` reference).
fn base_from_engine(base: &str, dest: &str) {
    let host = std::env::var("DDIFF_TEST_DOCKER_HOST").unwrap();
    run(crate::common::skopeo()
        .args(["copy", "--quiet", "--src-daemon-host", &host])
        .arg(format!("docker-daemon:{base}"))
        .arg(dest));
}

/// Starts `ddiff load BUNDLE --to DEST` and SIGKILLs it after `ms`; whether it was still
/// running (a kill that landed before it finished).
fn load_killed_after(bundle: &Path, dest: &str, ms: u64) -> bool {
    let mut child = ddiff_quiet()
        .args(["load"])
        .arg(bundle)
        .args(["--to", dest])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(ms));
    let killed = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    killed
}

/// `ddiff load BUNDLE --to DEST`, run to the end.
fn load_to(bundle: &Path, dest: &str) -> std::process::Output {
    ddiff_quiet()
        .args(["load"])
        .arg(bundle)
        .args(["--to", dest])
        .output()
        .unwrap()
}

#[test]
fn hostile_load_killed_at_many_points_into_an_oci_layout() {
    if !require_peer("docker") || !require_peer("skopeo") {
        return;
    }
    let prefix = "hostile-kill-oci";
    let dir = tempfile::tempdir().unwrap();
    let (bundle, base) = big_bundle(prefix, dir.path());
    let delays = KILL_DELAYS_MS;
    let mut g = Group::new(
        G2,
        format!(
            "oci layout: SIGKILL at {} moments (5..500 ms), index.json never names an incomplete target, re-run completes, every blob verifies",
            delays.len()
        ),
    );
    let mut killed_n = 0;
    for ms in delays {
        let layout = dir.path().join(format!("layout-{ms}"));
        let dest = format!("oci:{}", layout.display());
        base_from_engine(&base, &format!("{dest}:base"));
        let killed = load_killed_after(&bundle, &dest, ms);
        killed_n += usize::from(killed);
        // A tag on an incomplete image is the failure; a kill that lands after the final
        // index.json rename (the load had finished its work) leaves a complete image, named.
        if killed {
            if let Some(complete) = target_in_layout(&layout) {
                let index = std::fs::read_to_string(layout.join("index.json")).unwrap();
                g.check(complete, || {
                    format!("killed at {ms} ms: index.json names an incomplete target: {index}")
                });
            }
        }
        let out = load_to(&bundle, &dest);
        g.check(out.status.success(), || {
            format!(
                "re-run after {ms} ms: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let bad: Vec<String> = listing(&layout)
            .into_iter()
            .filter(|(p, sha)| {
                p.starts_with("blobs/sha256/")
                    && !p.ends_with('/')
                    && *sha != format!("sha256:{}", &p[13..])
            })
            .map(|(p, _)| p)
            .collect();
        g.check(bad.is_empty(), || {
            format!("after {ms} ms: blobs with wrong bytes or temp files: {bad:?}")
        });
        // The target is in index.json and its manifest's blobs are all there, checked
        // directly (a completeness check skopeo does not make).
        let complete = target_in_layout(&layout) == Some(true);
        g.check(complete, || {
            format!("after {ms} ms: the loaded image is not complete in the layout")
        });
    }
    println!(
        "oci layout: {killed_n} of {} loads were killed before finishing",
        delays.len()
    );
    let f = g.finish();
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn hostile_load_killed_at_many_points_into_an_oci_archive() {
    if !require_peer("docker") || !require_peer("skopeo") {
        return;
    }
    let prefix = "hostile-kill-ocia";
    let dir = tempfile::tempdir().unwrap();
    let (bundle, base) = big_bundle(prefix, dir.path());
    let delays = KILL_DELAYS_MS;
    let mut g = Group::new(
        G2,
        format!(
            "oci-archive: SIGKILL at {} moments (5..500 ms), the archive is untouched or complete, re-run completes, skopeo reads it, no temp file stays",
            delays.len()
        ),
    );
    let sites = dir.path().join("sites");
    std::fs::create_dir_all(&sites).unwrap();
    let mut killed_n = 0;
    for ms in delays {
        let archive = sites.join(format!("site-{ms}.tar"));
        let dest = format!("oci-archive:{}", archive.display());
        base_from_engine(&base, &format!("{dest}:base"));
        let before = std::fs::read(&archive).unwrap();
        let killed = load_killed_after(&bundle, &dest, ms);
        killed_n += usize::from(killed);
        let target = format!("{dest}:1");
        // Ok(()) when `ddiff inspect` verifies the target, else its error.
        let inspect = || -> Result<(), String> {
            let o = ddiff_quiet()
                .args(["inspect", &target])
                .output()
                .map_err(|e| e.to_string())?;
            if o.status.success() {
                Ok(())
            } else {
                Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
            }
        };
        if killed {
            // Either the rename had not happened (the old file, byte for byte) or it had
            // (a complete archive that names the target).
            let untouched = std::fs::read(&archive).unwrap() == before;
            g.check(untouched || inspect().is_ok(), || {
                format!(
                    "killed at {ms} ms: the archive changed but does not hold a complete target"
                )
            });
        }
        let out = load_to(&bundle, &dest);
        g.check(out.status.success(), || {
            format!(
                "re-run after {ms} ms: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let verified = inspect();
        g.check(verified.is_ok(), || {
            format!("after {ms} ms: ddiff inspect {target}: {verified:?}")
        });
        let sk = crate::common::skopeo()
            .args(["inspect", "--raw", &target])
            .output()
            .unwrap();
        g.check(sk.status.success(), || {
            format!(
                "after {ms} ms: skopeo cannot read {target}: {}",
                String::from_utf8_lossy(&sk.stderr)
            )
        });
        let temps: Vec<String> = std::fs::read_dir(&sites)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(".ddiff-"))
            .collect();
        g.check(temps.is_empty(), || {
            format!("after {ms} ms and a re-run: temporary files stay: {temps:?}")
        });
    }
    println!(
        "oci-archive: {killed_n} of {} loads were killed before finishing",
        delays.len()
    );
    let f = g.finish();
    assert!(f.is_empty(), "{f:#?}");
}

/// `None` when the layout's index.json does not name the target (anything but `base`);
/// otherwise whether its manifest, config and layers are all present with the right bytes.
fn target_in_layout(layout: &std::path::Path) -> Option<bool> {
    let idx: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).ok()?).ok()?;
    let entry = idx["manifests"]
        .as_array()?
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] != "base")?
        .clone();
    let blob_ok = |digest: &str| {
        let hex = digest.trim_start_matches("sha256:");
        std::fs::read(layout.join("blobs/sha256").join(hex))
            .map(|b| ddiff_core::Digest::sha256(&b).to_string() == digest)
            .unwrap_or(false)
    };
    let d = entry["digest"].as_str()?;
    if !blob_ok(d) {
        return Some(false);
    }
    let m: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(d.trim_start_matches("sha256:")),
        )
        .ok()?,
    )
    .ok()?;
    let all = std::iter::once(&m["config"])
        .chain(m["layers"].as_array()?.iter())
        .all(|b| b["digest"].as_str().is_some_and(blob_ok));
    Some(all)
}
