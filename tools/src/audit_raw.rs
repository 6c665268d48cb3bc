//! The attacks of `tessera admin audit` as the raw requests an attacker
//! would send: a QUIC connection made with any identity (or none), one
//! request per stream, no SDK in the way. Everything here is what the
//! security issue found possible before nodes had doors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tessera_client::MapSigner;
use tessera_wire::crr::{CrrApply, CrrOp};
use tessera_wire::registry::{Registry, RegistryUser, SIGNED_CONTEXT};
use tessera_wire::{
    decode_response, encode_frame, ClassProfiles, ClusterMap, DeleteObject, EcProfile, FrameHeader, GetRegistry,
    GetShard, Head, List, PutShard, Request, Response, SetMap, SetRegistry, ShardIndex, SignedMap, StripeIndex,
    TargetId, VersionId, FRAME_HEADER_LEN,
};

/// How long one attack may wait for the node's answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);
/// Largest answer read (every refusal is a small error frame).
const ANSWER_BYTES_MAX: usize = 1 << 20;

/// A client certificate and its key (PEM files).
pub(crate) type Identity = (PathBuf, PathBuf);

/// One attack: what it tries, the request, its payload.
pub(crate) struct Attack {
    pub(crate) what: &'static str,
    pub(crate) request: Request,
    pub(crate) payload: Vec<u8>,
}

/// What the attacks need to know about the region and the victim object.
pub(crate) struct Scene {
    pub(crate) bucket: String,
    pub(crate) key: String,
    pub(crate) target: TargetId,
    pub(crate) version: VersionId,
    pub(crate) map: ClusterMap,
}

/// Where an attack connects: the node's address, the name its certificate
/// must carry, the CA that issued it, and the ALPN of the port (data or
/// replication).
pub(crate) struct Door<'a> {
    pub(crate) addr: SocketAddr,
    pub(crate) server_name: &'a str,
    pub(crate) ca: &'a Path,
    pub(crate) alpn: &'a [u8],
}

/// A QUIC connection through `door` as `identity` (or with no
/// certificate). The error says why it could not be made (a refused
/// handshake names the certificate problem).
pub(crate) async fn connect(door: &Door<'_>, identity: Option<&Identity>) -> Result<quinn::Connection, String> {
    let (ca, addr) = (door.ca, door.addr);
    let mut roots = rustls::RootCertStore::empty();
    for c in tessera_client::load_certs(ca).map_err(|e| e.to_string())? {
        roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(tessera_client::tls_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some((cert, key)) => {
            let chain = tessera_client::load_certs(cert).map_err(|e| e.to_string())?;
            let key = tessera_client::load_key(key).map_err(|e| e.to_string())?;
            tls.with_client_auth_cert(chain, key).map_err(|e| format!("{}: {e}", cert.display()))?
        }
        None => tls.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![door.alpn.to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).map_err(|e| e.to_string())?;
    let bind: SocketAddr = if addr.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let mut ep = quinn::Endpoint::client(bind).map_err(|e| format!("a UDP socket on {bind}: {e}"))?;
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let connecting = ep.connect(addr, door.server_name).map_err(|e| e.to_string())?;
    connecting.await.map_err(|e| e.to_string())
}

/// One request with its payload; the node's answer, or why there was none
/// (with the connection's close reason when the node closed it).
pub(crate) async fn ask(conn: &quinn::Connection, attack: &Attack, epoch: u64) -> Result<Response, String> {
    let closed = |e: String| match conn.close_reason() {
        Some(reason) => format!("{e}: {reason}"),
        None => e,
    };
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| closed(e.to_string()))?;
    let frame =
        encode_frame(1, &attack.request, attack.payload.len() as u64, epoch).map_err(|e| format!("encoding: {e}"))?;
    send.write_all(&frame).await.map_err(|e| closed(e.to_string()))?;
    // A node may refuse before it reads the payload; the answer says why.
    let _ = send.write_all(&attack.payload).await;
    let _ = send.finish();
    let reply = tokio::time::timeout(ANSWER_WAIT, recv.read_to_end(ANSWER_BYTES_MAX))
        .await
        .map_err(|_| closed(format!("no answer within {} s", ANSWER_WAIT.as_secs())))?
        .map_err(|e| closed(e.to_string()))?;
    let (h, op) = FrameHeader::decode(&reply).map_err(|e| format!("the answer's header: {e}"))?;
    let body = reply
        .get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.body_len.get() as usize)
        .ok_or_else(|| format!("an answer of {} bytes is shorter than its header says", reply.len()))?;
    decode_response(op, body).map_err(|e| format!("the answer's body: {e}"))
}

