//! `ddiff server gc`: mark every blob a manifest revision references, sweep the rest.
//!
//! Like `registry:2 garbage-collect`, untagged manifests still count (they are reachable by
//! digest); deleting a manifest first (`DELETE /v2/<name>/manifests/<digest>`) makes its blobs
//! collectable. Blobs younger than `min_age` are kept, because a push in progress uploads its
//! layers before the manifest that references them. `_layers` links whose blob is gone are
//! removed too, so a repository never claims a blob it cannot serve.

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::time::{Duration, SystemTime};

use ddiff_core::Digest;

use super::storage::Storage;

/// What a collection found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Manifest revisions walked.
    pub manifests: usize,
    /// Blobs kept (referenced or too young).
    pub kept: usize,
    /// Blobs deleted (or that would be, on a dry run).
    pub deleted: Vec<Digest>,
    /// Bytes freed (or that would be).
    pub bytes: u64,
    /// Whether nothing was changed.
    pub dry_run: bool,
}

impl fmt::Display for GcReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        write!(
            f,
            "gc: {} manifests walked, {} blobs kept, {verb} {} blobs ({} bytes)",
            self.manifests,
            self.kept,
            self.deleted.len(),
            self.bytes
        )?;
        for d in &self.deleted {
            write!(f, "\n  {d}")?;
        }
        Ok(())
    }
}

/// Collects every digest a manifest's JSON names (`digest` fields anywhere, and schema 1's
/// `blobSum`), so manifests ddiff cannot fully parse still protect their blobs.
fn referenced(v: &serde_json::Value, out: &mut HashSet<Digest>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                if k == "digest" || k == "blobSum" {
                    if let Some(d) = v.as_str().and_then(|s| Digest::parse(s).ok()) {
                        out.insert(d);
                    }
                }
                referenced(v, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| referenced(v, out)),
        _ => {}
    }
}

/// Runs a collection over `storage`.
pub fn collect_garbage(
    storage: &Storage,
    dry_run: bool,
    min_age: Duration,
) -> io::Result<GcReport> {
    let mut marked = HashSet::new();
    let mut report = GcReport {
        dry_run,
        ..GcReport::default()
    };
    let repos = storage.walk_repositories()?;
    for repo in &repos {
        for d in storage.revisions(&repo.name)? {
            report.manifests += 1;
            if let Some(bytes) = storage.read_blob(&d)? {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes) {
                    referenced(&v, &mut marked);
                }
            }
            marked.insert(d);
        }
    }
    let now = SystemTime::now();
    for (d, modified) in storage.all_blobs()? {
        let young = now.duration_since(modified).unwrap_or_default() < min_age;
        if marked.contains(&d) || young {
            report.kept += 1;
            continue;
        }
        let size = storage.blob_size(&d)?.unwrap_or(0);
        if !dry_run {
            storage.delete_blob(&d)?;
        }
        report.bytes += size;
        report.deleted.push(d);
    }
    if !dry_run {
        for repo in &repos {
            for d in storage.layer_links(&repo.name)? {
                if storage.blob_size(&d)?.is_none() {
                    storage.unlink_blob(&repo.name, &d)?;
                }
            }
        }
    }
    report.deleted.sort();
    Ok(report)
}
