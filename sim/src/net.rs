//! The world: simulated clock, event queue, network (delay, reordering,
//! loss, partitions, crashed nodes), the fault schedule and the end-of-run
//! checks.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use tessera_wire::repair::{Fix, VersionState};
use tessera_wire::VersionId;

use crate::client::{Op, ReadOp, WriteOp};
use crate::repair::RepairOp;
use crate::store::Store;
use crate::{Config, History, Outcome, Region};

/// xorshift64*: the only source of randomness.
pub struct Rng(pub u64);

impl Rng {
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A message between the clients (ops) and targets.
#[derive(Clone, Debug)]
pub(crate) enum Msg {
    Prepare { key: u32, v: VersionId },
    Commit { key: u32, v: VersionId },
    Purge { key: u32, v: VersionId },
    Head { key: u32 },
    Get { key: u32, v: VersionId },
    List { pg: u32 },
    Fix { key: u32, v: VersionId, fix: Fix },
    Prepared { ok: bool },
    Committed { ok: bool },
    HeadAns { newest: Option<VersionId>, purged: Vec<VersionId> },
    GetAns { got: Option<bool> },
    ListAns { entries: Vec<(u32, VersionId, VersionState)> },
}

#[derive(Clone, Debug)]
pub(crate) enum Event {
    /// To a target (`shard` is the sender's position for the reply).
    ToTarget { target: usize, op: u64, shard: usize, msg: Msg },
    /// A target's reply to an op.
    ToOp { op: u64, shard: usize, msg: Msg },
    /// An op's timer.
    Tick { op: u64 },
    /// A client actor starts its next op.
    Start { actor: usize },
    /// The next fault.
    Fault,
    /// End an impairment.
    Heal { node: Option<usize>, partition: Option<usize> },
    /// Anti-entropy round.
    RepairRound,
    /// Convergence check after the load.
    Check,
}

pub(crate) struct World<'a> {
    pub(crate) cfg: &'a Config,
    pub(crate) region: Region,
    pub(crate) now: u64,
    pub(crate) rng: Rng,
    queue: BinaryHeap<Reverse<(u64, u64)>>,
    events: BTreeMap<u64, Event>,
    seq: u64,
    pub(crate) targets: Vec<Store>,
    node_down: Vec<u32>,
    partitioned: Vec<u32>,
    loss: f64,
    /// The zone currently impaired (the fault budget: one at a time).
    impaired: Option<(usize, u32)>,
    pub(crate) ops: BTreeMap<u64, Op>,
    pub(crate) next_op: u64,
    pub(crate) history: History,
    pub(crate) out: Outcome,
    pub(crate) hlcs: Vec<tessera_wire::Hlc>,
    load_end: u64,
    done: bool,
}

