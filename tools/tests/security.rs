//! The attack suite: the attacks the security issue found against a
//! `tessera dev` region, replayed against a real one (six node processes,
//! QUIC on 127.0.z.n) by every kind of attacker: no certificate, a
//! certificate of another CA, a valid user who owns nothing here, a peer
//! region's principal, and an admin certificate without the map-signing
//! key. Each request must be refused with an error naming why; afterwards
//! the owner's data, every node's map and every node's repair rate must be
//! as they were. Then a bad map the operator did sign is undone with
//! `tessera admin map recover`, and the principal registry is put to work:
//! listed users, access keys, a node catching up, a revoked certificate.
//! (Stalled streams and oversized payloads are
//! node/tests/stalled_streams.rs; bucket names and terminal escapes are
//! dev_lifecycle.rs; the replication endpoint is crr.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use common::{content, port_base, Region};
use rustls_pki_types::pem::PemObject;
use tessera_client::{Client, ClientConfig};
use tessera_wire::*;

const BUCKET: &str = "private";
const KEY: &str = "secret";

/// Who attacks, and what every refusal they get must say.
struct Attacker {
    name: &'static str,
    identity: Option<(PathBuf, PathBuf)>,
    /// What every refusal must name.
    refused_because: &'static str,
}

/// A QUIC connection to `addr` as `identity` (or with no certificate).
async fn connect(
    ca: &Path,
    addr: SocketAddr,
    identity: Option<&(PathBuf, PathBuf)>,
) -> Result<quinn::Connection, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(tessera_client::tls_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut tls = match identity {
        Some((cert, key)) => {
            let chain = rustls_pki_types::CertificateDer::pem_file_iter(cert).unwrap().map(|c| c.unwrap()).collect();
            tls.with_client_auth_cert(chain, rustls_pki_types::PrivateKeyDer::from_pem_file(key).unwrap()).unwrap()
        }
        None => tls.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"tessera/1".to_vec()];
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = ep.connect(addr, "localhost").map_err(|e| e.to_string())?.await.map_err(|e| e.to_string())?;
    Ok(conn)
}

/// One request with its payload; the node's answer, or why there was none.
async fn ask(conn: &quinn::Connection, req: &Request, payload: &[u8], epoch: u64) -> Result<Response, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let frame = encode_frame(1, req, payload.len() as u64, epoch).unwrap();
    send.write_all(&frame).await.map_err(|e| e.to_string())?;
    let _ = send.write_all(payload).await;
    let _ = send.finish();
    let reply = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20))
        .await
        .map_err(|_| "no reply within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let (h, op) = FrameHeader::decode(&reply).map_err(|e| e.to_string())?;
    let body = reply.get(FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.body_len.get() as usize).ok_or("short reply")?;
    decode_response(op, body).map_err(|e| e.to_string())
}

/// What the attacks need to know about the region and the victim.
struct Scene {
    addr: SocketAddr,
    target: TargetId,
    version: VersionId,
    epoch: u64,
    map: ClusterMap,
}

