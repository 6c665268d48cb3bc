//! Load against a running region (start one with `tessera dev`): PUT and
//! GET of large objects (MiB/s), small and medium objects at a given
//! concurrency (ops/s, p50/p99 latency), and client CPU seconds per GiB
//! written. Every phase is bounded by a count and a time limit.
//!
//! `cargo run --release -p tessera-benches --bin region_bench -- --config DIR/client.toml`

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use tessera_client::{Client, ClientConfig};

#[derive(Parser)]
struct Args {
    /// Client config written by `tessera dev`.
    #[arg(long)]
    config: PathBuf,
    /// Bucket to use (created if missing).
    #[arg(long, default_value = "bench")]
    bucket: String,
    /// Large objects: count and size in MiB.
    #[arg(long, default_value_t = 8)]
    large_count: usize,
    #[arg(long, default_value_t = 64)]
    large_mib: usize,
    /// Most operations per small-object phase.
    #[arg(long, default_value_t = 4_000)]
    ops: usize,
    /// Longest time per phase, seconds.
    #[arg(long, default_value_t = 20)]
    secs: u64,
}

fn cpu_seconds() -> f64 {
    let mut ru: libc::rusage = libc::rusage {
        ru_utime: libc::timeval { tv_sec: 0, tv_usec: 0 },
        ru_stime: libc::timeval { tv_sec: 0, tv_usec: 0 },
        ru_maxrss: 0,
        ru_ixrss: 0,
        ru_idrss: 0,
        ru_isrss: 0,
        ru_minflt: 0,
        ru_majflt: 0,
        ru_nswap: 0,
        ru_inblock: 0,
        ru_oublock: 0,
        ru_msgsnd: 0,
        ru_msgrcv: 0,
        ru_nsignals: 0,
        ru_nvcsw: 0,
        ru_nivcsw: 0,
    };
    #[allow(unsafe_code)]
    // SAFETY: getrusage writes into the struct we pass; nothing else.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return 0.0;
    }
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// Run `ops` operations (or until `secs`) at `concurrency`; returns
/// (ops done, elapsed, sorted latencies).
async fn phase<F, Fut>(concurrency: usize, ops: usize, secs: u64, op: F) -> (usize, Duration, Vec<Duration>)
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let op = Arc::new(op);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (op, next) = (op.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= ops || Instant::now() > deadline {
                    return Ok::<_, anyhow::Error>(lat);
                }
                let t = Instant::now();
                op(i).await?;
                lat.push(t.elapsed());
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        match t.await {
            Ok(Ok(l)) => all.extend(l),
            Ok(Err(e)) => eprintln!("operation failed: {e:#}"),
            Err(e) => eprintln!("task failed: {e}"),
        }
    }
    let elapsed = start.elapsed();
    all.sort();
    (all.len(), elapsed, all)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = Client::connect(ClientConfig::load(&args.config)?).await?;
    client.create_bucket(&args.bucket, Default::default()).await?;
    let b = args.bucket.clone();
    let view = client.view();
    println!(
        "region {:?}: {} zones, map epoch {}, standard {}+{}, shard {} KiB",
        view.map.region,
        view.map.zones.len(),
        view.map.epoch,
        view.map.classes.standard.data,
        view.map.classes.standard.parity,
        view.map.shard_bytes / 1_024
    );

    // Large objects, one at a time.
    let big = Arc::new(data(args.large_mib << 20, 7));
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let mut n = 0;
    while n < args.large_count && t.elapsed() < Duration::from_secs(args.secs) {
        client.put(&b, &format!("large/{n}"), big.to_vec()).await?;
        n += 1;
    }
    let put_s = t.elapsed().as_secs_f64();
    let cpu_put = cpu_seconds() - cpu0;
    let gib = (n * args.large_mib) as f64 / 1_024.0;
    println!(
        "PUT {} MiB x {n}: {:.0} MiB/s; client CPU {:.2} s per GiB written",
        args.large_mib,
        (n * args.large_mib) as f64 / put_s,
        cpu_put / gib
    );
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    for i in 0..n {
        let got = client.get(&b, &format!("large/{i}"), Default::default()).await?.bytes().await?;
        anyhow::ensure!(got.len() == big.len(), "short read");
    }
    let get_s = t.elapsed().as_secs_f64();
    println!(
        "GET {} MiB x {n}: {:.0} MiB/s; client CPU {:.2} s per GiB read",
        args.large_mib,
        (n * args.large_mib) as f64 / get_s,
        (cpu_seconds() - cpu0) / gib
    );

    for (label, size) in [("4 KiB", 4_096usize), ("1 MiB", 1 << 20)] {
        let body = Arc::new(data(size, size as u64));
        for conc in [1usize, 32] {
            let ops = if size > 65_536 { args.ops / 8 } else { args.ops };
            let (c, b2, body2) = (client.clone(), b.clone(), body.clone());
            let prefix = format!("s{size}-c{conc}");
            let p2 = prefix.clone();
            let (done, el, lat) = phase(conc, ops, args.secs, move |i| {
                let (c, b, body, key) = (c.clone(), b2.clone(), body2.clone(), format!("{p2}/{i}"));
                async move {
                    c.put(&b, &key, body.to_vec()).await?;
                    Ok(())
                }
            })
            .await;
            println!(
                "PUT {label} c={conc}: {done} ops, {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
                done as f64 / el.as_secs_f64(),
                pct(&lat, 0.5),
                pct(&lat, 0.99)
            );
            let (c, b2) = (client.clone(), b.clone());
            let written = done.max(1);
            let (done, el, lat) = phase(conc, ops, args.secs, move |i| {
                let (c, b, key) = (c.clone(), b2.clone(), format!("{prefix}/{}", i % written));
                async move {
                    let got = c.get(&b, &key, Default::default()).await?.bytes().await?;
                    anyhow::ensure!(got.len() == size, "short read of {key}");
                    Ok(())
                }
            })
            .await;
            println!(
                "GET {label} c={conc}: {done} ops, {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
                done as f64 / el.as_secs_f64(),
                pct(&lat, 0.5),
                pct(&lat, 0.99)
            );
        }
    }
    Ok(())
}
