//! The referrers API: `GET /v2/<name>/referrers/<digest>`, an index of the manifests whose
//! `subject` is that digest, optionally filtered by `artifactType`.

use axum::http::HeaderValue;
use axum::response::Response;
use ddiff_core::{Digest, MediaType};
use serde_json::json;

use super::super::error::Result;
use super::super::AppState;
use super::{blocking, json_response, Query};

pub(super) async fn referrers(
    state: &AppState,
    name: String,
    digest: Digest,
    query: &Query,
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
        json!({ "schemaVersion": 2, "mediaType": MediaType::OciIndex.as_str(), "manifests": manifests }),
        MediaType::OciIndex.as_str(),
    );
    if filter.is_some() {
        resp.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
