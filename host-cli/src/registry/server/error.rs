//! The registry's one error type and how it is answered: a status, headers, and the OCI
//! distribution error envelope (the codes and the envelope are the core's
//! [`ddiff_core::distribution`], which the client reads them with too).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use ddiff_core::distribution::ErrorBody;
pub use ddiff_core::distribution::ErrorCode;

/// The status [`ErrorCode::default_status`] gives, 500 for a code outside the spec's list.
fn default_status(code: &ErrorCode) -> StatusCode {
    code.default_status()
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
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
            status: default_status(&code),
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
        self.code.clone()
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let code = self.code.as_ref().map_or("INTERNAL", ErrorCode::as_str);
        write!(f, "{} {}: {}", self.status.as_u16(), code, self.message)
    }
}

impl std::error::Error for RegistryError {}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        // No spec code for a server failure: distribution answers those with UNKNOWN.
        let code = self
            .code
            .unwrap_or_else(|| ErrorCode::Other("UNKNOWN".to_owned()));
        let body = ErrorBody::one(code, self.message, self.detail).to_json();
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
