//! Deltas inside layers: a layer the destination lacks travels as a patch of its
//! *uncompressed* tar against a similar layer the destination holds, and the loader rebuilds
//! the exact blob (same digest) from the destination's own copy of that layer.
//!
//! ```text
//!  online side                                           offline side
//!  target layer blob ─► tar ─► Fingerprint ┐             reference blob (at the destination)
//!  base layer blobs  ─► tar ─► Fingerprint ┴► choose_references      │ decompress
//!                                              │                       ▼
//!                         zstd(target tar, prefix = reference tar) ── patch ─► target tar
//!                                              │                       │ recompress (Recipe)
//!                          Recipe proven: recompressing the tar gives  ▼
//!                          the blob's exact bytes                  exact blob, digest checked
//! ```
//!
//! This module decides; hosts move bytes. It holds what a bundle records about a patch
//! ([`PatchInfo`], [`Recipe`]), the per-layer [`Fingerprint`]s the planner compares (made
//! push-style by [`FingerprintBuilder`] over tar bytes), the choice of references
//! ([`choose_references`]) and whether a patch is worth carrying ([`worth_carrying`]).
//! Compression itself (zstd, gzip) is the host's: the core only names the recipe.
//!
//! Why on uncompressed tars: two gzip streams of nearly equal tars diverge after the first
//! change, so a patch between compressed blobs saves almost nothing (92% of the blob in our
//! measurements), while a patch between the tars is a few percent.

use serde::{Deserialize, Serialize};

use crate::tar::{EntryKind, TarError, TarEvent, TarReader};
use crate::{Algorithm, Compression, Digest, HasherFactory, MediaType};

/// How a patch is encoded. Only one today; the field exists so that a reader refuses an
/// encoding it does not know by name instead of misreading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PatchEncoding {
    /// One zstd frame (RFC 8878) whose content is the target tar, compressed with the whole
    /// reference tar as a raw prefix (`ZSTD_CCtx_refPrefix`; `zstd --patch-from`). Decoding
    /// needs the same prefix and a window of at least `max(reference, target)` bytes.
    Zstd,
}

/// The layer a patch was made against: the destination must hold a layer with this
/// uncompressed content (`diff_id`), under `digest` or any other compression of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchReference {
    /// The reference layer's blob digest on the source side (where to look first).
    pub digest: Digest,
    /// Its blob size.
    pub size: u64,
    /// Its media type (how to decompress it).
    pub media_type: MediaType,
    /// The reference layer's diff_id: what the loader checks the reference it found against.
    pub diff_id: Digest,
    /// The size of the reference's uncompressed tar (the loader needs it in memory).
    pub tar_size: u64,
    /// Repositories of the site holding the reference, when the bundle was planned against an
    /// inventory (where a registry load looks for it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub repositories: Vec<String>,
}

/// How to turn the rebuilt tar back into the exact blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Recipe {
    /// The blob is the tar itself (an uncompressed layer).
    None,
    /// ddiff's own parallel gzip (`host-cli/src/compress.rs`): one gzip member of raw deflate
    /// chunks of `chunk` input bytes (zlib-rs at `level`), each primed with the previous 32 KiB,
    /// joined by sync flushes. Exact only with the same zlib-rs release: both sides run the same
    /// ddiff release.
    DdiffGzip {
        /// Deflate level, 1-9.
        level: u32,
        /// Input bytes per chunk.
        chunk: u64,
    },
    /// ddiff's own parallel zstd: one frame per `chunk` input bytes at `level` (libzstd).
    DdiffZstd {
        /// zstd level, 1-19.
        level: u32,
        /// Input bytes per chunk.
        chunk: u64,
    },
    /// Go's `compress/gzip` at `level` (`gzip.NewWriterLevel` with a zero header): what
    /// `docker push`, BuildKit and containerd write. Rebuilt by the bit-exact port in the
    /// `ddiff-goflate` crate.
    GoGzip {
        /// Go's level: -2 (Huffman only), 0-9 (-1, the default, is recorded as 6).
        level: i32,
    },
}

