#![allow(clippy::unwrap_used)]
//! Round trips, determinism and a corpus of damaged and crafted bundles, each with its error.

use std::collections::BTreeMap;

use super::*;
use crate::synth::{config_json, index, layer_tar, manifest, plain_layer, SynthLayer};
use crate::{
    plan, BaseImage, Digest, ImageConfig, MediaType, Plan, RawManifest, TargetImageInput,
    TargetInput,
};

pub(crate) struct Fixture {
    pub plan: Plan,
    pub blobs: BTreeMap<Digest, Vec<u8>>,
}

fn layer(blobs: &mut BTreeMap<Digest, Vec<u8>>, files: &[(&str, &[u8])], by: &str) -> SynthLayer {
    let t = layer_tar(files, 1_700_000_000);
    let l = plain_layer(&t, by);
    blobs.insert(l.descriptor.digest.clone(), t);
    l
}

fn image(
    blobs: &mut BTreeMap<Digest, Vec<u8>>,
    layers: &[SynthLayer],
    arch: &str,
) -> (RawManifest, ImageConfig) {
    let c = config_json(layers, "linux", arch, "2026-01-01T00:00:00Z");
    let m = manifest(&MediaType::OciManifest, &c, layers);
    blobs.insert(Digest::sha256(&c), c.clone());
    blobs.insert(m.digest().clone(), m.bytes().to_vec());
    (m, ImageConfig::parse(&c).unwrap())
}

/// base = [L1, L2]; app = base + [L3 (big enough for several blocks), L4].
pub(crate) fn fixture() -> Fixture {
    let mut blobs = BTreeMap::new();
    let l1 = layer(
        &mut blobs,
        &[("bin/busybox", b"\x7fELF fake busybox")],
        "ADD rootfs /",
    );
    let l2 = layer(
        &mut blobs,
        &[("etc/os-release", b"ID=demo\n")],
        "RUN configure",
    );
    let big: Vec<u8> = (0..5000u32).flat_map(|i| i.to_le_bytes()).collect();
    let l3 = layer(&mut blobs, &[("app/data.bin", &big)], "COPY data.bin /app/");
    let l4 = layer(
        &mut blobs,
        &[("hello_ddiff.txt", b"Hello DockerDiff!\n")],
        "RUN echo hello",
    );
    let (bm, bc) = image(&mut blobs, &[l1.clone(), l2.clone()], "amd64");
    let (am, ac) = image(&mut blobs, &[l1, l2, l3, l4], "amd64");
    let base = BaseImage::from_manifest("base:1", &bm, Some(&bc)).unwrap();
    let target = TargetInput {
        reference: "app:2".into(),
        top: am.clone(),
        images: vec![TargetImageInput {
            manifest: am,
            config: Some(ac),
        }],
    };
    let plan = plan(&[base], &[target], "ddiff test", None).unwrap();
    Fixture { plan, blobs }
}

pub(crate) fn encode(f: &Fixture) -> Vec<u8> {
    encode_meta(f.plan.meta.clone(), &f.blobs)
}

fn encode_meta(meta: BundleMeta, blobs: &BTreeMap<Digest, Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(
        meta.clone(),
        EncodeOptions {
            mtime: 1_700_000_000,
            ..Default::default()
        },
    )
    .unwrap();
    e.start(&mut out).unwrap();
    for b in &meta.blobs {
        e.begin_blob(&mut out).unwrap();
        for chunk in blobs[b.entry_digest()].chunks(1000) {
            e.blob_data(chunk, &mut out).unwrap();
        }
        e.end_blob(&mut out).unwrap();
    }
    e.finish(&mut out).unwrap();
    assert_eq!(out.len() as u64, e.total_size());
    out
}

#[derive(Debug, PartialEq, Eq)]
enum Ev {
    Meta(Box<BundleMeta>),
    Start(usize, u64),
    Data(usize, Vec<u8>),
    End(usize),
    Done(Box<Report>),
}

