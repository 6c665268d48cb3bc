//! Doors: a node admits only clients whose certificate chains to the
//! region's CA and names one principal, and authorizes each request from
//! that principal. Tried with every kind of stranger and with members that
//! must be refused some operations; afterwards the node's map and data are
//! checked unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{raw_connection_as, Node, NodeOpts, TestDir};
use tessera_client::{Client, ClientConfig, ClientError};
use tessera_wire::*;

/// Send one request (and payload) on a new stream; the node's answer.
async fn ask(conn: &quinn::Connection, req: &Request, payload: &[u8], epoch: u64) -> Result<Response, String> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
    let frame = encode_frame(1, req, payload.len() as u64, epoch).unwrap();
    send.write_all(&frame).await.map_err(|e| e.to_string())?;
    // A node that refuses a request stops reading its payload: the
    // refusal is still waiting on the receive side.
    let _ = send.write_all(payload).await;
    let _ = send.finish();
    let reply = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20))
        .await
        .map_err(|_| "no reply within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let (h, op) = FrameHeader::decode(&reply).map_err(|e| e.to_string())?;
    let body = &reply[FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.body_len.get() as usize];
    decode_response(op, body).map_err(|e| e.to_string())
}

/// A connection as `identity` must not get a single request answered; the
/// error that ends it.
async fn refused_connection(dir: &Path, port: u16, identity: Option<(&Path, &Path)>) -> String {
    let conn = match raw_connection_as(dir, port, identity).await {
        Err(e) => return e.to_string(),
        Ok(c) => c,
    };
    // TLS 1.3: the client may finish its side of the handshake before the
    // node has judged its certificate; the node's verdict ends the
    // connection before any request is answered.
    match ask(&conn, &Request::GetMap(GetMap {}), &[], 0).await {
        Ok(r) => panic!("a request was answered on a connection that must be refused: {r:?}"),
        Err(e) => match conn.close_reason() {
            Some(reason) => format!("{e}: {reason}"),
            None => e,
        },
    }
}

fn client_as(dir: &Path, name: &str) -> ClientConfig {
    ClientConfig::load(&dir.join("client.toml"))
        .unwrap()
        .with_identity(dir.join(format!("tls/{name}.pem")), dir.join(format!("tls/{name}.key")))
}