impl Recipe {
    /// The compression this recipe produces.
    pub fn compression(&self) -> Compression {
        match self {
            Recipe::None => Compression::None,
            Recipe::DdiffGzip { .. } | Recipe::GoGzip { .. } => Compression::Gzip,
            Recipe::DdiffZstd { .. } => Compression::Zstd,
        }
    }

    /// Whether the recipe's parameters are in range (a crafted bundle must not make a loader
    /// run a compressor with absurd settings).
    pub fn is_valid(&self) -> bool {
        match *self {
            Recipe::None => true,
            Recipe::DdiffGzip { level, chunk } => {
                (1..=9).contains(&level) && (64 * 1024..=64 << 20).contains(&chunk)
            }
            Recipe::DdiffZstd { level, chunk } => {
                (1..=19).contains(&level) && (64 * 1024..=64 << 20).contains(&chunk)
            }
            Recipe::GoGzip { level } => level == -2 || (0..=9).contains(&level),
        }
    }

    /// Whether this recipe can make a blob of `media_type`.
    pub fn makes(&self, media_type: &MediaType) -> bool {
        self.is_valid() && media_type.layer_compression() == Some(self.compression())
    }

    /// A short text for people: `Go gzip level 6`, `ddiff gzip level 9`, `uncompressed`.
    pub fn describe(&self) -> String {
        match self {
            Recipe::None => "uncompressed".into(),
            Recipe::DdiffGzip { level, .. } => format!("ddiff gzip level {level}"),
            Recipe::DdiffZstd { level, .. } => format!("ddiff zstd level {level}"),
            Recipe::GoGzip { level } => format!("Go gzip level {level}"),
        }
    }
}

/// What `ddiff.json` records about a layer that travels as a patch (the `patch` field of its
/// blob entry). The bundle entry `blobs/<alg>/<hex>` of such a layer is named by the patch's
/// own digest and holds the patch's bytes, so `verify` checks every patch without the
/// reference; the layer's own digest and size stay in the blob entry, as its manifest says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PatchInfo {
    /// The patch's digest (names its bundle entry).
    pub digest: Digest,
    /// The patch's size in bytes (the entry's size).
    pub size: u64,
    /// How it is encoded.
    pub encoding: PatchEncoding,
    /// The layer it was made against.
    pub reference: PatchReference,
    /// The target layer's diff_id (the rebuilt tar must hash to it; it equals the config's).
    pub diff_id: Digest,
    /// The target layer's uncompressed size (a decoder stops past it).
    pub tar_size: u64,
    /// How the tar becomes the exact blob.
    pub recipe: Recipe,
}

/// Largest reference or target tar a patch may involve: zstd's largest window (2 GiB,
/// `ZSTD_WINDOWLOG_MAX` on 64-bit hosts). Larger layers travel whole.
pub const MAX_PATCH_TAR: u64 = 1 << 31;

/// Whether a patch of `patch_size` bytes is worth carrying instead of the `blob_size`-byte
/// blob: it must save at least a tenth (a patch costs a rebuild at the destination, and a
/// loader needs the reference: a near-equal patch is not worth that).
pub fn worth_carrying(patch_size: u64, blob_size: u64) -> bool {
    patch_size.saturating_mul(10) <= blob_size.saturating_mul(9)
}

/// One regular file of a layer, as the planner compares them: a hash of its path, its size
/// and the first 16 bytes of the SHA-256 of its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct FileMark {
    /// FNV-1a 64 of the path (whiteout and directory entries are not marked).
    pub path: u64,
    /// Content size.
    pub size: u64,
    /// First 16 bytes of the content's SHA-256.
    pub content: [u8; 16],
}

/// The regular files of a layer, sorted: what [`similarity`] compares. About 40 bytes a file
/// in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    /// Files, sorted by (path, size, content).
    pub files: Vec<FileMark>,
    /// Size of the whole tar.
    pub tar_size: u64,
}

