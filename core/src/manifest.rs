//! Image manifests and indexes (Docker v2s2, Docker manifest list, OCI manifest, OCI index).
//!
//! A manifest is always kept as the exact bytes received: its digest is the hash of those
//! bytes, never of re-serialised JSON. [`RawManifest`] pairs the bytes with a parsed view.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Descriptor, Digest, MediaType, Platform};

/// Upper bound for a manifest, as registries enforce (distribution uses 4 MiB).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// An image manifest (Docker v2s2 or OCI).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// Required for Docker v2s2, recommended for OCI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// OCI artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The image configuration.
    pub config: Descriptor,
    /// Layers, base first.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// Referrers API subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// An image index / manifest list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// Required for Docker lists, recommended for OCI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<MediaType>,
    /// OCI artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Child manifests.
    pub manifests: Vec<Descriptor>,
    /// Referrers API subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

/// Either kind of manifest. (Few exist at a time, so the size difference does not matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manifest {
    /// An image manifest.
    Image(ImageManifest),
    /// An index or manifest list.
    Index(ImageIndex),
}

/// Why bytes are not a manifest we handle.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The media type is not a manifest type ddiff knows.
    #[error("unsupported manifest media type {media_type:?}")]
    UnknownMediaType { media_type: String },
    /// Docker schema 1 is deprecated and unsupported.
    #[error("Docker schema 1 manifests are not supported (media type {media_type:?}); re-push the image with a current Docker")]
    Schema1 { media_type: String },
    /// Not valid JSON for the declared kind.
    #[error("invalid {media_type} JSON: {message}")]
    Json { media_type: String, message: String },
    /// `schemaVersion` is not 2.
    #[error("unsupported schemaVersion {found} (expected 2)")]
    SchemaVersion { found: u64 },
    /// The Content-Type and the document's `mediaType` disagree.
    #[error("manifest says mediaType {document:?} but was served as {declared:?}")]
    MediaTypeConflict { declared: String, document: String },
    /// Over the size limit.
    #[error("manifest is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    /// The index has no entry for the requested platform.
    #[error("no manifest for platform {wanted} in the index; available: {}", available.join(", "))]
    NoMatchingPlatform {
        wanted: String,
        available: Vec<String>,
    },
    /// The bytes do not hash to the expected digest.
    #[error("manifest digest mismatch: expected {expected}, got {found}")]
    DigestMismatch { expected: Digest, found: Digest },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u64>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

/// A manifest with its exact bytes, its digest and its media type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawManifest {
    bytes: Vec<u8>,
    digest: Digest,
    media_type: MediaType,
    manifest: Manifest,
}

impl RawManifest {
    /// Parses `bytes`. `content_type` is the HTTP `Content-Type` (or a descriptor's media
    /// type) if known; generic values such as `application/json` are ignored.
    pub fn parse(bytes: Vec<u8>, content_type: Option<&str>) -> Result<RawManifest, ManifestError> {
        Self::parse_with_digest(bytes, content_type, None)
    }

