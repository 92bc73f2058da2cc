//! The Bearer token flow against a real registry: Debian's `docker-registry` configured with
//! `auth: token`, and a small token server written here (the registry is the peer we did not
//! write; the token server only signs JWTs as a real one would, with an x5c chain).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;

use crate::common::{fails, free_port, require_peer, run, stderr, wait_ready};

const USER: &str = "alice";
const PASS: &str = "s3cret";

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

/// Serves `GET /token?service=…&scope=…` with HTTP basic auth, signing RS256 JWTs.
fn token_server(dir: &Path, issued: Arc<AtomicUsize>) -> (String, std::thread::JoinHandle<()>) {
    let key_der = std::fs::read(dir.join("key.der")).unwrap();
    let cert_der = pem_to_der(&std::fs::read_to_string(dir.join("cert.pem")).unwrap());
    let key = ring::signature::RsaKeyPair::from_pkcs8(&key_der).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let h = std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut first = String::new();
            if r.read_line(&mut first).is_err() {
                continue;
            }
            if first.starts_with("QUIT") {
                return;
            }
            let mut auth = String::new();
            loop {
                let mut l = String::new();
                r.read_line(&mut l).unwrap_or(0);
                if l.trim().is_empty() {
                    break;
                }
                if l.to_ascii_lowercase().starts_with("authorization:") {
                    auth = l[14..].trim().to_string();
                }
            }
            let want = format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"))
            );
            if auth != want {
                let _ = s.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                continue;
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/");
            let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
            let mut access = Vec::new();
            let mut service = String::new();
            for kv in query.split('&') {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                let v = v
                    .replace("%3A", ":")
                    .replace("%2F", "/")
                    .replace("%2C", ",")
                    .replace('+', " ");
                if k == "service" {
                    service = v;
                } else if k == "scope" {
                    for scope in v.split(' ') {
                        let parts: Vec<&str> = scope.splitn(3, ':').collect();
                        if parts.len() == 3 {
                            access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": parts[2].split(',').collect::<Vec<_>>()}));
                        }
                    }
                }
            }
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = serde_json::json!({"typ": "JWT", "alg": "RS256", "x5c": [base64::engine::general_purpose::STANDARD.encode(&cert_der)]});
            let n = issued.fetch_add(1, Ordering::SeqCst);
            let claims = serde_json::json!({"iss": "ddiff-test-issuer", "sub": USER, "aud": service, "exp": now + 300, "nbf": now - 10, "iat": now, "jti": format!("t{n}"), "access": access});
            let signing_input = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let mut sig = vec![0u8; key.public().modulus_len()];
            key.sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                signing_input.as_bytes(),
                &mut sig,
            )
            .unwrap();
            let token = format!("{signing_input}.{}", b64url(&sig));
            let body = serde_json::json!({"token": token, "expires_in": 300}).to_string();
            let _ = write!(s, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let mut sink = Vec::new();
            let _ = s.set_read_timeout(Some(std::time::Duration::from_millis(10)));
            let _ = s.read_to_end(&mut sink);
        }
    });
    (addr, h)
}

#[test]
fn loads_into_a_token_auth_registry() {
    if !require_peer("docker-registry") || !require_peer("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(d.join("key.pem"))
        .stderr(Stdio::null()));
    run(Command::new("openssl")
        .args(["pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in"])
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("key.der")));
    run(Command::new("openssl")
        .args(["req", "-x509", "-new", "-key"])
        .arg(d.join("key.pem"))
        .args(["-subj", "/CN=ddiff-token", "-days", "1", "-out"])
        .arg(d.join("cert.pem")));
    let issued = Arc::new(AtomicUsize::new(0));
    let (token_addr, token_thread) = token_server(d, issued.clone());
    let addr = format!("127.0.0.1:{}", free_port());
    let config = d.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\nauth:\n  token:\n    realm: http://{token_addr}/token\n    service: ddiff-test-registry\n    issuer: ddiff-test-issuer\n    rootcertbundle: {}\n",
            d.join("storage").display(),
            d.join("cert.pem").display()
        ),
    )
    .unwrap();
    let mut reg = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_ready(&addr, &mut reg);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/original-ddiff");
    let base_dir = fixtures.join("bb-base-dir");
    let creds = format!("{USER}:{PASS}");
    run(Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
            "--preserve-digests",
            "--dest-creds",
            &creds,
        ])
        .arg(format!("dir:{}", base_dir.display()))
        .arg(format!("docker://{addr}/bb:base")));
    let ddiff = || {
        let mut c = crate::common::ddiff();
        c.env("HOME", d); // no ~/.docker/config.json credentials leak in
        c
    };
    // Wrong password: refused, with the reason.
    let out = fails(
        ddiff()
            .args([
                "load",
                "--no-pull",
                "--username",
                USER,
                "--password",
                "wrong",
            ])
            .arg(fixtures.join("bb-new.tar.gz"))
            .args(["--to", &format!("docker://{addr}")]),
    );
    let err = stderr(&out);
    assert!(
        err.contains("token service") && err.contains("401"),
        "{err}"
    );
    // Right password: the Bearer flow works end to end and gives the original digest.
    let out = run(ddiff()
        .args([
            "--json",
            "load",
            "--no-pull",
            "--username",
            USER,
            "--password",
            PASS,
        ])
        .arg(fixtures.join("bb-new.tar.gz"))
        .args(["--to", &format!("docker://{addr}")]));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        s["images"][0]
            .as_str()
            .unwrap()
            .ends_with("sha256:b2722476bc5535b4f15d050c0cd6bc419cd10a9bb86a31bec4d28e3af2f99ff3"),
        "{s}"
    );
    assert!(issued.load(Ordering::SeqCst) >= 2, "tokens were not used");
    // Credentials from ~/.docker/config.json work too (auths entry), for diff.
    std::fs::create_dir_all(d.join(".docker")).unwrap();
    std::fs::write(
        d.join(".docker/config.json"),
        format!(
            r#"{{"auths":{{"{addr}":{{"auth":"{}"}}}}}}"#,
            base64::engine::general_purpose::STANDARD.encode(&creds)
        ),
    )
    .unwrap();
    let out = run(ddiff()
        .args([
            "--json",
            "diff",
            &format!("docker://{addr}/bb:base"),
            &format!("docker://{addr}/bb:new"),
            "-o",
        ])
        .arg(d.join("b.ddiff")));
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["carried_blobs"], 4, "{s}");
    let _ = reg.kill();
    let _ = reg.wait();
    let _ = std::net::TcpStream::connect(&token_addr).and_then(|mut s| s.write_all(b"QUIT\r\n"));
    let _ = token_thread.join();
}
