//! Stripe geometry: how an object's bytes map onto stripes and shards.
//! A stripe holds up to k × shard_bytes object bytes; data shard i of a
//! stripe holds bytes `[i × L, (i + 1) × L)` of it, where L is the stripe's
//! shard length (the last stripe's shards are shorter), zero-padded. Shard
//! lengths are even because reed-solomon-simd works on 16-bit words.

use std::ops::Range;

use crate::ObjectMeta;

/// Shard length for a stripe of `len` object bytes over `k` data shards.
pub fn shard_len_for(len: u64, k: u8) -> u32 {
    if len == 0 || k == 0 {
        return 0;
    }
    let l = len.div_ceil(u64::from(k));
    (l + (l & 1)) as u32
}

/// Stripe layout of an upload of `size` bytes (if known) with full shards
/// of `shard_bytes`; objects up to `inline_max` are one short stripe.
/// Returns (shard_bytes of a full stripe, stripe_count).
pub fn plan(size: u64, k: u8, shard_bytes: u32, inline_max: u32) -> (u32, u32) {
    if size == 0 {
        return (0, 0);
    }
    if size <= u64::from(inline_max) {
        return (shard_len_for(size, k), 1);
    }
    let stripe = u64::from(k) * u64::from(shard_bytes);
    (shard_bytes, size.div_ceil(stripe) as u32)
}

/// The byte geometry of one stored version.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Object size.
    pub size: u64,
    /// Object bytes per full stripe.
    pub stripe_bytes: u64,
    /// Stripes.
    pub stripe_count: u32,
    /// k.
    pub data: u8,
}

/// The part of one stripe a byte range needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StripeSlice {
    /// Stripe index.
    pub stripe: u32,
    /// Object bytes the stripe holds.
    pub stripe_len: u64,
    /// Shard length of this stripe.
    pub shard_len: u32,
    /// Data shards that cover the wanted bytes.
    pub shards: Range<usize>,
    /// Wanted bytes, relative to the stripe start.
    pub within: Range<u64>,
}

impl Layout {
    /// From a metadata record.
    pub fn of(meta: &ObjectMeta) -> Layout {
        Layout {
            size: meta.size_bytes,
            stripe_bytes: u64::from(meta.stripe_bytes),
            stripe_count: meta.stripe_count,
            data: meta.ec.data,
        }
    }

    /// Object bytes in stripe `s`.
    pub fn stripe_len(&self, s: u32) -> u64 {
        let start = u64::from(s) * self.stripe_bytes;
        self.size.saturating_sub(start).min(self.stripe_bytes)
    }

    /// Shard length of stripe `s`.
    pub fn shard_len(&self, s: u32) -> u32 {
        shard_len_for(self.stripe_len(s), self.data)
    }

    /// The stripes and data shards that cover `[offset, offset + len)`;
    /// the range must lie inside the object.
    pub fn slices(&self, offset: u64, len: u64) -> Vec<StripeSlice> {
        let mut out = Vec::new();
        if len == 0 || self.stripe_bytes == 0 {
            return out;
        }
        let end = offset + len;
        let first = (offset / self.stripe_bytes) as u32;
        let last = ((end - 1) / self.stripe_bytes) as u32;
        for s in first..=last {
            let start = u64::from(s) * self.stripe_bytes;
            let stripe_len = self.stripe_len(s);
            let shard_len = self.shard_len(s);
            let lo = offset.max(start) - start;
            let hi = end.min(start + stripe_len) - start;
            let sl = u64::from(shard_len.max(1));
            let shards = (lo / sl) as usize..(hi.div_ceil(sl) as usize).min(usize::from(self.data));
            out.push(StripeSlice { stripe: s, stripe_len, shard_len, shards, within: lo..hi });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_lengths_are_even_and_cover() {
        for k in [1u8, 4, 6, 8] {
            for len in [1u64, 2, 5, 6, 7, 65_537, 6_291_456] {
                let l = shard_len_for(len, k);
                assert_eq!(l % 2, 0);
                assert!(u64::from(l) * u64::from(k) >= len);
                assert!(u64::from(l) * u64::from(k) < len + 2 * u64::from(k));
            }
        }
        assert_eq!(shard_len_for(0, 6), 0);
    }

    #[test]
    fn slices_cover_exactly_the_range() {
        let shard = 4_096u32;
        for size in [1u64, 65_536, 65_537, 100_000, 3 * 6 * 4_096 + 17] {
            let (sb, count) = plan(size, 6, shard, 65_536);
            let l = Layout { size, stripe_bytes: 6 * u64::from(sb), stripe_count: count, data: 6 };
            assert!(u64::from(count) * l.stripe_bytes >= size);
            for (off, len) in [(0, size), (size / 3, size / 3 + 1), (size - 1, 1)] {
                if len == 0 || off + len > size {
                    continue;
                }
                let slices = l.slices(off, len);
                let total: u64 = slices.iter().map(|s| s.within.end - s.within.start).sum();
                assert_eq!(total, len, "size {size} off {off} len {len}");
                for s in &slices {
                    let sl = u64::from(s.shard_len);
                    assert!(s.shards.start as u64 * sl <= s.within.start);
                    assert!(s.shards.end as u64 * sl >= s.within.end.min(6 * sl));
                }
            }
        }
    }
}
