//! Volume sets on the page (docs/bundle-format.md section 9): [`VolumeSetReader`] reads the
//! trailers of the files dropped, lets the core decide the set ([`volume::arrange`]), then
//! asks for the bytes it needs one range at a time and feeds the logical bundle to the
//! core's [`Inspector`], rebuilding missing or damaged units from parity with the core's
//! [`volume::restore_stripe`] (the Reed–Solomon code `ddiff verify` and `load` use).
//!
//! ```text
//!   files ─► addFile(name, size) ─► trailerNeed / giveTrailer   (footer, descriptor, table)
//!        ─► decide()  ─► JSON: the set, each volume's file, refused files
//!        ─► loop { nextRead() ─► [file, start, end] ─► give(bytes) }   (one run or unit at a time)
//!        ─► finish()  ─► JSON: each volume intact / damaged / missing, recoverable, the
//!                            bundle's outcome (verified as a plain bundle is)
//! ```
//!
//! The pass is `ddiff verify`'s ([`volume_io` in the CLI](../../host-cli/src/volume_io.rs)):
//! every volume read once in index order and each unit checked against its CRC-32, the data
//! volumes' payloads fed in order; a bad or missing data unit is rebuilt from the other
//! volumes' units of its stripe (read only then, and only as many as the rebuild needs).
//! Memory stays flat: one run of [`RUN_BYTES`] or one stripe at a time.

use std::collections::BTreeSet;

use ddiff_core::display::{error_chain, human_bytes, safe_json_strings};
use ddiff_core::inspect::shown::shown_json;
use ddiff_core::inspect::{InspectOptions, Inspector};
use ddiff_core::volume::{
    self, assess, Arrangement, Geometry, Observed, Placed, TrailerReader, VolumeError,
    VolumeTrailer,
};
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

/// Bytes of one volume asked for at once (whole units; one unit when units are larger).
pub const RUN_BYTES: u64 = 4 << 20;

/// One file given.
struct Candidate {
    name: String,
    reader: TrailerReader,
    trailer: Option<Result<VolumeTrailer, VolumeError>>,
}

/// A volume of the chosen set, as read so far.
enum Slot {
    Missing,
    Unreadable(VolumeError),
    Present { file: u32, crcs: Vec<u32> },
}

/// What the last [`VolumeSetReader::next_read`] asked for.
enum Pending {
    None,
    /// Units `first..first + count` of volume `vol`.
    Run {
        vol: u32,
        first: u64,
        count: u64,
    },
    /// Stripe `s`, to rebuild unit `s` of data volume `target`; `asking` is the volume
    /// whose unit was asked for.
    Stripe(Box<StripeWork>),
}

struct StripeWork {
    s: u64,
    target: u32,
    units: Vec<Option<Vec<u8>>>,
    tried: Vec<bool>,
    asking: Option<u32>,
}

/// The set's pass, once decided.
struct Pass {
    g: Geometry,
    slots: Vec<Slot>,
    vol: u32,
    unit: u64,
    bad: Vec<Vec<u64>>,
    known_bad: BTreeSet<(u32, u64)>,
    pending: Pending,
    feeding: bool,
    rebuilt_units: u64,
    rebuild_error: Option<String>,
    volume_bytes_read: u64,
}

/// A volume set read through in the browser. See the [module docs](self).
#[wasm_bindgen]
pub struct VolumeSetReader {
    files: Vec<Candidate>,
    arrangement: Option<Arrangement>,
    pass: Option<Pass>,
    inspector: Inspector,
    /// Set by `finish`: the bundle inside verified to its end.
    intact: bool,
}

#[wasm_bindgen]
impl VolumeSetReader {
    /// A fresh reader; `list_files` and `max_files` as for `BundleInspector`.
    #[wasm_bindgen(constructor)]
    pub fn new(list_files: bool, max_files: u32) -> VolumeSetReader {
        VolumeSetReader {
            files: Vec::new(),
            arrangement: None,
            pass: None,
            inspector: Inspector::new(InspectOptions {
                list_files,
                max_files: max_files as usize,
                ..InspectOptions::default()
            }),
            intact: false,
        }
    }

