//! `ddiff demo`: the whole air-gap flow on this machine with nothing but ddiff.
//!
//! Two embedded registries on free loopback ports play the online and the offline side. A
//! realistic base image and an app image on top of it are generated (real tar layers, real
//! gzip, real configs with history), pushed to the online registry; the base alone is pushed
//! to the offline one. Then the real `diff`, `verify` and `load` code paths run, and the
//! loaded image is checked blob by blob against the original. Nothing is faked.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ddiff_core::synth::{config_json, SynthLayer};
use ddiff_core::{Descriptor, Digest, DigestBuilder, MediaType, RawManifest};

use super::diff::{diff, DiffArgs};
use super::load::{load, LoadArgs};
use super::{Global, PlatformArgs};
use crate::bundle_io::verify_file;
use crate::hash::fast_hasher;
use crate::progress::human_bytes;
use crate::registry::client::{ClientOptions, Registry};
use crate::registry::server::{serve_on, AppState, Options};
use crate::transport::tar_file::TarOut;

/// Run the whole flow on two embedded registries (online and offline), with generated images.
///
/// Starts two ddiff registries on free loopback ports, makes a base image and an app image
/// on top of it, pushes both online and only the base offline, then runs the real diff,
/// verify and load, and checks the loaded image. A second round rebuilds the app with one
/// file edited: its layer gets a new digest, travels as a small patch against the layer the
/// offline side already has, and the load rebuilds it bit for bit. Last, the first bundle is
/// written as volumes with one parity volume, one volume is deleted, and the load still
/// gets the same image. Needs no Docker and no network.
#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Size of the generated base image's content, in MB.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub base_mb: u64,
    /// Size of what the app adds, in MB.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub app_mb: u64,
    /// Keep the registries' data and the bundle in this directory (default: a temporary one,
    /// removed at the end).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
}

struct RunningRegistry {
    host: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn start_registry(root: &Path) -> Result<RunningRegistry> {
    std::fs::create_dir_all(root).with_context(|| format!("cannot create {}", root.display()))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind a loopback port")?;
    let host = listener.local_addr()?.to_string();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(root, Options::default());
    let task = tokio::spawn(serve_on(listener, state, async move {
        let _ = rx.await;
    }));
    Ok(RunningRegistry {
        host,
        stop: Some(tx),
        task,
    })
}

impl RunningRegistry {
    async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.task.await??;
        Ok(())
    }
}

/// Deterministic pseudo-random bytes that compress about as well as real binaries (~2:1).
struct Filler(u64);

impl Filler {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(64) {
            // xorshift64*
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
            let text = x.is_multiple_of(2);
            for (i, b) in chunk.iter_mut().enumerate() {
                *b = if text {
                    b"usr/lib/x86_64-linux-gnu "[(i + (x as usize % 7)) % 25]
                } else {
                    (x >> ((i % 8) * 8)) as u8 ^ i as u8
                };
            }
        }
    }
}

