//! Every length that crosses the network or the disk has a named limit here.
//! Decoders check a length against its limit before allocating for it.

/// Largest postcard body of any message. Bodies carry metadata, never shard
/// bytes, so 64 KiB leaves room for a full page of list results.
pub const BODY_BYTES_MAX: u32 = 65_536;

/// Largest shard payload in one frame. A stripe of one object is at most
/// this many bytes per shard; the client's stripe size must not exceed it.
pub const SHARD_BYTES_MAX: u64 = 4 * 1_048_576;

/// Largest object: what a cross-region apply may stream (5 TiB, as S3).
pub const OBJECT_BYTES_MAX: u64 = 5 * 1_024 * 1_024 * 1_048_576;

/// Longest object key, as S3 allows.
pub const KEY_BYTES_MAX: usize = 1_024;

/// Bucket names are DNS-like: 3 to 63 characters of `[a-z0-9.-]`.
pub const BUCKET_NAME_BYTES_MIN: usize = 3;
/// See [`BUCKET_NAME_BYTES_MIN`].
pub const BUCKET_NAME_BYTES_MAX: usize = 63;

/// Total bytes of user metadata (names plus values), as S3 allows.
pub const USER_META_BYTES_MAX: usize = 2_048;

/// Most user metadata entries on one object.
pub const USER_META_ENTRIES_MAX: usize = 64;

/// Longest content type string.
pub const CONTENT_TYPE_BYTES_MAX: usize = 256;

/// Longest owner name.
pub const OWNER_BYTES_MAX: usize = 128;

/// Most buckets in one [`crate::ListBucketsOk`] page (a bucket's settings
/// take at most ~220 bytes, so a full page stays well inside a body).
pub const BUCKET_LIST_MAX: u32 = 200;

/// Longest list prefix, start-after or delimiter (they are key fragments).
pub const LIST_ARG_BYTES_MAX: usize = KEY_BYTES_MAX;

/// Most entries (keys plus common prefixes) one list answer returns.
pub const LIST_LIMIT_MAX: u32 = 1_000;

/// Most stripes in one object: 5 TiB at 1 MiB stripes.
pub const STRIPES_PER_OBJECT_MAX: u32 = 5 * 1_048_576;

/// Most targets one node reports in its status.
pub const TARGETS_PER_NODE_MAX: usize = 1_024;

/// Most cores one node runs.
pub const CORES_PER_NODE_MAX: usize = 256;

/// Most version ids in a Head's `exclude` or a HeadOk's `purged`.
pub const VERSION_LIST_MAX: usize = 256;

/// Longest error detail string in an error response.
pub const ERROR_DETAIL_BYTES_MAX: usize = 1_024;

const _: () = assert!(BODY_BYTES_MAX as usize > 2 * (KEY_BYTES_MAX + USER_META_BYTES_MAX));
const _: () =
    assert!(BODY_BYTES_MAX as usize > BUCKET_LIST_MAX as usize * (BUCKET_NAME_BYTES_MAX + OWNER_BYTES_MAX + 32));
const _: () = assert!(SHARD_BYTES_MAX.is_multiple_of(4_096));

/// How far a pushed cluster map's epoch may exceed the node's. A map from
/// the far future (epoch 2^64-1) would outrank every later push; an
/// operator's change raises the epoch by one. A node catching up from its
/// peers (it was down while maps changed) is not bounded by this.
pub const MAP_EPOCH_STEP_MAX: u64 = 1_000;
