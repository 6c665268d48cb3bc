//! Object contents that check themselves, like fio's verify headers: a
//! 32-byte header (magic, generation, key hash, length) and then bytes
//! from a generator seeded by them. A read is checked against the header
//! it carries, so objects written by an earlier job or an overwrite still
//! verify; a misplaced object (another key's bytes) is caught by the key
//! hash. Objects under 32 bytes are the generator's bytes for the key.

use super::job::mix;

const MAGIC: &[u8; 4] = b"TSB1";
const HEADER: usize = 32;

/// A stable 64-bit hash of a key.
pub(crate) fn key_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

fn fill(out: &mut [u8], seed: u64) {
    let mut s = mix(seed) | 1;
    let mut chunks = out.chunks_exact_mut(8);
    for c in &mut chunks {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        c.copy_from_slice(&s.to_le_bytes());
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    let rest = chunks.into_remainder();
    let n = rest.len();
    rest.copy_from_slice(&s.to_le_bytes()[..n]);
}

/// The contents of `key` at generation `gen`, `len` bytes.
pub(crate) fn make(key: &str, gen: u32, len: usize) -> Vec<u8> {
    let kh = key_hash(key);
    let mut v = vec![0u8; len];
    if len < HEADER {
        fill(&mut v, kh);
        return v;
    }
    v[..4].copy_from_slice(MAGIC);
    v[4..8].copy_from_slice(&gen.to_le_bytes());
    v[8..16].copy_from_slice(&kh.to_le_bytes());
    v[16..24].copy_from_slice(&(len as u64).to_le_bytes());
    fill(&mut v[HEADER..], kh ^ u64::from(gen).rotate_left(32));
    v
}

/// Check bytes read for `key`; the error says what differs.
pub(crate) fn check(key: &str, got: &[u8], want_len: Option<usize>) -> Result<(), String> {
    if let Some(w) = want_len.filter(|&w| w != got.len()) {
        return Err(format!("{key}: read {} bytes, expected {w}", got.len()));
    }
    let kh = key_hash(key);
    if got.len() < HEADER {
        let want = make(key, 0, got.len());
        return match got.iter().zip(&want).position(|(a, b)| a != b) {
            None => Ok(()),
            Some(i) => Err(format!("{key}: byte {i} differs")),
        };
    }
    if &got[..4] != MAGIC {
        return Err(format!("{key}: no verify header (was it written by tessera-bench?)"));
    }
    let gen = u32::from_le_bytes([got[4], got[5], got[6], got[7]]);
    let mut h = [0u8; 8];
    h.copy_from_slice(&got[8..16]);
    if u64::from_le_bytes(h) != kh {
        return Err(format!("{key}: holds another key's data (key hash {:#x})", u64::from_le_bytes(h)));
    }
    h.copy_from_slice(&got[16..24]);
    if u64::from_le_bytes(h) != got.len() as u64 {
        return Err(format!("{key}: header says {} bytes, read {}", u64::from_le_bytes(h), got.len()));
    }
    let want = make(key, gen, got.len());
    match got.iter().zip(&want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!("{key}: byte {i} differs (generation {gen})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_verify_and_every_kind_of_damage_is_caught() {
        for len in [0usize, 1, 7, 31, 32, 33, 4096, 100_003] {
            for gen in [0u32, 1, 9] {
                let v = make("j.0/00000001", gen, len);
                assert_eq!(v.len(), len);
                assert_eq!(check("j.0/00000001", &v, Some(len)), Ok(()));
                if len == 0 {
                    continue;
                }
                let mut bad = v.clone();
                bad[len - 1] ^= 1;
                assert!(check("j.0/00000001", &bad, Some(len)).expect_err("must be refused").contains("differs"));
                assert!(check("j.0/00000001", &v[..len - 1], Some(len))
                    .expect_err("must be refused")
                    .contains("expected"));
            }
        }
        let other = make("j.0/00000002", 0, 4096);
        assert!(check("j.0/00000001", &other, None).expect_err("must be refused").contains("another key's data"));
        assert!(check("k", &[0u8; 64], None).expect_err("must be refused").contains("no verify header"));
        // Generations differ, so an overwrite is a different object.
        assert_ne!(make("k", 0, 64), make("k", 1, 64));
    }
}
