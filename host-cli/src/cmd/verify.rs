//! `ddiff verify BUNDLE...`: is the file intact? Streams each bundle through the core's
//! verifying decoder (every blob's digest and size, the tar structure, the metadata against
//! the manifests) and checks or writes `BUNDLE.sha256`, a `sha256sum -c` file, so the copy on
//! the other side can also be checked with standard tools.
//!
//! Two cores: a reader thread reads the file (and hashes all of it when a `.sha256` is
//! checked or written) while this thread runs the decoder, which hashes each blob.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use ddiff_core::display::{safe_text, Safe};
use ddiff_core::inspect::{InspectOptions, Inspector, Problem};
use ddiff_core::Digest;
use serde::Serialize;

use crate::bundle_io::{self, Format};
use crate::hash::fast_hasher;
use crate::progress::{human_bytes, Mode, Progress};

/// Check that bundles are intact before carrying or loading them.
///
/// Streams each file once through the same decoder `ddiff load` uses: every blob's digest
/// and size, the tar structure, and the metadata against the manifests. Names the first bad
/// blob (or the byte offset of a truncation). Exits 0 only if every bundle is intact. If
/// BUNDLE.sha256 exists beside a bundle (the sha256sum format), it is checked too, so the
/// copy can also be checked with `sha256sum -c` where ddiff is not installed.
///
/// A volume set (NAME.ddiff.001 …, written by `diff --volume-size`) is verified as one:
/// give any volume, several (in any order, from several directories) or a directory. Each
/// volume is reported intact, damaged or missing, and whether the set is recoverable from
/// its parity; the exit status is 0 when loading will work. --repair rewrites the missing
/// and damaged volumes; --write-checksum writes NAME.ddiff.SHA256SUMS for `sha256sum -c`.
///
/// Example: ddiff verify --write-checksum app-2.ddiff   (then carry both files)
#[derive(clap::Args, Debug, Clone)]
pub struct VerifyArgs {
    /// Bundle files (ddiff v1, or original DockerDiff `.tar.gz`), volumes of a set, or
    /// directories holding volumes.
    #[arg(required = true, value_name = "BUNDLE")]
    pub bundles: Vec<PathBuf>,
    /// Write `BUNDLE.sha256` (the `sha256sum` format) beside each intact bundle.
    #[arg(long)]
    pub write_checksum: bool,
    /// Do not check an existing `BUNDLE.sha256`.
    #[arg(long, conflicts_with = "write_checksum")]
    pub no_checksum: bool,
    #[command(flatten)]
    pub key: crate::signing::KeyArgs,
    /// Also require every target to carry a cosign image signature by --key (checked as
    /// `load --require-signature` does); BUNDLE.sig is then checked when present, not required.
    #[arg(long, requires = "key")]
    pub require_signature: bool,
    /// Rewrite the missing and damaged volumes of a set from its parity (durably, each
    /// checked against its digest first).
    #[arg(long)]
    pub repair: bool,
}

/// The state of the `.sha256` side file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum Checksum {
    /// No side file (and none asked for).
    Absent,
    /// Not checked (`--no-checksum`, or the bundle was already found damaged).
    Skipped,
    /// The side file matches.
    Ok { file: PathBuf, sha256: String },
    /// The side file names another hash: the copy differs from what was checksummed.
    Mismatch {
        file: PathBuf,
        expected: String,
        found: String,
    },
    /// The side file was written.
    Written { file: PathBuf, sha256: String },
    /// The side file exists but has no line for this bundle.
    Unusable { file: PathBuf, problem: String },
}

/// The result for one bundle (`--json` prints a list of these).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileResult {
    /// The bundle.
    pub path: PathBuf,
    /// True when the bundle is intact and the side file, if any, matches.
    pub ok: bool,
    /// `v1` or `legacy`.
    pub format: &'static str,
    /// Bytes read.
    pub bytes: u64,
    /// Wall time.
    pub seconds: f64,
    /// Throughput in MB/s (10^6 bytes).
    pub mb_per_s: f64,
    /// Blobs whose digest and size were verified.
    pub blobs_verified: usize,
    /// Target references.
    pub targets: Vec<String>,
    /// The base the destination needs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<Vec<String>>,
    /// What is wrong (v1 bundles: structured, naming the blob and offset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<Problem>,
    /// What is wrong, for original bundles and IO errors.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The side file.
    pub checksum: Checksum,
    /// The bundle signature (`--key`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signature: Option<SignatureCheck>,
    /// The targets' cosign signatures (`--require-signature`): one line per signed target, or
    /// the refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_signatures: Option<Result<Vec<String>, String>>,
    /// A volume set's volumes, when the bundle is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<super::verify_set::SetReport>,
}

