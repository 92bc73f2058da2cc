#![allow(clippy::unwrap_used)]
use super::export::top_level_pairs;
use super::*;
use crate::bundle::{BlobKind, Report};
use crate::bundle::{Decoder, EncodeOptions, Encoder, Event};
use crate::{plan, BaseImage, TargetImageInput, TargetInput};
use crate::{Descriptor, Digest, MediaType};

fn d(s: &str) -> Digest {
    Digest::sha256(s.as_bytes())
}

/// Real `<id>/json` files of a `docker save` by Docker 20.10.24 (Debian), with the image's
/// diff_ids: a busybox base, one RUN layer, one more RUN layer (the image's own).
const DIFF_IDS: [&str; 3] = [
    "sha256:097161e579fb937a8a38bb83a0447fbdb1e3dba1bcbe53abcd9f5b82a99727ce",
    "sha256:d53daf8d48a3be472456767d4fa47ca180a7a8dfe1fc0dc78a0251802657f48a",
    "sha256:b490f9919209e9905b6f4e612306f06205d6400a4685679c048c40c5076024e9",
];
const CC: &str = r#""container_config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#;

#[test]
fn classic_v1_ids_identify_layers() {
    let ids: Vec<Digest> = DIFF_IDS.iter().map(|s| Digest::parse(s).unwrap()).collect();
    let l0 = "021efa8b3972239f81d41ed3dd7534c95794fe81e9890761eb2f35e2d10065b7";
    let l1 = "aa3305205efda429365fef563b36a9c14f6ec10dc91a4dfef27711310437c6a2";
    let j0 = format!(r#"{{"id":"{l0}","created":"1970-01-01T00:00:00Z",{CC},"os":"linux"}}"#);
    let j1 = format!(
        r#"{{"id":"{l1}","parent":"{l0}","created":"1970-01-01T00:00:00Z",{CC},"os":"linux"}}"#
    );
    assert_eq!(
        layer_hint(&format!("{l0}/layer.tar"), Some(j0.as_bytes()), &ids),
        LayerHint::Index(0)
    );
    assert_eq!(
        layer_hint(&format!("{l1}/layer.tar"), Some(j1.as_bytes()), &ids),
        LayerHint::Index(1)
    );
    // Another image's layer, a damaged json, no json: unknown, never a wrong index.
    assert_eq!(
        layer_hint(&format!("{l1}/layer.tar"), Some(j1.as_bytes()), &ids[..1]),
        LayerHint::Unknown
    );
    assert_eq!(
        layer_hint(&format!("{l1}/layer.tar"), Some(b"{\"id\":"), &ids),
        LayerHint::Unknown
    );
    assert_eq!(
        layer_hint(&format!("{l1}/layer.tar"), None, &ids),
        LayerHint::Unknown
    );
    // Docker 25+ and skopeo name the diff_id.
    let hex = ids[2].hex();
    assert_eq!(
        layer_hint(&format!("blobs/sha256/{hex}"), None, &ids),
        LayerHint::Index(2)
    );
    assert_eq!(
        layer_hint(&format!("{hex}.tar"), None, &ids),
        LayerHint::Index(2)
    );
    assert!(is_layer_path(&format!("{l0}/layer.tar")));
    assert!(is_layer_path(&format!("blobs/sha256/{hex}")));
    assert!(!is_layer_path("manifest.json"));
    assert!(!is_layer_path(&format!("{l0}/json")));
}

#[test]
fn top_level_pairs_keep_nested_values() {
    let p = top_level_pairs(br#"{"a":{"b":[1,"x,}"]},"c":"d\"e","f":null}"#).unwrap();
    assert_eq!(
        p,
        vec![
            ("a", r#"{"b":[1,"x,}"]}"#),
            ("c", r#""d\"e""#),
            ("f", "null")
        ]
    );
    for bad in [&b"[]"[..], b"{\"a\"}", b"{\"a\":}", b"{a:1}", b"\xff"] {
        assert!(top_level_pairs(bad).is_none(), "{bad:?}");
    }
}

#[test]
fn chain_ids_and_coverage() {
    let ids = [d("a"), d("b"), d("c")];
    let c = chain_ids(&ids);
    assert_eq!(c[0], ids[0]);
    assert_eq!(
        c[1],
        Digest::sha256(format!("{} {}", ids[0], ids[1]).as_bytes())
    );
    assert_eq!(carried_layers(&ids[..2], &ids), vec![false, false, true]);
    let absent = [true, true, false];
    assert!(base_covers(&ids, &absent, &ids[..2]));
    assert!(base_covers(&ids, &absent, &ids));
    assert!(!base_covers(&ids, &absent, &ids[..1]));
    assert!(!base_covers(&ids, &absent, &[d("x"), d("b")]));
    assert!(!base_covers(&ids[..1], &absent[..1], &ids));
    assert!(base_covers(&ids, &[false; 3], &[]));
}

fn config(diff_ids: &[Digest]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap()
}

/// A bundle as `ddiff diff bb:base app:2` makes it from an engine.
fn engine_bundle(zstd: bool) -> (Report, Vec<Digest>, Vec<u8>) {
    let ids = vec![d("base0"), d("base1"), d("app")];
    let cfg = config(&ids);
    let blob = b"compressed app layer".to_vec();
    let mt = if zstd {
        MediaType::OciLayerZstd
    } else {
        MediaType::OciLayerGzip
    };
    let layers = vec![
        ExportedLayer {
            diff_id: ids[0].clone(),
            tar_size: 10240,
            carried: None,
        },
        ExportedLayer {
            diff_id: ids[1].clone(),
            tar_size: 2048,
            carried: None,
        },
        ExportedLayer {
            diff_id: ids[2].clone(),
            tar_size: 4096,
            carried: Some(Descriptor::new(
                mt,
                Digest::sha256(&blob),
                blob.len() as u64,
            )),
        },
    ];
    let (m, c) = engine_manifest(&cfg, &layers).unwrap();
    let p = plan(
        &[BaseImage::from_diff_ids("bb:base", ids[..2].to_vec())],
        &[TargetInput {
            reference: "app:2".into(),
            top: m.clone(),
            images: vec![TargetImageInput {
                manifest: m.clone(),
                config: Some(c),
            }],
        }],
        "test",
        None,
    )
    .unwrap();
    assert_eq!(p.meta.relied.len(), 2);
    assert_eq!(
        p.meta.relied[0].digest, ids[0],
        "relied digest is the diff_id"
    );
    assert_eq!(p.meta.relied[0].size, 10240);
    assert_eq!(p.meta.relied[0].media_type, MediaType::OciLayer);
    assert_eq!(p.meta.blobs.len(), 3);
    let mut out = Vec::new();
    let mut e = Encoder::new(p.meta.clone(), EncodeOptions::default()).unwrap();
    e.start(&mut out).unwrap();
    for b in &p.meta.blobs {
        let data: &[u8] = match b.kind {
            BlobKind::Manifest => m.bytes(),
            BlobKind::Config => &cfg,
            _ => &blob,
        };
        e.begin_blob(&mut out).unwrap();
        e.blob_data(data, &mut out).unwrap();
        e.end_blob(&mut out).unwrap();
    }
    e.finish(&mut out).unwrap();
    let mut dec = Decoder::new();
    let mut p = &out[..];
    let report = loop {
        let (n, ev) = dec.decode(p).unwrap();
        p = &p[n..];
        if let Some(Event::End(r)) = ev {
            break *r;
        }
    };
    (report, ids, cfg)
}

#[test]
fn engine_manifest_checks_diff_ids() {
    let ids = [d("a")];
    let cfg = config(&ids);
    let wrong = ExportedLayer {
        diff_id: d("b"),
        tar_size: 1,
        carried: None,
    };
    assert!(matches!(
        engine_manifest(&cfg, std::slice::from_ref(&wrong)),
        Err(EngineError::DiffIdMismatch { index: 0, .. })
    ));
    assert!(matches!(
        engine_manifest(&cfg, &[]),
        Err(EngineError::LayerCount { expected: 1, .. })
    ));
    assert!(engine_manifest(b"{}", &[]).is_err());
}

#[test]
fn load_archive_lists_relied_layers_without_files() {
    let (report, ids, cfg) = engine_bundle(false);
    let a = docker_load_archive(&report, 0, None).unwrap();
    assert_eq!(a.tag, "app:2");
    assert_eq!(a.absent, vec![true, true, false]);
    assert!(!a.zstd);
    assert_eq!(a.image_id, Digest::sha256(&cfg));
    let paths: Vec<&str> = a.entries.iter().map(LoadEntry::path).collect();
    assert_eq!(paths[0], "oci-layout");
    assert_eq!(paths[paths.len() - 2..], ["index.json", "manifest.json"]);
    assert_eq!(
        a.entries
            .iter()
            .filter(|e| matches!(e, LoadEntry::Blob { .. }))
            .count(),
        1,
        "only the carried layer is copied from the bundle"
    );
    let LoadEntry::File { bytes, .. } = a.entries.last().unwrap() else {
        panic!("manifest.json is a file")
    };
    let mj = crate::docker_archive::parse_manifest(bytes).unwrap();
    assert_eq!(mj[0].repo_tags.as_deref(), Some(&["app:2".to_string()][..]));
    assert_eq!(mj[0].layers[0], format!("blobs/sha256/{}", ids[0].hex()));
    assert_eq!(mj[0].config_digest(), Some(Digest::sha256(&cfg)));
    let renamed = docker_load_archive(&report, 0, Some("other/app:9")).unwrap();
    assert_eq!(renamed.tag, "other/app:9");
    assert!(docker_load_archive(&report, 1, None).is_err());
    assert!(
        docker_load_archive(&engine_bundle(true).0, 0, None)
            .unwrap()
            .zstd
    );
}
#[test]
fn pulled_image_leaves_out_the_layers_the_engine_has() {
    let ids = vec![d("l0"), d("l1")];
    let cfg = config(&ids);
    let layers: Vec<ExportedLayer> = ids
        .iter()
        .map(|id| ExportedLayer {
            diff_id: id.clone(),
            tar_size: 2048,
            carried: Some(Descriptor::new(
                MediaType::OciLayerGzip,
                Digest::sha256(id.hex().as_bytes()),
                100,
            )),
        })
        .collect();
    let (m, _) = engine_manifest(&cfg, &layers).unwrap();
    let a = docker_load_image(&m, &cfg, &[true, false], "localhost:5000/app:2").unwrap();
    assert_eq!(a.absent, vec![true, false]);
    let blobs: Vec<_> = a
        .entries
        .iter()
        .filter_map(|e| match e {
            LoadEntry::Blob { index, size, .. } => Some((*index, *size)),
            LoadEntry::File { .. } => None,
        })
        .collect();
    assert_eq!(
        blobs,
        vec![(1, 100)],
        "only layer 1, by its manifest position"
    );
    assert_eq!(a.image_id, Digest::sha256(&cfg));
    let LoadEntry::File { bytes, .. } = &a.entries[a.entries.len() - 2] else {
        panic!("index.json")
    };
    let idx = String::from_utf8(bytes.clone()).unwrap();
    assert!(
        idx.contains(r#""org.opencontainers.image.ref.name":"2""#),
        "{idx}"
    );
    assert!(docker_load_image(&m, &cfg, &[true], "app:2").is_err());
}
