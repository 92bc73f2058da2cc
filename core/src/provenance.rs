//! Image provenance carried with the targets (issue 14; docs/provenance.md, bundle format
//! section 10.2): cosign's tag-scheme artifacts (`sha256-<hex>.sig`, `.att`, `.sbom` in the
//! target's repository) and OCI 1.1 referrers (manifests whose `subject` is a target).
//!
//! The bundle lists each in `ddiff.json`'s `artifacts`; its manifest and blobs are carried like
//! any other. Nothing here trusts a name the bundle gives: a cosign tag is derived from the
//! subject digest and the kind ([`cosign_tag`]), never read from the bundle, so a crafted
//! bundle cannot use an artifact to move another tag.
//!
//! Also here: cosign's key-based image signatures, checked offline
//! ([`verify_simple_signing`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::bundle::meta::{BlobInfo, BlobKind, BundleMeta};
use crate::bundle::BundleError;
use crate::signature::{PublicKey, SignatureError};
use crate::{Digest, MediaType};

/// The media type of cosign's signed payload layer.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The annotation of a cosign signature layer holding the base64 signature.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// The annotation of a keyless signature's certificate.
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";

/// What an artifact is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArtifactKind {
    /// cosign signatures (`sha256-<hex>.sig`).
    Signature,
    /// cosign attestations (`sha256-<hex>.att`).
    Attestation,
    /// cosign attached SBOMs (`sha256-<hex>.sbom`).
    Sbom,
    /// An OCI 1.1 referrer (a manifest whose `subject` is the target).
    Referrer,
}

impl ArtifactKind {
    /// The cosign tag suffix (`sig`, `att`, `sbom`); none for referrers.
    pub fn cosign_suffix(self) -> Option<&'static str> {
        match self {
            ArtifactKind::Signature => Some("sig"),
            ArtifactKind::Attestation => Some("att"),
            ArtifactKind::Sbom => Some("sbom"),
            ArtifactKind::Referrer => None,
        }
    }

    /// The three cosign tag-scheme kinds.
    pub const COSIGN: [ArtifactKind; 3] = [
        ArtifactKind::Signature,
        ArtifactKind::Attestation,
        ArtifactKind::Sbom,
    ];
}

/// cosign's tag for an artifact of `subject`: `sha256-<hex>.sig` (`.att`, `.sbom`); `None`
/// for referrers, which are found by the referrers API or [`referrers_fallback_tag`].
pub fn cosign_tag(subject: &Digest, kind: ArtifactKind) -> Option<String> {
    kind.cosign_suffix()
        .map(|s| format!("{}-{}.{s}", subject.algorithm().name(), subject.hex()))
}

/// The distribution spec's referrers tag schema: `sha256-<hex>`, an index of the referrers
/// of `subject`, for registries without the referrers API.
pub fn referrers_fallback_tag(subject: &Digest) -> String {
    format!("{}-{}", subject.algorithm().name(), subject.hex())
}

/// One artifact carried by a bundle (`ddiff.json` `artifacts`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// The target manifest (top or per-platform) the artifact is about.
    pub subject: Digest,
    /// What it is.
    pub kind: ArtifactKind,
    /// The artifact's manifest: a carried blob.
    pub digest: Digest,
    /// Its media type.
    pub media_type: MediaType,
    /// Its size.
    pub size: u64,
}

impl Artifact {
    /// The tag it has at the source and gets at the destination (cosign kinds).
    pub fn tag(&self) -> Option<String> {
        cosign_tag(&self.subject, self.kind)
    }
}

