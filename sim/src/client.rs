//! Simulated clients: the two-phase write driven by the product's
//! `WriteTracker` (with the writer's zone-wait and zone-lag rules), and the
//! read that resolves the newest version from a read quorum and then needs
//! k intact shards. The checkers run as each operation completes.

use tessera_wire::{ShardState, VersionId, WriteStep, WriteTracker};

use crate::net::{Event, Msg, World};
use crate::repair::RepairOp;
use crate::Bug;

/// Per-shard request deadline, ms.
const SHARD_TIMEOUT_MS: u64 = 300;
/// Whole-write deadline, ms.
const WRITE_DEADLINE_MS: u64 = 3_000;
/// Zone silence before it is declared down, ms (zone_wait_ms).
const ZONE_WAIT_MS: u64 = 100;
/// One zone behind the others this long is declared down, ms (zone_lag_ms).
const ZONE_LAG_MS: u64 = 200;
/// Reads: answers awaited after the quorum, ms. The product waits
/// `hedge_ms` more; the simulation does not, so the read quorum alone must
/// guarantee that acknowledged writes are seen (worst-case timing).
const HEDGE_MS: u64 = 0;
/// Read deadline per phase, ms.
const READ_DEADLINE_MS: u64 = 500;

pub(crate) enum Op {
    Write(WriteOp),
    Read(ReadOp),
    Repair(RepairOp),
}

impl Op {
    pub(crate) fn actor(&self) -> Option<usize> {
        match self {
            Op::Write(w) => Some(w.actor),
            Op::Read(r) => Some(r.actor),
            Op::Repair(_) => None,
        }
    }
}

pub(crate) struct WriteOp {
    actor: usize,
    key: u32,
    v: VersionId,
    members: Vec<usize>,
    tracker: WriteTracker,
    deadline: u64,
    shard_deadline: Vec<u64>,
    last_progress: u64,
    lagging: Option<(usize, u64)>,
    committing: bool,
}

impl WriteOp {
    pub(crate) fn start(w: &mut World<'_>, op: u64, actor: usize, key: u32) -> WriteOp {
        let v = w.hlcs[actor].tick(w.now + 1_795_000_000_000);
        let members = w.region.members(key);
        let tracker = WriteTracker::new(w.region.geometry(&members));
        for (i, &t) in members.iter().enumerate() {
            w.send(t, op, i, Msg::Prepare { key, v });
        }
        let n = members.len();
        WriteOp {
            actor,
            key,
            v,
            members,
            tracker,
            deadline: w.now + WRITE_DEADLINE_MS,
            shard_deadline: vec![w.now + SHARD_TIMEOUT_MS; n],
            last_progress: w.now,
            lagging: None,
            committing: false,
        }
    }
}

pub(crate) struct ReadOp {
    actor: usize,
    key: u32,
    members: Vec<usize>,
    /// Newest version acknowledged when the read began.
    floor: Option<VersionId>,
    deadline: u64,
    answers: Vec<Option<(Option<VersionId>, Vec<VersionId>)>>,
    quorum_at: Option<u64>,
    fetching: Option<VersionId>,
    got: Vec<Option<Option<bool>>>,
    attempts: u32,
}

impl ReadOp {
    pub(crate) fn start(w: &mut World<'_>, op: u64, actor: usize, key: u32) -> ReadOp {
        let members = w.region.members(key);
        let n = members.len();
        let mut r = ReadOp {
            actor,
            key,
            members,
            floor: w.history.acked.get(&key).copied(),
            deadline: 0,
            answers: vec![None; n],
            quorum_at: None,
            fetching: None,
            got: vec![None; n],
            attempts: 0,
        };
        r.head(w, op);
        r
    }

    fn head(&mut self, w: &mut World<'_>, op: u64) {
        self.attempts += 1;
        self.answers = vec![None; self.members.len()];
        self.quorum_at = None;
        self.fetching = None;
        self.deadline = w.now + READ_DEADLINE_MS;
        for (i, &t) in self.members.iter().enumerate() {
            w.send(t, op, i, Msg::Head { key: self.key });
        }
    }
}

