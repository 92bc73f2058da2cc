//! Tar files and streams, read by offset and written through the core's framer: the one
//! place the host touches tar structure (`oci-archive:` and `docker-archive:` files,
//! `docker load` streams, test layers).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::docker_archive::normalize_entry_path;
use ddiff_core::tar::{Framer, TarEvent, TarReader};

use crate::progress::Item;

/// Largest metadata file (manifest.json, configs, v1 json, index.json) kept in memory.
pub const MAX_SMALL: u64 = 16 << 20;
/// Read and copy buffer.
pub const CHUNK: usize = 1 << 20;

/// The entries of a tar file, by normalised path: (data offset, size).
pub struct TarIndex {
    /// The file.
    pub path: PathBuf,
    /// Entries.
    pub entries: BTreeMap<String, (u64, u64)>,
    /// Every entry in file order (directories and links too): its normalised path for
    /// files (`None` for the others) and the byte range of its header(s), data and padding,
    /// so an archive can be rewritten by copying ranges.
    pub spans: Vec<(Option<String>, u64, u64)>,
}

impl TarIndex {
    /// Reads every header of `path`, seeking over the data.
    pub fn open(path: &Path) -> Result<TarIndex> {
        let mut f = BufReader::new(
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        );
        let len = f.get_ref().metadata()?.len();
        let mut entries = BTreeMap::new();
        let mut spans = Vec::new();
        let mut pos = 0u64;
        let mut block = [0u8; 512];
        'entries: while pos < len {
            let mut r = TarReader::new();
            let start = pos;
            loop {
                f.read_exact(&mut block).with_context(|| {
                    format!("{}: truncated tar header at offset {pos}", path.display())
                })?;
                pos += 512;
                if block.iter().all(|&b| b == 0) {
                    break 'entries;
                }
                let (_, ev) = r
                    .feed(&block)
                    .with_context(|| format!("{}: offset {start}", path.display()))?;
                if let Some(TarEvent::Header(e)) = ev {
                    // Only files are looked up; directories (`./`) and links are skipped.
                    let mut file_name = None;
                    if e.kind == ddiff_core::tar::EntryKind::File {
                        let name = normalize_entry_path(&e.path)
                            .with_context(|| format!("{}: entry {:?}", path.display(), e.path))?;
                        entries.insert(name.clone(), (pos, e.size));
                        file_name = Some(name);
                    }
                    pos += e.size + ddiff_core::tar::padding(e.size) as u64;
                    spans.push((file_name, start, pos));
                    if pos > len {
                        bail!("{}: truncated in entry {:?}", path.display(), e.path);
                    }
                    f.seek(SeekFrom::Start(pos))?;
                    continue 'entries;
                }
            }
        }
        Ok(TarIndex {
            path: path.to_path_buf(),
            entries,
            spans,
        })
    }

    /// Whether an entry exists.
    pub fn has(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Size of an entry.
    pub fn size(&self, name: &str) -> Option<u64> {
        self.entries.get(name).map(|e| e.1)
    }

    /// Reads a small entry whole.
    pub fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let &(off, size) = self
            .entries
            .get(name)
            .ok_or_else(|| anyhow!("{}: no entry {name}", self.path.display()))?;
        if size > MAX_SMALL {
            bail!("{}: {name} is {size} bytes, too large", self.path.display());
        }
        let mut v = Vec::with_capacity(size as usize);
        self.open_entry(name)?.read_to_end(&mut v)?;
        let _ = off;
        Ok(v)
    }

    /// A reader over one entry.
    pub fn open_entry(&self, name: &str) -> Result<impl Read + Send> {
        let &(off, size) = self
            .entries
            .get(name)
            .ok_or_else(|| anyhow!("{}: no entry {name}", self.path.display()))?;
        let mut f = File::open(&self.path)
            .with_context(|| format!("cannot open {}", self.path.display()))?;
        f.seek(SeekFrom::Start(off))?;
        Ok(BufReader::with_capacity(CHUNK, f).take(size))
    }
}

