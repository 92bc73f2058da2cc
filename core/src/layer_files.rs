//! Listing the files of a layer blob, push-style: what `dive` shows, for the diff.
//!
//! ```text
//!   layer blob bytes ──► [gzip header ─► raw inflate ─► trailer (CRC-32, size)] ─► TarReader
//!   (any chunk sizes)     (skipped for plain tar layers)                           │ headers
//!                                                                                  ▼
//!                                                        FileEntry (path, kind, size, mode, link)
//! ```
//!
//! The host feeds the compressed bytes of one layer in chunks of any size with
//! [`LayerLister::feed`], which appends the entries found to a caller-owned `Vec`, and calls
//! [`LayerLister::finish`] at the end of the blob. File contents are inflated and skipped, never
//! kept, so memory stays flat however big the layer is.
//!
//! ```
//! use ddiff_core::layer_files::{FileKind, LayerLister};
//! use ddiff_core::{synth, Compression};
//! let tar = synth::layer_tar(&[("etc/.wh.motd", b""), ("app/run", b"#!/bin/sh\n")], 0);
//! let mut lister = LayerLister::new(Compression::None).unwrap();
//! let mut files = Vec::new();
//! for chunk in tar.chunks(100) {
//!     lister.feed(chunk, &mut files).unwrap();
//! }
//! lister.finish().unwrap();
//! assert_eq!(files[0].path, "etc/motd");
//! assert_eq!(files[0].kind, FileKind::Whiteout);
//! assert_eq!(files[1].size, 10);
//! ```
//!
//! Whiteouts follow the OCI layer spec: `dir/.wh.name` deletes `dir/name` and is reported as
//! [`FileKind::Whiteout`] at `dir/name`; `dir/.wh..wh..opq` hides everything the lower layers
//! had in `dir` and is reported as [`FileKind::OpaqueDir`] at `dir`. zstd layers are not listed
//! (a typed [`LayerFilesError::ZstdUnsupported`]); their digests are verified all the same.

use flate2::{Crc, Decompress, FlushDecompress, Status};
use serde::{Deserialize, Serialize};

use crate::tar::{EntryKind, TarError, TarEvent, TarReader};
use crate::Compression;

/// What a layer entry is, whiteouts already interpreted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (`link` is its target).
    Symlink,
    /// A hard link (`link` is the path it links to).
    Hardlink,
    /// A character or block device or a FIFO.
    Device,
    /// A deletion: the path existed in a lower layer and is removed by this one.
    Whiteout,
    /// An opaque directory: the lower layers' content of this directory is hidden.
    OpaqueDir,
    /// Any other tar entry type.
    Other,
}