fn decode(bytes: &[u8], chunk: usize) -> Result<Vec<Ev>, BundleError> {
    let mut d = Decoder::new();
    let mut evs: Vec<Ev> = Vec::new();
    for piece in bytes.chunks(chunk) {
        let mut p = piece;
        loop {
            let (n, ev) = d.decode(p)?;
            p = &p[n..];
            match ev {
                None => {
                    assert!(
                        p.is_empty(),
                        "None must mean 'all input consumed, need more'"
                    );
                    break;
                }
                Some(Event::Metadata(m)) => evs.push(Ev::Meta(m)),
                Some(Event::BlobStart { index, offset }) => evs.push(Ev::Start(index, offset)),
                Some(Event::BlobData { index, data }) => match evs.last_mut() {
                    Some(Ev::Data(i, buf)) if *i == index => buf.extend_from_slice(data),
                    _ => evs.push(Ev::Data(index, data.to_vec())),
                },
                Some(Event::BlobEnd { index }) => evs.push(Ev::End(index)),
                Some(Event::End(r)) => evs.push(Ev::Done(r)),
            }
        }
    }
    d.finish()?;
    Ok(evs)
}

#[test]
fn plan_carries_only_new_layers() {
    let f = fixture();
    let m = &f.plan.meta;
    let kinds: Vec<BlobKind> = m.blobs.iter().map(|b| b.kind).collect();
    assert_eq!(
        kinds,
        [
            BlobKind::Manifest,
            BlobKind::Config,
            BlobKind::Layer,
            BlobKind::Layer
        ]
    );
    assert_eq!(m.relied.len(), 2);
    assert!(m.relied.iter().all(|r| r.diff_id.is_some()));
    assert_eq!(m.base.as_ref().unwrap().references, ["base:1"]);
    assert!(f.plan.full_bytes > m.carried_bytes());
    assert_eq!(f.plan.full_bytes, m.carried_bytes() + m.relied_bytes());
}

#[test]
fn plan_matches_recompressed_base_by_diff_id() {
    let f = fixture();
    // The destination's base has the same diff_ids but other blob digests (recompressed):
    // the planner must still rely on them.
    let ids: Vec<Digest> = f
        .plan
        .meta
        .relied
        .iter()
        .map(|r| r.diff_id.clone().unwrap())
        .collect();
    let base = BaseImage::from_diff_ids("base:1", ids);
    let app = f.blobs.iter().find_map(|(d, b)| {
        let m = RawManifest::parse(b.clone(), None).ok()?;
        (m.as_image()?.layers.len() == 4).then(|| (d.clone(), m))
    });
    let (_, am) = app.unwrap();
    let cfg = ImageConfig::parse(&f.blobs[&am.as_image().unwrap().config.digest]).unwrap();
    let t = TargetInput {
        reference: "app:2".into(),
        top: am.clone(),
        images: vec![TargetImageInput {
            manifest: am,
            config: Some(cfg),
        }],
    };
    let p = plan(&[base], &[t], "t", None).unwrap();
    assert_eq!(p.meta.relied.len(), 2);
    assert_eq!(p.layers_to_fetch().count(), 2);
}

#[test]
fn several_targets_share_blobs_once_and_indexes_are_carried() {
    let mut blobs = BTreeMap::new();
    let l1 = layer(&mut blobs, &[("a", b"1")], "base");
    let shared = layer(&mut blobs, &[("shared", b"2")], "shared");
    let only_b = layer(&mut blobs, &[("b", b"3")], "b");
    let (bm, bc) = image(&mut blobs, std::slice::from_ref(&l1), "amd64");
    let (a_amd, a_amd_c) = image(&mut blobs, &[l1.clone(), shared.clone()], "amd64");
    let (a_arm, a_arm_c) = image(&mut blobs, &[l1.clone(), shared.clone()], "arm64");
    let idx = index(&[(&a_amd, "linux", "amd64"), (&a_arm, "linux", "arm64")]);
    blobs.insert(idx.digest().clone(), idx.bytes().to_vec());
    let (b_m, b_c) = image(&mut blobs, &[l1, shared, only_b], "amd64");
    let base = BaseImage::from_manifest("base:1", &bm, Some(&bc)).unwrap();
    let ta = TargetInput {
        reference: "a:1".into(),
        top: idx.clone(),
        images: vec![
            TargetImageInput {
                manifest: a_amd,
                config: Some(a_amd_c),
            },
            TargetImageInput {
                manifest: a_arm,
                config: Some(a_arm_c),
            },
        ],
    };
    let tb = TargetInput {
        reference: "b:1".into(),
        top: b_m.clone(),
        images: vec![TargetImageInput {
            manifest: b_m,
            config: Some(b_c),
        }],
    };
    let p = plan(&[base], &[ta, tb], "t", None).unwrap();
    let layers: Vec<_> = p.layers_to_fetch().collect();
    assert_eq!(layers.len(), 2, "shared layer carried once: {layers:?}");
    assert_eq!(p.meta.blobs[0].kind, BlobKind::Index);
    assert_eq!(p.meta.targets[0].images.len(), 2);
    assert_eq!(
        p.meta.targets[0].images[1]
            .platform
            .as_ref()
            .unwrap()
            .architecture,
        "arm64"
    );
    let bytes = encode_meta(p.meta.clone(), &blobs);
    let evs = decode(&bytes, 4096).unwrap();
    assert!(matches!(evs.last(), Some(Ev::Done(_))));
}

