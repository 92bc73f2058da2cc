//! Filesystem storage laid out exactly like `registry:2` (distribution's filesystem driver),
//! so either server can serve a directory the other wrote:
//!
//! ```text
//! <root>/docker/registry/v2/
//!   blobs/<alg>/<first two hex>/<hex>/data                  content, manifests included
//!   repositories/<name>/
//!     _layers/<alg>/<hex>/link                               "sha256:…": blob is in this repo
//!     _manifests/revisions/<alg>/<hex>/link                  manifest is in this repo
//!     _manifests/tags/<tag>/current/link                     what the tag points at
//!     _manifests/tags/<tag>/index/<alg>/<hex>/link           every digest the tag has held
//!     _uploads/<uuid>/{data,startedat}                       upload sessions in progress
//! ```
//!
//! Every file is written whole ([`crate::durable`]): a temporary file beside it, fsynced and
//! renamed into place, and the directory fsynced after the rename: a crash leaves either the
//! old state or the new one. A temporary file left by a killed server is removed by the next
//! write into its directory ([`durable::sweep`]: its writer's lock is gone). Uploaded blob
//! content is written into its upload session directory (same filesystem) and renamed to
//! `blobs/…/data` only after its digest and size were checked, so a partial blob is never
//! visible. All methods here are blocking; the routes call them through `spawn_blocking`.
//!
//! Paths are built only from validated values ([`Digest`], names and tags checked against the
//! spec grammar by the routes, upload ids checked by [`valid_upload_id`]), so no request can
//! reach outside the root.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use ddiff_core::{Algorithm, Digest};

use crate::durable;

/// The storage root and the paths derived from it.
#[derive(Clone, Debug)]
pub struct Storage {
    root: PathBuf,
    base: PathBuf,
}

/// What one repository holds on disk.
#[derive(Debug, Default)]
pub(crate) struct RepoEntry {
    /// Repository name.
    pub name: String,
    /// Has a `_manifests` directory (what `registry:2`'s catalog lists).
    pub has_manifests: bool,
}

