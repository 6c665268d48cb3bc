//! The per-placement-group change log of a target, for cross-region
//! replication. `index::apply` appends to it in the same index
//! transaction as the commit or purge it describes, keyed by the record's
//! LSN, so crash replay rebuilds exactly the same entries: no change can be
//! acknowledged and missing from the log.
//!
//! Entries leave the log only when the streamer says every rule is done
//! with them ([`forget`]); rule cursors are durable log records.

use redb::{ReadableTable, TableDefinition, WriteTransaction};
use tessera_wire::crr::{Change, ChangeId, ChangeKind, RuleCursor};
use tessera_wire::{ObjectMeta, VersionId};

use super::index::{decode, obj_key};
use super::EngineError;

/// pg (BE) ++ LSN (BE) → postcard(Change).
pub(crate) const CHANGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("changes");
/// pg (BE) ++ obj_key ++ [purge] → LSN: find an entry by its identity.
pub(crate) const CHANGE_IDS: TableDefinition<&[u8], u64> = TableDefinition::new("change_ids");
/// pg (BE) ++ rule id → postcard(RuleCursor).
pub(crate) const CURSORS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("crr_cursors");

fn seq_key(pg: u32, lsn: u64) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..4].copy_from_slice(&pg.to_be_bytes());
    k[4..].copy_from_slice(&lsn.to_be_bytes());
    k
}

fn split_seq_key(raw: &[u8]) -> Result<(u32, u64), EngineError> {
    let bad = || EngineError::IndexCorrupt { what: "change key", detail: format!("{} bytes, want 12", raw.len()) };
    let pg: [u8; 4] = raw.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
    let lsn: [u8; 8] = raw.get(4..12).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
    Ok((u32::from_be_bytes(pg), u64::from_be_bytes(lsn)))
}

fn id_key(pg: u32, bucket: &str, key: &str, version: VersionId, purge: bool) -> Vec<u8> {
    let mut k = pg.to_be_bytes().to_vec();
    k.extend_from_slice(&obj_key(bucket, key, version));
    k.push(u8::from(purge));
    k
}

