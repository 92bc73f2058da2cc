//! `ddiff-wasm`: the browser's door into `ddiff-core`. One struct over the core's
//! [`Inspector`](ddiff_core::inspect::Inspector): feed chunks, read progress, finish with the
//! outcome. Values cross the boundary as JSON strings of the core's serde types, so the page
//! sees what `ddiff inspect --json` prints, with two differences, both the core's
//! ([`shown_json`](ddiff_core::inspect::shown::shown_json)): every string in them went
//! through the core's [`safe_text`](ddiff_core::display::safe_text), as the CLI's human
//! output does (control characters, bidi controls and line separators escaped, length
//! capped), because the page only shows them; and beside each value a person reads is its
//! text as the CLI prints it (`sizeText: "1.5 MB"`, `mediaTypeText: "tar+gzip"`,
//! `modeText: "-rwxr-xr-x"`, `digestText`), so the page has no copies of those functions.
//! Problem and listing messages are the core's whole error chains. There is no format logic
//! here.
//!
//! ```text
//!   File.stream() ─► worker.js ─► BundleInspector.feed(chunk) ─► core Inspector
//!                                 .progress() / .inspection() / .finish() ─► JSON ─► page
//!               └─► reader.js ─► BundleLister.feed(chunk) ─► core UnverifiedLister
//!                                 .listings() ─► JSON ─► BundleInspector.adoptListings()
//! ```
//!
//! The page lists files on its reader thread ([`BundleLister`], no layer hashing) and
//! verifies on the inspector thread ([`BundleInspector`] without listing); the inspector
//! adopts the lister's file lists for the layers it verified and no others.

use ddiff_core::inspect::shown::{shown_json, Shown};
use ddiff_core::inspect::{InspectOptions, Inspector, LayerListing, UnverifiedLister};
use ddiff_core::signature::{PublicKey, MAX_SIGNATURE_TEXT};
use wasm_bindgen::prelude::*;

mod volumes;
pub use volumes::{file_role, VolumeSetReader};

/// A bundle signature (`BUNDLE.sig`, cosign sign-blob format) checked by the core over the
/// exact `ddiff.json` bytes the inspector read (`meta`), with the PEM public key `key_pem`
/// when one was given: JSON `{state: "valid", algorithm, keyId}`, `{state: "refused",
/// reason, algorithm?, keyId?}` or `{state: "unchecked", reason}` (no key given). What
/// `ddiff verify --key` checks, with the same core calls ([`PublicKey::from_pem`],
/// [`PublicKey::verify_text`]). A matching signature of a bundle that is not `intact` is
/// refused too: the signature covers the blobs only through a bundle verified to its end
/// (docs/bundle-format.md section 10.1).
pub fn signature_json(
    meta: Option<&[u8]>,
    intact: bool,
    signature: &[u8],
    key_pem: Option<&str>,
) -> String {
    use serde_json::json;
    let refused = |reason: String| json!({"state": "refused", "reason": reason});
    let mut v = if signature.len() > MAX_SIGNATURE_TEXT {
        refused(format!(
            "the signature file is {} bytes, more than a signature ({MAX_SIGNATURE_TEXT})",
            signature.len()
        ))
    } else {
        match key_pem {
            None => json!({"state": "unchecked",
                "reason": "a signature is present but no public key was given to check it"}),
            Some(pem) => match PublicKey::from_pem(pem) {
                Err(e) => refused(format!(
                    "the public key cannot be used: {}",
                    ddiff_core::display::error_chain(&e)
                )),
                Ok(key) => {
                    let who = |mut v: serde_json::Value| {
                        v["algorithm"] = key.algorithm().into();
                        v["keyId"] = key.key_id().to_string().into();
                        v
                    };
                    match meta {
                        None => who(refused(
                            "no ddiff.json was read from the bundle: nothing to check the signature over"
                                .into(),
                        )),
                        Some(m) => match key.verify_text(m, signature) {
                            Ok(()) if !intact => who(refused(
                                "the signature matches ddiff.json, but the bundle is not intact: it vouches for nothing"
                                    .into(),
                            )),
                            Ok(()) => who(json!({"state": "valid"})),
                            Err(e) => who(refused(ddiff_core::display::error_chain(&e))),
                        },
                    }
                }
            },
        }
    };
    ddiff_core::display::safe_json_strings(&mut v);
    v.to_string()
}

