//! Drives one target's storage engine directly (no network), fio-style:
//! sequential shard writes of `--bs` bytes at queue depth `--iodepth`
//! (each acknowledged only when durable), then random whole-shard reads of
//! `--read-bs` at the same queue depth. Prints MiB/s and IOPS; run beside
//! fio on the same file system with `benches/engine_vs_fio.sh`.

use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};

use clap::Parser;
use tessera_node::engine::{single_shard_meta, Engine, EngineConfig};
use tessera_node::io::{BufPool, Io, Psync, Uring, ALIGN_BYTES};
use tessera_wire::{BucketInfo, ShardIndex, StorageClass, StripeIndex, TargetId, VersionId};

#[derive(Parser)]
struct Args {
    /// Directory for the target file (same file system as fio's).
    #[arg(long)]
    dir: PathBuf,
    /// Bytes per written shard.
    #[arg(long, default_value_t = 1_048_576)]
    bs: usize,
    /// Total bytes to write.
    #[arg(long, default_value_t = 1_073_741_824)]
    size: u64,
    /// Concurrent operations.
    #[arg(long, default_value_t = 32)]
    iodepth: usize,
    /// Bytes per shard in the random-read phase.
    #[arg(long, default_value_t = 4_096)]
    read_bs: usize,
    /// Shards written (then read) in the random-read phase.
    #[arg(long, default_value_t = 50_000)]
    read_shards: u32,
    /// Seconds of random reads.
    #[arg(long, default_value_t = 15)]
    read_runtime: u64,
    /// io_uring (default) or psync.
    #[arg(long, default_value = "io_uring")]
    backend: String,
}

async fn put(e: &Engine, key: String, v: u128, data: &[u8]) -> anyhow::Result<()> {
    let mut buf = e.record_buffer(data.len())?;
    buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + data.len()].copy_from_slice(data);
    let crc = crc32c::crc32c(data);
    let version = VersionId(v);
    e.put_shard(
        "bench",
        &key,
        version,
        StripeIndex(0),
        ShardIndex(0),
        crc,
        Some(single_shard_meta(&key, version, data.len(), 0, "bench")),
        buf,
        data.len(),
    )
    .await?;
    Ok(())
}

/// Run `total` operations `op(i)` with `depth` in flight; return elapsed time.
async fn run_qd<F, Fut>(depth: usize, total: u64, op: F) -> anyhow::Result<Duration>
where
    F: Fn(u64) -> Fut + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + 'static,
{
    let op = Rc::new(op);
    let next = Rc::new(std::cell::Cell::new(0u64));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..depth {
        let (op, next) = (op.clone(), next.clone());
        workers.push(tokio::task::spawn_local(async move {
            loop {
                let i = next.get();
                if i >= total {
                    return anyhow::Ok(());
                }
                next.set(i + 1);
                op(i).await?;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    Ok(start.elapsed())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.dir)?;
    let path = args.dir.join("engine-bench.dat");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_file(args.dir.join("engine-bench.redb"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let local = tokio::task::LocalSet::new();
    let path2 = path.clone();
    local.block_on(&rt, async move {
        let path = path2;
        let io = if args.backend == "psync" {
            Io::Psync(Psync)
        } else {
            let ring = Uring::new()?;
            tokio::task::spawn_local(ring.clone().run());
            Io::Uring(ring)
        };
        let read_bytes = u64::from(args.read_shards) * (args.read_bs as u64 + 4_096);
        let cfg = EngineConfig {
            target: TargetId(0),
            path: path.clone(),
            index_path: args.dir.join("engine-bench.redb"),
            capacity_bytes: (args.size + args.size / 8 + read_bytes * 2 + (256 << 20)).next_multiple_of(64 << 20),
            segment_bytes: 64 << 20,
            reserve_segments: 2,
            checkpoint_interval: Duration::from_secs(5),
            compaction_live_fraction_max: 0.5,
            placement_groups: 256,
        };
        let e = Engine::open(cfg, io, BufPool::default()).await?;
        e.create_bucket(BucketInfo {
            name: "bench".into(),
            versioned: false,
            owner: "bench".into(),
            created_ms: 0,
            storage_class: StorageClass::Standard,
        })
        .await?;
        let data = Rc::new(vec![0x5au8; args.bs]);
        let n = args.size / args.bs as u64;
        let (e2, d2) = (e.clone(), data.clone());
        let t = run_qd(args.iodepth, n, move |i| {
            let (e, d) = (e2.clone(), d2.clone());
            async move { put(&e, format!("w{i}"), (u128::from(i) + 1) << 64, &d).await }
        })
        .await?;
        let mib_s = (n * args.bs as u64) as f64 / 1_048_576.0 / t.as_secs_f64();
        println!(
            "engine seq write bs={} iodepth={}: {:.1} MiB/s ({n} shards, {:.2} s)",
            args.bs,
            args.iodepth,
            mib_s,
            t.as_secs_f64()
        );

        let small = Rc::new(vec![0xa5u8; args.read_bs]);
        let (e2, s2) = (e.clone(), small.clone());
        run_qd(args.iodepth, u64::from(args.read_shards), move |i| {
            let (e, s) = (e2.clone(), s2.clone());
            async move { put(&e, format!("r{i}"), (u128::from(i) + 1) << 64, &s).await }
        })
        .await?;
        let deadline = Instant::now() + Duration::from_secs(args.read_runtime);
        let count = Rc::new(std::cell::Cell::new(0u64));
        let shards = args.read_shards;
        let (e2, c2) = (e.clone(), count.clone());
        let t = run_qd(args.iodepth, u64::MAX, move |i| {
            let (e, c) = (e2.clone(), c2.clone());
            async move {
                if Instant::now() > deadline {
                    anyhow::bail!("done");
                }
                let k = (tessera_wire::object_hash("r", &i.to_string()) % u64::from(shards)) as u32;
                let r = e
                    .get_shard(
                        "bench",
                        &format!("r{k}"),
                        VersionId((u128::from(k) + 1) << 64),
                        StripeIndex(0),
                        ShardIndex(0),
                        None,
                    )
                    .await?;
                std::hint::black_box(&r.buf);
                c.set(c.get() + 1);
                Ok(())
            }
        })
        .await;
        let _ = t;
        let iops = count.get() as f64 / args.read_runtime as f64;
        println!("engine rand read bs={} iodepth={}: {:.0} IOPS", args.read_bs, args.iodepth, iops);
        anyhow::Ok(())
    })?;
    let _ = std::fs::remove_file(&path);
    Ok(())
}
