//! Public keys and signature verification, for signed bundles and cosign image signatures
//! (issue 14; see docs/provenance.md).
//!
//! Pure computation, no randomness, so the page verifies exactly as the CLI does: a PEM
//! `PUBLIC KEY` (SubjectPublicKeyInfo) of an ECDSA P-256 or Ed25519 key, and a signature as
//! cosign writes it (`sign-blob`, and the `dev.cosignproject.cosign/signature` annotation):
//! base64 of an ASN.1 DER ECDSA signature over SHA-256 of the message, or of the 64 raw bytes
//! of an Ed25519 signature over the message itself.
//!
//! ```text
//! key.pub (PEM) ──► PublicKey::from_pem ──┐
//! BUNDLE.sig (base64) ─► decode_signature ├─► PublicKey::verify(ddiff.json bytes, sig)
//! ddiff.json (exact bytes) ───────────────┘
//! ```
//!
//! Signing needs the private key and lives in the host (`host-cli/src/signing.rs`); it
//! writes its signatures with [`encode_signature`].

use base64::Engine as _;
use ed25519_dalek::pkcs8::DecodePublicKey as _;
use p256::pkcs8::der::pem;
use p256::pkcs8::der::Decode as _;
use p256::pkcs8::spki::SubjectPublicKeyInfoRef;

use crate::Digest;

/// The file beside a bundle that holds its signature: `BUNDLE` + this suffix.
pub const BUNDLE_SIGNATURE_SUFFIX: &str = ".sig";

/// The longest signature text accepted (a DER P-256 signature is at most 72 bytes, 96 in
/// base64; this leaves room for white space and stops a crafted file from being read whole).
pub const MAX_SIGNATURE_TEXT: usize = 4096;

/// The longest public key file accepted.
pub const MAX_KEY_TEXT: usize = 16 * 1024;

/// OID of `id-ecPublicKey` (RFC 5480).
const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
/// OID of the P-256 curve (`secp256r1`).
const OID_P256: &str = "1.2.840.10045.3.1.7";
/// OID of Ed25519 (RFC 8410).
const OID_ED25519: &str = "1.3.101.112";

/// A key or signature that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The key text is not PEM.
    #[error("not a PEM public key ({reason})")]
    NotPem { reason: String },
    /// A PEM block of another kind (a private key given as the public key, say).
    #[error("PEM block is {found:?}, expected \"PUBLIC KEY\"")]
    WrongPemLabel { found: String },
    /// A SubjectPublicKeyInfo that does not parse.
    #[error("malformed public key ({reason})")]
    BadKey { reason: String },
    /// A key of an algorithm ddiff does not verify (RSA, another curve).
    #[error("unsupported key algorithm {algorithm} (ddiff verifies ECDSA P-256 and Ed25519 keys)")]
    UnsupportedAlgorithm { algorithm: String },
    /// The signature text is not base64, or too long.
    #[error("signature is not base64 ({reason})")]
    BadEncoding { reason: String },
    /// The decoded signature is not one this key's algorithm makes.
    #[error("malformed {algorithm} signature ({reason})")]
    Malformed {
        algorithm: &'static str,
        reason: String,
    },
    /// A well-formed signature that the key did not make over these bytes.
    #[error("signature does not match: not made by key {key_id} over these bytes")]
    Mismatch { key_id: String },
}

/// A public key ddiff verifies with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    key: KeyKind,
    /// SHA-256 of the SubjectPublicKeyInfo DER.
    spki_digest: Digest,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyKind {
    EcdsaP256(p256::ecdsa::VerifyingKey),
    Ed25519(ed25519_dalek::VerifyingKey),
}

