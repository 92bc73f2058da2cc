//! `ddiff inspect BUNDLE [--files] [--json]`: what a bundle holds, verified in the same pass:
//! the targets, the base it needs, each layer (carried or relied on, size, media type, the
//! Dockerfile step that made it), bytes carried against the full image and, with `--files`,
//! the file tree of the carried layers with deletions marked. All of it comes from
//! `ddiff_core::inspect`; this file only reads the file and prints.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use ddiff_core::display::{file_line, human_bytes, safe_text, short_media_type, Safe};
use ddiff_core::inspect::{InspectOptions, Inspector, LayerListing, Outcome};

use crate::bundle_io::{self, Format};
use crate::hash::fast_hasher;
use crate::progress::{Mode, Progress};

/// Show what a bundle holds (targets, base, layers with their Dockerfile steps, files).
///
/// Also takes an image instead of a bundle: oci:DIR[:REF], oci-archive:FILE[:REF],
/// docker-archive:FILE[:NAME:TAG] or docker-daemon:NAME:TAG. It is then written to a temporary self-contained bundle (every
/// layer carried; layers from Docker archives and the engine are gzip-compressed on the way)
/// and inspected like one.
#[derive(clap::Args, Debug, Clone)]
pub struct InspectArgs {
    /// The bundle file (ddiff format v1), or an image with a transport prefix.
    #[arg(value_name = "BUNDLE|IMAGE")]
    pub bundle: PathBuf,
    /// More volumes of a set, or directories holding them, in any order (a volume's
    /// siblings beside it are found without naming them). Missing or damaged volumes are
    /// rebuilt from parity as they are read.
    #[arg(value_name = "VOLUME")]
    pub more: Vec<PathBuf>,
    /// Also list the files of the carried layers (paths, sizes, modes, deletions).
    #[arg(long)]
    pub files: bool,
    /// At most this many file entries are kept (all are counted).
    #[arg(long, default_value_t = 200_000, value_name = "N")]
    pub max_files: usize,
}

/// An `inspect` argument that names an image rather than a bundle file.
fn image_input(arg: &std::path::Path) -> Option<String> {
    let s = arg.to_str()?;
    let explicit = ["oci:", "docker-archive:", "docker-daemon:", "oci-archive:"]
        .iter()
        .any(|p| s.starts_with(p));
    (explicit && !arg.exists()).then(|| s.to_string())
}

