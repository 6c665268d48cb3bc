//! The storage engine of one target: an append-only log of checksummed,
//! 4 KiB-aligned records in fixed-size segments of one O_DIRECT file, an
//! index in redb, group-committed fdatasync, crash replay, and compaction.
//!
//! Durability contract: a write is answered only after its record is on
//! stable storage (fdatasync) and applied to the index. The index itself is
//! committed to redb without fsync and made durable by periodic
//! checkpoints; after a crash, records newer than the checkpoint are
//! replayed from the log. See docs/ARCHITECTURE.md.
//!
//! Everything here runs on one core's thread: `Engine` is `!Send` and uses
//! `RefCell`, never across an `.await`.

mod antientropy;
mod changelog;
mod commit;
mod index;
mod layout;
mod maintain;
mod recovery;
mod space;

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use tessera_wire::crr::{ChangeId, ChangeLogOk, RuleCursor};
use tessera_wire::{BucketInfo, ByteRange, ListOk, ObjectMeta, ShardIndex, StripeIndex, TargetId, VersionId};
use tokio::sync::{oneshot, Notify};

use crate::io::{AlignedBuf, BlockIo, BufPool, Io, ALIGN_BYTES};
pub use antientropy::ScrubStep;
use commit::{CommitQueue, Completed};
pub(crate) use index::now_ms;
use index::{Applied, Reader};
use layout::{encode_record_header, encode_segment_header, record_bytes, Loc, RecordBody, RecordHeader};
use space::{AllocClass, Space};

/// Settings of one target's engine.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Target id (unique in the node).
    pub target: TargetId,
    /// Data file or block device.
    pub path: PathBuf,
    /// redb index file (on a file system).
    pub index_path: PathBuf,
    /// Bytes of the data file; ignored for an existing target.
    pub capacity_bytes: u64,
    /// Bytes per segment; ignored for an existing target.
    pub segment_bytes: u64,
    /// Segments kept for deletes and compaction when the target is full.
    pub reserve_segments: u32,
    /// Longest time between index checkpoints (bounds replay after a crash).
    pub checkpoint_interval: Duration,
    /// Compact a sealed segment when its live bytes fall below this fraction.
    pub compaction_live_fraction_max: f64,
    /// Placement groups of the region (fixed for its life): the change
    /// log is kept per group. 0 keeps no change log (a node without
    /// `[crr]`: nothing would ever ship or trim it).
    pub placement_groups: u32,
}