impl PublicKey {
    /// Parses a PEM `PUBLIC KEY` block (SubjectPublicKeyInfo), as `cosign generate-key-pair`
    /// and `openssl pkey -pubout` write it. Text around the block is ignored as OpenSSL does.
    pub fn from_pem(text: &str) -> Result<PublicKey, SignatureError> {
        if text.len() > MAX_KEY_TEXT {
            return Err(SignatureError::NotPem {
                reason: format!("{} bytes, more than {MAX_KEY_TEXT}", text.len()),
            });
        }
        let block = pem_block(text).ok_or_else(|| SignatureError::NotPem {
            reason: "no -----BEGIN line".into(),
        })?;
        let (label, der) =
            pem::decode_vec(block.as_bytes()).map_err(|e| SignatureError::NotPem {
                reason: e.to_string(),
            })?;
        if label != "PUBLIC KEY" {
            return Err(SignatureError::WrongPemLabel {
                found: label.to_string(),
            });
        }
        PublicKey::from_spki_der(&der)
    }

    /// Parses a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<PublicKey, SignatureError> {
        let bad = |e: &dyn std::fmt::Display| SignatureError::BadKey {
            reason: e.to_string(),
        };
        let spki = SubjectPublicKeyInfoRef::from_der(der).map_err(|e| bad(&e))?;
        let oid = spki.algorithm.oid.to_string();
        let key = match oid.as_str() {
            OID_EC_PUBLIC_KEY => {
                let curve = spki
                    .algorithm
                    .parameters_oid()
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                if curve != OID_P256 {
                    return Err(SignatureError::UnsupportedAlgorithm {
                        algorithm: format!("ECDSA on curve {curve}"),
                    });
                }
                use p256::pkcs8::DecodePublicKey as _;
                KeyKind::EcdsaP256(
                    p256::ecdsa::VerifyingKey::from_public_key_der(der).map_err(|e| bad(&e))?,
                )
            }
            OID_ED25519 => KeyKind::Ed25519(
                ed25519_dalek::VerifyingKey::from_public_key_der(der).map_err(|e| bad(&e))?,
            ),
            other => {
                return Err(SignatureError::UnsupportedAlgorithm {
                    algorithm: known_algorithm(other),
                })
            }
        };
        Ok(PublicKey {
            key,
            spki_digest: Digest::sha256(der),
        })
    }

    /// `ECDSA-P256-SHA256` or `Ed25519`.
    pub fn algorithm(&self) -> &'static str {
        match self.key {
            KeyKind::EcdsaP256(_) => "ECDSA-P256-SHA256",
            KeyKind::Ed25519(_) => "Ed25519",
        }
    }

    /// The key's id as ddiff shows it: the SHA-256 of its SubjectPublicKeyInfo DER (what
    /// `openssl pkey -pubin -outform DER | sha256sum` prints).
    pub fn key_id(&self) -> &Digest {
        &self.spki_digest
    }

    /// Checks that `signature` (decoded bytes, see [`decode_signature`]) is this key's
    /// signature over `message`: ECDSA over SHA-256 with an ASN.1 DER signature (high or low
    /// S, as Go's verifier accepts), or Ed25519 (RFC 8032) with a 64-byte signature.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SignatureError> {
        use p256::ecdsa::signature::Verifier as _;
        let ok = match &self.key {
            KeyKind::EcdsaP256(vk) => {
                let sig = p256::ecdsa::Signature::from_der(signature).map_err(|e| {
                    SignatureError::Malformed {
                        algorithm: self.algorithm(),
                        reason: e.to_string(),
                    }
                })?;
                let sig = sig.normalize_s().unwrap_or(sig);
                vk.verify(message, &sig).is_ok()
            }
            KeyKind::Ed25519(vk) => {
                let bytes: &[u8; 64] =
                    signature
                        .try_into()
                        .map_err(|_| SignatureError::Malformed {
                            algorithm: self.algorithm(),
                            reason: format!("{} bytes, expected 64", signature.len()),
                        })?;
                let sig = ed25519_dalek::Signature::from_bytes(bytes);
                vk.verify(message, &sig).is_ok()
            }
        };
        if ok {
            Ok(())
        } else {
            Err(SignatureError::Mismatch {
                key_id: self.spki_digest.to_string(),
            })
        }
    }

    /// Decodes `signature_text` ([`decode_signature`]) and [verifies](PublicKey::verify) it.
    pub fn verify_text(&self, message: &[u8], signature_text: &[u8]) -> Result<(), SignatureError> {
        self.verify(message, &decode_signature(signature_text)?)
    }
}

