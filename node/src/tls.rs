//! TLS for QUIC: the node's certificate and key from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tessera_wire::{Principal, Role};

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

/// A quinn server config with this node's certificate that admits only
/// clients whose certificate chains to `client_ca` (the region's CA): the
/// handshake itself fails without one, so no request of a stranger is
/// ever decoded.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
    streams_max: u32,
) -> Result<quinn::ServerConfig, TlsError> {
    let chain = load_chain(cert)?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem {
        what: "private key",
        path: key.display().to_string(),
        detail: e.to_string(),
    })?;
    let provider = tessera_client::tls_provider();
    let mut roots = rustls::RootCertStore::empty();
    for c in load_chain(client_ca)? {
        roots.add(c).map_err(|e| TlsError::Config(format!("client CA {}: {e}", client_ca.display())))?;
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsError::Config(format!("client certificate verifier ({}): {e}", client_ca.display())))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    tls.max_early_data_size = 0;
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = quinn::ServerConfig::with_crypto(Arc::new(quic));
    cfg.transport_config(Arc::new(transport(streams_max)));
    Ok(cfg)
}

/// The principal a verified connection's client certificate names (see
/// [`tessera_wire::Principal`] for the encoding), or why it names none.
pub fn principal_of(conn: &quinn::Connection) -> Result<Principal, String> {
    let chain = conn
        .peer_identity()
        .and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| "the connection presented no client certificate".to_string())?;
    let end = chain.first().ok_or_else(|| "the client certificate chain is empty".to_string())?;
    principal_of_cert(end)
}

/// SHA-256 of the client certificate's DER (what the principal registry
/// revokes by).
pub fn fingerprint_of(conn: &quinn::Connection) -> Option<[u8; 32]> {
    let chain = conn.peer_identity()?.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    let end = chain.first()?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, end.as_ref());
    d.as_ref().try_into().ok()
}

/// SHA-256 of a PEM certificate file's first certificate.
pub fn fingerprint_of_pem(path: &Path) -> Result<[u8; 32], String> {
    let cert = CertificateDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert.as_ref());
    d.as_ref().try_into().map_err(|_| "SHA-256 is not 32 bytes".to_string())
}

/// The principal a PEM certificate file names.
pub fn principal_of_pem(path: &Path) -> Result<Principal, String> {
    let cert = CertificateDer::from_pem_file(path).map_err(|e| format!("{}: {e}", path.display()))?;
    principal_of_cert(&cert)
}

/// The principal one certificate names.
pub fn principal_of_cert(cert: &CertificateDer<'_>) -> Result<Principal, String> {
    let parsed = webpki::EndEntityCert::try_from(cert).map_err(|e| format!("client certificate unreadable: {e}"))?;
    Principal::from_uris(parsed.valid_uri_names()).map_err(|e| e.to_string())
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
    write_private(&dir.join("region.key"), &key.serialize_pem())?;
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

/// The dev CA's distinguished name; the CA is rebuilt from it and its
/// stored key to issue more identities later.
fn dev_ca_params() -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, "tessera dev CA");
    Ok(p)
}

/// Write a private key file readable by its owner only.
pub fn write_private(path: &Path, pem: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    f.write_all(pem.as_bytes())
}

/// Files [`write_dev_certs`] writes; all present means nothing is redone.
const DEV_FILES: [&str; 8] =
    ["ca.pem", "ca.key", "node.pem", "node.key", "admin.pem", "admin.key", "user.pem", "user.key"];

/// Principal of the dev admin identity (`admin.pem`).
pub const DEV_ADMIN: &str = "admin";
/// Principal of the dev user identity (`user.pem`).
pub const DEV_USER: &str = "dev";
/// Principal of the dev nodes (they share `node.pem`).
pub const DEV_NODE: &str = "dev-node";

/// Write a throwaway CA (`ca.pem`, `ca.key`), a node certificate for
/// localhost and 127.0.0.1 (`node.pem`, `node.key`; principal
/// `node:dev-node`), and client identities for an admin (`admin.pem`,
/// `admin.key`) and a user (`user.pem`, `user.key`), and a map-signing
/// key (`map.key`, `map.pub`) into `dir`, for `tessera dev` and tests.
/// Keys are mode 0600. Existing files are kept when all are there. Never
/// use these for a real deployment.
pub fn write_dev_certs(dir: &Path) -> Result<(), DevCertError> {
    std::fs::create_dir_all(dir)?;
    ensure_dev_map_key(dir)?;
    if DEV_FILES.iter().all(|f| dir.join(f).exists()) {
        return Ok(());
    }
    let ca_key = rcgen::KeyPair::generate()?;
    let ca = dev_ca_params()?.self_signed(&ca_key)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    write_private(&dir.join("ca.key"), &ca_key.serialize_pem())?;
    let issuer = rcgen::Issuer::new(dev_ca_params()?, ca_key);
    let node = Principal { role: Role::Node, name: DEV_NODE.into() };
    let hosts = ["localhost".to_string(), "127.0.0.1".to_string()];
    issue(&issuer, &node, &hosts, &dir.join("node.pem"), &dir.join("node.key"))?;
    let admin = Principal { role: Role::Admin, name: DEV_ADMIN.into() };
    issue(&issuer, &admin, &[], &dir.join("admin.pem"), &dir.join("admin.key"))?;
    let user = Principal { role: Role::User, name: DEV_USER.into() };
    issue(&issuer, &user, &[], &dir.join("user.pem"), &dir.join("user.key"))?;
    Ok(())
}

