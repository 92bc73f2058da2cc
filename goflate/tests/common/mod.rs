//! Shared by the goflate tests: deterministic inputs (a PRNG of our own, so the committed
//! golden digests stay valid) and the live Go peer.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Every level Go's gzip accepts.
pub const LEVELS: [i32; 12] = [-2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9];

/// xorshift64*: small, fast, and fixed forever (the golden digests depend on it).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        (self.next() >> 11) % n
    }
    pub fn fill(&mut self, out: &mut Vec<u8>, n: usize) {
        for _ in 0..n {
            out.push((self.next() >> 56) as u8);
        }
    }
}

const WORDS: &[&str] = &[
    "the",
    "layer",
    "image",
    "registry",
    "manifest",
    "digest",
    "sha256",
    "of",
    "and",
    "to",
    "compress",
    "deflate",
    "window",
    "block",
    "huffman",
    "a",
    "in",
    "is",
    "that",
    "for",
    "docker",
    "container",
    "tar",
    "usr",
    "lib",
    "share",
    "doc",
    "copyright",
    "license",
    "GNU",
    "General",
    "Public",
    "License",
    "version",
    "2",
    "or",
    "later",
    "\n",
    ".",
    ",",
    "Debian",
    "package",
];

/// Pseudo-English text.
pub fn text(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        // Zipf-ish: low indices more often.
        let a = r.below(WORDS.len() as u64);
        let b = r.below(a + 1);
        out.extend_from_slice(WORDS[b as usize].as_bytes());
        out.push(if r.below(9) == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

/// Random bytes.
pub fn random(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut out = Vec::with_capacity(len);
    r.fill(&mut out, len);
    out
}

/// A mix of everything a compressor meets: text, random bytes, runs, copies of earlier
/// data at all distances (some just inside and outside 32 KiB), binary-like tables.
pub fn mixed(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut out: Vec<u8> = Vec::with_capacity(len + 70_000);
    while out.len() < len {
        match r.below(6) {
            0 => {
                let n = 1 + r.below(4000) as usize;
                out.extend_from_slice(&text(r.next(), n));
            }
            1 => {
                let n = 1 + r.below(3000) as usize;
                r.fill(&mut out, n);
            }
            2 => {
                let cap = if r.below(4) == 0 { 70_000 } else { 600 };
                let n = 1 + r.below(cap) as usize;
                let b = (r.next() >> 56) as u8;
                out.resize(out.len() + n, b);
            }
            3 if !out.is_empty() => {
                // A copy from earlier, distances clustered around the window size.
                let dist = match r.below(3) {
                    0 => 32_768 - 8 + r.below(16) as usize,
                    1 => 1 + r.below(300) as usize,
                    _ => 1 + r.below(70_000) as usize,
                }
                .min(out.len());
                let cap = if r.below(3) == 0 { 2000 } else { 300 };
                let n = 3 + r.below(cap) as usize;
                for _ in 0..n {
                    let c = out[out.len() - dist];
                    out.push(c);
                }
            }
            _ => {
                // A little-endian table of slowly growing numbers.
                let mut v = r.next() as u32;
                for _ in 0..r.below(500) {
                    out.extend_from_slice(&v.to_le_bytes());
                    v = v.wrapping_add(r.below(40) as u32);
                }
            }
        }
    }
    out.truncate(len);
    out
}

/// Data with long matches exactly at distances around 32 KiB.
pub fn far_matches(seed: u64, len: usize) -> Vec<u8> {
    let mut r = Rng::new(seed);
    let mut out = Vec::with_capacity(len);
    r.fill(&mut out, 40_000);
    let dists = [32_766usize, 32_767, 32_768, 32_769, 32_770, 32_765];
    while out.len() < len {
        let d = dists[r.below(dists.len() as u64) as usize];
        let n = 4 + r.below(700) as usize;
        for _ in 0..n {
            let c = out[out.len() - d];
            out.push(c);
        }
        let k = r.below(20) as usize;
        r.fill(&mut out, k);
    }
    out.truncate(len);
    out
}

/// The named inputs of the golden and live tests.
pub fn inputs() -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = vec![
        ("empty".into(), Vec::new()),
        ("one-byte".into(), b"x".to_vec()),
        ("zeros-1MiB".into(), vec![0u8; 1 << 20]),
        ("random-3MiB".into(), random(1, 3 << 20)),
        ("text-2MiB".into(), text(2, 2 << 20)),
        ("far-matches-1MiB".into(), far_matches(3, 1 << 20)),
        ("mixed-4MiB".into(), mixed(4, 4 << 20)),
    ];
    for n in [
        2usize,
        16,
        17,
        127,
        128,
        129,
        300,
        65_535,
        65_536,
        65_537,
        2 * 65_535,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
    ] {
        v.push((format!("mixed-{n}"), mixed(n as u64, n)));
    }
    v
}

pub fn sha256_hex(b: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(b);
    d.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let p = std::env::temp_dir().join(format!("goflate-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&p).unwrap();
    p
}

const GO_MAIN: &str = r#"package main

// gz IN OUTDIR: for every level Go accepts, OUTDIR/<level>.gz = gzip of IN, written the
// way Docker's layer compression writes it (io.Copy into gzip.NewWriterLevel).
import (
	"compress/gzip"
	"fmt"
	"io"
	"os"
)

func main() {
	for level := -2; level <= 9; level++ {
		in, err := os.Open(os.Args[1])
		if err != nil {
			panic(err)
		}
		out, err := os.Create(fmt.Sprintf("%s/%d.gz", os.Args[2], level))
		if err != nil {
			panic(err)
		}
		w, err := gzip.NewWriterLevel(out, level)
		if err != nil {
			panic(err)
		}
		if _, err := io.Copy(w, in); err != nil {
			panic(err)
		}
		if err := w.Close(); err != nil {
			panic(err)
		}
		out.Close()
		in.Close()
	}
}
"#;

/// The Go peer: a built `gz` program, or why there is none. Fails the test when Go is
/// missing and `DDIFF_REQUIRE_PEERS=1`.
pub fn go_gz() -> Option<PathBuf> {
    static GZ: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = GZ.get_or_init(|| {
        let dir = temp_dir("go");
        let ok = Command::new("go").arg("version").output();
        match ok {
            Ok(o) if o.status.success() => {
                eprintln!("Go peer: {}", String::from_utf8_lossy(&o.stdout).trim())
            }
            _ => return Err("`go` is not installed (Debian: golang-go)".into()),
        }
        std::fs::write(dir.join("main.go"), GO_MAIN).unwrap();
        let out = Command::new("go")
            .args(["build", "-o", "gz", "main.go"])
            .current_dir(&dir)
            .env("GOCACHE", dir.join("cache"))
            .env("GOPATH", dir.join("gopath"))
            .env("GOFLAGS", "-mod=mod")
            .env("GO111MODULE", "off")
            .env("CGO_ENABLED", "0")
            .output()
            .map_err(|e| format!("go build: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "go build failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(dir.join("gz"))
    });
    match r {
        Ok(p) => Some(p.clone()),
        Err(why) => {
            if std::env::var("DDIFF_REQUIRE_PEERS").as_deref() == Ok("1") {
                panic!("Go peer required (DDIFF_REQUIRE_PEERS=1): {why}");
            }
            eprintln!("skipping the live Go comparison: {why}");
            None
        }
    }
}

/// Go's gzip of `data` at every level in [`LEVELS`] order.
pub fn go_gzip_all(gz: &Path, data: &[u8]) -> Vec<(i32, Vec<u8>)> {
    let dir = temp_dir("in");
    let input = dir.join("in");
    std::fs::write(&input, data).unwrap();
    let st = Command::new(gz).arg(&input).arg(&dir).status().unwrap();
    assert!(st.success(), "Go gz failed");
    let v = LEVELS
        .iter()
        .map(|&l| (l, std::fs::read(dir.join(format!("{l}.gz"))).unwrap()))
        .collect();
    std::fs::remove_dir_all(&dir).ok();
    v
}

/// First differing byte, for a readable failure.
pub fn first_diff(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}