/// A tar being written to `W`, framed by the core ([`Framer`]): whole small files, streamed
/// entries, the end marker. Counts the bytes written and reports them to a progress item.
pub struct TarOut<W: Write> {
    out: W,
    framer: Framer,
    written: u64,
    item: Option<Item>,
}

impl<W: Write> TarOut<W> {
    /// A tar written to `out`.
    pub fn new(out: W, item: Option<Item>) -> Self {
        TarOut {
            out,
            framer: Framer::new(),
            written: 0,
            item,
        }
    }

    fn emit(&mut self, b: &[u8]) -> Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        if let Some(i) = &self.item {
            i.inc(b.len() as u64);
        }
        Ok(())
    }

    /// Raw bytes that are already tar entries (copied from another archive by byte range).
    pub fn raw(&mut self, src: &mut dyn Read, len: u64) -> Result<()> {
        let copied = std::io::copy(&mut src.take(len), &mut self.out)?;
        if copied != len {
            bail!("source changed while being copied ({copied} of {len} bytes)");
        }
        self.written += len;
        Ok(())
    }

    /// A whole small file.
    pub fn file(&mut self, path: &str, bytes: &[u8]) -> Result<()> {
        let b = self.framer.file(path, bytes, 0o644)?;
        self.emit(&b)
    }

    /// An entry of `size` bytes whose data `fill` writes through the sink it is given.
    pub fn entry(
        &mut self,
        path: &str,
        size: u64,
        fill: impl FnOnce(&mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()>,
    ) -> Result<()> {
        let h = self.framer.begin(path, size, 0o644)?;
        self.emit(&h)?;
        fill(&mut |chunk| {
            self.framer.data(chunk.len())?;
            self.emit(chunk)
        })?;
        let pad = self.framer.end_entry()?;
        self.emit(&pad)
    }

    /// An entry copied from a reader of exactly `size` bytes.
    pub fn entry_from(&mut self, path: &str, size: u64, src: &mut dyn Read) -> Result<()> {
        let mut buf = vec![0u8; CHUNK.min(size.max(1) as usize)];
        self.entry(path, size, |sink| loop {
            let n = src.read(&mut buf)?;
            if n == 0 {
                return Ok(());
            }
            sink(&buf[..n])?;
        })
    }

    /// Writes the end marker; returns the writer and the bytes written.
    pub fn finish(mut self) -> Result<(W, u64)> {
        let end = std::mem::take(&mut self.framer).finish()?;
        self.emit(&end)?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }
}

/// A tar of small files, for tests.
#[cfg(test)]
pub(crate) fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut t = TarOut::new(Vec::new(), None);
    for (p, d) in files {
        t.file(p, d).expect("a Vec takes any write");
    }
    t.finish().expect("a Vec takes any write").0
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn index_reads_entries_by_offset() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.tar");
        let long = format!("{}/layer.tar", "d".repeat(120));
        std::fs::write(
            &p,
            tar_of(&[("./manifest.json", b"[]"), (&long, b"layer bytes")]),
        )
        .unwrap();
        let idx = TarIndex::open(&p).unwrap();
        assert_eq!(idx.read_small("manifest.json").unwrap(), b"[]");
        assert_eq!(idx.read_small(&long).unwrap(), b"layer bytes");
        assert!(idx.read_small("nope").is_err());
    }

    #[test]
    fn an_entry_shorter_or_longer_than_declared_is_refused() {
        let mut t = TarOut::new(Vec::new(), None);
        let e = t.entry_from("a", 10, &mut &b"123"[..]).unwrap_err();
        assert!(
            format!("{e:#}").contains("declared 10 bytes and got 3"),
            "{e:#}"
        );
        let mut t = TarOut::new(Vec::new(), None);
        assert!(t.entry_from("a", 2, &mut &b"123"[..]).is_err());
        let mut t = TarOut::new(Vec::new(), None);
        t.entry_from("a", 3, &mut &b"123"[..]).unwrap();
        let (v, n) = t.finish().unwrap();
        assert_eq!(v.len() as u64, n);
        assert_eq!(n, Framer::entry_len("a", 3) + Framer::END_LEN);
    }
}
