//! Every endpoint and every error code of the embedded registry, through `Router::oneshot`
//! on a tempdir root (no sockets).

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use bytes::Bytes;
use ddiff_cli::registry::server::{collect_garbage, router, AppState, Htpasswd, Options};
use ddiff_core::{Algorithm, Digest};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .unwrap_or_else(|| panic!("no {name} header in {:?}", self.headers))
            .to_str()
            .unwrap()
    }
    /// Asserts the spec's error envelope with `code` and `status`.
    fn assert_error(&self, status: StatusCode, code: &str) {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.header("content-type"), "application/json");
        let v = self.json();
        assert_eq!(v["errors"][0]["code"], code, "{v}");
        assert!(v["errors"][0]["message"].is_string(), "{v}");
    }
}

struct Reg {
    app: Router,
    state: AppState,
    _dir: tempfile::TempDir,
}

fn reg_with(options: Options) -> Reg {
    let dir = tempfile::tempdir().unwrap();
    let state = AppState::new(dir.path(), options);
    Reg {
        app: router(state.clone()),
        state,
        _dir: dir,
    }
}

fn reg() -> Reg {
    reg_with(Options::default())
}

impl Reg {
    async fn send(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            headers
                .get("docker-distribution-api-version")
                .map(|v| v.to_str().unwrap()),
            Some("registry/2.0"),
            "{method_uri}",
            method_uri = uri
        );
        Reply {
            status,
            headers,
            body,
        }
    }
    async fn get(&self, uri: &str) -> Reply {
        self.send(Method::GET, uri, &[], Body::empty()).await
    }
    /// Monolithic upload (POST, then PUT with the whole body).
    async fn push_blob(&self, name: &str, data: &[u8]) -> Digest {
        let d = Digest::sha256(data);
        let r = self
            .send(
                Method::POST,
                &format!("/v2/{name}/blobs/uploads/"),
                &[],
                Body::empty(),
            )
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        let loc = r.header("location").to_owned();
        let r = self
            .send(
                Method::PUT,
                &format!("{loc}?digest={d}"),
                &[],
                data.to_vec(),
            )
            .await;
        assert_eq!(
            r.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&r.body)
        );
        assert_eq!(r.header("docker-content-digest"), d.to_string());
        d
    }
    async fn put_manifest(&self, name: &str, reference: &str, ct: &str, body: &[u8]) -> Reply {
        self.send(
            Method::PUT,
            &format!("/v2/{name}/manifests/{reference}"),
            &[("content-type", ct)],
            body.to_vec(),
        )
        .await
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn image_manifest(
    mt: &str,
    config: (&Digest, usize),
    layers: &[(&Digest, usize)],
    extra: Value,
) -> Vec<u8> {
    let (cfg_mt, layer_mt) = if mt == DOCKER_MANIFEST {
        (
            "application/vnd.docker.container.image.v1+json",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
        )
    } else {
        (
            "application/vnd.oci.image.config.v1+json",
            "application/vnd.oci.image.layer.v1.tar+gzip",
        )
    };
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": mt,
        "config": {"mediaType": cfg_mt, "digest": config.0.to_string(), "size": config.1},
        "layers": layers.iter().map(|(d, s)| json!({"mediaType": layer_mt, "digest": d.to_string(), "size": s})).collect::<Vec<_>>(),
    });
    if let Value::Object(e) = extra {
        for (k, v) in e {
            m[k] = v;
        }
    }
    serde_json::to_vec_pretty(&m).unwrap()
}

/// Pushes a config and a layer, then a manifest of type `mt` tagged `tag`.
async fn push_image(r: &Reg, name: &str, tag: &str, mt: &str, seed: &str) -> (Digest, Vec<u8>) {
    let cfg = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
    let layer = format!("layer of {seed}").into_bytes();
    let c = r.push_blob(name, &cfg).await;
    let l = r.push_blob(name, &layer).await;
    let m = image_manifest(mt, (&c, cfg.len()), &[(&l, layer.len())], json!({}));
    let resp = r.put_manifest(name, tag, mt, &m).await;
    assert_eq!(
        resp.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&resp.body)
    );
    (Digest::sha256(&m), m)
}