/// Errors of the engine, each naming what was wrong.
#[derive(Debug, thiserror::Error)]
#[allow(missing_docs)]
pub enum EngineError {
    #[error("target {target} is full: {needed_bytes} bytes needed, {free_bytes} free")]
    TargetFull { target: TargetId, needed_bytes: u64, free_bytes: u64 },
    #[error("no such bucket {bucket:?}")]
    NoSuchBucket { bucket: String },
    #[error("bucket {bucket:?} already exists with other settings")]
    BucketExists { bucket: String },
    #[error("no such key {bucket}/{key}{}", version.map(|v| format!(" version {v}")).unwrap_or_default())]
    NoSuchKey { bucket: String, key: String, version: Option<VersionId> },
    #[error("stripe {stripe} of {bucket}/{key} has no shard {shard} here")]
    NoSuchShard { bucket: String, key: String, stripe: u32, shard: u16 },
    #[error("checksum mismatch in target {target} at offset {offset}: stored {stored:#010x}, computed {computed:#010x} ({bucket}/{key} stripe {stripe})")]
    ChecksumMismatch {
        target: TargetId,
        offset: u64,
        stored: u32,
        computed: u32,
        bucket: String,
        key: String,
        stripe: u32,
    },
    #[error("payload crc32c {computed:#010x} does not match the writer's {sent:#010x}")]
    PayloadChecksum { sent: u32, computed: u32 },
    #[error("metadata of {key:?} arrived but stripe {missing_stripe} was never stored")]
    IncompleteObject { key: String, missing_stripe: u32 },
    #[error("commit of {key:?} version {version}, which is not prepared here")]
    NotPrepared { key: String, version: VersionId },
    #[error("{key:?} version {version} was purged here and cannot be written again")]
    VersionPurged { key: String, version: VersionId },
    #[error("range {offset}+{len} is outside the shard of {shard_len} bytes")]
    InvalidRange { offset: u64, len: u64, shard_len: u64 },
    #[error("shard of {len_bytes} bytes exceeds the target's record limit of {max_bytes}")]
    ShardTooLarge { len_bytes: u64, max_bytes: u64 },
    #[error("metadata record too large for a record header ({0})")]
    RecordTooLarge(String),
    #[error("I/O error on target {target} during {op} at offset {offset} ({len} bytes): {source}")]
    Io { target: TargetId, op: &'static str, offset: u64, len: u64, source: std::io::Error },
    #[error("target {target} stopped accepting writes after a failed fdatasync: {reason}")]
    Failed { target: TargetId, reason: String },
    #[error("target file {path} is unusable: {reason}")]
    BadTarget { path: PathBuf, reason: String },
    #[error("index corrupt ({what}): {detail}")]
    IndexCorrupt { what: &'static str, detail: String },
    #[error("index error: {0}")]
    Index(String),
}

macro_rules! redb_errors {
    ($($t:ty),*) => {$(
        impl From<$t> for EngineError {
            fn from(e: $t) -> Self {
                EngineError::Index(e.to_string())
            }
        }
    )*};
}
redb_errors!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// A shard read back and verified.
pub struct ShardRead {
    /// Metadata of the version.
    pub meta: ObjectMeta,
    /// Buffer holding the shard; the requested bytes are `buf[range]`.
    pub buf: AlignedBuf,
    /// The requested bytes within `buf`.
    pub range: std::ops::Range<usize>,
    /// Full shard length.
    pub shard_len: u64,
    /// crc32c of the returned bytes (the writer's own crc for whole shards).
    pub crc32c: u32,
}

/// Counters a target exposes.
#[derive(Clone, Copy, Debug, Default)]
pub struct EngineStats {
    /// Capacity for records.
    pub capacity_bytes: u64,
    /// Bytes available to new writes.
    pub free_bytes: u64,
    /// Segments free.
    pub free_segments: u64,
    /// Committed versions in the index.
    pub objects: u64,
    /// Segments compacted since start.
    pub compactions: u64,
    /// Checkpoints since start.
    pub checkpoints: u64,
}

/// Most buckets whose settings an engine keeps in memory.
const SETTINGS_CACHED_MAX: usize = 4_096;

/// A bucket's record and its ACL and policy: what authorizing a request in
/// it needs.
#[derive(Debug)]
pub struct BucketSettings {
    /// The bucket record (owner, versioning).
    pub info: BucketInfo,
    /// Its canned ACL and policy.
    pub access: tessera_wire::access::BucketAccess,
}

/// One target's engine. Cheap to clone (an `Rc`).
#[derive(Clone)]
pub struct Engine {
    inner: Rc<Inner>,
}

pub(crate) struct Inner {
    /// Buckets' records and access settings as authorization reads them on
    /// every request; emptied of a bucket when either changes (only this
    /// engine writes them), and whole when it grows past
    /// [`SETTINGS_CACHED_MAX`].
    settings: RefCell<std::collections::HashMap<String, Rc<BucketSettings>>>,
    cfg: EngineConfig,
    file: File,
    io: Io,
    pool: BufPool,
    salt: u64,
    db: redb::Database,
    space: RefCell<Space>,
    queue: RefCell<CommitQueue>,
    queue_notify: Notify,
    readers: RefCell<Vec<u32>>,
    checkpoint_lsn: Cell<u64>,
    last_checkpoint: Cell<Instant>,
    failed: RefCell<Option<String>>,
    maintain_notify: Notify,
    compactions: Cell<u64>,
    checkpoints: Cell<u64>,
    stopped: Cell<bool>,
}

/// The shard bytes in a record buffer must match the writer's crc32c.
fn check_payload(buf: &AlignedBuf, data_len: usize, sent: u32) -> Result<(), EngineError> {
    let computed = crc32c::crc32c(&buf.as_slice()[ALIGN_BYTES..ALIGN_BYTES + data_len]);
    if computed != sent {
        return Err(EngineError::PayloadChecksum { sent, computed });
    }
    Ok(())
}

/// Keeps a segment from being freed while a read of it is in flight.
struct ReadGuard<'a> {
    readers: &'a RefCell<Vec<u32>>,
    segment: usize,
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.readers.borrow_mut().get_mut(self.segment) {
            *r -= 1;
        }
    }
}

