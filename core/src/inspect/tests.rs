#![allow(clippy::unwrap_used)]
//! The inspector on the sample bundle: contents, file trees, and the verdict for every kind
//! of damage, at several chunk sizes.

use super::*;
use crate::layer_files::FileKind;
use crate::synth_bundle::{sample, SampleOptions};

fn run(bytes: &[u8], chunk: usize) -> Outcome {
    let mut ins = Inspector::new(InspectOptions::default());
    for c in bytes.chunks(chunk) {
        if ins.feed(c).is_err() {
            break;
        }
    }
    ins.finish()
}

#[test]
fn intact_sample_shows_targets_base_layers_and_files() {
    let s = sample(SampleOptions::default());
    let bytes = s.encode();
    for chunk in [1, 7, 512, 64 * 1024] {
        let o = run(&bytes, chunk);
        assert!(o.ok, "chunk {chunk}: {:?}", o.problem);
        assert_eq!(o.bytes, bytes.len() as u64);
        assert_eq!(o.blobs_verified, s.meta.blobs.len());
        let ins = o.inspection.unwrap();
        assert_eq!(ins.targets.len(), 1);
        let t = &ins.targets[0];
        assert_eq!(t.reference, "demo/app:2");
        let img = &t.images[0];
        assert_eq!(img.platform, "linux/amd64");
        let rows: Vec<_> = img
            .layers
            .iter()
            .map(|l| (l.carried, l.in_base, l.created_by.as_deref().unwrap()))
            .collect();
        assert_eq!(
            rows,
            [
                (false, true, "ADD rootfs.tar /"),
                (false, true, "RUN echo ID=demo > /etc/os-release"),
                (true, false, "COPY app/ /app/"),
                (
                    true,
                    false,
                    "RUN echo \"Hello DockerDiff!\" > hello_ddiff.txt"
                ),
            ]
        );
        assert_eq!(
            ins.base.as_ref().unwrap().references,
            ["demo/base:1".to_string()]
        );
        assert!(img.carried_bytes < img.full_bytes);
        assert_eq!(
            img.full_bytes - img.carried_bytes,
            img.layers[0].size + img.layers[1].size
        );
        assert_eq!(ins.relied_bytes, img.layers[0].size + img.layers[1].size);
        // Relied-on layers carry their diff_ids too.
        assert!(img.layers.iter().all(|l| l.diff_id.is_some()));
        // File trees of the two carried layers only.
        assert_eq!(o.layers.len(), 2);
        let l3: Vec<_> = o.layers[0]
            .files
            .iter()
            .map(|f| (f.path.as_str(), f.kind, f.mode))
            .collect();
        assert_eq!(
            l3,
            [
                ("app", FileKind::Dir, 0o755),
                ("app/server", FileKind::File, 0o755),
                ("app/current", FileKind::Symlink, 0o777),
                ("etc/motd", FileKind::Whiteout, 0o644),
                ("var/cache", FileKind::OpaqueDir, 0o644),
            ]
        );
        assert_eq!(o.layers[0].files[2].link.as_deref(), Some("server"));
        assert_eq!(o.layers[1].files[0].path, "hello_ddiff.txt");
        assert_eq!(o.layers[1].files[0].size, 18);
        assert_eq!(o.layers[0].digest, img.layers[2].digest);
        assert!(o.layers.iter().all(|l| l.error.is_none()));
    }
}

#[test]
fn inspection_from_report_equals_the_one_pass_view() {
    let s = sample(SampleOptions::default());
    let bytes = s.encode();
    let mut dec = crate::bundle::Decoder::new();
    let mut report = None;
    let mut rest = &bytes[..];
    loop {
        let (n, ev) = dec.decode(rest).unwrap();
        rest = &rest[n..];
        match ev {
            Some(Event::End(r)) => report = Some(*r),
            Some(_) => {}
            None => break,
        }
    }
    let from_report = Inspection::from_report(&report.unwrap()).unwrap();
    assert_eq!(Some(from_report), run(&bytes, 4096).inspection);
}

