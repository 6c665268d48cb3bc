//! The shared contract between Tessera clients and nodes: frame format,
//! messages, limits, version ids, the cluster map, placement, the write
//! rule and stripe geometry. No I/O, no async runtime:
//! both sides call exactly these functions, so they cannot disagree.
//!
//! A frame on a QUIC stream is `FrameHeader` (40 bytes, little endian,
//! read with zerocopy), then a postcard body of `body_len` bytes, then
//! `payload_len` raw payload bytes (shard data, never re-encoded).

pub mod access;
mod codec;
pub mod crr;
mod frame;
mod ids;
pub mod limits;
pub mod map;
pub mod map_sig;
mod message;
pub mod placement;
mod principal;
pub mod quorum;
pub mod registry;
pub mod repair;
pub mod stripe;
mod validate;
mod version;

pub use codec::{
    check_meta, decode_body, decode_request, decode_response, encode_frame, to_postcard, DecodeError, Decoded,
    EncodeError, FrameBody,
};
pub use frame::{FrameHeader, HeaderError, Opcode, FRAME_HEADER_LEN, MAGIC, PROTOCOL_VERSION};
pub use ids::{CoreIndex, ShardIndex, StripeIndex, TargetId};
pub use map::{ClassProfiles, ClusterMap, EcProfile, MapError, MapNode, MapTarget, MapZone, TargetLoc};
pub use map_sig::{MapKey, MapSignature, SignedMap};
pub use message::{
    Acl, BucketAccessOk, BucketInfo, ByteRange, CommitOk, CommitVersion, CoreStatus, CreateBucket, DeleteObject,
    DeleteOk, ErrorBody, ErrorCode, GetBucket, GetBucketAccess, GetMap, GetRegistry, GetShard, GetShardOk, Head,
    HeadOk, List, ListBuckets, ListBucketsOk, ListEntry, ListOk, ListVersions, ListVersionsOk, MapOk, NodeStatus,
    NodeStatusOk, ObjectMeta, PutShard, PutShardOk, RegistryOk, Request, Response, SetBucketAccess, SetMap,
    SetRegistry, StorageClass, TargetStatus,
};
pub use placement::{object_hash, Placement, PlacementViolation};
pub use principal::{valid_principal_name, Principal, PrincipalError, Role, PRINCIPAL_NAME_MAX, PRINCIPAL_URI_PREFIX};
pub use quorum::{bucket_rule_holds, Geometry, ShardState, WriteStep, WriteTracker};
pub use validate::{validate_bucket_name, validate_key, validate_new_bucket_name, ValidationError};
pub use version::{civil_from_days, Hlc, VersionId};
