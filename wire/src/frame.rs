//! The fixed 40-byte frame header. Read with zerocopy straight from the
//! receive buffer; its own crc32c catches corruption before any length in
//! it is trusted.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use crate::limits::{BODY_BYTES_MAX, SHARD_BYTES_MAX};

/// First four bytes of every frame.
pub const MAGIC: [u8; 4] = *b"TSRA";
/// The protocol version this build speaks. A peer sending another version
/// gets `UnsupportedVersion` naming both, which leaves room for negotiation.
pub const PROTOCOL_VERSION: u8 = 4;
/// Size of [`FrameHeader`] on the wire.
pub const FRAME_HEADER_LEN: usize = 40;

/// Frame header, little endian. `header_crc32c` covers the 36 bytes before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct FrameHeader {
    /// Always [`MAGIC`].
    pub magic: [u8; 4],
    /// Always [`PROTOCOL_VERSION`] for this build.
    pub version: u8,
    /// Which message the body holds, see [`Opcode`].
    pub opcode: u8,
    /// Reserved, must be zero.
    pub flags: U16,
    /// Chosen by the requester, echoed in the response.
    pub request_id: U64,
    /// Bytes of postcard body after the header.
    pub body_len: U32,
    /// Raw payload bytes after the body.
    pub payload_len: U64,
    /// Cluster map epoch of the sender (0: the sender has no map). A node
    /// refuses data requests made with an older epoch than its own, and
    /// every response carries the node's epoch, so clients learn of a new
    /// map from any answer.
    pub map_epoch: U64,
    /// crc32c of the 36 bytes before this field.
    pub header_crc32c: U32,
}

const _: () = assert!(std::mem::size_of::<FrameHeader>() == FRAME_HEADER_LEN);

/// Message kinds. Responses set the high bit of their request's opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum Opcode {
    PutShard = 0x01,
    GetShard = 0x02,
    Head = 0x03,
    Delete = 0x04,
    List = 0x05,
    CreateBucket = 0x06,
    GetBucket = 0x07,
    NodeStatus = 0x08,
    Commit = 0x09,
    ListVersions = 0x0a,
    GetMap = 0x0b,
    SetMap = 0x0c,
    PgDigest = 0x0d,
    PgList = 0x0e,
    RepairStatus = 0x0f,
    SetRepairRate = 0x10,
    ChangeLog = 0x11,
    CrrCursor = 0x12,
    CrrForget = 0x13,
    CrrStatus = 0x14,
    CrrHave = 0x15,
    CrrApply = 0x16,
    ChangeSummary = 0x17,
    ListBuckets = 0x18,
    SetBucketAccess = 0x19,
    GetBucketAccess = 0x1a,
    GetRegistry = 0x1b,
    SetRegistry = 0x1c,
    PutShardOk = 0x81,
    GetShardOk = 0x82,
    HeadOk = 0x83,
    DeleteOk = 0x84,
    ListOk = 0x85,
    CreateBucketOk = 0x86,
    GetBucketOk = 0x87,
    NodeStatusOk = 0x88,
    CommitOk = 0x89,
    ListVersionsOk = 0x8a,
    MapOk = 0x8b,
    PgDigestOk = 0x8d,
    PgListOk = 0x8e,
    RepairStatusOk = 0x8f,
    ChangeLogOk = 0x91,
    CrrOk = 0x92,
    CrrStatusOk = 0x94,
    CrrHaveOk = 0x95,
    CrrApplyOk = 0x96,
    ChangeSummaryOk = 0x97,
    ListBucketsOk = 0x98,
    BucketAccessOk = 0x99,
    RegistryOk = 0x9a,
    Error = 0xff,
}

impl Opcode {
    /// Decode an opcode byte.
    pub fn from_u8(value: u8) -> Option<Opcode> {
        use Opcode::*;
        Some(match value {
            0x01 => PutShard,
            0x02 => GetShard,
            0x03 => Head,
            0x04 => Delete,
            0x05 => List,
            0x06 => CreateBucket,
            0x07 => GetBucket,
            0x08 => NodeStatus,
            0x09 => Commit,
            0x0a => ListVersions,
            0x0b => GetMap,
            0x0c => SetMap,
            0x0d => PgDigest,
            0x0e => PgList,
            0x0f => RepairStatus,
            0x10 => SetRepairRate,
            0x11 => ChangeLog,
            0x12 => CrrCursor,
            0x13 => CrrForget,
            0x14 => CrrStatus,
            0x15 => CrrHave,
            0x16 => CrrApply,
            0x17 => ChangeSummary,
            0x18 => ListBuckets,
            0x19 => SetBucketAccess,
            0x1a => GetBucketAccess,
            0x1b => GetRegistry,
            0x1c => SetRegistry,
            0x81 => PutShardOk,
            0x82 => GetShardOk,
            0x83 => HeadOk,
            0x84 => DeleteOk,
            0x85 => ListOk,
            0x86 => CreateBucketOk,
            0x87 => GetBucketOk,
            0x88 => NodeStatusOk,
            0x89 => CommitOk,
            0x8a => ListVersionsOk,
            0x8b => MapOk,
            0x8d => PgDigestOk,
            0x8e => PgListOk,
            0x8f => RepairStatusOk,
            0x91 => ChangeLogOk,
            0x92 => CrrOk,
            0x94 => CrrStatusOk,
            0x95 => CrrHaveOk,
            0x96 => CrrApplyOk,
            0x97 => ChangeSummaryOk,
            0x98 => ListBucketsOk,
            0x99 => BucketAccessOk,
            0x9a => RegistryOk,
            0xff => Error,
            _ => return None,
        })
    }