fn denied<T: std::fmt::Debug>(r: Result<T, ClientError>, must_name: &str) {
    match r {
        Err(ClientError::AccessDenied { detail }) => {
            assert!(detail.contains(must_name), "{detail:?} should name {must_name:?}")
        }
        other => panic!("expected access denied naming {must_name:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_are_turned_away_and_members_get_only_their_rights() {
    let dir = TestDir::new("mtls");
    let port = common::base_port(8);
    let node = Node::start(&dir.0, port, &NodeOpts::default());
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let tls = dir.0.join("tls");
    let admin = node.client().await;
    let epoch = admin.node_status(addr).await.unwrap().map_epoch;

    // The user creates a bucket and an object, claiming another owner.
    let user_cfg = {
        let mut c = client_as(&dir.0, "user");
        c.owner = "mallory".into();
        c
    };
    let user = Client::connect(user_cfg).await.unwrap();
    let b = user.create_bucket("mine", Default::default()).await.unwrap();
    assert_eq!(b.owner, tessera_node::tls::DEV_USER, "the bucket's owner is the principal, not the config's word");
    user.put("mine", "k", b"the user's bytes".to_vec()).await.unwrap();
    let meta = user.head("mine", "k", None).await.unwrap();
    assert_eq!(meta.owner, tessera_node::tls::DEV_USER, "the object's owner is the principal");

    // Strangers: no certificate, a certificate of another CA, a certificate
    // of this CA that names no principal, or names two.
    let no_cert = refused_connection(&dir.0, port, None).await;
    println!("no certificate: {no_cert}");
    assert!(no_cert.to_lowercase().contains("certificate"), "{no_cert}");
    let other = TestDir::new("mtls-other-ca");
    tessera_node::tls::write_dev_certs(&other.0.join("tls")).unwrap();
    let foreign =
        refused_connection(&dir.0, port, Some((&other.0.join("tls/admin.pem"), &other.0.join("tls/admin.key")))).await;
    assert!(foreign.contains("invalid peer certificate"), "{foreign}");
    for (file, uris, says) in [
        ("nobody", vec![], "names 0 Tessera principals"),
        ("two", vec!["urn:tessera:user:a".to_string(), "urn:tessera:admin:b".to_string()], "names 2"),
        ("root", vec!["urn:tessera:root:x".to_string()], "role \"root\""),
    ] {
        let (cert, key) = (tls.join(format!("{file}.pem")), tls.join(format!("{file}.key")));
        tessera_node::tls::issue_dev_cert(&tls, &uris, &cert, &key).unwrap();
        let why = refused_connection(&dir.0, port, Some((&cert, &key))).await;
        assert!(why.contains(says), "{file}: {why}");
    }
    // The SDK says what is missing before it tries.
    let mut no_identity = ClientConfig::load(&dir.0.join("client.toml")).unwrap();
    no_identity.cert = None;
    no_identity.key = None;
    match Client::connect(no_identity).await {
        Err(ClientError::Config { detail }) => assert!(detail.contains("no client certificate"), "{detail}"),
        other => panic!("{:?}", other.map(|_| ())),
    }

    // A user may not run the region.
    denied(user.set_repair_rate(addr, 0).await, "user:dev may not send setting the repair rate");
    denied(user.node_status(addr).await, "only admins and nodes");
    denied(user.pg_digests(TargetId(0), vec![0]).await, "only this region's nodes");
    let mut evil = admin.view().map.clone();
    evil.epoch = u64::MAX;
    denied(user.push_map(&evil).await, "user:dev");
    let user_conn =
        raw_connection_as(&dir.0, port, Some((&tls.join("user.pem"), &tls.join("user.key")))).await.unwrap();
    let set = ask(&user_conn, &Request::SetMap(SetMap {}), &evil.to_postcard().unwrap(), 0).await.unwrap();
    match set {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::AccessDenied);
            assert!(e.detail.contains("installing a cluster map"), "{}", e.detail);
        }
        other => panic!("SetMap as a user: {other:?}"),
    }
    // Nor write with another region's origin, or as repair.
    let forged = Request::PutShard(PutShard {
        target: TargetId(0),
        bucket: "mine".into(),
        key: "k".into(),
        version: VersionId(1),
        stripe: StripeIndex(0),
        shard: ShardIndex(0),
        shard_crc32c: crc32c::crc32c(b"x"),
        meta: None,
        repair: true,
    });
    match ask(&user_conn, &forged, b"x", epoch).await.unwrap() {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::AccessDenied);
            assert!(e.detail.contains("a repair write"), "{}", e.detail);
        }
        other => panic!("repair write as a user: {other:?}"),
    }

    // A version id from the far future (it would hide every later write
    // of the key) is refused from a user, and taken from a node (repair
    // and replication copy ids others made).
    let future = VersionId(u128::from(5_000_000_000_000u64) << 64); // the year 2128
    let put_at = |version: VersionId| {
        Request::PutShard(PutShard {
            target: TargetId(0),
            bucket: "mine".into(),
            key: "future".into(),
            version,
            stripe: StripeIndex(0),
            shard: ShardIndex(0),
            shard_crc32c: crc32c::crc32c(b"x"),
            meta: None,
            repair: false,
        })
    };
    match ask(&user_conn, &put_at(future), b"x", epoch).await.unwrap() {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert!(e.detail.contains("ahead of this node's clock"), "{}", e.detail);
        }
        other => panic!("a far-future version from a user: {other:?}"),
    }
    let node_conn =
        raw_connection_as(&dir.0, port, Some((&tls.join("node.pem"), &tls.join("node.key")))).await.unwrap();
    let taken = ask(&node_conn, &put_at(future), b"x", epoch).await.unwrap();
    assert!(matches!(taken, Response::PutShardOk(_)), "a node copies any id: {taken:?}");

    // A peer region's principal gets nothing on a node port.
    let (pc, pk) = (tls.join("peer.pem"), tls.join("peer.key"));
    tessera_node::tls::issue_dev_identity(&tls, &Principal::new(Role::Peer, "r2").unwrap(), &pc, &pk).unwrap();
    let peer = raw_connection_as(&dir.0, port, Some((&pc, &pk))).await.unwrap();
    match ask(&peer, &Request::GetMap(GetMap {}), &[], 0).await.unwrap() {
        Response::Error(e) => {
            assert_eq!(e.code, ErrorCode::AccessDenied);
            assert!(e.detail.contains("replication endpoint"), "{}", e.detail);
        }
        other => panic!("GetMap as a peer: {other:?}"),
    }

    // An admin runs the region but is not a node.
    admin.set_repair_rate(addr, 32).await.unwrap();
    denied(admin.pg_digests(TargetId(0), vec![0]).await, "admin:admin");

    // Even an admin cannot push a map from the far future, nor a second
    // map with the node's epoch; the same map again is harmless.
    let far = admin.push_map(&evil).await.unwrap();
    assert!(far.refused.iter().any(|r| r.contains("more than 1000 ahead")), "{far:?}");
    let mut twin = admin.view().map.clone();
    twin.inline_bytes_max = twin.inline_bytes_max.saturating_sub(1);
    let conflict = admin.push_map(&twin).await.unwrap();
    assert!(conflict.refused.iter().any(|r| r.contains("two different maps have epoch")), "{conflict:?}");
    let same = admin.push_map(&admin.view().map.clone()).await.unwrap();
    assert_eq!(same.already.len(), 1, "{same:?}");

    // Nor a map the region's map-signing key did not sign: unsigned, signed
    // by another key, or changed after signing. The SDK will not even send
    // one without a key.
    let held = admin.view().map.clone();
    let mut next = held.clone();
    next.epoch += 1;
    let mut keyless = ClientConfig::load(&dir.0.join("client.toml")).unwrap();
    keyless.map_key = None;
    match Client::connect(keyless).await.unwrap().push_map(&next).await {
        Err(ClientError::Config { detail }) => assert!(detail.contains("names no map_key"), "{detail}"),
        other => panic!("a push without a map key: {other:?}"),
    }
    let (other_key, other_pub) = (tls.join("other-map.key"), tls.join("other-map.pub"));
    tessera_node::tls::write_map_key(&other_key, &other_pub).unwrap();
    let ours = tessera_client::MapSigner::load(&tls.join("map.key")).unwrap();
    let theirs = tessera_client::MapSigner::load(&other_key).unwrap();
    let unsigned = SignedMap::unsigned(next.clone()).unwrap();
    let mut foreign = unsigned.clone();
    theirs.sign(&mut foreign);
    let mut altered = unsigned.clone();
    ours.sign(&mut altered);
    altered.map.epoch += 1;
    altered.postcard = altered.map.to_postcard().unwrap();
    let admin_conn =
        raw_connection_as(&dir.0, port, Some((&tls.join("admin.pem"), &tls.join("admin.key")))).await.unwrap();
    for (what, m, says) in [
        ("unsigned", &unsigned, "is not signed".to_string()),
        ("foreign", &foreign, format!("signed by {}, which this node does not trust", theirs.key())),
        ("altered", &altered, "does not match it".to_string()),
    ] {
        match ask(&admin_conn, &Request::SetMap(SetMap {}), &m.to_wire(), 0).await.unwrap() {
            Response::Error(e) => {
                assert_eq!(e.code, ErrorCode::BadRequest, "{what}");
                assert!(e.detail.contains(&says), "{what}: {}", e.detail);
            }
            other => panic!("{what} map taken: {other:?}"),
        }
    }
    admin.refresh_map().await.unwrap();
    assert_eq!(admin.view().map, held, "a refused map changed the node's map");

    // Another user acts in its own buckets only; admins act in all.
    let (bc, bk) = (tls.join("bob.pem"), tls.join("bob.key"));
    tessera_node::tls::issue_dev_identity(&tls, &Principal::new(Role::User, "bob").unwrap(), &bc, &bk).unwrap();
    let bob =
        Client::connect(ClientConfig::load(&dir.0.join("client.toml")).unwrap().with_identity(bc, bk)).await.unwrap();
    let theirs = "dev's with ACL private";
    match bob.get("mine", "k", Default::default()).await {
        Ok(r) => panic!("bob read dev's object: {:?}", r.bytes().await),
        Err(e) => assert!(e.to_string().contains(theirs), "{e}"),
    }
    for r in [
        bob.head("mine", "k", None).await.map(|_| ()),
        bob.put("mine", "k", b"bob's bytes".to_vec()).await.map(|_| ()),
        bob.delete_version("mine", "k", meta.version).await,
        bob.list("mine", Default::default()).await.map(|_| ()),
    ] {
        let e = r.expect_err("bob acted in dev's bucket");
        assert!(e.to_string().contains(theirs), "{e}");
    }
    bob.create_bucket("bobs", Default::default()).await.unwrap();
    bob.put("bobs", "b", b"b".to_vec()).await.unwrap();
    let names = |v: Vec<BucketInfo>| v.into_iter().map(|b| b.name).collect::<Vec<_>>();
    assert_eq!(names(bob.list_buckets().await.unwrap()), ["bobs"], "a user lists its own buckets");
    assert_eq!(names(user.list_buckets().await.unwrap()), ["mine"]);
    assert_eq!(names(admin.list_buckets().await.unwrap()), ["bobs", "mine"], "an admin lists all");
    assert!(user.get("bobs", "b", Default::default()).await.is_err(), "dev cannot read bob's bucket");
    let read = admin.get("bobs", "b", Default::default()).await.unwrap().bytes().await.unwrap();
    assert_eq!(read, b"b");

    // Nothing the refused requests carried took effect.
    assert_eq!(admin.node_status(addr).await.unwrap().map_epoch, epoch, "map epoch unchanged");
    // Signed by the trusted key, the same change is taken.
    let mut good = unsigned.clone();
    ours.sign(&mut good);
    let taken = ask(&admin_conn, &Request::SetMap(SetMap {}), &good.to_wire(), 0).await.unwrap();
    assert!(matches!(taken, Response::MapOk(MapOk { epoch }) if epoch == next.epoch), "{taken:?}");
    let got = admin.get("mine", "k", Default::default()).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, b"the user's bytes");
}

