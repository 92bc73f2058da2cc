//! Docker v2s2 manifests rewritten as OCI ones, for destinations that are OCI image layouts.
//!
//! An OCI layout's tools (skopeo, umoci, containerd's importer) resolve a name in
//! `index.json` only to OCI manifests and indexes, so an image loaded with its Docker media
//! types would be invisible to them. [`to_oci`] does what `skopeo copy … oci:` does: the
//! manifest and the manifest list get OCI media types, the config and layer *descriptors* get
//! theirs, and nothing else changes. Config and layer bytes stay as they are (a Docker image
//! config is a valid OCI config, and a Docker gzip layer is an OCI gzip layer), so only the
//! manifests' digests change; an index is rewritten to point at its converted children.
//!
//! Unknown fields (annotations, `urls`, platform details) are kept. The new documents are
//! serialised by `serde_json` (keys in sorted order), deterministically: converting the same
//! bundle twice gives the same bytes.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::load::ManifestPut;
use crate::{Digest, MediaType, RawManifest};

/// Why a manifest could not be converted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConvertError {
    /// The bytes are not a JSON object with the expected fields.
    #[error("manifest {digest}: cannot convert to OCI: {reason}")]
    Malformed {
        /// The manifest.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// A descriptor's media type has no OCI equivalent.
    #[error("manifest {digest}: cannot convert to OCI: {media_type} has no OCI equivalent")]
    NoEquivalent {
        /// The manifest.
        digest: Digest,
        /// The media type.
        media_type: String,
    },
}

/// The OCI media type standing for a Docker one in a descriptor, or the type itself when it
/// is already OCI (or unknown, e.g. an artifact type, which is kept).
fn oci_type(media_type: &str, manifest: &Digest) -> Result<String, ConvertError> {
    let mapped = match MediaType::parse(media_type) {
        MediaType::DockerManifest => MediaType::OciManifest.as_str().to_string(),
        MediaType::DockerManifestList => MediaType::OciIndex.as_str().to_string(),
        MediaType::DockerConfig => MediaType::OciConfig.as_str().to_string(),
        MediaType::DockerLayerGzip => MediaType::OciLayerGzip.as_str().to_string(),
        // What skopeo writes for Windows base layers (deprecated by OCI but still read).
        MediaType::DockerForeignLayer => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip".to_string()
        }
        MediaType::DockerSchema1 => {
            return Err(ConvertError::NoEquivalent {
                digest: manifest.clone(),
                media_type: media_type.to_string(),
            })
        }
        _ => media_type.to_string(),
    };
    Ok(mapped)
}

/// Rewrites one descriptor object in place: its media type, and its digest and size when it
/// points at a manifest converted earlier (`done`: old digest → new digest, size, type).
fn convert_descriptor(
    d: &mut Value,
    manifest: &Digest,
    done: &BTreeMap<Digest, (Digest, u64, MediaType)>,
) -> Result<(), ConvertError> {
    let malformed = |reason: &str| ConvertError::Malformed {
        digest: manifest.clone(),
        reason: reason.to_string(),
    };
    let obj = d
        .as_object_mut()
        .ok_or_else(|| malformed("a descriptor is not an object"))?;
    let old = obj
        .get("digest")
        .and_then(Value::as_str)
        .and_then(|s| Digest::parse(s).ok());
    if let Some((new, size, mt)) = old.and_then(|o| done.get(&o)) {
        obj.insert("digest".into(), Value::String(new.to_string()));
        obj.insert("size".into(), Value::from(*size));
        obj.insert("mediaType".into(), Value::String(mt.as_str().to_string()));
        return Ok(());
    }
    if let Some(mt) = obj.get("mediaType").and_then(Value::as_str) {
        let mapped = oci_type(mt, manifest)?;
        obj.insert("mediaType".into(), Value::String(mapped));
    }
    Ok(())
}

