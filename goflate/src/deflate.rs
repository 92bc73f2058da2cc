//! Port of `compress/flate/deflate.go`: the compressor (`compressor` and `Writer`).

use crate::deflatefast::{common_prefix, DeflateFast};
use crate::huffman_bit_writer::{HuffmanBitWriter, MAX_STORE_BLOCK_SIZE};
use crate::token::{literal_token, match_token, Token};
use crate::LevelError;

/// `NoCompression`
pub const NO_COMPRESSION: i32 = 0;
/// `BestSpeed`
pub const BEST_SPEED: i32 = 1;
/// `BestCompression`
pub const BEST_COMPRESSION: i32 = 9;
/// `DefaultCompression` (level 6)
pub const DEFAULT_COMPRESSION: i32 = -1;
/// `HuffmanOnly`: no match search, only Huffman entropy coding.
pub const HUFFMAN_ONLY: i32 = -2;

const LOG_WINDOW_SIZE: u32 = 15;
const WINDOW_SIZE: usize = 1 << LOG_WINDOW_SIZE;
const WINDOW_MASK: usize = WINDOW_SIZE - 1;

const BASE_MATCH_LENGTH: usize = 3; // The smallest match length per the RFC section 3.2.5
const MIN_MATCH_LENGTH: usize = 4; // The smallest match length that the compressor emits
const MAX_MATCH_LENGTH: usize = 258; // The largest match length
const BASE_MATCH_OFFSET: usize = 1; // The smallest match offset

/// The maximum number of tokens we put into a single flate block.
const MAX_FLATE_BLOCK_TOKENS: usize = 1 << 14;
const HASH_BITS: u32 = 17; // After 17 performance degrades
const HASH_SIZE: usize = 1 << HASH_BITS;
const HASH_MASK: u32 = (1 << HASH_BITS) - 1;
const MAX_HASH_OFFSET: isize = 1 << 24;

const SKIP_NEVER: usize = i32::MAX as usize;

/// `compressionLevel`
#[derive(Clone, Copy)]
struct CompressionLevel {
    level: i32,
    good: usize,
    lazy: usize,
    nice: usize,
    chain: usize,
    fast_skip_hashing: usize,
}

const fn lv(
    level: i32,
    good: usize,
    lazy: usize,
    nice: usize,
    chain: usize,
    fast_skip_hashing: usize,
) -> CompressionLevel {
    CompressionLevel {
        level,
        good,
        lazy,
        nice,
        chain,
        fast_skip_hashing,
    }
}

/// `levels`
static LEVELS: [CompressionLevel; 10] = [
    lv(0, 0, 0, 0, 0, 0), // NoCompression.
    lv(1, 0, 0, 0, 0, 0), // BestSpeed uses a custom algorithm; see deflatefast.rs.
    // For levels 2-3 we don't bother trying with lazy matches.
    lv(2, 4, 0, 16, 8, 5),
    lv(3, 4, 0, 32, 32, 6),
    // Levels 4-9 use increasingly more lazy matching
    // and increasingly stringent conditions for "good enough".
    lv(4, 4, 4, 16, 16, SKIP_NEVER),
    lv(5, 8, 16, 32, 32, SKIP_NEVER),
    lv(6, 8, 16, 128, 128, SKIP_NEVER),
    lv(7, 8, 32, 128, 256, SKIP_NEVER),
    lv(8, 32, 128, 258, 1024, SKIP_NEVER),
    lv(9, 32, 258, 258, 4096, SKIP_NEVER),
];

/// Go's `fill`/`step` function pair, chosen by level in `init`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// NoCompression: fillStore + store
    Store,
    /// HuffmanOnly: fillStore + storeHuff
    Huff,
    /// BestSpeed: fillStore + encSpeed
    Speed,
    /// 2..=9: fillDeflate + deflate
    Deflate,
}

/// Go's `flate.Writer`: a raw DEFLATE (RFC 1951) compressor producing exactly Go's bytes.
///
/// Push-style: [`Deflater::write`] and [`Deflater::close`] append compressed bytes to a
/// caller-owned buffer.
pub struct Deflater {
    cl: CompressionLevel,
    mode: Mode,
    w: HuffmanBitWriter,

