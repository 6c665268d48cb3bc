//! Anti-entropy repair, run by every node on its core 0.
//!
//! Each round, for every placement group one of this node's targets is a
//! member of, the node asks each member for a digest of its version set
//! (committed and purged versions; corrupt copies count as missing). The
//! group's *leader* is its lowest-indexed member that answered: if that
//! member is on this node, this node repairs the group, so exactly one live
//! node works on a group and another takes over, without coordination,
//! when the leader's node or zone is down.
//!
//! A leader whose members' digests differ lists every member's versions of
//! the group, decides per key with [`tessera_wire::repair::plan_key`] (the
//! same function the simulator checks), and carries the plan out: purge
//! where a tombstone exists elsewhere, commit complete prepared copies,
//! rebuild missing or corrupt shards from k intact ones, up to
//! `JOBS_IN_FLIGHT` versions at once. Rebuilt bytes are paced by a token
//! bucket at the configured MiB/s, changeable at run time
//! (`tessera repair rate`). Progress, backlog and ETA go to the node's
//! repair stats (metrics and `tessera repair status`).
//!
//! Members that do not answer are neither read nor written; they are
//! repaired in the first round after they return.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_client::Client;
use tessera_wire::repair::{plan_key, Fix, PgEntry, VersionPlan, PG_DIGEST_MAX};
use tessera_wire::{ObjectMeta, TargetId};
use tokio::task::JoinSet;

use crate::metrics::NodeMetrics;

/// Versions one node repairs at once.
const JOBS_IN_FLIGHT: usize = 4;

/// Paces repair writes at the node's current rate limit. Shared by the
/// node's concurrent repair jobs; a reservation is taken without awaiting,
/// then the job sleeps until its slot.
struct Pacer {
    metrics: Arc<NodeMetrics>,
    next_free: Instant,
}

impl Pacer {
    /// Reserve `bytes`; the instant the write may start, or None while
    /// repair is paused (0 MiB/s).
    fn reserve(&mut self, bytes: u64) -> Option<Instant> {
        let mib_s = self.metrics.repair.snapshot().rate_limit_mib_s;
        if mib_s == 0 {
            return None;
        }
        let start = self.next_free.max(Instant::now());
        self.next_free = start + Duration::from_secs_f64(bytes as f64 / (f64::from(mib_s) * 1_048_576.0));
        Some(start)
    }
}

/// Wait until `bytes` more may be written (while paused, until the limit
/// is raised).
async fn take(pacer: &RefCell<Pacer>, bytes: u64) {
    loop {
        let slot = pacer.borrow_mut().reserve(bytes);
        match slot {
            Some(at) => {
                tokio::time::sleep_until(at.into()).await;
                return;
            }
            None => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
}

/// One key's versions on each member (None: the member did not answer).
struct KeyVersions {
    versioned: bool,
    size: u64,
    members: Vec<Option<Vec<(tessera_wire::VersionId, tessera_wire::repair::VersionState)>>>,
}

/// One version to repair in one group.
struct Job {
    members: Vec<TargetId>,
    bucket: String,
    key: String,
    plan: VersionPlan,
    size: u64,
}

/// What one round found, for the stats.
#[derive(Default)]
struct RoundFigures {
    led: u32,
    in_sync: u32,
    member_unreachable: u32,
    unrepairable: u64,
}

/// Run anti-entropy forever: one round, then `interval` of rest (none if
/// the round repaired something). Each round starts from the newest map
/// any node of the region holds; when that is newer than this node's (it
/// was down, or restarted from an older map file, while a map was pushed),
/// the node takes it, so it catches up by itself within one interval.
pub(crate) async fn run(
    client_cfg: tessera_client::ClientConfig,
    node: String,
    metrics: Arc<NodeMetrics>,
    (map, registry): (Arc<crate::cluster::MapState>, Arc<crate::registry::RegistryState>),
    interval: Duration,
) {
    let mut client: Option<Client> = None;
    let pacer = Rc::new(RefCell::new(Pacer { metrics: metrics.clone(), next_free: Instant::now() }));
    loop {
        let c = match &client {
            Some(c) => c.clone(),
            None => match Client::connect(client_cfg.clone()).await {
                Ok(c) => {
                    client = Some(c.clone());
                    c
                }
                Err(e) => {
                    tracing::debug!(error = %e, "repair cannot reach the region yet");
                    tokio::time::sleep(interval).await;
                    continue;
                }
            },
        };
        let _ = c.refresh_map().await;
        catch_up(&c, &map);
        catch_up_registry(&c, &node, &registry).await;
        let start = Instant::now();
        let repaired = match round(&c, &node, &metrics, &pacer).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "repair round failed");
                0
            }
        };
        metrics.repair.update(|r| {
            r.rounds += 1;
            r.last_round_ms = start.elapsed().as_millis() as u64;
        });
        if repaired == 0 {
            tokio::time::sleep(interval).await;
        }
    }
}

