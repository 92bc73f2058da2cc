//! Port of `compress/flate/huffman_code.go`: length-limited Huffman code construction.
//!
//! Go sorts with `sort.Sort` (not stable), but both orders it uses (`byFreq`: frequency then
//! literal; `byLiteral`) are total orders over distinct literals, so any correct sort gives
//! the same result; we use `sort_unstable_by_key`.

/// `maxNumLit` (inflate.go): the number of literal/length codes.
pub(crate) const MAX_NUM_LIT: usize = 286;

/// `hcode`: a Huffman code with a bit code and bit length.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub(crate) struct Hcode {
    pub(crate) code: u16,
    pub(crate) len: u16,
}

/// `literalNode`
#[derive(Clone, Copy, Default)]
struct LiteralNode {
    literal: u16,
    freq: i32,
}

/// `levelInfo`: the state of the constructed tree for a given depth.
#[derive(Clone, Copy, Default)]
struct LevelInfo {
    /// Our level.
    level: i32,
    /// The frequency of the last node at this level.
    last_freq: i32,
    /// The frequency of the next character to add to this level.
    next_char_freq: i32,
    /// The frequency of the next pair (from level below) to add to this level.
    next_pair_freq: i32,
    /// The number of chains remaining to generate for this level.
    needed: i32,
}

/// `maxNode()`
const MAX_NODE: LiteralNode = LiteralNode {
    literal: u16::MAX,
    freq: i32::MAX,
};

/// `maxBitsLimit`
const MAX_BITS_LIMIT: usize = 16;

/// `huffmanEncoder`
pub(crate) struct HuffmanEncoder {
    pub(crate) codes: Vec<Hcode>,
    freqcache: Vec<LiteralNode>,
    bit_count: [i32; 17],
}

/// `reverseBits`
#[inline]
pub(crate) fn reverse_bits(number: u16, bit_length: u8) -> u16 {
    (number << (16 - u32::from(bit_length))).reverse_bits()
}

impl HuffmanEncoder {
    /// `newHuffmanEncoder`
    pub(crate) fn new(size: usize) -> Self {
        HuffmanEncoder {
            codes: vec![Hcode::default(); size],
            // Go allocates this lazily in generate; same size.
            freqcache: vec![LiteralNode::default(); MAX_NUM_LIT + 1],
            bit_count: [0; 17],
        }
    }

    /// `generateFixedLiteralEncoding`
    pub(crate) fn fixed_literal() -> Self {
        let mut h = HuffmanEncoder::new(MAX_NUM_LIT);
        for ch in 0..MAX_NUM_LIT as u16 {
            let (bits, size): (u16, u16) = match ch {
                // size 8, 000110000  .. 10111111
                0..=143 => (ch + 48, 8),
                // size 9, 110010000 .. 111111111
                144..=255 => (ch + 400 - 144, 9),
                // size 7, 0000000 .. 0010111
                256..=279 => (ch - 256, 7),
                // size 8, 11000000 .. 11000111
                _ => (ch + 192 - 280, 8),
            };
            h.codes[usize::from(ch)] = Hcode {
                code: reverse_bits(bits, size as u8),
                len: size,
            };
        }
        h
    }

    /// `generateFixedOffsetEncoding`
    pub(crate) fn fixed_offset() -> Self {
        let mut h = HuffmanEncoder::new(30);
        for (ch, c) in h.codes.iter_mut().enumerate() {
            *c = Hcode {
                code: reverse_bits(ch as u16, 5),
                len: 5,
            };
        }
        h
    }

    /// `bitLength`
    pub(crate) fn bit_length(&self, freq: &[i32]) -> usize {
        let mut total = 0usize;
        for (i, &f) in freq.iter().enumerate() {
            if f != 0 {
                total += f as usize * usize::from(self.codes[i].len);
            }
        }
        total
    }