#[test]
fn round_trip_is_identical_for_every_chunk_size() {
    let f = fixture();
    let bytes = encode(&f);
    let reference = decode(&bytes, bytes.len()).unwrap();
    for chunk in [1, 7, 512, 65536] {
        assert_eq!(
            decode(&bytes, chunk).unwrap(),
            reference,
            "chunk size {chunk}"
        );
    }
    // The data that came out is the data that went in.
    let meta = &f.plan.meta;
    for ev in &reference {
        if let Ev::Data(i, data) = ev {
            assert_eq!(data, &f.blobs[&meta.blobs[*i].digest]);
        }
    }
    let Some(Ev::Done(report)) = reference.last() else {
        panic!("no end")
    };
    assert_eq!(report.meta, *meta);
    assert_eq!(report.json_blobs.len(), 2);
    assert_eq!(report.archive_bytes, bytes.len() as u64);
}

#[test]
fn encoding_is_deterministic_and_has_the_documented_layout() {
    let f = fixture();
    let a = encode(&f);
    assert_eq!(a, encode(&f));
    let mut r = crate::tar::TarReader::new();
    let mut names = Vec::new();
    let mut p = &a[..];
    loop {
        let (n, ev) = r.feed(p).unwrap();
        p = &p[n..];
        match ev {
            Some(crate::tar::TarEvent::Header(e)) => names.push(e.path),
            Some(crate::tar::TarEvent::End) => break,
            _ => {}
        }
    }
    let mut expected = vec![
        "ddiff.json".to_string(),
        "oci-layout".into(),
        "index.json".into(),
    ];
    expected.extend(f.plan.meta.blobs.iter().map(|b| b.digest.layout_path()));
    assert_eq!(names, expected);
}

/// Offsets of every tar header (entry boundaries) in an archive.
fn boundaries(bytes: &[u8]) -> Vec<(u64, u64)> {
    let mut r = crate::tar::TarReader::new();
    let mut out = Vec::new();
    let mut p = bytes;
    loop {
        let (n, ev) = r.feed(p).unwrap();
        p = &p[n..];
        match ev {
            Some(crate::tar::TarEvent::Header(e)) => out.push((e.header_offset, e.data_offset)),
            Some(crate::tar::TarEvent::End) => break,
            None if n == 0 => break,
            _ => {}
        }
    }
    out
}

#[test]
fn truncation_anywhere_is_an_error_naming_where() {
    let f = fixture();
    let bytes = encode(&f);
    let meta = &f.plan.meta;
    let b = boundaries(&bytes);
    let mut cuts: Vec<usize> = b
        .iter()
        .flat_map(|(h, d)| [*h as usize, *d as usize, *d as usize + 100])
        .collect();
    cuts.extend((0..bytes.len()).step_by(509));
    cuts.push(bytes.len() - 512);
    cuts.push(bytes.len() - 1);
    for cut in cuts.into_iter().filter(|&c| c < bytes.len()) {
        let err = decode(&bytes[..cut], 333).unwrap_err();
        assert!(
            matches!(
                err,
                BundleError::Truncated { .. }
                    | BundleError::Tar(crate::tar::TarError::Truncated { .. })
            ),
            "cut at {cut}: {err:?}"
        );
        assert!(
            err.to_string().contains(&format!("offset {}", cut))
                || cut % 512 != 0
                || cut == 0
                || err.to_string().contains("offset"),
            "{err}"
        );
    }
    // Mid-blob truncation names the blob.
    let (_, data_off) = b[3 + 2]; // the first layer
    let err = decode(&bytes[..data_off as usize + 10], 4096)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&meta.blobs[2].digest.to_string()) && err.contains("10 of"),
        "{err}"
    );
}

