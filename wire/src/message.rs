//! Message bodies. Each request and response is a postcard-encoded struct;
//! the opcode in the frame header says which. Shard bytes travel as the
//! frame payload, outside these structs.

use serde::{Deserialize, Serialize};

use crate::map::EcProfile;
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

/// A canned ACL (S3's `x-amz-acl` values): who may read and write a
/// bucket or an object besides its owner. Rules in [`crate::access`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Acl {
    /// The owner only.
    #[default]
    Private,
    /// Anyone may read.
    PublicRead,
    /// Anyone may read and write.
    PublicReadWrite,
    /// Every authenticated principal may read (on a bucket: list).
    AuthenticatedRead,
    /// The object's bucket owner may read it too.
    BucketOwnerRead,
    /// The object's bucket owner has full control of it too.
    BucketOwnerFullControl,
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
    /// Bytes of object data per stripe (k × `shard_bytes`); the last stripe
    /// may be shorter.
    pub stripe_bytes: u32,
    /// Shard bytes of a full stripe.
    pub shard_bytes: u32,
    /// The erasure-coding profile the version was written with.
    pub ec: EcProfile,
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
    /// Access control.
    pub acl: Acl,
    /// Set on replicas: the region the version was first written in.
    pub origin: Option<String>,
}

/// Store one shard of one stripe. When `meta` is present this is the last
/// shard the writer sends to this target for this version, and the target
/// prepares the version: durable, but not served until [`CommitVersion`].
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
    /// Sent by repair: replace this shard of a version the target already
    /// holds (its copy failed a checksum). Ordinary writes never replace.
    pub repair: bool,
}

/// Acknowledgement of a durable shard (and of the prepared version, if
/// `prepared`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutShardOk {
    /// Target that stored it.
    pub target: TargetId,
    /// The version is prepared on this target.
    pub prepared: bool,
}

/// Make a prepared version visible on a target. Sent by the writer once
/// the prepared shards satisfy the write rule. Idempotent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitVersion {
    /// Target.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The prepared version.
    pub version: VersionId,
}

/// Answer to [`CommitVersion`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitOk {
    /// Target.
    pub target: TargetId,
}

/// A half-open byte range `[offset, offset + len)` within a shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

/// Read one shard, or a range of it, of one version (prepared or committed:
/// the reader has already decided the version is visible).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetShard {
    /// Target holding the shard.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// The version.
    pub version: VersionId,
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

/// Object metadata without data: a target's view of one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Target holding the object.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// A specific version (prepared or committed), or the newest committed
    /// one (delete markers included).
    pub version: Option<VersionId>,
    /// When asking for the newest: skip these versions (ones the reader
    /// knows were purged elsewhere).
    pub exclude: Vec<VersionId>,
}

/// Answer to [`Head`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadOk {
    /// The version found, if any (may be a delete marker).
    pub meta: Option<ObjectMeta>,
    /// The version is committed here (false: only prepared).
    pub committed: bool,
    /// Versions of this key purged on this target (newest first, bounded).
    pub purged: Vec<VersionId>,
}

/// Purge one version of a key (committed, prepared, or not yet seen): the
/// target removes it and keeps a tombstone, so the version can never be
/// served or written again there. Deleting an object (rather than one of
/// its versions) is a write of a delete-marker version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteObject {
    /// Target holding the object.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Which version to remove.
    pub version: VersionId,
    /// Set when cross-region replication applies the purge: the region it
    /// was first made in (so it is not replicated back there).
    pub origin: Option<String>,
}

/// What a purge did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteOk {
    /// The version was committed or prepared here.
    pub removed: bool,
}

/// List the newest committed version of keys under `prefix` (delete
/// markers included, flagged, so a merge of several targets can tell a
/// deleted key from a stale one), after `start_after`, rolling keys that
/// contain `delimiter` after the prefix into common prefixes.
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
    /// Storage class.
    pub storage_class: StorageClass,
    /// This version is a delete marker.
    pub delete_marker: bool,
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

/// List every committed version of keys under `prefix`, in (key
/// ascending, version newest first) order, after `after`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVersions {
    /// Target to list.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// Only keys starting with this.
    pub prefix: String,
    /// Only versions sorting after this (key, version).
    pub after: Option<(String, VersionId)>,
    /// Most versions returned.
    pub limit: u32,
}

/// Answer to [`ListVersions`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListVersionsOk {
    /// Versions in order.
    pub entries: Vec<ListEntry>,
    /// More versions exist after the last one returned.
    pub truncated: bool,
}

/// Ask for the node's cluster map; the map follows as payload (postcard).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetMap {}

/// Install a newer cluster map (payload, postcard). Nodes keep the newest
/// map they have seen, durably.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetMap {}

