//! Port of `compress/flate/huffman_bit_writer.go`: block encoding and the bit writer.
//!
//! Go buffers output in a 248-byte array and hands it to its `io.Writer` in pieces; the
//! byte stream is the same as appending every byte, in order, to one buffer, which is what
//! this port does (`out`). The owner drains `out` between steps.

use crate::huffman_code::{Hcode, HuffmanEncoder, MAX_NUM_LIT};
use crate::token::{self, Token, MATCH_TYPE};

/// The largest offset code.
const OFFSET_CODE_COUNT: usize = 30;
/// The special code used to mark the end of a block.
const END_BLOCK_MARKER: usize = 256;
/// The first length code.
const LENGTH_CODES_START: usize = 257;
/// The number of codegen codes.
const CODEGEN_CODE_COUNT: usize = 19;
const BAD_CODE: u8 = 255;
/// `maxStoreBlockSize` (deflate.go)
pub(crate) const MAX_STORE_BLOCK_SIZE: usize = 65535;

/// The number of extra bits needed by length code X - LENGTH_CODES_START.
static LENGTH_EXTRA_BITS: [u8; 29] = [
    /* 257 */ 0, 0, 0, /* 260 */ 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, /* 270 */ 2, 2, 2, 3,
    3, 3, 3, 4, 4, 4, /* 280 */ 4, 5, 5, 5, 5, 0,
];

/// The length indicated by length code X - LENGTH_CODES_START.
static LENGTH_BASE: [u32; 29] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128,
    160, 192, 224, 255,
];

/// Offset code word extra bits.
static OFFSET_EXTRA_BITS: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

static OFFSET_BASE: [u32; 30] = [
    0x000000, 0x000001, 0x000002, 0x000003, 0x000004, 0x000006, 0x000008, 0x00000c, 0x000010,
    0x000018, 0x000020, 0x000030, 0x000040, 0x000060, 0x000080, 0x0000c0, 0x000100, 0x000180,
    0x000200, 0x000300, 0x000400, 0x000600, 0x000800, 0x000c00, 0x001000, 0x001800, 0x002000,
    0x003000, 0x004000, 0x006000,
];

/// The odd order in which the codegen code sizes are written.
static CODEGEN_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// `huffmanBitWriter`
pub(crate) struct HuffmanBitWriter {
    /// Output not yet handed to the sink (Go: `bytes[:nbytes]` plus what it already wrote).
    pub(crate) out: Vec<u8>,
    /// The low `nbits` of `bits` wait to be written.
    bits: u64,
    nbits: u32,
    codegen_freq: [i32; CODEGEN_CODE_COUNT],
    literal_freq: Vec<i32>,
    offset_freq: Vec<i32>,
    codegen: Vec<u8>,
    literal_encoding: HuffmanEncoder,
    offset_encoding: HuffmanEncoder,
    codegen_encoding: HuffmanEncoder,
    /// Go's package-level `fixedLiteralEncoding`, `fixedOffsetEncoding`, `huffOffset`.
    fixed_literal_encoding: HuffmanEncoder,
    fixed_offset_encoding: HuffmanEncoder,
    huff_offset: HuffmanEncoder,
}

impl HuffmanBitWriter {
    /// `newHuffmanBitWriter`
    pub(crate) fn new() -> Self {
        let mut huff_offset = HuffmanEncoder::new(OFFSET_CODE_COUNT);
        let mut offset_freq = [0i32; OFFSET_CODE_COUNT];
        offset_freq[0] = 1;
        huff_offset.generate(&offset_freq, 15);
        HuffmanBitWriter {
            out: Vec::with_capacity(1 << 16),
            bits: 0,
            nbits: 0,
            codegen_freq: [0; CODEGEN_CODE_COUNT],
            literal_freq: vec![0; MAX_NUM_LIT],
            offset_freq: vec![0; OFFSET_CODE_COUNT],
            codegen: vec![0; MAX_NUM_LIT + OFFSET_CODE_COUNT + 1],
            literal_encoding: HuffmanEncoder::new(MAX_NUM_LIT),
            offset_encoding: HuffmanEncoder::new(OFFSET_CODE_COUNT),
            codegen_encoding: HuffmanEncoder::new(CODEGEN_CODE_COUNT),
            fixed_literal_encoding: HuffmanEncoder::fixed_literal(),
            fixed_offset_encoding: HuffmanEncoder::fixed_offset(),
            huff_offset,
        }
    }