/// Adds artifacts to a planned bundle: their blobs (manifests, configs and layers, each once,
/// skipping what the bundle already carries) in the order section 2 requires (every JSON blob
/// before the first layer), the `artifacts` entries, and the version they need. Fails if the
/// result is inconsistent (an artifact of something that is not a target, say).
pub fn attach(
    meta: &mut BundleMeta,
    blobs: Vec<BlobInfo>,
    artifacts: Vec<Artifact>,
) -> Result<(), BundleError> {
    let mut have: std::collections::BTreeSet<Digest> =
        meta.blobs.iter().map(|b| b.digest.clone()).collect();
    let relied: std::collections::BTreeSet<&Digest> =
        meta.relied.iter().map(|r| &r.digest).collect();
    let fresh: Vec<BlobInfo> = blobs
        .into_iter()
        .filter(|b| !relied.contains(&b.digest) && have.insert(b.digest.clone()))
        .collect();
    let (json, layers): (Vec<BlobInfo>, Vec<BlobInfo>) =
        fresh.into_iter().partition(|b| b.kind.is_json());
    let first_layer = meta
        .blobs
        .iter()
        .position(|b| !b.kind.is_json())
        .unwrap_or(meta.blobs.len());
    meta.blobs.splice(first_layer..first_layer, json);
    meta.blobs.extend(layers);
    for a in artifacts {
        if !meta.artifacts.contains(&a) {
            meta.artifacts.push(a);
        }
    }
    meta.version = meta.version.max(meta.needed_version());
    meta.validate()
}

/// The blobs of an artifact manifest, as a bundle carries them: the manifest, its config and
/// its layers (its `subject` is the target, carried already). `None` for an index artifact,
/// whose children ddiff does not follow.
pub fn artifact_blobs(manifest: &crate::RawManifest) -> Option<Vec<BlobInfo>> {
    let img = manifest.as_image()?;
    let info = |d: &crate::Descriptor, kind| BlobInfo {
        digest: d.digest.clone(),
        size: d.size,
        media_type: d.media_type.clone(),
        kind,
        patch: None,
    };
    let mut out = vec![BlobInfo {
        digest: manifest.digest().clone(),
        size: manifest.bytes().len() as u64,
        media_type: manifest.media_type().clone(),
        kind: BlobKind::Manifest,
        patch: None,
    }];
    out.push(info(&img.config, BlobKind::Config));
    out.extend(img.layers.iter().map(|l| info(l, BlobKind::Layer)));
    Some(out)
}

/// The referrers an OCI index lists (the referrers API's answer, or the fallback tag's
/// index): its `manifests`. Empty for bytes that are not an index.
pub fn referrers_of(index: &[u8]) -> Vec<crate::Descriptor> {
    crate::RawManifest::parse(index.to_vec(), None)
        .ok()
        .and_then(|m| m.as_index().map(|i| i.manifests.clone()))
        .unwrap_or_default()
}

/// The fallback tag's index after adding `referrer` (kept once, by digest), for registries
/// without the referrers API: the distribution spec's "referrers tag schema". `existing` is
/// the index the tag names now, if any. The descriptor keeps the referrer's `artifactType` and
/// annotations, as the spec asks.
pub fn fallback_index_with(existing: Option<&[u8]>, referrer: &crate::RawManifest) -> Vec<u8> {
    let mut list = existing.map(referrers_of).unwrap_or_default();
    if !list.iter().any(|d| &d.digest == referrer.digest()) {
        let mut d = crate::Descriptor::new(
            referrer.media_type().clone(),
            referrer.digest().clone(),
            referrer.bytes().len() as u64,
        );
        if let Some(img) = referrer.as_image() {
            d.artifact_type = img
                .artifact_type
                .clone()
                .or_else(|| Some(img.config.media_type.as_str().to_string()));
            d.annotations = img.annotations.clone();
        }
        list.push(d);
    }
    let v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciIndex.as_str(),
        "manifests": list,
    });
    // Plain descriptors of strings and integers always serialise.
    serde_json::to_vec(&v).unwrap_or_default()
}

/// An artifact as `inspect` and the page show it. Strings from the bundle are made safe to
/// show ([`crate::display::safe_text`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactView {
    /// The target manifest it is about.
    pub subject: Digest,
    /// What it is.
    pub kind: ArtifactKind,
    /// Its manifest.
    pub digest: Digest,
    /// The cosign tag it gets at a destination.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The manifest's `artifactType` (referrers), else its config's media type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Attestations: the `predicateType` annotation of each layer (SPDX, CycloneDX, SLSA).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predicate_types: Vec<String>,
    /// Signatures: keyless (a certificate is attached) rather than key-based.
    pub keyless: bool,
}

