//! The link from one region to another for cross-region replication:
//! QUIC with mutual TLS. This region presents its region certificate; the
//! peer's replication endpoints must present one issued by the CA in this
//! region's trust store for that peer. Requests go to one of the peer's
//! endpoints (chosen by the caller's key, so a placement group keeps its
//! stream on one node) and fail over to the next on a transport error.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tessera_wire::crr::{CrrApply, CrrHave};
use tessera_wire::{decode_response, encode_frame, FrameHeader, Request, Response, FRAME_HEADER_LEN};

use crate::body::ObjectBody;
use crate::ClientError;

/// ALPN id of replication endpoints (not a core port's).
pub const CRR_ALPN: &[u8] = b"tessera-crr/1";

/// Where and how to reach a peer region.
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The peer's region name.
    pub region: String,
    /// Its nodes' replication endpoints.
    pub addrs: Vec<SocketAddr>,
    /// The trust store for this peer: the CA that issued its region
    /// certificate.
    pub ca_cert: PathBuf,
    /// Name its region certificate is issued for.
    pub server_name: String,
    /// This region's certificate chain (PEM), presented to the peer.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// Deadline of one request (an apply of a large object gets this per
    /// MiB on top).
    pub timeout: Duration,
}

/// A mutual-TLS QUIC link to a peer region.
pub struct PeerLink {
    cfg: PeerConfig,
    endpoint: quinn::Endpoint,
    conns: Mutex<HashMap<SocketAddr, quinn::Connection>>,
    /// One handshake at a time: the requests that find no connection wait
    /// for it instead of each opening their own.
    connecting: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

fn cfg_err(what: &str, path: &std::path::Path, e: impl std::fmt::Display) -> ClientError {
    ClientError::Config { detail: format!("{what} {}: {e}", path.display()) }
}

/// Why a connection to a peer region ended, with the likely cause: a TLS
/// refusal (a QUIC crypto error, 0x100..0x1ff: a certificate one side does
/// not trust) points at the trust stores; silence points at the network
/// (a partition or a dead link), never at the trust stores.
pub(crate) fn why_closed(e: &quinn::ConnectionError) -> String {
    let code = match e {
        quinn::ConnectionError::TransportError(t) => Some(u64::from(t.code)),
        quinn::ConnectionError::ConnectionClosed(c) => Some(u64::from(c.error_code)),
        _ => None,
    };
    match e {
        quinn::ConnectionError::TimedOut => {
            "no packet within the idle timeout (the link is down or the regions are partitioned)".into()
        }
        _ if code.is_some_and(|c| (0x100..0x200).contains(&c)) => {
            format!("{e} (a TLS refusal: is this region in the peer's trust store, and the peer's CA in ours?)")
        }
        _ => e.to_string(),
    }
}

/// The TLS crypto of every Tessera connection (client, node, replication
/// link): aws-lc-rs, rustls's default, whose key exchange prefers the
/// hybrid post-quantum group X25519MLKEM768 (a recording of today's
/// traffic stays sealed against a future quantum computer), falling back
/// to X25519 for a peer without it. *ring* has no post-quantum groups and
/// is deprecated as a provider in current rustls.
pub fn tls_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Read a PEM certificate chain.
pub fn load_certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| cfg_err("certificate", path, e))?;
    if certs.is_empty() {
        return Err(cfg_err("certificate", path, "no certificate in the file"));
    }
    Ok(certs)
}

/// Read a PEM private key.
pub fn load_key(path: &std::path::Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| cfg_err("private key", path, e))
}

