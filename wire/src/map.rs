//! The cluster map: the one description of a region that clients and nodes
//! share. It is written by an operator (TOML), versioned by `epoch`, and
//! shipped between nodes and clients as postcard. Placement is computed
//! from it on both sides, never shipped, so both compute the same answer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::{StorageClass, TargetId};

/// Erasure-coding profile: `data` + `parity` shards per stripe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcProfile {
    /// k: data shards (the code is systematic: these hold the object bytes).
    pub data: u8,
    /// m: parity shards.
    pub parity: u8,
}

impl EcProfile {
    /// k + m.
    pub fn total(self) -> usize {
        usize::from(self.data) + usize::from(self.parity)
    }
}

/// The profile of each storage class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassProfiles {
    /// Standard (default 6+6: four shards per zone).
    pub standard: EcProfile,
    /// Infrequent access (default 8+4).
    pub infrequent_access: EcProfile,
}

impl ClassProfiles {
    /// The profile of one class.
    pub fn of(&self, class: StorageClass) -> EcProfile {
        match class {
            StorageClass::Standard => self.standard,
            StorageClass::InfrequentAccess => self.infrequent_access,
        }
    }
}

impl Default for ClassProfiles {
    fn default() -> Self {
        ClassProfiles {
            standard: EcProfile { data: 6, parity: 6 },
            infrequent_access: EcProfile { data: 8, parity: 4 },
        }
    }
}

/// One storage target of a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapTarget {
    /// Cluster-wide unique id.
    pub id: TargetId,
    /// The core (index into the node's `ports`) that owns it.
    pub core: u16,
    /// Placement weight in bytes; 0 keeps the target out of placement
    /// (a node joining or draining).
    pub capacity_bytes: u64,
}

/// One node: a process on one host, one UDP port per core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapNode {
    /// Unique name; also the placement hash input, so renaming moves data.
    pub name: String,
    /// IP address the node's cores listen on.
    pub host: IpAddr,
    /// UDP port of each core's QUIC endpoint, by core index.
    pub ports: Vec<u16>,
    /// Its targets.
    pub targets: Vec<MapTarget>,
}

/// A failure domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MapZone {
    /// Unique name.
    pub name: String,
    /// Nodes in it.
    pub nodes: Vec<MapNode>,
}

/// The cluster map of one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterMap {
    /// Version; a node refuses requests made with an older one.
    pub epoch: u64,
    /// Region name.
    pub region: String,
    /// Number of placement groups (fixed for the life of a region: an
    /// object's group is `hash(bucket, key) % placement_groups`).
    pub placement_groups: u32,
    /// Shard bytes of a full stripe (a stripe holds k × this many bytes).
    pub shard_bytes: u32,
    /// Objects up to this size are one stripe whose shards travel inside
    /// the metadata record: one request per target, one record per target.
    pub inline_bytes_max: u32,
    /// Profile of each storage class.
    pub classes: ClassProfiles,
    /// Zones, nodes and targets.
    pub zones: Vec<MapZone>,
    /// Cross-region replication rules (`tessera crr add`).
    #[serde(default)]
    pub crr: Vec<crate::crr::CrrRule>,
    /// Replication this region accepts from peer regions (`tessera crr
    /// allow`); a peer's change into any other bucket is refused.
    #[serde(default)]
    pub crr_in: Vec<crate::crr::CrrInbound>,
}

/// Why a map was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MapError {
    /// TOML could not be read.
    #[error("cluster map is not valid TOML for the map schema: {0}")]
    Toml(String),
    /// postcard could not be read.
    #[error("cluster map bytes are malformed: {0}")]
    Postcard(String),
    /// A signature is malformed, missing or does not verify.
    #[error("cluster map signature: {0}")]
    Signature(String),
    /// A structural rule is broken.
    #[error("cluster map epoch {epoch}: {detail}")]
    Invalid {
        /// Epoch of the refused map.
        epoch: u64,
        /// What was wrong.
        detail: String,
    },
}

