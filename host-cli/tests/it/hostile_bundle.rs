//! Issue 7, guarantee 1: a damaged or crafted bundle is refused by `ddiff load`, with one
//! error line naming what and where, and the destination is byte for byte as before —
//! for `ddiff server`, Debian's `docker-registry`, the Docker engine and an `oci:` layout.
//! Every variant is made in memory from a real good bundle; the same good bundle loads at
//! the end of each test (so the listing comparison can see a change).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{
    ddiff_quiet, docker, push, require_peer, run, skopeo, stderr, tar_of, top_level, DdiffServer,
    RefRegistry,
};
use crate::hostile_util::{
    diff_listing, entries, files, good_bundle, listing, special_header, with_extra, GoodBundle,
    Group,
};

const G1: &str = "1 damaged or crafted bundle refused, destination unchanged";

/// A damaged variant: group (a table row), name, bytes, what the error must say.
struct Case {
    group: &'static str,
    name: String,
    bytes: Vec<u8>,
    needles: Vec<String>,
    /// `.tar.gz` (the original tool's format) rather than `.ddiff`.
    gz: bool,
}

fn case(group: &'static str, name: impl Into<String>, bytes: Vec<u8>, needles: &[&str]) -> Case {
    Case {
        group,
        name: name.into(),
        bytes,
        needles: needles.iter().map(|s| s.to_string()).collect(),
        gz: false,
    }
}