    /// `bitCounts`: the number of literals assigned to each bit size. `list` is
    /// `self.freqcache[..n]`, sorted by increasing frequency. Returns the (possibly lowered)
    /// `maxBits`; the counts are in `self.bit_count[..=maxBits]`.
    fn bit_counts(&mut self, n: usize, mut max_bits: i32) -> i32 {
        assert!(
            (max_bits as usize) < MAX_BITS_LIMIT,
            "flate: maxBits too large"
        );
        let list = &mut self.freqcache[..n + 1];
        list[n] = MAX_NODE;
        let n = n as i32;

        // The tree can't have greater depth than n - 1, no matter what.
        if max_bits > n - 1 {
            max_bits = n - 1;
        }

        // A bogus "Level 0" whose sole purpose is so that level1.prev.needed==0.
        let mut levels = [LevelInfo::default(); MAX_BITS_LIMIT];
        // leafCounts[i][j] is the number of literals at the left of the level j ancestor of
        // the rightmost node at level i.
        let mut leaf_counts = [[0i32; MAX_BITS_LIMIT]; MAX_BITS_LIMIT];

        for level in 1..=max_bits {
            let lv = level as usize;
            levels[lv] = LevelInfo {
                level,
                last_freq: list[1].freq,
                next_char_freq: list[2].freq,
                next_pair_freq: list[0].freq.wrapping_add(list[1].freq),
                needed: 0,
            };
            leaf_counts[lv][lv] = 2;
            if level == 1 {
                levels[lv].next_pair_freq = i32::MAX;
            }
        }

        // We need a total of 2*n - 2 items at top level and have already generated 2.
        levels[max_bits as usize].needed = 2 * n - 4;

        let mut level = max_bits as usize;
        loop {
            let l = levels[level];
            if l.next_pair_freq == i32::MAX && l.next_char_freq == i32::MAX {
                // We've run out of both leafs and pairs.
                levels[level].needed = 0;
                levels[level + 1].next_pair_freq = i32::MAX;
                level += 1;
                continue;
            }

            let prev_freq = l.last_freq;
            if l.next_char_freq < l.next_pair_freq {
                // The next item on this row is a leaf node.
                let nn = leaf_counts[level][level] + 1;
                levels[level].last_freq = l.next_char_freq;
                // Lower leafCounts are the same of the previous node.
                leaf_counts[level][level] = nn;
                levels[level].next_char_freq = list[nn as usize].freq;
            } else {
                // The next item on this row is a pair from the previous row.
                levels[level].last_freq = l.next_pair_freq;
                // Take leaf counts from the lower level, except counts[level] remains the same.
                let (lower, upper) = leaf_counts.split_at_mut(level);
                upper[0][..level].copy_from_slice(&lower[level - 1][..level]);
                levels[(l.level - 1) as usize].needed = 2;
            }

            levels[level].needed -= 1;
            if levels[level].needed == 0 {
                // We've done everything we need to do for this level.
                if l.level == max_bits {
                    // All done!
                    break;
                }
                levels[(l.level + 1) as usize].next_pair_freq =
                    prev_freq.wrapping_add(levels[level].last_freq);
                level += 1;
            } else {
                // If we stole from below, move down temporarily to replenish it.
                while levels[level - 1].needed > 0 {
                    level -= 1;
                }
            }
        }

        // Something is wrong if at the end, the top level is null or hasn't used all leaves.
        assert!(
            leaf_counts[max_bits as usize][max_bits as usize] == n,
            "leafCounts[maxBits][maxBits] != n"
        );

        let mut bits = 1usize;
        let counts = &leaf_counts[max_bits as usize];
        for level in (1..=max_bits as usize).rev() {
            // counts[level] - counts[level-1] literals need at least `bits` bits.
            self.bit_count[bits] = counts[level] - counts[level - 1];
            bits += 1;
        }
        max_bits
    }

    /// `assignEncodingAndSize` (RFC 1951 3.2.2): `list` is `freqcache[..count]`.
    fn assign_encoding_and_size(&mut self, max_bits: i32, count: usize) {
        let mut code: u16 = 0;
        let mut list_len = count;
        for n in 0..=max_bits as usize {
            let bits = self.bit_count[n];
            code <<= 1;
            if n == 0 || bits == 0 {
                continue;
            }
            // The literals list[len(list)-bits] .. are encoded using "bits" bits, and get
            // the values code, code + 1, .... in literal order (not frequency order).
            let bits = bits as usize;
            let chunk = &mut self.freqcache[list_len - bits..list_len];
            chunk.sort_unstable_by_key(|node| node.literal);
            for node in chunk.iter() {
                self.codes[usize::from(node.literal)] = Hcode {
                    code: reverse_bits(code, n as u8),
                    len: n as u16,
                };
                code = code.wrapping_add(1);
            }
            list_len -= bits;
        }
    }

    /// `generate`: update this code to be the minimum code for `freq`, at most `max_bits`.
    pub(crate) fn generate(&mut self, freq: &[i32], max_bits: i32) {
        // Number of non-zero literals
        let mut count = 0usize;
        for (i, &f) in freq.iter().enumerate() {
            if f != 0 {
                self.freqcache[count] = LiteralNode {
                    literal: i as u16,
                    freq: f,
                };
                count += 1;
            } else {
                self.codes[i].len = 0;
            }
        }

        if count <= 2 {
            // With two or fewer literals, everything has bit length 1; "list" is in order of
            // increasing literal value.
            for i in 0..count {
                let node = self.freqcache[i];
                let c = &mut self.codes[usize::from(node.literal)];
                c.code = i as u16;
                c.len = 1;
            }
            return;
        }
        // byFreq: frequency, then literal.
        self.freqcache[..count].sort_unstable_by_key(|node| (node.freq, node.literal));

        // Get the number of literals for each bit count
        let max_bits = self.bit_counts(count, max_bits);
        // And do the assignment
        self.assign_encoding_and_size(max_bits, count);
    }
}
