//! The replication endpoint: where peer regions send their changes. Mutual
//! TLS names the sending region (a certificate no peer's CA issued never
//! completes the handshake); a change is taken only into a bucket this
//! region's map lets that peer replicate into (`crr_in`, see
//! `tessera_wire::crr::inbound_allows`), and is applied through this
//! region's normal quorum write path with its version id and metadata
//! kept, so applying the same change twice is a no-op. A stream that goes
//! silent (before its request is whole, or mid-payload) is dropped after
//! the `[crr] timeout_ms`.

use std::rc::Rc;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use tessera_client::{Client, ClientError, VersionHeld};
use tessera_wire::crr::{CrrApply, CrrApplyOk, CrrHave, CrrHaveOk, CrrOp};
use tessera_wire::limits::BODY_BYTES_MAX;
use tessera_wire::{decode_request, encode_frame, ErrorCode, FrameHeader, Request, Response, FRAME_HEADER_LEN};
use tokio::io::AsyncReadExt;

use crate::metrics::NodeMetrics;
use crate::server::error_response as error;
use crate::tls::PeerTrust;

/// Versions up to this size are written without looking first.
const SMALL_BYTES: u64 = 1_048_576;

/// What the endpoint needs.
pub(crate) struct Endpoint {
    pub(crate) client: Client,
    pub(crate) trust: Arc<PeerTrust>,
    pub(crate) region: String,
    pub(crate) metrics: Arc<NodeMetrics>,
    /// This region's map: its inbound rules decide what peers may send.
    pub(crate) map: Arc<crate::cluster::MapState>,
    /// How long a stream may stay silent.
    pub(crate) idle: std::time::Duration,
}

impl Endpoint {
    /// Whether `peer` may send a change first made in `origin` into
    /// `dest_bucket`, by this region's current map; the refusal if not.
    fn admits(&self, peer: &str, origin: &str, dest_bucket: &str) -> Option<Response> {
        let map = self.map.map();
        let why = tessera_wire::crr::inbound_allows(&map.crr_in, peer, origin, dest_bucket).err()?;
        tracing::info!(%peer, %origin, %dest_bucket, %why, "replica refused");
        Some(error(ErrorCode::AccessDenied, why))
    }
}

/// Accept peer connections forever.
pub(crate) async fn serve(ep: Rc<Endpoint>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let ep = ep.clone();
        tokio::task::spawn_local(async move {
            let remote = incoming.remote_address();
            let conn = match incoming.await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(
                        %remote,
                        error = %e,
                        trusted = ?ep.trust.regions(),
                        "refused a replication connection: its certificate is not issued by the CA of any configured \
                         peer region"
                    );
                    return;
                }
            };
            let chain = conn.peer_identity().and_then(|id| id.downcast::<Vec<CertificateDer<'static>>>().ok());
            let Some(peer) = chain.as_deref().and_then(|c| ep.trust.region_of(c)).map(str::to_owned) else {
                tracing::warn!(%remote, "refused a replication connection from an unknown region");
                conn.close(1u8.into(), b"unknown region");
                return;
            };
            tracing::info!(%remote, %peer, "replication link up");
            while let Ok((send, recv)) = conn.accept_bi().await {
                tokio::task::spawn_local(stream(ep.clone(), peer.clone(), send, recv));
            }
        });
    }
}

fn client_error(e: &ClientError) -> Response {
    let code = match e {
        ClientError::NoSuchBucket { .. } => ErrorCode::NoSuchBucket,
        ClientError::Corrupt { .. } => ErrorCode::PayloadChecksumMismatch,
        ClientError::TargetFull { .. } => ErrorCode::TargetFull,
        _ => ErrorCode::Busy,
    };
    error(code, e)
}

async fn stream(ep: Rc<Endpoint>, peer: String, mut send: quinn::SendStream, mut recv: quinn::RecvStream) {
    let mut raw = [0u8; FRAME_HEADER_LEN];
    match tokio::time::timeout(ep.idle, recv.read_exact(&mut raw)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return,
        Err(_) => {
            tracing::debug!(%peer, "replication stream idle; dropped");
            let _ = recv.stop(1u8.into());
            let _ = send.reset(1u8.into());
            return;
        }
    }
    let (resp, id) = match FrameHeader::decode(&raw) {
        Err(e) => (error(ErrorCode::BadRequest, e), 0),
        Ok((header, opcode)) => {
            let id = header.request_id.get();
            let body_len = header.body_len.get();
            debug_assert!(body_len <= BODY_BYTES_MAX);
            let mut body = vec![0u8; body_len as usize];
            let resp = match tokio::time::timeout(ep.idle, recv.read_exact(&mut body)).await {
                Err(_) => error(
                    ErrorCode::BadRequest,
                    format!("frame body of {body_len} bytes did not arrive within {} ms", ep.idle.as_millis()),
                ),
                Ok(Err(e)) => error(ErrorCode::BadRequest, format!("frame body truncated: {e}")),
                Ok(Ok(())) => match decode_request(opcode, &body) {
                    Err(e) => error(ErrorCode::BadRequest, e),
                    Ok(Request::CrrHave(h)) => match ep.admits(&peer, &peer, &h.dest_bucket) {
                        Some(refusal) => refusal,
                        None => have(&ep, h).await,
                    },
                    Ok(Request::CrrApply(a)) => apply(&ep, &peer, a, header.payload_len.get(), &mut recv).await,
                    Ok(_) => error(
                        ErrorCode::BadRequest,
                        format!("opcode {opcode:?} is not a replication request (core ports take those)"),
                    ),
                },
            };
            (resp, id)
        }
    };
    let _ = recv.stop(0u8.into());
    if let Ok(frame) = encode_frame(id, &resp, 0, 0) {
        let _ = send.write_all(&frame).await;
        let _ = send.finish();
    }
}

