//! One request per QUIC bidirectional stream, connections cached per core
//! address. Frames are built and checked by `tessera_wire`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use tessera_wire::{decode_response, encode_frame, FrameHeader, Request, Response, FRAME_HEADER_LEN};

use crate::{ClientConfig, ClientError};

/// Requests with more payload than this do not feed latency estimates.
const SAMPLE_PAYLOAD_MAX: usize = 64 * 1_024;

/// ALPN id of the data and admin port; must match the node's.
pub const ALPN: &[u8] = b"tessera/1";

pub(crate) struct Transport {
    endpoint: quinn::Endpoint,
    server_name: String,
    conns: Mutex<HashMap<SocketAddr, quinn::Connection>>,
    /// Addresses that failed recently, and until when requests to them fail
    /// fast instead of waiting out a timeout (a simple circuit breaker).
    down: Mutex<HashMap<SocketAddr, Instant>>,
    next_id: AtomicU64,
    pub(crate) timeout: Duration,
    connect_timeout: Duration,
    down_for: Duration,
    silence: Duration,
    /// Latency estimates and gray-failure ejections per address.
    pub(crate) health: crate::health::Health,
}

/// A reply: the response and, for reads, the stream the payload follows on.
pub(crate) struct Reply {
    pub(crate) response: Response,
    pub(crate) recv: quinn::RecvStream,
    pub(crate) payload_len: u64,
}

fn is_transport_failure(e: &ClientError) -> bool {
    matches!(e, ClientError::Connection { .. } | ClientError::Timeout { .. })
}

fn conn_err(addr: SocketAddr, e: impl std::fmt::Display) -> ClientError {
    ClientError::Connection { addr: addr.to_string(), detail: e.to_string() }
}

/// A stream error on `conn`, with the reason the connection ended when it
/// did (quinn's stream errors say only "connection lost"; the reason says
/// why, e.g. the node refused this client's certificate).
fn lost(addr: SocketAddr, conn: &quinn::Connection, e: impl std::fmt::Display) -> ClientError {
    let (text, reason) = (e.to_string(), conn.close_reason().map(|r| r.to_string()));
    match reason {
        Some(r) if !text.contains(&r) => conn_err(addr, format!("{text}: {r}")),
        _ => conn_err(addr, text),
    }
}

/// The certificate chain and key this client presents: every node
/// requires a client certificate.
fn client_identity(
    cfg: &ClientConfig,
) -> Result<(Vec<CertificateDer<'static>>, rustls_pki_types::PrivateKeyDer<'static>), ClientError> {
    let (Some(cert), Some(key)) = (&cfg.cert, &cfg.key) else {
        return Err(ClientError::Config {
            detail: "no client certificate: set cert and key in the client config (every Tessera node requires one; \
                     tessera dev writes client.toml for a user and admin.toml for an admin, see docs/security.md)"
                .into(),
        });
    };
    Ok((crate::peer::load_certs(cert)?, crate::peer::load_key(key)?))
}

