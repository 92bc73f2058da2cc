//! Load planning: given a verified bundle and what the destination already holds, decide what
//! to upload, which manifests to write (children first, the tag last) and — when the
//! destination's base was stored with another compression — how to rewrite the manifests to
//! point at the destination's own blobs (matched by `diff_id`).

use std::collections::{BTreeMap, BTreeSet};

use crate::bundle::{BlobKind, ReliedBlob, Report};
use crate::{Descriptor, Digest, MediaType};

/// What the host found at the destination.
#[derive(Clone, Debug, Default)]
pub struct DestinationState {
    /// Blobs present (or mountable) at the destination.
    pub present: BTreeSet<Digest>,
    /// Layers of the destination's base, by diff_id (from its manifest and config).
    pub by_diff_id: BTreeMap<Digest, Descriptor>,
}

impl DestinationState {
    /// What to ask a destination about before a load of `report`: the relied-on layers, then
    /// the carried configs and layers, each digest once. The host records each one it holds
    /// in [`DestinationState::present`].
    pub fn questions(report: &Report) -> Vec<&Digest> {
        let meta = &report.meta;
        let mut seen = BTreeSet::new();
        meta.relied
            .iter()
            .map(|r| &r.digest)
            .chain(
                meta.blobs
                    .iter()
                    .filter(|b| matches!(b.kind, BlobKind::Config | BlobKind::Layer))
                    .map(|b| &b.digest),
            )
            .filter(|d| seen.insert(*d))
            .collect()
    }

    /// The relied-on layers not found so far, by digest or as a stand-in: the host looks for
    /// them elsewhere (another repository of a registry) or by diff_id
    /// ([`DestinationState::stand_ins`]); an empty list means the base is there.
    pub fn missing_relied<'r>(&self, report: &'r Report) -> Vec<&'r ReliedBlob> {
        report
            .meta
            .relied
            .iter()
            .filter(|r| {
                !self.present.contains(&r.digest)
                    && !r
                        .diff_id
                        .as_ref()
                        .is_some_and(|id| self.by_diff_id.contains_key(id))
            })
            .collect()
    }

    /// Of a destination image's `layers` (descriptor and diff_id, base first), those that can
    /// stand in for a missing relied-on layer: the same content (diff_id) stored under another
    /// digest (compressed differently). The host checks each is really there, then records it
    /// with [`DestinationState::stand_in`]; the planner then rewrites the manifests to point
    /// at it.
    pub fn stand_ins<'l>(
        &self,
        report: &Report,
        layers: &'l [(Descriptor, Digest)],
    ) -> Vec<&'l (Descriptor, Digest)> {
        let wanted: BTreeSet<&Digest> = self
            .missing_relied(report)
            .into_iter()
            .filter_map(|r| r.diff_id.as_ref())
            .collect();
        layers
            .iter()
            .filter(|(_, id)| wanted.contains(id))
            .collect()
    }

    /// Records a layer the destination holds with this diff_id (see [`DestinationState::stand_ins`]).
    pub fn stand_in(&mut self, layer: &Descriptor, diff_id: &Digest) {
        self.present.insert(layer.digest.clone());
        self.by_diff_id.insert(
            diff_id.clone(),
            Descriptor::new(layer.media_type.clone(), layer.digest.clone(), layer.size),
        );
    }
}

/// Why a load cannot proceed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// Relied-on layers are at the destination neither by digest nor by diff_id.
    #[error("the destination lacks {} layer(s) of the base {} ({} bytes): {}", missing.len(), base_names(base), missing.iter().map(|m| m.size).sum::<u64>(), missing_list(missing))]
    MissingBase {
        base: Vec<String>,
        missing: Vec<ReliedBlob>,
    },
    /// A manifest in the report could not be parsed or rewritten.
    #[error("manifest {digest}: {problem}")]
    Manifest { digest: Digest, problem: String },
    /// The target's tag at the destination names the base the bundle relies on: moving it
    /// would leave the base unnamed (and its layers open to garbage collection).
    #[error("{name} names the base this bundle relies on ({why}); a bundle never moves the tag of its own base: load the target under another name")]
    ReliedTag { name: String, why: &'static str },
}

