//! Volume sets on disk (docs/bundle-format.md section 9): writing a bundle as
//! `NAME.ddiff.001`, `.002`, … plus Reed–Solomon parity volumes, and reading the logical
//! bundle back from any volumes found, in any order and in several directories, rebuilding
//! missing or damaged units from parity on the fly. Every decision (geometry, trailers, which
//! set, whether it can be recovered) is `ddiff_core::volume`'s; this file moves bytes and runs
//! the Reed–Solomon arithmetic (`reed-solomon-simd`).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use ddiff_core::volume::{
    self, assess, encode_trailer, parse_volume_file_name, table_digest, volume_file_name,
    Assessment, Geometry, Observed, Placed, SetDescriptor, TrailerReader, UnitCrcs, VolumeError,
    VolumeTrailer, FOOTER_LEN,
};
use ddiff_core::Digest;

use crate::durable::{Flusher, TempSet};

/// `--volume-size` and `--parity` of `diff` and `build`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct VolumeArgs {
    /// Cut the bundle into volumes of at most SIZE bytes each (NAME.ddiff.001, .002, …):
    /// bytes, 64k, 4G, 4.7GB, or a medium: fat32, cd, dvd, dvd-dl, bd25, bd50. At least 64k.
    /// A bundle that fits (and has no --parity) stays one plain file.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub volume_size: Option<u64>,
    /// Add N Reed–Solomon parity volumes: any N missing or damaged volumes can be rebuilt
    /// (`ddiff verify --repair`; `load` and `inspect` rebuild on the fly).
    #[arg(long, value_name = "N", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=255))]
    pub parity: u32,
}

fn parse_size(s: &str) -> Result<u64, String> {
    volume::parse_volume_size(s).map_err(|e| ddiff_core::display::error_chain(&e))
}

impl VolumeArgs {
    /// The geometry for a bundle of `size` bytes, `None` for a plain file.
    pub fn geometry(&self, size: u64) -> Result<Option<Geometry>> {
        if self.volume_size.is_none() && self.parity == 0 {
            return Ok(None);
        }
        Ok(Geometry::plan(
            size,
            self.volume_size.unwrap_or(u64::MAX),
            self.parity,
        )?)
    }
}

/// The path of volume `index` of the bundle `dest` (`dest.001`).
pub fn volume_path(dest: &Path, index: u32) -> PathBuf {
    let name = dest
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    dest.with_file_name(volume_file_name(&name, index))
}

/// SHA-256 with `ring` (the host's fast hasher).
fn sha() -> ring::digest::Context {
    ring::digest::Context::new(&ring::digest::SHA256)
}

/// The volume being written.
struct Current {
    out: BufWriter<File>,
    crcs: UnitCrcs,
    written: u64,
}

/// Writes a set: the data volumes as the bundle's bytes arrive, then the parity volumes
/// from them, then every trailer; [`SetWriter::finish`] makes them durable together and
/// renames them into place (a set appears whole or not at all: until then only locked
/// temporary files exist, removed if the writer dies or is dropped).
pub struct SetWriter {
    g: Geometry,
    dest: PathBuf,
    temps: TempSet,
    tmp: Vec<PathBuf>,
    cur: Option<Current>,
    digests: Vec<Digest>,
    crcs: Vec<Vec<u32>>,
    /// Each finished volume goes to the disk while the next is written (and while the
    /// parity is computed), instead of all of them at the commit's fsync.
    flusher: Flusher,
}

impl SetWriter {
    /// Starts a set for the bundle `dest` (volumes are `dest.001`, …).
    pub fn create(dest: &Path, g: Geometry) -> Result<SetWriter> {
        Ok(SetWriter {
            g,
            dest: dest.to_path_buf(),
            temps: TempSet::new(),
            tmp: Vec::new(),
            cur: None,
            digests: Vec::new(),
            crcs: Vec::new(),
            flusher: Flusher::new(),
        })
    }

