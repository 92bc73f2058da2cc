//! Helpers of the `hostile_*` tests (issue 7): a real good bundle made from images in the test
//! engine, damaged and crafted variants of it made in memory, listings of destinations
//! compared byte for byte, and the `RELIABILITY|...` lines `tests/reliability.sh` collects.

#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};

use ddiff_core::tar::{TarEvent, TarReader};

use crate::common::{ddiff_quiet, docker_build, docker_image, push, run, DdiffServer};

/// One result line for `tests/reliability.sh`: guarantee, case, times tried, result.
pub fn report(guarantee: &str, case: &str, tried: usize, result: &str) {
    println!("RELIABILITY|{guarantee}|{case}|{tried}|{result}");
}

/// Collects failures of one case group without stopping at the first, so that the table
/// gets an honest line; `finish` prints it and panics if anything failed.
pub struct Group {
    pub guarantee: &'static str,
    pub case: String,
    pub tried: usize,
    pub failures: Vec<String>,
}

impl Group {
    pub fn new(guarantee: &'static str, case: impl Into<String>) -> Group {
        Group {
            guarantee,
            case: case.into(),
            tried: 0,
            failures: Vec::new(),
        }
    }
    pub fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.tried += 1;
        if !ok {
            let w = what();
            eprintln!("FAILED {}: {w}", self.case);
            self.failures.push(w);
        }
    }
    /// Prints the line; returns the failures (empty when it held).
    pub fn finish(self) -> Vec<String> {
        let result = match self.failures.first() {
            None => "held".to_string(),
            Some(f) => format!(
                "FAILING ({} of {}): {}",
                self.failures.len(),
                self.tried,
                f.replace('|', "/").chars().take(200).collect::<String>()
            ),
        };
        report(self.guarantee, &self.case, self.tried, &result);
        self.failures
    }
}

/// Every file under `root` with the SHA-256 of its content: "byte for byte as before".
pub fn listing(root: &Path) -> Vec<(String, String)> {
    fn walk(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            let ft = e.file_type().unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            if ft.is_dir() {
                out.push((rel + "/", String::new()));
                walk(&p, base, out);
            } else if ft.is_symlink() {
                out.push((rel, format!("-> {:?}", std::fs::read_link(&p).ok())));
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((rel, ddiff_core::Digest::sha256(&bytes).to_string()));
            }
        }
    }
    let mut out = Vec::new();
    walk(root, root, &mut out);
    out.sort();
    out
}

/// What differs between two listings (for messages).
pub fn diff_listing(a: &[(String, String)], b: &[(String, String)]) -> String {
    let gone: Vec<_> = a.iter().filter(|x| !b.contains(x)).map(|x| &x.0).collect();
    let new: Vec<_> = b.iter().filter(|x| !a.contains(x)).map(|x| &x.0).collect();
    format!("gone or changed {gone:?}, new or changed {new:?}")
}

/// One tar entry of a bundle: path, offsets, size.
#[derive(Clone, Debug)]
pub struct Entry {
    pub path: String,
    pub header: usize,
    pub data: usize,
    pub size: usize,
}

/// The entries of a tar, and the offset of its end marker.
pub fn entries(bytes: &[u8]) -> (Vec<Entry>, usize) {
    let mut r = TarReader::new();
    let mut out = Vec::new();
    let mut p = bytes;
    loop {
        let (n, ev) = r.feed(p).unwrap();
        p = &p[n..];
        match ev {
            Some(TarEvent::Header(e)) => out.push(Entry {
                path: e.path,
                header: e.header_offset as usize,
                data: e.data_offset as usize,
                size: e.size as usize,
            }),
            Some(TarEvent::End) => return (out, r.offset() as usize - 1024),
            None if n == 0 => panic!("not a complete tar"),
            _ => {}
        }
    }
}

/// The (path, data) entries of a bundle.
pub fn files(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    entries(bytes)
        .0
        .into_iter()
        .map(|e| (e.path, bytes[e.data..e.data + e.size].to_vec()))
        .collect()
}

/// A ustar header of a non-regular entry (`flag`: `1` hard link, `2` symlink, `3`/`4`
/// device, `5` directory) with a correct checksum.
pub fn special_header(path: &str, flag: u8, link: &str) -> Vec<u8> {
    let mut h = Vec::new();
    ddiff_core::tar::write_header(&mut h, path, 0, 0o777, 0);
    assert_eq!(h.len(), 512);
    h[156] = flag;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

/// `bundle` with `extra` tar bytes inserted just before its end marker (after every blob
/// was verified: the most dangerous place).
pub fn with_extra(bundle: &[u8], extra: &[u8]) -> Vec<u8> {
    let (_, end) = entries(bundle);
    let mut v = bundle[..end].to_vec();
    v.extend_from_slice(extra);
    ddiff_core::tar::write_end(&mut v);
    v
}

/// Builds `{prefix}-base:1` ([`docker_image`]) and `{prefix}-{name}:1` from it with these
/// Dockerfile lines in the test engine, pushes both to a `ddiff server` under `dir/online`
/// (removed afterwards) and writes `ddiff diff` of the two to `out`.
pub fn bundle_from_engine(prefix: &str, dir: &Path, name: &str, lines: &[&str], out: &Path) {
    let base = format!("{prefix}-base:1");
    let target = format!("{prefix}-{name}:1");
    docker_image(&base, prefix);
    docker_build(&base, &target, lines);
    let online = DdiffServer::start(&dir.join("online"), &[]);
    push(&base, &format!("{}/{prefix}/base:1", online.addr));
    push(&target, &format!("{}/{prefix}/{name}:1", online.addr));
    run(ddiff_quiet()
        .args([
            "diff",
            &format!("docker://{}/{prefix}/base:1", online.addr),
            &format!("docker://{}/{prefix}/{name}:1", online.addr),
            "-o",
        ])
        .arg(out));
    drop(online);
    std::fs::remove_dir_all(dir.join("online")).unwrap();
}

/// A real bundle: base (busybox + one RUN layer) and a target adding two layers (one of
/// 300 KB of random bytes, so it spans many tar blocks), pushed to a `ddiff server` and
/// diffed there, as on a real online side. Returns (bundle path, base image name, the
/// target's image id).
pub struct GoodBundle {
    pub path: PathBuf,
    pub base: String,
    pub delta: String,
    /// `sha256:...` of the target's config (its engine image id).
    pub image_id: String,
    pub bytes: Vec<u8>,
}

pub fn good_bundle(prefix: &str, dir: &Path) -> GoodBundle {
    let base = format!("{prefix}-base:1");
    let delta = format!("{prefix}-delta:1");
    let path = dir.join("good.ddiff");
    bundle_from_engine(
        prefix,
        dir,
        "delta",
        &[
            "RUN /bin/busybox dd if=/dev/urandom of=/rand bs=1000 count=300 2>/dev/null",
            &format!("RUN echo {prefix} > /hello"),
            "CMD [\"cat\", \"/hello\"]",
        ],
        &path,
    );
    let bytes = std::fs::read(&path).unwrap();
    let meta: serde_json::Value =
        serde_json::from_slice(&files(&bytes)[0].1).expect("ddiff.json first");
    let image_id = meta["targets"][0]["images"][0]["config"]
        .as_str()
        .unwrap()
        .to_string();
    GoodBundle {
        path,
        base,
        delta,
        image_id,
        bytes,
    }
}