/// Every variant of the good bundle that issue 7 lists.
fn cases(good: &GoodBundle) -> Vec<Case> {
    let b = &good.bytes;
    let (ents, end) = entries(b);
    let meta: serde_json::Value = serde_json::from_slice(&files(b)[0].1).unwrap();
    let blobs = meta["blobs"].as_array().unwrap();
    assert!(blobs.len() >= 4, "manifest, config and two layers: {meta}");
    let mut out = Vec::new();
    // Truncated at every tar boundary (each header, each data start, the end marker and
    // its second block) and in the middle of every entry.
    let mut cuts = Vec::new();
    for e in &ents {
        cuts.push((format!("header of {}", e.path), e.header));
        cuts.push((format!("data of {}", e.path), e.data));
    }
    cuts.push(("end marker".into(), end));
    cuts.push(("second end block".into(), end + 512));
    for (name, at) in cuts.into_iter().filter(|(_, at)| *at > 0) {
        out.push(case(
            "truncated at every tar boundary",
            name,
            b[..at].to_vec(),
            &["truncated", "end marker"],
        ));
    }
    for e in &ents {
        out.push(case(
            "truncated mid-entry (metadata, layout, index, each blob)",
            format!("middle of {}", e.path),
            b[..e.data + e.size / 2].to_vec(),
            &["truncated"],
        ));
    }
    // One flipped byte in the metadata, index.json, the manifest, the config, each layer.
    for (i, e) in ents.iter().enumerate() {
        let mut bad = b.clone();
        bad[e.data + e.size / 2] ^= 0x01;
        let (what, needle) = match i {
            0 => ("ddiff.json".to_string(), String::new()),
            1 => ("oci-layout".into(), String::new()),
            2 => ("index.json".into(), String::new()),
            _ => {
                let bl = &blobs[i - 3];
                (
                    format!("{} {}", bl["kind"].as_str().unwrap(), &e.path[13..25]),
                    format!("corrupt blob {}", bl["digest"].as_str().unwrap()),
                )
            }
        };
        let needles: Vec<&str> = if needle.is_empty() {
            vec!["not intact"]
        } else {
            vec![needle.as_str()]
        };
        out.push(case(
            "one flipped byte (metadata, layout, index, manifest, config, each layer)",
            format!("flip in {what}"),
            bad,
            &needles,
        ));
    }
    // A tar header with a flipped byte (checksum).
    let mut bad = b.clone();
    bad[ents[4].header + 3] ^= 0x01;
    out.push(case(
        "one flipped byte (metadata, layout, index, manifest, config, each layer)",
        "flip in a blob's tar header",
        bad,
        &["checksum"],
    ));
    // The last layer swapped for other bytes of exactly its size.
    let last = ents.last().unwrap();
    let mut bad = b.clone();
    for (k, x) in bad[last.data..last.data + last.size].iter_mut().enumerate() {
        *x = (k as u8).wrapping_mul(31) ^ 0x5c;
    }
    let last_digest = blobs.last().unwrap()["digest"].as_str().unwrap();
    out.push(case(
        "a blob swapped for another of the same size",
        "last layer",
        bad,
        &[&format!("corrupt blob {last_digest}")],
    ));
    // Metadata claiming another base: the diff_id of a relied-on layer (and the base's
    // diffIds) changed; and the relied-on list emptied, so a manifest references a blob
    // that is neither carried nor relied on.
    // Self-consistent edits: index.json is re-written for the new ddiff.json, as a crafter
    // would do, so that the check under test is the one that speaks.
    let edit_meta = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut fs = files(b);
        let mut m: serde_json::Value = serde_json::from_slice(&fs[0].1).unwrap();
        f(&mut m);
        fs[0].1 = serde_json::to_vec_pretty(&m).unwrap();
        let typed: ddiff_core::bundle::BundleMeta = serde_json::from_slice(&fs[0].1).unwrap();
        fs[2].1 = typed.oci_index_json(&fs[0].1);
        tar_of(&fs)
    };
    // Issue 15, item 1: one flipped bit in a target's name, in ddiff.json or in index.json,
    // once loaded the image under another name.
    let target_ref = meta["targets"][0]["reference"]
        .as_str()
        .unwrap()
        .to_string();
    let repo_start = target_ref.rfind('/').map_or(0, |i| i + 1);
    for (doc, needle) in [
        (0usize, "ddiff.json was altered"),
        (2, "invalid index.json"),
    ] {
        let mut fs = files(b);
        let text = String::from_utf8(fs[doc].1.clone()).unwrap();
        let at = text.find(&target_ref).unwrap() + repo_start;
        fs[doc].1[at] ^= 0x10; // app -> qpp
        out.push(case(
            "one flipped bit in a target's name (ddiff.json, index.json)",
            format!("{} -> {}", target_ref, {
                let mut r = target_ref.clone().into_bytes();
                r[repo_start] ^= 0x10;
                String::from_utf8(r).unwrap()
            }),
            tar_of(&fs),
            &[needle],
        ));
    }
    // Issue 15, items 2 and 6: names a loader would refuse, in a self-consistent bundle.
    let upper = {
        let mut r = target_ref.clone();
        r.replace_range(
            repo_start..repo_start + 1,
            &target_ref[repo_start..repo_start + 1].to_uppercase(),
        );
        r
    };
    let pinned = format!(
        "{}@sha256:{}",
        &target_ref[..target_ref.rfind(':').unwrap()],
        "0".repeat(64)
    );
    // Issue 15, item 7: a target named like the base would move the base's tag.
    let base_name = format!("{}/base:1", &target_ref[..target_ref.rfind('/').unwrap()]);
    for (name, reference, needle) in [
        ("uppercase repository", upper, "must be lowercase"),
        ("pinned to another digest", pinned, "pins sha256:0000"),
        (
            "named like the base",
            base_name,
            "names the base this bundle relies on",
        ),
    ] {
        out.push(case(
            "a target name the destination would refuse (uppercase, pinned to another digest, the base's)",
            name,
            edit_meta(&|m| m["targets"][0]["reference"] = reference.clone().into()),
            &[needle],
        ));
    }
    let other = ddiff_core::Digest::sha256(b"another base").to_string();
    out.push(case(
        "metadata claims another base",
        "relied layer's diff_id",
        edit_meta(&|m| {
            let n = m["relied"].as_array().unwrap().len();
            m["relied"][n - 1]["diffId"] = other.clone().into();
            if let Some(ids) = m["base"]["diffIds"].as_array_mut() {
                let k = ids.len();
                ids[k - 1] = other.clone().into();
            }
        }),
        &["diff_id"],
    ));
    out.push(case(
        "manifest references a blob neither carried nor relied on",
        "relied list emptied",
        edit_meta(&|m| m["relied"] = serde_json::json!([])),
        &["neither carries"],
    ));
    // Issue 15, item 3: configs and manifests are buffered for cross-checks; a bundle that
    // declares more of them than the budget is refused from its metadata, before any read.
    out.push(case(
        "more manifests and configs than a reader buffers (64 MiB)",
        "five 15 MiB configs declared",
        edit_meta(&|m| {
            let blobs = m["blobs"].as_array_mut().unwrap();
            for i in 0..5 {
                let d = ddiff_core::Digest::sha256(format!("cfg{i}").as_bytes());
                blobs.insert(
                    0,
                    serde_json::json!({
                        "digest": d.to_string(),
                        "size": 15 * 1024 * 1024,
                        "mediaType": "application/vnd.oci.image.config.v1+json",
                        "kind": "config",
                    }),
                );
            }
        }),
        &["over the 67108864-byte limit"],
    ));
    // Crafted entries, inserted after the last blob (everything before them verified).
    let file = |p: &str| {
        let mut v = Vec::new();
        ddiff_core::tar::write_file(&mut v, p, b"x", 0o644, 0);
        v
    };
    for p in ["../x", "/etc/x", "a/../../x"] {
        out.push(case(
            "crafted entry names ../x, /etc/x, a/../../x",
            p,
            with_extra(b, &file(p)),
            &["unsafe path"],
        ));
    }
    // The same as the very first entry, before the metadata.
    let mut first = file("../x");
    first.extend_from_slice(b);
    out.push(case(
        "crafted entry names ../x, /etc/x, a/../../x",
        "../x as the first entry",
        first,
        &["unsafe path"],
    ));
    for (name, flag, link, needle) in [
        ("symlink to /etc/passwd", b'2', "/etc/passwd", "Symlink"),
        ("hard link to /etc/passwd", b'1', "/etc/passwd", "HardLink"),
        ("character device", b'3', "", "Device"),
        ("block device", b'4', "", "Device"),
        ("FIFO", b'6', "", "forbidden"),
        ("directory", b'5', "", "forbidden"),
    ] {
        out.push(case(
            "symlinks, hard links, devices, other types",
            name,
            with_extra(b, &special_header("blobs/sha256/x", flag, link)),
            &[needle],
        ));
    }
    out.push(case(
        "duplicate entry name",
        "index.json twice",
        with_extra(b, &file("index.json")),
        &["duplicate entry"],
    ));
    let dup_blob = &ents[3];
    out.push(case(
        "duplicate entry name",
        "a blob twice",
        with_extra(
            b,
            &b[dup_blob.header..dup_blob.data + dup_blob.size.div_ceil(512) * 512],
        ),
        &["duplicate entry"],
    ));
    // A header claiming a 1 EB size, in place of the first layer's.
    let mut bad = b[..ents[5].header].to_vec();
    ddiff_core::tar::write_header(&mut bad, &ents[5].path, 1u64 << 60, 0o644, 0);
    bad.extend_from_slice(&b[ents[5].data..]);
    out.push(case(
        "a header claiming a 1 EB size",
        "first layer",
        bad,
        &["1152921504606846976"],
    ));
    // Gzip bombs in the original tool's `.tar.gz` format.
    let mut bomb = case(
        "gzip bomb (original .tar.gz format)",
        "one 64 MiB blob of zeros in a 70 KB file",
        zero_bomb(64),
        &["corrupt blob", "not intact"],
    );
    bomb.gz = true;
    out.push(bomb);
    let mut bomb = case(
        "gzip bomb (original .tar.gz format)",
        "24 valid 4 MiB JSON-looking blobs in a 0.1 MB file",
        many_blobs_bomb(24),
        &["not intact"],
    );
    bomb.gz = true;
    out.push(bomb);
    out
}

