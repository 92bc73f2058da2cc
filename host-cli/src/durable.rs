//! Files that must be whole, written one way: a temporary file in the final name's directory,
//! written, made durable, renamed into place, and the directory fsynced. A crash or a SIGKILL
//! leaves the old file or the new one, never a part of one; what it can leave behind is a
//! temporary file that [`sweep`] recognises and removes once its writer is gone.
//!
//! Every temporary file is named `.ddiff-<what>-<pid>-<n>.tmp` (a set's members add `-<k>`,
//! below). Its writer holds an exclusive advisory lock (`flock`) on it for as long as it has
//! it open, and locks die with their process: a temporary file whose lock [`sweep`] can take
//! has no live writer, whatever became of its process id. The process id in the name only
//! keeps names of concurrent writers apart.
//!
//! Two shapes:
//! - [`AtomicFile`]: one file (a bundle, an archive, `index.json`, a registry link). The
//!   temporary file holds its own lock; [`AtomicFile::commit`] fsyncs, renames, fsyncs the
//!   directory; dropping it uncommitted removes the temporary file.
//! - [`TempSet`]: many temporary files at once (the blobs of a layout load, the compressed
//!   layers of a diff). Keeping each open to hold its lock would take one descriptor per file
//!   (ten thousand blobs exceed the open-files limit), so the set holds the lock of one owner
//!   file per directory, `.ddiff-set-<pid>-<n>.tmp`, and names its members after it,
//!   `.ddiff-<what>-<pid>-<n>-<k>.tmp`: a member is live while its owner's lock is held. The
//!   set keeps the cheap batch path of a load: members destined for a final name are written
//!   without an fsync each, made durable together by [`TempSet::commit`] (one `syncfs` on
//!   Linux), then renamed. Members left when the set is dropped are removed.
//!
//! On a filesystem without advisory locks, writers go on unlocked and [`sweep`] removes
//! nothing there (it only removes what it can prove dead).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const PREFIX: &str = ".ddiff-";
const SUFFIX: &str = ".tmp";
/// The `what` of a set's owner file.
const OWNER: &str = "set";
/// Names tried before giving up (each taken name is one left by a dead process of our pid).
const TRIES: usize = 1000;

/// The directory a path's temporary file goes into: its parent, `.` for a bare name.
fn dir_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The next `<pid>-<n>` of this process.
fn next_token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a file that did not exist, under the first free name `name` gives.
fn create_new(dir: &Path, mut name: impl FnMut() -> String) -> io::Result<(PathBuf, File)> {
    for _ in 0..TRIES {
        let path = dir.join(name());
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(f) => return Ok((path, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("no free temporary file name in {}", dir.display()),
    ))
}

/// Creates `.ddiff-<what>-<pid>-<n>.tmp` in `dir` and takes its lock. Returns its path,
/// the open file and its `<pid>-<n>`.
fn create_locked(dir: &Path, what: &str) -> io::Result<(PathBuf, File, String)> {
    for _ in 0..TRIES {
        let mut token = String::new();
        let (path, f) = create_new(dir, || {
            token = next_token();
            format!("{PREFIX}{what}-{token}{SUFFIX}")
        })?;
        match f.try_lock() {
            Ok(()) => {}
            // A sweep took it between the create and the lock and is removing it.
            Err(TryLockError::WouldBlock) => continue,
            // No advisory locks here: sweeps cannot lock it either, so they keep it.
            Err(TryLockError::Error(_)) => return Ok((path, f, token)),
        }
        // A sweep may have locked and removed it before we locked it.
        if same_file(&f, &path) {
            return Ok((path, f, token));
        }
    }
    Err(io::Error::new(
        io::ErrorKind::WouldBlock,
        format!(
            "cannot lock a temporary file in {} (too many concurrent sweeps)",
            dir.display()
        ),
    ))
}

/// Whether `path` still names the file open as `f`.
fn same_file(f: &File, path: &Path) -> bool {
    let (Ok(a), Ok(b)) = (f.metadata(), fs::symlink_metadata(path)) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        a.dev() == b.dev() && a.ino() == b.ino()
    }
    #[cfg(not(unix))]
    {
        let _ = a;
        b.is_file()
    }
}