/// Install the region's newest map (as the repair client last fetched it)
/// if it is newer than this node's.
fn catch_up(c: &Client, map: &crate::cluster::MapState) {
    let newest = c.view();
    if newest.map.epoch <= map.epoch() {
        return;
    }
    // With the signature it came with: the node checks it as it would a
    // pushed map's.
    let installed = newest
        .signed()
        .map_err(|e| e.to_string())
        .and_then(|s| map.install(&s.to_wire(), false).map_err(|e| e.to_string()));
    match installed {
        Ok(epoch) => tracing::info!(epoch, "took a newer cluster map from the region"),
        // Raced with a push, or a map that no longer describes this node
        // (it was removed): keep serving what it has.
        Err(e) => tracing::warn!(epoch = newest.map.epoch, error = %e, "newer cluster map not taken"),
    }
}

/// Nodes asked for a newer principal registry each repair round.
const REGISTRY_ASKED_PER_ROUND: usize = 3;

/// Take a newer principal registry from any other node (an admin pushes
/// to every node; this is for nodes that were down then). Asks each node
/// only for a registry newer than this one's (an answer is a few bytes
/// unless there is something to take), and a few nodes per round, moving
/// on each round, so a large region is not asked N² times.
async fn catch_up_registry(c: &Client, me: &str, registry: &crate::registry::RegistryState) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let others: Vec<(String, std::net::SocketAddr)> = c.node_addrs().into_iter().filter(|(n, _)| n != me).collect();
    if others.is_empty() {
        return;
    }
    let start = NEXT.fetch_add(REGISTRY_ASKED_PER_ROUND, std::sync::atomic::Ordering::Relaxed);
    for i in 0..REGISTRY_ASKED_PER_ROUND.min(others.len()) {
        let (name, addr) = &others[(start + i) % others.len()];
        match c.registry_bytes(*addr, registry.version()).await {
            Ok(Some(bytes)) => match registry.install(&bytes) {
                Ok(version) => tracing::info!(version, from = %name, "took a newer principal registry"),
                Err(e) => tracing::warn!(from = %name, error = %e, "newer principal registry not taken"),
            },
            Ok(None) => {}
            Err(e) => tracing::debug!(from = %name, error = %e, "registry catch-up: node not asked"),
        }
    }
}