impl PeerLink {
    /// Build the link (no connection is made until the first request).
    pub fn new(cfg: PeerConfig) -> Result<PeerLink, ClientError> {
        if cfg.addrs.is_empty() {
            return Err(ClientError::Config { detail: format!("peer region {} has no addresses", cfg.region) });
        }
        let mut roots = rustls::RootCertStore::empty();
        for c in load_certs(&cfg.ca_cert)? {
            roots.add(c).map_err(|e| cfg_err("peer CA", &cfg.ca_cert, e))?;
        }
        let provider = tls_provider();
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Config { detail: e.to_string() })?
            .with_root_certificates(roots)
            .with_client_auth_cert(load_certs(&cfg.cert)?, load_key(&cfg.key)?)
            .map_err(|e| cfg_err("region certificate", &cfg.cert, e))?;
        tls.alpn_protocols = vec![CRR_ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| ClientError::Config { detail: e.to_string() })?;
        let mut client_cfg = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        // A long fat link: windows of a few bandwidth-delay products.
        transport.stream_receive_window((16u32 * 1_048_576).into());
        transport.receive_window((64u32 * 1_048_576).into());
        transport.send_window(64 * 1_048_576);
        transport.keep_alive_interval(Some(Duration::from_secs(1)));
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(Duration::from_secs(10))
                .map_err(|e| ClientError::Config { detail: e.to_string() })?,
        ));
        client_cfg.transport_config(Arc::new(transport));
        let bind: SocketAddr = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut endpoint = crate::udp::endpoint(bind, crate::udp::UDP_BUFFER_BYTES)?;
        endpoint.set_default_client_config(client_cfg);
        Ok(PeerLink {
            cfg,
            endpoint,
            conns: Mutex::new(HashMap::new()),
            connecting: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        })
    }

    /// The peer's region name.
    pub fn region(&self) -> &str {
        &self.cfg.region
    }

    async fn connection(&self, addr: SocketAddr) -> Result<quinn::Connection, ClientError> {
        let conn_err = |detail: String| ClientError::Connection { addr: addr.to_string(), detail };
        let cached =
            || self.conns.lock().ok().and_then(|c| c.get(&addr).filter(|c| c.close_reason().is_none()).cloned());
        if let Some(c) = cached() {
            return Ok(c);
        }
        let _one = self.connecting.lock().await;
        if let Some(c) = cached() {
            return Ok(c);
        }
        let connecting = self.endpoint.connect(addr, &self.cfg.server_name).map_err(|e| conn_err(e.to_string()))?;
        let conn = tokio::time::timeout(self.cfg.timeout, connecting)
            .await
            .map_err(|_| {
                conn_err(format!("no handshake with region {} within {:?}", self.cfg.region, self.cfg.timeout))
            })?
            .map_err(|e| conn_err(format!("handshake with region {} failed: {}", self.cfg.region, why_closed(&e))))?;
        if let Ok(mut conns) = self.conns.lock() {
            conns.insert(addr, conn.clone());
        }
        Ok(conn)
    }

    fn forget(&self, addr: SocketAddr) {
        if let Ok(mut conns) = self.conns.lock() {
            conns.remove(&addr);
        }
    }

    /// One exchange with one endpoint: frame, streamed payload, reply.
    async fn exchange(
        &self,
        addr: SocketAddr,
        req: &Request,
        payload_len: u64,
        body: Option<&mut ObjectBody>,
    ) -> Result<Response, ClientError> {
        let conn_err = |detail: String| ClientError::Connection { addr: addr.to_string(), detail };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_frame(id, req, payload_len, 0)?;
        let conn = self.connection(addr).await?;
        let region = &self.cfg.region;
        // A closed connection says why it closed (a silent network, a
        // refused certificate) better than the stream error does.
        let conn_err = |detail: String| match conn.close_reason() {
            Some(reason) => conn_err(format!("connection to region {region} ended: {}", why_closed(&reason))),
            None => conn_err(detail),
        };
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| conn_err(e.to_string()))?;
        send.write_all(&frame).await.map_err(|e| conn_err(e.to_string()))?;
        if let Some(body) = body {
            let mut sent = 0u64;
            while let Some(chunk) = body.next_chunk().await? {
                sent += chunk.len() as u64;
                if sent > payload_len {
                    let _ = send.reset(1u8.into());
                    return Err(ClientError::Corrupt {
                        detail: format!("source object grew past {payload_len} bytes"),
                    });
                }
                match send.write_all(&chunk).await {
                    Ok(()) => {}
                    // The peer already has the version and answered
                    // without reading the bytes: read its answer.
                    Err(quinn::WriteError::Stopped(_)) => {
                        sent = payload_len;
                        break;
                    }
                    Err(e) => return Err(conn_err(e.to_string())),
                }
            }
            if sent != payload_len {
                let _ = send.reset(1u8.into());
                return Err(ClientError::Corrupt {
                    detail: format!("source object gave {sent} of {payload_len} bytes"),
                });
            }
        }
        let _ = send.finish();
        let mut raw = [0u8; FRAME_HEADER_LEN];
        recv.read_exact(&mut raw).await.map_err(|e| conn_err(format!("reading reply header: {e}")))?;
        let (header, opcode) = FrameHeader::decode(&raw)?;
        let mut rbody = vec![0u8; header.body_len.get() as usize];
        recv.read_exact(&mut rbody).await.map_err(|e| conn_err(format!("reading reply body: {e}")))?;
        match decode_response(opcode, &rbody)? {
            Response::Error(e) => Err(ClientError::from_server(e.code, e.detail)),
            r => Ok(r),
        }
    }

    /// Try endpoints from `pick` on; a body can only be sent once, so with
    /// a body only the first endpoint that connects is tried.
    async fn call(
        &self,
        pick: u64,
        req: &Request,
        payload_len: u64,
        mut body: Option<&mut ObjectBody>,
    ) -> Result<Response, ClientError> {
        let n = self.cfg.addrs.len();
        let deadline = self.cfg.timeout + Duration::from_millis(payload_len / 1_048_576 * 1_000);
        let mut last = None;
        for i in 0..n {
            let addr = self.cfg.addrs[(pick as usize + i) % n];
            let started = body.is_some();
            let r = tokio::time::timeout(deadline, self.exchange(addr, req, payload_len, body.as_deref_mut()))
                .await
                .unwrap_or(Err(ClientError::Timeout { millis: deadline.as_millis() as u64 }));
            match r {
                Err(e @ (ClientError::Connection { .. } | ClientError::Timeout { .. })) => {
                    self.forget(addr);
                    if started {
                        return Err(e);
                    }
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(ClientError::Unavailable { detail: format!("region {} unreachable", self.cfg.region) }))
    }

    /// Which of these changes does the peer already have?
    pub async fn have(&self, pick: u64, req: CrrHave) -> Result<Vec<bool>, ClientError> {
        let n = req.items.len();
        match self.call(pick, &Request::CrrHave(req), 0, None).await? {
            Response::CrrHaveOk(ok) if ok.done.len() == n => Ok(ok.done),
            Response::CrrHaveOk(ok) => {
                Err(ClientError::Unavailable { detail: format!("peer answered {} of {n} have-checks", ok.done.len()) })
            }
            other => Err(crate::client::unexpected("crr have", other)),
        }
    }

    /// Apply one change at the peer; `body` carries a put's bytes.
    pub async fn apply(&self, pick: u64, req: CrrApply, body: Option<&mut ObjectBody>) -> Result<bool, ClientError> {
        let len = match &req.op {
            tessera_wire::crr::CrrOp::Put(meta) if !meta.delete_marker => meta.size_bytes,
            _ => 0,
        };
        match self.call(pick, &Request::CrrApply(req), len, body).await? {
            Response::CrrApplyOk(ok) => Ok(ok.applied),
            other => Err(crate::client::unexpected("crr apply", other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::why_closed;

    /// A partition is blamed on the network; only a TLS alert from the
    /// peer points at the trust stores.
    #[test]
    fn silence_is_not_blamed_on_the_trust_store() {
        let silent = why_closed(&quinn::ConnectionError::TimedOut);
        assert!(silent.contains("partitioned") && !silent.contains("trust store"), "{silent}");
        let refused = quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: quinn::TransportErrorCode::crypto(42), // TLS alert bad_certificate
            frame_type: None,
            reason: bytes::Bytes::from_static(b"invalid peer certificate: UnknownIssuer"),
        });
        assert!(why_closed(&refused).contains("trust store"), "{}", why_closed(&refused));
        let app = quinn::ConnectionError::ApplicationClosed(quinn::ApplicationClose {
            error_code: quinn::VarInt::from_u32(0),
            reason: bytes::Bytes::from_static(b"node stopping"),
        });
        assert!(!why_closed(&app).contains("trust store"), "{}", why_closed(&app));
    }
}
