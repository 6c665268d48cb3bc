//! Shipping a batch of changes of one placement group under one rule: ask
//! the destination which it already has, then read and apply the rest, a
//! bounded number at once, paced by the rule's bandwidth limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_client::{Client, ClientError, PeerLink};
use tessera_wire::crr::{Change, ChangeKind, CrrApply, CrrHave, CrrOp, CrrOps, CrrRule, HAVE_ITEMS_MAX};
use tessera_wire::TargetId;

/// What shipping a batch did.
#[derive(Debug, Default)]
pub(crate) struct Shipped {
    /// Every change up to and including this position (index into the
    /// batch) is applied or was not needed.
    pub(crate) done_upto: Option<usize>,
    /// Changes applied at the destination, with their object bytes and
    /// their lag (ms from made to applied).
    pub(crate) applied: Vec<(u64, u64)>,
    /// Changes the destination already had (or that no longer exist here).
    pub(crate) skipped: u64,
    /// Why the batch stopped early.
    pub(crate) error: Option<String>,
}

/// Paces a rule's bytes at its bandwidth limit; shared by the groups a
/// node ships concurrently.
#[derive(Debug)]
pub(crate) struct Pacer {
    next_free: std::cell::Cell<Instant>,
}

impl Pacer {
    pub(crate) fn new() -> Pacer {
        Pacer { next_free: std::cell::Cell::new(Instant::now()) }
    }

    /// When `bytes` more may start at `mib_s` (0: no limit).
    fn reserve(&self, bytes: u64, mib_s: u32) -> Instant {
        if mib_s == 0 {
            return Instant::now();
        }
        let start = self.next_free.get().max(Instant::now());
        self.next_free.set(start + Duration::from_secs_f64(bytes as f64 / (f64::from(mib_s) * 1_048_576.0)));
        start
    }
}

/// Everything one batch needs.
pub(crate) struct Batch<'a> {
    pub(crate) client: &'a Client,
    pub(crate) link: &'a Arc<PeerLink>,
    pub(crate) rule: &'a CrrRule,
    /// The local member the changes were read from.
    pub(crate) source: TargetId,
    pub(crate) pg: u32,
    pub(crate) region: &'a str,
    /// The rule's apply slots on this node, shared by all its groups: the
    /// flow control that keeps a catch-up from flooding the destination
    /// (and timing out into retries of the same work).
    pub(crate) slots: &'a Arc<tokio::sync::Semaphore>,
    /// Back-fill: the changes come from a listing, not the log, so the
    /// rule's filters on origin and markers are checked on the metadata,
    /// and the destination is asked first which it has (most of a
    /// re-started back-fill is there already). Log changes go straight to
    /// apply, which answers before reading the bytes of a version the
    /// destination holds.
    pub(crate) backfill: bool,
}

/// Ship `changes` (in log order). Stops at the first failure.
pub(crate) async fn ship(b: &Batch<'_>, changes: &[Change], pacer: &Pacer) -> Shipped {
    let mut out = Shipped::default();
    let mut ok = vec![false; changes.len()];
    for (chunk_no, chunk) in changes.chunks(HAVE_ITEMS_MAX).enumerate() {
        let base = chunk_no * HAVE_ITEMS_MAX;
        let done = if b.backfill {
            let items = chunk.iter().map(|c| (c.key.clone(), c.version, c.kind.is_purge())).collect();
            let have = CrrHave { rule: b.rule.id.clone(), dest_bucket: b.rule.dest_bucket.clone(), items };
            match b.link.have(u64::from(b.pg), have).await {
                Ok(d) => d,
                Err(e) => {
                    out.error = Some(format!("asking region {} what it has: {e}", b.rule.dest_region));
                    break;
                }
            }
        } else {
            Vec::new()
        };
        let mut tasks = tokio::task::JoinSet::new();
        let mut failed = false;
        for (i, c) in chunk.iter().enumerate() {
            if done.get(i).copied().unwrap_or(false) {
                ok[base + i] = true;
                out.skipped += 1;
                continue;
            }
            while let Some(done) = tasks.try_join_next() {
                failed |= collect(Some(done), &mut ok, &mut out);
            }
            if failed {
                break;
            }
            let Ok(permit) = b.slots.clone().acquire_owned().await else { break };
            let at = pacer.reserve(c.size_bytes, b.rule.bandwidth_mib_s);
            tokio::time::sleep_until(at.into()).await;
            let (client, link, rule, c) = (b.client.clone(), b.link.clone(), b.rule.clone(), c.clone());
            let (source, pg, region, backfill) = (b.source, b.pg, b.region.to_owned(), b.backfill);
            tasks.spawn(async move {
                let r = apply_one(&client, &link, &rule, source, pg, &region, &c, backfill).await;
                drop(permit);
                (base + i, c.made_ms(), r)
            });
        }
        while let Some(r) = tasks.join_next().await {
            failed |= collect(Some(r), &mut ok, &mut out);
        }
        if failed {
            break;
        }
    }
    out.done_upto = ok.iter().position(|d| !d).map_or(Some(changes.len()), Some).and_then(|n| n.checked_sub(1));
    out
}

