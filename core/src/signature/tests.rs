//! Keys and signatures made by OpenSSL 3 (`openssl ecparam`/`genpkey`, `openssl dgst -sha256
//! -sign`, `openssl pkeyutl -sign -rawin`), not by ddiff, so these tests check ddiff against
//! an independent implementation of the same formats cosign uses.

use super::*;

const MESSAGE: &[u8] = b"hello ddiff\n";

const EC_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXNjLcVg6DcaCcmG7zueG23JtAGxQ\nIU1kLWERBD1M7GOFZIP3uDDLo5Vz1QtGNwlPlq52TxMkohIWIfNxSiov4A==\n-----END PUBLIC KEY-----";
/// `openssl dgst -sha256 -sign ec.key msg | base64`: DER, low S.
const EC_SIG: &str = "MEQCIAnR1r/X5ve/HFGOkExe2640eTQQzVHEE7snmp2bPYnyAiAcdk2654SZyPz01KbM7HgSC2t3eyvcR7U9IKRT0JyyMA==";
/// The same signature with S replaced by n - S (valid; Go's verifier accepts it).
const EC_SIG_HIGH_S: &str = "MEUCIAnR1r/X5ve/HFGOkExe2640eTQQzVHEE7snmp2bPYnyAiEA44myRBh7ZjgDCytZMxOH7bF7gzJ7O1bPtpkmbyvGcyE=";
/// `openssl pkey -pubin -in ec.pub -outform DER | sha256sum`.
const EC_KEY_ID: &str = "sha256:7e677e76383a8d94a563196fc583041fed8e235ecccd3f39b1be3b677594468d";

const ED_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAC4Afk0loP8s8/K3nIvIQQhEGE7uL4ar4Nf+PX5A2RUU=\n-----END PUBLIC KEY-----";
/// `openssl pkeyutl -sign -inkey ed.key -rawin -in msg | base64`.
const ED_SIG: &str =
    "Jn6Etm7IpNCplWkf6+DHmlHRZzFsJLoMtluRdBMcNBNfC/98llvQJcnzyuGMZnhMZUeOk00lSgPbFcLMdIywBg==";

const RSA_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDTQNUoZue9BtMqKzbLvHh7EoTe\npdolDV6fcZPMDsQkMBU+9dNNyKQ9qggRyBANRnI4Gp3o9I1BIm3shy1+xFUd5IA9\nsWXRRjG0SJG/1ILqJgrmAQpecZjeXjVdbM8LdMpXGk0roYgAG/usPuL9ABOre0FC\nTgH++/YsGjGXPPh8VQIDAQAB\n-----END PUBLIC KEY-----";
const P384_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEDS6oPjofoMzLAIKX4UOFnxli1ZIh4ejN\n2VxkvMWCH0BEyJIgdSn5hyqeYAiWMnH3EIbjRfH9cCfY+hb4kRQ8yUpbl28iqc1J\n0BQnICxM0DFme6b6Vn9eaSqRnq9x5IZH\n-----END PUBLIC KEY-----";

#[test]
fn ecdsa_p256_signature_by_openssl_verifies() {
    let key = PublicKey::from_pem(EC_PUB).unwrap();
    assert_eq!(key.algorithm(), "ECDSA-P256-SHA256");
    assert_eq!(key.key_id().to_string(), EC_KEY_ID);
    key.verify_text(MESSAGE, EC_SIG.as_bytes()).unwrap();
    // cosign writes no newline, a shell redirect adds one: both are the same signature.
    key.verify_text(MESSAGE, format!("{EC_SIG}\n").as_bytes())
        .unwrap();
    key.verify_text(MESSAGE, EC_SIG_HIGH_S.as_bytes()).unwrap();
}

#[test]
fn ed25519_signature_by_openssl_verifies() {
    let key = PublicKey::from_pem(ED_PUB).unwrap();
    assert_eq!(key.algorithm(), "Ed25519");
    key.verify_text(MESSAGE, ED_SIG.as_bytes()).unwrap();
}

#[test]
fn another_message_or_key_is_a_mismatch() {
    let ec = PublicKey::from_pem(EC_PUB).unwrap();
    let ed = PublicKey::from_pem(ED_PUB).unwrap();
    for (key, sig) in [(&ec, EC_SIG), (&ed, ED_SIG)] {
        let err = key
            .verify_text(b"hello ddiff!", sig.as_bytes())
            .unwrap_err();
        assert!(matches!(err, SignatureError::Mismatch { .. }), "{err}");
    }
    // Each key given the other's signature: malformed for its algorithm, never accepted.
    assert!(ec.verify_text(MESSAGE, ED_SIG.as_bytes()).is_err());
    assert!(ed.verify_text(MESSAGE, EC_SIG.as_bytes()).is_err());
}