    sync: bool,                      // requesting flush
    best_speed: Option<DeflateFast>, // Encoder for BestSpeed

    // Input hash chains: hashHead[hashValue] contains the largest inputIndex with the
    // specified hash value; hashPrev[hashHead[hashValue] & windowMask] the previous index
    // with the same hash value.
    chain_head: isize,
    hash_head: Vec<u32>,
    hash_prev: Vec<u32>,
    hash_offset: isize,

    // input window: unprocessed data is window[index:windowEnd]
    index: usize,
    window: Vec<u8>,
    window_end: usize,
    block_start: isize,   // window index where current tokens start
    byte_available: bool, // if true, still need to process window[index-1].

    // queued output tokens
    tokens: Vec<Token>,

    // deflate state
    length: usize,
    offset: usize,
    max_insert_index: isize,
    closed: bool,
}

/// `hashmul`
const HASHMUL: u32 = 0x1e35a7bd;

/// `hash4`: a hash of the first 4 bytes of `b`.
#[inline(always)]
fn hash4(b: &[u8]) -> u32 {
    (u32::from_be_bytes([b[0], b[1], b[2], b[3]]).wrapping_mul(HASHMUL)) >> (32 - HASH_BITS)
}

impl Deflater {
    /// `NewWriter(w, level)`: levels -2 (HuffmanOnly) to 9; -1 is 6.
    pub fn new(level: i32) -> Result<Self, LevelError> {
        let mut d = Deflater {
            cl: LEVELS[0],
            mode: Mode::Store,
            w: HuffmanBitWriter::new(),
            sync: false,
            best_speed: None,
            chain_head: 0,
            hash_head: Vec::new(),
            hash_prev: Vec::new(),
            hash_offset: 0,
            index: 0,
            window: Vec::new(),
            window_end: 0,
            block_start: 0,
            byte_available: false,
            tokens: Vec::new(),
            length: 0,
            offset: 0,
            max_insert_index: 0,
            closed: false,
        };
        match level {
            NO_COMPRESSION => {
                d.window = vec![0; MAX_STORE_BLOCK_SIZE];
                d.mode = Mode::Store;
            }
            HUFFMAN_ONLY => {
                d.window = vec![0; MAX_STORE_BLOCK_SIZE];
                d.mode = Mode::Huff;
            }
            BEST_SPEED => {
                d.cl = LEVELS[1];
                d.window = vec![0; MAX_STORE_BLOCK_SIZE];
                d.mode = Mode::Speed;
                d.best_speed = Some(DeflateFast::new());
                d.tokens = Vec::with_capacity(MAX_STORE_BLOCK_SIZE);
            }
            DEFAULT_COMPRESSION | 2..=9 => {
                let level = if level == DEFAULT_COMPRESSION {
                    6
                } else {
                    level
                };
                d.cl = LEVELS[level as usize];
                d.init_deflate();
                d.mode = Mode::Deflate;
            }
            _ => return Err(LevelError { level }),
        }
        Ok(d)
    }

    /// The level in Go's terms after `DefaultCompression` is resolved (0 for HuffmanOnly).
    pub fn level(&self) -> i32 {
        self.cl.level
    }

    /// `initDeflate`
    fn init_deflate(&mut self) {
        self.window = vec![0; 2 * WINDOW_SIZE];
        self.hash_head = vec![0; HASH_SIZE];
        self.hash_prev = vec![0; WINDOW_SIZE];
        self.hash_offset = 1;
        self.tokens = Vec::with_capacity(MAX_FLATE_BLOCK_TOKENS + 1);
        self.length = MIN_MATCH_LENGTH - 1;
        self.offset = 0;
        self.byte_available = false;
        self.index = 0;
        self.chain_head = -1;
    }

    /// `fill`
    fn fill(&mut self, b: &[u8]) -> usize {
        match self.mode {
            Mode::Deflate => self.fill_deflate(b),
            _ => self.fill_store(b),
        }
    }