/// One entry of a layer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the image, without a leading `/` or `./` and without a trailing `/`.
    pub path: String,
    /// What it is.
    pub kind: FileKind,
    /// Size of the content in bytes (0 for everything but regular files).
    pub size: u64,
    /// Permission bits (`0o755`).
    pub mode: u32,
    /// Target of a symbolic or hard link.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// Why a layer's file list could not be read to the end.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayerFilesError {
    /// zstd layers are verified but not listed.
    #[error("zstd listing not supported (the layer's digest is verified all the same)")]
    ZstdUnsupported,
    /// The gzip framing is broken.
    #[error("invalid gzip stream at compressed offset {offset}: {problem}")]
    Gzip { offset: u64, problem: &'static str },
    /// The deflate data is broken.
    #[error("invalid deflate data at compressed offset {offset}: {message}")]
    Deflate { offset: u64, message: String },
    /// The CRC-32 or length in the gzip trailer does not match the data.
    #[error("gzip trailer mismatch: {what} is {found:#x}, the data gives {expected:#x}")]
    Trailer {
        what: &'static str,
        expected: u32,
        found: u32,
    },
    /// The uncompressed tar is broken (offsets are in the uncompressed stream).
    #[error("layer tar")]
    Tar(#[from] TarError),
    /// The blob ended early.
    #[error("layer ends early: {context}")]
    Truncated { context: &'static str },
    /// `feed` after an error or after `finish`.
    #[error("layer lister used after it failed")]
    Failed,
}

/// Largest gzip header accepted (FEXTRA + FNAME + FCOMMENT of a hostile file).
const MAX_GZIP_HEADER: usize = 256 * 1024;
/// Inflate output buffer.
const OUT_CHUNK: usize = 64 * 1024;

enum Gz {
    /// Collecting a member header.
    Header(Vec<u8>),
    /// Inflating.
    Body,
    /// Collecting the 8-byte trailer.
    Trailer(Vec<u8>),
    /// Between members (or at the end).
    Done,
}

/// Push-style lister for one layer blob. See the [module docs](self).
pub struct LayerLister {
    gzip: Option<(Gz, Box<Decompress>, Crc)>,
    tar: TarReader,
    out: Vec<u8>,
    compressed_offset: u64,
    uncompressed: u64,
    /// Uncompressed bytes of the current gzip member (for the trailer's ISIZE).
    member_bytes: u64,
    /// False for [`LayerLister::without_crc`].
    check_crc: bool,
    failed: bool,
}

impl LayerLister {
    /// A lister for a layer with this compression.
    pub fn new(compression: Compression) -> Result<LayerLister, LayerFilesError> {
        let gzip = match compression {
            Compression::None => None,
            Compression::Gzip => Some((
                Gz::Header(Vec::new()),
                Box::new(Decompress::new(false)),
                Crc::new(),
            )),
            Compression::Zstd => return Err(LayerFilesError::ZstdUnsupported),
        };
        Ok(LayerLister {
            gzip,
            tar: TarReader::new(),
            out: Vec::new(),
            compressed_offset: 0,
            uncompressed: 0,
            member_bytes: 0,
            check_crc: true,
            failed: false,
        })
    }

    /// A lister that does not compute the CRC-32 of the inflated data (the gzip trailer's
    /// ISIZE is still checked), for readers whose layer bytes are verified against their
    /// digest: inflating is a function of the compressed bytes, so the CRC can find no damage
    /// the digest misses, only a layer its publisher compressed wrongly. That is what
    /// `ddiff inspect --files` (which keeps the check) reports; the page's reader thread skips
    /// it because it costs 10–15 % of the page's time on two cores (docs/benchmarks.md).
    pub fn without_crc(compression: Compression) -> Result<LayerLister, LayerFilesError> {
        let mut l = Self::new(compression)?;
        l.check_crc = false;
        Ok(l)
    }

    /// Bytes of uncompressed tar seen so far.
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed
    }

    /// Feeds a chunk of the blob (all of it is consumed) and appends the entries that
    /// became complete to `files`.
    pub fn feed(
        &mut self,
        input: &[u8],
        files: &mut Vec<FileEntry>,
    ) -> Result<(), LayerFilesError> {
        if self.failed {
            return Err(LayerFilesError::Failed);
        }
        let r = self.feed_inner(input, files);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Call at the end of the blob: errors if it ended early.
    pub fn finish(&mut self) -> Result<(), LayerFilesError> {
        if self.failed {
            return Err(LayerFilesError::Failed);
        }
        if let Some((gz, _, _)) = &self.gzip {
            match gz {
                Gz::Done => {}
                Gz::Header(h) if h.is_empty() => {
                    return Err(LayerFilesError::Truncated {
                        context: "empty gzip stream",
                    })
                }
                Gz::Header(_) => {
                    return Err(LayerFilesError::Truncated {
                        context: "inside a gzip header",
                    })
                }
                Gz::Body => {
                    return Err(LayerFilesError::Truncated {
                        context: "inside the deflate data",
                    })
                }
                Gz::Trailer(_) => {
                    return Err(LayerFilesError::Truncated {
                        context: "inside the gzip trailer",
                    })
                }
            }
        }
        // Some writers omit the end-of-archive marker; a tar that stops between entries is
        // complete for every layer reader.
        if self.tar.is_finished() || self.tar.at_entry_boundary() {
            return Ok(());
        }
        self.tar.finish()?;
        Ok(())
    }

    fn feed_inner(
        &mut self,
        mut input: &[u8],
        files: &mut Vec<FileEntry>,
    ) -> Result<(), LayerFilesError> {
        let Some((gz, inflate, crc)) = &mut self.gzip else {
            self.uncompressed += input.len() as u64;
            return push_tar(&mut self.tar, input, files);
        };
        while !input.is_empty() {
            match gz {
                Gz::Done => {
                    // Another member follows (concatenated gzip), or zero padding.
                    if input[0] == 0 {
                        if input.iter().any(|&b| b != 0) {
                            return Err(LayerFilesError::Gzip {
                                offset: self.compressed_offset,
                                problem: "data after zero padding",
                            });
                        }
                        self.compressed_offset += input.len() as u64;
                        return Ok(());
                    }
                    *gz = Gz::Header(Vec::new());
                    inflate.reset(false);
                    *crc = Crc::new();
                    self.member_bytes = 0;
                }
                Gz::Header(buf) => {
                    let take = input.len().min(MAX_GZIP_HEADER + 1 - buf.len());
                    let before = buf.len();
                    buf.extend_from_slice(&input[..take]);
                    match gzip_header_len(buf).map_err(|problem| LayerFilesError::Gzip {
                        offset: self.compressed_offset,
                        problem,
                    })? {
                        Some(len) => {
                            let used = len - before;
                            input = &input[used..];
                            self.compressed_offset += used as u64;
                            *gz = Gz::Body;
                        }
                        None if buf.len() > MAX_GZIP_HEADER => {
                            return Err(LayerFilesError::Gzip {
                                offset: self.compressed_offset,
                                problem: "header larger than 256 KiB",
                            })
                        }
                        None => {
                            input = &input[take..];
                            self.compressed_offset += take as u64;
                        }
                    }
                }
                Gz::Body => {
                    if self.out.len() != OUT_CHUNK {
                        self.out.resize(OUT_CHUNK, 0);
                    }
                    let (in0, out0) = (inflate.total_in(), inflate.total_out());
                    let status = inflate
                        .decompress(input, &mut self.out, FlushDecompress::None)
                        .map_err(|e| LayerFilesError::Deflate {
                            offset: self.compressed_offset,
                            message: e.to_string(),
                        })?;
                    // Both deltas are bounded by the slice lengths passed in.
                    let used = (inflate.total_in() - in0) as usize;
                    let made = (inflate.total_out() - out0) as usize;
                    input = &input[used..];
                    self.compressed_offset += used as u64;
                    self.uncompressed += made as u64;
                    self.member_bytes += made as u64;
                    if self.check_crc {
                        crc.update(&self.out[..made]);
                    }
                    push_tar(&mut self.tar, &self.out[..made], files)?;
                    match status {
                        Status::StreamEnd => *gz = Gz::Trailer(Vec::with_capacity(8)),
                        Status::Ok | Status::BufError if used == 0 && made == 0 => {
                            return Err(LayerFilesError::Deflate {
                                offset: self.compressed_offset,
                                message: "inflate made no progress".into(),
                            })
                        }
                        Status::Ok | Status::BufError => {}
                    }
                }
                Gz::Trailer(t) => {
                    let take = input.len().min(8 - t.len());
                    t.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    self.compressed_offset += take as u64;
                    if t.len() == 8 {
                        let found_crc = u32::from_le_bytes([t[0], t[1], t[2], t[3]]);
                        let found_len = u32::from_le_bytes([t[4], t[5], t[6], t[7]]);
                        if self.check_crc && found_crc != crc.sum() {
                            return Err(LayerFilesError::Trailer {
                                what: "CRC-32",
                                expected: crc.sum(),
                                found: found_crc,
                            });
                        }
                        // ISIZE is the member's size modulo 2^32.
                        let size = self.member_bytes as u32;
                        if found_len != size {
                            return Err(LayerFilesError::Trailer {
                                what: "ISIZE",
                                expected: size,
                                found: found_len,
                            });
                        }
                        *gz = Gz::Done;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Feeds uncompressed tar bytes and collects entries.
fn push_tar(
    tar: &mut TarReader,
    mut input: &[u8],
    files: &mut Vec<FileEntry>,
) -> Result<(), LayerFilesError> {
    loop {
        let (n, ev) = tar.feed(input)?;
        input = &input[n..];
        match ev {
            Some(TarEvent::Header(e)) => files.push(entry(e)),
            Some(_) => {}
            None if n == 0 => return Ok(()),
            None => {}
        }
    }
}

/// Interprets one tar header (whiteouts, path normalisation).
fn entry(e: crate::tar::Entry) -> FileEntry {
    let mut path = e.path.as_str();
    while let Some(rest) = path.strip_prefix("./").or_else(|| path.strip_prefix('/')) {
        path = rest;
    }
    let path = path.trim_end_matches('/');
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (Some(d), n),
        None => (None, path),
    };
    let join = |n: &str| match dir {
        Some(d) => format!("{d}/{n}"),
        None => n.to_string(),
    };
    let (path, kind) = if name == ".wh..wh..opq" {
        (dir.unwrap_or("").to_string(), FileKind::OpaqueDir)
    } else if let Some(deleted) = name.strip_prefix(".wh.") {
        (join(deleted), FileKind::Whiteout)
    } else {
        let kind = match e.kind {
            EntryKind::File => FileKind::File,
            EntryKind::Directory => FileKind::Dir,
            EntryKind::Symlink => FileKind::Symlink,
            EntryKind::HardLink => FileKind::Hardlink,
            EntryKind::Device => FileKind::Device,
            EntryKind::Other(_) => FileKind::Other,
        };
        (path.to_string(), kind)
    };
    let link = matches!(kind, FileKind::Symlink | FileKind::Hardlink).then_some(e.link);
    let size = if kind == FileKind::File { e.size } else { 0 };
    FileEntry {
        path,
        kind,
        size,
        mode: e.mode & 0o7777,
        link,
    }
}

/// The length of a complete gzip member header at the start of `b` (RFC 1952 §2.3), `None`
/// when more bytes are needed.
fn gzip_header_len(b: &[u8]) -> Result<Option<usize>, &'static str> {
    const FHCRC: u8 = 2;
    const FEXTRA: u8 = 4;
    const FNAME: u8 = 8;
    const FCOMMENT: u8 = 16;
    if b.len() >= 2 && b[..2] != [0x1f, 0x8b] {
        return Err("not gzip (bad magic)");
    }
    if b.len() >= 3 && b[2] != 8 {
        return Err("compression method is not deflate");
    }
    if b.len() < 10 {
        return Ok(None);
    }
    let flags = b[3];
    if flags & 0xe0 != 0 {
        return Err("reserved flag bits set");
    }
    let mut at = 10;
    if flags & FEXTRA != 0 {
        if b.len() < at + 2 {
            return Ok(None);
        }
        at += 2 + u16::from_le_bytes([b[at], b[at + 1]]) as usize;
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            match b.get(at..).and_then(|r| r.iter().position(|&c| c == 0)) {
                Some(nul) => at += nul + 1,
                None => return Ok(None),
            }
        }
    }
    if flags & FHCRC != 0 {
        at += 2;
    }
    Ok((b.len() >= at).then_some(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tar;

    fn tar_with_all_kinds() -> Vec<u8> {
        let mut out = Vec::new();
        let mut header = |name: &str, flag: u8, link: &str, mode: u32, size: u64| {
            let mut b = tar::ustar_block(name, size, mode, 0, flag);
            b[157..157 + link.len()].copy_from_slice(link.as_bytes());
            // Recompute the checksum after the link name was set.
            b[148..156].copy_from_slice(b"        ");
            let sum: u32 = b.iter().map(|&x| x as u32).sum();
            b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
            out.extend_from_slice(&b);
        };
        header("./usr/", b'5', "", 0o755, 0);
        header("./usr/bin/", b'5', "", 0o755, 0);
        header("usr/bin/sh", b'2', "busybox", 0o777, 0);
        header("usr/bin/ash", b'1', "usr/bin/busybox", 0o755, 0);
        header("etc/.wh.motd", b'0', "", 0o644, 0);
        header("var/cache/.wh..wh..opq", b'0', "", 0o644, 0);
        header("dev/null", b'3', "", 0o666, 0);
        tar::write_file(&mut out, "usr/bin/busybox", &[7u8; 1300], 0o4755, 0);
        tar::write_end(&mut out);
        out
    }

    fn gzip(data: &[u8], name: Option<&str>) -> Vec<u8> {
        use flate2::{Compress, FlushCompress};
        let mut out = vec![
            0x1f,
            0x8b,
            8,
            if name.is_some() { 8 } else { 0 },
            0,
            0,
            0,
            0,
            0,
            3,
        ];
        if let Some(n) = name {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
        let mut c = Compress::new(flate2::Compression::default(), false);
        let mut body = Vec::with_capacity(data.len() + 1024);
        c.compress_vec(data, &mut body, FlushCompress::Finish)
            .unwrap();
        out.extend_from_slice(&body);
        let mut crc = Crc::new();
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_le_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out
    }

    fn list(
        blob: &[u8],
        compression: Compression,
        chunk: usize,
    ) -> Result<Vec<FileEntry>, LayerFilesError> {
        let mut l = LayerLister::new(compression)?;
        let mut files = Vec::new();
        for c in blob.chunks(chunk) {
            l.feed(c, &mut files)?;
        }
        l.finish()?;
        Ok(files)
    }

    fn expected() -> Vec<(&'static str, FileKind, u64, u32, Option<&'static str>)> {
        vec![
            ("usr", FileKind::Dir, 0, 0o755, None),
            ("usr/bin", FileKind::Dir, 0, 0o755, None),
            ("usr/bin/sh", FileKind::Symlink, 0, 0o777, Some("busybox")),
            (
                "usr/bin/ash",
                FileKind::Hardlink,
                0,
                0o755,
                Some("usr/bin/busybox"),
            ),
            ("etc/motd", FileKind::Whiteout, 0, 0o644, None),
            ("var/cache", FileKind::OpaqueDir, 0, 0o644, None),
            ("dev/null", FileKind::Device, 0, 0o666, None),
            ("usr/bin/busybox", FileKind::File, 1300, 0o4755, None),
        ]
    }

    fn check(files: &[FileEntry]) {
        let got: Vec<_> = files
            .iter()
            .map(|f| (f.path.as_str(), f.kind, f.size, f.mode, f.link.as_deref()))
            .collect();
        assert_eq!(got, expected());
    }

    #[test]
    fn plain_tar_at_every_chunk_size() {
        let t = tar_with_all_kinds();
        for chunk in [1, 7, 512, 64 * 1024] {
            check(&list(&t, Compression::None, chunk).unwrap());
        }
    }

    #[test]
    fn gzip_at_every_chunk_size_with_a_file_name_header() {
        let g = gzip(&tar_with_all_kinds(), Some("layer.tar"));
        for chunk in [1, 7, 512, 64 * 1024] {
            check(&list(&g, Compression::Gzip, chunk).unwrap());
        }
    }

    #[test]
    fn big_gzip_layer_streams_through_small_buffers() {
        // 3 MiB of incompressible-ish data: many inflate output chunks per input chunk.
        let data: Vec<u8> = (0..3u32 * 1024 * 1024)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let t = crate::synth::layer_tar(&[("big", &data), ("small", b"x")], 0);
        let g = gzip(&t, None);
        let files = list(&g, Compression::Gzip, 100_000).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[0].size, data.len() as u64);
        assert_eq!(files[1].path, "small");
    }

    #[test]
    fn concatenated_gzip_members_and_missing_end_marker() {
        let mut t = Vec::new();
        tar::write_file(&mut t, "a", b"aaa", 0o644, 0);
        let mut t2 = Vec::new();
        tar::write_file(&mut t2, "b", b"bbb", 0o644, 0);
        // No end marker at all: still a complete listing.
        let mut g = gzip(&t, None);
        g.extend_from_slice(&gzip(&t2, None));
        let files = list(&g, Compression::Gzip, 3).unwrap();
        let paths: Vec<_> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a", "b"]);
    }

    #[test]
    fn broken_layers_are_typed_errors() {
        let t = tar_with_all_kinds();
        let g = gzip(&t, None);
        assert_eq!(
            LayerLister::new(Compression::Zstd).err(),
            Some(LayerFilesError::ZstdUnsupported)
        );
        assert!(matches!(
            list(b"PK\x03\x04 not gzip", Compression::Gzip, 4),
            Err(LayerFilesError::Gzip { offset: 0, .. })
        ));
        assert!(matches!(
            list(&g[..g.len() - 20], Compression::Gzip, 64),
            Err(LayerFilesError::Truncated { .. })
        ));
        let mut bad_crc = g.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        assert!(matches!(
            list(&bad_crc, Compression::Gzip, 64),
            Err(LayerFilesError::Trailer { what: "CRC-32", .. })
        ));
        let mut bad_deflate = g.clone();
        for b in &mut bad_deflate[10..40] {
            *b = 0xff;
        }
        assert!(matches!(
            list(&bad_deflate, Compression::Gzip, 64),
            Err(LayerFilesError::Deflate { .. })
        ));
        assert!(matches!(
            list(&t[..700], Compression::None, 64),
            Err(LayerFilesError::Tar(TarError::Truncated { .. }))
        ));
        let mut l = LayerLister::new(Compression::None).unwrap();
        assert!(l.feed(&[1u8; 512], &mut Vec::new()).is_err());
        assert_eq!(l.feed(b"", &mut Vec::new()), Err(LayerFilesError::Failed));
    }

    /// `without_crc` lists the same, over concatenated members too, ignores only the CRC-32
    /// and still checks ISIZE.
    #[test]
    fn without_crc_skips_only_the_crc() {
        let list_nocrc = |data: &[u8], chunk: usize| {
            let mut l = LayerLister::without_crc(Compression::Gzip).unwrap();
            let mut files = Vec::new();
            for c in data.chunks(chunk) {
                l.feed(c, &mut files)?;
            }
            l.finish()?;
            Ok::<_, LayerFilesError>(files)
        };
        let t = tar_with_all_kinds();
        let (mut t1, mut t2) = (Vec::new(), Vec::new());
        tar::write_file(&mut t1, "a", b"aaa", 0o644, 0);
        tar::write_file(&mut t2, "b", b"bbb", 0o644, 0);
        let mut g = gzip(&t1, None);
        g.extend_from_slice(&gzip(&t2, Some("second")));
        for chunk in [1, 7, 512, 64 * 1024] {
            assert_eq!(
                list_nocrc(&g, chunk).unwrap(),
                list(&g, Compression::Gzip, chunk).unwrap()
            );
        }
        let g = gzip(&t, None);
        let n = g.len();
        let mut bad_crc = g.clone();
        bad_crc[n - 8] ^= 1;
        assert_eq!(
            list_nocrc(&bad_crc, 100).unwrap(),
            list(&g, Compression::Gzip, 100).unwrap()
        );
        let mut bad_size = g.clone();
        bad_size[n - 4] ^= 1;
        assert!(matches!(
            list_nocrc(&bad_size, 100),
            Err(LayerFilesError::Trailer { what: "ISIZE", .. })
        ));
        assert!(matches!(
            list(&bad_size, Compression::Gzip, 100),
            Err(LayerFilesError::Trailer { what: "ISIZE", .. })
        ));
    }
}
