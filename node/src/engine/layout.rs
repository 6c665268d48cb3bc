//! On-disk formats of a target, pure functions only: the superblock, the
//! segment header and the record header. Every block carries a crc32c
//! seeded with the target's random salt, so stale or foreign blocks (and
//! shard bytes that happen to look like a header) never pass as ours.
//!
//! ```text
//! target file: [superblock 4 KiB][segment 0][segment 1]...
//! segment:     [segment header 4 KiB][record][record]...
//! record:      [header block 4 KiB: fixed fields + postcard body][data, padded to 4 KiB]
//! ```

use serde::{Deserialize, Serialize};
use tessera_wire::{BucketInfo, ObjectMeta, ShardIndex, StripeIndex, VersionId};

use crate::io::ALIGN_BYTES;

/// Version of these formats; a target with another version is refused.
/// Version 3 records carry the time they were written (replay must not
/// read the clock); version 2 targets and records are still read.
pub(crate) const FORMAT_VERSION: u32 = 3;
/// The previous format: records without a write time.
const FORMAT_VERSION_V2: u32 = 2;
const SUPER_MAGIC: [u8; 8] = *b"TSRATGT1";
const SEGMENT_MAGIC: [u8; 8] = *b"TSRASEG1";
const RECORD_MAGIC: [u8; 4] = *b"TREC";
/// Bytes of the fixed part of a record header, before its postcard body.
const RECORD_FIXED_BYTES: usize = 48;
/// ... in a version 2 record (no write time).
const RECORD_FIXED_BYTES_V2: usize = 40;
/// Largest postcard body of a record (its header block minus the fixed part).
pub(crate) const RECORD_BODY_BYTES_MAX: usize = ALIGN_BYTES - RECORD_FIXED_BYTES;

/// Where a record lives: byte offset of its header block in the target file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Loc {
    /// Segment number.
    pub(crate) segment: u32,
    /// Absolute file offset of the header block.
    pub(crate) offset: u64,
    /// Bytes of shard data.
    pub(crate) data_len: u32,
    /// crc32c of the shard data, as the writer sent it.
    pub(crate) data_crc32c: u32,
}

impl Loc {
    /// Bytes the whole record occupies on disk.
    pub(crate) fn record_bytes(&self) -> u64 {
        record_bytes(self.data_len as usize) as u64
    }
}

/// Bytes a record with `data_len` bytes of data occupies.
pub(crate) fn record_bytes(data_len: usize) -> usize {
    ALIGN_BYTES + data_len.div_ceil(ALIGN_BYTES) * ALIGN_BYTES
}

/// What a record says happened. Replaying records in LSN order rebuilds the index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum RecordBody {
    /// A shard of a stripe; with `meta`, it prepares the version.
    Shard {
        bucket: String,
        key: String,
        version: VersionId,
        stripe: StripeIndex,
        shard: ShardIndex,
        meta: Option<ObjectMeta>,
        /// Set by compaction: apply only if the index still points there.
        relocated_from: Option<Loc>,
    },
    /// Purge a version (`Some`, leaving a tombstone); `None` removes every
    /// version, or adds `marker`.
    Delete {
        bucket: String,
        key: String,
        version: Option<VersionId>,
        marker: Option<ObjectMeta>,
        /// Region a replicated purge was first made in.
        origin: Option<String>,
    },
    /// Create a bucket.
    Bucket { info: BucketInfo },
    /// Make a prepared version visible.
    Commit { bucket: String, key: String, version: VersionId },
    /// A rebuilt shard replacing this target's copy of a version it holds
    /// (repair of a copy that failed its checksum). Carries data.
    RepairShard { bucket: String, key: String, version: VersionId, stripe: StripeIndex, shard: ShardIndex },
    /// A shard failed its checksum: the version counts as corrupt here
    /// (missing, for anti-entropy) until every such shard is repaired.
    Corrupt { bucket: String, key: String, version: VersionId, stripe: StripeIndex, shard: ShardIndex },
    /// A replication rule's progress in a placement group.
    CrrCursor { pg: u32, rule: String, cursor: tessera_wire::crr::RuleCursor },
    /// A bucket's ACL and policy (kept if newer than the index's).
    Access { bucket: String, access: tessera_wire::access::BucketAccess },
}

/// The fixed part of a record header, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) generation: u64,
    pub(crate) lsn: u64,
    pub(crate) data_len: u32,
    pub(crate) data_crc32c: u32,
    /// Wall-clock ms when the record was written (0 in version 2 records):
    /// every time the index keeps for a record comes from here, so a
    /// replay rebuilds the same index whenever it runs.
    pub(crate) at_ms: u64,
}

