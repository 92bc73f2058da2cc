//! A minimal, strict, push-style tar codec (POSIX ustar + PAX, GNU long names and base-256
//! sizes), enough for bundles and `docker save` archives.
//!
//! Reading: feed any chunk sizes to [`TarReader::feed`]; it returns how many bytes it used and
//! at most one [`TarEvent`]. Data events borrow the caller's input, so nothing is copied.
//! Writing: [`write_header`] appends the header blocks for one regular file (a PAX record when
//! the name or size does not fit ustar), [`padding`] the zero bytes after its data.

/// Tar block size.
pub const BLOCK: usize = 512;

/// Largest PAX extended header or GNU long name we accept (hostile input guard).
pub const MAX_EXTENSION_BYTES: u64 = 1024 * 1024;

/// What kind of entry a header describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (`0` or NUL).
    File,
    /// A directory (`5`).
    Directory,
    /// A symbolic link (`2`).
    Symlink,
    /// A hard link (`1`).
    HardLink,
    /// A character device, block device or FIFO (`3`, `4`, `6`).
    Device,
    /// Anything else (contiguous files, vendor types).
    Other(u8),
}

/// One entry's header, after PAX / GNU extensions were applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The path (PAX `path` or GNU long name when present).
    pub path: String,
    /// The entry kind.
    pub kind: EntryKind,
    /// The raw typeflag byte (`0`, NUL and `7` are all [`EntryKind::File`]; strict readers such
    /// as the bundle decoder accept only `0`).
    pub typeflag: u8,
    /// Size of the data that follows.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Modification time (seconds).
    pub mtime: u64,
    /// Link target for links.
    pub link: String,
    /// Offset of the first header block of this entry (including extension headers).
    pub header_offset: u64,
    /// Offset of the first data byte.
    pub data_offset: u64,
}

/// Tar structure errors, each with the stream offset where it was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TarError {
    /// The header checksum does not match.
    #[error("corrupt tar header at offset {offset}: checksum mismatch")]
    Checksum { offset: u64 },
    /// A numeric field is not octal / base-256.
    #[error("corrupt tar header at offset {offset}: invalid {field} field")]
    BadNumber { offset: u64, field: &'static str },
    /// A PAX record is malformed.
    #[error("malformed PAX header at offset {offset}")]
    BadPax { offset: u64 },
    /// An extension header is larger than we accept.
    #[error(
        "tar extension header at offset {offset} claims {size} bytes (limit {MAX_EXTENSION_BYTES})"
    )]
    ExtensionTooLarge { offset: u64, size: u64 },
    /// A name is not UTF-8.
    #[error("tar entry name at offset {offset} is not UTF-8")]
    NonUtf8Name { offset: u64 },
    /// Data after the end-of-archive marker that is not zero padding.
    #[error("unexpected data after the end of the tar archive at offset {offset}")]
    TrailingData { offset: u64 },
    /// Input ended inside a header or entry.
    #[error("truncated tar archive at offset {offset}: {context}")]
    Truncated { offset: u64, context: &'static str },
    /// `feed` called again after an error or after the end.
    #[error("tar reader used after it failed or finished")]
    Finished,
}

/// Events out of [`TarReader::feed`].
#[derive(Debug, PartialEq, Eq)]
pub enum TarEvent<'a> {
    /// A new entry starts; its data (if any) follows as `Data` events.
    Header(Entry),
    /// A slice of the current entry's data.
    Data(&'a [u8]),
    /// The current entry's data is complete.
    EntryEnd,
    /// The end-of-archive marker (two zero blocks) was read.
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Data {
        remaining: u64,
        padding: usize,
    },
    Padding {
        remaining: usize,
    },
    /// Saw one zero block; the next must be zero too.
    SecondZero,
    /// After the end marker: only zeros allowed.
    Trailer,
    Failed,
}

#[derive(Default, Clone)]
struct Pending {
    path: Option<String>,
    link: Option<String>,
    size: Option<u64>,
    first_offset: Option<u64>,
}

/// Push-style tar reader.
pub struct TarReader {
    state: State,
    offset: u64,
    block: [u8; BLOCK],
    filled: usize,
    pending: Pending,
    /// Collecting an extension header's body: (typeflag, size, collected bytes)
    ext: Option<(u8, u64, Vec<u8>)>,
}

