//! A complete, realistic sample bundle made in memory: a base of two layers and an app image
//! that adds two gzip layers with directories, an executable, a symlink, a whiteout and an
//! opaque directory, each with its Dockerfile step in the config's history. Used by the
//! inspector's tests, the CLI's tests, the browser test and the verify benchmark
//! (`big_layer_bytes` adds one large file), so that nothing binary is committed.

use std::collections::BTreeMap;

use flate2::{Compress, FlushCompress, Status};

use crate::bundle::meta::{TargetImage, TargetInfo};
use crate::bundle::{BlobInfo, BlobKind, BundleError, BundleMeta, EncodeOptions, Encoder};
use crate::synth::{config_json, manifest, SynthLayer};
use crate::{
    plan, tar, BaseImage, Descriptor, Digest, ImageConfig, MediaType, TargetImageInput, TargetInput,
};

/// What to make.
#[derive(Clone, Copy, Debug, Default)]
pub struct SampleOptions {
    /// Size of an extra pseudo-random file in the app's data layer (0: none). Stored with
    /// deflate level 0, so making a 1 GiB bundle takes seconds.
    pub big_layer_bytes: u64,
    /// Put what a crafted bundle could say into the strings a reader is shown: the tool, the
    /// date, the last layer's history line and file names in that layer hold newlines, escape
    /// sequences, C1 and bidi controls and a line that imitates `ddiff verify`'s; one file
    /// name is 5000 bytes long (see [`HOSTILE_TOOL`] and [`HOSTILE_NAMES`]). Everything stays
    /// structurally valid: the bundle is intact.
    pub hostile_text: bool,
    /// Carry provenance for the target ([`attach_provenance`]): a cosign signature, an SLSA
    /// attestation and an SPDX SBOM (the bundle becomes version 2).
    pub provenance: bool,
}

/// The predicate type of a [`SampleOptions::provenance`] sample's attestation.
pub const SAMPLE_PREDICATE_TYPE: &str = "https://slsa.dev/provenance/v1";
/// The artifact type of a [`SampleOptions::provenance`] sample's SBOM.
pub const SAMPLE_SBOM_TYPE: &str = "application/spdx+json";

/// The tool name of a [`SampleOptions::hostile_text`] sample.
pub const HOSTILE_TOOL: &str = "ddiff sample\nok   forged.ddiff: intact\x1b[2K\r";
/// The date of a [`SampleOptions::hostile_text`] sample.
pub const HOSTILE_CREATED: &str = "2026-01-01T00:00:00Z\x1b]0;pwned\x07\u{9b}2J";
/// The last layer's history line of a [`SampleOptions::hostile_text`] sample.
pub const HOSTILE_CREATED_BY: &str = "RUN echo hi\u{2028}ok   forged.ddiff: intact\x1b[8m";
/// File names added to the last layer of a [`SampleOptions::hostile_text`] sample (and one
/// of `"deep/"` followed by 4995 `x`).
pub const HOSTILE_NAMES: &[&str] = &[
    "odd\nok   forged.ddiff: intact\x1b[2K",
    "rlo\u{202e}txt.exe",
    "c1\u{9b}31m\u{85}nel\x7f",
    "tab\tcr\r",
];

/// The sample: metadata and every carried blob by digest.
pub struct Sample {
    /// The bundle metadata (`ddiff.json`).
    pub meta: BundleMeta,
    /// Carried blobs.
    pub blobs: BTreeMap<Digest, Vec<u8>>,
}

/// One tar entry of a sample layer.
enum Item<'a> {
    Dir(&'a str),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
}

