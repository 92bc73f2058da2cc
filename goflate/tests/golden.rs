//! Golden digests of Go 1.19's gzip output (tests/data/go1.19-gzip-sha256.txt) for the
//! deterministic inputs of `common::inputs()`: runs without Go.

// Tests are a host: they read files, which the library never does.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

mod common;

use common::*;
use std::collections::HashMap;

#[test]
fn matches_go_golden_digests() {
    let text = include_str!("data/go1.19-gzip-sha256.txt");
    let mut want: HashMap<(String, i32), String> = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 3, "bad golden line {line:?}");
        want.insert((f[0].to_string(), f[1].parse().unwrap()), f[2].to_string());
    }
    let inputs = inputs();
    assert_eq!(
        want.len(),
        inputs.len() * LEVELS.len(),
        "golden file and inputs() disagree"
    );
    for (name, data) in &inputs {
        for level in LEVELS {
            let got = sha256_hex(&goflate::gzip(data, level).unwrap());
            let w = want
                .get(&(name.clone(), level))
                .unwrap_or_else(|| panic!("no golden digest for {name} level {level}"));
            assert_eq!(&got, w, "{name} level {level}");
        }
    }
}

/// The generated output is real gzip: an independent inflater (flate2) gets the input
/// back, and the header is what `candidate_levels` expects for that level.
#[test]
fn output_inflates_and_header_names_its_level() {
    use std::io::Read;
    let data = mixed(99, 300_000);
    for level in LEVELS {
        let gz = goflate::gzip(&data, level).unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back == data, "level {level}: round trip differs");
        let go_level = if level == -1 { 6 } else { level };
        assert!(
            goflate::candidate_levels(&gz).contains(&go_level),
            "level {level}"
        );
    }
}
