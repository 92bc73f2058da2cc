#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::diff::{plan, TargetImageInput, TargetInput};
use crate::synth::{config_json, layer_tar, manifest, plain_layer, SynthLayer};

fn layer(name: &str) -> SynthLayer {
    plain_layer(&layer_tar(&[(name, name.as_bytes())], 0), name)
}

struct Img {
    manifest: RawManifest,
    config: ImageConfig,
}

fn image(layers: &[&SynthLayer]) -> Img {
    let owned: Vec<SynthLayer> = layers.iter().map(|l| (*l).clone()).collect();
    let cfg = config_json(&owned, "linux", "amd64", "2024-01-01T00:00:00Z");
    Img {
        manifest: manifest(&MediaType::OciManifest, &cfg, &owned),
        config: ImageConfig::parse(&cfg).unwrap(),
    }
}

fn registry(images: &[(&Img, &str, &str)]) -> Inventory {
    let mut b = InventoryBuilder::new(SourceKind::Registry, "docker://site:5000");
    for (img, repo, tag) in images {
        b.manifest(&img.manifest, Some(&format!("{repo}:{tag}")));
        b.image(&img.manifest, Some(&img.config), Some(repo));
    }
    b.finish()
}

fn target(img: &Img, reference: &str) -> TargetInput {
    TargetInput {
        reference: reference.into(),
        top: img.manifest.clone(),
        images: vec![TargetImageInput {
            manifest: img.manifest.clone(),
            config: Some(img.config.clone()),
        }],
    }
}

#[test]
fn bytes_are_canonical_and_round_trip() {
    let (a, b) = (layer("a"), layer("b"));
    let one = image(&[&a, &b]);
    let two = image(&[&a]);
    // Order of reading does not matter: the same content gives the same bytes.
    let x = registry(&[
        (&one, "app", "1"),
        (&two, "base", "1"),
        (&one, "app", "latest"),
    ]);
    let y = registry(&[
        (&one, "app", "latest"),
        (&two, "base", "1"),
        (&one, "app", "1"),
    ]);
    assert_eq!(x.to_bytes(), y.to_bytes());
    let bytes = x.to_bytes();
    assert!(!bytes.contains(&b'\n') && !bytes.contains(&b' '));
    let back = Inventory::parse(&bytes).unwrap();
    assert_eq!(back, x);
    assert_eq!(back.to_bytes(), bytes);
    // Keys sorted at the top level.
    let s = String::from_utf8(bytes.clone()).unwrap();
    let keys = [
        "{\"blobs\"",
        "],\"digest\"",
        "\"format\"",
        "\"kind\"",
        "\"manifests\"",
        "\"source\"",
        "\"version\"",
    ];
    let pos: Vec<usize> = keys.iter().map(|k| s.find(k).unwrap()).collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "{s}");
    // a and b's layers, config blobs of both; `a` held by both repositories.
    let la = x
        .blobs
        .iter()
        .find(|bl| bl.digest == a.descriptor.digest)
        .unwrap();
    assert_eq!(la.repositories, ["app", "base"]);
    assert_eq!(la.diff_id.as_ref(), Some(&a.diff_id));
    assert_eq!(x.blobs.len(), 4);
    let m = x
        .manifests
        .iter()
        .find(|m| m.digest == *one.manifest.digest())
        .unwrap();
    assert_eq!(m.references, ["app:1", "app:latest"]);
    let s = x.summary();
    assert_eq!((s.manifests, s.references, s.blobs, s.layers), (2, 3, 4, 2));
}

