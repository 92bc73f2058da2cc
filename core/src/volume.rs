//! Volume sets (docs/bundle-format.md section 9): a bundle cut into volumes that fit a medium,
//! plus Reed–Solomon parity volumes so that any `parity` missing or damaged volumes can be
//! rebuilt. Everything a reader or writer decides is here: the geometry (how many volumes,
//! their payload size, the stripe unit), the trailer every volume ends with (its unit
//! checksums and the set descriptor, which names the bundle's digest and every volume's
//! digest), which set a pile of files belongs to, and whether a set with some volumes
//! missing or damaged can be recovered. Hosts read and write the bytes and run the
//! Reed–Solomon arithmetic.
//!
//! ```text
//!  logical bundle  [────────────── L bytes ───────────────]
//!  data volumes    [ vol 1: P ][ vol 2: P ][ vol 3: ≤ P ]         payload = bundle bytes
//!  stripe s        unit s of every data volume (zero-padded) ─RS─► unit s of each parity volume
//!  each file       payload │ CRC-32 per unit │ set descriptor │ footer (72 bytes)
//! ```

use crate::digest::{Algorithm, Digest};

/// The smallest `--volume-size` accepted (small sizes exist for tests and tiny media).
pub const MIN_VOLUME_SIZE: u64 = 64 * 1024;
/// At most this many volumes in a set (data and parity), so names stay `NAME.ddiff.001`–`999`.
pub const MAX_VOLUMES: u32 = 999;
/// The fixed footer at the end of every volume.
pub const FOOTER_LEN: usize = 72;
/// Magic at the start of the footer.
pub const VOLUME_MAGIC: [u8; 8] = *b"DDIFFVOL";
/// Magic at the start of the set descriptor.
pub const SET_MAGIC: [u8; 8] = *b"DDIFFSET";
/// The volume format version.
pub const VOLUME_VERSION: u32 = 1;
/// Stripe units are powers of two between these.
pub const MIN_UNIT: u32 = 4096;
/// See [`MIN_UNIT`].
pub const MAX_UNIT: u32 = 1 << 20;
/// A reader or writer holds one stripe (`volumes × unit`); the unit shrinks to keep it here.
const STRIPE_BUDGET: u64 = 64 << 20;
/// At most this many units (stripes) per volume: 16 Mi, a 64 MiB unit table at most.
const MAX_STRIPES: u64 = 1 << 24;
/// Fixed part of the set descriptor (before the volume digests).
const DESCRIPTOR_FIXED: usize = 40;

/// What is wrong with a volume size, a volume or a set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    /// A `--volume-size` that does not parse.
    #[error(
        "invalid size {text:?} (expected bytes, 64k, 4G, 4.7GB, fat32, dvd, dvd-dl, bd25, bd50)"
    )]
    BadSize {
        /// What was given.
        text: String,
    },
    /// A volume size below [`MIN_VOLUME_SIZE`].
    #[error("volume size {size} bytes is below the minimum of {min} bytes")]
    TooSmall {
        /// Given.
        size: u64,
        /// The minimum.
        min: u64,
    },
    /// More volumes than [`MAX_VOLUMES`] would be needed.
    #[error("a {bundle}-byte bundle needs {needed} volumes of {size} bytes (with {parity} parity); at most {max} are allowed: choose a larger volume size")]
    TooMany {
        /// Bundle size.
        bundle: u64,
        /// Volume size.
        size: u64,
        /// Parity volumes asked for.
        parity: u32,
        /// Volumes needed.
        needed: u64,
        /// The maximum.
        max: u32,
    },
    /// The file is too short or does not end with a volume footer.
    #[error("not a ddiff volume (no volume footer at its end; truncated?)")]
    NotAVolume,
    /// A footer whose checksum does not match.
    #[error("the volume footer is damaged (its CRC-32 does not match)")]
    FooterDamaged,
    /// A newer volume format.
    #[error("unsupported volume format version {0}")]
    Version(u32),
    /// A trailer whose parts disagree.
    #[error("the volume trailer is inconsistent: {problem}")]
    Trailer {
        /// What disagrees.
        problem: &'static str,
    },
    /// The file's length is not what its footer says.
    #[error(
        "the volume is {found} bytes long; its footer says {expected} (truncated or extended)"
    )]
    Length {
        /// From the footer.
        expected: u64,
        /// Found.
        found: u64,
    },
    /// No volume of any set among the files.
    #[error("no intact volume trailer among the files given: the set cannot be identified")]
    NoSet,
    /// Volumes of several sets with as many volumes each.
    #[error("the files hold volumes of {sets} different sets with {each} volumes each: give the volumes of one set")]
    AmbiguousSet {
        /// Sets seen.
        sets: usize,
        /// Volumes of each.
        each: usize,
    },
    /// A stripe with more missing or damaged units than parity volumes.
    #[error("stripe {stripe} cannot be rebuilt: {bad} of its {units} units are missing or damaged (volumes {volumes}), parity covers {parity}")]
    StripeLost {
        /// The stripe (0-based).
        stripe: u64,
        /// Units missing or damaged in it.
        bad: usize,
        /// Units in a stripe (every volume's).
        units: usize,
        /// The volumes (1-based, comma-separated) whose unit is bad.
        volumes: String,
        /// Parity volumes.
        parity: u32,
    },
    /// The Reed–Solomon arithmetic refused a stripe (units of the wrong size: a host bug).
    #[error("Reed–Solomon, stripe {stripe}: {reason}")]
    ReedSolomon {
        /// The stripe.
        stripe: u64,
        /// What `reed-solomon-simd` said.
        reason: String,
    },
}