    /// `step`
    fn step(&mut self) {
        match self.mode {
            Mode::Store => self.store(),
            Mode::Huff => self.store_huff(),
            Mode::Speed => self.enc_speed(),
            Mode::Deflate => self.deflate(),
        }
    }

    /// `fillDeflate`
    fn fill_deflate(&mut self, b: &[u8]) -> usize {
        if self.index >= 2 * WINDOW_SIZE - (MIN_MATCH_LENGTH + MAX_MATCH_LENGTH) {
            // shift the window by windowSize
            self.window.copy_within(WINDOW_SIZE..2 * WINDOW_SIZE, 0);
            self.index -= WINDOW_SIZE;
            self.window_end -= WINDOW_SIZE;
            if self.block_start >= WINDOW_SIZE as isize {
                self.block_start -= WINDOW_SIZE as isize;
            } else {
                self.block_start = i32::MAX as isize;
            }
            self.hash_offset += WINDOW_SIZE as isize;
            if self.hash_offset > MAX_HASH_OFFSET {
                let delta = self.hash_offset - 1;
                self.hash_offset -= delta;
                self.chain_head -= delta;
                for v in self.hash_prev.iter_mut().chain(self.hash_head.iter_mut()) {
                    if *v as isize > delta {
                        *v = (*v as isize - delta) as u32;
                    } else {
                        *v = 0;
                    }
                }
            }
        }
        self.fill_store(b)
    }

    /// `fillStore` (also the copy at the end of `fillDeflate`)
    fn fill_store(&mut self, b: &[u8]) -> usize {
        let n = (self.window.len() - self.window_end).min(b.len());
        self.window[self.window_end..self.window_end + n].copy_from_slice(&b[..n]);
        self.window_end += n;
        n
    }

    /// `writeBlock` (compressor): the tokens so far, with `window[blockStart:index]` as the
    /// stored alternative when it is still in the window.
    fn write_block(&mut self, index: usize) {
        if index > 0 {
            let window = if self.block_start <= index as isize {
                Some(&self.window[self.block_start as usize..index])
            } else {
                None
            };
            self.block_start = index as isize;
            self.w.write_block(&self.tokens, false, window);
        }
    }

    /// `findMatch`: try to find a match starting at `pos` longer than `prev_length`, looking
    /// at `chain` candidates at most.
    fn find_match(
        &self,
        pos: usize,
        prev_head: isize,
        prev_length: usize,
        lookahead: usize,
    ) -> Option<(usize, usize)> {
        let min_match_look = MAX_MATCH_LENGTH.min(lookahead);

        let win = &self.window[0..pos + min_match_look];

        // We quit when we get a match that's at least nice long
        let nice = (win.len() - pos).min(self.cl.nice);

        // If we've got a match that's good enough, only look in 1/4 the chain.
        let mut tries = self.cl.chain;
        let mut length = prev_length;
        if length >= self.cl.good {
            tries >>= 2;
        }

        let mut w_end = win[pos + length];
        let w_pos = &win[pos..];
        let min_index = pos as isize - WINDOW_SIZE as isize;
        let mut found = None;

        let mut i = prev_head;
        while tries > 0 {
            let iu = i as usize;
            if w_end == win[iu + length] {
                let n = common_prefix(&win[iu..iu + min_match_look], w_pos);
                if n > length && (n > MIN_MATCH_LENGTH || pos - iu <= 4096) {
                    length = n;
                    found = Some((n, pos - iu));
                    if n >= nice {
                        // The match is good enough that we don't try to find a better one.
                        break;
                    }
                    w_end = win[pos + n];
                }
            }
            if i == min_index {
                // hashPrev[i & windowMask] has already been overwritten, so stop now.
                break;
            }
            i = self.hash_prev[iu & WINDOW_MASK] as isize - self.hash_offset;
            if i < min_index || i < 0 {
                break;
            }
            tries -= 1;
        }
        found
    }

