//! Message bodies. Each request and response is a postcard-encoded struct;
//! the opcode in the frame header says which. Shard bytes travel as the
//! frame payload, outside these structs.

use serde::{Deserialize, Serialize};

use crate::{CoreIndex, ShardIndex, StripeIndex, TargetId, VersionId};

/// Storage class of an object (accounting and, later, erasure-coding profile).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum StorageClass {
    /// Frequently read data.
    #[default]
    Standard,
    /// Infrequent access: cheaper to keep, metered to read.
    InfrequentAccess,
}

/// The metadata record of one object version. Stored next to its shards on
/// every target that holds a shard of it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// Object key.
    pub key: String,
    /// Version id (hybrid logical clock).
    pub version: VersionId,
    /// Object size in bytes (0 for delete markers).
    pub size_bytes: u64,
    /// Bytes of object data per stripe; the last stripe may be shorter.
    pub stripe_bytes: u32,
    /// Number of stripes (0 for an empty object or a delete marker).
    pub stripe_count: u32,
    /// crc32c of the whole object's bytes.
    pub content_crc32c: u32,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// MIME type, if given.
    pub content_type: Option<String>,
    /// Owner principal.
    pub owner: String,
    /// User metadata, sorted by name.
    pub user_meta: Vec<(String, String)>,
    /// Storage class.
    pub storage_class: StorageClass,
    /// This version is a delete marker (versioned buckets).
    pub delete_marker: bool,
}

/// Store one shard of one stripe. When `meta` is present this is the last
/// shard the writer sends for this version and the node commits the version:
/// from then on it is visible to reads, never before.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutShard {
    /// Target that stores the shard.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version being written.
    pub version: VersionId,
    /// Stripe position.
    pub stripe: StripeIndex,
    /// Shard position within the stripe.
    pub shard: ShardIndex,
    /// crc32c of the payload, computed by the writer.
    pub shard_crc32c: u32,
    /// The version's metadata record, on the committing shard only.
    pub meta: Option<ObjectMeta>,
}

/// Acknowledgement of a durable shard (and commit, if `committed`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutShardOk {
    /// Target that stored it.
    pub target: TargetId,
    /// The version is now visible.
    pub committed: bool,
}

/// A half-open byte range `[offset, offset + len)` within a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

/// Read one shard, or a range of it, of a version (latest if `version` is `None`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetShard {
    /// Target holding the shard.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// A specific version, or the latest.
    pub version: Option<VersionId>,
    /// Stripe position.
    pub stripe: StripeIndex,
    /// Shard position.
    pub shard: ShardIndex,
    /// Part of the shard, or all of it.
    pub range: Option<ByteRange>,
}

/// Answer to [`GetShard`]; the bytes follow as payload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetShardOk {
    /// Metadata of the version read.
    pub meta: ObjectMeta,
    /// Full length of the shard.
    pub shard_len: u64,
    /// crc32c of the payload bytes sent.
    pub payload_crc32c: u32,
}

/// Object metadata without data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Target holding the object.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// A specific version, or the latest.
    pub version: Option<VersionId>,
}

/// Delete a specific version (`version: Some`), or the object: in a
/// versioned bucket that writes a delete marker with `marker_version`, in an
/// unversioned bucket it removes every version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteObject {
    /// Target holding the object.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Which version to remove, or `None` for the object.
    pub version: Option<VersionId>,
    /// Version id of the delete marker, if one is written.
    pub marker_version: VersionId,
}

/// What a delete did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOk {
    /// Versions removed.
    pub removed: Vec<VersionId>,
    /// The delete marker written, if any.
    pub marker: Option<VersionId>,
}

/// List the latest versions of keys under `prefix`, after `start_after`,
/// rolling keys that contain `delimiter` after the prefix into common prefixes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct List {
    /// Target to list.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll up keys at this separator.
    pub delimiter: Option<String>,
    /// Only keys (and prefixes) sorting after this.
    pub start_after: Option<String>,
    /// Most keys plus prefixes returned.
    pub limit: u32,
}

/// One key in a list answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// Key.
    pub key: String,
    /// Latest version.
    pub version: VersionId,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// crc32c of the whole object.
    pub content_crc32c: u32,
}

/// Answer to [`List`], in key order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListOk {
    /// Keys.
    pub entries: Vec<ListEntry>,
    /// Rolled-up prefixes, each ending with the delimiter.
    pub common_prefixes: Vec<String>,
    /// More results exist after the last key or prefix returned.
    pub truncated: bool,
}

/// Create a bucket on a target (idempotent for the same settings).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateBucket {
    /// Target that records the bucket.
    pub target: TargetId,
    /// The bucket's settings.
    pub info: BucketInfo,
}

/// A bucket's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketInfo {
    /// Name.
    pub name: String,
    /// Keep every version and write delete markers.
    pub versioned: bool,
    /// Owner principal.
    pub owner: String,
    /// Creation time, Unix milliseconds.
    pub created_ms: u64,
    /// Default storage class for new objects.
    pub storage_class: StorageClass,
}

/// Read a bucket's settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucket {
    /// Target to ask.
    pub target: TargetId,
    /// Name.
    pub name: String,
}

/// Ask a node for its layout and health; any core answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {}

/// One target of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStatus {
    /// Id.
    pub target: TargetId,
    /// Bytes the target can hold.
    pub capacity_bytes: u64,
    /// Bytes free for new writes.
    pub free_bytes: u64,
}

/// One executor core of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoreStatus {
    /// Core index.
    pub core: CoreIndex,
    /// UDP port of the core's QUIC endpoint.
    pub port: u16,
    /// Targets this core owns.
    pub targets: Vec<TargetStatus>,
}

/// Answer to [`NodeStatus`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatusOk {
    /// Node name from its config.
    pub node: String,
    /// Software version.
    pub version: String,
    /// Cores with their ports and targets.
    pub cores: Vec<CoreStatus>,
}

/// Machine-readable error kinds a node returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request frame or body was malformed.
    BadRequest,
    /// No such bucket.
    NoSuchBucket,
    /// No such key or version.
    NoSuchKey,
    /// Bucket already exists with other settings.
    BucketExists,
    /// The target has no room for the write.
    TargetFull,
    /// Stored data failed its checksum.
    ChecksumMismatch,
    /// The payload did not match the crc the writer sent.
    PayloadChecksumMismatch,
    /// This core does not own the target.
    WrongTarget,
    /// A commit arrived before all of the version's stripes.
    IncompleteObject,
    /// The requested range lies outside the shard.
    InvalidRange,
    /// A disk or internal failure.
    Internal,
    /// The node is overloaded; retry later.
    Busy,
}

/// Error response body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Kind.
    pub code: ErrorCode,
    /// Human-readable detail naming what was wrong.
    pub detail: String,
}

/// Every request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Request {
    PutShard(PutShard),
    GetShard(GetShard),
    Head(Head),
    Delete(DeleteObject),
    List(List),
    CreateBucket(CreateBucket),
    GetBucket(GetBucket),
    NodeStatus(NodeStatus),
}

/// Every response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Response {
    PutShardOk(PutShardOk),
    GetShardOk(GetShardOk),
    HeadOk(ObjectMeta),
    DeleteOk(DeleteOk),
    ListOk(ListOk),
    CreateBucketOk(BucketInfo),
    GetBucketOk(BucketInfo),
    NodeStatusOk(NodeStatusOk),
    Error(ErrorBody),
}
