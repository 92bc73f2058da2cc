//! Image provenance across the gap (issue 14): a target signed the way cosign signs (a
//! `sha256-<hex>.sig` simple-signing manifest whose signature OpenSSL makes), with an
//! attestation (`.att`, an in-toto SPDX SBOM statement in a DSSE envelope) and an OCI 1.1
//! referrer, pushed by skopeo (a peer we did not write) to a `ddiff server`; `ddiff diff`
//! carries them, and `ddiff load` writes them into another `ddiff server` (referrers API) and
//! into Debian's `docker-registry` (no referrers API: the `sha256-<hex>` fallback tag), where
//! each is found byte for byte.

use std::path::Path;
use std::process::Command;

use base64::Engine as _;
use ddiff_core::provenance::{SIGNATURE_ANNOTATION, SIMPLE_SIGNING_MEDIA_TYPE};
use ddiff_core::Digest;
use serde_json::json;

use crate::common::{ddiff, fails, require_peer, run, skopeo, DdiffServer, RefRegistry};
use crate::oci_archive::images;

/// Adds a blob to a layout and returns its descriptor fields.
fn put(layout: &Path, bytes: &[u8]) -> (String, usize) {
    let d = Digest::sha256(bytes);
    std::fs::write(layout.join("blobs/sha256").join(d.hex()), bytes).unwrap();
    (d.to_string(), bytes.len())
}

/// An OCI image manifest of one layer, as cosign writes its `.sig`/`.att` manifests: a config
/// whose diff_ids name the layer, and annotations on the layer.
fn cosign_manifest(layout: &Path, layer: &[u8], layer_mt: &str, ann: serde_json::Value) -> Vec<u8> {
    let (ld, ls) = put(layout, layer);
    let config = json!({"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":[ld]},"config":{}});
    let config = serde_json::to_vec(&config).unwrap();
    let (cd, cs) = put(layout, &config);
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": cs, "digest": cd},
        "layers": [{"mediaType": layer_mt, "size": ls, "digest": ld, "annotations": ann}],
    });
    let bytes = serde_json::to_vec(&m).unwrap();
    put(layout, &bytes);
    bytes
}

struct Signed {
    app: String,
    sig: Vec<u8>,
    att: Vec<u8>,
    referrer: Vec<u8>,
}

/// Adds to the app layout a cosign signature of its manifest (key `key`), an attestation and
/// an OCI referrer, each as an `index.json` entry with the tag it is pushed under.
fn sign_layout(dir: &Path, layout: &Path, key: &Path) -> Signed {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let app = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let app_size = index["manifests"][0]["size"].as_u64().unwrap();
    let hex = app.trim_start_matches("sha256:");
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"app"}},"image":{{"docker-manifest-digest":"{app}"}},"type":"cosign container image signature"}},"optional":null}}"#
    );
    let pfile = dir.join("payload.json");
    std::fs::write(&pfile, &payload).unwrap();
    let out = run(Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key)
        .arg(&pfile));
    let sig_b64 = base64::engine::general_purpose::STANDARD.encode(&out.stdout);
    let sig = cosign_manifest(
        layout,
        payload.as_bytes(),
        SIMPLE_SIGNING_MEDIA_TYPE,
        json!({ SIGNATURE_ANNOTATION: sig_b64 }),
    );
    let statement = json!({"_type":"https://in-toto.io/Statement/v0.1","predicateType":"https://spdx.dev/Document","subject":[{"name":"app","digest":{"sha256":hex}}],"predicate":{"spdxVersion":"SPDX-2.3","name":"app"}});
    let envelope = json!({"payloadType":"application/vnd.in-toto+json","payload": base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&statement).unwrap()),"signatures":[{"keyid":"","sig":"c2ln"}]});
    let att = cosign_manifest(
        layout,
        &serde_json::to_vec(&envelope).unwrap(),
        "application/vnd.dsse.envelope.v1+json",
        json!({"predicateType": "https://spdx.dev/Document"}),
    );
    // An OCI 1.1 referrer (as `oras attach` writes one): empty config, a subject.
    let (ed, es) = put(layout, b"{}");
    let (ld, ls) = put(layout, b"SPDX-2.3 document of app");
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "artifactType": "application/spdx+json",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "size": es, "digest": ed},
        "layers": [{"mediaType": "application/spdx+json", "size": ls, "digest": ld}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": app_size, "digest": app},
    }))
    .unwrap();
    put(layout, &referrer);
    let mut index = index;
    let list = index["manifests"].as_array_mut().unwrap();
    for (bytes, tag) in [
        (&sig, format!("sha256-{hex}.sig")),
        (&att, format!("sha256-{hex}.att")),
        (&referrer, "referrer".to_string()),
    ] {
        list.push(json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": Digest::sha256(bytes).to_string(),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": tag},
        }));
    }
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    Signed {
        app,
        sig,
        att,
        referrer,
    }
}

