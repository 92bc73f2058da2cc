//! A bit-exact port of Go's `compress/flate` compressor and `compress/gzip` writer.
//!
//! (Crate docs: see the end of the work; filled in below.)
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
