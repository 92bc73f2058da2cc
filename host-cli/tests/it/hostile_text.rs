//! Guarantee 7 (issue 15, item 5): what a bundle says is shown, never obeyed. Strings from a
//! crafted bundle (the tool, the date, history lines, file names inside layers, target
//! references) reach `verify`, `inspect`, `inspect --files` and `load` output and error lines
//! escaped and capped: no raw control character, no bidi control, no line of their own (a
//! forged `ok … intact`), no line longer than a few KiB; `--json` keeps them exact. Needs no
//! peers: the bundles are the core's synthetic sample with hostile strings put in.

use std::path::Path;

use ddiff_core::synth_bundle::{
    sample, Sample, SampleOptions, HOSTILE_CREATED, HOSTILE_CREATED_BY, HOSTILE_NAMES, HOSTILE_TOOL,
};

use crate::common::{ddiff, tar_of};
use crate::hostile_util::Group;

const GUARANTEE: &str = "7 what a bundle says is shown, never obeyed";
/// Longest line allowed in human output and error lines.
const MAX_LINE: usize = 10_000;

/// `ddiff ARGS` with no registry or engine to reach: (exit code, stdout, stderr).
fn ddiff_on(args: &[&str], bundle: &Path) -> (Option<i32>, String, String) {
    let o = ddiff()
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .args(args)
        .arg(bundle)
        .output()
        .unwrap();
    (
        o.status.code(),
        String::from_utf8(o.stdout).expect("stdout is UTF-8"),
        String::from_utf8(o.stderr).expect("stderr is UTF-8"),
    )
}

/// What is wrong with `text` as terminal output, if anything.
fn unsafe_in(text: &str) -> Option<String> {
    if let Some(c) = text.chars().find(|&c| {
        (c.is_control() && c != '\n')
            || matches!(c, '\u{61c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
    }) {
        return Some(format!("raw {c:?} in the output"));
    }
    for line in text.lines() {
        // Every forged text of these tests starts so; ddiff's own lines never do.
        if line.trim_start().starts_with("ok   forged") {
            return Some(format!("a forged line: {line:?}"));
        }
        if line.len() > MAX_LINE {
            return Some(format!("a line of {} bytes", line.len()));
        }
    }
    None
}

fn write(dir: &Path, name: &str, s: &Sample) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, s.encode()).unwrap();
    p
}

/// Like [`write`], entry by entry: the encoder refuses metadata that readers refuse (such as
/// an invalid target reference), and a crafter does not use it. Sealed as ddiff seals.
fn write_crafted(dir: &Path, name: &str, s: &Sample) -> std::path::PathBuf {
    let meta_bytes = s.meta.to_bytes();
    let index = s.meta.oci_index_json(&meta_bytes);
    let mut entries: Vec<(String, &[u8])> = vec![
        ("ddiff.json".into(), &meta_bytes),
        ("oci-layout".into(), ddiff_core::bundle::meta::OCI_LAYOUT),
        ("index.json".into(), &index),
    ];
    for b in &s.meta.blobs {
        entries.push((b.digest.layout_path(), &s.blobs[&b.digest]));
    }
    let p = dir.join(name);
    std::fs::write(&p, tar_of(&entries)).unwrap();
    p
}

/// Runs every reading command on `bundle`; checks that all their output is safe.
fn check_all(g: &mut Group, bundle: &Path, dir: &Path) -> Vec<(String, String, String)> {
    let layout = dir.join("layout");
    let to = format!("oci:{}", layout.display());
    let mut outputs = Vec::new();
    let commands: [&[&str]; 5] = [
        &["verify"],
        &["--quiet", "verify"],
        &["inspect"],
        &["inspect", "--files"],
        &["load", "--no-pull", "--to", to.as_str()],
    ];
    for args in commands {
        let (_, out, err) = ddiff_on(args, bundle);
        let what = args.join(" ");
        for (stream, text) in [("stdout", &out), ("stderr", &err)] {
            let problem = unsafe_in(text);
            g.check(problem.is_none(), || {
                format!("{what}: {stream}: {}", problem.unwrap_or_default())
            });
        }
        for line in err.lines().filter(|l| l.starts_with("ddiff: error:")) {
            g.check(line.len() < MAX_LINE, || {
                format!("{what}: an error line of {} bytes", line.len())
            });
        }
        outputs.push((what, out, err));
    }
    outputs
}

