//! Entry points for fuzzing: each feeds arbitrary bytes to one parser and ignores the result,
//! so a cargo-fuzz target is three lines:
//!
//! ```ignore
//! #![no_main]
//! libfuzzer_sys::fuzz_target!(|data: &[u8]| ddiff_core::fuzz::fuzz_reference(data));
//! ```
//!
//! The property under test is the crate's rule: bad input returns an error, it never panics.
//! Where a parser promises a round trip, the entry point checks it too (a failed check is a
//! panic, which is what the fuzzer reports).

use std::collections::BTreeMap;

use crate::docker_archive;
use crate::dockerfile::{resolve_base, ResolveOptions};
use crate::reference::{ImageRef, Reference};

/// Text parsers take UTF-8; invalid UTF-8 is rejected before them by hosts.
fn text(data: &[u8]) -> Option<&str> {
    core::str::from_utf8(data).ok()
}

/// [`Reference::parse`]; a parsed reference must print to forms that parse back to it.
pub fn fuzz_reference(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(r) = Reference::parse(s) {
        assert_eq!(
            Reference::parse(&r.to_string()).as_ref(),
            Ok(&r),
            "canonical {r}"
        );
        assert_eq!(
            Reference::parse(&r.familiar()).as_ref(),
            Ok(&r),
            "familiar {r}"
        );
    }
}

/// [`ImageRef::parse`]; `Display` must round-trip.
pub fn fuzz_image_ref(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(r) = ImageRef::parse(s) {
        assert_eq!(ImageRef::parse(&r.to_string()).as_ref(), Ok(&r), "{r}");
    }
}

/// [`resolve_base`]. The first line of the input, if it starts with `target=`, becomes
/// `--target`, so the fuzzer reaches stage selection too.
pub fn fuzz_dockerfile(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let mut opts = ResolveOptions {
        target: None,
        build_args: BTreeMap::new(),
    };
    let body = match s.split_once('\n') {
        Some((first, rest)) if first.starts_with("target=") => {
            opts.target = Some(first["target=".len()..].to_string());
            rest
        }
        _ => s,
    };
    let _ = resolve_base(body, &opts);
    opts.build_args.insert("TARGETARCH".into(), "amd64".into());
    let _ = resolve_base(body, &opts);
}

/// [`docker_archive::parse_manifest`]; what parses must encode and parse back equal.
pub fn fuzz_docker_archive_manifest(data: &[u8]) {
    if let Ok(entries) = docker_archive::parse_manifest(data) {
        let mut out = Vec::new();
        docker_archive::encode_manifest(&entries, &mut out);
        assert_eq!(docker_archive::parse_manifest(&out).as_ref(), Ok(&entries));
    }
}

/// [`docker_archive::parse_repositories`]; what parses must encode and parse back equal.
pub fn fuzz_docker_archive_repositories(data: &[u8]) {
    if let Ok(repos) = docker_archive::parse_repositories(data) {
        let mut out = Vec::new();
        docker_archive::encode_repositories(&repos, &mut out);
        assert_eq!(
            docker_archive::parse_repositories(&out).as_ref(),
            Ok(&repos)
        );
    }
}

/// [`docker_archive::normalize_entry_path`]; a normalised path is a fixed point.
pub fn fuzz_entry_path(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(n) = docker_archive::normalize_entry_path(s) {
        assert_eq!(
            docker_archive::normalize_entry_path(&n).as_deref(),
            Ok(n.as_str())
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cheap in-tree smoke run: every entry point over every prefix of some seeds, plus a
    /// small deterministic byte generator. Real fuzzing runs the same functions under
    /// cargo-fuzz.
    #[test]
    fn entry_points_survive_seeds_and_noise() {
        let seeds: [&[u8]; 8] = [
            b"localhost:5000/app:1@sha256:0123456789012345678901234567890123456789012345678901234567890123",
            b"[::1]:5000/x",
            b"docker-archive:a.tar:app:2",
            b"oci:dir:a.b/c@1",
            b"target=b\n# escape=`\nARG A=${B:-x}\nFROM --platform=$P ${A:+y}z AS b `\n\nRUN <<-E\n\tE\n",
            br#"[{"Config":"a.json","RepoTags":["app:2"],"Layers":["./x/layer.tar"]}]"#,
            br#"{"app":{"2":"0123456789012345678901234567890123456789012345678901234567890123"}}"#,
            b"./a//b/../c",
        ];
        let all: [fn(&[u8]); 7] = [
            fuzz_reference,
            fuzz_image_ref,
            fuzz_dockerfile,
            fuzz_docker_archive_manifest,
            fuzz_docker_archive_repositories,
            fuzz_entry_path,
            |d| fuzz_reference(&d[d.len() / 2..]),
        ];
        for seed in seeds {
            for end in 0..=seed.len() {
                for f in all {
                    f(&seed[..end]);
                }
            }
        }
        // xorshift over an alphabet of the characters the parsers care about.
        let alphabet = b"aZ09:/@.-_[]{}$`\\\"' \t\n#=<>,scratchFROMASargfrom\x00\xff";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut buf = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            for f in all {
                f(&buf);
            }
        }
    }

    /// Every combination of reference pieces, with and without a transport prefix: what
    /// parses must round-trip (the noise above rarely builds a valid reference).
    #[test]
    fn reference_combinations_round_trip() {
        let d = format!("@sha256:{}", "0".repeat(64));
        let prefixes = [
            "",
            "docker://",
            "docker-daemon:",
            "oci:",
            "oci-archive:",
            "docker-archive:",
            "dir:",
            "docker:",
            "x.tar:",
        ];
        let registries = [
            "",
            "docker.io/",
            "index.docker.io/",
            "localhost/",
            "localhost:5000/",
            "[::1]:5000/",
            "Reg/",
            "a.b/",
            "oci/",
            "library/",
        ];
        let paths = [
            "oci",
            "a",
            "library/a",
            "a/b",
            "docker-archive",
            "latest",
            "a:b",
        ];
        let tags = ["", ":latest", ":1", ":Oci"];
        let digests = ["", d.as_str()];
        let mut n = 0;
        for p in prefixes {
            for r in registries {
                for path in paths {
                    for t in tags {
                        for dg in digests {
                            let s = format!("{p}{r}{path}{t}{dg}");
                            fuzz_reference(s.as_bytes());
                            fuzz_image_ref(s.as_bytes());
                            n += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(n, 9 * 10 * 7 * 4 * 2);
    }
}
