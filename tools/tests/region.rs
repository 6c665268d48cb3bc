//! A real local region: `tessera dev` writes the configs, every node is a
//! `tessera node` process on its own 127.0.Z.N address, zones are killed
//! with `tessera dev stop-zone` (SIGKILL) and restarted with `start-zone`,
//! exactly as a user would from a shell.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use common::{content, port_base, Region};

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tessera_client::{Client, ClientError, GetOptions, ListRequest, VersionId};

async fn read_all(c: &Client, bucket: &str, expect: &BTreeMap<String, usize>) {
    for (key, len) in expect {
        let got = c.get(bucket, key, GetOptions::default()).await.unwrap_or_else(|e| panic!("get {key}: {e}"));
        assert_eq!(got.meta.size_bytes, *len as u64, "{key}");
        let bytes = got.bytes().await.unwrap_or_else(|e| panic!("read {key}: {e}"));
        assert!(bytes == content(key, *len), "{key}: bytes differ");
    }
}

async fn list_all(c: &Client, bucket: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut req = ListRequest { limit: Some(7), ..Default::default() };
    loop {
        let page = c.list(bucket, req.clone()).await.unwrap();
        keys.extend(page.entries.into_iter().map(|e| e.key));
        match page.next {
            Some(n) => req.continuation = Some(n),
            None => return keys,
        }
    }
}

/// For each zone in turn: write objects of mixed sizes, SIGKILL every node
/// of the zone right after the last acknowledgement, read everything back
/// byte-identical (decoding around the dead zone), and LIST exactly what
/// was acknowledged (from a zone that is alive).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_any_zone_right_after_the_ack_loses_nothing() {
    let region = Region::new("zoneloss", port_base(0), &[]);
    let c = region.client("zloss", false).await;
    let sizes = [0usize, 1, 4_096, 65_537, 10 << 20, 100 << 20];
    let mut acked: BTreeMap<String, usize> = BTreeMap::new();
    for zone in region.zones.clone() {
        for (i, &len) in sizes.iter().enumerate() {
            let key = format!("{zone}/obj-{i}-{len}");
            let r = c.put("zloss", &key, content(&key, len)).await.unwrap();
            assert_eq!(r.zones.len(), 3, "{key}: committed in {:?}", r.zones);
            assert!(!r.degraded);
            acked.insert(key, len);
        }
        region.stop_zone(&zone);
        // A client starting now whose first seeds are in the dead zone
        // still connects, from the next seed that answers.
        let mut seeds = c.node_addrs();
        seeds.sort_by_key(|(name, _)| !name.starts_with(zone.as_str()));
        assert!(seeds[0].0.starts_with(zone.as_str()), "{seeds:?}");
        let mut cfg = region.client_config();
        cfg.endpoint = seeds[0].1.to_string();
        cfg.endpoints = seeds[1..].iter().map(|(_, a)| a.to_string()).collect();
        let late = Client::connect(cfg).await.unwrap();
        let (key, len) = acked.iter().next().unwrap();
        assert_eq!(
            late.get("zloss", key, GetOptions::default()).await.unwrap().bytes().await.unwrap(),
            content(key, *len)
        );
        let t = Instant::now();
        read_all(&c, "zloss", &acked).await;
        println!("zone {zone} down: read {} objects back in {:.1} s", acked.len(), t.elapsed().as_secs_f64());
        // A range read across a stripe boundary, decoded around the dead zone.
        let big = format!("{zone}/obj-5-{}", 100 << 20);
        let range = tessera_client::ByteRange { offset: 6 * 1_048_576 - 10, len: 20 };
        let got = c.get("zloss", &big, GetOptions { range: Some(range), version: None }).await.unwrap();
        let want = content(&big, 100 << 20)[6 * 1_048_576 - 10..6 * 1_048_576 + 10].to_vec();
        assert_eq!(got.bytes().await.unwrap(), want);
        let listed = list_all(&c, "zloss").await;
        assert_eq!(listed, acked.keys().cloned().collect::<BTreeSet<_>>(), "LIST with {zone} down");
        region.start_zone(&zone);
        // Wait until every node of the zone answers again before the next
        // round (bucket creation no longer tells: it succeeds with a zone
        // down), so the next round's writes commit in all three zones.
        let admin = region.admin().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        for (name, addr) in c.node_addrs().into_iter().filter(|(n, _)| n.starts_with(zone.as_str())) {
            while admin.node_status(addr).await.is_err() {
                assert!(Instant::now() < deadline, "{name} of zone {zone} did not come back");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        // ... and until `c` stops skipping them as recently failed.
        tokio::time::sleep(Duration::from_millis(region.client_config().down_ms + 200)).await;
    }
    // A bucket made while a zone is down holds (the zone gets it later);
    // once the zone is back, its targets do not know the bucket yet, and a
    // read must not take their "no such bucket" for the region's word.
    region.stop_zone("z1");
    c.create_bucket("late", Default::default()).await.unwrap();
    region.start_zone("z1");
    let admin = region.admin().await;
    for (_, addr) in c.node_addrs().into_iter().filter(|(n, _)| n.starts_with("z1")) {
        while admin.node_status(addr).await.is_err() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_millis(region.client_config().down_ms + 200)).await;
    // Nothing was written since: z1's targets still lack the bucket.
    match c.head("late", "k", None).await {
        Err(ClientError::NoSuchKey { .. }) => {}
        other => panic!("a key never written, in a bucket z1 missed: {other:?}"),
    }
    c.put("late", "k", b"made with z1 down".to_vec()).await.unwrap();
    let got = c.get("late", "k", GetOptions::default()).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, b"made with z1 down");
    match c.get("never-made", "k", GetOptions::default()).await {
        Err(ClientError::NoSuchBucket { .. }) => {}
        other => panic!("a bucket no zone knows: {:?}", other.map(|_| ())),
    }
}

