//! `ddiff server` against clients and servers we did not write: the Docker engine, skopeo,
//! Debian's `docker-registry` (distribution 2.8) on the same directory; and faults (dropped
//! connections, wrong digests and sizes, kill -9 mid-upload, 64 concurrent clients) over real
//! sockets against the built binary.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ddiff_core::synth::{self, SynthLayer};
use ddiff_core::{Algorithm, Descriptor, Digest, MediaType};
use serde_json::{json, Value};

use crate::common::{
    ddiff, docker, docker_image, fails, require_peer, run, skopeo, stderr, DdiffServer, RefRegistry,
};

/// A tiny but real image: one gzip layer holding `/msg.txt`, an OCI config with its diff_id.
struct TestImage {
    config: Vec<u8>,
    layer: Vec<u8>,
    manifest: Vec<u8>,
}

fn test_image(msg: &str) -> TestImage {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("msg.txt"), msg).unwrap();
    let tar = run(Command::new("tar").arg("-C").arg(dir.path()).args([
        "--owner=0",
        "--group=0",
        "--mtime=@0",
        "-cf",
        "-",
        "msg.txt",
    ]))
    .stdout;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let layer = gz.finish().unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["cat", "/msg.txt"]},
        "rootfs": {"type": "layers", "diff_ids": [Digest::sha256(&tar).to_string()]},
    }))
    .unwrap();
    let gzip_layer = SynthLayer {
        descriptor: Descriptor::new(
            MediaType::OciLayerGzip,
            Digest::sha256(&layer),
            layer.len() as u64,
        ),
        diff_id: Digest::sha256(&tar),
        created_by: String::new(),
    };
    let manifest = synth::manifest(&MediaType::OciManifest, &config, &[gzip_layer]);
    TestImage {
        config,
        layer,
        manifest: manifest.bytes().to_vec(),
    }
}