/// One principal cannot take every connection slot of a core: past its
/// cap its new connections are closed with a reason, another principal
/// still connects, and a slot comes back when a connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_cannot_take_every_connection() {
    let dir = TestDir::new("mtls-caps");
    let port = common::base_port(6);
    let opts = NodeOpts { cores: 1, extra: "connections_per_principal_max = 3\n".into(), ..NodeOpts::default() };
    let _node = Node::start(&dir.0, port, &opts);
    let tls = dir.0.join("tls");
    let user = (tls.join("user.pem"), tls.join("user.key"));
    let mut open = Vec::new();
    for i in 0..3 {
        let c = raw_connection_as(&dir.0, port, Some((&user.0, &user.1))).await.unwrap();
        assert!(ask(&c, &Request::GetMap(GetMap {}), &[], 0).await.is_ok(), "connection {i} is within the cap");
        open.push(c);
    }
    let fourth = refused_connection(&dir.0, port, Some((&user.0, &user.1))).await;
    assert!(fourth.contains("user:dev holds 3 connections to this core"), "{fourth}");
    let admin = raw_connection_as(&dir.0, port, Some((&tls.join("admin.pem"), &tls.join("admin.key")))).await.unwrap();
    assert!(ask(&admin, &Request::GetMap(GetMap {}), &[], 0).await.is_ok(), "another principal still gets in");
    open.pop().unwrap().close(0u8.into(), b"done");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = raw_connection_as(&dir.0, port, Some((&user.0, &user.1))).await.unwrap();
        if ask(&c, &Request::GetMap(GetMap {}), &[], 0).await.is_ok() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the closed connection's slot never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The principal registry closes doors that were open: revoking a