/// `text` as the page may show it: the core's `safe_text` (for the file's name and error
/// messages; the inspection's strings already come out so).
#[wasm_bindgen(js_name = safeText)]
pub fn safe_text(text: &str) -> String {
    ddiff_core::display::safe_text(text)
}

/// `bytes` as the CLI writes sizes (`1.5 MB`): the core's `human_bytes`, for the sizes and
/// rates the page works out itself (the file's size, the progress line).
/// A site inventory's summary as the page shows it, or why it is refused (JSON; the core's
/// `inventory::shown_summary_json`).
#[wasm_bindgen(js_name = inventorySummary)]
pub fn inventory_summary(bytes: &[u8]) -> String {
    ddiff_core::inventory::shown_summary_json(bytes)
}

#[wasm_bindgen(js_name = humanBytes)]
pub fn human_bytes(bytes: f64) -> String {
    // A JS number of bytes: non-negative and below 2^53 in practice; `as` saturates.
    ddiff_core::display::human_bytes(bytes as u64)
}

/// One pass over one bundle.
#[wasm_bindgen]
pub struct BundleInspector {
    inner: Inspector,
    adopted: Option<Vec<LayerListing>>,
    /// Set by `finish`: the bundle verified to its end.
    intact: bool,
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
            adopted: None,
            intact: false,
        }
    }

    /// Takes the file lists a [`BundleLister`] made of the same bytes (its `listings()`);
    /// `finish` then reports them for the layers this inspector verified, and no others.
    /// Returns `false` (and adopts nothing) if the JSON is not such a list.
    #[wasm_bindgen(js_name = adoptListings)]
    pub fn adopt_listings(&mut self, listings: &str) -> bool {
        match serde_json::from_str(listings) {
            Ok(l) => {
                self.adopted = Some(l);
                true
            }
            Err(_) => false,
        }
    }

    /// Feeds the next chunk. Returns `false` once the bundle is known to be damaged: stop
    /// feeding and call `finish`.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        self.inner.feed(chunk).is_ok()
    }

    /// `{"bytes":…,"bytesText":…,"blobsDone":…,"blobsTotal":…}`.
    pub fn progress(&self) -> String {
        to_json(&self.inner.progress())
    }

    /// The inspection (targets, base, layer rows) as JSON with display-safe strings, once
    /// every manifest and config was read; `undefined` before.
    pub fn inspection(&self) -> Option<String> {
        self.inner.inspection().map(to_json)
    }

    /// The bundle signature `signature` (the `.sig` file's bytes) checked over the exact
    /// `ddiff.json` bytes this inspector read, with the PEM public key `key_pem` if given
    /// (see [`signature_json`]). Call after `finish`: before, the bundle is not known to be
    /// intact and a matching signature is refused.
    #[wasm_bindgen(js_name = checkSignature)]
    pub fn check_signature(&self, signature: &[u8], key_pem: Option<String>) -> String {
        signature_json(
            self.inner.meta_bytes(),
            self.intact,
            signature,
            key_pem.as_deref(),
        )
    }

    /// The verdict, the inspection and the file lists (the core's `Outcome`) as JSON with
    /// display-safe strings.
    pub fn finish(&mut self) -> String {
        let mut outcome = self.inner.finish();
        self.intact = outcome.ok;
        if let Some(l) = self.adopted.take() {
            outcome.adopt_listings(l);
        }
        to_json(&outcome)
    }
}

