//! A complete, realistic sample bundle made in memory: a base of two layers and an app image
//! that adds two gzip layers with directories, an executable, a symlink, a whiteout and an
//! opaque directory, each with its Dockerfile step in the config's history. Used by the
//! inspector's tests, the CLI's tests, the browser test and the verify benchmark
//! (`big_layer_bytes` adds one large file), so that nothing binary is committed.

use std::collections::BTreeMap;

use flate2::{Compress, FlushCompress, Status};

use crate::bundle::{BundleError, BundleMeta, EncodeOptions, Encoder};
use crate::synth::{config_json, manifest, SynthLayer};
use crate::{
    plan, tar, BaseImage, Descriptor, Digest, ImageConfig, MediaType, TargetImageInput, TargetInput,
};

/// What to make.
#[derive(Clone, Copy, Debug, Default)]
pub struct SampleOptions {
    /// Size of an extra pseudo-random file in the app's data layer (0: none). Stored with
    /// deflate level 0, so making a 1 GiB bundle takes seconds.
    pub big_layer_bytes: u64,
    /// Put what a crafted bundle could say into the strings a reader is shown: the tool, the
    /// date, the last layer's history line and file names in that layer hold newlines, escape
    /// sequences, C1 and bidi controls and a line that imitates `ddiff verify`'s; one file
    /// name is 5000 bytes long (see [`HOSTILE_TOOL`] and [`HOSTILE_NAMES`]). Everything stays
    /// structurally valid: the bundle is intact.
    pub hostile_text: bool,
}

/// The tool name of a [`SampleOptions::hostile_text`] sample.
pub const HOSTILE_TOOL: &str = "ddiff sample\nok   forged.ddiff: intact\x1b[2K\r";
/// The date of a [`SampleOptions::hostile_text`] sample.
pub const HOSTILE_CREATED: &str = "2026-01-01T00:00:00Z\x1b]0;pwned\x07\u{9b}2J";
/// The last layer's history line of a [`SampleOptions::hostile_text`] sample.
pub const HOSTILE_CREATED_BY: &str = "RUN echo hi\u{2028}ok   forged.ddiff: intact\x1b[8m";
/// File names added to the last layer of a [`SampleOptions::hostile_text`] sample (and one
/// of `"deep/"` followed by 4995 `x`).
pub const HOSTILE_NAMES: &[&str] = &[
    "odd\nok   forged.ddiff: intact\x1b[2K",
    "rlo\u{202e}txt.exe",
    "c1\u{9b}31m\u{85}nel\x7f",
    "tab\tcr\r",
];

/// The sample: metadata and every carried blob by digest.
pub struct Sample {
    /// The bundle metadata (`ddiff.json`).
    pub meta: BundleMeta,
    /// Carried blobs.
    pub blobs: BTreeMap<Digest, Vec<u8>>,
}

/// One tar entry of a sample layer.
enum Item<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
}

fn layer_tar(items: &[Item<'_>]) -> Vec<u8> {
    const MTIME: u64 = 1_700_000_000;
    let mut out = Vec::new();
    for it in items {
        match it {
            Item::File(p, data, mode) => tar::write_file(&mut out, p, data, *mode, MTIME),
            Item::Dir(p) => out.extend_from_slice(&tar::ustar_block(p, 0, 0o755, MTIME, b'5')),
            Item::Symlink(p, target) => {
                let mut b = tar::ustar_block(p, 0, 0o777, MTIME, b'2');
                b[157..157 + target.len()].copy_from_slice(target.as_bytes());
                b[148..156].copy_from_slice(b"        ");
                let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
                b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                out.extend_from_slice(&b);
            }
        }
    }
    tar::write_end(&mut out);
    out
}

/// gzip (RFC 1952) of `data`; `level` 0 stores, 1–9 compress.
pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let mut c = Compress::new(flate2::Compression::new(level), false);
    let mut input = data;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let (i0, o0) = (c.total_in(), c.total_out());
        // Compressing into a memory buffer cannot fail.
        let st = c
            .compress(input, &mut buf, FlushCompress::Finish)
            .expect("deflate into memory");
        input = &input[(c.total_in() - i0) as usize..];
        out.extend_from_slice(&buf[..(c.total_out() - o0) as usize]);
        if st == Status::StreamEnd {
            break;
        }
    }
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    out
}

fn add(
    blobs: &mut BTreeMap<Digest, Vec<u8>>,
    items: &[Item<'_>],
    level: Option<u32>,
    by: &str,
) -> SynthLayer {
    let t = layer_tar(items);
    let diff_id = Digest::sha256(&t);
    let (stored, mt) = match level {
        Some(l) => (gzip(&t, l), MediaType::OciLayerGzip),
        None => (t, MediaType::OciLayer),
    };
    let d = Digest::sha256(&stored);
    let l = SynthLayer {
        descriptor: Descriptor::new(mt, d.clone(), stored.len() as u64),
        diff_id,
        created_by: by.to_string(),
    };
    blobs.insert(d, stored);
    l
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for a gigabyte.
fn noise(len: u64) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(len as usize + 8);
    while (v.len() as u64) < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len as usize);
    v
}

