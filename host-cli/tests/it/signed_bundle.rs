//! Signed bundles (issue 14): `diff --sign-key` with each key kind, checked by `verify --key`
//! and `load --key`, and by OpenSSL (an implementation we did not write) the way `cosign
//! verify-blob` checks it. Keys are made at test time by `openssl` and, for cosign's
//! encrypted format, by `tests/provenance/cosign_key.py` (Python's `cryptography`, scrypt and
//! a Salsa20 written from the spec), never by ddiff.

use std::path::{Path, PathBuf};
use std::process::Command;

use ddiff_core::signature::PublicKey;

use crate::common::{ddiff, fails, run, stderr, stdout};
use crate::oci_archive::images;

const PASSWORD: &str = "correct horse";

fn openssl(args: &[&str], dir: &Path) {
    run(Command::new("openssl").current_dir(dir).args(args));
}

/// (private key file, public key file, what it is) for every key kind `--sign-key` reads.
fn keys(dir: &Path) -> Vec<(PathBuf, PathBuf, &'static str)> {
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "ec-sec1.key",
        ],
        dir,
    );
    openssl(
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "ec-sec1.key",
            "-out",
            "ec.key",
        ],
        dir,
    );
    openssl(&["pkey", "-in", "ec.key", "-pubout", "-out", "ec.pub"], dir);
    openssl(&["genpkey", "-algorithm", "ed25519", "-out", "ed.key"], dir);
    openssl(&["pkey", "-in", "ed.key", "-pubout", "-out", "ed.pub"], dir);
    openssl(
        &[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            "c-sec1.key",
        ],
        dir,
    );
    openssl(
        &[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            "c-sec1.key",
            "-out",
            "c.key",
        ],
        dir,
    );
    openssl(
        &["pkey", "-in", "c.key", "-pubout", "-out", "cosign.pub"],
        dir,
    );
    // cosign's current parameters: N = 2^16, r = 8, p = 1.
    let out = run(Command::new("python3")
        .arg(cosign_script())
        .args(["encrypt"])
        .arg(dir.join("c.key"))
        .args([PASSWORD, "16"]));
    std::fs::write(dir.join("cosign.key"), &out.stdout).unwrap();
    let j = |n: &str| dir.join(n);
    vec![
        (j("ec.key"), j("ec.pub"), "PKCS#8 P-256"),
        (j("ec-sec1.key"), j("ec.pub"), "SEC1 P-256"),
        (j("ed.key"), j("ed.pub"), "PKCS#8 Ed25519"),
        (j("cosign.key"), j("cosign.pub"), "cosign encrypted P-256"),
    ]
}

fn cosign_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/provenance/cosign_key.py")
}

/// `tar -xOf BUNDLE ddiff.json`: the bytes the signature covers, read by GNU tar.
fn ddiff_json(bundle: &Path) -> Vec<u8> {
    run(Command::new("tar")
        .arg("-xOf")
        .arg(bundle)
        .arg("ddiff.json"))
    .stdout
}

fn sig_path(bundle: &Path) -> PathBuf {
    PathBuf::from(format!("{}.sig", bundle.display()))
}

/// OpenSSL checks ddiff's signature as `cosign verify-blob --key K.pub --signature B.sig
/// ddiff.json` would: base64 of a DER ECDSA-SHA256 or raw Ed25519 signature over the file.
fn openssl_verifies(dir: &Path, public: &Path, bundle: &Path) -> bool {
    let msg = dir.join("ddiff.json");
    std::fs::write(&msg, ddiff_json(bundle)).unwrap();
    let raw = dir.join("sig.bin");
    let text = std::fs::read_to_string(sig_path(bundle)).unwrap();
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap();
    std::fs::write(&raw, bytes).unwrap();
    let pem = std::fs::read_to_string(public).unwrap();
    let ed = PublicKey::from_pem(&pem).unwrap().algorithm() == "Ed25519";
    let mut cmd = Command::new("openssl");
    if ed {
        cmd.args(["pkeyutl", "-verify", "-pubin", "-rawin", "-inkey"])
            .arg(public)
            .arg("-in")
            .arg(&msg)
            .arg("-sigfile")
            .arg(&raw);
    } else {
        cmd.args(["dgst", "-sha256", "-verify"])
            .arg(public)
            .arg("-signature")
            .arg(&raw)
            .arg(&msg);
    }
    cmd.output().unwrap().status.success()
}

