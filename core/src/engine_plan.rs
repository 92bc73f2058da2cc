//! Docker engine images without a registry: what to carry out of a `docker save` stream and
//! how to write a `docker load` stream that carries only those layers.
//!
//! ```text
//!  docker save (classic <id>/layer.tar or OCI blobs/sha256/<diffid>)
//!        │ entries, in archive order
//!        ▼
//!  layer_hint ──► carry? ──► host compresses ──► ExportedLayer ──► engine_manifest ──► diff::plan
//!
//!  bundle Report ──► docker_load_archive ──► entries (files + carried blobs) ──► docker load
//! ```
//!
//! An engine knows layers only by `diff_id` (the digest of the uncompressed tar). A bundle made
//! from an engine therefore describes relied-on layers as uncompressed tar descriptors (digest
//! = diff_id, size = the tar's exact size) and carried layers as the compressed blobs the host
//! wrote. The manifest is an OCI image manifest: unlike Docker's v2 schema 2 it has media types
//! for uncompressed, gzip and zstd layers alike, and registries accept it everywhere.
//!
//! `docker load` (moby `image/tarexport/load.go`) looks a layer up by chain ID before it opens
//! the layer file, so a layer the engine already has may be listed in `manifest.json` without
//! being in the archive. Layer files may be gzip (all versions) or zstd (Docker 25+).

use std::collections::{BTreeMap, BTreeSet};

use crate::bundle::{BlobKind, Report};
use crate::{Descriptor, Digest, ImageConfig, MediaType, RawManifest, Reference};

/// Why an engine image cannot be described or loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The config is not an image config.
    #[error("image config {digest}: {message}")]
    Config { digest: Digest, message: String },
    /// The layers found do not match the config's `rootfs.diff_ids`.
    #[error("image config {digest} lists {expected} layers, the archive has {found}")]
    LayerCount {
        digest: Digest,
        expected: usize,
        found: usize,
    },
    /// A layer's content does not hash to the diff_id the config names for its position.
    #[error("layer {index} of {config}: expected diff_id {expected}, found {found}")]
    DiffIdMismatch {
        config: Digest,
        index: usize,
        expected: Digest,
        found: Digest,
    },
    /// A report's target is not there or not loadable into an engine.
    #[error("bundle target {target}: {problem}")]
    Target {
        target: String,
        problem: &'static str,
    },
    /// A manifest or config of the report is missing or unreadable.
    #[error("bundle blob {digest}: {problem}")]
    Blob {
        digest: Digest,
        problem: &'static str,
    },
}

/// Chain IDs of a layer stack (OCI image spec `config.md`): `ChainID(L0) = DiffID(L0)`,
/// `ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(Ln))`.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Which target layers to carry: those whose diff_id no base layer has (the planner's rule).
pub fn carried_layers(base_diff_ids: &[Digest], target_diff_ids: &[Digest]) -> Vec<bool> {
    let base: BTreeSet<&Digest> = base_diff_ids.iter().collect();
    target_diff_ids.iter().map(|d| !base.contains(d)).collect()
}

/// Whether an engine image with layers `candidate` lets `docker load` skip every layer
/// marked `absent`: the candidate must be a prefix of the target's layers that covers every
/// absent layer (the engine finds a layer by chain ID, which depends on all layers below it).
pub fn base_covers(target: &[Digest], absent: &[bool], candidate: &[Digest]) -> bool {
    if candidate.len() > target.len() || target[..candidate.len()] != *candidate {
        return false;
    }
    absent
        .iter()
        .enumerate()
        .all(|(i, a)| !a || i < candidate.len())
}

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
fn top_level_pairs(bytes: &[u8]) -> Option<Vec<(&str, &str)>> {
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

/// One entry of a `docker load` stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadEntry {
    /// A small file written whole.
    File {
        /// Path in the archive.
        path: String,
        /// Content.
        bytes: Vec<u8>,
    },
    /// A carried blob of the bundle, copied from it.
    Blob {
        /// Path in the archive.
        path: String,
        /// Index into the report's `meta.blobs`.
        index: usize,
        /// Size.
        size: u64,
    },
}