    /// Adds a file (its name without directory and its size); returns its id.
    #[wasm_bindgen(js_name = addFile)]
    pub fn add_file(&mut self, name: &str, size: f64) -> u32 {
        self.files.push(Candidate {
            name: name.to_string(),
            // A JS file size: a non-negative integer below 2^53; `as` saturates.
            reader: TrailerReader::new(size as u64),
            trailer: None,
        });
        self.files.len() as u32 - 1
    }

    /// The range `[start, end]` of file `id` to read for its trailer, or `undefined` when
    /// its trailer is read (or known unusable).
    #[wasm_bindgen(js_name = trailerNeed)]
    pub fn trailer_need(&self, id: u32) -> Option<Vec<f64>> {
        let c = self.files.get(id as usize)?;
        if c.trailer.is_some() {
            return None;
        }
        c.reader.need().map(|(s, e)| vec![s as f64, e as f64])
    }

    /// The bytes of the range `trailerNeed` named (empty when the file could not be read).
    #[wasm_bindgen(js_name = giveTrailer)]
    pub fn give_trailer(&mut self, id: u32, bytes: &[u8]) {
        let Some(c) = self.files.get_mut(id as usize) else {
            return;
        };
        match c.reader.need() {
            Some((s, e)) if bytes.len() as u64 == e - s => c.reader.give(bytes),
            Some(_) => c.reader.unreadable(),
            None => {}
        }
        if c.reader.need().is_none() {
            let r = std::mem::replace(&mut c.reader, TrailerReader::new(0));
            c.trailer = Some(r.finish());
        }
    }

    /// Decides the set once every trailer was read: JSON `{ok: true, set, name, data,
    /// parity, unit, bundleSize, bundleSizeText, volumes: [{volume, role, file?, found,
    /// problem?}], refused: [{file, why}]}`, or `{ok: false, error, refused}` when no set can
    /// be identified. Strings made safe to show.
    pub fn decide(&mut self) -> String {
        let finished: Vec<Result<VolumeTrailer, VolumeError>> = self
            .files
            .iter()
            .map(|c| c.trailer.clone().unwrap_or(Err(VolumeError::NotAVolume)))
            .collect();
        let cands: Vec<(Option<&str>, Result<&VolumeTrailer, &VolumeError>)> = self
            .files
            .iter()
            .zip(&finished)
            .map(|(c, r)| (Some(c.name.as_str()), r.as_ref()))
            .collect();
        let mut out = match volume::arrange(&cands) {
            Err(e) => {
                let refused: Vec<Value> = self
                    .files
                    .iter()
                    .zip(&finished)
                    .map(|(c, r)| {
                        json!({"file": c.name, "why": r.as_ref().err().map_or_else(
                            || "a volume of a set with as many volumes given".to_string(),
                            |e| error_chain(e))})
                    })
                    .collect();
                json!({"ok": false, "error": error_chain(&e), "refused": refused})
            }
            Ok(a) => {
                let g = a.descriptor.geometry;
                let mut slots = Vec::new();
                let mut rows = Vec::new();
                for (i, p) in a.slots.iter().enumerate() {
                    let role = if (i as u32) < g.data {
                        "data"
                    } else {
                        "parity"
                    };
                    let (slot, row) = match p {
                        Placed::Missing => (
                            Slot::Missing,
                            json!({"volume": i + 1, "role": role, "found": "missing"}),
                        ),
                        Placed::Unreadable { candidate, problem } => (
                            Slot::Unreadable(problem.clone()),
                            json!({"volume": i + 1, "role": role, "found": "unreadable",
                                   "file": self.files[*candidate].name,
                                   "problem": error_chain(problem)}),
                        ),
                        Placed::Present { candidate } => {
                            let crcs = finished[*candidate]
                                .as_ref()
                                .map(|t| t.crcs.clone())
                                .unwrap_or_default();
                            (
                                Slot::Present {
                                    file: *candidate as u32,
                                    crcs,
                                },
                                json!({"volume": i + 1, "role": role, "found": "present",
                                       "file": self.files[*candidate].name}),
                            )
                        }
                    };
                    slots.push(slot);
                    rows.push(row);
                }
                let refused: Vec<Value> = a
                    .refused
                    .iter()
                    .map(|(k, why)| json!({"file": self.files[*k].name, "why": why}))
                    .collect();
                let out = json!({
                    "ok": true, "set": a.set.to_string(), "name": a.name,
                    "data": g.data, "parity": g.parity, "unit": g.unit,
                    "bundleSize": g.bundle_size, "bundleSizeText": human_bytes(g.bundle_size),
                    "volumes": rows, "refused": refused,
                });
                self.pass = Some(Pass {
                    g,
                    bad: vec![Vec::new(); slots.len()],
                    slots,
                    vol: 0,
                    unit: 0,
                    known_bad: BTreeSet::new(),
                    pending: Pending::None,
                    feeding: true,
                    rebuilt_units: 0,
                    rebuild_error: None,
                    volume_bytes_read: 0,
                });
                self.arrangement = Some(a);
                out
            }
        };
        safe_json_strings(&mut out);
        out.to_string()
    }