pub(crate) fn on_reply(w: &mut World<'_>, op: u64, shard: usize, msg: Msg) {
    match w.ops.get_mut(&op) {
        Some(Op::Write(wr)) => {
            match msg {
                Msg::Prepared { ok } => {
                    wr.tracker.set(shard, if ok { ShardState::Prepared } else { ShardState::Failed });
                    wr.last_progress = w.now;
                    if ok && wr.committing {
                        let (t, key, v) = (wr.members[shard], wr.key, wr.v);
                        wr.shard_deadline[shard] = w.now + SHARD_TIMEOUT_MS;
                        w.send(t, op, shard, Msg::Commit { key, v });
                    }
                }
                Msg::Committed { ok } => {
                    wr.tracker.set(shard, if ok { ShardState::Committed } else { ShardState::Failed });
                    wr.last_progress = w.now;
                }
                _ => {}
            }
            step_write(w, op);
        }
        Some(Op::Read(r)) => {
            match msg {
                Msg::HeadAns { newest, purged } if r.fetching.is_none() => r.answers[shard] = Some((newest, purged)),
                Msg::GetAns { got } if r.fetching.is_some() => r.got[shard] = Some(got),
                _ => {}
            }
            step_read(w, op);
        }
        Some(Op::Repair(_)) => crate::repair::on_reply(w, op, shard, msg),
        None => {}
    }
}

pub(crate) fn on_tick(w: &mut World<'_>, op: u64) {
    let now = w.now;
    match w.ops.get_mut(&op) {
        Some(Op::Write(wr)) => {
            for i in 0..wr.members.len() {
                let st = wr.tracker.states()[i];
                let waiting = st == ShardState::Pending || (wr.committing && st == ShardState::Prepared);
                if waiting && now >= wr.shard_deadline[i] {
                    wr.tracker.set(i, ShardState::Failed);
                    wr.last_progress = now;
                }
            }
            step_write(w, op);
        }
        Some(Op::Read(_)) => step_read(w, op),
        Some(Op::Repair(_)) => {
            crate::repair::on_tick(w, op);
            return;
        }
        None => return,
    }
    if w.ops.contains_key(&op) {
        w.at(10, Event::Tick { op });
    }
}

fn step_write(w: &mut World<'_>, op: u64) {
    let now = w.now;
    let bug = w.cfg.bug;
    let Some(Op::Write(wr)) = w.ops.get_mut(&op) else { return };
    // The writer's own rules: a silent or half-failed zone after
    // zone_wait, a zone lagging the others after zone_lag.
    if now.saturating_sub(wr.last_progress) >= ZONE_WAIT_MS {
        let any = wr.tracker.states().iter().any(|s| matches!(s, ShardState::Prepared | ShardState::Committed));
        let zones: Vec<usize> = wr.tracker.geometry().zones().to_vec();
        for z in zones {
            if any && wr.tracker.zone_stalled(z) {
                wr.tracker.zone_down(z);
            }
        }
    }
    match (wr.tracker.lagging_zone(), wr.lagging) {
        (Some(z), Some((was, _))) if z == was => {}
        (now_lagging, _) => wr.lagging = now_lagging.map(|z| (z, now)),
    }
    if let Some((z, since)) = wr.lagging {
        if now - since >= ZONE_LAG_MS {
            wr.tracker.zone_down(z);
        }
    }
    let mut step = wr.tracker.step();
    if bug == Some(Bug::AckBeforeCommit) && wr.committing {
        step = WriteStep::Ack { degraded: false };
    }
    let (key, v) = (wr.key, wr.v);
    match step {
        WriteStep::Wait if now < wr.deadline => {}
        WriteStep::Commit { .. } if !wr.committing => {
            wr.committing = true;
            let prepared: Vec<(usize, usize)> = (0..wr.members.len())
                .filter(|&i| wr.tracker.states()[i] == ShardState::Prepared)
                .map(|i| (i, wr.members[i]))
                .collect();
            for &(i, _) in &prepared {
                wr.shard_deadline[i] = now + SHARD_TIMEOUT_MS;
            }
            w.history.committing.insert((key, v));
            for (i, t) in prepared {
                w.send(t, op, i, Msg::Commit { key, v });
            }
            if bug == Some(Bug::AckBeforeCommit) {
                step_write(w, op);
            }
        }
        WriteStep::Commit { .. } => {}
        WriteStep::Ack { degraded } => {
            let e = w.history.acked.entry(key).or_insert(v);
            *e = (*e).max(v);
            w.out.acked += 1;
            w.out.degraded += u64::from(degraded);
            w.trace(|| format!("ack k{key} {v}{}", if degraded { " degraded" } else { "" }));
            w.finish(op);
        }
        WriteStep::Wait | WriteStep::Fail => {
            let (committing, members) = (wr.committing, wr.members.clone());
            w.out.writes_failed += 1;
            w.trace(|| format!("write k{key} {v} failed clearly (rule unreachable or deadline)"));
            if !committing {
                // Abort: never committed anywhere, so no reader saw it.
                for (i, t) in members.into_iter().enumerate() {
                    w.send(t, op, i, Msg::Purge { key, v });
                }
            }
            w.finish(op);
        }
    }
}

