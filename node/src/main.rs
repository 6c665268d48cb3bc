//! `tessera-node --config node.toml`: run a storage node until SIGINT/SIGTERM.

use std::path::PathBuf;

use clap::Parser;

/// A Tessera storage node.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    /// Path of the node's TOML config (see docs/node.toml.md).
    #[arg(long, env = "TESSERA_NODE_CONFIG")]
    config: PathBuf,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let cfg = tessera_node::NodeConfig::load(&args.config)?;
    let ids: Vec<u32> = cfg.targets.iter().map(|t| t.id).collect();
    let metrics = tessera_node::metrics::NodeMetrics::new(&cfg.node_name, cfg.core_count() as usize, &ids);
    if !cfg.metrics_addr.is_empty() {
        let addr = tessera_node::metrics::serve(&cfg.metrics_addr, metrics.clone())
            .map_err(|e| anyhow::anyhow!("metrics listener on {}: {e}", cfg.metrics_addr))?;
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
    }
    let node = tessera_node::start(cfg, metrics)?;
    for (core, addr) in node.core_addrs.iter().enumerate() {
        println!("core {core} listening on {addr}");
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
        anyhow::Ok(())
    })?;
    tracing::info!("shutting down");
    node.shutdown();
    node.join();
    Ok(())
}
