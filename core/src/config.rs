//! Image configuration (OCI `config.md`, Docker image JSON): the parts ddiff uses.

use serde::{Deserialize, Serialize};

use crate::{Digest, Platform};

/// Why bytes are not an image configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// Not valid JSON for an image config.
    #[error("invalid image config JSON: {message}")]
    Json { message: String },
    /// The rootfs type is not `layers`.
    #[error("image config rootfs.type is {found:?}, expected \"layers\"")]
    RootFsType { found: String },
}

/// `rootfs` of an image config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    /// Always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Digests of the uncompressed layer tars, base first.
    pub diff_ids: Vec<Digest>,
}

/// One `history` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct History {
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command that created the layer (a Dockerfile step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// Author.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Comment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when this step did not create a layer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

/// The parts of an image configuration that ddiff reads. Parsed from exact bytes that the
/// caller keeps; unknown fields are ignored here.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// CPU architecture.
    #[serde(default)]
    pub architecture: String,
    /// Operating system.
    #[serde(default)]
    pub os: String,
    /// CPU variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Layer diff_ids.
    pub rootfs: RootFs,
    /// Build history.
    #[serde(default)]
    pub history: Vec<History>,
}

impl ImageConfig {
    /// Parses a config blob.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig, ConfigError> {
        let c: ImageConfig = serde_json::from_slice(bytes).map_err(|e| ConfigError::Json {
            message: e.to_string(),
        })?;
        if c.rootfs.kind != "layers" {
            return Err(ConfigError::RootFsType {
                found: c.rootfs.kind.clone(),
            });
        }
        Ok(c)
    }

    /// The platform this image is for.
    pub fn platform(&self) -> Platform {
        Platform {
            architecture: self.architecture.clone(),
            os: self.os.clone(),
            variant: self.variant.clone(),
            ..Platform::default()
        }
    }

    /// The history entry that created each layer (entries with `empty_layer` skipped),
    /// `None` where the history is shorter than the layer list.
    pub fn layer_history(&self) -> Vec<Option<&History>> {
        let mut it = self.history.iter().filter(|h| !h.empty_layer);
        self.rootfs.diff_ids.iter().map(|_| it.next()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = include_str!("../tests/data/manifests/docker-config.json");

    #[test]
    fn parses_real_config() {
        let c = ImageConfig::parse(CONFIG.as_bytes()).unwrap();
        assert_eq!(c.rootfs.diff_ids.len(), 3);
        assert_eq!(c.platform().to_string(), "linux/amd64");
        let h = c.layer_history();
        assert_eq!(h.len(), 3);
        assert!(h[1]
            .unwrap()
            .created_by
            .as_deref()
            .unwrap()
            .contains("echo hello"));
    }

    #[test]
    fn rejects_bad_configs() {
        assert!(matches!(
            ImageConfig::parse(b"{}"),
            Err(ConfigError::Json { .. })
        ));
        assert!(matches!(
            ImageConfig::parse(br#"{"rootfs":{"type":"zfs","diff_ids":[]}}"#),
            Err(ConfigError::RootFsType { .. })
        ));
        assert!(
            ImageConfig::parse(br#"{"rootfs":{"type":"layers","diff_ids":["sha256:zz"]}}"#)
                .is_err()
        );
    }
}