/// The first `-----BEGIN` … `-----END …-----` block of `text`, so that explanatory text
/// around it (as `openssl` and some key stores write) is ignored.
fn pem_block(text: &str) -> Option<&str> {
    let start = text.find("-----BEGIN ")?;
    let rest = &text[start..];
    let end_marker = rest.find("-----END ")?;
    let after = &rest[end_marker + "-----END ".len()..];
    let close = after.find("-----")?;
    let end = start + end_marker + "-----END ".len() + close + "-----".len();
    Some(&text[start..end])
}

fn known_algorithm(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.1" => "RSA".into(),
        "1.3.101.113" => "Ed448".into(),
        other => format!("with OID {other}"),
    }
}

/// Decodes a signature as cosign writes it: standard base64 (padding optional), surrounding
/// white space (a trailing newline) ignored.
pub fn decode_signature(text: &[u8]) -> Result<Vec<u8>, SignatureError> {
    if text.len() > MAX_SIGNATURE_TEXT {
        return Err(SignatureError::BadEncoding {
            reason: format!("{} bytes, more than {MAX_SIGNATURE_TEXT}", text.len()),
        });
    }
    let trimmed = text.trim_ascii();
    if trimmed.is_empty() {
        return Err(SignatureError::BadEncoding {
            reason: "empty".into(),
        });
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    engine
        .decode(trimmed)
        .map_err(|e| SignatureError::BadEncoding {
            reason: e.to_string(),
        })
}

/// Encodes signature bytes as cosign does (standard base64 with padding, no newline).
pub fn encode_signature(signature: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(signature)
}

/// The PEM labels of cosign's password-encrypted private keys (`cosign generate-key-pair`;
/// older versions wrote the second).
pub const COSIGN_KEY_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// The largest scrypt cost (`N`) accepted in an encrypted key: the strongest of the
/// parameter sets cosign's library writes (go-securesystemslib `encrypted`: N = 2^15, 2^16 or
/// 2^17, r = 8, p = 1). With r = 8 scrypt needs 128 * r * N bytes, so a crafted key can make
/// ddiff use at most 128 MiB, and never an exabyte.
pub const MAX_SCRYPT_LOG_N: u8 = 17;

/// A cosign encrypted private key's envelope, checked but not decrypted: the host derives the
/// key with scrypt and opens the NaCl secretbox (XSalsa20-Poly1305), whose plaintext is the
/// PKCS#8 DER of the private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncryptedKey {
    /// scrypt's `N` as a power of two.
    pub log_n: u8,
    /// scrypt's `r` (always 8).
    pub r: u32,
    /// scrypt's `p` (always 1).
    pub p: u32,
    /// scrypt's salt.
    pub salt: Vec<u8>,
    /// The secretbox nonce.
    pub nonce: [u8; 24],
    /// The secretbox (Poly1305 tag and encrypted PKCS#8).
    pub ciphertext: Vec<u8>,
}

/// A private key file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PrivateKeyError {
    /// The text is not PEM, or its base64 is broken.
    #[error("not a PEM private key ({reason})")]
    NotPem { reason: String },
    /// An encrypted key whose envelope is not cosign's.
    #[error("not a cosign encrypted key ({reason})")]
    BadEnvelope { reason: String },
    /// scrypt parameters outside cosign's, which could exhaust memory or time.
    #[error("scrypt parameters N={n} r={r} p={p} are not cosign's (N a power of two up to 2^{MAX_SCRYPT_LOG_N}, r=8, p=1)")]
    ScryptBounds { n: u64, r: u64, p: u64 },
}