    /// `encSpeed`: compress and store the buffered data once 65535 bytes are buffered or
    /// at the end of the stream (BestSpeed).
    fn enc_speed(&mut self) {
        // We only compress if we have maxStoreBlockSize.
        if self.window_end < MAX_STORE_BLOCK_SIZE {
            if !self.sync {
                return;
            }
            // Handle small sizes.
            if self.window_end < 128 {
                match self.window_end {
                    0 => return,
                    1..=16 => self.w.write_stored_block(&self.window[..self.window_end]),
                    _ => self
                        .w
                        .write_block_huff(false, &self.window[..self.window_end]),
                }
                self.window_end = 0;
                if let Some(bs) = self.best_speed.as_mut() {
                    bs.reset();
                }
                return;
            }
        }
        // Encode the block.
        self.tokens.clear();
        if let Some(bs) = self.best_speed.as_mut() {
            bs.encode(&mut self.tokens, &self.window[..self.window_end]);
        }

        // If we removed less than 1/16th, Huffman compress the block.
        if self.tokens.len() > self.window_end - (self.window_end >> 4) {
            self.w
                .write_block_huff(false, &self.window[..self.window_end]);
        } else {
            self.w
                .write_block_dynamic(&self.tokens, false, Some(&self.window[..self.window_end]));
        }
        self.window_end = 0;
    }

    /// `deflate`: the lazy-matching LZ77 loop of levels 2..=9.
    fn deflate(&mut self) {
        if self.window_end - self.index < MIN_MATCH_LENGTH + MAX_MATCH_LENGTH && !self.sync {
            return;
        }

        self.max_insert_index = self.window_end as isize - (MIN_MATCH_LENGTH as isize - 1);
        let fast_skip_hashing = self.cl.fast_skip_hashing;
        let skip_never = fast_skip_hashing == SKIP_NEVER;

        loop {
            assert!(self.index <= self.window_end, "index > windowEnd");
            let lookahead = self.window_end - self.index;
            if lookahead < MIN_MATCH_LENGTH + MAX_MATCH_LENGTH {
                if !self.sync {
                    break;
                }
                if lookahead == 0 {
                    // Flush current output block if any.
                    if self.byte_available {
                        // There is still one pending token that needs to be flushed
                        self.tokens
                            .push(literal_token(u32::from(self.window[self.index - 1])));
                        self.byte_available = false;
                    }
                    if !self.tokens.is_empty() {
                        self.write_block(self.index);
                        self.tokens.clear();
                    }
                    break;
                }
            }
            if (self.index as isize) < self.max_insert_index {
                // Update the hash
                let hash = hash4(&self.window[self.index..self.index + MIN_MATCH_LENGTH]);
                let hh = &mut self.hash_head[(hash & HASH_MASK) as usize];
                self.chain_head = *hh as isize;
                self.hash_prev[self.index & WINDOW_MASK] = self.chain_head as u32;
                *hh = (self.index as isize + self.hash_offset) as u32;
            }
            let prev_length = self.length;
            let prev_offset = self.offset;
            self.length = MIN_MATCH_LENGTH - 1;
            self.offset = 0;
            let min_index = (self.index as isize - WINDOW_SIZE as isize).max(0);

            if self.chain_head - self.hash_offset >= min_index
                && (!skip_never && lookahead > MIN_MATCH_LENGTH - 1
                    || skip_never && lookahead > prev_length && prev_length < self.cl.lazy)
            {
                if let Some((new_length, new_offset)) = self.find_match(
                    self.index,
                    self.chain_head - self.hash_offset,
                    MIN_MATCH_LENGTH - 1,
                    lookahead,
                ) {
                    self.length = new_length;
                    self.offset = new_offset;
                }
            }
            if !skip_never && self.length >= MIN_MATCH_LENGTH
                || skip_never && prev_length >= MIN_MATCH_LENGTH && self.length <= prev_length
            {
                // There was a match at the previous step, and the current match is not
                // better. Output the previous match.
                if !skip_never {
                    self.tokens.push(match_token(
                        (self.length - BASE_MATCH_LENGTH) as u32,
                        (self.offset - BASE_MATCH_OFFSET) as u32,
                    ));
                } else {
                    self.tokens.push(match_token(
                        (prev_length - BASE_MATCH_LENGTH) as u32,
                        (prev_offset - BASE_MATCH_OFFSET) as u32,
                    ));
                }
                // Insert in the hash table all strings up to the end of the match. index and
                // index-1 are already inserted. If there is not enough lookahead, the last
                // two strings are not inserted into the hash table.
                if self.length <= fast_skip_hashing {
                    let new_index = if !skip_never {
                        self.index + self.length
                    } else {
                        self.index + prev_length - 1
                    };
                    let mut index = self.index + 1;
                    while index < new_index {
                        if (index as isize) < self.max_insert_index {
                            let hash = hash4(&self.window[index..index + MIN_MATCH_LENGTH]);
                            // Our chain should point to the previous value.
                            let hh = &mut self.hash_head[(hash & HASH_MASK) as usize];
                            self.hash_prev[index & WINDOW_MASK] = *hh;
                            // Set the head of the hash chain to us.
                            *hh = (index as isize + self.hash_offset) as u32;
                        }
                        index += 1;
                    }
                    self.index = index;

                    if skip_never {
                        self.byte_available = false;
                        self.length = MIN_MATCH_LENGTH - 1;
                    }
                } else {
                    // For matches this long, we don't bother inserting each individual item
                    // into the table.
                    self.index += self.length;
                }
                if self.tokens.len() == MAX_FLATE_BLOCK_TOKENS {
                    // The block includes the current character
                    self.write_block(self.index);
                    self.tokens.clear();
                }
            } else {
                if !skip_never || self.byte_available {
                    let i = if !skip_never {
                        self.index
                    } else {
                        self.index - 1
                    };
                    self.tokens.push(literal_token(u32::from(self.window[i])));
                    if self.tokens.len() == MAX_FLATE_BLOCK_TOKENS {
                        self.write_block(i + 1);
                        self.tokens.clear();
                    }
                }
                self.index += 1;
                if skip_never {
                    self.byte_available = true;
                }
            }
        }
    }