impl LoadEntry {
    /// The path in the archive.
    pub fn path(&self) -> &str {
        match self {
            LoadEntry::File { path, .. } | LoadEntry::Blob { path, .. } => path,
        }
    }
}

/// What to stream into `docker load` for one target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadArchive {
    /// Entries in order: `oci-layout`, blobs, `index.json`, `manifest.json`.
    pub entries: Vec<LoadEntry>,
    /// The image's layer diff_ids, base first.
    pub diff_ids: Vec<Digest>,
    /// For each layer, whether its file is left out (the engine must have it).
    pub absent: Vec<bool>,
    /// Whether a carried layer is zstd-compressed (Docker < 25 refuses those).
    pub zstd: bool,
    /// The tag written into `manifest.json` (`RepoTags`) and `index.json`.
    pub tag: String,
    /// The image ID the engine will report (the config digest).
    pub image_id: Digest,
}

impl LoadArchive {
    /// Bytes of the `docker load` stream: a tar of [`LoadArchive::entries`] as
    /// [`crate::tar::Framer`] frames it (for progress).
    pub fn stream_len(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| {
                let size = match e {
                    LoadEntry::File { bytes, .. } => bytes.len() as u64,
                    LoadEntry::Blob { size, .. } => *size,
                };
                crate::tar::Framer::entry_len(e.path(), size)
            })
            .sum::<u64>()
            + crate::tar::Framer::END_LEN
    }
}

/// Plans the `docker load` stream for target `target` of `report`, tagged `tag` (familiar
/// form, e.g. `app:2`; `None` keeps the bundle's name). The archive is both Docker's classic
/// `manifest.json` format and an OCI layout (`oci-layout`, `index.json`, `blobs/`), as Docker
/// 25+ writes it; every path is `blobs/sha256/<hex>`. Layers the bundle relies on are listed
/// (by diff_id) but absent.
pub fn docker_load_archive(
    report: &Report,
    target: usize,
    tag: Option<&str>,
) -> Result<LoadArchive, EngineError> {
    docker_load_archive_indexed(&crate::TargetIndex::new(report), target, tag)
}

/// [`docker_load_archive`] with the bundle's index built once (for many targets: each
/// layer is then found in logarithmic time instead of by a scan of every blob).
pub fn docker_load_archive_indexed(
    index: &crate::TargetIndex<'_>,
    target: usize,
    tag: Option<&str>,
) -> Result<LoadArchive, EngineError> {
    docker_load_archive_omitting(index, target, tag, &|_| false)
}

/// [`docker_load_archive_indexed`], also leaving out (listed by diff_id, like the base) the
/// carried layers at the positions `loaded` says the engine already has: those an earlier
/// target of the same load gave it with the same layers below them (see [`chain_ids`]), so
/// that layers many targets share are streamed once.
pub fn docker_load_archive_omitting(
    index: &crate::TargetIndex<'_>,
    target: usize,
    tag: Option<&str>,
    loaded: &dyn Fn(usize) -> bool,
) -> Result<LoadArchive, EngineError> {
    let report = index.report();
    let meta = &report.meta;
    let t = meta.targets.get(target).ok_or(EngineError::Target {
        target: format!("#{target}"),
        problem: "no such target",
    })?;
    let terr = |problem| EngineError::Target {
        target: t.reference.clone(),
        problem,
    };
    let [img] = &t.images[..] else {
        return Err(terr(
            "has several platforms; an engine loads one (make the bundle with --platform)",
        ));
    };
    let json = |d: &Digest| {
        report.json_blobs.get(d).ok_or(EngineError::Blob {
            digest: d.clone(),
            problem: "missing from the bundle",
        })
    };
    let mbytes = json(&img.manifest)?;
    let manifest = RawManifest::parse(
        mbytes.clone(),
        index
            .carried(&img.manifest)
            .map(|i| meta.blobs[i].media_type.as_str()),
    )
    .map_err(|_| EngineError::Blob {
        digest: img.manifest.clone(),
        problem: "not a valid manifest",
    })?;
    let m = manifest.as_image().ok_or(EngineError::Blob {
        digest: img.manifest.clone(),
        problem: "not an image manifest",
    })?;
    let cfg = ImageConfig::parse(json(&img.config)?).map_err(|e| EngineError::Config {
        digest: img.config.clone(),
        message: e.to_string(),
    })?;
    if cfg.rootfs.diff_ids.len() != m.layers.len() {
        return Err(EngineError::LayerCount {
            digest: img.config.clone(),
            expected: cfg.rootfs.diff_ids.len(),
            found: m.layers.len(),
        });
    }
    let tag = match tag {
        Some(t) => t.to_string(),
        None => Reference::parse(&t.reference)
            .map(|r| r.familiar())
            .map_err(|_| terr("is not a valid image name"))?,
    };
    let cfg_bytes = json(&img.config)?;
    assemble(&manifest, cfg_bytes, cfg, tag, |pos, l| {
        if loaded(pos) {
            return None;
        }
        let i = index
            .carried(&l.digest)
            .filter(|&i| meta.blobs[i].kind == BlobKind::Layer)?;
        Some((i, meta.blobs[i].size))
    })
}