fn now_version(low: u64) -> VersionId {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    VersionId(((ms & u128::from(u64::MAX)) << 64) | u128::from(low))
}

/// A version id about a century ahead of any clock (2128).
pub(crate) fn far_future_version() -> VersionId {
    VersionId(u128::from(5_000_000_000_000u64) << 64)
}

/// A PutShard of `bytes` as shard 0 of stripe 0 of `version`.
pub(crate) fn put_shard(target: TargetId, bucket: &str, key: &str, version: VersionId, bytes: &[u8]) -> Request {
    Request::PutShard(PutShard {
        target,
        bucket: bucket.into(),
        key: key.into(),
        version,
        stripe: StripeIndex(0),
        shard: ShardIndex(0),
        shard_crc32c: crc32c::crc32c(bytes),
        meta: None,
        repair: false,
    })
}

/// A registry that lists the attacker and revokes nobody, signed by `by`
/// (or not at all).
fn forged_registry(by: Option<&MapSigner>) -> Result<Vec<u8>, String> {
    let reg = Registry {
        version: u64::MAX / 2,
        users: vec![RegistryUser { name: "mallory".into(), created_ms: 1, keys: vec![] }],
        revoked: vec![],
    };
    let bare = reg.to_wire(None).map_err(|e| e.to_string())?;
    let sig = by.map(|k| {
        let mut m = SIGNED_CONTEXT.to_vec();
        m.extend_from_slice(&bare);
        k.sign_bytes(&m)
    });
    reg.to_wire(sig.as_ref()).map_err(|e| e.to_string())
}

/// The map rewrites of the issue: epoch 2^64-1, profile 1+1, an
/// exfiltrating replication rule (unsigned, and signed by `rogue`).
fn forged_maps(s: &Scene, rogue: &MapSigner) -> Result<Vec<(&'static str, Vec<u8>)>, String> {
    let unsigned = |m: &ClusterMap| SignedMap::unsigned(m.clone()).map(|s| s.to_wire()).map_err(|e| e.to_string());
    let mut far = s.map.clone();
    far.epoch = u64::MAX;
    let mut one_plus_one = s.map.clone();
    one_plus_one.epoch = one_plus_one.epoch.saturating_add(1);
    let p = EcProfile { data: 1, parity: 1 };
    one_plus_one.classes = ClassProfiles { standard: p, infrequent_access: p };
    let mut with_rule = s.map.clone();
    with_rule.epoch = with_rule.epoch.saturating_add(1);
    with_rule.crr.push(tessera_wire::crr::CrrRule {
        id: "exfiltrate".into(),
        bucket: s.bucket.clone(),
        prefix: String::new(),
        dest_region: "elsewhere".into(),
        dest_bucket: "loot".into(),
        ops: tessera_wire::crr::CrrOps::All,
        backfill: true,
        dest_class: None,
        bandwidth_mib_s: 0,
    });
    let mut rogue_signed = SignedMap::unsigned(with_rule.clone()).map_err(|e| e.to_string())?;
    rogue.sign(&mut rogue_signed);
    Ok(vec![
        ("install a map with epoch 2^64-1", unsigned(&far)?),
        ("install a map with profile 1+1", unsigned(&one_plus_one)?),
        ("add a replication rule (unsigned map)", unsigned(&with_rule)?),
        ("add a replication rule (map signed by another key)", rogue_signed.to_wire()),
    ])
}