#[test]
fn every_changed_byte_is_refused() {
    let one = image(&[&layer("a"), &layer("b")]);
    let bytes = registry(&[(&one, "app", "1")]).to_bytes();
    for i in 0..bytes.len() {
        for flip in [0x01u8, 0x20] {
            let mut bad = bytes.clone();
            bad[i] ^= flip;
            assert!(
                Inventory::parse(&bad).is_err(),
                "byte {i} ^ {flip:#x} accepted"
            );
        }
    }
    // Cut anywhere, or a byte added.
    for n in 0..bytes.len() {
        assert!(
            Inventory::parse(&bytes[..n]).is_err(),
            "cut at {n} accepted"
        );
    }
    let mut longer = bytes.clone();
    longer.push(b'\n');
    assert!(matches!(
        Inventory::parse(&longer),
        Err(InventoryError::NotCanonical { .. })
    ));
}

#[test]
fn edited_content_names_the_digest_mismatch() {
    let one = image(&[&layer("a")]);
    let inv = registry(&[(&one, "app", "1")]);
    let s = String::from_utf8(inv.to_bytes()).unwrap();
    let edited = s.replace("app:1", "app:2");
    let e = Inventory::parse(edited.as_bytes()).unwrap_err();
    assert!(matches!(e, InventoryError::Digest { .. }), "{e}");
    assert!(e.to_string().starts_with("content digest mismatch"), "{e}");
    // Pretty-printed (same content): refused as not canonical, with the offset.
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    let pretty = serde_json::to_vec_pretty(&v).unwrap();
    assert!(matches!(
        Inventory::parse(&pretty),
        Err(InventoryError::NotCanonical { offset: 1 })
    ));
}