/// Why a block is not a valid record header (on recovery this just means
/// "no record starts here"; on a read through the index it is corruption).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LayoutError {
    #[error("bad magic")]
    Magic,
    #[error("header checksum mismatch")]
    Checksum,
    #[error("unsupported format version {0}")]
    Version(u32),
    #[error("body length {0} exceeds {RECORD_BODY_BYTES_MAX}")]
    BodyTooLong(usize),
    #[error("data length {data_len} exceeds the segment's room")]
    DataTooLong { data_len: u32 },
    #[error("record body malformed: {0}")]
    Body(postcard::Error),
    #[error("record body of {0} bytes does not fit in a header block")]
    BodyDoesNotFit(usize),
}

fn salted(salt: u64, bytes: &[u8]) -> u32 {
    crc32c::crc32c_append(salt as u32 ^ (salt >> 32) as u32, bytes)
}

/// Salted crc of a record header's fixed fields (the first 36 bytes, then
/// any after the crc itself) and its body, without concatenating them
/// (this runs once per record written and replayed).
fn header_crc(salt: u64, fixed: &[u8], more: &[u8], body: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c_append(salted(salt, fixed), more), body)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Encode a record header block into `block` (exactly [`ALIGN_BYTES`] long).
pub(crate) fn encode_record_header(
    block: &mut [u8],
    salt: u64,
    header: RecordHeader,
    body: &RecordBody,
) -> Result<(), LayoutError> {
    assert_eq!(block.len(), ALIGN_BYTES);
    let body_bytes = postcard::to_stdvec(body).map_err(LayoutError::Body)?;
    if body_bytes.len() > RECORD_BODY_BYTES_MAX {
        return Err(LayoutError::BodyDoesNotFit(body_bytes.len()));
    }
    block.fill(0);
    block[0..4].copy_from_slice(&RECORD_MAGIC);
    block[4..8].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    block[8..16].copy_from_slice(&header.generation.to_le_bytes());
    block[16..24].copy_from_slice(&header.lsn.to_le_bytes());
    block[24..28].copy_from_slice(&header.data_len.to_le_bytes());
    block[28..32].copy_from_slice(&header.data_crc32c.to_le_bytes());
    block[32..36].copy_from_slice(&(body_bytes.len() as u32).to_le_bytes());
    block[40..48].copy_from_slice(&header.at_ms.to_le_bytes());
    block[RECORD_FIXED_BYTES..RECORD_FIXED_BYTES + body_bytes.len()].copy_from_slice(&body_bytes);
    let crc = header_crc(salt, &block[..36], &block[40..48], &body_bytes);
    block[36..40].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// Decode a record header block; `data_room` is the most data bytes that
/// could follow it in its segment.
pub(crate) fn decode_record_header(
    block: &[u8],
    salt: u64,
    data_room: u64,
) -> Result<(RecordHeader, RecordBody), LayoutError> {
    if block.len() < ALIGN_BYTES || block[0..4] != RECORD_MAGIC {
        return Err(LayoutError::Magic);
    }
    let body_len = u32_at(block, 32) as usize;
    // The version is read before the checksum is checked only to know the
    // layout; a block that fails the checksum is refused either way.
    let version = u32_at(block, 4);
    let (fixed, more) = match version {
        FORMAT_VERSION => (RECORD_FIXED_BYTES, 40..48),
        FORMAT_VERSION_V2 => (RECORD_FIXED_BYTES_V2, 40..40),
        _ => (RECORD_FIXED_BYTES, 40..48),
    };
    if body_len > ALIGN_BYTES - fixed {
        return Err(LayoutError::BodyTooLong(body_len));
    }
    if header_crc(salt, &block[..36], &block[more], &block[fixed..fixed + body_len]) != u32_at(block, 36) {
        return Err(LayoutError::Checksum);
    }
    if version != FORMAT_VERSION && version != FORMAT_VERSION_V2 {
        return Err(LayoutError::Version(version));
    }
    let header = RecordHeader {
        generation: u64_at(block, 8),
        lsn: u64_at(block, 16),
        data_len: u32_at(block, 24),
        data_crc32c: u32_at(block, 28),
        at_ms: if version == FORMAT_VERSION { u64_at(block, 40) } else { 0 },
    };
    if u64::from(header.data_len) > data_room {
        return Err(LayoutError::DataTooLong { data_len: header.data_len });
    }
    let body = postcard::from_bytes(&block[fixed..fixed + body_len]).map_err(LayoutError::Body)?;
    Ok((header, body))
}

/// The first block of a target file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Superblock {
    pub(crate) salt: u64,
    pub(crate) segment_bytes: u64,
    pub(crate) segment_count: u32,
    pub(crate) target_id: u32,
}

/// Why a superblock was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SuperblockError {
    #[error("not a Tessera target (bad magic)")]
    Magic,
    #[error("superblock checksum mismatch")]
    Checksum,
    #[error("unsupported target format version {0}")]
    Version(u32),
}