fn diff_signed(imgs: &crate::oci_archive::Images, key: &Path, out: &Path) -> String {
    let o = run(ddiff()
        .env("DDIFF_KEY_PASSWORD", PASSWORD)
        .args(["diff"])
        .arg(format!("oci:{}:1", imgs.base_dir.display()))
        .arg(format!("oci:{}:2", imgs.app_dir.display()))
        .arg("-o")
        .arg(out)
        .arg("--sign-key")
        .arg(key));
    stdout(&o)
}

#[test]
fn bundles_signed_with_each_key_kind_verify_here_and_in_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path());
    let all = keys(dir.path());
    for (i, (key, public, what)) in all.iter().enumerate() {
        let bundle = dir.path().join(format!("app-{i}.ddiff"));
        let said = diff_signed(&imgs, key, &bundle);
        assert!(said.contains("signed: "), "{what}: {said}");
        assert!(sig_path(&bundle).exists(), "{what}");
        assert!(
            openssl_verifies(dir.path(), public, &bundle),
            "{what}: OpenSSL refuses"
        );
        let v = run(ddiff().args(["verify", "--key"]).arg(public).arg(&bundle));
        assert!(stdout(&v).contains("signed: "), "{what}: {}", stdout(&v));
        // Loaded into an OCI layout holding the base: checked before writing.
        let dest = dir.path().join(format!("dest-{i}"));
        copy_dir(&imgs.base_dir, &dest);
        let l = run(ddiff()
            .args(["--quiet", "load"])
            .arg(&bundle)
            .arg("--key")
            .arg(public)
            .arg("--to")
            .arg(format!("oci:{}", dest.display())));
        assert!(l.status.success(), "{what}");
        // Every other key is refused, naming the signature file.
        for (_, other, other_what) in &all {
            if std::fs::read(other).unwrap() == std::fs::read(public).unwrap() {
                continue;
            }
            let o = fails(ddiff().args(["verify", "--key"]).arg(other).arg(&bundle));
            assert!(
                stdout(&o).contains("SIGNATURE REFUSED")
                    || stderr(&o).contains("SIGNATURE REFUSED"),
                "{what} checked with {other_what}: {}{}",
                stdout(&o),
                stderr(&o)
            );
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    run(Command::new("cp").arg("-r").arg(from).arg(to));
}

/// The tree of a directory (names and contents), to show a refused load wrote nothing.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    crate::common::files_under(dir)
        .into_iter()
        .map(|f| {
            let bytes = std::fs::read(dir.join(&f)).unwrap();
            (f, bytes)
        })
        .collect()
}

