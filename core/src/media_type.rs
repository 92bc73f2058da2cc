//! Media types of the OCI image spec and of Docker's image manifest v2 schema 2.
//!
//! Both families appear in the wild (Docker's engine and `registry:2` still write v2s2),
//! so each has its own variant; anything else round-trips exactly through [`MediaType::Other`].

use core::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A media type, with exact round-trip of unknown values.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum MediaType {
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList,
    /// `application/vnd.docker.container.image.v1+json`
    DockerConfig,
    /// `application/vnd.docker.image.rootfs.diff.tar.gzip`
    DockerLayerGzip,
    /// `application/vnd.docker.image.rootfs.foreign.diff.tar.gzip`
    DockerForeignLayer,
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex,
    /// `application/vnd.oci.image.config.v1+json`
    OciConfig,
    /// `application/vnd.oci.image.layer.v1.tar`
    OciLayer,
    /// `application/vnd.oci.image.layer.v1.tar+gzip`
    OciLayerGzip,
    /// `application/vnd.oci.image.layer.v1.tar+zstd`
    OciLayerZstd,
    /// `application/vnd.oci.empty.v1+json`
    OciEmpty,
    /// Docker schema 1 (`application/vnd.docker.distribution.manifest.v1+json` or the signed
    /// variant); recognised only to refuse it with a clear message.
    DockerSchema1,
    /// Anything else, kept verbatim.
    Other(String),
}

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

const TABLE: &[(MediaType, &str)] = &[
    (
        MediaType::DockerManifest,
        "application/vnd.docker.distribution.manifest.v2+json",
    ),
    (
        MediaType::DockerManifestList,
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ),
    (
        MediaType::DockerConfig,
        "application/vnd.docker.container.image.v1+json",
    ),
    (
        MediaType::DockerLayerGzip,
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
    ),
    (
        MediaType::DockerForeignLayer,
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ),
    (
        MediaType::OciManifest,
        "application/vnd.oci.image.manifest.v1+json",
    ),
    (
        MediaType::OciIndex,
        "application/vnd.oci.image.index.v1+json",
    ),
    (
        MediaType::OciConfig,
        "application/vnd.oci.image.config.v1+json",
    ),
    (
        MediaType::OciLayer,
        "application/vnd.oci.image.layer.v1.tar",
    ),
    (
        MediaType::OciLayerGzip,
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    (
        MediaType::OciLayerZstd,
        "application/vnd.oci.image.layer.v1.tar+zstd",
    ),
    (MediaType::OciEmpty, "application/vnd.oci.empty.v1+json"),
    (
        MediaType::DockerSchema1,
        "application/vnd.docker.distribution.manifest.v1+json",
    ),
];

impl MediaType {
    /// Parses a media type string. Parameters (`; charset=…`) and surrounding
    /// whitespace are ignored for recognition, as HTTP `Content-Type` may carry them.
    pub fn parse(s: &str) -> MediaType {
        let base = s.split(';').next().unwrap_or(s).trim();
        if base == "application/vnd.docker.distribution.manifest.v1+prettyjws" {
            return MediaType::DockerSchema1;
        }
        for (mt, name) in TABLE {
            if base.eq_ignore_ascii_case(name) {
                return mt.clone();
            }
        }
        MediaType::Other(s.to_string())
    }

    /// The canonical string.
    pub fn as_str(&self) -> &str {
        if let MediaType::Other(s) = self {
            return s;
        }
        TABLE
            .iter()
            .find(|(mt, _)| mt == self)
            .map(|(_, s)| *s)
            // Every non-Other variant is in TABLE (checked by a unit test).
            .unwrap_or("")
    }

    /// An image manifest (Docker v2s2 or OCI).
    pub fn is_image_manifest(&self) -> bool {
        matches!(self, MediaType::DockerManifest | MediaType::OciManifest)
    }

    /// An index / manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self, MediaType::DockerManifestList | MediaType::OciIndex)
    }

    /// Any manifest kind this tool handles.
    pub fn is_manifest(&self) -> bool {
        self.is_image_manifest() || self.is_index()
    }

    /// An image configuration.
    pub fn is_image_config(&self) -> bool {
        matches!(self, MediaType::DockerConfig | MediaType::OciConfig)
    }

    /// A filesystem layer whose content is a (possibly compressed) tar.
    pub fn is_layer(&self) -> bool {
        self.layer_compression().is_some()
    }

    /// The compression of a filesystem layer, `None` when this is not a known layer type.
    pub fn layer_compression(&self) -> Option<Compression> {
        match self {
            MediaType::DockerLayerGzip
            | MediaType::DockerForeignLayer
            | MediaType::OciLayerGzip => Some(Compression::Gzip),
            MediaType::OciLayer => Some(Compression::None),
            MediaType::OciLayerZstd => Some(Compression::Zstd),
            MediaType::Other(s) => {
                // Non-distributable OCI layers share the compression suffixes.
                let s = s.as_str();
                if !s.starts_with("application/vnd.oci.image.layer.") {
                    None
                } else if s.ends_with("+gzip") {
                    Some(Compression::Gzip)
                } else if s.ends_with("+zstd") {
                    Some(Compression::Zstd)
                } else if s.ends_with(".tar") {
                    Some(Compression::None)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Whether this type belongs to the Docker family (v2s2).
    pub fn is_docker(&self) -> bool {
        self.as_str().starts_with("application/vnd.docker.")
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for MediaType {
    fn from(s: &str) -> Self {
        MediaType::parse(s)
    }
}

impl Serialize for MediaType {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MediaType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(MediaType::parse(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_variant_round_trips() {
        for (mt, s) in TABLE {
            assert_eq!(mt.as_str(), *s);
            assert_eq!(&MediaType::parse(s), mt);
        }
        let other = MediaType::parse("application/x-custom+json");
        assert_eq!(other, MediaType::Other("application/x-custom+json".into()));
        assert_eq!(other.as_str(), "application/x-custom+json");
    }

    #[test]
    fn content_type_parameters_are_ignored() {
        assert_eq!(
            MediaType::parse("application/vnd.oci.image.index.v1+json; charset=utf-8"),
            MediaType::OciIndex
        );
    }

    #[test]
    fn classifies() {
        assert!(MediaType::DockerManifestList.is_index());
        assert!(MediaType::OciManifest.is_image_manifest());
        assert_eq!(
            MediaType::OciLayerZstd.layer_compression(),
            Some(Compression::Zstd)
        );
        assert_eq!(
            MediaType::parse("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")
                .layer_compression(),
            Some(Compression::Gzip)
        );
        assert!(!MediaType::OciConfig.is_layer());
    }
}