/// Every attack on a node's port, against the victim of `s`.
pub(crate) fn attacks(s: &Scene, rogue: &MapSigner) -> Result<Vec<Attack>, String> {
    let (bucket, key) = (s.bucket.as_str(), s.key.as_str());
    let mut out = vec![
        Attack {
            what: "read another principal's private object",
            request: Request::GetShard(GetShard {
                target: s.target,
                bucket: bucket.into(),
                key: key.into(),
                version: s.version,
                stripe: StripeIndex(0),
                shard: ShardIndex(0),
                range: None,
            }),
            payload: vec![],
        },
        Attack {
            what: "head another principal's private object",
            request: Request::Head(Head {
                target: s.target,
                bucket: bucket.into(),
                key: key.into(),
                version: None,
                exclude: vec![],
            }),
            payload: vec![],
        },
        Attack {
            what: "overwrite another principal's object",
            request: put_shard(s.target, bucket, key, now_version(7), b"attacker"),
            payload: b"attacker".to_vec(),
        },
        Attack {
            what: "write a version id from the year 2128",
            request: put_shard(s.target, bucket, key, far_future_version(), b"x"),
            payload: b"x".to_vec(),
        },
        Attack {
            what: "list another principal's bucket",
            request: Request::List(List {
                target: s.target,
                bucket: bucket.into(),
                prefix: String::new(),
                delimiter: None,
                start_after: None,
                limit: 100,
            }),
            payload: vec![],
        },
        Attack {
            what: "purge another principal's version",
            request: Request::Delete(DeleteObject {
                target: s.target,
                bucket: bucket.into(),
                key: key.into(),
                version: s.version,
                origin: None,
            }),
            payload: vec![],
        },
        Attack {
            what: "set the repair rate to 0",
            request: Request::SetRepairRate(tessera_wire::repair::SetRepairRate { mib_s: 0 }),
            payload: vec![],
        },
    ];
    for (what, payload) in forged_maps(s, rogue)? {
        out.push(Attack { what, request: Request::SetMap(SetMap {}), payload });
    }
    out.push(Attack {
        what: "read the principal registry",
        request: Request::GetRegistry(GetRegistry { newer_than: 0 }),
        payload: vec![],
    });
    out.push(Attack {
        what: "push a principal registry (unsigned)",
        request: Request::SetRegistry(SetRegistry {}),
        payload: forged_registry(None)?,
    });
    out.push(Attack {
        what: "push a principal registry (signed by another key)",
        request: Request::SetRegistry(SetRegistry {}),
        payload: forged_registry(Some(rogue))?,
    });
    Ok(out)
}

/// The attacks a peer region's certificate tries on the replication
/// endpoint: purge the victim's version through a replica of a bucket no
/// rule lets that peer replicate into, and (where an inbound rule from the
/// peer exists and takes no relayed changes) a change it claims another
/// region made.
pub(crate) fn replica_attacks(s: &Scene, peer: &str) -> Vec<Attack> {
    let purge = |origin: &str, bucket: &str, key: &str, version: VersionId, rule: &str| Attack {
        what: "",
        request: Request::CrrApply(CrrApply {
            rule: rule.into(),
            origin: origin.into(),
            dest_bucket: bucket.into(),
            op: CrrOp::Purge { key: key.into(), version, supersedes: false },
        }),
        payload: vec![],
    };
    let mut out = vec![Attack {
        what: "purge the victim through a replica of a bucket with no rule",
        ..purge(peer, &s.bucket, &s.key, s.version, "audit")
    }];
    if let Some(rule) = s.map.crr_in.iter().find(|r| r.from_region == peer && !r.relay) {
        out.push(Attack {
            what: "a replica claiming another region made it",
            ..purge("audit-elsewhere", &rule.dest_bucket, "tessera-audit-absent", now_version(9), "audit")
        });
    }
    out
}
