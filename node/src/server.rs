//! The QUIC request handler of one core: one bidirectional stream per
//! request, frames decoded and checked by `tessera_wire`, shard payloads read
//! straight into the engine's aligned record buffer (the one unavoidable
//! copy). A malformed frame gets a clear error on its own stream; the
//! connection and every other stream carry on.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tessera_wire::crr::{ChangeSummaryOk, CrrOk, PgBacklog, SUMMARY_GROUPS_MAX};
use tessera_wire::limits::BODY_BYTES_MAX;
use tessera_wire::repair::PgDigestOk;
use tessera_wire::{
    decode_request, encode_frame, CommitOk, CoreStatus, DeleteOk, ErrorBody, ErrorCode, FrameHeader, GetShardOk, MapOk,
    NodeStatusOk, Opcode, Principal, PutShardOk, Request, Response, TargetId, TargetStatus, FRAME_HEADER_LEN,
};

use crate::engine::{Engine, EngineError};
use crate::io::ALIGN_BYTES;
use crate::metrics::NodeMetrics;

/// What a core needs to serve requests.
pub(crate) struct CoreCtx {
    /// This core's index.
    pub(crate) core: u16,
    /// Targets owned by this core.
    pub(crate) engines: BTreeMap<TargetId, Engine>,
    /// Node layout for status answers: (core, port, target ids).
    pub(crate) layout: Vec<(u16, u16, Vec<TargetId>)>,
    /// Node name.
    pub(crate) node_name: String,
    /// Shared metrics (atomics).
    pub(crate) metrics: Arc<NodeMetrics>,
    /// Deadline for a whole request to arrive.
    pub(crate) request_timeout: Duration,
    /// The cluster map (shared by the node's cores).
    pub(crate) map: Arc<crate::cluster::MapState>,
    /// Payload memory of all this core's connections, in KiB permits.
    pub(crate) payload_budget: tokio::sync::Semaphore,
    /// Payload memory one connection may hold, KiB.
    pub(crate) connection_budget_kib: u32,
    /// How far ahead of this node's clock a new version id may be, ms.
    pub(crate) version_skew_ms: u64,
    /// Connection caps and address validation of this core.
    pub(crate) admission: Rc<crate::admission::Admission>,
    /// Users and revoked certificates (shared by the node's cores).
    pub(crate) registry: Arc<crate::registry::RegistryState>,
}

/// Most payload bytes a stream reads before it holds budget: what a
/// stream that sends a little and stalls can pin outside the budgets.
const FIRST_READ_BYTES_MAX: usize = 64 * 1_024;

/// KiB of memory a shard payload of `len` bytes holds (data and record
/// header), as budget permits.
fn payload_kib(len: usize) -> u32 {
    u32::try_from((len + ALIGN_BYTES).div_ceil(1_024)).unwrap_or(u32::MAX)
}

/// QUIC application close code for a certificate that names no principal.
const CLOSE_NO_PRINCIPAL: u32 = 0x10;
/// QUIC application close code for a connection over a cap.
const CLOSE_TOO_MANY: u32 = 0x11;
/// QUIC application close code for a certificate the principal registry
/// refuses (revoked, or a user no longer listed).
const CLOSE_REVOKED: u32 = 0x12;