    /// The next range to read, `[file id, start, end]`, or `undefined` when the pass is over
    /// (then call `finish`). Hand the bytes to `give` before asking again.
    #[wasm_bindgen(js_name = nextRead)]
    pub fn next_read(&mut self) -> Option<Vec<f64>> {
        let pass = self.pass.as_mut()?;
        let (file, start, end) = pass.next(&mut self.inspector)?;
        Some(vec![f64::from(file), start as f64, end as f64])
    }

    /// The bytes `nextRead` asked for (fewer when the file could not be read: its units are
    /// then bad).
    pub fn give(&mut self, bytes: &[u8]) {
        if let Some(p) = self.pass.as_mut() {
            p.volume_bytes_read += bytes.len() as u64;
            p.give(bytes, &mut self.inspector);
        }
    }

    /// `{bytes, bytesText, blobsDone, blobsTotal, volumeBytes}`: the bundle's bytes verified
    /// so far (the inspector's progress) and the volumes' bytes read.
    pub fn progress(&self) -> String {
        let mut v = shown_json(&self.inspector.progress());
        v["volumeBytes"] = self.pass.as_ref().map_or(0, |p| p.volume_bytes_read).into();
        v.to_string()
    }

    /// The inspection once every manifest and config was read, as `BundleInspector` gives it.
    pub fn inspection(&self) -> Option<String> {
        self.inspector
            .inspection()
            .map(|i| shown_json(i).to_string())
    }

    /// The verdict: `{volumes: [{volume, role, file?, state: "intact"|"damaged"|"missing",
    /// badUnits?, units?, problem?}], recoverable, lostStripes, rebuiltUnits, rebuildError?,
    /// outcome}`, `outcome` being the bundle's (as `BundleInspector.finish` gives it).
    pub fn finish(&mut self) -> String {
        let Some(pass) = self.pass.as_ref() else {
            return json!({"error": "no volume set was decided"}).to_string();
        };
        let g = pass.g;
        let observed: Vec<Observed> = pass
            .slots
            .iter()
            .zip(&pass.bad)
            .map(|(s, bad)| match s {
                Slot::Missing => Observed::Missing,
                Slot::Unreadable(problem) => Observed::Unreadable {
                    problem: problem.clone(),
                },
                Slot::Present { .. } => Observed::Read {
                    bad_units: bad.clone(),
                },
            })
            .collect();
        let a = assess(&g, &observed);
        let names = self.arrangement.as_ref().map(|a| &a.slots);
        let rows: Vec<Value> = a
            .states
            .iter()
            .enumerate()
            .map(|(i, st)| {
                let mut v = serde_json::to_value(st).unwrap_or_default();
                v["volume"] = (i + 1).into();
                v["role"] = if (i as u32) < g.data {
                    "data"
                } else {
                    "parity"
                }
                .into();
                let file = names.and_then(|n| match &n[i] {
                    Placed::Present { candidate } | Placed::Unreadable { candidate, .. } => {
                        Some(self.files[*candidate].name.clone())
                    }
                    Placed::Missing => None,
                });
                if let Some(f) = file {
                    v["file"] = f.into();
                }
                v
            })
            .collect();
        let mut out = json!({
            "volumes": rows,
            "recoverable": a.recoverable,
            "lostStripes": a.lost_stripes,
            "rebuiltUnits": pass.rebuilt_units,
        });
        if let Some(e) = &pass.rebuild_error {
            out["rebuildError"] = e.clone().into();
        }
        safe_json_strings(&mut out);
        // The outcome's strings are made safe by `shown_json`, once.
        let outcome = self.inspector.finish();
        self.intact = outcome.ok;
        out["outcome"] = shown_json(&outcome);
        out.to_string()
    }

