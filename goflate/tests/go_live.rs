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
    let mut files = Vec::new();
    for root in ["/usr/lib/x86_64-linux-gnu", "/usr/share/doc"] {
        collect(std::path::Path::new(root), &mut files);
    }
    files.sort();
    // Every third file until 32 MB: a varied subset.
    let mut list = String::new();
    let mut total = 0u64;
    for (f, len) in files.iter().step_by(3) {
        if total > 32 << 20 {
            break;
        }
        if *len > 8 << 20 {
            continue;
        }
        total += len;
        list.push_str(f);
        list.push('\n');
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
