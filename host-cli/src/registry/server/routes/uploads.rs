//! Upload sessions over HTTP: `POST /v2/<name>/blobs/uploads/` (a session, a mount, or a
//! single-request upload), and `GET` (offset), `PATCH` (a chunk), `PUT` (the last chunk and
//! the digest) and `DELETE` on `/v2/<name>/blobs/uploads/<id>`. The bytes go to disk through
//! [`super::super::sessions`].

use std::io;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ddiff_core::distribution::upload_range;
use ddiff_core::Digest;
use serde_json::json;

use super::super::error::{ErrorCode, RegistryError, Result};
use super::super::sessions::{self, AppendError};
use super::super::storage::{random_id, rfc3339};
use super::super::AppState;
use super::path::{parse_digest, parse_name};
use super::{blocking, hv, Query, DIGEST_HEADER};

const UPLOAD_UUID_HEADER: &str = "docker-upload-uuid";

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

/// The headers that tell a client where a session is: its URL, the bytes it holds
/// (`Range`, the form of [`upload_range`]) and its id.
fn session_headers(resp: &mut Response, name: &str, id: &str, offset: u64) {
    let h = resp.headers_mut();
    h.insert(
        header::LOCATION,
        hv(&format!("/v2/{name}/blobs/uploads/{id}")),
    );
    h.insert(header::RANGE, hv(&upload_range(offset)));
    h.insert(UPLOAD_UUID_HEADER, hv(id));
}

fn upload_response(status: StatusCode, name: &str, id: &str, offset: u64) -> Response {
    let mut resp = status.into_response();
    session_headers(&mut resp, name, id, offset);
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(0));
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

pub(super) async fn start_upload(
    state: &AppState,
    name: String,
    query: &Query,
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

pub(super) async fn upload_status(state: &AppState, name: String, id: String) -> Result<Response> {
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
        session_headers(&mut resp, name, id, offset);
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

pub(super) async fn patch_upload(
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
    let new_offset = sessions::append(
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

pub(super) async fn put_upload(
    state: &AppState,
    name: String,
    id: String,
    query: &Query,
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
    let appended = sessions::append(
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
    let (found, size) = sessions::finish(data.clone(), &mut guard, digest.algorithm())
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

pub(super) async fn cancel_upload(state: &AppState, name: String, id: String) -> Result<Response> {
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