/// Metadata of an object stored whole as one shard on one target (1 + 0):
/// what tools that drive an engine directly write (benchmarks, the engine
/// mode of tessera-bench), since no client erasure-codes it for them.
pub fn single_shard_meta(key: &str, version: VersionId, len: usize, crc32c: u32, owner: &str) -> ObjectMeta {
    ObjectMeta {
        key: key.into(),
        version,
        size_bytes: len as u64,
        stripe_bytes: len as u32,
        shard_bytes: len as u32,
        ec: tessera_wire::EcProfile { data: 1, parity: 0 },
        stripe_count: 1,
        content_crc32c: crc32c,
        created_ms: version.millis(),
        content_type: None,
        owner: owner.into(),
        user_meta: vec![],
        storage_class: tessera_wire::StorageClass::Standard,
        delete_marker: false,
        acl: tessera_wire::Acl::Private,
        origin: None,
    }
}

impl Engine {
    /// Open (or create) a target, replay its log, and start its committer
    /// and maintenance tasks on the current core's `LocalSet`.
    pub async fn open(cfg: EngineConfig, io: Io, pool: BufPool) -> Result<Engine, EngineError> {
        let engine = recovery::open(cfg, io, pool).await?;
        tokio::task::spawn_local(committer(engine.inner.clone()));
        tokio::task::spawn_local(maintain::run(engine.inner.clone()));
        Ok(engine)
    }

    /// The target id.
    pub fn target(&self) -> TargetId {
        self.inner.cfg.target
    }

    /// A pooled buffer laid out as a record: put `data_len` bytes of shard
    /// data at `buf[ALIGN_BYTES..ALIGN_BYTES + data_len]`, then call
    /// [`Engine::put_shard`]. One copy from the network into aligned memory.
    pub fn record_buffer(&self, data_len: usize) -> Result<AlignedBuf, EngineError> {
        let max = self.inner.space.borrow().record_bytes_max();
        let bytes = record_bytes(data_len) as u64;
        if bytes > max {
            return Err(EngineError::ShardTooLarge { len_bytes: data_len as u64, max_bytes: max - ALIGN_BYTES as u64 });
        }
        let mut buf = self.inner.pool.take(bytes as usize);
        buf.set_len(bytes as usize);
        // Zero the padding after the data so no stale bytes reach the disk.
        buf.as_mut_slice()[ALIGN_BYTES + data_len..].fill(0);
        Ok(buf)
    }

    /// Store one shard durably. `buf` comes from [`Engine::record_buffer`];
    /// `shard_crc32c` is the writer's checksum, verified here first. With
    /// `meta`, the version is prepared (returns true): durable, not served
    /// until [`Engine::commit`].
    #[allow(clippy::too_many_arguments)]
    pub async fn put_shard(
        &self,
        bucket: &str,
        key: &str,
        version: VersionId,
        stripe: StripeIndex,
        shard: ShardIndex,
        shard_crc32c: u32,
        meta: Option<ObjectMeta>,
        buf: AlignedBuf,
        data_len: usize,
    ) -> Result<bool, EngineError> {
        check_payload(&buf, data_len, shard_crc32c)?;
        Reader::new(&self.inner.db)?.require_bucket(bucket)?;
        // Delete markers use the reserve: a full target still takes deletes.
        let class = if meta.as_ref().is_some_and(|m| m.delete_marker && data_len == 0) {
            AllocClass::Reserve
        } else {
            AllocClass::Normal
        };
        let body = RecordBody::Shard {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version,
            stripe,
            shard,
            meta,
            relocated_from: None,
        };
        match self.inner.write_record(body, buf, data_len, shard_crc32c, class).await? {
            Applied::Shard { prepared } => Ok(prepared),
            other => Err(EngineError::Index(format!("unexpected apply result {other:?}"))),
        }
    }