/// Runs `ddiff inspect`.
pub async fn run(mut args: InspectArgs, global: &crate::cmd::Global) -> Result<ExitCode> {
    // Images are inspected through a temporary self-contained bundle (same code, same view).
    let mut label = None;
    let _tmp = match image_input(&args.bundle) {
        Some(image) => {
            let dir = tempfile::Builder::new()
                .prefix("ddiff-inspect-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let out = dir.path().join("image.ddiff");
            let quiet = crate::cmd::Global {
                quiet: true,
                json: false,
                ..global.clone()
            };
            super::diff::diff(
                &super::diff::DiffArgs {
                    base: "scratch".into(),
                    targets: vec![image.clone()],
                    output: Some(out.clone()),
                    platform: super::PlatformArgs::default(),
                    compress: crate::compress::CompressArgs::default(),
                    delta: crate::delta::DeltaArgs::default(),
                    sign: Default::default(),
                    no_provenance: false,
                    volumes: Default::default(),
                },
                &quiet,
            )
            .await
            .with_context(|| format!("cannot read {image}"))?;
            label = Some(PathBuf::from(&image));
            args.bundle = out;
            Some(dir)
        }
        None => None,
    };
    let (quiet, json) = (global.quiet, global.json);
    let label = label.unwrap_or_else(|| args.bundle.clone());
    tokio::task::spawn_blocking(move || run_blocking(&args, &label, quiet, json))
        .await
        .context("inspect task failed")?
}

fn run_blocking(
    args: &InspectArgs,
    label: &std::path::Path,
    quiet: bool,
    json: bool,
) -> Result<ExitCode> {
    let outcome = inspect_file(args, &Progress::new(Mode::detect(quiet || json)))?;
    if json {
        println!("{}", ddiff_core::display::json_pretty(&outcome)?);
    } else {
        print!("{}", render(label, &outcome, args.files));
    }
    Ok(if outcome.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Reads and inspects one bundle.
pub fn inspect_file(args: &InspectArgs, progress: &Progress) -> Result<Outcome> {
    let path = &args.bundle;
    let paths: Vec<PathBuf> = std::iter::once(path).chain(&args.more).cloned().collect();
    if crate::volume_io::names_a_set(&paths) {
        let set = crate::volume_io::VolumeSet::open(&paths)?;
        let item = progress.item(format!("{} (volume set)", set.name), set.bundle_size());
        let mut ins = inspector(args);
        let audit = set.audit_pipelined(crate::volume_io::AuditOptions::default(), |chunk| {
            item.inc(chunk.len() as u64);
            ins.feed(chunk).is_ok()
        })?;
        item.clear();
        if let Some(why) = audit.rebuild_error {
            anyhow::bail!("{}: {why}", set.name);
        }
        return Ok(ins.finish());
    }
    if bundle_io::detect(path)? == Format::Legacy {
        anyhow::bail!(
            "{}: an original DockerDiff bundle; `ddiff inspect` reads ddiff v1 bundles \
             (`ddiff verify` checks both)",
            path.display()
        );
    }
    let size = std::fs::metadata(path)
        .with_context(|| format!("cannot open bundle {}", path.display()))?
        .len();
    let item = progress.item(path.display().to_string(), size);
    let mut ins = inspector(args);
    bundle_io::stream_file(path, false, |chunk| {
        item.inc(chunk.len() as u64);
        ins.feed(chunk).is_ok()
    })?;
    item.clear();
    Ok(ins.finish())
}

fn inspector(args: &InspectArgs) -> Inspector {
    Inspector::new(InspectOptions {
        hasher: fast_hasher,
        list_files: args.files,
        max_files: args.max_files,
    })
}

/// The human report. Every string from the bundle (tool, dates, references, platforms, media
/// types, history lines, paths, problem messages) is shown through [`Safe`].
pub fn render(path: &std::path::Path, o: &Outcome, files: bool) -> String {
    let mut s = String::new();
    let verdict = if o.ok {
        "INTACT: every blob's digest and size verified".to_string()
    } else {
        match &o.problem {
            Some(p) => format!("NOT INTACT ({:?}): {}", p.kind, Safe(&p.message)),
            None => "NOT INTACT".into(),
        }
    };
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        "Bundle   {}  ({})",
        safe_text(&path.display().to_string()),
        human_bytes(o.bytes)
    );
    let _ = writeln!(s, "Verdict  {verdict}");
    let Some(ins) = &o.inspection else {
        return s;
    };
    let _ = writeln!(
        s,
        "Written  by {}{}",
        Safe(&ins.tool),
        ins.created
            .as_ref()
            .map_or(String::new(), |c| format!(" at {}", Safe(c)))
    );
    match &ins.base {
        Some(b) if !b.inventories.is_empty() => {
            let _ = writeln!(
                s,
                "Base     {} (what the site held when its inventory was taken; {} relied on)",
                Safe(&b.references.join(", ")),
                human_bytes(ins.relied_bytes)
            );
        }
        Some(b) => {
            let _ = writeln!(
                s,
                "Base     {} ({} layers must already be at the destination, {})",
                Safe(&b.references.join(", ")),
                b.diff_ids.len(),
                human_bytes(ins.relied_bytes)
            );
        }
        None => {
            let _ = writeln!(s, "Base     none (self-contained)");
        }
    }
    let _ = writeln!(
        s,
        "Carried  {} in {} blobs",
        human_bytes(ins.carried_bytes),
        ins.blob_count
    );
    let history_of = |idx: usize| {
        ins.targets
            .iter()
            .flat_map(|t| t.images.iter())
            .flat_map(|i| i.layers.iter())
            .find(|l| l.blob_index == Some(idx))
            .and_then(|l| l.created_by.clone())
    };
    for t in &ins.targets {
        let _ = writeln!(s, "\nTarget   {}  {}", Safe(&t.reference), t.digest);
        for img in &t.images {
            let pct = if img.full_bytes == 0 {
                0.0
            } else {
                100.0 * img.carried_bytes as f64 / img.full_bytes as f64
            };
            let _ = writeln!(
                s,
                "  {}  manifest {}  config {}\n  carried {} of the full image's {} ({pct:.0}%)",
                Safe(&img.platform),
                img.manifest.short(),
                img.config.short(),
                human_bytes(img.carried_bytes),
                human_bytes(img.full_bytes)
            );
            let _ = writeln!(
                s,
                "  {:>2}  {:<7}  {:>9}  {:<14}  {:<19}  CREATED BY",
                "#", "", "SIZE", "TYPE", "DIGEST"
            );
            for (i, l) in img.layers.iter().enumerate() {
                let by = l.created_by.as_deref().unwrap_or("-");
                let by: String = by.split_whitespace().collect::<Vec<_>>().join(" ");
                let _ = writeln!(
                    s,
                    "  {:>2}  {:<7}  {:>9}  {:<14}  {}  {}",
                    i + 1,
                    if l.carried { "carried" } else { "relied" },
                    human_bytes(l.size),
                    Safe(&short_media_type(l.media_type.as_str())),
                    l.digest.short(),
                    Safe(&by)
                );
                if let Some(p) = &l.patch {
                    let _ = writeln!(s, "      {}", ddiff_core::display::patch_note(p, l.size));
                }
            }
        }
    }
    if !ins.artifacts.is_empty() {
        let _ = writeln!(
            s,
            "\nProvenance ({} artifact(s), written with the targets):",
            ins.artifacts.len()
        );
        for a in &ins.artifacts {
            let what = a.kind_text();
            let extra = a.type_text().map_or(String::new(), |t| format!(" {t}"));
            let _ = writeln!(
                s,
                "  {what:<10} {} of {}{extra}{}",
                a.digest.short(),
                a.subject.short(),
                a.tag
                    .as_ref()
                    .map_or(String::new(), |t| format!(" (tag {t})"))
            );
        }
    }
    if files {
        for l in &o.layers {
            listing(&mut s, l, history_of(l.blob_index));
        }
    }
    if let Some(p) = &o.problem {
        if let Some(b) = &p.blob {
            let _ = writeln!(
                s,
                "\nDamaged  blob {} ({:?}, {} of {} bytes read) at offset {}",
                b.digest, b.kind, b.bytes_read, b.size, p.offset
            );
        }
    }
    s
}

fn listing(s: &mut String, l: &LayerListing, created_by: Option<String>) {
    let _ = writeln!(
        s,
        "\nFiles of layer {} ({} entries, {} uncompressed){}",
        l.digest.short(),
        l.file_count,
        human_bytes(l.uncompressed_bytes),
        created_by.map_or(String::new(), |c| format!("\n  made by: {}", Safe(&c)))
    );
    for f in &l.files {
        let _ = writeln!(s, "{}", file_line(f));
    }
    if (l.files.len() as u64) < l.file_count {
        let _ = writeln!(
            s,
            "  … {} more entries not shown (--max-files)",
            l.file_count - l.files.len() as u64
        );
    }
    if let Some(e) = &l.error {
        let _ = writeln!(s, "  (listing stopped: {})", Safe(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddiff_core::synth_bundle::{sample, SampleOptions};

    #[test]
    fn human_report_shows_layers_history_and_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.bundle");
        std::fs::write(&path, sample(SampleOptions::default()).encode()).unwrap();
        let args = InspectArgs {
            bundle: path.clone(),
            more: Vec::new(),
            files: true,
            max_files: 1000,
        };
        let o = inspect_file(&args, &Progress::new(Mode::Quiet)).unwrap();
        assert!(o.ok);
        let text = render(&path, &o, true);
        for want in [
            "Verdict  INTACT",
            "Base     demo/base:1 (2 layers",
            "Target   demo/app:2",
            "relied",
            "carried",
            "COPY app/ /app/",
            "-rwxr-xr-x",
            "app/current -> server",
            "etc/motd  (deleted)",
            "var/cache/  (opaque",
            "hello_ddiff.txt",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        // Damaged: the verdict names the blob, the contents are still shown.
        let mut bytes = std::fs::read(&path).unwrap();
        let n = bytes.len();
        bytes.truncate(n - 1500);
        std::fs::write(&path, &bytes).unwrap();
        let o = inspect_file(&args, &Progress::new(Mode::Quiet)).unwrap();
        assert!(!o.ok);
        let text = render(&path, &o, false);
        assert!(text.contains("NOT INTACT (Truncated)"), "{text}");
        assert!(text.contains("Target   demo/app:2"), "{text}");
    }
}
