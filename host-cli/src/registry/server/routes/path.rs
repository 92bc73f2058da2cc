//! Parsing the path after `/v2/` into a route.
//!
//! Repository names contain `/`, so the path is parsed from the right (a tag, digest or upload
//! id never contains `/`) instead of by axum's matcher. Every value that becomes part of a
//! filesystem path is validated against the spec grammar first.

use axum::http::StatusCode;
use ddiff_core::reference::{validate_repository, validate_tag};
use ddiff_core::Digest;
use serde_json::json;

use super::super::error::{ErrorCode, RegistryError, Result};
use super::super::storage::valid_upload_id;

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

pub(crate) fn parse_name(name: &str) -> Result<String> {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::registry::server::storage::random_id;
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
}