#[test]
fn a_flipped_byte_in_any_blob_names_that_blob() {
    let f = fixture();
    let bytes = encode(&f);
    let b = boundaries(&bytes);
    for (i, blob) in f.plan.meta.blobs.iter().enumerate() {
        let (_, data) = b[3 + i];
        for pos in [0, blob.size / 2, blob.size - 1] {
            let mut bad = bytes.clone();
            bad[(data + pos) as usize] ^= 0x20;
            let err = decode(&bad, 1000).unwrap_err();
            match &err {
                BundleError::CorruptBlob { digest, .. } => assert_eq!(digest, &blob.digest),
                other => panic!("blob {i} byte {pos}: {other:?}"),
            }
        }
    }
    // In the metadata, in oci-layout, in index.json, and in a header: refused too.
    for (h, d) in &b[..3] {
        let mut bad = bytes.clone();
        bad[*d as usize + 2] ^= 0x01;
        assert!(decode(&bad, 1000).is_err(), "flip at {d}");
        let mut bad = bytes.clone();
        bad[*h as usize + 1] ^= 0x01;
        assert!(matches!(
            decode(&bad, 1000),
            Err(BundleError::Tar(crate::tar::TarError::Checksum { .. }))
        ));
    }
}

/// Re-encodes the fixture with a hook that may rewrite the metadata and blobs.
fn crafted(edit: impl FnOnce(&mut BundleMeta, &mut BTreeMap<Digest, Vec<u8>>)) -> Vec<u8> {
    let f = fixture();
    let mut meta = f.plan.meta.clone();
    let mut blobs = f.blobs.clone();
    edit(&mut meta, &mut blobs);
    // Written by hand: the encoder would refuse an inconsistent document.
    let meta_bytes = meta.to_bytes();
    let index = meta.oci_index_json(&meta_bytes);
    raw_bundle(&meta_bytes, meta::OCI_LAYOUT, &index, &meta, &blobs)
}

/// A bundle written entry by entry from the exact bytes of its three documents.
fn raw_bundle(
    meta_bytes: &[u8],
    layout: &[u8],
    index: &[u8],
    meta: &BundleMeta,
    blobs: &BTreeMap<Digest, Vec<u8>>,
) -> Vec<u8> {
    let mut out = Vec::new();
    crate::tar::write_file(&mut out, "ddiff.json", meta_bytes, 0o644, 0);
    crate::tar::write_file(&mut out, "oci-layout", layout, 0o644, 0);
    crate::tar::write_file(&mut out, "index.json", index, 0o644, 0);
    for b in &meta.blobs {
        crate::tar::write_file(
            &mut out,
            &b.entry_digest().layout_path(),
            &blobs[b.entry_digest()],
            0o644,
            0,
        );
    }
    crate::tar::write_end(&mut out);
    out
}

/// Issue 15, item 1: one flipped bit in `ddiff.json` loaded the image under another name
/// (`demo/app:2` -> `demo/qpp:2`). Every single-bit flip of either metadata document of a real
/// bundle must now be refused: there is no inert bit.
#[test]
fn every_bit_flip_in_ddiff_json_and_index_json_is_refused() {
    let f = fixture();
    let meta = f.plan.meta.clone();
    let meta_bytes = meta.to_bytes();
    let index = meta.oci_index_json(&meta_bytes);
    let clean = raw_bundle(&meta_bytes, meta::OCI_LAYOUT, &index, &meta, &f.blobs);
    assert_eq!(
        clean,
        encode_unstamped(&f),
        "the hand-written bundle is the encoder's"
    );
    let report = match decode(&clean, 4096).unwrap().pop() {
        Some(Ev::Done(r)) => r,
        other => panic!("{other:?}"),
    };
    assert!(report.metadata_sealed);
    let mut flips = 0;
    for (doc, which) in [(&meta_bytes, 0), (&index, 1)] {
        for byte in 0..doc.len() {
            for bit in 0..8 {
                let mut d = doc.clone();
                d[byte] ^= 1 << bit;
                let (m, i) = if which == 0 {
                    (&d, &index)
                } else {
                    (&meta_bytes, &d)
                };
                let bytes = raw_bundle(m, meta::OCI_LAYOUT, i, &meta, &f.blobs);
                if let Ok(evs) = decode(&bytes, 1 << 20) {
                    panic!(
                        "flip of bit {bit} of byte {byte} of {} was accepted: {:?}",
                        ["ddiff.json", "index.json"][which],
                        evs.first()
                    );
                }
                flips += 1;
            }
        }
    }
    assert_eq!(flips, 8 * (meta_bytes.len() + index.len()));
}

