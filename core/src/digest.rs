//! Content digests (`algorithm:encoded`) and streaming verification.
//!
//! The OCI image spec grammar is
//! `digest ::= algorithm ":" encoded`, `algorithm ::= component (separator component)*`,
//! `component ::= [a-z0-9]+`, `separator ::= [+._-]`, `encoded ::= [a-zA-Z0-9=_-]+`.
//! Registered algorithms are `sha256` (64 lowercase hex) and `sha512` (128 lowercase hex);
//! anything else that matches the grammar is reported as unsupported, not as malformed.

use core::fmt;

use sha2::Digest as _;

/// A registered digest algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// SHA-256, the default everywhere.
    Sha256,
    /// SHA-512, allowed by the OCI spec and used by a few registries.
    Sha512,
}

impl Algorithm {
    /// The name used in digests (`sha256`).
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// Length of the hex encoding.
    pub fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a digest we accept.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DigestError {
    /// No `:` separating algorithm and encoded part, or an empty side.
    #[error("malformed digest {input:?}: expected <algorithm>:<hex>")]
    Malformed { input: String },
    /// Grammatically fine but not sha256/sha512.
    #[error("unsupported digest algorithm {algorithm:?} in {input:?}")]
    UnsupportedAlgorithm { algorithm: String, input: String },
    /// Wrong number of hex characters for the algorithm.
    #[error("digest {input:?}: {algorithm} needs {expected} hex characters, found {found}")]
    BadLength {
        algorithm: &'static str,
        input: String,
        expected: usize,
        found: usize,
    },
    /// Characters outside lowercase hex.
    #[error("digest {input:?}: encoded part must be lowercase hex")]
    BadHex { input: String },
}

/// A validated content digest such as `sha256:e3b0c442…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

fn grammar_ok_algorithm(a: &str) -> bool {
    !a.is_empty()
        && a.split(['+', '.', '_', '-']).all(|c| {
            !c.is_empty()
                && c.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

impl Digest {
    /// Parses `algorithm:hex`, validating it against the spec grammar.
    pub fn parse(input: &str) -> Result<Digest, DigestError> {
        let malformed = || DigestError::Malformed {
            input: truncate_for_error(input),
        };
        let (alg, enc) = input.split_once(':').ok_or_else(malformed)?;
        if !grammar_ok_algorithm(alg)
            || enc.is_empty()
            || !enc
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'=' || b == b'_' || b == b'-')
        {
            return Err(malformed());
        }
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                return Err(DigestError::UnsupportedAlgorithm {
                    algorithm: other.to_string(),
                    input: truncate_for_error(input),
                })
            }
        };
        if enc.len() != algorithm.hex_len() {
            return Err(DigestError::BadLength {
                algorithm: algorithm.name(),
                input: truncate_for_error(input),
                expected: algorithm.hex_len(),
                found: enc.len(),
            });
        }
        if !enc
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(DigestError::BadHex {
                input: truncate_for_error(input),
            });
        }
        Ok(Digest {
            algorithm,
            hex: enc.to_string(),
        })
    }

    /// Builds a digest from a raw hash output.
    ///
    /// Returns `None` when `raw` has the wrong length for `algorithm`.
    pub fn from_raw(algorithm: Algorithm, raw: &[u8]) -> Option<Digest> {
        if raw.len() * 2 != algorithm.hex_len() {
            return None;
        }
        let mut hex = String::with_capacity(raw.len() * 2);
        for b in raw {
            hex.push(HEX[(b >> 4) as usize] as char);
            hex.push(HEX[(b & 15) as usize] as char);
        }
        Some(Digest { algorithm, hex })
    }