impl ArtifactView {
    /// What it is, as `ddiff inspect` and the page say it: `signature`, `attestation`,
    /// `sbom`, `referrer`, or for a keyless signature that it is not verified offline.
    pub fn kind_text(&self) -> String {
        match self.kind {
            ArtifactKind::Signature if self.keyless => {
                "signature (keyless: carried, not verified offline)".to_string()
            }
            k => format!("{k:?}").to_lowercase(),
        }
    }

    /// Its type as shown: the first predicate type (attestations), else the artifact type.
    pub fn type_text(&self) -> Option<&str> {
        self.predicate_types
            .first()
            .or(self.artifact_type.as_ref())
            .map(String::as_str)
    }
}

/// The artifacts of a bundle as [`ArtifactView`]s, in `ddiff.json` order.
pub fn views(meta: &BundleMeta, json_blobs: &BTreeMap<Digest, Vec<u8>>) -> Vec<ArtifactView> {
    let safe = |s: &str| crate::display::safe_text(s);
    meta.artifacts
        .iter()
        .map(|a| {
            let m = json_blobs.get(&a.digest).and_then(|b| {
                crate::RawManifest::parse(b.clone(), Some(a.media_type.as_str())).ok()
            });
            let img = m.as_ref().and_then(|m| m.as_image());
            let ann = |k: &str| -> Vec<String> {
                img.map(|i| {
                    i.layers
                        .iter()
                        .filter_map(|l| l.annotations.as_ref()?.get(k).map(|v| safe(v)))
                        .collect()
                })
                .unwrap_or_default()
            };
            ArtifactView {
                subject: a.subject.clone(),
                kind: a.kind,
                digest: a.digest.clone(),
                tag: a.tag(),
                artifact_type: img.map(|i| {
                    safe(
                        i.artifact_type
                            .as_deref()
                            .unwrap_or(i.config.media_type.as_str()),
                    )
                }),
                predicate_types: ann("predicateType"),
                keyless: !ann(CERTIFICATE_ANNOTATION).is_empty(),
            }
        })
        .collect()
}

/// How a bundle's artifacts appear in an OCI layout's `index.json` after a load: cosign kinds
/// as entries named `REPOSITORY:sha256-<hex>.sig` (`.att`, `.sbom`), as `skopeo copy` of the
/// tag would write them; referrers as entries without a name (found by their `subject`, as the
/// image-layout spec's referrers are). Returns (named entries, referrer descriptors).
pub fn layout_entries(
    meta: &BundleMeta,
) -> Result<(Vec<crate::oci_layout::NewEntry>, Vec<crate::Descriptor>), BundleError> {
    let mut named = Vec::new();
    let mut referrers = Vec::new();
    for a in &meta.artifacts {
        let d = crate::Descriptor::new(a.media_type.clone(), a.digest.clone(), a.size);
        let Some(tag) = a.tag() else {
            referrers.push(d);
            continue;
        };
        for t in meta
            .targets
            .iter()
            .filter(|t| t.digest == a.subject || t.images.iter().any(|i| i.manifest == a.subject))
        {
            let r = t.parsed_reference()?;
            named.push(crate::oci_layout::NewEntry {
                descriptor: d.clone(),
                name: format!("{}:{tag}", r.repository()),
                tag: tag.clone(),
            });
        }
    }
    Ok((named, referrers))
}

