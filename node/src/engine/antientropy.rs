//! What anti-entropy repair and the scrubber need from one target: digests
//! and sorted version lists per placement group, corrupt marks, in-place
//! shard repair, and a cursor over every stored shard.
//!
//! The scans walk the whole index (O(versions on the target) per call): the
//! engine does not know the cluster's placement groups, so it asks the
//! caller's `pg_of` for each key. That is fine for the volumes tested here;
//! an index keyed by group is the step after it (docs/ARCHITECTURE.md).

use std::collections::{BTreeMap, HashMap, HashSet};

use redb::ReadableTable;
use tessera_wire::repair::{
    counts_in_digest, entry_hash, PgEntry, PgListOk, PgSum, VersionRef, VersionState, PG_LIST_NAME_BYTES_MAX,
};
use tessera_wire::{BucketInfo, ObjectMeta, ShardIndex, StripeIndex, VersionId};

use super::index::{decode, split_obj_key, Applied, Reader, CORRUPT, OBJECTS, PREPARED, PURGED, SHARDS};
use super::layout::{Loc, RecordBody};
use super::space::AllocClass;
use super::{Engine, EngineError};
use crate::io::AlignedBuf;

/// Object key bytes (`bucket \0 key \0 version`) → (bucket, key, version).
fn parse_obj_key(raw: &[u8]) -> Option<(String, String, VersionId)> {
    let z = raw.iter().position(|&b| b == 0)?;
    let bucket = std::str::from_utf8(&raw[..z]).ok()?.to_owned();
    let (key, v) = split_obj_key(z, raw)?;
    Some((bucket, key, v))
}

/// One pass of the scrubber over part of a target.
#[derive(Debug, Default)]
pub struct ScrubStep {
    /// Resume after this shard key; None: the pass is complete.
    pub next: Option<Vec<u8>>,
    /// Bytes read and verified.
    pub bytes: u64,
    /// Shards found corrupt (and marked).
    pub corrupt: u64,
}

/// (group, version) → (state, object bytes), sorted.
type GroupVersions = BTreeMap<(u32, VersionRef), (VersionState, u64)>;

/// Which shard of a group this target holds under the current map
/// (`None`: it is no member).
pub(crate) type ShardOf<'a> = &'a dyn Fn(u32) -> Option<u16>;

/// Whether a committed version's stored shard is not the one this target
/// holds in its group now. A map change (a node added, or drained) can give
/// a target that keeps a version another position in the group: it holds
/// the version, but not the shard readers now ask it for. Counted as
/// corrupt, repair rewrites the right shard. Versions without shards
/// (delete markers) are never misplaced. `scratch` is reused: this runs
/// for every committed version in every round's digest scan.
fn misplaced(
    shards: &redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    obj: &[u8],
    want: Option<u16>,
    scratch: &mut Vec<u8>,
) -> Result<bool, EngineError> {
    let Some(want) = want else { return Ok(false) };
    scratch.clear();
    scratch.extend_from_slice(obj);
    scratch.extend_from_slice(&0u32.to_be_bytes());
    scratch.extend_from_slice(&want.to_be_bytes());
    if shards.get(scratch.as_slice())?.is_some() {
        return Ok(false);
    }
    // Any shard at all (stripe, index) of this version?
    scratch.truncate(obj.len());
    scratch.extend_from_slice(&[0xff; 6]);
    Ok(shards.range::<&[u8]>(obj..scratch.as_slice())?.next().is_some())
}