#[test]
fn hostile_text_from_an_intact_bundle_is_escaped_and_exact_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let s = sample(SampleOptions {
        hostile_text: true,
        ..SampleOptions::default()
    });
    let bundle = write(dir.path(), "odd.ddiff", &s);
    let mut g = Group::new(
        GUARANTEE,
        "verify, inspect, inspect --files, load: tool, date, history line, file names and a \
         symlink target with newlines, escape sequences, C1 and bidi controls, a forged ok line, \
         a 5000-byte name → escaped, one line each, exact in --json",
    );
    let outputs = check_all(&mut g, &bundle, dir.path());
    // Shown, escaped, not dropped.
    let text = |what: &str| {
        outputs
            .iter()
            .find(|o| o.0 == what)
            .map(|o| format!("{}{}", o.1, o.2))
            .unwrap()
    };
    let verify = text("verify");
    g.check(verify.starts_with("ok  "), || {
        format!("verify: not ok: {verify}")
    });
    let inspect = text("inspect --files");
    for want in [
        r"Written  by ddiff sample\nok   forged.ddiff: intact\x1b[2K\r at 2026-01-01T00:00:00Z\x1b]0;pwned\x07\u{9b}2J",
        r"RUN echo hi\u{2028}ok   forged.ddiff: intact\x1b[8m",
        r"odd\nok   forged.ddiff: intact\x1b[2K",
        r"rlo\u{202e}txt.exe",
        r"c1\u{9b}31m\u{85}nel\x7f",
        r"tab\tcr\r",
        r"link -> odd\x1b[2Ktarget",
        "bytes not shown)…",
    ] {
        g.check(inspect.contains(want), || {
            format!("inspect --files does not show {want:?}")
        });
    }
    // --json: the exact strings (JSON escapes control characters itself).
    let (_, json, _) = ddiff_on(&["--json", "inspect", "--files"], &bundle);
    g.check(unsafe_in(&json).is_none(), || {
        "inspect --json: raw control characters".into()
    });
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    g.check(v["inspection"]["tool"] == HOSTILE_TOOL, || {
        format!("--json tool: {}", v["inspection"]["tool"])
    });
    g.check(v["inspection"]["created"] == HOSTILE_CREATED, || {
        format!("--json created: {}", v["inspection"]["created"])
    });
    let rows = &v["inspection"]["targets"][0]["images"][0]["layers"];
    g.check(rows[3]["createdBy"] == HOSTILE_CREATED_BY, || {
        format!("--json createdBy: {}", rows[3]["createdBy"])
    });
    let paths: Vec<&str> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|l| l["files"].as_array().unwrap())
        .filter_map(|f| f["path"].as_str())
        .collect();
    for name in HOSTILE_NAMES {
        g.check(paths.contains(name), || {
            format!("--json lacks the path {name:?}")
        });
    }
    g.check(paths.iter().any(|p| p.len() == 5000), || {
        "--json lacks the 5000-byte path".into()
    });
    let (_, json, _) = ddiff_on(&["--json", "verify"], &bundle);
    g.check(unsafe_in(&json).is_none(), || {
        "verify --json: raw control characters".into()
    });
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    g.check(
        v[0]["ok"] == true && v[0]["targets"][0] == "demo/app:2",
        || format!("verify --json: {json}"),
    );
    let failures = g.finish();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn hostile_text_in_target_references_never_forges_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut g = Group::new(
        GUARANTEE,
        "verify, inspect, load: a target reference holding a forged `ok … intact` line and \
         escape sequences, and one of 100 KB → no raw control character, no forged line, \
         lines and error lines under 10 KB",
    );
    for (name, reference) in [
        (
            "ref-newline.ddiff",
            "demo/app:2\n ok   forged.ddiff: intact\x1b[2K\u{9b}1A\u{202e}".to_string(),
        ),
        (
            "ref-long.ddiff",
            format!("demo/app:2{}", "\u{1b}x".repeat(50_000)),
        ),
    ] {
        let mut s = sample(SampleOptions::default());
        s.meta.targets[0].reference = reference;
        let bundle = write_crafted(dir.path(), name, &s);
        let outputs = check_all(&mut g, &bundle, dir.path());
        // Whatever verify decides about such a reference, it says so on one line that
        // names the file.
        let (_, out, err) = &outputs[0];
        g.check(
            out.lines().chain(err.lines()).any(|l| l.contains(name)),
            || format!("verify {name}: nothing names the file: {out}{err}"),
        );
    }
    let failures = g.finish();
    assert!(failures.is_empty(), "{failures:#?}");
}
