//! The streamer: run by every node on its core 0. A placement group's log
//! is shipped by its first member (in placement order) whose node answers;
//! when that node or its zone stops answering, the next member's node takes
//! over at its next liveness check, with no operator action. Two shippers
//! at once (a partition inside the region) are harmless: apply is
//! idempotent.
//!
//! Each round, for every group this node ships (16 groups at once): read a
//! page of the shipping member's log, ship each rule's wanted changes after its cursor
//! (`ship`), record the cursors durably, then tell every live member to
//! forget the entries every rule is done with. Rules that ask for it then
//! back-fill the groups this node ships, one page per group per round, with
//! the position kept in the same durable cursor. A destination that does
//! not answer puts its rule in exponential backoff (up to 5 s); its
//! changes stay in the logs, so the backlog is durable and never dropped.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_client::{Client, PeerLink};
use tessera_wire::crr::{Change, ChangeKind, CrrRule, RuleCursor, RuleProgress};
use tessera_wire::repair::VersionState;
use tessera_wire::{ClusterMap, TargetId};

use super::ship::{now_ms, ship, Batch, Pacer, Shipped};
use crate::cluster::MapState;
use crate::config::CrrConfig;
use crate::metrics::NodeMetrics;

/// Lag samples kept per rule for the status quantiles.
const LAG_WINDOW: usize = 4_096;
/// How often nodes are checked for liveness.
const ALIVE_EVERY: Duration = Duration::from_secs(1);
/// Groups shipped at once by one node.
const PGS_AT_ONCE: usize = 16;
/// Longest backoff of a rule whose destination fails.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A rule's run-time state on this node.
struct RuleRun {
    pacer: Rc<Pacer>,
    slots: Arc<tokio::sync::Semaphore>,
    retry_at: Option<Instant>,
    backoff: Duration,
    last_error: Option<String>,
    shipped_objects: u64,
    shipped_bytes: u64,
    skipped: u64,
    lags: VecDeque<u64>,
    backfilled: BTreeSet<u32>,
}

impl RuleRun {
    fn new(in_flight: usize) -> RuleRun {
        RuleRun {
            pacer: Rc::new(Pacer::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(in_flight)),
            retry_at: None,
            backoff: Duration::from_millis(250),
            last_error: None,
            shipped_objects: 0,
            shipped_bytes: 0,
            skipped: 0,
            lags: VecDeque::new(),
            backfilled: BTreeSet::new(),
        }
    }

    fn ready(&self) -> bool {
        self.retry_at.is_none_or(|t| Instant::now() >= t)
    }

    fn failed(&mut self, why: String) {
        if !self.ready() {
            // Another group of the same round failed first: one backoff step
            // per round, not per group.
            self.last_error = Some(why);
            return;
        }
        tracing::warn!(error = %why, backoff_ms = self.backoff.as_millis() as u64, "replication batch failed");
        self.last_error = Some(why);
        self.retry_at = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    fn succeeded(&mut self) {
        self.retry_at = None;
        self.backoff = Duration::from_millis(250);
        self.last_error = None;
    }
}

/// Pending figures of one rule in one group.
#[derive(Clone, Default)]
struct Pending {
    objects: u64,
    bytes: u64,
    oldest_ms: Option<u64>,
}

impl Pending {
    fn add(&mut self, other: &Pending) {
        self.objects += other.objects;
        self.bytes += other.bytes;
        if let Some(o) = other.oldest_ms {
            self.oldest_ms = Some(self.oldest_ms.map_or(o, |m| m.min(o)));
        }
    }
}

/// What every group task shares.
struct Inner {
    client: Client,
    links: HashMap<String, Arc<PeerLink>>,
    cfg: CrrConfig,
    metrics: Arc<NodeMetrics>,
    region: String,
    runs: RefCell<HashMap<String, RuleRun>>,
    /// What each rule has pending per group, as its shipping task last
    /// saw it: set before a batch is sent (so a batch stuck on a silent
    /// destination shows as pending, with its age) and after.
    pending: RefCell<BTreeMap<u32, Vec<(String, Pending)>>>,
}

impl Inner {
    /// The rule's pacer, apply slots and link if it may ship now.
    #[allow(clippy::type_complexity)]
    fn ready(&self, rule: &CrrRule) -> Option<(Rc<Pacer>, Arc<tokio::sync::Semaphore>, Arc<PeerLink>)> {
        let mut runs = self.runs.borrow_mut();
        let run = runs.get_mut(&rule.id)?;
        match self.links.get(&rule.dest_region) {
            None => {
                run.last_error = Some(format!("no [[crr.peers]] entry for region {}", rule.dest_region));
                None
            }
            Some(link) if run.ready() => Some((run.pacer.clone(), run.slots.clone(), link.clone())),
            Some(_) => None,
        }
    }