impl Default for TarReader {
    fn default() -> Self {
        Self::new()
    }
}

impl TarReader {
    /// A reader at offset 0.
    pub fn new() -> Self {
        TarReader {
            state: State::Header,
            offset: 0,
            block: [0; BLOCK],
            filled: 0,
            pending: Pending::default(),
            ext: None,
        }
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Whether the end-of-archive marker was read.
    pub fn is_finished(&self) -> bool {
        self.state == State::Trailer
    }

    /// Whether the reader stands between entries (no partial header, extension or data
    /// pending). Layer tars written without the end-of-archive marker end in this state.
    pub fn at_entry_boundary(&self) -> bool {
        self.state == State::Header
            && self.filled == 0
            && self.ext.is_none()
            && self.pending.first_offset.is_none()
    }

    /// Call when the input is exhausted: errors if the archive is incomplete.
    pub fn finish(&self) -> Result<(), TarError> {
        match self.state {
            // Any number of zero bytes may follow the end marker (record padding).
            State::Trailer => match self.block[..self.filled].iter().position(|&b| b != 0) {
                None => Ok(()),
                Some(i) => Err(TarError::TrailingData {
                    offset: self.offset - (self.filled - i) as u64,
                }),
            },
            State::Data { .. } => Err(TarError::Truncated {
                offset: self.offset,
                context: "inside an entry's data",
            }),
            State::SecondZero => Err(TarError::Truncated {
                offset: self.offset,
                context: "after the first zero block of the end marker",
            }),
            _ => Err(TarError::Truncated {
                offset: self.offset,
                context: if self.ext.is_some() {
                    "inside an extension header"
                } else {
                    "expected a header or the end marker"
                },
            }),
        }
    }

    /// Feeds input. Returns bytes consumed and possibly an event. Call again with the
    /// remaining input until it returns `(0, None)` ("need more input").
    pub fn feed<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<TarEvent<'a>>), TarError> {
        let r = self.feed_inner(input);
        if r.is_err() {
            self.state = State::Failed;
        }
        r
    }