/// A `--volume-size`: bytes (`65536`), binary units (`64k`, `4G`, `1.5GiB`), decimal units
/// (`4.7GB`, `700MB`) or a medium (`fat32`, `dvd`, `dvd-dl`, `bd25`, `bd50`, `cd`). The
/// media leave room for the disc's file system.
pub fn parse_volume_size(text: &str) -> Result<u64, VolumeError> {
    let bad = || VolumeError::BadSize {
        text: crate::display::safe_text(text),
    };
    let t = text.trim().to_ascii_lowercase();
    let named = match t.as_str() {
        // One byte under 4 GiB: FAT32's largest file.
        "fat32" => Some(u64::from(u32::MAX)),
        "cd" => Some(690_000_000),
        "dvd" => Some(4_690_000_000),
        "dvd-dl" => Some(8_490_000_000),
        "bd25" => Some(24_900_000_000),
        "bd50" => Some(49_800_000_000),
        _ => None,
    };
    let size = match named {
        Some(n) => n,
        None => {
            let split = t
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(t.len());
            let (num, unit) = t.split_at(split);
            let mult: u64 = match unit.trim() {
                "" | "b" => 1,
                "k" | "kib" => 1 << 10,
                "m" | "mib" => 1 << 20,
                "g" | "gib" => 1 << 30,
                "t" | "tib" => 1 << 40,
                "kb" => 1_000,
                "mb" => 1_000_000,
                "gb" => 1_000_000_000,
                "tb" => 1_000_000_000_000,
                _ => return Err(bad()),
            };
            if num.is_empty() || num.matches('.').count() > 1 {
                return Err(bad());
            }
            let (int, frac) = num.split_once('.').unwrap_or((num, ""));
            let int: u64 = if int.is_empty() {
                0
            } else {
                int.parse().map_err(|_| bad())?
            };
            let mut total = int.checked_mul(mult).ok_or_else(bad)?;
            // Fractions exactly (no floating point): 4.7GB is 4 700 000 000, 1.5G 3 × 2^29.
            if frac.len() > 18 {
                return Err(bad());
            }
            let f: u128 = if frac.is_empty() {
                0
            } else {
                frac.parse().map_err(|_| bad())?
            };
            let part = f * u128::from(mult) / 10u128.pow(frac.len() as u32);
            total = total
                .checked_add(u64::try_from(part).map_err(|_| bad())?)
                .ok_or_else(bad)?;
            total
        }
    };
    if size < MIN_VOLUME_SIZE {
        return Err(VolumeError::TooSmall {
            size,
            min: MIN_VOLUME_SIZE,
        });
    }
    Ok(size)
}

/// How a bundle is cut into volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    /// Data volumes (`K`).
    pub data: u32,
    /// Parity volumes (`M`).
    pub parity: u32,
    /// The stripe unit in bytes (a power of two).
    pub unit: u32,
    /// Payload bytes of every volume but the last data volume (a multiple of `unit`).
    pub payload: u64,
    /// Bytes of the bundle.
    pub bundle_size: u64,
}

fn div_ceil(a: u64, b: u64) -> u64 {
    a.div_ceil(b)
}

impl Geometry {
    /// The geometry for a bundle of `bundle_size` bytes in volumes of at most `volume_size`
    /// bytes each (whole files: payload and trailer) with `parity` parity volumes. `None`
    /// when the bundle should stay one plain file: no parity asked for and it fits.
    pub fn plan(
        bundle_size: u64,
        volume_size: u64,
        parity: u32,
    ) -> Result<Option<Geometry>, VolumeError> {
        if volume_size < MIN_VOLUME_SIZE {
            return Err(VolumeError::TooSmall {
                size: volume_size,
                min: MIN_VOLUME_SIZE,
            });
        }
        if parity == 0 && bundle_size <= volume_size {
            return Ok(None);
        }
        let too_many = |needed: u64| VolumeError::TooMany {
            bundle: bundle_size,
            size: volume_size,
            parity,
            needed,
            max: MAX_VOLUMES,
        };
        if parity >= MAX_VOLUMES {
            return Err(too_many(u64::from(parity) + 1));
        }
        let k_est = div_ceil(bundle_size.max(1), volume_size);
        let cap = (volume_size / 16)
            .min(u64::from(MAX_UNIT))
            .min(STRIPE_BUDGET / (k_est + u64::from(parity)).max(1));
        let mut unit = prev_pow2(cap).max(u64::from(MIN_UNIT));
        loop {
            let g =
                Self::plan_with_unit(bundle_size, volume_size, parity, unit).map_err(&too_many)?;
            let stripe = u64::from(g.volumes()) * unit;
            if stripe <= STRIPE_BUDGET || unit == u64::from(MIN_UNIT) {
                return Ok(Some(g));
            }
            unit /= 2;
        }
    }

    /// [`Geometry::plan`] with the unit fixed; `Err(needed)` when too many volumes.
    fn plan_with_unit(bundle: u64, size: u64, parity: u32, unit: u64) -> Result<Geometry, u64> {
        let m = u64::from(parity);
        // Units per volume for k data volumes (the descriptor grows with the count).
        let max_payload = |k: u64| -> u64 {
            let trailer_fixed = (DESCRIPTOR_FIXED as u64) + 32 * (k + m) + FOOTER_LEN as u64;
            let avail = size.saturating_sub(trailer_fixed);
            (avail / (unit + 4)) * unit
        };
        let mut k = 1u64;
        loop {
            let p = max_payload(k);
            if p == 0 {
                return Err(u64::from(MAX_VOLUMES) + 1);
            }
            let need = div_ceil(bundle, p).max(1);
            if need + m > u64::from(MAX_VOLUMES) {
                return Err(need + m);
            }
            if need <= k {
                break;
            }
            k = need;
        }
        // Balance the volumes (parity volumes are as large as the largest data volume).
        let payload = div_ceil(div_ceil(bundle, k).max(1), unit) * unit;
        let data = div_ceil(bundle, payload).max(1);
        Ok(Geometry {
            // Both fit in u32: checked against MAX_VOLUMES above.
            data: data as u32,
            parity,
            unit: unit as u32,
            payload,
            bundle_size: bundle,
        })
    }

    /// All volumes, data and parity.
    pub fn volumes(&self) -> u32 {
        self.data + self.parity
    }

    /// Stripes (units per full volume).
    pub fn stripes(&self) -> u64 {
        self.payload / u64::from(self.unit)
    }

    /// Payload bytes of volume `i` (0-based).
    pub fn payload_len(&self, i: u32) -> u64 {
        if i + 1 < self.data || i >= self.data {
            self.payload
        } else {
            self.bundle_size - u64::from(self.data - 1) * self.payload
        }
    }

    /// Units stored in volume `i`.
    pub fn units(&self, i: u32) -> u64 {
        div_ceil(self.payload_len(i), u64::from(self.unit))
    }

    /// Bytes of unit `s` stored in volume `i` (0 past its end; the rest is zero padding).
    pub fn unit_len(&self, i: u32, s: u64) -> usize {
        let u = u64::from(self.unit);
        self.payload_len(i).saturating_sub(s * u).min(u) as usize
    }

    /// The set descriptor's length.
    pub fn descriptor_len(&self) -> usize {
        DESCRIPTOR_FIXED + 32 * self.volumes() as usize
    }

    /// The whole file length of volume `i`.
    pub fn file_len(&self, i: u32) -> u64 {
        self.payload_len(i) + 4 * self.units(i) + self.descriptor_len() as u64 + FOOTER_LEN as u64
    }

