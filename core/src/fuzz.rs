//! Entry points for fuzzing: each feeds arbitrary bytes to one parser and ignores the result,
//! so a cargo-fuzz target is three lines:
//!
//! ```ignore
//! #![no_main]
//! libfuzzer_sys::fuzz_target!(|data: &[u8]| ddiff_core::fuzz::fuzz_reference(data));
//! ```
//!
//! The property under test is the crate's rule: bad input returns an error, it never panics.
//! Where a parser promises a round trip, the entry point checks it too (a failed check is a
//! panic, which is what the fuzzer reports).

use std::collections::BTreeMap;

use crate::docker_archive;
use crate::dockerfile::{resolve_base, ResolveOptions};
use crate::reference::{ImageRef, Reference};

/// Text parsers take UTF-8; invalid UTF-8 is rejected before them by hosts.
fn text(data: &[u8]) -> Option<&str> {
    core::str::from_utf8(data).ok()
}

/// [`Reference::parse`]; a parsed reference must print to forms that parse back to it.
pub fn fuzz_reference(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(r) = Reference::parse(s) {
        assert_eq!(
            Reference::parse(&r.to_string()).as_ref(),
            Ok(&r),
            "canonical {r}"
        );
        assert_eq!(
            Reference::parse(&r.familiar()).as_ref(),
            Ok(&r),
            "familiar {r}"
        );
    }
}

/// [`ImageRef::parse`]; `Display` must round-trip.
pub fn fuzz_image_ref(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(r) = ImageRef::parse(s) {
        assert_eq!(ImageRef::parse(&r.to_string()).as_ref(), Ok(&r), "{r}");
    }
}

/// [`resolve_base`]. The first line of the input, if it starts with `target=`, becomes
/// `--target`, so the fuzzer reaches stage selection too.
pub fn fuzz_dockerfile(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let mut opts = ResolveOptions {
        target: None,
        build_args: BTreeMap::new(),
    };
    let body = match s.split_once('\n') {
        Some((first, rest)) if first.starts_with("target=") => {
            opts.target = Some(first["target=".len()..].to_string());
            rest
        }
        _ => s,
    };
    let _ = resolve_base(body, &opts);
    opts.build_args.insert("TARGETARCH".into(), "amd64".into());
    let _ = resolve_base(body, &opts);
}

/// [`docker_archive::parse_manifest`]; what parses must encode and parse back equal.
pub fn fuzz_docker_archive_manifest(data: &[u8]) {
    if let Ok(entries) = docker_archive::parse_manifest(data) {
        let mut out = Vec::new();
        docker_archive::encode_manifest(&entries, &mut out);
        assert_eq!(docker_archive::parse_manifest(&out).as_ref(), Ok(&entries));
    }
}

/// [`docker_archive::parse_repositories`]; what parses must encode and parse back equal.
pub fn fuzz_docker_archive_repositories(data: &[u8]) {
    if let Ok(repos) = docker_archive::parse_repositories(data) {
        let mut out = Vec::new();
        docker_archive::encode_repositories(&repos, &mut out);
        assert_eq!(
            docker_archive::parse_repositories(&out).as_ref(),
            Ok(&repos)
        );
    }
}

/// [`docker_archive::normalize_entry_path`]; a normalised path is a fixed point.
pub fn fuzz_entry_path(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(n) = docker_archive::normalize_entry_path(s) {
        assert_eq!(
            docker_archive::normalize_entry_path(&n).as_deref(),
            Ok(n.as_str())
        );
    }
}

/// Chunk sizes for a push decoder, drawn from the first input byte: the same archive must give
/// the same verdict however the host splits it (sizes 1, 7, 512, 4096 and "all at once" mix).
fn chunk_plan(data: &[u8]) -> (u8, &[u8]) {
    match data.split_first() {
        Some((&seed, rest)) => (seed, rest),
        None => (0, data),
    }
}

