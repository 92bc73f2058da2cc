//! The OCI distribution v1.1 endpoints.
//!
//! Repository names contain `/`, so the path after `/v2/` is parsed here from the right (a
//! tag, digest or upload id never contains `/`) instead of by axum's matcher. Every value
//! that becomes part of a filesystem path is validated against the spec grammar first.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use ddiff_core::reference::{validate_repository, validate_tag};
use ddiff_core::{Digest, ManifestError, RawManifest};
use futures::StreamExt;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::error::{ErrorCode, RegistryError, Result};
use super::storage::{random_id, rfc3339, valid_upload_id, Storage};
use super::uploads::{self, AppendError};
use super::AppState;

const DIGEST_HEADER: &str = "docker-content-digest";
const UPLOAD_UUID_HEADER: &str = "docker-upload-uuid";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A parsed `/v2/<name>/…` path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: String, reference: Reference },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: String, digest: Digest },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: String },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: String, id: String },
    /// `/v2/<name>/tags/list`
    Tags { name: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: String, digest: Digest },
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reference {
    Tag(String),
    Digest(Digest),
}

impl std::fmt::Display for Reference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reference::Tag(t) => f.write_str(t),
            Reference::Digest(d) => write!(f, "{d}"),
        }
    }
}

fn not_found() -> RegistryError {
    RegistryError::new(ErrorCode::NameUnknown, "no such endpoint").with_detail(json!({}))
}

fn parse_name(name: &str) -> Result<String> {
    validate_repository(name)
        .map_err(|e| RegistryError::new(ErrorCode::NameInvalid, e.to_string()))?;
    Ok(name.to_owned())
}

/// Parses a digest from a request; anything wrong is the client's `DIGEST_INVALID`.
pub(crate) fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| RegistryError::new(ErrorCode::DigestInvalid, e.to_string()))
}

/// Splits the path after `/v2/` into a route.
pub(crate) fn parse_route(path: &str) -> Result<Route> {
    let rest = path.strip_prefix("/v2/").ok_or_else(not_found)?;
    for suffix in ["/blobs/uploads/", "/blobs/uploads"] {
        if let Some(name) = rest.strip_suffix(suffix) {
            return Ok(Route::UploadStart {
                name: parse_name(name)?,
            });
        }
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Ok(Route::Tags {
            name: parse_name(name)?,
        });
    }
    let (head, last) = rest.rsplit_once('/').ok_or_else(not_found)?;
    let (name, kind) = head.rsplit_once('/').ok_or_else(not_found)?;
    match kind {
        "manifests" => {
            let name = parse_name(name)?;
            let reference = if last.contains(':') {
                Reference::Digest(parse_digest(last)?)
            } else {
                validate_tag(last).map_err(|e| {
                    RegistryError::new(ErrorCode::ManifestInvalid, e.to_string())
                        .with_status(StatusCode::BAD_REQUEST)
                })?;
                Reference::Tag(last.to_owned())
            };
            Ok(Route::Manifest { name, reference })
        }
        "blobs" => Ok(Route::Blob {
            name: parse_name(name)?,
            digest: parse_digest(last)?,
        }),
        "referrers" => Ok(Route::Referrers {
            name: parse_name(name)?,
            digest: parse_digest(last)?,
        }),
        "uploads" => {
            let name = name.strip_suffix("/blobs").ok_or_else(not_found)?;
            let name = parse_name(name)?;
            if !valid_upload_id(last) {
                return Err(RegistryError::new(
                    ErrorCode::BlobUploadUnknown,
                    "upload id is not a UUID",
                ));
            }
            Ok(Route::Upload {
                name,
                id: last.to_owned(),
            })
        }
        _ => Err(not_found()),
    }
}

/// `GET /v2/`: the API version check (auth is applied before this runs).
pub(crate) async fn base() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], "{}").into_response()
}

