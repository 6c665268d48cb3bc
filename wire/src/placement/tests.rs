use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::map::{ClassProfiles, EcProfile, MapNode, MapTarget};

fn host(z: usize, n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, z as u8, (n / 250) as u8, (n % 250) as u8 + 1))
}

fn map(zones: usize, nodes: usize, targets: usize, pgs: u32) -> ClusterMap {
    let mut m = ClusterMap::uniform("r", zones, nodes, 1, targets, 1 << 40, 7000, host);
    m.placement_groups = pgs;
    m
}

#[test]
fn hash_is_pinned() {
    // A change here moves every stored object: it must be deliberate.
    assert_eq!(object_hash("photos", "a/b.jpg"), 0xbcf1_eccc_14e3_387b);
}

#[test]
fn table_is_deterministic_and_checked() {
    let m = map(3, 20, 8, 512);
    m.validate().expect("valid");
    let a = Placement::build(&m).expect("places");
    let b = Placement::build(&m).expect("places");
    assert_eq!(a, b);
    // The data shards (prefix k) of every group span all three zones.
    let locs = m.targets();
    for pg in 0..a.groups() {
        let zones: std::collections::BTreeSet<usize> = a.targets(pg)[..6].iter().map(|t| locs[t].zone).collect();
        assert_eq!(zones.len(), 3, "pg {pg}");
    }
}

#[test]
fn small_zones_share_nodes_evenly() {
    // 3 zones x 2 nodes x 2 targets: 4 shards per zone over 2 nodes.
    let m = map(3, 2, 2, 128);
    let p = Placement::build(&m).expect("places");
    let load = p.load();
    assert_eq!(load.len(), 12, "every target is used");
}

#[test]
fn checker_catches_a_broken_table() {
    let m = map(3, 4, 2, 16);
    let mut p = Placement::build(&m).expect("places");
    let first = p.table[0];
    p.table[1] = first;
    assert!(p.check(&m).is_err(), "duplicate target must be caught");
    let mut p = Placement::build(&m).expect("places");
    // Move a z2 shard into z1 (a target of z1 not used by pg 0).
    let locs = m.targets();
    let used: Vec<TargetId> = p.targets(0).to_vec();
    let spare =
        locs.iter().find(|(t, l)| l.zone == locs[&used[0]].zone && !used.contains(t)).map(|(t, _)| *t).expect("spare");
    let other = used.iter().position(|t| locs[t].zone != locs[&used[0]].zone).expect("other zone");
    p.table[other] = spare;
    assert!(p.check(&m).is_err(), "uneven zones must be caught");
}

#[test]
fn weights_steer_load() {
    let mut m = map(3, 4, 1, 2048);
    // One node of z1 gets 3x the weight of its peers.
    m.zones[0].nodes[0].targets[0].capacity_bytes *= 3;
    let p = Placement::build(&m).expect("places");
    let load = p.load();
    let heavy = load[&m.zones[0].nodes[0].targets[0].id];
    let light = load[&m.zones[0].nodes[1].targets[0].id];
    // 4 slots over 4 nodes: every node holds one shard of every group,
    // whatever its weight (the spread rule wins over weight).
    assert_eq!(heavy, light);
    let mut m = map(3, 8, 1, 2048);
    m.zones[0].nodes[0].targets[0].capacity_bytes *= 3;
    let p = Placement::build(&m).expect("places");
    let load = p.load();
    let heavy = load[&m.zones[0].nodes[0].targets[0].id] as f64;
    let light = load[&m.zones[0].nodes[1].targets[0].id] as f64;
    assert!(heavy > 1.5 * light, "heavy {heavy} light {light}");
}

#[test]
fn zero_weight_node_changes_nothing() {
    let m = map(3, 5, 2, 1024);
    let before = Placement::build(&m).expect("places");
    let mut m2 = m.clone();
    m2.epoch += 1;
    m2.zones[1].nodes.push(MapNode {
        name: "joining".into(),
        host: host(9, 9),
        ports: vec![7000],
        targets: vec![MapTarget { id: TargetId(9_999), core: 0, capacity_bytes: 0 }],
    });
    let after = Placement::build(&m2).expect("places");
    assert_eq!(before.moved(&after), 0);
}

/// The balance and movement figures for docs/BENCHMARKS.md; run with
/// `cargo test -p tessera-wire --release placement_figures -- --nocapture`.
#[test]
fn placement_figures() {
    for (zones, nodes, targets, pgs) in [(3, 20, 8, 4096u32), (3, 2, 2, 256)] {
        let m = map(zones, nodes, targets, pgs);
        let p = Placement::build(&m).expect("places");
        let load = p.load();
        let total: usize = load.values().sum();
        let all_targets = zones * nodes * targets;
        let mean = total as f64 / all_targets as f64;
        let max = *load.values().max().unwrap_or(&0) as f64;
        let ratio = max / mean;
        // One node added to zone 1 with the same targets.
        let mut m2 = m.clone();
        m2.epoch += 1;
        let next_id = all_targets as u32 + 1;
        m2.zones[0].nodes.push(MapNode {
            name: "added".into(),
            host: host(9, 9),
            ports: vec![7000],
            targets: (0..targets)
                .map(|i| MapTarget { id: TargetId(next_id + i as u32), core: 0, capacity_bytes: 1 << 40 })
                .collect(),
        });
        let p2 = Placement::build(&m2).expect("places");
        let moved = p.moved(&p2) as f64 / total as f64;
        // Ideal: the new node's fair share of its zone's shards.
        let ideal = (1.0 / (nodes as f64 + 1.0)) / zones as f64;
        println!(
            "placement {zones}x{nodes}x{targets}, {pgs} PGs, 6+6: shards/target mean {mean:.1} max {max} \
             (max/mean {ratio:.2}); add a node: moved {:.2}% of shards, ideal {:.2}% (x{:.2})",
            moved * 100.0,
            ideal * 100.0,
            moved / ideal
        );
        assert!(ratio < 1.6, "max/mean {ratio}");
        assert!(moved / ideal < 1.6, "moved {moved} ideal {ideal}");
    }
}

#[test]
fn other_profiles_place() {
    for (k, m_, zones, nodes) in [(2u8, 1u8, 3usize, 1usize), (4, 2, 3, 2), (10, 8, 3, 6), (3, 3, 2, 3)] {
        let mut m = map(zones, nodes, 2, 64);
        m.classes = ClassProfiles {
            standard: EcProfile { data: k, parity: m_ },
            infrequent_access: EcProfile { data: k, parity: m_ },
        };
        if m.validate().is_err() {
            continue;
        }
        Placement::build(&m).expect("places");
    }
}

#[test]
fn uneven_nodes_still_place() {
    // z1: one node with 1 target, one with 3: four slots over two nodes.
    let mut m = map(3, 2, 2, 64);
    m.zones[0].nodes[0].targets.truncate(1);
    m.zones[0].nodes[1].targets.push(MapTarget { id: TargetId(500), core: 0, capacity_bytes: 1 << 40 });
    m.validate().expect("valid");
    let p = Placement::build(&m).expect("places");
    assert_eq!(p.groups(), 64);
}