    /// `store` (NoCompression)
    fn store(&mut self) {
        if self.window_end > 0 && (self.window_end == MAX_STORE_BLOCK_SIZE || self.sync) {
            self.w.write_stored_block(&self.window[..self.window_end]);
            self.window_end = 0;
        }
    }

    /// `storeHuff` (HuffmanOnly): when the window is full or at the end of the stream.
    fn store_huff(&mut self) {
        if self.window_end < self.window.len() && !self.sync || self.window_end == 0 {
            return;
        }
        self.w
            .write_block_huff(false, &self.window[..self.window_end]);
        self.window_end = 0;
    }

    /// `Write`: compress `b`, appending output to `out`. Output does not depend on how the
    /// input is split into calls (as in Go).
    pub fn write(&mut self, b: &[u8], out: &mut Vec<u8>) {
        // A Vec sink cannot fail.
        let _ = self.write_to(b, out);
    }

    /// Like [`Deflater::write`], handing output to `sink` after every step (bounded memory).
    pub fn write_to<W: std::io::Write + ?Sized>(
        &mut self,
        mut b: &[u8],
        sink: &mut W,
    ) -> std::io::Result<()> {
        assert!(!self.closed, "goflate: write after close");
        while !b.is_empty() {
            self.step();
            self.drain(sink)?;
            let n = self.fill(b);
            b = &b[n..];
        }
        Ok(())
    }

    fn drain<W: std::io::Write + ?Sized>(&mut self, sink: &mut W) -> std::io::Result<()> {
        if !self.w.out.is_empty() {
            let r = sink.write_all(&self.w.out);
            self.w.out.clear();
            r?;
        }
        Ok(())
    }

    /// `Close`: flush everything and write the final (empty, stored) block. Calling it
    /// again writes nothing.
    pub fn close(&mut self, out: &mut Vec<u8>) {
        // A Vec sink cannot fail.
        let _ = self.close_to(out);
    }

    /// Like [`Deflater::close`], into `sink`.
    pub fn close_to<W: std::io::Write + ?Sized>(&mut self, sink: &mut W) -> std::io::Result<()> {
        if self.closed {
            return Ok(());
        }
        self.closed = true;
        self.sync = true;
        self.step();
        self.drain(sink)?;
        self.w.write_stored_header(0, true);
        self.w.flush();
        self.drain(sink)
    }
}