    /// The bundle signature check over the `ddiff.json` read from the set (see
    /// `BundleInspector.checkSignature`).
    #[wasm_bindgen(js_name = checkSignature)]
    pub fn check_signature(&self, signature: &[u8], key_pem: Option<String>) -> String {
        crate::signature_json(
            self.inspector.meta_bytes(),
            self.intact,
            signature,
            key_pem.as_deref(),
        )
    }
}

impl Pass {
    /// Bytes of units `first..first + count` of volume `vol`: `[start, end)` of its file.
    fn range(&self, vol: u32, first: u64, count: u64) -> (u64, u64) {
        let u = u64::from(self.g.unit);
        let len = self.g.payload_len(vol);
        (first * u, ((first + count) * u).min(len))
    }

    fn file_of(&self, vol: u32) -> Option<(u32, &[u32])> {
        match &self.slots[vol as usize] {
            Slot::Present { file, crcs } => Some((*file, crcs)),
            _ => None,
        }
    }

    fn feed(&mut self, bytes: &[u8], ins: &mut Inspector) {
        if self.feeding && ins.feed(bytes).is_err() {
            self.feeding = false;
        }
    }

    fn next(&mut self, ins: &mut Inspector) -> Option<(u32, u64, u64)> {
        loop {
            if !matches!(self.pending, Pending::Stripe(_)) {
            } else if let Pending::Stripe(mut w) =
                std::mem::replace(&mut self.pending, Pending::None)
            {
                if let Some(j) = self.stripe_member(&mut w) {
                    w.asking = Some(j);
                    let s = w.s;
                    self.pending = Pending::Stripe(w);
                    let file = self.file_of(j)?.0;
                    let (a, b) = self.range(j, s, 1);
                    return Some((file, a, b));
                }
                self.finish_stripe(*w, ins);
                continue;
            }
            if let Pending::Run { vol, first, count } = self.pending {
                let file = self.file_of(vol)?.0;
                let (a, b) = self.range(vol, first, count);
                return Some((file, a, b));
            }
            let g = self.g;
            if self.vol >= g.volumes() {
                return None;
            }
            if self.unit >= g.units(self.vol) {
                self.vol += 1;
                self.unit = 0;
                continue;
            }
            if self.file_of(self.vol).is_some() {
                let per = (RUN_BYTES / u64::from(g.unit)).max(1);
                let count = per.min(g.units(self.vol) - self.unit);
                self.pending = Pending::Run {
                    vol: self.vol,
                    first: self.unit,
                    count,
                };
                continue;
            }
            if self.vol < g.data && self.feeding {
                self.start_stripe(self.vol, self.unit);
            } else {
                // A missing parity volume, or a missing data volume once the bundle stopped
                // (nothing to feed): nothing to read.
                self.vol += 1;
                self.unit = 0;
            }
        }
    }

    fn start_stripe(&mut self, target: u32, s: u64) {
        let n = self.g.volumes() as usize;
        let mut tried = vec![false; n];
        tried[target as usize] = true;
        self.pending = Pending::Stripe(Box::new(StripeWork {
            s,
            target,
            units: vec![None; n],
            tried,
            asking: None,
        }));
    }

    /// The next volume whose unit the rebuild of `w` needs, `None` once it has enough (as
    /// many good units as data volumes) or has tried every volume. Units past a volume's end
    /// are known zeros and taken without reading.
    fn stripe_member(&self, w: &mut StripeWork) -> Option<u32> {
        let g = &self.g;
        let u = g.unit as usize;
        for j in 0..g.volumes() {
            let good = w.units.iter().filter(|x| x.is_some()).count();
            if good >= g.data as usize {
                return None;
            }
            let ju = j as usize;
            if w.tried[ju] {
                continue;
            }
            w.tried[ju] = true;
            if self.file_of(j).is_none() || self.known_bad.contains(&(j, w.s)) {
                continue;
            }
            if g.unit_len(j, w.s) == 0 {
                w.units[ju] = Some(vec![0u8; u]);
                continue;
            }
            return Some(j);
        }
        None
    }