#[test]
fn flipped_byte_in_each_blob_names_that_blob() {
    let s = sample(SampleOptions::default());
    let bytes = s.encode();
    let clean = run(&bytes, 1 << 20);
    let offsets: Vec<u64> = {
        let mut dec = crate::bundle::Decoder::new();
        let mut offs = Vec::new();
        let mut rest = &bytes[..];
        loop {
            let (n, ev) = dec.decode(rest).unwrap();
            rest = &rest[n..];
            match ev {
                Some(Event::BlobStart { offset, .. }) => offs.push(offset),
                Some(_) => {}
                None => break,
            }
        }
        offs
    };
    assert!(clean.ok);
    for (i, b) in s.meta.blobs.iter().enumerate() {
        for at in [0, b.size / 2, b.size - 1] {
            let mut bad = bytes.clone();
            bad[(offsets[i] + at) as usize] ^= 0x20;
            let o = run(&bad, 3000);
            assert!(!o.ok);
            let p = o.problem.unwrap();
            assert_eq!(
                p.kind,
                ProblemKind::Corrupt,
                "blob {i} byte {at}: {}",
                p.message
            );
            let r = p.blob.unwrap();
            assert_eq!((r.index, &r.digest), (i, &b.digest));
            assert!(p.message.contains(&b.digest.to_string()));
            // A damaged layer still shows what the bundle holds.
            if b.kind == BlobKind::Layer {
                assert!(o.inspection.is_some());
            }
        }
    }
}

#[test]
fn truncation_anywhere_is_reported_with_the_blob_it_cut() {
    let s = sample(SampleOptions::default());
    let bytes = s.encode();
    let mut dec = crate::bundle::Decoder::new();
    let mut ranges = Vec::new();
    let mut rest = &bytes[..];
    loop {
        let (n, ev) = dec.decode(rest).unwrap();
        rest = &rest[n..];
        match ev {
            Some(Event::BlobStart { index, offset }) => {
                ranges.push((index, offset, offset + s.meta.blobs[index].size))
            }
            Some(_) => {}
            None => break,
        }
    }
    // Every 512-byte boundary, and a cut inside each blob.
    let mut cuts: Vec<u64> = (0..bytes.len() as u64).step_by(512).collect();
    cuts.extend(ranges.iter().map(|r| r.1 + (r.2 - r.1) / 2));
    for cut in cuts {
        let o = run(&bytes[..cut as usize], 700);
        assert!(!o.ok, "cut at {cut}");
        let p = o.problem.unwrap();
        assert_eq!(
            p.kind,
            ProblemKind::Truncated,
            "cut at {cut}: {}",
            p.message
        );
        assert_eq!(p.offset, cut, "{}", p.message);
        if let Some(&(index, start, end)) = ranges.iter().find(|r| cut > r.1 && cut < r.2) {
            let b = p.blob.unwrap();
            assert_eq!(b.index, index);
            assert_eq!(b.bytes_read, cut - start);
            assert!(end > cut);
        }
    }
}

#[test]
fn zstd_layers_are_verified_but_not_listed() {
    let mut s = sample(SampleOptions::default());
    // Relabel the last layer as zstd in both the manifest and the metadata: the digest still
    // verifies, the listing says why it is missing.
    let last = s.meta.blobs.len() - 1;
    let d = s.meta.blobs[last].digest.clone();
    let mfst = s
        .meta
        .blobs
        .iter()
        .find(|b| b.kind == BlobKind::Manifest)
        .unwrap()
        .digest
        .clone();
    let text = String::from_utf8(s.blobs[&mfst].clone()).unwrap();
    let needle =
        format!("\"digest\":\"{d}\",\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\"");
    assert!(text.contains(&needle), "{text}");
    let new = text.replace(
        &needle,
        &format!(
            "\"digest\":\"{d}\",\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+zstd\""
        ),
    );
    let new_d = Digest::sha256(new.as_bytes());
    s.blobs.remove(&mfst);
    s.blobs.insert(new_d.clone(), new.clone().into_bytes());
    for b in &mut s.meta.blobs {
        if b.digest == mfst {
            b.digest = new_d.clone();
            b.size = new.len() as u64;
        }
    }
    for t in &mut s.meta.targets {
        if t.digest == mfst {
            t.digest = new_d.clone();
            t.size = new.len() as u64;
        }
        for i in &mut t.images {
            if i.manifest == mfst {
                i.manifest = new_d.clone();
            }
        }
    }
    s.meta.blobs[last].media_type = MediaType::OciLayerZstd;
    let o = run(&s.encode(), 9000);
    assert!(o.ok, "{:?}", o.problem);
    let l = o.layers.iter().find(|l| l.digest == d).unwrap();
    assert_eq!(
        l.error.as_deref(),
        Some("zstd listing not supported (the layer's digest is verified all the same)")
    );
}

