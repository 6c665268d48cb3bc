//! Run a node until SIGINT or SIGTERM: what the `tessera-node` binary and
//! `tessera node` (used by `tessera dev`) both do.

use std::path::Path;

/// Load the config, start metrics and every core, wait for a signal, stop.
pub fn run_until_signal(config: &Path) -> anyhow::Result<()> {
    let cfg = crate::NodeConfig::load(config)?;
    let ids: Vec<u32> = cfg.targets.iter().map(|t| t.id).collect();
    let metrics = crate::metrics::NodeMetrics::new(&cfg.node_name, cfg.core_count() as usize, &ids);
    if !cfg.metrics_addr.is_empty() {
        let token = match &cfg.metrics_token_file {
            Some(path) => Some(crate::metrics::read_token(path)?),
            None => None,
        };
        let addr = crate::metrics::serve(&cfg.metrics_addr, metrics.clone(), token)
            .map_err(|e| anyhow::anyhow!("metrics listener on {}: {e}", cfg.metrics_addr))?;
        tracing::info!(%addr, "metrics at http://{addr}/metrics");
    }
    let node = crate::start(cfg, metrics)?;
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