fn step_read(w: &mut World<'_>, op: u64) {
    let now = w.now;
    let k = w.region.k;
    let bug = w.cfg.bug;
    let Some(Op::Read(r)) = w.ops.get_mut(&op) else { return };
    let n = r.members.len();
    let quorum = if bug == Some(Bug::ReadQuorumOne) { 1 } else { w.region.geometry(&r.members).read_quorum() };
    if let Some(v) = r.fetching {
        let intact = r.got.iter().filter(|g| **g == Some(Some(true))).count();
        let gone = r.got.iter().filter(|g| **g == Some(None)).count();
        let answered = r.got.iter().filter(|g| g.is_some()).count();
        if intact >= k {
            let (key, floor) = (r.key, r.floor);
            w.out.reads_ok += 1;
            w.trace(|| format!("read k{key} -> {v} (acknowledged at start: {floor:?})"));
            if !w.history.committing.contains(&(key, v)) {
                w.violation(format!("read of k{key} returned {v}, which no writer committed"));
            }
            if floor.is_some_and(|f| v < f) {
                w.violation(format!("read of k{key} returned {v}, older than the acknowledged {floor:?}"));
            }
            w.finish(op);
        } else if gone > n - k && r.attempts < 4 {
            // Overwritten since it was chosen: choose again.
            let mut r = match w.ops.remove(&op) {
                Some(Op::Read(r)) => r,
                _ => return,
            };
            r.head(w, op);
            w.ops.insert(op, Op::Read(r));
        } else if answered == n || now >= r.deadline {
            let key = r.key;
            w.out.reads_failed += 1;
            w.trace(|| format!("read of k{key} failed clearly: {intact} intact of {answered} answers"));
            w.finish(op);
        }
        return;
    }
    let answered = r.answers.iter().filter(|a| a.is_some()).count();
    if answered >= quorum && r.quorum_at.is_none() {
        r.quorum_at = Some(now);
    }
    let hedge_over = r.quorum_at.is_some_and(|t| now >= t + HEDGE_MS);
    if answered < n && !hedge_over {
        if now >= r.deadline {
            let key = r.key;
            w.out.reads_failed += 1;
            w.trace(|| format!("read of k{key} failed clearly: {answered} answers, quorum {quorum}"));
            w.finish(op);
        }
        return;
    }
    let purged: Vec<VersionId> = r.answers.iter().flatten().flat_map(|(_, p)| p.iter().copied()).collect();
    let newest = r.answers.iter().flatten().filter_map(|(v, _)| *v).filter(|v| !purged.contains(v)).max();
    match newest {
        None => {
            let (key, floor) = (r.key, r.floor);
            w.out.reads_ok += 1;
            if let Some(f) = floor {
                w.violation(format!("read of k{key} found nothing, but {f} was acknowledged"));
            }
            w.finish(op);
        }
        Some(v) => {
            r.fetching = Some(v);
            r.got = vec![None; n];
            r.deadline = now + READ_DEADLINE_MS;
            let (key, members) = (r.key, r.members.clone());
            for (i, t) in members.into_iter().enumerate() {
                w.send(t, op, i, Msg::Get { key, v });
            }
        }
    }
}