/// What a destination tag names before a load writes it: the manifest digest (registries,
/// layouts) or image ID (the Docker engine), and the image's layer diff_ids when the host
/// read them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagHolder {
    /// Manifest digest, or image ID for the engine.
    pub digest: Digest,
    /// The image's layer diff_ids, base first, if known.
    pub diff_ids: Option<Vec<Digest>>,
}

/// A tag a load moved from one image to another (reported, never silent).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct TagMove {
    /// The tag, as the destination names it.
    pub name: String,
    /// What it named before.
    pub from: Digest,
    /// What it names now.
    pub to: Digest,
}

/// The key two image names are compared by, whatever registry or transport they were written
/// with: the repository path without registry host (and without Docker Hub's `library/`),
/// and the tag.
fn name_key(r: &crate::Reference) -> (String, String) {
    let repo = r.repository();
    let repo = repo.strip_prefix("library/").unwrap_or(repo);
    (repo.to_string(), r.tag_or_latest().to_string())
}

/// Checks the tag a target is about to be written under (`name`, as the destination names
/// it; `dest` its repository and tag when it has them) against what it names now (`holder`),
/// and returns the move to report, if it moves. Refuses a tag that names the bundle's base:
/// the same repository and tag as one of `base.references` (whatever registry or transport),
/// or an image whose manifest is one of `base.manifests`, or whose layers are exactly
/// `base.diffIds`. Moving any other tag is allowed, as `docker load` and `skopeo copy` do
/// (re-delivering `app:latest` is the common case), and reported.
pub fn check_tag(
    meta: &crate::bundle::BundleMeta,
    name: &str,
    dest: Option<&crate::Reference>,
    holder: Option<&TagHolder>,
    new: &Digest,
) -> Result<Option<TagMove>, LoadError> {
    let refused = |why| LoadError::ReliedTag {
        name: crate::digest::truncate_for_error(name),
        why,
    };
    if let (Some(base), Some(dest)) = (&meta.base, dest) {
        let key = name_key(dest);
        let same = base
            .references
            .iter()
            .filter_map(|r| crate::ImageRef::parse(r).ok())
            .filter_map(|ir| ir.reference().map(name_key))
            .any(|k| k == key);
        if same {
            return Err(refused("the same repository and tag as the base"));
        }
    }
    let Some(h) = holder else { return Ok(None) };
    if &h.digest == new {
        return Ok(None);
    }
    if let Some(base) = &meta.base {
        if base.manifests.contains(&h.digest) {
            return Err(refused("it points at the base's manifest"));
        }
        if !base.diff_ids.is_empty() && h.diff_ids.as_ref() == Some(&base.diff_ids) {
            return Err(refused(
                "it points at an image with exactly the base's layers",
            ));
        }
    }
    Ok(Some(TagMove {
        name: name.to_string(),
        from: h.digest.clone(),
        to: new.clone(),
    }))
}

/// Every missing blob, so the user can see what the site lost (a registry's garbage
/// collection, a deleted image); the CLI's line is capped as a whole.
fn missing_list(missing: &[ReliedBlob]) -> String {
    missing
        .iter()
        .map(|m| m.digest.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn base_names(base: &[String]) -> String {
    if base.is_empty() {
        "(unnamed)".into()
    } else {
        base.join(", ")
    }
}

/// A manifest to PUT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestPut {
    /// Exact bytes to send.
    pub bytes: Vec<u8>,
    /// Content-Type.
    pub media_type: MediaType,
    /// Digest of `bytes`.
    pub digest: Digest,
    /// Digest in the bundle (differs from `digest` when rewritten).
    pub original: Digest,
    /// `Some(target index)` for a target's top manifest, to be put by tag.
    pub target: Option<usize>,
}

/// What the host must do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadPlan {
    /// Indexes into `report.meta.blobs` of configs and layers to upload (not yet present).
    pub uploads: Vec<usize>,
    /// Carried blobs already present (skipped).
    pub already_present: Vec<usize>,
    /// Relied-on layers replaced by the destination's own blob with the same diff_id.
    pub substitutions: Vec<(Digest, Descriptor)>,
    /// Manifests in a safe order: image manifests, then indexes, each target's top last of
    /// its own; tags are applied only by the puts with `target: Some(_)`.
    pub manifests: Vec<ManifestPut>,
}

