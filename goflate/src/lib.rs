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