    /// Append a record without shard data (commit, purge, delete, bucket).
    /// These use the reserve: a full target can always shrink.
    async fn write_metadata_record(&self, body: RecordBody) -> Result<Applied, EngineError> {
        let buf = self.record_buffer(0)?;
        self.inner.write_record(body, buf, 0, 0, AllocClass::Reserve).await
    }

    /// Make a prepared version visible (idempotent).
    pub async fn commit(&self, bucket: &str, key: &str, version: VersionId) -> Result<(), EngineError> {
        let body = RecordBody::Commit { bucket: bucket.to_owned(), key: key.to_owned(), version };
        match self.write_metadata_record(body).await? {
            Applied::Commit => Ok(()),
            other => Err(EngineError::Index(format!("unexpected apply result {other:?}"))),
        }
    }

    /// Read and verify one shard (or a range of it) of a committed or
    /// prepared version.
    #[allow(clippy::too_many_arguments)]
    pub async fn get_shard(
        &self,
        bucket: &str,
        key: &str,
        version: VersionId,
        stripe: StripeIndex,
        shard: ShardIndex,
        range: Option<ByteRange>,
    ) -> Result<ShardRead, EngineError> {
        let (meta, loc) = {
            let reader = Reader::new(&self.inner.db)?;
            let meta = match self.visible_meta(&reader, bucket, key, Some(version)) {
                Err(EngineError::NoSuchKey { .. }) => reader.prepared(bucket, key, version)?.ok_or_else(|| {
                    EngineError::NoSuchKey { bucket: bucket.to_owned(), key: key.to_owned(), version: Some(version) }
                })?,
                other => other?,
            };
            let loc = reader.shard(bucket, key, meta.version, stripe.0, shard.0)?.ok_or_else(|| {
                EngineError::NoSuchShard {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    stripe: stripe.0,
                    shard: shard.0,
                }
            })?;
            (meta, loc)
        };
        let shard_len = u64::from(loc.data_len);
        let (start, len) = match range {
            Some(r) if r.offset.checked_add(r.len).is_none_or(|end| end > shard_len) => {
                return Err(EngineError::InvalidRange { offset: r.offset, len: r.len, shard_len })
            }
            Some(r) => (r.offset as usize, r.len as usize),
            None => (0, loc.data_len as usize),
        };
        let buf = self.inner.read_data(loc).await?;
        let computed = crc32c::crc32c(&buf.as_slice()[..loc.data_len as usize]);
        if computed != loc.data_crc32c {
            return Err(EngineError::ChecksumMismatch {
                target: self.target(),
                offset: loc.offset,
                stored: loc.data_crc32c,
                computed,
                bucket: bucket.to_owned(),
                key: key.to_owned(),
                stripe: stripe.0,
            });
        }
        let crc =
            if len == loc.data_len as usize { computed } else { crc32c::crc32c(&buf.as_slice()[start..start + len]) };
        Ok(ShardRead { meta, buf, range: start..start + len, shard_len, crc32c: crc })
    }

    fn visible_meta(
        &self,
        reader: &Reader,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
    ) -> Result<ObjectMeta, EngineError> {
        let no_key = || EngineError::NoSuchKey { bucket: bucket.to_owned(), key: key.to_owned(), version };
        reader.require_bucket(bucket)?;
        let meta = reader.meta(bucket, key, version, &[])?.ok_or_else(no_key)?;
        if meta.delete_marker {
            return Err(no_key());
        }
        Ok(meta)
    }

    /// Metadata of the latest (or a given) version.
    pub fn head(&self, bucket: &str, key: &str, version: Option<VersionId>) -> Result<ObjectMeta, EngineError> {
        let reader = Reader::new(&self.inner.db)?;
        self.visible_meta(&reader, bucket, key, version)
    }

