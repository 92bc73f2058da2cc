//! `ddiff verify` against damaged copies of a bundle: cut at every tar boundary, one flipped
//! byte in each blob. Always not intact, always naming the right blob.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use ddiff_cli::cmd::verify::{render, verify_one, VerifyArgs};
use ddiff_cli::progress::{Mode, Progress};
use ddiff_core::bundle::{Decoder, Event};
use ddiff_core::inspect::ProblemKind;
use ddiff_core::synth_bundle::{sample, SampleOptions};

fn args() -> VerifyArgs {
    VerifyArgs {
        bundles: vec![],
        write_checksum: false,
        no_checksum: true,
        key: Default::default(),
        require_signature: false,
        repair: false,
    }
}

/// (index, data start, data end) of every blob.
fn blob_ranges(bytes: &[u8]) -> Vec<(usize, u64, u64)> {
    let mut dec = Decoder::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut starts = Vec::new();
    loop {
        let (n, ev) = dec.decode(rest).expect("clean sample decodes");
        rest = &rest[n..];
        match ev {
            Some(Event::BlobStart { index, offset }) => starts.push((index, offset)),
            Some(Event::End(r)) => {
                for (index, offset) in &starts {
                    out.push((*index, *offset, offset + r.meta.blobs[*index].size));
                }
            }
            Some(_) => {}
            None => break,
        }
    }
    out
}

fn check(path: &Path, bytes: &[u8]) -> ddiff_cli::cmd::verify::FileResult {
    std::fs::write(path, bytes).unwrap();
    verify_one(path, &args(), &Progress::new(Mode::Quiet))
}

#[test]
fn truncated_at_every_tar_boundary_names_the_blob() {
    let s = sample(SampleOptions::default());
    let bytes = s.encode();
    let ranges = blob_ranges(&bytes);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cut.bundle");
    assert!(check(&path, &bytes).ok);
    let mut cuts = 0;
    for cut in (0..bytes.len()).step_by(512) {
        let r = check(&path, &bytes[..cut]);
        assert!(!r.ok, "cut at {cut} passed");
        let p = r
            .problem
            .as_ref()
            .unwrap_or_else(|| panic!("cut at {cut}: {r:?}"));
        assert_eq!(
            p.kind,
            ProblemKind::Truncated,
            "cut at {cut}: {}",
            p.message
        );
        assert_eq!(p.offset, cut as u64);
        // The blob being read, or (between blobs) the next one, is named.
        let cut = cut as u64;
        let inside = ranges.iter().find(|r| cut > r.1 && cut < r.2);
        let next = ranges.iter().find(|r| r.1 >= cut);
        let first_header = ranges[0].1 - 512;
        if cut < first_header {
            // Inside the three leading files: the message names the file.
            assert!(
                ["ddiff.json", "oci-layout", "index.json"]
                    .iter()
                    .any(|f| p.message.contains(f)),
                "cut at {cut}: {}",
                p.message
            );
        } else if let Some(&(index, ..)) = inside.or(next) {
            let d = &s.meta.blobs[index].digest;
            assert!(
                render(&r).contains(&d.to_string()),
                "cut at {cut} should name blob {index} {d}:\n{}",
                render(&r)
            );
        } else {
            assert!(p.message.contains("end"), "{}", p.message);
        }
        cuts += 1;
    }
    assert!(cuts > 10);
}

#[test]
fn one_flipped_byte_in_each_blob_names_that_blob() {
    let s = sample(SampleOptions::default());
    let bytes = s.encode();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flip.bundle");
    for (index, start, end) in blob_ranges(&bytes) {
        let mut bad = bytes.clone();
        bad[((start + end) / 2) as usize] ^= 1;
        let r = check(&path, &bad);
        assert!(!r.ok);
        let p = r.problem.as_ref().unwrap();
        assert_eq!(p.kind, ProblemKind::Corrupt, "{}", p.message);
        assert_eq!(p.blob.as_ref().unwrap().index, index);
        assert!(render(&r).contains(&s.meta.blobs[index].digest.to_string()));
    }
}

/// On one CPU (`taskset -c 0`) `ddiff verify` reads on one thread with small buffers
/// (issue 17); it must judge exactly as on two: intact with the same whole-file checksum,
/// and a flipped byte in a blob refused, naming that blob.
#[test]
fn on_one_cpu_verify_judges_as_on_two() {
    let s = sample(SampleOptions::default());
    let bytes = s.encode();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.ddiff");
    std::fs::write(&good, &bytes).unwrap();
    let on_one_cpu = |args: &[&str], file: &Path| {
        let mut c = std::process::Command::new("taskset");
        c.args(["-c", "0"])
            .arg(crate::common::ddiff().get_program())
            .args(args)
            .arg(file);
        c
    };
    let out = crate::common::ok(&mut on_one_cpu(&["verify", "--write-checksum"], &good));
    assert!(out.contains("intact"), "{out}");
    let side = std::fs::read_to_string(dir.path().join("good.ddiff.sha256")).unwrap();
    let want = ddiff_core::Digest::sha256(&bytes);
    assert!(side.starts_with(want.hex()), "{side} vs {want}");
    // The side file written on one CPU is accepted on two, and the other way round.
    crate::common::ok(crate::common::ddiff().args(["verify"]).arg(&good));
    let (index, start, _) = blob_ranges(&bytes)[1];
    let mut bad = bytes.clone();
    bad[start as usize + 3] ^= 0x40;
    let damaged = dir.path().join("damaged.ddiff");
    std::fs::write(&damaged, &bad).unwrap();
    let out = crate::common::fails(&mut on_one_cpu(&["verify", "--no-checksum"], &damaged));
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        crate::common::stderr(&out)
    );
    let digest = s.meta.blobs[index].digest.to_string();
    assert!(err.contains("NOT INTACT") && err.contains(&digest), "{err}");
}
