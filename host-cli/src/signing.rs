//! Signed bundles (issue 14, docs/provenance.md): private keys, and the `BUNDLE.sig` file
//! beside a bundle.
//!
//! The signature is cosign `sign-blob`'s: base64 of an ECDSA P-256 (SHA-256, DER) or Ed25519
//! signature over the exact bytes of the bundle's `ddiff.json`. `index.json` must be what
//! `ddiff.json` dictates and `ddiff.json` names every blob's digest and size, so this one
//! signature covers every byte a reader relies on. Verification is the core's
//! ([`ddiff_core::signature`]); this module reads keys and files and signs.
//!
//! Private keys: PEM PKCS#8 (`PRIVATE KEY`, P-256 or Ed25519), SEC1 (`EC PRIVATE KEY`), and
//! cosign's password-encrypted keys (scrypt + NaCl secretbox, whose plaintext is PKCS#8).
//! The password comes from `DDIFF_KEY_PASSWORD` or one line of standard input, never an
//! argument (arguments are visible to every user in `ps`).

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use ddiff_core::signature::{
    self, private_key_pem, EncryptedKey, PublicKey, COSIGN_KEY_LABELS, MAX_KEY_TEXT,
    MAX_SIGNATURE_TEXT,
};

use crate::durable;

/// The environment variable a key's password is read from.
pub const PASSWORD_ENV: &str = "DDIFF_KEY_PASSWORD";

/// `--sign-key` of `diff`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SignArgs {
    /// Sign the bundle with this private key (PEM PKCS#8 or SEC1 ECDSA P-256, PKCS#8
    /// Ed25519, or a cosign.key), writing BUNDLE.sig beside it: a cosign sign-blob
    /// signature over the bundle's ddiff.json, checked by `ddiff verify --key` and
    /// `ddiff load --key`. An encrypted key's password is read from DDIFF_KEY_PASSWORD, else
    /// from one line of standard input.
    #[arg(long, value_name = "KEY")]
    pub sign_key: Option<PathBuf>,
}

/// `--key` of `verify` and `load`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct KeyArgs {
    /// Check the bundle with this public key (PEM ECDSA P-256 or Ed25519, e.g. cosign.pub):
    /// BUNDLE.sig beside it must be the key's signature over the bundle's metadata. A bundle
    /// without BUNDLE.sig whose images carry cosign signatures has those checked instead
    /// (every target signed by the key); with neither, it is refused as unsigned.
    #[arg(long, value_name = "PUBLIC_KEY")]
    pub key: Option<PathBuf>,
}

/// The file that holds a bundle's signature: `BUNDLE.sig`.
pub fn signature_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(signature::BUNDLE_SIGNATURE_SUFFIX);
    PathBuf::from(s)
}

/// A private key ddiff signs with.
pub enum SigningKey {
    /// ECDSA P-256 with SHA-256; RFC 6979 deterministic nonces, so no randomness is needed.
    P256(p256::ecdsa::SigningKey),
    /// Ed25519 (deterministic by design).
    Ed25519(ed25519_dalek::SigningKey),
}

impl SigningKey {
    /// The signature bytes over `message` (DER for ECDSA, 64 bytes for Ed25519).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        use p256::ecdsa::signature::Signer as _;
        match self {
            SigningKey::P256(k) => {
                let sig: p256::ecdsa::Signature = k.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
            SigningKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
        }
    }

    /// The matching public key, as the core verifies with it.
    pub fn public_key(&self) -> Result<PublicKey> {
        use ed25519_dalek::pkcs8::EncodePublicKey as _;
        let der = match self {
            SigningKey::P256(k) => k.verifying_key().to_public_key_der(),
            SigningKey::Ed25519(k) => k.verifying_key().to_public_key_der(),
        }
        .map_err(|e| anyhow!("cannot encode the public key: {e}"))?;
        Ok(PublicKey::from_spki_der(der.as_bytes())?)
    }
}

