//! Helpers for black-box tests: real `tessera-node` processes on loopback,
//! driven through the public SDK.
#![allow(dead_code, unreachable_pub, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use tessera_client::{Client, ClientConfig};

pub struct TestDir(pub PathBuf);

impl TestDir {
    pub fn new(name: &str) -> TestDir {
        let d = std::env::temp_dir().join(format!("tessera-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TestDir(d)
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A base port unlikely to collide with other tests running in parallel.
pub fn base_port(offset: u16) -> u16 {
    20_000 + (std::process::id() % 4_000) as u16 * 10 + offset
}

pub struct NodeOpts {
    pub cores: u16,
    pub capacity_bytes: u64,
    pub segment_bytes: u64,
    pub checkpoint_ms: u64,
    pub request_timeout_ms: u64,
    pub prepared_expiry_ms: u64,
    pub sweep_interval_ms: u64,
    /// More node.toml lines (top-level settings).
    pub extra: String,
}

impl Default for NodeOpts {
    fn default() -> Self {
        NodeOpts {
            cores: 2,
            capacity_bytes: 256 * 1_048_576,
            segment_bytes: 4 * 1_048_576,
            checkpoint_ms: 1_000,
            request_timeout_ms: 30_000,
            prepared_expiry_ms: 600_000,
            sweep_interval_ms: 30_000,
            extra: String::new(),
        }
    }
}

pub struct Node {
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
}

pub fn write_configs(dir: &Path, port: u16, o: &NodeOpts) {
    tessera_node::tls::write_dev_certs(&dir.join("tls")).unwrap();
    let mut s = format!(
        "node_name = \"it\"\nbase_port = {port}\ncores = {}\nmetrics_addr = \"\"\npin_cores = false\n\
         request_timeout_ms = {}\ntls_cert = \"{}\"\ntls_key = \"{}\"\nca_cert = \"{}\"\n\
         prepared_expiry_ms = {}\nsweep_interval_ms = {}\nmap_keys = [\"{}\"]\n",
        o.cores,
        o.request_timeout_ms,
        dir.join("tls/node.pem").display(),
        dir.join("tls/node.key").display(),
        dir.join("tls/ca.pem").display(),
        o.prepared_expiry_ms,
        o.sweep_interval_ms,
        tessera_node::tls::read_map_key(&dir.join("tls/map.pub")).unwrap()
    );
    s.push_str(&o.extra);
    for c in 0..o.cores {
        s.push_str(&format!(
            "[[targets]]\nid = {c}\ncore = {c}\npath = \"{}\"\ncapacity_bytes = {}\nsegment_bytes = {}\ncheckpoint_interval_ms = {}\n",
            dir.join(format!("t{c}.dat")).display(),
            o.capacity_bytes,
            o.segment_bytes,
            o.checkpoint_ms
        ));
    }
    std::fs::write(dir.join("node.toml"), s).unwrap();
    std::fs::write(
        dir.join("client.toml"),
        format!(
            "endpoint = \"127.0.0.1:{port}\"\nca_cert = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\nmap_key = \"{}\"\n\
             request_timeout_ms = 10000\n",
            dir.join("tls/ca.pem").display(),
            dir.join("tls/admin.pem").display(),
            dir.join("tls/admin.key").display(),
            dir.join("tls/map.key").display()
        ),
    )
    .unwrap();
}

impl Node {
    pub fn start(dir: &Path, port: u16, o: &NodeOpts) -> Node {
        write_configs(dir, port, o);
        let mut n = Node { dir: dir.to_owned(), port, child: None };
        n.restart();
        n
    }

    pub fn restart(&mut self) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera-node"))
            .arg("--config")
            .arg(self.dir.join("node.toml"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn tessera-node");
        // The node prints one "listening" line per core once it serves.
        use std::io::BufRead;
        let out = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(out).lines();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        while seen < 1 && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(l)) if l.contains("listening") => seen += 1,
                Some(Ok(_)) => {}
                _ => panic!("tessera-node exited during start-up"),
            }
        }
        std::thread::spawn(move || for _ in lines {});
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no checkpoint.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait: clean shutdown.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(c.id().to_string()).status();
            let _ = c.wait();
        }
    }

    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    pub async fn client(&self) -> Client {
        let cfg = ClientConfig::load(&self.dir.join("client.toml")).unwrap();
        Client::connect(cfg).await.expect("connect")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Deterministic content of an object, derived from its key, so any reader
/// can tell whether what it got is complete and right.
pub fn content(key: &str, len: usize) -> Vec<u8> {
    let mut s = tessera_wire::object_hash("seed", key);
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// A bare QUIC connection to a node's core, for sending hand-made frames,
/// as the dev admin.
pub async fn raw_connection(dir: &std::path::Path, port: u16) -> quinn::Connection {
    raw_connection_as(dir, port, Some((&dir.join("tls/admin.pem"), &dir.join("tls/admin.key"))))
        .await
        .expect("connect as the dev admin")
}

/// A bare QUIC connection presenting `identity` (certificate and key
/// files), or no client certificate at all.
pub async fn raw_connection_as(
    dir: &std::path::Path,
    port: u16,
    identity: Option<(&Path, &Path)>,
) -> Result<quinn::Connection, quinn::ConnectionError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(dir.join("tls/ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = tessera_client::tls_provider();
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some((cert, key)) => {
            let chain = rustls_pki_types::CertificateDer::pem_file_iter(cert).unwrap().map(|c| c.unwrap()).collect();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap();
            tls.with_client_auth_cert(chain, key).unwrap()
        }
        None => tls.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"tessera/1".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    ep.connect(format!("127.0.0.1:{port}").parse().unwrap(), "localhost").unwrap().await
}
