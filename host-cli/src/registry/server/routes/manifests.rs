//! Manifests: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use std::io;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ddiff_core::{Digest, ManifestError, RawManifest};
use futures::StreamExt;
use serde_json::json;

use super::super::error::{ErrorCode, RegistryError, Result};
use super::super::AppState;
use super::path::Reference;
use super::{blocking, hv, DIGEST_HEADER};

fn manifest_unknown(name: &str, reference: &Reference) -> RegistryError {
    RegistryError::new(ErrorCode::ManifestUnknown, "manifest unknown")
        .with_detail(json!({ "name": name, "reference": reference.to_string() }))
}

pub(super) async fn get_manifest(
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

/// `PUT /v2/<name>/manifests/<reference>[?tag=T...]`. Each `tag` query parameter (the
/// distribution spec's push with tags, for a manifest put by digest) tags the manifest too,
/// and the answer names every tag set in an `OCI-Tag` header, so a client knows they were
/// applied (a registry without the feature answers none, and the client tags one by one).
pub(super) async fn put_manifest(
    state: &AppState,
    name: String,
    reference: Reference,
    query_tags: &[String],
    headers: &HeaderMap,
    body: Body,
) -> Result<Response> {
    for t in query_tags {
        ddiff_core::reference::validate_tag(t).map_err(|e| {
            RegistryError::new(
                ErrorCode::ManifestInvalid,
                format!("tag query parameter: {e}"),
            )
            .with_status(StatusCode::BAD_REQUEST)
        })?;
    }
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
    let mut tags: Vec<String> = match &reference {
        Reference::Tag(t) => vec![t.clone()],
        Reference::Digest(_) => Vec::new(),
    };
    for t in query_tags {
        if !tags.contains(t) {
            tags.push(t.clone());
        }
    }
    let tags2 = tags.clone();
    // The blobs it requires must be in this repository (the core's rule).
    let needed: Vec<Digest> = raw.required_blobs().into_iter().cloned().collect();
    let (n, r2) = (name.clone(), raw.clone());
    let missing = blocking(state, "storing a manifest", move |s| {
        for d in &needed {
            if !s.repo_has_blob(&n, d)? || s.blob_size(d)?.is_none() {
                return Ok(Some(d.clone()));
            }
        }
        s.write_blob_bytes(&n, r2.digest(), r2.bytes())?;
        if tags2.is_empty() {
            s.link_manifest(&n, r2.digest(), None)?;
        }
        for t in &tags2 {
            s.link_manifest(&n, r2.digest(), Some(t))?;
        }
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
    if !query_tags.is_empty() {
        for t in &tags {
            h.append("oci-tag", hv(t));
        }
    }
    let subject = raw
        .as_image()
        .and_then(|m| m.subject.as_ref())
        .or_else(|| raw.as_index().and_then(|i| i.subject.as_ref()));
    if let Some(s) = subject {
        h.insert("oci-subject", hv(&s.digest.to_string()));
    }
    Ok(resp)
}

pub(super) async fn delete_manifest(
    state: &AppState,
    name: String,
    reference: Reference,
) -> Result<Response> {
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