/// Reads a private key file; an encrypted one is decrypted with the password from
/// [`PASSWORD_ENV`] or standard input.
pub fn read_signing_key(path: &Path) -> Result<SigningKey> {
    let where_ = || format!("signing key {}", path.display());
    let text = read_bounded(path, MAX_KEY_TEXT).with_context(where_)?;
    let (label, der) = private_key_pem(&text).with_context(where_)?;
    let key = if label == "PRIVATE KEY" {
        from_pkcs8(&der)
    } else if label == "EC PRIVATE KEY" {
        p256::SecretKey::from_sec1_der(&der)
            .map(|k| SigningKey::P256(k.into()))
            .map_err(|e| anyhow!("not an ECDSA P-256 key ({e})"))
    } else if COSIGN_KEY_LABELS.contains(&label.as_str()) {
        let envelope = EncryptedKey::parse(&der)?;
        let password = password(path)?;
        decrypt(&envelope, password.as_bytes()).and_then(|pkcs8| from_pkcs8(&pkcs8))
    } else if label == "ENCRYPTED PRIVATE KEY" {
        Err(anyhow!(
            "PKCS#8 password-encrypted keys are not read (decrypt it with `openssl pkcs8`, or use a cosign.key)"
        ))
    } else if label == "PUBLIC KEY" {
        Err(anyhow!(
            "this is a public key; signing needs the private key"
        ))
    } else {
        Err(anyhow!(
            "PEM block {label:?} is not a private key ddiff reads (PRIVATE KEY, EC PRIVATE KEY, ENCRYPTED SIGSTORE PRIVATE KEY)"
        ))
    };
    key.with_context(where_)
}

/// Reads a public key file.
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    let where_ = || format!("public key {}", path.display());
    let text = read_bounded(path, MAX_KEY_TEXT).with_context(where_)?;
    PublicKey::from_pem(&text).with_context(where_)
}

fn from_pkcs8(der: &[u8]) -> Result<SigningKey> {
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
        return Ok(SigningKey::P256(k));
    }
    match ed25519_dalek::SigningKey::from_pkcs8_der(der) {
        Ok(k) => Ok(SigningKey::Ed25519(k)),
        Err(e) => bail!("not an ECDSA P-256 or Ed25519 private key ({e})"),
    }
}

