use super::*;
use crate::bundle::{Decoder, Event};
use crate::synth_bundle::{sample, SampleOptions};
use crate::{Descriptor, RawManifest};

/// OpenSSL 3 made these (`openssl dgst -sha256 -sign` with the key of
/// `signature/tests.rs`'s `EC_PUB`) over the payload cosign signs, naming `TARGET`.
const EC_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEXNjLcVg6DcaCcmG7zueG23JtAGxQ\nIU1kLWERBD1M7GOFZIP3uDDLo5Vz1QtGNwlPlq52TxMkohIWIfNxSiov4A==\n-----END PUBLIC KEY-----\n";
const TARGET: &str = "sha256:34a04005bcaf206eec990bd9637d9fdb6725e0a0c0d4aebf003f17f4c956eb5c";
const PAYLOAD: &str = r#"{"critical":{"identity":{"docker-reference":"localhost:5000/app"},"image":{"docker-manifest-digest":"sha256:34a04005bcaf206eec990bd9637d9fdb6725e0a0c0d4aebf003f17f4c956eb5c"},"type":"cosign container image signature"},"optional":null}"#;
const PAYLOAD_SIG: &str = "MEQCIETYslkwnb6zfGGJuz6mrdQ098VNloJsc+E1D4w1JCrMAiBeAzLhEPZnodiXfJ0/ds4rCCq9Ji6WKh+OloK8+10uPA==";

/// A cosign `.sig` manifest as cosign writes it: an OCI image manifest whose layer is the
/// payload, annotated with its signature.
fn sig_manifest(
    payload: &[u8],
    sig: &str,
    extra: &[(&str, &str)],
) -> (RawManifest, Vec<u8>, Vec<u8>) {
    let d = Digest::sha256(payload);
    let config = format!(
        r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{d}"]}},"config":{{}}}}"#
    )
    .into_bytes();
    let mut ann = serde_json::Map::new();
    ann.insert(SIGNATURE_ANNOTATION.into(), sig.into());
    for (k, v) in extra {
        ann.insert((*k).into(), (*v).into());
    }
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": Digest::sha256(&config).to_string()},
        "layers": [{"mediaType": SIMPLE_SIGNING_MEDIA_TYPE, "size": payload.len(), "digest": d.to_string(), "annotations": ann}],
    });
    let bytes = serde_json::to_vec(&m).unwrap();
    (
        RawManifest::parse(bytes, None).unwrap(),
        config,
        payload.to_vec(),
    )
}

fn verdict(m: &RawManifest, target: &str, pem: &str, payload: &[u8]) -> SignatureVerdict {
    let key = PublicKey::from_pem(pem).unwrap();
    let img = m.as_image().unwrap();
    let pd = Digest::sha256(payload);
    verify_simple_signing(img, &Digest::parse(target).unwrap(), &key, &mut |d| {
        (d == &pd).then(|| payload.to_vec())
    })
}

#[test]
fn cosign_tags_are_derived_from_the_subject() {
    let d = Digest::parse(TARGET).unwrap();
    assert_eq!(
        cosign_tag(&d, ArtifactKind::Signature).unwrap(),
        "sha256-34a04005bcaf206eec990bd9637d9fdb6725e0a0c0d4aebf003f17f4c956eb5c.sig"
    );
    assert!(cosign_tag(&d, ArtifactKind::Sbom)
        .unwrap()
        .ends_with(".sbom"));
    assert!(cosign_tag(&d, ArtifactKind::Attestation)
        .unwrap()
        .ends_with(".att"));
    assert_eq!(cosign_tag(&d, ArtifactKind::Referrer), None);
    assert_eq!(
        referrers_fallback_tag(&d),
        "sha256-34a04005bcaf206eec990bd9637d9fdb6725e0a0c0d4aebf003f17f4c956eb5c"
    );
}

#[test]
fn a_simple_signing_signature_by_the_key_over_the_target_is_valid() {
    let (m, _, p) = sig_manifest(PAYLOAD.as_bytes(), PAYLOAD_SIG, &[]);
    assert_eq!(verdict(&m, TARGET, EC_PUB, &p), SignatureVerdict::Valid);
}