fn cursor_key(pg: u32, rule: &str) -> Vec<u8> {
    let mut k = pg.to_be_bytes().to_vec();
    k.extend_from_slice(rule.as_bytes());
    k
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, EngineError> {
    postcard::to_stdvec(value).map_err(|e| EngineError::IndexCorrupt { what: "encode", detail: e.to_string() })
}

/// The placement group of (bucket, key) in a region of `pgs` groups (the
/// same function clients place with).
pub(crate) fn pg_of(pgs: u32, bucket: &str, key: &str) -> u32 {
    (tessera_wire::object_hash(bucket, key) % u64::from(pgs.max(1))) as u32
}

/// Append one change at `lsn` (idempotent: replay writes the same row).
/// `pgs` 0: this target keeps no change log.
fn append(txn: &WriteTransaction, pgs: u32, lsn: u64, change: &Change) -> Result<(), EngineError> {
    if pgs == 0 {
        return Ok(());
    }
    let pg = pg_of(pgs, &change.bucket, &change.key);
    let purge = change.kind.is_purge();
    let id = id_key(pg, &change.bucket, &change.key, change.version, purge);
    let mut ids = txn.open_table(CHANGE_IDS)?;
    let mut changes = txn.open_table(CHANGES)?;
    if let Some(old) = ids.insert(id.as_slice(), lsn)?.map(|v| v.value()) {
        if old != lsn {
            changes.remove(seq_key(pg, old).as_slice())?;
        }
    }
    changes.insert(seq_key(pg, lsn).as_slice(), encode(change)?.as_slice())?;
    Ok(())
}

/// Log a committed version.
pub(crate) fn log_put(
    txn: &WriteTransaction,
    pgs: u32,
    lsn: u64,
    at_ms: u64,
    bucket: &str,
    meta: &ObjectMeta,
) -> Result<(), EngineError> {
    let change = Change {
        bucket: bucket.to_owned(),
        key: meta.key.clone(),
        version: meta.version,
        kind: ChangeKind::Put { delete_marker: meta.delete_marker },
        size_bytes: meta.size_bytes,
        at_ms,
        origin: meta.origin.clone(),
    };
    append(txn, pgs, lsn, &change)
}

/// Log a new purge tombstone of `version`, which was `committed` here.
pub(crate) fn log_purge(
    txn: &WriteTransaction,
    pgs: u32,
    lsn: u64,
    at_ms: u64,
    at: (&str, &str, VersionId),
    committed: bool,
    origin: Option<&str>,
) -> Result<(), EngineError> {
    let (bucket, key, version) = at;
    let change = Change {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version,
        kind: ChangeKind::Purge { committed },
        size_bytes: 0,
        at_ms,
        origin: origin.map(str::to_owned),
    };
    append(txn, pgs, lsn, &change)
}

/// Set a rule's cursor for a group (a replayed log record).
pub(crate) fn set_cursor(txn: &WriteTransaction, pg: u32, rule: &str, cursor: &RuleCursor) -> Result<(), EngineError> {
    txn.open_table(CURSORS)?.insert(cursor_key(pg, rule).as_slice(), encode(cursor)?.as_slice())?;
    Ok(())
}

/// Drop entries by identity; returns how many were there.
pub(crate) fn forget(txn: &WriteTransaction, pg: u32, ids: &[ChangeId]) -> Result<u32, EngineError> {
    let mut id_table = txn.open_table(CHANGE_IDS)?;
    let mut changes = txn.open_table(CHANGES)?;
    let mut n = 0;
    for c in ids {
        let id = id_key(pg, &c.bucket, &c.key, c.version, c.purge);
        if let Some(lsn) = id_table.remove(id.as_slice())?.map(|v| v.value()) {
            changes.remove(seq_key(pg, lsn).as_slice())?;
            n += 1;
        }
    }
    Ok(n)
}

/// Entries of one group after `after_lsn`, at most `limit`, and whether
/// more follow.
pub(crate) fn page(
    txn: &redb::ReadTransaction,
    pg: u32,
    after_lsn: u64,
    limit: usize,
) -> Result<(Vec<(u64, Change)>, bool), EngineError> {
    let changes = match txn.open_table(CHANGES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((Vec::new(), false)),
        Err(e) => return Err(e.into()),
    };
    let lower = seq_key(pg, after_lsn.saturating_add(1));
    let upper = seq_key(pg, u64::MAX);
    let mut out = Vec::new();
    let mut bytes = 0;
    for row in changes.range(lower.as_slice()..=upper.as_slice())? {
        let (k, v) = row?;
        if out.len() == limit {
            return Ok((out, true));
        }
        let (_, lsn) = split_seq_key(k.value())?;
        let change: Change = decode("change", v.value())?;
        // A page of long keys must still fit in one response frame (with
        // the rule cursors beside it), and its forget in one request.
        let size = change.bucket.len() + change.key.len() + 128;
        if !out.is_empty() && bytes + size > PAGE_BYTES_BUDGET {
            return Ok((out, true));
        }
        bytes += size;
        out.push((lsn, change));
    }
    Ok((out, false))
}

/// The rule cursors of a group.
pub(crate) fn cursors(txn: &redb::ReadTransaction, pg: u32) -> Result<Vec<(String, RuleCursor)>, EngineError> {
    let table = match txn.open_table(CURSORS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let prefix = pg.to_be_bytes();
    let mut out = Vec::new();
    for row in table.range(prefix.as_slice()..)? {
        let (k, v) = row?;
        let Some(rule) = k.value().strip_prefix(prefix.as_slice()) else { break };
        let rule = String::from_utf8(rule.to_vec())
            .map_err(|e| EngineError::IndexCorrupt { what: "crr cursor", detail: e.to_string() })?;
        out.push((rule, decode("crr cursor", v.value())?));
    }
    Ok(out)
}

/// Groups with entries: (pg, entries, bytes, oldest made time).
pub(crate) fn summary(txn: &redb::ReadTransaction) -> Result<Vec<(u32, u64, u64, u64)>, EngineError> {
    let changes = match txn.open_table(CHANGES) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let mut out: Vec<(u32, u64, u64, u64)> = Vec::new();
    for row in changes.iter()? {
        let (k, v) = row?;
        let (pg, _) = split_seq_key(k.value())?;
        let c: Change = decode("change", v.value())?;
        match out.last_mut() {
            Some(last) if last.0 == pg => {
                last.1 += 1;
                last.2 += c.size_bytes;
                last.3 = last.3.min(c.made_ms());
            }
            _ => out.push((pg, 1, c.size_bytes, c.made_ms())),
        }
    }
    Ok(out)
}

/// Bytes of changes per page: half the frame body limit, leaving the rest
/// for the group's rule cursors (each may hold a back-fill position).
const PAGE_BYTES_BUDGET: usize = tessera_wire::limits::BODY_BYTES_MAX as usize / 2;
