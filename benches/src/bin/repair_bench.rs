//! Repair after a zone outage, against a running `tessera dev` region:
//! measures foreground latency before the outage, writes for `outage_s`
//! with one zone SIGKILLed, restarts it, and measures the time until
//! every placement group is back in sync (full redundancy), the repair
//! write rate per node, and foreground p50/p99 while repair runs. Every
//! phase is bounded by a count and a time limit.
//!
//! ```text
//! cargo build --release -p tessera-tools -p tessera-benches
//! target/release/tessera dev --dir /tmp/rb --no-demo &
//! target/release/repair_bench --dir /tmp/rb --tessera target/release/tessera
//! ```

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use tessera_client::{Client, ClientConfig};

#[derive(Parser)]
struct Args {
    /// Region directory of `tessera dev`.
    #[arg(long)]
    dir: PathBuf,
    /// The `tessera` binary (for `dev stop-zone` / `start-zone`).
    #[arg(long, default_value = "target/release/tessera")]
    tessera: PathBuf,
    /// Zone to take down.
    #[arg(long, default_value = "z3")]
    zone: String,
    /// Outage length, seconds.
    #[arg(long, default_value_t = 60)]
    outage_s: u64,
    /// Object size written during the outage, MiB.
    #[arg(long, default_value_t = 4)]
    object_mib: usize,
    /// Most MiB written during the outage.
    #[arg(long, default_value_t = 2_048)]
    max_mib: usize,
    /// Repair bandwidth per node to set before the zone returns, MiB/s
    /// (default: leave the nodes' setting).
    #[arg(long)]
    rate_mib_s: Option<u32>,
    /// Give up waiting for full redundancy after this many seconds.
    #[arg(long, default_value_t = 600)]
    limit_s: u64,
}

/// Foreground load: one writer of 256 KiB objects and one reader of them,
/// until `stop` is set; latencies in ms.
async fn foreground(c: Client, stop: Arc<std::sync::atomic::AtomicBool>, lat: Arc<Mutex<Vec<f64>>>) {
    let data = vec![7u8; 256 * 1_024];
    for i in 0..100_000u64 {
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            break;
        }
        let key = format!("fg/{}", i % 64);
        let t = Instant::now();
        if c.put("rbench", &key, data.clone()).await.is_ok() {
            lat.lock().map(|mut l| l.push(t.elapsed().as_secs_f64() * 1e3)).ok();
        }
        let t = Instant::now();
        if let Ok(r) = c.get("rbench", &key, Default::default()).await {
            if r.bytes().await.is_ok() {
                lat.lock().map(|mut l| l.push(t.elapsed().as_secs_f64() * 1e3)).ok();
            }
        }
    }
}

fn pct(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "no samples".into();
    }
    v.sort_by(f64::total_cmp);
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    format!("n={} p50 {:.1} ms p99 {:.1} ms max {:.1} ms", v.len(), p(0.5), p(0.99), v[v.len() - 1])
}

async fn measure_foreground(c: &Client, secs: u64) -> String {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let h = tokio::spawn(foreground(c.clone(), stop.clone(), lat.clone()));
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = h.await;
    let v = lat.lock().map(|l| l.clone()).unwrap_or_default();
    pct(v)
}

fn dev(a: &Args, what: &str) -> anyhow::Result<()> {
    let st = std::process::Command::new(&a.tessera).args(["dev", what, "--dir"]).arg(&a.dir).arg(&a.zone).status()?;
    anyhow::ensure!(st.success(), "tessera dev {what} failed");
    Ok(())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    // Repair status and rate are operator requests: act as the admin.
    let c = Client::connect(ClientConfig::load(&a.dir.join("admin.toml"))?).await?;
    c.create_bucket("rbench", Default::default()).await?;
    let groups = c.view().placement.groups();
    println!("foreground before the outage: {}", measure_foreground(&c, 10).await);
    dev(&a, "stop-zone")?;
    let start = Instant::now();
    let data = vec![3u8; a.object_mib * 1_048_576];
    let mut written = 0usize;
    let mut i = 0u64;
    while start.elapsed() < Duration::from_secs(a.outage_s) && written < a.max_mib {
        c.put("rbench", &format!("outage/{i}"), data.clone()).await?;
        written += a.object_mib;
        i += 1;
    }
    let left = Duration::from_secs(a.outage_s).saturating_sub(start.elapsed());
    tokio::time::sleep(left).await;
    println!("outage of {}: {written} MiB written in {i} objects over {} s", a.zone, a.outage_s);
    let before: u64 = {
        let mut sum = 0;
        for (_, addr) in c.node_addrs() {
            sum += c.repair_status(addr).await.map(|s| s.repaired_bytes).unwrap_or(0);
        }
        sum
    };
    dev(&a, "start-zone")?;
    if let Some(rate) = a.rate_mib_s {
        // The zone's nodes restart at their configured rate: wait for
        // them to answer, then set every node.
        for (name, addr) in c.node_addrs() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while c.set_repair_rate(addr, rate).await.is_err() {
                anyhow::ensure!(Instant::now() < deadline, "{name} did not answer");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        println!("repair rate set to {rate} MiB/s per node");
    }
    let t0 = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::new()));
    let fg = tokio::spawn(foreground(c.clone(), stop.clone(), lat.clone()));
    let nodes = c.node_addrs();
    let mut rounds_at_start: Vec<u64> = vec![u64::MAX; nodes.len()];
    let (took, repaired) = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(a.limit_s), "no full redundancy within {} s", a.limit_s);
        let mut in_sync = 0u32;
        let mut backlog = 0u64;
        let mut repaired = 0u64;
        let mut fresh = true;
        for (j, (_, addr)) in nodes.iter().enumerate() {
            match c.repair_status(*addr).await {
                Ok(s) => {
                    if rounds_at_start[j] == u64::MAX {
                        rounds_at_start[j] = s.rounds;
                    }
                    // Two rounds after the restart: the zone's nodes have
                    // answered at least one complete round.
                    fresh &= s.rounds >= rounds_at_start[j] + 2;
                    in_sync += s.pgs_in_sync;
                    backlog += s.backlog_versions;
                    repaired += s.repaired_bytes;
                }
                Err(_) => fresh = false,
            }
        }
        if fresh && in_sync >= groups && backlog == 0 {
            break (t0.elapsed(), repaired.saturating_sub(before));
        }
    };
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = fg.await;
    let during = pct(lat.lock().map(|l| l.clone()).unwrap_or_default());
    let mib = repaired as f64 / 1_048_576.0;
    println!(
        "full redundancy {:.1} s after the zone restarted: {mib:.0} MiB of shards rebuilt, {:.1} MiB/s in total, \
         {:.1} MiB/s per node ({} nodes)",
        took.as_secs_f64(),
        mib / took.as_secs_f64(),
        mib / took.as_secs_f64() / nodes.len() as f64,
        nodes.len()
    );
    println!("foreground while repairing: {during}");
    println!("foreground after repair: {}", measure_foreground(&c, 10).await);
    Ok(())
}