    /// This target's view of a key for a reader that merges several
    /// targets: the newest committed version not in `exclude` (delete
    /// markers included), or the given version committed or prepared; and
    /// the versions purged here.
    pub fn view(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        exclude: &[VersionId],
    ) -> Result<tessera_wire::HeadOk, EngineError> {
        let reader = Reader::new(&self.inner.db)?;
        reader.require_bucket(bucket)?;
        let purged = reader.purged(bucket, key, tessera_wire::limits::VERSION_LIST_MAX)?;
        let committed = reader.meta(bucket, key, version, exclude)?;
        if committed.is_some() {
            return Ok(tessera_wire::HeadOk { meta: committed, committed: true, purged });
        }
        let prepared = match version {
            Some(v) => reader.prepared(bucket, key, v)?,
            None => None,
        };
        Ok(tessera_wire::HeadOk { meta: prepared, committed: false, purged })
    }

    /// Purge one version: remove it (committed, prepared or pending) and
    /// keep a tombstone so it is never written or served here again.
    /// `origin` marks a purge replicated from another region.
    pub async fn purge(
        &self,
        bucket: &str,
        key: &str,
        version: VersionId,
        origin: Option<&str>,
    ) -> Result<bool, EngineError> {
        Reader::new(&self.inner.db)?.require_bucket(bucket)?;
        let body = RecordBody::Delete {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version: Some(version),
            marker: None,
            origin: origin.map(str::to_owned),
        };
        match self.write_metadata_record(body).await? {
            Applied::Purged { removed } => Ok(removed),
            other => Err(EngineError::Index(format!("unexpected apply result {other:?}"))),
        }
    }

    /// A page of one group's change log, with the group's rule cursors.
    pub fn change_log(&self, pg: u32, after_lsn: u64, limit: usize) -> Result<ChangeLogOk, EngineError> {
        let reader = Reader::new(&self.inner.db)?;
        let (entries, truncated) = changelog::page(&reader.txn, pg, after_lsn, limit)?;
        Ok(ChangeLogOk { entries, truncated, cursors: changelog::cursors(&reader.txn, pg)? })
    }

    /// Groups whose change log holds entries: (pg, entries, bytes, oldest
    /// change time in ms).
    pub fn change_summary(&self) -> Result<Vec<(u32, u64, u64, u64)>, EngineError> {
        changelog::summary(&Reader::new(&self.inner.db)?.txn)
    }

    /// Record a rule's progress in a group durably.
    pub async fn set_crr_cursor(&self, pg: u32, rule: &str, cursor: RuleCursor) -> Result<(), EngineError> {
        let body = RecordBody::CrrCursor { pg, rule: rule.to_owned(), cursor };
        self.write_metadata_record(body).await.map(|_| ())
    }

    /// Drop change-log entries every rule is done with. Not a log record:
    /// an entry a crash brings back is shipped again, and applying it again
    /// at the destination is a no-op.
    pub fn forget_changes(&self, pg: u32, ids: &[ChangeId]) -> Result<u32, EngineError> {
        let mut txn = self.inner.db.begin_write()?;
        txn.set_durability(redb::Durability::None);
        let n = changelog::forget(&txn, pg, ids)?;
        txn.commit()?;
        Ok(n)
    }

    /// Versions prepared here before `cutoff_ms` (node clock).
    pub fn prepared_before(&self, cutoff_ms: u64, max: usize) -> Result<Vec<(String, String, VersionId)>, EngineError> {
        Reader::new(&self.inner.db)?.prepared_before(cutoff_ms, max)
    }