impl Storage {
    /// Storage under `root` (the directory `registry:2` calls `rootdirectory`).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let base = root.join("docker").join("registry").join("v2");
        Storage { root, base }
    }

    /// The directory given at construction.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `<root>/docker/registry/v2`.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// `blobs/<alg>/<xx>/<hex>/data`.
    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.base
            .join("blobs")
            .join(d.algorithm().name())
            .join(&d.hex()[..2])
            .join(d.hex())
            .join("data")
    }

    fn repo_dir(&self, name: &str) -> PathBuf {
        self.base.join("repositories").join(name)
    }

    fn layer_link(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_layers")
            .join(d.algorithm().name())
            .join(d.hex())
            .join("link")
    }

    fn revision_dir(&self, name: &str, d: &Digest) -> PathBuf {
        self.repo_dir(name)
            .join("_manifests")
            .join("revisions")
            .join(d.algorithm().name())
            .join(d.hex())
    }

    fn tags_dir(&self, name: &str) -> PathBuf {
        self.repo_dir(name).join("_manifests").join("tags")
    }

    /// `_uploads/<id>` of a repository.
    pub fn upload_dir(&self, name: &str, id: &str) -> PathBuf {
        self.repo_dir(name).join("_uploads").join(id)
    }

    /// Creates the base directory and proves it is writable.
    pub fn ensure_writable(&self) -> io::Result<()> {
        fs::create_dir_all(&self.base)?;
        let probe = self
            .base
            .join(format!(".ddiff-write-probe-{}", random_id()));
        let r = File::create(&probe).and_then(|mut f| f.write_all(b"ok"));
        let _ = fs::remove_file(&probe);
        r
    }

    /// Size of a blob in the global store, `None` when absent.
    pub fn blob_size(&self, d: &Digest) -> io::Result<Option<u64>> {
        match fs::metadata(self.blob_path(d)) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the repository links the blob (as a layer, or as one of its manifests, which
    /// clients such as oras also fetch through the blobs endpoint).
    pub fn repo_has_blob(&self, name: &str, d: &Digest) -> io::Result<bool> {
        if read_link(&self.layer_link(name, d))?.as_ref() == Some(d) {
            return Ok(true);
        }
        self.has_revision(name, d)
    }

    /// Links a blob into a repository (`_layers/…/link`).
    pub fn link_blob(&self, name: &str, d: &Digest) -> io::Result<()> {
        let link = self.layer_link(name, d);
        if read_link(&link)?.as_ref() == Some(d) {
            return Ok(());
        }
        write_file(&link, "link", d.to_string().as_bytes())
    }

    /// Removes a repository's link to a blob; the content stays until `gc`.
    pub fn unlink_blob(&self, name: &str, d: &Digest) -> io::Result<bool> {
        let link = self.layer_link(name, d);
        if read_link(&link)?.as_ref() != Some(d) {
            return Ok(false);
        }
        remove_dir_all_if_exists(link.parent().unwrap_or(&link))?;
        Ok(true)
    }

    /// Moves a verified file into the blob store. `src` must be on the same filesystem
    /// (it lives in an upload directory under the root). When the blob already exists (a
    /// concurrent upload of the same content won), `src` is simply removed: same digest,
    /// same bytes.
    pub fn commit_blob(&self, src: &Path, d: &Digest) -> io::Result<()> {
        let dst = self.blob_path(d);
        if self.blob_size(d)?.is_some() {
            let _ = fs::remove_file(src);
            return Ok(());
        }
        let dir = dst.parent().unwrap_or(&self.base);
        fs::create_dir_all(dir)?;
        durable::rename_into_place(src, &dst)?;
        sync_parent(dir)
    }

    /// Stores small content (a manifest) as a blob, written whole beside `blobs/…/data`.
    /// Blobs are global: the repository (`_repo`) it is pushed to does not change where.
    pub fn write_blob_bytes(&self, _repo: &str, d: &Digest, bytes: &[u8]) -> io::Result<()> {
        if self.blob_size(d)? == Some(bytes.len() as u64) {
            return Ok(());
        }
        let dst = self.blob_path(d);
        write_file(&dst, "blob", bytes)?;
        sync_parent(dst.parent().unwrap_or(&self.base))
    }

    /// Whether the repository has this manifest revision.
    pub fn has_revision(&self, name: &str, d: &Digest) -> io::Result<bool> {
        Ok(read_link(&self.revision_dir(name, d).join("link"))?.as_ref() == Some(d))
    }

    /// Records a manifest (already stored as a blob) in a repository, and tags it.
    pub fn link_manifest(&self, name: &str, d: &Digest, tag: Option<&str>) -> io::Result<()> {
        let rev = self.revision_dir(name, d).join("link");
        if read_link(&rev)?.as_ref() != Some(d) {
            write_file(&rev, "link", d.to_string().as_bytes())?;
        }
        if let Some(tag) = tag {
            let tag_dir = self.tags_dir(name).join(tag);
            let index = tag_dir
                .join("index")
                .join(d.algorithm().name())
                .join(d.hex())
                .join("link");
            if read_link(&index)?.as_ref() != Some(d) {
                write_file(&index, "link", d.to_string().as_bytes())?;
            }
            write_file(
                &tag_dir.join("current").join("link"),
                "link",
                d.to_string().as_bytes(),
            )?;
        }
        Ok(())
    }

    /// What a tag points at.
    pub fn resolve_tag(&self, name: &str, tag: &str) -> io::Result<Option<Digest>> {
        read_link(&self.tags_dir(name).join(tag).join("current").join("link"))
    }

    /// Reads a blob fully (manifests only: they are at most a few MiB).
    pub fn read_blob(&self, d: &Digest) -> io::Result<Option<Vec<u8>>> {
        match fs::read(self.blob_path(d)) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Removes a manifest revision and every tag currently pointing at it (what
    /// `registry:2` does on a delete by digest).
    pub fn delete_manifest(&self, name: &str, d: &Digest) -> io::Result<bool> {
        if !self.has_revision(name, d)? {
            return Ok(false);
        }
        for tag in self.tags(name)?.unwrap_or_default() {
            if self.resolve_tag(name, &tag)?.as_ref() == Some(d) {
                remove_dir_all_if_exists(&self.tags_dir(name).join(&tag))?;
            }
        }
        remove_dir_all_if_exists(&self.revision_dir(name, d))?;
        Ok(true)
    }

    /// Removes a tag (the manifest stays, reachable by digest).
    pub fn delete_tag(&self, name: &str, tag: &str) -> io::Result<bool> {
        if self.resolve_tag(name, tag)?.is_none() {
            return Ok(false);
        }
        remove_dir_all_if_exists(&self.tags_dir(name).join(tag))?;
        Ok(true)
    }

    /// The tags of a repository, sorted; `None` when the repository does not exist.
    pub fn tags(&self, name: &str) -> io::Result<Option<Vec<String>>> {
        if !self.repo_dir(name).join("_manifests").is_dir() {
            return Ok(None);
        }
        let mut tags = Vec::new();
        for entry in read_dir_if_exists(&self.tags_dir(name))? {
            let entry = entry?;
            let Some(tag) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if entry.path().join("current").join("link").is_file() {
                tags.push(tag);
            }
        }
        tags.sort();
        Ok(Some(tags))
    }

    /// The manifest revisions of a repository.
    pub fn revisions(&self, name: &str) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        let dir = self.repo_dir(name).join("_manifests").join("revisions");
        for alg in read_dir_if_exists(&dir)? {
            let alg = alg?;
            for rev in read_dir_if_exists(&alg.path())? {
                let rev = rev?;
                if let Some(d) = read_link(&rev.path().join("link"))? {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every repository directory (those with manifests and those with only uploads or
    /// layers), sorted by name. Directories starting with `_` are never names.
    pub(crate) fn walk_repositories(&self) -> io::Result<Vec<RepoEntry>> {
        let mut out = Vec::new();
        let top = self.base.join("repositories");
        walk_repos(&top, String::new(), &mut out)?;
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Repository names as the catalog lists them (those with manifests).
    pub fn repositories(&self) -> io::Result<Vec<String>> {
        Ok(self
            .walk_repositories()?
            .into_iter()
            .filter(|r| r.has_manifests)
            .map(|r| r.name)
            .collect())
    }

    /// Upload session directories older than `max_age` (by last write), across repositories.
    pub fn stale_uploads(&self, max_age: Duration) -> io::Result<Vec<(String, String)>> {
        let now = SystemTime::now();
        let mut out = Vec::new();
        for repo in self.walk_repositories()? {
            let dir = self.repo_dir(&repo.name).join("_uploads");
            for entry in read_dir_if_exists(&dir)? {
                let entry = entry?;
                let path = entry.path();
                let data = path.join("data");
                let modified = fs::metadata(&data)
                    .or_else(|_| fs::metadata(&path))
                    .and_then(|m| m.modified())?;
                let age = now.duration_since(modified).unwrap_or_default();
                if age >= max_age {
                    if let Some(id) = entry.file_name().to_str() {
                        out.push((repo.name.clone(), id.to_owned()));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Every blob in the global store with its modification time.
    pub fn all_blobs(&self) -> io::Result<Vec<(Digest, SystemTime)>> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.base.join("blobs").join(alg.name());
            for prefix in read_dir_if_exists(&dir)? {
                let prefix = prefix?;
                for blob in read_dir_if_exists(&prefix.path())? {
                    let blob = blob?;
                    let Some(hex) = blob.file_name().to_str().map(str::to_owned) else {
                        continue;
                    };
                    let Ok(d) = Digest::parse(&format!("{}:{hex}", alg.name())) else {
                        continue;
                    };
                    if let Ok(m) = fs::metadata(blob.path().join("data")) {
                        out.push((d, m.modified()?));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Deletes a blob's content directory.
    pub fn delete_blob(&self, d: &Digest) -> io::Result<()> {
        let data = self.blob_path(d);
        remove_dir_all_if_exists(data.parent().unwrap_or(&data))
    }

    /// The `_layers` links of a repository.
    pub fn layer_links(&self, name: &str) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        let dir = self.repo_dir(name).join("_layers");
        for alg in read_dir_if_exists(&dir)? {
            for l in read_dir_if_exists(&alg?.path())? {
                if let Some(d) = read_link(&l?.path().join("link"))? {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }
}

fn walk_repos(dir: &Path, prefix: String, out: &mut Vec<RepoEntry>) -> io::Result<()> {
    let mut is_repo = false;
    let mut entry_here = RepoEntry {
        name: prefix.clone(),
        has_manifests: false,
    };
    for entry in read_dir_if_exists(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() {
            continue;
        }
        let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        match file.as_str() {
            "_manifests" => {
                is_repo = true;
                entry_here.has_manifests = true;
            }
            "_uploads" | "_layers" => is_repo = true,
            f if f.starts_with('_') || f.starts_with('.') => {}
            _ => {
                let child = if prefix.is_empty() {
                    file.clone()
                } else {
                    format!("{prefix}/{file}")
                };
                walk_repos(&entry.path(), child, out)?;
            }
        }
    }
    if is_repo && !prefix.is_empty() {
        out.push(entry_here);
    }
    Ok(())
}

/// Reads a `link` file; `None` when absent or not a digest.
fn read_link(path: &Path) -> io::Result<Option<Digest>> {
    let mut s = String::new();
    match File::open(path) {
        Ok(f) => {
            f.take(1024).read_to_string(&mut s)?;
        }
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    }
    Ok(Digest::parse(s.trim()).ok())
}

fn read_dir_if_exists(dir: &Path) -> io::Result<Vec<io::Result<fs::DirEntry>>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(rd.collect()),
        Err(e)
            if e.kind() == io::ErrorKind::NotFound || e.kind() == io::ErrorKind::NotADirectory =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

fn remove_dir_all_if_exists(dir: &Path) -> io::Result<()> {
    match fs::remove_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Writes `bytes` to `path` whole ([`durable::write_whole`]), creating its directory, after
/// removing what killed writers left in that directory (a read of a directory of one or two
/// entries: links and blobs each have their own).
fn write_file(path: &Path, what: &str, bytes: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path without parent"))?;
    fs::create_dir_all(dir)?;
    durable::sweep(dir);
    durable::write_whole(path, what, bytes)
}

/// fsyncs the parent of a blob's directory, which may have just been created.
fn sync_parent(blob_dir: &Path) -> io::Result<()> {
    match blob_dir.parent() {
        Some(parent) => durable::sync_dir(parent),
        None => Ok(()),
    }
}

/// A random UUID (version 4 layout), as registry:2 names upload sessions.
pub fn random_id() -> String {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    // The OS random source failing is not something a registry can work around.
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("the operating system's random number generator failed");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// Whether `id` can be an upload session id we issued (or registry:2 did): a UUID.
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// RFC 3339 UTC time, the format of registry:2's `startedat` files.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn layout_matches_registry2() {
        let s = Storage::new("/r");
        let d = Digest::sha256(b"x");
        let p = s.blob_path(&d);
        assert_eq!(
            p,
            PathBuf::from(format!(
                "/r/docker/registry/v2/blobs/sha256/{}/{}/data",
                &d.hex()[..2],
                d.hex()
            ))
        );
    }

    #[test]
    fn upload_ids() {
        let id = random_id();
        assert!(valid_upload_id(&id), "{id}");
        for bad in [
            "",
            "../../x",
            &id[..35],
            &format!("{}/", &id[..35]),
            &id.replace('-', "/"),
        ] {
            assert!(!valid_upload_id(bad), "{bad}");
        }
    }

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn tags_revisions_and_catalog() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(dir.path());
        let d = Digest::sha256(b"{}");
        s.write_blob_bytes("a/b", &d, b"{}").unwrap();
        s.link_manifest("a/b", &d, Some("v1")).unwrap();
        assert_eq!(s.resolve_tag("a/b", "v1").unwrap(), Some(d.clone()));
        assert_eq!(s.tags("a/b").unwrap(), Some(vec!["v1".to_string()]));
        assert_eq!(s.tags("a").unwrap(), None);
        assert_eq!(s.repositories().unwrap(), vec!["a/b".to_string()]);
        assert!(s.delete_manifest("a/b", &d).unwrap());
        assert_eq!(s.tags("a/b").unwrap(), Some(vec![]));
        assert!(s.revisions("a/b").unwrap().is_empty());
        assert_eq!(s.read_blob(&d).unwrap().as_deref(), Some(&b"{}"[..]));
    }

    /// A server killed while writing a link or a manifest leaves a temporary file beside it;
    /// the next write into that directory removes it (its writer's lock died with it).
    #[test]
    fn a_killed_writers_temporary_is_removed_by_the_next_write_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let s = Storage::new(dir.path());
        let (d1, d2) = (Digest::sha256(b"{}"), Digest::sha256(b"[]"));
        s.write_blob_bytes("a/b", &d1, b"{}").unwrap();
        s.link_manifest("a/b", &d1, Some("v1")).unwrap();
        let current = s.tags_dir("a/b").join("v1").join("current");
        let stale_link = current.join(".ddiff-link-99999-0.tmp");
        fs::write(&stale_link, b"sha256:0123").unwrap();
        let blob_dir = s.blob_path(&d2).parent().unwrap().to_path_buf();
        fs::create_dir_all(&blob_dir).unwrap();
        let stale_blob = blob_dir.join(".ddiff-blob-99999-1.tmp");
        fs::write(&stale_blob, b"[").unwrap();
        s.write_blob_bytes("a/b", &d2, b"[]").unwrap();
        s.link_manifest("a/b", &d2, Some("v1")).unwrap();
        assert_eq!(s.resolve_tag("a/b", "v1").unwrap(), Some(d2.clone()));
        assert_eq!(s.read_blob(&d2).unwrap().as_deref(), Some(&b"[]"[..]));
        assert!(!stale_link.exists());
        assert!(!stale_blob.exists());
        let left = |d: &Path| fs::read_dir(d).unwrap().count();
        assert_eq!((left(&current), left(&blob_dir)), (1, 1));
    }
}