/// Make a map-signing key: the private key (PKCS#8 PEM, mode 0600) at
/// `key`, its public half (`ed25519:<hex>`, what `map_keys` in node.toml
/// lists) at `public`. Returns the public key.
pub fn write_map_key(key: &Path, public: &Path) -> Result<tessera_wire::MapKey, DevCertError> {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let raw: [u8; 32] = pair
        .public_key_raw()
        .try_into()
        .map_err(|_| DevCertError::Io(std::io::Error::other("Ed25519 public key is not 32 bytes")))?;
    let id = tessera_wire::MapKey(raw);
    write_private(key, &pair.serialize_pem())?;
    std::fs::write(public, format!("{id}\n"))?;
    Ok(id)
}

/// Read a public map key file written by [`write_map_key`].
pub fn read_map_key(public: &Path) -> Result<tessera_wire::MapKey, String> {
    let text = std::fs::read_to_string(public).map_err(|e| format!("{}: {e}", public.display()))?;
    tessera_wire::MapKey::parse(&text).map_err(|e| format!("{}: {e}", public.display()))
}

/// The dev map-signing key (`map.key`, `map.pub` in `dir`), made if missing.
fn ensure_dev_map_key(dir: &Path) -> Result<(), DevCertError> {
    if dir.join("map.key").exists() && dir.join("map.pub").exists() {
        return Ok(());
    }
    write_map_key(&dir.join("map.key"), &dir.join("map.pub")).map(|_| ())
}

/// Issue a client certificate for `who` with the dev CA kept in `ca_dir`
/// (by [`write_dev_certs`]).
pub fn issue_dev_identity(ca_dir: &Path, who: &Principal, cert: &Path, key: &Path) -> Result<(), DevCertError> {
    issue_dev_cert(ca_dir, &[who.uri()], cert, key)
}

/// Issue a client certificate with exactly these URI SANs (any, or none:
/// tests use it for certificates that must be refused) with the dev CA
/// kept in `ca_dir`.
pub fn issue_dev_cert(ca_dir: &Path, uris: &[String], cert: &Path, key: &Path) -> Result<(), DevCertError> {
    let pem = std::fs::read_to_string(ca_dir.join("ca.key"))?;
    let ca_key = rcgen::KeyPair::from_pem(&pem)?;
    let issuer = rcgen::Issuer::new(dev_ca_params()?, ca_key);
    issue_uris(&issuer, uris, &[], cert, key)
}

/// Issue a client certificate for `who`, valid for `days` from today, with
/// any region CA (`ca_cert`, `ca_key`: PEM files; a CA made by `tessera dev`,
/// by Ansible's PKI role or by an operator's own tools). The key is made
/// here and written mode 0600; the certificate names exactly one principal.
pub fn issue_identity(
    ca_cert: &Path,
    ca_key: &Path,
    who: &Principal,
    days: u32,
    cert: &Path,
    key: &Path,
) -> Result<(), DevCertError> {
    let ca_key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(ca_key)?)?;
    let issuer = rcgen::Issuer::from_ca_cert_pem(&std::fs::read_to_string(ca_cert)?, ca_key)?;
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or_default() as i64;
    let k = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("tessera {}", who.uri()));
    params.subject_alt_names.push(rcgen::SanType::URI(rcgen::string::Ia5String::try_from(who.uri())?));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    // From yesterday (clocks differ a little), for `days` days.
    let (y, m, d) = civil_date(today - 1);
    params.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = civil_date(today + i64::from(days.max(1)));
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let c = params.signed_by(&k, &issuer)?;
    std::fs::write(cert, c.pem())?;
    write_private(key, &k.serialize_pem())?;
    Ok(())
}

/// (year, month, day) of a day counted from 1970-01-01, as rcgen takes it.
fn civil_date(days: i64) -> (i32, u8, u8) {
    let (y, m, d) = tessera_wire::civil_from_days(days);
    (i32::try_from(y).unwrap_or(i32::MAX), m, d)
}

fn issue(
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    who: &Principal,
    hosts: &[String],
    cert: &Path,
    key: &Path,
) -> Result<(), DevCertError> {
    issue_uris(issuer, &[who.uri()], hosts, cert, key)
}

fn issue_uris(
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    uris: &[String],
    hosts: &[String],
    cert: &Path,
    key: &Path,
) -> Result<(), DevCertError> {
    let k = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    params.distinguished_name.push(rcgen::DnType::CommonName, format!("tessera {}", uris.join(" ")));
    for u in uris {
        params.subject_alt_names.push(rcgen::SanType::URI(rcgen::string::Ia5String::try_from(u.as_str())?));
    }
    params.extended_key_usages = if hosts.is_empty() {
        vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth]
    } else {
        vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth, rcgen::ExtendedKeyUsagePurpose::ClientAuth]
    };
    let c = params.signed_by(&k, issuer)?;
    std::fs::write(cert, c.pem())?;
    write_private(key, &k.serialize_pem())?;
    Ok(())
}