/// Accept connections forever on this core's endpoint.
pub(crate) async fn serve(ctx: Rc<CoreCtx>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        if ctx.admission.wants_retry(incoming.remote_address_validated(), incoming.may_retry()) {
            let _ = incoming.retry();
            continue;
        }
        let ctx = ctx.clone();
        tokio::task::spawn_local(async move {
            let handshake = ctx.admission.handshake();
            let connected = incoming.await;
            drop(handshake);
            let conn = match connected {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(error = %e, "handshake failed");
                    return;
                }
            };
            // Who is asking: the principal the client certificate names
            // (the handshake already proved it chains to the region's CA).
            let who = match crate::tls::principal_of(&conn) {
                Ok(p) => Rc::new(p),
                Err(why) => {
                    tracing::warn!(remote = %conn.remote_address(), %why, "connection refused");
                    let reason = format!("refused: {why}");
                    conn.close(CLOSE_NO_PRINCIPAL.into(), reason.as_bytes());
                    return;
                }
            };
            // Whether the registry still admits it: now, and whenever a
            // new registry arrives, for as long as the connection lasts.
            let fingerprint = crate::tls::fingerprint_of(&conn).unwrap_or([0; 32]);
            let mut registry = ctx.registry.subscribe();
            if let Err(why) = ctx.registry.admits(&who, &fingerprint) {
                tracing::info!(remote = %conn.remote_address(), principal = %who, %why, "connection refused");
                conn.close(CLOSE_REVOKED.into(), format!("refused: {why}").as_bytes());
                return;
            }
            let _ticket = match ctx.admission.admit(&who) {
                Ok(t) => t,
                Err(why) => {
                    tracing::info!(remote = %conn.remote_address(), principal = %who, %why, "connection refused");
                    conn.close(CLOSE_TOO_MANY.into(), format!("refused: {why}").as_bytes());
                    return;
                }
            };
            tracing::debug!(remote = %conn.remote_address(), principal = %who, "connection admitted");
            // This connection's share of payload memory.
            let budget = Rc::new(tokio::sync::Semaphore::new(ctx.connection_budget_kib as usize));
            // Watching stops if the registry's sender goes (node shutdown):
            // a closed channel would otherwise be ready forever.
            let mut watching = true;
            loop {
                let accepted = tokio::select! {
                    a = conn.accept_bi() => a,
                    changed = registry.changed(), if watching => {
                        if changed.is_err() {
                            watching = false;
                            continue;
                        }
                        if let Err(why) = ctx.registry.admits(&who, &fingerprint) {
                            tracing::info!(remote = %conn.remote_address(), principal = %who, %why, "connection closed");
                            conn.close(CLOSE_REVOKED.into(), format!("refused: {why}").as_bytes());
                            return;
                        }
                        continue;
                    }
                };
                match accepted {
                    Ok((send, recv)) => {
                        tokio::task::spawn_local(handle_stream(ctx.clone(), who.clone(), budget.clone(), send, recv));
                    }
                    Err(e) => {
                        tracing::debug!(remote = %conn.remote_address(), error = %e, "connection closed");
                        return;
                    }
                }
            }
        });
    }
}

/// Whether `who` may send `request`, in order: its role, the version id
/// it brings, and (users and gateways) what the bucket's owner, ACL and
/// policy allow. A target with no record of the bucket holds none of its
/// data: the request goes on and meets NoSuchBucket or NoSuchKey there.
/// Reads come back pending: they are decided once the object is found,
/// from its owner and ACL.
fn admit(
    ctx: &CoreCtx,
    who: &Principal,
    request: &mut Request,
) -> Result<Option<crate::authz::Pending>, (ErrorCode, String)> {
    let denied = |why| (ErrorCode::AccessDenied, why);
    crate::authz::authorize(who, request).map_err(denied)?;
    crate::authz::vouch_version(who, request, crate::engine::now_ms(), ctx.version_skew_ms)
        .map_err(|why| (ErrorCode::BadRequest, why))?;
    if !crate::authz::bound_by_acls(who) {
        return Ok(None);
    }
    crate::authz::check_bucket_owner(who, request).map_err(denied)?;
    let Some((target, bucket, mut action, key)) = crate::authz::action_of(request) else {
        return Ok(None);
    };
    let Some(engine) = ctx.engines.get(&target) else { return Ok(None) };
    let Ok(settings) = engine.bucket_access(bucket) else { return Ok(None) };
    // A version still being written is its writer's to commit or purge;
    // committing a delete marker is a delete.
    let unfinished = match &*request {
        Request::Commit(c) => Some((&c.key, c.version)),
        Request::Delete(d) => Some((&d.key, d.version)),
        _ => None,
    };
    if let Some((key, version)) = unfinished {
        if let Ok(tessera_wire::HeadOk { meta: Some(m), committed: false, .. }) =
            engine.view(bucket, key, Some(version), &[])
        {
            if m.owner != who.name {
                return Err(denied(crate::authz::not_writer(who, bucket, key, &m.owner)));
            }
            if m.delete_marker {
                action = tessera_wire::access::Action::Delete;
            }
        }
    }
    let pending = crate::authz::decide_bucket(who, action, key, settings).map_err(denied)?;
    Ok(pending)
}