    fn feed_inner<'a>(
        &mut self,
        input: &'a [u8],
    ) -> Result<(usize, Option<TarEvent<'a>>), TarError> {
        match self.state {
            State::Failed => Err(TarError::Finished),
            State::Data { remaining, padding } => {
                if remaining == 0 {
                    self.state = State::Padding { remaining: padding };
                    return Ok((0, Some(TarEvent::EntryEnd)));
                }
                if input.is_empty() {
                    return Ok((0, None));
                }
                let n = usize::try_from(remaining).map_or(input.len(), |r| r.min(input.len()));
                self.offset += n as u64;
                self.state = State::Data {
                    remaining: remaining - n as u64,
                    padding,
                };
                Ok((n, Some(TarEvent::Data(&input[..n]))))
            }
            State::Padding { remaining } => {
                if remaining == 0 {
                    self.state = State::Header;
                    return self.feed_inner(input);
                }
                let n = remaining.min(input.len());
                if input[..n].iter().any(|&b| b != 0) {
                    // Non-zero padding is tolerated by most readers; we are strict because a
                    // bundle is written by us and a flipped byte there must be noticed.
                    return Err(TarError::Truncated {
                        offset: self.offset,
                        context: "non-zero padding after an entry",
                    });
                }
                self.offset += n as u64;
                self.state = State::Padding {
                    remaining: remaining - n,
                };
                if remaining - n == 0 {
                    self.state = State::Header;
                }
                Ok((n, None))
            }
            State::Header | State::SecondZero | State::Trailer => {
                // Extension bodies are collected block-wise too.
                let need = BLOCK - self.filled;
                let n = need.min(input.len());
                self.block[self.filled..self.filled + n].copy_from_slice(&input[..n]);
                self.filled += n;
                self.offset += n as u64;
                if self.filled < BLOCK {
                    return Ok((n, None));
                }
                self.filled = 0;
                let block_offset = self.offset - BLOCK as u64;
                let ev = self.on_block(block_offset)?;
                Ok((n, ev))
            }
        }
    }

    fn on_block<'a>(&mut self, at: u64) -> Result<Option<TarEvent<'a>>, TarError> {
        let b = self.block;
        if let Some((flag, size, mut body)) = self.ext.take() {
            let take = usize::try_from(size - body.len() as u64)
                .unwrap_or(BLOCK)
                .min(BLOCK);
            body.extend_from_slice(&b[..take]);
            if (body.len() as u64) < size {
                self.ext = Some((flag, size, body));
                return Ok(None);
            }
            self.apply_extension(flag, &body, at)?;
            return Ok(None);
        }
        let zero = b.iter().all(|&x| x == 0);
        match self.state {
            State::Trailer => {
                if !zero {
                    return Err(TarError::TrailingData { offset: at });
                }
                return Ok(None);
            }
            State::SecondZero => {
                if !zero {
                    return Err(TarError::TrailingData { offset: at });
                }
                if self.pending.first_offset.is_some() {
                    return Err(TarError::Truncated {
                        offset: at,
                        context: "extension header without an entry",
                    });
                }
                self.state = State::Trailer;
                return Ok(Some(TarEvent::End));
            }
            _ => {}
        }
        if zero {
            self.state = State::SecondZero;
            return Ok(None);
        }
        verify_checksum(&b, at)?;
        let flag = b[156];
        let size = parse_number(&b[124..136]).ok_or(TarError::BadNumber {
            offset: at,
            field: "size",
        })?;
        let first = *self.pending.first_offset.get_or_insert(at);
        match flag {
            b'x' | b'g' | b'L' | b'K' => {
                if size > MAX_EXTENSION_BYTES {
                    return Err(TarError::ExtensionTooLarge { offset: at, size });
                }
                if size == 0 {
                    return Ok(None);
                }
                // `size` fits in usize: it is at most MAX_EXTENSION_BYTES.
                self.ext = Some((flag, size, Vec::with_capacity(size as usize)));
                return Ok(None);
            }
            _ => {}
        }
        let mode = parse_number(&b[100..108]).ok_or(TarError::BadNumber {
            offset: at,
            field: "mode",
        })?;
        let mtime = parse_number(&b[136..148]).ok_or(TarError::BadNumber {
            offset: at,
            field: "mtime",
        })?;
        let pending = std::mem::take(&mut self.pending);
        let path = match pending.path {
            Some(p) => p,
            None => {
                let name = cstr(&b[0..100]);
                let is_ustar = &b[257..263] == b"ustar\0";
                let prefix = if is_ustar {
                    cstr(&b[345..500])
                } else {
                    &[][..]
                };
                let mut full = Vec::with_capacity(prefix.len() + 1 + name.len());
                if !prefix.is_empty() {
                    full.extend_from_slice(prefix);
                    full.push(b'/');
                }
                full.extend_from_slice(name);
                String::from_utf8(full).map_err(|_| TarError::NonUtf8Name { offset: at })?
            }
        };
        let link = match pending.link {
            Some(l) => l,
            None => String::from_utf8(cstr(&b[157..257]).to_vec())
                .map_err(|_| TarError::NonUtf8Name { offset: at })?,
        };
        let size = pending.size.unwrap_or(size);
        let kind = match flag {
            b'0' | 0 | b'7' => EntryKind::File,
            b'5' => EntryKind::Directory,
            b'2' => EntryKind::Symlink,
            b'1' => EntryKind::HardLink,
            b'3' | b'4' | b'6' => EntryKind::Device,
            other => EntryKind::Other(other),
        };
        // Only files (and unknown types, which readers treat as files) carry data.
        let data_size = match kind {
            EntryKind::File | EntryKind::Other(_) => size,
            _ => 0,
        };
        let padding = ((BLOCK as u64 - data_size % BLOCK as u64) % BLOCK as u64) as usize;
        self.state = State::Data {
            remaining: data_size,
            padding,
        };
        Ok(Some(TarEvent::Header(Entry {
            path,
            kind,
            typeflag: flag,
            size: data_size,
            mode: mode as u32,
            mtime,
            link,
            header_offset: first,
            data_offset: at + BLOCK as u64,
        })))
    }

    fn apply_extension(&mut self, flag: u8, body: &[u8], at: u64) -> Result<(), TarError> {
        match flag {
            b'L' => {
                let s = String::from_utf8(cstr(body).to_vec())
                    .map_err(|_| TarError::NonUtf8Name { offset: at })?;
                self.pending.path = Some(s);
            }
            b'K' => {
                let s = String::from_utf8(cstr(body).to_vec())
                    .map_err(|_| TarError::NonUtf8Name { offset: at })?;
                self.pending.link = Some(s);
            }
            b'x' => {
                for (k, v) in parse_pax(body).ok_or(TarError::BadPax { offset: at })? {
                    match k {
                        "path" => self.pending.path = Some(v.to_string()),
                        "linkpath" => self.pending.link = Some(v.to_string()),
                        "size" => {
                            let n = v
                                .parse::<u64>()
                                .map_err(|_| TarError::BadPax { offset: at })?;
                            self.pending.size = Some(n);
                        }
                        _ => {}
                    }
                }
            }
            // Global headers: validated for shape, otherwise ignored.
            _ => {
                parse_pax(body).ok_or(TarError::BadPax { offset: at })?;
                self.pending.first_offset = None;
            }
        }
        Ok(())
    }
}