#[test]
fn loads_with_a_wrong_missing_or_tampered_bundle_signature_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path());
    let all = keys(dir.path());
    let (key, public, _) = &all[0];
    let (_, wrong, _) = &all[2];
    let bundle = dir.path().join("app.ddiff");
    diff_signed(&imgs, key, &bundle);
    let dest = dir.path().join("dest");
    copy_dir(&imgs.base_dir, &dest);
    let before = snapshot(&dest);
    let load = |k: &Path| {
        fails(
            ddiff()
                .args(["--quiet", "load"])
                .arg(&bundle)
                .arg("--key")
                .arg(k)
                .arg("--to")
                .arg(format!("oci:{}", dest.display())),
        )
    };
    let o = load(wrong);
    assert!(
        stderr(&o).contains("bundle signature refused"),
        "{}",
        stderr(&o)
    );
    // An Ed25519 key given an ECDSA signature: named as not its kind.
    assert!(
        stderr(&o).contains("malformed Ed25519 signature"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&dest), before);

    // A signature of other bytes by the right key (the flipped last base64 character).
    let good = std::fs::read_to_string(sig_path(&bundle)).unwrap();
    let mut tampered = good.trim_end().as_bytes().to_vec();
    let at = tampered.len() - 4;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(sig_path(&bundle), &tampered).unwrap();
    let o = load(public);
    assert!(
        stderr(&o).contains("bundle signature refused: signature does not match"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&dest), before);

    std::fs::remove_file(sig_path(&bundle)).unwrap();
    let o = load(public);
    assert!(stderr(&o).contains("is not signed"), "{}", stderr(&o));
    assert_eq!(snapshot(&dest), before);
    let o = fails(ddiff().args(["verify", "--key"]).arg(public).arg(&bundle));
    assert!(stdout(&o).contains("is not signed"), "{}", stdout(&o));

    // A diff without --sign-key removes a signature of an earlier bundle of that name.
    std::fs::write(sig_path(&bundle), good).unwrap();
    run(ddiff()
        .args(["--quiet", "diff"])
        .arg(format!("oci:{}:1", imgs.base_dir.display()))
        .arg(format!("oci:{}:2", imgs.app_dir.display()))
        .arg("-o")
        .arg(&bundle));
    assert!(!sig_path(&bundle).exists());
}

/// The signature covers every byte of `ddiff.json`: with the signature of the real bundle,
/// each byte of its metadata flipped is refused by the key (for both key kinds).
#[test]
fn a_flipped_byte_anywhere_in_the_metadata_fails_the_signature() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path());
    let all = keys(dir.path());
    for (key, public, what) in [&all[0], &all[2]] {
        let bundle = dir.path().join("app.ddiff");
        diff_signed(&imgs, key, &bundle);
        let meta = ddiff_json(&bundle);
        let k = PublicKey::from_pem(&std::fs::read_to_string(public).unwrap()).unwrap();
        let sig = std::fs::read(sig_path(&bundle)).unwrap();
        k.verify_text(&meta, &sig).unwrap();
        for i in 0..meta.len() {
            let mut bad = meta.clone();
            bad[i] ^= 0x01;
            assert!(
                k.verify_text(&bad, &sig).is_err(),
                "{what}: byte {i} flipped passed"
            );
        }
    }
}

/// cosign's encrypted keys: the password from DDIFF_KEY_PASSWORD or standard input; a wrong
/// one is refused before any work, and so are scrypt parameters beyond cosign's.
#[test]
fn cosign_keys_take_their_password_from_the_environment_or_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path());
    let all = keys(dir.path());
    let (key, public, _) = &all[3];
    let bundle = dir.path().join("app.ddiff");
    let diff = || {
        let mut c = ddiff();
        c.args(["--quiet", "diff"])
            .arg(format!("oci:{}:1", imgs.base_dir.display()))
            .arg(format!("oci:{}:2", imgs.app_dir.display()))
            .arg("-o")
            .arg(&bundle)
            .arg("--sign-key")
            .arg(key)
            .env_remove("DDIFF_KEY_PASSWORD");
        c
    };
    let o = fails(diff().env("DDIFF_KEY_PASSWORD", "wrong"));
    assert!(stderr(&o).contains("wrong password"), "{}", stderr(&o));
    assert!(
        !bundle.exists(),
        "a bundle was written before the key was read"
    );

    let mut child = diff().stdin(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    assert!(child.wait().unwrap().success());
    run(ddiff().args(["verify", "--key"]).arg(public).arg(&bundle));

    // A crafted key asking scrypt for 2^40 * 1 KiB is refused before any work.
    let text = std::fs::read_to_string(key).unwrap();
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let json = String::from_utf8(b64.decode(body).unwrap()).unwrap();
    let crafted = json.replace("\"N\": 65536", "\"N\": 1099511627776");
    assert_ne!(crafted, json);
    let body = b64.encode(crafted);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
        lines.join("\n")
    );
    let crafted_key = dir.path().join("crafted.key");
    std::fs::write(&crafted_key, pem).unwrap();
    let o = fails(
        ddiff()
            .env("DDIFF_KEY_PASSWORD", PASSWORD)
            .args(["diff", "scratch", "oci:/nonexistent:1", "--sign-key"])
            .arg(&crafted_key),
    );
    assert!(
        stderr(&o).contains("scrypt parameters N=1099511627776 r=8 p=1 are not cosign's"),
        "{}",
        stderr(&o)
    );
}