/// Lists the files of a bundle's carried layers without hashing them (the core's
/// [`UnverifiedLister`]), for a thread other than the verifying one. Its output is not for
/// display: hand it to [`BundleInspector::adopt_listings`], which keeps the lists of the
/// layers it verified and escapes their strings with the outcome.
#[wasm_bindgen]
pub struct BundleLister {
    inner: UnverifiedLister,
    failed: bool,
}

#[wasm_bindgen]
impl BundleLister {
    /// A fresh lister keeping at most `max_files` entries (all are counted).
    #[wasm_bindgen(constructor)]
    pub fn new(max_files: u32) -> BundleLister {
        BundleLister {
            inner: UnverifiedLister::new(max_files as usize),
            failed: false,
        }
    }

    /// Feeds the next chunk. Returns `false` once the bundle's framing is broken (the
    /// inspector will report why); later chunks are then ignored.
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        if !self.failed && self.inner.feed(chunk).is_err() {
            self.failed = true;
        }
        !self.failed
    }

    /// The file lists of the layers read to their end so far, as JSON for
    /// `BundleInspector.adoptListings` (raw strings: not for display).
    pub fn listings(&self) -> String {
        // LayerListing is plain strings and numbers: always serialisable.
        serde_json::to_string(self.inner.listings()).expect("listings serialise")
    }
}

