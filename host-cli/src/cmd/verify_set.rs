//! `ddiff verify` on a volume set (docs/bundle-format.md section 9): which volumes are
//! present, intact, damaged or missing, whether the set can be recovered (the exit status
//! says whether loading will work), `--repair` to rewrite the bad volumes from parity and
//! `--write-checksum` for a `SHA256SUMS` file of the whole set. The states and the decision
//! are the core's (`ddiff_core::volume::assess`); this file reads, prints and writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use ddiff_core::display::Safe;
use ddiff_core::inspect::{InspectOptions, Inspector};
use ddiff_core::volume::{parse_volume_file_name, VolumeState};
use serde::Serialize;

use super::verify::{Checksum, FileResult, VerifyArgs};
use crate::hash::fast_hasher;
use crate::progress::Progress;
use crate::volume_io::{self, Refused, VolumeSet};

/// One volume in a set's report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeReport {
    /// 1-based, as in the file name (`.003` is volume 3).
    pub volume: u32,
    /// Data or parity.
    pub parity: bool,
    /// The file, if found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// Its state.
    #[serde(flatten)]
    pub state: VolumeState,
}

/// What `verify` says about a set (`volumes` in `--json`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetReport {
    /// The set's digest (SHA-256 of its descriptor).
    pub set: String,
    /// Data volumes.
    pub data: u32,
    /// Parity volumes.
    pub parity: u32,
    /// Every volume.
    pub volumes: Vec<VolumeReport>,
    /// Every stripe has at most `parity` bad units.
    pub recoverable: bool,
    /// Volumes rewritten by `--repair`.
    pub repaired: Vec<PathBuf>,
    /// Files given or found that are not part of the set.
    pub refused: Vec<Refused>,
}

/// Splits `verify`'s arguments into plain bundle files and sets (volume files grouped by
/// their bundle name; a directory contributes every volume in it). A file named `NAME.NNN`
/// or ending with a volume footer is a volume.
pub fn split(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Vec<PathBuf>>) {
    let mut plain = Vec::new();
    let mut sets: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    let stem = |p: &Path| {
        p.file_name()
            .and_then(|n| parse_volume_file_name(&n.to_string_lossy()).map(|(s, _)| s.to_string()))
    };
    for p in paths {
        if p.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(p)
                .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
                .unwrap_or_default();
            found.sort();
            let mut volumes = 0;
            for f in found {
                if let Some(s) = stem(&f) {
                    sets.entry(s).or_default().push(f);
                    volumes += 1;
                }
            }
            // (Counted, not judged by new names: a directory may hold the rest of a set
            // whose other volumes were named before it.)
            if volumes == 0 {
                // Reported by the set reader ("no intact volume trailer").
                sets.entry(p.display().to_string())
                    .or_default()
                    .push(p.clone());
            }
        } else if let Some(s) = stem(p) {
            sets.entry(s).or_default().push(p.clone());
        } else if volume_io::is_volume(p) {
            sets.entry(p.display().to_string())
                .or_default()
                .push(p.clone());
        } else {
            plain.push(p.clone());
        }
    }
    (plain, sets.into_values().collect())
}

/// Verifies one set (and repairs it or writes its checksums when asked).
pub fn verify_set(paths: &[PathBuf], args: &VerifyArgs, progress: &Progress) -> FileResult {
    let started = Instant::now();
    let mut r = FileResult::unverified(&paths[0]);
    let mut repaired = Vec::new();
    let mut pass = 0;
    let (mut meta_bytes, mut meta, mut signature) = (Vec::new(), None, None);
    loop {
        pass += 1;
        let set = match VolumeSet::open(paths) {
            Ok(s) => s,
            Err(e) => {
                r.error = Some(super::error_line(&e));
                break;
            }
        };
        r.path = set.dir.join(&set.name);
        let item = progress.item(format!("{} (volume set)", set.name), set.bundle_size());
        let mut ins = Inspector::new(InspectOptions {
            hasher: fast_hasher,
            list_files: false,
            max_files: 0,
        });
        let opts = volume_io::AuditOptions {
            read_parity: true,
            hash_files: !args.no_checksum
                && (args.write_checksum || volume_io::sums_path(&set).exists()),
        };
        let audit = set.audit_pipelined(opts, |chunk| {
            item.inc(chunk.len() as u64);
            ins.feed(chunk).is_ok()
        });
        item.clear();
        let audit = match audit {
            Ok(a) => a,
            Err(e) => {
                r.error = Some(super::error_line(&e));
                break;
            }
        };
        let outcome = ins.finish();
        meta_bytes = ins.meta_bytes().unwrap_or_default().to_vec();
        meta = ins.meta().cloned();
        signature = Some(crate::signing::signature_of(&r.path, Some(&set)));
        r.bytes = outcome.bytes;
        r.blobs_verified = outcome.blobs_verified;
        if let Some(i) = &outcome.inspection {
            r.targets = i.targets.iter().map(|t| t.reference.clone()).collect();
            r.base = i.base.as_ref().map(|b| b.references.clone());
        }
        r.error = audit.rebuild_error.clone();
        // A stripe that cannot be rebuilt cuts the bundle short; say why, not "truncated".
        r.problem = outcome.problem.filter(|_| r.error.is_none());
        // Loading will work: the bundle read through (repaired where needed) is intact.
        r.ok = outcome.ok && r.error.is_none();
        let g = set.geometry;
        let bad: Vec<u32> = audit.assessment.bad_volumes().collect();
        r.volumes = Some(SetReport {
            set: set.set.to_string(),
            data: g.data,
            parity: g.parity,
            volumes: audit
                .assessment
                .states
                .iter()
                .enumerate()
                .map(|(i, s)| VolumeReport {
                    volume: i as u32 + 1,
                    parity: i as u32 >= g.data,
                    file: set.slots[i].path().map(Path::to_path_buf),
                    state: s.clone(),
                })
                .collect(),
            recoverable: audit.assessment.recoverable,
            repaired: repaired.clone(),
            refused: set.refused.clone(),
        });
        if args.repair && r.ok && !bad.is_empty() && pass == 1 {
            match set.repair(&bad) {
                Ok(files) => {
                    repaired = files;
                    continue;
                }
                Err(e) => {
                    r.ok = false;
                    r.error = Some(format!("repair failed: {}", super::error_line(&e)));
                    break;
                }
            }
        }
        r.checksum = if r.ok {
            sums(&set, &audit.file_sha, args, bad.is_empty())
        } else {
            Checksum::Skipped
        };
        if matches!(
            r.checksum,
            Checksum::Mismatch { .. } | Checksum::Unusable { .. }
        ) {
            r.ok = false;
        }
        break;
    }
    match signature {
        Some(sig) => {
            super::verify::check_keys(&mut r, args, &meta_bytes, meta.as_ref(), sig, || {
                crate::bundle_io::verify_source(paths, |_, _| {})
            })
        }
        None if args.key.key.is_some() => {
            r.signature = Some(super::verify::SignatureCheck::Skipped);
        }
        None => {}
    }
    r.seconds = started.elapsed().as_secs_f64();
    r.mb_per_s = r.bytes as f64 / 1e6 / r.seconds.max(1e-9);
    r
}