    /// Fold a batch's outcome into the rule's state and lag histogram.
    fn record(&self, rule: &str, shipped: &Shipped) {
        if !shipped.applied.is_empty() {
            self.metrics.crr.lag.update(|m| {
                let h = m.entry(rule.to_owned()).or_default();
                for &(_, lag) in &shipped.applied {
                    h.record(lag);
                }
            });
        }
        let mut runs = self.runs.borrow_mut();
        let Some(run) = runs.get_mut(rule) else { return };
        for &(bytes, lag) in &shipped.applied {
            run.shipped_objects += 1;
            run.shipped_bytes += bytes;
            run.lags.push_back(lag);
            if run.lags.len() > LAG_WINDOW {
                run.lags.pop_front();
            }
        }
        run.skipped += shipped.skipped;
        match &shipped.error {
            Some(e) => run.failed(e.clone()),
            None => run.succeeded(),
        }
    }
}

/// What a group's shipping task returns: did it move anything.
type GroupResult = (u32, Result<bool, String>);

pub(crate) struct Streamer {
    inner: Rc<Inner>,
    /// Groups being shipped, one task each.
    shipping: tokio::task::JoinSet<GroupResult>,
    in_flight: BTreeSet<u32>,
    map: Arc<MapState>,
    node: String,
    targets: BTreeSet<TargetId>,
    alive: HashMap<String, bool>,
    alive_at: Option<Instant>,
}

impl Streamer {
    pub(crate) fn new(
        client: Client,
        map: Arc<MapState>,
        node: String,
        targets: BTreeSet<TargetId>,
        links: HashMap<String, Arc<PeerLink>>,
        cfg: CrrConfig,
        metrics: Arc<NodeMetrics>,
    ) -> Streamer {
        let region = map.map().region.clone();
        let inner = Rc::new(Inner {
            client,
            links,
            cfg,
            metrics,
            region,
            runs: RefCell::new(HashMap::new()),
            pending: RefCell::new(BTreeMap::new()),
        });
        Streamer {
            inner,
            shipping: tokio::task::JoinSet::new(),
            in_flight: BTreeSet::new(),
            map,
            node,
            targets,
            alive: HashMap::new(),
            alive_at: None,
        }
    }

    /// Run forever: a round, then the next as soon as a group's task
    /// finishes (or after `poll_ms` when nothing is in flight).
    pub(crate) async fn run(mut self) {
        loop {
            if let Err(e) = self.round().await {
                tracing::debug!(error = %e, "replication round failed");
            }
            let poll = tokio::time::sleep(Duration::from_millis(self.inner.cfg.poll_ms));
            tokio::select! {
                Some(done) = self.shipping.join_next(), if !self.shipping.is_empty() => self.harvest(done),
                () = poll => {}
            }
            while let Some(done) = self.shipping.try_join_next() {
                self.harvest(done);
            }
        }
    }

    fn harvest(&mut self, done: Result<GroupResult, tokio::task::JoinError>) {
        match done {
            Ok((pg, r)) => {
                self.in_flight.remove(&pg);
                if let Err(e) = r {
                    tracing::debug!(pg, error = %e, "shipping a group's log failed");
                }
            }
            Err(e) => {
                // A panicked task's group is unknown: drop every mark. A
                // group shipped twice at once is harmless (apply is
                // idempotent); the panic is a bug worth the log line.
                tracing::warn!(error = %e, "a group's shipping task failed");
                self.in_flight.clear();
            }
        }
    }