impl EncryptedKey {
    /// Parses the body of a cosign encrypted key: the JSON of go-securesystemslib's
    /// `encrypted` package (`{"kdf":{"name":"scrypt","params":{"N":..,"r":..,"p":..},"salt":..},
    /// "cipher":{"name":"nacl/secretbox","nonce":..},"ciphertext":..}`, byte strings in
    /// standard base64), checking the names and bounding scrypt's cost before any work.
    pub fn parse(json: &[u8]) -> Result<EncryptedKey, PrivateKeyError> {
        #[derive(serde::Deserialize)]
        struct Envelope {
            kdf: Kdf,
            cipher: Cipher,
            ciphertext: String,
        }
        #[derive(serde::Deserialize)]
        struct Kdf {
            name: String,
            params: Params,
            salt: String,
        }
        #[derive(serde::Deserialize)]
        #[allow(non_snake_case)]
        struct Params {
            N: u64,
            r: u64,
            p: u64,
        }
        #[derive(serde::Deserialize)]
        struct Cipher {
            name: String,
            nonce: String,
        }
        let bad = |reason: String| PrivateKeyError::BadEnvelope { reason };
        if json.len() > MAX_KEY_TEXT {
            return Err(bad(format!(
                "{} bytes, more than {MAX_KEY_TEXT}",
                json.len()
            )));
        }
        let env: Envelope = serde_json::from_slice(json).map_err(|e| bad(e.to_string()))?;
        if env.kdf.name != "scrypt" {
            return Err(bad(format!(
                "key derivation {:?}, expected \"scrypt\"",
                env.kdf.name
            )));
        }
        if env.cipher.name != "nacl/secretbox" {
            return Err(bad(format!(
                "cipher {:?}, expected \"nacl/secretbox\"",
                env.cipher.name
            )));
        }
        let Params { N: n, r, p } = env.kdf.params;
        let log_n = n.checked_ilog2().unwrap_or(0);
        if !n.is_power_of_two()
            || log_n < 1
            || log_n > u32::from(MAX_SCRYPT_LOG_N)
            || r != 8
            || p != 1
        {
            return Err(PrivateKeyError::ScryptBounds { n, r, p });
        }
        let b64 = |what: &str, s: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .map_err(|e| bad(format!("{what}: {e}")))
        };
        let salt = b64("salt", &env.kdf.salt)?;
        let nonce = b64("nonce", &env.cipher.nonce)?;
        let nonce: [u8; 24] = nonce
            .try_into()
            .map_err(|v: Vec<u8>| bad(format!("nonce of {} bytes, expected 24", v.len())))?;
        let ciphertext = b64("ciphertext", &env.ciphertext)?;
        if ciphertext.len() < 16 {
            return Err(bad("ciphertext shorter than its tag".into()));
        }
        Ok(EncryptedKey {
            // log_n <= MAX_SCRYPT_LOG_N, checked above.
            log_n: log_n as u8,
            r: 8,
            p: 1,
            salt,
            nonce,
            ciphertext,
        })
    }
}

/// The label and DER body of the first PEM block of a private key file.
pub fn private_key_pem(text: &str) -> Result<(String, Vec<u8>), PrivateKeyError> {
    if text.len() > MAX_KEY_TEXT {
        return Err(PrivateKeyError::NotPem {
            reason: format!("{} bytes, more than {MAX_KEY_TEXT}", text.len()),
        });
    }
    let block = pem_block(text).ok_or_else(|| PrivateKeyError::NotPem {
        reason: "no -----BEGIN line".into(),
    })?;
    let (label, der) = pem::decode_vec(block.as_bytes()).map_err(|e| PrivateKeyError::NotPem {
        reason: e.to_string(),
    })?;
    Ok((label.to_string(), der))
}

#[cfg(test)]
mod tests;