    /// Where logical byte `offset` of the bundle is: (data volume, offset in its payload).
    pub fn locate(&self, offset: u64) -> (u32, u64) {
        ((offset / self.payload) as u32, offset % self.payload)
    }

    fn check(&self) -> Result<(), VolumeError> {
        let bad = |problem| Err(VolumeError::Trailer { problem });
        if self.data == 0 {
            return bad("no data volumes");
        }
        if self.volumes() > MAX_VOLUMES {
            return bad("more volumes than allowed");
        }
        if !self.unit.is_power_of_two() || self.unit < MIN_UNIT || self.unit > MAX_UNIT {
            return bad("stripe unit is not a power of two between 4 KiB and 1 MiB");
        }
        if self.payload == 0 || !self.payload.is_multiple_of(u64::from(self.unit)) {
            return bad("volume payload is not a positive multiple of the unit");
        }
        // Bounds every size a reader computes or allocates from a descriptor: the unit table
        // (4 bytes a unit) of one volume stays under 64 MiB, and no sum overflows.
        if self.payload / u64::from(self.unit) > MAX_STRIPES {
            return bad("more units per volume than a reader accepts (16 Mi)");
        }
        let full = u64::from(self.data - 1) * self.payload;
        if self.bundle_size <= full && self.data > 1
            || self.bundle_size > full.saturating_add(self.payload)
        {
            return bad("bundle size does not match the data volumes");
        }
        Ok(())
    }
}

fn prev_pow2(x: u64) -> u64 {
    if x == 0 {
        0
    } else {
        1 << (63 - x.leading_zeros())
    }
}

/// The set descriptor, the same bytes in every volume: the geometry and every volume's
/// digest, the SHA-256 of its unit table. Every payload byte is covered by a unit's CRC-32,
/// every CRC-32 by the volume's digest, every digest by the set digest; what the bundle's
/// bytes mean is proven by the bundle's own digests (section 4), checked after any rebuild.
/// (A SHA-256 of every payload would cost a second hash of the whole bundle on every write
/// and verify for no check the bundle's own digests do not already make.) The set's digest is the SHA-256 of these bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDescriptor {
    /// The geometry.
    pub geometry: Geometry,
    /// SHA-256 of each volume's unit table, in index order.
    pub volumes: Vec<Digest>,
}

fn raw32(d: &Digest) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (k, o) in out.iter_mut().enumerate() {
        // Every digest here is a SHA-256 built by this module or parsed from 32 raw bytes.
        *o = u8::from_str_radix(&d.hex()[2 * k..2 * k + 2], 16).unwrap_or(0);
    }
    out
}

fn from_raw32(b: &[u8]) -> Digest {
    // `b` is 32 bytes, the length SHA-256 requires.
    Digest::from_raw(Algorithm::Sha256, b).expect("32 bytes make a SHA-256 digest")
}

fn le32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl SetDescriptor {
    /// The descriptor's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let g = &self.geometry;
        let mut b = Vec::with_capacity(g.descriptor_len());
        b.extend_from_slice(&SET_MAGIC);
        b.extend_from_slice(&VOLUME_VERSION.to_le_bytes());
        b.extend_from_slice(&g.data.to_le_bytes());
        b.extend_from_slice(&g.parity.to_le_bytes());
        b.extend_from_slice(&g.unit.to_le_bytes());
        b.extend_from_slice(&g.payload.to_le_bytes());
        b.extend_from_slice(&g.bundle_size.to_le_bytes());
        for v in &self.volumes {
            b.extend_from_slice(&raw32(v));
        }
        b
    }

    /// Parses and checks a descriptor.
    pub fn decode(b: &[u8]) -> Result<SetDescriptor, VolumeError> {
        let bad = |problem| VolumeError::Trailer { problem };
        if b.len() < DESCRIPTOR_FIXED || b[..8] != SET_MAGIC {
            return Err(bad("no set descriptor"));
        }
        let version = le32(b, 8);
        if version != VOLUME_VERSION {
            return Err(VolumeError::Version(version));
        }
        let geometry = Geometry {
            data: le32(b, 12),
            parity: le32(b, 16),
            unit: le32(b, 20),
            payload: le64(b, 24),
            bundle_size: le64(b, 32),
        };
        geometry.check()?;
        if b.len() != geometry.descriptor_len() {
            return Err(bad("set descriptor length does not match its volume count"));
        }
        let volumes = b[DESCRIPTOR_FIXED..]
            .chunks_exact(32)
            .map(from_raw32)
            .collect();
        Ok(SetDescriptor { geometry, volumes })
    }

    /// The set's digest: SHA-256 of the descriptor's bytes.
    pub fn digest(&self) -> Digest {
        Digest::sha256(&self.encode())
    }
}

/// A volume's footer (the last [`FOOTER_LEN`] bytes of the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Footer {
    /// The volume's index (0-based; file `.001` is index 0).
    pub index: u32,
    /// Its payload length.
    pub payload_len: u64,
    /// The descriptor's length.
    pub descriptor_len: u32,
    /// CRC-32 of the unit table.
    pub table_crc: u32,
    /// The set digest (SHA-256 of the descriptor).
    pub set: Digest,
}

impl Footer {
    /// The footer's bytes.
    pub fn encode(&self) -> [u8; FOOTER_LEN] {
        let mut b = [0u8; FOOTER_LEN];
        b[..8].copy_from_slice(&VOLUME_MAGIC);
        b[8..12].copy_from_slice(&VOLUME_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&self.index.to_le_bytes());
        b[16..24].copy_from_slice(&self.payload_len.to_le_bytes());
        b[24..28].copy_from_slice(&self.descriptor_len.to_le_bytes());
        b[28..32].copy_from_slice(&self.table_crc.to_le_bytes());
        b[32..64].copy_from_slice(&raw32(&self.set));
        let crc = crc32(&b[..64]);
        b[64..68].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses a footer. `NotAVolume` when the magic is absent (a plain bundle, another
    /// file, or a volume cut short).
    pub fn decode(b: &[u8]) -> Result<Footer, VolumeError> {
        if b.len() != FOOTER_LEN || b[..8] != VOLUME_MAGIC {
            return Err(VolumeError::NotAVolume);
        }
        if crc32(&b[..64]) != le32(b, 64) || b[68..] != [0; 4] {
            return Err(VolumeError::FooterDamaged);
        }
        let version = le32(b, 8);
        if version != VOLUME_VERSION {
            return Err(VolumeError::Version(version));
        }
        Ok(Footer {
            index: le32(b, 12),
            payload_len: le64(b, 16),
            descriptor_len: le32(b, 24),
            table_crc: le32(b, 28),
            set: from_raw32(&b[32..64]),
        })
    }

    /// Bytes before the footer that belong to the trailer (unit table and descriptor), given
    /// the unit size learned from the descriptor. Hosts read `descriptor_len` bytes before the
    /// footer first, then the table before it.
    pub fn descriptor_range(&self, file_len: u64) -> Option<(u64, u64)> {
        let end = file_len.checked_sub(FOOTER_LEN as u64)?;
        let start = end.checked_sub(u64::from(self.descriptor_len))?;
        Some((start, end))
    }
}

/// One volume's trailer, parsed and cross-checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeTrailer {
    /// The footer.
    pub footer: Footer,
    /// The set descriptor.
    pub descriptor: SetDescriptor,
    /// CRC-32 of each unit of the payload.
    pub crcs: Vec<u32>,
}

impl VolumeTrailer {
    /// The volume's index.
    pub fn index(&self) -> u32 {
        self.footer.index
    }