    async fn refresh_alive(&mut self, map: &ClusterMap) {
        if self.alive_at.is_some_and(|t| t.elapsed() < ALIVE_EVERY) {
            return;
        }
        let mut tasks = tokio::task::JoinSet::new();
        for node in map.zones.iter().flat_map(|z| z.nodes.iter()) {
            let Some(&port) = node.ports.first() else { continue };
            if node.name == self.node {
                continue;
            }
            let (client, name) = (self.inner.client.clone(), node.name.clone());
            let addr = SocketAddr::new(node.host, port);
            tasks.spawn(async move { (name, client.node_answers(addr, ALIVE_EVERY).await) });
        }
        self.alive.clear();
        self.alive.insert(self.node.clone(), true);
        while let Some(Ok((name, up))) = tasks.join_next().await {
            self.alive.insert(name, up);
        }
        self.alive_at = Some(Instant::now());
    }

    /// Start shipping the groups with log entries that have no task yet
    /// (at most `PGS_AT_ONCE` at once), and take a back-fill step. True if
    /// it started something.
    async fn round(&mut self) -> Result<bool, String> {
        let map = self.map.map();
        let client = self.inner.client.clone();
        if client.view().map.epoch != map.epoch {
            // Rules and members come from the node's map; requests carry
            // the client's: keep them the same.
            client.refresh_map().await.map_err(|e| format!("refreshing the map: {e}"))?;
        }
        let placement = self.map.placement()?;
        self.refresh_alive(&map).await;
        let rules = Rc::new(map.crr.clone());
        {
            let mut runs = self.inner.runs.borrow_mut();
            runs.retain(|id, _| rules.iter().any(|r| &r.id == id));
            for r in rules.iter() {
                runs.entry(r.id.clone()).or_insert_with(|| RuleRun::new(self.inner.cfg.in_flight));
            }
        }
        let up: BTreeSet<TargetId> = node_of(&map)
            .into_iter()
            .filter(|(_, n)| self.alive.get(n).copied().unwrap_or(false))
            .map(|(t, _)| t)
            .collect();
        let shippers: BTreeMap<u32, TargetId> = (0..placement.groups())
            .filter_map(|pg| placement.targets(pg).iter().find(|t| up.contains(t)).map(|t| (pg, *t)))
            .filter(|(_, t)| self.targets.contains(t))
            .collect();
        let started_ms = now_ms();
        let mut jobs: Vec<(TargetId, u32, Vec<TargetId>)> = Vec::new();
        for &t in &self.targets {
            match client.change_summary(t).await {
                Ok(groups) => {
                    for g in groups.into_iter().filter(|g| shippers.get(&g.pg) == Some(&t)) {
                        let members = placement.targets(g.pg).iter().copied().filter(|m| up.contains(m)).collect();
                        jobs.push((t, g.pg, members));
                    }
                }
                Err(e) => tracing::debug!(target_id = %t, error = %e, "change summary failed"),
            }
        }
        // Groups ship independently: a slow group (a disk flush tail, a
        // large object) never holds up the others.
        let with_log: BTreeSet<u32> = jobs.iter().map(|(_, pg, _)| *pg).collect();
        let in_flight = &self.in_flight;
        self.inner.pending.borrow_mut().retain(|pg, _| with_log.contains(pg) || in_flight.contains(pg));
        let mut busy = false;
        for (t, pg, members) in jobs {
            if self.in_flight.len() >= PGS_AT_ONCE {
                break;
            }
            if !self.in_flight.insert(pg) {
                continue;
            }
            let (inner, rules) = (self.inner.clone(), rules.clone());
            self.shipping.spawn_local(async move { (pg, ship_log(&inner, &rules, t, pg, &members).await) });
            busy = true;
        }
        // Status now, before back-fill steps that may wait on a silent
        // destination.
        self.publish(&rules, &shippers, started_ms);
        for rule in rules.iter().filter(|r| r.backfill) {
            let todo: Vec<(u32, TargetId)> = {
                let runs = self.inner.runs.borrow();
                let done = runs.get(&rule.id).map(|r| r.backfilled.clone()).unwrap_or_default();
                shippers.iter().filter(|(pg, _)| !done.contains(pg)).map(|(&pg, &t)| (pg, t)).collect()
            };
            let mut set = tokio::task::JoinSet::new();
            let mut todo = todo.into_iter();
            loop {
                while set.len() < PGS_AT_ONCE {
                    let Some((pg, t)) = todo.next() else { break };
                    let (inner, rule) = (self.inner.clone(), rule.clone());
                    set.spawn_local(async move { (pg, backfill(&inner, &rule, t, pg).await) });
                }
                match set.join_next().await {
                    None => break,
                    Some(Ok((_, Ok(_)))) => {}
                    Some(Ok((pg, Err(e)))) => tracing::debug!(pg, rule = %rule.id, error = %e, "back-fill step failed"),
                    Some(Err(e)) => tracing::warn!(error = %e, "a back-fill task failed"),
                }
            }
        }
        self.publish(&rules, &shippers, started_ms);
        Ok(busy)
    }