    /// The SHA-256 digest of `bytes` (with the built-in hasher).
    pub fn sha256(bytes: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, bytes)
    }

    /// The digest of `bytes` with `algorithm` (with the built-in hasher).
    pub fn of(algorithm: Algorithm, bytes: &[u8]) -> Digest {
        let mut h = default_hasher(algorithm);
        h.update(bytes);
        finish_hasher(algorithm, h)
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Path of this blob inside an OCI image layout: `blobs/<alg>/<hex>`.
    pub fn layout_path(&self) -> String {
        format!("blobs/{}/{}", self.algorithm.name(), self.hex)
    }

    /// A short form for humans (`sha256:0123456789ab`).
    pub fn short(&self) -> String {
        format!("{}:{}", self.algorithm.name(), &self.hex[..12])
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Keeps error messages one line and bounded when the input is hostile.
pub(crate) fn truncate_for_error(s: &str) -> String {
    const MAX: usize = 160;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

string_form!(Digest, DigestError);

/// A hash function fed in chunks. Hosts may supply a faster implementation
/// (the CLI uses `ring`); the core's default is the pure-Rust `sha2` crate,
/// which also builds for wasm32.
pub trait BlobHasher: Send {
    /// Feeds bytes.
    fn update(&mut self, data: &[u8]);
    /// Returns the raw hash output.
    fn finalize(self: Box<Self>) -> Vec<u8>;
}

/// Makes a fresh hasher for an algorithm.
pub type HasherFactory = fn(Algorithm) -> Box<dyn BlobHasher>;

struct Sha2<D: sha2::Digest + Send>(D);

impl<D: sha2::Digest + Send> BlobHasher for Sha2<D> {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finalize(self: Box<Self>) -> Vec<u8> {
        self.0.finalize().to_vec()
    }
}

/// The built-in (pure Rust) hasher factory.
pub fn default_hasher(algorithm: Algorithm) -> Box<dyn BlobHasher> {
    match algorithm {
        Algorithm::Sha256 => Box::new(Sha2(sha2::Sha256::new())),
        Algorithm::Sha512 => Box::new(Sha2(sha2::Sha512::new())),
    }
}

fn finish_hasher(algorithm: Algorithm, h: Box<dyn BlobHasher>) -> Digest {
    let raw = h.finalize();
    match Digest::from_raw(algorithm, &raw) {
        Some(d) => d,
        // A hasher returning the wrong length is a programming error in the host.
        None => panic!(
            "hasher for {} returned {} bytes",
            algorithm.name(),
            raw.len()
        ),
    }
}

/// Computes the digest and length of a stream of unknown content.
pub struct DigestBuilder {
    algorithm: Algorithm,
    hasher: Box<dyn BlobHasher>,
    len: u64,
}

impl DigestBuilder {
    /// A builder using the built-in hasher.
    pub fn new(algorithm: Algorithm) -> Self {
        Self::with_factory(algorithm, default_hasher)
    }
    /// A builder using a host-supplied hasher.
    pub fn with_factory(algorithm: Algorithm, factory: HasherFactory) -> Self {
        DigestBuilder {
            algorithm,
            hasher: factory(algorithm),
            len: 0,
        }
    }
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        self.hasher.update(data);
    }
    /// Bytes fed so far.
    pub fn len(&self) -> u64 {
        self.len
    }
    /// Whether nothing was fed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The digest and the number of bytes fed.
    pub fn finish(self) -> (Digest, u64) {
        (finish_hasher(self.algorithm, self.hasher), self.len)
    }
}

/// A stream did not match the digest or size it was announced with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// More (or fewer) bytes than announced.
    #[error("size mismatch for {digest}: expected {expected} bytes, got {found}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        found: u64,
    },
    /// The content hashes to something else.
    #[error("digest mismatch: expected {expected}, content hashes to {found}")]
    DigestMismatch { expected: Digest, found: Digest },
}

/// Checks a stream fed in chunks against an expected digest *and* size.
///
/// ```
/// use ddiff_core::{Digest, Verifier};
/// let d = Digest::sha256(b"hello");
/// let mut v = Verifier::new(d, 5);
/// v.update(b"hel").unwrap();
/// v.update(b"lo").unwrap();
/// v.finish().unwrap();
/// ```
pub struct Verifier {
    expected: Digest,
    expected_size: u64,
    inner: DigestBuilder,
}