/// The bundle signature's state (`--key`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum SignatureCheck {
    /// `BUNDLE.sig` is the key's signature over the bundle's metadata.
    Ok(crate::signing::SignatureOk),
    /// Missing, malformed or not the key's.
    Refused { problem: String },
    /// Not checked: the bundle is not intact.
    Skipped,
}

/// Runs `ddiff verify`.
pub async fn run(args: VerifyArgs, global: &crate::cmd::Global) -> Result<ExitCode> {
    let (quiet, json) = (global.quiet, global.json);
    tokio::task::spawn_blocking(move || run_blocking(&args, quiet, json))
        .await
        .context("verify task failed")?
}

fn run_blocking(args: &VerifyArgs, quiet: bool, json: bool) -> Result<ExitCode> {
    // A key that cannot be read is the command's error, not each bundle's.
    if let Some(k) = &args.key.key {
        crate::signing::read_public_key(k)?;
    }
    let progress = Progress::new(Mode::detect(quiet || json));
    let mut results = Vec::new();
    let (plain, sets) = super::verify_set::split(&args.bundles);
    let each = plain.iter().map(|p| verify_one(p, args, &progress)).chain(
        sets.iter()
            .map(|s| super::verify_set::verify_set(s, args, &progress)),
    );
    for r in each {
        if !json && !quiet {
            println!("{}", render(&r));
        } else if !json && !r.ok {
            eprintln!("{}", render(&r));
        }
        results.push(r);
    }
    if json {
        println!("{}", ddiff_core::display::json_pretty(&results)?);
    }
    Ok(if results.iter().all(|r| r.ok) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The side file of a bundle: `BUNDLE.sha256`.
pub fn checksum_path(bundle: &Path) -> PathBuf {
    let mut s = bundle.as_os_str().to_owned();
    s.push(".sha256");
    PathBuf::from(s)
}

/// The line `sha256sum` writes for a file: `<hex>  <name>`.
pub fn checksum_line(sha256: &Digest, bundle: &Path) -> String {
    let name = bundle.file_name().map_or_else(
        || bundle.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    format!("{}  {name}\n", sha256.hex())
}

/// Finds the expected hex for `bundle` in a `sha256sum` file (text `  ` or binary ` *`
/// separator; a file with a single line is taken whatever name it gives).
pub fn parse_checksum_file(text: &str, bundle: &Path) -> Result<String, String> {
    let name = bundle
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut entries = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (hex, rest) = line
            .split_once(' ')
            .ok_or_else(|| format!("not a sha256sum line: {line:?}"))?;
        let file = rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*'));
        let file = file.ok_or_else(|| format!("not a sha256sum line: {line:?}"))?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("not a SHA-256 hex digest: {hex:?}"));
        }
        entries.push((hex.to_ascii_lowercase(), file.to_string()));
    }
    let by_name = entries.iter().find(|(_, f)| {
        f == &name
            || Path::new(f)
                .file_name()
                .is_some_and(|n| n.to_string_lossy() == name)
    });
    match (by_name, entries.as_slice()) {
        (Some((h, _)), _) => Ok(h.clone()),
        (None, [(h, _)]) => Ok(h.clone()),
        (None, []) => Err("empty checksum file".into()),
        (None, _) => Err(format!("no line for {name}")),
    }
}

impl FileResult {
    /// The result for `path` before anything was checked: not ok, nothing counted.
    pub fn unverified(path: &Path) -> FileResult {
        FileResult {
            path: path.to_path_buf(),
            ok: false,
            format: "v1",
            bytes: 0,
            seconds: 0.0,
            mb_per_s: 0.0,
            blobs_verified: 0,
            targets: Vec::new(),
            base: None,
            problem: None,
            error: None,
            checksum: Checksum::Absent,
            signature: None,
            image_signatures: None,
            volumes: None,
        }
    }
}