impl LoadPlan {
    /// The final digest of each target's top manifest (changed when substituted).
    pub fn target_digest(&self, target: usize) -> Option<&Digest> {
        self.manifests
            .iter()
            .find(|m| m.target == Some(target))
            .map(|m| &m.digest)
    }
}

/// Plans a load. Fails, before anything is uploaded, when the base is missing.
pub fn plan_load(report: &Report, dest: &DestinationState) -> Result<LoadPlan, LoadError> {
    let meta = &report.meta;
    let mut substitutions = Vec::new();
    let mut missing = Vec::new();
    for r in &meta.relied {
        if dest.present.contains(&r.digest) {
            continue;
        }
        match r.diff_id.as_ref().and_then(|d| dest.by_diff_id.get(d)) {
            Some(desc) if dest.present.contains(&desc.digest) => {
                substitutions.push((r.digest.clone(), desc.clone()))
            }
            _ => missing.push(r.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(LoadError::MissingBase {
            base: meta
                .base
                .as_ref()
                .map(|b| b.references.clone())
                .unwrap_or_default(),
            missing,
        });
    }
    let mut uploads = Vec::new();
    let mut already_present = Vec::new();
    for (i, b) in meta.blobs.iter().enumerate() {
        if matches!(b.kind, BlobKind::Config | BlobKind::Layer) {
            if dest.present.contains(&b.digest) {
                already_present.push(i);
            } else {
                uploads.push(i);
            }
        }
    }
    // Rewrite image manifests (if substituting), then indexes pointing at rewritten children.
    let subst: BTreeMap<&Digest, &Descriptor> = substitutions.iter().map(|(a, b)| (a, b)).collect();
    let mut renamed: BTreeMap<Digest, (Digest, u64)> = BTreeMap::new();
    let mut images = Vec::new();
    let mut indexes = Vec::new();
    let bytes_of = |d: &Digest| {
        report.json_blobs.get(d).ok_or_else(|| LoadError::Manifest {
            digest: d.clone(),
            problem: "missing from the report".into(),
        })
    };
    for b in &meta.blobs {
        match b.kind {
            BlobKind::Manifest => {
                let bytes = bytes_of(&b.digest)?;
                let out = if subst.is_empty() {
                    bytes.clone()
                } else {
                    rewrite(
                        bytes,
                        "layers",
                        |d| subst.get(&d.digest).map(|n| (*n).clone()),
                        &b.digest,
                    )?
                };
                let digest = Digest::of(b.digest.algorithm(), &out);
                if digest != b.digest {
                    renamed.insert(b.digest.clone(), (digest.clone(), out.len() as u64));
                }
                images.push(ManifestPut {
                    bytes: out,
                    media_type: b.media_type.clone(),
                    digest,
                    original: b.digest.clone(),
                    target: None,
                });
            }
            BlobKind::Index => indexes.push(b),
            _ => {}
        }
    }
    let mut index_puts = Vec::new();
    for b in indexes {
        let bytes = bytes_of(&b.digest)?;
        let out = if renamed.is_empty() {
            bytes.clone()
        } else {
            rewrite(
                bytes,
                "manifests",
                |d| {
                    renamed.get(&d.digest).map(|(nd, size)| {
                        let mut n = d.clone();
                        n.digest = nd.clone();
                        n.size = *size;
                        n
                    })
                },
                &b.digest,
            )?
        };
        let digest = Digest::of(b.digest.algorithm(), &out);
        index_puts.push(ManifestPut {
            bytes: out,
            media_type: b.media_type.clone(),
            digest,
            original: b.digest.clone(),
            target: None,
        });
    }
    let mut manifests = images;
    manifests.extend(index_puts);
    // Mark each target's top manifest; move it after everything else of that target.
    for (ti, t) in meta.targets.iter().enumerate() {
        let pos = manifests
            .iter()
            .position(|m| m.original == t.digest)
            .ok_or_else(|| LoadError::Manifest {
                digest: t.digest.clone(),
                problem: "target manifest not found".into(),
            })?;
        let mut m = manifests.remove(pos);
        m.target = Some(ti);
        manifests.push(m);
    }
    Ok(LoadPlan {
        uploads,
        already_present,
        substitutions,
        manifests,
    })
}

/// Rewrites descriptors in the array `field` of a manifest, keeping every other byte of
/// meaning (unknown fields are preserved; whitespace is not).
fn rewrite(
    bytes: &[u8],
    field: &str,
    mut f: impl FnMut(&Descriptor) -> Option<Descriptor>,
    digest: &Digest,
) -> Result<Vec<u8>, LoadError> {
    let err = |problem: String| LoadError::Manifest {
        digest: digest.clone(),
        problem,
    };
    let mut v: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| err(e.to_string()))?;
    let mut changed = false;
    if let Some(arr) = v.get_mut(field).and_then(|a| a.as_array_mut()) {
        for item in arr {
            let d: Descriptor =
                serde_json::from_value(item.clone()).map_err(|e| err(e.to_string()))?;
            if let Some(n) = f(&d) {
                if let Some(obj) = item.as_object_mut() {
                    obj.insert(
                        "digest".into(),
                        serde_json::Value::String(n.digest.to_string()),
                    );
                    obj.insert("size".into(), serde_json::Value::from(n.size));
                    obj.insert(
                        "mediaType".into(),
                        serde_json::Value::String(n.media_type.to_string()),
                    );
                    changed = true;
                }
            }
        }
    }
    if !changed {
        return Ok(bytes.to_vec());
    }
    serde_json::to_vec_pretty(&v).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tag_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Reference;

    /// Issue 15 item 7: a self-consistent bundle whose target is named like its base replaced
    /// the base's tag. Tags of the base are refused; other moves are reported.
    #[test]
    fn the_base_tag_is_never_moved_and_other_moves_are_reported() {
        let f = crate::bundle::tests::fixture();
        let mut meta = f.plan.meta.clone();
        let base = meta.base.as_mut().unwrap();
        base.references = vec!["docker://online.example:5000/demo/base:1".into()];
        base.manifests = vec![Digest::sha256(b"base manifest")];
        let base_ids = base.diff_ids.clone();
        let new = Digest::sha256(b"target manifest");
        let r = |s: &str| Reference::parse(s).unwrap();
        // The base's name, at another registry.
        let err = check_tag(
            &meta,
            "site:5000/demo/base:1",
            Some(&r("site:5000/demo/base:1")),
            None,
            &new,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("names the base this bundle relies on"),
            "{err}"
        );
        // Another name that points at the base's manifest, or at its exact layers.
        let at_base = TagHolder {
            digest: Digest::sha256(b"base manifest"),
            diff_ids: None,
        };
        assert!(check_tag(&meta, "1", None, Some(&at_base), &new).is_err());
        let same_layers = TagHolder {
            digest: Digest::sha256(b"skopeo's copy"),
            diff_ids: Some(base_ids.clone()),
        };
        assert!(check_tag(&meta, "1", None, Some(&same_layers), &new).is_err());
        // An older app on top of the base: moved, and reported.
        let mut more = base_ids.clone();
        more.push(Digest::sha256(b"app layer"));
        let old_app = TagHolder {
            digest: Digest::sha256(b"app v1"),
            diff_ids: Some(more),
        };
        let m = check_tag(
            &meta,
            "demo/app:2",
            Some(&r("demo/app:2")),
            Some(&old_app),
            &new,
        )
        .unwrap()
        .unwrap();
        assert_eq!((m.from, m.to), (Digest::sha256(b"app v1"), new.clone()));
        // A new tag, or one that already names the target: nothing to report.
        assert_eq!(
            check_tag(&meta, "demo/app:2", Some(&r("demo/app:2")), None, &new),
            Ok(None)
        );
        let same = TagHolder {
            digest: new.clone(),
            diff_ids: None,
        };
        assert_eq!(
            check_tag(&meta, "demo/app:2", None, Some(&same), &new),
            Ok(None)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::{Decoder, Event};
    use crate::RawManifest;

    fn report() -> Report {
        let f = crate::bundle::tests::fixture();
        let bytes = crate::bundle::tests::encode(&f);
        let mut d = Decoder::new();
        let mut p = &bytes[..];
        loop {
            let (n, ev) = d.decode(p).unwrap();
            p = &p[n..];
            if let Some(Event::End(r)) = ev {
                return *r;
            }
            assert!(ev.is_some() || !p.is_empty() || n > 0, "decoder stalled");
        }
    }

    #[test]
    fn missing_base_is_refused_before_anything() {
        let r = report();
        let err = plan_load(&r, &DestinationState::default()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("lacks 2 layer(s) of the base base:1"), "{msg}");
    }

    #[test]
    fn plain_load_keeps_manifest_bytes_and_tags_last() {
        let r = report();
        let dest = DestinationState {
            present: r.meta.relied.iter().map(|b| b.digest.clone()).collect(),
            by_diff_id: BTreeMap::new(),
        };
        let p = plan_load(&r, &dest).unwrap();
        assert_eq!(p.uploads.len(), 3); // config + 2 layers
        assert_eq!(p.manifests.len(), 1);
        assert_eq!(p.manifests[0].target, Some(0));
        assert_eq!(p.manifests[0].digest, r.meta.targets[0].digest);
        assert_eq!(
            p.manifests[0].bytes,
            r.json_blobs[&r.meta.targets[0].digest]
        );
        // Re-run after an interrupted load: what is there is skipped.
        let mut dest2 = dest.clone();
        dest2.present.insert(r.meta.blobs[3].digest.clone());
        let p2 = plan_load(&r, &dest2).unwrap();
        assert_eq!(p2.uploads.len(), 2);
        assert_eq!(p2.already_present, vec![3]);
    }

    #[test]
    fn recompressed_base_is_matched_by_diff_id_and_manifest_rewritten() {
        let r = report();
        let mut dest = DestinationState::default();
        for (i, rb) in r.meta.relied.iter().enumerate() {
            let other = Digest::sha256(format!("recompressed {i}").as_bytes());
            dest.present.insert(other.clone());
            dest.by_diff_id.insert(
                rb.diff_id.clone().unwrap(),
                Descriptor::new(MediaType::OciLayerGzip, other, 42 + i as u64),
            );
        }
        let p = plan_load(&r, &dest).unwrap();
        assert_eq!(p.substitutions.len(), 2);
        let m = RawManifest::parse(p.manifests[0].bytes.clone(), None).unwrap();
        let layers = &m.as_image().unwrap().layers;
        assert_eq!(layers[0].size, 42);
        assert_eq!(layers[0].media_type, MediaType::OciLayerGzip);
        assert_eq!(
            layers[2].digest, r.meta.blobs[2].digest,
            "carried layers unchanged"
        );
        assert_ne!(p.manifests[0].digest, r.meta.targets[0].digest);
        assert_eq!(p.target_digest(0), Some(m.digest()));
    }

    #[test]
    fn the_state_is_built_from_answers_the_host_gives() {
        let r = report();
        // Asked: every relied-on layer, then carried configs and layers, once each.
        let q = DestinationState::questions(&r);
        assert_eq!(q.len(), r.meta.relied.len() + 3);
        assert_eq!(q[0], &r.meta.relied[0].digest);
        assert!(
            !q.contains(&&r.meta.targets[0].digest),
            "manifests are not asked"
        );
        // The destination holds the first relied layer by digest, the second under another
        // digest (recompressed): only the second is missing, and only its layer stands in.
        let mut state = DestinationState::default();
        state.present.insert(r.meta.relied[0].digest.clone());
        let missing = state.missing_relied(&r);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].digest, r.meta.relied[1].digest);
        let theirs = vec![
            (
                Descriptor::new(MediaType::OciLayerGzip, Digest::sha256(b"x0"), 5),
                r.meta.relied[0].diff_id.clone().unwrap(),
            ),
            (
                Descriptor::new(MediaType::OciLayerGzip, Digest::sha256(b"x1"), 6),
                r.meta.relied[1].diff_id.clone().unwrap(),
            ),
            (
                Descriptor::new(MediaType::OciLayerGzip, Digest::sha256(b"x2"), 7),
                Digest::sha256(b"unrelated"),
            ),
        ];
        let stand_ins = state.stand_ins(&r, &theirs);
        assert_eq!(stand_ins.len(), 1);
        assert_eq!(stand_ins[0].0.digest, Digest::sha256(b"x1"));
        state.stand_in(&stand_ins[0].0, &stand_ins[0].1);
        assert!(state.missing_relied(&r).is_empty());
        let p = plan_load(&r, &state).unwrap();
        assert_eq!(p.substitutions.len(), 1);
        assert_eq!(p.substitutions[0].1.size, 6);
    }
}

/// A report narrowed to one target: its manifests, configs and layers, and the relied-on
/// blobs it references. Used to load multi-target bundles into several repositories.
///
/// Builds a [`TargetIndex`] each call (work proportional to the whole bundle); to narrow to
/// many targets, build one index and call [`TargetIndex::restrict`] for each.
pub fn restrict_to_target(report: &Report, target: usize) -> Option<Report> {
    TargetIndex::new(report).restrict(target)
}

/// Where every blob of a report is, built once (one pass over the bundle's blobs), so that
/// narrowing the report to one target costs only that target's own blobs: loading N
/// targets is linear in N and in the bundle's entries, not their product.
pub struct TargetIndex<'r> {
    report: &'r Report,
    carried: BTreeMap<&'r Digest, usize>,
    relied: BTreeMap<&'r Digest, usize>,
    work: core::cell::Cell<u64>,
}