/// Opens a cosign encrypted key: scrypt(password, salt, N, r, p) gives the secretbox key.
fn decrypt(envelope: &EncryptedKey, password: &[u8]) -> Result<Vec<u8>> {
    use crypto_secretbox::aead::{Aead, KeyInit};
    let params = scrypt::Params::new(envelope.log_n, envelope.r, envelope.p, 32)
        .map_err(|e| anyhow!("scrypt parameters: {e}"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &envelope.salt, &params, &mut key)
        .map_err(|e| anyhow!("scrypt: {e}"))?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
    cipher
        .decrypt(&envelope.nonce.into(), envelope.ciphertext.as_slice())
        .map_err(|_| anyhow!("wrong password, or the key file is damaged"))
}

/// The password of an encrypted key: [`PASSWORD_ENV`], else one line of standard input
/// (not a terminal: its echo would show the password).
fn password(key: &Path) -> Result<String> {
    if let Ok(p) = std::env::var(PASSWORD_ENV) {
        return Ok(p);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        bail!(
            "{} is encrypted: set {PASSWORD_ENV} or pipe the password on standard input",
            key.display()
        );
    }
    let mut line = String::new();
    stdin
        .lock()
        .take(4096)
        .read_to_string(&mut line)
        .context("cannot read the key's password from standard input")?;
    let first = line.lines().next().unwrap_or_default();
    Ok(first.to_string())
}

/// Reads at most `max` bytes of a small text file (a larger one is refused, not read whole).
fn read_bounded(path: &Path, max: usize) -> Result<String> {
    let f = std::fs::File::open(path).context("cannot open")?;
    let mut buf = Vec::new();
    f.take(max as u64 + 1)
        .read_to_end(&mut buf)
        .context("cannot read")?;
    if buf.len() > max {
        bail!("larger than {max} bytes: not a key or signature file");
    }
    String::from_utf8(buf).map_err(|_| anyhow!("not text"))
}

/// Signs a bundle's `ddiff.json` bytes and writes `BUNDLE.sig` (crash-safe). The signature is
/// checked with the public key before it is written.
pub fn write_bundle_signature(
    bundle: &Path,
    meta_bytes: &[u8],
    key: &SigningKey,
) -> Result<PathBuf> {
    let sig = key.sign(meta_bytes);
    key.public_key()?
        .verify(meta_bytes, &sig)
        .context("internal error: the signature just made does not verify")?;
    let path = signature_path(bundle);
    durable::write_whole(
        &path,
        "signature",
        signature::encode_signature(&sig).as_bytes(),
    )
    .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// After `diff` wrote `bundle`: signs it with `key`, or, unsigned, removes a `BUNDLE.sig` left
/// from an earlier bundle of that name (it cannot match the new one). Returns the file written.
pub fn after_write(
    bundle: &Path,
    meta_bytes: &[u8],
    key: Option<&SigningKey>,
) -> Result<Option<PathBuf>> {
    match key {
        Some(k) => write_bundle_signature(bundle, meta_bytes, k).map(Some),
        None => {
            let stale = signature_path(bundle);
            match std::fs::remove_file(&stale) {
                Ok(()) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => {
                    Err(e).with_context(|| format!("cannot remove the stale {}", stale.display()))
                }
            }
        }
    }
}

/// Checks that every target of a verified bundle carries a cosign signature by `key` (the
/// core decides: [`ddiff_core::provenance::check_target_signature`]); returns one line per
/// target, or an error naming the first target without a valid signature.
pub fn check_image_signatures(
    bundle: &crate::bundle_io::VerifiedBundle,
    key: &PublicKey,
) -> Result<Vec<String>> {
    let meta = &bundle.report.meta;
    let json = |d: &ddiff_core::Digest| bundle.report.json_blobs.get(d).cloned();
    // Payloads are small JSON layers; a larger one is not a simple-signing payload.
    let mut payload = |d: &ddiff_core::Digest| {
        let i = meta.blobs.iter().position(|b| &b.digest == d)?;
        if meta.blobs[i].size > 1 << 20 {
            return None;
        }
        let mut v = Vec::new();
        crate::bundle_io::open_blob(bundle, i)
            .ok()?
            .read_to_end(&mut v)
            .ok()?;
        (ddiff_core::Digest::sha256(&v) == *d).then_some(v)
    };
    let mut lines = Vec::new();
    for (i, t) in meta.targets.iter().enumerate() {
        ddiff_core::provenance::check_target_signature(meta, i, key, &json, &mut payload).map_err(
            |why| {
                anyhow!(
                    "{}: target {} has no valid cosign signature by key {}: {why}",
                    bundle.path.display(),
                    ddiff_core::display::Safe(&t.reference),
                    key.key_id()
                )
            },
        )?;
        lines.push(format!(
            "image {} signed by {} key {}",
            ddiff_core::display::Safe(&t.reference),
            key.algorithm(),
            key.key_id()
        ));
    }
    Ok(lines)
}

/// A bundle signature that verified.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureOk {
    /// The signature file.
    pub file: PathBuf,
    /// `ECDSA-P256-SHA256` or `Ed25519`.
    pub algorithm: &'static str,
    /// The key's id (SHA-256 of its SubjectPublicKeyInfo).
    pub key_id: String,
}

/// Where the signature of a verified bundle is: `BUNDLE.sig`, for a volume set `NAME.sig`
/// in whichever directory of its volumes holds it.
pub fn signature_of(bundle: &Path, set: Option<&crate::volume_io::VolumeSet>) -> PathBuf {
    match set {
        Some(s) => s.side_file(signature::BUNDLE_SIGNATURE_SUFFIX),
        None => signature_path(bundle),
    }
}

/// Checks the signature file `path` (see [`signature_of`]) against `key` over the bundle's
/// exact `ddiff.json` bytes (empty for original DockerDiff bundles, which cannot be signed).
pub fn check_bundle_signature(
    bundle: &Path,
    path: PathBuf,
    meta_bytes: &[u8],
    key: &PublicKey,
) -> Result<SignatureOk> {
    if meta_bytes.is_empty() {
        bail!(
            "{}: an original DockerDiff bundle has no ddiff.json to sign, so --key cannot be checked",
            bundle.display()
        );
    }
    if !path.exists() {
        bail!(
            "{} is not signed: no {} beside it (made with `ddiff diff --sign-key`), and it carries no cosign signature of its images to check instead",
            bundle.display(),
            path.display()
        );
    }
    let text = read_bounded(&path, MAX_SIGNATURE_TEXT)
        .with_context(|| format!("signature {}", path.display()))?;
    key.verify_text(meta_bytes, text.as_bytes())
        .with_context(|| format!("{}: bundle signature refused", path.display()))?;
    Ok(SignatureOk {
        file: path,
        algorithm: key.algorithm(),
        key_id: key.key_id().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_made_here_verify_in_the_core_and_nowhere_else() {
        let p256 = SigningKey::P256(p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap());
        let ed = SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]));
        for key in [p256, ed] {
            let public = key.public_key().unwrap();
            let sig = key.sign(b"ddiff.json bytes");
            public.verify(b"ddiff.json bytes", &sig).unwrap();
            assert!(public.verify(b"ddiff.json bytes!", &sig).is_err());
            // Deterministic: the same bytes give the same signature (RFC 6979 / Ed25519).
            assert_eq!(key.sign(b"ddiff.json bytes"), sig);
        }
    }
}
