//! The per-target index in redb: (bucket, key) → versions → shard record
//! locations, sorted, so listing a prefix after a key is a range scan and
//! nothing needs every key in memory. `apply` is the one function that turns
//! a log record into index changes; normal commits and crash replay both
//! call it, so they cannot disagree.

use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use tessera_wire::{BucketInfo, ListEntry, ListOk, ObjectMeta, VersionId};

use super::changelog;
use super::layout::{Loc, RecordBody};
use super::space::Space;
use super::EngineError;

/// Committed versions: obj_key(bucket, key, version) → postcard(ObjectMeta).
pub(crate) const OBJECTS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("objects");
/// Shard records: shard_key(bucket, key, version, stripe, shard) → postcard(Loc).
pub(crate) const SHARDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("shards");
/// Versions with shards but no metadata record yet: obj_key → first-seen
/// LSN. Dropped at restart: their writer never finished sending.
pub(crate) const PENDING: TableDefinition<&[u8], u64> = TableDefinition::new("pending");
/// Prepared versions (every stripe and the metadata durable, not served
/// until committed): obj_key → postcard(ObjectMeta). Kept across restarts.
pub(crate) const PREPARED: TableDefinition<&[u8], &[u8]> = TableDefinition::new("prepared");
/// When each prepared version was prepared here (node clock, ms; reset by
/// replay, which only delays the sweeper): obj_key → ms.
pub(crate) const PREPARED_AT: TableDefinition<&[u8], u64> = TableDefinition::new("prepared_at");
/// Purged versions (tombstones): obj_key → LSN of the purge.
pub(crate) const PURGED: TableDefinition<&[u8], u64> = TableDefinition::new("purged");
/// Unversioned buckets: the newest committed version of a key that was
/// purged. Every version of the key up to it is dead: a late commit of an
/// older version (a slow writer, or a replica from another region) is
/// removed at once, as if the purged version had superseded it.
/// key_prefix → version (u128, big endian).
pub(crate) const FLOORS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("floors");
/// Shards that failed their checksum (scrubber or read), until repaired:
/// shard_key → LSN of the finding.
pub(crate) const CORRUPT: TableDefinition<&[u8], u64> = TableDefinition::new("corrupt");
/// Buckets: name → postcard(BucketInfo).
pub(crate) const BUCKETS: TableDefinition<&str, &[u8]> = TableDefinition::new("buckets");
/// Bucket ACLs and policies: name → postcard(BucketAccess). A bucket with
/// no row is private with no policy.
pub(crate) const ACCESS: TableDefinition<&str, &[u8]> = TableDefinition::new("bucket_access");
/// Segment table: segment → postcard(SegInfo).
pub(crate) const SEGMENTS: TableDefinition<u32, &[u8]> = TableDefinition::new("segments");
/// Engine state: "checkpoint" → postcard(Checkpoint).
pub(crate) const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

