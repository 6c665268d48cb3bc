//! The shared contract between Tessera clients and nodes: frame format,
//! messages, limits, version ids and placement. No I/O, no async runtime:
//! both sides call exactly these functions, so they cannot disagree.
//!
//! A frame on a QUIC stream is `FrameHeader` (32 bytes, little endian,
//! read with zerocopy), then a postcard body of `body_len` bytes, then
//! `payload_len` raw payload bytes (shard data, never re-encoded).

mod codec;
mod frame;
mod ids;
pub mod limits;
mod message;
mod placement;
mod validate;
mod version;

pub use codec::{
    check_meta, decode_body, decode_request, decode_response, encode_frame, to_postcard, DecodeError, Decoded,
    EncodeError, FrameBody,
};
pub use frame::{FrameHeader, HeaderError, Opcode, FRAME_HEADER_LEN, MAGIC, PROTOCOL_VERSION};
pub use ids::{CoreIndex, ShardIndex, StripeIndex, TargetId};
pub use message::{
    BucketInfo, ByteRange, CoreStatus, CreateBucket, DeleteObject, DeleteOk, ErrorBody, ErrorCode, GetBucket, GetShard,
    GetShardOk, Head, List, ListEntry, ListOk, NodeStatus, NodeStatusOk, ObjectMeta, PutShard, PutShardOk, Request,
    Response, StorageClass, TargetStatus,
};
pub use placement::{object_hash, target_for_object};
pub use validate::{validate_bucket_name, validate_key, ValidationError};
pub use version::{Hlc, VersionId};
