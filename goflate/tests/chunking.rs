//! Output must not depend on how the input is split into `write` calls (Go's does not, as
//! long as nobody calls Flush).

// Tests are a host.
#![allow(
    clippy::unwrap_used,
    clippy::disallowed_methods,
    clippy::disallowed_types
)]

mod common;

use common::*;
use std::io::Write;

fn gzip_in_chunks(data: &[u8], level: i32, chunk: usize) -> Vec<u8> {
    let mut w = goflate::GzipWriter::new(Vec::new(), level).unwrap();
    for c in data.chunks(chunk) {
        w.write_all(c).unwrap();
    }
    w.finish().unwrap()
}

#[test]
fn same_output_for_writes_of_1_7_4096_and_1mib_bytes() {
    let mut data = mixed(7, 3 << 20);
    data.extend_from_slice(&far_matches(8, 300_000));
    for level in LEVELS {
        let whole = goflate::gzip(&data, level).unwrap();
        for chunk in [1usize, 7, 4096, 1 << 20] {
            let got = gzip_in_chunks(&data, level, chunk);
            assert!(
                got == whole,
                "level {level}, writes of {chunk} bytes: {} vs {} bytes, first difference at {}",
                got.len(),
                whole.len(),
                first_diff(&got, &whole)
            );
        }
    }
}

#[test]
fn bad_levels_are_refused() {
    for level in [-3, 10, i32::MIN, i32::MAX] {
        let e = goflate::GzipWriter::new(Vec::new(), level).err().unwrap();
        assert_eq!(e.level, level);
        assert!(e.to_string().contains(&level.to_string()));
    }
}