    fn finish_stripe(&mut self, mut w: StripeWork, ins: &mut Inspector) {
        let g = self.g;
        match volume::restore_stripe(&g, w.s, &mut w.units, false) {
            Ok(()) => {
                self.rebuilt_units += 1;
                let n = g.unit_len(w.target, w.s);
                let unit = w.units[w.target as usize].take().unwrap_or_default();
                self.feed(&unit[..n.min(unit.len())], ins);
            }
            Err(e) => {
                self.rebuild_error = Some(error_chain(&e));
                self.feeding = false;
            }
        }
        // The pass goes on after the unit rebuilt (or, stopped, to its volume's next unit).
        self.vol = w.target;
        self.unit = w.s + 1;
    }

    fn give(&mut self, bytes: &[u8], ins: &mut Inspector) {
        let g = self.g;
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::None => {}
            Pending::Run { vol, first, count } => {
                let Some((_, crcs)) = self.file_of(vol) else {
                    return;
                };
                let crcs = crcs.to_vec();
                let mut at = 0usize;
                for s in first..first + count {
                    let n = g.unit_len(vol, s);
                    let unit = bytes.get(at..at + n);
                    at += n;
                    let good =
                        unit.is_some_and(|b| crcs.get(s as usize) == Some(&volume::crc32(b)));
                    if good {
                        if vol < g.data {
                            // `good` implies the slice exists.
                            self.feed(unit.unwrap_or_default(), ins);
                        }
                        self.unit = s + 1;
                        continue;
                    }
                    self.bad[vol as usize].push(s);
                    self.known_bad.insert((vol, s));
                    if vol < g.data && self.feeding {
                        // Rebuild this unit, then read on from the next one.
                        self.start_stripe(vol, s);
                        return;
                    }
                    self.unit = s + 1;
                }
            }
            Pending::Stripe(mut w) => {
                if let Some(j) = w.asking.take() {
                    let n = g.unit_len(j, w.s);
                    let good = self.file_of(j).is_some_and(|(_, crcs)| {
                        bytes.len() == n && crcs.get(w.s as usize) == Some(&volume::crc32(bytes))
                    });
                    if good {
                        let mut b = vec![0u8; g.unit as usize];
                        b[..n].copy_from_slice(bytes);
                        w.units[j as usize] = Some(b);
                    } else {
                        self.known_bad.insert((j, w.s));
                    }
                }
                self.pending = Pending::Stripe(w);
            }
        }
    }
}

