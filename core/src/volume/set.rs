//! Which set a pile of files is, each volume's state, whether the set can be recovered, and
//! the Reed–Solomon rebuild of a stripe.

use super::*;

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