/// One anti-entropy round. Returns the member copies repaired.
async fn round(c: &Client, node: &str, metrics: &NodeMetrics, pacer: &Rc<RefCell<Pacer>>) -> Result<u64, String> {
    let view = c.view();
    let placement = &view.placement;
    let Some((_, me)) = view.map.node(node) else {
        return Err(format!("node {node} is not in map epoch {}", view.map.epoch));
    };
    let mine: Vec<TargetId> = me.targets.iter().map(|t| t.id).collect();
    // Groups with a member here, and what to ask each member target.
    let mut groups: Vec<u32> = Vec::new();
    let mut ask: BTreeMap<TargetId, Vec<u32>> = BTreeMap::new();
    for pg in 0..placement.groups() {
        let members = placement.targets(pg);
        if members.iter().any(|t| mine.contains(t)) {
            groups.push(pg);
            for &t in members {
                ask.entry(t).or_default().push(pg);
            }
        }
    }
    // Digests, one request per target and chunk of groups, concurrently.
    let mut set = JoinSet::new();
    for (target, pgs) in ask {
        for chunk in pgs.chunks(PG_DIGEST_MAX) {
            let (c, chunk) = (c.clone(), chunk.to_vec());
            set.spawn(async move { (target, c.pg_digests(target, chunk).await) });
        }
    }
    let mut digests: HashMap<(TargetId, u32), u64> = HashMap::new();
    while let Some(r) = set.join_next().await {
        if let Ok((target, Ok(sums))) = r {
            for s in sums {
                digests.insert((target, s.pg), s.digest);
            }
        }
    }
    let mut fig = RoundFigures::default();
    let mut behind: Vec<u32> = Vec::new();
    for &pg in &groups {
        let members = placement.targets(pg);
        let answers: Vec<Option<u64>> = members.iter().map(|t| digests.get(&(*t, pg)).copied()).collect();
        let Some(leader) = answers.iter().position(|a| a.is_some()) else { continue };
        if !mine.contains(&members[leader]) {
            continue;
        }
        fig.led += 1;
        if answers.iter().any(|a| a.is_none()) {
            fig.member_unreachable += 1;
        }
        let live: Vec<u64> = answers.iter().flatten().copied().collect();
        if live.iter().all(|d| *d == live[0]) {
            if live.len() == answers.len() {
                fig.in_sync += 1;
            }
        } else {
            behind.push(pg);
        }
    }
    // Plans for every group that is behind, then the backlog, then work.
    let mut work: Vec<Job> = Vec::new();
    for &pg in &behind {
        let members = placement.targets(pg).to_vec();
        // The smallest k of any class: a version of another class that
        // cannot be rebuilt fails cleanly in `rebuild_stripe`.
        let k = usize::from(view.map.classes.standard.data.min(view.map.classes.infrequent_access.data));
        let mut lists: Vec<Option<Vec<PgEntry>>> = Vec::new();
        for &t in &members {
            lists.push(c.pg_versions(t, pg).await.ok());
        }
        let mut keys: BTreeMap<(String, String), KeyVersions> = BTreeMap::new();
        for (i, list) in lists.iter().enumerate() {
            let Some(list) = list else { continue };
            for e in list {
                let slot = keys.entry((e.at.bucket.clone(), e.at.key.clone())).or_insert_with(|| KeyVersions {
                    versioned: e.versioned,
                    size: 0,
                    members: lists.iter().map(|l| l.as_ref().map(|_| Vec::new())).collect(),
                });
                slot.size = slot.size.max(e.size_bytes);
                if let Some(v) = slot.members[i].as_mut() {
                    v.push((e.at.version, e.state));
                }
            }
        }
        for ((bucket, key), kv) in keys {
            for mut plan in plan_key(&kv.members, kv.versioned, k) {
                if plan.unrepairable {
                    // Nothing can be rebuilt yet, but complete prepared
                    // copies can be committed and tombstones spread: that
                    // may make it rebuildable next round.
                    fig.unrepairable += 1;
                    plan.fixes.retain(|(_, f)| matches!(f, Fix::Commit | Fix::Purge));
                    if plan.fixes.is_empty() {
                        continue;
                    }
                }
                work.push(Job {
                    members: members.clone(),
                    bucket: bucket.clone(),
                    key: key.clone(),
                    plan,
                    size: kv.size,
                });
            }
        }
    }
    let shard_bytes = |size: u64| size.div_ceil(u64::from(view.map.classes.standard.data.max(1)));
    let (mut backlog_versions, mut backlog_bytes) = (0u64, 0u64);
    for job in &work {
        let fixes = &job.plan.fixes;
        let rebuilt = fixes.iter().filter(|(_, f)| matches!(f, Fix::Write | Fix::Rewrite)).count() as u64;
        backlog_versions += fixes.len() as u64;
        backlog_bytes += rebuilt * shard_bytes(job.size);
    }
    metrics.repair.update(|r| {
        r.pgs_led = fig.led;
        r.pgs_in_sync = fig.in_sync;
        r.pgs_member_unreachable = fig.member_unreachable;
        r.unrepairable = fig.unrepairable;
        r.backlog_versions = backlog_versions;
        r.backlog_bytes = backlog_bytes;
        r.eta_s = None;
    });
    if work.is_empty() {
        metrics.repair.update(|r| r.rate_bytes_s = 0);
        return Ok(0);
    }
    tracing::info!(
        groups = behind.len(),
        versions = backlog_versions,
        bytes = backlog_bytes,
        "repair round: work found"
    );
    let started = Instant::now();
    let mut done_bytes = 0u64;
    let mut repaired = 0u64;
    let mut jobs = JoinSet::new();
    let mut work = work.into_iter();
    loop {
        while jobs.len() < JOBS_IN_FLIGHT {
            let Some(Job { members, bucket, key, plan, .. }) = work.next() else { break };
            let (c, pacer) = (c.clone(), pacer.clone());
            jobs.spawn_local(async move {
                let fixed = carry_out(&c, &pacer, &members, &bucket, &key, &plan).await;
                tracing::debug!(%bucket, %key, version = %plan.version, "repaired");
                fixed
            });
        }
        let Some(done) = jobs.join_next().await else { break };
        for (fixes, bytes) in done.unwrap_or_default() {
            repaired += fixes;
            done_bytes += bytes;
            let rate = (done_bytes as f64 / started.elapsed().as_secs_f64().max(0.001)) as u64;
            metrics.repair.update(|r| {
                r.repaired_versions += fixes;
                r.repaired_bytes += bytes;
                r.backlog_versions = r.backlog_versions.saturating_sub(fixes);
                r.backlog_bytes = r.backlog_bytes.saturating_sub(bytes);
                r.rate_bytes_s = rate;
                r.eta_s = (rate > 0).then(|| r.backlog_bytes / rate);
            });
        }
    }
    metrics.repair.update(|r| {
        r.backlog_versions = 0;
        r.backlog_bytes = 0;
        r.eta_s = None;
    });
    Ok(repaired)
}