fn encode_unstamped(f: &Fixture) -> Vec<u8> {
    let mut out = Vec::new();
    let mut e = Encoder::new(f.plan.meta.clone(), EncodeOptions::default()).unwrap();
    e.start(&mut out).unwrap();
    for b in &f.plan.meta.blobs {
        e.begin_blob(&mut out).unwrap();
        e.blob_data(&f.blobs[&b.digest], &mut out).unwrap();
        e.end_blob(&mut out).unwrap();
    }
    e.finish(&mut out).unwrap();
    out
}

/// Bundles of ddiff versions that did not record the metadata digest still load, if their
/// index.json is exactly what those versions wrote; the report says the metadata is unsealed.
#[test]
fn an_unsealed_index_json_of_older_writers_is_accepted_and_reported() {
    let f = fixture();
    let meta = f.plan.meta.clone();
    let meta_bytes = meta.to_bytes();
    let old = meta.unsealed_index_json();
    assert!(!String::from_utf8_lossy(&old).contains(meta::METADATA_DIGEST_ANNOTATION));
    let bytes = raw_bundle(&meta_bytes, meta::OCI_LAYOUT, &old, &meta, &f.blobs);
    match decode(&bytes, 999).unwrap().pop() {
        Some(Ev::Done(r)) => assert!(!r.metadata_sealed),
        other => panic!("{other:?}"),
    }
    // The same documents, reformatted: refused (the annotations must be ddiff's own bytes).
    let v: serde_json::Value = serde_json::from_slice(&old).unwrap();
    let pretty = serde_json::to_vec_pretty(&v).unwrap();
    let bytes = raw_bundle(&meta_bytes, meta::OCI_LAYOUT, &pretty, &meta, &f.blobs);
    let err = decode(&bytes, 999).unwrap_err().to_string();
    assert!(err.contains("invalid index.json: differs at byte"), "{err}");
    // A sealed index.json for another ddiff.json: refused naming both digests.
    let other = meta.sealed_index_json(&Digest::sha256(b"another ddiff.json"));
    let bytes = raw_bundle(&meta_bytes, meta::OCI_LAYOUT, &other, &meta, &f.blobs);
    let err = decode(&bytes, 999).unwrap_err();
    assert!(matches!(err, BundleError::MetadataAltered { .. }), "{err}");
}

