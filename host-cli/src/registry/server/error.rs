//! The registry's one error type and its wire form, the OCI distribution error envelope:
//! `{"errors":[{"code":"BLOB_UNKNOWN","message":"…","detail":…}]}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The error codes of the OCI distribution spec (v1.1, "Error Codes").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorCode {
    /// Blob unknown to registry.
    BlobUnknown,
    /// Blob upload invalid (also used for an out-of-order chunk, with status 416).
    BlobUploadInvalid,
    /// Blob upload unknown to registry.
    BlobUploadUnknown,
    /// Provided digest did not match uploaded content, or is not a digest.
    DigestInvalid,
    /// A blob the manifest references is not in the repository.
    ManifestBlobUnknown,
    /// Manifest invalid.
    ManifestInvalid,
    /// Manifest unknown to registry.
    ManifestUnknown,
    /// Invalid repository name.
    NameInvalid,
    /// Repository name not known to registry.
    NameUnknown,
    /// Provided length did not match content length.
    SizeInvalid,
    /// Authentication required.
    Unauthorized,
    /// Requested access to the resource is denied.
    Denied,
    /// The operation is unsupported.
    Unsupported,
    /// Too many requests.
    TooManyRequests,
}

impl ErrorCode {
    /// The spec's code string.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BlobUnknown => "BLOB_UNKNOWN",
            ErrorCode::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            ErrorCode::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            ErrorCode::DigestInvalid => "DIGEST_INVALID",
            ErrorCode::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            ErrorCode::ManifestInvalid => "MANIFEST_INVALID",
            ErrorCode::ManifestUnknown => "MANIFEST_UNKNOWN",
            ErrorCode::NameInvalid => "NAME_INVALID",
            ErrorCode::NameUnknown => "NAME_UNKNOWN",
            ErrorCode::SizeInvalid => "SIZE_INVALID",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Denied => "DENIED",
            ErrorCode::Unsupported => "UNSUPPORTED",
            ErrorCode::TooManyRequests => "TOOMANYREQUESTS",
        }
    }

    /// The status code the spec (and distribution) pair with this code.
    pub fn default_status(self) -> StatusCode {
        match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => StatusCode::NOT_FOUND,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Denied => StatusCode::FORBIDDEN,
            ErrorCode::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        }
    }
}

/// An error answered to a client: a status, a spec code, a message and optional detail.
///
/// Storage failures that are not the client's fault become `500` with no code from the
/// spec's list (the spec has none for them); their cause is logged, not sent.
#[derive(Debug)]
pub struct RegistryError {
    status: StatusCode,
    code: Option<ErrorCode>,
    message: String,
    detail: Option<serde_json::Value>,
    www_authenticate: Option<&'static str>,
    content_range: Option<String>,
}

impl RegistryError {
    /// An error with the code's usual status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RegistryError {
            status: code.default_status(),
            code: Some(code),
            message: message.into(),
            detail: None,
            www_authenticate: None,
            content_range: None,
        }
    }

    /// Attaches the `detail` member.
    pub fn with_detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }

    /// Overrides the status (e.g. 416 for an out-of-order chunk, 413 for a large manifest).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// A `416` for a read range outside the blob, with `Content-Range: bytes */SIZE`.
    pub fn range_not_satisfiable(size: u64) -> Self {
        let mut e = RegistryError::new(ErrorCode::SizeInvalid, "requested range not satisfiable")
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .with_detail(json!({ "size": size }));
        e.content_range = Some(format!("bytes */{size}"));
        e
    }

    /// A `401` asking for basic credentials.
    pub fn unauthorized() -> Self {
        let mut e = RegistryError::new(ErrorCode::Unauthorized, "authentication required");
        e.www_authenticate = Some("Basic realm=\"ddiff\"");
        e
    }

    /// A `500`: the server failed (disk, IO). `context` says what was being done; the
    /// cause is logged here and not sent to the client.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!("{context}: {cause}");
        RegistryError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            code: None,
            message: format!("internal error while {context}"),
            detail: None,
            www_authenticate: None,
            content_range: None,
        }
    }

    /// The status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The spec code, if any.
    pub fn code(&self) -> Option<ErrorCode> {
        self.code
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self.code.map(ErrorCode::as_str).unwrap_or("INTERNAL");
        write!(f, "{} {}: {}", self.status.as_u16(), code, self.message)
    }
}

impl std::error::Error for RegistryError {}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let mut entry = json!({
            "code": self.code.map(ErrorCode::as_str).unwrap_or("UNKNOWN"),
            "message": self.message,
        });
        if let Some(d) = self.detail {
            entry["detail"] = d;
        }
        let body = json!({ "errors": [entry] }).to_string();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(w) = self.www_authenticate {
            h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(w));
        }
        if let Some(cr) = self
            .content_range
            .and_then(|s| HeaderValue::from_str(&s).ok())
        {
            h.insert(header::CONTENT_RANGE, cr);
        }
        resp
    }
}

/// Shorthand for handler results.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