fn next_chunk(seed: &mut u8, left: usize) -> usize {
    const SIZES: [usize; 5] = [1, 7, 512, 4096, usize::MAX];
    let size = SIZES[usize::from(*seed % 5)];
    *seed = seed.rotate_left(3) ^ 0x5a;
    size.min(left).max(1)
}

/// Drives a push decoder (`decode(chunk) -> (used, Option<event>)`) over `input` split as
/// `seed` says, then `finish`. Returns `Ok(events seen)` or the first error. Asserts the loop
/// invariant: `None` only when the chunk was consumed, and progress on every event (so a
/// decoder that would spin forever is reported, not hung).
fn drive_push<E: core::fmt::Debug>(
    input: &[u8],
    mut seed: u8,
    mut decode: impl FnMut(&[u8]) -> Result<(usize, bool, bool), E>,
    finish: impl FnOnce() -> Result<(), E>,
) -> Result<(), E> {
    let mut rest = input;
    let mut ended = false;
    // Each event consumes input or is one of a bounded number per entry; 4 per byte is a
    // generous ceiling that a looping decoder would still exceed.
    let mut budget = input.len() * 4 + 64;
    while !rest.is_empty() {
        let n = next_chunk(&mut seed, rest.len());
        let mut chunk = &rest[..n];
        loop {
            let (used, event, end) = decode(chunk)?;
            assert!(used <= chunk.len(), "consumed more than given");
            chunk = &chunk[used..];
            ended |= end;
            if !event {
                assert!(chunk.is_empty(), "None must mean the chunk was consumed");
                break;
            }
            budget = budget
                .checked_sub(1)
                .expect("decoder makes no progress (too many events)");
        }
        rest = &rest[n..];
    }
    finish()?;
    let _ = ended;
    Ok(())
}

/// [`crate::bundle::Decoder`] over arbitrary bytes (byte 0 picks the chunk split): never a
/// panic, and the same verdict (and the same report) as feeding everything at once.
pub fn fuzz_bundle_decoder(data: &[u8]) {
    use crate::bundle::{Decoder, Event};
    let (seed, input) = chunk_plan(data);
    let run = |seed: Option<u8>| {
        let mut dec = Decoder::new();
        let mut report = None;
        let mut check = |chunk: &[u8]| {
            let (used, ev) = dec.decode(chunk)?;
            let is_event = ev.is_some();
            let end = if let Some(Event::End(r)) = ev {
                report = Some(r);
                true
            } else {
                false
            };
            Ok::<_, crate::bundle::BundleError>((used, is_event, end))
        };
        let r = match seed {
            Some(s) => drive_push(input, s, &mut check, || Ok(())),
            None => drive_push(input, 4, &mut check, || Ok(())), // 4 → "all at once"
        };
        r.and_then(|()| dec.finish()).map(|()| report)
    };
    let split = run(Some(seed));
    let whole = run(None);
    assert_eq!(
        split.is_ok(),
        whole.is_ok(),
        "chunking changed the verdict: {split:?} vs {whole:?}"
    );
    if let (Ok(a), Ok(b)) = (split, whole) {
        assert_eq!(a, b, "chunking changed the report");
    }
}

/// [`crate::bundle::legacy::LegacyDecoder`] over an arbitrary (already inflated) tar, split
/// as byte 0 says: never a panic, same verdict as all at once.
pub fn fuzz_legacy_decoder(data: &[u8]) {
    use crate::bundle::legacy::LegacyDecoder;
    use crate::bundle::Event;
    let (seed, input) = chunk_plan(data);
    let run = |s: u8| {
        let mut dec = LegacyDecoder::new();
        let mut report = None;
        let r = drive_push(
            input,
            s,
            |chunk| {
                let (used, ev) = dec.decode(chunk)?;
                let is_event = ev.is_some();
                let end = matches!(ev, Some(Event::End(_)));
                if let Some(Event::End(r)) = ev {
                    report = Some(r);
                }
                Ok::<_, crate::bundle::BundleError>((used, is_event, end))
            },
            || Ok(()),
        );
        r.and_then(|()| dec.finish()).map(|()| report)
    };
    let split = run(seed);
    let whole = run(4);
    assert_eq!(
        split.is_ok(),
        whole.is_ok(),
        "chunking changed the verdict: {split:?} vs {whole:?}"
    );
    if let (Ok(a), Ok(b)) = (split, whole) {
        assert_eq!(a, b, "chunking changed the report");
    }
}