#[test]
fn file_cap_keeps_memory_bounded_but_counts_everything() {
    let bytes = sample(SampleOptions::default()).encode();
    let mut ins = Inspector::new(InspectOptions {
        max_files: 2,
        ..Default::default()
    });
    ins.feed(&bytes).unwrap();
    let o = ins.finish();
    assert!(o.ok);
    let kept: usize = o.layers.iter().map(|l| l.files.len()).sum();
    let counted: u64 = o.layers.iter().map(|l| l.file_count).sum();
    assert_eq!((kept, counted), (2, 6));
}

#[test]
fn not_a_bundle_and_misuse() {
    let o = run(&[0u8; 100], 10);
    assert_eq!(o.problem.unwrap().kind, ProblemKind::Truncated);
    let mut t = Vec::new();
    crate::tar::write_file(
        &mut t,
        "ddiff.json",
        br#"{"format":"zip","version":1}"#,
        0o644,
        0,
    );
    let mut ins = Inspector::new(InspectOptions::default());
    assert!(ins.feed(&t).is_err());
    assert!(matches!(ins.feed(b"x"), Err(BundleError::Misuse(_))));
    let o = ins.finish();
    assert_eq!(o.problem.unwrap().kind, ProblemKind::NotABundle);
    assert!(o.inspection.is_none());
}

fn list_unverified(bytes: &[u8], chunk: usize) -> Vec<LayerListing> {
    let mut l = UnverifiedLister::new(200_000);
    for c in bytes.chunks(chunk) {
        if l.feed(c).is_err() {
            break;
        }
    }
    l.listings().to_vec()
}

fn blob_offsets(bytes: &[u8]) -> Vec<u64> {
    let mut dec = crate::bundle::Decoder::new();
    let mut offs = Vec::new();
    let mut rest = bytes;
    loop {
        let (n, ev) = dec.decode(rest).unwrap();
        rest = &rest[n..];
        match ev {
            Some(Event::BlobStart { offset, .. }) => offs.push(offset),
            Some(_) => {}
            None => break offs,
        }
    }
}

/// The page's split: a lister on one thread, the inspector (not listing) on the other, over
/// the same chunks, gives exactly what the one-thread inspector gives.
#[test]
fn unverified_lister_plus_verifier_equals_the_listing_inspector() {
    for opts in [
        SampleOptions::default(),
        SampleOptions {
            hostile_text: true,
            ..SampleOptions::default()
        },
    ] {
        let bytes = sample(opts).encode();
        let one = run(&bytes, 4096);
        assert!(one.ok);
        for chunk in [1, 7, 512, 64 * 1024] {
            let listings = list_unverified(&bytes, chunk);
            let mut ins = Inspector::new(InspectOptions {
                list_files: false,
                ..InspectOptions::default()
            });
            for c in bytes.chunks(chunk) {
                ins.feed(c).unwrap();
            }
            let mut o = ins.finish();
            assert!(o.layers.is_empty());
            o.adopt_listings(listings);
            assert_eq!(o, one, "chunk {chunk}");
        }
    }
}

