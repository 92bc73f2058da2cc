//! The OCI image layout's `index.json` as ddiff reads and writes it: which entry a reference
//! names (`ref.name` annotation, `@N` position, or the only entry), the entries by tag, and
//! the index after a load added its targets. Hosts read and write the files; the choices are
//! made here, once, for `oci:` directories and `oci-archive:` files alike.

use std::collections::{BTreeMap, HashMap};

#[cfg(test)]
use crate::Digest;
use crate::{Descriptor, MediaType, RawManifest, Reference};

/// The annotation that names an entry of `index.json` (ddiff writes the tag there).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// The annotation containerd and ddiff write with the full image name (`team/app:2`).
pub const IMAGE_NAME: &str = "io.containerd.image.name";

/// Why an entry of a layout cannot be chosen, or its index not written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayoutError {
    /// `index.json` is not an image index.
    #[error("index.json is not an image index")]
    NotIndex,
    /// `@N` with something else than a number after `@`.
    #[error("bad index {0} (expected @N)")]
    BadPosition(String),
    /// `@N` past the end.
    #[error("no entry {0}")]
    NoPosition(String),
    /// No entry has this `ref.name`.
    #[error("no image named {name:?}; the layout has: {}", if available.is_empty() { "(no named images)".to_string() } else { available.join(", ") })]
    NoName {
        /// The name asked for.
        name: String,
        /// The names the layout has.
        available: Vec<String>,
    },
    /// No reference given and the layout holds several images.
    #[error("the layout holds {0} images; name one as {1}:REF")]
    Ambiguous(usize, String),
    /// The existing `index.json` cannot be updated.
    #[error("index.json {0}")]
    Unwritable(&'static str),
}

/// The entry a reference chose, and the name a bundle gives the image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// The entry's descriptor.
    pub descriptor: Descriptor,
    /// `repository:tag` from the full-name annotation, when it has one.
    pub name: Option<String>,
    /// Its `ref.name` (a tag) when it has one.
    pub ref_name: Option<String>,
}

fn ref_name(d: &Descriptor) -> Option<String> {
    d.annotations.as_ref()?.get(REF_NAME).cloned()
}

/// The name a destination tags a source image with: `repository:tag`, `repository@digest`,
/// or `repository:latest`.
pub fn target_name(r: &Reference) -> String {
    match (r.tag(), r.digest()) {
        (Some(t), _) => format!("{}:{t}", r.repository()),
        (None, Some(d)) => format!("{}@{d}", r.repository()),
        (None, None) => format!("{}:latest", r.repository()),
    }
}

/// Chooses the entry of `index` (the exact bytes of `index.json`) that `reference` names: its
/// `ref.name`, `@N` for the N-th entry, or (no reference) the only entry. `label` names the
/// layout in the ambiguity message (`oci:DIR`).
pub fn choose(index: &[u8], reference: Option<&str>, label: &str) -> Result<Chosen, LayoutError> {
    let raw = RawManifest::parse(index.to_vec(), None).map_err(|_| LayoutError::NotIndex)?;
    let idx = raw.as_index().ok_or(LayoutError::NotIndex)?;
    let chosen = match reference {
        Some(r) if r.starts_with('@') => {
            let n: usize = r[1..]
                .parse()
                .map_err(|_| LayoutError::BadPosition(r.to_string()))?;
            idx.manifests
                .get(n)
                .ok_or_else(|| LayoutError::NoPosition(r.to_string()))?
        }
        Some(r) => idx
            .manifests
            .iter()
            .find(|d| ref_name(d).as_deref() == Some(r))
            .ok_or_else(|| LayoutError::NoName {
                name: r.to_string(),
                available: idx.manifests.iter().filter_map(ref_name).collect(),
            })?,
        None => match &idx.manifests[..] {
            [only] => only,
            all => return Err(LayoutError::Ambiguous(all.len(), label.to_string())),
        },
    };
    let name = chosen
        .annotations
        .as_ref()
        .and_then(|a| a.get(IMAGE_NAME))
        .and_then(|n| Reference::parse(n).ok())
        .map(|r| target_name(&r));
    Ok(Chosen {
        descriptor: chosen.clone(),
        name,
        ref_name: ref_name(chosen),
    })
}