impl Superblock {
    pub(crate) fn encode(&self, block: &mut [u8]) {
        block.fill(0);
        block[0..8].copy_from_slice(&SUPER_MAGIC);
        block[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        block[12..16].copy_from_slice(&self.target_id.to_le_bytes());
        block[16..24].copy_from_slice(&self.salt.to_le_bytes());
        block[24..32].copy_from_slice(&self.segment_bytes.to_le_bytes());
        block[32..36].copy_from_slice(&self.segment_count.to_le_bytes());
        let crc = crc32c::crc32c(&block[..36]);
        block[36..40].copy_from_slice(&crc.to_le_bytes());
    }

    pub(crate) fn decode(block: &[u8]) -> Result<Superblock, SuperblockError> {
        if block.len() < 40 || block[0..8] != SUPER_MAGIC {
            return Err(SuperblockError::Magic);
        }
        if crc32c::crc32c(&block[..36]) != u32_at(block, 36) {
            return Err(SuperblockError::Checksum);
        }
        let version = u32_at(block, 8);
        if version != FORMAT_VERSION && version != FORMAT_VERSION_V2 {
            return Err(SuperblockError::Version(version));
        }
        Ok(Superblock {
            target_id: u32_at(block, 12),
            salt: u64_at(block, 16),
            segment_bytes: u64_at(block, 24),
            segment_count: u32_at(block, 32),
        })
    }
}

/// Encode a segment header block carrying its generation.
pub(crate) fn encode_segment_header(block: &mut [u8], salt: u64, generation: u64) {
    block.fill(0);
    block[0..8].copy_from_slice(&SEGMENT_MAGIC);
    block[8..16].copy_from_slice(&generation.to_le_bytes());
    let crc = salted(salt, &block[..16]);
    block[16..20].copy_from_slice(&crc.to_le_bytes());
}

/// The generation of a segment header block, or `None` if it is not a
/// valid header of this target (never written, torn, or foreign).
pub(crate) fn decode_segment_header(block: &[u8], salt: u64) -> Option<u64> {
    if block.len() < 20 || block[0..8] != SEGMENT_MAGIC || salted(salt, &block[..16]) != u32_at(block, 16) {
        return None;
    }
    Some(u64_at(block, 8))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body() -> RecordBody {
        RecordBody::Delete {
            bucket: "b".into(),
            key: "k".into(),
            version: Some(VersionId(3)),
            marker: None,
            origin: None,
        }
    }

    #[test]
    fn record_header_round_trips_and_rejects_flips() {
        let h = RecordHeader { generation: 7, lsn: 99, data_len: 8_192, data_crc32c: 5, at_ms: 1_796_613_630_354 };
        let mut block = vec![0u8; ALIGN_BYTES];
        encode_record_header(&mut block, 1234, h, &body()).expect("encode");
        assert_eq!(decode_record_header(&block, 1234, 1 << 20).expect("decode"), (h, body()));
        assert_eq!(decode_record_header(&block, 999, 1 << 20), Err(LayoutError::Checksum), "other salt");
        assert!(matches!(decode_record_header(&block, 1234, 4_096), Err(LayoutError::DataTooLong { .. })));
        for i in [0usize, 9, 17, 25, 33, 41, 47, 49] {
            let mut b = block.clone();
            b[i] ^= 0x40;
            assert!(decode_record_header(&b, 1234, 1 << 20).is_err(), "flip at {i}");
        }
    }

    /// Targets written before records carried their time still replay;
    /// their records have no time (0).
    #[test]
    fn version_2_records_still_decode_without_a_time() {
        let body_bytes = postcard::to_stdvec(&body()).expect("body");
        let mut block = vec![0u8; ALIGN_BYTES];
        block[0..4].copy_from_slice(&RECORD_MAGIC);
        block[4..8].copy_from_slice(&FORMAT_VERSION_V2.to_le_bytes());
        block[8..16].copy_from_slice(&7u64.to_le_bytes());
        block[16..24].copy_from_slice(&99u64.to_le_bytes());
        block[32..36].copy_from_slice(&(body_bytes.len() as u32).to_le_bytes());
        block[40..40 + body_bytes.len()].copy_from_slice(&body_bytes);
        let crc = header_crc(1234, &block[..36], &[], &body_bytes);
        block[36..40].copy_from_slice(&crc.to_le_bytes());
        let (h, b) = decode_record_header(&block, 1234, 1 << 20).expect("v2 decodes");
        assert_eq!((h.generation, h.lsn, h.at_ms, b), (7, 99, 0, body()));
        block[4] = 9;
        assert!(decode_record_header(&block, 1234, 1 << 20).is_err(), "unknown version");
    }

    #[test]
    fn superblock_and_segment_header_round_trip() {
        let sb = Superblock { salt: 42, segment_bytes: 1 << 20, segment_count: 9, target_id: 3 };
        let mut block = vec![0u8; ALIGN_BYTES];
        sb.encode(&mut block);
        assert_eq!(Superblock::decode(&block), Ok(sb));
        block[20] ^= 1;
        assert_eq!(Superblock::decode(&block), Err(SuperblockError::Checksum));
        encode_segment_header(&mut block, 42, 17);
        assert_eq!(decode_segment_header(&block, 42), Some(17));
        assert_eq!(decode_segment_header(&block, 43), None);
    }
}