/// Read a whole small payload (a map or a registry, from an admin or a
/// node; its length was bounded when the header was read).
async fn read_whole(recv: &mut quinn::RecvStream, len: u64, what: &str) -> Result<Vec<u8>, String> {
    let mut bytes = vec![0u8; len as usize];
    recv.read_exact(&mut bytes).await.map_err(|e| format!("{what} payload truncated: expected {len} bytes: {e}"))?;
    Ok(bytes)
}

/// The engine found no such object, version or shard.
fn absent(e: &EngineError) -> bool {
    matches!(e, EngineError::NoSuchKey { .. } | EngineError::NoSuchShard { .. } | EngineError::NotPrepared { .. })
}

/// A refusal for a read that `pending` (the bucket's settings) does not
/// allow once the engine has answered: from the object's owner and ACL
/// when found, as "no such object" when the engine found none (only those
/// who may list learn that), and None when the read may be answered.
fn refuse_read(
    pending: Option<&crate::authz::Pending>,
    who: &Principal,
    found: Result<Option<&tessera_wire::ObjectMeta>, &EngineError>,
) -> Option<Response> {
    let object = match found {
        Ok(meta) => meta.map(|m| (m.owner.as_str(), m.acl)),
        Err(e) if absent(e) => None,
        Err(_) => return None,
    };
    let why = pending?.decide_read(who, object).err()?;
    Some(error_response(ErrorCode::AccessDenied, why))
}

/// A page of the buckets `owner` owns (all, without an owner), after
/// `after`: pages of the target's list are read until `limit` match or the
/// list ends, so a page is never empty while more follow.
fn own_buckets(
    engine: &Engine,
    owner: Option<&str>,
    mut after: Option<String>,
    limit: usize,
) -> Result<(Vec<tessera_wire::BucketInfo>, bool), EngineError> {
    let mut out = Vec::new();
    loop {
        let (page, more) = engine.buckets(after.as_deref(), limit)?;
        after = page.last().map(|b| b.name.clone());
        out.extend(page.into_iter().filter(|b| owner.is_none_or(|o| b.owner == o)));
        if out.len() >= limit {
            out.truncate(limit);
            return Ok((out, true));
        }
        if !more {
            return Ok((out, false));
        }
    }
}

pub(crate) fn error_response(code: ErrorCode, detail: impl std::fmt::Display) -> Response {
    let mut detail = detail.to_string();
    if detail.len() > tessera_wire::limits::ERROR_DETAIL_BYTES_MAX {
        let mut cut = tessera_wire::limits::ERROR_DETAIL_BYTES_MAX;
        while !detail.is_char_boundary(cut) {
            cut -= 1;
        }
        detail.truncate(cut);
    }
    Response::Error(ErrorBody { code, detail })
}

/// Position of `target` in group `pg` under this placement (the shard
/// index it holds), or None when it is no member.
fn shard_in(p: &tessera_wire::Placement, pg: u32, target: tessera_wire::TargetId) -> Option<u16> {
    p.targets(pg).iter().position(|t| *t == target).and_then(|i| u16::try_from(i).ok())
}

fn engine_error(e: &EngineError) -> Response {
    let code = match e {
        EngineError::TargetFull { .. } => ErrorCode::TargetFull,
        EngineError::NoSuchBucket { .. } => ErrorCode::NoSuchBucket,
        EngineError::BucketExists { .. } => ErrorCode::BucketExists,
        EngineError::NoSuchKey { .. } | EngineError::NoSuchShard { .. } => ErrorCode::NoSuchKey,
        EngineError::ChecksumMismatch { .. } => ErrorCode::ChecksumMismatch,
        EngineError::PayloadChecksum { .. } => ErrorCode::PayloadChecksumMismatch,
        EngineError::IncompleteObject { .. } => ErrorCode::IncompleteObject,
        EngineError::NotPrepared { .. } => ErrorCode::NoSuchKey,
        EngineError::VersionPurged { .. } => ErrorCode::VersionPurged,
        EngineError::InvalidRange { .. } => ErrorCode::InvalidRange,
        EngineError::ShardTooLarge { .. } | EngineError::RecordTooLarge(_) => ErrorCode::BadRequest,
        _ => ErrorCode::Internal,
    };
    error_response(code, e)
}