    /// Every committed version under a prefix.
    pub fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&(String, VersionId)>,
        limit: u32,
    ) -> Result<tessera_wire::ListVersionsOk, EngineError> {
        let reader = Reader::new(&self.inner.db)?;
        reader.require_bucket(bucket)?;
        reader.list_versions(bucket, prefix, after, limit)
    }

    /// Delete a version, or the object (see the wire `DeleteObject` docs).
    pub async fn delete(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        marker_version: VersionId,
    ) -> Result<(Vec<VersionId>, Option<VersionId>), EngineError> {
        let info = Reader::new(&self.inner.db)?.require_bucket(bucket)?;
        let marker = (version.is_none() && info.versioned).then(|| ObjectMeta {
            key: key.to_owned(),
            version: marker_version,
            size_bytes: 0,
            stripe_bytes: 0,
            shard_bytes: 0,
            ec: tessera_wire::EcProfile { data: 1, parity: 1 },
            stripe_count: 0,
            content_crc32c: 0,
            created_ms: marker_version.millis(),
            content_type: None,
            owner: info.owner.clone(),
            user_meta: Vec::new(),
            storage_class: info.storage_class,
            delete_marker: true,
            acl: tessera_wire::Acl::Private,
            origin: None,
        });
        let body = RecordBody::Delete { bucket: bucket.to_owned(), key: key.to_owned(), version, marker, origin: None };
        match self.write_metadata_record(body).await? {
            Applied::Delete { removed, marker } => Ok((removed, marker)),
            Applied::Purged { removed } => Ok((if removed { version.into_iter().collect() } else { Vec::new() }, None)),
            other => Err(EngineError::Index(format!("unexpected apply result {other:?}"))),
        }
    }

    /// List latest versions of keys.
    pub fn list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<ListOk, EngineError> {
        let reader = Reader::new(&self.inner.db)?;
        reader.require_bucket(bucket)?;
        reader.list(bucket, prefix, delimiter, start_after, limit)
    }

    /// Create a bucket (idempotent for the same settings).
    pub async fn create_bucket(&self, info: BucketInfo) -> Result<BucketInfo, EngineError> {
        if let Some(existing) = Reader::new(&self.inner.db)?.bucket(&info.name)? {
            if existing.versioned == info.versioned && existing.owner == info.owner {
                return Ok(existing);
            }
            return Err(EngineError::BucketExists { bucket: info.name });
        }
        let name = info.name.clone();
        let applied = self.write_metadata_record(RecordBody::Bucket { info }).await;
        self.inner.settings.borrow_mut().remove(&name);
        match applied? {
            Applied::Bucket(b) => Ok(b),
            other => Err(EngineError::Index(format!("unexpected apply result {other:?}"))),
        }
    }

    /// Record a bucket's ACL and policy; an older stamp than the one held
    /// changes nothing. Answers the settings held afterwards.
    pub async fn set_access(
        &self,
        bucket: &str,
        access: tessera_wire::access::BucketAccess,
    ) -> Result<tessera_wire::access::BucketAccess, EngineError> {
        let reader = Reader::new(&self.inner.db)?;
        reader.require_bucket(bucket)?;
        let held = reader.access(bucket)?;
        drop(reader);
        if held.stamp >= access.stamp {
            return Ok(held);
        }
        let applied = self.write_metadata_record(RecordBody::Access { bucket: bucket.to_owned(), access }).await;
        self.inner.settings.borrow_mut().remove(bucket);
        match applied? {
            Applied::Access(a) => Ok(a),
            other => Err(EngineError::Index(format!("unexpected apply result {other:?}"))),
        }
    }

    /// A bucket's record and its ACL and policy, from memory after the
    /// first read (authorization asks on every request).
    pub fn bucket_access(&self, name: &str) -> Result<Rc<BucketSettings>, EngineError> {
        if let Some(s) = self.inner.settings.borrow().get(name) {
            return Ok(s.clone());
        }
        let reader = Reader::new(&self.inner.db)?;
        let s = Rc::new(BucketSettings { info: reader.require_bucket(name)?, access: reader.access(name)? });
        let mut cache = self.inner.settings.borrow_mut();
        if cache.len() >= SETTINGS_CACHED_MAX {
            cache.clear();
        }
        cache.insert(name.to_owned(), s.clone());
        Ok(s)
    }

    /// A bucket's settings.
    pub fn bucket(&self, name: &str) -> Result<BucketInfo, EngineError> {
        Reader::new(&self.inner.db)?.bucket(name)?.ok_or_else(|| EngineError::NoSuchBucket { bucket: name.to_owned() })
    }

    /// A page of the buckets this target records, in name order, and
    /// whether more follow.
    pub fn buckets(&self, after: Option<&str>, limit: usize) -> Result<(Vec<BucketInfo>, bool), EngineError> {
        Reader::new(&self.inner.db)?.buckets(after, limit)
    }

    /// Space and activity counters.
    pub fn stats(&self) -> EngineStats {
        let space = self.inner.space.borrow();
        EngineStats {
            capacity_bytes: space.segs.len() as u64 * space.record_bytes_max(),
            free_bytes: space.free_bytes(),
            free_segments: space.free_segments() as u64,
            objects: Reader::new(&self.inner.db).and_then(|r| r.object_count()).unwrap_or(0),
            compactions: self.inner.compactions.get(),
            checkpoints: self.inner.checkpoints.get(),
        }
    }

    /// Force a durable index checkpoint now (tests and clean shutdown).
    pub async fn checkpoint(&self) -> Result<(), EngineError> {
        self.inner.wait_idle().await;
        self.inner.checkpoint()
    }

    /// Wake the maintenance task (compaction, reclamation) now.
    pub fn kick_maintenance(&self) {
        self.inner.maintain_notify.notify_one();
    }

    /// Stop background tasks after the current step; used on shutdown.
    pub async fn close(&self) -> Result<(), EngineError> {
        self.checkpoint().await?;
        self.inner.stopped.set(true);
        self.inner.queue_notify.notify_one();
        self.inner.maintain_notify.notify_one();
        Ok(())
    }
}