#[tokio::test]
async fn base_endpoint_answers_with_api_version() {
    let r = reg();
    let resp = r.get("/v2/").await;
    assert_eq!(resp.status, StatusCode::OK);
    assert_eq!(resp.json(), json!({}));
}

#[tokio::test]
async fn monolithic_upload_then_head_get_range_and_delete() {
    let r = reg();
    let data: Vec<u8> = (0..100u8).collect();
    let d = r.push_blob("lib/x", &data).await;

    let head = r
        .send(
            Method::HEAD,
            &format!("/v2/lib/x/blobs/{d}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.header("content-length"), "100");
    assert_eq!(head.header("docker-content-digest"), d.to_string());
    assert!(head.body.is_empty());

    let get = r.get(&format!("/v2/lib/x/blobs/{d}")).await;
    assert_eq!(get.status, StatusCode::OK);
    assert_eq!(&get.body[..], &data[..]);

    for (range, want, content_range) in [
        ("bytes=10-19", &data[10..20], "bytes 10-19/100"),
        ("bytes=95-", &data[95..], "bytes 95-99/100"),
        ("bytes=-3", &data[97..], "bytes 97-99/100"),
        ("bytes=90-500", &data[90..], "bytes 90-99/100"),
    ] {
        let resp = r
            .send(
                Method::GET,
                &format!("/v2/lib/x/blobs/{d}"),
                &[("range", range)],
                Body::empty(),
            )
            .await;
        assert_eq!(resp.status, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(&resp.body[..], want, "{range}");
        assert_eq!(resp.header("content-range"), content_range);
    }
    let bad = r
        .send(
            Method::GET,
            &format!("/v2/lib/x/blobs/{d}"),
            &[("range", "bytes=100-")],
            Body::empty(),
        )
        .await;
    assert_eq!(bad.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(bad.header("content-range"), "bytes */100");

    // Another repository does not see the blob.
    r.get(&format!("/v2/other/blobs/{d}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");

    let del = r
        .send(
            Method::DELETE,
            &format!("/v2/lib/x/blobs/{d}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    r.get(&format!("/v2/lib/x/blobs/{d}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    r.send(
        Method::DELETE,
        &format!("/v2/lib/x/blobs/{d}"),
        &[],
        Body::empty(),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
}

#[tokio::test]
async fn single_request_post_with_sha512_digest() {
    let r = reg();
    let data = b"sha512 content".to_vec();
    let d = Digest::of(Algorithm::Sha512, &data);
    let resp = r
        .send(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={d}"),
            &[],
            data.clone(),
        )
        .await;
    assert_eq!(
        resp.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&resp.body)
    );
    assert_eq!(resp.header("location"), format!("/v2/a/blobs/{d}"));
    let get = r.get(&format!("/v2/a/blobs/{d}")).await;
    assert_eq!(&get.body[..], &data[..]);
    assert!(r
        .state
        .storage()
        .blob_path(&d)
        .to_string_lossy()
        .contains("/blobs/sha512/"));
}

#[tokio::test]
async fn chunked_upload_with_status_out_of_order_and_size_checks() {
    let r = reg();
    let data = b"0123456789abcdefghij".to_vec();
    let d = Digest::sha256(&data);
    let post = r
        .send(Method::POST, "/v2/c/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(post.status, StatusCode::ACCEPTED);
    assert_eq!(post.header("range"), "0-0");
    let loc = post.header("location").to_owned();
    let uuid = post.header("docker-upload-uuid").to_owned();
    assert!(loc.ends_with(&uuid));

    let p1 = r
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "0-9"), ("content-length", "10")],
            data[..10].to_vec(),
        )
        .await;
    assert_eq!(p1.status, StatusCode::ACCEPTED);
    assert_eq!(p1.header("range"), "0-9");

    // A chunk that does not start at the offset: 416 with the offset to resume from.
    let ooo = r
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "15-19")],
            data[15..].to_vec(),
        )
        .await;
    ooo.assert_error(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID");
    assert_eq!(ooo.header("range"), "0-9");

    // Content-Range and Content-Length disagree.
    r.send(
        Method::PATCH,
        &loc,
        &[("content-range", "10-14"), ("content-length", "3")],
        data[10..13].to_vec(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    // A body shorter than its Content-Range (no Content-Length to catch it early): the
    // bytes are taken back out.
    let short = Body::from_stream(futures::stream::iter(vec![Ok::<_, std::io::Error>(
        Bytes::from_static(b"abc"),
    )]));
    r.send(Method::PATCH, &loc, &[("content-range", "10-14")], short)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "SIZE_INVALID");
    r.send(
        Method::PATCH,
        &loc,
        &[("content-range", "x-y")],
        Body::empty(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID");

    let status = r.get(&loc).await;
    assert_eq!(status.status, StatusCode::NO_CONTENT);
    assert_eq!(status.header("range"), "0-9");

    // A streamed PATCH without Content-Range (what docker sends).
    let p2 = r
        .send(Method::PATCH, &loc, &[], data[10..15].to_vec())
        .await;
    assert_eq!(p2.header("range"), "0-14");
    let put = r
        .send(
            Method::PUT,
            &format!("{loc}?digest={d}"),
            &[("content-range", "15-19")],
            data[15..].to_vec(),
        )
        .await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    assert_eq!(
        &r.get(&format!("/v2/c/blobs/{d}")).await.body[..],
        &data[..]
    );
    // The session is gone once committed.
    r.get(&loc)
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn wrong_digest_is_rejected_and_nothing_becomes_visible() {
    let r = reg();
    let claimed = Digest::sha256(b"what the client claims");
    let post = r
        .send(Method::POST, "/v2/w/blobs/uploads/", &[], Body::empty())
        .await;
    let loc = post.header("location").to_owned();
    let put = r
        .send(
            Method::PUT,
            &format!("{loc}?digest={claimed}"),
            &[],
            b"other bytes".to_vec(),
        )
        .await;
    put.assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    assert_eq!(
        put.json()["errors"][0]["detail"]["found"],
        Digest::sha256(b"other bytes").to_string()
    );
    assert!(!r.state.storage().blob_path(&claimed).exists());
    assert!(!r
        .state
        .storage()
        .blob_path(&Digest::sha256(b"other bytes"))
        .exists());
    r.get(&format!("/v2/w/blobs/{claimed}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    // Single-request POST with a wrong digest.
    r.send(
        Method::POST,
        &format!("/v2/w/blobs/uploads/?digest={claimed}"),
        &[],
        b"x".to_vec(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    // Missing and malformed digests.
    let post = r
        .send(Method::POST, "/v2/w/blobs/uploads/", &[], Body::empty())
        .await;
    let loc = post.header("location").to_owned();
    r.send(Method::PUT, &loc, &[], Body::empty())
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    r.send(
        Method::PUT,
        &format!("{loc}?digest=sha256:zz"),
        &[],
        Body::empty(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    r.get("/v2/w/blobs/md5:abc")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn blob_over_the_size_limit_is_refused() {
    let r = reg_with(Options {
        max_blob_size: 8,
        ..Options::default()
    });
    let data = b"0123456789".to_vec();
    let resp = r
        .send(
            Method::POST,
            &format!("/v2/s/blobs/uploads/?digest={}", Digest::sha256(&data)),
            &[],
            data,
        )
        .await;
    resp.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID");
}

/// A client whose connection drops mid-PATCH asks for the offset and resumes from there.
#[tokio::test]
async fn dropped_patch_keeps_received_bytes_and_resumes() {
    let r = reg();
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let d = Digest::sha256(&data);
    let post = r
        .send(
            Method::POST,
            "/v2/resume/blobs/uploads/",
            &[],
            Body::empty(),
        )
        .await;
    let loc = post.header("location").to_owned();
    let broken = Body::from_stream(futures::stream::iter(vec![
        Ok(Bytes::copy_from_slice(&data[..1200])),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]));
    let resp = r.send(Method::PATCH, &loc, &[], broken).await;
    resp.assert_error(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID");
    let status = r.get(&loc).await;
    assert_eq!(status.header("range"), "0-1199");
    let resp = r
        .send(
            Method::PATCH,
            &loc,
            &[("content-range", "1200-2999")],
            data[1200..].to_vec(),
        )
        .await;
    assert_eq!(resp.status, StatusCode::ACCEPTED);
    let put = r
        .send(
            Method::PUT,
            &format!("{loc}?digest={d}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(
        put.status,
        StatusCode::CREATED,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    assert_eq!(
        &r.get(&format!("/v2/resume/blobs/{d}")).await.body[..],
        &data[..]
    );
}

#[tokio::test]
async fn cancel_upload_and_unknown_sessions() {
    let r = reg();
    let post = r
        .send(Method::POST, "/v2/u/blobs/uploads/", &[], Body::empty())
        .await;
    let loc = post.header("location").to_owned();
    assert_eq!(
        r.send(Method::DELETE, &loc, &[], Body::empty())
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    r.get(&loc)
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    r.send(Method::PATCH, &loc, &[], b"x".to_vec())
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    r.get("/v2/u/blobs/uploads/not-a-uuid")
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    // A session id from another repository is unknown here.
    let post = r
        .send(Method::POST, "/v2/u/blobs/uploads/", &[], Body::empty())
        .await;
    let id = post.header("docker-upload-uuid").to_owned();
    r.get(&format!("/v2/v/blobs/uploads/{id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn cross_repository_mount() {
    let r = reg();
    let d = r.push_blob("src/repo", b"shared layer").await;
    let m = r
        .send(
            Method::POST,
            &format!("/v2/dst/repo/blobs/uploads/?mount={d}&from=src/repo"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(m.status, StatusCode::CREATED);
    assert_eq!(m.header("location"), format!("/v2/dst/repo/blobs/{d}"));
    assert_eq!(
        &r.get(&format!("/v2/dst/repo/blobs/{d}")).await.body[..],
        b"shared layer"
    );
    // Not in `from`: an ordinary upload session instead.
    let other = Digest::sha256(b"absent");
    let m = r
        .send(
            Method::POST,
            &format!("/v2/dst/repo/blobs/uploads/?mount={other}&from=src/repo"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(m.status, StatusCode::ACCEPTED);
    assert!(m
        .header("location")
        .starts_with("/v2/dst/repo/blobs/uploads/"));
    r.send(
        Method::POST,
        "/v2/dst/blobs/uploads/?mount=sha256:1&from=src/repo",
        &[],
        Body::empty(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
    r.send(
        Method::POST,
        &format!("/v2/dst/blobs/uploads/?mount={d}&from=../x"),
        &[],
        Body::empty(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "NAME_INVALID");
}

#[tokio::test]
async fn manifests_of_every_kind_round_trip_with_their_content_type() {
    let r = reg();
    for (i, mt) in [OCI_MANIFEST, DOCKER_MANIFEST].iter().enumerate() {
        let (d, bytes) = push_image(&r, "m/img", &format!("t{i}"), mt, mt).await;
        for uri in [
            format!("/v2/m/img/manifests/t{i}"),
            format!("/v2/m/img/manifests/{d}"),
        ] {
            let get = r.get(&uri).await;
            assert_eq!(get.status, StatusCode::OK);
            assert_eq!(get.header("content-type"), *mt);
            assert_eq!(get.header("docker-content-digest"), d.to_string());
            assert_eq!(&get.body[..], &bytes[..], "exact bytes");
            let head = r.send(Method::HEAD, &uri, &[], Body::empty()).await;
            assert_eq!(head.status, StatusCode::OK);
            assert_eq!(head.header("content-length"), bytes.len().to_string());
            assert_eq!(head.header("content-type"), *mt);
        }
    }
    // Indexes: children need not exist yet.
    let child = Digest::sha256(b"child that is not pushed");
    for (mt, child_mt, tag) in [
        (OCI_INDEX, OCI_MANIFEST, "idx"),
        (DOCKER_LIST, DOCKER_MANIFEST, "list"),
    ] {
        let idx = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": mt,
            "manifests": [{"mediaType": child_mt, "digest": child.to_string(), "size": 10,
                            "platform": {"os": "linux", "architecture": "amd64"}}]
        }))
        .unwrap();
        let put = r.put_manifest("m/img", tag, mt, &idx).await;
        assert_eq!(
            put.status,
            StatusCode::CREATED,
            "{}",
            String::from_utf8_lossy(&put.body)
        );
        let get = r.get(&format!("/v2/m/img/manifests/{tag}")).await;
        assert_eq!(get.header("content-type"), mt);
        assert_eq!(&get.body[..], &idx[..]);
    }
    // PUT by digest must match the body.
    let (_, bytes) = push_image(&r, "m/img", "t9", OCI_MANIFEST, "by-digest").await;
    let d = Digest::sha256(&bytes);
    let ok = r
        .put_manifest("m/img", &d.to_string(), OCI_MANIFEST, &bytes)
        .await;
    assert_eq!(ok.status, StatusCode::CREATED);
    assert_eq!(ok.header("location"), format!("/v2/m/img/manifests/{d}"));
    let wrong = Digest::sha256(b"nope");
    r.put_manifest("m/img", &wrong.to_string(), OCI_MANIFEST, &bytes)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

#[tokio::test]
async fn manifest_errors() {
    let r = reg();
    let missing = Digest::sha256(b"never pushed");
    let c = r.push_blob("e/img", b"{}").await;
    let m = image_manifest(OCI_MANIFEST, (&c, 2), &[(&missing, 12)], json!({}));
    let resp = r.put_manifest("e/img", "v1", OCI_MANIFEST, &m).await;
    resp.assert_error(StatusCode::BAD_REQUEST, "MANIFEST_BLOB_UNKNOWN");
    assert_eq!(
        resp.json()["errors"][0]["detail"]["digest"],
        missing.to_string()
    );
    r.push_blob("e/other", b"never pushed").await;
    let huge = vec![b' '; 4 * 1024 * 1024 + 1];
    // PUT e/img:v1 with (case, content type, body): (status, error code).
    let puts: [(&str, &str, &[u8], StatusCode, &str); 5] = [
        (
            "the layer exists in another repository only: still unknown here",
            OCI_MANIFEST,
            &m,
            StatusCode::BAD_REQUEST,
            "MANIFEST_BLOB_UNKNOWN",
        ),
        (
            "not JSON",
            OCI_MANIFEST,
            b"not json",
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
        ),
        (
            "an image manifest sent as an index",
            OCI_INDEX,
            &m,
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
        ),
        (
            "schema 1",
            "application/vnd.docker.distribution.manifest.v1+json",
            br#"{"schemaVersion":1}"#,
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
        ),
        (
            "over 4 MiB",
            OCI_MANIFEST,
            &huge,
            StatusCode::PAYLOAD_TOO_LARGE,
            "MANIFEST_INVALID",
        ),
    ];
    for (case, ct, body, status, code) in puts {
        println!("PUT case: {case}");
        r.put_manifest("e/img", "v1", ct, body)
            .await
            .assert_error(status, code);
    }
    let missing_uri = format!("/v2/e/img/manifests/{missing}");
    let gets = [
        (
            "/v2/e/img/manifests/nope",
            StatusCode::NOT_FOUND,
            "MANIFEST_UNKNOWN",
        ),
        (&missing_uri, StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
        (
            "/v2/e/img/manifests/sha256:123",
            StatusCode::BAD_REQUEST,
            "DIGEST_INVALID",
        ),
        (
            "/v2/e/img/manifests/-bad",
            StatusCode::BAD_REQUEST,
            "MANIFEST_INVALID",
        ),
        (
            "/v2/E/img/manifests/v1",
            StatusCode::BAD_REQUEST,
            "NAME_INVALID",
        ),
    ];
    for (uri, status, code) in gets {
        println!("GET case: {uri}");
        r.get(uri).await.assert_error(status, code);
    }
}

#[tokio::test]
async fn delete_by_tag_and_by_digest() {
    let r = reg();
    let (d, _) = push_image(&r, "d/img", "a", OCI_MANIFEST, "del").await;
    let resp = r
        .send(
            Method::PUT,
            "/v2/d/img/manifests/b",
            &[("content-type", OCI_MANIFEST)],
            r.get("/v2/d/img/manifests/a").await.body,
        )
        .await;
    assert_eq!(resp.status, StatusCode::CREATED);
    // By tag: only that tag goes.
    let del = r
        .send(Method::DELETE, "/v2/d/img/manifests/a", &[], Body::empty())
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    r.get("/v2/d/img/manifests/a")
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    assert_eq!(r.get("/v2/d/img/manifests/b").await.status, StatusCode::OK);
    // By digest: the revision and every tag on it go.
    let del = r
        .send(
            Method::DELETE,
            &format!("/v2/d/img/manifests/{d}"),
            &[],
            Body::empty(),
        )
        .await;
    assert_eq!(del.status, StatusCode::ACCEPTED);
    r.get("/v2/d/img/manifests/b")
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    r.get(&format!("/v2/d/img/manifests/{d}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    r.send(
        Method::DELETE,
        &format!("/v2/d/img/manifests/{d}"),
        &[],
        Body::empty(),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");
    assert_eq!(r.get("/v2/d/img/tags/list").await.json()["tags"], json!([]));
}

#[tokio::test]
async fn tags_list_and_catalog_paginate() {
    let r = reg();
    let (_, bytes) = push_image(&r, "p/one", "t0", OCI_MANIFEST, "p").await;
    for t in ["t1", "t2", "t3", "t4"] {
        assert_eq!(
            r.put_manifest("p/one", t, OCI_MANIFEST, &bytes)
                .await
                .status,
            StatusCode::CREATED
        );
    }
    for n in ["p/two", "a/zero"] {
        push_image(&r, n, "x", OCI_MANIFEST, n).await;
    }
    let all = r.get("/v2/p/one/tags/list").await;
    assert_eq!(
        all.json(),
        json!({"name": "p/one", "tags": ["t0", "t1", "t2", "t3", "t4"]})
    );
    let page = r.get("/v2/p/one/tags/list?n=2").await;
    assert_eq!(page.json()["tags"], json!(["t0", "t1"]));
    assert_eq!(
        page.header("link"),
        "</v2/p/one/tags/list?n=2&last=t1>; rel=\"next\""
    );
    let page = r.get("/v2/p/one/tags/list?n=2&last=t3").await;
    assert_eq!(page.json()["tags"], json!(["t4"]));
    assert!(page.headers.get("link").is_none());
    r.get("/v2/p/nope/tags/list")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");

    let cat = r.get("/v2/_catalog").await;
    assert_eq!(
        cat.json(),
        json!({"repositories": ["a/zero", "p/one", "p/two"]})
    );
    let cat = r.get("/v2/_catalog?n=1&last=a/zero").await;
    assert_eq!(cat.json(), json!({"repositories": ["p/one"]}));
    assert_eq!(
        cat.header("link"),
        "</v2/_catalog?n=1&last=p/one>; rel=\"next\""
    );
}

#[tokio::test]
async fn referrers_api_lists_manifests_with_a_subject() {
    let r = reg();
    let (subject, subject_bytes) = push_image(&r, "ref/img", "v1", OCI_MANIFEST, "subject").await;
    let empty = r.push_blob("ref/img", b"{}").await;
    let sig_layer = r.push_blob("ref/img", b"signature").await;
    let mut sig = serde_json::from_slice::<Value>(&image_manifest(
        OCI_MANIFEST,
        (&empty, 2),
        &[(&sig_layer, 9)],
        json!({}),
    ))
    .unwrap();
    sig["config"]["mediaType"] = json!("application/vnd.oci.empty.v1+json");
    sig["artifactType"] = json!("application/vnd.example.sig");
    sig["subject"] = json!({"mediaType": OCI_MANIFEST, "digest": subject.to_string(), "size": subject_bytes.len()});
    sig["annotations"] = json!({"org.example": "yes"});
    let sig = serde_json::to_vec(&sig).unwrap();
    let sig_d = Digest::sha256(&sig);
    let put = r
        .put_manifest("ref/img", &sig_d.to_string(), OCI_MANIFEST, &sig)
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    assert_eq!(put.header("oci-subject"), subject.to_string());

    let list = r.get(&format!("/v2/ref/img/referrers/{subject}")).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.header("content-type"), OCI_INDEX);
    let v = list.json();
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v["manifests"][0]["digest"], sig_d.to_string());
    assert_eq!(
        v["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );
    assert_eq!(v["manifests"][0]["annotations"]["org.example"], "yes");

    let filtered = r
        .get(&format!(
            "/v2/ref/img/referrers/{subject}?artifactType=application/vnd.other"
        ))
        .await;
    assert_eq!(filtered.header("oci-filters-applied"), "artifactType");
    assert_eq!(filtered.json()["manifests"], json!([]));
    // Unknown subjects give an empty index, not a 404.
    let none = r
        .get(&format!("/v2/ref/img/referrers/{}", Digest::sha256(b"z")))
        .await;
    assert_eq!(none.status, StatusCode::OK);
    assert_eq!(none.json()["manifests"], json!([]));
    r.get("/v2/ref/img/referrers/sha256:bad")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "DIGEST_INVALID");
}

/// The distribution spec's push with tags: `PUT …/manifests/<digest>?tag=a&tag=b` tags the
/// manifest with each, and the answer names each in an `OCI-Tag` header (issue 14: cosign's
/// `sha256-<hex>.sig` tags are set this way by clients that support it).
#[tokio::test]
async fn manifest_put_by_digest_with_tag_query_parameters_tags_it() {
    let r = reg();
    let (_, m) = push_image(&r, "tq/img", "seed", OCI_MANIFEST, "tq").await;
    let d = Digest::sha256(&m);
    let sig_tag = format!("sha256-{}.sig", d.hex());
    let put = r
        .send(
            Method::PUT,
            &format!("/v2/tq/img/manifests/{d}?tag=v1&tag={sig_tag}&tag=v1"),
            &[("content-type", OCI_MANIFEST)],
            m.clone(),
        )
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    let tags: Vec<&str> = put
        .headers
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(tags, ["v1", sig_tag.as_str()]);
    for t in ["v1", sig_tag.as_str()] {
        let got = r.get(&format!("/v2/tq/img/manifests/{t}")).await;
        assert_eq!(got.status, StatusCode::OK, "{t}");
        assert_eq!(got.header("docker-content-digest"), d.to_string());
    }
    let list = r.get("/v2/tq/img/tags/list").await.json();
    assert_eq!(list["tags"], json!(["seed", sig_tag, "v1"]));
    // No tag query: no OCI-Tag header (clients then tag by a PUT per tag).
    let plain = r
        .put_manifest("tq/img", &d.to_string(), OCI_MANIFEST, &m)
        .await;
    assert_eq!(plain.status, StatusCode::CREATED);
    assert!(plain.headers.get("oci-tag").is_none());
    // A tag that is not a tag is refused, and nothing is stored under it.
    r.send(
        Method::PUT,
        &format!("/v2/tq/img/manifests/{d}?tag=..bad"),
        &[("content-type", OCI_MANIFEST)],
        m.clone(),
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "MANIFEST_INVALID");
    assert_eq!(
        r.get("/v2/tq/img/manifests/..bad").await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn unsupported_methods_and_unknown_endpoints() {
    let r = reg();
    r.send(Method::PATCH, "/v2/x/manifests/latest", &[], Body::empty())
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    r.send(Method::POST, "/v2/x/tags/list", &[], Body::empty())
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    r.get("/v2/x/whatever/y")
        .await
        .assert_error(StatusCode::NOT_FOUND, "NAME_UNKNOWN");
}

#[tokio::test]
async fn read_only_refuses_writes_but_serves_reads() {
    let dir = tempfile::tempdir().unwrap();
    let rw = AppState::new(dir.path(), Options::default());
    let writer = Reg {
        app: router(rw.clone()),
        state: rw,
        _dir: tempfile::tempdir().unwrap(),
    };
    let d = writer.push_blob("ro/x", b"data").await;
    let ro_state = AppState::new(
        dir.path(),
        Options {
            read_only: true,
            ..Options::default()
        },
    );
    let ro = Reg {
        app: router(ro_state.clone()),
        state: ro_state,
        _dir: tempfile::tempdir().unwrap(),
    };
    assert_eq!(
        &ro.get(&format!("/v2/ro/x/blobs/{d}")).await.body[..],
        b"data"
    );
    ro.send(Method::POST, "/v2/ro/x/blobs/uploads/", &[], Body::empty())
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
    ro.send(
        Method::DELETE,
        &format!("/v2/ro/x/blobs/{d}"),
        &[],
        Body::empty(),
    )
    .await
    .assert_error(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED");
}

#[tokio::test]
async fn basic_auth_with_bcrypt_htpasswd() {
    let hash = bcrypt::hash("pw", 4).unwrap().replacen("$2b$", "$2y$", 1);
    let users = Htpasswd::parse(&format!("ann:{hash}\n"), "test").unwrap();
    let r = reg_with(Options {
        htpasswd: Some(users),
        ..Options::default()
    });
    let resp = r.get("/v2/").await;
    resp.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    assert!(resp.header("www-authenticate").starts_with("Basic realm="));
    let b64 = |s: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(s)
        )
    };
    let bad = r
        .send(
            Method::GET,
            "/v2/",
            &[("authorization", &b64("ann:wrong"))],
            Body::empty(),
        )
        .await;
    bad.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
    let ok = r
        .send(
            Method::GET,
            "/v2/",
            &[("authorization", &b64("ann:pw"))],
            Body::empty(),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    r.get("/v2/_catalog")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "UNAUTHORIZED");
}

/// Concurrent uploads of the same blob all succeed and leave one intact copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_uploads_of_one_blob() {
    let r = std::sync::Arc::new(reg());
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (r, data) = (r.clone(), data.clone());
        tasks.push(tokio::spawn(async move {
            r.push_blob(&format!("same/r{}", i % 4), &data).await
        }));
    }
    let d = Digest::sha256(&data);
    for t in tasks {
        assert_eq!(t.await.unwrap(), d);
    }
    assert_eq!(
        std::fs::read(r.state.storage().blob_path(&d)).unwrap(),
        data
    );
}

#[tokio::test]
async fn stale_upload_sessions_are_purged() {
    let r = reg_with(Options {
        upload_ttl: Duration::ZERO,
        ..Options::default()
    });
    let post = r
        .send(Method::POST, "/v2/st/blobs/uploads/", &[], Body::empty())
        .await;
    let loc = post.header("location").to_owned();
    assert_eq!(r.state.purge_stale_uploads().await.unwrap(), 1);
    r.get(&loc)
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN");
    let fresh = reg();
    fresh
        .send(Method::POST, "/v2/st/blobs/uploads/", &[], Body::empty())
        .await;
    assert_eq!(fresh.state.purge_stale_uploads().await.unwrap(), 0);
}

#[tokio::test]
async fn gc_deletes_only_unreferenced_blobs() {
    let r = reg();
    let (m, bytes) = push_image(&r, "g/img", "v1", OCI_MANIFEST, "gc").await;
    let orphan = r.push_blob("g/img", b"orphan layer").await;
    let storage = r.state.storage().clone();
    let dry = collect_garbage(&storage, true, Duration::ZERO).unwrap();
    assert_eq!(dry.deleted, vec![orphan.clone()]);
    assert!(storage.blob_path(&orphan).exists());
    // Young blobs are kept.
    let young = collect_garbage(&storage, false, Duration::from_secs(3600)).unwrap();
    assert!(young.deleted.is_empty());
    let report = collect_garbage(&storage, false, Duration::ZERO).unwrap();
    assert_eq!(report.deleted, vec![orphan.clone()]);
    assert!(!storage.blob_path(&orphan).exists());
    r.get(&format!("/v2/g/img/blobs/{orphan}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "BLOB_UNKNOWN");
    assert_eq!(&r.get("/v2/g/img/manifests/v1").await.body[..], &bytes[..]);
    // Deleting the manifest makes its blobs collectable.
    r.send(
        Method::DELETE,
        &format!("/v2/g/img/manifests/{m}"),
        &[],
        Body::empty(),
    )
    .await;
    let report = collect_garbage(&storage, false, Duration::ZERO).unwrap();
    assert_eq!(report.deleted.len(), 3, "{report}");
}