/// Raw deflate of `data` ending in a full flush: independent of what came before or after,
/// so segments concatenate into one valid stream.
fn deflate_segment(data: &[u8]) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::fast(), false);
    let mut out = Vec::with_capacity(data.len() / 100 + 1024);
    let mut input = data;
    loop {
        out.reserve(64 * 1024);
        let before_in = c.total_in();
        c.compress_vec(input, &mut out, flate2::FlushCompress::Full)
            .unwrap();
        input = &input[(c.total_in() - before_in) as usize..];
        if input.is_empty() && out.capacity() > out.len() {
            return out;
        }
    }
}

fn gzip_of_segments(segments: impl Iterator<Item = Vec<u8>>) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    for s in segments {
        out.extend_from_slice(&s);
    }
    // A final empty block, then a trailer that is wrong on purpose: the bomb must be refused
    // for what it contains, long before the end.
    let mut c = flate2::Compress::new(flate2::Compression::fast(), false);
    let mut tail = Vec::with_capacity(64);
    c.compress_vec(&[], &mut tail, flate2::FlushCompress::Finish)
        .unwrap();
    out.extend_from_slice(&tail);
    out.extend_from_slice(&[0; 8]);
    out
}

/// A `.tar.gz` whose only entry claims to be a blob and is `mib` MiB of zeros.
fn zero_bomb(mib: usize) -> Vec<u8> {
    let digest = ddiff_core::Digest::sha256(b"not these bytes");
    let mut first = Vec::new();
    ddiff_core::tar::write_header(
        &mut first,
        &format!(".ddiff-image/blobs/{digest}.tar"),
        (mib as u64) << 20,
        0o644,
        0,
    );
    first.resize(512 + (1 << 20), 0);
    let zeros = deflate_segment(&vec![0u8; 1 << 20]);
    gzip_of_segments(
        std::iter::once(deflate_segment(&first)).chain((1..mib).map(|_| zeros.clone())),
    )
}

