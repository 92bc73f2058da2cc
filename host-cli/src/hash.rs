//! A faster SHA-256/512 for the core's verifiers: `ring` (about twice `sha2` on CPUs without
//! SHA extensions). The wasm build keeps the core's pure-Rust default.

use ddiff_core::{Algorithm, BlobHasher};

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
}
