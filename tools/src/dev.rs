//! `tessera dev --dir DIR`: a throwaway local node with TLS material, a
//! client config for the CLI and SDK, and a short demo; stops on Ctrl-C.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Options of `tessera dev`.
#[derive(clap::Args, Debug)]
pub(crate) struct DevArgs {
    /// Directory for data, certificates and configs (created if missing).
    #[arg(long)]
    pub(crate) dir: PathBuf,
    /// Executor cores of the node.
    #[arg(long, default_value_t = 2)]
    pub(crate) cores: u16,
    /// UDP port of core 0 (core i listens on port + i).
    #[arg(long, default_value_t = 7_400)]
    pub(crate) base_port: u16,
    /// Metrics HTTP port.
    #[arg(long, default_value_t = 9_400)]
    pub(crate) metrics_port: u16,
    /// Capacity of each target file, in MiB.
    #[arg(long, default_value_t = 2_048)]
    pub(crate) target_mib: u64,
    /// Skip the demo upload.
    #[arg(long)]
    pub(crate) no_demo: bool,
}

pub(crate) fn node_toml(dir: &Path, args: &DevArgs) -> String {
    let mut s = format!(
        "# Written by `tessera dev`. Every setting is documented in docs/node-config.md.\n\
         node_name = \"dev\"\nlisten_addr = \"127.0.0.1\"\nbase_port = {}\ncores = {}\n\
         metrics_addr = \"127.0.0.1:{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        args.base_port,
        args.cores,
        args.metrics_port,
        dir.join("tls/node.pem").display(),
        dir.join("tls/node.key").display()
    );
    for core in 0..args.cores {
        s.push_str(&format!(
            "\n[[targets]]\nid = {core}\ncore = {core}\npath = \"{}\"\ncapacity_bytes = {}\n",
            dir.join(format!("data/target-{core}.dat")).display(),
            args.target_mib * 1_048_576
        ));
    }
    s
}

pub(crate) fn client_toml(dir: &Path, base_port: u16) -> String {
    format!(
        "# Written by `tessera dev`. Use with `tessera --config {}` or TESSERA_CONFIG.\n\
         endpoint = \"127.0.0.1:{base_port}\"\nserver_name = \"localhost\"\nca_cert = \"{}\"\n",
        dir.join("client.toml").display(),
        dir.join("tls/ca.pem").display()
    )
}

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(args.dir.join("data")).with_context(|| format!("create {}", args.dir.display()))?;
    let dir = args.dir.canonicalize()?;
    tessera_node::tls::write_dev_certs(&dir.join("tls")).context("generate dev certificates")?;
    let node_path = dir.join("node.toml");
    std::fs::write(&node_path, node_toml(&dir, &args))?;
    let client_path = dir.join("client.toml");
    std::fs::write(&client_path, client_toml(&dir, args.base_port))?;
    let cfg = tessera_node::NodeConfig::load(&node_path)?;
    let ids: Vec<u32> = cfg.targets.iter().map(|t| t.id).collect();
    let metrics = tessera_node::metrics::NodeMetrics::new(&cfg.node_name, cfg.core_count() as usize, &ids);
    let metrics_addr = tessera_node::metrics::serve(&cfg.metrics_addr, metrics.clone())
        .with_context(|| format!("metrics listener on {}", cfg.metrics_addr))?;
    let node = tessera_node::start(cfg, metrics).context("start the dev node")?;
    println!("tessera dev: node up, {} cores", node.core_addrs.len());
    for (i, a) in node.core_addrs.iter().enumerate() {
        println!("  core {i}: quic://{a}");
    }
    println!("  metrics: http://{metrics_addr}/metrics");
    println!("  data:    {}", dir.join("data").display());
    if !args.no_demo {
        demo(&client_path).await.context("demo")?;
    }
    println!("\nTry it (in another shell):");
    println!("  export TESSERA_CONFIG={}", client_path.display());
    println!("  tessera mb photos");
    println!("  tessera put ./some-file photos/some-file");
    println!("  tessera ls photos");
    println!("  tessera get photos/some-file ./copy");
    println!("\nCtrl-C stops the node.");
    tokio::signal::ctrl_c().await?;
    println!("stopping…");
    node.shutdown();
    tokio::task::spawn_blocking(move || node.join()).await?;
    println!("stopped cleanly");
    Ok(())
}

async fn demo(client_path: &Path) -> anyhow::Result<()> {
    let client = tessera_client::Client::connect(tessera_client::ClientConfig::load(client_path)?).await?;
    client.create_bucket("demo", Default::default()).await?;
    let text = b"Hello from Tessera: stored with O_DIRECT, fdatasync'd, checksummed end to end.\n".to_vec();
    let receipt = client.put("demo", "hello.txt", text.clone()).await?;
    let back = client.get("demo", "hello.txt", Default::default()).await?.bytes().await?;
    anyhow::ensure!(back == text, "demo object read back differently");
    println!(
        "\ndemo: put demo/hello.txt (version {}, {} bytes, crc32c {:#010x}) and read it back",
        receipt.version, receipt.size_bytes, receipt.content_crc32c
    );
    Ok(())
}