/// Converts the manifests of a load plan (children before the indexes that list them, as
/// [`plan_load`](crate::plan_load) orders them) to OCI media types. OCI manifests that
/// reference no converted manifest are returned unchanged, byte for byte.
pub fn to_oci(manifests: &[ManifestPut]) -> Result<Vec<ManifestPut>, ConvertError> {
    let mut done: BTreeMap<Digest, (Digest, u64, MediaType)> = BTreeMap::new();
    let mut out = Vec::with_capacity(manifests.len());
    for m in manifests {
        let docker = matches!(
            m.media_type,
            MediaType::DockerManifest | MediaType::DockerManifestList
        );
        let is_index = matches!(
            m.media_type,
            MediaType::DockerManifestList | MediaType::OciIndex
        );
        let mut v: Value =
            serde_json::from_slice(&m.bytes).map_err(|e| ConvertError::Malformed {
                digest: m.digest.clone(),
                reason: e.to_string(),
            })?;
        let refers_to_converted = is_index
            && v["manifests"].as_array().is_some_and(|a| {
                a.iter().any(|d| {
                    d["digest"]
                        .as_str()
                        .and_then(|s| Digest::parse(s).ok())
                        .is_some_and(|x| done.contains_key(&x))
                })
            });
        if !docker && !refers_to_converted {
            out.push(m.clone());
            continue;
        }
        let new_type = if is_index {
            MediaType::OciIndex
        } else {
            MediaType::OciManifest
        };
        let obj = v.as_object_mut().ok_or_else(|| ConvertError::Malformed {
            digest: m.digest.clone(),
            reason: "not a JSON object".into(),
        })?;
        obj.insert(
            "mediaType".into(),
            Value::String(new_type.as_str().to_string()),
        );
        // An index's children; a manifest's config and layers.
        for (key, value) in obj.iter_mut() {
            let descriptors: Vec<&mut Value> = match (is_index, key.as_str(), value) {
                (true, "manifests", Value::Array(a)) | (false, "layers", Value::Array(a)) => {
                    a.iter_mut().collect()
                }
                (false, "config", c) => vec![c],
                _ => continue,
            };
            for d in descriptors {
                convert_descriptor(d, &m.digest, &done)?;
            }
        }
        // A Value always serialises.
        let bytes = serde_json::to_vec(&v).map_err(|e| ConvertError::Malformed {
            digest: m.digest.clone(),
            reason: e.to_string(),
        })?;
        // The result must be a manifest this crate accepts, of the type it claims.
        let parsed = RawManifest::parse(bytes, Some(new_type.as_str())).map_err(|e| {
            ConvertError::Malformed {
                digest: m.digest.clone(),
                reason: format!("the converted manifest does not parse: {e}"),
            }
        })?;
        let digest = parsed.digest().clone();
        let bytes = parsed.bytes().to_vec();
        done.insert(
            m.digest.clone(),
            (digest.clone(), bytes.len() as u64, new_type.clone()),
        );
        out.push(ManifestPut {
            bytes,
            media_type: new_type,
            digest,
            original: m.original.clone(),
            target: m.target,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::synth::{config_json, index, layer_tar, manifest, plain_layer};
    use crate::Descriptor;

    fn put(m: &RawManifest, target: Option<usize>) -> ManifestPut {
        ManifestPut {
            bytes: m.bytes().to_vec(),
            media_type: m.media_type().clone(),
            digest: m.digest().clone(),
            original: m.digest().clone(),
            target,
        }
    }

    /// A Docker v2s2 image with a gzip layer descriptor (the bytes are not needed here).
    fn docker_image(arch: &str) -> (RawManifest, Descriptor, Digest) {
        let t = layer_tar(&[(arch, b"x")], 0);
        let mut l = plain_layer(&t, "ADD x /");
        l.descriptor.media_type = MediaType::DockerLayerGzip;
        let c = config_json(
            std::slice::from_ref(&l),
            "linux",
            arch,
            "2026-01-01T00:00:00Z",
        );
        let m = manifest(&MediaType::DockerManifest, &c, std::slice::from_ref(&l));
        (m, l.descriptor, Digest::sha256(&c))
    }

    #[test]
    fn docker_image_and_list_become_oci_with_the_same_blobs() {
        let (a, la, ca) = docker_image("amd64");
        let (b, lb, _) = docker_image("arm64");
        // A Docker manifest list over both (synth::index writes OCI; relabel it).
        let oci_idx = index(&[(&a, "linux", "amd64"), (&b, "linux", "arm64")]);
        let mut v: Value = serde_json::from_slice(oci_idx.bytes()).unwrap();
        v["mediaType"] = Value::String(MediaType::DockerManifestList.as_str().into());
        let list = RawManifest::parse(serde_json::to_vec(&v).unwrap(), None).unwrap();
        assert_eq!(list.media_type(), &MediaType::DockerManifestList);

        let out = to_oci(&[put(&a, None), put(&b, None), put(&list, Some(0))]).unwrap();
        assert_eq!(out.len(), 3);
        for (o, i) in out.iter().zip([&a, &b, &list]) {
            assert_ne!(
                &o.digest,
                i.digest(),
                "a converted manifest has a new digest"
            );
            assert_eq!(&o.original, i.digest());
            assert_eq!(o.digest, Digest::sha256(&o.bytes));
        }
        assert_eq!(out[2].target, Some(0));
        let img = RawManifest::parse(out[0].bytes.clone(), None).unwrap();
        assert_eq!(img.media_type(), &MediaType::OciManifest);
        let im = img.as_image().unwrap();
        assert_eq!(im.config.media_type, MediaType::OciConfig);
        assert_eq!(im.config.digest, ca, "config bytes are not touched");
        assert_eq!(im.layers[0].media_type, MediaType::OciLayerGzip);
        assert_eq!(im.layers[0].digest, la.digest);
        assert_eq!(im.layers[0].size, la.size);
        let second = RawManifest::parse(out[1].bytes.clone(), None).unwrap();
        assert_eq!(second.as_image().unwrap().layers[0].digest, lb.digest);

        let idx = RawManifest::parse(out[2].bytes.clone(), None).unwrap();
        assert_eq!(idx.media_type(), &MediaType::OciIndex);
        let children = &idx.as_index().unwrap().manifests;
        assert_eq!(children[0].digest, out[0].digest);
        assert_eq!(children[0].size, out[0].bytes.len() as u64);
        assert_eq!(children[0].media_type, MediaType::OciManifest);
        assert_eq!(children[1].digest, out[1].digest);
        assert_eq!(
            children[1].platform.as_ref().unwrap().architecture,
            "arm64",
            "platforms are kept"
        );
        // Deterministic: the same input converts to the same bytes.
        let again = to_oci(&[put(&a, None), put(&b, None), put(&list, Some(0))]).unwrap();
        assert_eq!(again, out);
    }

    #[test]
    fn oci_documents_are_kept_byte_for_byte() {
        let t = layer_tar(&[("f", b"y")], 0);
        let l = plain_layer(&t, "ADD f /");
        let c = config_json(
            std::slice::from_ref(&l),
            "linux",
            "amd64",
            "2026-01-01T00:00:00Z",
        );
        let m = manifest(&MediaType::OciManifest, &c, std::slice::from_ref(&l));
        let i = index(&[(&m, "linux", "amd64")]);
        let input = [put(&m, None), put(&i, Some(0))];
        assert_eq!(to_oci(&input).unwrap(), input.to_vec());
    }

    #[test]
    fn annotations_and_urls_survive_and_schema1_is_refused() {
        let (a, _, _) = docker_image("amd64");
        let mut v: Value = serde_json::from_slice(a.bytes()).unwrap();
        v["layers"][0]["urls"] = serde_json::json!(["https://example.com/l"]);
        v["layers"][0]["mediaType"] = Value::String(MediaType::DockerForeignLayer.as_str().into());
        v["annotations"] = serde_json::json!({"org.example": "kept"});
        let m = RawManifest::parse(serde_json::to_vec(&v).unwrap(), None).unwrap();
        let out = to_oci(&[put(&m, Some(0))]).unwrap();
        let w: Value = serde_json::from_slice(&out[0].bytes).unwrap();
        assert_eq!(w["annotations"]["org.example"], "kept");
        assert_eq!(w["layers"][0]["urls"][0], "https://example.com/l");
        assert_eq!(
            w["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        );

        let err = oci_type(
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            m.digest(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("has no OCI equivalent"), "{err}");
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        let (a, _, _) = docker_image("amd64");
        let mut p = put(&a, None);
        p.bytes = b"[1,2,3]".to_vec();
        let err = to_oci(&[p.clone()]).unwrap_err();
        assert!(matches!(err, ConvertError::Malformed { .. }), "{err}");
        p.bytes = b"{not json".to_vec();
        assert!(to_oci(&[p]).is_err());
    }
}