/// [`crate::tar::TarReader`] split as byte 0 says: never a panic, never a spin, and every
/// `Data` event stays inside its entry's declared size.
pub fn fuzz_tar(data: &[u8]) {
    use crate::tar::{TarEvent, TarReader};
    let (seed, input) = chunk_plan(data);
    let mut r = TarReader::new();
    let mut left: Option<u64> = None;
    let fed = drive_push(
        input,
        seed,
        |chunk| {
            let (used, ev) = r.feed(chunk)?;
            let is_event = ev.is_some();
            match &ev {
                Some(TarEvent::Header(e)) => left = Some(e.size),
                Some(TarEvent::Data(d)) => {
                    let l = left.as_mut().expect("data before a header");
                    *l = l
                        .checked_sub(d.len() as u64)
                        .expect("more data than the header's size");
                }
                Some(TarEvent::EntryEnd) => {
                    assert_eq!(left.take(), Some(0), "entry ended early");
                }
                _ => {}
            }
            // `(0, None)` is "need more"; `(n>0, None)` consumed padding: call again.
            let more = is_event || (used > 0 && used < chunk.len());
            Ok::<_, crate::tar::TarError>((used, more, matches!(ev, Some(TarEvent::End))))
        },
        || Ok(()),
    );
    if fed.is_ok() {
        let _ = r.finish();
    }
}

/// [`crate::RawManifest::parse`] with no content type and with each manifest media type: a
/// parsed manifest keeps the exact bytes and their digest.
pub fn fuzz_manifest(data: &[u8]) {
    for ct in [
        None,
        Some("application/vnd.oci.image.manifest.v1+json"),
        Some("application/vnd.oci.image.index.v1+json"),
        Some("application/vnd.docker.distribution.manifest.v2+json"),
        Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    ] {
        if let Ok(m) = crate::RawManifest::parse(data.to_vec(), ct) {
            assert_eq!(m.bytes(), data);
            assert_eq!(m.digest(), &crate::Digest::sha256(data));
            let _ = m.references();
            let _ = m.descriptor();
        }
    }
}

/// [`crate::ImageConfig::parse`].
pub fn fuzz_config(data: &[u8]) {
    let _ = crate::ImageConfig::parse(data);
}

/// [`crate::bundle::BundleMeta::parse`]; what parses must serialise and parse back equal.
pub fn fuzz_bundle_meta(data: &[u8]) {
    if let Ok(m) = crate::bundle::BundleMeta::parse(data) {
        let again = crate::bundle::BundleMeta::parse(&m.to_bytes());
        assert_eq!(again.as_ref(), Ok(&m));
        let _ = m.oci_index_json(&m.to_bytes());
    }
}