    /// Like [`RawManifest::parse`], also checking the bytes against an expected digest
    /// (a registry answer to a by-digest request, or a descriptor).
    pub fn parse_with_digest(
        bytes: Vec<u8>,
        content_type: Option<&str>,
        expected: Option<&Digest>,
    ) -> Result<RawManifest, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge {
                size: bytes.len(),
                limit: MAX_MANIFEST_BYTES,
            });
        }
        let digest = match expected {
            Some(e) => {
                let found = Digest::of(e.algorithm(), &bytes);
                if &found != e {
                    return Err(ManifestError::DigestMismatch {
                        expected: e.clone(),
                        found,
                    });
                }
                found
            }
            None => Digest::sha256(&bytes),
        };
        let probe: Probe = serde_json::from_slice(&bytes).map_err(|e| ManifestError::Json {
            media_type: content_type.unwrap_or("manifest").to_string(),
            message: e.to_string(),
        })?;
        let declared = content_type
            .map(MediaType::parse)
            .filter(|m| m.is_manifest() || matches!(m, MediaType::DockerSchema1));
        let document = probe.media_type.as_deref().map(MediaType::parse);
        if let (Some(d), Some(doc)) = (&declared, &document) {
            if d != doc {
                return Err(ManifestError::MediaTypeConflict {
                    declared: d.to_string(),
                    document: doc.to_string(),
                });
            }
        }
        let media_type = match (declared, document) {
            (Some(m), _) | (None, Some(m)) => m,
            // OCI allows omitting mediaType: infer from the shape.
            (None, None) if probe.manifests.is_some() => MediaType::OciIndex,
            (None, None) if probe.config.is_some() => MediaType::OciManifest,
            (None, None) => {
                return Err(ManifestError::UnknownMediaType {
                    media_type: "(none: no mediaType, manifests or config field)".into(),
                })
            }
        };
        if media_type == MediaType::DockerSchema1 || probe.schema_version == Some(1) {
            return Err(ManifestError::Schema1 {
                media_type: media_type.to_string(),
            });
        }
        if !media_type.is_manifest() {
            return Err(ManifestError::UnknownMediaType {
                media_type: media_type.to_string(),
            });
        }
        match probe.schema_version {
            Some(2) => {}
            Some(found) => return Err(ManifestError::SchemaVersion { found }),
            None => return Err(ManifestError::SchemaVersion { found: 0 }),
        }
        let json_err = |e: serde_json::Error| ManifestError::Json {
            media_type: media_type.to_string(),
            message: e.to_string(),
        };
        let manifest = if media_type.is_index() {
            Manifest::Index(serde_json::from_slice(&bytes).map_err(json_err)?)
        } else {
            Manifest::Image(serde_json::from_slice(&bytes).map_err(json_err)?)
        };
        Ok(RawManifest {
            bytes,
            digest,
            media_type,
            manifest,
        })
    }

    /// The exact bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// The digest of the bytes.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }
    /// The media type.
    pub fn media_type(&self) -> &MediaType {
        &self.media_type
    }
    /// The parsed view.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    /// A descriptor of this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.clone(),
            self.digest.clone(),
            self.bytes.len() as u64,
        )
    }
    /// The image manifest, if this is one.
    pub fn as_image(&self) -> Option<&ImageManifest> {
        match &self.manifest {
            Manifest::Image(m) => Some(m),
            Manifest::Index(_) => None,
        }
    }
    /// The index, if this is one.
    pub fn as_index(&self) -> Option<&ImageIndex> {
        match &self.manifest {
            Manifest::Index(i) => Some(i),
            Manifest::Image(_) => None,
        }
    }
    /// Every blob or child manifest this manifest references (config, layers, children,
    /// subject), in document order.
    pub fn references(&self) -> Vec<&Descriptor> {
        match &self.manifest {
            Manifest::Image(m) => std::iter::once(&m.config)
                .chain(m.layers.iter())
                .chain(m.subject.iter())
                .collect(),
            Manifest::Index(i) => i.manifests.iter().chain(i.subject.iter()).collect(),
        }
    }
}

impl RawManifest {
    /// The blobs a registry must hold in the same repository before it accepts this
    /// manifest: an image's config and layers, except foreign layers (with `urls`, stored
    /// elsewhere). An index requires none (its children, like a subject, may arrive later).
    pub fn required_blobs(&self) -> Vec<&Digest> {
        match &self.manifest {
            Manifest::Image(m) => std::iter::once(&m.config)
                .chain(m.layers.iter())
                .filter(|d| d.urls.is_empty())
                .map(|d| &d.digest)
                .collect(),
            Manifest::Index(_) => Vec::new(),
        }
    }
}

