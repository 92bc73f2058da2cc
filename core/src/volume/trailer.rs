//! What every volume ends with: its unit checksums, the set descriptor and the footer, read
//! back without IO by [`TrailerReader`].

use super::*;

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