impl Inner {
    fn target(&self) -> TargetId {
        self.cfg.target
    }

    fn io_err(&self, op: &'static str, offset: u64, len: u64) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
        move |source| EngineError::Io { target: self.target(), op, offset, len, source }
    }

    /// Read a record's data (rounded up to 4 KiB) through the index location.
    async fn read_data(&self, loc: Loc) -> Result<AlignedBuf, EngineError> {
        let len = (loc.data_len as usize).div_ceil(ALIGN_BYTES) * ALIGN_BYTES;
        let _guard = {
            let mut r = self.readers.borrow_mut();
            if let Some(c) = r.get_mut(loc.segment as usize) {
                *c += 1;
            }
            ReadGuard { readers: &self.readers, segment: loc.segment as usize }
        };
        let offset = loc.offset + ALIGN_BYTES as u64;
        let buf = self.pool.take(len.max(ALIGN_BYTES));
        let (res, mut buf) = self.io.read_at(&self.file, buf, len, offset).await;
        res.map_err(self.io_err("read", offset, len as u64))?;
        buf.set_len(loc.data_len as usize);
        Ok(buf)
    }

    /// Append a record, wait until it is durable and applied, return what
    /// applying it did.
    async fn write_record(
        self: &Rc<Self>,
        body: RecordBody,
        mut buf: AlignedBuf,
        data_len: usize,
        data_crc32c: u32,
        class: AllocClass,
    ) -> Result<Applied, EngineError> {
        if let Some(reason) = self.failed.borrow().clone() {
            return Err(EngineError::Failed { target: self.target(), reason });
        }
        let bytes = buf.len() as u64;
        let alloc = {
            let mut space = self.space.borrow_mut();
            let free = space.free_bytes();
            space.alloc(bytes, class).ok_or(EngineError::TargetFull {
                target: self.target(),
                needed_bytes: bytes,
                free_bytes: free,
            })?
        };
        {
            let mut q = self.queue.borrow_mut();
            if let Some((_, lsn)) = alloc.new_segment_header {
                q.allocate(lsn, alloc.generation);
            }
            q.allocate(alloc.lsn, alloc.generation);
        }
        if let Some((offset, lsn)) = alloc.new_segment_header {
            let mut hb = self.pool.take(ALIGN_BYTES);
            hb.set_len(ALIGN_BYTES);
            encode_segment_header(hb.as_mut_slice(), self.salt, alloc.generation);
            let inner = self.clone();
            tokio::task::spawn_local(async move {
                let (res, _) = inner.io.write_at(&inner.file, hb, offset).await;
                let result = res.map_err(inner.io_err("write segment header", offset, ALIGN_BYTES as u64));
                inner.queue.borrow_mut().complete(lsn, Completed { result, apply: None, reply: None });
                inner.queue_notify.notify_one();
            });
        }
        // The one clock read of a record: replay takes it from the header.
        let at_ms = now_ms();
        let header = RecordHeader {
            generation: alloc.generation,
            lsn: alloc.lsn,
            data_len: data_len as u32,
            data_crc32c,
            at_ms,
        };
        let loc = Loc { segment: alloc.segment, offset: alloc.offset, data_len: data_len as u32, data_crc32c };
        let (tx, rx) = oneshot::channel();
        let encoded = encode_record_header(&mut buf.as_mut_slice()[..ALIGN_BYTES], self.salt, header, &body);
        let inner = self.clone();
        tokio::task::spawn_local(async move {
            let result = match encoded {
                Err(e) => Err(EngineError::RecordTooLarge(e.to_string())),
                Ok(()) => {
                    let (res, _) = inner.io.write_at(&inner.file, buf, loc.offset).await;
                    res.map_err(inner.io_err("write record", loc.offset, bytes))
                }
            };
            inner
                .queue
                .borrow_mut()
                .complete(alloc.lsn, Completed { result, apply: Some((loc, at_ms, body)), reply: Some(tx) });
            inner.queue_notify.notify_one();
        });
        rx.await
            .unwrap_or_else(|_| Err(EngineError::Failed { target: self.target(), reason: "committer stopped".into() }))
    }

