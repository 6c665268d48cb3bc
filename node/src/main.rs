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
    tessera_node::run::run_until_signal(&args.config)
}
