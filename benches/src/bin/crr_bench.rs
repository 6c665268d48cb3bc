//! Cross-region replication figures, against two regions run by `tessera
//! dev --regions 2` (rule `r1-to-r2` on bucket `demo`). Three modes, each
//! bounded in count and time:
//!
//! - `lag`: a steady load of `--rate` PUTs per second of `--object-kib`
//!   into r1 for `--secs`; a watcher polls r2 for each version (every
//!   50 ms) and the streamers report their own lag (version time to apply
//!   acknowledgement). Prints p50/p99/max of both.
//! - `catchup`: cut the link, write `--objects` objects of `--object-kib`,
//!   heal, and time until r2 holds every one: catch-up objects/s and MiB/s.
//! - `throughput`: the same with large objects, to compare the drain rate
//!   with the link's bandwidth (`tessera dev --link-mib-s`).
//!
//! ```text
//! cargo build --release -p tessera-tools -p tessera-benches
//! target/release/tessera dev --dir /tmp/cb --regions 2 --no-demo --link-delay-ms 25 &
//! target/release/crr_bench --dir /tmp/cb --mode lag --rate 20 --object-kib 64 --secs 60
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tessera_client::{Client, ClientConfig, VersionHeld, VersionId};

#[derive(Parser)]
struct Args {
    /// Top directory of `tessera dev --regions 2`.
    #[arg(long)]
    dir: PathBuf,
    /// The `tessera` binary (for `dev cut-link` / `heal-link`).
    #[arg(long, default_value = "target/release/tessera")]
    tessera: PathBuf,
    /// `lag`, `catchup` or `throughput`.
    #[arg(long, default_value = "lag")]
    mode: String,
    /// PUTs per second (lag).
    #[arg(long, default_value_t = 20)]
    rate: u64,
    /// Load duration, seconds (lag).
    #[arg(long, default_value_t = 60)]
    secs: u64,
    /// Object size, KiB.
    #[arg(long, default_value_t = 64)]
    object_kib: usize,
    /// Objects written while the link is cut (catchup, throughput).
    #[arg(long, default_value_t = 2_000)]
    objects: usize,
    /// Give up waiting after this many seconds.
    #[arg(long, default_value_t = 600)]
    limit_s: u64,
}

fn pct(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("n={} p50 {:.0} ms p99 {:.0} ms max {:.0} ms", v.len(), p(0.5), p(0.99), v[v.len() - 1])
}

async fn connect(dir: &std::path::Path, region: &str) -> anyhow::Result<Client> {
    Ok(Client::connect(ClientConfig::load(&dir.join(region).join("admin.toml"))?).await?)
}

fn dev(args: &Args, what: &str) -> anyhow::Result<()> {
    let st = std::process::Command::new(&args.tessera).args(["dev", what, "--dir"]).arg(&args.dir).status()?;
    anyhow::ensure!(st.success(), "tessera dev {what} failed");
    Ok(())
}

/// Wait until r2 holds every version; returns when the last arrived.
async fn drain(r2: &Client, versions: &[(String, VersionId)], limit: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + limit;
    let mut left: Vec<&(String, VersionId)> = versions.iter().collect();
    while !left.is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "{} versions still missing in r2 after {limit:?}", left.len());
        let mut still = Vec::new();
        for v in left {
            if !matches!(r2.version_held("demo", &v.0, v.1).await, Ok(VersionHeld::Committed(_))) {
                still.push(v);
            }
        }
        left = still;
        if !left.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    Ok(Instant::now())
}

