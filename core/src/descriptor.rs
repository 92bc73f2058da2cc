//! Content descriptors and platforms (OCI image spec, `descriptor.md` and `image-index.md`).

use core::fmt;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Digest, MediaType};

/// "A descriptor MUST contain mediaType, digest and size."
/// Unknown fields are dropped here; the manifest's exact bytes are kept elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The media type of the referenced content.
    pub media_type: MediaType,
    /// The digest of the referenced content.
    pub digest: Digest,
    /// The size in bytes of the referenced content.
    pub size: u64,
    /// URLs the content may be fetched from (foreign layers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    /// Arbitrary metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// The platform, on entries of an index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// The artifact type, on artifact manifests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// A plain descriptor with no optional fields.
    pub fn new(media_type: MediaType, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type,
            digest,
            size,
            urls: Vec::new(),
            annotations: None,
            platform: None,
            artifact_type: None,
        }
    }
}

/// The platform an image runs on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, …), GOARCH values.
    pub architecture: String,
    /// Operating system (`linux`, `windows`, …), GOOS values.
    pub os: String,
    /// Operating system version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// Required OS features.
    #[serde(rename = "os.features", default, skip_serializing_if = "Vec::is_empty")]
    pub os_features: Vec<String>,
    /// CPU variant (`v7`, `v8`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

/// A platform string that is not `os/arch[/variant]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid platform {input:?}: expected os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8"
)]
pub struct PlatformError {
    /// What was given.
    pub input: String,
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, PlatformError> {
        let err = || PlatformError {
            input: crate::digest::truncate_for_error(s),
        };
        let parts: Vec<&str> = s.split('/').collect();
        if !(2..=3).contains(&parts.len())
            || parts.iter().any(|p| {
                p.is_empty()
                    || !p
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
            })
        {
            return Err(err());
        }
        Ok(Platform {
            os: parts[0].to_ascii_lowercase(),
            architecture: parts[1].to_ascii_lowercase(),
            variant: parts.get(2).map(|v| v.to_ascii_lowercase()),
            ..Platform::default()
        })
    }

    /// The variant with the defaults containerd applies (`arm64` → `v8`, `arm` → `v7`).
    fn normalized_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", None) => Some("v8"),
            ("arm", None) => Some("v7"),
            (_, v) => v,
        }
    }

    /// Whether an image for `self` satisfies a request for `wanted`.
    /// A request without a variant accepts any variant of the architecture's default.
    pub fn satisfies(&self, wanted: &Platform) -> bool {
        if self.os != wanted.os || self.architecture != wanted.architecture {
            return false;
        }
        match wanted.variant {
            None => {
                self.variant.is_none() || self.normalized_variant() == wanted.normalized_variant()
            }
            Some(_) => self.normalized_variant() == wanted.normalized_variant(),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(
            (p.os.as_str(), p.architecture.as_str(), p.variant.as_deref()),
            ("linux", "arm64", Some("v8"))
        );
        assert_eq!(p.to_string(), "linux/arm64/v8");
        for bad in [
            "",
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v8/x",
            "linux/am d64",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matches_with_variant_defaults() {
        let arm64 = Platform::parse("linux/arm64").unwrap();
        let arm64v8 = Platform::parse("linux/arm64/v8").unwrap();
        let armv6 = Platform::parse("linux/arm/v6").unwrap();
        let arm = Platform::parse("linux/arm").unwrap();
        assert!(arm64v8.satisfies(&arm64));
        assert!(arm64.satisfies(&arm64v8));
        assert!(!armv6.satisfies(&arm));
        assert!(!Platform::parse("linux/amd64").unwrap().satisfies(&arm64));
    }
}