    async fn wait_idle(&self) {
        for _ in 0..10_000 {
            if self.queue.borrow().is_idle() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Make the index durable up to the last applied LSN.
    fn checkpoint(&self) -> Result<(), EngineError> {
        recovery::write_checkpoint(self)?;
        self.last_checkpoint.set(Instant::now());
        self.checkpoints.set(self.checkpoints.get() + 1);
        Ok(())
    }
}

/// The group-commit loop of one target. See `commit` module docs.
async fn committer(inner: Rc<Inner>) {
    loop {
        inner.queue_notify.notified().await;
        if inner.stopped.get() {
            return;
        }
        loop {
            let batch = inner.queue.borrow_mut().take_ready();
            if batch.is_empty() {
                break;
            }
            commit_batch(&inner, batch).await;
        }
    }
}

async fn commit_batch(inner: &Rc<Inner>, batch: Vec<(u64, Completed)>) {
    let any_ok = batch.iter().any(|(_, c)| c.result.is_ok());
    let sync_error = if any_ok && inner.failed.borrow().is_none() {
        inner.io.fdatasync(&inner.file).await.err().map(|e| e.to_string())
    } else {
        None
    };
    if let Some(reason) = &sync_error {
        // After a failed fdatasync the page state is unknown: stop writing.
        tracing::error!(target_id = %inner.target(), %reason, "fdatasync failed; target is now read-only");
        *inner.failed.borrow_mut() = Some(reason.clone());
    }
    let failed = inner.failed.borrow().clone();
    let mut replies = Vec::with_capacity(batch.len());
    let applied = (|| -> Result<(), EngineError> {
        let mut txn = inner.db.begin_write()?;
        txn.set_durability(redb::Durability::None);
        {
            let mut space = inner.space.borrow_mut();
            for (lsn, c) in batch {
                let outcome = match (c.result, &failed) {
                    (Err(e), _) => Err(e),
                    (Ok(()), Some(reason)) => {
                        Err(EngineError::Failed { target: inner.target(), reason: reason.clone() })
                    }
                    (Ok(()), None) => match &c.apply {
                        Some((loc, at_ms, body)) => {
                            index::apply(&txn, &mut space, inner.cfg.placement_groups, lsn, *loc, *at_ms, body)
                        }
                        None => Ok(Applied::Relocated { moved: false }),
                    },
                };
                replies.push((c.reply, outcome));
            }
            recovery::persist_segments(&txn, &mut space)?;
        }
        txn.commit()?;
        Ok(())
    })();
    inner.queue.borrow_mut().mark_applied();
    if let Err(e) = applied {
        tracing::error!(target_id = %inner.target(), error = %e, "index batch failed; target is now read-only");
        *inner.failed.borrow_mut() = Some(e.to_string());
        for (reply, _) in replies {
            if let Some(tx) = reply {
                let _ = tx.send(Err(EngineError::Failed { target: inner.target(), reason: e.to_string() }));
            }
        }
        return;
    }
    for (reply, outcome) in replies {
        if let Some(tx) = reply {
            let _ = tx.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests;