/// Carry out one version's plan. Returns (copies fixed, bytes written) per
/// successful fix; failures are logged and left for the next round.
async fn carry_out(
    c: &Client,
    pacer: &RefCell<Pacer>,
    members: &[TargetId],
    bucket: &str,
    key: &str,
    plan: &VersionPlan,
) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let v = plan.version;
    let mut rebuild: Vec<(usize, bool)> = Vec::new();
    for &(i, fix) in &plan.fixes {
        let t = members[i];
        let r = match fix {
            Fix::Purge => match c.purge_on(t, bucket, key, v).await {
                // A new member (an added node, a replaced disk) may hold
                // nothing of the bucket but this tombstone's absence: give
                // it the bucket from a member that knows it, then the
                // tombstone (else the group's digests never agree).
                Err(tessera_client::ClientError::NoSuchBucket { .. }) => {
                    let others: Vec<usize> = (0..members.len()).filter(|&j| j != i).collect();
                    match ensure_bucket(c, members, &others, t, bucket).await {
                        Ok(()) => c.purge_on(t, bucket, key, v).await,
                        Err(e) => Err(e),
                    }
                }
                r => r,
            },
            Fix::Commit => c.commit_on(t, bucket, key, v).await,
            Fix::Write | Fix::Rewrite => {
                rebuild.push((i, fix == Fix::Rewrite));
                continue;
            }
        };
        match r {
            Ok(()) => out.push((1, 0)),
            Err(e) => tracing::debug!(target_id = %t, %bucket, %key, %v, ?fix, error = %e, "repair fix failed"),
        }
    }
    if rebuild.is_empty() {
        return out;
    }
    let meta = match first_meta(c, members, &plan.sources, bucket, key, plan).await {
        Some(m) => m,
        None => return out,
    };
    for &(i, _) in &rebuild {
        if let Err(e) = ensure_bucket(c, members, &plan.sources, members[i], bucket).await {
            tracing::debug!(target_id = %members[i], %bucket, error = %e, "repair: bucket missing and not creatable");
        }
    }
    let want: Vec<usize> = rebuild.iter().map(|(i, _)| *i).collect();
    let mut ok = vec![true; want.len()];
    let mut bytes = vec![0u64; want.len()];
    let stripes = meta.stripe_count.max(1);
    for s in 0..stripes {
        let shards = if meta.stripe_count == 0 {
            want.iter().map(|_| Vec::new()).collect()
        } else {
            match c.rebuild_stripe(bucket, &meta, members, &plan.sources, s, &want).await {
                Ok(sh) => sh,
                Err(e) => {
                    tracing::warn!(%bucket, %key, %v, stripe = s, error = %e, "repair: cannot rebuild stripe");
                    return out;
                }
            }
        };
        let len: u64 = shards.iter().map(|d| d.len() as u64).sum();
        take(pacer, len).await;
        for (j, data) in shards.iter().enumerate() {
            if !ok[j] {
                continue;
            }
            let (i, replace) = rebuild[j];
            let last = s + 1 == stripes;
            if let Err(e) = c.put_rebuilt_shard(members[i], bucket, &meta, s, i, data, last, replace).await {
                tracing::debug!(target_id = %members[i], %bucket, %key, %v, stripe = s, error = %e, "repair write failed");
                ok[j] = false;
            } else {
                bytes[j] += data.len() as u64;
            }
        }
    }
    for (j, &(i, replace)) in rebuild.iter().enumerate() {
        if !ok[j] {
            continue;
        }
        if !replace {
            if let Err(e) = c.commit_on(members[i], bucket, key, v).await {
                tracing::debug!(target_id = %members[i], %bucket, %key, %v, error = %e, "repair commit failed");
                continue;
            }
        }
        out.push((1, bytes[j]));
    }
    out
}

