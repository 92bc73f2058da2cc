//! `ddiff-wasm`: the browser's door into `ddiff-core`. One struct over the core's
//! [`Inspector`](ddiff_core::inspect::Inspector): feed chunks, read progress, finish with the
//! outcome. Values cross the boundary as JSON strings of the core's serde types, so the page
//! sees exactly what `ddiff inspect --json` prints; there is no format logic here.
//!
//! ```text
//!   File.stream() ─► worker.js ─► BundleInspector.feed(chunk) ─► core Inspector
//!                                 .progress() / .inspection() / .finish() ─► JSON ─► page
//! ```

use ddiff_core::inspect::{InspectOptions, Inspector};
use wasm_bindgen::prelude::*;

/// One pass over one bundle.
#[wasm_bindgen]
pub struct BundleInspector {
    inner: Inspector,
}

#[wasm_bindgen]
impl BundleInspector {
    /// A fresh inspector; `list_files` inflates carried layers to list their files, keeping at
    /// most `max_files` entries (all are counted).
    #[wasm_bindgen(constructor)]
    pub fn new(list_files: bool, max_files: u32) -> BundleInspector {
        BundleInspector {
            inner: Inspector::new(InspectOptions {
                list_files,
                max_files: max_files as usize,
                ..InspectOptions::default()
            }),
        }
    }

    /// Feeds the next chunk. Returns `false` once the bundle is known to be damaged: stop
    /// feeding and call `finish`.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        self.inner.feed(chunk).is_ok()
    }

    /// `{"bytes":…,"blobsDone":…,"blobsTotal":…}`.
    pub fn progress(&self) -> String {
        to_json(&self.inner.progress())
    }

    /// The inspection (targets, base, layer rows) as JSON, once every manifest and config
    /// was read; `undefined` before.
    pub fn inspection(&self) -> Option<String> {
        self.inner.inspection().map(to_json)
    }

    /// The verdict, the inspection and the file lists (the core's `Outcome`) as JSON.
    pub fn finish(&mut self) -> String {
        to_json(&self.inner.finish())
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    // The core's view types are plain structs of strings and numbers: always serialisable.
    serde_json::to_string(v).expect("core view types serialise")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ddiff_core::synth_bundle::{sample, SampleOptions};
    use serde_json::Value;

    /// The boundary contract the page relies on: field names, shapes and the stop signal.
    #[test]
    fn boundary_json_shapes() {
        let bytes = sample(SampleOptions::default()).encode();
        let mut b = BundleInspector::new(true, 1000);
        assert!(b.inspection().is_none());
        for c in bytes.chunks(777) {
            assert!(b.feed(c));
        }
        let p: Value = serde_json::from_str(&b.progress()).unwrap();
        assert_eq!(p["bytes"], bytes.len() as u64);
        assert_eq!(p["blobsDone"], p["blobsTotal"]);
        let i: Value = serde_json::from_str(&b.inspection().unwrap()).unwrap();
        assert_eq!(i["targets"][0]["reference"], "demo/app:2");
        let o: Value = serde_json::from_str(&b.finish()).unwrap();
        assert_eq!(o["ok"], true);
        let row = &o["inspection"]["targets"][0]["images"][0]["layers"][2];
        assert_eq!(row["carried"], true);
        assert_eq!(row["createdBy"], "COPY app/ /app/");
        assert_eq!(o["layers"][0]["files"][3]["kind"], "whiteout");

        // Flip a byte in the middle of the last blob's data.
        let last_start = {
            let mut dec = ddiff_core::bundle::Decoder::new();
            let (mut rest, mut at) = (&bytes[..], 0);
            loop {
                let (n, ev) = dec.decode(rest).unwrap();
                rest = &rest[n..];
                match ev {
                    Some(ddiff_core::bundle::Event::BlobStart { offset, .. }) => at = offset,
                    Some(_) => {}
                    None => break at as usize,
                }
            }
        };
        let mut bad = bytes.clone();
        bad[last_start + 50] ^= 1;
        let mut b = BundleInspector::new(false, 0);
        let stopped = bad.chunks(512).any(|c| !b.feed(c));
        assert!(stopped);
        let o: Value = serde_json::from_str(&b.finish()).unwrap();
        assert_eq!(o["ok"], false);
        assert_eq!(o["problem"]["kind"], "corrupt");
        assert!(o["problem"]["blob"]["digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"));
    }
}