/// Where a target lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetLoc {
    /// Zone index in the map.
    pub zone: usize,
    /// Node index within the zone.
    pub node: usize,
    /// Core that owns it.
    pub core: u16,
    /// Address of that core's endpoint.
    pub addr: SocketAddr,
    /// Placement weight.
    pub capacity_bytes: u64,
}

/// Most zones, nodes per zone, and targets in a map: bounds the work a
/// received map can cause.
pub const MAP_ZONES_MAX: usize = 16;
/// See [`MAP_ZONES_MAX`].
pub const MAP_NODES_PER_ZONE_MAX: usize = 4_096;
/// See [`MAP_ZONES_MAX`].
pub const MAP_TARGETS_MAX: usize = 65_536;
/// Most placement groups.
pub const MAP_PGS_MAX: u32 = 1 << 16;
/// Bound on the work of building a placement table (groups × shards ×
/// nodes in the largest zone), so a hostile or mistaken map cannot stall
/// the node that receives it.
pub const MAP_PLACEMENT_WORK_MAX: u64 = 1 << 30;
/// Largest encoded map accepted over the network.
pub const MAP_BYTES_MAX: u64 = crate::limits::SHARD_BYTES_MAX;

impl ClusterMap {
    /// Parse and validate a TOML map (a `[signature]` table, if present,
    /// is read and not checked: see [`crate::map_sig`]).
    pub fn from_toml(text: &str) -> Result<ClusterMap, MapError> {
        crate::map_sig::SignedMap::from_toml(text).map(|s| s.map)
    }

    /// The map as TOML (what `tessera dev` writes and operators edit).
    pub fn to_toml(&self) -> Result<String, MapError> {
        toml::to_string(self).map_err(|e| MapError::Toml(e.to_string()))
    }

    /// Decode and validate a map received over the network, signed or
    /// not (the signature is not checked here: nodes check it with
    /// [`crate::map_sig::SignedMap::from_wire`]).
    pub fn from_postcard(bytes: &[u8]) -> Result<ClusterMap, MapError> {
        crate::map_sig::SignedMap::from_wire(bytes).map(|s| s.map)
    }

    /// The map as postcard bytes.
    pub fn to_postcard(&self) -> Result<Vec<u8>, MapError> {
        postcard::to_stdvec(self).map_err(|e| MapError::Postcard(e.to_string()))
    }

    fn invalid(&self, detail: impl Into<String>) -> MapError {
        MapError::Invalid { epoch: self.epoch, detail: detail.into() }
    }

    /// Every target with its location, by id.
    pub fn targets(&self) -> BTreeMap<TargetId, TargetLoc> {
        let mut out = BTreeMap::new();
        for (zi, zone) in self.zones.iter().enumerate() {
            for (ni, node) in zone.nodes.iter().enumerate() {
                for t in &node.targets {
                    let port = node.ports.get(usize::from(t.core)).copied().unwrap_or(0);
                    out.insert(
                        t.id,
                        TargetLoc {
                            zone: zi,
                            node: ni,
                            core: t.core,
                            addr: SocketAddr::new(node.host, port),
                            capacity_bytes: t.capacity_bytes,
                        },
                    );
                }
            }
        }
        out
    }

    /// The node with this name, with its zone index.
    pub fn node(&self, name: &str) -> Option<(usize, &MapNode)> {
        self.zones.iter().enumerate().find_map(|(zi, z)| z.nodes.iter().find(|n| n.name == name).map(|n| (zi, n)))
    }

    /// Zones that can hold shards (have a target with nonzero weight).
    pub fn placement_zones(&self) -> usize {
        self.zones.iter().filter(|z| z.nodes.iter().any(|n| n.targets.iter().any(|t| t.capacity_bytes > 0))).count()
    }

    /// Shards per placement group: every class must use the same k + m, so
    /// that a reader who does not yet know an object's class knows where
    /// all of its shards are.
    pub fn shards_per_pg(&self) -> usize {
        self.classes.standard.total()
    }

