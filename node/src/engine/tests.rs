//! Model-based engine tests: random operation sequences against a
//! `BTreeMap` model, with crash-restarts in between (the runtime is dropped
//! without a clean close, so reopening replays the log), on both I/O
//! backends. Any divergence from the model fails with the seed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tessera_wire::{BucketInfo, ObjectMeta, ShardIndex, StorageClass, StripeIndex, TargetId, VersionId};

use super::*;
use crate::io::{Psync, Uring};

const STRIPE: usize = 8_192;

fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn config(dir: &Path, capacity: u64) -> EngineConfig {
    EngineConfig {
        target: TargetId(0),
        path: dir.join("target.dat"),
        index_path: dir.join("target.redb"),
        capacity_bytes: capacity,
        segment_bytes: 256 * 1_024,
        reserve_segments: 2,
        checkpoint_interval: Duration::from_millis(300),
        compaction_live_fraction_max: 0.5,
        placement_groups: 16,
    }
}

#[derive(Clone, Copy)]
enum Backend {
    Psync,
    Uring,
}

/// Run `f` against a freshly opened engine in its own runtime; dropping the
/// runtime at the end kills the engine's tasks like a crash would.
fn incarnation<T>(backend: Backend, cfg: &EngineConfig, f: impl AsyncFnOnce(Engine) -> T) -> T {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let io = match backend {
            Backend::Psync => Io::Psync(Psync),
            Backend::Uring => {
                let ring = Uring::new().expect("io_uring");
                tokio::task::spawn_local(ring.clone().run());
                Io::Uring(ring)
            }
        };
        let engine = Engine::open(cfg.clone(), io, BufPool::default()).await.expect("open engine");
        f(engine).await
    })
}

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed;
    (0..len).map(|_| next(&mut s) as u8).collect()
}

pub(crate) async fn put(
    engine: &Engine,
    bucket: &str,
    key: &str,
    version: VersionId,
    data: &[u8],
) -> Result<bool, EngineError> {
    let stripes = data.len().div_ceil(STRIPE);
    let meta = ObjectMeta {
        key: key.into(),
        version,
        size_bytes: data.len() as u64,
        stripe_bytes: STRIPE as u32,
        shard_bytes: STRIPE as u32,
        ec: tessera_wire::EcProfile { data: 1, parity: 0 },
        stripe_count: stripes as u32,
        content_crc32c: crc32c::crc32c(data),
        created_ms: version.millis(),
        content_type: None,
        owner: "test".into(),
        user_meta: vec![],
        storage_class: StorageClass::Standard,
        delete_marker: false,
        acl: tessera_wire::Acl::Private,
        origin: None,
    };
    let chunks: Vec<&[u8]> = if data.is_empty() { vec![&[][..]] } else { data.chunks(STRIPE).collect() };
    let last = chunks.len() - 1;
    let mut prepared = false;
    for (i, chunk) in chunks.into_iter().enumerate() {
        let mut buf = engine.record_buffer(chunk.len())?;
        buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + chunk.len()].copy_from_slice(chunk);
        prepared = engine
            .put_shard(
                bucket,
                key,
                version,
                StripeIndex(i as u32),
                ShardIndex(0),
                crc32c::crc32c(chunk),
                (i == last).then(|| meta.clone()),
                buf,
                chunk.len(),
            )
            .await?;
    }
    if prepared {
        engine.commit(bucket, key, version).await?;
    }
    Ok(prepared)
}

pub(crate) async fn get(engine: &Engine, bucket: &str, key: &str) -> Result<Vec<u8>, EngineError> {
    let meta = engine.head(bucket, key, None)?;
    let mut out = Vec::new();
    for s in 0..meta.stripe_count {
        let r = engine.get_shard(bucket, key, meta.version, StripeIndex(s), ShardIndex(0), None).await?;
        out.extend_from_slice(&r.buf.as_slice()[r.range.clone()]);
    }
    Ok(out)
}

fn bucket(name: &str, versioned: bool) -> BucketInfo {
    BucketInfo {
        name: name.into(),
        versioned,
        owner: "test".into(),
        created_ms: 1,
        storage_class: StorageClass::Standard,
    }
}

async fn list_all(engine: &Engine, prefix: &str, delimiter: Option<&str>, limit: u32) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut prefixes = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = engine.list("b1", prefix, delimiter, after.as_deref(), limit).expect("list");
        keys.extend(page.entries.iter().map(|e| e.key.clone()));
        prefixes.extend(page.common_prefixes.iter().cloned());
        let last_key = page.entries.last().map(|e| e.key.clone());
        let last_prefix = page.common_prefixes.last().cloned();
        after = match (last_key, last_prefix) {
            (Some(k), Some(p)) => Some(k.max(p)),
            (k, p) => k.or(p),
        };
        if !page.truncated {
            break;
        }
    }
    (keys, prefixes)
}