/// A repository name for images of a layout known only by their `ref.name`: the directory's
/// or file's name (`stem`), lowercased, other characters as `-`; `image` when nothing is left.
pub fn repository_guess(stem: Option<&str>) -> String {
    let repo: String = stem
        .unwrap_or("image")
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    match repo.trim_matches('-') {
        "" => "image".into(),
        r => r.into(),
    }
}

/// The entries of `index.json` by their `ref.name` (the last one wins, as [`index_with`]
/// would replace the earlier). Empty for bytes that are not an index.
pub fn tags(index: &[u8]) -> HashMap<String, Descriptor> {
    let Ok(raw) = RawManifest::parse(index.to_vec(), None) else {
        return Default::default();
    };
    let Some(idx) = raw.as_index() else {
        return Default::default();
    };
    idx.manifests
        .iter()
        .filter_map(|d| Some((ref_name(d)?, d.clone())))
        .collect()
}

/// The entries of the image manifests and indexes `index.json` lists (for walking a layout).
pub fn entries(index: &[u8]) -> Vec<Descriptor> {
    RawManifest::parse(index.to_vec(), None)
        .ok()
        .and_then(|m| m.as_index().map(|i| i.manifests.clone()))
        .unwrap_or_default()
}

/// One image a load adds to a layout: its top manifest, full name and tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEntry {
    /// The top manifest.
    pub descriptor: Descriptor,
    /// The full name (`team/app:2`), written as [`IMAGE_NAME`].
    pub name: String,
    /// The tag, written as [`REF_NAME`].
    pub tag: String,
}

/// The `index.json` of a layout after adding `entries`: existing entries with the same
/// [`REF_NAME`] are replaced (within `entries` the last one wins), everything else (unknown
/// fields included) is kept. `existing` is `None` for a new layout. One pass over the
/// existing entries, whatever their number and the new ones'.
pub fn index_with(existing: Option<&[u8]>, entries: &[NewEntry]) -> Result<Vec<u8>, LayoutError> {
    let mut v: serde_json::Value = match existing {
        Some(b) => serde_json::from_slice(b).map_err(|_| LayoutError::Unwritable("is not JSON"))?,
        None => serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MediaType::OciIndex.as_str(),
            "manifests": [],
        }),
    };
    let list = v
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or(LayoutError::Unwritable("has no manifests array"))?;
    let last: BTreeMap<&str, usize> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| (e.tag.as_str(), i))
        .collect();
    list.retain(|e| {
        e.get("annotations")
            .and_then(|a| a.get(REF_NAME))
            .and_then(|t| t.as_str())
            .is_none_or(|t| !last.contains_key(t))
    });
    for (i, e) in entries.iter().enumerate() {
        if last.get(e.tag.as_str()) != Some(&i) {
            continue;
        }
        let mut d = e.descriptor.clone();
        let mut ann = d.annotations.take().unwrap_or_default();
        ann.insert(REF_NAME.into(), e.tag.clone());
        ann.insert(IMAGE_NAME.into(), e.name.clone());
        d.annotations = Some(ann);
        list.push(
            serde_json::to_value(&d).map_err(|_| LayoutError::Unwritable("does not serialise"))?,
        );
    }
    serde_json::to_vec(&v).map_err(|_| LayoutError::Unwritable("does not serialise"))
}