/// Verifies one bundle (and its side file).
pub fn verify_one(path: &Path, args: &VerifyArgs, progress: &Progress) -> FileResult {
    let started = Instant::now();
    let side = checksum_path(path);
    let check_side = !args.no_checksum && side.exists();
    let hash_file = check_side || args.write_checksum;
    let mut r = FileResult::unverified(path);
    let (mut meta_bytes, mut meta) = (Vec::new(), None);
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let item = progress.item(path.display().to_string(), size);
    let file_sha = match bundle_io::detect(path) {
        Err(e) => {
            r.error = Some(super::error_line(&e));
            None
        }
        Ok(Format::V1) => {
            let mut ins = Inspector::new(InspectOptions {
                hasher: fast_hasher,
                list_files: false,
                max_files: 0,
            });
            let streamed = bundle_io::stream_file(path, hash_file, |chunk| {
                item.inc(chunk.len() as u64);
                ins.feed(chunk).is_ok()
            });
            let outcome = ins.finish();
            meta_bytes = ins.meta_bytes().unwrap_or_default().to_vec();
            meta = ins.meta().cloned();
            r.blobs_verified = outcome.blobs_verified;
            if let Some(i) = &outcome.inspection {
                r.targets = i.targets.iter().map(|t| t.reference.clone()).collect();
                r.base = i.base.as_ref().map(|b| b.references.clone());
            } else if let Some(m) = ins.meta() {
                r.targets = m.targets.iter().map(|t| t.reference.clone()).collect();
            }
            match streamed {
                Ok(s) => {
                    r.bytes = s.bytes;
                    r.problem = outcome.problem;
                    r.ok = outcome.ok;
                    s.file_sha256
                }
                Err(e) => {
                    r.bytes = outcome.bytes;
                    r.error = Some(super::error_line(&e));
                    None
                }
            }
        }
        Ok(Format::Legacy) => {
            r.format = "legacy";
            let mut last = 0;
            let verified = bundle_io::verify_file(path, |done, _| {
                item.inc(done.saturating_sub(last));
                last = done;
            });
            match verified {
                Ok(v) => {
                    r.ok = true;
                    r.bytes = v.file_size;
                    r.blobs_verified = v.report.meta.blobs.len();
                    r.targets = v
                        .report
                        .meta
                        .targets
                        .iter()
                        .map(|t| t.reference.clone())
                        .collect();
                    r.base = v.report.meta.base.as_ref().map(|b| b.references.clone());
                    if hash_file {
                        match bundle_io::stream_file(path, true, |_| true) {
                            Ok(s) => s.file_sha256,
                            Err(e) => {
                                r.ok = false;
                                r.error = Some(super::error_line(&e));
                                None
                            }
                        }
                    } else {
                        None
                    }
                }
                Err(e) => {
                    r.error = Some(super::error_line(&e));
                    None
                }
            }
        }
    };
    item.clear();
    r.checksum = if !r.ok {
        if check_side {
            Checksum::Skipped
        } else {
            Checksum::Absent
        }
    } else {
        side_file(path, &side, check_side, args, file_sha.as_ref())
    };
    if matches!(
        r.checksum,
        Checksum::Mismatch { .. } | Checksum::Unusable { .. }
    ) {
        r.ok = false;
    }
    check_keys(
        &mut r,
        args,
        &meta_bytes,
        meta.as_ref(),
        crate::signing::signature_path(path),
        || bundle_io::verify_file(path, |_, _| {}),
    );
    r.seconds = started.elapsed().as_secs_f64();
    r.mb_per_s = r.bytes as f64 / 1e6 / r.seconds.max(1e-9);
    r
}

/// `--key` and `--require-signature` for a bundle (plain or a set) whose verification is in
/// `r` (`meta` its metadata, `meta_bytes` their exact bytes): what the core's `key_checks`
/// asks for, the targets' cosign signatures (reading the bundle again through `reread`) and
/// the bundle signature `sig`. Any failing makes `r` not ok.
pub fn check_keys(
    r: &mut FileResult,
    args: &VerifyArgs,
    meta_bytes: &[u8],
    meta: Option<&ddiff_core::bundle::meta::BundleMeta>,
    sig: PathBuf,
    reread: impl FnOnce() -> Result<bundle_io::VerifiedBundle>,
) {
    let Some(k) = &args.key.key else { return };
    let wanted = match meta {
        Some(m) if r.ok => {
            ddiff_core::provenance::key_checks(m, sig.exists(), args.require_signature)
        }
        // Not intact: nothing is checked, the bundle signature reported skipped.
        _ => ddiff_core::provenance::KeyChecks {
            bundle_signature: true,
            image_signatures: false,
        },
    };
    if wanted.image_signatures && r.ok {
        let checked = crate::signing::read_public_key(k)
            .and_then(|key| crate::signing::check_image_signatures(&reread()?, &key));
        let checked = checked.map_err(|e| super::error_line(&e));
        r.ok &= checked.is_ok();
        r.image_signatures = Some(checked);
    }
    if !wanted.bundle_signature {
        return;
    }
    let check = if r.ok {
        let checked = crate::signing::read_public_key(k)
            .and_then(|k| crate::signing::check_bundle_signature(&r.path, sig, meta_bytes, &k));
        match checked {
            Ok(ok) => SignatureCheck::Ok(ok),
            Err(e) => SignatureCheck::Refused {
                problem: super::error_line(&e),
            },
        }
    } else {
        SignatureCheck::Skipped
    };
    r.ok &= matches!(check, SignatureCheck::Ok(_));
    r.signature = Some(check);
}