    /// `flush`: write out the pending bits, padding the last byte.
    pub(crate) fn flush(&mut self) {
        while self.nbits != 0 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits = self.nbits.saturating_sub(8);
        }
        self.bits = 0;
    }

    /// Go's writeBits/writeCode tail: once 48 bits are pending, emit 6 bytes.
    #[inline(always)]
    fn spill(&mut self) {
        if self.nbits >= 48 {
            let bits = self.bits;
            self.bits >>= 48;
            self.nbits -= 48;
            self.out.extend_from_slice(&bits.to_le_bytes()[..6]);
        }
    }

    /// `writeBits`
    #[inline(always)]
    fn write_bits(&mut self, b: u32, nb: u32) {
        self.bits |= u64::from(b) << self.nbits;
        self.nbits += nb;
        self.spill();
    }

    /// `writeCode`
    #[inline(always)]
    fn write_code(&mut self, c: Hcode) {
        self.bits |= u64::from(c.code) << self.nbits;
        self.nbits += u32::from(c.len);
        self.spill();
    }

    /// `writeBytes`: only called right after `writeStoredHeader`, on a byte boundary.
    fn write_bytes(&mut self, bytes: &[u8]) {
        debug_assert!(
            self.nbits & 7 == 0,
            "writeBytes with unfinished bits (Go: InternalError)"
        );
        while self.nbits != 0 {
            self.out.push(self.bits as u8);
            self.bits >>= 8;
            self.nbits -= 8;
        }
        self.out.extend_from_slice(bytes);
    }

    /// `generateCodegen`: the RFC 1951 3.2.7 run-length encoding of the code lengths, into
    /// `self.codegen` (terminated by `BAD_CODE`), with frequencies in `self.codegen_freq`.
    /// `off_huff` selects Go's `huffOffset` instead of `offsetEncoding` as the offset code.
    fn generate_codegen(&mut self, num_literals: usize, num_offsets: usize, off_huff: bool) {
        self.codegen_freq = [0; CODEGEN_CODE_COUNT];
        // codegen is both a copy of the code sizes and, in place, the result: the output is
        // always shorter than the input used so far.
        let codegen = &mut self.codegen;
        for i in 0..num_literals {
            codegen[i] = self.literal_encoding.codes[i].len as u8;
        }
        let off_enc = if off_huff {
            &self.huff_offset
        } else {
            &self.offset_encoding
        };
        for i in 0..num_offsets {
            codegen[num_literals + i] = off_enc.codes[i].len as u8;
        }
        codegen[num_literals + num_offsets] = BAD_CODE;

        let freq = &mut self.codegen_freq;
        let mut size = codegen[0];
        let mut count: isize = 1;
        let mut out_index = 0usize;
        let mut in_index = 1usize;
        while size != BAD_CODE {
            // INVARIANT: We have seen "count" copies of size that have not yet had output
            // generated for them.
            let next_size = codegen[in_index];
            in_index += 1;
            if next_size == size {
                count += 1;
                continue;
            }
            // We need to generate codegen indicating "count" of size.
            if size != 0 {
                codegen[out_index] = size;
                out_index += 1;
                freq[usize::from(size)] += 1;
                count -= 1;
                while count >= 3 {
                    let n = count.min(6);
                    codegen[out_index] = 16;
                    out_index += 1;
                    codegen[out_index] = (n - 3) as u8;
                    out_index += 1;
                    freq[16] += 1;
                    count -= n;
                }
            } else {
                while count >= 11 {
                    let n = count.min(138);
                    codegen[out_index] = 18;
                    out_index += 1;
                    codegen[out_index] = (n - 11) as u8;
                    out_index += 1;
                    freq[18] += 1;
                    count -= n;
                }
                if count >= 3 {
                    // count >= 3 && count <= 10
                    codegen[out_index] = 17;
                    out_index += 1;
                    codegen[out_index] = (count - 3) as u8;
                    out_index += 1;
                    freq[17] += 1;
                    count = 0;
                }
            }
            count -= 1;
            while count >= 0 {
                codegen[out_index] = size;
                out_index += 1;
                freq[usize::from(size)] += 1;
                count -= 1;
            }
            // Set up invariant for next time through the loop.
            size = next_size;
            count = 1;
        }
        // Marker indicating the end of the codegen.
        codegen[out_index] = BAD_CODE;
    }

    /// `dynamicSize`: the size of dynamically encoded data in bits, and `numCodegens`.
    fn dynamic_size(&self, off_huff: bool, extra_bits: usize) -> (usize, usize) {
        let mut num_codegens = self.codegen_freq.len();
        while num_codegens > 4 && self.codegen_freq[CODEGEN_ORDER[num_codegens - 1]] == 0 {
            num_codegens -= 1;
        }
        let header = 3
            + 5
            + 5
            + 4
            + (3 * num_codegens)
            + self.codegen_encoding.bit_length(&self.codegen_freq)
            + self.codegen_freq[16] as usize * 2
            + self.codegen_freq[17] as usize * 3
            + self.codegen_freq[18] as usize * 7;
        let off_enc = if off_huff {
            &self.huff_offset
        } else {
            &self.offset_encoding
        };
        let size = header
            + self.literal_encoding.bit_length(&self.literal_freq)
            + off_enc.bit_length(&self.offset_freq)
            + extra_bits;
        (size, num_codegens)
    }

    /// `fixedSize`
    fn fixed_size(&self, extra_bits: usize) -> usize {
        3 + self.fixed_literal_encoding.bit_length(&self.literal_freq)
            + self.fixed_offset_encoding.bit_length(&self.offset_freq)
            + extra_bits
    }

    /// `storedSize`: the stored size in bits including header, and whether it fits one block.
    fn stored_size(input: Option<&[u8]>) -> (usize, bool) {
        match input {
            Some(b) if b.len() <= MAX_STORE_BLOCK_SIZE => ((b.len() + 5) * 8, true),
            _ => (0, false),
        }
    }

    /// `writeDynamicHeader`
    fn write_dynamic_header(
        &mut self,
        num_literals: usize,
        num_offsets: usize,
        num_codegens: usize,
        is_eof: bool,
    ) {
        let first_bits = if is_eof { 5 } else { 4 };
        self.write_bits(first_bits, 3);
        self.write_bits((num_literals - 257) as u32, 5);
        self.write_bits((num_offsets - 1) as u32, 5);
        self.write_bits((num_codegens - 4) as u32, 4);

        for &order in &CODEGEN_ORDER[..num_codegens] {
            let value = u32::from(self.codegen_encoding.codes[order].len);
            self.write_bits(value, 3);
        }

        let mut i = 0;
        loop {
            let code_word = self.codegen[i];
            i += 1;
            if code_word == BAD_CODE {
                break;
            }
            self.write_code(self.codegen_encoding.codes[usize::from(code_word)]);
            let extra = match code_word {
                16 => 2,
                17 => 3,
                18 => 7,
                _ => continue,
            };
            self.write_bits(u32::from(self.codegen[i]), extra);
            i += 1;
        }
    }

    /// `writeStoredHeader`
    pub(crate) fn write_stored_header(&mut self, length: usize, is_eof: bool) {
        self.write_bits(u32::from(is_eof), 3);
        self.flush();
        self.write_bits(length as u32, 16);
        self.write_bits(u32::from(!(length as u16)), 16);
    }

    /// `writeStoredBlock` (deflate.go): a stored header then the bytes.
    pub(crate) fn write_stored_block(&mut self, buf: &[u8]) {
        self.write_stored_header(buf.len(), false);
        self.write_bytes(buf);
    }

    /// `writeFixedHeader`
    fn write_fixed_header(&mut self, is_eof: bool) {
        // Indicate that we are a fixed Huffman block
        self.write_bits(if is_eof { 3 } else { 2 }, 3);
    }

    /// `writeBlock`: write `tokens` (the end-of-block marker is implied) with the smallest
    /// encoding. With `input`, a stored block is used when smaller.
    pub(crate) fn write_block(&mut self, tokens: &[Token], eof: bool, input: Option<&[u8]>) {
        let (num_literals, num_offsets) = self.index_tokens(tokens);

        let mut extra_bits = 0usize;
        let (stored_size, storable) = Self::stored_size(input);
        if storable {
            // The extra bits of length and offset fields (same for fixed and dynamic) only
            // matter when comparing against stored.
            for length_code in LENGTH_CODES_START + 8..num_literals {
                // First eight length codes have extra size = 0.
                extra_bits += self.literal_freq[length_code] as usize
                    * usize::from(LENGTH_EXTRA_BITS[length_code - LENGTH_CODES_START]);
            }
            for offset_code in 4..num_offsets {
                // First four offset codes have extra size = 0.
                extra_bits += self.offset_freq[offset_code] as usize
                    * usize::from(OFFSET_EXTRA_BITS[offset_code]);
            }
        }

        // Figure out smallest code. Fixed Huffman baseline.
        let mut use_fixed = true;
        let mut size = self.fixed_size(extra_bits);

        // Dynamic Huffman?
        self.generate_codegen(num_literals, num_offsets, false);
        self.codegen_encoding.generate(&self.codegen_freq, 7);
        let (dynamic_size, num_codegens) = self.dynamic_size(false, extra_bits);

        if dynamic_size < size {
            size = dynamic_size;
            use_fixed = false;
        }

        // Stored bytes?
        if storable && stored_size < size {
            let input = input.unwrap_or_default();
            self.write_stored_header(input.len(), eof);
            self.write_bytes(input);
            return;
        }

        // Huffman.
        if use_fixed {
            self.write_fixed_header(eof);
        } else {
            self.write_dynamic_header(num_literals, num_offsets, num_codegens, eof);
        }

        // Write the tokens.
        self.write_tokens(tokens, use_fixed);
    }

    /// `writeBlockDynamic`: a dynamic Huffman block, or stored if `input` is given and the
    /// savings are below 1/16th.
    pub(crate) fn write_block_dynamic(
        &mut self,
        tokens: &[Token],
        eof: bool,
        input: Option<&[u8]>,
    ) {
        let (num_literals, num_offsets) = self.index_tokens(tokens);

        self.generate_codegen(num_literals, num_offsets, false);
        self.codegen_encoding.generate(&self.codegen_freq, 7);
        let (size, num_codegens) = self.dynamic_size(false, 0);

        // Store bytes, if we don't get a reasonable improvement.
        let (ssize, storable) = Self::stored_size(input);
        if storable && ssize < (size + (size >> 4)) {
            let input = input.unwrap_or_default();
            self.write_stored_header(input.len(), eof);
            self.write_bytes(input);
            return;
        }

        // Write Huffman table.
        self.write_dynamic_header(num_literals, num_offsets, num_codegens, eof);
        // Write the tokens.
        self.write_tokens(tokens, false);
    }

    /// `indexTokens`: histogram `tokens` plus the end-of-block marker, build the literal and
    /// offset codes, return the numbers of literal and offset codes used.
    fn index_tokens(&mut self, tokens: &[Token]) -> (usize, usize) {
        self.literal_freq.fill(0);
        self.offset_freq.fill(0);

        let lf = &mut self.literal_freq[..];
        let of = &mut self.offset_freq[..];
        for &t in tokens {
            if t < MATCH_TYPE {
                lf[token::literal(t) as usize] += 1;
                continue;
            }
            let length = token::length(t);
            let offset = token::offset(t);
            lf[LENGTH_CODES_START + token::length_code(length) as usize] += 1;
            of[token::offset_code(offset) as usize] += 1;
        }
        // Go appends endBlockMarker to the tokens.
        lf[END_BLOCK_MARKER] += 1;

        // get the number of literals
        let mut num_literals = lf.len();
        while lf[num_literals - 1] == 0 {
            num_literals -= 1;
        }
        // get the number of offsets
        let mut num_offsets = of.len();
        while num_offsets > 0 && of[num_offsets - 1] == 0 {
            num_offsets -= 1;
        }
        if num_offsets == 0 {
            // We haven't found a single match. Count at least one offset so that the offset
            // huffman tree can be encoded.
            of[0] = 1;
            num_offsets = 1;
        }
        self.literal_encoding.generate(&self.literal_freq, 15);
        self.offset_encoding.generate(&self.offset_freq, 15);
        (num_literals, num_offsets)
    }

    /// `writeTokens`, followed by the end-of-block code Go appends to `tokens`.
    fn write_tokens(&mut self, tokens: &[Token], use_fixed: bool) {
        let (le, oe) = if use_fixed {
            (
                std::mem::take(&mut self.fixed_literal_encoding.codes),
                std::mem::take(&mut self.fixed_offset_encoding.codes),
            )
        } else {
            (
                std::mem::take(&mut self.literal_encoding.codes),
                std::mem::take(&mut self.offset_encoding.codes),
            )
        };
        for &t in tokens {
            if t < MATCH_TYPE {
                self.write_code(le[token::literal(t) as usize]);
                continue;
            }
            // Write the length
            let length = token::length(t);
            let length_code = token::length_code(length) as usize;
            self.write_code(le[length_code + LENGTH_CODES_START]);
            let extra_length_bits = u32::from(LENGTH_EXTRA_BITS[length_code]);
            if extra_length_bits > 0 {
                self.write_bits(length - LENGTH_BASE[length_code], extra_length_bits);
            }
            // Write the offset
            let offset = token::offset(t);
            let offset_code = token::offset_code(offset) as usize;
            self.write_code(oe[offset_code]);
            let extra_offset_bits = u32::from(OFFSET_EXTRA_BITS[offset_code]);
            if extra_offset_bits > 0 {
                self.write_bits(offset - OFFSET_BASE[offset_code], extra_offset_bits);
            }
        }
        self.write_code(le[END_BLOCK_MARKER]);
        if use_fixed {
            self.fixed_literal_encoding.codes = le;
            self.fixed_offset_encoding.codes = oe;
        } else {
            self.literal_encoding.codes = le;
            self.offset_encoding.codes = oe;
        }
    }

    /// `writeBlockHuff`: `input` as Huffman-coded literals, or stored if that gains little.
    pub(crate) fn write_block_huff(&mut self, eof: bool, input: &[u8]) {
        // Clear histogram, add everything as literals.
        self.literal_freq.fill(0);
        histogram(input, &mut self.literal_freq);
        self.literal_freq[END_BLOCK_MARKER] = 1;

        const NUM_LITERALS: usize = END_BLOCK_MARKER + 1;
        // Go leaves the rest of offsetFreq as it was; huffOffset gives them length 0.
        self.offset_freq[0] = 1;
        const NUM_OFFSETS: usize = 1;

        self.literal_encoding.generate(&self.literal_freq, 15);

        // Always use dynamic Huffman or Store.
        self.generate_codegen(NUM_LITERALS, NUM_OFFSETS, true);
        self.codegen_encoding.generate(&self.codegen_freq, 7);
        let (size, num_codegens) = self.dynamic_size(true, 0);

        // Store bytes, if we don't get a reasonable improvement.
        let (ssize, storable) = Self::stored_size(Some(input));
        if storable && ssize < (size + (size >> 4)) {
            self.write_stored_header(input.len(), eof);
            self.write_bytes(input);
            return;
        }

        // Huffman.
        self.write_dynamic_header(NUM_LITERALS, NUM_OFFSETS, num_codegens, eof);
        let mut encoding = [Hcode::default(); 257];
        encoding.copy_from_slice(&self.literal_encoding.codes[..257]);
        // Go inlines the bit writing here (same bits).
        let mut bits = self.bits;
        let mut nbits = self.nbits;
        for &t in input {
            let c = encoding[usize::from(t)];
            bits |= u64::from(c.code) << nbits;
            nbits += u32::from(c.len);
            if nbits >= 48 {
                self.out.extend_from_slice(&bits.to_le_bytes()[..6]);
                bits >>= 48;
                nbits -= 48;
            }
        }
        self.bits = bits;
        self.nbits = nbits;
        self.write_code(encoding[END_BLOCK_MARKER]);
    }
}

/// `histogram`: accumulate a histogram of `b` in `h` (`len(h) >= 256`).
fn histogram(b: &[u8], h: &mut [i32]) {
    let h = &mut h[..256];
    for &t in b {
        h[usize::from(t)] += 1;
    }
}
