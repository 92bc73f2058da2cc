//! How a bundle is cut into volumes: the geometry every reader and writer derives sizes from.

use super::*;

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

    pub(super) fn check(&self) -> Result<(), VolumeError> {
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