fn layer_tar(items: &[Item<'_>]) -> Vec<u8> {
    const MTIME: u64 = 1_700_000_000;
    let mut out = Vec::new();
    for it in items {
        match it {
            Item::File(p, data, mode) => tar::write_file(&mut out, p, data, *mode, MTIME),
            Item::Dir(p) => out.extend_from_slice(&tar::ustar_block(p, 0, 0o755, MTIME, b'5')),
            Item::Symlink(p, target) => {
                let mut b = tar::ustar_block(p, 0, 0o777, MTIME, b'2');
                b[157..157 + target.len()].copy_from_slice(target.as_bytes());
                b[148..156].copy_from_slice(b"        ");
                let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
                b[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
                out.extend_from_slice(&b);
            }
        }
    }
    tar::write_end(&mut out);
    out
}

/// gzip (RFC 1952) of `data`; `level` 0 stores, 1–9 compress.
pub fn gzip(data: &[u8], level: u32) -> Vec<u8> {
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
    let mut c = Compress::new(flate2::Compression::new(level), false);
    let mut input = data;
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let (i0, o0) = (c.total_in(), c.total_out());
        // Compressing into a memory buffer cannot fail.
        let st = c
            .compress(input, &mut buf, FlushCompress::Finish)
            .expect("deflate into memory");
        input = &input[(c.total_in() - i0) as usize..];
        out.extend_from_slice(&buf[..(c.total_out() - o0) as usize]);
        if st == Status::StreamEnd {
            break;
        }
    }
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&crc.amount().to_le_bytes());
    out
}

fn add(
    blobs: &mut BTreeMap<Digest, Vec<u8>>,
    items: &[Item<'_>],
    level: Option<u32>,
    by: &str,
) -> SynthLayer {
    let t = layer_tar(items);
    let diff_id = Digest::sha256(&t);
    let (stored, mt) = match level {
        Some(l) => (gzip(&t, l), MediaType::OciLayerGzip),
        None => (t, MediaType::OciLayer),
    };
    let d = Digest::sha256(&stored);
    let l = SynthLayer {
        descriptor: Descriptor::new(mt, d.clone(), stored.len() as u64),
        diff_id,
        created_by: by.to_string(),
    };
    blobs.insert(d, stored);
    l
}

/// Deterministic pseudo-random bytes (xorshift), fast enough for a gigabyte.
fn noise(len: u64) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut v = Vec::with_capacity(len as usize + 8);
    while (v.len() as u64) < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len as usize);
    v
}