/// A `.tar.gz` of `n` distinct, correctly named 4 MiB blobs (mostly zeros).
fn many_blobs_bomb(n: usize) -> Vec<u8> {
    let zeros = deflate_segment(&vec![0u8; 1 << 20]);
    let zero_mib = vec![0u8; 1 << 20];
    let mut segs = Vec::new();
    for i in 0..n {
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        let mut head = vec![0u8; 1 << 20];
        head[0] = b'{';
        head[1..9].copy_from_slice(&(i as u64).to_le_bytes());
        ctx.update(&head);
        for _ in 0..3 {
            ctx.update(&zero_mib);
        }
        let d = ddiff_core::Digest::from_raw(ddiff_core::Algorithm::Sha256, ctx.finish().as_ref())
            .unwrap();
        let mut first = Vec::new();
        ddiff_core::tar::write_header(
            &mut first,
            &format!(".ddiff-image/blobs/{d}.tar"),
            4 << 20,
            0o644,
            0,
        );
        first.extend_from_slice(&head);
        segs.push(deflate_segment(&first));
        segs.extend((0..3).map(|_| zeros.clone()));
    }
    gzip_of_segments(segs.into_iter())
}

/// Peak resident memory of a running child, polled (Linux `VmRSS`, KiB).
fn wait_with_peak_rss(mut child: std::process::Child) -> (std::process::Output, u64) {
    let pid = child.id();
    let mut peak = 0u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut stderr_pipe = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        std::io::Read::read_to_end(&mut stderr_pipe, &mut s).unwrap();
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            for l in s.lines() {
                if let Some(v) = l.strip_prefix("VmRSS:") {
                    let kib: u64 = v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0);
                    peak = peak.max(kib);
                }
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let err = reader.join().unwrap();
    (
        std::process::Output {
            status,
            stdout: Vec::new(),
            stderr: err,
        },
        peak,
    )
}

/// The destination under test: how to name it to `--to`, and how to list it.
struct Target<'a> {
    kind: &'a str,
    to: String,
    list: Box<dyn Fn() -> Vec<(String, String)> + 'a>,
}

