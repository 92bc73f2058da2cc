//! The OCI distribution v1.1 endpoints: [`dispatch`] sends each `/v2/<name>/…` request, as
//! [`path`] parses it, to the module of its concern. Helpers every handler uses live here.
//!
//! | module | endpoints |
//! |--------|-----------|
//! | [`manifests`] | `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>` |
//! | [`blobs`] | `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>` (with `Range`) |
//! | [`uploads`] | `POST /v2/<name>/blobs/uploads/` (also mounts), `GET`/`PATCH`/`PUT`/`DELETE` on a session |
//! | [`listing`] | `GET /v2/<name>/tags/list`, `GET /v2/_catalog` (pagination) |
//! | [`referrers`] | `GET /v2/<name>/referrers/<digest>` |

mod blobs;
mod listing;
mod manifests;
pub(crate) mod path;
mod referrers;
mod uploads;

use std::collections::BTreeMap;
use std::io;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};

use super::error::{ErrorCode, RegistryError, Result};
use super::storage::Storage;
use super::AppState;
pub(crate) use listing::catalog;
use path::{parse_route, Route};

const DIGEST_HEADER: &str = "docker-content-digest";

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
    let tags = query_all(req.uri().query(), "tag");
    let method = req.method().clone();
    let head = method == Method::HEAD;
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    match (route, method) {
        (Route::Manifest { name, reference }, Method::GET | Method::HEAD) => {
            manifests::get_manifest(&state, name, reference, head).await
        }
        (Route::Manifest { name, reference }, Method::PUT) => {
            manifests::put_manifest(&state, name, reference, &tags, &headers, body).await
        }
        (Route::Manifest { name, reference }, Method::DELETE) => {
            manifests::delete_manifest(&state, name, reference).await
        }
        (Route::Blob { name, digest }, Method::GET | Method::HEAD) => {
            blobs::get_blob(&state, name, digest, &headers, head).await
        }
        (Route::Blob { name, digest }, Method::DELETE) => {
            blobs::delete_blob(&state, name, digest).await
        }
        (Route::UploadStart { name }, Method::POST) => {
            uploads::start_upload(&state, name, &query, &headers, body).await
        }
        (Route::Upload { name, id }, Method::GET) => uploads::upload_status(&state, name, id).await,
        (Route::Upload { name, id }, Method::PATCH) => {
            uploads::patch_upload(&state, name, id, &headers, body).await
        }
        (Route::Upload { name, id }, Method::PUT) => {
            uploads::put_upload(&state, name, id, &query, &headers, body).await
        }
        (Route::Upload { name, id }, Method::DELETE) => {
            uploads::cancel_upload(&state, name, id).await
        }
        (Route::Tags { name }, Method::GET) => listing::list_tags(&state, name, &query).await,
        (Route::Referrers { name, digest }, Method::GET) => {
            referrers::referrers(&state, name, digest, &query).await
        }
        (_, m) => Err(RegistryError::new(
            ErrorCode::Unsupported,
            format!("method {m} is not supported on this endpoint"),
        )),
    }
}

/// A request's query parameters, decoded (`application/x-www-form-urlencoded`); a repeated
/// name keeps its last value.
pub(crate) type Query = BTreeMap<String, String>;

fn parse_query(q: Option<&str>) -> Query {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .into_owned()
        .collect()
}

/// Every value of a repeated query parameter, in order (`?tag=a&tag=b`).
fn query_all(q: Option<&str>, key: &str) -> Vec<String> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .collect()
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

fn json_response(value: serde_json::Value, content_type: &str) -> Response {
    let mut resp = value.to_string().into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, hv(content_type));
    resp
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn queries_are_form_decoded() {
        let q = parse_query(Some("digest=sha256%3Aab&n=2&&last=a+b&flag&n=3"));
        assert_eq!(q["digest"], "sha256:ab");
        assert_eq!(q["last"], "a b");
        assert_eq!(q["flag"], "");
        assert_eq!(q["n"], "3");
        assert!(parse_query(None).is_empty());
    }
}