/// Makes the sample. References: base `demo/base:1`, target `demo/app:2`.
pub fn sample(opts: SampleOptions) -> Sample {
    let mut blobs = BTreeMap::new();
    let busybox: Vec<u8> = (0..40_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let l1 = add(
        &mut blobs,
        &[
            Item::Dir("bin/"),
            Item::File("bin/busybox", &busybox, 0o755),
            Item::Symlink("bin/sh", "busybox"),
            Item::Dir("etc/"),
            Item::File("etc/motd", b"Welcome\n", 0o644),
            Item::Dir("var/cache/"),
            Item::File("var/cache/old.db", b"stale", 0o644),
        ],
        Some(6),
        "ADD rootfs.tar /",
    );
    let l2 = add(
        &mut blobs,
        &[Item::File("etc/os-release", b"ID=demo\n", 0o644)],
        None,
        "RUN echo ID=demo > /etc/os-release",
    );
    let big = noise(opts.big_layer_bytes);
    let server: Vec<u8> = b"#!/bin/sh\nexec echo serving\n".repeat(200);
    let mut items = vec![
        Item::Dir("app/"),
        Item::File("app/server", &server, 0o755),
        Item::Symlink("app/current", "server"),
        Item::File("etc/.wh.motd", b"", 0o644),
        Item::File("var/cache/.wh..wh..opq", b"", 0o644),
    ];
    if !big.is_empty() {
        items.push(Item::File("app/data.bin", &big, 0o644));
    }
    let level = if big.is_empty() { 6 } else { 0 };
    let l3 = add(&mut blobs, &items, Some(level), "COPY app/ /app/");
    let long_name = format!("deep/{}", "x".repeat(4995));
    let mut items = vec![Item::File("hello_ddiff.txt", b"Hello DockerDiff!\n", 0o644)];
    let mut by = "RUN echo \"Hello DockerDiff!\" > hello_ddiff.txt";
    if opts.hostile_text {
        items.extend(HOSTILE_NAMES.iter().map(|n| Item::File(n, b"x", 0o644)));
        items.push(Item::Symlink("link", "odd\x1b[2Ktarget"));
        items.push(Item::File(&long_name, b"x", 0o644));
        by = HOSTILE_CREATED_BY;
    }
    let l4 = add(&mut blobs, &items, Some(6), by);
    let image = |blobs: &mut BTreeMap<Digest, Vec<u8>>, layers: &[SynthLayer]| {
        let c = config_json(layers, "linux", "amd64", "2026-01-01T00:00:00Z");
        let m = manifest(&MediaType::OciManifest, &c, layers);
        blobs.insert(Digest::sha256(&c), c.clone());
        blobs.insert(m.digest().clone(), m.bytes().to_vec());
        // Built by config_json just above: always a valid config.
        (m, ImageConfig::parse(&c).expect("synthetic config parses"))
    };
    let (bm, bc) = image(&mut blobs, &[l1.clone(), l2.clone()]);
    let (am, ac) = image(&mut blobs, &[l1, l2, l3, l4]);
    // Both are image manifests by construction, so neither step can fail.
    let base = BaseImage::from_manifest("demo/base:1", &bm, Some(&bc)).expect("base image");
    let target = TargetInput {
        reference: "demo/app:2".into(),
        top: am.clone(),
        images: vec![TargetImageInput {
            manifest: am,
            config: Some(ac),
        }],
    };
    let (tool, created) = if opts.hostile_text {
        (HOSTILE_TOOL, HOSTILE_CREATED)
    } else {
        ("ddiff sample", "2026-01-01T00:00:00Z")
    };
    let p = plan(&[base], &[target], tool, Some(created.into())).expect("sample plan");
    blobs.retain(|d, _| p.meta.blob(d).is_some());
    Sample {
        meta: p.meta,
        blobs,
    }
}

impl Sample {
    /// Writes the bundle, handing out pieces of at most about 1 MiB to `write`.
    pub fn encode_to(&self, mut write: impl FnMut(&[u8])) -> Result<(), BundleError> {
        let mut out = Vec::new();
        let mut e = Encoder::new(
            self.meta.clone(),
            EncodeOptions {
                mtime: 1_700_000_000,
                ..Default::default()
            },
        )?;
        e.start(&mut out)?;
        for b in &self.meta.blobs {
            e.begin_blob(&mut out)?;
            for chunk in self.blobs[&b.digest].chunks(1 << 20) {
                e.blob_data(chunk, &mut out)?;
                write(&out);
                out.clear();
            }
            e.end_blob(&mut out)?;
        }
        e.finish(&mut out)?;
        write(&out);
        Ok(())
    }

    /// The whole bundle in memory.
    pub fn encode(&self) -> Vec<u8> {
        let mut all = Vec::new();
        // The metadata came from `plan` and the blobs are the ones it lists.
        self.encode_to(|b| all.extend_from_slice(b))
            .expect("sample encodes");
        all
    }
}
