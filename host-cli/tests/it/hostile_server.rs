//! Issue 7, guarantees 3–5 against `ddiff server` (the built binary on real sockets):
//! kill -9 during uploads and during gc never makes it serve a wrong byte; 64 clients for a
//! bounded time with flat memory; with `--htpasswd`, nobody gets in without credentials and
//! path tricks in names go nowhere.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use ddiff_core::{synth, Digest, MediaType};
use serde_json::json;

use crate::common::{ddiff, top_level, DdiffServer};
use crate::hostile_util::{listing, Group};

/// A small image: a config and one layer of `n` bytes made from `seed`, its manifest.
fn image(seed: u64, n: usize) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let layer: Vec<u8> = (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&layer).to_string()]},
    }))
    .unwrap();
    let manifest = synth::manifest(
        &MediaType::OciManifest,
        &config,
        &[synth::plain_layer(&layer, "")],
    );
    (config, layer, manifest.bytes().to_vec())
}

/// Pushes an image (chunked upload of each blob, then the manifest under `tag`).
async fn push(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
    img: &(Vec<u8>, Vec<u8>, Vec<u8>),
) -> Result<(), String> {
    for blob in [&img.0, &img.1] {
        let d = Digest::sha256(blob);
        let r = c
            .post(format!("{base}/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let loc = r
            .headers()
            .get("location")
            .ok_or(format!("POST: {}", r.status()))?
            .to_str()
            .unwrap()
            .to_owned();
        let r = c
            .patch(format!("{base}{loc}"))
            .body(blob.clone())
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 202 {
            return Err(format!("PATCH: {}", r.status()));
        }
        let r = c
            .put(format!("{base}{loc}?digest={d}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 201 {
            return Err(format!("PUT blob: {}", r.status()));
        }
    }
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(img.2.clone())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 201 {
        return Err(format!("PUT manifest: {}", r.status()));
    }
    Ok(())
}

/// Pulls `repo:tag` and checks every byte against its digest.
async fn pull_checked(
    c: &reqwest::Client,
    base: &str,
    repo: &str,
    tag: &str,
) -> Result<(), String> {
    let r = c
        .get(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if r.status() != 200 {
        return Err(format!("manifest {repo}:{tag}: {}", r.status()));
    }
    let m = r.bytes().await.map_err(|e| e.to_string())?;
    let v: serde_json::Value = serde_json::from_slice(&m).map_err(|e| e.to_string())?;
    let mut ds = vec![v["config"]["digest"].as_str().unwrap_or("").to_string()];
    for l in v["layers"].as_array().into_iter().flatten() {
        ds.push(l["digest"].as_str().unwrap_or("").to_string());
    }
    for d in ds {
        let r = c
            .get(format!("{base}/v2/{repo}/blobs/{d}"))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if r.status() != 200 {
            return Err(format!("blob {d} of {repo}:{tag}: {}", r.status()));
        }
        let got = r.bytes().await.map_err(|e| e.to_string())?;
        if Digest::sha256(&got).to_string() != d {
            return Err(format!("blob {d} of {repo}:{tag}: WRONG BYTES"));
        }
    }
    Ok(())
}

/// Every stored blob's content hashes to the digest in its path (what the server serves).
fn fsck(root: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for (p, sha) in listing(root) {
        if let Some(rest) = p.strip_prefix("docker/registry/v2/blobs/sha256/") {
            if let Some(hex) = rest.strip_suffix("/data") {
                let hex = hex.rsplit('/').next().unwrap();
                if sha != format!("sha256:{hex}") {
                    bad.push(p);
                }
            }
        }
    }
    bad
}

/// All tags in the registry, as (repo, tag).
async fn all_tags(c: &reqwest::Client, base: &str) -> Vec<(String, String)> {
    let cat: serde_json::Value = c
        .get(format!("{base}/v2/_catalog?n=10000"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut out = Vec::new();
    for r in cat["repositories"].as_array().unwrap() {
        let r = r.as_str().unwrap();
        let t: serde_json::Value = c
            .get(format!("{base}/v2/{r}/tags/list"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for tag in t["tags"].as_array().into_iter().flatten() {
            out.push((r.to_string(), tag.as_str().unwrap().to_string()));
        }
    }
    out
}

#[test]
fn hostile_kill_9_during_uploads_and_gc_never_serves_a_wrong_byte() {
    const G3: &str = "3 registry never serves a wrong byte after kill -9";
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let c = reqwest::Client::new();
    let mut up = Group::new(
        G3,
        "ddiff server: kill -9 during 8 concurrent pushes, restart, fsck + pull every tag",
    );
    let mut pushed = 0usize;
    for round in 0..6u64 {
        let mut server = DdiffServer::start(&root, &[]);
        let base = server.url("");
        let kill_after = Duration::from_millis(30 + round * 70);
        rt.block_on(async {
            let mut tasks = Vec::new();
            for i in 0..8u64 {
                let (c, base) = (c.clone(), base.clone());
                tasks.push(tokio::spawn(async move {
                    let mut n = 0;
                    for k in 0..50u64 {
                        let img = image(
                            round * 1000 + i * 50 + k,
                            200_000 + (k as usize % 3) * 150_000,
                        );
                        if push(
                            &c,
                            &base,
                            &format!("kill/r{i}"),
                            &format!("t{round}-{k}"),
                            &img,
                        )
                        .await
                        .is_err()
                        {
                            break;
                        }
                        n += 1;
                    }
                    n
                }));
            }
            tokio::time::sleep(kill_after).await;
            server.kill9();
            for t in tasks {
                pushed += t.await.unwrap();
            }
        });
        let server = DdiffServer::start(&root, &[]);
        let base = server.url("");
        let bad = fsck(&root);
        up.check(bad.is_empty(), || {
            format!("round {round}: blobs with wrong bytes {bad:?}")
        });
        rt.block_on(async {
            for (r, t) in all_tags(&c, &base).await {
                let res = pull_checked(&c, &base, &r, &t).await;
                up.check(res.is_ok(), || format!("round {round}: {r}:{t}: {res:?}"));
            }
        });
    }
    println!("kill -9 during uploads: {pushed} images completed before the kills, 6 kills");
    let mut failures = up.finish();
    // gc killed at several moments, after deleting half the manifests by digest.
    let mut g = Group::new(
        G3,
        "ddiff server: kill -9 during gc --min-age 0, restart, fsck + pull every tag",
    );
    for (round, ms) in [0u64, 1, 3, 8, 20, 60].into_iter().enumerate() {
        let server = DdiffServer::start(&root, &[]);
        let base = server.url("");
        rt.block_on(async {
            let tags = all_tags(&c, &base).await;
            for (r, t) in tags.iter().skip(round).step_by(7) {
                let resp = c
                    .head(format!("{base}/v2/{r}/manifests/{t}"))
                    .header("accept", "application/vnd.oci.image.manifest.v1+json")
                    .send()
                    .await
                    .unwrap();
                let d = resp.headers()["docker-content-digest"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                let _ = c
                    .delete(format!("{base}/v2/{r}/manifests/{d}"))
                    .send()
                    .await
                    .unwrap();
            }
        });
        drop(server);
        let mut gc = ddiff()
            .args(["server", "gc", "--min-age", "0", "--root"])
            .arg(&root)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let _ = gc.kill();
        let _ = gc.wait();
        let server = DdiffServer::start(&root, &[]);
        let base = server.url("");
        let bad = fsck(&root);
        g.check(bad.is_empty(), || {
            format!("gc killed at {ms} ms: wrong bytes {bad:?}")
        });
        rt.block_on(async {
            for (r, t) in all_tags(&c, &base).await {
                let res = pull_checked(&c, &base, &r, &t).await;
                g.check(res.is_ok(), || {
                    format!("gc killed at {ms} ms: {r}:{t}: {res:?}")
                });
            }
        });
    }
    failures.extend(g.finish());
    assert!(failures.is_empty(), "{failures:#?}");
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn hostile_64_clients_for_a_bounded_time() {
    const G4: &str = "4 load: 64 clients push and pull, no errors, memory flat";
    let secs: u64 = std::env::var("DDIFF_LOAD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    let base = server.url("");
    let pid = server.child.id();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let start = Instant::now();
    let (ops, errors, rss) = rt.block_on(async {
        let c = reqwest::Client::new();
        let shared = image(7, 400_000);
        push(&c, &base, "load/shared", "1", &shared).await.unwrap();
        let warm = rss_kib(pid);
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let (c, base, shared) = (c.clone(), base.clone(), shared.clone());
            tasks.push(tokio::spawn(async move {
                let (mut ops, mut errs) = (0u64, Vec::new());
                let mut k = 0u64;
                while Instant::now() < deadline {
                    // Half the clients push the same image, half their own; all pull.
                    let img = if i % 2 == 0 {
                        shared.clone()
                    } else {
                        image(1000 + i * 100_000 + k, 100_000)
                    };
                    let repo = format!("load/c{}", i % 8);
                    let tag = format!("t{i}-{k}");
                    if let Err(e) = push(&c, &base, &repo, &tag, &img).await {
                        errs.push(format!("push {repo}:{tag}: {e}"));
                    }
                    if let Err(e) = pull_checked(&c, &base, &repo, &tag).await {
                        errs.push(format!("pull {repo}:{tag}: {e}"));
                    }
                    if let Err(e) = pull_checked(&c, &base, "load/shared", "1").await {
                        errs.push(format!("pull shared: {e}"));
                    }
                    ops += 3;
                    k += 1;
                }
                (ops, errs)
            }));
        }
        let mut samples = vec![warm];
        let sampler = async {
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(500)).await;
                samples.push(rss_kib(pid));
            }
        };
        sampler.await;
        let (mut ops, mut errors) = (0, Vec::new());
        for t in tasks {
            let (o, e) = t.await.unwrap();
            ops += o;
            errors.extend(e);
        }
        (ops, errors, samples)
    });
    let elapsed = start.elapsed().as_secs_f64();
    let n = rss.len();
    let first_half_peak = *rss[1..n / 2 + 1].iter().max().unwrap_or(&0);
    let second_half_peak = *rss[n / 2..].iter().max().unwrap_or(&0);
    let numbers = format!(
        "{ops} operations (push+pull+pull) in {elapsed:.0} s = {:.0}/s, {} errors; server RSS after warm-up {} MiB, peak first half {} MiB, peak second half {} MiB",
        ops as f64 / elapsed,
        errors.len(),
        rss[0] / 1024,
        first_half_peak / 1024,
        second_half_peak / 1024
    );
    println!("{numbers}");
    let mut g = Group::new(
        G4,
        format!("ddiff server: 64 clients for {secs} s ({numbers})"),
    );
    g.check(errors.is_empty(), || {
        format!("{} errors, first: {:?}", errors.len(), errors.first())
    });
    g.check(ops > 64, || format!("only {ops} operations"));
    // Flat: the second half of the run does not grow past the first half by more than a quarter.
    g.check(
        second_half_peak <= first_half_peak + first_half_peak / 4 + 8 * 1024,
        || format!("memory grew: {first_half_peak} KiB → {second_half_peak} KiB"),
    );
    let f = g.finish();
    assert!(f.is_empty(), "{f:#?}");
}

#[test]
fn hostile_no_one_gets_in_without_credentials() {
    const G5: &str = "5 no one gets in without credentials (--htpasswd)";
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    let hash = bcrypt::hash("secret", 4)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    std::fs::write(&htpasswd, format!("ann:{hash}\n")).unwrap();
    let root = dir.path().join("root");
    let server = DdiffServer::start(&root, &["--htpasswd", htpasswd.to_str().unwrap()]);
    let base = server.url("");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut failures = Vec::new();
    rt.block_on(async {
        let anon = reqwest::Client::new();
        let ann = |rb: reqwest::RequestBuilder| rb.basic_auth("ann", Some("secret"));
        // Set up with credentials: one image in a/one, an upload session.
        let img = image(1, 5000);
        let authed = reqwest::Client::builder()
            .default_headers({
                let mut h = reqwest::header::HeaderMap::new();
                let v = base64_basic("ann", "secret");
                h.insert("authorization", v.parse().unwrap());
                h
            })
            .build()
            .unwrap();
        push(&authed, &base, "a/one", "1", &img).await.unwrap();
        let layer = Digest::sha256(&img.1).to_string();
        let mdig = Digest::sha256(&img.2).to_string();
        let loc = authed
            .post(format!("{base}/v2/a/one/blobs/uploads/"))
            .send()
            .await
            .unwrap()
            .headers()["location"]
            .to_str()
            .unwrap()
            .to_owned();
        let endpoints: Vec<(reqwest::Method, String)> = {
            use reqwest::Method as M;
            vec![
                (M::GET, "/v2/".into()),
                (M::GET, "/v2/_catalog".into()),
                (M::GET, "/v2/a/one/tags/list".into()),
                (M::GET, "/v2/a/one/manifests/1".into()),
                (M::HEAD, "/v2/a/one/manifests/1".into()),
                (M::GET, format!("/v2/a/one/manifests/{mdig}")),
                (M::PUT, "/v2/a/one/manifests/2".into()),
                (M::DELETE, format!("/v2/a/one/manifests/{mdig}")),
                (M::GET, format!("/v2/a/one/blobs/{layer}")),
                (M::HEAD, format!("/v2/a/one/blobs/{layer}")),
                (M::DELETE, format!("/v2/a/one/blobs/{layer}")),
                (M::POST, "/v2/a/one/blobs/uploads/".into()),
                (M::POST, format!("/v2/b/two/blobs/uploads/?mount={layer}&from=a/one")),
                (M::GET, loc.clone()),
                (M::PATCH, loc.clone()),
                (M::PUT, format!("{loc}?digest={layer}")),
                (M::DELETE, loc.clone()),
                (M::GET, format!("/v2/a/one/referrers/{mdig}")),
                (M::GET, "/v2/no/such/manifests/x".into()),
                (M::GET, "/ui/".into()),
            ]
        };
        let wrong: Vec<(&str, Option<String>)> = vec![
            ("no credentials", None),
            ("wrong password", Some(base64_basic("ann", "Secret"))),
            ("unknown user", Some(base64_basic("bob", "secret"))),
            ("empty password", Some(base64_basic("ann", ""))),
            ("malformed Basic", Some("Basic !!!notbase64".into())),
            ("a Bearer token", Some("Bearer secret".into())),
            ("user only", Some(format!("Basic {}", b64("ann")))),
        ];
        let mut g = Group::new(G5, format!("ddiff server: {} endpoints × {} kinds of missing or wrong credentials → 401, nothing changes", endpoints.len(), wrong.len()));
        let before = listing(&root);
        for (m, p) in &endpoints {
            for (what, h) in &wrong {
                let mut rb = anon.request(m.clone(), format!("{base}{p}"));
                if let Some(h) = h {
                    rb = rb.header("authorization", h);
                }
                let r = rb.body("x").send().await.unwrap();
                let st = r.status().as_u16();
                let www = r.headers().contains_key("www-authenticate");
                g.check(st == 401 && www, || format!("{m} {p} with {what}: {st}"));
            }
        }
        let after = listing(&root);
        g.check(before == after, || "storage changed under unauthenticated requests".into());
        failures.extend(g.finish());
        // With the right credentials every endpoint answers something other than 401.
        let mut g = Group::new(G5, format!("ddiff server: {} endpoints with the right credentials → not 401", endpoints.len()));
        for (m, p) in endpoints.iter().filter(|(m, _)| *m != reqwest::Method::DELETE) {
            let r = ann(anon.request(m.clone(), format!("{base}{p}"))).send().await.unwrap();
            let st = r.status().as_u16();
            g.check(st != 401, || format!("{m} {p}: 401 with the right credentials"));
        }
        failures.extend(g.finish());
        // Path tricks in repository names, with credentials: refused, nothing outside root.
        let long = "a".repeat(300);
        let deep = vec!["a"; 200].join("/");
        let tricks = [
            "..", "a/..", "a/../b", "%2e%2e", "a/%2e%2e/b", "a%2fb", "a%2Fb", "..%2f..%2fetc",
            "A/one", "a/One", "a//one", "a/one/", "/a/one", "a\\one", "a/./one", "a%00b",
            "a/one%00", long.as_str(), deep.as_str(), "-a", "a-", "a..b",
        ];
        let parent_before = top_level(dir.path());
        let mut g = Group::new(G5, format!("ddiff server: {} repository-name tricks (.., encoded slashes, uppercase, NUL, very long) × 4 requests → 4xx, nothing written outside the root", tricks.len()));
        for name in tricks {
            for (m, suffix) in [
                (reqwest::Method::GET, "/manifests/1".to_string()),
                (reqwest::Method::GET, format!("/blobs/{layer}")),
                (reqwest::Method::POST, "/blobs/uploads/".to_string()),
                (reqwest::Method::PUT, "/manifests/evil".to_string()),
            ] {
                // Raw HTTP: a URL library would resolve `..` and `%2e%2e` before sending.
                let st = raw_status(&server.addr, m.as_str(), &format!("/v2/{name}{suffix}"), &img.2);
                g.check((400..500).contains(&st), || format!("{m} /v2/{name}{suffix}: {st}"));
            }
        }
        g.check(top_level(dir.path()) == parent_before, || "something appeared beside the root".into());
        let bad_dirs: Vec<String> = listing(&root)
            .into_iter()
            .map(|(p, _)| p)
            .filter(|p| p.contains("..") || p.contains("evil") || p.contains('%') || p.chars().any(|c| c.is_ascii_uppercase()))
            .collect();
        g.check(bad_dirs.is_empty(), || format!("stored under odd names: {bad_dirs:?}"));
        failures.extend(g.finish());
        // Reading another repository's blob by its digest: 404 until it is mounted.
        let mut g = Group::new(G5, "ddiff server: another repository's blob by guessed digest → 404 (GET, HEAD, range); mount with from → 201 (as the spec allows)");
        for m in [reqwest::Method::GET, reqwest::Method::HEAD] {
            let r = ann(anon.request(m.clone(), format!("{base}/v2/c/three/blobs/{layer}")))
                .header("range", "bytes=0-10")
                .send()
                .await
                .unwrap();
            let st = r.status().as_u16();
            g.check(st == 404, || format!("{m} c/three/blobs/<a/one's layer>: {st}"));
        }
        let r = ann(anon.post(format!("{base}/v2/c/three/blobs/uploads/?mount={layer}&from=a/one"))).send().await.unwrap();
        let st = r.status().as_u16();
        g.check(st == 201, || format!("mount from a/one: {st}"));
        let r = ann(anon.get(format!("{base}/v2/c/three/blobs/{layer}"))).send().await.unwrap();
        g.check(r.status() == 200, || format!("after the mount: {}", r.status()));
        failures.extend(g.finish());
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Sends one request byte for byte as given (path included) and returns the status code.
fn raw_status(addr: &str, method: &str, path: &str, body: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: {}\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        base64_basic("ann", "secret"),
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let mut resp = Vec::new();
    let _ = s.read_to_end(&mut resp);
    let text = String::from_utf8_lossy(&resp);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(400) // the server closed the connection: refused
}

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

fn base64_basic(user: &str, pass: &str) -> String {
    format!("Basic {}", b64(&format!("{user}:{pass}")))
}