    /// Checks a trailer read from a file of `file_len` bytes: the descriptor against the
    /// footer's set digest, the footer's index and payload length against the geometry, the
    /// unit table against its CRC, and the file's length.
    pub fn check(
        footer: Footer,
        descriptor: &[u8],
        table: &[u8],
        file_len: u64,
    ) -> Result<VolumeTrailer, VolumeError> {
        let bad = |problem| VolumeError::Trailer { problem };
        if Digest::sha256(descriptor) != footer.set {
            return Err(bad(
                "the set descriptor does not hash to the set digest in the footer",
            ));
        }
        let d = SetDescriptor::decode(descriptor)?;
        let g = d.geometry;
        if footer.index >= g.volumes() {
            return Err(bad("volume index beyond the set"));
        }
        if footer.payload_len != g.payload_len(footer.index) {
            return Err(bad("payload length does not match the set geometry"));
        }
        if table.len() as u64 != 4 * g.units(footer.index) {
            return Err(bad("unit table length does not match the payload"));
        }
        if crc32(table) != footer.table_crc {
            return Err(bad("the unit table does not match its CRC-32"));
        }
        if Digest::sha256(table) != d.volumes[footer.index as usize] {
            return Err(bad(
                "the unit table does not match the volume's digest in the set",
            ));
        }
        let expected = g.file_len(footer.index);
        if expected != file_len {
            return Err(VolumeError::Length {
                expected,
                found: file_len,
            });
        }
        let crcs = table.chunks_exact(4).map(|c| le32(c, 0)).collect();
        Ok(VolumeTrailer {
            footer,
            descriptor: d,
            crcs,
        })
    }

    /// The unit table's length for this volume.
    pub fn table_len(g: &Geometry, index: u32) -> u64 {
        4 * g.units(index)
    }
}

/// Whether `footer` (a file's last [`FOOTER_LEN`] bytes) starts with the volume magic: the
/// file is meant as a volume, even if its trailer turns out damaged.
pub fn has_volume_magic(footer: &[u8]) -> bool {
    footer.len() == FOOTER_LEN && footer[..8] == VOLUME_MAGIC
}

/// Reads one volume's trailer from the end of a file of a known length, without IO: the
/// host reads the range [`TrailerReader::need`] names and hands it to
/// [`TrailerReader::give`] until nothing more is needed, then takes
/// [`TrailerReader::finish`]. Three reads: the footer, the descriptor before it, the unit
/// table before that (whose length the descriptor gives). Nothing is allocated from an
/// unchecked length: the descriptor is capped at 1 MiB, the table is sized from a
/// checked geometry and the file's length is checked before it.
#[derive(Debug, Clone)]
pub struct TrailerReader {
    file_len: u64,
    state: TrailerState,
}

#[derive(Debug, Clone)]
enum TrailerState {
    Footer,
    Descriptor(Footer, u64, u64),
    Table(Footer, Vec<u8>, u64, u64),
    Done(Result<VolumeTrailer, VolumeError>),
}

impl TrailerReader {
    /// For a file of `file_len` bytes.
    pub fn new(file_len: u64) -> TrailerReader {
        let state = if file_len < FOOTER_LEN as u64 {
            TrailerState::Done(Err(VolumeError::NotAVolume))
        } else {
            TrailerState::Footer
        };
        TrailerReader { file_len, state }
    }

    /// The byte range `[start, end)` of the file to read next, `None` when done.
    pub fn need(&self) -> Option<(u64, u64)> {
        match &self.state {
            TrailerState::Footer => Some((self.file_len - FOOTER_LEN as u64, self.file_len)),
            TrailerState::Descriptor(_, s, e) | TrailerState::Table(_, _, s, e) => Some((*s, *e)),
            TrailerState::Done(_) => None,
        }
    }

    /// The bytes of the range [`TrailerReader::need`] named (a host that could not read them
    /// calls [`TrailerReader::unreadable`] instead).
    pub fn give(&mut self, bytes: &[u8]) {
        let Some((s, e)) = self.need() else { return };
        if bytes.len() as u64 != e - s {
            return self.unreadable();
        }
        let len = self.file_len;
        let state = std::mem::replace(&mut self.state, TrailerState::Footer);
        self.state = match state {
            TrailerState::Footer => match Footer::decode(bytes) {
                Err(err) => TrailerState::Done(Err(err)),
                Ok(footer) => match footer.descriptor_range(len) {
                    None => TrailerState::Done(Err(VolumeError::Trailer {
                        problem: "descriptor longer than the file",
                    })),
                    Some((ds, de)) if de - ds > (1 << 20) => {
                        TrailerState::Done(Err(VolumeError::Trailer {
                            problem: "descriptor longer than any set has",
                        }))
                    }
                    Some((ds, de)) => TrailerState::Descriptor(footer, ds, de),
                },
            },
            TrailerState::Descriptor(footer, ds, _) => {
                Self::after_descriptor(footer, bytes, ds, len)
                    .unwrap_or_else(|e| TrailerState::Done(Err(e)))
            }
            TrailerState::Table(footer, desc, _, _) => {
                TrailerState::Done(VolumeTrailer::check(footer, &desc, bytes, len))
            }
            done @ TrailerState::Done(_) => done,
        };
    }