impl ImageIndex {
    /// Picks the child manifest for `wanted`, preferring an exact variant match.
    /// Attestation manifests (`unknown/unknown`) never match a real platform.
    pub fn select_platform(&self, wanted: &Platform) -> Result<&Descriptor, ManifestError> {
        let candidates: Vec<&Descriptor> = self
            .manifests
            .iter()
            .filter(|d| d.platform.as_ref().is_some_and(|p| p.satisfies(wanted)))
            .collect();
        let exact = candidates.iter().find(|d| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.variant == wanted.variant)
        });
        exact
            .or(candidates.first())
            .copied()
            .ok_or_else(|| ManifestError::NoMatchingPlatform {
                wanted: wanted.to_string(),
                available: self
                    .manifests
                    .iter()
                    .map(|d| match &d.platform {
                        Some(p) => p.to_string(),
                        None => format!("(no platform: {})", d.digest.short()),
                    })
                    .collect(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2S2: &str = include_str!("../tests/data/manifests/docker-v2s2.json");
    const OCI_INDEX: &str =
        include_str!("../tests/data/manifests/synthetic-two-platform-index.json");

    #[test]
    fn a_manifest_requires_its_config_and_layers_but_not_foreign_ones() {
        let d = |c: &str| Digest::sha256(c.as_bytes());
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"{}","size":3}},{{"mediaType":"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip","digest":"{}","size":4,"urls":["https://example.com/l"]}}]}}"#,
            d("c"),
            d("l"),
            d("foreign")
        );
        let m = RawManifest::parse(json.into_bytes(), None).unwrap();
        assert_eq!(m.required_blobs(), vec![&d("c"), &d("l")]);
        let idx = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":5}}]}}"#,
            d("m")
        );
        assert!(RawManifest::parse(idx.into_bytes(), None)
            .unwrap()
            .required_blobs()
            .is_empty());
    }

    #[test]
    fn keeps_exact_bytes_and_digest() {
        let m = RawManifest::parse(V2S2.as_bytes().to_vec(), None).unwrap();
        assert_eq!(m.media_type(), &MediaType::DockerManifest);
        assert_eq!(m.digest(), &Digest::sha256(V2S2.as_bytes()));
        assert_eq!(m.bytes(), V2S2.as_bytes());
        let img = m.as_image().unwrap();
        assert_eq!(img.layers.len(), 3);
        assert_eq!(m.references().len(), 4);
    }

    #[test]
    fn real_oci_documents_from_skopeo() {
        let m = include_bytes!("../tests/data/manifests/skopeo-oci-manifest.json");
        let expected = Digest::parse(
            "sha256:b4dca03c643dd84e55cd28d4535200e394ca295cd9904acd68609115940318c3",
        )
        .unwrap();
        let m = RawManifest::parse_with_digest(m.to_vec(), None, Some(&expected)).unwrap();
        assert_eq!(m.media_type(), &MediaType::OciManifest);
        let img = m.as_image().unwrap();
        assert_eq!(img.config.media_type, MediaType::OciConfig);
        assert_eq!(img.layers[0].media_type, MediaType::OciLayerGzip);
        let cfg = include_bytes!("../tests/data/manifests/skopeo-oci-config.json");
        assert_eq!(Digest::sha256(cfg), img.config.digest);
        let c = crate::ImageConfig::parse(cfg).unwrap();
        assert_eq!(c.rootfs.diff_ids.len(), 1);
        // skopeo's layout index.json has no mediaType: inferred from its shape.
        let idx = include_bytes!("../tests/data/manifests/skopeo-oci-layout-index.json");
        let idx = RawManifest::parse(idx.to_vec(), None).unwrap();
        assert_eq!(idx.media_type(), &MediaType::OciIndex);
        let entry = &idx.as_index().unwrap().manifests[0];
        assert_eq!(entry.digest, expected);
        assert_eq!(
            entry.annotations.as_ref().unwrap()["org.opencontainers.image.ref.name"],
            "base"
        );
    }

    #[test]
    fn checks_expected_digest() {
        let wrong = Digest::sha256(b"x");
        let err = RawManifest::parse_with_digest(V2S2.as_bytes().to_vec(), None, Some(&wrong))
            .unwrap_err();
        assert!(matches!(err, ManifestError::DigestMismatch { .. }));
    }

    #[test]
    fn selects_platforms() {
        let m = RawManifest::parse(OCI_INDEX.as_bytes().to_vec(), None).unwrap();
        let idx = m.as_index().unwrap();
        let d = idx
            .select_platform(&Platform::parse("linux/arm64").unwrap())
            .unwrap();
        assert_eq!(d.platform.as_ref().unwrap().architecture, "arm64");
        let err = idx
            .select_platform(&Platform::parse("linux/s390x").unwrap())
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("linux/amd64") && msg.contains("linux/arm64"),
            "{msg}"
        );
    }

    #[test]
    fn invalid_manifests_table() {
        let h = "a".repeat(64);
        let cases: Vec<(String, Option<&str>, &str)> = vec![
            ("not json".into(), None, "invalid"),
            ("{}".into(), None, "unsupported manifest media type"),
            (r#"{"schemaVersion":1,"name":"x","fsLayers":[]}"#.into(), None, "unsupported manifest media type"),
            (r#"{"schemaVersion":1,"mediaType":"application/vnd.docker.distribution.manifest.v1+json"}"#.into(), None, "schema 1"),
            (r#"{"schemaVersion":2,"mediaType":"application/vnd.example.thing+json","config":{}}"#.into(), None, "application/vnd.example.thing+json"),
            (r#"{"schemaVersion":3,"config":{"mediaType":"a","digest":"sha256:x","size":1}}"#.into(), None, "schemaVersion 3"),
            (format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"a","digest":"sha256:{h}","size":-1}},"layers":[]}}"#), None, "invalid"),
            (format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"a","digest":"sha256:{h}x","size":1}},"layers":[]}}"#), None, "needs 64 hex"),
            (format!(r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"a","digest":"sha256:{h}","size":1}},"layers":[]}}"#), Some("application/vnd.oci.image.index.v1+json"), "served as"),
            (r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#.into(), None, "missing field `manifests`"),
        ];
        for (json, ct, needle) in cases {
            let err = RawManifest::parse(json.clone().into_bytes(), ct)
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{json}: {err:?} lacks {needle:?}");
        }
        let big = vec![b' '; MAX_MANIFEST_BYTES + 1];
        assert!(matches!(
            RawManifest::parse(big, None),
            Err(ManifestError::TooLarge { .. })
        ));
    }
}