    /// The set's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.g
    }

    fn open_next(&mut self) -> Result<()> {
        let i = self.tmp.len() as u32;
        let dest = volume_path(&self.dest, i);
        let (tmp, f) = self
            .temps
            .create_for(&dest, "volume")
            .with_context(|| format!("cannot create a temporary file beside {}", dest.display()))?;
        self.tmp.push(tmp);
        self.cur = Some(Current {
            out: BufWriter::with_capacity(1 << 20, f),
            crcs: UnitCrcs::new(self.g.unit),
            written: 0,
        });
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        if let Some(c) = self.cur.take() {
            self.close(c, self.tmp.len() - 1)?;
        }
        Ok(())
    }

    /// Flushes volume `i` (written through `c`) and records it.
    fn close(&mut self, c: Current, i: usize) -> Result<()> {
        let f = c
            .out
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("cannot write {}", self.tmp[i].display()))?;
        self.record(&f, i, c.crcs.finish())
    }

    /// Records volume `i`'s unit table and digest (volumes are recorded in order) and
    /// starts writing it to the disk.
    fn record(&mut self, f: &File, i: usize, crcs: Vec<u32>) -> Result<()> {
        debug_assert_eq!(i, self.crcs.len());
        self.flusher
            .push(f, &self.tmp[i])
            .with_context(|| format!("cannot sync {}", self.tmp[i].display()))?;
        self.digests.push(table_digest(&crcs));
        self.crcs.push(crcs);
        Ok(())
    }

    /// Appends bytes of the bundle.
    pub fn write(&mut self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            let full = self
                .cur
                .as_ref()
                .is_none_or(|c| c.written == self.g.payload_len(self.tmp.len() as u32 - 1));
            if full {
                self.close_current()?;
                if self.tmp.len() as u32 >= self.g.data {
                    bail!("internal error: more bundle bytes than the set geometry holds");
                }
                self.open_next()?;
            }
            let i = self.tmp.len() as u32 - 1;
            // `open_next` just set it, or it was open.
            let c = self.cur.as_mut().expect("a volume is open");
            let take = ((self.g.payload_len(i) - c.written) as usize).min(bytes.len());
            let part = &bytes[..take];
            c.out
                .write_all(part)
                .with_context(|| format!("cannot write {}", self.tmp[i as usize].display()))?;
            c.crcs.update(part);
            c.written += take as u64;
            bytes = &bytes[take..];
        }
        Ok(())
    }

    /// Writes the parity volumes and every trailer, then makes the set durable and renames
    /// it into place. Returns the volumes' paths.
    pub fn finish(mut self) -> Result<Vec<PathBuf>> {
        self.close_current()?;
        if self.tmp.len() as u32 != self.g.data {
            bail!("internal error: the bundle ended before its last data volume");
        }
        self.write_parity()?;
        let desc = SetDescriptor {
            geometry: self.g,
            volumes: self.digests.clone(),
        };
        for (i, tmp) in self.tmp.iter().enumerate() {
            let trailer = encode_trailer(&desc, i as u32, &self.crcs[i]);
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(tmp)
                .with_context(|| format!("cannot reopen {}", tmp.display()))?;
            f.write_all(&trailer)
                .with_context(|| format!("cannot write {}", tmp.display()))?;
        }
        std::mem::take(&mut self.flusher).finish()?;
        self.temps
            .commit()
            .context("cannot move the volumes into place")?;
        let paths: Vec<PathBuf> = (0..self.g.volumes())
            .map(|i| volume_path(&self.dest, i))
            .collect();
        // Volumes of an earlier, longer set under the same name would read as "another set".
        for i in self.g.volumes()..volume::MAX_VOLUMES {
            let stale = volume_path(&self.dest, i);
            if read_trailer(&stale).is_ok() {
                let _ = std::fs::remove_file(&stale);
            } else {
                break;
            }
        }
        Ok(paths)
    }

    /// Reads the data volumes back stripe by stripe (from the page cache: they were just
    /// written) and writes the parity volumes. The stripes are split in contiguous ranges
    /// over the available cores (each with its own encoder and one stripe of buffers), so
    /// the pass costs its share of the write's wall time on two cores and not all of it.
    fn write_parity(&mut self) -> Result<()> {
        let g = self.g;
        if g.parity == 0 {
            return Ok(());
        }
        let data: Vec<File> = self.tmp[..g.data as usize]
            .iter()
            .map(|p| File::open(p).with_context(|| format!("cannot reopen {}", p.display())))
            .collect::<Result<_>>()?;
        let mut outs = Vec::new();
        for _ in 0..g.parity {
            self.open_next()?;
            // Nothing was written through the buffer: take the file itself.
            let c = self.cur.take().expect("just opened");
            outs.push(c.out.into_inner().map_err(|e| e.into_error())?);
        }
        let stripes = g.stripes();
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4) as u64;
        let per = stripes.div_ceil(threads).max(1);
        let tmp = &self.tmp;
        let (data, outs_ref) = (&data, &outs);
        // Every thread returns its stripes' parity CRCs: [parity volume][stripe in range].
        let parts: Vec<Result<Vec<Vec<u32>>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let range = (t * per).min(stripes)..((t + 1) * per).min(stripes);
                    scope.spawn(move || parity_range(&g, data, outs_ref, tmp, range))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("a parity thread panicked")))
                })
                .collect()
        });
        let mut crcs: Vec<Vec<u32>> = vec![Vec::with_capacity(stripes as usize); outs.len()];
        for part in parts {
            for (all, mine) in crcs.iter_mut().zip(part?) {
                all.extend(mine);
            }
        }
        for (f, c) in outs.iter().zip(crcs) {
            let i = self.digests.len();
            self.record(f, i, c)?;
        }
        Ok(())
    }
}

