//! Listings with `n`/`last` pagination: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::super::error::{ErrorCode, RegistryError, Result};
use super::super::AppState;
use super::{blocking, hv, json_response, parse_query, Query};

/// Applies `n`/`last` pagination; returns the page and whether more follow.
pub(crate) fn paginate(all: Vec<String>, query: &Query) -> (Vec<String>, bool) {
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

fn next_link(path: &str, query: &Query, page: &[String]) -> Option<HeaderValue> {
    let n = query.get("n")?;
    let last = page.last()?;
    Some(hv(&format!("<{path}?n={n}&last={last}>; rel=\"next\"")))
}

pub(super) async fn list_tags(state: &AppState, name: String, query: &Query) -> Result<Response> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

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
    }
}