/// fsyncs a directory, so that a rename or create in it survives a crash. A filesystem that
/// cannot fsync a directory (it answers `EINVAL`, as some network and FAT mounts do) is
/// accepted: there is nothing more a writer can do there.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    match File::open(dir).and_then(|d| d.sync_all()) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
            ) =>
        {
            Ok(())
        }
        r => r,
    }
}

/// Renames `from` over `to` and fsyncs `to`'s directory. The error names both.
pub fn rename_into_place(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot rename {} to {}: {e}", from.display(), to.display()),
        )
    })?;
    sync_dir(dir_of(to))
}

/// A file written whole or not at all: written to a locked temporary file beside `dest`,
/// which [`AtomicFile::commit`] makes durable and renames over `dest`. Dropped uncommitted,
/// the temporary file is removed and `dest` is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    file: File,
    tmp: PathBuf,
    dest: PathBuf,
    committed: bool,
}

impl AtomicFile {
    /// Starts writing `dest` (its directory must exist). `what` names the temporary file
    /// (`.ddiff-<what>-<pid>-<n>.tmp`), for whoever finds one.
    pub fn create(dest: &Path, what: &str) -> io::Result<AtomicFile> {
        let (tmp, file, _) = create_locked(dir_of(dest), what)?;
        Ok(AtomicFile {
            file,
            tmp,
            dest: dest.to_path_buf(),
            committed: false,
        })
    }

    /// The temporary file being written.
    pub fn temp_path(&self) -> &Path {
        &self.tmp
    }

    /// The final name.
    pub fn dest(&self) -> &Path {
        &self.dest
    }

    /// fsyncs the file, renames it over the final name (still holding its lock, so no sweep
    /// can take it meanwhile) and fsyncs the directory.
    pub fn commit(mut self) -> io::Result<()> {
        self.file.sync_all()?;
        rename_into_place(&self.tmp, &self.dest)?;
        self.committed = true;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.committed {
            // Removed while its lock is still held (the file closes after this).
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `dest` whole (an [`AtomicFile`] written at once).
pub fn write_whole(dest: &Path, what: &str, bytes: &[u8]) -> io::Result<()> {
    let mut f = AtomicFile::create(dest, what)?;
    f.write_all(bytes)?;
    f.commit()
}

/// One directory's owner file of a [`TempSet`], locked while the set lives.
#[derive(Debug)]
struct Owner {
    dir: PathBuf,
    path: PathBuf,
    token: String,
    members: u64,
    _lock: File,
}

/// A member of a [`TempSet`]: its temporary file and, for one to commit, its final name.
#[derive(Debug)]
struct Member {
    tmp: PathBuf,
    dest: Option<PathBuf>,
}

/// Temporary files written many at once, live while the set is (see the module docs).
#[derive(Debug, Default)]
pub struct TempSet {
    owners: Vec<Owner>,
    members: Vec<Member>,
}

impl TempSet {
    /// An empty set (owner files are created with the first member in each directory).
    pub fn new() -> TempSet {
        TempSet::default()
    }

    fn member(&mut self, dir: &Path, what: &str) -> io::Result<(PathBuf, File)> {
        let i = match self.owners.iter().position(|o| o.dir == dir) {
            Some(i) => i,
            None => {
                let (path, lock, token) = create_locked(dir, OWNER)?;
                self.owners.push(Owner {
                    dir: dir.to_path_buf(),
                    path,
                    token,
                    members: 0,
                    _lock: lock,
                });
                self.owners.len() - 1
            }
        };
        let o = &mut self.owners[i];
        create_new(dir, || {
            o.members += 1;
            format!("{PREFIX}{what}-{}-{}{SUFFIX}", o.token, o.members - 1)
        })
    }

    /// A new scratch file in `dir`, open for writing; removed when the set is dropped.
    pub fn create(&mut self, dir: &Path, what: &str) -> io::Result<(PathBuf, File)> {
        let (tmp, f) = self.member(dir, what)?;
        self.members.push(Member {
            tmp: tmp.clone(),
            dest: None,
        });
        Ok((tmp, f))
    }

    /// A new temporary file beside `dest` (whose directory must exist), open for writing,
    /// that [`TempSet::commit`] renames to `dest`. Nothing is fsynced here.
    pub fn create_for(&mut self, dest: &Path, what: &str) -> io::Result<(PathBuf, File)> {
        let (tmp, f) = self.member(dir_of(dest), what)?;
        self.members.push(Member {
            tmp: tmp.clone(),
            dest: Some(dest.to_path_buf()),
        });
        Ok((tmp, f))
    }

    /// Makes every file created with [`TempSet::create_for`] durable at once (one `syncfs`
    /// per directory on Linux, else an fsync per file), then renames each into place and
    /// fsyncs their directories. A failure leaves the rest to be removed with the set.
    pub fn commit(&mut self) -> io::Result<()> {
        let (to_move, rest): (Vec<Member>, Vec<Member>) = std::mem::take(&mut self.members)
            .into_iter()
            .partition(|m| m.dest.is_some());
        self.members = rest;
        if to_move.is_empty() {
            return Ok(());
        }
        // Registered again until each is renamed, so an error below removes the others.
        let start = self.members.len();
        self.members.extend(to_move);
        let tmps: Vec<&Path> = self.members[start..]
            .iter()
            .map(|m| m.tmp.as_path())
            .collect();
        make_durable(&tmps)?;
        let mut dirs: Vec<PathBuf> = Vec::new();
        while self.members.len() > start {
            let m = &self.members[start];
            let dest = m.dest.as_deref().unwrap_or(&m.tmp);
            fs::rename(&m.tmp, dest).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot rename {} to {}: {e}",
                        m.tmp.display(),
                        dest.display()
                    ),
                )
            })?;
            let dir = dir_of(dest);
            if !dirs.iter().any(|d| d == dir) {
                dirs.push(dir.to_path_buf());
            }
            self.members.swap_remove(start);
        }
        for d in &dirs {
            sync_dir(d)?;
        }
        Ok(())
    }
}

