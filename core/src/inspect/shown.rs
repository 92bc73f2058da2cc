//! The inspection's view types as a page shows them: their JSON (the same fields `ddiff
//! inspect --json` prints), every string made safe to show, and next to each value a person
//! reads its text, written by the same functions the CLI prints with ([`crate::display`]):
//!
//! | field | text field | made by |
//! |-------|-----------|---------|
//! | byte counts (`bytes`, `size`, `carriedBytes`, `fullBytes`, `reliedBytes`, `uncompressedBytes`) | `…Text` (`bytesText`, `sizeText`, …) | [`human_bytes`] |
//! | `mediaType` of targets and layers | `mediaTypeText` | [`short_media_type`] |
//! | `digest` of layer rows, listings and a problem's blob | `digestText` | [`Digest::short`](crate::Digest::short) |
//! | a file entry's `mode` | `modeText` | [`file_mode`] |
//! | an artifact's `kind`, `digest`, predicate or artifact type | `kindText`, `digestText`, `typeText` | [`ArtifactView::kind_text`](crate::provenance::ArtifactView::kind_text), [`Digest::short`](crate::Digest::short), [`ArtifactView::type_text`](crate::provenance::ArtifactView::type_text) |
//!
//! So the page displays the core's strings instead of JavaScript copies of them. The CLI's
//! `--json` stays without the text fields (they are for display, and derived).
//!
//! ```
//! use ddiff_core::inspect::{shown::shown_json, InspectOptions, Inspector};
//! use ddiff_core::synth_bundle::{sample, SampleOptions};
//! let mut ins = Inspector::new(InspectOptions::default());
//! ins.feed(&sample(SampleOptions::default()).encode()).unwrap();
//! let v = shown_json(&ins.finish());
//! assert!(v["bytesText"].as_str().unwrap().ends_with(" kB"));
//! let target = &v["inspection"]["targets"][0];
//! assert_eq!(target["mediaTypeText"], "oci.image.manifest.v1+json");
//! ```

use serde::Serialize;
use serde_json::Value;

use super::{
    BlobRef, ImageView, Inspection, LayerListing, LayerRow, Outcome, Problem, Progress, TargetView,
};
use crate::display::{file_mode, human_bytes, safe_json_strings, short_media_type};
use crate::layer_files::FileEntry;

/// A view type whose JSON a page shows.
pub trait Shown: Serialize {
    /// Adds the text fields to `json`, this value's own JSON.
    fn add_text(&self, json: &mut Value);
}

/// `view`'s JSON with the text fields added and every string (object keys included) through
/// [`safe_text`](crate::display::safe_text): escaped and capped, once.
pub fn shown_json<T: Shown>(view: &T) -> Value {
    // The view types are plain structs of strings and numbers: always serialisable.
    let mut json = serde_json::to_value(view).expect("inspection view types serialise");
    view.add_text(&mut json);
    safe_json_strings(&mut json);
    json
}

/// Sets `json[key] = text` on an object.
fn put(json: &mut Value, key: &str, text: String) {
    if let Value::Object(o) = json {
        o.insert(key.to_string(), Value::String(text));
    }
}

/// Adds the text fields of each item of `items` to the matching element of `json[key]`.
fn each<T: Shown>(json: &mut Value, key: &str, items: &[T]) {
    if let Some(Value::Array(a)) = json.get_mut(key) {
        for (item, j) in items.iter().zip(a.iter_mut()) {
            item.add_text(j);
        }
    }
}

/// Adds the text fields of `item`, if any, to `json[key]`.
fn one<T: Shown>(json: &mut Value, key: &str, item: Option<&T>) {
    if let (Some(item), Some(j)) = (item, json.get_mut(key)) {
        item.add_text(j);
    }
}

impl Shown for Outcome {
    fn add_text(&self, json: &mut Value) {
        put(json, "bytesText", human_bytes(self.bytes));
        one(json, "problem", self.problem.as_ref());
        one(json, "inspection", self.inspection.as_ref());
        each(json, "layers", &self.layers);
    }
}

impl Shown for Problem {
    fn add_text(&self, json: &mut Value) {
        one(json, "blob", self.blob.as_ref());
    }
}

impl Shown for BlobRef {
    fn add_text(&self, json: &mut Value) {
        put(json, "digestText", self.digest.short());
        put(json, "sizeText", human_bytes(self.size));
    }
}

impl Shown for Progress {
    fn add_text(&self, json: &mut Value) {
        put(json, "bytesText", human_bytes(self.bytes));
    }
}

impl Shown for Inspection {
    fn add_text(&self, json: &mut Value) {
        put(json, "carriedBytesText", human_bytes(self.carried_bytes));
        put(json, "reliedBytesText", human_bytes(self.relied_bytes));
        each(json, "targets", &self.targets);
        each(json, "artifacts", &self.artifacts);
    }
}

