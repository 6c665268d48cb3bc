//! TLS for QUIC: the node's certificate and key from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// ALPN protocol id both sides require.
pub const ALPN: &[u8] = b"tessera/1";

/// Why TLS setup failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Could not read or parse a PEM file.
    #[error("cannot load {what} from {path}: {detail}")]
    Pem {
        /// Certificate or key.
        what: &'static str,
        /// File.
        path: String,
        /// Cause.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(String),
}

/// A quinn server config with this node's certificate.
pub fn server_config(cert: &Path, key: &Path, streams_max: u32) -> Result<quinn::ServerConfig, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Pem { what: "certificate", path: cert.display().to_string(), detail: e.to_string() })?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        what: "private key",
        path: key.display().to_string(),
        detail: e.to_string(),
    })?;
    let provider = tessera_client::tls_provider();
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(Arc::new(transport(streams_max)));
    Ok(cfg)
}

/// Who may replicate into this region: one trust store per peer region.
/// The handshake accepts a certificate any peer's CA issued; which peer it
/// is then follows from which CA verifies it alone.
pub struct PeerTrust {
    peers: Vec<(String, Arc<dyn rustls::server::danger::ClientCertVerifier>)>,
}

impl PeerTrust {
    /// The region whose CA issued this chain (end entity first).
    pub fn region_of(&self, chain: &[CertificateDer<'static>]) -> Option<&str> {
        let (end, intermediates) = chain.split_first()?;
        let now = rustls_pki_types::UnixTime::now();
        self.peers.iter().find(|(_, v)| v.verify_client_cert(end, intermediates, now).is_ok()).map(|(r, _)| r.as_str())
    }

    /// The configured peer regions.
    pub fn regions(&self) -> Vec<&str> {
        self.peers.iter().map(|(r, _)| r.as_str()).collect()
    }
}

fn load_chain(cert: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| TlsError::Pem { what: "certificate", path: cert.display().to_string(), detail: e.to_string() })?;
    if chain.is_empty() {
        return Err(TlsError::Pem { what: "certificate", path: cert.display().to_string(), detail: "empty".into() });
    }
    Ok(chain)
}

/// The replication endpoint's server config: this region's certificate,
/// and mutual TLS against the peers' CAs (`(region, ca_cert)`).
pub fn crr_server_config(
    cert: &Path,
    key: &Path,
    peers: &[(String, std::path::PathBuf)],
) -> Result<(quinn::ServerConfig, Arc<PeerTrust>), TlsError> {
    let provider = tessera_client::tls_provider();
    let mut all = rustls::RootCertStore::empty();
    let mut trust = PeerTrust { peers: Vec::new() };
    for (region, ca) in peers {
        let mut one = rustls::RootCertStore::empty();
        for c in load_chain(ca)? {
            one.add(c.clone()).map_err(|e| TlsError::Config(format!("CA of peer {region} ({}): {e}", ca.display())))?;
            all.add(c).map_err(|e| TlsError::Config(format!("CA of peer {region}: {e}")))?;
        }
        let v = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(one), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(format!("verifier for peer {region}: {e}")))?;
        trust.peers.push((region.clone(), v));
    }
    if trust.peers.is_empty() {
        return Err(TlsError::Config("[crr] listen is set but no [[crr.peers]] are trusted".into()));
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(all), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        what: "private key",
        path: key.display().to_string(),
        detail: e.to_string(),
    })?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(load_chain(cert)?, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    tls.alpn_protocols = vec![tessera_client::CRR_ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(Arc::new(transport(1_024)));
    Ok((cfg, Arc::new(trust)))
}

/// Write a region CA (`ca.pem`) and a region certificate issued for the
/// region's name (`region.pem`, `region.key`) into `dir`, for `tessera dev`
/// and tests. Existing files are kept. Never use these for a real
/// deployment.
pub fn write_dev_region_certs(dir: &Path, region: &str) -> Result<(), DevCertError> {
    std::fs::create_dir_all(dir)?;
    if dir.join("ca.pem").exists() && dir.join("region.pem").exists() && dir.join("region.key").exists() {
        return Ok(());
    }
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("tessera dev region CA {region}"));
    let ca = ca_params.self_signed(&ca_key)?;
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(vec![region.to_string()])?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("tessera region {region}"));
    params.extended_key_usages =
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let cert = params.signed_by(&key, &issuer)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("region.pem"), cert.pem())?;
    std::fs::write(dir.join("region.key"), key.serialize_pem())?;
    Ok(())
}

/// Transport settings shared by node and client: windows large enough for
/// multi-MiB shards in flight, bounded streams, keep-alive.
pub fn transport(streams_max: u32) -> quinn::TransportConfig {
    let mut t = quinn::TransportConfig::default();
    t.max_concurrent_bidi_streams(streams_max.into());
    t.max_concurrent_uni_streams(0u8.into());
    t.stream_receive_window((16u32 * 1_048_576).into());
    t.receive_window((64u32 * 1_048_576).into());
    t.send_window(64 * 1_048_576);
    t.keep_alive_interval(Some(std::time::Duration::from_secs(5)));
    if let Ok(idle) = std::time::Duration::from_secs(30).try_into() {
        t.max_idle_timeout(Some(idle));
    }
    t
}

/// Why dev certificates could not be written.
#[derive(Debug, thiserror::Error)]
pub enum DevCertError {
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing the files failed.
    #[error("writing certificates failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Write a throwaway CA (`ca.pem`) and a node certificate for localhost and
/// 127.0.0.1 (`node.pem`, `node.key`) into `dir`, for `tessera dev` and tests.
/// Existing files are kept. Never use these for a real deployment.
pub fn write_dev_certs(dir: &Path) -> Result<(), DevCertError> {
    std::fs::create_dir_all(dir)?;
    if dir.join("ca.pem").exists() && dir.join("node.pem").exists() && dir.join("node.key").exists() {
        return Ok(());
    }
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "tessera dev CA");
    let ca = ca_params.self_signed(&ca_key)?;
    let node_key = rcgen::KeyPair::generate()?;
    let mut node_params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
    node_params.distinguished_name.push(rcgen::DnType::CommonName, "tessera dev node");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let node = node_params.signed_by(&node_key, &issuer)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    std::fs::write(dir.join("node.pem"), node.pem())?;
    std::fs::write(dir.join("node.key"), node_key.serialize_pem())?;
    Ok(())
}