impl Transport {
    pub(crate) fn new(cfg: &ClientConfig) -> Result<Transport, ClientError> {
        let mut roots = rustls::RootCertStore::empty();
        let certs = CertificateDer::pem_file_iter(&cfg.ca_cert)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| ClientError::Config { detail: format!("CA certificate {}: {e}", cfg.ca_cert.display()) })?;
        for c in certs {
            roots.add(c).map_err(|e| ClientError::Config { detail: format!("CA certificate: {e}") })?;
        }
        let (chain, key) = client_identity(cfg)?;
        let provider = crate::peer::tls_provider();
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| ClientError::Config { detail: e.to_string() })?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| ClientError::Config { detail: format!("client certificate: {e}") })?;
        tls.alpn_protocols = vec![ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls)
            .map_err(|e| ClientError::Config { detail: e.to_string() })?;
        let mut client_cfg = quinn::ClientConfig::new(Arc::new(quic));
        let mut transport = quinn::TransportConfig::default();
        transport.stream_receive_window((16u32 * 1_048_576).into());
        transport.receive_window((64u32 * 1_048_576).into());
        transport.send_window(64 * 1_048_576);
        // Keep-alives often enough that a live node is never silent for
        // `silence_ms` (its ACKs come back even while it works on a request).
        let keep_alive = (cfg.idle_timeout_ms / 3).min(cfg.silence_ms / 4).max(50);
        transport.keep_alive_interval(Some(Duration::from_millis(keep_alive)));
        transport.max_idle_timeout(Some(
            quinn::IdleTimeout::try_from(Duration::from_secs(5))
                .map_err(|e| ClientError::Config { detail: e.to_string() })?,
        ));
        client_cfg.transport_config(Arc::new(transport));
        let bind: SocketAddr = "0.0.0.0:0".parse().map_err(|e| ClientError::Config { detail: format!("{e}") })?;
        let mut endpoint = crate::udp::endpoint(bind, cfg.udp_buffer_bytes)?;
        endpoint.set_default_client_config(client_cfg);
        Ok(Transport {
            endpoint,
            server_name: cfg.server_name.clone(),
            conns: Mutex::new(HashMap::new()),
            down: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            timeout: Duration::from_millis(cfg.request_timeout_ms),
            connect_timeout: Duration::from_millis(cfg.connect_timeout_ms),
            down_for: Duration::from_millis(cfg.down_ms),
            silence: Duration::from_millis(cfg.silence_ms),
            health: crate::health::Health::new(
                cfg.gray_factor,
                Duration::from_millis(cfg.gray_floor_ms),
                Duration::from_millis(cfg.down_ms),
                Duration::from_millis(cfg.hedge_ms),
                Duration::from_millis(cfg.hedge_max_ms),
            ),
        })
    }

    async fn connection(&self, addr: SocketAddr) -> Result<quinn::Connection, ClientError> {
        if let Some(c) = self.conns.lock().map_err(|_| conn_err(addr, "connection cache poisoned"))?.get(&addr) {
            if c.close_reason().is_none() {
                return Ok(c.clone());
            }
        }
        let connecting = self.endpoint.connect(addr, &self.server_name).map_err(|e| conn_err(addr, e))?;
        let conn = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| conn_err(addr, format!("no handshake within {} ms", self.connect_timeout.as_millis())))?
            .map_err(|e| conn_err(addr, e))?;
        self.conns.lock().map_err(|_| conn_err(addr, "connection cache poisoned"))?.insert(addr, conn.clone());
        Ok(conn)
    }

    /// Is this address marked down (recent transport failure)?
    pub(crate) fn is_down(&self, addr: SocketAddr) -> bool {
        let mut down = match self.down.lock() {
            Ok(d) => d,
            Err(p) => p.into_inner(),
        };
        match down.get(&addr) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                down.remove(&addr);
                false
            }
            None => false,
        }
    }

    /// Mark an address down (its requests fail fast for a while).
    pub(crate) fn mark_down(&self, addr: SocketAddr) {
        let mut down = match self.down.lock() {
            Ok(d) => d,
            Err(p) => p.into_inner(),
        };
        down.insert(addr, Instant::now() + self.down_for);
        if let Ok(mut c) = self.conns.lock() {
            c.remove(&addr);
        }
    }

    /// Send a request (with an optional payload), made with map `epoch`,
    /// and read the reply frame. A transport failure marks the address down.
    pub(crate) async fn call(
        &self,
        addr: SocketAddr,
        req: &Request,
        payload: &[u8],
        epoch: u64,
    ) -> Result<Reply, ClientError> {
        self.call_within(addr, req, payload, epoch, self.timeout).await
    }

    /// [`Transport::call`] even while the address is marked down: a write
    /// probing whether a restarted target answers again.
    pub(crate) async fn call_ignoring_down(
        &self,
        addr: SocketAddr,
        req: &Request,
        payload: &[u8],
        epoch: u64,
    ) -> Result<Reply, ClientError> {
        if let Ok(mut d) = self.down.lock() {
            d.remove(&addr);
        }
        self.call_within(addr, req, payload, epoch, self.timeout).await
    }

    /// [`Transport::call`] with its own deadline.
    pub(crate) async fn call_within(
        &self,
        addr: SocketAddr,
        req: &Request,
        payload: &[u8],
        epoch: u64,
        timeout: Duration,
    ) -> Result<Reply, ClientError> {
        if self.is_down(addr) {
            return Err(conn_err(addr, "marked down after a recent failure"));
        }
        // Only reads fail fast on an ejected node: they have other shards
        // or a hedge to go to. A write needs its shard on every live member
        // (all 12 of an 8+4 stripe, every survivor during a zone outage), so
        // a slow-but-alive node is waited for; the zone-lag rule bounds it.
        if let Some(g) = self.health.ejected(addr).filter(|_| may_skip_when_slow(req)) {
            return Err(conn_err(
                addr,
                format!("ejected as slow: {:.0} ms smoothed latency vs {:.1} ms median", g.srtt_ms, g.median_ms),
            ));
        }
        let millis = timeout.as_millis() as u64;
        let start = Instant::now();
        let r = tokio::time::timeout(timeout, self.call_inner(addr, req, payload, epoch))
            .await
            .map_err(|_| ClientError::Timeout { millis })
            .and_then(|r| r);
        match &r {
            Err(e) if is_transport_failure(e) => self.mark_down(addr),
            // Small requests only: a large upload's time says more about
            // the link's bandwidth than about the node.
            _ if payload.len() <= SAMPLE_PAYLOAD_MAX => {
                if let Some(g) = self.health.record(addr, start.elapsed()) {
                    tracing::warn!(%addr, srtt_ms = g.srtt_ms, median_ms = g.median_ms, "node ejected as slow (gray failure)");
                }
            }
            _ => {}
        }
        r
    }

    async fn call_inner(
        &self,
        addr: SocketAddr,
        req: &Request,
        payload: &[u8],
        epoch: u64,
    ) -> Result<Reply, ClientError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_frame(id, req, payload.len() as u64, epoch)?;
        let conn = self.connection(addr).await?;
        tokio::select! {
            r = self.exchange(addr, &conn, &frame, payload) => r,
            () = silence(&conn, self.silence) => {
                // quinn would keep a connection to a dead peer for up to
                // max(idle timeout, 3 x PTO), and the PTO backs off while
                // keep-alives go unanswered: seconds. Silence is faster.
                conn.close(3u8.into(), b"peer silent");
                Err(conn_err(addr, format!("no packet from the node for {} ms", self.silence.as_millis())))
            }
        }
    }

    async fn exchange(
        &self,
        addr: SocketAddr,
        conn: &quinn::Connection,
        frame: &[u8],
        payload: &[u8],
    ) -> Result<Reply, ClientError> {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(addr, conn, e))?;
        send.write_all(frame).await.map_err(|e| lost(addr, conn, e))?;
        if !payload.is_empty() {
            send.write_all(payload).await.map_err(|e| lost(addr, conn, e))?;
        }
        let _ = send.finish();
        let mut raw = [0u8; FRAME_HEADER_LEN];
        recv.read_exact(&mut raw).await.map_err(|e| lost(addr, conn, format!("reading reply header: {e}")))?;
        let (header, opcode) = FrameHeader::decode(&raw)?;
        let mut body = vec![0u8; header.body_len.get() as usize];
        recv.read_exact(&mut body).await.map_err(|e| lost(addr, conn, format!("reading reply body: {e}")))?;
        let response = decode_response(opcode, &body)?;
        if let Response::Error(e) = response {
            return Err(ClientError::from_server(e.code, e.detail));
        }
        Ok(Reply { response, recv, payload_len: header.payload_len.get() })
    }
}