fn copy(from: String, to: String) {
    run(skopeo()
        .args([
            "copy",
            "--quiet",
            "--preserve-digests",
            "--dest-tls-verify=false",
        ])
        .arg(from)
        .arg(to));
}

/// `GET /v2/<repo>/manifests/<reference>`'s body, or `None` on 404.
fn get(addr: &str, path: &str) -> Option<Vec<u8>> {
    let out = Command::new("curl")
        .args(["-sf", "-H", "Accept: application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

/// Every file under a registry's storage with its bytes (upload scratch space excluded).
fn listing(root: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    crate::common::files_under(root)
        .into_iter()
        .filter(|f| {
            let name = f.to_string_lossy();
            !name.contains("_uploads") && !name.contains(".tmp")
        })
        .map(|f| {
            let bytes = std::fs::read(root.join(&f)).unwrap_or_default();
            (f, bytes)
        })
        .collect()
}

#[test]
fn signatures_attestations_and_referrers_cross_the_gap_byte_identical() {
    if !require_peer("skopeo") || !require_peer("docker-registry") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path());
    run(Command::new("openssl").current_dir(dir.path()).args([
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "cosign.key",
    ]));
    let s = sign_layout(dir.path(), &imgs.app_dir, &dir.path().join("cosign.key"));
    let hex = s.app.trim_start_matches("sha256:").to_string();

    let online = DdiffServer::start(&dir.path().join("online"), &[]);
    let o = &online.addr;
    copy(
        format!("oci:{}:1", imgs.base_dir.display()),
        format!("docker://{o}/base:1"),
    );
    for tag in [
        "2",
        &format!("sha256-{hex}.sig"),
        &format!("sha256-{hex}.att"),
        "referrer",
    ] {
        copy(
            format!("oci:{}:{tag}", imgs.app_dir.display()),
            format!("docker://{o}/app:{tag}"),
        );
    }
    // skopeo kept the bytes: the online side holds exactly these manifests.
    assert_eq!(
        get(o, &format!("/v2/app/manifests/sha256-{hex}.sig")).unwrap(),
        s.sig
    );

    let bundle = dir.path().join("app.ddiff");
    let out = run(ddiff()
        .args([
            "diff",
            &format!("docker://{o}/base:1"),
            &format!("docker://{o}/app:2"),
            "-o",
        ])
        .arg(&bundle));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("carries 3 provenance artifact(s)"), "{said}");
    let shown = run(ddiff().arg("inspect").arg(&bundle));
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.contains("Provenance (3 artifact(s)"), "{shown}");
    assert!(
        shown.contains("attestation") && shown.contains("https://spdx.dev/Document"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("(tag sha256-{hex}.sig)")),
        "{shown}"
    );
    assert!(
        shown.contains("referrer") && shown.contains("application/spdx+json"),
        "{shown}"
    );
    run(Command::new("openssl").current_dir(dir.path()).args([
        "pkey",
        "-in",
        "cosign.key",
        "-pubout",
        "-out",
        "cosign.pub",
    ]));
    let v = run(ddiff()
        .args(["verify", "--require-signature", "--key"])
        .arg(dir.path().join("cosign.pub"))
        .arg(&bundle));
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.contains("image ") && v.contains(" signed by ECDSA-P256-SHA256 key"),
        "{v}"
    );
    // The bundle itself is not signed (no BUNDLE.sig): `--key` alone checks the images'
    // cosign signatures instead, and a foreign key is refused naming the target.
    let v = run(ddiff()
        .args(["verify", "--key"])
        .arg(dir.path().join("cosign.pub"))
        .arg(&bundle));
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(v.contains(" signed by ECDSA-P256-SHA256 key"), "{v}");
    run(Command::new("openssl").current_dir(dir.path()).args([
        "genpkey",
        "-algorithm",
        "ed25519",
        "-out",
        "other.key",
    ]));
    run(Command::new("openssl").current_dir(dir.path()).args([
        "pkey",
        "-in",
        "other.key",
        "-pubout",
        "-out",
        "other.pub",
    ]));
    let v = fails(
        ddiff()
            .args(["verify", "--key"])
            .arg(dir.path().join("other.pub"))
            .arg(&bundle),
    );
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.contains("IMAGE SIGNATURE REFUSED") && v.contains("app:2"),
        "{v}"
    );
    // --no-provenance leaves them out (and the bundle stays version 1).
    let plain = dir.path().join("plain.ddiff");
    let out = run(ddiff()
        .args([
            "diff",
            "--no-provenance",
            &format!("docker://{o}/base:1"),
            &format!("docker://{o}/app:2"),
            "-o",
        ])
        .arg(&plain));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("provenance"));
    let v = fails(
        ddiff()
            .args(["verify", "--require-signature", "--key"])
            .arg(dir.path().join("cosign.pub"))
            .arg(&plain),
    );
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.contains("IMAGE SIGNATURE REFUSED") && v.contains("no cosign signature is carried"),
        "{v}"
    );
    // Without --require-signature: neither a BUNDLE.sig nor image signatures to check.
    let v = fails(
        ddiff()
            .args(["verify", "--key"])
            .arg(dir.path().join("cosign.pub"))
            .arg(&plain),
    );
    let v = String::from_utf8_lossy(&v.stdout);
    assert!(
        v.contains("is not signed") && v.contains("no cosign signature of its images"),
        "{v}"
    );

    // A bundle whose signature was tampered with at the source (its last base64 character
    // changed, the manifest otherwise cosign's).
    let mut v: serde_json::Value = serde_json::from_slice(&s.sig).unwrap();
    let good = v["layers"][0]["annotations"][SIGNATURE_ANNOTATION]
        .as_str()
        .unwrap()
        .to_string();
    let mut bad = good.into_bytes();
    let at = bad.len() - 4;
    bad[at] = if bad[at] == b'A' { b'B' } else { b'A' };
    v["layers"][0]["annotations"][SIGNATURE_ANNOTATION] = json!(String::from_utf8(bad).unwrap());
    let tampered_sig = dir.path().join("tampered-sig.json");
    std::fs::write(&tampered_sig, serde_json::to_vec(&v).unwrap()).unwrap();
    let online2 = DdiffServer::start(&dir.path().join("online2"), &[]);
    let o2 = &online2.addr;
    copy(
        format!("oci:{}:1", imgs.base_dir.display()),
        format!("docker://{o2}/base:1"),
    );
    copy(
        format!("oci:{}:2", imgs.app_dir.display()),
        format!("docker://{o2}/app:2"),
    );
    // The signature's blobs, then the tampered manifest under cosign's tag.
    copy(
        format!("oci:{}:sha256-{hex}.sig", imgs.app_dir.display()),
        format!("docker://{o2}/app:sig-blobs"),
    );
    let put = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.manifest.v1+json",
            "--data-binary",
        ])
        .arg(format!("@{}", tampered_sig.display()))
        .arg(format!("http://{o2}/v2/app/manifests/sha256-{hex}.sig"))
        .status()
        .unwrap();
    assert!(put.success());
    let tampered = dir.path().join("tampered.ddiff");
    run(ddiff()
        .args([
            "--quiet",
            "diff",
            &format!("docker://{o2}/base:1"),
            &format!("docker://{o2}/app:2"),
            "-o",
        ])
        .arg(&tampered));
    let ossl = |args: &[&str]| run(Command::new("openssl").current_dir(dir.path()).args(args));
    ossl(&["pkey", "-in", "cosign.key", "-pubout", "-out", "cosign.pub"]);
    ossl(&["genpkey", "-algorithm", "ed25519", "-out", "other.key"]);
    ossl(&["pkey", "-in", "other.key", "-pubout", "-out", "other.pub"]);
    let public = dir.path().join("cosign.pub");

    // Into another ddiff server (referrers API) and into docker-registry (fallback tag).
    let offline = DdiffServer::start(&dir.path().join("offline"), &[]);
    let reference = RefRegistry::start(&dir.path().join("ref"));
    for (addr, has_api, root) in [
        (&offline.addr, true, dir.path().join("offline")),
        (&reference.addr, false, dir.path().join("ref")),
    ] {
        copy(
            format!("oci:{}:1", imgs.base_dir.display()),
            format!("docker://{addr}/base:1"),
        );
        // --require-signature refuses the wrong key, a tampered signature and none, before
        // writing anything.
        let before = listing(&root);
        for (b, key, why) in [
            (
                &bundle,
                dir.path().join("other.pub"),
                "malformed Ed25519 signature",
            ),
            (&tampered, public.clone(), "does not match"),
            (&plain, public.clone(), "no cosign signature is carried"),
        ] {
            let o = fails(
                ddiff()
                    .args([
                        "--quiet",
                        "load",
                        "--no-pull",
                        "--require-signature",
                        "--key",
                    ])
                    .arg(&key)
                    .arg(b)
                    .arg("--to")
                    .arg(format!("docker://{addr}")),
            );
            let e = String::from_utf8_lossy(&o.stderr);
            assert!(e.contains("has no valid cosign signature"), "{e}");
            assert!(e.contains(why), "{why}: {e}");
            assert_eq!(
                listing(&root),
                before,
                "{addr}: {why}: the destination changed"
            );
        }
        run(ddiff()
            .args([
                "--quiet",
                "load",
                "--no-pull",
                "--require-signature",
                "--key",
            ])
            .arg(&public)
            .arg(&bundle)
            .arg("--to")
            .arg(format!("docker://{addr}")));
        let by_tag = |t: &str| get(addr, &format!("/v2/app/manifests/{t}"));
        assert_eq!(
            by_tag(&format!("sha256-{hex}.sig")).unwrap(),
            s.sig,
            "{addr}"
        );
        assert_eq!(
            by_tag(&format!("sha256-{hex}.att")).unwrap(),
            s.att,
            "{addr}"
        );
        let rd = Digest::sha256(&s.referrer);
        assert_eq!(by_tag(&rd.to_string()).unwrap(), s.referrer, "{addr}");
        let listed = if has_api {
            get(addr, &format!("/v2/app/referrers/{}", s.app)).unwrap()
        } else {
            assert!(get(addr, &format!("/v2/app/referrers/{}", s.app)).is_none());
            by_tag(&format!("sha256-{hex}")).unwrap()
        };
        let v: serde_json::Value = serde_json::from_slice(&listed).unwrap();
        let digests: Vec<&str> = v["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["digest"].as_str().unwrap())
            .collect();
        assert!(digests.contains(&rd.to_string().as_str()), "{addr}: {v}");
        // Every blob of the signature is there, byte for byte (skopeo verifies digests).
        let out_dir = dir.path().join(format!("sig-{has_api}"));
        run(skopeo()
            .args(["copy", "--quiet", "--src-tls-verify=false"])
            .arg(format!("docker://{addr}/app:sha256-{hex}.sig"))
            .arg(format!("oci:{}:sig", out_dir.display())));
    }

    // Into an OCI layout holding the base: the artifacts' blobs byte for byte, the cosign
    // tags as named entries, the referrer as an entry whose manifest keeps its subject.
    let layout = dir.path().join("dest-layout");
    run(Command::new("cp")
        .arg("-r")
        .arg(&imgs.base_dir)
        .arg(&layout));
    run(ddiff()
        .args(["--quiet", "load", "--require-signature", "--key"])
        .arg(&public)
        .arg(&bundle)
        .arg("--to")
        .arg(format!("oci:{}", layout.display())));
    for bytes in [&s.sig, &s.att, &s.referrer] {
        let d = Digest::sha256(bytes);
        assert_eq!(
            &std::fs::read(layout.join("blobs/sha256").join(d.hex())).unwrap(),
            bytes
        );
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    let named = |t: &str| {
        entries
            .iter()
            .find(|e| e["annotations"]["org.opencontainers.image.ref.name"] == t)
            .map(|e| e["digest"].as_str().unwrap().to_string())
    };
    assert_eq!(
        named(&format!("sha256-{hex}.sig")),
        Some(Digest::sha256(&s.sig).to_string())
    );
    assert_eq!(
        named(&format!("sha256-{hex}.att")),
        Some(Digest::sha256(&s.att).to_string())
    );
    let rd = Digest::sha256(&s.referrer).to_string();
    assert!(
        entries.iter().any(|e| e["digest"] == rd.as_str()),
        "{index}"
    );
    // skopeo reads the signature image out of the layout, verifying every blob.
    run(skopeo()
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:sha256-{hex}.sig", layout.display()))
        .arg(format!(
            "oci:{}:sig",
            dir.path().join("sig-from-layout").display()
        )));

    // Into an oci-archive holding the base (a tar of its layout): the same entries, and
    // skopeo reads the signature image and the attestation out of the archive.
    let archive = dir.path().join("dest.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&imgs.base_dir)
        .arg("."));
    // (`--key` alone: the bundle has no BUNDLE.sig, so the images' signatures are checked.)
    let o = run(ddiff()
        .args(["load", "--key"])
        .arg(&public)
        .arg(&bundle)
        .arg("--to")
        .arg(format!("oci-archive:{}", archive.display())));
    let said = format!("{}{}", crate::common::stdout(&o), crate::common::stderr(&o));
    assert!(
        !said.contains("not written") && said.contains("loaded"),
        "{said}"
    );
    assert!(said.contains(" signed by ECDSA-P256-SHA256 key"), "{said}");
    let index = run(Command::new("tar")
        .arg("-xOf")
        .arg(&archive)
        .arg("index.json"));
    let index: serde_json::Value = serde_json::from_slice(&index.stdout).unwrap();
    let entries = index["manifests"].as_array().unwrap();
    assert!(
        entries.iter().any(|e| e["digest"] == rd.as_str()),
        "{index}"
    );
    for (tag, bytes) in [("sig", &s.sig), ("att", &s.att)] {
        assert!(
            entries
                .iter()
                .any(|e| e["annotations"]["org.opencontainers.image.ref.name"]
                    == format!("sha256-{hex}.{tag}").as_str()
                    && e["digest"] == Digest::sha256(bytes).to_string().as_str()),
            "{tag}: {index}"
        );
        run(skopeo()
            .args(["copy", "--quiet"])
            .arg(format!(
                "oci-archive:{}:sha256-{hex}.{tag}",
                archive.display()
            ))
            .arg(format!(
                "oci:{}:{tag}",
                dir.path().join("from-archive").display()
            )));
    }
}