    /// Check every structural rule. Called on every map parsed or received.
    pub fn validate(&self) -> Result<(), MapError> {
        if self.epoch == 0 {
            return Err(self.invalid("epoch must be at least 1 (0 means \"no map\" on the wire)"));
        }
        if self.region.is_empty() || self.region.len() > 64 {
            return Err(self.invalid(format!("region name {:?} must be 1..=64 bytes", self.region)));
        }
        if self.placement_groups == 0 || self.placement_groups > MAP_PGS_MAX {
            return Err(self.invalid(format!("placement_groups {} must be 1..={MAP_PGS_MAX}", self.placement_groups)));
        }
        let mut rule_ids = BTreeSet::new();
        for rule in &self.crr {
            rule.validate(&self.region).map_err(|e| self.invalid(e))?;
            if !rule_ids.insert(rule.id.as_str()) {
                return Err(self.invalid(format!("crr rule id {:?} is used twice", rule.id)));
            }
        }
        let mut inbound = BTreeSet::new();
        for rule in &self.crr_in {
            rule.validate(&self.region).map_err(|e| self.invalid(e))?;
            if !inbound.insert((rule.from_region.as_str(), rule.dest_bucket.as_str())) {
                return Err(
                    self.invalid(format!("crr_in from {} into {} is listed twice", rule.from_region, rule.dest_bucket))
                );
            }
        }
        let shard_max = crate::limits::SHARD_BYTES_MAX;
        if self.shard_bytes < 4_096 || u64::from(self.shard_bytes) > shard_max || !self.shard_bytes.is_multiple_of(64) {
            return Err(self
                .invalid(format!("shard_bytes {} must be a multiple of 64 in 4096..={shard_max}", self.shard_bytes)));
        }
        for (name, p) in [("standard", self.classes.standard), ("infrequent_access", self.classes.infrequent_access)] {
            if p.data == 0 || p.total() > 64 {
                return Err(self.invalid(format!("class {name}: {}+{} needs k >= 1 and k + m <= 64", p.data, p.parity)));
            }
        }
        if self.classes.standard.total() != self.classes.infrequent_access.total() {
            return Err(self.invalid(format!(
                "every class must have the same k + m (standard {}, infrequent_access {}): a placement group has one \
                 ordered list of targets",
                self.classes.standard.total(),
                self.classes.infrequent_access.total()
            )));
        }
        let k_min = self.classes.standard.data.min(self.classes.infrequent_access.data);
        let k_max = self.classes.standard.data.max(self.classes.infrequent_access.data);
        if u64::from(self.inline_bytes_max) > u64::from(k_min) * u64::from(self.shard_bytes) {
            return Err(self.invalid(format!(
                "inline_bytes_max {} exceeds one stripe of the smallest k ({k_min} x {})",
                self.inline_bytes_max, self.shard_bytes
            )));
        }
        if self.zones.is_empty() || self.zones.len() > MAP_ZONES_MAX {
            return Err(self.invalid(format!("{} zones; need 1..={MAP_ZONES_MAX}", self.zones.len())));
        }
        let mut zone_names = BTreeSet::new();
        let mut node_names = BTreeSet::new();
        let mut ids = BTreeSet::new();
        let mut endpoints = BTreeSet::new();
        for zone in &self.zones {
            if zone.name.is_empty() || !zone_names.insert(zone.name.as_str()) {
                return Err(self.invalid(format!("zone name {:?} is empty or repeated", zone.name)));
            }
            if zone.nodes.len() > MAP_NODES_PER_ZONE_MAX {
                return Err(self.invalid(format!("zone {} has more than {MAP_NODES_PER_ZONE_MAX} nodes", zone.name)));
            }
            for node in &zone.nodes {
                if node.name.is_empty() || !node_names.insert(node.name.as_str()) {
                    return Err(self.invalid(format!("node name {:?} is empty or repeated", node.name)));
                }
                if node.ports.is_empty() || node.ports.len() > crate::limits::CORES_PER_NODE_MAX {
                    return Err(self.invalid(format!("node {} must list 1..=256 core ports", node.name)));
                }
                for &p in &node.ports {
                    if p == 0 || !endpoints.insert((node.host, p)) {
                        return Err(self.invalid(format!("node {} port {p} is 0 or used twice", node.name)));
                    }
                }
                for t in &node.targets {
                    if !ids.insert(t.id) {
                        return Err(self.invalid(format!("target id {} appears twice", t.id)));
                    }
                    if usize::from(t.core) >= node.ports.len() {
                        return Err(self.invalid(format!(
                            "target {} names core {} but node {} has {} cores",
                            t.id,
                            t.core,
                            node.name,
                            node.ports.len()
                        )));
                    }
                }
            }
        }
        if ids.len() > MAP_TARGETS_MAX {
            return Err(self.invalid(format!("{} targets exceed {MAP_TARGETS_MAX}", ids.len())));
        }
        let n = self.shards_per_pg();
        let widest = self.zones.iter().map(|z| z.nodes.len()).max().unwrap_or(0) as u64;
        let work = u64::from(self.placement_groups) * n as u64 * widest.max(1);
        if work > MAP_PLACEMENT_WORK_MAX {
            return Err(self.invalid(format!(
                "{} groups x {n} shards x {widest} nodes per zone is more placement work than {MAP_PLACEMENT_WORK_MAX}",
                self.placement_groups
            )));
        }
        let zones = self.placement_zones();
        if zones == 0 {
            return Err(self.invalid("no target has a nonzero capacity"));
        }
        let weighted = self.targets().values().filter(|t| t.capacity_bytes > 0).count();
        if weighted < n {
            return Err(self.invalid(format!("{weighted} weighted targets cannot hold {n} distinct shards per group")));
        }
        if zones >= 2 {
            // Zone loss must leave k shards, and every zone must hold more
            // than... see docs/ARCHITECTURE.md "Write rule".
            let per_zone_max = n.div_ceil(zones);
            if n - per_zone_max < usize::from(k_max) {
                return Err(self.invalid(format!(
                    "with {zones} zones a group keeps {} shards after losing a zone, fewer than k = {k_max}",
                    n - per_zone_max
                )));
            }
        }
        for (zi, zone) in self.zones.iter().enumerate() {
            let quota = n.div_ceil(zones);
            let targets = zone.nodes.iter().flat_map(|n| &n.targets).filter(|t| t.capacity_bytes > 0).count();
            if targets > 0 && targets < quota {
                return Err(self.invalid(format!(
                    "zone {} (#{zi}) has {targets} weighted targets, fewer than the {quota} shards it holds per group",
                    zone.name
                )));
            }
        }
        Ok(())
    }