/// certificate, or removing a user once the region lists its users, ends
/// the open connections it no longer admits at once, with the reason, and
/// refuses new ones; the registry survives a restart; only a signed,
/// newer registry from an admin is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_closes_open_connections_at_once() {
    let dir = TestDir::new("mtls-revoke");
    let port = common::base_port(7);
    let extra = format!("registry_file = \"{}\"\n", dir.0.join("registry.bin").display());
    let mut node = Node::start(&dir.0, port, &NodeOpts { cores: 1, extra, ..NodeOpts::default() });
    let tls = dir.0.join("tls");
    let (bob_pem, bob_key) = (tls.join("bob.pem"), tls.join("bob.key"));
    tessera_node::tls::issue_dev_identity(&tls, &Principal::new(Role::User, "bob").unwrap(), &bob_pem, &bob_key)
        .unwrap();
    let admin = Client::connect(ClientConfig::load(&dir.0.join("client.toml")).unwrap()).await.unwrap();
    let bob = Client::connect(client_as(&dir.0, "bob")).await.unwrap();
    bob.create_bucket("bobs", Default::default()).await.unwrap();
    bob.put("bobs", "k", b"bob's".to_vec()).await.unwrap();
    let user = |name: &str| tessera_wire::registry::RegistryUser { name: name.into(), created_ms: 1, keys: vec![] };

    // Nobody but an admin reads or writes the registry; an unsigned one is refused.
    denied(bob.registry().await, "user:bob may not send reading the principal registry");
    let mut reg = admin.registry().await.unwrap();
    assert_eq!(reg.version, 0, "a new node has no registry");
    reg.version = 1;
    reg.users = vec![user("bob"), user("dev")];
    let admin_conn =
        raw_connection_as(&dir.0, port, Some((&tls.join("admin.pem"), &tls.join("admin.key")))).await.unwrap();
    match ask(&admin_conn, &Request::SetRegistry(SetRegistry {}), &reg.to_wire(None).unwrap(), 0).await.unwrap() {
        Response::Error(e) => assert!(e.detail.contains("principal registry version 1 is not signed"), "{}", e.detail),
        other => panic!("an unsigned registry was taken: {other:?}"),
    }
    let report = admin.push_registry(&reg).await.unwrap();
    assert_eq!(report.installed.len(), 1, "{report:?}");
    bob.get("bobs", "k", Default::default()).await.unwrap();

    // Connections open before the change, idle and busy.
    let bob_raw = raw_connection_as(&dir.0, port, Some((&bob_pem, &bob_key))).await.unwrap();
    assert!(ask(&bob_raw, &Request::GetMap(GetMap {}), &[], 0).await.is_ok());
    let dev_raw = raw_connection_as(&dir.0, port, Some((&tls.join("user.pem"), &tls.join("user.key")))).await.unwrap();
    assert!(ask(&dev_raw, &Request::GetMap(GetMap {}), &[], 0).await.is_ok());

    // Revoke bob's certificate: its open connection ends with the reason.
    reg.version = 2;
    reg.revoked.push(tessera_wire::registry::RevokedCert {
        fingerprint: tessera_node::tls::fingerprint_of_pem(&bob_pem).unwrap(),
        principal: "user:bob".into(),
        revoked_ms: 2,
    });
    admin.push_registry(&reg).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), bob_raw.closed()).await;
    let why = closed.expect("bob's open connection was not closed within 5 s").to_string();
    assert!(why.contains("the certificate of user:bob") && why.contains("was revoked"), "{why}");
    match bob.get("bobs", "k", Default::default()).await {
        Ok(_) => panic!("a revoked certificate still reads"),
        Err(e) => assert!(e.to_string().contains("revoked"), "{e}"),
    }
    let again = refused_connection(&dir.0, port, Some((&bob_pem, &bob_key))).await;
    assert!(again.contains("was revoked"), "{again}");
    // Dev is still listed: untouched.
    assert!(
        ask(&dev_raw, &Request::GetMap(GetMap {}), &[], 0).await.is_ok(),
        "dev's connection survived bob's revocation"
    );

    // Remove dev from the list: dev's open connection ends too.
    reg.version = 3;
    reg.users.retain(|u| u.name != "dev");
    admin.push_registry(&reg).await.unwrap();
    let why = tokio::time::timeout(Duration::from_secs(5), dev_raw.closed()).await.expect("dev not closed").to_string();
    assert!(why.contains("user:dev is not a user of this region"), "{why}");

    // An older or conflicting registry is refused; the node keeps its own
    // across a restart.
    let mut older = reg.clone();
    older.version = 2;
    assert!(!admin.push_registry(&older).await.unwrap().refused.is_empty());
    let mut twin = reg.clone();
    twin.users.clear();
    let report = admin.push_registry(&twin).await.unwrap();
    assert!(report.refused.iter().any(|r| r.contains("another principal registry with version 3")), "{report:?}");
    node.stop();
    node.restart();
    let admin = Client::connect(ClientConfig::load(&dir.0.join("client.toml")).unwrap()).await.unwrap();
    assert_eq!(admin.registry().await.unwrap(), reg, "the registry after a restart");
    let after = refused_connection(&dir.0, port, Some((&tls.join("user.pem"), &tls.join("user.key")))).await;
    assert!(after.contains("user:dev is not a user of this region"), "{after}");
}