/// `bucket \0 key \0`: every row of one key starts with this.
pub(crate) fn key_prefix(bucket: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(bucket.len() + key.len() + 2 + 22);
    k.extend_from_slice(bucket.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k.push(0);
    k
}

/// Key of one version; versions of a key sort newest first.
pub(crate) fn obj_key(bucket: &str, key: &str, version: VersionId) -> Vec<u8> {
    let mut k = key_prefix(bucket, key);
    k.extend_from_slice(&version.to_desc_bytes());
    k
}

/// Key of one shard record.
pub(crate) fn shard_key(bucket: &str, key: &str, version: VersionId, stripe: u32, shard: u16) -> Vec<u8> {
    let mut k = obj_key(bucket, key, version);
    k.extend_from_slice(&stripe.to_be_bytes());
    k.extend_from_slice(&shard.to_be_bytes());
    k
}

/// Split an OBJECTS key into (key, version). `None` if malformed.
pub(crate) fn split_obj_key(bucket_len: usize, raw: &[u8]) -> Option<(String, VersionId)> {
    let rest = raw.get(bucket_len + 1..)?;
    if rest.len() < 17 {
        return None;
    }
    let (key, ver) = rest.split_at(rest.len() - 17);
    let mut v = [0u8; 16];
    v.copy_from_slice(&ver[1..]);
    Some((String::from_utf8(key.to_vec()).ok()?, VersionId::from_desc_bytes(v)))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, EngineError> {
    postcard::from_bytes(bytes).map_err(|e| EngineError::IndexCorrupt { what, detail: e.to_string() })
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, EngineError> {
    postcard::to_stdvec(value).map_err(|e| EngineError::IndexCorrupt { what: "encode", detail: e.to_string() })
}

/// What applying one record did, for the answer to its writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Applied {
    Shard {
        prepared: bool,
    },
    Commit,
    Relocated {
        moved: bool,
    },
    Delete {
        removed: Vec<VersionId>,
        marker: Option<VersionId>,
    },
    Purged {
        removed: bool,
    },
    Bucket(BucketInfo),
    /// The access settings the bucket has now.
    Access(tessera_wire::access::BucketAccess),
    /// A corrupt mark was recorded (or the shard was already gone).
    Marked,
}

/// Apply one durable record at `loc` (its LSN is `lsn`, its header's write
/// time `at_ms`) to the index. Reads no clock: replaying a record later
/// rebuilds exactly what applying it when written did.
#[allow(clippy::too_many_arguments)]
pub(crate) fn apply(
    txn: &WriteTransaction,
    space: &mut Space,
    pgs: u32,
    lsn: u64,
    loc: Loc,
    at_ms: u64,
    body: &RecordBody,
) -> Result<Applied, EngineError> {
    space.note_lsn(loc.segment, lsn);
    match body {
        RecordBody::Shard { bucket, key, version, stripe, shard, meta, relocated_from } => {
            let skey = shard_key(bucket, key, *version, stripe.0, shard.0);
            let mut shards = txn.open_table(SHARDS)?;
            if let Some(from) = relocated_from {
                let current: Option<Loc> = match shards.get(skey.as_slice())? {
                    Some(v) => Some(decode("shard loc", v.value())?),
                    None => None,
                };
                if current != Some(*from) {
                    return Ok(Applied::Relocated { moved: false });
                }
                shards.insert(skey.as_slice(), encode(&loc)?.as_slice())?;
                space.sub_live(from.segment, from.record_bytes());
                space.add_live(loc.segment, loc.record_bytes());
                return Ok(Applied::Relocated { moved: true });
            }
            let buckets = txn.open_table(BUCKETS)?;
            let binfo: BucketInfo = match buckets.get(bucket.as_str())? {
                Some(v) => decode("bucket", v.value())?,
                None => return Err(EngineError::NoSuchBucket { bucket: bucket.clone() }),
            };
            let okey = obj_key(bucket, key, *version);
            if txn.open_table(PURGED)?.get(okey.as_slice())?.is_some() {
                return Err(EngineError::VersionPurged { key: key.clone(), version: *version });
            }
            drop(buckets);
            let done = txn.open_table(OBJECTS)?.get(okey.as_slice())?.is_some()
                || txn.open_table(PREPARED)?.get(okey.as_slice())?.is_some();
            if done {
                // Already prepared or committed: a retried write is a no-op.
                return Ok(Applied::Shard { prepared: meta.is_some() });
            }
            let old = shards.insert(skey.as_slice(), encode(&loc)?.as_slice())?.map(|v| v.value().to_vec());
            if let Some(old) = old {
                let old: Loc = decode("shard loc", &old)?;
                space.sub_live(old.segment, old.record_bytes());
            }
            space.add_live(loc.segment, loc.record_bytes());
            let mut pending = txn.open_table(PENDING)?;
            if pending.get(okey.as_slice())?.is_none() {
                pending.insert(okey.as_slice(), lsn)?;
            }
            let Some(meta) = meta else {
                return Ok(Applied::Shard { prepared: false });
            };
            for s in 0..meta.stripe_count {
                let k = shard_key(bucket, key, *version, s, shard.0);
                if shards.get(k.as_slice())?.is_none() {
                    return Err(EngineError::IncompleteObject { key: key.clone(), missing_stripe: s });
                }
            }
            pending.remove(okey.as_slice())?;
            txn.open_table(PREPARED)?.insert(okey.as_slice(), encode(meta)?.as_slice())?;
            txn.open_table(PREPARED_AT)?.insert(okey.as_slice(), at_ms)?;
            let _ = binfo;
            Ok(Applied::Shard { prepared: true })
        }
        RecordBody::Commit { bucket, key, version } => {
            let okey = obj_key(bucket, key, *version);
            let binfo: BucketInfo = match txn.open_table(BUCKETS)?.get(bucket.as_str())? {
                Some(v) => decode("bucket", v.value())?,
                None => return Err(EngineError::NoSuchBucket { bucket: bucket.clone() }),
            };
            if txn.open_table(OBJECTS)?.get(okey.as_slice())?.is_some() {
                return Ok(Applied::Commit);
            }
            let meta = txn.open_table(PREPARED)?.remove(okey.as_slice())?.map(|v| v.value().to_vec());
            txn.open_table(PREPARED_AT)?.remove(okey.as_slice())?;
            let Some(meta) = meta else {
                return Err(EngineError::NotPrepared { key: key.clone(), version: *version });
            };
            if !binfo.versioned && floor(txn, bucket, key)?.is_some_and(|f| *version <= f) {
                // Superseded by a version purged since: dead on arrival.
                remove_version(txn, space, bucket, key, *version)?;
                return Ok(Applied::Commit);
            }
            txn.open_table(OBJECTS)?.insert(okey.as_slice(), meta.as_slice())?;
            changelog::log_put(txn, pgs, lsn, at_ms, bucket, &decode::<ObjectMeta>("object meta", &meta)?)?;
            if !binfo.versioned {
                // Unversioned: the newest version id wins; every other goes.
                let versions = versions_of(txn, bucket, key)?;
                if let Some(&newest) = versions.first() {
                    for v in versions.into_iter().filter(|&v| v != newest) {
                        remove_version(txn, space, bucket, key, v)?;
                    }
                }
            }
            Ok(Applied::Commit)
        }
        RecordBody::Delete { bucket, key, version: Some(v), origin, .. } => {
            let committed = txn.open_table(OBJECTS)?.get(obj_key(bucket, key, *v).as_slice())?.is_some();
            let versioned = match txn.open_table(BUCKETS)?.get(bucket.as_str())? {
                Some(b) => decode::<BucketInfo>("bucket", b.value())?.versioned,
                None => true,
            };
            if committed && !versioned && floor(txn, bucket, key)?.is_none_or(|f| *v > f) {
                txn.open_table(FLOORS)?.insert(key_prefix(bucket, key).as_slice(), v.0.to_be_bytes().as_slice())?;
            }
            let removed = remove_version(txn, space, bucket, key, *v)?;
            let fresh = txn.open_table(PURGED)?.insert(obj_key(bucket, key, *v).as_slice(), lsn)?.is_none();
            if fresh {
                changelog::log_purge(txn, pgs, lsn, at_ms, (bucket, key, *v), committed, origin.as_deref())?;
            }
            Ok(Applied::Purged { removed })
        }
        RecordBody::Delete { bucket, key, version, marker, .. } => {
            let mut removed = Vec::new();
            match version {
                Some(v) if remove_version(txn, space, bucket, key, *v)? => removed.push(*v),
                Some(_) => {}
                None if marker.is_none() => {
                    for v in versions_of(txn, bucket, key)? {
                        remove_version(txn, space, bucket, key, v)?;
                        removed.push(v);
                    }
                }
                None => {}
            }
            let mut marker_version = None;
            if let Some(m) = marker {
                let mut objects = txn.open_table(OBJECTS)?;
                objects.insert(obj_key(bucket, key, m.version).as_slice(), encode(m)?.as_slice())?;
                changelog::log_put(txn, pgs, lsn, at_ms, bucket, m)?;
                marker_version = Some(m.version);
            }
            Ok(Applied::Delete { removed, marker: marker_version })
        }
        RecordBody::RepairShard { bucket, key, version, stripe, shard } => {
            let okey = obj_key(bucket, key, *version);
            let held = txn.open_table(OBJECTS)?.get(okey.as_slice())?.is_some()
                || txn.open_table(PREPARED)?.get(okey.as_slice())?.is_some();
            if !held {
                return Err(EngineError::NoSuchKey {
                    bucket: bucket.clone(),
                    key: key.clone(),
                    version: Some(*version),
                });
            }
            let skey = shard_key(bucket, key, *version, stripe.0, shard.0);
            let mut shards = txn.open_table(SHARDS)?;
            let old = shards.insert(skey.as_slice(), encode(&loc)?.as_slice())?.map(|v| v.value().to_vec());
            if let Some(old) = old {
                let old: Loc = decode("shard loc", &old)?;
                space.sub_live(old.segment, old.record_bytes());
            }
            space.add_live(loc.segment, loc.record_bytes());
            txn.open_table(CORRUPT)?.remove(skey.as_slice())?;
            Ok(Applied::Shard { prepared: false })
        }
        RecordBody::Corrupt { bucket, key, version, stripe, shard } => {
            let skey = shard_key(bucket, key, *version, stripe.0, shard.0);
            if txn.open_table(SHARDS)?.get(skey.as_slice())?.is_some() {
                txn.open_table(CORRUPT)?.insert(skey.as_slice(), lsn)?;
            }
            Ok(Applied::Marked)
        }
        RecordBody::CrrCursor { pg, rule, cursor } => {
            changelog::set_cursor(txn, *pg, rule, cursor)?;
            Ok(Applied::Marked)
        }
        RecordBody::Access { bucket, access } => {
            if txn.open_table(BUCKETS)?.get(bucket.as_str())?.is_none() {
                return Err(EngineError::NoSuchBucket { bucket: bucket.clone() });
            }
            let mut t = txn.open_table(ACCESS)?;
            let existing: Option<tessera_wire::access::BucketAccess> = match t.get(bucket.as_str())? {
                Some(v) => Some(decode("bucket access", v.value())?),
                None => None,
            };
            match existing {
                Some(e) if e.stamp >= access.stamp => Ok(Applied::Access(e)),
                _ => {
                    t.insert(bucket.as_str(), encode(access)?.as_slice())?;
                    Ok(Applied::Access(access.clone()))
                }
            }
        }
        RecordBody::Bucket { info } => {
            let mut buckets = txn.open_table(BUCKETS)?;
            let existing: Option<BucketInfo> = match buckets.get(info.name.as_str())? {
                Some(v) => Some(decode("bucket", v.value())?),
                None => None,
            };
            match existing {
                Some(e) if e.versioned == info.versioned && e.owner == info.owner => Ok(Applied::Bucket(e)),
                Some(_) => Err(EngineError::BucketExists { bucket: info.name.clone() }),
                None => {
                    buckets.insert(info.name.as_str(), encode(info)?.as_slice())?;
                    Ok(Applied::Bucket(info.clone()))
                }
            }
        }
    }
}

/// The purge floor of a key in an unversioned bucket (see [`FLOORS`]).
fn floor(txn: &WriteTransaction, bucket: &str, key: &str) -> Result<Option<VersionId>, EngineError> {
    match txn.open_table(FLOORS)?.get(key_prefix(bucket, key).as_slice())? {
        Some(v) => {
            let raw: [u8; 16] = v.value().try_into().map_err(|_| EngineError::IndexCorrupt {
                what: "purge floor",
                detail: format!("{} bytes, want 16", v.value().len()),
            })?;
            Ok(Some(VersionId(u128::from_be_bytes(raw))))
        }
        None => Ok(None),
    }
}

/// Committed version ids of a key, newest first.
fn versions_of(txn: &WriteTransaction, bucket: &str, key: &str) -> Result<Vec<VersionId>, EngineError> {
    let objects = txn.open_table(OBJECTS)?;
    let prefix = key_prefix(bucket, key);
    let mut out = Vec::new();
    for row in objects.range(prefix.as_slice()..)? {
        let (k, _) = row?;
        let k = k.value();
        if !k.starts_with(&prefix) || k.len() != prefix.len() + 16 {
            break;
        }
        let mut v = [0u8; 16];
        v.copy_from_slice(&k[prefix.len()..]);
        out.push(VersionId::from_desc_bytes(v));
    }
    Ok(out)
}

/// Remove a version's metadata and every shard record of it (committed or
/// prepared or pending). Returns whether it was committed or prepared.
pub(crate) fn remove_version(
    txn: &WriteTransaction,
    space: &mut Space,
    bucket: &str,
    key: &str,
    version: VersionId,
) -> Result<bool, EngineError> {
    let okey = obj_key(bucket, key, version);
    let mut existed = txn.open_table(OBJECTS)?.remove(okey.as_slice())?.is_some();
    existed |= txn.open_table(PREPARED)?.remove(okey.as_slice())?.is_some();
    txn.open_table(PREPARED_AT)?.remove(okey.as_slice())?;
    txn.open_table(PENDING)?.remove(okey.as_slice())?;
    let mut shards = txn.open_table(SHARDS)?;
    let mut doomed = Vec::new();
    for row in shards.range(okey.as_slice()..)? {
        let (k, v) = row?;
        if !k.value().starts_with(&okey) {
            break;
        }
        doomed.push((k.value().to_vec(), decode::<Loc>("shard loc", v.value())?));
    }
    let mut corrupt = txn.open_table(CORRUPT)?;
    for (k, loc) in doomed {
        corrupt.remove(k.as_slice())?;
        shards.remove(k.as_slice())?;
        space.sub_live(loc.segment, loc.record_bytes());
    }
    Ok(existed)
}

/// Read-side queries on a consistent snapshot.
pub(crate) struct Reader {
    pub(crate) txn: redb::ReadTransaction,
}

impl Reader {
    pub(crate) fn new(db: &redb::Database) -> Result<Reader, EngineError> {
        Ok(Reader { txn: db.begin_read()? })
    }

    pub(crate) fn bucket(&self, name: &str) -> Result<Option<BucketInfo>, EngineError> {
        let t = match self.txn.open_table(BUCKETS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        match t.get(name)? {
            Some(v) => Ok(Some(decode("bucket", v.value())?)),
            None => Ok(None),
        }
    }

    /// A bucket's ACL and policy (private and none when never set).
    pub(crate) fn access(&self, name: &str) -> Result<tessera_wire::access::BucketAccess, EngineError> {
        let t = match self.txn.open_table(ACCESS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Default::default()),
            Err(e) => return Err(e.into()),
        };
        match t.get(name)? {
            Some(v) => decode("bucket access", v.value()),
            None => Ok(Default::default()),
        }
    }

    /// Up to `limit` buckets named after `after`, in name order, and
    /// whether more follow.
    pub(crate) fn buckets(&self, after: Option<&str>, limit: usize) -> Result<(Vec<BucketInfo>, bool), EngineError> {
        let t = match self.txn.open_table(BUCKETS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), false)),
            Err(e) => return Err(e.into()),
        };
        let range = match after {
            Some(a) => t.range::<&str>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))?,
            None => t.range::<&str>(..)?,
        };
        let mut out = Vec::new();
        for row in range {
            let (_, v) = row?;
            if out.len() == limit {
                return Ok((out, true));
            }
            out.push(decode("bucket", v.value())?);
        }
        Ok((out, false))
    }

    /// A bucket's settings, or `NoSuchBucket`.
    pub(crate) fn require_bucket(&self, name: &str) -> Result<BucketInfo, EngineError> {
        self.bucket(name)?.ok_or_else(|| EngineError::NoSuchBucket { bucket: name.to_owned() })
    }

    /// The committed metadata of a version, or of the newest committed
    /// version not in `exclude` (which may be a delete marker: the caller
    /// decides what a marker means).
    pub(crate) fn meta(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
        exclude: &[VersionId],
    ) -> Result<Option<ObjectMeta>, EngineError> {
        let objects = self.txn.open_table(OBJECTS)?;
        if let Some(v) = version {
            return match objects.get(obj_key(bucket, key, v).as_slice())? {
                Some(m) => Ok(Some(decode("object meta", m.value())?)),
                None => Ok(None),
            };
        }
        let prefix = key_prefix(bucket, key);
        for row in objects.range(prefix.as_slice()..)? {
            let (k, m) = row?;
            if !k.value().starts_with(&prefix) || k.value().len() != prefix.len() + 16 {
                return Ok(None);
            }
            let meta: ObjectMeta = decode("object meta", m.value())?;
            if !exclude.contains(&meta.version) {
                return Ok(Some(meta));
            }
        }
        Ok(None)
    }

    /// The metadata of a prepared (not yet committed) version.
    pub(crate) fn prepared(
        &self,
        bucket: &str,
        key: &str,
        version: VersionId,
    ) -> Result<Option<ObjectMeta>, EngineError> {
        match self.txn.open_table(PREPARED)?.get(obj_key(bucket, key, version).as_slice())? {
            Some(m) => Ok(Some(decode("object meta", m.value())?)),
            None => Ok(None),
        }
    }

    /// Purged versions of a key, newest first, at most `max`.
    pub(crate) fn purged(&self, bucket: &str, key: &str, max: usize) -> Result<Vec<VersionId>, EngineError> {
        let purged = self.txn.open_table(PURGED)?;
        let prefix = key_prefix(bucket, key);
        let mut out = Vec::new();
        for row in purged.range(prefix.as_slice()..)? {
            let (k, _) = row?;
            let k = k.value();
            if !k.starts_with(&prefix) || k.len() != prefix.len() + 16 || out.len() == max {
                break;
            }
            let mut v = [0u8; 16];
            v.copy_from_slice(&k[prefix.len()..]);
            out.push(VersionId::from_desc_bytes(v));
        }
        Ok(out)
    }

    /// Every committed version of keys under `prefix` after `after`.
    pub(crate) fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<&(String, VersionId)>,
        limit: u32,
    ) -> Result<tessera_wire::ListVersionsOk, EngineError> {
        let objects = self.txn.open_table(OBJECTS)?;
        let mut lower = bucket.as_bytes().to_vec();
        lower.push(0);
        let bucket_len = bucket.len();
        let mut upper = bucket.as_bytes().to_vec();
        upper.push(1);
        match after {
            Some((k, v)) if k.as_str() >= prefix => {
                lower = obj_key(bucket, k, *v);
                lower.push(0); // strictly after
            }
            _ => lower.extend_from_slice(prefix.as_bytes()),
        }
        let mut out = tessera_wire::ListVersionsOk { entries: Vec::new(), truncated: false };
        let mut page_bytes = 0;
        for row in objects.range(lower.as_slice()..upper.as_slice())? {
            let (k, m) = row?;
            let Some((key, _)) = split_obj_key(bucket_len, k.value()) else { continue };
            if !key.starts_with(prefix) {
                if key.as_str() > prefix {
                    break;
                }
                continue;
            }
            if out.entries.len() == limit as usize || page_bytes + entry_bytes(&key) > LIST_BODY_BUDGET {
                out.truncated = true;
                break;
            }
            page_bytes += entry_bytes(&key);
            let meta: ObjectMeta = decode("object meta", m.value())?;
            out.entries.push(entry(key, &meta));
        }
        Ok(out)
    }

    pub(crate) fn shard(
        &self,
        bucket: &str,
        key: &str,
        version: VersionId,
        stripe: u32,
        shard: u16,
    ) -> Result<Option<Loc>, EngineError> {
        let shards = self.txn.open_table(SHARDS)?;
        match shards.get(shard_key(bucket, key, version, stripe, shard).as_slice())? {
            Some(v) => Ok(Some(decode("shard loc", v.value())?)),
            None => Ok(None),
        }
    }

    /// Latest visible versions of keys under `prefix`, after `start_after`.
    pub(crate) fn list(
        &self,
        bucket: &str,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        limit: u32,
    ) -> Result<ListOk, EngineError> {
        let objects = self.txn.open_table(OBJECTS)?;
        let mut out = ListOk { entries: Vec::new(), common_prefixes: Vec::new(), truncated: false };
        let bucket_start = {
            let mut b = bucket.as_bytes().to_vec();
            b.push(0);
            b
        };
        let bucket_end = {
            let mut b = bucket.as_bytes().to_vec();
            b.push(1);
            b
        };
        // Position: first key > start_after (or >= prefix).
        let mut lower = bucket_start.clone();
        lower.extend_from_slice(prefix.as_bytes());
        if let Some(sa) = start_after.filter(|sa| *sa >= prefix) {
            lower = bucket_start.clone();
            lower.extend_from_slice(sa.as_bytes());
            // Skip the start key itself and, when it is a rolled-up prefix,
            // everything under it.
            let rolled = delimiter.is_some_and(|d| !d.is_empty() && sa.ends_with(d));
            lower.push(if rolled { 0xff } else { 1 });
        }
        let mut last_key: Option<String> = None;
        let mut page_bytes = 0;
        'scan: loop {
            let mut next_lower = None;
            for row in objects.range(lower.as_slice()..bucket_end.as_slice())? {
                let (k, m) = row?;
                let Some((key, _)) = split_obj_key(bucket.len(), k.value()) else { continue };
                if !key.starts_with(prefix) {
                    if key.as_str() > prefix {
                        break 'scan;
                    }
                    continue;
                }
                if last_key.as_deref() == Some(key.as_str()) {
                    continue; // an older version of a key already handled
                }
                last_key = Some(key.clone());
                if let Some(d) = delimiter.filter(|d| !d.is_empty()) {
                    if let Some(i) = key[prefix.len()..].find(d) {
                        let cp = key[..prefix.len() + i + d.len()].to_string();
                        if out.entries.len() + out.common_prefixes.len() == limit as usize
                            || page_bytes + entry_bytes(&cp) > LIST_BODY_BUDGET
                        {
                            out.truncated = true;
                            break 'scan;
                        }
                        page_bytes += entry_bytes(&cp);
                        let mut nl = bucket_start.clone();
                        nl.extend_from_slice(cp.as_bytes());
                        nl.push(0xff);
                        out.common_prefixes.push(cp);
                        next_lower = Some(nl);
                        break;
                    }
                }
                let meta: ObjectMeta = decode("object meta", m.value())?;
                if out.entries.len() + out.common_prefixes.len() == limit as usize
                    || page_bytes + entry_bytes(&key) > LIST_BODY_BUDGET
                {
                    out.truncated = true;
                    break 'scan;
                }
                page_bytes += entry_bytes(&key);
                out.entries.push(entry(key, &meta));
            }
            match next_lower {
                Some(nl) => lower = nl,
                None => break,
            }
        }
        Ok(out)
    }

    /// Versions prepared here before `cutoff_ms` (node clock), at most
    /// `max`: candidates for the sweeper.
    pub(crate) fn prepared_before(
        &self,
        cutoff_ms: u64,
        max: usize,
    ) -> Result<Vec<(String, String, VersionId)>, EngineError> {
        let prepared = self.txn.open_table(PREPARED_AT)?;
        let mut out = Vec::new();
        for row in prepared.iter()? {
            let (k, at) = row?;
            let raw = k.value();
            let Some(z) = raw.iter().position(|&b| b == 0) else { continue };
            if let Some((key, v)) = split_obj_key(z, raw) {
                if at.value() < cutoff_ms {
                    out.push((String::from_utf8_lossy(&raw[..z]).into_owned(), key, v));
                    if out.len() == max {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    pub(crate) fn object_count(&self) -> Result<u64, EngineError> {
        Ok(self.txn.open_table(OBJECTS)?.len()?)
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn entry(key: String, meta: &ObjectMeta) -> ListEntry {
    ListEntry {
        key,
        version: meta.version,
        size_bytes: meta.size_bytes,
        created_ms: meta.created_ms,
        content_crc32c: meta.content_crc32c,
        storage_class: meta.storage_class,
        delete_marker: meta.delete_marker,
    }
}

/// Create every table so readers never meet a missing one.
pub(crate) fn create_tables(db: &redb::Database) -> Result<(), EngineError> {
    let txn = db.begin_write()?;
    txn.open_table(OBJECTS)?;
    txn.open_table(SHARDS)?;
    txn.open_table(PENDING)?;
    txn.open_table(PREPARED)?;
    txn.open_table(PREPARED_AT)?;
    txn.open_table(PURGED)?;
    txn.open_table(CORRUPT)?;
    txn.open_table(BUCKETS)?;
    txn.open_table(SEGMENTS)?;
    txn.open_table(STATE)?;
    txn.commit()?;
    Ok(())
}

/// All pending (uncommitted) versions: (bucket, key, version).
pub(crate) fn pending_versions(txn: &WriteTransaction) -> Result<Vec<(String, String, VersionId)>, EngineError> {
    let pending = txn.open_table(PENDING)?;
    let mut out = Vec::new();
    for row in pending.iter()? {
        let (k, _) = row?;
        let raw = k.value();
        let Some(z) = raw.iter().position(|&b| b == 0) else { continue };
        let bucket = String::from_utf8_lossy(&raw[..z]).into_owned();
        if let Some((key, v)) = split_obj_key(z, raw) {
            out.push((bucket, key, v));
        }
    }
    Ok(out)
}

/// Bytes a listing page may fill: the response body limit, less room for
/// the page's own fields. A page of 1,000 long keys would not fit in one
/// frame; it ends early (truncated) instead.
const LIST_BODY_BUDGET: usize = tessera_wire::limits::BODY_BYTES_MAX as usize - 1_024;

/// An upper bound on one listing entry's encoded size (postcard: the key
/// with its length, a u128 version and u64s as varints, crc, flags).
fn entry_bytes(key: &str) -> usize {
    key.len() + 64
}