/// Checks `meta.artifacts` against the carried blobs and targets (section 10.2's rules).
pub(crate) fn validate(
    meta: &BundleMeta,
    carried: &BTreeMap<&Digest, &BlobInfo>,
) -> Result<(), BundleError> {
    let bad = |digest: &Digest, problem: &'static str| BundleError::MetadataInconsistent {
        digest: Some(digest.clone()),
        problem,
    };
    let subjects: Vec<&Digest> = meta
        .targets
        .iter()
        .flat_map(|t| std::iter::once(&t.digest).chain(t.images.iter().map(|i| &i.manifest)))
        .collect();
    let mut seen = std::collections::BTreeSet::new();
    for a in &meta.artifacts {
        if !subjects.contains(&&a.subject) {
            return Err(bad(&a.subject, "artifact subject is not a target manifest"));
        }
        match carried.get(&a.digest) {
            Some(b)
                if matches!(b.kind, BlobKind::Manifest | BlobKind::Index)
                    && b.size == a.size
                    && b.media_type == a.media_type => {}
            _ => {
                return Err(bad(
                    &a.digest,
                    "artifact manifest is not a carried manifest",
                ))
            }
        }
        if subjects.contains(&&a.digest) {
            return Err(bad(&a.digest, "artifact is a target manifest"));
        }
        // One cosign tag names one manifest.
        let key = (
            a.subject.clone(),
            a.kind,
            a.tag().is_none().then(|| a.digest.clone()),
        );
        if !seen.insert(key) {
            return Err(bad(&a.digest, "artifact listed twice"));
        }
    }
    Ok(())
}

/// The decoder's check of one carried manifest against `artifacts`: a referrer's manifest
/// must name its artifact's subject in `subject` (so the bundle cannot attach someone else's
/// referrer to a target).
pub(crate) fn check_artifact_manifest(
    meta: &BundleMeta,
    digest: &Digest,
    manifest: &crate::RawManifest,
) -> Result<(), BundleError> {
    for a in meta.artifacts.iter().filter(|a| &a.digest == digest) {
        if a.kind == ArtifactKind::Referrer {
            let subject = match manifest.manifest() {
                crate::Manifest::Image(i) => i.subject.as_ref(),
                crate::Manifest::Index(i) => i.subject.as_ref(),
            };
            if subject.map(|s| &s.digest) != Some(&a.subject) {
                return Err(BundleError::MetadataInconsistent {
                    digest: Some(digest.clone()),
                    problem: "referrer's subject is not the artifact's subject",
                });
            }
        }
    }
    Ok(())
}

/// What [`verify_simple_signing`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureVerdict {
    /// A layer's signature verified with the key, over a payload naming the target digest.
    Valid,
    /// No layer verified; the reasons, one per signature layer.
    Invalid(Vec<String>),
}

/// Checks a cosign signature manifest (the `.sig` tag's image manifest, exact bytes) against
/// `key`: some layer of type [`SIMPLE_SIGNING_MEDIA_TYPE`] whose [`SIGNATURE_ANNOTATION`] is
/// `key`'s signature over that layer's bytes (`payload(digest)` returns them, already verified
/// against the digest), and whose payload's `critical.image.docker-manifest-digest` equals
/// `target`. Keyless layers (a certificate, no key match) are reported as such, not trusted.
pub fn verify_simple_signing(
    manifest: &crate::ImageManifest,
    target: &Digest,
    key: &PublicKey,
    payload: &mut dyn FnMut(&Digest) -> Option<Vec<u8>>,
) -> SignatureVerdict {
    #[derive(Deserialize)]
    struct Payload {
        critical: Critical,
    }
    #[derive(Deserialize)]
    struct Critical {
        image: Image,
    }
    #[derive(Deserialize)]
    struct Image {
        #[serde(rename = "docker-manifest-digest")]
        digest: String,
    }
    let mut reasons = Vec::new();
    for layer in &manifest.layers {
        if layer.media_type.as_str() != SIMPLE_SIGNING_MEDIA_TYPE {
            continue;
        }
        let ann = layer.annotations.as_ref();
        let Some(sig) = ann.and_then(|a| a.get(SIGNATURE_ANNOTATION)) else {
            reasons.push(format!(
                "layer {} has no signature annotation",
                layer.digest
            ));
            continue;
        };
        let keyless = ann.is_some_and(|a| a.contains_key(CERTIFICATE_ANNOTATION));
        let Some(bytes) = payload(&layer.digest) else {
            reasons.push(format!("payload {} is not in the bundle", layer.digest));
            continue;
        };
        match key.verify_text(&bytes, sig.as_bytes()) {
            Ok(()) => {}
            Err(e) => {
                let e: SignatureError = e;
                reasons.push(if keyless {
                    format!(
                        "layer {}: a keyless (certificate) signature, not verified: {e}",
                        layer.digest
                    )
                } else {
                    format!("layer {}: {e}", layer.digest)
                });
                continue;
            }
        }
        match serde_json::from_slice::<Payload>(&bytes) {
            Ok(p) if p.critical.image.digest == target.to_string() => {
                return SignatureVerdict::Valid
            }
            Ok(p) => reasons.push(format!(
                "layer {}: signed payload names {}, not {target}",
                layer.digest,
                crate::digest::truncate_for_error(&p.critical.image.digest)
            )),
            Err(e) => reasons.push(format!(
                "layer {}: payload is not simple signing: {e}",
                layer.digest
            )),
        }
    }
    if reasons.is_empty() {
        reasons.push("no simple-signing layer".into());
    }
    SignatureVerdict::Invalid(reasons)
}