/// Which versions this region holds already (or purged: a version deleted
/// here for good is never resurrected by a late copy).
async fn have(ep: &Endpoint, h: CrrHave) -> Response {
    let mut done = vec![false; h.items.len()];
    let mut tasks = tokio::task::JoinSet::new();
    for (i, (key, version, purge)) in h.items.into_iter().enumerate() {
        if purge {
            // Applying a purge costs no bytes; always apply it.
            continue;
        }
        let (client, bucket) = (ep.client.clone(), h.dest_bucket.clone());
        tasks.spawn(async move { (i, client.version_held(&bucket, &key, version).await) });
    }
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok((i, Ok(held))) => done[i] = held != VersionHeld::Absent,
            Ok((_, Err(e))) => return client_error(&e),
            Err(e) => return error(ErrorCode::Internal, e),
        }
    }
    Response::CrrHaveOk(CrrHaveOk { done })
}

/// Purge a version; in a bucket that keeps no old versions, a purge of a
/// version the source had committed also purges the older versions here
/// (the source's commit removed them; its log records only the purge).
async fn purge(
    ep: &Endpoint,
    bucket: &str,
    key: &str,
    version: tessera_wire::VersionId,
    supersedes: bool,
    origin: &str,
) -> Result<bool, ClientError> {
    ep.client.delete_version_replica(bucket, key, version, origin).await?;
    if supersedes && !ep.client.bucket(bucket).await?.versioned {
        let page = ep.client.list_versions(bucket, key, None, 100).await?;
        for e in page.entries.iter().filter(|e| e.key == key && e.version < version) {
            ep.client.delete_version_replica(bucket, key, e.version, origin).await?;
        }
    }
    Ok(true)
}

async fn apply(ep: &Endpoint, peer: &str, a: CrrApply, payload_len: u64, recv: &mut quinn::RecvStream) -> Response {
    if a.origin != peer {
        tracing::debug!(%peer, origin = %a.origin, rule = %a.rule, "forwarded replica");
    }
    if a.origin == ep.region {
        return error(ErrorCode::BadRequest, format!("change from region {} came back to it (an echo)", a.origin));
    }
    if let Some(refusal) = ep.admits(peer, &a.origin, &a.dest_bucket) {
        return refusal;
    }
    let result = match a.op {
        CrrOp::Purge { key, version, supersedes } => {
            purge(ep, &a.dest_bucket, &key, version, supersedes, &a.origin).await
        }
        CrrOp::Put(mut meta) => {
            let want = if meta.delete_marker { 0 } else { meta.size_bytes };
            if payload_len != want {
                return error(
                    ErrorCode::BadRequest,
                    format!("payload of {payload_len} bytes for a version of {} bytes", meta.size_bytes),
                );
            }
            meta.origin = Some(a.origin.clone());
            // Large versions: look before reading the bytes (a re-ship of
            // one this region holds stops here). Small ones go straight to
            // the write, which is a no-op on targets that hold the version
            // and refused where it was purged.
            let held = if payload_len > SMALL_BYTES {
                ep.client.version_held(&a.dest_bucket, &meta.key, meta.version).await
            } else {
                Ok(VersionHeld::Absent)
            };
            match held {
                Ok(VersionHeld::Committed(_) | VersionHeld::Purged) => Ok(false),
                Ok(VersionHeld::Absent) => {
                    let source = super::idle::IdleLimit::new(&mut *recv, ep.idle).take(payload_len);
                    match ep.client.put_replica(&a.dest_bucket, &meta, None, source).await {
                        Ok(_) => Ok(true),
                        // Deleted here for good: the copy is not wanted.
                        Err(ClientError::Server { code: ErrorCode::VersionPurged, .. }) => Ok(false),
                        Err(e) => Err(e),
                    }
                }
                Err(e) => Err(e),
            }
        }
    };
    match result {
        Ok(applied) => {
            if applied {
                ep.metrics.crr.applied_here.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            Response::CrrApplyOk(CrrApplyOk { applied })
        }
        Err(e) => {
            tracing::debug!(%peer, rule = %a.rule, error = %e, "apply failed");
            client_error(&e)
        }
    }
}