/// Writers race on the same keys while readers read them: readers only
/// ever see versions that were written (bytes match the version's writer),
/// a reader never sees a key go back to an older version, and at the end
/// every zone lists the same newest version, the largest acknowledged one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_converge_and_readers_never_go_back() {
    let region = Region::new("race", port_base(10), &[]);
    let c = region.client("race", false).await;
    let keys = ["a", "b", "c"];
    let acked: Arc<Mutex<BTreeMap<(String, VersionId), String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (c, acked) = (c.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..30 {
                let key = keys[(w + i) % keys.len()];
                let tag = format!("{key}-w{w}-{i}");
                let len = [10usize, 5_000, 70_000, 300_000][i % 4];
                let r = c.put("race", key, content(&tag, len)).await.unwrap();
                acked.lock().unwrap().insert((key.to_string(), r.version), tag);
            }
        }));
    }
    let mut readers = Vec::new();
    for _ in 0..2 {
        let (c, stop) = (c.clone(), stop.clone());
        readers.push(tokio::spawn(async move {
            let mut last: BTreeMap<&str, VersionId> = BTreeMap::new();
            let mut seen = Vec::new();
            let mut gone = 0usize;
            let mut n = 0;
            while (!stop.load(std::sync::atomic::Ordering::Relaxed) || n < 60) && n < 2_000 {
                n += 1;
                let key = keys[n % keys.len()];
                let got = match c.get("race", key, GetOptions::default()).await {
                    Ok(g) => g,
                    Err(ClientError::NoSuchKey { .. }) => continue,
                    // 4 writers on 3 keys: every read races overwrites; the
                    // client retried 8 times. Counted, and must stay rare.
                    Err(ClientError::VersionGone { .. }) => {
                        gone += 1;
                        continue;
                    }
                    Err(e) => panic!("read {key}: {e}"),
                };
                let v = got.meta.version;
                let bytes = match got.bytes().await {
                    Ok(b) => b,
                    // An unversioned overwrite may remove the version
                    // between HEAD and the shard reads; a reader retries.
                    Err(
                        ClientError::Unavailable { .. }
                        | ClientError::NoSuchKey { .. }
                        | ClientError::VersionGone { .. },
                    ) => continue,
                    Err(e) => panic!("read {key} body: {e}"),
                };
                if let Some(prev) = last.get(key) {
                    assert!(v >= *prev, "{key}: version went back from {prev} to {v}");
                }
                last.insert(key, v);
                seen.push((key.to_string(), v, crc32c::crc32c(&bytes)));
            }
            assert!(gone * 10 <= n, "{gone} of {n} reads lost every race with the writers");
            seen
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = acked.lock().unwrap().clone();
    let mut reads = 0;
    for r in readers {
        for (key, v, crc) in r.await.unwrap() {
            let tag = acked.get(&(key.clone(), v)).unwrap_or_else(|| panic!("{key}: read version {v} never acked"));
            let len = [10usize, 5_000, 70_000, 300_000][tag.rsplit('-').next().unwrap().parse::<usize>().unwrap() % 4];
            assert_eq!(crc, crc32c::crc32c(&content(tag, len)), "{key} {v}: bytes of another version");
            reads += 1;
        }
    }
    assert!(reads > 60, "readers read too little: {reads}");
    for key in keys {
        let newest = acked.keys().filter(|(k, _)| k == key).map(|(_, v)| *v).max().unwrap();
        assert_eq!(c.head("race", key, None).await.unwrap().version, newest, "{key}");
        // Every member of the group ends up with the newest version
        // committed (stragglers finish in the background after the ack).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let members = tessera_client::group_view(&c, "race", key, newest).await.unwrap();
            if members.iter().all(|m| m.as_ref().is_some_and(|m| m.committed)) {
                break;
            }
            assert!(Instant::now() < deadline, "{key}: members did not converge on {newest}: {members:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for zone in &region.zones {
            let mut cfg = region.client_config();
            cfg.zone = Some(zone.clone());
            let zc = Client::connect(cfg).await.unwrap();
            let page = zc.list("race", ListRequest::default()).await.unwrap();
            let e = page.entries.iter().find(|e| e.key == key).unwrap();
            assert_eq!(e.version, newest, "zone {zone} lists {key} at an older version");
        }
    }
}

/// Versioned bucket: versions, get by version, delete markers, deleting a
/// specific version, LIST and list-versions, and a storage-class override.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versioned_buckets_and_epoch_changes_under_load() {
    let region = Region::new("versions", port_base(20), &[]);
    let c = region.client("vers", true).await;
    let v1 = c.put("vers", "doc", b"one".to_vec()).await.unwrap().version;
    let v2 = c.put("vers", "doc", b"two".to_vec()).await.unwrap().version;
    assert!(v2 > v1);
    let get = |v: Option<VersionId>| {
        let c = c.clone();
        async move { c.get("vers", "doc", GetOptions { version: v, range: None }).await?.bytes().await }
    };
    assert_eq!(get(None).await.unwrap(), b"two");
    assert_eq!(get(Some(v1)).await.unwrap(), b"one");
    let marker = c.delete("vers", "doc").await.unwrap();
    assert!(matches!(get(None).await, Err(ClientError::NoSuchKey { .. })));
    assert_eq!(get(Some(v2)).await.unwrap(), b"two");
    assert!(list_all(&c, "vers").await.is_empty());
    let versions = c.list_versions("vers", "", None, 100).await.unwrap().entries;
    let listed: Vec<(VersionId, bool)> = versions.iter().map(|e| (e.version, e.delete_marker)).collect();
    assert_eq!(listed, [(marker, true), (v2, false), (v1, false)]);
    // Removing the marker brings v2 back; removing v2 then leaves v1.
    c.delete_version("vers", "doc", marker).await.unwrap();
    assert_eq!(get(None).await.unwrap(), b"two");
    c.delete_version("vers", "doc", v2).await.unwrap();
    assert_eq!(get(None).await.unwrap(), b"one");
    assert!(matches!(get(Some(v2)).await, Err(ClientError::NoSuchKey { .. })));
    let ia = tessera_client::PutOptions {
        storage_class: Some(tessera_client::StorageClass::InfrequentAccess),
        ..Default::default()
    };
    let r = c.put_with("vers", "cold", content("cold", 200_000), ia).await.unwrap();
    assert_eq!(r.storage_class, tessera_client::StorageClass::InfrequentAccess);
    assert_eq!(r.targets.len(), 12, "IA 8+4 over 3 zones needs every shard for the zone rule");
    let meta = c.head("vers", "cold", None).await.unwrap();
    assert_eq!((meta.ec.data, meta.ec.parity), (8, 4));

    // Epoch change while writers run: a new map (a joining node with no
    // weight) is pushed; every request either lands under a consistent map
    // or is refused and retried; every acknowledged write reads back.
    let map_path = region.dir.join("map.toml");
    let mut map = tessera_client::ClusterMap::from_toml(&std::fs::read_to_string(&map_path).unwrap()).unwrap();
    let written: Arc<Mutex<BTreeMap<String, usize>>> = Arc::default();
    let mut writers = Vec::new();
    for w in 0..3 {
        let (c, written) = (c.clone(), written.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..40 {
                let key = format!("epoch/w{w}-{i}");
                let len = 1_000 + i * 997;
                c.put("vers", &key, content(&key, len)).await.unwrap_or_else(|e| panic!("{key}: {e}"));
                written.lock().unwrap().insert(key, len);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    map.epoch += 1;
    map.zones[1].nodes.push(tessera_wire::MapNode {
        name: "z2-joining".into(),
        host: "127.0.2.9".parse().unwrap(),
        ports: vec![7_400],
        targets: vec![tessera_wire::MapTarget { id: tessera_wire::TargetId(999), core: 0, capacity_bytes: 0 }],
    });
    let admin = region.admin().await;
    let report = admin.push_map(&map).await.unwrap();
    assert_eq!(report.unreachable.len(), 1, "only the joining node (not running) is not reached: {report:?}");
    // A node the push reaches late may have taken the map from another
    // node already (each repair round fetches the newest).
    assert!(report.refused.is_empty() && report.installed.len() + report.already.len() == 6, "{report:?}");
    assert!(!report.installed.is_empty(), "{report:?}");
    let again = admin.push_map(&map).await.unwrap();
    assert!(again.installed.is_empty() && again.refused.is_empty() && again.already.len() == 6, "{again:?}");
    let mut older = map.clone();
    older.epoch -= 1;
    let stale = admin.push_map(&older).await.unwrap();
    assert_eq!(stale.refused.len(), 6, "a map older than the nodes' is refused: {stale:?}");
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(c.view().map.epoch, map.epoch, "the writers' client moved to the new map");
    let written = written.lock().unwrap().clone();
    assert_eq!(written.len(), 120);
    read_all(&c, "vers", &written).await;
    let listed = list_all(&c, "vers").await;
    for k in written.keys() {
        assert!(listed.contains(k), "{k} not listed");
    }
    // The map was written back to every node's map file.
    let z1 = std::fs::read_to_string(region.dir.join("z1-n1/map.toml")).unwrap();
    assert!(z1.contains("z2-joining"), "node map file not updated");
    let _ = Path::new("");
}

/// A rolling restart gone wrong: while 4 writers put 1–200 KiB objects,
/// one random node is SIGKILLed every 2 s and started again 1 s later, so
/// one node is often still starting in one zone while another dies in a
/// second zone. Every PUT must succeed (a write retries a target that
/// comes back) and every acknowledged object must read back identical.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_ride_through_rolling_crashes_in_two_zones() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let region = Arc::new(Region::new("rolling", port_base(30), &[]));
    let c = region.client("rolling", false).await;
    let mut rng = common::Rng(common::seed("rolling"));
    let nodes: Vec<String> = c.node_addrs().into_iter().map(|(n, _)| n).collect();
    assert_eq!(nodes.len(), 6);
    let done = Arc::new(AtomicBool::new(false));
    let plan: Vec<usize> = (0..12).map(|_| rng.below(nodes.len() as u64) as usize).collect();
    let crasher = {
        let (region, done, nodes) = (region.clone(), done.clone(), nodes.clone());
        std::thread::spawn(move || {
            let mut log = Vec::new();
            for &i in &plan {
                region.dev("kill-node", &[&nodes[i]]);
                std::thread::sleep(Duration::from_secs(1));
                region.dev("start-node", &[&nodes[i]]);
                log.push(nodes[i].clone());
                std::thread::sleep(Duration::from_secs(1));
            }
            done.store(true, Ordering::SeqCst);
            log
        })
    };
    let acked = Arc::new(Mutex::new(BTreeMap::new()));
    let failed = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..4u64 {
        let (c, done, acked, failed) = (c.clone(), done.clone(), acked.clone(), failed.clone());
        let mut rng = common::Rng(rng.next() | 1);
        writers.push(tokio::spawn(async move {
            // Bounded in count as well as by the crasher's ~24 s.
            for n in 0..2_000 {
                if done.load(Ordering::SeqCst) {
                    break;
                }
                let len = 1_024 + rng.below(199 * 1_024) as usize;
                let key = format!("w{w}/obj-{n}");
                match c.put("rolling", &key, content(&key, len)).await {
                    Ok(_) => {
                        acked.lock().unwrap().insert(key, len);
                    }
                    Err(e) => failed.lock().unwrap().push(format!("{key}: {e}")),
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let killed = crasher.join().unwrap();
    let acked = acked.lock().unwrap().clone();
    let failed = failed.lock().unwrap().clone();
    println!("rolling crashes of {killed:?}: {} PUTs acknowledged, {} failed", acked.len(), failed.len());
    assert!(failed.is_empty(), "{} PUTs failed: {:#?}", failed.len(), &failed[..failed.len().min(5)]);
    assert!(acked.len() >= 20, "too few writes to mean anything: {}", acked.len());
    read_all(&c, "rolling", &acked).await;
}
