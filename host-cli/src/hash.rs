//! A faster SHA-256/512 for the core's verifiers: `ring` (about twice `sha2` on CPUs without
//! SHA extensions). The wasm build keeps the core's pure-Rust default.

use ddiff_core::{Algorithm, BlobHasher, Digest};

struct Ring(ring::digest::Context);

impl BlobHasher for Ring {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn finalize(self: Box<Self>) -> Vec<u8> {
        self.0.finish().as_ref().to_vec()
    }
}

/// The host's hasher factory, to pass to core codecs.
pub fn fast_hasher(algorithm: Algorithm) -> Box<dyn BlobHasher> {
    let alg = match algorithm {
        Algorithm::Sha256 => &ring::digest::SHA256,
        Algorithm::Sha512 => &ring::digest::SHA512,
    };
    Box::new(Ring(ring::digest::Context::new(alg)))
}

/// The SHA-256 a `ring` context ends with, as ddiff's digest type: the one conversion for
/// every host place that hashes with `ring` directly (whole files, spooled and compressed
/// layers, registry uploads).
pub fn sha256_of(ctx: ring::digest::Context) -> Digest {
    digest_of(Algorithm::Sha256, ctx.finish())
}

/// A `ring` digest of `algorithm` as ddiff's digest type.
pub fn digest_of(algorithm: Algorithm, d: ring::digest::Digest) -> Digest {
    // ring's output length always matches the algorithm it was asked for.
    Digest::from_raw(algorithm, d.as_ref()).expect("ring digest length matches its algorithm")
}

/// Streams `src` into `sink` in pieces of up to 1 MiB, checking on the way that it is exactly `size`
/// bytes hashing to `digest`; an error names the blob. The one read-verify-write loop of
/// the layout and archive code.
pub fn copy_verified(
    src: &mut dyn std::io::Read,
    digest: &ddiff_core::Digest,
    size: u64,
    sink: &mut dyn FnMut(&[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let mut v = ddiff_core::Verifier::with_factory(digest.clone(), size, fast_hasher);
    // Sized for the blob (plus one byte, to notice a longer source), at most 1 MiB: a
    // load of many tiny blobs must not allocate and clear 1 MiB for each.
    let cap = usize::try_from(size.saturating_add(1)).unwrap_or(usize::MAX);
    let mut buf = vec![0u8; cap.clamp(512, 1 << 20)];
    loop {
        let n = src
            .read(&mut buf)
            .with_context(|| format!("blob {digest}"))?;
        if n == 0 {
            break;
        }
        v.update(&buf[..n])
            .with_context(|| format!("blob {digest}"))?;
        sink(&buf[..n])?;
    }
    v.finish().with_context(|| format!("blob {digest}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddiff_core::{Digest, DigestBuilder};

    #[test]
    fn agrees_with_the_core_default() {
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let mut b = DigestBuilder::with_factory(alg, fast_hasher);
            b.update(b"hello ");
            b.update(b"world");
            assert_eq!(b.finish().0, Digest::of(alg, b"hello world"));
        }
    }

    #[test]
    fn copy_verified_checks_digest_and_size() {
        let data = vec![7u8; (1 << 20) + 3];
        let d = Digest::sha256(&data);
        let mut out = Vec::new();
        copy_verified(&mut &data[..], &d, data.len() as u64, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        assert_eq!(out, data);
        let mut sink = |_: &[u8]| Ok(());
        let err = copy_verified(&mut &data[1..], &d, data.len() as u64, &mut sink).unwrap_err();
        assert!(format!("{err:#}").contains(&d.to_string()), "{err:#}");
        let err = copy_verified(&mut &b"other"[..], &d, 5, &mut sink).unwrap_err();
        assert!(format!("{err:#}").contains(&d.to_string()), "{err:#}");
    }
}