fn side_file(
    bundle: &Path,
    side: &Path,
    check: bool,
    args: &VerifyArgs,
    sha: Option<&Digest>,
) -> Checksum {
    if args.no_checksum {
        return Checksum::Skipped;
    }
    let Some(sha) = sha else {
        return if check || args.write_checksum {
            Checksum::Unusable {
                file: side.to_path_buf(),
                problem: "the whole file could not be hashed".into(),
            }
        } else {
            Checksum::Absent
        };
    };
    let found = sha.hex().to_string();
    if check {
        let parsed = std::fs::read_to_string(side)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|t| parse_checksum_file(&t, bundle));
        match parsed {
            Err(problem) => {
                return Checksum::Unusable {
                    file: side.to_path_buf(),
                    problem,
                }
            }
            Ok(expected) if expected != found => {
                return Checksum::Mismatch {
                    file: side.to_path_buf(),
                    expected,
                    found,
                }
            }
            Ok(_) if !args.write_checksum => {
                return Checksum::Ok {
                    file: side.to_path_buf(),
                    sha256: found,
                }
            }
            Ok(_) => {}
        }
    }
    if args.write_checksum {
        // Written whole: a checksum file cut short would read as a mismatch.
        return match crate::durable::write_whole(
            side,
            "checksum",
            checksum_line(sha, bundle).as_bytes(),
        ) {
            Ok(()) => Checksum::Written {
                file: side.to_path_buf(),
                sha256: found,
            },
            Err(e) => Checksum::Unusable {
                file: side.to_path_buf(),
                problem: format!("cannot write: {e}"),
            },
        };
    }
    Checksum::Absent
}

/// The human line(s) for one result. Every string that comes from the bundle, its side file
/// or its name is shown through [`Safe`]: escaped and capped, so no crafted reference can
/// start a line of its own (`ok  … intact`) or drive the terminal.
pub fn render(r: &FileResult) -> String {
    let name = safe_path(&r.path);
    let mut s = if r.problem.is_none() && r.error.is_none() {
        let base = match &r.base {
            Some(b) if !b.is_empty() => format!(", needs base {}", Safe(&b.join(", "))),
            Some(_) => String::new(),
            None => ", self-contained".into(),
        };
        format!(
            "{} {name}: intact ({} blobs verified, target {}{base}; {} in {:.2} s, {:.0} MB/s)",
            if r.ok { "ok  " } else { "FAIL" },
            r.blobs_verified,
            Safe(&r.targets.join(", ")),
            human_bytes(r.bytes),
            r.seconds,
            r.mb_per_s
        )
    } else if let Some(p) = &r.problem {
        let which = p.blob.as_ref().map_or(String::new(), |b| {
            format!(
                "\n     blob {} of its bundle: {} ({:?}, {} bytes, {} read)",
                b.index + 1,
                b.digest,
                b.kind,
                b.size,
                b.bytes_read
            )
        });
        format!(
            "FAIL {name}: NOT INTACT ({:?} at offset {}): {}{which}",
            p.kind,
            p.offset,
            Safe(&p.message)
        )
    } else {
        format!(
            "FAIL {name}: NOT INTACT: {}",
            Safe(r.error.as_deref().unwrap_or("unknown error"))
        )
    };
    match &r.checksum {
        Checksum::Ok { file, .. } => s += &format!("\n     sha256 matches {}", safe_path(file)),
        Checksum::Written { file, sha256 } => {
            s += &format!("\n     wrote {} (sha256 {sha256})", safe_path(file))
        }
        Checksum::Mismatch {
            file,
            expected,
            found,
        } => {
            s += &format!(
                "\n     sha256 MISMATCH with {}: it says {expected}, the file hashes to {found}",
                safe_path(file)
            );
            // Every blob verified: the bundle is sound, so the side file is stale (the
            // bundle was rewritten) or the copy was altered between blobs. Say how to
            // replace it on purpose; it is never overwritten silently.
            if r.problem.is_none() && r.error.is_none() {
                s += &format!(
                    "\n     every blob is intact; if the bundle was rebuilt on purpose, delete {} and run `ddiff verify --write-checksum` again",
                    safe_path(file)
                );
            }
        }
        Checksum::Unusable { file, problem } => {
            s += &format!("\n     cannot use {}: {}", safe_path(file), Safe(problem))
        }
        Checksum::Skipped | Checksum::Absent => {}
    }
    match &r.signature {
        Some(SignatureCheck::Ok(ok)) => {
            s += &format!(
                "\n     signed: {} is the signature of {} key {}",
                safe_path(&ok.file),
                ok.algorithm,
                ok.key_id
            )
        }
        Some(SignatureCheck::Refused { problem }) => {
            s += &format!("\n     SIGNATURE REFUSED: {}", Safe(problem))
        }
        Some(SignatureCheck::Skipped)
            if r.image_signatures.as_ref().is_some_and(|c| c.is_err()) => {}
        Some(SignatureCheck::Skipped) => {
            s += "\n     signature not checked: the bundle is not intact"
        }
        None => {}
    }
    match &r.image_signatures {
        Some(Ok(lines)) => {
            for l in lines {
                s += &format!("\n     {l}");
            }
        }
        Some(Err(problem)) => s += &format!("\n     IMAGE SIGNATURE REFUSED: {}", Safe(problem)),
        None => {}
    }
    if let Some(v) = &r.volumes {
        s += &super::verify_set::render(v, r.ok);
    }
    s
}