/// Issue 15, item 8: the spec says bundle entries MUST have typeflag `0`; NUL and `7` (which
/// generic tar readers take as regular files) were accepted.
#[test]
fn typeflags_other_than_0_are_refused() {
    let f = fixture();
    let clean = encode(&f);
    let b = boundaries(&clean);
    for flag in [0u8, b'7'] {
        let mut bytes = clean.clone();
        let (h, _) = b[3];
        let h = h as usize;
        bytes[h + 156] = flag;
        // Re-compute the header checksum so that only the typeflag differs.
        let mut sum: u64 = 0;
        for (i, &x) in bytes[h..h + 512].iter().enumerate() {
            sum += if (148..156).contains(&i) {
                32
            } else {
                u64::from(x)
            };
        }
        bytes[h + 148..h + 156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
        let err = decode(&bytes, 4096).unwrap_err();
        assert!(
            matches!(err, BundleError::Typeflag { typeflag, .. } if typeflag == flag),
            "{err}"
        );
    }
}

/// Issue 15, items 8 and 9: any number of zero bytes may follow the end marker (1 to 511
/// were refused as truncation); one appended non-zero byte is trailing data, not truncation.
#[test]
fn trailing_zeros_are_padding_and_an_appended_byte_is_trailing_data() {
    let f = fixture();
    let clean = encode(&f);
    for n in [1usize, 100, 511, 512, 513, 10240] {
        let mut bytes = clean.clone();
        bytes.extend(std::iter::repeat_n(0u8, n));
        assert!(decode(&bytes, 333).is_ok(), "{n} trailing zero bytes");
    }
    for (n, at) in [(1usize, 0usize), (700, 699)] {
        let mut bytes = clean.clone();
        bytes.extend(std::iter::repeat_n(0u8, n));
        bytes[clean.len() + at] = b'x';
        let err = decode(&bytes, 333).unwrap_err();
        let want = (clean.len() + at) as u64;
        assert!(
            matches!(err, BundleError::Tar(crate::tar::TarError::TrailingData { offset }) if offset == want),
            "{n}: {err:?}"
        );
    }
}

/// Issue 15, items 2, 3, 6 and 8: what a loader would refuse, the metadata check refuses
/// (so `verify` does, before any load writes).
#[test]
fn metadata_refuses_what_loaders_would_refuse() {
    let f = fixture();
    let check = |edit: &dyn Fn(&mut BundleMeta)| {
        let mut m = f.plan.meta.clone();
        edit(&mut m);
        m.validate().map_err(|e| crate::display::error_chain(&e))
    };
    assert!(check(&|_| {}).is_ok());
    type Edit = Box<dyn Fn(&mut BundleMeta)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "uppercase repository",
            Box::new(|m| m.targets[0].reference = "demo/App:2".into()),
            "must be lowercase",
        ),
        (
            "bad tag",
            Box::new(|m| m.targets[0].reference = "demo/app:-2".into()),
            "invalid tag",
        ),
        (
            "control characters",
            Box::new(|m| m.targets[0].reference = "demo/app:2\n ok forged".into()),
            "not a valid image reference",
        ),
        (
            "pinned to another digest",
            Box::new(|m| m.targets[0].reference = format!("demo/app@sha256:{}", "0".repeat(64))),
            "pins sha256:0000",
        ),
        (
            "the same name twice, written two ways",
            Box::new(|m| {
                let mut t = m.targets[0].clone();
                t.reference = "docker.io/library/app:2".into();
                m.targets.push(t);
            }),
            "listed twice",
        ),
        (
            "manifest over 4 MiB",
            Box::new(|m| m.blobs[0].size = 4 * 1024 * 1024 + 1),
            "larger than 4 MiB",
        ),
        (
            "configs over the total budget",
            Box::new(|m| {
                for i in 0..5 {
                    let b = BlobInfo {
                        digest: Digest::sha256(format!("cfg{i}").as_bytes()),
                        size: 15 * 1024 * 1024,
                        media_type: MediaType::OciConfig,
                        kind: BlobKind::Config,
                        patch: None,
                    };
                    m.blobs.insert(0, b);
                }
            }),
            "over the 67108864-byte limit",
        ),
    ];
    for (name, edit, needle) in cases {
        let err = check(&*edit).unwrap_err();
        assert!(err.contains(needle), "{name}: {err:?} lacks {needle:?}");
    }
    // A pin that matches the target's digest is fine.
    let d = f.plan.meta.targets[0].digest.clone();
    assert!(check(&|m| m.targets[0].reference = format!("demo/app@{d}")).is_ok());
}