fn model_list(model: &BTreeMap<String, Vec<u8>>, prefix: &str, delimiter: Option<&str>) -> (Vec<String>, Vec<String>) {
    let mut keys = Vec::new();
    let mut prefixes: Vec<String> = Vec::new();
    for k in model.keys().filter(|k| k.starts_with(prefix)) {
        match delimiter.and_then(|d| k[prefix.len()..].find(d).map(|i| k[..prefix.len() + i + d.len()].to_string())) {
            Some(cp) => {
                if prefixes.last() != Some(&cp) {
                    prefixes.push(cp)
                }
            }
            None => keys.push(k.clone()),
        }
    }
    (keys, prefixes)
}

fn tempdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tessera-engine-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("tempdir");
    d
}

fn model_run(backend: Backend, seed: u64, name: &str) {
    let dir = tempdir(name);
    let cfg = config(&dir, 8 * 1_024 * 1_024);
    let keys: Vec<String> = (0..24).map(|i| format!("{}/{}", ["a", "b", "c/d"][i % 3], i)).collect();
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut rng = seed;
    let mut clock = 1_000u64;
    incarnation(backend, &cfg, async |e: Engine| {
        e.create_bucket(bucket("b1", false)).await.expect("bucket");
    });
    for round in 0..6 {
        let ops = 40 + next(&mut rng) % 40;
        let (m, r, c) = incarnation(backend, &cfg, async |e: Engine| {
            let mut model = model.clone();
            let mut rng = rng;
            let mut clock = clock;
            // After a restart the index must equal the model exactly.
            for (k, v) in &model {
                assert_eq!(
                    get(&e, "b1", k).await.as_ref().ok(),
                    Some(v),
                    "seed {seed} round {round}: {k} after restart"
                );
            }
            for _ in 0..ops {
                let key = keys[(next(&mut rng) % keys.len() as u64) as usize].clone();
                clock += 1;
                match next(&mut rng) % 10 {
                    0..=3 => {
                        let len = (next(&mut rng) % (3 * STRIPE as u64 + 100)) as usize;
                        let data = content(next(&mut rng), len);
                        put(&e, "b1", &key, VersionId(u128::from(clock) << 64), &data).await.expect("put");
                        model.insert(key, data);
                    }
                    4..=5 => {
                        e.delete("b1", &key, None, VersionId(u128::from(clock) << 64)).await.expect("delete");
                        model.remove(&key);
                    }
                    6..=7 => match model.get(&key) {
                        Some(v) => assert_eq!(&get(&e, "b1", &key).await.expect("get"), v, "seed {seed}: get {key}"),
                        None => assert!(matches!(get(&e, "b1", &key).await, Err(EngineError::NoSuchKey { .. }))),
                    },
                    _ => {
                        let prefix = ["", "a", "c/", "b/1"][(next(&mut rng) % 4) as usize];
                        let delim = if next(&mut rng).is_multiple_of(2) { Some("/") } else { None };
                        let limit = 1 + (next(&mut rng) % 5) as u32;
                        assert_eq!(
                            list_all(&e, prefix, delim, limit).await,
                            model_list(&model, prefix, delim),
                            "seed {seed}: list {prefix:?} {delim:?} limit {limit}"
                        );
                    }
                }
            }
            if next(&mut rng).is_multiple_of(2) {
                e.checkpoint().await.expect("checkpoint");
            }
            (model, rng, clock)
        });
        model = m;
        rng = r;
        clock = c;
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn model_psync() {
    for seed in 1..=4 {
        model_run(Backend::Psync, seed, &format!("model-psync-{seed}"));
    }
}

#[test]
fn model_uring() {
    for seed in 101..=104 {
        model_run(Backend::Uring, seed, &format!("model-uring-{seed}"));
    }
}

#[test]
fn full_target_refuses_writes_then_recovers_space_after_deletes() {
    for backend in [Backend::Psync, Backend::Uring] {
        let dir = tempdir(&format!("full-{}", backend as u8));
        // 8 segments of 256 KiB, 2 reserved.
        let cfg = config(&dir, 8 * 256 * 1_024 + 4_096);
        incarnation(backend, &cfg, async |e: Engine| {
            e.create_bucket(bucket("b1", false)).await.expect("bucket");
            let data = content(7, 60_000);
            let mut stored = Vec::new();
            for i in 0..100 {
                match put(&e, "b1", &format!("k{i}"), VersionId((i as u128 + 1) << 64), &data).await {
                    Ok(_) => stored.push(i),
                    Err(EngineError::TargetFull { .. }) => break,
                    Err(other) => panic!("unexpected error {other}"),
                }
            }
            assert!(stored.len() > 10 && stored.len() < 100, "filled after {} objects", stored.len());
            for i in &stored {
                assert_eq!(get(&e, "b1", &format!("k{i}")).await.expect("read while full"), data);
            }
            for i in &stored[..stored.len() - 2] {
                e.delete("b1", &format!("k{i}"), None, VersionId(1_000 << 64)).await.expect("delete while full");
            }
            let mut ok = false;
            for _ in 0..100 {
                e.kick_maintenance();
                tokio::time::sleep(Duration::from_millis(100)).await;
                if put(&e, "b1", "after", VersionId(2_000 << 64), &data).await.is_ok() {
                    ok = true;
                    break;
                }
            }
            assert!(ok, "space was never reclaimed");
            for i in &stored[stored.len() - 2..] {
                assert_eq!(get(&e, "b1", &format!("k{i}")).await.expect("survivor"), data);
            }
        });
        incarnation(backend, &cfg, async |e: Engine| {
            assert_eq!(get(&e, "b1", "after").await.expect("after restart"), content(7, 60_000));
        });
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn compaction_moves_live_shards_and_they_survive_restart() {
    let dir = tempdir("compact");
    let cfg = config(&dir, 16 * 256 * 1_024 + 4_096);
    let data: Vec<Vec<u8>> = (0..40).map(|i| content(i, 20_000)).collect();
    incarnation(Backend::Uring, &cfg, async |e: Engine| {
        e.create_bucket(bucket("b1", false)).await.expect("bucket");
        for (i, d) in data.iter().enumerate() {
            put(&e, "b1", &format!("k{i}"), VersionId((i as u128 + 1) << 64), d).await.expect("put");
        }
        // Delete most keys so early segments become mostly dead.
        for i in 0..40 {
            if i % 5 != 0 {
                e.delete("b1", &format!("k{i}"), None, VersionId(500 << 64)).await.expect("delete");
            }
        }
        for _ in 0..50 {
            e.kick_maintenance();
            tokio::time::sleep(Duration::from_millis(100)).await;
            if e.stats().compactions > 0 {
                break;
            }
        }
        assert!(e.stats().compactions > 0, "no compaction ran");
    });
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        for (i, d) in data.iter().enumerate() {
            let got = get(&e, "b1", &format!("k{i}")).await;
            if i % 5 == 0 {
                assert_eq!(&got.expect("live key"), d);
            } else {
                assert!(matches!(got, Err(EngineError::NoSuchKey { .. })));
            }
        }
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn corrupt_data_is_reported_never_served() {
    let dir = tempdir("corrupt");
    let cfg = config(&dir, 4 * 1_024 * 1_024);
    let a = content(1, 10_000);
    let b = content(2, 10_000);
    incarnation(Backend::Uring, &cfg, async |e: Engine| {
        e.create_bucket(bucket("b1", false)).await.expect("bucket");
        put(&e, "b1", "a", VersionId(1 << 64), &a).await.expect("put a");
        put(&e, "b1", "b", VersionId(2 << 64), &b).await.expect("put b");
    });
    let mut raw = std::fs::read(&cfg.path).expect("read target");
    let at = raw.windows(64).position(|w| w == &a[100..164]).expect("find a's bytes");
    raw[at + 3] ^= 0xff;
    std::fs::write(&cfg.path, raw).expect("write target");
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        assert!(matches!(get(&e, "b1", "a").await, Err(EngineError::ChecksumMismatch { .. })));
        assert_eq!(get(&e, "b1", "b").await.expect("b unaffected"), b);
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_version_without_its_commit_is_never_served_and_is_dropped() {
    let dir = tempdir("uncommitted");
    let cfg = config(&dir, 4 * 1_024 * 1_024);
    incarnation(Backend::Uring, &cfg, async |e: Engine| {
        e.create_bucket(bucket("b1", true)).await.expect("bucket");
        put(&e, "b1", "k", VersionId(1 << 64), &content(1, 100)).await.expect("v1");
        // Stripe 0 of a two-stripe v2, never committed.
        let mut buf = e.record_buffer(STRIPE).expect("buf");
        let chunk = content(2, STRIPE);
        buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + STRIPE].copy_from_slice(&chunk);
        e.put_shard(
            "b1",
            "k",
            VersionId(2 << 64),
            StripeIndex(0),
            ShardIndex(0),
            crc32c::crc32c(&chunk),
            None,
            buf,
            STRIPE,
        )
        .await
        .expect("stripe 0");
        assert_eq!(get(&e, "b1", "k").await.expect("v1 still latest"), content(1, 100));
    });
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        assert_eq!(get(&e, "b1", "k").await.expect("v1"), content(1, 100));
        assert!(e.get_shard("b1", "k", VersionId(2 << 64), StripeIndex(0), ShardIndex(0), None).await.is_err());
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn versioned_bucket_keeps_versions_and_delete_markers_hide_the_key() {
    let dir = tempdir("versioned");
    let cfg = config(&dir, 4 * 1_024 * 1_024);
    incarnation(Backend::Uring, &cfg, async |e: Engine| {
        e.create_bucket(bucket("v1", true)).await.expect("bucket");
        put(&e, "v1", "k", VersionId(1 << 64), b"one").await.expect("v1");
        put(&e, "v1", "k", VersionId(2 << 64), b"two").await.expect("v2");
        assert_eq!(get(&e, "v1", "k").await.expect("latest"), b"two");
        let (removed, marker) = e.delete("v1", "k", None, VersionId(3 << 64)).await.expect("delete");
        assert!(removed.is_empty() && marker == Some(VersionId(3 << 64)));
        assert!(matches!(e.head("v1", "k", None), Err(EngineError::NoSuchKey { .. })));
        assert_eq!(e.head("v1", "k", Some(VersionId(1 << 64))).expect("old version").size_bytes, 3);
        let listed = e.list("v1", "", None, None, 10).expect("list").entries;
        assert!(listed.len() == 1 && listed[0].delete_marker, "the marker is listed, flagged: {listed:?}");
        let (removed, _) =
            e.delete("v1", "k", Some(VersionId(3 << 64)), VersionId(4 << 64)).await.expect("drop marker");
        assert_eq!(removed, vec![VersionId(3 << 64)]);
        assert_eq!(get(&e, "v1", "k").await.expect("v2 visible again"), b"two");
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// Two-phase writes: a prepared version is durable (it survives a crash and
/// its shards can be read by version) but is not served as the latest, not
/// listed, until committed; a purged version leaves a tombstone that
/// refuses the same version later.
#[test]
fn prepared_versions_wait_for_commit_and_purges_are_final() {
    let dir = tempdir("twophase");
    let cfg = config(&dir, 4 * 1_024 * 1_024);
    let v1 = VersionId(1 << 64);
    let v2 = VersionId(2 << 64);
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        e.create_bucket(bucket("b1", false)).await.expect("bucket");
        put(&e, "b1", "k", v1, b"one").await.expect("v1 committed");
        // v2 prepared only: write its shard with meta but no commit.
        let meta = ObjectMeta {
            key: "k".into(),
            version: v2,
            size_bytes: 3,
            stripe_bytes: STRIPE as u32,
            shard_bytes: STRIPE as u32,
            ec: tessera_wire::EcProfile { data: 1, parity: 0 },
            stripe_count: 1,
            content_crc32c: crc32c::crc32c(b"two"),
            created_ms: 0,
            content_type: None,
            owner: "t".into(),
            user_meta: vec![],
            storage_class: StorageClass::Standard,
            delete_marker: false,
            acl: tessera_wire::Acl::Private,
            origin: None,
        };
        let mut buf = e.record_buffer(3).expect("buf");
        buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + 3].copy_from_slice(b"two");
        let prepared = e
            .put_shard("b1", "k", v2, StripeIndex(0), ShardIndex(0), crc32c::crc32c(b"two"), Some(meta), buf, 3)
            .await
            .expect("prepare");
        assert!(prepared);
    });
    // A crash later the prepared version is still there, still not served.
    incarnation(Backend::Uring, &cfg, async |e: Engine| {
        assert_eq!(e.head("b1", "k", None).expect("latest").version, v1);
        let view = e.view("b1", "k", Some(v2), &[]).expect("view");
        assert!(!view.committed && view.meta.is_some(), "{view:?}");
        let r = e.get_shard("b1", "k", v2, StripeIndex(0), ShardIndex(0), None).await.expect("read prepared");
        assert_eq!(&r.buf.as_slice()[r.range.clone()], b"two");
        assert_eq!(e.list("b1", "", None, None, 10).expect("list").entries[0].version, v1);
        e.commit("b1", "k", v2).await.expect("commit");
        e.commit("b1", "k", v2).await.expect("commit is idempotent");
        assert_eq!(get(&e, "b1", "k").await.expect("v2"), b"two");
        // Unversioned: committing v2 removed v1.
        assert!(e.head("b1", "k", Some(v1)).is_err());
        // Purge v2: gone, tombstoned, and a late write of v2 is refused.
        assert!(e.purge("b1", "k", v2, None).await.expect("purge"));
        assert!(e.view("b1", "k", None, &[]).expect("view").purged.contains(&v2));
        let late = put(&e, "b1", "k", v2, b"two").await;
        assert!(matches!(late, Err(EngineError::VersionPurged { .. })), "{late:?}");
        // Commit of a version never prepared is refused.
        assert!(matches!(e.commit("b1", "k", VersionId(9 << 64)).await, Err(EngineError::NotPrepared { .. })));
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// Every change in the log, across groups, by identity, with LSNs checked
/// ascending within each group.
fn whole_log(e: &Engine) -> std::collections::BTreeSet<tessera_wire::crr::ChangeId> {
    let mut out = std::collections::BTreeSet::new();
    for (pg, entries, _, _) in e.change_summary().expect("summary") {
        let mut after = 0;
        let mut seen = 0;
        loop {
            let page = e.change_log(pg, after, 7).expect("page");
            for (lsn, c) in &page.entries {
                assert!(*lsn > after, "lsns ascend in group {pg}");
                after = *lsn;
                out.insert(c.id());
                seen += 1;
            }
            if !page.truncated {
                break;
            }
        }
        assert_eq!(seen, entries, "summary count of group {pg}");
    }
    out
}

/// The change log against a model across crash-restarts: every commit
/// and every new purge that was acknowledged is in the log after a crash
/// unless it was forgotten; forgetting only ever brings back entries that
/// were forgotten (forgets are not log records); cursors are durable.
#[test]
fn change_log_holds_every_acknowledged_change_across_crashes() {
    use std::collections::BTreeSet;
    use tessera_wire::crr::{ChangeId, RuleCursor};
    let dir = tempdir("changelog");
    let mut cfg = config(&dir, 8 * 1_024 * 1_024);
    cfg.placement_groups = 4;
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        e.create_bucket(bucket("b1", true)).await.expect("bucket");
    });
    let mut live: BTreeSet<ChangeId> = BTreeSet::new();
    let mut forgotten: BTreeSet<ChangeId> = BTreeSet::new();
    let mut versions: Vec<(String, VersionId)> = Vec::new();
    let mut rng = 7u64;
    let mut clock = 1_000u64;
    let mut cursor_model: Option<(u32, RuleCursor)> = None;
    for round in 0..5 {
        let (l, f, v, r, c, cm) = incarnation(Backend::Psync, &cfg, async |e: Engine| {
            let (mut live, mut forgotten, mut versions) = (live.clone(), forgotten.clone(), versions.clone());
            let (mut rng, mut clock, mut cursor_model) = (rng, clock, cursor_model.clone());
            let log = whole_log(&e);
            assert!(live.is_subset(&log), "round {round}: acknowledged changes missing after restart");
            assert!(log.difference(&live).all(|c| forgotten.contains(c)), "round {round}: unexplained entries");
            live = log;
            if let Some((pg, want)) = &cursor_model {
                let got = e.change_log(*pg, 0, 1).expect("page").cursors;
                assert_eq!(got, vec![("rule-a".to_string(), want.clone())], "round {round}: cursor durable");
            }
            for _ in 0..30 {
                clock += 1;
                let key = format!("k{}", next(&mut rng) % 8);
                match next(&mut rng) % 4 {
                    0 | 1 => {
                        let version = VersionId(u128::from(clock) << 64);
                        put(&e, "b1", &key, version, &content(clock, 100)).await.expect("put");
                        let id = ChangeId { bucket: "b1".into(), key: key.clone(), version, purge: false };
                        live.insert(id);
                        versions.push((key, version));
                    }
                    2 if !versions.is_empty() => {
                        let (key, version) = versions.swap_remove((next(&mut rng) % versions.len() as u64) as usize);
                        e.purge("b1", &key, version, Some("r9")).await.expect("purge");
                        live.insert(ChangeId { bucket: "b1".into(), key: key.clone(), version, purge: true });
                        // A second purge of the same version is no change.
                        e.purge("b1", &key, version, None).await.expect("purge again");
                    }
                    _ => {
                        let Some(c) = live.iter().nth((next(&mut rng) % (live.len() as u64 + 1)) as usize).cloned()
                        else {
                            continue;
                        };
                        let pg = changelog::pg_of(4, &c.bucket, &c.key);
                        assert_eq!(e.forget_changes(pg, std::slice::from_ref(&c)).expect("forget"), 1);
                        live.remove(&c);
                        forgotten.insert(c);
                    }
                }
            }
            let pg = (next(&mut rng) % 4) as u32;
            let cursor = RuleCursor {
                shipped_lsn: clock,
                backfill_after: Some(tessera_wire::repair::VersionRef {
                    bucket: "b1".into(),
                    key: "k1".into(),
                    version: VersionId(3),
                }),
                backfill_done: false,
            };
            e.set_crr_cursor(pg, "rule-a", cursor.clone()).await.expect("cursor");
            if let Some((old, _)) = &cursor_model {
                if *old != pg {
                    e.set_crr_cursor(*old, "rule-a", RuleCursor::default()).await.expect("reset");
                }
            }
            cursor_model = Some((pg, cursor));
            assert_eq!(whole_log(&e), live, "round {round}: log equals the model before the crash");
            (live, forgotten, versions, rng, clock, cursor_model)
        });
        (live, forgotten, versions, rng, clock, cursor_model) = (l, f, v, r, c, cm);
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Unversioned buckets: once the newest version of a key is purged, a late
/// commit of an older version (a slow writer, or a replica from another
/// region) stays dead, on every replica alike; a newer one lives.
#[test]
fn a_purged_newest_version_keeps_older_ones_dead_in_unversioned_buckets() {
    let dir = tempdir("floor");
    let cfg = config(&dir, 8 * 1_024 * 1_024);
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        e.create_bucket(bucket("u", false)).await.expect("bucket");
        let (v1, v2, v3) = (VersionId(1 << 64), VersionId(2 << 64), VersionId(3 << 64));
        put(&e, "u", "k", v2, b"two").await.expect("put v2");
        assert!(e.purge("u", "k", v2, None).await.expect("purge v2"));
        put(&e, "u", "k", v1, b"one").await.expect("late v1");
        assert!(matches!(get(&e, "u", "k").await, Err(EngineError::NoSuchKey { .. })), "v1 is below the floor");
        put(&e, "u", "k", v3, b"three").await.expect("put v3");
        assert_eq!(get(&e, "u", "k").await.expect("v3"), b"three");
        // Versioned buckets keep every version whatever was purged.
        e.create_bucket(bucket("v", true)).await.expect("bucket");
        put(&e, "v", "k", v2, b"two").await.expect("put v2");
        assert!(e.purge("v", "k", v2, None).await.expect("purge v2"));
        put(&e, "v", "k", v1, b"one").await.expect("put v1");
        assert_eq!(get(&e, "v", "k").await.expect("v1"), b"one");
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// A page of 1,000 long keys would not fit in one response frame (the
/// body limit is 64 KiB): pages end early, every page encodes, and paging
/// still returns every key exactly once. tessera-bench's list job found a
/// node dropping the stream on such a page.
#[test]
fn listing_pages_of_long_keys_fit_in_one_frame() {
    let dir = tempdir("longkeys");
    let cfg = config(&dir, 16 * 1_024 * 1_024);
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        e.create_bucket(bucket("b1", false)).await.expect("bucket");
        let long = "k".repeat(900);
        let mut want = Vec::new();
        for i in 0..150u64 {
            let key = format!("d{}/{long}{i:04}", i % 3);
            put(&e, "b1", &key, VersionId(u128::from(i + 1) << 64), b"x").await.expect("put");
            want.push(key);
        }
        want.sort();
        fn fits(body: &impl tessera_wire::FrameBody) -> Result<(), String> {
            tessera_wire::encode_frame(1, body, 0, 1).map(|_| ()).map_err(|err| err.to_string())
        }
        let page = e.list("b1", "", None, None, 1_000).expect("list");
        assert!(page.truncated && page.entries.len() < 150, "{} entries", page.entries.len());
        fits(&tessera_wire::Response::ListOk(page)).expect("a full page encodes");
        let versions = e.list_versions("b1", "", None, 1_000).expect("versions");
        assert!(versions.truncated);
        fits(&tessera_wire::Response::ListVersionsOk(versions)).expect("a full versions page encodes");
        let (keys, prefixes) = list_all(&e, "", None, 1_000).await;
        assert_eq!(keys, want);
        assert!(prefixes.is_empty());
        let (keys, prefixes) = list_all(&e, "d1/", None, 1_000).await;
        assert_eq!(keys, want.iter().filter(|k| k.starts_with("d1/")).cloned().collect::<Vec<_>>());
        assert!(prefixes.is_empty());
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// The same for change-log pages: 256 changes of long keys would not fit
/// in one frame, so a page ends early, encodes, and paging by LSN still
/// returns every change once (the streamer would otherwise fail on that
/// group forever).
#[test]
fn change_log_pages_of_long_keys_fit_in_one_frame() {
    let dir = tempdir("longchanges");
    let mut cfg = config(&dir, 16 * 1_024 * 1_024);
    cfg.placement_groups = 1;
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        e.create_bucket(bucket("b1", false)).await.expect("bucket");
        let long = "c".repeat(1_000);
        for i in 0..100u64 {
            put(&e, "b1", &format!("{long}{i:04}"), VersionId(u128::from(i + 1) << 64), b"x").await.expect("put");
        }
        let mut seen = 0;
        let mut after = 0;
        let mut pages = 0;
        loop {
            let page = e.change_log(0, after, tessera_wire::crr::CHANGES_PER_PAGE_MAX).expect("page");
            tessera_wire::encode_frame(1, &tessera_wire::Response::ChangeLogOk(page.clone()), 0, 1)
                .expect("a change-log page encodes");
            pages += 1;
            seen += page.entries.len();
            match page.entries.last() {
                Some((lsn, _)) if page.truncated => after = *lsn,
                _ => break,
            }
        }
        assert_eq!(seen, 100);
        assert!(pages > 1, "100 changes of 1 KB keys cannot fit one page");
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// A map change can give a target that keeps a version another position
/// in its group. It then holds the version but not the shard readers ask it
/// for: anti-entropy must see that copy as corrupt (out of the digest, a
/// rewrite planned), and as fine again once the right shard is written.
/// Delete markers hold no shard and are never misplaced.
#[test]
fn a_version_held_at_another_group_position_counts_as_corrupt_until_rewritten() {
    use tessera_wire::repair::VersionState;
    let dir = tempdir("misplaced");
    let cfg = config(&dir, 4 * 1_024 * 1_024);
    let (v1, marker) = (VersionId(1 << 64), VersionId(2 << 64));
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        e.create_bucket(bucket("b", true)).await.expect("bucket");
        // Stored as shard 1 of its group (put() writes shard 0; rewrite it as 1).
        put(&e, "b", "k", v1, b"data").await.expect("put");
        let mut buf = e.record_buffer(4).expect("buf");
        buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + 4].copy_from_slice(b"par1");
        e.repair_shard("b", "k", v1, StripeIndex(0), ShardIndex(1), crc32c::crc32c(b"par1"), buf, 4)
            .await
            .expect("shard 1");
        e.delete("b", "m", None, marker).await.expect("a delete marker for key m");
        let pg_of = |_: &str, _: &str| 7u32;
        let state = |at: u16, key: &str| {
            let list = e.pg_list(&pg_of, &|_| Some(at), 7, None, 100).expect("list");
            list.entries.iter().find(|x| x.at.key == key).map(|x| x.state)
        };
        let digest = |at: u16| e.pg_digests(&pg_of, &|_| Some(at), &[7]).expect("digest")[0];
        // Position 1 (and 0, where put() wrote): held.
        assert_eq!(state(1, "k"), Some(VersionState::Committed));
        assert_eq!(state(0, "k"), Some(VersionState::Committed));
        // Position 5: the version is here, its shard 5 is not.
        assert_eq!(state(5, "k"), Some(VersionState::Corrupt));
        assert_eq!(digest(5).versions, digest(1).versions - 1, "a misplaced copy is out of the digest");
        assert_ne!(digest(5).digest, digest(1).digest);
        // The marker has no shard: at any position it is what it is.
        assert_eq!(state(5, "m"), state(1, "m"));
        assert!(state(5, "m").is_some());
        // Repair writes shard 5: the copy is whole again at position 5.
        let mut buf = e.record_buffer(4).expect("buf");
        buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + 4].copy_from_slice(b"par5");
        e.repair_shard("b", "k", v1, StripeIndex(0), ShardIndex(5), crc32c::crc32c(b"par5"), buf, 4)
            .await
            .expect("shard 5");
        assert_eq!(state(5, "k"), Some(VersionState::Committed));
        assert_eq!(digest(5), digest(1));
        // Not a member (None): nothing is judged.
        assert_eq!(e.pg_list(&pg_of, &|_| None, 7, None, 100).expect("list").entries.len(), 2);
    });
    let _ = std::fs::remove_dir_all(dir);
}

/// Replay takes its times from the records: a prepared version keeps the
/// time it was prepared (the sweeper's clock) and a change keeps the time
/// it was committed (replication lag), however much later the target
/// recovers. Replay once stamped both with the time of the replay.
#[test]
fn replay_keeps_the_times_records_were_written() {
    let dir = tempdir("replay-times");
    let mut cfg = config(&dir, 4 * 1_024 * 1_024);
    // No checkpoint before the crash: everything below is replayed.
    cfg.checkpoint_interval = Duration::from_secs(3_600);
    cfg.placement_groups = 1;
    let v1 = VersionId(1 << 64);
    let v2 = VersionId(2 << 64);
    let before = crate::engine::now_ms();
    let committed_at = incarnation(Backend::Psync, &cfg, async |e: Engine| {
        e.create_bucket(bucket("b1", true)).await.expect("bucket");
        put(&e, "b1", "k", v1, b"one").await.expect("v1 committed");
        let mut buf = e.record_buffer(3).expect("buf");
        buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + 3].copy_from_slice(b"two");
        let mut meta = e.head("b1", "k", Some(v1)).expect("v1 meta");
        meta.version = v2;
        meta.content_crc32c = crc32c::crc32c(b"two");
        e.put_shard("b1", "k", v2, StripeIndex(0), ShardIndex(0), crc32c::crc32c(b"two"), Some(meta), buf, 3)
            .await
            .expect("prepare v2");
        let log = e.change_log(0, 0, 10).expect("log");
        assert_eq!(log.entries.len(), 1, "{log:?}");
        log.entries[0].1.at_ms
    });
    let after = crate::engine::now_ms();
    assert!((before..=after).contains(&committed_at), "{before} <= {committed_at} <= {after}");
    // Recover well after the writes, from the log alone (the index is
    // lost, as a crash before its next durable commit may lose it): the
    // replay must not read the clock.
    std::thread::sleep(Duration::from_millis(1_100));
    std::fs::remove_file(&cfg.index_path).expect("drop the index");
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        let log = e.change_log(0, 0, 10).expect("log");
        assert_eq!(log.entries.len(), 1, "{log:?}");
        assert_eq!(log.entries[0].1.at_ms, committed_at, "the change keeps its commit time");
        let stale = e.prepared_before(after + 1, 10).expect("prepared");
        assert_eq!(stale.len(), 1, "v2 was prepared before {after}, not at the replay: {stale:?}");
        assert_eq!(stale[0].2, v2);
    });
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn bucket_pages_cover_every_bucket_once_in_name_order_across_restarts() {
    let dir = tempdir("bucket-pages");
    let cfg = config(&dir, 8 * 1_024 * 1_024);
    let mut rng = 7u64;
    let mut model = std::collections::BTreeSet::new();
    for round in 0..3 {
        let added: Vec<String> = (0..5).map(|_| format!("b{:05}", next(&mut rng) % 100_000)).collect();
        let pages = incarnation(Backend::Psync, &cfg, async |e: Engine| {
            for name in &added {
                e.create_bucket(bucket(name, false)).await.expect("bucket");
            }
            let mut seen = Vec::new();
            for limit in [1usize, 2, 3, 7, 200] {
                let (mut names, mut after) = (Vec::new(), None::<String>);
                loop {
                    let (page, more) = e.buckets(after.as_deref(), limit).expect("buckets");
                    assert!(page.len() <= limit);
                    names.extend(page.iter().map(|b| b.name.clone()));
                    after = page.last().map(|b| b.name.clone());
                    if !more {
                        break;
                    }
                    assert!(!page.is_empty(), "a truncated page is never empty");
                }
                seen.push(names);
            }
            seen
        });
        model.extend(added);
        let want: Vec<String> = model.iter().cloned().collect();
        for names in pages {
            assert_eq!(names, want, "round {round}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Bucket ACLs and policies: the newest stamp wins whatever order the sets
/// arrive in, a set for a bucket the target lacks is refused, and what was
/// acknowledged survives a crash (replayed from the log, no checkpoint).
#[test]
fn bucket_access_keeps_the_newest_stamp_across_crashes() {
    use tessera_wire::access::{BucketAccess, Policy};
    let dir = tempdir("access");
    let cfg = config(&dir, 16 * 256 * 1_024 + 4_096);
    let policy = Policy::from_json(
        "b1",
        r#"{"Statement":{"Effect":"Allow","Principal":{"Tessera":"user:bob"},"Action":"get","Resource":"b1/*"}}"#,
    )
    .expect("policy");
    let newer = BucketAccess { acl: tessera_wire::Acl::PublicRead, policy: Some(policy), stamp: VersionId(20) };
    let older = BucketAccess { acl: tessera_wire::Acl::PublicReadWrite, policy: None, stamp: VersionId(10) };
    incarnation(Backend::Uring, &cfg, async |e: Engine| {
        assert!(matches!(e.set_access("b1", older.clone()).await, Err(EngineError::NoSuchBucket { .. })));
        e.create_bucket(bucket("b1", false)).await.expect("bucket");
        assert_eq!(e.bucket_access("b1").expect("read").access, BucketAccess::default());
        assert_eq!(e.set_access("b1", newer.clone()).await.expect("set"), newer);
        assert_eq!(e.set_access("b1", older.clone()).await.expect("late set"), newer, "an older stamp changed it");
        assert_eq!(e.bucket_access("b1").expect("read from memory").access, newer, "the cache saw the change");
    });
    incarnation(Backend::Psync, &cfg, async |e: Engine| {
        assert_eq!(e.bucket_access("b1").expect("read after crash").access, newer);
    });
    let _ = std::fs::remove_dir_all(dir);
}