/// A file name as shown: a bundle's name came over the air gap too.
fn safe_path(p: &Path) -> String {
    safe_text(&p.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ddiff_core::synth_bundle::{sample, SampleOptions};

    fn args(write: bool) -> VerifyArgs {
        VerifyArgs {
            bundles: vec![],
            write_checksum: write,
            no_checksum: false,
            key: Default::default(),
            require_signature: false,
            repair: false,
        }
    }

    #[test]
    fn checksum_file_parsing() {
        let h = "a".repeat(64);
        let p = Path::new("/x/app.bundle");
        assert_eq!(
            parse_checksum_file(&format!("{h}  app.bundle\n"), p),
            Ok(h.clone())
        );
        assert_eq!(
            parse_checksum_file(&format!("{h} *other\n"), p),
            Ok(h.clone())
        );
        let two = format!("{}  a\n{h}  app.bundle\n", "b".repeat(64));
        assert_eq!(parse_checksum_file(&two, p), Ok(h.clone()));
        assert!(parse_checksum_file(&format!("{}  a\n{h}  b\n", "b".repeat(64)), p).is_err());
        assert!(parse_checksum_file("xyz  app.bundle", p).is_err());
        assert!(parse_checksum_file("", p).is_err());
    }

    #[test]
    fn writes_then_checks_the_side_file_and_notices_a_changed_copy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.bundle");
        let bytes = sample(SampleOptions::default()).encode();
        std::fs::write(&path, &bytes).unwrap();
        let progress = Progress::new(Mode::Quiet);
        let r = verify_one(&path, &args(true), &progress);
        assert!(r.ok, "{r:?}");
        let Checksum::Written { sha256, .. } = &r.checksum else {
            panic!("{:?}", r.checksum)
        };
        assert_eq!(sha256, Digest::sha256(&bytes).hex());
        let line = std::fs::read_to_string(checksum_path(&path)).unwrap();
        assert_eq!(
            line,
            format!("{}  app.bundle\n", Digest::sha256(&bytes).hex())
        );
        let r = verify_one(&path, &args(false), &progress);
        assert!(matches!(r.checksum, Checksum::Ok { .. }), "{r:?}");
        assert_eq!(r.targets, ["demo/app:2"]);
        assert_eq!(r.blobs_verified, 4);
        // Same bundle content, different side file: the copy is not what was checksummed.
        std::fs::write(
            checksum_path(&path),
            format!("{}  app.bundle\n", "0".repeat(64)),
        )
        .unwrap();
        let r = verify_one(&path, &args(false), &progress);
        assert!(!r.ok);
        assert!(matches!(r.checksum, Checksum::Mismatch { .. }));
        assert!(render(&r).contains("MISMATCH"));
        assert!(
            render(&r).contains("--write-checksum` again"),
            "{}",
            render(&r)
        );
        // --write-checksum never replaces a side file that disagrees.
        let r = verify_one(&path, &args(true), &progress);
        assert!(!r.ok);
        assert!(matches!(r.checksum, Checksum::Mismatch { .. }));
        assert!(std::fs::read_to_string(checksum_path(&path))
            .unwrap()
            .starts_with(&"0".repeat(64)));
    }
}
