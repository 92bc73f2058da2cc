//! Blobs: `GET`/`HEAD /v2/<name>/blobs/<digest>` (whole or one byte range) and `DELETE`.

use std::io;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ddiff_core::Digest;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::super::error::{ErrorCode, RegistryError, Result};
use super::super::AppState;
use super::{blocking, hv, DIGEST_HEADER};

fn blob_unknown(d: &Digest) -> RegistryError {
    RegistryError::new(ErrorCode::BlobUnknown, "blob unknown to registry")
        .with_detail(json!({ "digest": d.to_string() }))
}

/// Parses a single `bytes=` range against a blob of `size` bytes (RFC 9110 §14, by the
/// `http-range-header` crate). `Ok(None)`: serve it all, as for no header, another unit, or
/// several ranges (which a server may ignore, §14.2). An unsatisfiable or malformed range is
/// a `416`.
pub(crate) fn parse_range(value: &str, size: u64) -> Result<Option<(u64, u64)>> {
    let value = value.trim();
    if !value.starts_with("bytes=") || value.contains(',') {
        return Ok(None);
    }
    let bad = || RegistryError::range_not_satisfiable(size);
    let ranges = http_range_header::parse_range_header(value)
        .and_then(|r| r.validate(size))
        .map_err(|_| bad())?;
    match ranges.as_slice() {
        [r] => Ok(Some((*r.start(), *r.end()))),
        // An empty blob: even a suffix range selects nothing.
        _ => Err(bad()),
    }
}

pub(super) async fn get_blob(
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

pub(super) async fn delete_blob(
    state: &AppState,
    name: String,
    digest: Digest,
) -> Result<Response> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).unwrap(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).unwrap(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-1000", 100).unwrap(), Some((0, 99)));
        assert_eq!(parse_range("bytes=50-1000", 100).unwrap(), Some((50, 99)));
        assert_eq!(parse_range("bytes=0-1,5-6", 100).unwrap(), None);
        assert_eq!(parse_range("items=0-9", 100).unwrap(), None);
        for bad in ["bytes=0-", "bytes=-5"] {
            assert_eq!(
                parse_range(bad, 0).unwrap_err().status(),
                StatusCode::RANGE_NOT_SATISFIABLE,
                "{bad} of an empty blob"
            );
        }
        for bad in [
            "bytes=100-",
            "bytes=5-4",
            "bytes=-0",
            "bytes=x-1",
            "bytes=1-2-3",
        ] {
            assert_eq!(
                parse_range(bad, 100).unwrap_err().status(),
                StatusCode::RANGE_NOT_SATISFIABLE,
                "{bad}"
            );
        }
    }
}