/// Checks or writes the set's `SHA256SUMS` file (`NAME.SHA256SUMS` beside its first volume).
fn sums(
    set: &VolumeSet,
    file_sha: &[Option<ddiff_core::Digest>],
    args: &VerifyArgs,
    intact: bool,
) -> Checksum {
    let side = volume_io::sums_path(set);
    if args.no_checksum {
        return Checksum::Skipped;
    }
    if side.exists() && !args.write_checksum {
        let text = match std::fs::read_to_string(&side) {
            Ok(t) => t,
            Err(e) => {
                return Checksum::Unusable {
                    file: side,
                    problem: format!("cannot read: {e}"),
                }
            }
        };
        for (i, sha) in file_sha.iter().enumerate() {
            let Some(sha) = sha else { continue };
            let name = ddiff_core::volume::volume_file_name(&set.name, i as u32);
            let want = super::verify::parse_checksum_file(&text, Path::new(&name));
            match want {
                Ok(h) if h == sha.hex() => {}
                Ok(h) => {
                    return Checksum::Mismatch {
                        file: side,
                        expected: format!("{h} ({name})"),
                        found: sha.hex().to_string(),
                    }
                }
                Err(problem) => {
                    return Checksum::Unusable {
                        file: side,
                        problem,
                    }
                }
            }
        }
        return Checksum::Ok {
            file: side,
            sha256: set.set.hex().to_string(),
        };
    }
    if !args.write_checksum {
        return Checksum::Absent;
    }
    match volume_io::sums_text(set, file_sha).filter(|_| intact) {
        None => Checksum::Unusable {
            file: side,
            problem: "not written: every volume must be present and intact (run --repair first)"
                .into(),
        },
        Some(text) => match crate::durable::write_whole(&side, "checksum", text.as_bytes()) {
            Ok(()) => Checksum::Written {
                file: side,
                sha256: set.set.hex().to_string(),
            },
            Err(e) => Checksum::Unusable {
                file: side,
                problem: format!("cannot write: {e}"),
            },
        },
    }
}

/// The lines a set adds to `verify`'s report: one per volume, then the verdict.
pub fn render(v: &SetReport, ok: bool) -> String {
    let mut s = format!(
        "\n     volume set {}: {} data + {} parity volume(s)",
        v.set, v.data, v.parity
    );
    let mut bad = Vec::new();
    for vol in &v.volumes {
        let file = vol.file.as_ref().map_or(String::new(), |f| {
            format!(" {}", Safe(&f.display().to_string()))
        });
        let kind = if vol.parity { "parity" } else { "data" };
        let state = match &vol.state {
            VolumeState::Intact => "intact".to_string(),
            VolumeState::Missing => "MISSING".to_string(),
            VolumeState::NotRead => "not read".to_string(),
            VolumeState::Damaged {
                bad_units,
                units,
                problem,
            } => format!(
                "DAMAGED ({bad_units} of {units} units bad: {})",
                Safe(problem)
            ),
        };
        if !matches!(vol.state, VolumeState::Intact | VolumeState::NotRead) {
            bad.push(vol.volume);
        }
        s += &format!("\n     volume {} ({kind}){file}: {state}", vol.volume);
    }
    for f in &v.refused {
        s += &format!(
            "\n     not used: {}: {}",
            Safe(&f.path.display().to_string()),
            Safe(&f.why)
        );
    }
    for f in &v.repaired {
        s += &format!("\n     rewrote {}", Safe(&f.display().to_string()));
    }
    let list = bad
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    s += &if bad.is_empty() {
        "\n     every volume is intact; loading will work".to_string()
    } else if v.recoverable && ok {
        format!(
            "\n     volume(s) {list} missing or damaged; recoverable from parity: loading will work (ddiff verify --repair rewrites them)"
        )
    } else {
        format!(
            "\n     volume(s) {list} missing or damaged; NOT recoverable (more bad units in a stripe than the {} parity volume(s) cover): loading will fail",
            v.parity
        )
    };
    s
}
