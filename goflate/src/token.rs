//! Port of `compress/flate/token.go`: the LZ77 token packing.
//!
//! A token is a `u32`: 2 bits type (0 literal, 1 match), 8 bits `length - 3`, 22 bits
//! `offset - 1` or the literal.

/// `type token uint32`
pub(crate) type Token = u32;

pub(crate) const LENGTH_SHIFT: u32 = 22;
pub(crate) const OFFSET_MASK: u32 = (1 << LENGTH_SHIFT) - 1;
pub(crate) const LITERAL_TYPE: u32 = 0;
pub(crate) const MATCH_TYPE: u32 = 1 << 30;

/// The length code for length X (MIN_MATCH_LENGTH <= X <= MAX_MATCH_LENGTH)
/// is `LENGTH_CODES[length - MIN_MATCH_LENGTH]` (Go: `lengthCodes`).
pub(crate) static LENGTH_CODES: [u8; 256] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14,
    14, 15, 15, 15, 15, 16, 16, 16, 16, 16, 16, 16, 16, 17, 17, 17, 17, 17, 17, 17, 17, 18, 18, 18,
    18, 18, 18, 18, 18, 19, 19, 19, 19, 19, 19, 19, 19, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20, 20,
    20, 20, 20, 20, 20, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 21, 22, 22, 22,
    22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 22, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23, 23,
    23, 23, 23, 23, 23, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24,
    24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 24, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25,
    25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 25, 26, 26, 26,
    26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26, 26,
    26, 26, 26, 26, 26, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27,
    27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 27, 28,
];

/// Go: `offsetCodes`.
pub(crate) static OFFSET_CODES: [u8; 256] = [
    0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9,
    10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11,
    11, 11, 11, 11, 11, 11, 11, 11, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12,
    12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13,
    13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13, 13,
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14,
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14,
    14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15, 15,
    15, 15, 15, 15, 15, 15, 15, 15,
];

/// `literalToken`: convert a literal into a literal token.
#[inline(always)]
pub(crate) fn literal_token(literal: u32) -> Token {
    LITERAL_TYPE + literal
}

/// `matchToken`: convert a `(xlength, xoffset)` pair into a match token.
#[inline(always)]
pub(crate) fn match_token(xlength: u32, xoffset: u32) -> Token {
    MATCH_TYPE + (xlength << LENGTH_SHIFT) + xoffset
}

/// `token.literal()`
#[inline(always)]
pub(crate) fn literal(t: Token) -> u32 {
    t - LITERAL_TYPE
}

/// `token.offset()`: the extra offset of a match token.
#[inline(always)]
pub(crate) fn offset(t: Token) -> u32 {
    t & OFFSET_MASK
}

/// `token.length()`
#[inline(always)]
pub(crate) fn length(t: Token) -> u32 {
    (t - MATCH_TYPE) >> LENGTH_SHIFT
}

/// `lengthCode`
#[inline(always)]
pub(crate) fn length_code(len: u32) -> u32 {
    u32::from(LENGTH_CODES[len as usize])
}

/// `offsetCode`: the offset code corresponding to a specific offset.
#[inline(always)]
pub(crate) fn offset_code(off: u32) -> u32 {
    if off < 256 {
        return u32::from(OFFSET_CODES[off as usize]);
    }
    if off >> 7 < 256 {
        return u32::from(OFFSET_CODES[(off >> 7) as usize]) + 14;
    }
    u32::from(OFFSET_CODES[(off >> 14) as usize]) + 28
}