/// Pushes blobs with single-request POSTs and the manifest under `tag`.
async fn http_push(c: &reqwest::Client, base: &str, name: &str, tag: &str, img: &TestImage) {
    for blob in [&img.config, &img.layer] {
        let d = Digest::sha256(blob);
        let r = c
            .post(format!("{base}/v2/{name}/blobs/uploads/?digest={d}"))
            .body(blob.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    let r = c
        .put(format!("{base}/v2/{name}/manifests/{tag}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(img.manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

fn skopeo_inspect_digest(reference: &str) -> String {
    let out = run(skopeo().args(["inspect", "--tls-verify=false", reference]));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["Digest"].as_str().unwrap().to_owned()
}

fn skopeo_copy(src: &str, dst: &str, extra: &[&str]) {
    run(skopeo()
        .args(["copy", "--src-tls-verify=false", "--dest-tls-verify=false"])
        .args(extra)
        .args([src, dst]));
}

#[test]
fn docker_push_pull_run_through_ddiff_server() {
    if !require_peer("docker") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    let msg = format!("hello-{}", std::process::id());
    let local = format!("ddiff-test/hello:{}", std::process::id());
    docker_image(&local, &msg);
    let remote = format!("{}/team/hello:v1", server.addr);
    run(docker().args(["tag", &local, &remote]));
    run(docker().args(["push", &remote]));
    run(docker().args(["rmi", &remote, &local]));
    run(docker().args(["pull", &remote]));
    let out = run(docker().args(["run", "--rm", "--network", "none", &remote]));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), msg);
    // A second push of the same image uploads nothing new: every layer already exists.
    let again = run(docker().args(["push", &remote]));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("Layer already exists"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    run(docker().args(["rmi", &remote]));
    let log = server.log_text();
    assert!(log.contains("PUT /v2/team/hello/manifests/v1 201"), "{log}");
}

#[test]
fn skopeo_copies_in_both_directions_with_every_transport() {
    if !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    let img = test_image("skopeo");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(http_push(
        &reqwest::Client::new(),
        &server.url(""),
        "s/src",
        "v1",
        &img,
    ));
    let src = format!("docker://{}/s/src:v1", server.addr);
    let want = Digest::sha256(&img.manifest).to_string();
    assert_eq!(skopeo_inspect_digest(&src), want);

    // Out of ddiff server into every transport, and back in from each.
    let oci = format!("oci:{}:v1", dir.path().join("oci").display());
    let archive = format!(
        "docker-archive:{}:s/src:v1",
        dir.path().join("img.tar").display()
    );
    skopeo_copy(&src, &oci, &[]);
    skopeo_copy(&src, &archive, &[]);
    skopeo_copy(
        &oci,
        &format!("docker://{}/s/from-oci:v1", server.addr),
        &[],
    );
    skopeo_copy(
        &archive,
        &format!("docker://{}/s/from-archive:v1", server.addr),
        &[],
    );
    skopeo_copy(
        &src,
        &format!("docker://{}/s/from-docker:v1", server.addr),
        &[],
    );
    assert_eq!(
        skopeo_inspect_digest(&format!("docker://{}/s/from-oci:v1", server.addr)),
        want
    );
    assert_eq!(
        skopeo_inspect_digest(&format!("docker://{}/s/from-docker:v1", server.addr)),
        want
    );
    // docker-archive carries Docker v2s2; its layers must be the same content.
    let v: Value = serde_json::from_slice(
        &run(skopeo().args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/s/from-archive:v1", server.addr),
        ]))
        .stdout,
    )
    .unwrap();
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1, "{v}");

    // A Docker v2s2 manifest back out through docker://, and through oci: (skopeo converts).
    skopeo_copy(
        &format!("docker://{}/s/from-archive:v1", server.addr),
        &format!("oci:{}:v2", dir.path().join("oci").display()),
        &[],
    );

    for t in ["v2", "v3"] {
        skopeo_copy(&src, &format!("docker://{}/s/src:{t}", server.addr), &[]);
    }
    let tags: Value = serde_json::from_slice(
        &run(skopeo().args([
            "list-tags",
            "--tls-verify=false",
            &format!("docker://{}/s/src", server.addr),
        ]))
        .stdout,
    )
    .unwrap();
    assert_eq!(tags["Tags"], json!(["v1", "v2", "v3"]));
    run(skopeo().args([
        "delete",
        "--tls-verify=false",
        &format!("docker://{}/s/from-oci:v1", server.addr),
    ]));
    let gone = skopeo()
        .args([
            "inspect",
            "--tls-verify=false",
            &format!("docker://{}/s/from-oci:v1", server.addr),
        ])
        .output()
        .unwrap();
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("manifest unknown"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );
}

#[test]
fn storage_is_shared_both_ways_with_debian_docker_registry() {
    if !require_peer("docker-registry") || !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let a = test_image("written by ddiff");
    let b = test_image("written by registry:2");
    let oci_b = format!("oci:{}:b", dir.path().join("oci").display());
    let rt = tokio::runtime::Runtime::new().unwrap();

    // ddiff writes; docker-registry serves it.
    {
        let server = DdiffServer::start(&root, &[]);
        rt.block_on(http_push(
            &reqwest::Client::new(),
            &server.url(""),
            "shared/a",
            "v1",
            &a,
        ));
        // Also make b available as an OCI layout for the push through docker-registry.
        rt.block_on(http_push(
            &reqwest::Client::new(),
            &server.url(""),
            "tmp/b",
            "v1",
            &b,
        ));
        skopeo_copy(&format!("docker://{}/tmp/b:v1", server.addr), &oci_b, &[]);
    }
    {
        let reg = RefRegistry::start(&root);
        let src = format!("docker://{}/shared/a:v1", reg.addr);
        assert_eq!(
            skopeo_inspect_digest(&src),
            Digest::sha256(&a.manifest).to_string()
        );
        skopeo_copy(
            &src,
            &format!("oci:{}:a", dir.path().join("out").display()),
            &[],
        );
        let cat: Value = rt
            .block_on(async {
                reqwest::get(format!("http://{}/v2/_catalog", reg.addr))
                    .await
                    .unwrap()
                    .json()
                    .await
            })
            .unwrap();
        assert_eq!(cat["repositories"], json!(["shared/a", "tmp/b"]));
        // docker-registry writes; ddiff serves it next.
        skopeo_copy(&oci_b, &format!("docker://{}/shared/b:v1", reg.addr), &[]);
    }
    let server = DdiffServer::start(&root, &[]);
    let src = format!("docker://{}/shared/b:v1", server.addr);
    assert_eq!(
        skopeo_inspect_digest(&src),
        Digest::sha256(&b.manifest).to_string()
    );
    let layer = Digest::sha256(&b.layer);
    let got = rt.block_on(async {
        reqwest::get(server.url(&format!("/v2/shared/b/blobs/{layer}")))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
    });
    assert_eq!(&got[..], &b.layer[..]);
    skopeo_copy(
        &src,
        &format!("oci:{}:b", dir.path().join("out").display()),
        &[],
    );
}

/// What distribution 2.8 gets wrong and `ddiff server` gets right: sha512 blobs, the
/// referrers API, 416 for an out-of-order chunk, suffix range reads, 400 for a bad digest.
#[test]
fn beyond_the_reference_registry() {
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ours = rt.block_on(spec_checks(&server.url("")));
    assert!(
        ours.iter().all(|(_, ok, _)| *ok),
        "ddiff server fails: {ours:?}"
    );
    if require_peer("docker-registry") {
        let reg = RefRegistry::start(&dir.path().join("ref"));
        let theirs = rt.block_on(spec_checks(&format!("http://{}", reg.addr)));
        for (check, ok, detail) in theirs {
            println!(
                "docker-registry {check}: {} ({detail})",
                if ok { "ok" } else { "FAILS" }
            );
        }
    }
}

/// POST then PUT (the upload every registry supports); returns the PUT status.
async fn post_put(c: &reqwest::Client, base: &str, name: &str, data: &[u8], d: &Digest) -> u16 {
    let post = c
        .post(format!("{base}/v2/{name}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = absolute(base, post.headers()["location"].to_str().unwrap());
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c
        .put(format!("{loc}{sep}digest={d}"))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    r.status().as_u16()
}

fn absolute(base: &str, loc: &str) -> String {
    if loc.starts_with("http") {
        loc.to_owned()
    } else {
        format!("{base}{loc}")
    }
}

async fn spec_checks(base: &str) -> Vec<(&'static str, bool, String)> {
    let c = reqwest::Client::new();
    let mut out = Vec::new();
    let data = b"beyond the reference".to_vec();

    let d512 = Digest::of(Algorithm::Sha512, &data);
    let st = post_put(&c, base, "b/x", &data, &d512).await;
    let back = c
        .get(format!("{base}/v2/b/x/blobs/{d512}"))
        .send()
        .await
        .unwrap();
    let ok = st == 201 && back.status() == 200 && back.bytes().await.unwrap() == data;
    out.push(("sha512 blob", ok, format!("PUT {st}")));

    let d = Digest::sha256(&data);
    let st = post_put(&c, base, "b/x", &data, &d).await;
    assert_eq!(st, 201, "a sha256 upload must work everywhere");
    let mut ranges_ok = true;
    let mut statuses = Vec::new();
    for (range, want) in [
        ("bytes=-5", &data[data.len() - 5..]),
        ("bytes=3-", &data[3..]),
        ("bytes=2-6", &data[2..7]),
    ] {
        let r = c
            .get(format!("{base}/v2/b/x/blobs/{d}"))
            .header("range", range)
            .send()
            .await
            .unwrap();
        let st = r.status().as_u16();
        statuses.push(format!("{range}: {st}"));
        ranges_ok &= st == 206 && r.bytes().await.unwrap()[..] == want[..];
    }
    out.push(("range reads", ranges_ok, statuses.join(", ")));

    let single = Digest::sha256(b"single request");
    let r = c
        .post(format!("{base}/v2/b/x/blobs/uploads/?digest={single}"))
        .body(&b"single request"[..])
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    out.push((
        "single-request POST ?digest=",
        st == 201,
        format!("status {st}"),
    ));

    let r = c
        .get(format!("{base}/v2/b/x/referrers/{d}"))
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    out.push(("referrers API", st == 200, format!("status {st}")));

    let post = c
        .post(format!("{base}/v2/b/x/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    let loc = absolute(base, post.headers()["location"].to_str().unwrap());
    let r = c
        .patch(&loc)
        .header("content-range", "10-19")
        .header("content-type", "application/octet-stream")
        .body(vec![0u8; 10])
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    out.push((
        "416 for an out-of-order chunk",
        st == 416,
        format!("status {st}"),
    ));

    let mut statuses = Vec::new();
    for path in [
        "blobs/sha256:abc",
        "manifests/sha256:abc",
        "manifests/md5:abc",
    ] {
        let r = c.get(format!("{base}/v2/b/x/{path}")).send().await.unwrap();
        statuses.push(r.status().as_u16());
    }
    out.push((
        "400 for invalid digests",
        statuses.iter().all(|s| *s == 400),
        format!("statuses {statuses:?}"),
    ));
    out
}

/// Sends raw HTTP/1.1 and returns the response head and body (for requests reqwest would
/// not send: half a body, then a hang-up).
fn raw_http(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(request).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

fn header_of<'a>(resp: &'a str, name: &str) -> Option<&'a str> {
    resp.lines()
        .find(|l| l.to_ascii_lowercase().starts_with(&format!("{name}:")))
        .map(|l| l[name.len() + 1..].trim())
}

fn start_session(addr: &str, name: &str) -> String {
    let resp = raw_http(
        addr,
        format!("POST /v2/{name}/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(resp.starts_with("HTTP/1.1 202"), "{resp}");
    header_of(&resp, "location").unwrap().to_owned()
}

/// Polls the upload status until the server has `want` bytes (it notices a hang-up a moment
/// after it happens).
fn wait_offset(addr: &str, loc: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let resp = raw_http(
            addr,
            format!("GET {loc} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let range = header_of(&resp, "range").unwrap_or("").to_owned();
        if range == format!("0-{}", want - 1) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "offset never reached {want}: {resp}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn client_disconnecting_mid_upload_resumes_from_the_offset() {
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
    let d = Digest::sha256(&data);
    let loc = start_session(&server.addr, "fault/resume");
    {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.write_all(
            format!(
                "PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
                data.len()
            )
            .as_bytes(),
        )
        .unwrap();
        s.write_all(&data[..400_000]).unwrap();
        s.flush().unwrap();
        // Dropped here: the connection closes with 600 000 bytes unsent.
    }
    wait_offset(&server.addr, &loc, 400_000);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let r = c
            .patch(server.url(&loc))
            .header("content-range", format!("400000-{}", data.len() - 1))
            .body(data[400_000..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
        let r = c
            .put(server.url(&format!("{loc}?digest={d}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
        let got = c
            .get(server.url(&format!("/v2/fault/resume/blobs/{d}")))
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        assert_eq!(Digest::sha256(&got), d);
    });
}

#[test]
fn wrong_digest_and_wrong_size_over_real_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let claimed = Digest::sha256(b"claimed");
        let r = c
            .post(server.url(&format!("/v2/f/x/blobs/uploads/?digest={claimed}")))
            .body(b"actual".to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["code"], "DIGEST_INVALID");
        let r = c
            .head(server.url(&format!("/v2/f/x/blobs/{claimed}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);

        let loc = c
            .post(server.url("/v2/f/x/blobs/uploads/"))
            .send()
            .await
            .unwrap()
            .headers()["location"]
            .to_str()
            .unwrap()
            .to_owned();
        let r = c
            .patch(server.url(&loc))
            .header("content-range", "0-99")
            .body(vec![1u8; 50])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["errors"][0]["code"], "SIZE_INVALID");
    });
    // A body shorter than its Content-Length, then a hang-up: nothing becomes visible.
    let data = vec![7u8; 10_000];
    let d = Digest::sha256(&data);
    {
        let mut s = TcpStream::connect(&server.addr).unwrap();
        s.write_all(
            format!("POST /v2/f/x/blobs/uploads/?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n").as_bytes(),
        )
        .unwrap();
        s.write_all(&data[..5000]).unwrap();
    }
    let resp = raw_http(
        &server.addr,
        format!("HEAD /v2/f/x/blobs/{d} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    assert!(!server
        .root
        .join(format!(
            "docker/registry/v2/blobs/sha256/{}/{}",
            &d.hex()[..2],
            d.hex()
        ))
        .exists());
}

fn upload_data_files(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.join("docker/registry/v2/repositories")];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.file_name().is_some_and(|n| n == "data")
                && path.to_string_lossy().contains("/_uploads/")
            {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn kill_9_mid_upload_leaves_no_visible_blob_and_the_session_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 241) as u8).collect();
    let d = Digest::sha256(&data);
    let mut server = DdiffServer::start(&root, &[]);
    let loc = start_session(&server.addr, "fault/kill");
    let mut s = TcpStream::connect(&server.addr).unwrap();
    s.write_all(
        format!(
            "PUT {loc}?digest={d} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            data.len()
        )
        .as_bytes(),
    )
    .unwrap();
    s.write_all(&data[..2_000_000]).unwrap();
    // Wait until the server has written the bytes it received, then kill it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while upload_data_files(&root)
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum::<u64>()
        < 1_000_000
    {
        assert!(Instant::now() < deadline, "upload never reached the disk");
        std::thread::sleep(Duration::from_millis(10));
    }
    server.kill9();
    drop(s);
    let blob = root.join(format!(
        "docker/registry/v2/blobs/sha256/{}/{}/data",
        &d.hex()[..2],
        d.hex()
    ));
    assert!(!blob.exists(), "a partial blob became visible");

    let server = DdiffServer::start(&root, &[]);
    let head = raw_http(
        &server.addr,
        format!("HEAD /v2/fault/kill/blobs/{d} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    );
    assert!(head.starts_with("HTTP/1.1 404"), "{head}");
    // The session survived the crash: finish it from its offset.
    let status = raw_http(
        &server.addr,
        format!("GET {loc} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert!(status.starts_with("HTTP/1.1 204"), "{status}");
    let range = header_of(&status, "range").unwrap();
    let offset: usize = range.strip_prefix("0-").unwrap().parse::<usize>().unwrap() + 1;
    assert!((1_000_000..=2_000_000).contains(&offset), "{range}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let r = c
            .put(server.url(&format!("{loc}?digest={d}")))
            .header("content-range", format!("{offset}-{}", data.len() - 1))
            .body(data[offset..].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    });
    assert_eq!(Digest::sha256(&std::fs::read(&blob).unwrap()), d);
}

#[test]
fn sixty_four_concurrent_clients_push_and_pull() {
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    let base = server.url("");
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let shared: Vec<u8> = (0..300_000u32).map(|i| (i % 199) as u8).collect();
        let mut tasks = Vec::new();
        for i in 0..64 {
            let (base, shared) = (base.clone(), shared.clone());
            tasks.push(tokio::spawn(async move {
                let c = reqwest::Client::new();
                let own: Vec<u8> = (0..100_000u32).map(|j| ((i * 31 + j) % 256) as u8).collect();
                let config = format!("{{\"client\":{i}}}").into_bytes();
                for blob in [&shared, &own, &config] {
                    let d = Digest::sha256(blob);
                    // Chunked: POST, PATCH, PUT.
                    let loc = c.post(format!("{base}/v2/load/c{}/blobs/uploads/", i % 8)).send().await.unwrap().headers()
                        ["location"]
                        .to_str()
                        .unwrap()
                        .to_owned();
                    let r = c.patch(format!("{base}{loc}")).body(blob.clone()).send().await.unwrap();
                    assert_eq!(r.status(), 202);
                    let r = c.put(format!("{base}{loc}?digest={d}")).send().await.unwrap();
                    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
                }
                let m = serde_json::to_vec(&json!({
                    "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": Digest::sha256(&config).to_string(), "size": config.len()},
                    "layers": [
                        {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::sha256(&shared).to_string(), "size": shared.len()},
                        {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": Digest::sha256(&own).to_string(), "size": own.len()},
                    ],
                }))
                .unwrap();
                let r = c
                    .put(format!("{base}/v2/load/c{}/manifests/t{i}", i % 8))
                    .header("content-type", "application/vnd.oci.image.manifest.v1+json")
                    .body(m.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
                // Pull it back: manifest by tag, then each blob.
                let got = c.get(format!("{base}/v2/load/c{}/manifests/t{i}", i % 8)).send().await.unwrap().bytes().await.unwrap();
                assert_eq!(&got[..], &m[..]);
                for blob in [&shared, &own, &config] {
                    let d = Digest::sha256(blob);
                    let got = c.get(format!("{base}/v2/load/c{}/blobs/{d}", i % 8)).send().await.unwrap().bytes().await.unwrap();
                    assert_eq!(Digest::sha256(&got), d);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let c = reqwest::Client::new();
        let cat: Value = c.get(format!("{base}/v2/_catalog")).send().await.unwrap().json().await.unwrap();
        assert_eq!(cat["repositories"].as_array().unwrap().len(), 8);
    });
    assert!(
        upload_data_files(&server.root).is_empty(),
        "sessions left behind"
    );
}

#[test]
fn basic_auth_from_an_htpasswd_file_with_skopeo() {
    if !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    // What `htpasswd -Bbn ann secret` writes.
    let hash = bcrypt::hash("secret", 5)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    std::fs::write(&htpasswd, format!("ann:{hash}\n")).unwrap();
    let server = DdiffServer::start(
        &dir.path().join("root"),
        &["--htpasswd", htpasswd.to_str().unwrap()],
    );
    let img = test_image("auth");
    let oci = format!("oci:{}:v1", dir.path().join("oci").display());
    {
        let plain = DdiffServer::start(&dir.path().join("plain"), &[]);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(http_push(
            &reqwest::Client::new(),
            &plain.url(""),
            "a/b",
            "v1",
            &img,
        ));
        skopeo_copy(&format!("docker://{}/a/b:v1", plain.addr), &oci, &[]);
    }
    let dst = format!("docker://{}/a/b:v1", server.addr);
    let denied = skopeo()
        .args([
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            "ann:wrong",
            &oci,
            &dst,
        ])
        .output()
        .unwrap();
    assert!(!denied.status.success());
    skopeo_copy(&oci, &dst, &["--dest-creds", "ann:secret"]);
    let out = run(skopeo().args([
        "inspect",
        "--tls-verify=false",
        "--creds",
        "ann:secret",
        &dst,
    ]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&Digest::sha256(&img.manifest).to_string())
    );
}

#[test]
fn clear_errors_for_a_taken_port_and_an_unwritable_root() {
    let dir = tempfile::tempdir().unwrap();
    let server = DdiffServer::start(&dir.path().join("root"), &[]);
    let out = fails(
        ddiff()
            .args(["server", "--addr", &server.addr, "--root"])
            .arg(dir.path().join("other")),
    );
    let err = stderr(&out);
    assert!(err.contains("port is taken"), "{err}");

    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").unwrap();
    let out = fails(
        ddiff()
            .args(["server", "--addr", "127.0.0.1:0", "--root"])
            .arg(file.join("sub")),
    );
    let err = stderr(&out);
    assert!(err.contains("is not writable"), "{err}");
}

#[test]
fn sigterm_shuts_down_gracefully() {
    // The signal comes the instant "listening" is printed, several times: a
    // handler installed later than that line once let SIGTERM kill the server.
    for (i, sig) in ["-TERM", "-INT", "-TERM", "-INT", "-TERM"]
        .iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let mut server = DdiffServer::start(&dir.path().join("root"), &[]);
        run(Command::new("kill").args([*sig, &server.child.id().to_string()]));
        let status = server.child.wait().unwrap();
        assert!(status.success(), "round {i} {sig}: {status}");
        assert!(server.log_text().contains("shutting down"), "round {i}");
    }
}

/// Issue 10: `ddiff server` ignored `RUST_LOG` (its logger init was a no-op after main's),
/// though docs/server.md documents it. DDIFF_LOG, else RUST_LOG, sets the level.
#[test]
fn log_level_comes_from_ddiff_log_else_rust_log() {
    let dir = tempfile::tempdir().unwrap();
    // (environment, logs at debug, logs requests at info)
    type Case<'a> = (&'a [(&'a str, &'a str)], bool, bool);
    let cases: [Case; 3] = [
        (&[], false, true),
        (&[("RUST_LOG", "debug")], true, true),
        (
            &[("RUST_LOG", "debug"), ("DDIFF_LOG", "warn")],
            false,
            false,
        ),
    ];
    for (i, (env, debug, info)) in cases.into_iter().enumerate() {
        let mut server =
            DdiffServer::start_with_env(&dir.path().join(format!("root{i}")), &[], env);
        // One request, which logs a line at info.
        let mut c = TcpStream::connect(&server.addr).unwrap();
        c.write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        run(Command::new("kill").args(["-TERM", &server.child.id().to_string()]));
        server.child.wait().unwrap();
        let log = server.log_text();
        assert_eq!(log.contains("storage opened"), debug, "{env:?}: {log}");
        assert_eq!(log.contains("/v2/"), info, "{env:?}: {log}");
    }
}

#[test]
fn serves_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
        ])
        .args([
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    if !made.as_ref().is_ok_and(|o| o.status.success()) {
        println!("SKIPPED serves_https_with_the_given_certificate: openssl cannot make a test certificate");
        return;
    }
    let server = DdiffServer::start(
        &dir.path().join("root"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ca = reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap();
        let c = reqwest::Client::builder()
            .add_root_certificate(ca)
            .build()
            .unwrap();
        let base = format!("https://{}", server.addr);
        let img = test_image("tls");
        http_push(&c, &base, "tls/img", "v1", &img).await;
        let r = c
            .get(format!("{base}/v2/tls/img/manifests/v1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(&r.bytes().await.unwrap()[..], &img.manifest[..]);
        // Plain HTTP to the TLS port is not served.
        assert!(reqwest::get(format!("http://{}/v2/", server.addr))
            .await
            .is_err_or_not_ok());
    });
}

trait NotOk {
    fn is_err_or_not_ok(&self) -> bool;
}

impl NotOk for reqwest::Result<reqwest::Response> {
    fn is_err_or_not_ok(&self) -> bool {
        self.as_ref()
            .map(|r| !r.status().is_success())
            .unwrap_or(true)
    }
}
