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
//!
//! Split by direction: [`export`] reads an engine image out (which layers of a `docker save`
//! stream to carry, the manifest that describes them), [`load_stream`] writes one in (the
//! `docker load` stream of a bundle's target or of a registry image).

mod export;
mod load_stream;

pub use export::*;
pub use load_stream::*;

use std::collections::BTreeSet;

use crate::Digest;

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

#[cfg(test)]
mod tests;
