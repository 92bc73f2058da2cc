//! A bit-exact port of Go's `compress/flate` compressor and `compress/gzip` writer.
//!
//! ddiff carries a rebuilt layer as a patch of its *uncompressed* tar; the offline side has
//! to rebuild the registry's *compressed* blob with the same sha256. Most layers were
//! compressed by Go (`docker push`, BuildKit, containerd: `gzip.NewWriter` at the default
//! level), so this crate writes, byte for byte, what Go writes:
//!
//! ```text
//!   tar bytes ──▶ GzipWriter::write ──▶ Deflater (Go's compressor) ──▶ sink (io::Write)
//!                  │ CRC-32, size                                     ▲
//!                  └───────────── finish(): final block + trailer ────┘
//! ```
//!
//! ```
//! use std::io::Write;
//! let tar = b"any bytes";
//! // The levels Go could have used for this blob, default (6) first.
//! let blob = goflate::gzip(tar, 6).unwrap();
//! assert_eq!(goflate::candidate_levels(&blob)[0], 6);
//! // Streaming: the output does not depend on how the input is split.
//! let mut w = goflate::GzipWriter::new(Vec::new(), 6).unwrap();
//! for chunk in tar.chunks(3) {
//!     w.write_all(chunk).unwrap();
//! }
//! assert_eq!(w.finish().unwrap(), blob);
//! ```
//!
//! # What it matches
//!
//! Go's `gzip.NewWriterLevel(w, level)` with a zero `Header` (no name, comment or extra,
//! MTIME 0, XFL 2 for level 9 and 4 for level 1, OS 255), then `Write`s and `Close` (no
//! `Flush`), for every level Go has: `HuffmanOnly` (-2), `DefaultCompression` (-1, = 6),
//! `NoCompression` (0), `BestSpeed` (1, the Snappy-style `deflatefast.go`) and 2..=9. The
//! source files are ported one to one, with Go's names in comments: `deflate.rs`
//! (deflate.go), `deflatefast.rs`, `huffman_bit_writer.rs`, `huffman_code.rs`, `token.rs`,
//! `gzip.rs` (gzip.go). Checked against Go 1.19.8 (Debian's golang-go, which also built
//! Debian's docker.io 20.10): live at every level by `tests/go_live.rs` (generated inputs
//! around block and window boundaries, and a ~32 MB tar of system files), by committed Go
//! digests in `tests/golden.rs`, and by `tests/e2e/goflate-docker-push.sh` (a layer pushed by
//! `docker push` is rebuilt exactly at level 6).
//!
//! Go versions, from Go's release notes and issues (only 1.19 is tested here):
//! - Go 1.7 rewrote the encoder (BestSpeed became `deflatefast`, HuffmanOnly was added); Go
//!   1.8 changed the output again ("minor fixes ... the exact encoded output may be different
//!   from Go 1.7": level 1 matches across blocks; gzip writes MTIME 0 for a zero time).
//!   Output of Go 1.7 and older is **not** matched.
//! - Go 1.8 to 1.26: the same encoder; we know of no change to its output for levels -2, 0
//!   and 2..=9 (1.19's switch of `sort.Sort` to pdqsort does not matter: both orders used
//!   are total). Level 1 changed for long streams: Go 1.15 replaced the table reset at
//!   `cur > 1<<30` (about 1 GiB in) with `shiftOffsets` (golang/go#34121), and Go 1.16 fixed
//!   a false match that allowed about every 2 GiB (golang/go#41420). This port is the fixed
//!   code, so level-1 streams over 1 GiB match Go 1.16 and later only (as far as the issues
//!   tell); a 2.25 GiB stream at levels 1 and 6 matches Go 1.19 (`matches_go_past_2_gib`,
//!   ignored by default: a minute).
//! - Go 1.27 (Aug 2026) replaced the encoder with klauspost/compress's (golang/go#75532):
//!   its output differs at every level and is **not** matched.
//!
//! Go's output does not depend on how the input is split into `Write` calls (only `Flush`
//! changes it, which this API does not offer): levels -2, 0 and 1 cut blocks at fixed 65535
//! byte boundaries, and levels 2..=9 take the same steps whatever the window fill, with one
//! corner, in Go and here alike: if the step that ends exactly at window position 65274 is
//! followed by one that closes a 16384-token block opened more than 32 KiB earlier, that
//! block may be written stored only when the write that filled the window ended at 65536
//! (the window slides after that step rather than before it). Stored must also be the
//! smallest coding of such a dense block, so we have never seen it; to be exact even there,
//! feed the writer as the Go program was fed (Docker: `io.Copy`, 32 KiB writes).
//!
//! # API
//!
//! - [`GzipWriter`]: `new(sink, level)`, `impl Write`, `finish() -> sink`.
//! - [`gzip`]: one call for in-memory data; [`gzip_header`]: the 10 bytes Go writes first.
//! - [`Deflater`]: raw DEFLATE (Go's `flate.Writer`), push-style into a caller's `Vec<u8>`
//!   or any `Write`.
//! - [`candidate_levels`]: from a blob's first 10 bytes, the Go levels that could have
//!   written it, most likely first; empty when Go would not write that header.
//!
//! # Memory and speed
//!
//! Bounded, never the input: Go's window (64 KiB), hash tables (levels 2-9: 512 KiB head +
//! 128 KiB chain; level 1: 128 KiB table + the previous 64 KiB block), one block of tokens,
//! and the output of one compression step (about a window's worth), handed to the sink
//! before more input is taken. Peak RSS compressing a 120 MB tar with the `gogzip` example:
//! 2.6 MB (Go's program: 2.7 MB).
//!
//! Speed (release build, `tests/bench/goflate.sh 80 2 6 1 9 -2 0`, an 80 MiB tar of
//! /usr/lib/x86_64-linux-gnu, CPU seconds on the shared 2-core VM): level 6 41 MB/s (Go 1.19:
//! 34, GNU gzip -6: 28), level 1 167 MB/s (Go 110, gzip -1 77), level 9 7 MB/s (Go 6),
//! HuffmanOnly 268 MB/s (Go 176), NoCompression 870 MB/s (Go 1039). No `unsafe`; pure
//! computation (no IO but the `Write` sink, no clock); `tests/wasm/core-tests.sh` builds it
//! for wasm32-unknown-unknown and runs its golden and chunking tests on wasm32-wasip1, where
//! `usize` is 32 bits.
#![forbid(unsafe_code)]
// The ported loops keep Go's index-based shape so they can be read side by side with Go.
#![allow(clippy::needless_range_loop, clippy::explicit_counter_loop)]