/// Outcome of reading a request, for metrics.
struct Served {
    op: usize,
    ok: bool,
    bytes_in: u64,
    bytes_out: u64,
}

async fn handle_stream(
    ctx: Rc<CoreCtx>,
    who: Rc<Principal>,
    budget: Rc<tokio::sync::Semaphore>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let core = &ctx.metrics.cores[ctx.core as usize];
    core.requests_in_flight.fetch_add(1, Relaxed);
    let start = Instant::now();
    let served = tokio::time::timeout(ctx.request_timeout, serve_one(&ctx, &who, &budget, &mut send, &mut recv)).await;
    core.requests_in_flight.fetch_sub(1, Relaxed);
    match served {
        Ok(Some(s)) => core.ops[s.op].record(start.elapsed(), s.ok, s.bytes_in, s.bytes_out),
        Ok(None) => {}
        Err(_) => {
            // A stalled client: give up on this stream only.
            tracing::debug!(core = ctx.core, "request timed out; stream reset");
            let _ = send.reset(1u8.into());
            let _ = recv.stop(1u8.into());
        }
    }
}

async fn reply(ctx: &CoreCtx, send: &mut quinn::SendStream, request_id: u64, resp: &Response, payload: &[u8]) -> bool {
    let Ok(frame) = encode_frame(request_id, resp, payload.len() as u64, ctx.map.epoch()) else {
        return false;
    };
    if send.write_all(&frame).await.is_err() {
        return false;
    }
    if !payload.is_empty() && send.write_all(payload).await.is_err() {
        return false;
    }
    send.finish().is_ok()
}

async fn bad_frame(
    ctx: &CoreCtx,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    request_id: u64,
    detail: String,
) {
    ctx.metrics.cores[ctx.core as usize].bad_frames.fetch_add(1, Relaxed);
    tracing::debug!(core = ctx.core, %detail, "bad frame");
    let _ = recv.stop(2u8.into());
    reply(ctx, send, request_id, &error_response(ErrorCode::BadRequest, detail), &[]).await;
}