#[test]
fn wrong_key_tampered_payload_other_target_and_no_signature_are_invalid() {
    let (m, _, p) = sig_manifest(PAYLOAD.as_bytes(), PAYLOAD_SIG, &[]);
    let ed = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAC4Afk0loP8s8/K3nIvIQQhEGE7uL4ar4Nf+PX5A2RUU=\n-----END PUBLIC KEY-----\n";
    assert!(matches!(
        verdict(&m, TARGET, ed, &p),
        SignatureVerdict::Invalid(_)
    ));
    // The signature is right but names another image.
    let other = format!("sha256:{}", "0".repeat(64));
    match verdict(&m, &other, EC_PUB, &p) {
        SignatureVerdict::Invalid(r) => assert!(r[0].contains("signed payload names"), "{r:?}"),
        v => panic!("{v:?}"),
    }
    // One byte of the payload changed (the manifest re-made around it).
    let tampered = PAYLOAD.replace("localhost:5000", "localhost:5001");
    let (m2, _, p2) = sig_manifest(tampered.as_bytes(), PAYLOAD_SIG, &[]);
    match verdict(&m2, TARGET, EC_PUB, &p2) {
        SignatureVerdict::Invalid(r) => assert!(r[0].contains("does not match"), "{r:?}"),
        v => panic!("{v:?}"),
    }
    // A keyless signature is said to be one.
    let (m3, _, p3) = sig_manifest(
        tampered.as_bytes(),
        PAYLOAD_SIG,
        &[(CERTIFICATE_ANNOTATION, "cert")],
    );
    match verdict(&m3, TARGET, EC_PUB, &p3) {
        SignatureVerdict::Invalid(r) => assert!(r[0].contains("keyless"), "{r:?}"),
        v => panic!("{v:?}"),
    }
    // The payload missing from the bundle.
    let key = PublicKey::from_pem(EC_PUB).unwrap();
    let v = verify_simple_signing(
        m.as_image().unwrap(),
        &Digest::parse(TARGET).unwrap(),
        &key,
        &mut |_| None,
    );
    assert!(matches!(v, SignatureVerdict::Invalid(_)));
}

fn decode_all(bytes: &[u8]) -> Result<(), crate::bundle::BundleError> {
    let mut d = Decoder::new();
    let mut rest = bytes;
    loop {
        let (n, ev) = d.decode(rest)?;
        rest = &rest[n..];
        if let Some(Event::End(_)) = ev {
            return Ok(());
        }
        if n == 0 && ev.is_none() {
            return d.finish();
        }
    }
}

/// A sample bundle with a cosign signature of its first target attached (and, with
/// `referrer`, the same manifest as a referrer with a `subject`).
fn with_signature(kind: ArtifactKind) -> crate::synth_bundle::Sample {
    let mut s = sample(SampleOptions::default());
    let t = s.meta.targets[0].clone();
    let (mut m, config, payload) = sig_manifest(PAYLOAD.as_bytes(), PAYLOAD_SIG, &[]);
    if kind == ArtifactKind::Referrer {
        let mut v: serde_json::Value = serde_json::from_slice(m.bytes()).unwrap();
        v["subject"] = serde_json::to_value(Descriptor::new(
            t.media_type.clone(),
            t.digest.clone(),
            t.size,
        ))
        .unwrap();
        m = RawManifest::parse(serde_json::to_vec(&v).unwrap(), None).unwrap();
    }
    let blob = |b: &[u8], mt: &str, kind| BlobInfo {
        digest: Digest::sha256(b),
        size: b.len() as u64,
        media_type: MediaType::parse(mt),
        kind,
        patch: None,
    };
    let blobs = vec![
        blob(
            m.bytes(),
            "application/vnd.oci.image.manifest.v1+json",
            BlobKind::Manifest,
        ),
        blob(
            &config,
            "application/vnd.oci.image.config.v1+json",
            BlobKind::Config,
        ),
        blob(&payload, SIMPLE_SIGNING_MEDIA_TYPE, BlobKind::Layer),
    ];
    for (b, bytes) in blobs.iter().zip([m.bytes().to_vec(), config, payload]) {
        s.blobs.insert(b.digest.clone(), bytes);
    }
    let a = Artifact {
        subject: t.digest.clone(),
        kind,
        digest: m.digest().clone(),
        media_type: m.media_type().clone(),
        size: m.bytes().len() as u64,
    };
    attach(&mut s.meta, blobs, vec![a]).unwrap();
    s
}

#[test]
fn bundles_with_artifacts_are_version_2_and_decode() {
    for kind in [ArtifactKind::Signature, ArtifactKind::Referrer] {
        let s = with_signature(kind);
        assert_eq!(s.meta.version, 2);
        assert_eq!(s.meta.needed_version(), 2);
        // JSON blobs stay before layers.
        let first_layer = s.meta.blobs.iter().position(|b| !b.kind.is_json()).unwrap();
        assert!(s.meta.blobs[first_layer..]
            .iter()
            .all(|b| !b.kind.is_json()));
        decode_all(&s.encode()).unwrap();
    }
    // Without artifacts a bundle stays version 1, readable by older ddiff.
    assert_eq!(sample(SampleOptions::default()).meta.version, 1);
}