    /// The descriptor read: checks it and the file's length, and names the table's range.
    fn after_descriptor(
        footer: Footer,
        desc: &[u8],
        ds: u64,
        len: u64,
    ) -> Result<TrailerState, VolumeError> {
        let d = SetDescriptor::decode(desc)?;
        if footer.index < d.geometry.volumes() {
            // Before the unit table is allocated: its length comes from the descriptor.
            let expected = d.geometry.file_len(footer.index);
            if expected != len {
                return Err(VolumeError::Length {
                    expected,
                    found: len,
                });
            }
        }
        let table_len =
            VolumeTrailer::table_len(&d.geometry, footer.index.min(d.geometry.volumes() - 1));
        let ts = ds.checked_sub(table_len).ok_or(VolumeError::Trailer {
            problem: "unit table longer than the file",
        })?;
        Ok(TrailerState::Table(footer, desc.to_vec(), ts, ds))
    }

    /// The host could not read the range: the file is not a usable volume.
    pub fn unreadable(&mut self) {
        self.state = TrailerState::Done(Err(VolumeError::NotAVolume));
    }

    /// The trailer, checked, or why the file has none.
    pub fn finish(self) -> Result<VolumeTrailer, VolumeError> {
        match self.state {
            TrailerState::Done(r) => r,
            _ => Err(VolumeError::NotAVolume),
        }
    }
}

/// A volume's digest: the SHA-256 of its unit table (the CRC-32s, 4 bytes each, little-endian).
pub fn table_digest(crcs: &[u32]) -> Digest {
    let table: Vec<u8> = crcs.iter().flat_map(|c| c.to_le_bytes()).collect();
    Digest::sha256(&table)
}

/// The trailer to append after volume `index`'s payload.
pub fn encode_trailer(desc: &SetDescriptor, index: u32, crcs: &[u32]) -> Vec<u8> {
    let d = desc.encode();
    let mut out = Vec::with_capacity(crcs.len() * 4 + d.len() + FOOTER_LEN);
    for c in crcs {
        out.extend_from_slice(&c.to_le_bytes());
    }
    let table_crc = crc32(&out);
    let footer = Footer {
        index,
        payload_len: desc.geometry.payload_len(index),
        descriptor_len: d.len() as u32,
        table_crc,
        set: Digest::sha256(&d),
    };
    out.extend_from_slice(&d);
    out.extend_from_slice(&footer.encode());
    out
}

/// CRC-32 (IEEE 802.3, as zlib and `cksum -a crc32b`) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Per-unit CRC-32s of a payload fed in pieces of any size (the writer's side).
#[derive(Debug, Clone)]
pub struct UnitCrcs {
    unit: u64,
    filled: u64,
    hasher: crc32fast::Hasher,
    crcs: Vec<u32>,
}

impl UnitCrcs {
    /// For units of `unit` bytes.
    pub fn new(unit: u32) -> UnitCrcs {
        UnitCrcs {
            unit: u64::from(unit),
            filled: 0,
            hasher: crc32fast::Hasher::new(),
            crcs: Vec::new(),
        }
    }

    /// Feeds payload bytes.
    pub fn update(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = ((self.unit - self.filled) as usize).min(bytes.len());
            self.hasher.update(&bytes[..take]);
            self.filled += take as u64;
            bytes = &bytes[take..];
            if self.filled == self.unit {
                let h = std::mem::replace(&mut self.hasher, crc32fast::Hasher::new());
                self.crcs.push(h.finalize());
                self.filled = 0;
            }
        }
    }

    /// The CRCs, the last (partial) unit included.
    pub fn finish(mut self) -> Vec<u32> {
        if self.filled > 0 {
            self.crcs.push(self.hasher.finalize());
        }
        self.crcs
    }
}

/// The file name of volume `index` (0-based) of bundle `name`: `NAME.001`.
pub fn volume_file_name(name: &str, index: u32) -> String {
    format!("{name}.{:03}", index + 1)
}

/// Splits `NAME.NNN` into the bundle name and the 0-based index.
pub fn parse_volume_file_name(file: &str) -> Option<(&str, u32)> {
    let (name, n) = file.rsplit_once('.')?;
    if n.len() != 3 || !n.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    let n: u32 = n.parse().ok()?;
    n.checked_sub(1).map(|i| (name, i))
}

/// Which set a pile of trailers names: the set most of them belong to (a tie is refused).
/// Returns the chosen set's digest; trailers of other sets are to be refused by the caller
/// as "a volume of another set".
pub fn choose_set<'a>(
    trailers: impl IntoIterator<Item = &'a VolumeTrailer>,
) -> Result<Digest, VolumeError> {
    let mut counts: Vec<(Digest, usize)> = Vec::new();
    for t in trailers {
        match counts.iter_mut().find(|(d, _)| *d == t.footer.set) {
            Some((_, n)) => *n += 1,
            None => counts.push((t.footer.set.clone(), 1)),
        }
    }
    let best = counts
        .iter()
        .map(|(_, n)| *n)
        .max()
        .ok_or(VolumeError::NoSet)?;
    let tied: Vec<_> = counts.iter().filter(|(_, n)| *n == best).collect();
    if tied.len() > 1 {
        return Err(VolumeError::AmbiguousSet {
            sets: tied.len(),
            each: best,
        });
    }
    Ok(tied[0].0.clone())
}

/// Where one volume of the chosen set was found among the candidates (indices into the
/// list given to [`arrange`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placed {
    /// No candidate for it.
    Missing,
    /// A candidate named like this volume of the set (`NAME.NNN`) whose trailer is unusable.
    Unreadable {
        /// The candidate.
        candidate: usize,
        /// Why its trailer is unusable.
        problem: VolumeError,
    },
    /// A candidate with a good trailer of the set.
    Present {
        /// The candidate.
        candidate: usize,
    },
}

/// Which set a pile of files is, and where each of its volumes is: what `ddiff verify` and
/// the page decide from the files' names and trailers, before reading any payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arrangement {
    /// The set's digest.
    pub set: Digest,
    /// Its descriptor.
    pub descriptor: SetDescriptor,
    /// The bundle's name (`app-2.ddiff`), from the first candidate of the set named like a
    /// volume (empty when none is).
    pub name: String,
    /// The first candidate of the set (the CLI rebuilds missing volumes in its directory).
    pub first: usize,
    /// Per volume, in index order.
    pub slots: Vec<Placed>,
    /// Candidates not used, with why (a volume of another set, a damaged file not named like
    /// one of the set's volumes); duplicates of a volume already placed are ignored.
    pub refused: Vec<(usize, String)>,
}

