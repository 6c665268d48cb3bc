//! Version ids: a hybrid logical clock in the high bits and a node/random
//! tag in the low bits, so ids are unique, sortable, and close to wall time.
//!
//! Layout of the u128: 64 bits of physical milliseconds, 16 bits of logical
//! counter, 48 bits of tag. Ordering by the integer is ordering by time,
//! then by logical counter, then by tag (last writer wins).

use serde::{Deserialize, Serialize};

/// A unique, sortable object version id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VersionId(pub u128);

impl VersionId {
    /// The wall-clock millisecond this version was created at.
    pub fn millis(self) -> u64 {
        (self.0 >> 64) as u64
    }

    /// Big-endian bytes of the bitwise complement: sorting these ascending
    /// sorts versions newest first, which is how indexes store them.
    pub fn to_desc_bytes(self) -> [u8; 16] {
        (!self.0).to_be_bytes()
    }

    /// Inverse of [`VersionId::to_desc_bytes`].
    pub fn from_desc_bytes(bytes: [u8; 16]) -> Self {
        VersionId(!u128::from_be_bytes(bytes))
    }
}

impl std::fmt::Display for VersionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl std::str::FromStr for VersionId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u128::from_str_radix(s, 16).map(VersionId)
    }
}

const TAG_MASK: u128 = (1 << 48) - 1;

/// A hybrid logical clock. Sans-IO: the caller passes the current wall time.
#[derive(Debug, Clone)]
pub struct Hlc {
    last_millis: u64,
    logical: u16,
    tag: u64,
}

impl Hlc {
    /// `tag` distinguishes writers that tick in the same millisecond
    /// (a random number per client process, or a node id); 48 bits are kept.
    pub fn new(tag: u64) -> Self {
        Hlc { last_millis: 0, logical: 0, tag: tag & ((1 << 48) - 1) }
    }

    /// A new version id strictly greater than every id this clock issued or
    /// observed. When the wall clock goes backwards the logical counter
    /// carries on from the last physical time.
    pub fn tick(&mut self, now_millis: u64) -> VersionId {
        if now_millis > self.last_millis {
            self.last_millis = now_millis;
            self.logical = 0;
        } else if self.logical == u16::MAX {
            // At the very end of time (an observed id of 2^64-1 ms) the
            // clock stays there rather than wrap to the beginning: nodes
            // refuse such ids from writers, so only a forged copy gets here.
            match self.last_millis.checked_add(1) {
                Some(m) => {
                    self.last_millis = m;
                    self.logical = 0;
                }
                None => return self.compose(),
            }
        } else {
            self.logical += 1;
        }
        self.compose()
    }

    /// Merge a version seen from elsewhere, so later ticks sort after it.
    pub fn observe(&mut self, seen: VersionId) {
        let millis = seen.millis();
        let logical = ((seen.0 >> 48) & 0xffff) as u16;
        if (millis, logical) > (self.last_millis, self.logical) {
            self.last_millis = millis;
            self.logical = logical;
        }
    }

    fn compose(&self) -> VersionId {
        VersionId(
            (u128::from(self.last_millis) << 64) | (u128::from(self.logical) << 48) | (u128::from(self.tag) & TAG_MASK),
        )
    }
}

/// The civil (proleptic Gregorian) date of a day counted from 1970-01-01,
/// as (year, month 1-12, day 1-31), after Howard Hinnant's days-to-civil
/// algorithm: for printing version times and certificate dates without a
/// time-zone database.
pub fn civil_from_days(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m as u8, d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_never_wraps_after_seeing_the_largest_id() {
        let mut hlc = Hlc::new(7);
        hlc.observe(VersionId(u128::MAX));
        let a = hlc.tick(1_000);
        let b = hlc.tick(1_000);
        assert!(a.millis() == u64::MAX && b >= a, "{a} then {b}");
    }

    #[test]
    fn ticks_are_strictly_increasing_even_when_the_clock_goes_back() {
        let mut hlc = Hlc::new(7);
        let mut last = VersionId(0);
        for now in [5, 5, 5, 3, 9, 9, 1, 1, 100] {
            let v = hlc.tick(now);
            assert!(v > last, "{v} after {last}");
            last = v;
        }
    }

    #[test]
    fn observe_moves_the_clock_past_a_remote_version() {
        let mut a = Hlc::new(1);
        let mut b = Hlc::new(2);
        let remote = a.tick(1_000);
        b.observe(remote);
        assert!(b.tick(10) > remote);
    }

    #[test]
    fn desc_bytes_sort_newest_first() {
        let old = VersionId(5);
        let new = VersionId(9);
        assert!(new.to_desc_bytes() < old.to_desc_bytes());
        assert_eq!(VersionId::from_desc_bytes(new.to_desc_bytes()), new);
    }
}