impl<'a> World<'a> {
    pub(crate) fn new(cfg: &'a Config, region: Region) -> World<'a> {
        let n = region.zone.len();
        let nodes = region.nodes();
        let actors = cfg.writers + cfg.readers;
        World {
            cfg,
            region,
            now: 0,
            rng: Rng(cfg.seed | 1),
            queue: BinaryHeap::new(),
            events: BTreeMap::new(),
            seq: 0,
            targets: (0..n).map(|_| Store::default()).collect(),
            node_down: vec![0; nodes],
            partitioned: vec![0; 3],
            loss: 0.0,
            impaired: None,
            ops: BTreeMap::new(),
            next_op: 1,
            history: History::default(),
            out: Outcome::default(),
            hlcs: (0..actors).map(|a| tessera_wire::Hlc::new(a as u64 + 1)).collect(),
            load_end: cfg.load_ms,
            done: false,
        }
    }

    pub(crate) fn trace(&mut self, what: impl FnOnce() -> String) {
        if self.cfg.trace {
            let line = format!("{:>6} ms  {}", self.now, what());
            self.out.trace.push(line);
        }
    }

    pub(crate) fn violation(&mut self, what: String) {
        self.trace(|| format!("VIOLATION {what}"));
        self.out.violations.push(format!("at {} ms: {what}", self.now));
    }

    pub(crate) fn at(&mut self, delay: u64, ev: Event) {
        self.seq += 1;
        self.queue.push(Reverse((self.now + delay, self.seq)));
        self.events.insert(self.seq, ev);
    }

    pub(crate) fn load_over(&self) -> bool {
        self.now >= self.load_end
    }

    /// Is `target` up and connected (also: can a repairer read it now)?
    pub(crate) fn reachable(&self, target: usize) -> bool {
        self.node_down[self.region.node[target]] == 0 && self.partitioned[self.region.zone[target]] == 0
    }

    /// Send a request to a target; it may be lost, delayed, reordered.
    pub(crate) fn send(&mut self, target: usize, op: u64, shard: usize, msg: Msg) {
        if self.rng.unit() < self.loss {
            return;
        }
        let d = self.rng.between(1, 60);
        self.at(d, Event::ToTarget { target, op, shard, msg });
    }

    fn reply(&mut self, from: usize, op: u64, shard: usize, msg: Msg) {
        if self.partitioned[self.region.zone[from]] > 0 || self.rng.unit() < self.loss {
            return;
        }
        let d = self.rng.between(1, 60);
        self.at(d, Event::ToOp { op, shard, msg });
    }

    fn at_target(&mut self, target: usize, op: u64, shard: usize, msg: Msg) {
        if !self.reachable(target) {
            // Down or cut off: a request arriving now is torn away.
            return;
        }
        let store = &mut self.targets[target];
        let answer = match msg {
            Msg::Prepare { key, v } => Some(Msg::Prepared { ok: store.prepare(key, v) }),
            Msg::Commit { key, v } => Some(Msg::Committed { ok: store.commit(key, v) }),
            Msg::Purge { key, v } => {
                store.purge(key, v);
                None
            }
            Msg::Head { key } => {
                let (newest, purged) = store.head(key);
                Some(Msg::HeadAns { newest, purged })
            }
            Msg::Get { key, v } => Some(Msg::GetAns { got: store.read(key, v) }),
            Msg::List { pg } => {
                let region = &self.region;
                Some(Msg::ListAns { entries: store.list(|k| region.pg(k) == pg) })
            }
            Msg::Fix { key, v, fix } => {
                match fix {
                    Fix::Purge => store.purge(key, v),
                    Fix::Commit => {
                        store.commit(key, v);
                    }
                    Fix::Write | Fix::Rewrite => store.install(key, v),
                }
                self.out.repairs += 1;
                None
            }
            _ => None,
        };
        if let Some(a) = answer {
            self.reply(target, op, shard, a);
        }
    }

    fn fault(&mut self) {
        if self.load_over() {
            return;
        }
        self.out.faults += 1;
        let r = self.rng.below(100);
        let nodes = self.region.nodes();
        let zone_of_node = |w: &World, n: usize| w.region.node.iter().position(|&x| x == n).map(|t| w.region.zone[t]);
        match r {
            0..=24 => {
                let n = self.rng.below(nodes as u64) as usize;
                let z = zone_of_node(self, n).unwrap_or(0);
                if self.impaired.is_none_or(|(iz, _)| iz == z) {
                    self.impair(z);
                    self.node_down[n] += 1;
                    let d = self.rng.between(200, 2_000);
                    self.trace(|| format!("fault: node {n} (zone {z}) crashes for {d} ms"));
                    self.at(d, Event::Heal { node: Some(n), partition: None });
                }
            }
            25..=44 if self.impaired.is_none() => {
                let z = self.rng.below(3) as usize;
                let d = self.rng.between(500, 3_000);
                self.trace(|| format!("fault: zone {z} loses power for {d} ms"));
                for n in 0..nodes {
                    if zone_of_node(self, n) == Some(z) {
                        self.impair(z);
                        self.node_down[n] += 1;
                        self.at(d, Event::Heal { node: Some(n), partition: None });
                    }
                }
            }
            45..=64 if self.impaired.is_none() => {
                let z = self.rng.below(3) as usize;
                self.impair(z);
                self.partitioned[z] += 1;
                let d = self.rng.between(500, 3_000);
                self.trace(|| format!("fault: zone {z} partitioned for {d} ms"));
                self.at(d, Event::Heal { node: None, partition: Some(z) });
            }
            65..=84 => self.corrupt_one(),
            _ => {
                self.loss = self.rng.unit() * self.cfg.loss_max;
                let loss = self.loss;
                self.trace(|| format!("fault: message loss now {:.1}%", loss * 100.0));
            }
        }
        let next = self.rng.between(300, 1_500);
        self.at(next, Event::Fault);
    }

    /// One extra impairment of zone `z` (it ends with a Heal).
    fn impair(&mut self, z: usize) {
        self.impaired = Some(match self.impaired {
            Some((iz, c)) if iz == z => (z, c + 1),
            _ => (z, 1),
        });
    }

    fn heal(&mut self, node: Option<usize>, partition: Option<usize>) {
        let z = match (node, partition) {
            (Some(n), _) => {
                self.node_down[n] = self.node_down[n].saturating_sub(1);
                self.region.node.iter().position(|&x| x == n).map(|t| self.region.zone[t])
            }
            (None, Some(z)) => {
                self.partitioned[z] = self.partitioned[z].saturating_sub(1);
                Some(z)
            }
            _ => None,
        };
        if let (Some(z), Some((iz, c))) = (z, self.impaired) {
            if iz == z {
                self.impaired = if c > 1 { Some((z, c - 1)) } else { None };
            }
        }
        self.trace(|| format!("heal: node {node:?} partition {partition:?}"));
    }

    /// Corrupt one committed shard, at most one per version in its group.
    fn corrupt_one(&mut self) {
        let t = self.rng.below(self.targets.len() as u64) as usize;
        let held: Vec<(u32, VersionId)> =
            self.targets[t].versions.iter().filter(|(_, h)| h.committed && !h.corrupt).map(|(k, _)| *k).collect();
        if held.is_empty() {
            return;
        }
        let (key, v) = held[self.rng.below(held.len() as u64) as usize];
        let members = self.region.members(key);
        if members.iter().any(|&m| self.targets[m].versions.get(&(key, v)).is_some_and(|h| h.corrupt)) {
            return;
        }
        if let Some(h) = self.targets[t].versions.get_mut(&(key, v)) {
            h.corrupt = true;
        }
        self.trace(|| format!("fault: shard of k{key} {v} on target {t} corrupt"));
    }

    /// After the load: is every key back at full redundancy?
    fn converged(&self) -> Result<(), String> {
        let keys: std::collections::BTreeSet<u32> =
            self.targets.iter().flat_map(|s| s.versions.keys().map(|(k, _)| *k)).collect();
        for key in keys {
            let members = self.region.members(key);
            let newest = members
                .iter()
                .filter_map(|&m| self.targets[m].head(key).0)
                .filter(|v| !members.iter().any(|&m| self.targets[m].purged.contains(&(key, *v))))
                .max();
            let Some(v) = newest else { continue };
            for &m in &members {
                match self.targets[m].versions.get(&(key, v)) {
                    Some(h) if h.committed && !h.corrupt => {}
                    other => return Err(format!("k{key} {v}: target {m} holds {other:?}")),
                }
            }
        }
        Ok(())
    }

    fn final_check(&mut self) {
        let acked = self.history.acked.clone();
        for (key, v) in acked {
            let members = self.region.members(key);
            let newest = members.iter().filter_map(|&m| self.targets[m].head(key).0).max();
            if newest.is_none_or(|n| n < v) {
                self.violation(format!("acknowledged k{key} {v} lost: newest committed is {newest:?}"));
            }
        }
    }

    pub(crate) fn run(mut self) -> Outcome {
        for a in 0..self.cfg.writers + self.cfg.readers {
            let d = self.rng.between(0, 50);
            self.at(d, Event::Start { actor: a });
        }
        if self.cfg.faults {
            self.at(1_000, Event::Fault);
        }
        self.at(250, Event::RepairRound);
        let load_end = self.load_end;
        self.at(load_end, Event::Check);
        let limit = load_end + 60_000;
        while let Some(Reverse((t, seq))) = self.queue.pop() {
            let Some(ev) = self.events.remove(&seq) else { continue };
            self.now = t;
            self.out.events += 1;
            if self.now > limit {
                let why = self.converged().err().unwrap_or_default();
                self.violation(format!("repair did not converge within 60 s of the faults ending: {why}"));
                break;
            }
            match ev {
                Event::ToTarget { target, op, shard, msg } => self.at_target(target, op, shard, msg),
                Event::ToOp { op, shard, msg } => crate::client::on_reply(&mut self, op, shard, msg),
                Event::Tick { op } => crate::client::on_tick(&mut self, op),
                Event::Start { actor } => {
                    if !self.load_over() {
                        self.start(actor);
                    }
                }
                Event::Fault => self.fault(),
                Event::Heal { node, partition } => self.heal(node, partition),
                Event::RepairRound => {
                    if !self.done {
                        crate::repair::start_round(&mut self);
                        self.at(250, Event::RepairRound);
                    }
                }
                Event::Check => {
                    if self.now == load_end {
                        // Faults end: everything comes back.
                        self.node_down.iter_mut().for_each(|n| *n = 0);
                        self.partitioned.iter_mut().for_each(|p| *p = 0);
                        self.loss = 0.0;
                        self.impaired = None;
                        self.trace(|| "faults end; all healed".into());
                    }
                    if self.ops.values().all(|o| matches!(o, Op::Repair(_))) && self.converged().is_ok() {
                        self.out.converge_ms = Some(self.now - load_end);
                        self.done = true;
                        break;
                    }
                    self.at(250, Event::Check);
                }
            }
        }
        self.final_check();
        self.out
    }

    fn start(&mut self, actor: usize) {
        let op = self.next_op;
        self.next_op += 1;
        let key = self.rng.below(u64::from(self.cfg.keys)) as u32;
        if actor < self.cfg.writers {
            let w = WriteOp::start(self, op, actor, key);
            self.ops.insert(op, Op::Write(w));
        } else {
            let r = ReadOp::start(self, op, actor, key);
            self.ops.insert(op, Op::Read(r));
        }
        self.at(10, Event::Tick { op });
    }

    /// An op finished: its actor thinks a little, then starts the next.
    pub(crate) fn finish(&mut self, op: u64) {
        if let Some(o) = self.ops.remove(&op) {
            if let Some(actor) = o.actor() {
                let d = self.rng.between(5, 30);
                self.at(d, Event::Start { actor });
            }
        }
    }

    pub(crate) fn add_repair(&mut self, op: u64, r: RepairOp) {
        self.ops.insert(op, Op::Repair(r));
        self.at(100, Event::Tick { op });
    }
}