type Joined = Result<(usize, u64, Result<Option<u64>, ClientError>), tokio::task::JoinError>;

/// Record one finished apply; true if it failed.
fn collect(r: Option<Joined>, ok: &mut [bool], out: &mut Shipped) -> bool {
    match r {
        None => false,
        Some(Ok((i, made_ms, Ok(applied)))) => {
            ok[i] = true;
            match applied {
                Some(bytes) => out.applied.push((bytes, now_ms().saturating_sub(made_ms))),
                None => out.skipped += 1,
            }
            false
        }
        Some(Ok((_, _, Err(e)))) => {
            out.error.get_or_insert_with(|| e.to_string());
            true
        }
        Some(Err(e)) => {
            out.error.get_or_insert_with(|| format!("apply task failed: {e}"));
            true
        }
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Apply one change: `Some(bytes)` if the destination changed, `None` if
/// there was nothing to do (gone here, or filtered on its metadata).
#[allow(clippy::too_many_arguments)]
async fn apply_one(
    client: &Client,
    link: &PeerLink,
    rule: &CrrRule,
    source: TargetId,
    pg: u32,
    region: &str,
    c: &Change,
    backfill: bool,
) -> Result<Option<u64>, ClientError> {
    let pick = u64::from(pg);
    if let ChangeKind::Purge { committed } = c.kind {
        let origin = c.origin.clone().unwrap_or_else(|| region.to_owned());
        let op = CrrOp::Purge { key: c.key.clone(), version: c.version, supersedes: committed };
        let req = CrrApply { rule: rule.id.clone(), origin, dest_bucket: rule.dest_bucket.clone(), op };
        return link.apply(pick, req, None).await.map(|applied| applied.then_some(0));
    }
    let mut meta = match client.version_meta(source, &c.bucket, &c.key, c.version).await {
        Ok(m) => m,
        // Purged here since: its purge is in the log after it.
        Err(ClientError::NoSuchKey { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    if backfill {
        if meta.origin.as_deref() == Some(rule.dest_region.as_str()) {
            return Ok(None);
        }
        if rule.ops == CrrOps::CreatesOnly && meta.delete_marker {
            return Ok(None);
        }
    }
    let origin = meta.origin.get_or_insert_with(|| region.to_owned()).clone();
    if let Some(class) = rule.dest_class {
        meta.storage_class = class;
    }
    let bytes = if meta.delete_marker { 0 } else { meta.size_bytes };
    let req = CrrApply { rule: rule.id.clone(), origin, dest_bucket: rule.dest_bucket.clone(), op: CrrOp::Put(meta) };
    if bytes == 0 {
        return link.apply(pick, req, None).await.map(|applied| applied.then_some(0));
    }
    let CrrOp::Put(meta) = &req.op else { return Ok(None) };
    let mut body = client.body_of(&c.bucket, meta.clone());
    match link.apply(pick, req, Some(&mut body)).await {
        Ok(applied) => Ok(applied.then_some(bytes)),
        // Purged here while being read: its purge follows in the log.
        Err(ClientError::VersionGone { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}