/// Decides the set among candidate files, each a file name (without directory) and its
/// trailer or why it has none ([`TrailerReader`]), in the order given: [`choose_set`], then
/// each volume's candidate, the first one wins; an unusable file counts as that volume when
/// it is named like it (so a volume cut short is reported damaged, not ignored).
pub fn arrange(
    candidates: &[(Option<&str>, Result<&VolumeTrailer, &VolumeError>)],
) -> Result<Arrangement, VolumeError> {
    let set = choose_set(candidates.iter().filter_map(|(_, r)| r.ok()))?;
    let (first, first_t) = candidates
        .iter()
        .enumerate()
        .find_map(|(k, (_, r))| r.ok().filter(|t| t.footer.set == set).map(|t| (k, t)))
        .ok_or(VolumeError::NoSet)?;
    let descriptor = first_t.descriptor.clone();
    let name = candidates[first]
        .0
        .and_then(parse_volume_file_name)
        .map(|(s, _)| s.to_string())
        .unwrap_or_default();
    let mut slots = vec![Placed::Missing; descriptor.geometry.volumes() as usize];
    let mut refused = Vec::new();
    for (k, (_, r)) in candidates.iter().enumerate() {
        match r {
            Ok(t) if t.footer.set == set => {
                let slot = &mut slots[t.index() as usize];
                if *slot == Placed::Missing {
                    *slot = Placed::Present { candidate: k };
                }
            }
            Ok(t) => refused.push((k, format!("a volume of another set ({})", t.footer.set))),
            Err(_) => {}
        }
    }
    for (k, (file, r)) in candidates.iter().enumerate() {
        let Err(e) = r else { continue };
        match file.and_then(parse_volume_file_name) {
            Some((s, i)) if s == name && (i as usize) < slots.len() => {
                let slot = &mut slots[i as usize];
                if *slot == Placed::Missing {
                    *slot = Placed::Unreadable {
                        candidate: k,
                        problem: (*e).clone(),
                    };
                }
            }
            _ => refused.push((k, crate::display::error_chain(*e))),
        }
    }
    Ok(Arrangement {
        set,
        descriptor,
        name,
        first,
        slots,
        refused,
    })
}

/// Fills the missing units of stripe `s` from the others with Reed–Solomon: `units` holds
/// every volume's unit `s` (data then parity, each [`Geometry::unit`] bytes, zero-padded),
/// `None` where missing or damaged. Rebuilds the data units, and the parity units too when
/// `parity_too`. Refused ([`VolumeError::StripeLost`]) when more units are missing than
/// there are parity volumes.
pub fn restore_stripe(
    g: &Geometry,
    s: u64,
    units: &mut [Option<Vec<u8>>],
    parity_too: bool,
) -> Result<(), VolumeError> {
    let (k, m) = (g.data as usize, g.parity as usize);
    let rs = |e: reed_solomon_simd::Error| VolumeError::ReedSolomon {
        stripe: s,
        reason: e.to_string(),
    };
    if units.len() != k + m {
        return Err(VolumeError::ReedSolomon {
            stripe: s,
            reason: format!("{} units given for {} volumes", units.len(), k + m),
        });
    }
    let bad: Vec<usize> = (0..k + m).filter(|&i| units[i].is_none()).collect();
    if bad.len() > m {
        return Err(VolumeError::StripeLost {
            stripe: s,
            bad: bad.len(),
            units: k + m,
            volumes: bad
                .iter()
                .map(|i| (i + 1).to_string())
                .collect::<Vec<_>>()
                .join(", "),
            parity: g.parity,
        });
    }
    if bad.iter().any(|&i| i < k) {
        let restored = reed_solomon_simd::decode(
            k,
            m,
            (0..k).filter_map(|i| units[i].as_ref().map(|b| (i, b))),
            (0..m).filter_map(|j| units[k + j].as_ref().map(|b| (j, b))),
        )
        .map_err(rs)?;
        for (i, b) in restored {
            units[i] = Some(b);
        }
    }
    if parity_too && bad.iter().any(|&i| i >= k) {
        let rec = reed_solomon_simd::encode(k, m, units[..k].iter().flatten()).map_err(rs)?;
        for (j, r) in rec.into_iter().enumerate() {
            units[k + j] = Some(r);
        }
    }
    Ok(())
}

/// The parity units of one stripe from its data units (each [`Geometry::unit`] bytes,
/// zero-padded), as the writer stores them.
pub fn parity_of<T: AsRef<[u8]>>(g: &Geometry, data: &[T]) -> Result<Vec<Vec<u8>>, VolumeError> {
    reed_solomon_simd::encode(g.data as usize, g.parity as usize, data).map_err(|e| {
        VolumeError::ReedSolomon {
            stripe: 0,
            reason: e.to_string(),
        }
    })
}

/// What a host found for one volume of the set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// No file for it.
    Missing,
    /// A file whose trailer is unusable (truncated, damaged): all of its units are unknown.
    Unreadable {
        /// Why (the trailer error).
        problem: VolumeError,
    },
    /// A file with a good trailer, read through.
    Read {
        /// Units whose CRC-32 did not match (sorted).
        bad_units: Vec<u64>,
    },
    /// A file with a good trailer, not read (a parity volume a load did not need).
    NotRead,
}

/// The state of one volume, as `verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum VolumeState {
    /// Every unit and the digest match.
    Intact,
    /// Present but some units (or all, when its trailer is unusable) are bad.
    Damaged {
        /// Units that must be rebuilt.
        bad_units: u64,
        /// Units in the volume.
        units: u64,
        /// What is wrong.
        problem: String,
    },
    /// Not found.
    Missing,
    /// Present, its trailer good, its payload not read (not needed to load).
    NotRead,
}

/// What a set's volumes say together.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assessment {
    /// Per volume, in index order.
    pub states: Vec<VolumeState>,
    /// Every stripe has at most `parity` bad units: the bundle (and every bad volume) can be
    /// rebuilt.
    pub recoverable: bool,
    /// Stripes with more bad units than parity (0 when recoverable).
    pub lost_stripes: u64,
}

impl Assessment {
    /// Volumes not intact.
    pub fn bad_volumes(&self) -> impl Iterator<Item = u32> + '_ {
        self.states
            .iter()
            .enumerate()
            .filter(|(_, s)| !matches!(s, VolumeState::Intact | VolumeState::NotRead))
            .map(|(i, _)| i as u32)
    }
}