/// Parity units of the stripes in `range`: reads every data volume's unit of each stripe,
/// encodes, writes each parity unit at its place in its parity volume. Returns each parity
/// volume's unit CRCs for the range.
fn parity_range(
    g: &Geometry,
    data: &[File],
    outs: &[File],
    tmp: &[PathBuf],
    range: std::ops::Range<u64>,
) -> Result<Vec<Vec<u32>>> {
    let rs = |e: reed_solomon_simd::Error| anyhow::anyhow!("Reed–Solomon: {e}");
    let u = g.unit as usize;
    let mut crcs = vec![Vec::with_capacity((range.end - range.start) as usize); outs.len()];
    if range.is_empty() {
        return Ok(crcs);
    }
    let mut enc = reed_solomon_simd::ReedSolomonEncoder::new(g.data as usize, g.parity as usize, u)
        .map_err(rs)?;
    let mut shard = vec![0u8; u];
    for s in range {
        for (i, f) in data.iter().enumerate() {
            let n = g.unit_len(i as u32, s);
            shard[n..].fill(0);
            f.read_exact_at(&mut shard[..n], s * u as u64)
                .with_context(|| format!("cannot read back {}", tmp[i].display()))?;
            enc.add_original_shard(&shard).map_err(rs)?;
        }
        let r = enc.encode().map_err(rs)?;
        for (j, rec) in r.recovery_iter().enumerate() {
            outs[j]
                .write_all_at(rec, s * u as u64)
                .context("cannot write a parity volume")?;
            crcs[j].push(volume::crc32(rec));
        }
    }
    Ok(crcs)
}

/// Reads and checks the trailer at the end of `path`.
pub fn read_trailer(path: &Path) -> Result<VolumeTrailer, VolumeError> {
    let f = File::open(path).map_err(|_| VolumeError::NotAVolume)?;
    read_trailer_of(&f)
}

fn read_trailer_of(f: &File) -> Result<VolumeTrailer, VolumeError> {
    let len = f.metadata().map_err(|_| VolumeError::NotAVolume)?.len();
    let mut r = TrailerReader::new(len);
    while let Some((start, end)) = r.need() {
        // `need` ranges are at most 1 MiB (descriptor) or a table the checked geometry sized.
        let mut b = vec![0u8; (end - start) as usize];
        match f.read_exact_at(&mut b, start) {
            Ok(()) => r.give(&b),
            Err(_) => r.unreadable(),
        }
    }
    r.finish()
}

/// Whether `path` ends with a volume footer (cheap: reads 72 bytes).
pub fn is_volume(path: &Path) -> bool {
    let Ok(f) = File::open(path) else {
        return false;
    };
    let Ok(len) = f.metadata().map(|m| m.len()) else {
        return false;
    };
    let mut foot = [0u8; FOOTER_LEN];
    len >= FOOTER_LEN as u64
        && f.read_exact_at(&mut foot, len - FOOTER_LEN as u64).is_ok()
        && volume::has_volume_magic(&foot)
}

/// One volume of an open set.
#[derive(Debug)]
pub enum Slot {
    /// No file found.
    Missing,
    /// A file named like the volume whose trailer is unusable.
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        problem: VolumeError,
    },
    /// A file with a good trailer.
    Present {
        /// The file.
        path: PathBuf,
        /// Open for reading.
        file: File,
        /// Its trailer.
        trailer: VolumeTrailer,
    },
}

impl Slot {
    /// The file, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Slot::Missing => None,
            Slot::Unreadable { path, .. } | Slot::Present { path, .. } => Some(path),
        }
    }
}

/// A file given (or found) that is not used, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Refused {
    /// The file.
    pub path: PathBuf,
    /// Why it is not used.
    pub why: String,
}

/// A candidate file opened, with its trailer, or why it has none.
type Opened = Result<(File, VolumeTrailer), VolumeError>;

/// An open volume set: the logical bundle, readable at any offset, repaired from parity.
#[derive(Debug)]
pub struct VolumeSet {
    /// The geometry.
    pub geometry: Geometry,
    /// The set descriptor.
    pub descriptor: SetDescriptor,
    /// The set's digest.
    pub set: Digest,
    /// The bundle's name (`app-2.ddiff`).
    pub name: String,
    /// Where a missing volume is rebuilt: the directory of the first volume found.
    pub dir: PathBuf,
    /// Per volume, in index order.
    pub slots: Vec<Slot>,
    /// Files not used.
    pub refused: Vec<Refused>,
    /// Units found bad so far (volume, unit).
    bad: Mutex<BTreeSet<(u32, u64)>>,
}

/// The candidate files of `paths`: directories' volumes, each volume's siblings of the same
/// name, each file once.
fn candidates(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |p: PathBuf, out: &mut Vec<PathBuf>| {
        let key = std::fs::canonicalize(&p).unwrap_or_else(|_| p.clone());
        if seen.insert(key) {
            out.push(p);
        }
    };
    for p in paths {
        let meta = std::fs::metadata(p).with_context(|| format!("cannot open {}", p.display()))?;
        let (dir, stem) = if meta.is_dir() {
            (p.clone(), None)
        } else {
            push(p.clone(), &mut out);
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
            let stem = name
                .as_deref()
                .and_then(parse_volume_file_name)
                .map(|(s, _)| s.to_string());
            match stem {
                Some(s) => (
                    p.parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
                    Some(s),
                ),
                None => continue,
            }
        };
        let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|f| {
                let n = f.file_name().map(|n| n.to_string_lossy().into_owned());
                match n.as_deref().and_then(parse_volume_file_name) {
                    Some((s, _)) => stem.as_deref().is_none_or(|want| want == s),
                    None => false,
                }
            })
            .filter(|f| f.is_file())
            .collect();
        found.sort();
        for f in found {
            push(f, &mut out);
        }
    }
    Ok(out)
}