impl Verifier {
    /// A verifier with the built-in hasher.
    pub fn new(expected: Digest, expected_size: u64) -> Self {
        Self::with_factory(expected, expected_size, default_hasher)
    }
    /// A verifier with a host-supplied hasher.
    pub fn with_factory(expected: Digest, expected_size: u64, factory: HasherFactory) -> Self {
        let inner = DigestBuilder::with_factory(expected.algorithm(), factory);
        Verifier {
            expected,
            expected_size,
            inner,
        }
    }
    /// Feeds bytes; fails as soon as more bytes than announced arrive.
    pub fn update(&mut self, data: &[u8]) -> Result<(), VerifyError> {
        let found = self.inner.len() + data.len() as u64;
        if found > self.expected_size {
            return Err(VerifyError::SizeMismatch {
                digest: self.expected.clone(),
                expected: self.expected_size,
                found,
            });
        }
        self.inner.update(data);
        Ok(())
    }
    /// Bytes accepted so far.
    pub fn bytes_seen(&self) -> u64 {
        self.inner.len()
    }
    /// The digest being checked for.
    pub fn expected(&self) -> &Digest {
        &self.expected
    }
    /// Checks size, then digest.
    pub fn finish(self) -> Result<(), VerifyError> {
        let expected_size = self.expected_size;
        let (found, len) = self.inner.finish();
        if len != expected_size {
            return Err(VerifyError::SizeMismatch {
                digest: self.expected,
                expected: expected_size,
                found: len,
            });
        }
        if found != self.expected {
            return Err(VerifyError::DigestMismatch {
                expected: self.expected,
                found,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints() {
        let d = Digest::parse(EMPTY).unwrap();
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(d, Digest::sha256(b""));
        assert_eq!(d.layout_path(), format!("blobs/sha256/{}", &EMPTY[7..]));
        let s512 = Digest::of(Algorithm::Sha512, b"");
        assert_eq!(Digest::parse(&s512.to_string()).unwrap(), s512);
        assert!(s512.to_string().starts_with("sha512:cf83e135"));
    }

    #[test]
    fn rejects_invalid_table() {
        let h64 = "a".repeat(64);
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "malformed"),
            ("sha256".into(), "malformed"),
            (format!(":{h64}"), "malformed"),
            ("sha256:".into(), "malformed"),
            (format!("SHA256:{h64}"), "malformed"),
            (format!("sha256:{}", &h64[..63]), "length"),
            (format!("sha256:{h64}0"), "length"),
            (format!("sha256:{}", "A".repeat(64)), "hex"),
            (format!("sha256:{}", "g".repeat(64)), "hex"),
            (format!("md5:{h64}"), "unsupported"),
            (format!("sha256+b64u:{h64}"), "unsupported"),
            (format!("sha256:../{}", &h64[..61]), "malformed"),
            (format!("sha256:{}/", &h64[..63]), "malformed"),
            ("sha256:é".into(), "malformed"),
        ];
        for (input, kind) in cases {
            let err = Digest::parse(&input).unwrap_err();
            let ok = matches!(
                (&err, kind),
                (DigestError::Malformed { .. }, "malformed")
                    | (DigestError::BadLength { .. }, "length")
                    | (DigestError::BadHex { .. }, "hex")
                    | (DigestError::UnsupportedAlgorithm { .. }, "unsupported")
            );
            assert!(ok, "{input:?}: expected {kind}, got {err:?}");
        }
    }

    #[test]
    fn verifier_checks_size_and_digest() {
        let d = Digest::sha256(b"hello");
        let mut v = Verifier::new(d.clone(), 5);
        assert!(matches!(
            v.update(b"hello!"),
            Err(VerifyError::SizeMismatch { found: 6, .. })
        ));
        let mut v = Verifier::new(d.clone(), 5);
        v.update(b"hell").unwrap();
        assert!(matches!(
            v.finish(),
            Err(VerifyError::SizeMismatch {
                expected: 5,
                found: 4,
                ..
            })
        ));
        let mut v = Verifier::new(d, 5);
        v.update(b"hellO").unwrap();
        assert!(matches!(
            v.finish(),
            Err(VerifyError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn serde_roundtrip() {
        let d = Digest::parse(EMPTY).unwrap();
        let j = serde_json::to_string(&d).unwrap();
        assert_eq!(j, format!("\"{EMPTY}\""));
        let back: Digest = serde_json::from_str(&j).unwrap();
        assert_eq!(back, d);
        assert!(serde_json::from_str::<Digest>("\"sha256:00\"").is_err());
    }
}