/// Makes the sample. References: base `demo/base:1`, target `demo/app:2`.
pub fn sample(opts: SampleOptions) -> Sample {
    let mut blobs = BTreeMap::new();
    let busybox: Vec<u8> = (0..40_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let l1 = add(
        &mut blobs,
        &[
            Item::Dir("bin/"),
            Item::File("bin/busybox", &busybox, 0o755),
            Item::Symlink("bin/sh", "busybox"),
            Item::Dir("etc/"),
            Item::File("etc/motd", b"Welcome\n", 0o644),
            Item::Dir("var/cache/"),
            Item::File("var/cache/old.db", b"stale", 0o644),
        ],
        Some(6),
        "ADD rootfs.tar /",
    );
    let l2 = add(
        &mut blobs,
        &[Item::File("etc/os-release", b"ID=demo\n", 0o644)],
        None,
        "RUN echo ID=demo > /etc/os-release",
    );
    let big = noise(opts.big_layer_bytes);
    let server: Vec<u8> = b"#!/bin/sh\nexec echo serving\n".repeat(200);
    let mut items = vec![
        Item::Dir("app/"),
        Item::File("app/server", &server, 0o755),
        Item::Symlink("app/current", "server"),
        Item::File("etc/.wh.motd", b"", 0o644),
        Item::File("var/cache/.wh..wh..opq", b"", 0o644),
    ];
    if !big.is_empty() {
        items.push(Item::File("app/data.bin", &big, 0o644));
    }
    let level = if big.is_empty() { 6 } else { 0 };
    let l3 = add(&mut blobs, &items, Some(level), "COPY app/ /app/");
    let long_name = format!("deep/{}", "x".repeat(4995));
    let mut items = vec![Item::File("hello_ddiff.txt", b"Hello DockerDiff!\n", 0o644)];
    let mut by = "RUN echo \"Hello DockerDiff!\" > hello_ddiff.txt";
    if opts.hostile_text {
        items.extend(HOSTILE_NAMES.iter().map(|n| Item::File(n, b"x", 0o644)));
        items.push(Item::Symlink("link", "odd\x1b[2Ktarget"));
        items.push(Item::File(&long_name, b"x", 0o644));
        by = HOSTILE_CREATED_BY;
    }
    let l4 = add(&mut blobs, &items, Some(6), by);
    let image = |blobs: &mut BTreeMap<Digest, Vec<u8>>, layers: &[SynthLayer]| {
        let c = config_json(layers, "linux", "amd64", "2026-01-01T00:00:00Z");
        let m = manifest(&MediaType::OciManifest, &c, layers);
        blobs.insert(Digest::sha256(&c), c.clone());
        blobs.insert(m.digest().clone(), m.bytes().to_vec());
        // Built by config_json just above: always a valid config.
        (m, ImageConfig::parse(&c).expect("synthetic config parses"))
    };
    let (bm, bc) = image(&mut blobs, &[l1.clone(), l2.clone()]);
    let (am, ac) = image(&mut blobs, &[l1, l2, l3, l4]);
    // Both are image manifests by construction, so neither step can fail.
    let base = BaseImage::from_manifest("demo/base:1", &bm, Some(&bc)).expect("base image");
    let target = TargetInput {
        reference: "demo/app:2".into(),
        top: am.clone(),
        images: vec![TargetImageInput {
            manifest: am,
            config: Some(ac),
        }],
    };
    let (tool, created) = if opts.hostile_text {
        (HOSTILE_TOOL, HOSTILE_CREATED)
    } else {
        ("ddiff sample", "2026-01-01T00:00:00Z")
    };
    let p = plan(&[base], &[target], tool, Some(created.into())).expect("sample plan");
    blobs.retain(|d, _| p.meta.blob(d).is_some());
    let mut s = Sample {
        meta: p.meta,
        blobs,
    };
    if opts.provenance {
        attach_provenance(&mut s);
    }
    s
}

/// Attaches to the sample's first target what `ddiff diff` carries from a registry with
/// cosign's tag scheme: a key-based signature (`.sig`: a simple-signing payload layer with its
/// signature annotation; the signature is not a real one), an attestation (`.att`: a DSSE
/// layer annotated with [`SAMPLE_PREDICATE_TYPE`]) and an SBOM (`.sbom`, of artifact type
/// [`SAMPLE_SBOM_TYPE`]).
pub fn attach_provenance(s: &mut Sample) {
    use crate::provenance::{attach, Artifact, ArtifactKind, SIGNATURE_ANNOTATION};
    let t = s.meta.targets[0].clone();
    let mut blobs = Vec::new();
    let mut artifacts = Vec::new();
    let kinds = [
        (
            ArtifactKind::Signature,
            crate::provenance::SIMPLE_SIGNING_MEDIA_TYPE,
            (SIGNATURE_ANNOTATION, "MEUCIQDsample"),
            None,
        ),
        (
            ArtifactKind::Attestation,
            "application/vnd.dsse.envelope.v1+json",
            ("predicateType", SAMPLE_PREDICATE_TYPE),
            None,
        ),
        (
            ArtifactKind::Sbom,
            "text/spdx+json",
            ("org.example.note", "sample"),
            Some(SAMPLE_SBOM_TYPE),
        ),
    ];
    for (kind, layer_type, (ak, av), artifact_type) in kinds {
        let payload = format!(r#"{{"sample":"{kind:?}","subject":"{}"}}"#, t.digest).into_bytes();
        // cosign's config: an image config naming the payload as its one layer.
        let config = format!(
            r#"{{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{{"created":"0001-01-01T00:00:00Z"}}],"os":"","rootfs":{{"type":"layers","diff_ids":["{}"]}},"config":{{}}}}"#,
            Digest::sha256(&payload)
        )
        .into_bytes();
        let mut m = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "size": config.len(), "digest": Digest::sha256(&config).to_string()},
            "layers": [{"mediaType": layer_type, "size": payload.len(),
                        "digest": Digest::sha256(&payload).to_string(),
                        "annotations": {ak: av}}],
        });
        if let Some(at) = artifact_type {
            m["artifactType"] = at.into();
        }
        // Plain JSON of strings and numbers: always serialisable.
        let m = serde_json::to_vec(&m).expect("artifact manifest serialises");
        let info = |b: &[u8], mt: &str, kind| BlobInfo {
            digest: Digest::sha256(b),
            size: b.len() as u64,
            media_type: MediaType::parse(mt),
            kind,
            patch: None,
        };
        let mi = info(
            &m,
            "application/vnd.oci.image.manifest.v1+json",
            BlobKind::Manifest,
        );
        artifacts.push(Artifact {
            subject: t.digest.clone(),
            kind,
            digest: mi.digest.clone(),
            media_type: mi.media_type.clone(),
            size: mi.size,
        });
        for (b, bi) in [
            (m.clone(), mi),
            (
                config.clone(),
                info(
                    &config,
                    "application/vnd.oci.image.config.v1+json",
                    BlobKind::Config,
                ),
            ),
            (payload.clone(), info(&payload, layer_type, BlobKind::Layer)),
        ] {
            if s.blobs.insert(bi.digest.clone(), b).is_none() {
                blobs.push(bi);
            }
        }
    }
    attach(&mut s.meta, blobs, artifacts).expect("sample provenance attaches");
}

