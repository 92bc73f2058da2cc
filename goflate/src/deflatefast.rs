//! Port of `compress/flate/deflatefast.go`: the BestSpeed (level 1) encoder, based on
//! Snappy's LZ77 matcher, with matches reaching into the previous block.

use crate::huffman_bit_writer::MAX_STORE_BLOCK_SIZE;
use crate::token::{literal_token, match_token, Token};

const TABLE_BITS: u32 = 14; // Bits used in the table.
const TABLE_SIZE: usize = 1 << TABLE_BITS; // Size of the table.
const TABLE_MASK: u32 = (TABLE_SIZE - 1) as u32; // Mask for table indices.
const TABLE_SHIFT: u32 = 32 - TABLE_BITS; // Right-shift to get the tableBits MSBs of a u32.

/// `maxMatchOffset` (deflate.go)
const MAX_MATCH_OFFSET: i32 = 1 << 15;
/// `maxMatchLength` (deflate.go)
const MAX_MATCH_LENGTH: usize = 258;
const BASE_MATCH_LENGTH: i32 = 3;
const BASE_MATCH_OFFSET: i32 = 1;

/// Reset the buffer offset when reaching this (offsets are stored as i32).
const BUFFER_RESET: i32 = i32::MAX - MAX_STORE_BLOCK_SIZE as i32 * 2;

const INPUT_MARGIN: usize = 16 - 1;
const MIN_NON_LITERAL_BLOCK_SIZE: usize = 1 + 1 + INPUT_MARGIN;

