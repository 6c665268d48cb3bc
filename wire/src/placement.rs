//! Where an object's shards live: `hash(bucket, key) % placement_groups`
//! picks a placement group (PG); the PG table maps each PG to an ordered
//! list of k + m targets. Pure and deterministic: client and node build the
//! same table from the same map.
//!
//! How a PG is laid out:
//! - Shard positions are dealt round-robin over the zones (position i goes
//!   to zone `order[i % zones]`), so every prefix of the list, in
//!   particular the k data shards, is spread evenly. The zone that gets one
//!   more shard when `n % zones != 0` rotates with the PG.
//! - Within a zone each slot picks a node by weighted rendezvous hashing
//!   (HRW, score `-ln(u) / weight`) over the zone's nodes, seeded by (PG,
//!   zone, slot). A slot whose winner is already used retries with another
//!   seed, so a node holds at most `ceil(slots / nodes)` shards of a PG:
//!   one while the zone has enough nodes. Slots are independent, as in
//!   CRUSH's "indep" mode, so adding a node changes only the slots it wins.
//! - The node then picks its target by the same HRW over its targets.

use crate::map::{ClusterMap, TargetLoc};
use crate::TargetId;
use std::collections::BTreeMap;

/// FNV-1a 64 over bucket, a zero byte, and key: stable across releases and
/// platforms, because it decides where bytes already on disk are found.
pub fn object_hash(bucket: &str, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bucket.bytes().chain(std::iter::once(0)).chain(key.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn mix(mut z: u64) -> u64 {
    // splitmix64 finalizer.
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Weighted HRW score; the smallest wins.
fn score(seed: u64, item: u64, weight: u64) -> f64 {
    let h = mix(seed ^ mix(item));
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    -u.ln() / weight as f64
}

/// The PG table of one map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Placement {
    shards: usize,
    pgs: u32,
    table: Vec<TargetId>,
}

/// A broken placement invariant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("placement group {pg}: {detail}")]
pub struct PlacementViolation {
    /// The group.
    pub pg: u32,
    /// What is wrong.
    pub detail: String,
}

/// (hash, weight, id) of a weighted target.
type WeightedTarget = (u64, u64, TargetId);

struct ZoneNodes {
    /// (node hash, node weight, its weighted targets).
    nodes: Vec<(u64, u64, Vec<WeightedTarget>)>,
}

impl Placement {
    /// Build the table and check it. A map that passed `validate` always
    /// places; a violation here is a bug, reported rather than served.
    pub fn build(map: &ClusterMap) -> Result<Placement, PlacementViolation> {
        let zones: Vec<ZoneNodes> = map
            .zones
            .iter()
            .map(|z| ZoneNodes {
                nodes: z
                    .nodes
                    .iter()
                    .map(|n| {
                        let targets: Vec<_> = n
                            .targets
                            .iter()
                            .filter(|t| t.capacity_bytes > 0)
                            .map(|t| (mix(u64::from(t.id.0)), t.capacity_bytes, t.id))
                            .collect();
                        let w = targets.iter().map(|t| t.1).fold(0u64, u64::saturating_add);
                        (fnv(&n.name), w, targets)
                    })
                    .filter(|n| n.1 > 0)
                    .collect(),
            })
            .filter(|z| !z.nodes.is_empty())
            .collect();
        let n = map.shards_per_pg();
        let mut table = Vec::with_capacity(n * map.placement_groups as usize);
        for pg in 0..map.placement_groups {
            table.extend(place_pg(&zones, pg, n));
        }
        let placement = Placement { shards: n, pgs: map.placement_groups, table };
        placement.check(map)?;
        Ok(placement)
    }

    /// Number of placement groups.
    pub fn groups(&self) -> u32 {
        self.pgs
    }

    /// k + m.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// The group of an object.
    pub fn pg_of(&self, bucket: &str, key: &str) -> u32 {
        (object_hash(bucket, key) % u64::from(self.pgs)) as u32
    }

    /// The ordered targets of a group: shard i lives on `targets(pg)[i]`.
    pub fn targets(&self, pg: u32) -> &[TargetId] {
        let start = pg as usize * self.shards;
        self.table.get(start..start + self.shards).unwrap_or(&[])
    }

    /// The invariants, checked on every table built:
    /// every group has k + m distinct targets that exist and carry weight;
    /// zone counts differ by at most one; no node holds two shards of a
    /// group while its zone has a node for every slot. (With fewer nodes,
    /// placement prefers at most `ceil(slots / nodes)` per node, more only
    /// when a node lacks targets.)
    pub fn check(&self, map: &ClusterMap) -> Result<(), PlacementViolation> {
        let locs = map.targets();
        let zones = map.placement_zones();
        let nodes_in: Vec<usize> = map
            .zones
            .iter()
            .map(|z| z.nodes.iter().filter(|n| n.targets.iter().any(|t| t.capacity_bytes > 0)).count())
            .collect();
        for pg in 0..self.pgs {
            let v = |detail: String| PlacementViolation { pg, detail };
            let ts = self.targets(pg);
            if ts.len() != self.shards {
                return Err(v(format!("{} targets, expected {}", ts.len(), self.shards)));
            }
            let mut seen = std::collections::BTreeSet::new();
            let mut per_zone: BTreeMap<usize, usize> = BTreeMap::new();
            let mut per_node: BTreeMap<(usize, usize), usize> = BTreeMap::new();
            for t in ts {
                let Some(loc) = locs.get(t) else { return Err(v(format!("target {t} is not in the map"))) };
                if loc.capacity_bytes == 0 {
                    return Err(v(format!("target {t} has no weight")));
                }
                if !seen.insert(*t) {
                    return Err(v(format!("target {t} holds two shards")));
                }
                *per_zone.entry(loc.zone).or_default() += 1;
                *per_node.entry((loc.zone, loc.node)).or_default() += 1;
            }
            let lo = self.shards / zones;
            if per_zone.len() != zones.min(self.shards) || per_zone.values().any(|&c| c < lo || c > lo + 1) {
                return Err(v(format!("zone counts {per_zone:?} are uneven for {zones} zones")));
            }
            for (&(z, node), &c) in &per_node {
                let slots = per_zone.get(&z).copied().unwrap_or(0);
                if nodes_in[z] >= slots && c > 1 {
                    return Err(v(format!(
                        "node {node} of zone {z} holds {c} shards although the zone has {} nodes for {slots}",
                        nodes_in[z]
                    )));
                }
            }
        }
        Ok(())
    }

    /// Shards per target across all groups (the load figure).
    pub fn load(&self) -> BTreeMap<TargetId, usize> {
        let mut out = BTreeMap::new();
        for t in &self.table {
            *out.entry(*t).or_default() += 1;
        }
        out
    }

    /// Positions (pg, shard) whose target differs between two tables of
    /// the same shape: the shards a map change moves.
    pub fn moved(&self, other: &Placement) -> usize {
        self.table.iter().zip(&other.table).filter(|(a, b)| a != b).count()
    }
}

/// The zone order of a group's shard positions: round-robin over zones,
/// starting at a zone that rotates with the group.
fn zone_order(zones: usize, pg: u32, n: usize) -> Vec<usize> {
    let start = pg as usize % zones;
    let mut quota: Vec<usize> = (0..zones).map(|_| n / zones).collect();
    for i in 0..n % zones {
        quota[(start + i) % zones] += 1;
    }
    let mut order = Vec::with_capacity(n);
    let mut z = start;
    while order.len() < n {
        if quota[z] > 0 {
            quota[z] -= 1;
            order.push(z);
        }
        z = (z + 1) % zones;
    }
    order
}

fn place_pg(zones: &[ZoneNodes], pg: u32, n: usize) -> Vec<TargetId> {
    let order = zone_order(zones.len(), pg, n);
    let mut out = vec![TargetId(u32::MAX); n];
    for (zi, zone) in zones.iter().enumerate() {
        let positions: Vec<usize> = order.iter().enumerate().filter(|(_, &z)| z == zi).map(|(i, _)| i).collect();
        let cap = positions.len().div_ceil(zone.nodes.len());
        let mut node_use = vec![0usize; zone.nodes.len()];
        let mut used_targets: Vec<TargetId> = Vec::new();
        for (slot, &pos) in positions.iter().enumerate() {
            let seed = mix((u64::from(pg) << 24) ^ ((zi as u64) << 12) ^ slot as u64);
            // Retry with fresh seeds; after 64 tries take the best free node.
            let mut chosen = None;
            for attempt in 0..64u64 {
                let s = mix(seed ^ attempt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let best = zone
                    .nodes
                    .iter()
                    .enumerate()
                    .map(|(i, (h, w, _))| (score(s, *h, *w), i))
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .map(|(_, i)| i);
                if let Some(i) = best.filter(|&i| node_use[i] < cap && free_target(&zone.nodes[i].2, &used_targets)) {
                    chosen = Some((i, s));
                    break;
                }
            }
            let (node, s) = chosen.unwrap_or_else(|| {
                let i = (0..zone.nodes.len())
                    .filter(|&i| free_target(&zone.nodes[i].2, &used_targets))
                    .min_by_key(|&i| node_use[i])
                    .unwrap_or(0);
                (i, seed)
            });
            node_use[node] += 1;
            let target = zone.nodes[node]
                .2
                .iter()
                .filter(|t| !used_targets.contains(&t.2))
                .map(|(h, w, id)| (score(s ^ 0x5bd1_e995, *h, *w), *id))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, id)| id)
                .unwrap_or(TargetId(u32::MAX));
            used_targets.push(target);
            out[pos] = target;
        }
    }
    out
}

fn free_target(targets: &[WeightedTarget], used: &[TargetId]) -> bool {
    targets.iter().any(|t| !used.contains(&t.2))
}

/// Where a target is, for code that has a map at hand.
pub fn locate(map: &ClusterMap, target: TargetId) -> Option<TargetLoc> {
    map.targets().get(&target).copied()
}

#[cfg(test)]
mod tests;