/// Writes a gzip layer of `files` generated files totalling `bytes` to `path`, streaming;
/// returns its descriptor and diff_id. Compressed as `docker push` does (Go's gzip at its
/// default level, through ddiff's bit-exact port), so the delta round can rebuild it. With
/// `changed`, that file's first 4 KiB differ (a rebuilt app with one file edited).
fn generate_layer(
    path: &Path,
    prefix: &str,
    files: u64,
    bytes: u64,
    seed: u64,
    created_by: &str,
    changed: Option<u64>,
) -> Result<SynthLayer> {
    struct Tee<W: Write> {
        inner: W,
        hash: DigestBuilder,
    }
    impl<W: Write> Write for Tee<W> {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let n = self.inner.write(b)?;
            self.hash.update(&b[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            self.inner.flush()
        }
    }
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let compressed = Tee {
        inner: std::io::BufWriter::new(file),
        hash: DigestBuilder::with_factory(ddiff_core::Algorithm::Sha256, fast_hasher),
    };
    let gz = goflate::GzipWriter::new(compressed, goflate::DEFAULT_COMPRESSION)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tar = TarOut::new(
        Tee {
            inner: gz,
            hash: DigestBuilder::with_factory(ddiff_core::Algorithm::Sha256, fast_hasher),
        },
        None,
    );
    let mut filler = Filler(seed | 1);
    let per_file = bytes / files.max(1);
    let mut buf = vec![0u8; 1 << 16];
    for i in 0..files {
        tar.entry(&format!("{prefix}/file-{i:05}.bin"), per_file, |sink| {
            let mut left = per_file;
            let mut first = true;
            while left > 0 {
                let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
                filler.fill(&mut buf[..n]);
                if first && changed == Some(i) {
                    for b in buf[..n.min(4096)].iter_mut() {
                        *b ^= 0x5a;
                    }
                }
                first = false;
                sink(&buf[..n])?;
                left -= n as u64;
            }
            Ok(())
        })?;
    }
    let (tar_out, _) = tar.finish()?;
    let (diff_id, _) = tar_out.hash.finish();
    let mut compressed = tar_out.inner.finish()?;
    compressed.flush()?;
    let (digest, size) = compressed.hash.finish();
    Ok(SynthLayer {
        descriptor: Descriptor::new(MediaType::DockerLayerGzip, digest, size),
        diff_id,
        created_by: created_by.into(),
    })
}

/// Pushes a generated image (layers from files) to a registry.
async fn push_image(
    reg: &Registry,
    repo: &str,
    tag: &str,
    layers: &[(SynthLayer, PathBuf)],
    config: &[u8],
) -> Result<RawManifest> {
    for (l, path) in layers {
        if reg.blob_exists(repo, &l.descriptor.digest).await?.is_none() {
            let p = path.clone();
            reg.upload_blob(repo, &l.descriptor.digest, l.descriptor.size, &move || {
                Ok(crate::registry::client::body_from_file(p.clone(), |_| {}))
            })
            .await?;
        }
    }
    let cd = Digest::sha256(config);
    let body = config.to_vec();
    reg.upload_blob(repo, &cd, config.len() as u64, &move || {
        Ok(reqwest::Body::from(body.clone()))
    })
    .await?;
    let synth: Vec<SynthLayer> = layers.iter().map(|(l, _)| l.clone()).collect();
    let m = ddiff_core::synth::manifest(&MediaType::DockerManifest, config, &synth);
    reg.put_manifest(repo, tag, m.media_type().as_str(), m.bytes())
        .await?;
    Ok(m)
}

/// `diff` as the demo runs it: defaults but for the names and the volumes.
fn demo_diff(
    base: String,
    target: String,
    output: PathBuf,
    volumes: crate::volume_io::VolumeArgs,
    sign_key: Option<PathBuf>,
) -> DiffArgs {
    DiffArgs {
        base,
        targets: vec![target],
        output: Some(output),
        platform: PlatformArgs::default(),
        compress: Default::default(),
        delta: Default::default(),
        sign: crate::signing::SignArgs { sign_key },
        no_provenance: false,
        volumes,
    }
}

/// A fresh Ed25519 key pair for the demo's signed bundle, as PEM files in `dir` (what
/// `openssl genpkey -algorithm ed25519` or cosign would give a user): (private, public).
fn demo_keys(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
    use ed25519_dalek::pkcs8::spki::EncodePublicKey as _;
    use ed25519_dalek::pkcs8::EncodePrivateKey as _;
    let mut seed = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut seed)
        .map_err(|_| anyhow::anyhow!("no system randomness for the demo key"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("demo key: {e}"))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| anyhow::anyhow!("demo key: {e}"))?;
    let (k, p) = (dir.join("demo.key"), dir.join("demo.pub"));
    std::fs::write(&k, private.as_bytes())?;
    std::fs::write(&p, public)?;
    Ok((k, p))
}

/// `load` as the demo runs it: into `to`, no pull into an engine.
fn demo_load(bundle: PathBuf, to: String) -> LoadArgs {
    LoadArgs {
        bundle,
        to: Some(to),
        no_pull: true,
        update_inventory: None,
        jobs: 4,
        delta_memory: 4 << 30,
        key: Default::default(),
        require_signature: false,
        more: Vec::new(),
    }
}

