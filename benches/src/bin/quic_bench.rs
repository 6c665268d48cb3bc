//! 64 MiB GET from one node over QUIC on loopback, beside a plain quinn bulk
//! transfer of the same size with the same certificates, in the same run.
//! Prints MiB/s of each and the ratio.

use std::sync::Arc;
use std::time::Instant;

use rustls_pki_types::pem::PemObject;

const SIZE: usize = 64 << 20;
const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("tessera-quic-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    tessera_node::tls::write_dev_certs(&dir.join("tls"))?;
    let port = 27_400u16;
    std::fs::write(
        dir.join("node.toml"),
        format!(
            "node_name = \"bench\"\nbase_port = {port}\ncores = 1\nmetrics_addr = \"\"\ntls_cert = \"{0}/tls/node.pem\"\ntls_key = \"{0}/tls/node.key\"\nca_cert = \"{0}/tls/ca.pem\"\n\
             [[targets]]\nid = 0\ncore = 0\npath = \"{0}/t0.dat\"\ncapacity_bytes = 1073741824\n",
            dir.display()
        ),
    )?;
    std::fs::write(
        dir.join("client.toml"),
        format!(
            "endpoint = \"127.0.0.1:{port}\"\nca_cert = \"{0}/tls/ca.pem\"\ncert = \"{0}/tls/user.pem\"\nkey = \"{0}/tls/user.key\"\n",
            dir.display()
        ),
    )?;
    let cfg = tessera_node::NodeConfig::load(&dir.join("node.toml"))?;
    let node = tessera_node::start(cfg, tessera_node::metrics::NodeMetrics::new("bench", 1, &[0]))?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    let (tessera_mib_s, quinn_mib_s) = rt.block_on(async {
        let client =
            tessera_client::Client::connect(tessera_client::ClientConfig::load(&dir.join("client.toml"))?).await?;
        client.create_bucket("bench", Default::default()).await?;
        client.put("bench", "big", vec![7u8; SIZE]).await?;
        let mut best_t = f64::MAX;
        for _ in 0..RUNS {
            let t = Instant::now();
            let n = client.get("bench", "big", Default::default()).await?.bytes().await?.len();
            anyhow::ensure!(n == SIZE, "short read");
            best_t = best_t.min(t.elapsed().as_secs_f64());
        }
        let tessera = 64.0 / best_t;
        let quinn = plain_quinn(&dir).await?;
        anyhow::Ok((tessera, quinn))
    })?;
    println!(
        "64 MiB GET, best of {RUNS}: tessera {tessera_mib_s:.0} MiB/s, plain quinn {quinn_mib_s:.0} MiB/s, ratio {:.2}",
        tessera_mib_s / quinn_mib_s
    );
    node.shutdown();
    node.join();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

async fn plain_quinn(dir: &std::path::Path) -> anyhow::Result<f64> {
    let server_cfg = tessera_node::tls::server_config(
        &dir.join("tls/node.pem"),
        &dir.join("tls/node.key"),
        &dir.join("tls/ca.pem"),
        16,
    )?;
    let server = quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse()?)?;
    let addr = server.local_addr()?;
    tokio::spawn(async move {
        while let Some(inc) = server.accept().await {
            let Ok(conn) = inc.await else { continue };
            while let Ok((mut send, _recv)) = conn.accept_bi().await {
                let data = vec![7u8; SIZE];
                let _ = send.write_all(&data).await;
                let _ = send.finish();
            }
        }
    });
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(dir.join("tls/ca.pem"))? {
        roots.add(c?)?;
    }
    let mut tls = rustls::ClientConfig::builder_with_provider(tessera_client::tls_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            tessera_client::load_certs(&dir.join("tls/user.pem"))?,
            tessera_client::load_key(&dir.join("tls/user.key"))?,
        )?;
    tls.alpn_protocols = vec![b"tessera/1".to_vec()];
    let mut cc = quinn::ClientConfig::new(Arc::new(quinn::crypto::rustls::QuicClientConfig::try_from(tls)?));
    cc.transport_config(Arc::new(tessera_node::tls::transport(16)));
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    ep.set_default_client_config(cc);
    let conn = ep.connect(addr, "localhost")?.await?;
    let mut best_t = f64::MAX;
    for _ in 0..RUNS {
        let t = Instant::now();
        let (mut send, mut recv) = conn.open_bi().await?;
        send.write_all(b"go").await?;
        let data = recv.read_to_end(SIZE + 1).await?;
        anyhow::ensure!(data.len() == SIZE, "short read");
        best_t = best_t.min(t.elapsed().as_secs_f64());
    }
    Ok(64.0 / best_t)
}