#[test]
fn crafted_artifact_lists_are_refused() {
    let s = with_signature(ArtifactKind::Signature);
    // Claiming version 1 with artifacts.
    let mut m = s.meta.clone();
    m.version = 1;
    assert!(m.validate().is_err());
    // An artifact of something that is not a target.
    let mut m = s.meta.clone();
    m.artifacts[0].subject = Digest::sha256(b"not a target");
    assert!(m.validate().is_err());
    // An artifact whose manifest is not carried.
    let mut m = s.meta.clone();
    m.artifacts[0].digest = Digest::sha256(b"elsewhere");
    assert!(m.validate().is_err());
    // The same cosign kind twice for one subject (one tag, two manifests).
    let mut m = s.meta.clone();
    let a = m.artifacts[0].clone();
    m.artifacts.push(a);
    assert!(m.validate().is_err());
    // A version this crate does not know.
    let mut m = s.meta.clone();
    m.version = 3;
    let bytes = m.to_bytes();
    assert!(BundleMeta::parse(&bytes).is_err());
}

#[test]
fn a_referrer_whose_subject_is_another_image_is_refused_by_the_decoder() {
    let mut s = with_signature(ArtifactKind::Referrer);
    // The same referrer listed as one of another target image: its `subject` disagrees.
    let other = s
        .meta
        .targets
        .iter()
        .flat_map(|t| &t.images)
        .map(|i| i.manifest.clone())
        .find(|d| d != &s.meta.artifacts[0].subject);
    let Some(other) = other else {
        // The sample's first target is one image with its manifest as top: use a signature
        // kind mislabelled as a referrer instead.
        let mut s2 = with_signature(ArtifactKind::Signature);
        s2.meta.artifacts[0].kind = ArtifactKind::Referrer;
        let err = decode_all(&s2.encode()).unwrap_err();
        assert!(err.to_string().contains("referrer's subject"), "{err}");
        return;
    };
    s.meta.artifacts[0].subject = other;
    let err = decode_all(&s.encode()).unwrap_err();
    assert!(err.to_string().contains("referrer's subject"), "{err}");
}

#[test]
fn a_target_is_signed_only_by_a_carried_signature_that_verifies() {
    let s = with_signature(ArtifactKind::Signature);
    let key = PublicKey::from_pem(EC_PUB).unwrap();
    let json = |d: &Digest| s.blobs.get(d).cloned();
    let mut payload = |d: &Digest| s.blobs.get(d).cloned();
    // The sample's target is not the digest the fixture's payload names: refused, saying so.
    let err = check_target_signature(&s.meta, 0, &key, &json, &mut payload).unwrap_err();
    assert!(err.contains("signed payload names"), "{err}");
    // A bundle without artifacts: refused by name.
    let plain = sample(SampleOptions::default());
    let json = |d: &Digest| plain.blobs.get(d).cloned();
    let mut payload = |d: &Digest| plain.blobs.get(d).cloned();
    let err = check_target_signature(&plain.meta, 0, &key, &json, &mut payload).unwrap_err();
    assert_eq!(err, "no cosign signature is carried for it");
}

/// `--key` checks what is there and never nothing: the bundle signature when present, the
/// images' cosign signatures when asked or when they stand in for a missing `BUNDLE.sig`.
#[test]
fn key_checks_cover_what_is_signed_and_never_nothing() {
    let mut meta = sample(SampleOptions::default()).meta;
    let k = |m: &BundleMeta, sig, req| {
        let c = key_checks(m, sig, req);
        (c.bundle_signature, c.image_signatures)
    };
    // No cosign signature carried.
    assert_eq!(k(&meta, true, false), (true, false));
    assert_eq!(k(&meta, false, false), (true, false)); // fails as unsigned
    assert_eq!(k(&meta, true, true), (true, true));
    assert_eq!(k(&meta, false, true), (false, true));
    // A cosign signature carried (an attestation alone does not count).
    let art = |kind| Artifact {
        subject: meta.targets[0].digest.clone(),
        kind,
        digest: Digest::sha256(b"sig manifest"),
        media_type: crate::MediaType::OciManifest,
        size: 12,
    };
    meta.artifacts.push(art(ArtifactKind::Attestation));
    assert_eq!(k(&meta, false, false), (true, false));
    meta.artifacts.push(art(ArtifactKind::Signature));
    assert_eq!(k(&meta, true, false), (true, false));
    assert_eq!(k(&meta, false, false), (false, true));
    assert_eq!(k(&meta, true, true), (true, true));
    assert_eq!(k(&meta, false, true), (false, true));
}