/// Every version of one placement group on a target, merged from the
/// committed, prepared and purged tables. Digests need neither prepared
/// versions nor sizes: only a `listing` includes the former and decodes
/// metadata for the latter.
fn group_versions(
    reader: &Reader,
    pg_of: &dyn Fn(&str, &str) -> u32,
    shard_of: ShardOf,
    wanted: &HashSet<u32>,
    listing: bool,
) -> Result<GroupVersions, EngineError> {
    let shards = reader.txn.open_table(SHARDS)?;
    let mut scratch = Vec::new();
    let corrupt: HashSet<Vec<u8>> = {
        let t = reader.txn.open_table(CORRUPT)?;
        let mut set = HashSet::new();
        for row in t.iter()? {
            let (k, _) = row?;
            let k = k.value();
            if k.len() > 6 {
                set.insert(k[..k.len() - 6].to_vec());
            }
        }
        set
    };
    let mut out = BTreeMap::new();
    let mut last: Option<(String, String, u32)> = None;
    let mut pg_for = |bucket: &str, key: &str| -> u32 {
        if let Some((b, k, pg)) = &last {
            if b == bucket && k == key {
                return *pg;
            }
        }
        let pg = pg_of(bucket, key);
        last = Some((bucket.to_owned(), key.to_owned(), pg));
        pg
    };
    let mut tables = vec![(OBJECTS, VersionState::Committed)];
    if listing {
        tables.push((PREPARED, VersionState::Prepared));
    }
    for (table, state) in tables {
        let t = reader.txn.open_table(table)?;
        for row in t.iter()? {
            let (k, v) = row?;
            let Some((bucket, key, version)) = parse_obj_key(k.value()) else { continue };
            let pg = pg_for(&bucket, &key);
            if !wanted.contains(&pg) {
                continue;
            }
            let size = if listing { decode::<ObjectMeta>("object meta", v.value())?.size_bytes } else { 0 };
            let state = if state == VersionState::Committed
                && (corrupt.contains(k.value()) || misplaced(&shards, k.value(), shard_of(pg), &mut scratch)?)
            {
                VersionState::Corrupt
            } else {
                state
            };
            // Committed wins over prepared for the same version.
            out.entry((pg, VersionRef { bucket, key, version })).or_insert((state, size));
        }
    }
    let t = reader.txn.open_table(PURGED)?;
    for row in t.iter()? {
        let (k, _) = row?;
        let Some((bucket, key, version)) = parse_obj_key(k.value()) else { continue };
        let pg = pg_for(&bucket, &key);
        if wanted.contains(&pg) {
            out.insert((pg, VersionRef { bucket, key, version }), (VersionState::Purged, 0));
        }
    }
    Ok(out)
}

impl Engine {
    /// Digest of this target's committed and purged versions in each of
    /// `pgs` (in that order); `pg_of` maps a key to its group, `shard_of` a
    /// group to this target's position in it.
    pub fn pg_digests(
        &self,
        pg_of: &dyn Fn(&str, &str) -> u32,
        shard_of: ShardOf,
        pgs: &[u32],
    ) -> Result<Vec<PgSum>, EngineError> {
        let reader = Reader::new(&self.inner.db)?;
        let wanted: HashSet<u32> = pgs.iter().copied().collect();
        let mut sums: HashMap<u32, PgSum> = HashMap::new();
        for ((pg, at), (state, _)) in group_versions(&reader, pg_of, shard_of, &wanted, false)? {
            if !counts_in_digest(state) {
                continue;
            }
            let s = sums.entry(pg).or_insert(PgSum { pg, digest: 0, versions: 0 });
            s.digest = s.digest.wrapping_add(entry_hash(&at.bucket, &at.key, at.version, state));
            s.versions += 1;
        }
        Ok(pgs.iter().map(|&pg| sums.get(&pg).copied().unwrap_or(PgSum { pg, digest: 0, versions: 0 })).collect())
    }

    /// A page of every version this target holds in group `pg`, sorted.
    pub fn pg_list(
        &self,
        pg_of: &dyn Fn(&str, &str) -> u32,
        shard_of: ShardOf,
        pg: u32,
        after: Option<&VersionRef>,
        limit: u32,
    ) -> Result<PgListOk, EngineError> {
        let reader = Reader::new(&self.inner.db)?;
        let wanted: HashSet<u32> = [pg].into_iter().collect();
        let mut buckets: HashMap<String, bool> = HashMap::new();
        let mut out = PgListOk { entries: Vec::new(), more: false };
        let mut name_bytes = 0usize;
        for ((_, at), (state, size_bytes)) in group_versions(&reader, pg_of, shard_of, &wanted, true)? {
            if after.is_some_and(|a| &at <= a) {
                continue;
            }
            if out.entries.len() as u32 >= limit || name_bytes + at.bucket.len() + at.key.len() > PG_LIST_NAME_BYTES_MAX
            {
                out.more = true;
                break;
            }
            let versioned = match buckets.get(&at.bucket) {
                Some(v) => *v,
                None => {
                    let v = reader.bucket(&at.bucket)?.is_some_and(|b: BucketInfo| b.versioned);
                    buckets.insert(at.bucket.clone(), v);
                    v
                }
            };
            name_bytes += at.bucket.len() + at.key.len();
            out.entries.push(PgEntry { at, state, versioned, size_bytes });
        }
        Ok(out)
    }