/// JSON of a core view type as a page shows it (the core's `shown_json`): every string (from
/// the bundle: references, tool, dates, media types, history lines, file paths, messages)
/// made safe to show, display texts beside the values.
fn to_json<T: Shown>(v: &T) -> String {
    shown_json(v).to_string()
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
        // The display texts the page shows, the CLI's own (ddiff inspect prints the same).
        assert_eq!(p["bytesText"], human_bytes(bytes.len() as f64));
        assert_eq!(
            row["sizeText"],
            ddiff_core::display::human_bytes(row["size"].as_u64().unwrap())
        );
        assert_eq!(row["mediaTypeText"], "tar+gzip");
        assert!(row["digestText"].as_str().unwrap().starts_with("sha256:"));
        assert_eq!(row["digestText"].as_str().unwrap().len(), 19);
        assert_eq!(
            o["inspection"]["targets"][0]["mediaTypeText"],
            "oci.image.manifest.v1+json"
        );
        let files = o["layers"][0]["files"].as_array().unwrap();
        assert!(files.iter().any(|f| f["modeText"] == "-rwxr-xr-x"));
        assert!(o["layers"][0]["uncompressedBytesText"]
            .as_str()
            .unwrap()
            .ends_with(" kB"));
        assert_eq!(human_bytes(1.5e6), "1.5 MB");
        assert_eq!(human_bytes(999.0), "999 B");

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

    /// What a crafted bundle says reaches the page escaped and capped, as on the terminal.
    #[test]
    fn bundle_strings_reach_the_page_escaped_and_capped() {
        use ddiff_core::synth_bundle::{HOSTILE_NAMES, HOSTILE_TOOL};
        let bytes = sample(SampleOptions {
            hostile_text: true,
            ..SampleOptions::default()
        })
        .encode();
        let mut b = BundleInspector::new(true, 1000);
        for c in bytes.chunks(4096) {
            assert!(b.feed(c));
        }
        let raw = b.inspection().unwrap();
        let o = b.finish();
        for json in [&raw, &o] {
            let v: Value = serde_json::from_str(json).unwrap();
            let i = if v["inspection"].is_null() {
                &v
            } else {
                &v["inspection"]
            };
            assert_eq!(i["tool"], ddiff_core::display::safe_text(HOSTILE_TOOL));
            assert_eq!(
                i["tool"],
                r"ddiff sample\nok   forged.ddiff: intact\x1b[2K\r"
            );
            assert_eq!(
                i["targets"][0]["images"][0]["layers"][3]["createdBy"],
                r"RUN echo hi\u{2028}ok   forged.ddiff: intact\x1b[8m"
            );
            // No string in it holds a control or bidi character.
            let mut strings = vec![];
            collect(&v, &mut strings);
            for s in strings {
                assert!(
                    !s.chars()
                        .any(|c| c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
                    "{s:?}"
                );
                assert!(s.len() < 4200, "{}", s.len());
            }
        }
        let v: Value = serde_json::from_str(&o).unwrap();
        let paths: Vec<&str> = v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|l| l["files"].as_array().unwrap())
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        for n in HOSTILE_NAMES {
            assert!(paths.contains(&safe_text(n).as_str()), "{n:?} in {paths:?}");
        }
        assert!(paths.contains(&r"odd\nok   forged.ddiff: intact\x1b[2K"));
        assert!(paths.contains(&r"rlo\u{202e}txt.exe"));
        assert!(paths.iter().any(|p| p.starts_with("deep/xxx")
            && p.ends_with("xxx")
            && p.contains("bytes not shown)…")));
        assert_eq!(safe_text("a\u{2029}b"), r"a\u{2029}b");
    }

    /// The page's split (lister on the reader thread, inspector without listing) gives the
    /// JSON the one-thread inspector gives, strings escaped once, also for hostile names
    /// (which layers are adopted is the core's `Outcome::adopt_listings`, tested there);
    /// garbage is refused.
    #[test]
    fn lister_and_inspector_split_gives_the_same_json() {
        for hostile_text in [false, true] {
            let bytes = sample(SampleOptions {
                hostile_text,
                ..SampleOptions::default()
            })
            .encode();
            let mut one = BundleInspector::new(true, 1000);
            let mut lister = BundleLister::new(1000);
            let mut split = BundleInspector::new(false, 0);
            for c in bytes.chunks(4096) {
                assert!(one.feed(c));
                assert!(lister.feed(c));
                assert!(split.feed(c));
            }
            assert!(split.adopt_listings(&lister.listings()));
            assert_eq!(split.finish(), one.finish());
        }
        let mut b = BundleInspector::new(false, 0);
        assert!(!b.adopt_listings("[{\"nope\":1}]"));
        assert!(!b.adopt_listings("not json"));
    }

    /// A bundle carrying a signature, an attestation and an SBOM lists them, with the
    /// texts `ddiff inspect` prints.
    #[test]
    fn artifacts_reach_the_page() {
        use ddiff_core::synth_bundle::{SAMPLE_PREDICATE_TYPE, SAMPLE_SBOM_TYPE};
        let bytes = sample(SampleOptions {
            provenance: true,
            ..SampleOptions::default()
        })
        .encode();
        let mut b = BundleInspector::new(false, 0);
        b.feed(&bytes);
        let o: Value = serde_json::from_str(&b.finish()).unwrap();
        assert_eq!(o["ok"], true, "{o}");
        let target = o["inspection"]["targets"][0]["digest"].clone();
        let a = o["inspection"]["artifacts"].as_array().unwrap();
        let kinds: Vec<&str> = a.iter().map(|x| x["kindText"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["signature", "attestation", "sbom"]);
        assert!(a.iter().all(|x| x["subject"] == target));
        assert_eq!(a[1]["predicateTypes"][0], SAMPLE_PREDICATE_TYPE);
        assert_eq!(a[1]["typeText"], SAMPLE_PREDICATE_TYPE);
        assert_eq!(a[2]["typeText"], SAMPLE_SBOM_TYPE);
        assert_eq!(a[0]["keyless"], false);
        assert!(a[0]["tag"].as_str().unwrap().ends_with(".sig"));
        assert_eq!(a[0]["digestText"].as_str().unwrap().len(), 19);
        // Without provenance: none listed.
        let mut b = BundleInspector::new(false, 0);
        assert!(b.feed(&sample(SampleOptions::default()).encode()));
        let o: Value = serde_json::from_str(&b.finish()).unwrap();
        assert!(o["inspection"].get("artifacts").is_none());
    }

    /// A bundle signature (`ddiff diff --sign-key`) checked over the ddiff.json bytes the
    /// inspector read: valid with the signer's key; refused with another key, with a
    /// flipped byte in ddiff.json, with a key that is not one; unchecked without a key.
    #[test]
    fn bundle_signature_valid_refused_and_unchecked() {
        use p256::ecdsa::signature::Signer as _;
        use p256::pkcs8::EncodePublicKey as _;
        let key = p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
        let other = p256::ecdsa::SigningKey::from_slice(&[8u8; 32]).unwrap();
        let pem = |k: &p256::ecdsa::SigningKey| {
            k.verifying_key()
                .to_public_key_pem(p256::pkcs8::LineEnding::LF)
                .unwrap()
        };
        let bytes = sample(SampleOptions::default()).encode();
        let mut b = BundleInspector::new(false, 0);
        assert!(b.feed(&bytes));
        let meta = b.inner.meta_bytes().unwrap().to_vec();
        let sig_of = |m: &[u8]| {
            let sig: p256::ecdsa::Signature = key.sign(m);
            ddiff_core::signature::encode_signature(sig.to_der().as_bytes())
        };
        // Not finished yet: not known to be intact, so even the right signature is refused.
        let early: Value =
            serde_json::from_str(&b.check_signature(sig_of(&meta).as_bytes(), Some(pem(&key))))
                .unwrap();
        assert_eq!(early["state"], "refused", "{early}");
        assert!(b.finish().contains("\"ok\":true"));
        let sig_text = sig_of(&meta) + "\n";
        let check = |b: &BundleInspector, pem: Option<String>| -> Value {
            serde_json::from_str(&b.check_signature(sig_text.as_bytes(), pem)).unwrap()
        };
        let v = check(&b, Some(pem(&key)));
        assert_eq!(v["state"], "valid", "{v}");
        assert_eq!(v["algorithm"], "ECDSA-P256-SHA256");
        let id = PublicKey::from_pem(&pem(&key))
            .unwrap()
            .key_id()
            .to_string();
        assert_eq!(v["keyId"], id);
        let v = check(&b, Some(pem(&other)));
        assert_eq!(v["state"], "refused");
        assert!(
            v["reason"].as_str().unwrap().contains("does not match"),
            "{v}"
        );
        let v = check(&b, None);
        assert_eq!(v["state"], "unchecked");
        let v = check(
            &b,
            Some("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into()),
        );
        assert_eq!(v["state"], "refused");
        assert!(
            v["reason"]
                .as_str()
                .unwrap()
                .starts_with("the public key cannot be used"),
            "{v}"
        );
        assert!(b.finish().contains("\"ok\":true"));

        // One byte of ddiff.json changed (inside its tool string, so it still parses): the
        // bundle is refused (index.json records ddiff.json's digest) and so is the signature.
        let at = bytes
            .windows(12)
            .position(|w| w == b"ddiff sample")
            .unwrap();
        let mut flipped = bytes.clone();
        flipped[at + 6] ^= 0x01;
        let mut b = BundleInspector::new(false, 0);
        flipped
            .chunks(4096)
            .take_while(|c| b.feed(c))
            .for_each(drop);
        let o: Value = serde_json::from_str(&b.finish()).unwrap();
        assert_eq!(o["ok"], false);
        let v = check(&b, Some(pem(&key)));
        assert_eq!(v["state"], "refused", "{v}");
        assert!(v["reason"].as_str().unwrap().contains("does not match"));
        // Nothing read: refused, not valid.
        let b = BundleInspector::new(false, 0);
        assert_eq!(check(&b, Some(pem(&key)))["state"], "refused");
    }

    fn collect<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                out.push(k);
                collect(x, out)
            }),
            _ => {}
        }
    }
}