/// The version's metadata from the first source that has it.
async fn first_meta(
    c: &Client,
    members: &[TargetId],
    sources: &[usize],
    bucket: &str,
    key: &str,
    plan: &VersionPlan,
) -> Option<ObjectMeta> {
    for &i in sources {
        match c.version_meta(members[i], bucket, key, plan.version).await {
            Ok(m) => return Some(m),
            Err(e) => tracing::debug!(target_id = %members[i], error = %e, "repair: metadata read failed"),
        }
    }
    None
}

/// A replaced disk has no buckets: copy the bucket's settings (and its
/// ACL and policy, which the target must enforce) from a source before
/// writing shards into it.
async fn ensure_bucket(
    c: &Client,
    members: &[TargetId],
    sources: &[usize],
    target: TargetId,
    bucket: &str,
) -> Result<(), tessera_client::ClientError> {
    match c.bucket_on(target, bucket).await {
        Ok(_) => return Ok(()),
        Err(tessera_client::ClientError::NoSuchBucket { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut last = None;
    for &i in sources {
        match c.bucket_on(members[i], bucket).await {
            Ok(info) => {
                c.create_bucket_on(target, info).await?;
                let access = c.bucket_access_on(members[i], bucket).await?;
                return c.set_bucket_access_on(target, bucket, access).await;
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(tessera_client::ClientError::Unavailable { detail: format!("no source knows bucket {bucket}") }))
}