impl<'r> TargetIndex<'r> {
    /// Indexes `report`'s carried and relied-on blobs by digest.
    pub fn new(report: &'r Report) -> Self {
        let meta = &report.meta;
        let carried = meta
            .blobs
            .iter()
            .enumerate()
            .map(|(i, b)| (&b.digest, i))
            .collect();
        let relied = meta
            .relied
            .iter()
            .enumerate()
            .map(|(i, r)| (&r.digest, i))
            .collect();
        let work = (meta.blobs.len() + meta.relied.len()) as u64;
        TargetIndex {
            report,
            carried,
            relied,
            work: core::cell::Cell::new(work),
        }
    }

    /// The report indexed.
    pub fn report(&self) -> &'r Report {
        self.report
    }

    /// The position of a carried blob in `report.meta.blobs` (and `report.offsets`).
    pub fn carried(&self, digest: &Digest) -> Option<usize> {
        self.carried.get(digest).copied()
    }

    /// Blobs and descriptors visited so far (building the index counts one per blob): the
    /// measure of work the tests bound, instead of wall time.
    pub fn work(&self) -> u64 {
        self.work.get()
    }

    fn count(&self, n: usize) {
        self.work.set(self.work.get() + n as u64);
    }

    /// The report narrowed to target `target` (as [`restrict_to_target`]), touching only
    /// that target's manifests, configs, layers and relied-on blobs.
    pub fn restrict(&self, target: usize) -> Option<Report> {
        let report = self.report;
        let meta = &report.meta;
        let t = meta.targets.get(target)?;
        let mut seen: BTreeSet<&Digest> = BTreeSet::new();
        let mut carried: BTreeSet<usize> = BTreeSet::new();
        let mut relied: BTreeSet<usize> = BTreeSet::new();
        let mut stack: Vec<Digest> = vec![t.digest.clone()];
        while let Some(d) = stack.pop() {
            self.count(1);
            if let Some(&i) = self.carried.get(&d) {
                let b = &meta.blobs[i];
                if !seen.insert(&b.digest) {
                    continue;
                }
                carried.insert(i);
                if !matches!(b.kind, BlobKind::Index | BlobKind::Manifest) {
                    continue;
                }
                if let Some(bytes) = report.json_blobs.get(&b.digest) {
                    if let Ok(m) =
                        crate::RawManifest::parse(bytes.clone(), Some(b.media_type.as_str()))
                    {
                        let refs = m.references();
                        self.count(refs.len());
                        stack.extend(refs.into_iter().map(|r| r.digest.clone()));
                    }
                }
            } else if let Some(&i) = self.relied.get(&d) {
                relied.insert(i);
            }
        }
        self.count(carried.len() + relied.len());
        let blobs: Vec<_> = carried.iter().map(|&i| meta.blobs[i].clone()).collect();
        let json_blobs = blobs
            .iter()
            .filter_map(|b| {
                report
                    .json_blobs
                    .get(&b.digest)
                    .map(|v| (b.digest.clone(), v.clone()))
            })
            .collect();
        Some(Report {
            meta: crate::bundle::BundleMeta {
                format: meta.format.clone(),
                version: meta.version,
                tool: meta.tool.clone(),
                created: meta.created.clone(),
                base: meta.base.clone(),
                targets: vec![t.clone()],
                blobs,
                relied: relied.iter().map(|&i| meta.relied[i].clone()).collect(),
                // Artifacts are loaded after every target, from the whole bundle.
                artifacts: Vec::new(),
            },
            json_blobs,
            offsets: carried.iter().map(|&i| report.offsets[i]).collect(),
            archive_bytes: report.archive_bytes,
            metadata_sealed: report.metadata_sealed,
        })
    }
}