/// FNV-1a 64: a stable hash of a path (not for security: a collision only makes a reference
/// look more similar than it is, and every patch is proven before it is carried).
pub fn path_hash(path: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in path
        .trim_start_matches("./")
        .trim_start_matches('/')
        .bytes()
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Builds a [`Fingerprint`] from a layer's uncompressed tar bytes, fed in chunks of any size.
pub struct FingerprintBuilder {
    tar: TarReader,
    hasher: HasherFactory,
    current: Option<(u64, u64, Box<dyn crate::BlobHasher>)>,
    files: Vec<FileMark>,
    fed: u64,
}

impl FingerprintBuilder {
    /// A builder hashing contents with `hasher` (hosts pass their fast SHA-256).
    pub fn new(hasher: HasherFactory) -> Self {
        FingerprintBuilder {
            tar: TarReader::new(),
            hasher,
            current: None,
            files: Vec::new(),
            fed: 0,
        }
    }

    /// Feeds the next bytes of the tar.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), TarError> {
        self.fed += data.len() as u64;
        while !data.is_empty() {
            let (used, ev) = self.tar.feed(data)?;
            data = &data[used..];
            match ev {
                Some(TarEvent::Header(e)) => {
                    self.current = (e.kind == EntryKind::File
                        && !e.path.rsplit('/').next().unwrap_or("").starts_with(".wh."))
                    .then(|| (path_hash(&e.path), e.size, (self.hasher)(Algorithm::Sha256)));
                }
                Some(TarEvent::Data(d)) => {
                    if let Some((_, _, h)) = self.current.as_mut() {
                        h.update(d);
                    }
                }
                Some(TarEvent::EntryEnd) => {
                    if let Some((path, size, h)) = self.current.take() {
                        let raw = h.finalize();
                        let mut content = [0u8; 16];
                        content.copy_from_slice(&raw[..16]);
                        self.files.push(FileMark {
                            path,
                            size,
                            content,
                        });
                    }
                }
                Some(TarEvent::End) => {}
                None => {
                    if used == 0 {
                        break;
                    }
                }
            }
        }
        Ok(())
    }

    /// The fingerprint of everything fed (which must be a whole tar).
    pub fn finish(mut self) -> Result<Fingerprint, TarError> {
        self.tar.finish()?;
        self.files.sort_unstable();
        Ok(Fingerprint {
            files: self.files,
            tar_size: self.fed,
        })
    }
}

/// How much of `target` a patch against `candidate` can hope to take from it: every byte of a
/// file whose content the candidate has (anywhere), half of a file whose path the candidate has
/// with other content (an upgraded binary or library shares much of its bytes). A score, not a
/// size: only comparisons between candidates mean something.
pub fn similarity(target: &Fingerprint, candidate: &Fingerprint) -> u64 {
    let mut contents: Vec<(u64, [u8; 16])> = candidate
        .files
        .iter()
        .map(|f| (f.size, f.content))
        .collect();
    contents.sort_unstable();
    // Files are sorted by path hash: a merge finds the shared paths.
    let mut score = 0u64;
    let mut j = 0;
    for f in &target.files {
        if contents.binary_search(&(f.size, f.content)).is_ok() {
            score = score.saturating_add(f.size.max(1));
            continue;
        }
        while j < candidate.files.len() && candidate.files[j].path < f.path {
            j += 1;
        }
        if j < candidate.files.len() && candidate.files[j].path == f.path {
            score = score.saturating_add(f.size / 2);
        }
    }
    score
}

