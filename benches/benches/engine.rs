//! The storage engine on a local file (under target/, or
//! TESSERA_BENCH_DIR): appending a shard durably (record + index commit,
//! acknowledged when on disk) and reading one back with its checksum
//! verified, at queue depth 1, for 4 KiB and 1 MiB shards.

use std::path::PathBuf;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tessera_node::engine::{single_shard_meta, Engine, EngineConfig};
use tessera_node::io::{BufPool, Io, Psync, Uring, ALIGN_BYTES};
use tessera_wire::{BucketInfo, ShardIndex, StorageClass, StripeIndex, TargetId, VersionId};

fn bench(c: &mut Criterion) {
    let dir = std::env::var_os("TESSERA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/criterion-engine"));
    std::fs::create_dir_all(&dir).expect("bench dir");
    let path = dir.join("engine.dat");
    let index = dir.join("engine.redb");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&index);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    let engine = local.block_on(&rt, async {
        let io = match Uring::new() {
            Ok(ring) => {
                tokio::task::spawn_local(ring.clone().run());
                Io::Uring(ring)
            }
            Err(_) => Io::Psync(Psync),
        };
        let cfg = EngineConfig {
            target: TargetId(0),
            path: path.clone(),
            index_path: index.clone(),
            capacity_bytes: 4 << 30,
            segment_bytes: 64 << 20,
            reserve_segments: 2,
            checkpoint_interval: Duration::from_secs(5),
            compaction_live_fraction_max: 0.5,
            placement_groups: 0,
        };
        let e = Engine::open(cfg, io, BufPool::default()).await.expect("engine");
        e.create_bucket(BucketInfo {
            name: "b".into(),
            versioned: false,
            owner: "bench".into(),
            created_ms: 0,
            storage_class: StorageClass::Standard,
        })
        .await
        .expect("bucket");
        e
    });
    let mut g = c.benchmark_group("engine");
    g.sample_size(20);
    let mut n = 0u128;
    for len in [4_096usize, 1 << 20] {
        let data = vec![0x5au8; len];
        let crc = crc32c::crc32c(&data);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("append shard", len), |b| {
            b.iter(|| {
                n += 1;
                let key = format!("k{}", n % 512);
                let v = VersionId(n << 16);
                let mut buf = engine.record_buffer(len).expect("buffer");
                buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + len].copy_from_slice(&data);
                local
                    .block_on(
                        &rt,
                        engine.put_shard(
                            "b",
                            &key,
                            v,
                            StripeIndex(0),
                            ShardIndex(0),
                            crc,
                            Some(single_shard_meta(&key, v, len, crc, "bench")),
                            buf,
                            len,
                        ),
                    )
                    .expect("put");
            })
        });
        let key = format!("read{len}");
        let v = VersionId(u128::from(u64::MAX) << 32);
        let mut buf = engine.record_buffer(len).expect("buffer");
        buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + len].copy_from_slice(&data);
        local
            .block_on(
                &rt,
                engine.put_shard(
                    "b",
                    &key,
                    v,
                    StripeIndex(0),
                    ShardIndex(0),
                    crc,
                    Some(single_shard_meta(&key, v, len, crc, "bench")),
                    buf,
                    len,
                ),
            )
            .expect("put");
        g.bench_function(BenchmarkId::new("read shard", len), |b| {
            b.iter(|| {
                let r = local
                    .block_on(&rt, engine.get_shard("b", &key, v, StripeIndex(0), ShardIndex(0), None))
                    .expect("read");
                std::hint::black_box(r.crc32c);
            })
        });
    }
    g.finish();
    let _ = local.block_on(&rt, engine.close());
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(&index);
}

criterion_group!(benches, bench);
criterion_main!(benches);