/// Answer to [`GetMap`] and [`SetMap`]; for `GetMap` the map follows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapOk {
    /// Epoch of the node's map after the request.
    pub epoch: u64,
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

/// One page of the buckets a target holds, in name order. Every target
/// records every bucket (creation follows the zone rule), so a client that
/// asks one target in each of two zones sees them all.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBuckets {
    /// Target to ask.
    pub target: TargetId,
    /// Start after this bucket name (the last one of the previous page).
    pub after: Option<String>,
    /// Page size, 1..=[`crate::limits::BUCKET_LIST_MAX`].
    pub limit: u32,
}

/// Answer to [`ListBuckets`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBucketsOk {
    /// Buckets, in name order.
    pub buckets: Vec<BucketInfo>,
    /// More buckets exist after the last one returned.
    pub truncated: bool,
}

/// Set a bucket's canned ACL and policy on one target. Clients send it to
/// every target (as they create buckets); each target keeps the settings
/// with the newest stamp.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetBucketAccess {
    /// Target.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
    /// The new settings.
    pub access: crate::access::BucketAccess,
}

/// Read a bucket's canned ACL and policy from one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetBucketAccess {
    /// Target.
    pub target: TargetId,
    /// Bucket.
    pub bucket: String,
}

/// Answer to [`SetBucketAccess`] and [`GetBucketAccess`]: the settings
/// the target holds now (newer ones win over a set).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketAccessOk {
    /// The bucket's owner.
    pub owner: String,
    /// Its settings.
    pub access: crate::access::BucketAccess,
}

/// Read the region's principal registry ([`crate::registry`]) from a
/// node: the answer carries it as payload only if the node's is newer
/// than `newer_than` (nodes poll each other cheaply).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GetRegistry {
    /// The version the asker holds.
    pub newer_than: u64,
}

/// Install a newer signed principal registry (the payload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRegistry {}

/// Answer to [`GetRegistry`] and [`SetRegistry`]: the node's registry
/// version (and, for a GetRegistry it is newer for, the registry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryOk {
    /// The node's registry version.
    pub version: u64,
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
    /// Epoch of the node's cluster map.
    pub map_epoch: u64,
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
    /// The request was made with an older cluster map than the node's:
    /// fetch the map (GetMap) and retry.
    StaleEpoch,
    /// The request was made with a newer cluster map than the node's:
    /// push the map to the node (SetMap) or retry later.
    NodeBehind,
    /// The version was purged here and cannot be written again.
    VersionPurged,
    /// The connection's principal may not make this request.
    AccessDenied,
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
    Commit(CommitVersion),
    ListVersions(ListVersions),
    GetMap(GetMap),
    SetMap(SetMap),
    PgDigest(crate::repair::PgDigest),
    PgList(crate::repair::PgList),
    RepairStatus(crate::repair::RepairStatus),
    SetRepairRate(crate::repair::SetRepairRate),
    ChangeLog(crate::crr::ChangeLog),
    CrrCursor(crate::crr::CrrCursor),
    CrrForget(crate::crr::CrrForget),
    CrrStatus(crate::crr::CrrStatus),
    CrrHave(crate::crr::CrrHave),
    CrrApply(crate::crr::CrrApply),
    ChangeSummary(crate::crr::ChangeSummary),
    ListBuckets(ListBuckets),
    SetBucketAccess(SetBucketAccess),
    GetBucketAccess(GetBucketAccess),
    GetRegistry(GetRegistry),
    SetRegistry(SetRegistry),
}

/// Every response.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Response {
    PutShardOk(PutShardOk),
    GetShardOk(GetShardOk),
    HeadOk(HeadOk),
    DeleteOk(DeleteOk),
    ListOk(ListOk),
    CreateBucketOk(BucketInfo),
    GetBucketOk(BucketInfo),
    NodeStatusOk(NodeStatusOk),
    CommitOk(CommitOk),
    ListVersionsOk(ListVersionsOk),
    MapOk(MapOk),
    PgDigestOk(crate::repair::PgDigestOk),
    PgListOk(crate::repair::PgListOk),
    RepairStatusOk(crate::repair::RepairStatusOk),
    ChangeLogOk(crate::crr::ChangeLogOk),
    CrrOk(crate::crr::CrrOk),
    CrrStatusOk(crate::crr::CrrStatusOk),
    CrrHaveOk(crate::crr::CrrHaveOk),
    CrrApplyOk(crate::crr::CrrApplyOk),
    ChangeSummaryOk(crate::crr::ChangeSummaryOk),
    ListBucketsOk(ListBucketsOk),
    BucketAccessOk(BucketAccessOk),
    RegistryOk(RegistryOk),
    Error(ErrorBody),
}