/// Runs every case against one destination. `dir` is the test's scratch dir; nothing may
/// appear in it (or in a fresh working directory) but the case files.
fn matrix(t: &Target<'_>, good: &GoodBundle, dir: &Path) -> Vec<String> {
    let work = dir.join("cwd");
    std::fs::create_dir_all(&work).unwrap();
    let top_before = top_level(dir);
    let before = (t.list)();
    assert!(
        !before.is_empty(),
        "{}: the destination lists nothing",
        t.kind
    );
    let mut groups: Vec<Group> = Vec::new();
    let mut max_rss = 0;
    for c in cases(good) {
        let file: PathBuf = dir.join(if c.gz { "case.tar.gz" } else { "case.ddiff" });
        std::fs::write(&file, &c.bytes).unwrap();
        let child = ddiff_quiet()
            .args(["load", "--no-pull"])
            .arg(&file)
            .args(["--to", &t.to])
            .current_dir(&work)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let (out, rss) = wait_with_peak_rss(child);
        max_rss = max_rss.max(rss);
        let err = stderr(&out);
        let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
        let fname = file.file_name().unwrap().to_str().unwrap();
        let g = match groups.iter_mut().find(|g| g.case.ends_with(c.group)) {
            Some(g) => g,
            None => {
                groups.push(Group::new(G1, format!("{}: {}", t.kind, c.group)));
                groups.last_mut().unwrap()
            }
        };
        let name = &c.name;
        g.check(!out.status.success(), || format!("{name}: load succeeded"));
        g.check(
            lines.len() == 1 && lines[0].starts_with("ddiff: error:"),
            || format!("{name}: not one error line: {err:?}"),
        );
        g.check(
            c.needles.iter().any(|n| err.contains(n.as_str())) && err.contains(fname),
            || {
                format!(
                    "{name}: error lacks {:?} or the file name: {err:?}",
                    c.needles
                )
            },
        );
        if c.gz {
            g.check(rss < 96 * 1024, || {
                format!("{name}: peak RSS {} MiB (limit 96)", rss / 1024)
            });
        }
        let after = (t.list)();
        g.check(after == before, || {
            format!(
                "{name}: destination changed: {}",
                diff_listing(&before, &after)
            )
        });
        std::fs::remove_file(&file).unwrap();
        g.check(
            top_level(dir) == top_before && top_level(&work).is_empty(),
            || format!("{name}: files appeared outside the destination"),
        );
        g.check(!Path::new("/etc/x").exists(), || {
            format!("{name}: /etc/x exists")
        });
    }
    println!(
        "{}: peak RSS of ddiff load over all cases: {} MiB",
        t.kind,
        max_rss / 1024
    );
    let mut failures = Vec::new();
    for g in groups {
        failures.extend(g.finish());
    }
    // The good bundle loads and the listing sees it: the comparison above could fail.
    let out = ddiff_quiet()
        .args(["load", "--no-pull"])
        .arg(&good.path)
        .args(["--to", &t.to])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: the good bundle does not load: {}",
        t.kind,
        stderr(&out)
    );
    assert_ne!(
        (t.list)(),
        before,
        "{}: the listing misses a real load",
        t.kind
    );
    failures
}

/// Case "relied on but absent at the destination": the good bundle into a destination that
/// holds something else but not the base. Returns whether it held.
fn missing_base(t: &Target<'_>, good: &GoodBundle) -> Vec<String> {
    let mut g = Group::new(
        G1,
        format!(
            "{}: manifest references a blob neither carried nor at the destination",
            t.kind
        ),
    );
    let before = (t.list)();
    let out = ddiff_quiet()
        .args(["load", "--no-pull"])
        .arg(&good.path)
        .args(["--to", &t.to])
        .output()
        .unwrap();
    let err = stderr(&out);
    g.check(!out.status.success(), || "load succeeded".into());
    g.check(
        err.trim().lines().count() == 1 && (err.contains("lacks") || err.contains("nothing was")),
        || format!("error does not say the base is missing: {err:?}"),
    );
    let after = (t.list)();
    g.check(after == before, || diff_listing(&before, &after));
    g.finish()
}