/// What a dropped file is, decided from its name, its size, its first bytes (`head`, up to
/// 16) and its last [`volume::FOOTER_LEN`] bytes (`tail`): `"volume"` (ends with a volume
/// footer, or is named like one, `NAME.NNN`, so a volume cut short still counts),
/// `"checksum"` (`*.sha256`, `*.SHA256SUMS`: `verify --write-checksum`'s, ignored),
/// `"signature"` (`*.sig`, small), `"key"` (a PEM block, small), `"inventory"` (JSON: a
/// site inventory) or `"bundle"`.
#[wasm_bindgen(js_name = fileRole)]
pub fn file_role(name: &str, size: f64, head: &[u8], tail: &[u8]) -> String {
    use ddiff_core::signature::{BUNDLE_SIGNATURE_SUFFIX, MAX_KEY_TEXT, MAX_SIGNATURE_TEXT};
    let size = size as u64;
    let role = if volume::has_volume_magic(tail) || volume::parse_volume_file_name(name).is_some() {
        "volume"
    } else if name.ends_with(".sha256") || name.ends_with(".SHA256SUMS") {
        // `verify --write-checksum`'s files, for sha256sum: not needed here.
        "checksum"
    } else if name.ends_with(BUNDLE_SIGNATURE_SUFFIX) && size <= MAX_SIGNATURE_TEXT as u64 {
        "signature"
    } else if head.starts_with(b"-----BEGIN") && size <= MAX_KEY_TEXT as u64 {
        "key"
    } else if head.first() == Some(&b'{') && size <= 64 << 20 {
        "inventory"
    } else {
        "bundle"
    };
    role.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use ddiff_core::synth_bundle::{sample, volume_set, SampleOptions};

    /// Drives a reader over in-memory files as worker.js does over `File`s.
    fn run(files: &[(String, Vec<u8>)]) -> (Value, Value, VolumeSetReader) {
        let mut r = VolumeSetReader::new(true, 1000);
        for (name, bytes) in files {
            let id = r.add_file(name, bytes.len() as f64);
            while let Some(range) = r.trailer_need(id) {
                r.give_trailer(id, &bytes[range[0] as usize..range[1] as usize]);
            }
        }
        let plan: Value = serde_json::from_str(&r.decide()).unwrap();
        let mut reads = 0;
        while let Some(n) = r.next_read() {
            let bytes = &files[n[0] as usize].1;
            r.give(&bytes[n[1] as usize..n[2] as usize]);
            reads += 1;
            assert!(reads < 100_000, "the pass does not end");
        }
        let done: Value = serde_json::from_str(&r.finish()).unwrap();
        (plan, done, r)
    }

    fn named(vols: &[Vec<u8>], name: &str) -> Vec<(String, Vec<u8>)> {
        vols.iter()
            .enumerate()
            .map(|(i, v)| (volume::volume_file_name(name, i as u32), v.clone()))
            .collect()
    }

    fn states(done: &Value) -> Vec<String> {
        done["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["state"].as_str().unwrap().to_string())
            .collect()
    }

    /// About 300 kB: five data volumes of 64 KiB.
    fn bundle() -> Vec<u8> {
        sample(SampleOptions {
            big_layer_bytes: 250_000,
            ..SampleOptions::default()
        })
        .encode()
    }

    #[test]
    fn an_intact_set_verifies_as_the_plain_bundle_does() {
        let b = bundle();
        let vols = volume_set(&b, 65536, 1).unwrap();
        assert!(vols.len() >= 3, "{}", vols.len());
        let (plan, done, _) = run(&named(&vols, "app.ddiff"));
        assert_eq!(plan["ok"], true);
        assert_eq!(plan["name"], "app.ddiff");
        assert_eq!(plan["parity"], 1);
        assert!(states(&done).iter().all(|s| s == "intact"), "{done}");
        assert_eq!(done["recoverable"], true);
        assert_eq!(done["rebuiltUnits"], 0);
        let mut plain = crate::BundleInspector::new(true, 1000);
        assert!(plain.feed(&b));
        let plain: Value = serde_json::from_str(&plain.finish()).unwrap();
        assert_eq!(done["outcome"], plain);
        assert_eq!(done["outcome"]["ok"], true);
    }

    #[test]
    fn one_volume_deleted_and_one_damaged_with_parity_2_is_recovered_and_verifies() {
        let b = bundle();
        let vols = volume_set(&b, 65536, 2).unwrap();
        let mut files = named(&vols, "app.ddiff");
        // Volume 2 deleted, a byte in the middle of volume 1's payload flipped, the files
        // given out of order.
        files.remove(1);
        files[0].1[30_000] ^= 0x20;
        files.reverse();
        let (plan, done, _) = run(&files);
        assert_eq!(plan["volumes"][1]["found"], "missing");
        let st = states(&done);
        assert_eq!(st[0], "damaged", "{done}");
        assert_eq!(st[1], "missing");
        assert!(st[2..].iter().all(|s| s == "intact"), "{st:?}");
        // The core's VolumeState as `ddiff verify --json` prints it.
        assert_eq!(done["volumes"][0]["bad_units"], 1);
        assert_eq!(done["recoverable"], true);
        assert!(done["rebuiltUnits"].as_u64().unwrap() > 1);
        assert!(done.get("rebuildError").is_none());
        assert_eq!(done["outcome"]["ok"], true, "{}", done["outcome"]);
        assert_eq!(
            done["outcome"]["bytes"].as_u64().unwrap(),
            b.len() as u64,
            "every byte of the bundle fed"
        );
    }

    #[test]
    fn too_many_losses_say_which_stripe_and_volumes() {
        let b = bundle();
        let vols = volume_set(&b, 65536, 1).unwrap();
        let mut files = named(&vols, "app.ddiff");
        files.remove(2);
        files.remove(0);
        let (_, done, _) = run(&files);
        assert_eq!(done["recoverable"], false);
        assert!(done["lostStripes"].as_u64().unwrap() > 0);
        let e = done["rebuildError"].as_str().unwrap();
        assert!(
            e.starts_with("stripe 0 cannot be rebuilt: 2 of its") && e.contains("(volumes 1, 3)"),
            "{e}"
        );
        assert_eq!(done["outcome"]["ok"], false);
    }

    #[test]
    fn a_volume_of_another_set_is_refused_by_name() {
        let vols = volume_set(&bundle(), 65536, 1).unwrap();
        let other = volume_set(
            &sample(SampleOptions {
                hostile_text: true,
                big_layer_bytes: 250_000,
                ..SampleOptions::default()
            })
            .encode(),
            65536,
            1,
        )
        .unwrap();
        let mut files = named(&vols, "app.ddiff");
        files[1] = ("app.ddiff.002".into(), other[1].clone());
        files.push(("stray.bin".into(), b"not a volume at all".to_vec()));
        let (plan, done, _) = run(&files);
        let refused = plan["refused"].as_array().unwrap();
        assert_eq!(refused.len(), 2, "{plan}");
        assert_eq!(refused[0]["file"], "app.ddiff.002");
        assert!(refused[0]["why"]
            .as_str()
            .unwrap()
            .starts_with("a volume of another set (sha256:"));
        assert_eq!(refused[1]["file"], "stray.bin");
        assert!(refused[1]["why"]
            .as_str()
            .unwrap()
            .contains("not a ddiff volume"));
        // Its slot is missing, rebuilt from parity.
        assert_eq!(states(&done)[1], "missing");
        assert_eq!(done["outcome"]["ok"], true);
        // Only files of other sets: no set to choose.
        let (plan, _, _) = run(&[("x.bin".into(), b"nothing".to_vec())]);
        assert_eq!(plan["ok"], false);
        assert!(plan["error"]
            .as_str()
            .unwrap()
            .contains("cannot be identified"));
    }

    #[test]
    fn a_volume_cut_short_is_damaged_not_ignored() {
        let vols = volume_set(&bundle(), 65536, 1).unwrap();
        let mut files = named(&vols, "app.ddiff");
        let n = files[0].1.len();
        files[0].1.truncate(n - 100);
        let (plan, done, _) = run(&files);
        assert_eq!(plan["volumes"][0]["found"], "unreadable");
        assert_eq!(states(&done)[0], "damaged");
        assert_eq!(done["outcome"]["ok"], true);
    }

    #[test]
    fn roles_of_dropped_files() {
        let vols = volume_set(&bundle(), 65536, 1).unwrap();
        let v = &vols[0];
        let tail = &v[v.len() - volume::FOOTER_LEN..];
        assert_eq!(file_role("x", v.len() as f64, &v[..16], tail), "volume");
        assert_eq!(file_role("a.ddiff.007", 10.0, b"", b""), "volume");
        assert_eq!(file_role("a.ddiff.sig", 96.0, b"MEUCIQ", b""), "signature");
        assert_eq!(
            file_role("a.ddiff.SHA256SUMS", 300.0, b"0123", b""),
            "checksum"
        );
        assert_eq!(file_role("a.ddiff.sha256", 90.0, b"0123", b""), "checksum");
        assert_eq!(file_role("a.ddiff.sig", 1e6, b"MEUCIQ", b""), "bundle");
        assert_eq!(
            file_role("cosign.pub", 178.0, b"-----BEGIN PUBLIC", b""),
            "key"
        );
        assert_eq!(file_role("site.json", 300.0, b"{\"x\"", b""), "inventory");
        let b = bundle();
        assert_eq!(
            file_role("app.ddiff", b.len() as f64, &b[..16], &b[b.len() - 72..]),
            "bundle"
        );
    }
}