fn cstr(b: &[u8]) -> &[u8] {
    let end = b.iter().position(|&x| x == 0).unwrap_or(b.len());
    &b[..end]
}

fn verify_checksum(b: &[u8; BLOCK], at: u64) -> Result<(), TarError> {
    let stored = parse_number(&b[148..156]).ok_or(TarError::Checksum { offset: at })?;
    let mut sum: u64 = 0;
    for (i, &x) in b.iter().enumerate() {
        sum += if (148..156).contains(&i) {
            u64::from(b' ')
        } else {
            u64::from(x)
        };
    }
    if sum != stored {
        return Err(TarError::Checksum { offset: at });
    }
    Ok(())
}

/// Octal (NUL/space padded) or GNU base-256 (high bit set) numbers.
fn parse_number(field: &[u8]) -> Option<u64> {
    if field.first().is_some_and(|&b| b & 0x80 != 0) {
        if field[0] & 0x40 != 0 {
            return None; // negative
        }
        let mut n: u64 = u64::from(field[0] & 0x3f);
        for &b in &field[1..] {
            n = n.checked_mul(256)?.checked_add(u64::from(b))?;
        }
        return Some(n);
    }
    let s: Vec<u8> = field
        .iter()
        .copied()
        .filter(|&b| b != 0 && b != b' ')
        .collect();
    if s.is_empty() {
        return Some(0);
    }
    let mut n: u64 = 0;
    for b in s {
        if !(b'0'..=b'7').contains(&b) {
            return None;
        }
        n = n.checked_mul(8)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Parses PAX records `"<len> <key>=<value>\n"`.
fn parse_pax(body: &[u8]) -> Option<Vec<(&str, &str)>> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        if rest.iter().all(|&b| b == 0) {
            break;
        }
        let sp = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..sp]).ok()?.parse().ok()?;
        if len <= sp + 1 || len > rest.len() || rest[len - 1] != b'\n' {
            return None;
        }
        let rec = std::str::from_utf8(&rest[sp + 1..len - 1]).ok()?;
        let (k, v) = rec.split_once('=')?;
        out.push((k, v));
        rest = &rest[len..];
    }
    Some(out)
}