impl Drop for TempSet {
    fn drop(&mut self) {
        for m in &self.members {
            let _ = fs::remove_file(&m.tmp);
        }
        // Owners last, each removed while its lock is still held.
        for o in &self.owners {
            let _ = fs::remove_file(&o.path);
        }
    }
}

/// Makes what was written to `files` durable. On Linux, for many files, one `syncfs` per
/// directory they are in (one call however many files); for a few (a volume set's files),
/// elsewhere, or where `syncfs` fails, an fsync per file: `syncfs` also flushes every other
/// process's dirty pages on that filesystem, which a few large files need not wait for.
fn make_durable(files: &[&Path]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if files.len() > FEW_FILES {
        let mut dirs: Vec<&Path> = Vec::new();
        for f in files {
            let d = dir_of(f);
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
        let synced = dirs.iter().all(|d| {
            File::open(d)
                .ok()
                .is_some_and(|d| rustix::fs::syncfs(&d).is_ok())
        });
        if synced {
            return Ok(());
        }
    }
    for f in files {
        File::open(f)
            .and_then(|f| f.sync_all())
            .map_err(|e| io::Error::new(e.kind(), format!("cannot sync {}: {e}", f.display())))?;
    }
    Ok(())
}

/// Up to this many files are made durable one fsync each rather than by `syncfs`.
const FEW_FILES: usize = 32;

/// Writes files' dirty pages to the disk in the background, one thread, while the writer
/// goes on computing or writing the next file: a large output written without it sits in
/// the page cache until its commit's fsync, so the disk idles while the CPU works and the
/// CPU idles while the disk works. Handing each finished file here overlaps the two; the
/// commit still fsyncs everything (cheap for a file already clean), so durability does not
/// depend on this. [`Flusher::finish`] waits and returns the first error.
#[derive(Debug, Default)]
pub struct Flusher {
    tx: Option<std::sync::mpsc::Sender<(File, PathBuf)>>,
    thread: Option<std::thread::JoinHandle<io::Result<()>>>,
}

impl Flusher {
    /// A flusher; its thread starts with the first file.
    pub fn new() -> Flusher {
        Flusher::default()
    }

    /// Starts writing `file` (whose data was written through another handle, now flushed
    /// to the kernel) to the disk. `path` names it in an error.
    pub fn push(&mut self, file: &File, path: &Path) -> io::Result<()> {
        let f = file.try_clone()?;
        if self.tx.is_none() {
            let (tx, rx) = std::sync::mpsc::channel::<(File, PathBuf)>();
            self.thread = Some(std::thread::spawn(move || {
                let mut first = Ok(());
                for (f, p) in rx {
                    if let Err(e) = f.sync_data() {
                        if first.is_ok() {
                            first = Err(io::Error::new(
                                e.kind(),
                                format!("cannot sync {}: {e}", p.display()),
                            ));
                        }
                    }
                }
                first
            }));
            self.tx = Some(tx);
        }
        if let Some(tx) = &self.tx {
            // The thread only ends when `tx` is dropped, so the send cannot fail.
            let _ = tx.send((f, path.to_path_buf()));
        }
        Ok(())
    }

    /// Waits for every file handed over to reach the disk; the first error, if any.
    pub fn finish(mut self) -> io::Result<()> {
        self.wait()
    }

    fn wait(&mut self) -> io::Result<()> {
        self.tx = None;
        match self.thread.take().map(std::thread::JoinHandle::join) {
            None => Ok(()),
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(io::Error::other("the background sync thread panicked")),
        }
    }
}

impl Drop for Flusher {
    fn drop(&mut self) {
        // Abandoned (an error elsewhere): wait so no thread outlives its files.
        let _ = self.wait();
    }
}

/// Splits a temporary file name into its `what` and the numbers after it
/// (`.ddiff-blob-12-3-4.tmp` → `blob`, `[12, 3, 4]`). `None`: not one of ours.
fn parse(name: &str) -> Option<(&str, Vec<u64>)> {
    let mut rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
    let mut nums = Vec::new();
    while let Some((head, tail)) = rest.rsplit_once('-') {
        match tail.parse::<u64>() {
            Ok(n) if nums.len() < 3 => {
                nums.push(n);
                rest = head;
            }
            _ => break,
        }
    }
    nums.reverse();
    (!rest.is_empty() && nums.len() >= 2).then_some((rest, nums))
}

/// Removes, from `dir`, the temporary files of writers that are gone (killed runs leave
/// them): a standalone file or a set's owner whose lock can be taken, a set's member whose
/// owner is gone or unlocked. Files of live writers, in this process or another, are kept;
/// so is everything not named like ours. Returns how many were removed. Never fails: a
/// directory that cannot be read has nothing to sweep.
pub fn sweep(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((_, nums)) = name.to_str().and_then(parse) else {
            continue;
        };
        if !e.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        if let [pid, n, _k] = nums[..] {
            let owner = dir.join(format!("{PREFIX}{OWNER}-{pid}-{n}{SUFFIX}"));
            if lock_held(&owner) {
                continue;
            }
        }
        let path = e.path();
        // Taken and removed under its lock: a writer that locks it after this sees it gone.
        let Ok(f) = File::open(&path) else { continue };
        if f.try_lock().is_ok() && same_file(&f, &path) && fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Whether a live writer holds `path`'s lock (or locks cannot be taken there, which keeps
/// its members too). An absent file holds nothing.
fn lock_held(path: &Path) -> bool {
    match File::open(path) {
        Ok(f) => !matches!(f.try_lock(), Ok(())),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_flusher_syncs_what_it_is_given_and_reports_errors_by_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut fl = Flusher::new();
        for i in 0..3 {
            let p = dir.path().join(format!("f{i}"));
            let mut f = File::create(&p).unwrap();
            f.write_all(&[i as u8; 4096]).unwrap();
            fl.push(&f, &p).unwrap();
        }
        fl.finish().unwrap();
        // A handle that cannot be synced (a pipe is refused by fdatasync with EINVAL) is
        // reported at finish, by name; a flusher dropped unfinished does not hang.
        let (r, _w) = std::io::pipe().unwrap();
        let pipe = File::from(std::os::fd::OwnedFd::from(r));
        let mut fl = Flusher::new();
        fl.push(&pipe, Path::new("the-pipe")).unwrap();
        let e = fl.finish().unwrap_err();
        assert!(e.to_string().contains("cannot sync the-pipe"), "{e}");
        let mut fl = Flusher::new();
        fl.push(&pipe, Path::new("dropped")).unwrap();
        drop(fl);
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn commit_makes_the_file_whole_and_drop_removes_the_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("index.json");
        fs::write(&dest, b"old").unwrap();
        let mut f = AtomicFile::create(&dest, "index").unwrap();
        f.write_all(b"new ").unwrap();
        let tmp = f.temp_path().to_path_buf();
        assert!(tmp.is_file());
        assert_eq!(tmp.parent(), Some(dir.path()), "beside its final name");
        assert_eq!(
            fs::read(&dest).unwrap(),
            b"old",
            "untouched before the commit"
        );
        f.write_all(b"bytes").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&dest).unwrap(), b"new bytes");
        assert_eq!(names(dir.path()), ["index.json"]);

        let mut f = AtomicFile::create(&dest, "index").unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(fs::read(&dest).unwrap(), b"new bytes");
        assert_eq!(names(dir.path()), ["index.json"], "the temporary is gone");

        write_whole(&dir.path().join("x"), "x", b"whole").unwrap();
        assert_eq!(fs::read(dir.path().join("x")).unwrap(), b"whole");
        assert_eq!(names(dir.path()), ["index.json", "x"]);
    }

    #[test]
    fn a_set_commits_its_members_at_once_and_drop_removes_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        fs::create_dir(&sub).unwrap();
        let mut set = TempSet::new();
        let mut dests = Vec::new();
        for i in 0..50 {
            let d = if i % 2 == 0 { dir.path() } else { &sub }.join(format!("b{i}"));
            let (_, mut f) = set.create_for(&d, "blob").unwrap();
            f.write_all(format!("blob {i}").as_bytes()).unwrap();
            dests.push(d);
        }
        let (scratch, _) = set.create(dir.path(), "layer").unwrap();
        // One owner per directory, the only open descriptors the set keeps.
        assert_eq!(set.owners.len(), 2);
        assert!(dests.iter().all(|d| !d.exists()));
        set.commit().unwrap();
        for (i, d) in dests.iter().enumerate() {
            assert_eq!(fs::read(d).unwrap(), format!("blob {i}").as_bytes());
        }
        assert!(scratch.is_file(), "scratch files live as long as the set");
        let (_, mut late) = set.create_for(&dir.path().join("late"), "blob").unwrap();
        late.write_all(b"never committed").unwrap();
        drop(set);
        assert!(!scratch.exists());
        assert!(!dir.path().join("late").exists());
        assert!(names(dir.path()).iter().all(|n| !n.starts_with(PREFIX)));
        assert!(names(&sub).iter().all(|n| !n.starts_with(PREFIX)));
    }

    #[test]
    fn names_parse_as_standalone_or_members() {
        assert_eq!(parse(".ddiff-index-12-3.tmp"), Some(("index", vec![12, 3])));
        assert_eq!(
            parse(".ddiff-oci-archive-12-3-4.tmp"),
            Some(("oci-archive", vec![12, 3, 4]))
        );
        assert_eq!(
            parse(".ddiff-blob-1-2-3-4.tmp"),
            Some(("blob-1", vec![2, 3, 4]))
        );
        for other in [
            "index.json",
            ".ddiff-index.tmp",
            ".ddiff-12-3.tmp",
            ".ddiff-x-12-3.partial",
            "ddiff-x-1-2.tmp",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }

    /// A temporary file left by a process that is gone (a child that created it and exited
    /// without cleaning up) is removed; one a live writer holds is kept, in this process
    /// (another descriptor's lock) as in any other.
    #[test]
    fn sweep_removes_what_dead_writers_left_and_keeps_live_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        // Left by a killed writer: a standalone temporary, a set's owner and its members,
        // written by a child process that exits without cleaning up (its locks die with it).
        let script = format!(
            "cd '{}' && echo part > .ddiff-bundle-99999-1.tmp && \
             echo lock > .ddiff-set-99999-2.tmp && echo blob > .ddiff-blob-99999-2-0.tmp && \
             echo blob > .ddiff-blob-99999-2-1.tmp && echo orphan > .ddiff-blob-99999-7-0.tmp",
            d.display()
        );
        let st = std::process::Command::new("sh")
            .args(["-c", &script])
            .status()
            .unwrap();
        assert!(st.success());
        // Live: an AtomicFile being written and a set with a committed-later member and a
        // scratch file, all in this process.
        let mut live = AtomicFile::create(&d.join("out.ddiff"), "bundle").unwrap();
        live.write_all(b"in progress").unwrap();
        let mut set = TempSet::new();
        let (pending, mut pf) = set.create_for(&d.join("blob"), "blob").unwrap();
        pf.write_all(b"pending").unwrap();
        drop(pf); // closed: only the set's owner lock keeps it
        let (scratch, _) = set.create(d, "layer").unwrap();
        // Not ours: kept whatever it looks like.
        fs::write(d.join("app-2.ddiff"), b"a bundle").unwrap();
        fs::write(d.join(".ddiff-notes.txt"), b"x").unwrap();
        fs::create_dir(d.join(".ddiff-dir-1-2.tmp")).unwrap();

        assert_eq!(sweep(d), 5, "{:?}", names(d));
        let left = names(d);
        assert!(left.iter().all(|n| !n.contains("99999")), "{left:?}");
        assert!(live.temp_path().is_file());
        assert!(pending.is_file());
        assert!(scratch.is_file());
        assert!(d.join("app-2.ddiff").is_file());
        assert!(d.join(".ddiff-notes.txt").is_file());
        assert!(d.join(".ddiff-dir-1-2.tmp").is_dir());
        // A second sweep finds nothing more; the live writers still finish.
        assert_eq!(sweep(d), 0);
        set.commit().unwrap();
        assert_eq!(fs::read(d.join("blob")).unwrap(), b"pending");
        live.commit().unwrap();
        assert_eq!(fs::read(d.join("out.ddiff")).unwrap(), b"in progress");
        drop(set);
        assert_eq!(sweep(d), 0);
        let mut left = names(d);
        left.retain(|n| n.starts_with(PREFIX));
        assert_eq!(left, [".ddiff-dir-1-2.tmp", ".ddiff-notes.txt"]);
    }

    /// The lock is what tells: a file named like ours whose lock another process holds is
    /// kept, and removed once that process is gone.
    #[test]
    fn sweep_keeps_a_temporary_locked_by_another_live_process() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let tmp = d.join(".ddiff-bundle-424242-0.tmp");
        fs::write(&tmp, b"x").unwrap();
        // flock(1) holds the lock in a child process until it is told to stop.
        let Ok(mut child) = std::process::Command::new("flock")
            .arg(&tmp)
            .args(["-c", "read line"])
            .stdin(std::process::Stdio::piped())
            .spawn()
        else {
            eprintln!("no flock(1) here: the in-process case covers the live writer");
            return;
        };
        // Wait until the child holds it.
        let f = File::open(&tmp).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while f.try_lock().is_ok() {
            f.unlock().unwrap();
            assert!(std::time::Instant::now() < deadline, "flock never locked");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        drop(f);
        assert_eq!(sweep(d), 0);
        assert!(tmp.is_file(), "a live writer's file is kept");
        drop(child.stdin.take());
        child.wait().unwrap();
        assert_eq!(sweep(d), 1);
        assert!(!tmp.exists());
    }
}