/// Whether target `index` of `meta` carries a cosign signature by `key`: some `signature`
/// artifact of its top manifest or of one of its image manifests verifies
/// ([`verify_simple_signing`]) with the payload naming that manifest. `json(d)` gives a
/// carried manifest's exact bytes, `payload(d)` a carried payload layer's. `Err` says why not,
/// in one line (no signature carried, or each signature's reason).
pub fn check_target_signature(
    meta: &BundleMeta,
    index: usize,
    key: &PublicKey,
    json: &dyn Fn(&Digest) -> Option<Vec<u8>>,
    payload: &mut dyn FnMut(&Digest) -> Option<Vec<u8>>,
) -> Result<(), String> {
    let t = meta.targets.get(index).ok_or("no such target")?;
    let subjects: Vec<&Digest> = std::iter::once(&t.digest)
        .chain(t.images.iter().map(|i| &i.manifest))
        .collect();
    let mut reasons = Vec::new();
    for a in meta
        .artifacts
        .iter()
        .filter(|a| a.kind == ArtifactKind::Signature && subjects.contains(&&a.subject))
    {
        let Some(bytes) = json(&a.digest) else {
            reasons.push(format!("signature manifest {} not in the bundle", a.digest));
            continue;
        };
        let m = match crate::RawManifest::parse(bytes, Some(a.media_type.as_str())) {
            Ok(m) => m,
            Err(e) => {
                reasons.push(format!("signature manifest {}: {e}", a.digest));
                continue;
            }
        };
        let Some(img) = m.as_image() else {
            reasons.push(format!("signature manifest {} is an index", a.digest));
            continue;
        };
        match verify_simple_signing(img, &a.subject, key, payload) {
            SignatureVerdict::Valid => return Ok(()),
            SignatureVerdict::Invalid(r) => reasons.extend(r),
        }
    }
    if reasons.is_empty() {
        return Err("no cosign signature is carried for it".into());
    }
    Err(reasons.join("; "))
}

/// What `--key` checks for one bundle (docs/provenance.md, "Checking").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyChecks {
    /// `BUNDLE.sig` must be the key's signature over `ddiff.json`.
    pub bundle_signature: bool,
    /// Every target must carry a cosign signature by the key ([`check_target_signature`]).
    pub image_signatures: bool,
}

/// Decides what `verify --key` and `load --key` check: the bundle signature when `BUNDLE.sig`
/// is there (`sig_present`); the targets' cosign signatures when asked
/// (`--require-signature`) or when there is no `BUNDLE.sig` but the bundle carries cosign
/// signatures (an image signed by its maker, moved by ddiff, is checked with the maker's
/// key). With neither, the bundle signature is required, so the check fails as unsigned:
/// a key is never given for nothing to be checked.
pub fn key_checks(meta: &BundleMeta, sig_present: bool, require_signature: bool) -> KeyChecks {
    let carries = meta
        .artifacts
        .iter()
        .any(|a| a.kind == ArtifactKind::Signature);
    let images = require_signature || (!sig_present && carries);
    KeyChecks {
        bundle_signature: sig_present || !images,
        image_signatures: images,
    }
}

#[cfg(test)]
mod tests;