/// Runs `demo`.
pub async fn run(args: DemoArgs, global: &Global) -> Result<ExitCode> {
    let tmp;
    let dir = match &args.keep {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            d.clone()
        }
        None => {
            tmp = tempfile::Builder::new()
                .prefix("ddiff-demo-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            tmp.path().to_path_buf()
        }
    };
    let say = |s: String| {
        if !global.json {
            println!("{s}");
        }
    };
    let started = Instant::now();
    let online = start_registry(&dir.join("online")).await?;
    let offline = start_registry(&dir.join("offline")).await?;
    say(format!(
        "1. started two embedded registries: online {} and offline {} (data in {})",
        online.host,
        offline.host,
        dir.display()
    ));

    let mb = 1_000_000u64;
    let layer_dir = dir.join("layers");
    std::fs::create_dir_all(&layer_dir)?;
    let specs = [
        (
            "usr/lib/runtime",
            400u64,
            args.base_mb * mb * 70 / 100,
            11u64,
            "ADD rootfs.tar.xz / # a CUDA-like runtime",
        ),
        (
            "opt/python",
            200,
            args.base_mb * mb * 25 / 100,
            12,
            "RUN pip install torch numpy",
        ),
        (
            "etc",
            20,
            (args.base_mb * mb * 5 / 100).max(1),
            13,
            "RUN apt-get install -y ca-certificates",
        ),
    ];
    let mut base_layers = Vec::new();
    for (prefix, files, bytes, seed, by) in specs {
        let path = layer_dir.join(format!("base-{seed}.tar.gz"));
        let l = tokio::task::spawn_blocking({
            let path = path.clone();
            move || generate_layer(&path, prefix, files, bytes, seed, by, None)
        })
        .await??;
        base_layers.push((l, path));
    }
    let app_specs = [
        (
            "app",
            50u64,
            args.app_mb * mb * 90 / 100,
            21u64,
            "COPY ./app /app",
        ),
        (
            "app/config",
            5,
            (args.app_mb * mb * 10 / 100).max(1),
            22,
            "RUN echo \"Hello DockerDiff!\" > /hello_ddiff.txt",
        ),
    ];
    // app:2, and app:3: the same app rebuilt with one file of its big layer edited.
    let mut app_layers = base_layers.clone();
    let mut app3_layers = base_layers.clone();
    for (round, layers) in [(2, &mut app_layers), (3, &mut app3_layers)] {
        for (k, (prefix, files, bytes, seed, by)) in app_specs.into_iter().enumerate() {
            let changed = (round == 3 && k == 0).then_some(7);
            let path = layer_dir.join(format!("app{round}-{seed}.tar.gz"));
            let l = tokio::task::spawn_blocking({
                let path = path.clone();
                move || generate_layer(&path, prefix, files, bytes, seed, by, changed)
            })
            .await??;
            layers.push((l, path));
        }
    }
    let created = "2026-01-01T00:00:00Z";
    let synth =
        |ls: &[(SynthLayer, PathBuf)]| ls.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>();
    let base_config = config_json(
        &synth(&base_layers),
        "linux",
        crate::transport::host_platform().architecture.as_str(),
        created,
    );
    let app_config = config_json(
        &synth(&app_layers),
        "linux",
        crate::transport::host_platform().architecture.as_str(),
        created,
    );
    let app3_config = config_json(
        &synth(&app3_layers),
        "linux",
        crate::transport::host_platform().architecture.as_str(),
        created,
    );
    let on = Registry::new(&online.host, ClientOptions::default())?;
    let off = Registry::new(&offline.host, ClientOptions::default())?;
    push_image(&on, "demo/base", "1", &base_layers, &base_config).await?;
    let app_manifest = push_image(&on, "demo/app", "2", &app_layers, &app_config).await?;
    let app3_manifest = push_image(&on, "demo/app", "3", &app3_layers, &app3_config).await?;
    push_image(&off, "demo/base", "1", &base_layers, &base_config).await?;
    let full: u64 = app_layers
        .iter()
        .map(|(l, _)| l.descriptor.size)
        .sum::<u64>()
        + app_config.len() as u64
        + app_manifest.bytes().len() as u64;
    say(format!(
        "2. generated base demo/base:1 ({} layers) and app demo/app:2 (+{} layers, {} in all), layers gzipped as docker push does; pushed both online (and demo/app:3, the app rebuilt with one file edited) and only the base offline",
        base_layers.len(),
        app_layers.len() - base_layers.len(),
        human_bytes(full)
    ));
    std::fs::remove_dir_all(&layer_dir)?;

    let bundle = dir.join("demo--app-2.ddiff");
    let quiet = Global {
        quiet: true,
        json: false,
        ..global.clone()
    };
    let t = Instant::now();
    let summary = diff(
        &demo_diff(
            format!("docker://{}/demo/base:1", online.host),
            format!("docker://{}/demo/app:2", online.host),
            bundle.clone(),
            Default::default(),
            None,
        ),
        &quiet,
    )
    .await?;
    say(format!(
        "3. ddiff diff: wrote {} in {:.2}s, carrying {} of {} ({:.1}% saved)",
        bundle.display(),
        t.elapsed().as_secs_f64(),
        human_bytes(summary.bundle_bytes),
        human_bytes(summary.full_bytes),
        100.0 * (1.0 - summary.bundle_bytes as f64 / summary.full_bytes.max(1) as f64)
    ));

    let t = Instant::now();
    let b = bundle.clone();
    let verified = tokio::task::spawn_blocking(move || verify_file(&b, |_, _| {})).await??;
    say(format!(
        "4. ddiff verify: intact, {} blob(s) checked in {:.2}s",
        verified.report.meta.blobs.len(),
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    let loaded = load(
        &demo_load(bundle.clone(), format!("docker://{}", offline.host)),
        &quiet,
    )
    .await?;
    say(format!(
        "5. ddiff load into the offline registry in {:.2}s: uploaded {} blob(s), {}; relied on the base already there",
        t.elapsed().as_secs_f64(),
        loaded.uploaded_blobs,
        human_bytes(loaded.uploaded_bytes)
    ));

    // Check: the offline side now serves the very same image, every blob verified.
    let got = off.get_manifest("demo/app", "2").await?;
    if got.digest() != app_manifest.digest() {
        bail!(
            "check failed: offline demo/app:2 is {}, online it is {}",
            got.digest(),
            app_manifest.digest()
        );
    }
    let img = got
        .as_image()
        .context("check failed: not an image manifest")?;
    let mut checked = 0u64;
    for d in std::iter::once(&img.config).chain(img.layers.iter()) {
        off.download_blob("demo/app", d, &mut |c| {
            checked += c.len() as u64;
            Ok(())
        })
        .await
        .with_context(|| format!("check failed: blob {}", d.digest))?;
    }
    say(format!(
        "6. checked: offline demo/app:2 has manifest {} like online, and all {} of its blobs verify",
        got.digest(),
        human_bytes(checked)
    ));

    // Round 2: the app rebuilt with one file edited. Its big layer has a new digest, so a
    // layer-level tool carries it whole; ddiff carries a patch against the offline side's
    // copy of app:2's layer and the load rebuilds the exact blob.
    let bundle3 = dir.join("demo--app-3.ddiff");
    let t = Instant::now();
    let s3 = diff(
        &demo_diff(
            format!("docker://{}/demo/app:2", online.host),
            format!("docker://{}/demo/app:3", online.host),
            bundle3.clone(),
            Default::default(),
            None,
        ),
        &quiet,
    )
    .await?;
    if s3.deltas.patched_layers == 0 {
        bail!("check failed: the rebuilt app layer did not travel as a patch");
    }
    say(format!(
        "7. round 2, demo/app:3 (one file edited, so its {} layer has a new digest): ddiff diff in {:.2}s wrote {}: the layer travels as a {} patch against demo/app:2's layer, which the offline side has",
        human_bytes(s3.deltas.patched_layer_bytes),
        t.elapsed().as_secs_f64(),
        human_bytes(s3.bundle_bytes),
        human_bytes(s3.deltas.patch_bytes)
    ));
    let t = Instant::now();
    load(
        &demo_load(bundle3.clone(), format!("docker://{}", offline.host)),
        &quiet,
    )
    .await?;
    let got3 = off.get_manifest("demo/app", "3").await?;
    if got3.digest() != app3_manifest.digest() {
        bail!(
            "check failed: offline demo/app:3 is {}, online it is {}",
            got3.digest(),
            app3_manifest.digest()
        );
    }
    for d in got3
        .as_image()
        .context("check failed: not an image manifest")?
        .layers
        .iter()
    {
        off.download_blob("demo/app", d, &mut |_| Ok(()))
            .await
            .with_context(|| format!("check failed: blob {}", d.digest))?;
    }
    say(format!(
        "8. ddiff load in {:.2}s rebuilt the layer bit for bit (Go's gzip, ported): offline demo/app:3 has manifest {} like online; a layer-level bundle would have carried {}",
        t.elapsed().as_secs_f64(),
        got3.digest(),
        human_bytes(s3.bundle_bytes - s3.deltas.patch_bytes + s3.deltas.patched_layer_bytes)
    ));

    // Media: round 1's bundle cut into volumes for small media, with one parity volume, and
    // signed; one volume is then lost, and the load checks the signature and still gets the
    // exact image, rebuilt from parity.
    let media = dir.join("media");
    std::fs::create_dir_all(&media)?;
    let (key, public) = demo_keys(&dir)?;
    let vsize = (summary.bundle_bytes / 3 + 1).max(64 * 1024);
    let sv = diff(
        &demo_diff(
            format!("docker://{}/demo/base:1", online.host),
            format!("docker://{}/demo/app:2", online.host),
            media.join("demo--app-2.ddiff"),
            crate::volume_io::VolumeArgs {
                volume_size: Some(vsize),
                parity: 1,
            },
            Some(key),
        ),
        &quiet,
    )
    .await?;
    let lost = sv
        .volumes
        .get(1)
        .context("check failed: the bundle was not cut into volumes")?;
    std::fs::remove_file(lost).with_context(|| format!("cannot remove {lost}"))?;
    let signature = sv
        .signature
        .clone()
        .context("check failed: the volume set was not signed")?;
    load(
        &LoadArgs {
            key: crate::signing::KeyArgs {
                key: Some(public.clone()),
            },
            ..demo_load(
                PathBuf::from(&sv.volumes[0]),
                format!("docker://{}/demo/app-from-media:2", offline.host),
            )
        },
        &quiet,
    )
    .await?;
    let gotv = off.get_manifest("demo/app-from-media", "2").await?;
    if gotv.digest() != app_manifest.digest() {
        bail!(
            "check failed: the image loaded from the volumes is {}, not {}",
            gotv.digest(),
            app_manifest.digest()
        );
    }
    let file_name = |p: &str| {
        Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    say(format!(
        "9. for small media: the same bundle as {} volumes of at most {} plus 1 parity volume, signed with a fresh Ed25519 key ({}, cosign sign-blob format); with volume {} deleted, ddiff load --key {} checked the signature, rebuilt the volume from parity on the fly, and the offline side got the same manifest {}",
        sv.volumes.len() - 1,
        human_bytes(vsize),
        file_name(&signature),
        file_name(lost),
        file_name(&public.to_string_lossy()),
        gotv.digest()
    ));
    let report = serde_json::json!({
        "volumes": sv.volumes.len(),
        "volume_manifest": gotv.digest().to_string(),
        "volume_signature": signature,
        "bundle_bytes": summary.bundle_bytes,
        "full_bytes": summary.full_bytes,
        "carried_bytes": summary.carried_bytes,
        "manifest": got.digest().to_string(),
        "delta_bundle_bytes": s3.bundle_bytes,
        "delta_layer_level_bytes": s3.bundle_bytes - s3.deltas.patch_bytes + s3.deltas.patched_layer_bytes,
        "delta_manifest": got3.digest().to_string(),
        "seconds": started.elapsed().as_secs_f64(),
    });
    if global.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "done in {:.1}s: the offline side got demo/app:2 by carrying {} instead of {}, and its rebuild demo/app:3 by carrying {}.",
            started.elapsed().as_secs_f64(),
            human_bytes(summary.bundle_bytes),
            human_bytes(summary.full_bytes),
            human_bytes(s3.bundle_bytes)
        );
    }
    online.stop().await?;
    offline.stop().await?;
    Ok(ExitCode::SUCCESS)
}