/// The bundle `bundle` as a volume set (section 9), in memory: each volume's whole file,
/// data volumes then `parity` parity volumes, as `ddiff diff --volume-size SIZE --parity N`
/// writes them. For tests of readers; `None` when the bundle would stay one plain file.
pub fn volume_set(bundle: &[u8], volume_size: u64, parity: u32) -> Option<Vec<Vec<u8>>> {
    use crate::volume::{
        encode_trailer, parity_of, table_digest, Geometry, SetDescriptor, UnitCrcs,
    };
    let g = Geometry::plan(bundle.len() as u64, volume_size, parity)
        .ok()
        .flatten()?;
    let u = g.unit as usize;
    let mut files: Vec<Vec<u8>> = (0..g.data)
        .map(|i| {
            let at = (u64::from(i) * g.payload) as usize;
            bundle[at..at + g.payload_len(i) as usize].to_vec()
        })
        .collect();
    let mut par = vec![Vec::new(); g.parity as usize];
    for s in 0..g.stripes() as usize {
        let data: Vec<Vec<u8>> = files
            .iter()
            .map(|f| {
                let mut b = f.get(s * u..).unwrap_or(&[]).to_vec();
                b.resize(u, 0);
                b
            })
            .collect();
        if g.parity > 0 {
            for (p, r) in par.iter_mut().zip(parity_of(&g, &data).ok()?) {
                p.extend_from_slice(&r);
            }
        }
    }
    files.extend(par);
    let crcs: Vec<Vec<u32>> = files
        .iter()
        .map(|f| {
            let mut c = UnitCrcs::new(g.unit);
            c.update(f);
            c.finish()
        })
        .collect();
    let desc = SetDescriptor {
        geometry: g,
        volumes: crcs.iter().map(|c| table_digest(c)).collect(),
    };
    for (i, f) in files.iter_mut().enumerate() {
        f.extend_from_slice(&encode_trailer(&desc, i as u32, &crcs[i]));
    }
    Some(files)
}

impl Sample {
    /// Writes the bundle, handing out pieces of at most about 1 MiB to `write`.
    pub fn encode_to(&self, mut write: impl FnMut(&[u8])) -> Result<(), BundleError> {
        let mut out = Vec::new();
        let mut e = Encoder::new(
            self.meta.clone(),
            EncodeOptions {
                mtime: 1_700_000_000,
                ..Default::default()
            },
        )?;
        e.start(&mut out)?;
        for b in &self.meta.blobs {
            e.begin_blob(&mut out)?;
            for chunk in self.blobs[&b.digest].chunks(1 << 20) {
                e.blob_data(chunk, &mut out)?;
                write(&out);
                out.clear();
            }
            e.end_blob(&mut out)?;
        }
        e.finish(&mut out)?;
        write(&out);
        Ok(())
    }

