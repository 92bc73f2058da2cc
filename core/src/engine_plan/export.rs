//! Engine images out: which entries of a `docker save` stream hold which layer (before their
//! bytes are read), and the OCI manifest of an image taken from an engine or archive.

use std::collections::BTreeMap;

use super::{chain_ids, EngineError};
use crate::{Descriptor, Digest, ImageConfig, MediaType, RawManifest};

/// Where a layer sits in the target, from its archive entry alone, before its bytes are read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerHint {
    /// The layer at this index of the target's diff_ids.
    Index(usize),
    /// Not known until the bytes are hashed.
    Unknown,
}

/// The entry names of a `docker save` stream that hold layers: `<id>/layer.tar` (Docker < 25),
/// `blobs/sha256/<hex>` (Docker 25+, also configs and manifests), `<hex>.tar` (skopeo).
pub fn is_layer_path(path: &str) -> bool {
    path.ends_with("/layer.tar")
        || (path.starts_with("blobs/") && path.matches('/').count() == 2)
        || (!path.contains('/') && path.ends_with(".tar"))
}

/// Identifies a layer entry before reading it.
///
/// * `blobs/sha256/<hex>` and `<hex>.tar` name the diff_id itself (uncompressed layers);
/// * `<id>/layer.tar` of the classic layout: `<id>` is the v1 ID that `docker save` derived
///   (moby `image/v1.CreateID`) from the layer's chain ID, its parent's v1 ID and the
///   `<id>/json` written just before `layer.tar`; recomputing it for each chain ID of the
///   target tells which layer it is. `v1_json` is that file.
///
/// A hint is only an optimisation (it decides whether to compress while streaming); the host
/// still hashes what it carries and checks the result against the config.
pub fn layer_hint(path: &str, v1_json: Option<&[u8]>, diff_ids: &[Digest]) -> LayerHint {
    let by_digest = |hex: &str| {
        diff_ids
            .iter()
            .position(|d| d.hex() == hex)
            .map_or(LayerHint::Unknown, LayerHint::Index)
    };
    if let Some(rest) = path.strip_prefix("blobs/sha256/") {
        return by_digest(rest);
    }
    if let Some(id) = path.strip_suffix("/layer.tar") {
        return match v1_json {
            Some(j) => classic_layer_index(id, j, &chain_ids(diff_ids))
                .map_or(LayerHint::Unknown, LayerHint::Index),
            None => LayerHint::Unknown,
        };
    }
    match path.strip_suffix(".tar") {
        Some(hex) if !hex.contains('/') => by_digest(hex),
        _ => LayerHint::Unknown,
    }
}

/// Recomputes moby's v1 ID of a classic-layout layer directory for each chain ID and returns
/// the index that gives `id`. moby marshals the layer's v1 image (without `id`, and for
/// intermediate layers without the `os` it adds afterwards) as a map with `layer_id` and
/// `parent` (`sha256:`-prefixed) added: Go sorts map keys and keeps nested values as written.
fn classic_layer_index(id: &str, v1_json: &[u8], chains: &[Digest]) -> Option<usize> {
    let pairs = top_level_pairs(v1_json)?;
    for drop_os in [false, true] {
        let mut map: BTreeMap<&str, String> = BTreeMap::new();
        for (k, v) in &pairs {
            match *k {
                "id" => {}
                "os" if drop_os => {}
                "parent" => {
                    let hex = v.trim_matches('"');
                    map.insert("parent", format!("\"sha256:{hex}\""));
                }
                _ => {
                    map.insert(k, (*v).to_string());
                }
            }
        }
        for (i, c) in chains.iter().enumerate() {
            map.insert("layer_id", format!("\"{c}\""));
            let mut s = String::from("{");
            for (n, (k, v)) in map.iter().enumerate() {
                if n > 0 {
                    s.push(',');
                }
                s.push('"');
                s.push_str(k);
                s.push_str("\":");
                s.push_str(v);
            }
            s.push('}');
            if Digest::sha256(s.as_bytes()).hex() == id {
                return Some(i);
            }
        }
    }
    None
}

/// The top-level `"key": value` pairs of a compact JSON object, values as raw text. `None`
/// for anything else (keys with escapes included: moby never writes them).
pub(super) fn top_level_pairs(bytes: &[u8]) -> Option<Vec<(&str, &str)>> {
    let s = std::str::from_utf8(bytes).ok()?.trim();
    let inner = s.strip_prefix('{')?.strip_suffix('}')?;
    let b = inner.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            return None;
        }
        let key_end = i + 1 + inner[i + 1..].find('"')?;
        let key = &inner[i + 1..key_end];
        if key.contains('\\') || b.get(key_end + 1) != Some(&b':') {
            return None;
        }
        let start = key_end + 2;
        let (mut depth, mut in_str, mut esc) = (0i32, false, false);
        let mut j = start;
        while j < b.len() {
            let c = b[j];
            if in_str {
                match (esc, c) {
                    (true, _) => esc = false,
                    (false, b'\\') => esc = true,
                    (false, b'"') => in_str = false,
                    _ => {}
                }
            } else {
                match c {
                    b'"' => in_str = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth -= 1,
                    b',' if depth == 0 => break,
                    _ => {}
                }
            }
            j += 1;
        }
        if depth != 0 || in_str || j == start {
            return None;
        }
        out.push((key, &inner[start..j]));
        i = j + 1;
    }
    Some(out)
}

/// One layer of an image taken from an engine or a `docker save` archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportedLayer {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Exact size of the uncompressed tar.
    pub tar_size: u64,
    /// The compressed blob written for a carried layer; `None` for a relied-on layer.
    pub carried: Option<Descriptor>,
}

/// Builds the OCI image manifest of an engine image: the config (the engine's exact bytes) and
/// one descriptor per layer, the compressed blob for carried layers and the uncompressed tar
/// (digest = diff_id) for the others. Checks the layers against the config's diff_ids.
pub fn engine_manifest(
    config: &[u8],
    layers: &[ExportedLayer],
) -> Result<(RawManifest, ImageConfig), EngineError> {
    let digest = Digest::sha256(config);
    let cfg = ImageConfig::parse(config).map_err(|e| EngineError::Config {
        digest: digest.clone(),
        message: e.to_string(),
    })?;
    let ids = &cfg.rootfs.diff_ids;
    if ids.len() != layers.len() {
        return Err(EngineError::LayerCount {
            digest,
            expected: ids.len(),
            found: layers.len(),
        });
    }
    let mut descs = Vec::with_capacity(layers.len());
    for (i, (l, want)) in layers.iter().zip(ids).enumerate() {
        if &l.diff_id != want {
            return Err(EngineError::DiffIdMismatch {
                config: digest,
                index: i,
                expected: want.clone(),
                found: l.diff_id.clone(),
            });
        }
        descs.push(match &l.carried {
            Some(d) => d.clone(),
            None => Descriptor::new(MediaType::OciLayer, l.diff_id.clone(), l.tar_size),
        });
    }
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": Descriptor::new(MediaType::OciConfig, digest.clone(), config.len() as u64),
        "layers": descs,
    });
    // A json! value of strings, numbers and serialisable descriptors always serialises.
    #[allow(clippy::expect_used)]
    let bytes = serde_json::to_vec_pretty(&v).expect("manifest serialises");
    let m = RawManifest::parse(bytes, Some(MediaType::OciManifest.as_str())).map_err(|e| {
        EngineError::Config {
            digest,
            message: e.to_string(),
        }
    })?;
    Ok((m, cfg))
}