impl VolumeSet {
    /// Opens the set the files in `paths` belong to (volumes, directories holding them; each
    /// volume's siblings of the same name are looked for beside it).
    pub fn open(paths: &[PathBuf]) -> Result<VolumeSet> {
        let files = candidates(paths)?;
        let mut read: Vec<(PathBuf, Opened)> = Vec::new();
        for p in files {
            let r = File::open(&p)
                .map_err(|_| VolumeError::NotAVolume)
                .and_then(|f| read_trailer_of(&f).map(|t| (f, t)));
            read.push((p, r));
        }
        let names: Vec<Option<String>> = read
            .iter()
            .map(|(p, _)| p.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect();
        let cands: Vec<_> = read
            .iter()
            .zip(&names)
            .map(|((_, r), n)| (n.as_deref(), r.as_ref().map(|(_, t)| t)))
            .collect();
        let a = volume::arrange(&cands).context("cannot identify the volume set")?;
        let dir = read[a.first]
            .0
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let mut read: Vec<Option<(PathBuf, Opened)>> = read.into_iter().map(Some).collect();
        let slots = a
            .slots
            .iter()
            .map(|placed| match placed {
                Placed::Missing => Slot::Missing,
                Placed::Unreadable { candidate, problem } => Slot::Unreadable {
                    path: read[*candidate].take().map(|(p, _)| p).unwrap_or_default(),
                    problem: problem.clone(),
                },
                Placed::Present { candidate } => match read[*candidate].take() {
                    Some((path, Ok((file, trailer)))) => Slot::Present {
                        path,
                        file,
                        trailer,
                    },
                    // `arrange` places only candidates with a trailer, each once.
                    _ => Slot::Missing,
                },
            })
            .collect();
        let refused = a
            .refused
            .iter()
            .map(|(k, why)| Refused {
                // Refused candidates are never placed: still there.
                path: read[*k]
                    .as_ref()
                    .map(|(p, _)| p.clone())
                    .unwrap_or_default(),
                why: why.clone(),
            })
            .collect();
        let (descriptor, set, name) = (a.descriptor, a.set, a.name);
        Ok(VolumeSet {
            geometry: descriptor.geometry,
            descriptor,
            set,
            name,
            dir,
            slots,
            refused,
            bad: Mutex::default(),
        })
    }

    /// A file kept beside the set, `NAME<suffix>` (the bundle signature `NAME.sig`): the
    /// first that exists in the directories the volumes were found in (sticks mounted at
    /// once each hold some volumes, and the side file travels with one of them), else where
    /// it would be beside the first volume found.
    pub fn side_file(&self, suffix: &str) -> PathBuf {
        let name = format!("{}{suffix}", self.name);
        self.slots
            .iter()
            .filter_map(Slot::path)
            .filter_map(Path::parent)
            .map(|d| d.join(&name))
            .find(|p| p.exists())
            .unwrap_or_else(|| self.dir.join(&name))
    }

    /// Size of the logical bundle.
    pub fn bundle_size(&self) -> u64 {
        self.geometry.bundle_size
    }

    /// Reads unit `s` of volume `i` as stored (zero-padded to the unit), `None` if the volume
    /// is missing, unreadable, or the unit fails its CRC-32 (then remembered as bad).
    fn read_unit(&self, i: u32, s: u64, buf: &mut [u8]) -> Option<()> {
        let g = &self.geometry;
        let Slot::Present { file, trailer, .. } = &self.slots[i as usize] else {
            return None;
        };
        let n = g.unit_len(i, s);
        buf[n..].fill(0);
        if n == 0 {
            return Some(());
        }
        let ok = file
            .read_exact_at(&mut buf[..n], s * u64::from(g.unit))
            .is_ok()
            && trailer.crcs.get(s as usize) == Some(&volume::crc32(&buf[..n]));
        if !ok {
            self.bad
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert((i, s));
        }
        ok.then_some(())
    }

    /// Stripe `s` whole: every volume's unit (data then parity), rebuilt where bad.
    fn stripe(&self, s: u64) -> Result<Vec<Vec<u8>>> {
        let g = &self.geometry;
        let (k, m, u) = (g.data as usize, g.parity as usize, g.unit as usize);
        let mut units: Vec<Option<Vec<u8>>> = Vec::with_capacity(k + m);
        for i in 0..g.volumes() {
            let mut b = vec![0u8; u];
            units.push(self.read_unit(i, s, &mut b).map(|()| b));
        }
        volume::restore_stripe(g, s, &mut units, true)?;
        Ok(units.into_iter().flatten().collect())
    }

    /// Unit `s` of data volume `i` as the bundle has it (rebuilt when bad), `unit_len` bytes.
    fn data_unit(&self, i: u32, s: u64) -> Result<Vec<u8>> {
        let n = self.geometry.unit_len(i, s);
        let mut b = vec![0u8; self.geometry.unit as usize];
        if self.read_unit(i, s, &mut b).is_none() {
            b = self.stripe(s)?.swap_remove(i as usize);
        }
        b.truncate(n);
        Ok(b)
    }

    /// A reader of `len` logical bytes from `offset`.
    pub fn reader_at(self: &Arc<Self>, offset: u64, len: u64) -> LogicalReader {
        LogicalReader {
            set: self.clone(),
            pos: offset,
            end: (offset + len).min(self.bundle_size()),
            unit: None,
        }
    }

    /// Reads every volume once: the data volumes in order, handing the bundle's bytes
    /// (rebuilt where needed) to `consume` until it returns false or a stripe cannot be
    /// rebuilt, then the parity volumes. Returns what was seen of each volume and each
    /// file's whole SHA-256 (for `SHA256SUMS`).
    pub fn audit(
        &self,
        opts: AuditOptions,
        mut consume: impl FnMut(&[u8]) -> bool,
    ) -> Result<Audit> {
        let g = self.geometry;
        let u = g.unit as usize;
        let mut feeding = true;
        let mut rebuild_error = None;
        let mut observed = Vec::new();
        let mut file_sha = Vec::new();
        let mut buf = vec![0u8; u];
        for i in 0..g.volumes() {
            let Slot::Present { file, trailer, .. } = &self.slots[i as usize] else {
                observed.push(match &self.slots[i as usize] {
                    Slot::Unreadable { problem, .. } => Observed::Unreadable {
                        problem: problem.clone(),
                    },
                    _ => Observed::Missing,
                });
                file_sha.push(None);
                if i < g.data && feeding {
                    feeding = self.feed_rebuilt(i, &mut consume, &mut rebuild_error);
                }
                continue;
            };
            if i >= g.data && !opts.read_parity {
                observed.push(Observed::NotRead);
                file_sha.push(None);
                continue;
            }
            let mut ctx = opts.hash_files.then(sha);
            let mut bad_units = Vec::new();
            for s in 0..g.units(i) {
                let n = g.unit_len(i, s);
                let read = file.read_exact_at(&mut buf[..n], s * u as u64);
                if read.is_err() {
                    buf[..n].fill(0);
                }
                if let Some(c) = &mut ctx {
                    c.update(&buf[..n]);
                }
                let good = read.is_ok() && trailer.crcs[s as usize] == volume::crc32(&buf[..n]);
                if !good {
                    bad_units.push(s);
                    self.bad
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert((i, s));
                }
                if i < g.data && feeding {
                    if good {
                        feeding = consume(&buf[..n]);
                    } else {
                        match self.stripe(s) {
                            Ok(st) => feeding = consume(&st[i as usize][..n]),
                            Err(e) => {
                                rebuild_error = Some(e);
                                feeding = false;
                            }
                        }
                    }
                }
            }
            // The trailer, for the whole file's hash (its length was checked on open).
            let whole = ctx.and_then(|mut c| {
                let payload = g.payload_len(i);
                let mut rest = vec![0u8; (g.file_len(i) - payload) as usize];
                file.read_exact_at(&mut rest, payload).ok().map(|()| {
                    c.update(&rest);
                    crate::hash::sha256_of(c)
                })
            });
            file_sha.push(whole);
            observed.push(Observed::Read { bad_units });
        }
        let assessment = assess(&g, &observed);
        Ok(Audit {
            assessment,
            file_sha,
            rebuild_error: rebuild_error.map(|e| format!("{e:#}")),
        })
    }

    /// [`VolumeSet::audit`] with the reading, CRC-32s and volume hashes on a second thread
    /// and `consume` (the decoder, which hashes every blob) on this one, so the two hashes
    /// run on two cores as a plain bundle's verify does; on one thread when the process may
    /// use one CPU only.
    pub fn audit_pipelined(
        &self,
        opts: AuditOptions,
        mut consume: impl FnMut(&[u8]) -> bool,
    ) -> Result<Audit> {
        if std::thread::available_parallelism().map_or(1, |n| n.get()) == 1 {
            return self.audit(opts, consume);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        std::thread::scope(|sc| {
            let reader = sc.spawn(move || {
                self.audit(opts, |chunk| {
                    // The consumer stopped (and dropped its side): stop feeding it.
                    tx.send(chunk.to_vec()).is_ok()
                })
            });
            for chunk in rx.iter() {
                if !consume(&chunk) {
                    break;
                }
            }
            drop(rx);
            // A panic in the reader is a bug; propagate it.
            reader.join().expect("volume reader thread panicked")
        })
    }

    /// Feeds a missing data volume's bytes, rebuilt stripe by stripe.
    fn feed_rebuilt(
        &self,
        i: u32,
        consume: &mut impl FnMut(&[u8]) -> bool,
        err: &mut Option<anyhow::Error>,
    ) -> bool {
        for s in 0..self.geometry.units(i) {
            match self.data_unit(i, s) {
                Ok(b) => {
                    if !consume(&b) {
                        return false;
                    }
                }
                Err(e) => {
                    *err = Some(e);
                    return false;
                }
            }
        }
        true
    }

    /// Rewrites every volume in `which` (missing or damaged) from the others, durably: each
    /// is checked against its digest in the descriptor before anything is renamed.
    pub fn repair(&self, which: &[u32]) -> Result<Vec<PathBuf>> {
        let g = self.geometry;
        let mut temps = TempSet::new();
        let mut outs = Vec::new();
        for &i in which {
            let dest = match self.slots[i as usize].path() {
                Some(p) => p.to_path_buf(),
                None => self.dir.join(volume_file_name(&self.name, i)),
            };
            let (tmp, f) = temps.create_for(&dest, "volume").with_context(|| {
                format!("cannot create a temporary file beside {}", dest.display())
            })?;
            outs.push((i, dest, tmp, BufWriter::new(f), UnitCrcs::new(g.unit)));
        }
        for s in 0..g.stripes() {
            let st = self.stripe(s)?;
            for (i, _, tmp, out, crcs) in &mut outs {
                let n = g.unit_len(*i, s);
                let b = &st[*i as usize][..n];
                out.write_all(b)
                    .with_context(|| format!("cannot write {}", tmp.display()))?;
                crcs.update(b);
            }
        }
        let mut done = Vec::new();
        for (i, dest, tmp, out, crcs) in outs {
            let mut f = out
                .into_inner()
                .map_err(|e| e.into_error())
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            let crcs = crcs.finish();
            let d = table_digest(&crcs);
            if d != self.descriptor.volumes[i as usize] {
                bail!(
                    "volume {} rebuilt does not match its digest {} (found {d}): nothing was replaced",
                    i + 1,
                    self.descriptor.volumes[i as usize]
                );
            }
            f.write_all(&encode_trailer(&self.descriptor, i, &crcs))
                .with_context(|| format!("cannot write {}", tmp.display()))?;
            done.push(dest);
        }
        temps
            .commit()
            .context("cannot move the rebuilt volumes into place")?;
        Ok(done)
    }
}

/// What [`VolumeSet::audit`] reads besides the data volumes.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuditOptions {
    /// Read the parity volumes too (verify: their state; a load needs them only to rebuild).
    pub read_parity: bool,
    /// Hash each whole file (for `SHA256SUMS`).
    pub hash_files: bool,
}

/// What [`VolumeSet::audit`] saw.
#[derive(Debug)]
pub struct Audit {
    /// Per-volume states and whether the set can be recovered.
    pub assessment: Assessment,
    /// Each file's SHA-256 (`None` when missing or unreadable).
    pub file_sha: Vec<Option<Digest>>,
    /// Why the bundle's bytes could not all be handed out.
    pub rebuild_error: Option<String>,
}

/// Logical bundle bytes from a set (see [`VolumeSet::reader_at`]).
pub struct LogicalReader {
    set: Arc<VolumeSet>,
    pos: u64,
    end: u64,
    /// The unit holding `pos`: its logical start and bytes.
    unit: Option<(u64, Vec<u8>)>,
}

impl Read for LogicalReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.end || buf.is_empty() {
            return Ok(0);
        }
        let g = self.set.geometry;
        let hit = matches!(&self.unit, Some((start, b)) if self.pos >= *start && self.pos < start + b.len() as u64);
        if !hit {
            let (i, off) = g.locate(self.pos);
            let s = off / u64::from(g.unit);
            let b = self
                .set
                .data_unit(i, s)
                .map_err(|e| std::io::Error::other(format!("{e:#}")))?;
            let start = u64::from(i) * g.payload + s * u64::from(g.unit);
            self.unit = Some((start, b));
        }
        // Just filled when missing.
        let (start, b) = self.unit.as_ref().expect("unit loaded");
        let at = (self.pos - start) as usize;
        let n = (b.len() - at)
            .min(buf.len())
            .min((self.end - self.pos) as usize);
        buf[..n].copy_from_slice(&b[at..at + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// Whether the arguments name a volume set rather than one plain bundle file: several
/// files, a directory, a file ending with a volume footer or named like a volume
/// (`NAME.NNN`, so that a volume cut short is still read as one of its set).
pub fn names_a_set(paths: &[PathBuf]) -> bool {
    paths.len() > 1
        || paths.iter().any(|p| {
            p.is_dir()
                || is_volume(p)
                || p.file_name()
                    .is_some_and(|n| parse_volume_file_name(&n.to_string_lossy()).is_some())
        })
}

/// The `SHA256SUMS` file of a set: `NAME.SHA256SUMS` beside its first volume.
pub fn sums_path(set: &VolumeSet) -> PathBuf {
    set.dir.join(format!("{}.SHA256SUMS", set.name))
}

/// `sha256sum` lines for every volume.
pub fn sums_text(set: &VolumeSet, file_sha: &[Option<Digest>]) -> Option<String> {
    let mut s = String::new();
    for (i, d) in file_sha.iter().enumerate() {
        s += &format!(
            "{}  {}\n",
            d.as_ref()?.hex(),
            volume_file_name(&set.name, i as u32)
        );
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle_io::{open_blob, verify_file, verify_source};
    use crate::bundle_write::BundleWriter;
    use ddiff_core::synth_bundle::{many, ManyOptions, Sample};

    /// A self-contained bundle of about 600 KB: ten volumes of 64 KiB.
    fn sample() -> Sample {
        many(ManyOptions {
            targets: 2,
            layers: 6,
            layers_per_target: 3,
            distinct_images: true,
            layer_bytes: 100_000,
            tar_layers: false,
        })
    }

    fn write(s: &Sample, dest: &Path, size: Option<u64>, parity: u32) -> Vec<PathBuf> {
        let v = VolumeArgs {
            volume_size: size,
            parity,
        };
        let mut w = BundleWriter::create_in_volumes(dest, s.meta.clone(), true, &v).unwrap();
        for b in &s.meta.blobs {
            w.blob(&s.blobs[&b.digest]).unwrap();
        }
        w.finish_files().unwrap().1
    }

    fn plain_bytes(s: &Sample, dir: &Path) -> Vec<u8> {
        let p = dir.join("plain.ddiff");
        write(s, &p, None, 0);
        std::fs::read(p).unwrap()
    }

    /// Verifies the set from `paths` and reads every blob back through it: the bytes must
    /// be the plain bundle's.
    fn check_loads(paths: &[PathBuf], plain: &[u8]) {
        let vb = verify_source(paths, |_, _| {}).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(vb.set.is_some());
        assert_eq!(vb.file_size, plain.len() as u64);
        for i in 0..vb.report.meta.blobs.len() {
            let mut got = Vec::new();
            open_blob(&vb, i).unwrap().read_to_end(&mut got).unwrap();
            let at = vb.report.offsets[i] as usize;
            assert_eq!(got, plain[at..at + got.len()], "blob {i}");
        }
        let set = vb.set.unwrap();
        let mut all = Vec::new();
        set.reader_at(0, set.bundle_size())
            .read_to_end(&mut all)
            .unwrap();
        assert!(all == plain, "logical bytes differ from the plain bundle");
    }

    /// The in-memory sets the page's tests use (`synth_bundle::volume_set`) are this
    /// writer's, byte for byte.
    #[test]
    fn the_synthetic_set_is_the_writers() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        let plain = plain_bytes(&s, dir.path());
        let files = write(&s, &dir.path().join("app.ddiff"), Some(65536), 2);
        let synth = ddiff_core::synth_bundle::volume_set(&plain, 65536, 2).unwrap();
        assert_eq!(files.len(), synth.len());
        for (f, v) in files.iter().zip(&synth) {
            assert!(std::fs::read(f).unwrap() == *v, "{}", f.display());
        }
    }

    #[test]
    fn a_bundle_that_fits_stays_the_plain_format_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        let plain = plain_bytes(&s, dir.path());
        let p = dir.path().join("fits.ddiff");
        let files = write(&s, &p, Some(1 << 30), 0);
        assert_eq!(files, std::slice::from_ref(&p));
        assert!(std::fs::read(&p).unwrap() == plain);
        assert!(!is_volume(&p));
        assert!(verify_file(&p, |_, _| {}).is_ok());
    }

    #[test]
    fn volumes_fit_their_size_and_read_back_in_any_order_from_two_directories() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        let plain = plain_bytes(&s, dir.path());
        let dest = dir.path().join("app.ddiff");
        let files = write(&s, &dest, Some(65536), 1);
        assert!(files.len() >= 9, "{}", files.len());
        for f in &files {
            assert!(std::fs::metadata(f).unwrap().len() <= 65536);
        }
        assert!(!dest.exists());
        // No temporary file left beside them.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
        // One volume names the rest (found beside it).
        check_loads(&files[3..4], &plain);
        // Split over two directories, given shuffled.
        let other = tempfile::tempdir().unwrap();
        let mut moved = Vec::new();
        for (k, f) in files.iter().enumerate() {
            if k % 2 == 1 {
                let to = other.path().join(f.file_name().unwrap());
                std::fs::rename(f, &to).unwrap();
                moved.push(to);
            }
        }
        let mut given: Vec<PathBuf> = files.iter().step_by(2).cloned().collect();
        given.extend(moved);
        given.reverse();
        given.swap(0, 3);
        check_loads(&given, &plain);
        // Two directories given as directories.
        check_loads(
            &[other.path().to_path_buf(), dir.path().to_path_buf()],
            &plain,
        );
    }

    fn flip(path: &Path, at: u64) {
        let mut b = std::fs::read(path).unwrap();
        b[at as usize] ^= 0x40;
        std::fs::write(path, b).unwrap();
    }

    #[test]
    fn every_single_volume_lost_or_damaged_is_recovered_with_parity_1() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        let plain = plain_bytes(&s, dir.path());
        let dest = dir.path().join("app.ddiff");
        let files = write(&s, &dest, Some(65536), 1);
        let originals: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
        for (i, f) in files.iter().enumerate() {
            let restore = || std::fs::write(f, &originals[i]).unwrap();
            // Lost.
            std::fs::remove_file(f).unwrap();
            check_loads(&files[(i + 1) % files.len()..][..1], &plain);
            let set = VolumeSet::open(&[dir.path().to_path_buf()]).unwrap();
            assert!(matches!(set.slots[i], Slot::Missing));
            let repaired = set.repair(&[i as u32]).unwrap();
            assert_eq!(repaired, std::slice::from_ref(f));
            assert!(
                std::fs::read(f).unwrap() == originals[i],
                "volume {i} rebuilt"
            );
            // Damaged: a flipped byte in its payload (every unit: first, middle, last).
            let len = set.geometry.payload_len(i as u32);
            for at in [0, len / 2, len - 1] {
                flip(f, at);
                // As `verify` reads it: the parity volumes too.
                let opts = AuditOptions {
                    read_parity: true,
                    hash_files: false,
                };
                let audit = VolumeSet::open(&[dir.path().to_path_buf()])
                    .unwrap()
                    .audit(opts, |_| true)
                    .unwrap();
                assert!(matches!(
                    audit.assessment.states[i],
                    ddiff_core::volume::VolumeState::Damaged { bad_units: 1, .. }
                ));
                assert!(audit.assessment.recoverable);
                check_loads(&[dir.path().to_path_buf()], &plain);
                restore();
            }
            // Damaged trailer: the volume is unusable, the set still loads.
            flip(f, originals[i].len() as u64 - 40);
            check_loads(&[dir.path().to_path_buf()], &plain);
            restore();
        }
    }