#[allow(clippy::result_large_err)]
async fn serve_one(
    ctx: &CoreCtx,
    who: &Principal,
    budget: &tokio::sync::Semaphore,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
) -> Option<Served> {
    let mut raw = [0u8; FRAME_HEADER_LEN];
    if let Err(e) = recv.read_exact(&mut raw).await {
        if !matches!(e, quinn::ReadExactError::FinishedEarly(0)) {
            bad_frame(ctx, send, recv, 0, format!("frame header truncated: {e}")).await;
        }
        return None;
    }
    let (header, opcode) = match FrameHeader::decode(&raw) {
        Ok(h) => h,
        Err(e) => {
            bad_frame(ctx, send, recv, 0, e.to_string()).await;
            return None;
        }
    };
    let request_id = header.request_id.get();
    let body_len = header.body_len.get();
    debug_assert!(body_len <= BODY_BYTES_MAX);
    let mut body = vec![0u8; body_len as usize];
    if let Err(e) = recv.read_exact(&mut body).await {
        bad_frame(ctx, send, recv, request_id, format!("frame body truncated: expected {body_len} bytes: {e}")).await;
        return None;
    }
    let mut request = match decode_request(opcode, &body) {
        Ok(r) => r,
        Err(e) => {
            bad_frame(ctx, send, recv, request_id, e.to_string()).await;
            return None;
        }
    };
    let payload_len = header.payload_len.get();
    let pending = match admit(ctx, who, &mut request) {
        Ok(p) => p,
        Err((code, why)) => {
            if payload_len > 0 {
                let _ = recv.stop(4u8.into());
            }
            reply(ctx, send, request_id, &error_response(code, why), &[]).await;
            return Some(Served { op: 7, ok: false, bytes_in: 0, bytes_out: 0 });
        }
    };
    let node_epoch = ctx.map.epoch();
    let request_epoch = header.map_epoch.get();
    let map_free = matches!(
        request,
        Request::NodeStatus(_)
            | Request::GetMap(_)
            | Request::SetMap(_)
            | Request::GetRegistry(_)
            | Request::SetRegistry(_)
            | Request::RepairStatus(_)
            | Request::SetRepairRate(_)
            | Request::CrrStatus(_)
    );
    if !map_free && request_epoch != node_epoch {
        // Refuse before touching any target: the sender may have placed
        // this request by another map.
        let (code, detail) = if request_epoch < node_epoch {
            (ErrorCode::StaleEpoch, format!("request made with map epoch {request_epoch}; node has epoch {node_epoch}"))
        } else {
            (
                ErrorCode::NodeBehind,
                format!("request made with map epoch {request_epoch}; node is at epoch {node_epoch}"),
            )
        };
        if payload_len > 0 {
            let _ = recv.stop(4u8.into());
        }
        reply(ctx, send, request_id, &error_response(code, detail), &[]).await;
        return Some(Served { op: 7, ok: false, bytes_in: 0, bytes_out: 0 });
    }
    let engine_for = |t: TargetId| {
        ctx.engines.get(&t).ok_or_else(|| {
            let owner = ctx.layout.iter().find(|(_, _, ts)| ts.contains(&t));
            let detail = match owner {
                Some((c, port, _)) => format!("target {t} is owned by core {c} on port {port}, not core {}", ctx.core),
                None => format!("node {} has no target {t}", ctx.node_name),
            };
            error_response(ErrorCode::WrongTarget, detail)
        })
    };
    let op = match opcode {
        Opcode::PutShard => 0,
        Opcode::GetShard => 1,
        Opcode::Head => 2,
        Opcode::Delete => 3,
        Opcode::List => 4,
        Opcode::CreateBucket => 5,
        Opcode::GetBucket => 6,
        _ => 7,
    };
    let mut bytes_out = 0u64;
    let resp: Response = match request {
        Request::PutShard(p) => {
            let engine = match engine_for(p.target) {
                Ok(e) => e,
                Err(r) => {
                    let _ = recv.stop(3u8.into());
                    reply(ctx, send, request_id, &r, &[]).await;
                    return Some(Served { op, ok: false, bytes_in: 0, bytes_out: 0 });
                }
            };
            let len = payload_len as usize;
            // Memory for a payload is taken when its bytes come, never on
            // the word of the header alone (a stream that announces 4 MiB
            // and stalls holds nothing), and within the connection's and
            // the core's budgets (a full budget makes the stream wait, and
            // QUIC flow control slows its sender).
            let first = if len == 0 {
                bytes::Bytes::new()
            } else {
                match recv.read_chunk(len.min(FIRST_READ_BYTES_MAX), true).await {
                    Ok(Some(c)) => c.bytes,
                    Ok(None) => {
                        let detail = format!("payload truncated: expected {len} bytes, the stream ended before any");
                        bad_frame(ctx, send, recv, request_id, detail).await;
                        return None;
                    }
                    Err(e) => {
                        bad_frame(ctx, send, recv, request_id, format!("payload of {len} bytes: {e}")).await;
                        return None;
                    }
                }
            };
            let kib = payload_kib(len);
            let (Ok(_mine), Ok(_core)) = (
                budget.acquire_many(kib.min(ctx.connection_budget_kib)).await,
                ctx.payload_budget.acquire_many(kib).await,
            ) else {
                return None;
            };
            let mut buf = match engine.record_buffer(len) {
                Ok(b) => b,
                Err(e) => {
                    let _ = recv.stop(3u8.into());
                    reply(ctx, send, request_id, &engine_error(&e), &[]).await;
                    return Some(Served { op, ok: false, bytes_in: 0, bytes_out: 0 });
                }
            };
            let data = &mut buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + len];
            data[..first.len()].copy_from_slice(&first);
            if let Err(e) = recv.read_exact(&mut data[first.len()..]).await {
                bad_frame(ctx, send, recv, request_id, format!("payload truncated: expected {len} bytes: {e}")).await;
                return None;
            }
            let result = if p.repair {
                engine
                    .repair_shard(&p.bucket, &p.key, p.version, p.stripe, p.shard, p.shard_crc32c, buf, len)
                    .await
                    .map(|()| false)
            } else {
                engine
                    .put_shard(&p.bucket, &p.key, p.version, p.stripe, p.shard, p.shard_crc32c, p.meta, buf, len)
                    .await
            };
            match result {
                Ok(prepared) => Response::PutShardOk(PutShardOk { target: p.target, prepared }),
                Err(e) => engine_error(&e),
            }
        }
        Request::GetShard(g) => match engine_for(g.target) {
            Err(r) => r,
            Ok(engine) => {
                let got = engine.get_shard(&g.bucket, &g.key, g.version, g.stripe, g.shard, g.range).await;
                // A version may hold no copy of this shard here (an empty
                // shard of a tiny object): its metadata still decides.
                let held = match &got {
                    Err(e) if pending.is_some() && absent(e) => {
                        engine.view(&g.bucket, &g.key, Some(g.version), &[]).ok().and_then(|h| h.meta)
                    }
                    _ => None,
                };
                let object = match &got {
                    Ok(read) => Ok(Some(&read.meta)),
                    Err(e) if absent(e) => Ok(held.as_ref()),
                    Err(e) => Err(e),
                };
                match refuse_read(pending.as_ref(), who, object) {
                    Some(refusal) => refusal,
                    None => match got {
                        Ok(read) => {
                            let resp = Response::GetShardOk(GetShardOk {
                                meta: read.meta,
                                shard_len: read.shard_len,
                                payload_crc32c: read.crc32c,
                            });
                            let payload = &read.buf.as_slice()[read.range.clone()];
                            bytes_out = payload.len() as u64;
                            let ok = reply(ctx, send, request_id, &resp, payload).await;
                            return Some(Served { op, ok, bytes_in: 0, bytes_out });
                        }
                        Err(e) => {
                            if matches!(e, EngineError::ChecksumMismatch { .. }) {
                                // Remember it so anti-entropy rebuilds this copy;
                                // the reader decodes around it meanwhile.
                                ctx.metrics.repair.update(|r| r.corrupt_found += 1);
                                let engine = engine.clone();
                                tokio::task::spawn_local(async move {
                                    if let Err(e) =
                                        engine.mark_corrupt(&g.bucket, &g.key, g.version, g.stripe, g.shard).await
                                    {
                                        tracing::warn!(error = %e, "could not record a corrupt shard");
                                    }
                                });
                            }
                            engine_error(&e)
                        }
                    },
                }
            }
        },
        Request::Head(h) => match engine_for(h.target) {
            Err(r) => r,
            Ok(engine) => {
                let got = engine.view(&h.bucket, &h.key, h.version, &h.exclude);
                let object = match &got {
                    Ok(head) => Ok(head.meta.as_ref()),
                    Err(e) => Err(e),
                };
                match refuse_read(pending.as_ref(), who, object) {
                    Some(refusal) => refusal,
                    None => got.map(Response::HeadOk).unwrap_or_else(|e| engine_error(&e)),
                }
            }
        },
        Request::Delete(d) => match engine_for(d.target) {
            Err(r) => r,
            Ok(engine) => match engine.purge(&d.bucket, &d.key, d.version, d.origin.as_deref()).await {
                Ok(removed) => Response::DeleteOk(DeleteOk { removed }),
                Err(e) => engine_error(&e),
            },
        },
        Request::Commit(c) => match engine_for(c.target) {
            Err(r) => r,
            Ok(engine) => match engine.commit(&c.bucket, &c.key, c.version).await {
                Ok(()) => Response::CommitOk(CommitOk { target: c.target }),
                Err(e) => engine_error(&e),
            },
        },
        Request::ListVersions(l) => match engine_for(l.target) {
            Err(r) => r,
            Ok(engine) => engine
                .list_versions(&l.bucket, &l.prefix, l.after.as_ref(), l.limit)
                .map(Response::ListVersionsOk)
                .unwrap_or_else(|e| engine_error(&e)),
        },
        Request::GetMap(_) => {
            let bytes = ctx.map.encoded();
            let resp = Response::MapOk(MapOk { epoch: ctx.map.epoch() });
            let ok = reply(ctx, send, request_id, &resp, &bytes).await;
            return Some(Served { op, ok, bytes_in: 0, bytes_out: bytes.len() as u64 });
        }
        Request::SetMap(_) => {
            let bytes = match read_whole(recv, payload_len, "map").await {
                Ok(b) => b,
                Err(why) => {
                    bad_frame(ctx, send, recv, request_id, why).await;
                    return None;
                }
            };
            match ctx.map.install(&bytes, true) {
                Ok(epoch) => Response::MapOk(MapOk { epoch }),
                Err(e) => error_response(ErrorCode::BadRequest, e),
            }
        }
        Request::GetRegistry(g) => {
            let held = ctx.registry.version();
            let bytes = if held > g.newer_than { ctx.registry.encoded() } else { Arc::new(Vec::new()) };
            let resp = Response::RegistryOk(tessera_wire::RegistryOk { version: held });
            let ok = reply(ctx, send, request_id, &resp, &bytes).await;
            return Some(Served { op, ok, bytes_in: 0, bytes_out: bytes.len() as u64 });
        }
        Request::SetRegistry(_) => {
            if payload_len > tessera_wire::registry::REGISTRY_BYTES_MAX {
                Response::Error(tessera_wire::ErrorBody {
                    code: ErrorCode::BadRequest,
                    detail: format!(
                        "principal registry of {payload_len} bytes exceeds {}",
                        tessera_wire::registry::REGISTRY_BYTES_MAX
                    ),
                })
            } else {
                let bytes = match read_whole(recv, payload_len, "registry").await {
                    Ok(b) => b,
                    Err(why) => {
                        bad_frame(ctx, send, recv, request_id, why).await;
                        return None;
                    }
                };
                match ctx.registry.install(&bytes) {
                    Ok(version) => Response::RegistryOk(tessera_wire::RegistryOk { version }),
                    Err(e) => error_response(ErrorCode::BadRequest, e),
                }
            }
        }
        Request::List(l) => match engine_for(l.target) {
            Err(r) => r,
            Ok(engine) => engine
                .list(&l.bucket, &l.prefix, l.delimiter.as_deref(), l.start_after.as_deref(), l.limit)
                .map(Response::ListOk)
                .unwrap_or_else(|e| engine_error(&e)),
        },
        Request::CreateBucket(c) => match engine_for(c.target) {
            Err(r) => r,
            Ok(engine) => {
                engine.create_bucket(c.info).await.map(Response::CreateBucketOk).unwrap_or_else(|e| engine_error(&e))
            }
        },
        Request::SetBucketAccess(a) => match engine_for(a.target) {
            Err(r) => r,
            Ok(engine) => match engine.set_access(&a.bucket, a.access).await {
                Ok(access) => match engine.bucket(&a.bucket) {
                    Ok(info) => Response::BucketAccessOk(tessera_wire::BucketAccessOk { owner: info.owner, access }),
                    Err(e) => engine_error(&e),
                },
                Err(e) => engine_error(&e),
            },
        },
        Request::GetBucketAccess(a) => match engine_for(a.target) {
            Err(r) => r,
            Ok(engine) => match engine.bucket_access(&a.bucket) {
                Ok(s) => Response::BucketAccessOk(tessera_wire::BucketAccessOk {
                    owner: s.info.owner.clone(),
                    access: s.access.clone(),
                }),
                Err(e) => engine_error(&e),
            },
        },
        Request::GetBucket(g) => match engine_for(g.target) {
            Err(r) => r,
            Ok(engine) => engine.bucket(&g.name).map(Response::GetBucketOk).unwrap_or_else(|e| engine_error(&e)),
        },
        Request::ListBuckets(l) => match engine_for(l.target) {
            Err(r) => r,
            Ok(engine) => {
                let owner = crate::authz::bound_by_acls(who).then_some(who.name.as_str());
                own_buckets(engine, owner, l.after, l.limit as usize)
                    .map(|(buckets, truncated)| {
                        Response::ListBucketsOk(tessera_wire::ListBucketsOk { buckets, truncated })
                    })
                    .unwrap_or_else(|e| engine_error(&e))
            }
        },
        Request::NodeStatus(_) => Response::NodeStatusOk(status(ctx)),
        Request::PgDigest(d) => match (engine_for(d.target), ctx.map.placement()) {
            (Err(r), _) => r,
            (_, Err(e)) => error_response(ErrorCode::Internal, e),
            (Ok(engine), Ok(p)) => engine
                .pg_digests(&|b: &str, k: &str| p.pg_of(b, k), &|pg| shard_in(&p, pg, d.target), &d.pgs)
                .map(|sums| Response::PgDigestOk(PgDigestOk { target: d.target, sums }))
                .unwrap_or_else(|e| engine_error(&e)),
        },
        Request::PgList(l) => match (engine_for(l.target), ctx.map.placement()) {
            (Err(r), _) => r,
            (_, Err(e)) => error_response(ErrorCode::Internal, e),
            (Ok(engine), Ok(p)) => engine
                .pg_list(
                    &|b: &str, k: &str| p.pg_of(b, k),
                    &|pg| shard_in(&p, pg, l.target),
                    l.pg,
                    l.after.as_ref(),
                    l.limit,
                )
                .map(Response::PgListOk)
                .unwrap_or_else(|e| engine_error(&e)),
        },
        Request::RepairStatus(_) => Response::RepairStatusOk(ctx.metrics.repair.snapshot()),
        Request::ChangeSummary(c) => match engine_for(c.target) {
            Err(r) => r,
            Ok(engine) => match engine.change_summary() {
                Ok(mut groups) => {
                    let truncated = groups.len() > SUMMARY_GROUPS_MAX;
                    groups.truncate(SUMMARY_GROUPS_MAX);
                    let groups = groups
                        .into_iter()
                        .map(|(pg, entries, bytes, oldest_ms)| PgBacklog { pg, entries, bytes, oldest_ms })
                        .collect();
                    Response::ChangeSummaryOk(ChangeSummaryOk { groups, truncated })
                }
                Err(e) => engine_error(&e),
            },
        },
        Request::ChangeLog(l) => match engine_for(l.target) {
            Err(r) => r,
            Ok(engine) => engine
                .change_log(l.pg, l.after_lsn, l.limit as usize)
                .map(Response::ChangeLogOk)
                .unwrap_or_else(|e| engine_error(&e)),
        },
        Request::CrrCursor(c) => match engine_for(c.target) {
            Err(r) => r,
            Ok(engine) => match engine.set_crr_cursor(c.pg, &c.rule, c.cursor).await {
                Ok(()) => Response::CrrOk(CrrOk { count: 1 }),
                Err(e) => engine_error(&e),
            },
        },
        Request::CrrForget(f) => match engine_for(f.target) {
            Err(r) => r,
            Ok(engine) => match engine.forget_changes(f.pg, &f.changes) {
                Ok(count) => Response::CrrOk(CrrOk { count }),
                Err(e) => engine_error(&e),
            },
        },
        Request::CrrStatus(_) => Response::CrrStatusOk(ctx.metrics.crr.snapshot()),
        Request::CrrHave(_) | Request::CrrApply(_) => {
            if payload_len > 0 {
                let _ = recv.stop(3u8.into());
            }
            error_response(
                ErrorCode::BadRequest,
                "replication from another region goes to the node's [crr] endpoint (mutual TLS), not a core port",
            )
        }
        Request::SetRepairRate(r) => {
            ctx.metrics.repair.update(|s| s.rate_limit_mib_s = r.mib_s);
            tracing::info!(mib_s = r.mib_s, "repair rate changed");
            Response::RepairStatusOk(ctx.metrics.repair.snapshot())
        }
    };
    let ok = !matches!(resp, Response::Error(_));
    let sent = reply(ctx, send, request_id, &resp, &[]).await;
    Some(Served { op, ok: ok && sent, bytes_in: payload_len, bytes_out })
}

fn status(ctx: &CoreCtx) -> NodeStatusOk {
    let cores = ctx
        .layout
        .iter()
        .map(|(core, port, targets)| CoreStatus {
            core: tessera_wire::CoreIndex(*core),
            port: *port,
            targets: targets
                .iter()
                .map(|t| {
                    let m = ctx.metrics.target(t.0);
                    TargetStatus {
                        target: *t,
                        capacity_bytes: m.map(|m| m.capacity_bytes.load(Relaxed)).unwrap_or(0),
                        free_bytes: m.map(|m| m.free_bytes.load(Relaxed)).unwrap_or(0),
                    }
                })
                .collect(),
        })
        .collect();
    NodeStatusOk {
        node: ctx.node_name.clone(),
        map_epoch: ctx.map.epoch(),
        version: env!("CARGO_PKG_VERSION").into(),
        cores,
    }
}