/// Which units of volume `i` are bad, per its observation (all stored units when missing
/// or unreadable).
fn bad_units_of(g: &Geometry, i: u32, o: &Observed) -> Vec<u64> {
    match o {
        Observed::Read { bad_units } => bad_units.clone(),
        Observed::NotRead => Vec::new(),
        _ => (0..g.units(i)).collect(),
    }
}

/// Decides each volume's state and whether the set can be recovered: a stripe is lost when
/// more than `parity` of its units are bad (units past the end of the last data volume are
/// known zeros, never bad).
pub fn assess(g: &Geometry, observed: &[Observed]) -> Assessment {
    let mut per_stripe = vec![0u32; g.stripes() as usize];
    let mut states = Vec::with_capacity(observed.len());
    for (i, o) in observed.iter().enumerate() {
        let i = i as u32;
        let bad = bad_units_of(g, i, o);
        for &s in &bad {
            if let Some(c) = per_stripe.get_mut(s as usize) {
                *c += 1;
            }
        }
        states.push(match o {
            Observed::Missing => VolumeState::Missing,
            Observed::Unreadable { problem } => VolumeState::Damaged {
                bad_units: g.units(i),
                units: g.units(i),
                problem: crate::display::error_chain(problem),
            },
            Observed::NotRead => VolumeState::NotRead,
            Observed::Read { .. } if bad.is_empty() => VolumeState::Intact,
            Observed::Read { .. } => VolumeState::Damaged {
                bad_units: bad.len() as u64,
                units: g.units(i),
                problem: format!("{} unit(s) fail their CRC-32", bad.len()),
            },
        });
    }
    let lost = per_stripe.iter().filter(|&&c| c > g.parity).count() as u64;
    Assessment {
        states,
        recoverable: lost == 0,
        lost_stripes: lost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        let ok = [
            ("65536", 65536),
            ("64k", 65536),
            ("64KiB", 65536),
            ("4G", 4 << 30),
            ("4.7GB", 4_700_000_000),
            ("1.5g", 3 << 29),
            ("700MB", 700_000_000),
            ("fat32", 4_294_967_295),
            ("DVD", 4_690_000_000),
            ("bd25", 24_900_000_000),
        ];
        for (t, want) in ok {
            assert_eq!(parse_volume_size(t), Ok(want), "{t}");
        }
        for t in ["", "x", "4Q", "1.2.3G", "-5G", "99999999999999999999T"] {
            assert!(
                matches!(parse_volume_size(t), Err(VolumeError::BadSize { .. })),
                "{t}"
            );
        }
        assert!(matches!(
            parse_volume_size("1000"),
            Err(VolumeError::TooSmall { .. })
        ));
    }

    #[test]
    fn plain_when_it_fits_and_no_parity() {
        assert_eq!(Geometry::plan(1000, 1 << 20, 0), Ok(None));
        assert_eq!(Geometry::plan(1 << 20, 1 << 20, 0), Ok(None));
        assert!(Geometry::plan(1000, 1 << 20, 1).unwrap().is_some());
    }

    #[test]
    fn every_volume_fits_its_size_and_covers_the_bundle() {
        for (bundle, size, parity) in [
            (1_000_000u64, 65536u64, 1u32),
            (5 << 30, u64::from(u32::MAX), 1),
            (2 << 30, 64 << 20, 2),
            (200_001, 65536, 0),
            (123, 65536, 3),
            (40 << 30, 4_690_000_000, 2),
        ] {
            let g = Geometry::plan(bundle, size, parity).unwrap().unwrap();
            g.check().unwrap();
            let covered: u64 = (0..g.data).map(|i| g.payload_len(i)).sum();
            assert_eq!(covered, bundle);
            for i in 0..g.volumes() {
                assert!(g.file_len(i) <= size, "{bundle} {size}: volume {i}");
                assert!(g.units(i) <= g.stripes());
            }
            assert!(u64::from(g.volumes()) * u64::from(g.unit) <= STRIPE_BUDGET);
            assert_eq!(g.locate(bundle - 1).0, g.data - 1);
        }
        assert!(matches!(
            Geometry::plan(1 << 30, 65536, 1),
            Err(VolumeError::TooMany { .. })
        ));
    }

    fn crcs(g: &Geometry, i: u32) -> Vec<u32> {
        (0..g.units(i)).map(|k| k as u32 * 7 + i).collect()
    }

    fn sample_desc() -> SetDescriptor {
        let g = Geometry::plan(300_000, 65536, 2).unwrap().unwrap();
        SetDescriptor {
            geometry: g,
            volumes: (0..g.volumes())
                .map(|i| table_digest(&crcs(&g, i)))
                .collect(),
        }
    }

    #[test]
    fn trailer_round_trips_and_every_bit_flip_is_caught() {
        let d = sample_desc();
        let g = d.geometry;
        let crcs = crcs(&g, 1);
        let t = encode_trailer(&d, 1, &crcs);
        let file_len = g.payload_len(1) + t.len() as u64;
        assert_eq!(file_len, g.file_len(1));
        let parse = |t: &[u8]| -> Result<VolumeTrailer, VolumeError> {
            let f = Footer::decode(&t[t.len() - FOOTER_LEN..])?;
            let (ds, de) = f
                .descriptor_range(t.len() as u64)
                .ok_or(VolumeError::NotAVolume)?;
            let desc = &t[ds as usize..de as usize];
            VolumeTrailer::check(f.clone(), desc, &t[..ds as usize], file_len)
        };
        let v = parse(&t).unwrap();
        assert_eq!(v.crcs, crcs);
        assert_eq!(v.descriptor, d);
        assert_eq!(v.index(), 1);
        for bit in 0..t.len() * 8 {
            let mut b = t.clone();
            b[bit / 8] ^= 1 << (bit % 8);
            assert!(
                parse(&b).is_err(),
                "bit {bit} of the trailer went unnoticed"
            );
        }
        assert!(matches!(
            VolumeTrailer::check(
                Footer::decode(&t[t.len() - FOOTER_LEN..]).unwrap(),
                &t[crcs.len() * 4..t.len() - FOOTER_LEN],
                &t[..crcs.len() * 4],
                file_len - 1
            ),
            Err(VolumeError::Length { .. })
        ));
    }

    #[test]
    fn unit_crcs_do_not_depend_on_chunking() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 13) as u8).collect();
        let whole: Vec<u32> = data.chunks(4096).map(crc32).collect();
        for step in [1, 7, 512, 4096, 65536] {
            let mut u = UnitCrcs::new(4096);
            for c in data.chunks(step) {
                u.update(c);
            }
            assert_eq!(u.finish(), whole, "{step}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(volume_file_name("app-2.ddiff", 0), "app-2.ddiff.001");
        assert_eq!(
            parse_volume_file_name("app-2.ddiff.012"),
            Some(("app-2.ddiff", 11))
        );
        assert_eq!(parse_volume_file_name("app-2.ddiff"), None);
        assert_eq!(parse_volume_file_name("x.000"), None);
        assert_eq!(parse_volume_file_name("x.1234"), None);
    }

    #[test]
    fn the_set_most_volumes_name_is_chosen_and_a_tie_refused() {
        let a = sample_desc();
        let mut b = sample_desc();
        b.volumes[0] = Digest::sha256(b"other");
        let tr = |d: &SetDescriptor, i: u32| {
            let t = encode_trailer(d, i, &crcs(&d.geometry, i));
            let f = Footer::decode(&t[t.len() - FOOTER_LEN..]).unwrap();
            let n = t.len() - FOOTER_LEN - f.descriptor_len as usize;
            VolumeTrailer::check(
                f,
                &t[n..t.len() - FOOTER_LEN],
                &t[..n],
                d.geometry.payload_len(i) + t.len() as u64,
            )
            .unwrap()
        };
        let ts = [tr(&a, 0), tr(&a, 1), tr(&b, 1)];
        assert_eq!(choose_set(&ts), Ok(a.digest()));
        assert!(matches!(
            choose_set(&ts[1..]),
            Err(VolumeError::AmbiguousSet { sets: 2, each: 1 })
        ));
        assert_eq!(choose_set(&[]), Err(VolumeError::NoSet));
    }

    #[test]
    fn recoverable_while_no_stripe_has_more_bad_units_than_parity() {
        let g = Geometry::plan(1_000_000, 65536, 2).unwrap().unwrap();
        let n = g.volumes() as usize;
        let good = Observed::Read { bad_units: vec![] };
        let mut obs = vec![good.clone(); n];
        assert!(assess(&g, &obs).recoverable);
        obs[0] = Observed::Missing;
        obs[3] = Observed::Unreadable {
            problem: VolumeError::NotAVolume,
        };
        let a = assess(&g, &obs);
        assert!(a.recoverable);
        assert_eq!(a.bad_volumes().collect::<Vec<_>>(), [0, 3]);
        // A third bad unit in stripe 2 loses that stripe only.
        obs[5] = Observed::Read { bad_units: vec![2] };
        let a = assess(&g, &obs);
        assert!(!a.recoverable);
        assert_eq!(a.lost_stripes, 1);
        // A volume not read counts as good (a load that did not need its parity).
        obs[5] = Observed::NotRead;
        assert!(assess(&g, &obs).recoverable);
    }

    fn read_trailer(file: &[u8]) -> Result<VolumeTrailer, VolumeError> {
        let mut r = TrailerReader::new(file.len() as u64);
        let mut reads = 0;
        while let Some((a, b)) = r.need() {
            r.give(&file[a as usize..b as usize]);
            reads += 1;
            assert!(reads <= 3);
        }
        r.finish()
    }

    /// The sans-IO trailer read, the set's arrangement and the stripe rebuild that the CLI
    /// and the page share, here also on 32-bit wasm (tests/wasm/core-tests.sh).
    #[test]
    fn trailers_arrangement_and_stripe_rebuild() {
        let bundle: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        let files = crate::synth_bundle::volume_set(&bundle, 65536, 2).unwrap();
        let trailers: Vec<_> = files.iter().map(|f| read_trailer(f)).collect();
        let g = trailers[0].as_ref().unwrap().descriptor.geometry;
        assert_eq!(files.len() as u32, g.volumes());
        for (i, t) in trailers.iter().enumerate() {
            assert_eq!(t.as_ref().unwrap().index(), i as u32);
        }
        // Short, cut and garbage files have no trailer; a cut one named like a volume is
        // that volume, damaged.
        assert_eq!(read_trailer(b"tiny"), Err(VolumeError::NotAVolume));
        let cut = &files[1][..files[1].len() - 10];
        assert!(read_trailer(cut).is_err());
        let names: Vec<String> = (0..files.len() as u32)
            .map(|i| volume_file_name("app.ddiff", i))
            .collect();
        let cut_err = read_trailer(cut).unwrap_err();
        let other_files = crate::synth_bundle::volume_set(&bundle[1..], 65536, 2).unwrap();
        let other = read_trailer(&other_files[2]).unwrap();
        let mut cands: Vec<(Option<&str>, Result<&VolumeTrailer, &VolumeError>)> = vec![
            (Some(names[1].as_str()), Err(&cut_err)),
            (Some("x.ddiff.003"), Ok(&other)),
        ];
        for (k, t) in trailers.iter().enumerate().skip(2) {
            cands.push((Some(names[k].as_str()), t.as_ref()));
        }
        let a = arrange(&cands).unwrap();
        assert_eq!(a.name, "app.ddiff");
        assert_eq!(a.first, 2);
        assert_eq!(a.slots[0], Placed::Missing);
        assert!(matches!(
            a.slots[1],
            Placed::Unreadable { candidate: 0, .. }
        ));
        assert_eq!(a.slots[2], Placed::Present { candidate: 2 });
        assert_eq!(a.refused.len(), 1);
        assert!(a.refused[0]
            .1
            .starts_with("a volume of another set (sha256:"));
        // Stripe 3 with volumes 1 and 2 gone: rebuilt exactly; a third loss is refused.
        let u = g.unit as usize;
        let unit = |i: usize, s: usize| {
            let mut b = files[i][..g.payload_len(i as u32) as usize]
                .get(s * u..)
                .unwrap_or(&[])
                .to_vec();
            b.truncate(u);
            b.resize(u, 0);
            b
        };
        let whole: Vec<Option<Vec<u8>>> = (0..files.len()).map(|i| Some(unit(i, 3))).collect();
        let mut units = whole.clone();
        units[0] = None;
        units[1] = None;
        restore_stripe(&g, 3, &mut units, false).unwrap();
        assert_eq!(units, whole);
        let mut units = whole.clone();
        units[0] = None;
        units[g.data as usize] = None;
        restore_stripe(&g, 3, &mut units, true).unwrap();
        assert_eq!(units, whole);
        let mut units = whole.clone();
        for i in [0, 2, 3] {
            units[i] = None;
        }
        let e = restore_stripe(&g, 3, &mut units, true).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "stripe 3 cannot be rebuilt: 3 of its {} units are missing or damaged (volumes 1, 3, 4), parity covers 2",
                files.len()
            )
        );
    }
}
