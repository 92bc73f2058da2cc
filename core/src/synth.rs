//! Builders for synthetic images: real layer tars, configs with history and manifests, made
//! deterministically. Used by tests, `ddiff demo` and the benchmarks.

use crate::{tar, Descriptor, Digest, MediaType, RawManifest};

/// A layer ready to be referenced by a manifest.
#[derive(Clone, Debug)]
pub struct SynthLayer {
    /// The blob descriptor (digest of the stored, possibly compressed, bytes).
    pub descriptor: Descriptor,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// The history line that "created" it.
    pub created_by: String,
}

/// An uncompressed layer tar holding `files` (path, content), mode 0644, fixed mtime.
pub fn layer_tar(files: &[(&str, &[u8])], mtime: u64) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, data) in files {
        tar::write_file(&mut out, path, data, 0o644, mtime);
    }
    tar::write_end(&mut out);
    out
}

/// Describes an uncompressed layer tar as an OCI `tar` layer.
pub fn plain_layer(tar_bytes: &[u8], created_by: &str) -> SynthLayer {
    let d = Digest::sha256(tar_bytes);
    SynthLayer {
        descriptor: Descriptor::new(MediaType::OciLayer, d.clone(), tar_bytes.len() as u64),
        diff_id: d,
        created_by: created_by.to_string(),
    }
}

/// The config JSON for an image of `layers` (history lines from the layers), deterministic.
pub fn config_json(layers: &[SynthLayer], os: &str, arch: &str, created: &str) -> Vec<u8> {
    let history: Vec<serde_json::Value> = layers
        .iter()
        .map(|l| serde_json::json!({"created": created, "created_by": l.created_by}))
        .collect();
    let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.to_string()).collect();
    let v = serde_json::json!({
        "architecture": arch,
        "os": os,
        "created": created,
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    });
    // A json! value always serialises.
    serde_json::to_vec(&v).expect("config serialises")
}

/// A manifest of the given family (`MediaType::OciManifest` or `MediaType::DockerManifest`)
/// for a config blob and layers.
pub fn manifest(media_type: &MediaType, config: &[u8], layers: &[SynthLayer]) -> RawManifest {
    let config_type = if media_type.is_docker() {
        MediaType::DockerConfig
    } else {
        MediaType::OciConfig
    };
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type.as_str(),
        "config": Descriptor::new(config_type, Digest::sha256(config), config.len() as u64),
        "layers": layers.iter().map(|l| &l.descriptor).collect::<Vec<_>>(),
    });
    // A json! value always serialises, and it is a valid manifest by construction.
    let bytes = serde_json::to_vec(&v).expect("manifest serialises");
    RawManifest::parse(bytes, Some(media_type.as_str())).expect("synthetic manifest parses")
}

/// An OCI index over image manifests with their platforms.
pub fn index(children: &[(&RawManifest, &str, &str)]) -> RawManifest {
    let manifests: Vec<serde_json::Value> = children
        .iter()
        .map(|(m, os, arch)| {
            serde_json::json!({
                "mediaType": m.media_type().as_str(),
                "digest": m.digest().to_string(),
                "size": m.bytes().len(),
                "platform": {"os": os, "architecture": arch},
            })
        })
        .collect();
    let v = serde_json::json!({"schemaVersion": 2, "mediaType": MediaType::OciIndex.as_str(), "manifests": manifests});
    // As above: serialisable and valid by construction.
    let bytes = serde_json::to_vec(&v).expect("index serialises");
    RawManifest::parse(bytes, None).expect("synthetic index parses")
}