#[cfg(test)]
mod restrict_tests {
    use super::*;

    #[test]
    fn restricting_to_the_only_target_is_identity() {
        let f = crate::bundle::tests::fixture();
        let bytes = crate::bundle::tests::encode(&f);
        let mut d = crate::bundle::Decoder::new();
        let mut p = &bytes[..];
        let r = loop {
            let (n, ev) = d.decode(p).unwrap();
            p = &p[n..];
            if let Some(crate::bundle::Event::End(r)) = ev {
                break *r;
            }
        };
        let only = restrict_to_target(&r, 0).unwrap();
        assert_eq!(only, r);
        assert!(restrict_to_target(&r, 1).is_none());
    }
}

#[cfg(test)]
mod scaling_tests {
    use super::*;
    use crate::synth_bundle::{many, ManyOptions};

    fn decode(bytes: &[u8]) -> Report {
        let mut d = crate::bundle::Decoder::new();
        let mut p = bytes;
        loop {
            let (n, ev) = d.decode(p).unwrap();
            p = &p[n..];
            if let Some(crate::bundle::Event::End(r)) = ev {
                return *r;
            }
        }
    }

    /// Narrows every target and plans it; returns the work done.
    fn plan_every_target(targets: usize, distinct_images: bool) -> (u64, Report) {
        let s = many(ManyOptions {
            targets,
            layers: 2,
            layers_per_target: 2,
            distinct_images,
            layer_bytes: 4,
            tar_layers: false,
        });
        let r = decode(&s.encode());
        let idx = TargetIndex::new(&r);
        for t in 0..targets {
            let one = idx.restrict(t).unwrap();
            assert_eq!(one.meta.targets[0].reference, format!("synth/app:{t}"));
            // Its manifest, its config and the two shared layers; nothing else.
            assert_eq!(one.meta.blobs.len(), 4, "target {t}");
            assert_eq!(one.offsets.len(), 4);
            for (b, off) in one.meta.blobs.iter().zip(&one.offsets) {
                let full = idx.carried(&b.digest).unwrap();
                assert_eq!(r.offsets[full], *off);
            }
            let p = plan_load(&one, &DestinationState::default()).unwrap();
            assert_eq!(p.uploads.len(), 3);
            assert_eq!(p.manifests.len(), 1);
        }
        (idx.work(), r)
    }