#[test]
fn format_version_and_shape() {
    let e = Inventory::parse(br#"{"format":"ddiff","version":1}"#).unwrap_err();
    assert_eq!(
        e.to_string(),
        "format is \"ddiff\", expected \"ddiff-inventory\""
    );
    let e = Inventory::parse(br#"{"format":"ddiff-inventory","version":2,"new":[]}"#).unwrap_err();
    assert!(matches!(e, InventoryError::Version { found: 2 }), "{e}");
    let e = Inventory::parse(b"not json").unwrap_err();
    assert!(matches!(e, InventoryError::Syntax { .. }), "{e}");
    // An unknown field in version 1 is refused (new fields need a new version or the
    // reserved slot).
    let one = image(&[&layer("a")]);
    let s = String::from_utf8(registry(&[(&one, "app", "1")]).to_bytes()).unwrap();
    let e = Inventory::parse(
        s.replacen("{\"blobs\"", "{\"aaa\":1,\"blobs\"", 1)
            .as_bytes(),
    )
    .unwrap_err();
    assert!(matches!(e, InventoryError::Syntax { .. }), "{e}");
}

#[test]
fn the_reserved_fingerprints_field_is_kept_and_covered() {
    let one = image(&[&layer("a")]);
    let mut inv = registry(&[(&one, "app", "1")]);
    let l = inv
        .blobs
        .iter_mut()
        .find(|b| b.media_type.is_layer())
        .unwrap();
    l.fingerprints = Some(serde_json::json!({"a": [1, 2], "b": "x"}));
    let bytes = inv.to_bytes();
    let back = Inventory::parse(&bytes).unwrap();
    assert_eq!(back.to_bytes(), bytes);
    assert!(String::from_utf8(bytes)
        .unwrap()
        .contains("\"fingerprints\":{\"a\":[1,2],\"b\":\"x\"}"));
}

#[test]
fn plan_relies_on_what_the_site_holds_and_carries_each_blob_once() {
    let (base, mid, old, new1, new2) = (
        layer("base"),
        layer("mid"),
        layer("old"),
        layer("n1"),
        layer("n2"),
    );
    let site = registry(&[
        (&image(&[&base, &old]), "app", "1"),
        (&image(&[&base, &mid]), "tool", "1"),
    ]);
    let have = Have::new(&[site]);
    let app2 = image(&[&base, &mid, &new1]);
    let svc = image(&[&base, &new1, &new2]);
    let mut p = plan(
        &have.bases(),
        &[target(&app2, "app:2"), target(&svc, "svc:1")],
        "test",
        None,
    )
    .unwrap();
    have.annotate(&mut p.meta);
    let relied: Vec<&Digest> = p.meta.relied.iter().map(|r| &r.digest).collect();
    assert_eq!(relied, [&base.descriptor.digest, &mid.descriptor.digest]);
    let layers: Vec<&Digest> = p.layers_to_fetch().map(|b| &b.digest).collect();
    assert_eq!(layers, [&new1.descriptor.digest, &new2.descriptor.digest]);
    assert_eq!(p.meta.relied[0].repositories, ["app", "tool"]);
    assert_eq!(p.meta.relied[1].repositories, ["tool"]);
    let b = p.meta.base.as_ref().unwrap();
    assert!(
        b.references[0].starts_with("inventory sha256:"),
        "{:?}",
        b.references
    );
    assert!(b.manifests.is_empty() && b.diff_ids.is_empty());
    assert_eq!(b.inventories.len(), 1);
}

#[test]
fn several_sites_rely_only_on_what_every_site_holds() {
    let (base, mid, top) = (layer("base"), layer("mid"), layer("top"));
    let a = registry(&[(&image(&[&base, &mid]), "app", "1")]);
    let b = registry(&[(&image(&[&base]), "base", "1")]);
    // An engine knows diff_ids only.
    let mut e = InventoryBuilder::new(SourceKind::Engine, "docker-daemon:");
    e.engine_image(
        &Digest::sha256(b"id"),
        &["base:1".into()],
        &[base.diff_id.clone(), mid.diff_id.clone()],
    );
    let e = e.finish();
    let t = image(&[&base, &mid, &top]);
    let relied = |sites: &[&Inventory]| -> Vec<Digest> {
        let sites: Vec<Inventory> = sites.iter().map(|s| (*s).clone()).collect();
        let have = Have::new(&sites);
        let p = plan(&have.bases(), &[target(&t, "app:2")], "test", None).unwrap();
        p.meta.relied.iter().map(|r| r.digest.clone()).collect()
    };
    assert_eq!(
        relied(&[&a]),
        [
            base.descriptor.digest.clone(),
            mid.descriptor.digest.clone()
        ]
    );
    assert_eq!(relied(&[&a, &b]), vec![base.descriptor.digest.clone()]);
    assert_eq!(relied(&[&b, &a]), vec![base.descriptor.digest.clone()]);
    assert_eq!(
        relied(&[&e, &a]),
        [
            base.descriptor.digest.clone(),
            mid.descriptor.digest.clone()
        ]
    );
    assert_eq!(
        relied(&[&e]),
        [
            base.descriptor.digest.clone(),
            mid.descriptor.digest.clone()
        ]
    );
    assert_eq!(relied(&[&e, &a, &b]), vec![base.descriptor.digest.clone()]);
    // An empty site: everything is carried.
    let empty = InventoryBuilder::new(SourceKind::Registry, "docker://empty").finish();
    assert!(relied(&[&empty]).is_empty());
}

#[test]
fn a_recompressed_layer_at_a_registry_site_is_carried() {
    // The same content (diff_id) stored under another digest: a registry load could not
    // find it without a named image, so it travels.
    let base = layer("base");
    let mut other = base.clone();
    other.descriptor.digest = Digest::sha256(b"gzip of base");
    let site = registry(&[(&image(&[&other]), "base", "1")]);
    let have = Have::new(&[site]);
    let p = plan(
        &have.bases(),
        &[target(&image(&[&base]), "app:2")],
        "test",
        None,
    )
    .unwrap();
    assert!(p.meta.relied.is_empty());
    assert_eq!(p.layers_to_fetch().count(), 1);
}

#[test]
fn sources() {
    let reg = |h: &str, r: Option<&str>, t: Option<&str>| InventorySource::Registry {
        host: h.into(),
        repository: r.map(Into::into),
        reference: t.map(Into::into),
    };
    assert_eq!(
        InventorySource::parse("docker://site:5000").unwrap(),
        reg("site:5000", None, None)
    );
    assert_eq!(
        InventorySource::parse("docker://site:5000/").unwrap(),
        reg("site:5000", None, None)
    );
    assert_eq!(
        InventorySource::parse("docker://site:5000/team/app").unwrap(),
        reg("site:5000", Some("team/app"), None)
    );
    assert_eq!(
        InventorySource::parse("docker://site:5000/app:2").unwrap(),
        reg("site:5000", Some("app"), Some("2"))
    );
    assert_eq!(
        InventorySource::parse("docker-daemon:").unwrap(),
        InventorySource::Engine
    );
    assert!(matches!(
        InventorySource::parse("oci:/tmp/x").unwrap(),
        InventorySource::Layout(_)
    ));
    assert!(matches!(
        InventorySource::parse("oci-archive:/tmp/x.tar").unwrap(),
        InventorySource::Layout(_)
    ));
    for bad in [
        "app:1",
        "docker://",
        "docker://a b",
        "docker-archive:/x.tar",
        "",
    ] {
        let e = InventorySource::parse(bad).unwrap_err();
        assert!(matches!(e, InventoryError::Source { .. }), "{bad}: {e}");
    }
}

/// The size docs/inventory.md states: 1,000 layers (100 images of 10 layers, each in its own
/// repository and tagged once, configs included) stay under 350 bytes a layer (306 measured).
#[test]
fn size_per_thousand_layers() {
    let mut b = InventoryBuilder::new(SourceKind::Registry, "docker://registry.site.example:5000");
    for i in 0..100 {
        let layers: Vec<SynthLayer> = (0..10).map(|j| layer(&format!("l{i}-{j}"))).collect();
        let refs: Vec<&SynthLayer> = layers.iter().collect();
        let img = image(&refs);
        let repo = format!("team{}/service-{i}", i % 7);
        b.manifest(&img.manifest, Some(&format!("{repo}:1.{i}.0")));
        b.image(&img.manifest, Some(&img.config), Some(&repo));
    }
    let bytes = b.finish().to_bytes();
    let per_layer = bytes.len() / 1000;
    println!(
        "inventory of 1,000 layers: {} bytes ({per_layer} per layer)",
        bytes.len()
    );
    assert!(per_layer < 350, "{per_layer} bytes per layer");
}

/// A bundle planned from an inventory keeps the bundle's every-bit-matters property: the new
/// fields round trip through the codec, and a flipped bit inside them is refused.
#[test]
fn bundle_fields_round_trip_and_every_bit_of_them_matters() {
    use crate::bundle::{Decoder, Event, Report};
    fn decode_all(bytes: &[u8]) -> Result<Report, crate::bundle::BundleError> {
        let mut d = Decoder::new();
        let mut p = bytes;
        loop {
            let (n, ev) = d.decode(p)?;
            p = &p[n..];
            match ev {
                Some(Event::End(r)) => return Ok(*r),
                None if p.is_empty() => {
                    d.finish()?;
                    panic!("no end event");
                }
                _ => {}
            }
        }
    }
    let mut f = crate::bundle::tests::fixture();
    let inv = Digest::sha256(b"an inventory");
    f.plan.meta.relied[0].repositories = vec!["team/zz-hint".into()];
    f.plan.meta.base.as_mut().unwrap().inventories = vec![inv.clone()];
    let bytes = crate::bundle::tests::encode(&f);
    let r = decode_all(&bytes).unwrap();
    assert_eq!(r.meta, f.plan.meta);
    let text = String::from_utf8_lossy(&bytes);
    for needle in ["team/zz-hint", &inv.hex()[..16]] {
        let at = text.find(needle).unwrap();
        for i in at..at + needle.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    decode_all(&bad).is_err(),
                    "bit {bit} of byte {i} ({needle}) accepted"
                );
            }
        }
    }
}
