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
        for chunk in blobs[&b.digest].chunks(1000) {
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
    let mut out = Vec::new();
    crate::tar::write_file(&mut out, "ddiff.json", &meta.to_bytes(), 0o644, 0);
    crate::tar::write_file(&mut out, "oci-layout", meta::OCI_LAYOUT, 0o644, 0);
    crate::tar::write_file(&mut out, "index.json", &meta.oci_index_json(), 0o644, 0);
    for b in &meta.blobs {
        crate::tar::write_file(
            &mut out,
            &b.digest.layout_path(),
            &blobs[&b.digest],
            0o644,
            0,
        );
    }
    crate::tar::write_end(&mut out);
    out
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
            crafted(|m, _| m.version = 2),
            "unsupported bundle format version 2",
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
