//! Deterministic simulation of Tessera's decision logic.
//!
//! One thread, a simulated clock, a simulated network and simulated
//! targets; the decisions are the product's own: placement
//! ([`tessera_wire::Placement`]), the write rule and its degraded form
//! ([`tessera_wire::WriteTracker`]), the read quorum
//! ([`tessera_wire::Geometry::read_quorum`]), repair planning
//! ([`tessera_wire::repair::plan_key`]) and version order (HLC
//! [`tessera_wire::VersionId`]). Faults come from one seeded generator:
//! message loss, delay and reordering, node crashes (messages in flight to
//! a crashed node are torn away), whole-zone outages and partitions, and
//! corrupt shards, within the budget the design claims to survive (one
//! zone impaired at a time, plus a corrupt shard). Invariant checkers:
//!
//! - every successful read returns a version whose writer reached its
//!   commit phase, never older than the newest version acknowledged before
//!   the read began (no acknowledged write is lost or goes back);
//! - a failed operation fails with a clear reason (counted, never silent);
//! - after the faults stop, repair converges: every key's newest version
//!   is at least its last acknowledged one and is committed, intact, on
//!   every member of its group.
//!
//! `run(&Config { seed, .. })` replays a seed exactly.

mod client;
mod net;
mod repair;
mod store;

use std::collections::BTreeMap;

use tessera_wire::{ClusterMap, EcProfile, Geometry, Placement, VersionId};

pub use net::Rng;

/// A deliberate bug, to show the checkers catch what they claim to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bug {
    /// Writers acknowledge when they decide to commit, before any commit
    /// is durable (a reader may then miss an acknowledged write).
    AckBeforeCommit,
    /// Readers resolve the newest version from a single answer.
    ReadQuorumOne,
    /// Repair plans but never writes a missing shard.
    NoRebuild,
}

/// One simulation run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Everything random derives from it.
    pub seed: u64,
    /// Simulated milliseconds of load and faults.
    pub load_ms: u64,
    /// Concurrent writers.
    pub writers: usize,
    /// Concurrent readers.
    pub readers: usize,
    /// Distinct keys (writers overwrite them).
    pub keys: u32,
    /// Inject faults.
    pub faults: bool,
    /// Highest message loss rate the faults set.
    pub loss_max: f64,
    /// A deliberate bug, or none.
    pub bug: Option<Bug>,
    /// Keep a trace of faults and outcomes.
    pub trace: bool,
}

impl Config {
    /// Defaults for `seed`.
    pub fn new(seed: u64) -> Config {
        Config {
            seed,
            load_ms: 20_000,
            writers: 3,
            readers: 4,
            keys: 12,
            faults: true,
            loss_max: 0.1,
            bug: None,
            trace: false,
        }
    }
}

/// What a run did and found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Writes acknowledged (of them, degraded).
    pub acked: u64,
    /// Acknowledged under the degraded rule.
    pub degraded: u64,
    /// Writes that failed with a clear error.
    pub writes_failed: u64,
    /// Reads that returned a version.
    pub reads_ok: u64,
    /// Reads that failed with a clear error.
    pub reads_failed: u64,
    /// Faults injected.
    pub faults: u64,
    /// Repair fixes applied.
    pub repairs: u64,
    /// Simulated ms from the end of the faults to full redundancy.
    pub converge_ms: Option<u64>,
    /// Events processed.
    pub events: u64,
    /// Invariant violations (empty when the run is correct).
    pub violations: Vec<String>,
    /// Faults and outcomes, when asked for.
    pub trace: Vec<String>,
}

/// The simulated region: 3 zones x 2 nodes x 2 targets, 6+6, as `tessera
/// dev` builds it.
pub(crate) struct Region {
    pub(crate) placement: Placement,
    /// Zone of each target (index = target id - 1).
    pub(crate) zone: Vec<usize>,
    /// Node of each target.
    pub(crate) node: Vec<usize>,
    pub(crate) k: usize,
}

impl Region {
    fn new() -> Region {
        let mut map = ClusterMap::uniform("sim", 3, 2, 2, 1, 1 << 30, 7_000, |z, n| {
            std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, z as u8 + 1, n as u8 + 1))
        });
        map.placement_groups = 16;
        let p = EcProfile { data: 6, parity: 6 };
        map.classes = tessera_wire::ClassProfiles { standard: p, infrequent_access: p };
        let placement = Placement::build(&map).unwrap_or_else(|e| panic!("the simulated map places: {e}"));
        let locs = map.targets();
        let nodes_per_zone = map.zones.iter().map(|z| z.nodes.len()).max().unwrap_or(1);
        let mut zone = Vec::new();
        let mut node = Vec::new();
        for loc in locs.values() {
            zone.push(loc.zone);
            node.push(loc.zone * nodes_per_zone + loc.node);
        }
        Region { placement, zone, node, k: 6 }
    }

    /// Member target indexes of a key's group.
    pub(crate) fn members(&self, key: u32) -> Vec<usize> {
        let pg = self.pg(key);
        self.placement.targets(pg).iter().map(|t| t.0 as usize - 1).collect()
    }

    pub(crate) fn pg(&self, key: u32) -> u32 {
        self.placement.pg_of("sim", &key_name(key))
    }

    pub(crate) fn geometry(&self, members: &[usize]) -> Geometry {
        Geometry::new(members.iter().map(|&t| self.zone[t]).collect(), self.k)
    }

    pub(crate) fn nodes(&self) -> usize {
        self.node.iter().max().map_or(0, |n| n + 1)
    }
}

pub(crate) fn key_name(key: u32) -> String {
    format!("k{key}")
}

/// What the checkers know about writes.
#[derive(Default)]
pub(crate) struct History {
    /// key → newest acknowledged version.
    pub(crate) acked: BTreeMap<u32, VersionId>,
    /// Versions whose writer sent a commit (readable from then on).
    pub(crate) committing: std::collections::BTreeSet<(u32, VersionId)>,
}

/// Run one seed.
pub fn run(cfg: &Config) -> Outcome {
    net::World::new(cfg, Region::new()).run()
}