/// A signed bundle cut into volumes (issue 13 with 14): `NAME.sig` travels beside the
/// volumes, on whichever of two sticks; `verify --key` and `load --key` check it across both
/// directories, with one volume missing and one damaged (rebuilt from parity), and a wrong
/// key writes nothing.
#[test]
fn a_signed_volume_set_on_two_sticks_verifies_and_loads_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path());
    let all = keys(dir.path());
    let (key, public, _) = &all[0];
    let (_, wrong, _) = &all[2];
    let (a, b) = (dir.path().join("stick-a"), dir.path().join("stick-b"));
    std::fs::create_dir(&a).unwrap();
    std::fs::create_dir(&b).unwrap();
    let bundle = a.join("app.ddiff");
    let o = run(ddiff()
        .args(["diff"])
        .arg(format!("oci:{}:1", imgs.base_dir.display()))
        .arg(format!("oci:{}:2", imgs.app_dir.display()))
        .arg("-o")
        .arg(&bundle)
        .args(["--volume-size", "64k", "--parity", "2", "--sign-key"])
        .arg(key));
    assert!(stdout(&o).contains("signed: "), "{}", stdout(&o));
    let mut vols: Vec<PathBuf> = std::fs::read_dir(&a)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e.len() == 3 && e != "sig"))
        .collect();
    vols.sort();
    assert!(vols.len() >= 3, "{vols:?}");
    // The last volume and the signature on the other stick; volume 2 lost, a byte of
    // volume 1's payload flipped.
    let last = vols.last().unwrap();
    std::fs::rename(last, b.join(last.file_name().unwrap())).unwrap();
    std::fs::rename(sig_path(&bundle), sig_path(&b.join("app.ddiff"))).unwrap();
    std::fs::remove_file(&vols[1]).unwrap();
    let mut first = std::fs::read(&vols[0]).unwrap();
    first[100] ^= 0x40;
    std::fs::write(&vols[0], first).unwrap();

    let v = run(ddiff()
        .args(["verify", "--key"])
        .arg(public)
        .arg(&a)
        .arg(&b));
    let out = stdout(&v);
    assert!(out.contains("signed: ") && out.contains("stick-b"), "{out}");
    assert!(out.contains("recoverable from parity"), "{out}");
    // One set, not one per directory.
    assert_eq!(out.matches("volume set sha256:").count(), 1, "{out}");
    let o = fails(ddiff().args(["verify", "--key"]).arg(wrong).arg(&a).arg(&b));
    assert!(stdout(&o).contains("SIGNATURE REFUSED"), "{}", stdout(&o));

    let dest = dir.path().join("dest");
    copy_dir(&imgs.base_dir, &dest);
    let before = snapshot(&dest);
    let load = |k: &Path| {
        let mut c = ddiff();
        c.args(["--quiet", "load"])
            .arg(&vols[0])
            .arg(&b)
            .arg("--key")
            .arg(k)
            .arg("--to")
            .arg(format!("oci:{}", dest.display()));
        c
    };
    let o = fails(&mut load(wrong));
    assert!(
        stderr(&o).contains("bundle signature refused"),
        "{}",
        stderr(&o)
    );
    assert_eq!(snapshot(&dest), before);
    run(&mut load(public));
    assert_ne!(snapshot(&dest), before);
}