/// Plans the `docker load` stream of one image pulled from a registry: `skip[i]` marks layers
/// the engine already has (left out); the others are [`LoadEntry::Blob`] with `index` = the
/// layer's position in the manifest, for the host to stream from the registry.
pub fn docker_load_image(
    manifest: &RawManifest,
    config: &[u8],
    skip: &[bool],
    tag: &str,
) -> Result<LoadArchive, EngineError> {
    let digest = Digest::sha256(config);
    let m = manifest.as_image().ok_or(EngineError::Blob {
        digest: manifest.digest().clone(),
        problem: "not an image manifest",
    })?;
    let cfg = ImageConfig::parse(config).map_err(|e| EngineError::Config {
        digest: digest.clone(),
        message: e.to_string(),
    })?;
    if cfg.rootfs.diff_ids.len() != m.layers.len() || skip.len() != m.layers.len() {
        return Err(EngineError::LayerCount {
            digest,
            expected: cfg.rootfs.diff_ids.len(),
            found: m.layers.len(),
        });
    }
    assemble(manifest, config, cfg, tag.to_string(), |i, l| {
        (!skip[i]).then_some((i, l.size))
    })
}

/// The entries of a load stream: `oci-layout`, config, manifest, the layers `layer` returns
/// `(index, size)` for, `index.json`, `manifest.json`. Layers without an entry are listed by
/// diff_id and left out.
fn assemble(
    manifest: &RawManifest,
    config: &[u8],
    cfg: ImageConfig,
    tag: String,
    mut layer: impl FnMut(usize, &Descriptor) -> Option<(usize, u64)>,
) -> Result<LoadArchive, EngineError> {
    let blob_path = |d: &Digest| format!("blobs/{}/{}", d.algorithm().name(), d.hex());
    let Some(m) = manifest.as_image() else {
        return Err(EngineError::Blob {
            digest: manifest.digest().clone(),
            problem: "not an image manifest",
        });
    };
    let config_digest = Digest::sha256(config);
    let mut entries = vec![
        LoadEntry::File {
            path: "oci-layout".into(),
            bytes: crate::bundle::meta::OCI_LAYOUT.to_vec(),
        },
        LoadEntry::File {
            path: blob_path(&config_digest),
            bytes: config.to_vec(),
        },
        LoadEntry::File {
            path: blob_path(manifest.digest()),
            bytes: manifest.bytes().to_vec(),
        },
    ];
    let mut seen = BTreeSet::new();
    let mut layer_paths = Vec::new();
    let mut absent = Vec::new();
    let mut zstd = false;
    for (i, (l, diff_id)) in m.layers.iter().zip(&cfg.rootfs.diff_ids).enumerate() {
        match layer(i, l) {
            Some((index, size)) => {
                if seen.insert(l.digest.clone()) {
                    entries.push(LoadEntry::Blob {
                        path: blob_path(&l.digest),
                        index,
                        size,
                    });
                }
                layer_paths.push(blob_path(&l.digest));
                zstd |= l.media_type == MediaType::OciLayerZstd;
                absent.push(false);
            }
            None => {
                layer_paths.push(blob_path(diff_id));
                absent.push(true);
            }
        }
    }
    let full_name = Reference::parse(&tag)
        .map(|r| r.to_string())
        .unwrap_or_else(|_| tag.clone());
    let ref_name = tag
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or("latest", |(_, t)| t)
        .to_string();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciIndex.as_str(),
        "manifests": [{
            "mediaType": manifest.media_type().as_str(),
            "digest": manifest.digest().to_string(),
            "size": manifest.bytes().len(),
            "annotations": {
                "io.containerd.image.name": full_name,
                "org.opencontainers.image.ref.name": ref_name,
            }
        }]
    });
    // A json! value always serialises.
    #[allow(clippy::expect_used)]
    let index = serde_json::to_vec(&index).expect("index.json serialises");
    entries.push(LoadEntry::File {
        path: "index.json".into(),
        bytes: index,
    });
    let entry = crate::ManifestEntry {
        config: blob_path(&config_digest),
        repo_tags: Some(vec![tag.clone()]),
        layers: layer_paths,
        parent: None,
        layer_sources: None,
    };
    let mut mj = Vec::new();
    crate::docker_archive::encode_manifest(&[entry], &mut mj);
    entries.push(LoadEntry::File {
        path: crate::docker_archive::MANIFEST_PATH.into(),
        bytes: mj,
    });
    Ok(LoadArchive {
        entries,
        diff_ids: cfg.rootfs.diff_ids,
        absent,
        zstd,
        tag,
        image_id: config_digest,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::bundle::{Decoder, EncodeOptions, Encoder, Event};
    use crate::{plan, BaseImage, TargetImageInput, TargetInput};

    fn d(s: &str) -> Digest {
        Digest::sha256(s.as_bytes())
    }

    /// Real `<id>/json` files of a `docker save` by Docker 20.10.24 (Debian), with the image's
    /// diff_ids: a busybox base, one RUN layer, one more RUN layer (the image's own).
    const DIFF_IDS: [&str; 3] = [
        "sha256:097161e579fb937a8a38bb83a0447fbdb1e3dba1bcbe53abcd9f5b82a99727ce",
        "sha256:d53daf8d48a3be472456767d4fa47ca180a7a8dfe1fc0dc78a0251802657f48a",
        "sha256:b490f9919209e9905b6f4e612306f06205d6400a4685679c048c40c5076024e9",
    ];
    const CC: &str = r#""container_config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#;

    #[test]
    fn classic_v1_ids_identify_layers() {
        let ids: Vec<Digest> = DIFF_IDS.iter().map(|s| Digest::parse(s).unwrap()).collect();
        let l0 = "021efa8b3972239f81d41ed3dd7534c95794fe81e9890761eb2f35e2d10065b7";
        let l1 = "aa3305205efda429365fef563b36a9c14f6ec10dc91a4dfef27711310437c6a2";
        let j0 = format!(r#"{{"id":"{l0}","created":"1970-01-01T00:00:00Z",{CC},"os":"linux"}}"#);
        let j1 = format!(
            r#"{{"id":"{l1}","parent":"{l0}","created":"1970-01-01T00:00:00Z",{CC},"os":"linux"}}"#
        );
        assert_eq!(
            layer_hint(&format!("{l0}/layer.tar"), Some(j0.as_bytes()), &ids),
            LayerHint::Index(0)
        );
        assert_eq!(
            layer_hint(&format!("{l1}/layer.tar"), Some(j1.as_bytes()), &ids),
            LayerHint::Index(1)
        );
        // Another image's layer, a damaged json, no json: unknown, never a wrong index.
        assert_eq!(
            layer_hint(&format!("{l1}/layer.tar"), Some(j1.as_bytes()), &ids[..1]),
            LayerHint::Unknown
        );
        assert_eq!(
            layer_hint(&format!("{l1}/layer.tar"), Some(b"{\"id\":"), &ids),
            LayerHint::Unknown
        );
        assert_eq!(
            layer_hint(&format!("{l1}/layer.tar"), None, &ids),
            LayerHint::Unknown
        );
        // Docker 25+ and skopeo name the diff_id.
        let hex = ids[2].hex();
        assert_eq!(
            layer_hint(&format!("blobs/sha256/{hex}"), None, &ids),
            LayerHint::Index(2)
        );
        assert_eq!(
            layer_hint(&format!("{hex}.tar"), None, &ids),
            LayerHint::Index(2)
        );
        assert!(is_layer_path(&format!("{l0}/layer.tar")));
        assert!(is_layer_path(&format!("blobs/sha256/{hex}")));
        assert!(!is_layer_path("manifest.json"));
        assert!(!is_layer_path(&format!("{l0}/json")));
    }

    #[test]
    fn top_level_pairs_keep_nested_values() {
        let p = top_level_pairs(br#"{"a":{"b":[1,"x,}"]},"c":"d\"e","f":null}"#).unwrap();
        assert_eq!(
            p,
            vec![
                ("a", r#"{"b":[1,"x,}"]}"#),
                ("c", r#""d\"e""#),
                ("f", "null")
            ]
        );
        for bad in [&b"[]"[..], b"{\"a\"}", b"{\"a\":}", b"{a:1}", b"\xff"] {
            assert!(top_level_pairs(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn chain_ids_and_coverage() {
        let ids = [d("a"), d("b"), d("c")];
        let c = chain_ids(&ids);
        assert_eq!(c[0], ids[0]);
        assert_eq!(
            c[1],
            Digest::sha256(format!("{} {}", ids[0], ids[1]).as_bytes())
        );
        assert_eq!(carried_layers(&ids[..2], &ids), vec![false, false, true]);
        let absent = [true, true, false];
        assert!(base_covers(&ids, &absent, &ids[..2]));
        assert!(base_covers(&ids, &absent, &ids));
        assert!(!base_covers(&ids, &absent, &ids[..1]));
        assert!(!base_covers(&ids, &absent, &[d("x"), d("b")]));
        assert!(!base_covers(&ids[..1], &absent[..1], &ids));
        assert!(base_covers(&ids, &[false; 3], &[]));
    }

    fn config(diff_ids: &[Digest]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .unwrap()
    }

    /// A bundle as `ddiff diff bb:base app:2` makes it from an engine.
    fn engine_bundle(zstd: bool) -> (Report, Vec<Digest>, Vec<u8>) {
        let ids = vec![d("base0"), d("base1"), d("app")];
        let cfg = config(&ids);
        let blob = b"compressed app layer".to_vec();
        let mt = if zstd {
            MediaType::OciLayerZstd
        } else {
            MediaType::OciLayerGzip
        };
        let layers = vec![
            ExportedLayer {
                diff_id: ids[0].clone(),
                tar_size: 10240,
                carried: None,
            },
            ExportedLayer {
                diff_id: ids[1].clone(),
                tar_size: 2048,
                carried: None,
            },
            ExportedLayer {
                diff_id: ids[2].clone(),
                tar_size: 4096,
                carried: Some(Descriptor::new(
                    mt,
                    Digest::sha256(&blob),
                    blob.len() as u64,
                )),
            },
        ];
        let (m, c) = engine_manifest(&cfg, &layers).unwrap();
        let p = plan(
            &[BaseImage::from_diff_ids("bb:base", ids[..2].to_vec())],
            &[TargetInput {
                reference: "app:2".into(),
                top: m.clone(),
                images: vec![TargetImageInput {
                    manifest: m.clone(),
                    config: Some(c),
                }],
            }],
            "test",
            None,
        )
        .unwrap();
        assert_eq!(p.meta.relied.len(), 2);
        assert_eq!(
            p.meta.relied[0].digest, ids[0],
            "relied digest is the diff_id"
        );
        assert_eq!(p.meta.relied[0].size, 10240);
        assert_eq!(p.meta.relied[0].media_type, MediaType::OciLayer);
        assert_eq!(p.meta.blobs.len(), 3);
        let mut out = Vec::new();
        let mut e = Encoder::new(p.meta.clone(), EncodeOptions::default()).unwrap();
        e.start(&mut out).unwrap();
        for b in &p.meta.blobs {
            let data: &[u8] = match b.kind {
                BlobKind::Manifest => m.bytes(),
                BlobKind::Config => &cfg,
                _ => &blob,
            };
            e.begin_blob(&mut out).unwrap();
            e.blob_data(data, &mut out).unwrap();
            e.end_blob(&mut out).unwrap();
        }
        e.finish(&mut out).unwrap();
        let mut dec = Decoder::new();
        let mut p = &out[..];
        let report = loop {
            let (n, ev) = dec.decode(p).unwrap();
            p = &p[n..];
            if let Some(Event::End(r)) = ev {
                break *r;
            }
        };
        (report, ids, cfg)
    }

    #[test]
    fn engine_manifest_checks_diff_ids() {
        let ids = [d("a")];
        let cfg = config(&ids);
        let wrong = ExportedLayer {
            diff_id: d("b"),
            tar_size: 1,
            carried: None,
        };
        assert!(matches!(
            engine_manifest(&cfg, std::slice::from_ref(&wrong)),
            Err(EngineError::DiffIdMismatch { index: 0, .. })
        ));
        assert!(matches!(
            engine_manifest(&cfg, &[]),
            Err(EngineError::LayerCount { expected: 1, .. })
        ));
        assert!(engine_manifest(b"{}", &[]).is_err());
    }

    #[test]
    fn load_archive_lists_relied_layers_without_files() {
        let (report, ids, cfg) = engine_bundle(false);
        let a = docker_load_archive(&report, 0, None).unwrap();
        assert_eq!(a.tag, "app:2");
        assert_eq!(a.absent, vec![true, true, false]);
        assert!(!a.zstd);
        assert_eq!(a.image_id, Digest::sha256(&cfg));
        let paths: Vec<&str> = a.entries.iter().map(LoadEntry::path).collect();
        assert_eq!(paths[0], "oci-layout");
        assert_eq!(paths[paths.len() - 2..], ["index.json", "manifest.json"]);
        assert_eq!(
            a.entries
                .iter()
                .filter(|e| matches!(e, LoadEntry::Blob { .. }))
                .count(),
            1,
            "only the carried layer is copied from the bundle"
        );
        let LoadEntry::File { bytes, .. } = a.entries.last().unwrap() else {
            panic!("manifest.json is a file")
        };
        let mj = crate::docker_archive::parse_manifest(bytes).unwrap();
        assert_eq!(mj[0].repo_tags.as_deref(), Some(&["app:2".to_string()][..]));
        assert_eq!(mj[0].layers[0], format!("blobs/sha256/{}", ids[0].hex()));
        assert_eq!(mj[0].config_digest(), Some(Digest::sha256(&cfg)));
        let renamed = docker_load_archive(&report, 0, Some("other/app:9")).unwrap();
        assert_eq!(renamed.tag, "other/app:9");
        assert!(docker_load_archive(&report, 1, None).is_err());
        assert!(
            docker_load_archive(&engine_bundle(true).0, 0, None)
                .unwrap()
                .zstd
        );
    }
    #[test]
    fn pulled_image_leaves_out_the_layers_the_engine_has() {
        let ids = vec![d("l0"), d("l1")];
        let cfg = config(&ids);
        let layers: Vec<ExportedLayer> = ids
            .iter()
            .map(|id| ExportedLayer {
                diff_id: id.clone(),
                tar_size: 2048,
                carried: Some(Descriptor::new(
                    MediaType::OciLayerGzip,
                    Digest::sha256(id.hex().as_bytes()),
                    100,
                )),
            })
            .collect();
        let (m, _) = engine_manifest(&cfg, &layers).unwrap();
        let a = docker_load_image(&m, &cfg, &[true, false], "localhost:5000/app:2").unwrap();
        assert_eq!(a.absent, vec![true, false]);
        let blobs: Vec<_> = a
            .entries
            .iter()
            .filter_map(|e| match e {
                LoadEntry::Blob { index, size, .. } => Some((*index, *size)),
                LoadEntry::File { .. } => None,
            })
            .collect();
        assert_eq!(
            blobs,
            vec![(1, 100)],
            "only layer 1, by its manifest position"
        );
        assert_eq!(a.image_id, Digest::sha256(&cfg));
        let LoadEntry::File { bytes, .. } = &a.entries[a.entries.len() - 2] else {
            panic!("index.json")
        };
        let idx = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            idx.contains(r#""org.opencontainers.image.ref.name":"2""#),
            "{idx}"
        );
        assert!(docker_load_image(&m, &cfg, &[true], "app:2").is_err());
    }
}