async fn lag(args: &Args, r1: Client, r2: Client) -> anyhow::Result<()> {
    let data = vec![0x5au8; args.object_kib * 1_024];
    let external = Arc::new(Mutex::new(Vec::new()));
    let mut watchers = tokio::task::JoinSet::new();
    let start = Instant::now();
    let total = args.rate * args.secs;
    let mut put_ms = Vec::new();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / args.rate as f64);
        tokio::time::sleep_until(due.into()).await;
        let key = format!("lag/{}", i % 500);
        let t = Instant::now();
        let r = r1.put("demo", &key, data.clone()).await?;
        put_ms.push(t.elapsed().as_secs_f64() * 1e3);
        let (r2, ext) = (r2.clone(), external.clone());
        watchers.spawn(async move {
            let limit = t + Duration::from_secs(60);
            while Instant::now() < limit {
                match r2.version_held("demo", &key, r.version).await {
                    // Overwritten there by a newer one (unversioned bucket)
                    // counts as arrived too: only reached via this one.
                    Ok(VersionHeld::Committed(_) | VersionHeld::Purged) => break,
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            if let Ok(mut e) = ext.lock() {
                e.push(t.elapsed().as_secs_f64() * 1e3);
            }
        });
    }
    while watchers.join_next().await.is_some() {}
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "lag: {total} PUTs of {} KiB into r1 over {elapsed:.1} s ({:.1}/s, {:.2} MiB/s); PUT latency in r1: {}",
        args.object_kib,
        total as f64 / elapsed,
        total as f64 * args.object_kib as f64 / 1_024.0 / elapsed,
        pct(put_ms)
    );
    let ext = external.lock().map(|e| e.clone()).unwrap_or_default();
    println!("lag: PUT start in r1 to visible in r2 (polled every 50 ms): {}", pct(ext));
    for (name, addr) in r1.node_addrs() {
        if let Ok(s) = r1.crr_status(addr).await {
            for r in s.rules.iter().filter(|r| r.shipped_objects > 0) {
                let q = |f| tessera_wire::crr::lag_quantile_ms(&r.lag_counts, f).unwrap_or(0).min(r.lag_max_ms);
                println!(
                    "lag: node {name} rule {}: {} shipped, streamer lag p50 <= {} ms p99 <= {} ms max {} ms",
                    r.rule,
                    r.shipped_objects,
                    q(0.5),
                    q(0.99),
                    r.lag_max_ms
                );
            }
        }
    }
    Ok(())
}

async fn backlog(args: &Args, r1: Client, r2: Client) -> anyhow::Result<()> {
    let data = vec![0xa5u8; args.object_kib * 1_024];
    dev(args, "cut-link")?;
    let t = Instant::now();
    let mut versions = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.objects {
        let (r1, data, key) = (r1.clone(), data.clone(), format!("{}/{i}", args.mode));
        tasks.spawn(async move { r1.put("demo", &key, data).await.map(|r| (key, r.version)) });
        while tasks.len() >= 8 {
            if let Some(r) = tasks.join_next().await {
                versions.push(r??);
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        versions.push(r??);
    }
    let mib = args.objects as f64 * args.object_kib as f64 / 1_024.0;
    println!(
        "{}: wrote {} objects of {} KiB ({mib:.0} MiB) into r1 in {:.1} s with the link cut",
        args.mode,
        args.objects,
        args.object_kib,
        t.elapsed().as_secs_f64()
    );
    // Let the streamers see the backlog and back off as they would.
    tokio::time::sleep(Duration::from_secs(3)).await;
    dev(args, "heal-link")?;
    let healed = Instant::now();
    let done = drain(&r2, &versions, Duration::from_secs(args.limit_s)).await?;
    let s = done.duration_since(healed).as_secs_f64();
    println!(
        "{}: r2 holds all {} versions {s:.1} s after the heal: {:.0} objects/s, {:.1} MiB/s",
        args.mode,
        versions.len(),
        versions.len() as f64 / s,
        mib / s
    );
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (r1, r2) = (connect(&args.dir, "r1").await?, connect(&args.dir, "r2").await?);
    match args.mode.as_str() {
        "lag" => lag(&args, r1, r2).await,
        "catchup" | "throughput" => backlog(&args, r1, r2).await,
        m => anyhow::bail!("--mode {m:?}: use lag, catchup or throughput"),
    }
}