/// Every attack of the issue as the raw request an attacker would send:
/// (what, request, payload).
fn attacks(s: &Scene, rogue: &tessera_client::MapSigner) -> Vec<(&'static str, Request, Vec<u8>)> {
    let now = VersionId(
        (u128::from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64)
            << 64)
            | 7,
    );
    let shard = |version: VersionId, bytes: &[u8]| {
        Request::PutShard(PutShard {
            target: s.target,
            bucket: BUCKET.into(),
            key: KEY.into(),
            version,
            stripe: StripeIndex(0),
            shard: ShardIndex(0),
            shard_crc32c: crc32c::crc32c(bytes),
            meta: None,
            repair: false,
        })
    };
    let mut far = s.map.clone();
    far.epoch = u64::MAX;
    let mut one_plus_one = s.map.clone();
    one_plus_one.epoch += 1;
    let p = EcProfile { data: 1, parity: 1 };
    one_plus_one.classes = ClassProfiles { standard: p, infrequent_access: p };
    let mut with_rule = s.map.clone();
    with_rule.epoch += 1;
    with_rule.crr.push(tessera_wire::crr::CrrRule {
        id: "exfiltrate".into(),
        bucket: BUCKET.into(),
        prefix: String::new(),
        dest_region: "elsewhere".into(),
        dest_bucket: "loot".into(),
        ops: tessera_wire::crr::CrrOps::All,
        backfill: true,
        dest_class: None,
        bandwidth_mib_s: 0,
    });
    // A registry that lists the attacker and revokes nobody.
    let registry = |by: Option<&tessera_client::MapSigner>| {
        let reg = tessera_wire::registry::Registry {
            version: 1_000,
            users: vec![tessera_wire::registry::RegistryUser { name: "mallory".into(), created_ms: 1, keys: vec![] }],
            revoked: vec![],
        };
        let sig = by.map(|k| {
            let mut m = tessera_wire::registry::SIGNED_CONTEXT.to_vec();
            m.extend_from_slice(&reg.to_wire(None).unwrap());
            k.sign_bytes(&m)
        });
        reg.to_wire(sig.as_ref()).unwrap()
    };
    let unsigned = |m: &ClusterMap| SignedMap::unsigned(m.clone()).map(|s| s.to_wire()).unwrap_or_default();
    let mut rogue_signed = SignedMap::unsigned(with_rule.clone()).unwrap();
    rogue.sign(&mut rogue_signed);
    vec![
        (
            "read another user's private object",
            Request::GetShard(GetShard {
                target: s.target,
                bucket: BUCKET.into(),
                key: KEY.into(),
                version: s.version,
                stripe: StripeIndex(0),
                shard: ShardIndex(0),
                range: None,
            }),
            vec![],
        ),
        (
            "head another user's private object",
            Request::Head(Head {
                target: s.target,
                bucket: BUCKET.into(),
                key: KEY.into(),
                version: None,
                exclude: vec![],
            }),
            vec![],
        ),
        ("overwrite another user's object", shard(now, b"attacker"), b"attacker".to_vec()),
        (
            "write a version id from the year 2128",
            shard(VersionId(u128::from(5_000_000_000_000u64) << 64), b"x"),
            b"x".to_vec(),
        ),
        (
            "list another user's bucket",
            Request::List(List {
                target: s.target,
                bucket: BUCKET.into(),
                prefix: String::new(),
                delimiter: None,
                start_after: None,
                limit: 100,
            }),
            vec![],
        ),
        (
            "purge another user's version",
            Request::Delete(DeleteObject {
                target: s.target,
                bucket: BUCKET.into(),
                key: KEY.into(),
                version: s.version,
                origin: None,
            }),
            vec![],
        ),
        ("set the repair rate to 0", Request::SetRepairRate(tessera_wire::repair::SetRepairRate { mib_s: 0 }), vec![]),
        ("install a map with epoch 2^64-1", Request::SetMap(SetMap {}), unsigned(&far)),
        ("install a map with profile 1+1", Request::SetMap(SetMap {}), unsigned(&one_plus_one)),
        ("add a replication rule (unsigned map)", Request::SetMap(SetMap {}), unsigned(&with_rule)),
        ("add a replication rule (map signed by another key)", Request::SetMap(SetMap {}), rogue_signed.to_wire()),
        ("read the principal registry", Request::GetRegistry(GetRegistry { newer_than: 0 }), vec![]),
        ("push a principal registry (unsigned)", Request::SetRegistry(SetRegistry {}), registry(None)),
        (
            "push a principal registry (signed by another key)",
            Request::SetRegistry(SetRegistry {}),
            registry(Some(rogue)),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_refused_by_every_attacker_and_changes_nothing() {
    let region = Region::new("attack", port_base(0), &["--repair-interval-ms", "1000"]);
    let tls = region.dir.join("tls");
    // The victim: the dev user's private object.
    let owner = region.client(BUCKET, true).await;
    let secret = content("the owner's secret", 200_000);
    let receipt = owner.put(BUCKET, KEY, secret.clone()).await.unwrap();
    let admin = region.admin().await;
    let map = admin.view().map.clone();
    let target = owner.targets_of(BUCKET, KEY)[0];
    let addr = admin.view().addr(target).unwrap();
    let scene = Scene { addr, target, version: receipt.version, epoch: map.epoch, map: map.clone() };
    let nodes = admin.node_addrs();
    let rates_before = repair_rates(&admin, &nodes).await;

    // The attackers.
    let other = region.dir.join("other-ca");
    tessera_node::tls::write_dev_certs(&other).unwrap();
    let (bob, peer) = ((tls.join("bob.pem"), tls.join("bob.key")), (tls.join("peer.pem"), tls.join("peer.key")));
    tessera_node::tls::issue_dev_identity(&tls, &Principal::new(Role::User, "bob").unwrap(), &bob.0, &bob.1).unwrap();
    tessera_node::tls::issue_dev_identity(&tls, &Principal::new(Role::Peer, "r9").unwrap(), &peer.0, &peer.1).unwrap();
    let rogue_key = region.dir.join("rogue.key");
    tessera_node::tls::write_map_key(&rogue_key, &region.dir.join("rogue.pub")).unwrap();
    let rogue = tessera_client::MapSigner::load(&rogue_key).unwrap();
    let attackers = [
        Attacker { name: "no certificate", identity: None, refused_because: "certificate" },
        Attacker {
            name: "a certificate of another CA",
            identity: Some((other.join("admin.pem"), other.join("admin.key"))),
            refused_because: "invalid peer certificate",
        },
        Attacker { name: "user:bob (owns nothing here)", identity: Some(bob.clone()), refused_because: "user:bob" },
        Attacker { name: "peer:r9 (a region, no rule)", identity: Some(peer), refused_because: "replication endpoint" },
    ];
    for a in &attackers {
        for (what, req, payload) in attacks(&scene, &rogue) {
            let answer = match connect(&tls.join("ca.pem"), scene.addr, a.identity.as_ref()).await {
                Err(e) => Err(e),
                // TLS 1.3: the client may finish its side of the handshake
                // before the node judged its certificate; the verdict ends
                // the connection before any request is answered.
                Ok(conn) => ask(&conn, &req, &payload, scene.epoch).await.map_err(|e| match conn.close_reason() {
                    Some(reason) => format!("{e}: {reason}"),
                    None => e,
                }),
            };
            let why = match answer {
                // Refused for who sent it; a user's far-future version is
                // refused by the clock check, which comes first.
                Ok(Response::Error(e))
                    if e.code == ErrorCode::AccessDenied
                        || (e.code == ErrorCode::BadRequest && e.detail.contains("ahead of this node's clock")) =>
                {
                    e.detail
                }
                Ok(other) => panic!("{} / {what}: answered {other:?}", a.name),
                Err(e) => e,
            };
            let named = why.to_lowercase().contains(&a.refused_because.to_lowercase())
                || (what.contains("2128") && why.contains("ahead of this node's clock"));
            assert!(named, "{} / {what}: refused for another reason: {why}", a.name);
            println!("{} / {what}: refused: {why}", a.name);
        }
    }

    // An admin certificate without the map-signing key may run the region
    // but not rewrite it.
    let admin_conn =
        connect(&tls.join("ca.pem"), scene.addr, Some(&(tls.join("admin.pem"), tls.join("admin.key")))).await.unwrap();
    let rewrites = |r: &Request| matches!(r, Request::SetMap(_) | Request::SetRegistry(_));
    for (what, req, payload) in attacks(&scene, &rogue).into_iter().filter(|(_, r, _)| rewrites(r)) {
        match ask(&admin_conn, &req, &payload, scene.epoch).await.unwrap() {
            Response::Error(e) => {
                assert_eq!(e.code, ErrorCode::BadRequest, "admin / {what}");
                assert!(
                    e.detail.contains("is not signed") || e.detail.contains("does not trust"),
                    "admin / {what}: {}",
                    e.detail
                );
                println!("admin without the key / {what}: refused: {}", e.detail);
            }
            other => panic!("admin / {what}: answered {other:?}"),
        }
    }
    // A user's far-future version is refused in its own bucket too.
    let bob_client =
        Client::connect(ClientConfig::load(&region.dir.join("client.toml")).unwrap().with_identity(bob.0, bob.1))
            .await
            .unwrap();
    bob_client.create_bucket("bobs", Default::default()).await.unwrap();
    let bobs_target = bob_client.targets_of("bobs", KEY)[0];
    let bob_conn = connect(
        &tls.join("ca.pem"),
        admin.view().addr(bobs_target).unwrap(),
        Some(&(tls.join("bob.pem"), tls.join("bob.key"))),
    )
    .await
    .unwrap();
    let future = Request::PutShard(PutShard {
        target: bobs_target,
        bucket: "bobs".into(),
        key: KEY.into(),
        version: VersionId(u128::from(5_000_000_000_000u64) << 64),
        stripe: StripeIndex(0),
        shard: ShardIndex(0),
        shard_crc32c: crc32c::crc32c(b"x"),
        meta: None,
        repair: false,
    });
    match ask(&bob_conn, &future, b"x", scene.epoch).await.unwrap() {
        Response::Error(e) => assert!(e.detail.contains("ahead of this node's clock"), "{}", e.detail),
        other => panic!("a far-future version in bob's own bucket: {other:?}"),
    }

    // Nothing changed: the owner's bytes and listing, every node's map
    // (same epoch, same bytes) and repair rate.
    let got = owner.get(BUCKET, KEY, Default::default()).await.unwrap().bytes().await.unwrap();
    assert!(got == secret, "the owner's object changed");
    let listed = owner.list(BUCKET, Default::default()).await.unwrap();
    assert_eq!(listed.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), [KEY]);
    for (name, a) in &nodes {
        let st = admin.node_status(*a).await.unwrap();
        assert_eq!(st.map_epoch, map.epoch, "{name}'s map epoch changed");
    }
    admin.refresh_map().await.unwrap();
    assert_eq!(admin.view().map, map, "the region's map changed");
    assert_eq!(repair_rates(&admin, &nodes).await, rates_before, "a repair rate changed");
    assert_eq!(admin.registry().await.unwrap().version, 0, "a refused registry was taken");

    // A bad map signed by the operator (z3-n1 moved to an address nobody
    // listens on) is undone by one command from a map a node kept.
    let mut bad = map.clone();
    bad.epoch += 1;
    let moved = bad.zones[2].nodes[0].name.clone();
    bad.zones[2].nodes[0].host = "127.0.9.1".parse().unwrap();
    let report = admin.push_map(&bad).await.unwrap();
    // (A node may take it from another before the push reaches it.)
    assert_eq!(report.installed.len() + report.already.len(), 5, "{report:?}");
    let kept = region.dir.join(format!("z1-n1/map.toml.epoch-{}", map.epoch));
    let out = region.admin_cli(&["admin", "map", "recover", kept.to_str().unwrap()]);
    assert!(out.contains(&format!("pushing {} as epoch {}", kept.display(), map.epoch + 2)), "{out}");
    assert!(out.contains("installed on every node"), "{out}");
    for (name, a) in &nodes {
        assert_eq!(admin.node_status(*a).await.unwrap().map_epoch, map.epoch + 2, "{name} ({moved} was moved)");
    }
    admin.refresh_map().await.unwrap();
    let mut expected = map.clone();
    expected.epoch += 2;
    assert_eq!(admin.view().map, expected, "the recovered map is the kept one under a new epoch");
    let got = owner.get(BUCKET, KEY, Default::default()).await.unwrap().bytes().await.unwrap();
    assert!(got == secret, "the owner's object after recovery");

    // Users and access keys. Once the region lists its users, a user
    // certificate of the CA is not enough: bob, connected all along, is
    // turned away at once.
    let out = region.admin_cli(&["admin", "user", "add", "dev"]);
    assert!(out.contains("only listed users") && out.contains("taken by 6 nodes"), "{out}");
    match bob_client.list_buckets().await {
        Ok(b) => panic!("an unlisted user still lists: {b:?}"),
        Err(e) => assert!(e.to_string().contains("user:bob is not a user of this region"), "{e}"),
    }
    owner.get(BUCKET, KEY, Default::default()).await.unwrap();
    let out = region.admin_cli(&["admin", "key", "add", "dev"]);
    let id = out.lines().find_map(|l| l.strip_prefix("access key id:")).unwrap_or_else(|| panic!("{out}")).trim();
    let secret_key =
        out.lines().find_map(|l| l.strip_prefix("secret access key:")).unwrap_or_else(|| panic!("{out}")).trim();
    assert_eq!(secret_key.len(), 40, "{out}");
    let listed = region.admin_cli(&["admin", "key", "ls", "dev"]);
    assert!(listed.contains(id) && !listed.contains(secret_key), "{listed}");
    let held = std::fs::read(region.dir.join("z1-n1/registry.bin")).unwrap();
    assert!(!held.windows(secret_key.len()).any(|w| w == secret_key.as_bytes()), "a node keeps the secret in clear");
    // Sealed under the region's secrets key, for this user and id only.
    let reg = admin.registry().await.unwrap();
    let sealed = &reg.user("dev").unwrap().keys[0].sealed_secret;
    let secrets = tessera_client::SecretsKey::load(&region.dir.join("tls/secrets.key")).unwrap();
    assert_eq!(secrets.open("dev", id, sealed).unwrap(), secret_key.as_bytes());
    assert!(secrets.open("bob", id, sealed).is_err());
    let refused = region.cli(&["admin", "user", "add", "mallory"]);
    assert!(refused.contains("user:dev may not send reading the principal registry"), "{refused}");

    // A node that was down takes the change from the others.
    region.stop_zone("z3");
    let out = region.admin_cli(&["admin", "user", "add", "carol"]);
    assert!(out.contains("not reached"), "{out}");
    let version = admin.registry().await.unwrap().version;
    region.start_zone("z3");
    let z3: Vec<SocketAddr> = nodes.iter().filter(|(n, _)| n.starts_with("z3")).map(|(_, a)| *a).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for a in z3 {
        while !matches!(admin.registry_bytes(a, version - 1).await, Ok(Some(_))) {
            assert!(std::time::Instant::now() < deadline, "{a} never took registry version {version}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // Revoking the owner's certificate ends its connections at once.
    let out = region.admin_cli(&["admin", "cert", "revoke", tls.join("user.pem").to_str().unwrap()]);
    assert!(out.contains("revoked") && out.contains("user:dev"), "{out}");
    match owner.get(BUCKET, KEY, Default::default()).await {
        Ok(_) => panic!("a revoked certificate still reads"),
        Err(e) => assert!(e.to_string().contains("was revoked"), "{e}"),
    }
}

async fn repair_rates(admin: &Client, nodes: &[(String, SocketAddr)]) -> Vec<u32> {
    let mut out = Vec::new();
    for (_, a) in nodes {
        out.push(admin.repair_status(*a).await.unwrap().rate_limit_mib_s);
    }
    out
}
