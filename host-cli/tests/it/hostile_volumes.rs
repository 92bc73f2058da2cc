//! Issue 13 through the binary, with no peers: `diff --volume-size 64k --parity 1` of an OCI
//! layout writes a set; `verify` reports per-volume states and whether loading will work;
//! `load` reads the set from two directories in any order with a volume missing;
//! `verify --repair` rewrites it; `--write-checksum` writes a file `sha256sum -c` accepts;
//! a set that cannot be recovered leaves the destination unchanged.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::{ddiff, ddiff_quiet, fails, run, stdout};
use crate::hostile_util::{listing, report};

const G: &str =
    "9 a volume set with at most M bad volumes loads; beyond, refused, destination unchanged";
use ddiff_core::synth_bundle::{many, ManyOptions};

/// An OCI layout holding `synth/app:0` (about 400 KB of layers): a self-contained bundle
/// unpacked, as docs/bundle-format.md section 1 says it is.
fn layout(dir: &Path) -> PathBuf {
    let s = many(ManyOptions {
        targets: 1,
        layers: 4,
        layers_per_target: 4,
        distinct_images: true,
        layer_bytes: 100_000,
        tar_layers: true,
    });
    let tar = dir.join("src.tar");
    std::fs::write(&tar, s.encode()).unwrap();
    let out = dir.join("src");
    std::fs::create_dir(&out).unwrap();
    run(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&out));
    out
}

fn volumes(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| {
                e.len() == 3 && e.to_string_lossy().bytes().all(|b| b.is_ascii_digit())
            })
        })
        .collect();
    v.sort();
    v
}

#[test]
fn a_set_with_a_lost_volume_verifies_loads_from_two_directories_and_is_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let src = layout(dir.path());
    let out = dir.path().join("sticks");
    std::fs::create_dir(&out).unwrap();
    let bundle = out.join("app.ddiff");
    let said = stdout(&run(ddiff_quiet()
        .args(["diff", "scratch"])
        .arg(format!("oci:{}:0", src.display()))
        .args(["--volume-size", "64k", "--parity", "1", "-o"])
        .arg(&bundle)));
    let vols = volumes(&out);
    assert!(vols.len() >= 7, "{said} {vols:?}");
    assert!(
        said.contains(&format!("as {} volumes", vols.len())),
        "{said}"
    );
    assert!(!bundle.exists());

    // Intact: every volume listed, exit 0.
    let ok = stdout(&run(ddiff().arg("verify").arg(&vols[2])));
    assert!(
        ok.contains("every volume is intact; loading will work"),
        "{ok}"
    );

    // Volume 3 lost, volume 2 moved to another stick: recoverable, exit 0.
    let lost = std::fs::read(&vols[2]).unwrap();
    std::fs::remove_file(&vols[2]).unwrap();
    let stick2 = dir.path().join("stick2");
    std::fs::create_dir(&stick2).unwrap();
    let moved = stick2.join(vols[1].file_name().unwrap());
    std::fs::rename(&vols[1], &moved).unwrap();
    let v = stdout(&run(ddiff().arg("verify").arg(&moved).arg(&vols[0])));
    assert!(v.contains("volume 3 (data): MISSING"), "{v}");
    assert!(
        v.contains("recoverable from parity: loading will work"),
        "{v}"
    );

    // Load from two directories, the volumes in any order.
    let dest = dir.path().join("dest");
    let l = stdout(&run(ddiff_quiet()
        .arg("load")
        .arg(&vols[4])
        .arg(&stick2)
        .arg("--to")
        .arg(format!("oci:{}", dest.display()))));
    assert!(l.contains("loaded"), "{l}");
    let loaded = listing(&dest);
    assert!(!loaded.is_empty());

    // Repair rewrites volume 3 byte for byte; then a SHA256SUMS that sha256sum accepts.
    std::fs::rename(&moved, &vols[1]).unwrap();
    let r = stdout(&run(ddiff().args(["verify", "--repair"]).arg(&out)));
    assert!(r.contains("rewrote"), "{r}");
    assert!(std::fs::read(&vols[2]).unwrap() == lost);
    let w = stdout(&run(ddiff()
        .args(["verify", "--write-checksum"])
        .arg(&vols[0])));
    assert!(w.contains("wrote"), "{w}");
    let sums = out.join("app.ddiff.SHA256SUMS");
    let c = run(Command::new("sha256sum")
        .arg("-c")
        .arg(sums.file_name().unwrap())
        .current_dir(&out));
    assert_eq!(
        stdout(&c).matches(": OK").count(),
        vols.len(),
        "{}",
        stdout(&c)
    );

    // Two volumes lost with one parity: verify exits 1, load fails, destination unchanged.
    std::fs::remove_file(&vols[0]).unwrap();
    std::fs::remove_file(&vols[3]).unwrap();
    let f = fails(ddiff().arg("verify").arg(&vols[1]));
    let text = String::from_utf8_lossy(&f.stderr).to_string() + &stdout(&f);
    assert!(text.contains("NOT recoverable"), "{text}");
    let fresh = dir.path().join("fresh");
    for d in [&dest, &fresh] {
        fails(
            ddiff_quiet()
                .arg("load")
                .arg(&vols[1])
                .arg("--to")
                .arg(format!("oci:{}", d.display())),
        );
    }
    assert_eq!(
        listing(&dest),
        loaded,
        "destination changed by a failed load"
    );
    assert!(!fresh.exists());
    report(
        G,
        "verify: per-volume states, a lost volume recoverable (exit 0)",
        2,
        "held",
    );
    report(
        G,
        "load from two directories, volumes in any order, one lost",
        1,
        "held",
    );
    report(
        G,
        "verify --repair rewrites the lost volume byte for byte",
        1,
        "held",
    );
    report(
        G,
        "--write-checksum: sha256sum -c accepts every volume",
        1,
        "held",
    );
    report(G, "two lost with parity 1: verify exits 1, load refused, destination unchanged (existing and new)", 3, "held");
}