fn registry(kind: &str) {
    if !require_peer("docker") || (kind == "docker-registry" && !require_peer("docker-registry")) {
        return;
    }
    let prefix = format!("hostile-{}", kind.replace(' ', "-"));
    let dir = tempfile::tempdir().unwrap();
    let good = good_bundle(&prefix, dir.path());
    let root = dir.path().join("dest");
    std::fs::create_dir_all(&root).unwrap();
    let (addr, _guard): (String, Box<dyn std::any::Any>) = if kind == "ddiff server" {
        let s = DdiffServer::start(&root, &[]);
        (s.addr.clone(), Box::new(s))
    } else {
        let r = RefRegistry::start(&root);
        (r.addr.clone(), Box::new(r))
    };
    // Something unrelated is there first; it must stay exactly as it is.
    push("ddiff-test/bb:base", &format!("{addr}/other/thing:1"));
    let t = Target {
        kind,
        to: format!("docker://{addr}"),
        list: Box::new(|| listing(&root)),
    };
    let mut failures = missing_base(&t, &good);
    push(&good.base, &format!("{addr}/{prefix}/base:1"));
    failures.extend(matrix(&t, &good, &dir.path().join("cases")));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn hostile_bundles_into_ddiff_server() {
    registry("ddiff server");
}

#[test]
fn hostile_bundles_into_docker_registry() {
    registry("docker-registry");
}

#[test]
fn hostile_bundles_into_an_oci_layout() {
    if !require_peer("docker") || !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = good_bundle("hostile-oci", dir.path());
    let layout = dir.path().join("layout");
    let host = std::env::var("DDIFF_TEST_DOCKER_HOST").unwrap();
    let copy = |src: &str, tag: &str| {
        run(skopeo()
            .args(["copy", "--quiet", "--src-daemon-host", &host])
            .arg(format!("docker-daemon:{src}"))
            .arg(format!("oci:{}:{tag}", layout.display())));
    };
    copy("ddiff-test/bb:base", "other");
    let t = Target {
        kind: "oci layout",
        to: format!("oci:{}", layout.display()),
        list: Box::new(|| listing(&layout)),
    };
    let mut failures = missing_base(&t, &good);
    copy(&good.base, "base");
    failures.extend(matrix(&t, &good, &dir.path().join("cases")));
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn hostile_bundles_into_the_docker_engine() {
    if !require_peer("docker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let prefix = "hostile-engine";
    let good = good_bundle(prefix, dir.path());
    // What this test may see change: images named after it, and the target's image id.
    let image_id = good.image_id.clone();
    let list = move || -> Vec<(String, String)> {
        let o = run(docker().args([
            "image",
            "ls",
            "-a",
            "--no-trunc",
            "--format",
            "{{.Repository}}:{{.Tag}}|{{.ID}}",
        ]));
        let mut v: Vec<(String, String)> = String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter_map(|l| l.split_once('|'))
            .filter(|(name, id)| name.contains(prefix) || *id == image_id)
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        v.sort();
        v
    };
    // The engine without the base: save it, remove it and the target, load it back after.
    let saved = dir.path().join("base.tar");
    run(docker().args(["save", "-o"]).arg(&saved).arg(&good.base));
    run(docker().args(["rmi", &good.delta, &good.base]));
    let t = Target {
        kind: "docker engine",
        to: "docker-daemon:".into(),
        list: Box::new(list),
    };
    run(docker().args(["tag", "ddiff-test/bb:base", &format!("{prefix}-other:1")]));
    let mut failures = missing_base(&t, &good);
    run(docker().args(["load", "-q", "-i"]).arg(&saved));
    std::fs::remove_file(&saved).unwrap();
    failures.extend(matrix(&t, &good, &dir.path().join("cases")));
    let _ = docker()
        .args(["rmi", "-f", &good.image_id, &format!("{prefix}-other:1")])
        .output();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Issue 15, item 1: one flipped bit in `ddiff.json` once loaded an image under another name.
/// Every bit of both metadata documents of a real bundle (made from engine images through a
/// registry) is flipped in turn; each variant is decoded by the same core verifier `verify`
/// and every `load` run first (in process: thousands of variants), and must be refused.
#[test]
fn every_bit_of_the_metadata_matters() {
    if !require_peer("docker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = good_bundle("hostile-bits", dir.path());
    let fs = files(&good.bytes);
    let decode = |bytes: &[u8]| -> Result<(), ddiff_core::bundle::BundleError> {
        let mut d = ddiff_core::bundle::Decoder::new();
        let mut p = bytes;
        loop {
            let (n, ev) = d.decode(p)?;
            p = &p[n..];
            if ev.is_none() {
                break;
            }
        }
        d.finish()
    };
    assert!(decode(&good.bytes).is_ok());
    let mut g = Group::new(
        "1 damaged or crafted bundle refused, destination unchanged",
        "verifier: every single-bit flip of ddiff.json and index.json (no inert bit)",
    );
    for doc in [0usize, 2] {
        for byte in 0..fs[doc].1.len() {
            for bit in 0..8 {
                let mut v = fs.clone();
                v[doc].1[byte] ^= 1 << bit;
                let ok = decode(&tar_of(&v)).is_err();
                g.check(ok, || {
                    format!(
                        "{}: bit {bit} of byte {byte} flipped, still accepted",
                        fs[doc].0
                    )
                });
            }
        }
    }
    let failures = g.finish();
    assert!(failures.is_empty(), "{failures:#?}");
}