/// A layer whose bytes were altered is listed by the lister (it does not hash layers) but
/// its listing is never adopted: the verifier is the authority, and only layers it verified
/// keep a listing. Manifests and configs are still verified by the lister's decoder.
#[test]
fn listings_of_unverified_layers_are_dropped() {
    let s = sample(SampleOptions::default());
    let bytes = s.encode();
    let offsets = blob_offsets(&bytes);
    let layers: Vec<usize> = (0..s.meta.blobs.len())
        .filter(|&i| s.meta.blobs[i].kind == BlobKind::Layer)
        .collect();
    assert_eq!(layers.len(), 2);
    for (n, &i) in layers.iter().enumerate() {
        let mut bad = bytes.clone();
        // A byte that changes the digest but keeps the layer listable (the gzip header's OS
        // byte), so the lister lists it in full.
        bad[offsets[i] as usize + 9] ^= 0x01;
        let listings = list_unverified(&bad, 1000);
        assert_eq!(listings.len(), 2, "the lister reads every layer to its end");
        assert!(listings.iter().all(|l| l.error.is_none()), "{listings:?}");
        let mut ins = Inspector::new(InspectOptions {
            list_files: false,
            ..InspectOptions::default()
        });
        for c in bad.chunks(1000) {
            if ins.feed(c).is_err() {
                break;
            }
        }
        let mut o = ins.finish();
        assert!(!o.ok);
        assert_eq!(o.problem.as_ref().unwrap().kind, ProblemKind::Corrupt);
        o.adopt_listings(listings);
        // Only the layers before the damaged one keep their files.
        assert_eq!(o.layers.len(), n);
        assert!(o.layers.iter().all(|l| l.blob_index < i));
    }
    // A damaged manifest or config stops the lister too (they are hashed).
    for (i, b) in s.meta.blobs.iter().enumerate() {
        if b.kind == BlobKind::Layer {
            continue;
        }
        let mut bad = bytes.clone();
        bad[offsets[i] as usize] ^= 0x20;
        let mut l = UnverifiedLister::new(10);
        assert!(bad.chunks(777).any(|c| l.feed(c).is_err()), "blob {i}");
        assert!(l.listings().is_empty());
    }
}

/// The decoder behind the lister skips only layer digests: same events, same offsets.
#[test]
fn unverified_layers_decoder_frames_like_the_verifier() {
    let bytes = sample(SampleOptions::default()).encode();
    let events = |mut dec: crate::bundle::Decoder| {
        let mut out = Vec::new();
        let mut rest = &bytes[..];
        loop {
            let (n, ev) = dec.decode(rest).unwrap();
            rest = &rest[n..];
            match ev {
                Some(Event::BlobData { .. }) => {}
                Some(Event::End(r)) => out.push(format!("end {:?} {}", r.offsets, r.archive_bytes)),
                Some(e) => out.push(format!("{e:?}")),
                None => break,
            }
        }
        dec.finish().unwrap();
        out
    };
    assert_eq!(
        events(crate::bundle::Decoder::unverified_layers()),
        events(crate::bundle::Decoder::new())
    );
}

/// The one-thread inspector follows the same rule as the split: files are shown only for
/// layers that verified, never for the layer cut or damaged, nor any after it.
#[test]
fn damaged_or_cut_layers_show_no_files() {
    let s = sample(SampleOptions::default());
    let bytes = s.encode();
    let offsets = blob_offsets(&bytes);
    let last = s.meta.blobs.len() - 1;
    let first_layer = s
        .meta
        .blobs
        .iter()
        .position(|b| b.kind == BlobKind::Layer)
        .unwrap();
    let mid = (offsets[last] + s.meta.blobs[last].size / 2) as usize;
    let mut bad = bytes.clone();
    bad[mid] ^= 0x20;
    for (what, input) in [("cut", &bytes[..mid]), ("flipped", &bad[..])] {
        for chunk in [7, 4096] {
            let o = run(input, chunk);
            assert!(!o.ok, "{what}");
            let listed: Vec<usize> = o.layers.iter().map(|l| l.blob_index).collect();
            assert_eq!(listed, [first_layer], "{what} at chunk {chunk}");
        }
    }
}