/// The best references for `target` among `candidates` (an id and a fingerprint each), most
/// similar first, at most `max`, leaving out those with nothing in common and those too large
/// to patch against (over [`MAX_PATCH_TAR`] or `memory_cap`, the bytes a loader may hold).
pub fn choose_references<I: Clone>(
    target: &Fingerprint,
    candidates: &[(I, &Fingerprint)],
    max: usize,
    memory_cap: u64,
) -> Vec<I> {
    if target.tar_size > MAX_PATCH_TAR {
        return Vec::new();
    }
    let mut scored: Vec<(u64, usize)> = candidates
        .iter()
        .enumerate()
        .filter(|(_, (_, fp))| fp.tar_size <= MAX_PATCH_TAR && fp.tar_size <= memory_cap)
        .map(|(k, (_, fp))| (similarity(target, fp), k))
        .filter(|(s, _)| *s > 0)
        .collect();
    // Highest score first; equal scores keep the candidates' order (deterministic).
    scored.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    scored
        .into_iter()
        .take(max)
        .map(|(_, k)| candidates[k].0.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth;

    fn fp(files: &[(&str, &[u8])]) -> Fingerprint {
        let tar = synth::layer_tar(files, 0);
        let mut b = FingerprintBuilder::new(crate::digest::default_hasher);
        for c in tar.chunks(7) {
            b.feed(c).unwrap();
        }
        b.finish().unwrap()
    }

    #[test]
    fn fingerprints_do_not_depend_on_chunking() {
        let files: &[(&str, &[u8])] = &[("a/b", b"hello"), ("c", &[7u8; 3000])];
        let tar = synth::layer_tar(files, 0);
        let mut whole = FingerprintBuilder::new(crate::digest::default_hasher);
        whole.feed(&tar).unwrap();
        assert_eq!(whole.finish().unwrap(), fp(files));
        assert_eq!(fp(files).files.len(), 2);
        assert_eq!(fp(files).tar_size, tar.len() as u64);
    }

    #[test]
    fn whiteouts_are_not_files() {
        assert!(fp(&[("etc/.wh.motd", b"")]).files.is_empty());
    }

    #[test]
    fn a_truncated_tar_is_an_error() {
        let tar = synth::layer_tar(&[("a", &[1u8; 2000])], 0);
        let mut b = FingerprintBuilder::new(crate::digest::default_hasher);
        b.feed(&tar[..1000]).unwrap();
        assert!(b.finish().is_err());
    }

    #[test]
    fn shared_content_counts_whole_and_same_path_half() {
        let target = fp(&[("bin/app", &[1u8; 1000]), ("lib/x.so", &[2u8; 400])]);
        let same_content = fp(&[("elsewhere", &[1u8; 1000])]);
        let same_path = fp(&[("bin/app", &[9u8; 10])]);
        let unrelated = fp(&[("z", b"zz")]);
        assert_eq!(similarity(&target, &same_content), 1000);
        assert_eq!(similarity(&target, &same_path), 500);
        assert_eq!(similarity(&target, &unrelated), 0);
        let cands = [
            ("unrelated", &unrelated),
            ("path", &same_path),
            ("content", &same_content),
        ];
        assert_eq!(
            choose_references(&target, &cands, 2, u64::MAX),
            vec!["content", "path"]
        );
        assert_eq!(
            choose_references(&target, &cands, 1, u64::MAX),
            vec!["content"]
        );
        // A reference larger than the loader may hold is never chosen.
        assert_eq!(
            choose_references(&target, &cands, 2, same_content.tar_size - 1),
            vec!["path"]
        );
    }

    #[test]
    fn a_patch_must_save_a_tenth() {
        assert!(worth_carrying(90, 100));
        assert!(!worth_carrying(91, 100));
        assert!(worth_carrying(0, 0));
        assert!(!worth_carrying(u64::MAX, 10));
    }

    #[test]
    fn recipes_make_only_their_media_types() {
        let go = Recipe::GoGzip { level: 6 };
        assert!(go.makes(&MediaType::DockerLayerGzip));
        assert!(go.makes(&MediaType::OciLayerGzip));
        assert!(!go.makes(&MediaType::OciLayerZstd));
        assert!(!go.makes(&MediaType::OciLayer));
        assert!(Recipe::None.makes(&MediaType::OciLayer));
        assert!(!Recipe::GoGzip { level: 11 }.makes(&MediaType::OciLayerGzip));
        let z = Recipe::DdiffZstd {
            level: 3,
            chunk: 4 << 20,
        };
        assert!(z.makes(&MediaType::OciLayerZstd));
        assert!(!Recipe::DdiffGzip { level: 9, chunk: 1 }.makes(&MediaType::OciLayerGzip));
    }

    #[test]
    fn recipes_serialise_with_their_kind() {
        let j = serde_json::to_string(&Recipe::GoGzip { level: 6 }).unwrap();
        assert_eq!(j, r#"{"kind":"go-gzip","level":6}"#);
        let j = serde_json::to_string(&Recipe::DdiffGzip {
            level: 9,
            chunk: 1 << 20,
        })
        .unwrap();
        assert_eq!(j, r#"{"kind":"ddiff-gzip","level":9,"chunk":1048576}"#);
        assert!(serde_json::from_str::<Recipe>(r#"{"kind":"preflate"}"#).is_err());
    }
}
