//! Where an object lives. On a single node an object's stripes all go to
//! one target chosen by a stable hash of (bucket, key); the zone-aware
//! placement-group function replaces this behind the same signature.

use crate::TargetId;

/// FNV-1a 64 over bucket, a zero byte, and key: stable across releases and
/// platforms, because it decides where bytes already on disk are found.
pub fn object_hash(bucket: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bucket.bytes().chain(std::iter::once(0)).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The target holding (bucket, key), from the sorted list of a node's
/// targets. Returns `None` only when there are no targets.
pub fn target_for_object(targets: &[TargetId], bucket: &str, key: &str) -> Option<TargetId> {
    if targets.is_empty() {
        return None;
    }
    let i = object_hash(bucket, key) % targets.len() as u64;
    targets.get(i as usize).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_pinned() {
        // A change here moves every stored object: it must be deliberate.
        assert_eq!(object_hash("photos", "a/b.jpg"), 0xbcf1_eccc_14e3_387b);
    }

    #[test]
    fn placement_spreads_keys_over_targets() {
        let targets: Vec<TargetId> = (0..4).map(TargetId).collect();
        let mut counts = [0u32; 4];
        for i in 0..4_000 {
            let t = target_for_object(&targets, "b", &format!("key-{i}")).expect("targets");
            counts[t.0 as usize] += 1;
        }
        for c in counts {
            assert!((800..1_200).contains(&c), "{counts:?}");
        }
    }
}