    #[test]
    fn any_two_volumes_lost_are_recovered_with_parity_2_and_three_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        let plain = plain_bytes(&s, dir.path());
        let dest = dir.path().join("app.ddiff");
        let files = write(&s, &dest, Some(128 << 10), 2);
        let n = files.len();
        let away = tempfile::tempdir().unwrap();
        for a in 0..n {
            for b in a + 1..n {
                let ta = away.path().join("a");
                let tb = away.path().join("b");
                std::fs::rename(&files[a], &ta).unwrap();
                std::fs::rename(&files[b], &tb).unwrap();
                check_loads(&[dir.path().to_path_buf()], &plain);
                std::fs::rename(&ta, &files[a]).unwrap();
                std::fs::rename(&tb, &files[b]).unwrap();
            }
        }
        for (k, f) in files.iter().enumerate().take(3) {
            std::fs::rename(f, away.path().join(k.to_string())).unwrap();
        }
        let e = verify_source(&[dir.path().to_path_buf()], |_, _| {})
            .err()
            .expect("three of two lost");
        assert!(format!("{e:#}").contains("cannot be rebuilt"), "{e:#}");
    }

    #[test]
    fn a_volume_of_another_set_is_refused_and_a_truncated_last_volume_detected() {
        let dir = tempfile::tempdir().unwrap();
        let s = sample();
        let plain = plain_bytes(&s, dir.path());
        let dest = dir.path().join("app.ddiff");
        let files = write(&s, &dest, Some(65536), 1);
        // Another bundle's set, under the same name.
        let other_dir = tempfile::tempdir().unwrap();
        let other = many(ManyOptions {
            targets: 2,
            layers: 6,
            layers_per_target: 3,
            distinct_images: false,
            layer_bytes: 100_000,
            tar_layers: false,
        });
        let ofiles = write(&other, &other_dir.path().join("app.ddiff"), Some(65536), 1);
        // Volume 2 replaced by the other set's volume 2.
        std::fs::copy(&ofiles[1], &files[1]).unwrap();
        let set = VolumeSet::open(&files[..1]).unwrap();
        assert!(matches!(set.slots[1], Slot::Missing));
        assert_eq!(set.refused.len(), 1, "{:?}", set.refused);
        assert!(set.refused[0].why.contains("another set"));
        check_loads(&files[..1], &plain);
        set.repair(&[1]).unwrap();
        // Cut short: the last data volume loses its tail (and so its trailer): detected,
        // and rebuilt from parity.
        let g = set.geometry;
        let last = &files[g.data as usize - 1];
        let bytes = std::fs::read(last).unwrap();
        std::fs::write(last, &bytes[..bytes.len() - 100]).unwrap();
        let set = VolumeSet::open(&files[..1]).unwrap();
        assert!(
            matches!(&set.slots[g.data as usize - 1], Slot::Unreadable { .. }),
            "{:?}",
            set.slots[g.data as usize - 1]
        );
        check_loads(&files[..1], &plain);
        // With a second volume lost, one parity volume is not enough: refused, naming the
        // stripe.
        std::fs::remove_file(&files[1]).unwrap();
        let e = verify_source(&files[..1], |_, _| {})
            .err()
            .expect("refused");
        assert!(format!("{e:#}").contains("cannot be rebuilt"), "{e:#}");
    }
}