    /// True for a map meant only for development: one zone, no zone
    /// redundancy. Callers print a warning.
    pub fn is_single_zone(&self) -> bool {
        self.placement_zones() < 2
    }
}

impl ClusterMap {
    /// A map of identical zones, nodes and targets: what `tessera dev`,
    /// tests and benchmarks start from. Zones are `z1..`, nodes `zZ-nN`,
    /// target ids count from 1; `host(zone, node)` gives each node's
    /// address, and core c of every node listens on `base_port + c`.
    #[allow(clippy::too_many_arguments)]
    pub fn uniform(
        region: &str,
        zones: usize,
        nodes_per_zone: usize,
        cores_per_node: usize,
        targets_per_core: usize,
        capacity_bytes: u64,
        base_port: u16,
        host: impl Fn(usize, usize) -> IpAddr,
    ) -> ClusterMap {
        let mut next_id = 1u32;
        let zones = (0..zones)
            .map(|z| MapZone {
                name: format!("z{}", z + 1),
                nodes: (0..nodes_per_zone)
                    .map(|n| MapNode {
                        name: format!("z{}-n{}", z + 1, n + 1),
                        host: host(z, n),
                        ports: (0..cores_per_node).map(|c| base_port + c as u16).collect(),
                        targets: (0..cores_per_node * targets_per_core)
                            .map(|i| {
                                let id = TargetId(next_id);
                                next_id += 1;
                                MapTarget { id, core: (i / targets_per_core) as u16, capacity_bytes }
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect();
        ClusterMap {
            epoch: 1,
            region: region.to_owned(),
            placement_groups: 256,
            shard_bytes: 1_048_576,
            inline_bytes_max: 65_536,
            classes: ClassProfiles::default(),
            zones,
            crr: Vec::new(),
            crr_in: Vec::new(),
        }
    }
}