/// Resolves once `conn` has received nothing for `limit` (checked every
/// `limit / 8`); never while packets arrive.
async fn silence(conn: &quinn::Connection, limit: Duration) {
    let step = (limit / 8).max(Duration::from_millis(10));
    let mut last = conn.stats().udp_rx.datagrams;
    let mut since = Instant::now();
    loop {
        tokio::time::sleep(step).await;
        let now = conn.stats().udp_rx.datagrams;
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= limit {
            return;
        }
    }
}

impl Transport {
    /// Read a reply's payload completely into memory (bounded by the frame limit).
    pub(crate) async fn read_payload(&self, reply: &mut Reply, addr: SocketAddr) -> Result<Vec<u8>, ClientError> {
        let mut data = vec![0u8; reply.payload_len as usize];
        reply.recv.read_exact(&mut data).await.map_err(|e| conn_err(addr, format!("reading payload: {e}")))?;
        Ok(data)
    }
}

/// Requests that an ejected (gray) node may be skipped for: shard reads,
/// which have other shards and parity to go to. Heads and listings need
/// answers from a quorum of targets and already stop waiting for a slow
/// one after the hedge delay, so skipping it could only cost the quorum.
fn may_skip_when_slow(req: &Request) -> bool {
    matches!(req, Request::GetShard(_))
}
