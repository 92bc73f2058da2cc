//! Volume sets (docs/bundle-format.md section 9): a bundle cut into volumes that fit a medium,
//! plus Reed–Solomon parity volumes so that any `parity` missing or damaged volumes can be
//! rebuilt. Everything a reader or writer decides is here: the geometry (how many volumes,
//! their payload size, the stripe unit), the trailer every volume ends with (its unit
//! checksums and the set descriptor, which names the bundle's digest and every volume's
//! digest), which set a pile of files belongs to, and whether a set with some volumes
//! missing or damaged can be recovered, and the Reed–Solomon arithmetic of a stripe
//! (`reed-solomon-simd`). Hosts read and write the bytes.
//!
//! - `mod.rs`: limits, errors, `--volume-size` parsing;
//! - `geometry.rs`: [`Geometry`], how many volumes, their payload, the stripe unit;
//! - `trailer.rs`: [`SetDescriptor`], [`Footer`], [`VolumeTrailer`], [`TrailerReader`] (a
//!   trailer read without IO), the unit CRCs;
//! - `set.rs`: volume file names, [`choose_set`] and [`arrange`] (which set a pile of files
//!   is), [`assess`] (each volume's state, recoverability), [`restore_stripe`] and
//!   [`parity_of`].
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

mod geometry;
mod set;
mod trailer;
pub use geometry::*;
pub use set::*;
pub use trailer::*;

#[cfg(test)]
mod tests;