#[test]
fn every_flipped_bit_of_a_signature_or_message_is_refused() {
    for (pem, sig) in [(EC_PUB, EC_SIG), (ED_PUB, ED_SIG)] {
        let key = PublicKey::from_pem(pem).unwrap();
        let sig = decode_signature(sig.as_bytes()).unwrap();
        for i in 0..sig.len() * 8 {
            let mut bad = sig.clone();
            bad[i / 8] ^= 1 << (i % 8);
            // Flipping the top bit of S's sign byte can give the high-S twin, which is
            // valid: the DER parser refuses the negative integer instead.
            assert!(
                key.verify(MESSAGE, &bad).is_err(),
                "{} bit {i}",
                key.algorithm()
            );
        }
        for i in 0..MESSAGE.len() * 8 {
            let mut bad = MESSAGE.to_vec();
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                key.verify(&bad, &sig).is_err(),
                "{} message bit {i}",
                key.algorithm()
            );
        }
    }
}

#[test]
fn keys_ddiff_does_not_verify_with_are_named() {
    let rsa = PublicKey::from_pem(RSA_PUB).unwrap_err();
    assert_eq!(
        rsa.to_string(),
        "unsupported key algorithm RSA (ddiff verifies ECDSA P-256 and Ed25519 keys)"
    );
    let p384 = PublicKey::from_pem(P384_PUB).unwrap_err();
    assert!(p384.to_string().contains("curve 1.3.132.0.34"), "{p384}");
    let private =
        "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
    assert_eq!(
        PublicKey::from_pem(private).unwrap_err(),
        SignatureError::WrongPemLabel {
            found: "PRIVATE KEY".into()
        }
    );
    assert!(matches!(
        PublicKey::from_pem("not a key").unwrap_err(),
        SignatureError::NotPem { .. }
    ));
    let truncated = ED_PUB.replace("RUU=", "");
    assert!(PublicKey::from_pem(&truncated).is_err());
    let huge = "A".repeat(MAX_KEY_TEXT + 1);
    assert!(matches!(
        PublicKey::from_pem(&huge).unwrap_err(),
        SignatureError::NotPem { .. }
    ));
}

#[test]
fn text_around_the_pem_block_is_ignored() {
    let text = format!("the release key, 2026\n{EC_PUB}\ntrailing words\n");
    let key = PublicKey::from_pem(&text).unwrap();
    key.verify_text(MESSAGE, EC_SIG.as_bytes()).unwrap();
}

#[test]
fn signature_text_that_is_not_base64_is_named() {
    let key = PublicKey::from_pem(ED_PUB).unwrap();
    for bad in [
        "",
        "  \n",
        "not base64!",
        &"A".repeat(MAX_SIGNATURE_TEXT + 1),
    ] {
        let err = key.verify_text(MESSAGE, bad.as_bytes()).unwrap_err();
        assert!(
            matches!(err, SignatureError::BadEncoding { .. }),
            "{bad:?}: {err}"
        );
    }
    let sig = decode_signature(ED_SIG.as_bytes()).unwrap();
    assert_eq!(encode_signature(&sig), ED_SIG);
}

fn envelope(n: u64, r: u64, p: u64) -> String {
    format!(
        r#"{{"kdf":{{"name":"scrypt","params":{{"N":{n},"r":{r},"p":{p}}},"salt":"c2FsdA=="}},"cipher":{{"name":"nacl/secretbox","nonce":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}},"ciphertext":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}}"#
    )
}

#[test]
fn cosign_key_envelopes_within_cosigns_parameters_parse() {
    for log_n in [15u8, 16, 17] {
        let k = EncryptedKey::parse(envelope(1 << log_n, 8, 1).as_bytes()).unwrap();
        assert_eq!((k.log_n, k.r, k.p), (log_n, 8, 1));
        assert_eq!(k.salt, b"salt");
        assert_eq!(k.ciphertext.len(), 24);
    }
}

/// A crafted key must not make scrypt allocate more than cosign's strongest setting does.
#[test]
fn cosign_key_envelopes_beyond_cosigns_parameters_are_refused_before_work() {
    for (n, r, p) in [
        (1u64 << 18, 8, 1),
        (1 << 40, 8, 1),
        (u64::MAX, 8, 1),
        (65535, 8, 1),
        (0, 8, 1),
        (1 << 16, 1024, 1),
        (1 << 16, 8, 16),
    ] {
        let err = EncryptedKey::parse(envelope(n, r, p).as_bytes()).unwrap_err();
        assert_eq!(err, PrivateKeyError::ScryptBounds { n, r, p });
    }
    let other_kdf = envelope(1 << 15, 8, 1).replace("scrypt", "pbkdf2");
    assert!(matches!(
        EncryptedKey::parse(other_kdf.as_bytes()).unwrap_err(),
        PrivateKeyError::BadEnvelope { .. }
    ));
    let short_nonce =
        envelope(1 << 15, 8, 1).replace("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}", "AAAA\"}");
    assert!(EncryptedKey::parse(short_nonce.as_bytes()).is_err());
    assert!(EncryptedKey::parse(b"{}").is_err());
}