/// Everything under `/v2/<name>/`.
pub(crate) async fn dispatch(State(state): State<AppState>, req: Request) -> Response {
    match dispatch_inner(state, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn dispatch_inner(state: AppState, req: Request) -> Result<Response> {
    let route = parse_route(req.uri().path())?;
    let query = parse_query(req.uri().query());
    let method = req.method().clone();
    let head = method == Method::HEAD;
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    match (route, method) {
        (Route::Manifest { name, reference }, Method::GET | Method::HEAD) => {
            get_manifest(&state, name, reference, head).await
        }
        (Route::Manifest { name, reference }, Method::PUT) => {
            put_manifest(&state, name, reference, &headers, body).await
        }
        (Route::Manifest { name, reference }, Method::DELETE) => {
            delete_manifest(&state, name, reference).await
        }
        (Route::Blob { name, digest }, Method::GET | Method::HEAD) => {
            get_blob(&state, name, digest, &headers, head).await
        }
        (Route::Blob { name, digest }, Method::DELETE) => delete_blob(&state, name, digest).await,
        (Route::UploadStart { name }, Method::POST) => {
            start_upload(&state, name, &query, &headers, body).await
        }
        (Route::Upload { name, id }, Method::GET) => upload_status(&state, name, id).await,
        (Route::Upload { name, id }, Method::PATCH) => {
            patch_upload(&state, name, id, &headers, body).await
        }
        (Route::Upload { name, id }, Method::PUT) => {
            put_upload(&state, name, id, &query, &headers, body).await
        }
        (Route::Upload { name, id }, Method::DELETE) => cancel_upload(&state, name, id).await,
        (Route::Tags { name }, Method::GET) => list_tags(&state, name, &query).await,
        (Route::Referrers { name, digest }, Method::GET) => {
            referrers(&state, name, digest, &query).await
        }
        (_, m) => Err(RegistryError::new(
            ErrorCode::Unsupported,
            format!("method {m} is not supported on this endpoint"),
        )),
    }
}

fn parse_query(q: Option<&str>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.insert(percent_decode(k), percent_decode(v));
    }
    out
}

fn percent_decode(s: &str) -> String {
    fn hexval(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|v| v as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(if b[i] == b'+' { b' ' } else { b[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs blocking storage work on the blocking pool.
async fn blocking<T, F>(state: &AppState, what: &'static str, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Storage) -> io::Result<T> + Send + 'static,
{
    let inner = state.inner.clone();
    tokio::task::spawn_blocking(move || f(&inner.storage))
        .await
        .map_err(|e| RegistryError::internal(what, e))?
        .map_err(|e| RegistryError::internal(what, e))
}

fn hv(s: &str) -> HeaderValue {
    // Every value passed here is built from validated names, digests and numbers.
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn manifest_unknown(name: &str, reference: &Reference) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestUnknown, "manifest unknown")
        .with_detail(json!({ "name": name, "reference": reference.to_string() }))
}

async fn get_manifest(
    state: &AppState,
    name: String,
    reference: Reference,
    head: bool,
) -> Result<Response> {
    let r = reference.to_string();
    let n = name.clone();
    let found = blocking(state, "reading a manifest", move |s| {
        let digest = if r.contains(':') {
            let d = Digest::parse(&r).map_err(io::Error::other)?;
            if !s.has_revision(&n, &d)? {
                return Ok(None);
            }
            d
        } else {
            match s.resolve_tag(&n, &r)? {
                Some(d) => d,
                None => return Ok(None),
            }
        };
        Ok(s.read_blob(&digest)?.map(|b| (digest, b)))
    })
    .await?;
    let (digest, bytes) = found.ok_or_else(|| manifest_unknown(&name, &reference))?;
    let meta = state.manifest_meta(&digest, &bytes);
    let len = bytes.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, hv(&meta.media_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(DIGEST_HEADER, hv(&digest.to_string()));
    h.insert(header::ETAG, hv(&format!("\"{digest}\"")));
    Ok(resp)
}

async fn read_limited(body: Body, limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            RegistryError::new(ErrorCode::ManifestInvalid, format!("reading the body: {e}"))
        })?;
        if out.len() + chunk.len() > limit {
            return Err(RegistryError::new(
                ErrorCode::ManifestInvalid,
                format!("manifest is over the {limit}-byte limit"),
            )
            .with_status(StatusCode::PAYLOAD_TOO_LARGE));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn put_manifest(
    state: &AppState,
    name: String,
    reference: Reference,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let bytes = read_limited(body, ddiff_core::manifest::MAX_MANIFEST_BYTES).await?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let expected = match &reference {
        Reference::Digest(d) => Some(d.clone()),
        Reference::Tag(_) => None,
    };
    let raw = RawManifest::parse_with_digest(bytes, content_type.as_deref(), expected.as_ref())
        .map_err(|e| match e {
            ManifestError::DigestMismatch { expected, found } => RegistryError::new(
                ErrorCode::DigestInvalid,
                "manifest digest does not match the reference",
            )
            .with_detail(json!({ "expected": expected.to_string(), "found": found.to_string() })),
            ManifestError::TooLarge { .. } => {
                RegistryError::new(ErrorCode::ManifestInvalid, e.to_string())
                    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            e => RegistryError::new(ErrorCode::ManifestInvalid, e.to_string()),
        })?;
    let raw = Arc::new(raw);
    let digest = raw.digest().clone();
    let tag = match &reference {
        Reference::Tag(t) => Some(t.clone()),
        Reference::Digest(_) => None,
    };
    // The blobs an image manifest needs must be in this repository; an index's children
    // and a subject may arrive later (the spec allows both), foreign layers live elsewhere.
    let needed: Vec<Digest> = match raw.as_image() {
        Some(m) => std::iter::once(&m.config)
            .chain(m.layers.iter())
            .filter(|d| d.urls.is_empty())
            .map(|d| d.digest.clone())
            .collect(),
        None => Vec::new(),
    };
    let (n, r2) = (name.clone(), raw.clone());
    let missing = blocking(state, "storing a manifest", move |s| {
        for d in &needed {
            if !s.repo_has_blob(&n, d)? || s.blob_size(d)?.is_none() {
                return Ok(Some(d.clone()));
            }
        }
        s.write_blob_bytes(&n, r2.digest(), r2.bytes())?;
        s.link_manifest(&n, r2.digest(), tag.as_deref())?;
        Ok(None)
    })
    .await?;
    if let Some(d) = missing {
        return Err(RegistryError::new(
            ErrorCode::ManifestBlobUnknown,
            format!("manifest references blob {d}, which is not in repository {name}"),
        )
        .with_detail(json!({ "digest": d.to_string() })));
    }
    state.remember_manifest(&raw);
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/manifests/{digest}")),
    );
    h.insert(DIGEST_HEADER, hv(&digest.to_string()));
    let subject = raw
        .as_image()
        .and_then(|m| m.subject.as_ref())
        .or_else(|| raw.as_index().and_then(|i| i.subject.as_ref()));
    if let Some(s) = subject {
        h.insert("oci-subject", hv(&s.digest.to_string()));
    }
    Ok(resp)
}

async fn delete_manifest(state: &AppState, name: String, reference: Reference) -> Result<Response> {
    let n = name.clone();
    let deleted = match &reference {
        Reference::Digest(d) => {
            let d = d.clone();
            blocking(state, "deleting a manifest", move |s| {
                s.delete_manifest(&n, &d)
            })
            .await?
        }
        Reference::Tag(t) => {
            let t = t.clone();
            blocking(state, "deleting a tag", move |s| s.delete_tag(&n, &t)).await?
        }
    };
    if !deleted {
        return Err(manifest_unknown(&name, &reference));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

fn blob_unknown(d: &Digest) -> RegistryError {
    RegistryError::new(ErrorCode::BlobUnknown, "blob unknown to registry")
        .with_detail(json!({ "digest": d.to_string() }))
}

/// Parses a single `bytes=` range against a blob of `size` bytes. `Ok(None)`: serve it all.
pub(crate) fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        // Multiple ranges: allowed to be ignored (RFC 9110 §14.2).
        return Ok(None);
    }
    let bad = || RegistryError::range_not_satisfiable(size);
    let (a, b) = spec.split_once('-').ok_or_else(bad)?;
    let (a, b) = (a.trim(), b.trim());
    let (start, end) = if a.is_empty() {
        let n: u64 = b.parse().map_err(|_| bad())?;
        if n == 0 || size == 0 {
            return Err(bad());
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().map_err(|_| bad())?;
        let end = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>()
                .map_err(|_| bad())?
                .min(size.saturating_sub(1))
        };
        (start, end)
    };
    if start >= size || end < start {
        return Err(bad());
    }
    Ok(Some((start, end)))
}

async fn get_blob(
    state: &AppState,
    name: String,
    digest: Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response> {
    let d = digest.clone();
    let size = blocking(state, "looking up a blob", move |s| {
        if !s.repo_has_blob(&name, &d)? {
            return Ok(None);
        }
        s.blob_size(&d)
    })
    .await?
    .ok_or_else(|| blob_unknown(&digest))?;
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        Some(r) => parse_range(r, size)?,
        None => None,
    };
    let (status, start, len) = match range {
        Some((a, b)) => (StatusCode::PARTIAL_CONTENT, a, b - a + 1),
        None => (StatusCode::OK, 0, size),
    };
    let body = if head {
        Body::empty()
    } else {
        let path = state.inner.storage.blob_path(&digest);
        let mut file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| RegistryError::internal("opening a blob", e))?;
        if start > 0 {
            file.seek(io::SeekFrom::Start(start))
                .await
                .map_err(|e| RegistryError::internal("seeking in a blob", e))?;
        }
        file.set_max_buf_size(1 << 20);
        let stream = tokio_util::io::ReaderStream::with_capacity(file.take(len), 1 << 20);
        Body::from_stream(stream)
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(DIGEST_HEADER, hv(&digest.to_string()));
    h.insert(header::ETAG, hv(&format!("\"{digest}\"")));
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            hv(&format!("bytes {}-{}/{size}", start, start + len - 1)),
        );
    }
    Ok(resp)
}

async fn delete_blob(state: &AppState, name: String, digest: Digest) -> Result<Response> {
    let d = digest.clone();
    if !blocking(state, "deleting a blob link", move |s| {
        s.unlink_blob(&name, &d)
    })
    .await?
    {
        return Err(blob_unknown(&digest));
    }
    Ok(StatusCode::ACCEPTED.into_response())
}

/// Creates an upload session directory with an empty `data` and a `startedat`.
async fn new_session(state: &AppState, name: &str) -> Result<String> {
    let id = random_id();
    let dir = state.inner.storage.upload_dir(name, &id);
    blocking(state, "creating an upload session", move |_| {
        std::fs::create_dir_all(&dir)?;
        std::fs::File::create(dir.join("data"))?;
        std::fs::write(dir.join("startedat"), rfc3339(std::time::SystemTime::now()))?;
        Ok(())
    })
    .await?;
    state.inner.sessions.insert_fresh(&id);
    Ok(id)
}

fn upload_response(status: StatusCode, name: &str, id: &str, offset: u64) -> Response {
    let mut resp = status.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/blobs/uploads/{id}")),
    );
    h.insert(
        header::RANGE,
        hv(&format!("0-{}", offset.saturating_sub(1))),
    );
    h.insert(UPLOAD_UUID_HEADER, hv(id));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

fn created_blob(name: &str, digest: &Digest) -> Response {
    let mut resp = StatusCode::CREATED.into_response();
    let h = resp.headers_mut();
    h.insert(header::LOCATION, hv(&format!("/v2/{name}/blobs/{digest}")));
    h.insert(DIGEST_HEADER, hv(&digest.to_string()));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(0));
    resp
}

async fn start_upload(
    state: &AppState,
    name: String,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    if let Some(mount) = query.get("mount") {
        let digest = parse_digest(mount)?;
        let from = match query.get("from") {
            Some(f) => Some(parse_name(f)?),
            None => None,
        };
        let (n, d) = (name.clone(), digest.clone());
        let mounted = blocking(state, "mounting a blob", move |s| {
            let available = match &from {
                Some(f) => s.repo_has_blob(f, &d)?,
                None => true,
            };
            if available && s.blob_size(&d)?.is_some() {
                s.link_blob(&n, &d)?;
                return Ok(true);
            }
            Ok(false)
        })
        .await?;
        if mounted {
            return Ok(created_blob(&name, &digest));
        }
    } else if let Some(d) = query.get("digest") {
        // Single-request monolithic upload: the body is the whole blob.
        let digest = parse_digest(d)?;
        let id = new_session(state, &name).await?;
        let r = finish_upload(state, &name, &id, &digest, headers, body, true).await;
        state.inner.sessions.remove(&id);
        return r;
    }
    let id = new_session(state, &name).await?;
    Ok(upload_response(StatusCode::ACCEPTED, &name, &id, 0))
}

fn upload_unknown(id: &str) -> RegistryError {
    RegistryError::new(
        ErrorCode::BlobUploadUnknown,
        "blob upload unknown to registry",
    )
    .with_detail(json!({ "uuid": id }))
}

/// The current offset of a session. An unknown id is also dropped from the in-memory map,
/// so requests for made-up ids cannot grow it.
async fn session_offset(state: &AppState, name: &str, id: &str) -> Result<u64> {
    let data = state.inner.storage.upload_dir(name, id).join("data");
    match tokio::fs::metadata(&data).await {
        Ok(m) => Ok(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            state.inner.sessions.remove(id);
            Err(upload_unknown(id))
        }
        Err(e) => Err(RegistryError::internal("reading an upload session", e)),
    }
}

async fn upload_status(state: &AppState, name: String, id: String) -> Result<Response> {
    let session = state.inner.sessions.get(&id);
    let _guard = session.lock().await;
    let offset = session_offset(state, &name, &id).await?;
    Ok(upload_response(StatusCode::NO_CONTENT, &name, &id, offset))
}

/// `Content-Range: <start>-<end>` (the spec's form; `bytes ` prefix and `/total` tolerated).
fn parse_content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>> {
    let Some(v) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let bad = || RegistryError::new(ErrorCode::BlobUploadInvalid, "malformed Content-Range");
    let s = v.to_str().map_err(|_| bad())?.trim();
    let s = s.strip_prefix("bytes").map(str::trim_start).unwrap_or(s);
    let s = s.split('/').next().unwrap_or(s).trim();
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.trim().parse().map_err(|_| bad())?;
    let b: u64 = b.trim().parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    Ok(Some((a, b)))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Checks `Content-Range` against the session offset; returns the announced chunk length.
fn check_chunk(
    headers: &HeaderMap,
    offset: u64,
    name: &str,
    id: &str,
) -> Result<Option<u64>, Box<Response>> {
    let range = parse_content_range(headers).map_err(|e| Box::new(e.into_response()))?;
    let Some((a, b)) = range else {
        return Ok(None);
    };
    if a != offset {
        // Out of order: 416, with the offset the client should resume from.
        let mut resp = RegistryError::new(
            ErrorCode::BlobUploadInvalid,
            format!("chunk starts at {a}, but the upload is at offset {offset}"),
        )
        .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
        .into_response();
        let h = resp.headers_mut();
        h.insert(
            header::LOCATION,
            hv(&format!("/v2/{name}/blobs/uploads/{id}")),
        );
        h.insert(
            header::RANGE,
            hv(&format!("0-{}", offset.saturating_sub(1))),
        );
        h.insert(UPLOAD_UUID_HEADER, hv(id));
        return Err(Box::new(resp));
    }
    let len = b - a + 1;
    if let Some(cl) = content_length(headers) {
        if cl != len {
            return Err(RegistryError::new(
                ErrorCode::SizeInvalid,
                format!("Content-Range announces {len} bytes but Content-Length is {cl}"),
            )
            .into_response()
            .into());
        }
    }
    Ok(Some(len))
}

fn append_error(e: AppendError) -> RegistryError {
    match e {
        AppendError::Body(m) => RegistryError::new(
            ErrorCode::BlobUploadInvalid,
            format!("the request body broke off: {m}; query the upload for its offset and resume"),
        ),
        AppendError::Length { expected, found } => RegistryError::new(
            ErrorCode::SizeInvalid,
            format!("chunk announced {expected} bytes, body had {found}"),
        ),
        AppendError::TooLarge { limit } => RegistryError::new(
            ErrorCode::SizeInvalid,
            format!("blob is over this server's {limit}-byte limit"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE),
        AppendError::Io(e) => RegistryError::internal("writing an upload", e),
    }
}

async fn patch_upload(
    state: &AppState,
    name: String,
    id: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let session = state.inner.sessions.get(&id);
    let mut guard = session.lock().await;
    let offset = session_offset(state, &name, &id).await?;
    let range_len = match check_chunk(headers, offset, &name, &id) {
        Ok(l) => l,
        Err(resp) => return Ok(*resp),
    };
    let data = state.inner.storage.upload_dir(&name, &id).join("data");
    let new_offset = uploads::append(
        data,
        &mut guard,
        body,
        range_len,
        state.inner.options.max_blob_size,
    )
    .await
    .map_err(append_error)?;
    Ok(upload_response(
        StatusCode::ACCEPTED,
        &name,
        &id,
        new_offset,
    ))
}

async fn put_upload(
    state: &AppState,
    name: String,
    id: String,
    query: &BTreeMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    let digest = query.get("digest").ok_or_else(|| {
        RegistryError::new(ErrorCode::DigestInvalid, "the final PUT needs ?digest=")
    })?;
    let digest = parse_digest(digest)?;
    let r = finish_upload(state, &name, &id, &digest, headers, body, false).await;
    if r.is_ok() {
        state.inner.sessions.remove(&id);
    }
    r
}

/// Appends the last body to session `id`, verifies the whole upload against `digest`, and
/// moves it into the blob store. A digest mismatch cancels the session (as registry:2 does).
async fn finish_upload(
    state: &AppState,
    name: &str,
    id: &str,
    digest: &Digest,
    headers: &HeaderMap,
    body: Body,
    single_request: bool,
) -> Result<Response> {
    let session = state.inner.sessions.get(id);
    let mut guard = session.lock().await;
    let offset = session_offset(state, name, id).await?;
    let range_len = match check_chunk(headers, offset, name, id) {
        Ok(l) => l,
        Err(resp) => return Ok(*resp),
    };
    let dir = state.inner.storage.upload_dir(name, id);
    let data = dir.join("data");
    let appended = uploads::append(
        data.clone(),
        &mut guard,
        body,
        range_len,
        state.inner.options.max_blob_size,
    )
    .await;
    let cancel = |state: &AppState| {
        let dir = dir.clone();
        state.inner.sessions.remove(id);
        async move {
            let _ = tokio::fs::remove_dir_all(dir).await;
        }
    };
    if let Err(e) = appended {
        if single_request {
            cancel(state).await;
        }
        return Err(append_error(e));
    }
    let (found, size) = uploads::finish(data.clone(), &mut guard, digest.algorithm())
        .await
        .map_err(|e| RegistryError::internal("hashing an upload", e))?;
    if &found != digest {
        cancel(state).await;
        return Err(RegistryError::new(
            ErrorCode::DigestInvalid,
            "provided digest did not match uploaded content",
        )
        .with_detail(
            json!({ "expected": digest.to_string(), "found": found.to_string(), "size": size }),
        ));
    }
    let (n, d) = (name.to_owned(), digest.clone());
    blocking(state, "committing a blob", move |s| {
        s.commit_blob(&data, &d)?;
        s.link_blob(&n, &d)?;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
    .await?;
    Ok(created_blob(name, digest))
}

async fn cancel_upload(state: &AppState, name: String, id: String) -> Result<Response> {
    let session = state.inner.sessions.get(&id);
    let _guard = session.lock().await;
    session_offset(state, &name, &id).await?;
    let dir = state.inner.storage.upload_dir(&name, &id);
    tokio::fs::remove_dir_all(&dir)
        .await
        .map_err(|e| RegistryError::internal("cancelling an upload", e))?;
    state.inner.sessions.remove(&id);
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Applies `n`/`last` pagination; returns the page and whether more follow.
pub(crate) fn paginate(all: Vec<String>, query: &BTreeMap<String, String>) -> (Vec<String>, bool) {
    let mut items: Vec<String> = match query.get("last") {
        Some(last) if !last.is_empty() => all
            .into_iter()
            .filter(|t| t.as_str() > last.as_str())
            .collect(),
        _ => all,
    };
    match query.get("n").and_then(|n| n.parse::<usize>().ok()) {
        Some(n) if items.len() > n => {
            items.truncate(n);
            (items, n > 0)
        }
        _ => (items, false),
    }
}

fn next_link(path: &str, query: &BTreeMap<String, String>, page: &[String]) -> Option<HeaderValue> {
    let n = query.get("n")?;
    let last = page.last()?;
    Some(hv(&format!("<{path}?n={n}&last={last}>; rel=\"next\"")))
}

fn json_response(value: serde_json::Value, content_type: &'static str) -> Response {
    let mut resp = value.to_string().into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

async fn list_tags(
    state: &AppState,
    name: String,
    query: &BTreeMap<String, String>,
) -> Result<Response> {
    let n = name.clone();
    let tags = blocking(state, "listing tags", move |s| s.tags(&n))
        .await?
        .ok_or_else(|| {
            RegistryError::new(
                ErrorCode::NameUnknown,
                "repository name not known to registry",
            )
            .with_detail(json!({ "name": name }))
        })?;
    let (page, more) = paginate(tags, query);
    let mut resp = json_response(json!({ "name": name, "tags": page }), "application/json");
    if more {
        if let Some(link) = next_link(&format!("/v2/{name}/tags/list"), query, &page) {
            resp.headers_mut().insert(header::LINK, link);
        }
    }
    Ok(resp)
}

/// `GET /v2/_catalog`.
pub(crate) async fn catalog(State(state): State<AppState>, req: Request) -> Response {
    let query = parse_query(req.uri().query());
    let repos = match blocking(&state, "listing repositories", |s| s.repositories()).await {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let (page, more) = paginate(repos, &query);
    let mut resp = json_response(json!({ "repositories": page }), "application/json");
    if more {
        if let Some(link) = next_link("/v2/_catalog", &query, &page) {
            resp.headers_mut().insert(header::LINK, link);
        }
    }
    resp
}

async fn referrers(
    state: &AppState,
    name: String,
    digest: Digest,
    query: &BTreeMap<String, String>,
) -> Result<Response> {
    let n = name.clone();
    let revisions = blocking(state, "listing manifests", move |s| {
        let mut out = Vec::new();
        for d in s.revisions(&n)? {
            out.push(d);
        }
        Ok(out)
    })
    .await?;
    let filter = query.get("artifactType").filter(|s| !s.is_empty()).cloned();
    let mut manifests = Vec::new();
    for d in revisions {
        let meta = match state.cached_meta(&d) {
            Some(m) => m,
            None => {
                let d2 = d.clone();
                let Some(bytes) =
                    blocking(state, "reading a manifest", move |s| s.read_blob(&d2)).await?
                else {
                    continue;
                };
                state.manifest_meta(&d, &bytes)
            }
        };
        if meta.subject.as_ref() != Some(&digest) {
            continue;
        }
        if let Some(f) = &filter {
            if meta.artifact_type.as_deref() != Some(f.as_str()) {
                continue;
            }
        }
        let mut desc = json!({
            "mediaType": meta.media_type,
            "digest": d.to_string(),
            "size": meta.size,
        });
        if let Some(a) = &meta.artifact_type {
            desc["artifactType"] = json!(a);
        }
        if let Some(a) = &meta.annotations {
            desc["annotations"] = json!(a);
        }
        manifests.push(desc);
    }
    let mut resp = json_response(
        json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }),
        OCI_INDEX,
    );
    if filter.is_some() {
        resp.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn routes_parse_from_the_right() {
        let d = Digest::sha256(b"x");
        assert_eq!(
            parse_route(&format!("/v2/a/blobs/b/blobs/{d}")).unwrap(),
            Route::Blob {
                name: "a/blobs/b".into(),
                digest: d.clone()
            }
        );
        assert_eq!(
            parse_route("/v2/x/manifests/y/manifests/latest").unwrap(),
            Route::Manifest {
                name: "x/manifests/y".into(),
                reference: Reference::Tag("latest".into())
            }
        );
        assert_eq!(
            parse_route("/v2/a/b/blobs/uploads/").unwrap(),
            Route::UploadStart { name: "a/b".into() }
        );
        let id = random_id();
        assert_eq!(
            parse_route(&format!("/v2/a/blobs/uploads/{id}")).unwrap(),
            Route::Upload {
                name: "a".into(),
                id
            }
        );
        assert_eq!(
            parse_route("/v2/a/tags/list").unwrap(),
            Route::Tags { name: "a".into() }
        );
    }

    #[test]
    fn hostile_paths_are_rejected_before_storage() {
        let cases = [
            ("/v2/../etc/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/a/../../b/tags/list", ErrorCode::NameInvalid),
            ("/v2/A/manifests/latest", ErrorCode::NameInvalid),
            ("/v2/a/manifests/sha256:../../x", ErrorCode::NameUnknown),
            ("/v2/a/manifests/sha256:..", ErrorCode::DigestInvalid),
            ("/v2/a/blobs/sha256:abc", ErrorCode::DigestInvalid),
            ("/v2/a/blobs/uploads/../../../x", ErrorCode::NameUnknown),
            ("/v2/a/../blobs/uploads/", ErrorCode::NameInvalid),
            (
                "/v2/a/blobs/uploads/not-a-uuid",
                ErrorCode::BlobUploadUnknown,
            ),
            ("/v2/a/manifests/.hidden", ErrorCode::ManifestInvalid),
            ("/v2/a%2fb/tags/list", ErrorCode::NameInvalid),
        ];
        for (path, code) in cases {
            let err = parse_route(path).unwrap_err();
            assert_eq!(err.code(), Some(code), "{path}");
        }
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-1000", 100).unwrap(), Some((0, 99)));
        assert_eq!(parse_range("bytes=50-1000", 100).unwrap(), Some((50, 99)));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        for bad in ["bytes=100-", "bytes=5-4", "bytes=-0", "bytes=x-1"] {
            assert_eq!(
                parse_range(bad, 100).unwrap_err().status(),
                StatusCode::RANGE_NOT_SATISFIABLE,
                "{bad}"
            );
        }
    }

    #[test]
    fn pagination() {
        let all: Vec<String> = ["a", "b", "c", "d"].iter().map(|s| s.to_string()).collect();
        let q = |s: &str| parse_query(Some(s));
        assert_eq!(
            paginate(all.clone(), &q("n=2")),
            (vec!["a".into(), "b".into()], true)
        );
        assert_eq!(
            paginate(all.clone(), &q("n=2&last=b")),
            (vec!["c".into(), "d".into()], false)
        );
        assert_eq!(
            paginate(all.clone(), &q("last=c")),
            (vec!["d".into()], false)
        );
        assert_eq!(paginate(all, &q("n=0")), (vec![], false));
        assert_eq!(percent_decode("sha256%3Aab"), "sha256:ab");
    }
}