/// `index` with `add` appended, each descriptor once (by digest): the entries of referrers,
/// which carry no name.
pub fn index_with_unnamed(index: &[u8], add: &[Descriptor]) -> Result<Vec<u8>, LayoutError> {
    let mut v: serde_json::Value =
        serde_json::from_slice(index).map_err(|_| LayoutError::Unwritable("is not JSON"))?;
    let list = v
        .get_mut("manifests")
        .and_then(|m| m.as_array_mut())
        .ok_or(LayoutError::Unwritable("has no manifests array"))?;
    for d in add {
        let there = list.iter().any(|e| {
            e.get("digest").and_then(|x| x.as_str()) == Some(d.digest.to_string().as_str())
        });
        if !there {
            list.push(
                serde_json::to_value(d)
                    .map_err(|_| LayoutError::Unwritable("does not serialise"))?,
            );
        }
    }
    serde_json::to_vec(&v).map_err(|_| LayoutError::Unwritable("does not serialise"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(c: &str) -> Descriptor {
        Descriptor::new(MediaType::OciManifest, Digest::sha256(c.as_bytes()), 1)
    }

    fn entry(c: &str, name: &str, tag: &str) -> NewEntry {
        NewEntry {
            descriptor: d(c),
            name: name.into(),
            tag: tag.into(),
        }
    }

    #[test]
    fn a_new_entry_replaces_the_same_tag_and_keeps_the_others() {
        let one = index_with(None, &[entry("a", "docker.io/library/bb:base", "base")]).unwrap();
        let two = index_with(Some(&one), &[entry("b", "docker.io/library/app:2", "2")]).unwrap();
        let three = index_with(Some(&two), &[entry("b", "docker.io/library/app:2", "2")]).unwrap();
        let idx = RawManifest::parse(three, None).unwrap();
        let m = &idx.as_index().unwrap().manifests;
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].annotations.as_ref().unwrap()[REF_NAME], "2");
        assert_eq!(
            m[1].annotations.as_ref().unwrap()[IMAGE_NAME],
            "docker.io/library/app:2"
        );
        assert!(index_with(Some(b"[]"), &[]).is_err());
    }

    #[test]
    fn tags_are_read_by_ref_name_the_last_winning() {
        let index = index_with(
            None,
            &[entry("a", "team/a:2", "2"), entry("b", "team/b:3", "3")],
        )
        .unwrap();
        let t = tags(&index);
        assert_eq!(t.len(), 2);
        assert_eq!(t["2"].digest, Digest::sha256(b"a"));
        let again = index_with(Some(&index), &[entry("c", "team/c:2", "2")]).unwrap();
        assert_eq!(tags(&again)["2"].digest, Digest::sha256(b"c"));
        assert_eq!(entries(&again).len(), 2);
        assert!(tags(b"not json").is_empty());
        assert_eq!(
            index_with(Some(b"{}"), &[]),
            Err(LayoutError::Unwritable("has no manifests array"))
        );
    }

    #[test]
    fn a_reference_chooses_by_name_position_or_the_only_entry() {
        let index = index_with(
            None,
            &[entry("a", "team/a:2", "2"), entry("b", "team/b:3", "3")],
        )
        .unwrap();
        let by_name = choose(&index, Some("3"), "oci:x").unwrap();
        assert_eq!(by_name.descriptor.digest, Digest::sha256(b"b"));
        assert_eq!(by_name.name.as_deref(), Some("team/b:3"));
        assert_eq!(by_name.ref_name.as_deref(), Some("3"));
        let by_pos = choose(&index, Some("@0"), "oci:x").unwrap();
        assert_eq!(by_pos.descriptor.digest, Digest::sha256(b"a"));
        assert_eq!(
            choose(&index, Some("@2"), "oci:x"),
            Err(LayoutError::NoPosition("@2".into()))
        );
        assert_eq!(
            choose(&index, Some("@x"), "oci:x"),
            Err(LayoutError::BadPosition("@x".into()))
        );
        let e = choose(&index, Some("4"), "oci:x").unwrap_err();
        assert_eq!(e.to_string(), "no image named \"4\"; the layout has: 2, 3");
        assert_eq!(
            choose(&index, None, "oci:x").unwrap_err().to_string(),
            "the layout holds 2 images; name one as oci:x:REF"
        );
        let one = index_with(None, &[entry("a", "team/a:2", "2")]).unwrap();
        assert_eq!(
            choose(&one, None, "oci:x").unwrap().descriptor.digest,
            Digest::sha256(b"a")
        );
        assert_eq!(choose(b"[]", None, "oci:x"), Err(LayoutError::NotIndex));
    }

    #[test]
    fn names_guessed_from_paths_are_valid_repositories() {
        assert_eq!(repository_guess(Some("My Layout_2")), "my-layout-2");
        assert_eq!(repository_guess(Some("--")), "image");
        assert_eq!(repository_guess(None), "image");
        let r = Reference::parse("reg:5000/team/app@sha256:0000000000000000000000000000000000000000000000000000000000000000").unwrap();
        assert!(target_name(&r).starts_with("team/app@sha256:"));
        assert_eq!(
            target_name(&Reference::parse("app").unwrap()),
            "library/app:latest"
        );
    }
}