/// Issue 15, item 9: an extra field in `oci-layout` was reported as a wrong version.
#[test]
fn oci_layout_errors_say_what_differs() {
    let f = fixture();
    let meta = f.plan.meta.clone();
    let mb = meta.to_bytes();
    let ix = meta.oci_index_json(&mb);
    for (layout, needle) in [
        (
            &br#"{"imageLayoutVersion":"1.0.0","x":1}"#[..],
            "unexpected field(s) x",
        ),
        (br#"{"imageLayoutVersion":"2.0.0"}"#, "is \"2.0.0\""),
        (br#"{ "imageLayoutVersion": "1.0.0" }"#, "must be exactly"),
        (br#"[]"#, "not a JSON object"),
    ] {
        let bytes = raw_bundle(&mb, layout, &ix, &meta, &f.blobs);
        let err = decode(&bytes, 512).unwrap_err().to_string();
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    }
}

fn with_extra_entry(entry: Vec<u8>) -> Vec<u8> {
    let f = fixture();
    let mut bytes = encode(&f);
    bytes.truncate(bytes.len() - 1024);
    bytes.extend(entry);
    crate::tar::write_end(&mut bytes);
    bytes
}

fn special(path: &str, flag: u8, link: &str) -> Vec<u8> {
    let mut b = crate::tar::ustar_block(path, 0, 0o777, 0, flag);
    b[157..157 + link.len()].copy_from_slice(link.as_bytes());
    let mut sum: u64 = 0;
    for (i, &x) in b.iter().enumerate() {
        sum += if (148..156).contains(&i) {
            32
        } else {
            u64::from(x)
        };
    }
    b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    b.to_vec()
}

/// The fixture with its first carried layer (L3, uncompressed) travelling as a "patch"
/// against the base's first layer. The core never decodes patches (hosts do, with the
/// reference): it names, sizes and verifies the entry by the patch's own digest.
fn patched() -> (BundleMeta, BTreeMap<Digest, Vec<u8>>) {
    use crate::delta::{PatchEncoding, PatchInfo, PatchReference, Recipe};
    let f = fixture();
    let mut meta = f.plan.meta.clone();
    let mut blobs = f.blobs.clone();
    let reference = meta.relied[0].clone();
    let l = meta.blobs[2].clone();
    assert_eq!(l.kind, BlobKind::Layer);
    let patch = b"the bytes of a zstd patch".to_vec();
    let pd = Digest::sha256(&patch);
    blobs.insert(pd.clone(), patch.clone());
    meta.blobs[2].patch = Some(PatchInfo {
        digest: pd,
        size: patch.len() as u64,
        encoding: PatchEncoding::Zstd,
        reference: PatchReference {
            digest: reference.digest.clone(),
            size: reference.size,
            media_type: reference.media_type.clone(),
            diff_id: reference.diff_id.clone().unwrap(),
            tar_size: reference.size,
            repositories: Vec::new(),
        },
        diff_id: l.digest.clone(),
        tar_size: l.size,
        recipe: Recipe::None,
    });
    meta.version = meta::FORMAT_VERSION_PATCHES;
    (meta, blobs)
}

#[test]
fn a_patched_layer_travels_as_its_patch_and_round_trips() {
    let (meta, blobs) = patched();
    let bytes = encode_meta(meta.clone(), &blobs);
    let patch = meta.blobs[2].patch.clone().unwrap();
    for chunk in [1, 7, 512, 65536] {
        let evs = decode(&bytes, chunk).unwrap();
        let Some(Ev::Done(r)) = evs.last() else {
            panic!("no report")
        };
        assert_eq!(r.meta, meta);
        assert_eq!(r.meta.version, 2);
        // The entry's data is the patch, verified against the patch's digest.
        assert!(evs.contains(&Ev::Data(2, blobs[&patch.digest].clone())));
    }
    // The bundle is smaller by what the patch saves, and says so.
    assert_eq!(
        meta.carried_bytes() + meta.blobs[2].size - patch.size,
        meta.delivered_bytes()
    );
    // A flipped byte in the patch names the patch entry.
    let at = find(&bytes, &blobs[&patch.digest]);
    let mut bad = bytes.clone();
    bad[at + 3] ^= 1;
    let e = decode(&bad, 4096).unwrap_err();
    assert!(e.to_string().contains(&patch.digest.to_string()), "{e}");
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

#[test]
fn crafted_patches_are_refused() {
    use crate::delta::Recipe;
    let bad = |edit: fn(&mut BundleMeta)| {
        let (mut meta, blobs) = patched();
        edit(&mut meta);
        let meta_bytes = meta.to_bytes();
        let index = meta.oci_index_json(&meta_bytes);
        let bytes = raw_bundle(&meta_bytes, meta::OCI_LAYOUT, &index, &meta, &blobs);
        crate::display::error_chain(&decode(&bytes, 4096).unwrap_err())
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "a version 1 bundle with a patch",
            bad(|m| m.version = 1),
            "version does not match",
        ),
        (
            "a patch on a config",
            bad(|m| {
                let p = m.blobs[2].patch.take();
                m.blobs[1].patch = p;
            }),
            "only layers may travel as patches",
        ),
        (
            "a recipe that cannot make the media type",
            bad(|m| m.blobs[2].patch.as_mut().unwrap().recipe = Recipe::GoGzip { level: 6 }),
            "cannot make the layer's media type",
        ),
        (
            "a recipe out of range",
            bad(|m| {
                m.blobs[2].media_type = MediaType::OciLayerGzip;
                m.blobs[2].patch.as_mut().unwrap().recipe = Recipe::GoGzip { level: 42 };
            }),
            "cannot make the layer's media type",
        ),
        (
            "a reference the destination is not known to hold",
            bad(|m| {
                m.blobs[2].patch.as_mut().unwrap().reference.diff_id = m.blobs[3].digest.clone()
            }),
            "not a layer the destination is known to hold",
        ),
        (
            "an uncompressed layer whose diff_id is not its digest",
            bad(|m| m.blobs[2].patch.as_mut().unwrap().diff_id = m.blobs[3].digest.clone()),
            "diff_id and size are its own",
        ),
        (
            "a patch named like another blob",
            bad(|m| {
                let other = m.blobs[3].digest.clone();
                m.blobs[2].patch.as_mut().unwrap().digest = other;
            }),
            "bundle entry named twice",
        ),
        (
            "a reference larger than a patch may use",
            bad(|m| m.blobs[2].patch.as_mut().unwrap().reference.tar_size = 1 << 40),
            "larger than 2 GiB",
        ),
    ];
    for (name, got, want) in cases {
        assert!(got.contains(want), "{name}: {got:?} lacks {want:?}");
    }
}

#[test]
fn crafted_bundles_are_refused_with_the_right_error() {
    let f = fixture();
    let first_layer = f.plan.meta.blobs[2].digest.clone();
    let file = |p: &str| {
        let mut v = Vec::new();
        crate::tar::write_file(&mut v, p, b"x", 0o644, 0);
        v
    };
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("dotdot", with_extra_entry(file("../x")), "unsafe path"),
        ("absolute", with_extra_entry(file("/etc/x")), "unsafe path"),
        (
            "nested dotdot",
            with_extra_entry(file("a/../../x")),
            "unsafe path",
        ),
        (
            "symlink",
            with_extra_entry(special("blobs/sha256/link", b'2', "/etc/passwd")),
            "Symlink",
        ),
        (
            "hardlink",
            with_extra_entry(special("blobs/sha256/hard", b'1', "/etc/passwd")),
            "HardLink",
        ),
        (
            "device",
            with_extra_entry(special("dev", b'3', "")),
            "Device",
        ),
        (
            "extra file",
            with_extra_entry(file("blobs/sha256/extra")),
            "unexpected entry",
        ),
        (
            "duplicate",
            with_extra_entry(file("index.json")),
            "duplicate entry",
        ),
        (
            "swapped blob of equal size",
            crafted(|m, blobs| {
                let d = m.blobs[3].digest.clone();
                let mut other = blobs[&d].clone();
                other[600] ^= 1;
                blobs.insert(d, other);
            }),
            "corrupt blob",
        ),
        (
            "metadata claims another base",
            crafted(|m, _| m.relied[1].diff_id = Some(Digest::sha256(b"another base"))),
            "diff_id",
        ),
        (
            "layer neither carried nor relied",
            crafted(|m, _| {
                m.relied.remove(1);
            }),
            "neither carries",
        ),
        (
            "unknown format version",
            crafted(|m, _| m.version = 3),
            "unsupported bundle format version 3",
        ),
        (
            "version 2 without a patch",
            crafted(|m, _| m.version = 2),
            "version does not match the content",
        ),
        (
            "unknown media type in manifest list",
            crafted(|m, _| m.blobs[0].media_type = MediaType::Other("application/x-evil".into())),
            "kind does not match",
        ),
    ];
    for (name, bytes, needle) in cases {
        let err = decode(&bytes, 777).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(needle), "{name}: {msg:?} lacks {needle:?}");
        assert!(!msg.contains('\n'), "{name}: multi-line error {msg:?}");
    }
    // A header claiming a 1 EB size is refused before any data is read.
    let f = fixture();
    let mut bytes = encode(&f);
    let b = boundaries(&bytes);
    let (h, _) = b[5];
    let mut hdr = Vec::new();
    crate::tar::write_header(&mut hdr, &first_layer.layout_path(), 1u64 << 60, 0o644, 0);
    bytes.splice(h as usize..h as usize + 512, hdr);
    let err = decode(&bytes, 4096).unwrap_err();
    assert!(matches!(err, BundleError::SizeMismatch { .. }), "{err:?}");
}

#[test]
fn not_a_bundle() {
    let mut t = Vec::new();
    crate::tar::write_file(&mut t, "hello.txt", b"hi", 0o644, 0);
    crate::tar::write_end(&mut t);
    let err = decode(&t, 512).unwrap_err();
    assert!(err.to_string().contains("expected ddiff.json"), "{err}");
    assert!(decode(b"", 1).is_err());
    assert!(matches!(
        decode(&[0u8; 2048], 100),
        Err(BundleError::Truncated { .. })
    ));
}