#[inline(always)]
fn load32(b: &[u8], i: i32) -> u32 {
    let i = i as usize;
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

#[inline(always)]
fn load64(b: &[u8], i: i32) -> u64 {
    let i = i as usize;
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

#[inline(always)]
fn hash(u: u32) -> u32 {
    u.wrapping_mul(0x1e35a7bd) >> TABLE_SHIFT
}

#[derive(Clone, Copy, Default)]
struct TableEntry {
    val: u32, // Value at destination
    offset: i32,
}

/// `deflateFast`: the table for matches, and the previous block for cross-block matching.
pub(crate) struct DeflateFast {
    table: Vec<TableEntry>,
    prev: Vec<u8>, // Previous block, zero length if unknown.
    cur: i32,      // Current match offset.
}

/// `emitLiteral`
fn emit_literal(dst: &mut Vec<Token>, lit: &[u8]) {
    dst.extend(lit.iter().map(|&v| literal_token(u32::from(v))));
}

impl DeflateFast {
    /// `newDeflateFast`
    pub(crate) fn new() -> Self {
        DeflateFast {
            table: vec![TableEntry::default(); TABLE_SIZE],
            prev: Vec::with_capacity(MAX_STORE_BLOCK_SIZE),
            cur: MAX_STORE_BLOCK_SIZE as i32,
        }
    }

    /// `encode`: append the tokens of `src` to `dst`.
    pub(crate) fn encode(&mut self, dst: &mut Vec<Token>, src: &[u8]) {
        // Ensure that e.cur doesn't wrap.
        if self.cur >= BUFFER_RESET {
            self.shift_offsets();
        }

        // This check isn't in the Snappy implementation, but there, the caller instead of
        // the callee handles this case.
        if src.len() < MIN_NON_LITERAL_BLOCK_SIZE {
            self.cur += MAX_STORE_BLOCK_SIZE as i32;
            self.prev.clear();
            emit_literal(dst, src);
            return;
        }

        // sLimit is when to stop looking for offset/length copies.
        let s_limit = (src.len() - INPUT_MARGIN) as i32;

        // nextEmit is where in src the next emitLiteral should start from.
        let mut next_emit: i32 = 0;
        let mut s: i32 = 0;
        let mut cv = load32(src, s);
        let mut next_hash = hash(cv);

        'outer: loop {
            // Heuristic match skipping (see Go/Snappy): after 32 bytes without a match,
            // look at every other byte, after 32 more at every third, etc.
            let mut skip: i32 = 32;

            let mut next_s = s;
            let mut candidate;
            loop {
                s = next_s;
                let bytes_between_hash_lookups = skip >> 5;
                next_s = s + bytes_between_hash_lookups;
                skip += bytes_between_hash_lookups;
                if next_s > s_limit {
                    break 'outer;
                }
                candidate = self.table[(next_hash & TABLE_MASK) as usize];
                let now = load32(src, next_s);
                self.table[(next_hash & TABLE_MASK) as usize] = TableEntry {
                    offset: s + self.cur,
                    val: cv,
                };
                next_hash = hash(now);

                let offset = s - (candidate.offset - self.cur);
                if offset > MAX_MATCH_OFFSET || cv != candidate.val {
                    // Out of range or not matched.
                    cv = now;
                    continue;
                }
                break;
            }

            // A 4-byte match has been found. src[nextEmit:s] are unmatched: emit them as
            // literal bytes.
            emit_literal(dst, &src[next_emit as usize..s as usize]);

            // Call emitCopy, and then see if another emitCopy could be our next move.
            loop {
                // Invariant: we have a 4-byte match at s.
                // Extend the 4-byte match as long as possible.
                s += 4;
                let t = candidate.offset - self.cur + 4;
                let l = self.match_len(s, t, src);

                // matchToken is flate's equivalent of Snappy's emitCopy. (length,offset)
                dst.push(match_token(
                    (l + 4 - BASE_MATCH_LENGTH) as u32,
                    (s - t - BASE_MATCH_OFFSET) as u32,
                ));
                s += l;
                next_emit = s;
                if s >= s_limit {
                    break 'outer;
                }

                // Update the hash table at s-1 and at s; if another emitCopy is not our next
                // move, also calculate nextHash at s+1.
                let mut x = load64(src, s - 1);
                let prev_hash = hash(x as u32);
                self.table[(prev_hash & TABLE_MASK) as usize] = TableEntry {
                    offset: self.cur + s - 1,
                    val: x as u32,
                };
                x >>= 8;
                let curr_hash = hash(x as u32);
                candidate = self.table[(curr_hash & TABLE_MASK) as usize];
                self.table[(curr_hash & TABLE_MASK) as usize] = TableEntry {
                    offset: self.cur + s,
                    val: x as u32,
                };

                let offset = s - (candidate.offset - self.cur);
                if offset > MAX_MATCH_OFFSET || x as u32 != candidate.val {
                    cv = (x >> 8) as u32;
                    next_hash = hash(cv);
                    s += 1;
                    break;
                }
            }
        }

        // emitRemainder:
        if (next_emit as usize) < src.len() {
            emit_literal(dst, &src[next_emit as usize..]);
        }
        self.cur += src.len() as i32;
        self.prev.clear();
        self.prev.extend_from_slice(src);
    }

    /// `matchLen`: the match length between src[s:] and src[t:]; `t` negative means the
    /// match starts in `prev`. src[s-4:s] and src[t-4:t] already match.
    fn match_len(&self, s: i32, t: i32, src: &[u8]) -> i32 {
        let s1 = (s as usize + MAX_MATCH_LENGTH - 4).min(src.len());
        let s = s as usize;

        // If we are inside the current block
        if t >= 0 {
            let t = t as usize;
            let a = &src[s..s1];
            let b = &src[t..t + a.len()];
            return common_prefix(a, b) as i32;
        }

        // We found a match in the previous block.
        let tp = self.prev.len() as i32 + t;
        if tp < 0 {
            return 0;
        }

        // Extend the match to be as long as possible.
        let mut a = &src[s..s1];
        let mut b = &self.prev[tp as usize..];
        if b.len() > a.len() {
            b = &b[..a.len()];
        }
        a = &a[..b.len()];
        let n = common_prefix(a, b);
        if n < b.len() {
            return n as i32;
        }

        // If we reached our limit, we matched everything we are allowed to in the previous
        // block and we return.
        if s + n == s1 {
            return n as i32;
        }

        // Continue looking for more matches in the current block.
        let a = &src[s + n..s1];
        let b = &src[..a.len()];
        (common_prefix(a, b) + n) as i32
    }

    /// `reset`: no matches to the previous block after this.
    pub(crate) fn reset(&mut self) {
        self.prev.clear();
        // Bump the offset, so all matches will fail distance check.
        self.cur += MAX_MATCH_OFFSET;

        // Protect against e.cur wraparound.
        if self.cur >= BUFFER_RESET {
            self.shift_offsets();
        }
    }

    /// `shiftOffsets`: shift down all match offsets (rare; prevents i32 overflow).
    fn shift_offsets(&mut self) {
        if self.prev.is_empty() {
            // We have no history; just clear the table.
            self.table.fill(TableEntry::default());
            self.cur = MAX_MATCH_OFFSET + 1;
            return;
        }

        // Shift down everything in the table that isn't already too far away.
        for e in self.table.iter_mut() {
            let mut v = e.offset - self.cur + MAX_MATCH_OFFSET + 1;
            if v < 0 {
                v = 0;
            }
            e.offset = v;
        }
        self.cur = MAX_MATCH_OFFSET + 1;
    }
}

/// The number of equal leading bytes of `a` and `b` (`len(b) >= len(a)`), 8 at a time.
#[inline(always)]
pub(crate) fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let b = &b[..a.len()];
    let mut i = 0;
    let mut ca = a.chunks_exact(8);
    let mut cb = b.chunks_exact(8);
    for (x, y) in (&mut ca).zip(&mut cb) {
        let mut xa = [0u8; 8];
        let mut ya = [0u8; 8];
        xa.copy_from_slice(x);
        ya.copy_from_slice(y);
        let d = u64::from_le_bytes(xa) ^ u64::from_le_bytes(ya);
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        if x != y {
            return i;
        }
        i += 1;
    }
    i
}