    fn publish(&self, rules: &[CrrRule], shippers: &BTreeMap<u32, TargetId>, started_ms: u64) {
        let mut pending: HashMap<String, Pending> = HashMap::new();
        for per_rule in self.inner.pending.borrow().values() {
            for (rule, p) in per_rule {
                pending.entry(rule.clone()).or_default().add(p);
            }
        }
        let pgs: Vec<u32> = shippers.keys().copied().collect();
        let runs = self.inner.runs.borrow();
        let out = rules
            .iter()
            .filter_map(|rule| {
                let run = runs.get(&rule.id)?;
                let p = pending.get(&rule.id);
                let mut lag_counts: Vec<u32> = Vec::new();
                for &lag in &run.lags {
                    let b = tessera_wire::crr::lag_bucket(lag);
                    if lag_counts.len() <= b {
                        lag_counts.resize(b + 1, 0);
                    }
                    lag_counts[b] += 1;
                }
                Some(RuleProgress {
                    rule: rule.id.clone(),
                    pgs_shipped: pgs.clone(),
                    pgs_backfilled: if rule.backfill {
                        pgs.iter().copied().filter(|pg| run.backfilled.contains(pg)).collect()
                    } else {
                        pgs.clone()
                    },
                    pending_objects: p.map_or(0, |p| p.objects),
                    pending_bytes: p.map_or(0, |p| p.bytes),
                    replicated_up_to_ms: p.and_then(|p| p.oldest_ms).unwrap_or(started_ms),
                    shipped_objects: run.shipped_objects,
                    shipped_bytes: run.shipped_bytes,
                    skipped_objects: run.skipped,
                    last_error: run.last_error.clone(),
                    lag_counts,
                    lag_max_ms: run.lags.iter().copied().max().unwrap_or(0),
                })
            })
            .collect();
        self.inner.metrics.crr.status.update(|s| {
            s.node.clone_from(&self.node);
            s.rules = out;
        });
    }
}

/// What is left of a rule's wanted changes.
fn pending_of(left: &[(u64, Change)]) -> Pending {
    Pending {
        objects: left.len() as u64,
        bytes: left.iter().map(|(_, c)| c.size_bytes).sum(),
        oldest_ms: left.iter().map(|(_, c)| c.made_ms()).min(),
    }
}

/// Ship one group's log page under every rule, then have every live
/// member forget what all rules are done with. Returns whether it did
/// something; what each rule still has pending in the group is kept in
/// `inner.pending` throughout.
async fn ship_log(
    inner: &Inner,
    rules: &[CrrRule],
    t: TargetId,
    pg: u32,
    members: &[TargetId],
) -> Result<bool, String> {
    let client = &inner.client;
    let page = client.change_log(t, pg, 0).await.map_err(|e| e.to_string())?;
    let mut cursors: HashMap<String, RuleCursor> = page.cursors.into_iter().collect();
    let mut busy = false;
    let todos: Vec<(&CrrRule, Vec<(u64, Change)>)> = rules
        .iter()
        .map(|rule| {
            let shipped_lsn = cursors.get(&rule.id).map_or(0, |c| c.shipped_lsn);
            let todo = page
                .entries
                .iter()
                .filter(|(lsn, c)| *lsn > shipped_lsn && rule.wants(&c.bucket, c))
                .cloned()
                .collect();
            (rule, todo)
        })
        .filter(|(_, todo): &(&CrrRule, Vec<_>)| !todo.is_empty())
        .collect();
    let mut pending: Vec<(String, Pending)> =
        todos.iter().map(|(rule, todo)| (rule.id.clone(), pending_of(todo))).collect();
    inner.pending.borrow_mut().insert(pg, pending.clone());
    for (i, (rule, todo)) in todos.iter().enumerate() {
        let rule = *rule;
        let cur = cursors.get(&rule.id).cloned().unwrap_or_default();
        let mut left = &todo[..];
        if let Some((pacer, slots, link)) = inner.ready(rule) {
            let changes: Vec<Change> = todo.iter().map(|(_, c)| c.clone()).collect();
            let b = Batch {
                client,
                link: &link,
                rule,
                source: t,
                pg,
                region: &inner.region,
                slots: &slots,
                backfill: false,
            };
            let shipped = ship(&b, &changes, &pacer).await;
            inner.record(&rule.id, &shipped);
            if let Some(i) = shipped.done_upto {
                let mut cur = cur.clone();
                cur.shipped_lsn = todo[i].0;
                client.set_crr_cursor(t, pg, &rule.id, cur.clone()).await.map_err(|e| e.to_string())?;
                cursors.insert(rule.id.clone(), cur);
                left = &todo[i + 1..];
                busy = true;
            }
        }
        pending[i].1 = pending_of(left);
        inner.pending.borrow_mut().insert(pg, pending.clone());
    }
    let done: Vec<_> = page
        .entries
        .iter()
        .filter(|(lsn, c)| {
            rules.iter().all(|r| !r.wants(&c.bucket, c) || cursors.get(&r.id).is_some_and(|k| k.shipped_lsn >= *lsn))
        })
        .map(|(_, c)| c.id())
        .collect();
    if !done.is_empty() {
        client.forget_changes(t, pg, &done).await.map_err(|e| e.to_string())?;
        let mut tasks = tokio::task::JoinSet::new();
        for &m in members.iter().filter(|&&m| m != t) {
            let (client, done) = (client.clone(), done.clone());
            tasks.spawn(async move { client.forget_changes(m, pg, &done).await });
        }
        while tasks.join_next().await.is_some() {}
        busy = true;
    }
    Ok(busy)
}

/// One back-fill page of one group for one rule.
async fn backfill(inner: &Inner, rule: &CrrRule, t: TargetId, pg: u32) -> Result<bool, String> {
    let Some((pacer, slots, link)) = inner.ready(rule) else { return Ok(false) };
    let client = &inner.client;
    let cursors = client.change_log(t, pg, u64::MAX).await.map_err(|e| e.to_string())?.cursors;
    let mut cur = cursors.into_iter().find(|(r, _)| r == &rule.id).map(|(_, c)| c).unwrap_or_default();
    let mark_done = || {
        if let Some(run) = inner.runs.borrow_mut().get_mut(&rule.id) {
            run.backfilled.insert(pg);
        }
    };
    if cur.backfill_done {
        mark_done();
        return Ok(false);
    }
    let page = client.pg_list_page(t, pg, cur.backfill_after.clone()).await.map_err(|e| e.to_string())?;
    let changes: Vec<Change> = page
        .entries
        .iter()
        .filter(|e| e.at.bucket == rule.bucket && e.at.key.starts_with(&rule.prefix))
        .filter(|e| e.state == VersionState::Committed)
        .map(|e| Change {
            bucket: e.at.bucket.clone(),
            key: e.at.key.clone(),
            version: e.at.version,
            kind: ChangeKind::Put { delete_marker: false },
            size_bytes: e.size_bytes,
            at_ms: e.at.version.millis(),
            origin: None,
        })
        .collect();
    let b = Batch { client, link: &link, rule, source: t, pg, region: &inner.region, slots: &slots, backfill: true };
    let shipped = ship(&b, &changes, &pacer).await;
    inner.record(&rule.id, &shipped);
    if shipped.error.is_some() {
        return Ok(false);
    }
    let past = page.entries.last().is_none_or(|e| e.at.bucket > rule.bucket) || !page.more;
    cur.backfill_done = past;
    if let Some(last) = page.entries.last() {
        cur.backfill_after = Some(last.at.clone());
    }
    client.set_crr_cursor(t, pg, &rule.id, cur).await.map_err(|e| e.to_string())?;
    if past {
        mark_done();
    }
    Ok(true)
}

/// Node name of every target.
fn node_of(map: &ClusterMap) -> HashMap<TargetId, String> {
    map.zones
        .iter()
        .flat_map(|z| z.nodes.iter())
        .flat_map(|n| n.targets.iter().map(move |t| (t.id, n.name.clone())))
        .collect()
}