impl Shown for crate::provenance::ArtifactView {
    fn add_text(&self, json: &mut Value) {
        put(json, "kindText", self.kind_text());
        put(json, "digestText", self.digest.short());
        if let Some(t) = self.type_text() {
            put(json, "typeText", t.to_string());
        }
    }
}

impl Shown for TargetView {
    fn add_text(&self, json: &mut Value) {
        let t = short_media_type(self.media_type.as_str()).into_owned();
        put(json, "mediaTypeText", t);
        each(json, "images", &self.images);
    }
}

impl Shown for ImageView {
    fn add_text(&self, json: &mut Value) {
        put(json, "carriedBytesText", human_bytes(self.carried_bytes));
        put(json, "fullBytesText", human_bytes(self.full_bytes));
        each(json, "layers", &self.layers);
    }
}

impl Shown for LayerRow {
    fn add_text(&self, json: &mut Value) {
        put(json, "sizeText", human_bytes(self.size));
        let t = short_media_type(self.media_type.as_str()).into_owned();
        put(json, "mediaTypeText", t);
        put(json, "digestText", self.digest.short());
        if let Some(p) = &self.patch {
            put(json, "patchText", crate::display::patch_note(p, self.size));
        }
    }
}

impl Shown for LayerListing {
    fn add_text(&self, json: &mut Value) {
        put(
            json,
            "uncompressedBytesText",
            human_bytes(self.uncompressed_bytes),
        );
        put(json, "digestText", self.digest.short());
        each(json, "files", &self.files);
    }
}

impl Shown for FileEntry {
    fn add_text(&self, json: &mut Value) {
        put(json, "modeText", file_mode(self));
        put(json, "sizeText", human_bytes(self.size));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::inspect::{InspectOptions, Inspector};
    use crate::synth_bundle::{sample, SampleOptions};

    /// Every number a person reads has its text beside it, made by the functions the CLI
    /// prints with; the numbers and every other field stay as `--json` has them.
    #[test]
    fn text_fields_sit_beside_their_values() {
        let bytes = sample(SampleOptions::default()).encode();
        let mut ins = Inspector::new(InspectOptions {
            list_files: true,
            max_files: 1000,
            ..InspectOptions::default()
        });
        ins.feed(&bytes).unwrap();
        let o = ins.finish();
        let v = shown_json(&o);
        assert_eq!(v["bytesText"], human_bytes(bytes.len() as u64));
        let ins_v = &v["inspection"];
        let i = o.inspection.as_ref().unwrap();
        assert_eq!(ins_v["reliedBytesText"], human_bytes(i.relied_bytes));
        assert_eq!(ins_v["carriedBytesText"], human_bytes(i.carried_bytes));
        let t = &ins_v["targets"][0];
        assert_eq!(t["mediaTypeText"], "oci.image.manifest.v1+json");
        let img = &t["images"][0];
        assert_eq!(
            img["fullBytesText"],
            human_bytes(i.targets[0].images[0].full_bytes)
        );
        for (row, r) in img["layers"]
            .as_array()
            .unwrap()
            .iter()
            .zip(&i.targets[0].images[0].layers)
        {
            assert_eq!(row["size"], r.size);
            assert_eq!(row["sizeText"], human_bytes(r.size));
            assert_eq!(
                row["mediaTypeText"],
                short_media_type(r.media_type.as_str()).as_ref()
            );
            assert!(matches!(
                row["mediaTypeText"].as_str(),
                Some("tar" | "tar+gzip")
            ));
            assert_eq!(row["digestText"], r.digest.short());
        }
        let files = v["layers"][0]["files"].as_array().unwrap();
        assert_eq!(files.len(), o.layers[0].files.len());
        for (f, e) in files.iter().zip(&o.layers[0].files) {
            assert_eq!(f["modeText"], file_mode(e));
            assert_eq!(f["sizeText"], human_bytes(e.size));
        }
        assert!(files.iter().any(|f| f["modeText"] == "-rwxr-xr-x"));
        // Without the text fields, it is the JSON `--json` prints.
        let mut plain = v.clone();
        strip_text(&mut plain);
        assert_eq!(plain, serde_json::to_value(&o).unwrap());
        // A damaged bundle: the problem's blob has its texts too.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad.truncate(n - 1500);
        let mut ins = Inspector::new(InspectOptions::default());
        let _ = ins.feed(&bad);
        let o = ins.finish();
        let v = shown_json(&o);
        let b = o.problem.as_ref().unwrap().blob.as_ref().unwrap();
        assert_eq!(v["problem"]["blob"]["digestText"], b.digest.short());
        assert_eq!(
            shown_json(&ins.progress())["bytesText"],
            human_bytes(n as u64 - 1500)
        );
    }

    fn strip_text(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.retain(|k, _| !k.ends_with("Text"));
                o.values_mut().for_each(strip_text);
            }
            Value::Array(a) => a.iter_mut().for_each(strip_text),
            _ => {}
        }
    }
}
