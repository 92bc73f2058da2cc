//! Reading bundles written by the original DockerDiff (Python).
//!
//! Those are `<name>-<tag>.tar.gz` files holding `.ddiff-image/` with `manifest.json` (the
//! registry's exact manifest of the target), `MANIFEST_MEDIA_TYPE`, `BASE`, `TARGET`,
//! `MOUNT_BLOBS` and `UPLOAD_BLOBS` (`|`-separated digests: relied on, carried) and
//! `blobs/<digest>.tar` (each carried blob, despite the name not a tar of its own).
//! Inflating the gzip is the host's job; this decoder reads the inner tar, push-style like
//! [`super::Decoder`], verifies every blob, and ends with the same [`Report`] a version 1
//! bundle gives: metadata (manifest and config first), the JSON blobs, and the data offset
//! of every blob *in the inflated stream*.
//!
//! Entry order in those archives is whatever Python's `tarfile` wrote, so nothing is known
//! before the end; blobs are hashed as they pass and checked against `manifest.json` last.

use std::collections::{BTreeMap, BTreeSet};

use crate::digest::{default_hasher, DigestBuilder, HasherFactory};
use crate::tar::{EntryKind, TarEvent, TarReader};
use crate::{Digest, ImageConfig, MediaType, RawManifest};

use super::meta::{
    BaseInfo, BlobInfo, BlobKind, BundleMeta, ReliedBlob, TargetImage, TargetInfo, FORMAT_NAME,
    FORMAT_VERSION,
};
use super::{check_path, BundleError, Event, Report};

const ROOT: &str = ".ddiff-image/";
const SMALL_LIMIT: u64 = 4 * 1024 * 1024;
/// Total bytes of blobs kept in memory because one of them may be the config (the manifest
/// that names it may come last). Without a cap, a small gzip bomb of many distinct 4 MiB
/// blobs would be held whole in memory; a real bundle has one config of a few KiB.
const KEPT_LIMIT: u64 = 16 * 1024 * 1024;

enum Current {
    None,
    Small {
        name: String,
        buf: Vec<u8>,
    },
    Blob {
        digest: Digest,
        hasher: DigestBuilder,
        offset: u64,
        keep: Option<Vec<u8>>,
    },
}

/// Push-style reader for original DockerDiff bundles (the inflated inner tar).
pub struct LegacyDecoder {
    tar: TarReader,
    hasher: HasherFactory,
    current: Current,
    entry_offset: u64,
    small: BTreeMap<String, Vec<u8>>,
    /// digest → (size, data offset)
    blobs: BTreeMap<Digest, (u64, u64)>,
    /// Small blobs kept in case they turn out to be the config.
    kept: BTreeMap<Digest, Vec<u8>>,
    /// Bytes in `kept` (the blob being read adds at most `SMALL_LIMIT`).
    kept_bytes: u64,
    seen: BTreeSet<String>,
    done: bool,
    failed: bool,
}

impl Default for LegacyDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether the first bytes of an (inflated) tar look like an original DockerDiff bundle:
/// its first entry is under `.ddiff-image/`. Give it a few KiB (PAX headers come first).
pub fn looks_like_legacy(prefix: &[u8]) -> bool {
    let mut r = TarReader::new();
    let mut p = prefix;
    loop {
        match r.feed(p) {
            Ok((_, Some(TarEvent::Header(e)))) => {
                let path = e.path.strip_prefix("./").unwrap_or(&e.path);
                return path.starts_with(".ddiff-image");
            }
            Ok((n, _)) if n > 0 => p = &p[n..],
            _ => return false,
        }
    }
}

impl LegacyDecoder {
    /// A decoder with the built-in hasher.
    pub fn new() -> Self {
        Self::with_hasher(default_hasher)
    }

    /// A decoder with a host-supplied hasher.
    pub fn with_hasher(hasher: HasherFactory) -> Self {
        LegacyDecoder {
            tar: TarReader::new(),
            hasher,
            current: Current::None,
            entry_offset: 0,
            small: BTreeMap::new(),
            blobs: BTreeMap::new(),
            kept: BTreeMap::new(),
            kept_bytes: 0,
            seen: BTreeSet::new(),
            done: false,
            failed: false,
        }
    }

    /// Bytes of the inflated stream consumed so far.
    pub fn offset(&self) -> u64 {
        self.tar.offset()
    }

