//! Parts of the OCI distribution protocol that the registry client and the embedded registry
//! share: the error codes and error body
//! (`{"errors":[{"code":"BLOB_UNKNOWN","message":"…","detail":…}]}`), and the `Range` header
//! with which an upload session states its offset.
//!
//! Pure data: which codes exist, the status each is usually paired with, the JSON of the
//! envelope, the header's text. Answering with them and reading them from responses are the
//! hosts'.

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An error code of the OCI distribution spec (v1.1, "Error Codes"), or one a registry made up.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
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
    /// A code outside the spec's list, kept as sent.
    Other(String),
}

/// The spec's codes and their strings.
const TABLE: &[(ErrorCode, &str)] = &[
    (ErrorCode::BlobUnknown, "BLOB_UNKNOWN"),
    (ErrorCode::BlobUploadInvalid, "BLOB_UPLOAD_INVALID"),
    (ErrorCode::BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN"),
    (ErrorCode::DigestInvalid, "DIGEST_INVALID"),
    (ErrorCode::ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN"),
    (ErrorCode::ManifestInvalid, "MANIFEST_INVALID"),
    (ErrorCode::ManifestUnknown, "MANIFEST_UNKNOWN"),
    (ErrorCode::NameInvalid, "NAME_INVALID"),
    (ErrorCode::NameUnknown, "NAME_UNKNOWN"),
    (ErrorCode::SizeInvalid, "SIZE_INVALID"),
    (ErrorCode::Unauthorized, "UNAUTHORIZED"),
    (ErrorCode::Denied, "DENIED"),
    (ErrorCode::Unsupported, "UNSUPPORTED"),
    (ErrorCode::TooManyRequests, "TOOMANYREQUESTS"),
];

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        if let ErrorCode::Other(s) = self {
            return s;
        }
        TABLE.iter().find(|(c, _)| c == self).map_or("", |(_, s)| s)
    }

    /// The code for a wire string; unknown strings become [`ErrorCode::Other`].
    pub fn parse(s: &str) -> ErrorCode {
        TABLE
            .iter()
            .find(|(_, t)| *t == s)
            .map_or_else(|| ErrorCode::Other(s.to_owned()), |(c, _)| c.clone())
    }

    /// The HTTP status the spec (and distribution) pair with this code; `None` for
    /// [`ErrorCode::Other`].
    pub fn default_status(&self) -> Option<u16> {
        Some(match self {
            ErrorCode::BlobUnknown
            | ErrorCode::BlobUploadUnknown
            | ErrorCode::ManifestUnknown
            | ErrorCode::NameUnknown => 404,
            ErrorCode::BlobUploadInvalid
            | ErrorCode::DigestInvalid
            | ErrorCode::ManifestBlobUnknown
            | ErrorCode::ManifestInvalid
            | ErrorCode::NameInvalid
            | ErrorCode::SizeInvalid => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Denied => 403,
            ErrorCode::Unsupported => 405,
            ErrorCode::TooManyRequests => 429,
            ErrorCode::Other(_) => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorCode::parse(&s))
    }
}

/// One entry of an error body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorEntry {
    /// The code.
    pub code: ErrorCode,
    /// A message for people.
    #[serde(default)]
    pub message: String,
    /// Structured detail (digests, sizes), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// The error body of the distribution API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The errors, most relevant first.
    pub errors: Vec<ErrorEntry>,
}

impl ErrorBody {
    /// A body with one entry.
    pub fn one(code: ErrorCode, message: String, detail: Option<serde_json::Value>) -> Self {
        ErrorBody {
            errors: vec![ErrorEntry {
                code,
                message,
                detail,
            }],
        }
    }

    /// The first entry of a response body, if the body is an error envelope with at least one.
    pub fn first_of(body: &[u8]) -> Option<ErrorEntry> {
        serde_json::from_slice::<ErrorBody>(body)
            .ok()?
            .errors
            .into_iter()
            .next()
    }

    /// The JSON text.
    pub fn to_json(&self) -> String {
        // Strings, a JSON value and a code that serializes as a string: cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The `Range` header of an upload session that holds `offset` bytes: `0-<last byte>`, and
/// `0-0` when it holds none (the form cannot say "nothing"; distribution answers the same).
pub fn upload_range(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

/// Where to resume an upload, from its session's `Range` header: the byte after the last one
/// the registry holds. `None` when the header does not tell: malformed, or `0-0`, which means
/// one byte or none.
pub fn upload_offset(range: &str) -> Option<u64> {
    let last: u64 = range.rsplit('-').next()?.trim().parse().ok()?;
    if last == 0 {
        return None;
    }
    last.checked_add(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_ones_are_kept() {
        for (code, s) in TABLE {
            assert_eq!(code.as_str(), *s);
            assert_eq!(ErrorCode::parse(s), *code);
            assert!(code.default_status().is_some(), "{s}");
        }
        assert_eq!(
            ErrorCode::parse("VENDOR_QUOTA"),
            ErrorCode::Other("VENDOR_QUOTA".into())
        );
        assert_eq!(ErrorCode::parse("VENDOR_QUOTA").as_str(), "VENDOR_QUOTA");
        assert_eq!(ErrorCode::Other("X".into()).default_status(), None);
        assert_eq!(ErrorCode::ManifestUnknown.default_status(), Some(404));
        assert_eq!(ErrorCode::TooManyRequests.default_status(), Some(429));
    }

    #[test]
    fn bodies_parse_and_print() {
        let e = ErrorBody::first_of(
            br#"{"errors":[{"code":"DENIED","message":"no","detail":{"a":1}},{"code":"X"}]}"#,
        )
        .unwrap();
        assert_eq!(e.code, ErrorCode::Denied);
        assert_eq!(e.message, "no");
        assert_eq!(e.detail, Some(serde_json::json!({"a": 1})));
        // A missing message is empty; a missing code or an empty list is not an envelope.
        assert_eq!(
            ErrorBody::first_of(br#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#)
                .unwrap()
                .message,
            ""
        );
        assert_eq!(
            ErrorBody::first_of(br#"{"errors":[{"message":"m"}]}"#),
            None
        );
        assert_eq!(ErrorBody::first_of(br#"{"errors":[]}"#), None);
        assert_eq!(ErrorBody::first_of(b"<html>"), None);
        let text = ErrorBody::one(ErrorCode::BlobUnknown, "gone".into(), None).to_json();
        assert_eq!(
            text,
            r#"{"errors":[{"code":"BLOB_UNKNOWN","message":"gone"}]}"#
        );
    }

    #[test]
    fn upload_ranges() {
        assert_eq!(upload_range(0), "0-0");
        assert_eq!(upload_range(1), "0-0");
        assert_eq!(upload_range(8), "0-7");
        assert_eq!(upload_offset(&upload_range(8)), Some(8));
        assert_eq!(upload_offset("bytes=0-1023"), Some(1024));
        for unclear in ["0-0", "", "0-", "0-x", "0-18446744073709551615"] {
            assert_eq!(upload_offset(unclear), None, "{unclear}");
        }
    }
}