    /// The whole bundle in memory.
    pub fn encode(&self) -> Vec<u8> {
        let mut all = Vec::new();
        // The metadata came from `plan` and the blobs are the ones it lists.
        self.encode_to(|b| all.extend_from_slice(b))
            .expect("sample encodes");
        all
    }
}

/// The shape of a synthetic bundle with many entries or many targets, for scaling tests and
/// the load benchmark (`tests/bench/load_scaling.sh`). Self-contained (no base).
#[derive(Clone, Copy, Debug)]
pub struct ManyOptions {
    /// Targets (tagged `synth/app:<i>`).
    pub targets: usize,
    /// Distinct carried layers.
    pub layers: usize,
    /// Layers of each target: target `t` has layers `t*k .. t*k+k` (modulo `layers`), so
    /// targets share layers when `targets * k > layers`.
    pub layers_per_target: usize,
    /// Each target its own config and manifest; otherwise targets with the same layers
    /// share one config and one manifest.
    pub distinct_images: bool,
    /// Bytes of each layer blob (at least 4).
    pub layer_bytes: usize,
    /// Layers are real (uncompressed) tars holding one file `layer-<i>` of `layer_bytes`,
    /// which a Docker engine can apply; otherwise just `layer_bytes` bytes.
    pub tar_layers: bool,
}

/// Makes a bundle of the given shape: tiny uncompressed layers (not real tars: nothing reads
/// their content on verify or load), one config and manifest per distinct layer set.
pub fn many(o: ManyOptions) -> Sample {
    let mut blobs: BTreeMap<Digest, Vec<u8>> = BTreeMap::new();
    let nl = o.layers.max(1);
    let layers: Vec<SynthLayer> = (0..nl)
        .map(|i| {
            let mut b = vec![0u8; o.layer_bytes.max(4)];
            b[..4].copy_from_slice(&(i as u32).to_le_bytes());
            if o.tar_layers {
                b = crate::synth::layer_tar(&[(&format!("layer-{i}"), &b)], 1_700_000_000);
            }
            let d = Digest::sha256(&b);
            let l = SynthLayer {
                descriptor: Descriptor::new(MediaType::OciLayer, d.clone(), b.len() as u64),
                diff_id: d.clone(),
                created_by: format!("layer {i}"),
            };
            blobs.insert(d, b);
            l
        })
        .collect();
    let k = o.layers_per_target.clamp(1, nl);
    let mut json: Vec<BlobInfo> = Vec::new();
    let mut targets = Vec::new();
    for t in 0..o.targets.max(1) {
        let mine: Vec<SynthLayer> = (0..k).map(|j| layers[(t * k + j) % nl].clone()).collect();
        let created = if o.distinct_images {
            format!(
                "2026-01-01T{:02}:{:02}:{:02}.{:06}Z",
                (t / 3600) % 24,
                (t / 60) % 60,
                t % 60,
                t / 86400
            )
        } else {
            "2026-01-01T00:00:00Z".to_string()
        };
        let c = config_json(&mine, "linux", "amd64", &created);
        let m = manifest(&MediaType::OciManifest, &c, &mine);
        let cd = Digest::sha256(&c);
        let md = m.digest().clone();
        if !blobs.contains_key(&md) {
            json.push(BlobInfo {
                digest: md.clone(),
                size: m.bytes().len() as u64,
                media_type: MediaType::OciManifest,
                kind: BlobKind::Manifest,
                patch: None,
            });
            blobs.insert(md.clone(), m.bytes().to_vec());
        }
        if !blobs.contains_key(&cd) {
            json.push(BlobInfo {
                digest: cd.clone(),
                size: c.len() as u64,
                media_type: MediaType::OciConfig,
                kind: BlobKind::Config,
                patch: None,
            });
            blobs.insert(cd.clone(), c);
        }
        targets.push(TargetInfo {
            reference: format!("synth/app:{t}"),
            media_type: MediaType::OciManifest,
            digest: md.clone(),
            size: m.bytes().len() as u64,
            images: vec![TargetImage {
                manifest: md,
                config: cd,
                platform: None,
            }],
        });
    }
    // Only the layers some target uses are carried.
    let used: std::collections::BTreeSet<usize> = (0..o.targets.max(1))
        .flat_map(|t| (0..k).map(move |j| (t * k + j) % nl))
        .collect();
    for (i, l) in layers.iter().enumerate() {
        if used.contains(&i) {
            json.push(BlobInfo {
                digest: l.descriptor.digest.clone(),
                size: l.descriptor.size,
                media_type: MediaType::OciLayer,
                kind: BlobKind::Layer,
                patch: None,
            });
        } else {
            blobs.remove(&l.descriptor.digest);
        }
    }
    let meta = BundleMeta {
        format: crate::bundle::meta::FORMAT_NAME.into(),
        version: crate::bundle::meta::FORMAT_VERSION,
        tool: "ddiff synthetic".into(),
        created: Some("2026-01-01T00:00:00Z".into()),
        base: None,
        targets,
        blobs: json,
        relied: Vec::new(),
        artifacts: Vec::new(),
    };
    Sample { meta, blobs }
}