    /// Largest payload of this opcode: a shard, except a replicated whole
    /// object (streamed, never held in memory whole).
    pub fn payload_max(self) -> u64 {
        match self {
            Opcode::CrrApply => crate::limits::OBJECT_BYTES_MAX,
            _ => SHARD_BYTES_MAX,
        }
    }

    /// Only these opcodes may carry a payload.
    pub fn allows_payload(self) -> bool {
        matches!(
            self,
            Opcode::PutShard
                | Opcode::GetShardOk
                | Opcode::SetMap
                | Opcode::MapOk
                | Opcode::CrrApply
                | Opcode::SetRegistry
                | Opcode::RegistryOk
        )
    }
}

/// Why a frame header was refused. One variant per reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// Fewer than 40 bytes.
    #[error("frame header truncated: got {got_bytes} of {FRAME_HEADER_LEN} bytes")]
    Truncated {
        /// Bytes available.
        got_bytes: usize,
    },
    /// Not a Tessera frame.
    #[error("bad frame magic {found:02x?}, expected {MAGIC:02x?}")]
    BadMagic {
        /// The four bytes found.
        found: [u8; 4],
    },
    /// Another protocol version.
    #[error("unsupported protocol version {found}, this build speaks {PROTOCOL_VERSION}")]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
    },
    /// The header's own checksum does not match.
    #[error("frame header checksum mismatch: header says {stored:#010x}, computed {computed:#010x}")]
    BadChecksum {
        /// Stored checksum.
        stored: u32,
        /// Computed checksum.
        computed: u32,
    },
    /// Opcode byte unknown to this version.
    #[error("unknown opcode {opcode:#04x}")]
    UnknownOpcode {
        /// The byte found.
        opcode: u8,
    },
    /// Reserved flag bits set.
    #[error("unknown frame flags {flags:#06x}")]
    UnknownFlags {
        /// The flags found.
        flags: u16,
    },
    /// Body longer than the limit.
    #[error("frame body of {body_len} bytes exceeds the limit of {BODY_BYTES_MAX}")]
    BodyTooLong {
        /// Length claimed.
        body_len: u32,
    },
    /// Payload longer than the limit.
    #[error("frame payload of {payload_len} bytes exceeds the limit of {max} for its opcode")]
    PayloadTooLong {
        /// Length claimed.
        payload_len: u64,
        /// The opcode's limit.
        max: u64,
    },
    /// A payload on a message that takes none.
    #[error("opcode {opcode:?} carries no payload, but the frame claims {payload_len} bytes")]
    UnexpectedPayload {
        /// The opcode.
        opcode: Opcode,
        /// Length claimed.
        payload_len: u64,
    },
}

impl FrameHeader {
    /// A header with its checksum filled in.
    pub fn new(opcode: Opcode, request_id: u64, body_len: u32, payload_len: u64, map_epoch: u64) -> Self {
        let mut h = FrameHeader {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            opcode: opcode as u8,
            flags: U16::new(0),
            request_id: U64::new(request_id),
            body_len: U32::new(body_len),
            payload_len: U64::new(payload_len),
            map_epoch: U64::new(map_epoch),
            header_crc32c: U32::new(0),
        };
        h.header_crc32c = U32::new(h.computed_crc());
        h
    }

    fn computed_crc(&self) -> u32 {
        crc32c::crc32c(&self.as_bytes()[..FRAME_HEADER_LEN - 4])
    }

    /// Parse and check a header: magic, version, checksum, opcode, flags and
    /// both lengths against their limits, in that order.
    pub fn decode(bytes: &[u8]) -> Result<(FrameHeader, Opcode), HeaderError> {
        let Some(raw) = bytes.get(..FRAME_HEADER_LEN) else {
            return Err(HeaderError::Truncated { got_bytes: bytes.len() });
        };
        let h = FrameHeader::read_from_bytes(raw).map_err(|_| HeaderError::Truncated { got_bytes: bytes.len() })?;
        if h.magic != MAGIC {
            return Err(HeaderError::BadMagic { found: h.magic });
        }
        if h.version != PROTOCOL_VERSION {
            return Err(HeaderError::UnsupportedVersion { found: h.version });
        }
        let computed = h.computed_crc();
        if computed != h.header_crc32c.get() {
            return Err(HeaderError::BadChecksum { stored: h.header_crc32c.get(), computed });
        }
        let opcode = Opcode::from_u8(h.opcode).ok_or(HeaderError::UnknownOpcode { opcode: h.opcode })?;
        if h.flags.get() != 0 {
            return Err(HeaderError::UnknownFlags { flags: h.flags.get() });
        }
        if h.body_len.get() > BODY_BYTES_MAX {
            return Err(HeaderError::BodyTooLong { body_len: h.body_len.get() });
        }
        let payload_len = h.payload_len.get();
        if payload_len > opcode.payload_max() {
            return Err(HeaderError::PayloadTooLong { payload_len, max: opcode.payload_max() });
        }
        if payload_len > 0 && !opcode.allows_payload() {
            return Err(HeaderError::UnexpectedPayload { opcode, payload_len });
        }
        Ok((h, opcode))
    }

    /// The header's bytes as sent.
    pub fn to_bytes(&self) -> [u8; FRAME_HEADER_LEN] {
        let mut out = [0u8; FRAME_HEADER_LEN];
        out.copy_from_slice(self.as_bytes());
        out
    }
}