    /// Feeds inflated bytes. Events: only [`Event::Metadata`] then [`Event::End`], once the
    /// whole archive was read and verified. `None` means the chunk was consumed.
    pub fn decode<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<Event<'a>>), BundleError> {
        if self.failed {
            return Err(BundleError::Misuse("decode called after an error"));
        }
        let r = self.decode_inner(input);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn decode_inner<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<Event<'a>>), BundleError> {
        let mut used = 0;
        loop {
            let (n, ev) = self.tar.feed(&input[used..])?;
            used += n;
            match ev {
                None if n == 0 => return Ok((used, None)),
                None => {}
                Some(TarEvent::Header(e)) => self.on_header(e)?,
                Some(TarEvent::Data(d)) => match &mut self.current {
                    Current::Small { buf, .. } => buf.extend_from_slice(d),
                    Current::Blob { hasher, keep, .. } => {
                        hasher.update(d);
                        // A config is JSON: anything else (a layer) is not kept.
                        if keep
                            .as_ref()
                            .is_some_and(|k| k.is_empty() && d.first() != Some(&b'{'))
                        {
                            *keep = None;
                        }
                        if let Some(k) = keep {
                            k.extend_from_slice(d);
                        }
                    }
                    Current::None => {}
                },
                Some(TarEvent::EntryEnd) => self.on_entry_end()?,
                Some(TarEvent::End) => {
                    self.done = true;
                    let report = self.build_report()?;
                    return Ok((used, Some(Event::End(Box::new(report)))));
                }
            }
        }
    }

    fn on_header(&mut self, e: crate::tar::Entry) -> Result<(), BundleError> {
        let at = e.header_offset;
        self.entry_offset = at;
        let trimmed = e.path.strip_prefix("./").unwrap_or(&e.path);
        let path = trimmed.trim_end_matches('/');
        check_path(path, at)?;
        if !self.seen.insert(path.to_string()) {
            return Err(BundleError::DuplicateEntry {
                offset: at,
                path: e.path,
            });
        }
        let unexpected = |expected: &str| BundleError::UnexpectedEntry {
            offset: at,
            path: crate::digest::truncate_for_error(&e.path),
            expected: expected.to_string(),
        };
        if e.kind == EntryKind::Directory {
            if path == ".ddiff-image" || path == ".ddiff-image/blobs" {
                return Ok(());
            }
            return Err(unexpected(".ddiff-image/ or .ddiff-image/blobs/"));
        }
        if e.kind != EntryKind::File {
            return Err(BundleError::ForbiddenEntry {
                offset: at,
                path: e.path,
                kind: e.kind,
            });
        }
        let Some(rest) = path.strip_prefix(ROOT) else {
            return Err(unexpected("an entry under .ddiff-image/"));
        };
        if let Some(name) = rest.strip_prefix("blobs/") {
            let digest_str = name
                .strip_suffix(".tar")
                .ok_or_else(|| unexpected(".ddiff-image/blobs/<digest>.tar"))?;
            let digest = Digest::parse(digest_str)
                .map_err(|_| unexpected(".ddiff-image/blobs/<digest>.tar"))?;
            let keep =
                (e.size <= SMALL_LIMIT && self.kept_bytes + e.size <= KEPT_LIMIT).then(Vec::new);

            self.current = Current::Blob {
                hasher: DigestBuilder::with_factory(digest.algorithm(), self.hasher),
                digest,
                offset: e.data_offset,
                keep,
            };
            return Ok(());
        }
        match rest {
            "manifest.json" | "MANIFEST_MEDIA_TYPE" | "BASE" | "TARGET" | "MOUNT_BLOBS" | "UPLOAD_BLOBS" => {
                if e.size > SMALL_LIMIT {
                    return Err(BundleError::TooLarge { offset: at, path: e.path, size: e.size, limit: SMALL_LIMIT });
                }
                if rest == "manifest.json" {
                    // Remember where the manifest bytes are, like a blob.
                    self.small.insert("@manifest_offset".into(), e.data_offset.to_string().into_bytes());
                }
                self.current = Current::Small { name: rest.to_string(), buf: Vec::new() };
                Ok(())
            }
            _ => Err(unexpected("manifest.json, MANIFEST_MEDIA_TYPE, BASE, TARGET, MOUNT_BLOBS, UPLOAD_BLOBS or blobs/")),
        }
    }

    fn on_entry_end(&mut self) -> Result<(), BundleError> {
        match std::mem::replace(&mut self.current, Current::None) {
            Current::Small { name, buf } => {
                self.small.insert(name, buf);
            }
            Current::Blob {
                digest,
                hasher,
                offset,
                keep,
            } => {
                let (found, size) = hasher.finish();
                if found != digest {
                    return Err(BundleError::CorruptBlob {
                        offset: self.entry_offset,
                        digest: digest.clone(),
                        source: crate::VerifyError::DigestMismatch {
                            expected: digest,
                            found,
                        },
                    });
                }
                if let Some(k) = keep {
                    self.kept_bytes += k.len() as u64;
                    self.kept.insert(digest.clone(), k);
                }
                self.blobs.insert(digest, (size, offset));
            }
            Current::None => {}
        }
        Ok(())
    }

    /// Call at end of input: errors if the archive was truncated.
    pub fn finish(&self) -> Result<(), BundleError> {
        if self.done {
            return Ok(self.tar.finish()?);
        }
        let context = match &self.current {
            Current::Blob { digest, hasher, .. } => {
                format!("inside blob {digest}, {} bytes read", hasher.len())
            }
            Current::Small { name, .. } => format!("inside .ddiff-image/{name}"),
            Current::None => "before the end of the archive".into(),
        };
        Err(BundleError::Truncated {
            offset: self.tar.offset(),
            context,
        })
    }

    fn text(&self, name: &'static str) -> Result<String, BundleError> {
        let missing = || BundleError::Layout {
            file: name,
            problem: "missing from the original DockerDiff bundle".into(),
        };
        let b = self.small.get(name).ok_or_else(missing)?;
        let s = std::str::from_utf8(b).map_err(|_| BundleError::Layout {
            file: name,
            problem: "not UTF-8".into(),
        })?;
        Ok(s.trim().to_string())
    }

    fn digests(&self, name: &'static str) -> Result<Vec<Digest>, BundleError> {
        let s = self.text(name)?;
        s.split('|')
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .map(|x| {
                Digest::parse(x).map_err(|e| BundleError::Layout {
                    file: name,
                    problem: e.to_string(),
                })
            })
            .collect()
    }

    fn build_report(&mut self) -> Result<Report, BundleError> {
        let mt = self.text("MANIFEST_MEDIA_TYPE")?;
        let base = self.text("BASE")?;
        let target = self.text("TARGET")?;
        // Sets: membership is asked once per layer (thousands of layers must not be
        // quadratic).
        let mount: BTreeSet<Digest> = self.digests("MOUNT_BLOBS")?.into_iter().collect();
        let upload_list = self.digests("UPLOAD_BLOBS")?;
        let upload: BTreeSet<&Digest> = upload_list.iter().collect();
        let mbytes = self
            .small
            .get("manifest.json")
            .cloned()
            .ok_or(BundleError::Layout {
                file: "manifest.json",
                problem: "missing from the original DockerDiff bundle".into(),
            })?;
        let manifest_offset: u64 = self
            .small
            .get("@manifest_offset")
            .and_then(|b| std::str::from_utf8(b).ok()?.parse().ok())
            .ok_or(BundleError::Misuse("manifest offset not recorded"))?;
        let m = RawManifest::parse(mbytes.clone(), Some(&mt)).map_err(|source| {
            BundleError::Manifest {
                digest: Digest::sha256(&mbytes),
                source,
            }
        })?;
        let Some(img) = m.as_image() else {
            return Err(BundleError::Layout {
                file: "manifest.json",
                problem: "an index; the original tool only wrote image manifests".into(),
            });
        };
        for d in &upload_list {
            if !self.blobs.contains_key(d) {
                return Err(BundleError::MissingBlob { digest: d.clone() });
            }
        }
        for d in self.blobs.keys() {
            if !upload.contains(d) {
                return Err(BundleError::UnreferencedBlob { digest: d.clone() });
            }
        }
        let config_bytes = self.kept.get(&img.config.digest).cloned();
        let config = match (&config_bytes, img.config.media_type.is_image_config()) {
            (Some(b), true) => {
                Some(ImageConfig::parse(b).map_err(|source| BundleError::Config {
                    digest: img.config.digest.clone(),
                    source,
                })?)
            }
            _ => None,
        };
        let diff_ids: Vec<Option<Digest>> =
            match &config {
                Some(c) if c.rootfs.diff_ids.len() == img.layers.len() => {
                    c.rootfs.diff_ids.iter().cloned().map(Some).collect()
                }
                Some(_) => return Err(BundleError::MetadataInconsistent {
                    digest: Some(img.config.digest.clone()),
                    problem:
                        "config lists a different number of diff_ids than the manifest has layers",
                }),
                None => vec![None; img.layers.len()],
            };
        let mut blobs = vec![BlobInfo {
            digest: m.digest().clone(),
            size: m.bytes().len() as u64,
            media_type: m.media_type().clone(),
            kind: BlobKind::Manifest,
            patch: None,
        }];
        let mut offsets = vec![manifest_offset];
        let mut json_blobs = BTreeMap::new();
        json_blobs.insert(m.digest().clone(), mbytes);
        let mut relied = Vec::new();
        let check_size = |d: &crate::Descriptor,
                          blobs: &BTreeMap<Digest, (u64, u64)>|
         -> Result<u64, BundleError> {
            let (size, off) = blobs[&d.digest];
            if size != d.size {
                return Err(BundleError::SizeMismatch {
                    offset: off,
                    digest: d.digest.clone(),
                    expected: d.size,
                    found: size,
                });
            }
            Ok(off)
        };
        if upload.contains(&img.config.digest) {
            offsets.push(check_size(&img.config, &self.blobs)?);
            blobs.push(BlobInfo {
                digest: img.config.digest.clone(),
                size: img.config.size,
                media_type: img.config.media_type.clone(),
                kind: BlobKind::Config,
                patch: None,
            });
            if let Some(b) = config_bytes {
                json_blobs.insert(img.config.digest.clone(), b);
            }
        } else {
            return Err(BundleError::DanglingReference {
                manifest: m.digest().clone(),
                blob: img.config.digest.clone(),
            });
        }
        let mut listed: BTreeSet<&Digest> = BTreeSet::new();
        listed.insert(m.digest());
        listed.insert(&img.config.digest);
        let mut relied_seen: BTreeSet<&Digest> = BTreeSet::new();
        for (l, diff_id) in img.layers.iter().zip(diff_ids) {
            if upload.contains(&l.digest) {
                if !listed.insert(&l.digest) {
                    continue;
                }
                offsets.push(check_size(l, &self.blobs)?);
                blobs.push(BlobInfo {
                    digest: l.digest.clone(),
                    size: l.size,
                    media_type: l.media_type.clone(),
                    kind: BlobKind::Layer,
                    patch: None,
                });
            } else if mount.contains(&l.digest) {
                if relied_seen.insert(&l.digest) {
                    relied.push(ReliedBlob {
                        digest: l.digest.clone(),
                        size: l.size,
                        media_type: l.media_type.clone(),
                        diff_id,
                        repositories: Vec::new(),
                    });
                }
            } else {
                return Err(BundleError::DanglingReference {
                    manifest: m.digest().clone(),
                    blob: l.digest.clone(),
                });
            }
        }
        let platform = config
            .as_ref()
            .map(ImageConfig::platform)
            .filter(|p| !p.os.is_empty());
        let meta = BundleMeta {
            format: FORMAT_NAME.into(),
            version: FORMAT_VERSION,
            tool: "DockerDiff (original, Python)".into(),
            created: None,
            base: Some(BaseInfo {
                references: vec![base],
                manifests: Vec::new(),
                diff_ids: relied.iter().filter_map(|r| r.diff_id.clone()).collect(),
                inventories: Vec::new(),
            }),
            targets: vec![TargetInfo {
                reference: target,
                media_type: MediaType::parse(&mt),
                digest: m.digest().clone(),
                size: m.bytes().len() as u64,
                images: vec![TargetImage {
                    manifest: m.digest().clone(),
                    config: img.config.digest.clone(),
                    platform,
                }],
            }],
            blobs,
            relied,
            artifacts: Vec::new(),
        };
        meta.validate()?;
        Ok(Report {
            meta,
            json_blobs,
            offsets,
            archive_bytes: self.tar.offset(),
            // No index.json records a digest of this metadata (the gzip CRC of the file is the
            // host's to check).
            metadata_sealed: false,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The original tool's bundle of `bb:new` (inflated), from `shared/fixtures/original-ddiff`.
    const INNER: &[u8] = include_bytes!("../../tests/data/original-ddiff/bb-new.tar");

    fn run(bytes: &[u8], chunk: usize) -> Result<Report, BundleError> {
        let mut d = LegacyDecoder::new();
        let mut report = None;
        for mut c in bytes.chunks(chunk) {
            loop {
                let (n, ev) = d.decode(c)?;
                c = &c[n..];
                match ev {
                    Some(Event::End(r)) => report = Some(*r),
                    Some(_) => {}
                    None => break,
                }
            }
        }
        d.finish()?;
        report.ok_or(BundleError::Misuse("no report"))
    }

    #[test]
    fn reads_the_original_tools_bundle() {
        assert!(looks_like_legacy(INNER));
        for chunk in [1, 7, 512, 65536] {
            let r = run(INNER, chunk).unwrap();
            let t = &r.meta.targets[0];
            assert_eq!(t.reference, "bb:new");
            assert_eq!(
                t.digest.to_string(),
                "sha256:b2722476bc5535b4f15d050c0cd6bc419cd10a9bb86a31bec4d28e3af2f99ff3"
            );
            assert_eq!(r.meta.base.as_ref().unwrap().references, ["bb:base"]);
            assert_eq!(r.meta.relied.len(), 1);
            assert_eq!(
                r.meta.relied[0].digest.to_string(),
                "sha256:feb157206a4db810badbff0da9a6c48c9f399cbf83ae6b0d7df8ce9daa022749"
            );
            assert_eq!(r.meta.blobs.len(), 4);
            assert_eq!(r.offsets.len(), 4);
            // The offsets point at the blob bytes.
            for (b, off) in r.meta.blobs.iter().zip(&r.offsets) {
                let data = &INNER[*off as usize..(*off + b.size) as usize];
                assert_eq!(Digest::sha256(data), b.digest);
            }
        }
    }

    /// Regression (issue 7): every blob of at most 4 MiB was kept in memory in case it was
    /// the config, so a small gzip of many distinct 4 MiB blobs grew memory without bound.
    #[test]
    fn many_config_sized_blobs_are_not_all_kept() {
        let mut d = LegacyDecoder::new();
        for i in 0..8u64 {
            let mut blob = vec![0u8; 4 << 20];
            blob[0] = b'{';
            blob[1..9].copy_from_slice(&i.to_le_bytes());
            let dg = Digest::sha256(&blob);
            let mut t = Vec::new();
            crate::tar::write_file(
                &mut t,
                &format!(".ddiff-image/blobs/{dg}.tar"),
                &blob,
                0o644,
                0,
            );
            let mut c = &t[..];
            loop {
                let (n, ev) = d.decode(c).unwrap();
                c = &c[n..];
                if ev.is_none() {
                    break;
                }
            }
        }
        assert_eq!(d.blobs.len(), 8);
        assert!(d.kept_bytes <= KEPT_LIMIT, "{} bytes kept", d.kept_bytes);
    }

    /// Thousands of layers (the original tool wrote one file per layer): every one listed,
    /// in the manifest's order, after the manifest and the config.
    #[test]
    fn an_original_bundle_of_thousands_of_layers_reads() {
        let inner = crate::synth_bundle::legacy_many(3000, 4);
        let r = run(&inner, 65536).unwrap();
        assert_eq!(r.meta.blobs.len(), 3002);
        assert_eq!(r.meta.relied.len(), 1);
        assert_eq!(r.meta.base.as_ref().unwrap().references, ["synth/base:1"]);
        for (b, off) in r.meta.blobs.iter().zip(&r.offsets) {
            let data = &inner[*off as usize..(*off + b.size) as usize];
            assert_eq!(Digest::sha256(data), b.digest);
        }
    }

    #[test]
    fn damaged_original_bundles_are_refused() {
        // Flip a byte inside each blob file: names it.
        let r = run(INNER, 4096).unwrap();
        for (b, off) in r.meta.blobs.iter().zip(&r.offsets).skip(1) {
            let mut bad = INNER.to_vec();
            bad[*off as usize] ^= 1;
            let err = run(&bad, 4096).unwrap_err();
            assert!(
                matches!(&err, BundleError::CorruptBlob { digest, .. } if digest == &b.digest),
                "{err:?}"
            );
        }
        // Truncation at every block boundary.
        for cut in (0..r.archive_bytes as usize).step_by(512) {
            assert!(run(&INNER[..cut], 512).is_err(), "cut at {cut}");
        }
    }
}