mod deflate;
mod deflatefast;
mod gzip;
mod huffman_bit_writer;
mod huffman_code;
mod token;

pub use deflate::{
    Deflater, BEST_COMPRESSION, BEST_SPEED, DEFAULT_COMPRESSION, HUFFMAN_ONLY, NO_COMPRESSION,
};
pub use gzip::{gzip_header, GzipWriter};

/// A compression level outside Go's range [-2, 9].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelError {
    /// The level asked for.
    pub level: i32,
}

impl std::fmt::Display for LevelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invalid Go compression level {}: want a value in [-2, 9]",
            self.level
        )
    }
}

impl std::error::Error for LevelError {}

/// Compress `data` in one call, as `gzip.NewWriterLevel` + `Write` + `Close` would.
pub fn gzip(data: &[u8], level: i32) -> Result<Vec<u8>, LevelError> {
    let mut w = GzipWriter::new(Vec::new(), level)?;
    // A Vec sink cannot fail.
    let _ = std::io::Write::write_all(&mut w, data);
    Ok(w.finish().unwrap_or_default())
}

/// The Go levels that could have written a gzip blob starting with `gzip_header` (its first
/// 10 bytes), most likely first; empty if Go (with a zero `Header`) would not write it.
///
/// XFL tells 9 (2) and 1 (4) apart from the rest; among the rest Docker, containerd and
/// BuildKit use the default (6), so it comes first.
pub fn candidate_levels(gzip_header: &[u8]) -> Vec<i32> {
    let Some(h) = gzip_header.get(..10) else {
        return Vec::new();
    };
    if h[..8] != [0x1f, 0x8b, 8, 0, 0, 0, 0, 0] || h[9] != 255 {
        return Vec::new();
    }
    match h[8] {
        2 => vec![9],
        4 => vec![1],
        0 => vec![6, 5, 4, 7, 8, 3, 2, 0, -2],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_levels_from_go_headers() {
        assert_eq!(candidate_levels(&gzip_header(9)), vec![9]);
        assert_eq!(candidate_levels(&gzip_header(1)), vec![1]);
        for level in [-2, -1, 0, 2, 3, 4, 5, 6, 7, 8] {
            let c = candidate_levels(&gzip_header(level));
            assert_eq!(c[0], 6, "the default comes first");
            let l = if level == -1 { 6 } else { level };
            assert!(c.contains(&l), "level {level} missing from {c:?}");
        }
    }

    #[test]
    fn candidate_levels_refuse_headers_go_does_not_write() {
        let go = gzip_header(6);
        // GNU gzip -6 of a named file: FLG.FNAME, an MTIME, OS 3.
        let gnu = [0x1f, 0x8b, 8, 8, 0x12, 0x34, 0x56, 0x67, 0, 3];
        assert!(candidate_levels(&gnu).is_empty());
        assert!(candidate_levels(&go[..9]).is_empty(), "short header");
        for i in 0..10 {
            let mut h = go;
            h[i] ^= 0x40;
            assert!(candidate_levels(&h).is_empty(), "byte {i} changed");
        }
        let mut h = go;
        h[8] = 3;
        assert!(candidate_levels(&h).is_empty(), "XFL 3");
    }

    #[test]
    fn empty_input_is_go_s_bytes() {
        // Go 1.19: gzip.NewWriterLevel(&b, 6); w.Close()
        let want = [
            0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 1, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(gzip(b"", 6).unwrap(), want);
    }
}