/// A volume's trailer (docs/bundle-format.md section 9), `data` being the end of a volume
/// file: footer, descriptor and unit table are parsed as a reader does; what is accepted
/// must encode back to the same bytes.
pub fn fuzz_volume_trailer(data: &[u8]) {
    use crate::volume::{encode_trailer, Footer, TrailerReader, VolumeTrailer, FOOTER_LEN};
    // `data` as a whole file, read as the CLI and the page read trailers: every range asked
    // for lies inside the file, and the reader ends (three reads at most).
    let mut r = TrailerReader::new(data.len() as u64);
    let mut reads = 0;
    while let Some((a, b)) = r.need() {
        assert!(a <= b && b <= data.len() as u64 && reads < 3);
        r.give(&data[a as usize..b as usize]);
        reads += 1;
    }
    let _ = r.finish();
    let Some(foot) = data.len().checked_sub(FOOTER_LEN) else {
        return;
    };
    let Ok(f) = Footer::decode(&data[foot..]) else {
        return;
    };
    let Some((ds, _)) = f.descriptor_range(data.len() as u64) else {
        return;
    };
    let ds = ds as usize;
    let Ok(desc) = crate::volume::SetDescriptor::decode(&data[ds..foot]) else {
        return;
    };
    let g = desc.geometry;
    if f.index >= g.volumes() {
        return;
    }
    let payload = g.payload_len(f.index);
    let table = VolumeTrailer::table_len(&g, f.index) as usize;
    let Some(ts) = ds.checked_sub(table) else {
        return;
    };
    // The payload is not in `data`: the file length is what the geometry says.
    let file_len = payload + (data.len() - ts) as u64;
    if let Ok(t) = VolumeTrailer::check(f, &data[ds..foot], &data[ts..ds], file_len) {
        assert_eq!(
            encode_trailer(&t.descriptor, t.index(), &t.crcs),
            &data[ts..]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real trailer passes (and round-trips inside the entry point); each flipped bit
    /// and every prefix goes through without a panic.
    #[test]
    fn volume_trailer_entry_point_survives_flips_and_prefixes() {
        use crate::volume::{encode_trailer, table_digest, Geometry, SetDescriptor};
        let g = Geometry::plan(300_000, 65536, 1).unwrap().unwrap();
        let crcs = |i: u32| vec![7 + i; g.units(i) as usize];
        let d = SetDescriptor {
            geometry: g,
            volumes: (0..g.volumes()).map(|i| table_digest(&crcs(i))).collect(),
        };
        let t = encode_trailer(&d, 0, &crcs(0));
        fuzz_volume_trailer(&t);
        for end in 0..t.len() {
            fuzz_volume_trailer(&t[end..]);
        }
        for bit in 0..t.len() * 8 {
            let mut b = t.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            fuzz_volume_trailer(&b);
        }
    }

    /// A cheap in-tree smoke run: every entry point over every prefix of some seeds, plus a
    /// small deterministic byte generator. Real fuzzing runs the same functions under
    /// cargo-fuzz.
    #[test]
    fn entry_points_survive_seeds_and_noise() {
        let seeds: [&[u8]; 8] = [
            b"localhost:5000/app:1@sha256:0123456789012345678901234567890123456789012345678901234567890123",
            b"[::1]:5000/x",
            b"docker-archive:a.tar:app:2",
            b"oci:dir:a.b/c@1",
            b"target=b\n# escape=`\nARG A=${B:-x}\nFROM --platform=$P ${A:+y}z AS b `\n\nRUN <<-E\n\tE\n",
            br#"[{"Config":"a.json","RepoTags":["app:2"],"Layers":["./x/layer.tar"]}]"#,
            br#"{"app":{"2":"0123456789012345678901234567890123456789012345678901234567890123"}}"#,
            b"./a//b/../c",
        ];
        let all: [fn(&[u8]); 7] = [
            fuzz_reference,
            fuzz_image_ref,
            fuzz_dockerfile,
            fuzz_docker_archive_manifest,
            fuzz_docker_archive_repositories,
            fuzz_entry_path,
            |d| fuzz_reference(&d[d.len() / 2..]),
        ];
        for seed in seeds {
            for end in 0..=seed.len() {
                for f in all {
                    f(&seed[..end]);
                }
            }
        }
        // xorshift over an alphabet of the characters the parsers care about.
        let alphabet = b"aZ09:/@.-_[]{}$`\\\"' \t\n#=<>,scratchFROMASargfrom\x00\xff";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut buf = Vec::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            for _ in 0..len {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf.push(alphabet[(x % alphabet.len() as u64) as usize]);
            }
            for f in all {
                f(&buf);
            }
        }
    }

    /// The byte-level entry points over a real bundle, the original tool's bundle and a
    /// manifest and config: intact, truncated and with flipped bytes, at every chunk seed.
    #[test]
    fn decoder_entry_points_survive_real_inputs_and_their_damage() {
        let bundle = crate::synth_bundle::sample(Default::default()).encode();
        let legacy: &[u8] = include_bytes!("../tests/data/original-ddiff/bb-new.tar");
        let sample = crate::synth_bundle::sample(Default::default());
        let json: Vec<&Vec<u8>> = sample
            .blobs
            .values()
            .filter(|b| b.first() == Some(&b'{'))
            .collect();
        assert!(json.len() >= 2, "the sample has a manifest and a config");
        let meta = sample.meta.to_bytes();
        for (name, input) in [("bundle", &bundle[..]), ("legacy", legacy)] {
            let f: fn(&[u8]) = if name == "bundle" {
                fuzz_bundle_decoder
            } else {
                fuzz_legacy_decoder
            };
            for seed in 0..10u8 {
                let mut d = vec![seed];
                d.extend_from_slice(input);
                f(&d);
                fuzz_tar(&d);
                for cut in (0..d.len()).step_by(997) {
                    f(&d[..cut]);
                }
                for pos in (1..d.len()).step_by(1499) {
                    let mut bad = d.clone();
                    bad[pos] ^= 0x41;
                    f(&bad);
                    fuzz_tar(&bad);
                }
            }
        }
        for j in json {
            for end in (0..=j.len()).step_by(7) {
                fuzz_manifest(&j[..end]);
                fuzz_config(&j[..end]);
            }
        }
        fuzz_bundle_meta(&meta);
        for end in (0..meta.len()).step_by(13) {
            fuzz_bundle_meta(&meta[..end]);
        }
    }

    /// Found by cargo-fuzz (target `reference`): a Docker Hub repository whose first component
    /// looks like a host printed its familiar form without `docker.io/`, which then parsed as
    /// another registry.
    #[test]
    fn regression_familiar_form_of_a_hub_repository_that_looks_like_a_host() {
        fuzz_reference(b"docker.io/libraryr.io/librartest");
        fuzz_reference(b"docker.io/localhost/x:1");
        fuzz_reference(b"docker.io/a:5/b");
    }

    /// Every combination of reference pieces, with and without a transport prefix: what
    /// parses must round-trip (the noise above rarely builds a valid reference).
    #[test]
    fn reference_combinations_round_trip() {
        let d = format!("@sha256:{}", "0".repeat(64));
        let prefixes = [
            "",
            "docker://",
            "docker-daemon:",
            "oci:",
            "oci-archive:",
            "docker-archive:",
            "dir:",
            "docker:",
            "x.tar:",
        ];
        let registries = [
            "",
            "docker.io/",
            "index.docker.io/",
            "localhost/",
            "localhost:5000/",
            "[::1]:5000/",
            "Reg/",
            "a.b/",
            "oci/",
            "library/",
        ];
        let paths = [
            "oci",
            "a",
            "library/a",
            "a/b",
            "docker-archive",
            "latest",
            "a:b",
        ];
        let tags = ["", ":latest", ":1", ":Oci"];
        let digests = ["", d.as_str()];
        let mut n = 0;
        for p in prefixes {
            for r in registries {
                for path in paths {
                    for t in tags {
                        for dg in digests {
                            let s = format!("{p}{r}{path}{t}{dg}");
                            fuzz_reference(s.as_bytes());
                            fuzz_image_ref(s.as_bytes());
                            n += 1;
                        }
                    }
                }
            }
        }
        assert_eq!(n, 9 * 10 * 7 * 4 * 2);
    }
}