    /// Issue 15: narrowing a bundle to each of its N targets cloned the whole report per
    /// target (N × bundle). With one index, the work per target is a constant.
    #[test]
    fn narrowing_to_every_target_is_linear_in_targets() {
        let (w100, r100) = plan_every_target(100, true);
        let (w1000, r1000) = plan_every_target(1000, true);
        assert_eq!(r100.meta.blobs.len(), 2 + 2 * 100);
        assert_eq!(r1000.meta.blobs.len(), 2 + 2 * 1000);
        // Per target: the index entries of its 2 own blobs, 4 visits, 3 references, 4 kept.
        assert!(w1000 <= 20 * 1000, "work {w1000} for 1000 targets");
        assert!(
            w1000 <= 11 * w100,
            "work {w100} for 100 targets, {w1000} for 1000"
        );
        // Shared images (every target the same manifest): still constant per target.
        let (shared, r) = plan_every_target(1000, false);
        assert_eq!(r.meta.blobs.len(), 4);
        assert!(shared <= 20 * 1000, "work {shared}");
    }

    #[test]
    fn the_index_narrows_as_the_old_code_did() {
        let f = crate::bundle::tests::fixture();
        let r = decode(&crate::bundle::tests::encode(&f));
        let only = TargetIndex::new(&r).restrict(0).unwrap();
        assert_eq!(only, r);
    }
}
