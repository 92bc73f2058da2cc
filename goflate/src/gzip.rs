//! Port of `compress/gzip/gzip.go`'s `Writer` with a zero `Header`: what
//! `gzip.NewWriterLevel(w, level)` writes when nothing else is set.

use std::io::{self, Write};

use crate::deflate::{Deflater, BEST_COMPRESSION, BEST_SPEED};
use crate::LevelError;

/// The 10-byte header Go writes with a zero `Header`: no FLG bits, MTIME 0, XFL 2 for level
/// 9, 4 for level 1, else 0, OS 255 (unknown).
pub fn gzip_header(level: i32) -> [u8; 10] {
    let xfl = match level {
        BEST_COMPRESSION => 2,
        BEST_SPEED => 4,
        _ => 0,
    };
    [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 255]
}

/// Go's `gzip.Writer` (zero header): a streaming gzip compressor whose output is byte for
/// byte what Go writes at the same level.
///
/// Output goes to the sink as it is produced; [`GzipWriter::finish`] writes the final block
/// and the CRC-32/ISIZE trailer and returns the sink. Dropping the writer without `finish`
/// leaves the stream truncated.
pub struct GzipWriter<W: Write> {
    w: W,
    level: i32,
    wrote_header: bool,
    compressor: Deflater,
    digest: crc32fast::Hasher,
    size: u32,
    /// An earlier sink error: the stream is broken, later calls return an error.
    poisoned: bool,
}

impl<W: Write> GzipWriter<W> {
    /// `gzip.NewWriterLevel(w, level)`: `level` from -2 (HuffmanOnly) to 9, -1 is the
    /// default (6).
    pub fn new(w: W, level: i32) -> Result<Self, LevelError> {
        Ok(GzipWriter {
            w,
            level,
            wrote_header: false,
            compressor: Deflater::new(level)?,
            digest: crc32fast::Hasher::new(),
            size: 0,
            poisoned: false,
        })
    }

    /// The sink.
    pub fn get_ref(&self) -> &W {
        &self.w
    }

    fn check(&self) -> io::Result<()> {
        if self.poisoned {
            return Err(io::Error::other(
                "goflate: an earlier write to the sink failed",
            ));
        }
        Ok(())
    }

    fn write_header(&mut self) -> io::Result<()> {
        if !self.wrote_header {
            self.wrote_header = true;
            self.w.write_all(&gzip_header(self.level))?;
        }
        Ok(())
    }

    /// `Close`: the final block and the trailer; returns the sink.
    pub fn finish(mut self) -> io::Result<W> {
        self.check()?;
        self.write_header()?;
        self.compressor.close_to(&mut self.w)?;
        let mut trailer = [0u8; 8];
        trailer[..4].copy_from_slice(&self.digest.clone().finalize().to_le_bytes());
        trailer[4..].copy_from_slice(&self.size.to_le_bytes());
        self.w.write_all(&trailer)?;
        Ok(self.w)
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, p: &[u8]) -> io::Result<usize> {
        self.check()?;
        let r = (|| {
            self.write_header()?;
            self.size = self.size.wrapping_add(p.len() as u32);
            self.digest.update(p);
            self.compressor.write_to(p, &mut self.w)
        })();
        if r.is_err() {
            self.poisoned = true;
        }
        r.map(|()| p.len())
    }

    /// Flushes the sink only: a DEFLATE sync flush (Go's `Flush`) would change the output.
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}