/// The inner tar (to be gzipped) of a bundle in the original DockerDiff's format: one
/// target `synth/legacy:1` on base `synth/base:1` (one relied-on layer, listed in
/// `MOUNT_BLOBS`), carrying a config and `layers` distinct layers of `layer_bytes` each.
pub fn legacy_many(layers: usize, layer_bytes: usize) -> Vec<u8> {
    let base = SynthLayer {
        descriptor: Descriptor::new(
            MediaType::DockerLayerGzip,
            Digest::sha256(b"synthetic base layer"),
            20,
        ),
        diff_id: Digest::sha256(b"synthetic base diff"),
        created_by: "base".into(),
    };
    let mut all = vec![base.clone()];
    let mut data = Vec::new();
    for i in 0..layers {
        let mut b = vec![0u8; layer_bytes.max(4)];
        b[..4].copy_from_slice(&(i as u32).to_le_bytes());
        let d = Digest::sha256(&b);
        all.push(SynthLayer {
            descriptor: Descriptor::new(MediaType::DockerLayerGzip, d.clone(), b.len() as u64),
            diff_id: d,
            created_by: format!("layer {i}"),
        });
        data.push(b);
    }
    let c = config_json(&all, "linux", "amd64", "2026-01-01T00:00:00Z");
    let m = manifest(&MediaType::DockerManifest, &c, &all);
    let mut out = Vec::new();
    let mut file = |name: &str, bytes: &[u8]| {
        tar::write_file(&mut out, &format!(".ddiff-image/{name}"), bytes, 0o644, 0);
    };
    file("manifest.json", m.bytes());
    file(
        "MANIFEST_MEDIA_TYPE",
        MediaType::DockerManifest.as_str().as_bytes(),
    );
    file("BASE", b"synth/base:1");
    file("TARGET", b"synth/legacy:1");
    file("MOUNT_BLOBS", base.descriptor.digest.to_string().as_bytes());
    let upload: Vec<String> = std::iter::once(Digest::sha256(&c).to_string())
        .chain(all[1..].iter().map(|l| l.descriptor.digest.to_string()))
        .collect();
    file("UPLOAD_BLOBS", upload.join("|").as_bytes());
    file(&format!("blobs/{}.tar", Digest::sha256(&c)), &c);
    for (l, b) in all[1..].iter().zip(&data) {
        file(&format!("blobs/{}.tar", l.descriptor.digest), b);
    }
    tar::write_end(&mut out);
    out
}