    /// Record that one shard failed its checksum (durable, replayed).
    pub async fn mark_corrupt(
        &self,
        bucket: &str,
        key: &str,
        version: VersionId,
        stripe: StripeIndex,
        shard: ShardIndex,
    ) -> Result<(), EngineError> {
        let body = RecordBody::Corrupt { bucket: bucket.to_owned(), key: key.to_owned(), version, stripe, shard };
        self.write_metadata_record(body).await.map(|_| ())
    }

    /// Replace this target's copy of one shard of a version it holds with
    /// rebuilt bytes (`buf` from [`Engine::record_buffer`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn repair_shard(
        &self,
        bucket: &str,
        key: &str,
        version: VersionId,
        stripe: StripeIndex,
        shard: ShardIndex,
        shard_crc32c: u32,
        buf: AlignedBuf,
        data_len: usize,
    ) -> Result<(), EngineError> {
        super::check_payload(&buf, data_len, shard_crc32c)?;
        let body = RecordBody::RepairShard { bucket: bucket.to_owned(), key: key.to_owned(), version, stripe, shard };
        match self.inner.write_record(body, buf, data_len, shard_crc32c, AllocClass::Normal).await? {
            Applied::Shard { .. } => Ok(()),
            other => Err(EngineError::Index(format!("unexpected apply result {other:?}"))),
        }
    }

    /// Verify up to `max_shards` stored shards after `after` against their
    /// checksums; mark the ones that fail.
    pub async fn scrub_step(&self, after: Option<&[u8]>, max_shards: usize) -> Result<ScrubStep, EngineError> {
        let batch: Vec<(Vec<u8>, Loc)> = {
            let reader = Reader::new(&self.inner.db)?;
            let shards = reader.txn.open_table(SHARDS)?;
            let corrupt = reader.txn.open_table(CORRUPT)?;
            let mut out = Vec::with_capacity(max_shards);
            let iter = match after {
                Some(a) => shards.range::<&[u8]>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded))?,
                None => shards.range::<&[u8]>(..)?,
            };
            for row in iter {
                let (k, v) = row?;
                if out.len() >= max_shards {
                    break;
                }
                if corrupt.get(k.value())?.is_some() {
                    continue;
                }
                out.push((k.value().to_vec(), decode::<Loc>("shard loc", v.value())?));
            }
            out
        };
        let mut step = ScrubStep::default();
        let full = batch.len() >= max_shards;
        for (skey, loc) in &batch {
            let data = self.inner.read_data(*loc).await?;
            step.bytes += u64::from(loc.data_len);
            if crc32c::crc32c(&data.as_slice()[..loc.data_len as usize]) == loc.data_crc32c {
                continue;
            }
            let Some((bucket, key, version)) = parse_obj_key(&skey[..skey.len().saturating_sub(6)]) else { continue };
            let n = skey.len();
            let stripe = u32::from_be_bytes([skey[n - 6], skey[n - 5], skey[n - 4], skey[n - 3]]);
            let shard = u16::from_be_bytes([skey[n - 2], skey[n - 1]]);
            tracing::warn!(target_id = %self.target(), %bucket, %key, %version, stripe, shard, "scrubber: shard failed its checksum");
            self.mark_corrupt(&bucket, &key, version, StripeIndex(stripe), ShardIndex(shard)).await?;
            step.corrupt += 1;
        }
        step.next = if full { batch.last().map(|(k, _)| k.clone()) } else { None };
        Ok(step)
    }
}
