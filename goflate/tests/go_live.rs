//! The port against Go itself: the same inputs through Go's compress/gzip (built at test
//! time with `go build`, stdlib only) and through goflate, compared byte for byte at
//! every level.

// Tests are a host: they read files, run Go and time things, which the library never does.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

mod common;

use common::*;

fn compare(name: &str, data: &[u8], gz: &std::path::Path) {
    for (level, want) in go_gzip_all(gz, data) {
        let got = goflate::gzip(data, level).unwrap();
        if got != want {
            panic!(
                "{name} ({} bytes) level {level}: goflate wrote {} bytes, Go {} bytes, first \
                 difference at byte {}",
                data.len(),
                got.len(),
                want.len(),
                first_diff(&got, &want)
            );
        }
        if std::env::var("GOFLATE_PRINT_GOLDEN").as_deref() == Ok("1") {
            println!("{name} {level} {}", sha256_hex(&want));
        }
    }
}

#[test]
fn matches_go_on_generated_inputs() {
    let Some(gz) = go_gz() else { return };
    for (name, data) in inputs() {
        compare(&name, &data, &gz);
    }
}

/// A real tar of system files (~32 MB): shared libraries, docs, compressed docs.
#[test]
fn matches_go_on_a_real_tar() {
    let Some(gz) = go_gz() else { return };
    let dir = temp_dir("tar");
    // Alternately a shared library and a doc file (every third of each, sorted), until
    // 32 MB: binary and text, compressed and not.
    let mut roots: Vec<Vec<(String, u64)>> = Vec::new();
    for root in ["/usr/lib/x86_64-linux-gnu", "/usr/share/doc"] {
        let mut files = Vec::new();
        collect(std::path::Path::new(root), &mut files);
        files.sort();
        files.retain(|(_, len)| *len <= 4 << 20);
        roots.push(files.into_iter().step_by(3).collect());
    }
    let mut list = String::new();
    let mut total = 0u64;
    let longest = roots.iter().map(Vec::len).max().unwrap_or(0);
    'fill: for i in 0..longest {
        for files in &roots {
            if let Some((f, len)) = files.get(i) {
                if total > 32 << 20 {
                    break 'fill;
                }
                total += len;
                list.push_str(f);
                list.push('\n');
            }
        }
    }
    std::fs::write(dir.join("list"), list).unwrap();
    let tar = dir.join("t.tar");
    let st = std::process::Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .args(["--no-recursion", "-P", "-T"])
        .arg(dir.join("list"))
        .status()
        .unwrap();
    assert!(st.success(), "tar failed");
    let data = std::fs::read(&tar).unwrap();
    assert!(data.len() > 16 << 20, "tar too small: {}", data.len());
    compare("system-tar", &data, &gz);
    std::fs::remove_dir_all(&dir).ok();
}

fn collect(dir: &std::path::Path, out: &mut Vec<(String, u64)>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let Ok(md) = e.path().symlink_metadata() else {
            continue;
        };
        if md.is_dir() {
            collect(&e.path(), out);
        } else if md.is_file() {
            if let Some(s) = e.path().to_str() {
                out.push((s.to_string(), md.len()));
            }
        }
    }
}

/// Level 1 past 2 GiB, where `deflateFast.shiftOffsets` renumbers its table (Go's fix for
/// golang/go#34121 and #41420), and level 6 over the same stream. Slow (~2.3 GB
/// through Go and goflate per level): `cargo test -p ddiff-goflate --test go_live -- --ignored`.
#[test]
#[ignore]
fn matches_go_past_2_gib() {
    use sha2::Digest;
    use std::io::{Read, Write};
    let Some(gz) = go_gz() else { return };
    let block = mixed(2024, 64 << 20);
    let rounds = 36; // 2.25 GiB: cur passes bufferReset (2^31 - 131070) once.
    for level in [1, 6] {
        let mut go = std::process::Command::new(&gz)
            .arg(level.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = go.stdin.take().unwrap();
        let feed = {
            let block = block.clone();
            std::thread::spawn(move || {
                for _ in 0..rounds {
                    stdin.write_all(&block).unwrap();
                }
            })
        };
        let mut stdout = go.stdout.take().unwrap();
        let go_hash = std::thread::spawn(move || {
            let mut h = sha2::Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = stdout.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            h.finalize().to_vec()
        });
        struct HashSink(sha2::Sha256);
        impl Write for HashSink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.update(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut w = goflate::GzipWriter::new(HashSink(sha2::Sha256::new()), level).unwrap();
        for _ in 0..rounds {
            w.write_all(&block).unwrap();
        }
        let ours = w.finish().unwrap().0.finalize().to_vec();
        feed.join().unwrap();
        let theirs = go_hash.join().unwrap();
        assert!(go.wait().unwrap().success());
        assert_eq!(
            ours, theirs,
            "level {level}: 2.25 GiB stream differs from Go's"
        );
        eprintln!("level {level}: 2.25 GiB stream identical to Go's");
    }
}