fn put_octal(field: &mut [u8], n: u64) {
    // Width w: w-1 octal digits then NUL.
    let digits = field.len() - 1;
    let s = format!("{n:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

pub(crate) fn ustar_block(name: &str, size: u64, mode: u32, mtime: u64, flag: u8) -> [u8; BLOCK] {
    let mut b = [0u8; BLOCK];
    let nb = name.as_bytes();
    let n = nb.len().min(100);
    b[..n].copy_from_slice(&nb[..n]);
    put_octal(&mut b[100..108], u64::from(mode));
    put_octal(&mut b[108..116], 0);
    put_octal(&mut b[116..124], 0);
    put_octal(&mut b[124..136], size);
    put_octal(&mut b[136..148], mtime);
    b[156] = flag;
    b[257..263].copy_from_slice(b"ustar\0");
    b[263..265].copy_from_slice(b"00");
    let mut sum: u64 = 0;
    for (i, &x) in b.iter().enumerate() {
        sum += if (148..156).contains(&i) {
            u64::from(b' ')
        } else {
            u64::from(x)
        };
    }
    let s = format!("{sum:06o}\0 ");
    b[148..156].copy_from_slice(s.as_bytes());
    b
}

/// Largest size representable in a ustar size field (11 octal digits).
const USTAR_MAX_SIZE: u64 = 0o77777777777;

fn pax_record(key: &str, value: &str) -> String {
    // The length prefix counts itself.
    let base = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = base + 1;
    while len != base + len.to_string().len() {
        len = base + len.to_string().len();
    }
    format!("{len} {key}={value}\n")
}

/// Appends the header block(s) of a regular file entry to `out`: a PAX extended header first
/// when the path is longer than 100 bytes or the size does not fit 11 octal digits.
/// Owner is 0:0 with empty names; the output depends only on the arguments (deterministic).
pub fn write_header(out: &mut Vec<u8>, path: &str, size: u64, mode: u32, mtime: u64) {
    let mut pax = String::new();
    if path.len() > 100 {
        pax.push_str(&pax_record("path", path));
    }
    if size > USTAR_MAX_SIZE {
        pax.push_str(&pax_record("size", &size.to_string()));
    }
    if !pax.is_empty() {
        let pax_name = format!("PaxHeaders/{}", &path[path.len().saturating_sub(80)..]);
        out.extend_from_slice(&ustar_block(
            &pax_name,
            pax.len() as u64,
            0o644,
            mtime,
            b'x',
        ));
        out.extend_from_slice(pax.as_bytes());
        out.extend(std::iter::repeat_n(0u8, padding(pax.len() as u64)));
    }
    let ustar_size = if size > USTAR_MAX_SIZE { 0 } else { size };
    out.extend_from_slice(&ustar_block(path, ustar_size, mode, mtime, b'0'));
}

/// Number of zero bytes that follow `size` bytes of data.
pub fn padding(size: u64) -> usize {
    ((BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64) as usize
}

/// Appends a whole small file entry (header, data, padding).
pub fn write_file(out: &mut Vec<u8>, path: &str, data: &[u8], mode: u32, mtime: u64) {
    write_header(out, path, data.len() as u64, mode, mtime);
    out.extend_from_slice(data);
    out.extend(std::iter::repeat_n(0u8, padding(data.len() as u64)));
}

/// Appends the end-of-archive marker (two zero blocks).
pub fn write_end(out: &mut Vec<u8>) {
    out.extend(std::iter::repeat_n(0u8, 2 * BLOCK));
}

/// Length in bytes of the header(s) [`write_header`] emits for this path and size.
pub fn header_len(path: &str, size: u64) -> u64 {
    let mut v = Vec::new();
    write_header(&mut v, path, size, 0o644, 0);
    v.len() as u64
}

/// Frames a tar stream push-style, for hosts that write archives (`docker load` streams,
/// `oci-archive:` files, test layers): the host asks for the bytes that go before and after
/// each entry and writes the entry's data itself, so it never assembles headers or padding by
/// hand. Every entry is a regular file, owner 0:0, the given mode and mtime 0. The framer
/// holds the count of data bytes of the open entry and refuses to close it short or long, so
/// a host cannot write an archive whose headers lie about their data.
#[derive(Debug, Default)]
pub struct Framer {
    /// The open streamed entry: its path, declared size and the bytes seen so far.
    open: Option<(String, u64, u64)>,
}

/// A host broke the framing contract (a bug in the host, never a reaction to input).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FramingError {
    /// An entry's data differs from its declared size.
    #[error("tar entry {path} declared {declared} bytes and got {written}")]
    Size {
        path: String,
        declared: u64,
        written: u64,
    },
    /// An entry was begun, a file written or the archive ended with an entry still open.
    #[error("tar entry {path} is still open")]
    Open { path: String },
    /// Data or an entry end without an open entry.
    #[error("no tar entry is open")]
    NotOpen,
}

impl Framer {
    /// A framer with no entry open.
    pub fn new() -> Self {
        Framer::default()
    }

    fn check_closed(&self) -> Result<(), FramingError> {
        match &self.open {
            Some((path, ..)) => Err(FramingError::Open { path: path.clone() }),
            None => Ok(()),
        }
    }

    /// The bytes of a whole small entry (header, data, padding).
    pub fn file(&mut self, path: &str, data: &[u8], mode: u32) -> Result<Vec<u8>, FramingError> {
        self.check_closed()?;
        let mut out = Vec::with_capacity(BLOCK + data.len() + BLOCK);
        write_file(&mut out, path, data, mode, 0);
        Ok(out)
    }

    /// The header bytes of an entry of `size` bytes whose data the host writes next,
    /// reporting it with [`Framer::data`], then [`Framer::end_entry`].
    pub fn begin(&mut self, path: &str, size: u64, mode: u32) -> Result<Vec<u8>, FramingError> {
        self.check_closed()?;
        let mut out = Vec::with_capacity(BLOCK);
        write_header(&mut out, path, size, mode, 0);
        self.open = Some((path.to_string(), size, 0));
        Ok(out)
    }

    /// Counts `n` data bytes of the open entry.
    pub fn data(&mut self, n: usize) -> Result<(), FramingError> {
        let (path, size, seen) = self.open.as_mut().ok_or(FramingError::NotOpen)?;
        *seen += n as u64;
        if *seen > *size {
            return Err(FramingError::Size {
                path: path.clone(),
                declared: *size,
                written: *seen,
            });
        }
        Ok(())
    }

    /// The padding that closes the open entry; refuses an entry whose data fell short.
    pub fn end_entry(&mut self) -> Result<Vec<u8>, FramingError> {
        let (path, size, seen) = self.open.take().ok_or(FramingError::NotOpen)?;
        if seen != size {
            return Err(FramingError::Size {
                path,
                declared: size,
                written: seen,
            });
        }
        Ok(vec![0u8; padding(size)])
    }

    /// The end-of-archive marker.
    pub fn finish(self) -> Result<Vec<u8>, FramingError> {
        self.check_closed()?;
        let mut out = Vec::with_capacity(2 * BLOCK);
        write_end(&mut out);
        Ok(out)
    }

    /// Bytes an entry of `size` bytes at `path` takes in the archive (headers, data, padding).
    pub fn entry_len(path: &str, size: u64) -> u64 {
        header_len(path, size) + size + padding(size) as u64
    }

    /// Bytes of the end-of-archive marker.
    pub const END_LEN: u64 = 2 * BLOCK as u64;
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_framer_writes_what_the_reader_reads_and_refuses_lying_sizes() {
        let mut f = Framer::new();
        let mut out = f.file("a", b"small", 0o644).unwrap();
        out.extend(f.begin("blobs/sha256/x", 700, 0o644).unwrap());
        // Begin again, or write a file, or end the archive while an entry is open: refused.
        assert!(matches!(
            f.file("b", b"", 0o644),
            Err(FramingError::Open { .. })
        ));
        f.data(300).unwrap();
        out.extend(vec![7u8; 300]);
        f.data(400).unwrap();
        out.extend(vec![7u8; 400]);
        assert!(f.data(1).is_err(), "more than declared");
        let mut f2 = Framer::new();
        f2.begin("short", 10, 0o644).unwrap();
        f2.data(9).unwrap();
        assert!(matches!(
            f2.end_entry(),
            Err(FramingError::Size { written: 9, .. })
        ));
        // A fresh framer for the rest (the over-long entry above was refused).
        let mut f = Framer {
            open: Some(("blobs/sha256/x".into(), 700, 700)),
        };
        out.extend(f.end_entry().unwrap());
        assert!(matches!(f.end_entry(), Err(FramingError::NotOpen)));
        let len = out.len() as u64;
        assert_eq!(
            len,
            Framer::entry_len("a", 5) + Framer::entry_len("blobs/sha256/x", 700)
        );
        out.extend(f.finish().unwrap());
        assert_eq!(out.len() as u64, len + Framer::END_LEN);
        let entries = read_all(&out, 97).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].1, b"small");
        assert_eq!(entries[1].0.path, "blobs/sha256/x");
        assert_eq!(entries[1].1, vec![7u8; 700]);
    }

    fn read_all(data: &[u8], chunk: usize) -> Result<Vec<(Entry, Vec<u8>)>, TarError> {
        let mut r = TarReader::new();
        let mut out: Vec<(Entry, Vec<u8>)> = Vec::new();
        for piece in data.chunks(chunk.max(1)) {
            let mut p = piece;
            loop {
                let (n, ev) = r.feed(p)?;
                p = &p[n..];
                match ev {
                    Some(TarEvent::Header(e)) => out.push((e, Vec::new())),
                    Some(TarEvent::Data(d)) => out.last_mut().unwrap().1.extend_from_slice(d),
                    Some(_) => {}
                    None if n == 0 => break,
                    None => {}
                }
            }
        }
        // Drain pending EntryEnd/End events.
        loop {
            let (_, ev) = r.feed(&[])?;
            if ev.is_none() {
                break;
            }
        }
        r.finish()?;
        Ok(out)
    }

    #[test]
    fn round_trip_small_long_and_big_headers() {
        let mut t = Vec::new();
        write_file(&mut t, "a.txt", b"hello", 0o644, 7);
        let long = format!("blobs/sha512/{}", "f".repeat(128));
        write_file(&mut t, &long, b"x", 0o644, 7);
        write_file(&mut t, "empty", b"", 0o600, 7);
        write_end(&mut t);
        for chunk in [1, 7, 512, 65536] {
            let entries = read_all(&t, chunk).unwrap();
            assert_eq!(entries.len(), 3);
            assert_eq!(entries[0].0.path, "a.txt");
            assert_eq!(entries[0].1, b"hello");
            assert_eq!(entries[0].0.mtime, 7);
            assert_eq!(entries[1].0.path, long);
            assert_eq!(entries[1].0.header_offset, 1024);
            assert_eq!(entries[2].0.size, 0);
            assert_eq!(entries[2].0.mode, 0o600);
        }
    }

    #[test]
    fn huge_size_uses_pax() {
        let mut h = Vec::new();
        let size = 9 * 1024 * 1024 * 1024u64; // 9 GiB > 8 GiB ustar limit
        write_header(&mut h, "blobs/sha256/x", size, 0o644, 0);
        let mut r = TarReader::new();
        let mut p = &h[..];
        let mut got = None;
        while !p.is_empty() {
            let (n, ev) = r.feed(p).unwrap();
            p = &p[n..];
            if let Some(TarEvent::Header(e)) = ev {
                got = Some(e);
            }
        }
        let e = got.unwrap();
        assert_eq!(e.size, size);
        assert_eq!(e.header_offset, 0);
        assert_eq!(e.data_offset, h.len() as u64);
        assert_eq!(header_len("blobs/sha256/x", size), h.len() as u64);
    }

    #[test]
    fn reads_gnu_base256_and_python_tarfile_output() {
        // A header with a base-256 size field as GNU tar writes for >8 GiB.
        let mut b = ustar_block("big", 0, 0o644, 0, b'0');
        b[124] = 0x80;
        b[124..136].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x00]);
        let mut sum: u64 = 0;
        for (i, &x) in b.iter().enumerate() {
            sum += if (148..156).contains(&i) {
                32
            } else {
                u64::from(x)
            };
        }
        b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let mut r = TarReader::new();
        let (_, ev) = r.feed(&b).unwrap();
        match ev {
            Some(TarEvent::Header(e)) => assert_eq!(e.size, 512),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn errors_name_the_offset() {
        let mut t = Vec::new();
        write_file(&mut t, "a", b"hello", 0o644, 0);
        write_end(&mut t);
        // Truncated inside data.
        let err = read_all(&t[..515], 512).unwrap_err();
        assert_eq!(
            err,
            TarError::Truncated {
                offset: 515,
                context: "inside an entry's data"
            }
        );
        // Flipped header byte.
        let mut bad = t.clone();
        bad[3] ^= 1;
        assert_eq!(
            read_all(&bad, 7).unwrap_err(),
            TarError::Checksum { offset: 0 }
        );
        // Missing end marker.
        assert!(matches!(
            read_all(&t[..1024], 100).unwrap_err(),
            TarError::Truncated { offset: 1024, .. }
        ));
        // Junk after the end.
        let mut junk = t.clone();
        junk.extend_from_slice(&[1u8; 512]);
        assert_eq!(
            read_all(&junk, 512).unwrap_err(),
            TarError::TrailingData { offset: 2048 }
        );
        // Trailing zero padding (as tarfile writes to fill a record) is fine.
        let mut padded = t.clone();
        padded.extend_from_slice(&[0u8; 8192]);
        assert_eq!(read_all(&padded, 4096).unwrap().len(), 1);
        // Oversized PAX header.
        let mut pax = ustar_block("p", MAX_EXTENSION_BYTES + 1, 0o644, 0, b'x').to_vec();
        pax.extend_from_slice(&[0u8; 1024]);
        assert!(matches!(
            read_all(&pax, 512).unwrap_err(),
            TarError::ExtensionTooLarge { offset: 0, .. }
        ));
    }
}
