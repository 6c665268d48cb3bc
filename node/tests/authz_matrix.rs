//! The authorization matrix: every data operation, as each kind of
//! principal (the bucket's owner, another user, an admin, a node, a peer
//! region), against each kind of bucket (private, public-read, a policy
//! that grants the other user, a policy that denies everyone), through a
//! real node over QUIC. Each cell's expectation comes from the rules in
//! docs/security.md, written out below independently of the node's code;
//! each refusal must be AccessDenied and name the principal; afterwards
//! every object a refused write aimed at still holds its bytes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{raw_connection_as, Node, NodeOpts, TestDir};
use tessera_client::{Client, ClientConfig, ClientError, ListRequest};
use tessera_wire::access::Policy;
use tessera_wire::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Owner,
    Other,
    Admin,
    Node,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Setting {
    Private,
    PublicRead,
    PolicyGrant,
    ExplicitDeny,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Get,
    Head,
    Overwrite,
    DeleteMarker,
    Purge,
    List,
    ListVersions,
    ReadAccess,
    SetAccess,
}

const OPS: [Op; 9] = [
    Op::Get,
    Op::Head,
    Op::Overwrite,
    Op::DeleteMarker,
    Op::Purge,
    Op::List,
    Op::ListVersions,
    Op::ReadAccess,
    Op::SetAccess,
];

/// What docs/security.md promises for each cell.
fn expected(who: Who, setting: Setting, op: Op) -> bool {
    let reads = matches!(op, Op::Get | Op::Head | Op::List | Op::ListVersions);
    match (who, setting) {
        (Who::Admin | Who::Node, _) => true,
        // An explicit deny binds the owner too, except for the bucket's
        // ACL and policy (an owner cannot lock itself out).
        (Who::Owner, Setting::ExplicitDeny) => matches!(op, Op::ReadAccess | Op::SetAccess),
        (Who::Owner, _) => true,
        (Who::Other, Setting::Private | Setting::ExplicitDeny) => false,
        // A public-read bucket lists; its objects were written public-read.
        (Who::Other, Setting::PublicRead) => reads,
        (Who::Other, Setting::PolicyGrant) => true,
    }
}

fn bucket_name(s: Setting) -> &'static str {
    match s {
        Setting::Private => "m-private",
        Setting::PublicRead => "m-public",
        Setting::PolicyGrant => "m-granted",
        Setting::ExplicitDeny => "m-denied",
    }
}

fn key(who: Who, op: Op) -> String {
    format!("{who:?}-{op:?}").to_lowercase()
}

fn client_as(dir: &Path, cert: &str) -> ClientConfig {
    ClientConfig::load(&dir.join("client.toml"))
        .unwrap()
        .with_identity(dir.join(format!("tls/{cert}.pem")), dir.join(format!("tls/{cert}.key")))
}

/// Run one operation; Ok when the node allowed it.
async fn run(c: &Client, bucket: &str, key: &str, op: Op) -> Result<(), ClientError> {
    match op {
        Op::Get => c.get(bucket, key, Default::default()).await?.bytes().await.map(|_| ()),
        Op::Head => c.head(bucket, key, None).await.map(|_| ()),
        Op::Overwrite => c.put(bucket, key, b"overwritten".to_vec()).await.map(|_| ()),
        Op::DeleteMarker => c.delete(bucket, key).await.map(|_| ()),
        Op::Purge => {
            // The version to purge, as an operator sees it.
            let v = ADMIN.with(|a| a.borrow().clone()).unwrap().head(bucket, key, None).await?.version;
            c.delete_version(bucket, key, v).await
        }
        Op::List => c.list(bucket, ListRequest::default()).await.map(|_| ()),
        Op::ListVersions => c.list_versions(bucket, "", None, 100).await.map(|_| ()),
        Op::ReadAccess => c.bucket_access(bucket).await.map(|_| ()),
        Op::SetAccess => {
            let now = ADMIN.with(|a| a.borrow().clone()).unwrap().bucket_access(bucket).await?;
            c.set_bucket_access(bucket, now.access.acl, now.access.policy).await.map(|_| ())
        }
    }
}

thread_local! {
    static ADMIN: std::cell::RefCell<Option<Client>> = const { std::cell::RefCell::new(None) };
}

#[tokio::test(flavor = "current_thread")]
async fn every_operation_by_every_principal_on_every_kind_of_bucket() {
    let dir = TestDir::new("authz-matrix");
    let port = common::base_port(4);
    let _node = Node::start(&dir.0, port, &NodeOpts::default());
    let tls = dir.0.join("tls");
    for (name, p) in [("bob", Principal::new(Role::User, "bob")), ("r2", Principal::new(Role::Peer, "r2"))] {
        let (c, k) = (tls.join(format!("{name}.pem")), tls.join(format!("{name}.key")));
        tessera_node::tls::issue_dev_identity(&tls, &p.unwrap(), &c, &k).unwrap();
    }
    let admin = Client::connect(client_as(&dir.0, "admin")).await.unwrap();
    ADMIN.with(|a| *a.borrow_mut() = Some(admin.clone()));
    let owner = Client::connect(client_as(&dir.0, "user")).await.unwrap();
    let clients = [
        (Who::Owner, owner.clone()),
        (Who::Other, Client::connect(client_as(&dir.0, "bob")).await.unwrap()),
        (Who::Admin, admin.clone()),
        (Who::Node, Client::connect(client_as(&dir.0, "node")).await.unwrap()),
    ];
    let settings = [Setting::Private, Setting::PublicRead, Setting::PolicyGrant, Setting::ExplicitDeny];

    // The owner makes one bucket per setting and one object per cell.
    let mut settings_set = Vec::new();
    for s in settings {
        let b = bucket_name(s);
        owner.create_bucket(b, Default::default()).await.unwrap();
        let acl = if s == Setting::PublicRead { Acl::PublicRead } else { Acl::Private };
        for (who, _) in &clients {
            for op in OPS {
                let opts = tessera_client::PutOptions { acl, ..Default::default() };
                let k = key(*who, op);
                owner.put_with(b, &k, common::content(&k, 3_000), opts).await.unwrap();
            }
        }
        let policy = match s {
            Setting::PolicyGrant => Some(format!(
                r#"{{"Statement":{{"Effect":"Allow","Principal":{{"Tessera":["user:bob"]}},"Action":"*","Resource":["{b}","{b}/*"]}}}}"#
            )),
            Setting::ExplicitDeny => Some(format!(
                r#"{{"Statement":{{"Sid":"freeze","Effect":"Deny","Principal":"*","Action":"*","Resource":["{b}","{b}/*"]}}}}"#
            )),
            _ => None,
        };
        let policy = policy.map(|j| Policy::from_json(b, &j).unwrap());
        let bucket_acl = if s == Setting::PublicRead { Acl::PublicRead } else { Acl::Private };
        let set = owner.set_bucket_access(b, bucket_acl, policy.clone()).await.unwrap();
        assert!(set.behind.is_empty(), "{set:?}");
        settings_set.push((b, bucket_acl, policy));
    }

    let mut mismatches = Vec::new();
    for s in settings {
        let b = bucket_name(s);
        for (who, c) in &clients {
            for op in OPS {
                let k = key(*who, op);
                let want = expected(*who, s, op);
                let got = run(c, b, &k, op).await;
                match (&got, want) {
                    (Ok(()), true) => {}
                    (Err(ClientError::AccessDenied { detail }), false) => {
                        let name = if *who == Who::Owner { "user:dev" } else { "user:bob" };
                        if !detail.contains(name) {
                            mismatches.push(format!("{b} {who:?} {op:?}: refusal does not name {name}: {detail}"));
                        }
                        if s == Setting::ExplicitDeny && !detail.contains("(\"freeze\") denies") {
                            mismatches
                                .push(format!("{b} {who:?} {op:?}: refusal does not name the statement: {detail}"));
                        }
                    }
                    _ => mismatches.push(format!("{b} {who:?} {op:?}: want allowed={want}, got {got:?}")),
                }
                // A refused write changed nothing.
                if !want && matches!(op, Op::Overwrite | Op::DeleteMarker | Op::Purge) {
                    let bytes = admin.get(b, &k, Default::default()).await.unwrap().bytes().await.unwrap();
                    if bytes != common::content(&k, 3_000) {
                        mismatches.push(format!("{b} {who:?} {op:?}: a refused write changed the object"));
                    }
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{} cells wrong:\n{}", mismatches.len(), mismatches.join("\n"));
    // Refused ACL and policy changes changed nothing (allowed ones re-set
    // the same settings).
    for (b, acl, policy) in settings_set {
        let now = admin.bucket_access(b).await.unwrap();
        assert_eq!((now.access.acl, now.access.policy), (acl, policy), "{b}: settings changed");
    }

    // A peer region's principal gets nothing on a node port, whatever the
    // bucket says.
    let peer = raw_connection_as(&dir.0, port, Some((&tls.join("r2.pem"), &tls.join("r2.key")))).await.unwrap();
    let epoch = admin.view().map.epoch;
    let b = bucket_name(Setting::PublicRead).to_string();
    let k = "peer".to_string();
    let t = TargetId(0);
    let v = VersionId(1);
    let reqs = [
        Request::GetShard(GetShard {
            target: t,
            bucket: b.clone(),
            key: k.clone(),
            version: v,
            stripe: StripeIndex(0),
            shard: ShardIndex(0),
            range: None,
        }),
        Request::Head(Head { target: t, bucket: b.clone(), key: k.clone(), version: None, exclude: vec![] }),
        Request::Delete(DeleteObject { target: t, bucket: b.clone(), key: k.clone(), version: v, origin: None }),
        Request::List(List {
            target: t,
            bucket: b.clone(),
            prefix: String::new(),
            delimiter: None,
            start_after: None,
            limit: 10,
        }),
        Request::GetBucketAccess(GetBucketAccess { target: t, bucket: b.clone() }),
        Request::SetBucketAccess(SetBucketAccess { target: t, bucket: b.clone(), access: Default::default() }),
    ];
    for req in reqs {
        match ask(&peer, &req, epoch).await {
            Response::Error(e) if e.code == ErrorCode::AccessDenied => {
                assert!(e.detail.contains("peer:r2") && e.detail.contains("replication endpoint"), "{}", e.detail)
            }
            other => panic!("{req:?} as a peer: {other:?}"),
        }
    }
}

/// A version still being written is its writer's: another user the
/// policy lets write may not commit or purge it; the writer may.
#[tokio::test(flavor = "current_thread")]
async fn a_prepared_version_is_its_writers_to_commit_or_abort() {
    let dir = TestDir::new("authz-prepared");
    let port = common::base_port(2);
    let _node = Node::start(&dir.0, port, &NodeOpts { cores: 1, ..NodeOpts::default() });
    let tls = dir.0.join("tls");
    let (bc, bk) = (tls.join("bob.pem"), tls.join("bob.key"));
    tessera_node::tls::issue_dev_identity(&tls, &Principal::new(Role::User, "bob").unwrap(), &bc, &bk).unwrap();
    let owner = Client::connect(client_as(&dir.0, "user")).await.unwrap();
    owner.create_bucket("shared", Default::default()).await.unwrap();
    let grant = r#"{"Statement":{"Effect":"Allow","Principal":{"Tessera":"user:bob"},"Action":"*","Resource":["shared","shared/*"]}}"#;
    owner.set_bucket_access("shared", Acl::Private, Some(Policy::from_json("shared", grant).unwrap())).await.unwrap();
    let epoch = owner.view().map.epoch;

    let dev = raw_connection_as(&dir.0, port, Some((&tls.join("user.pem"), &tls.join("user.key")))).await.unwrap();
    let bob = raw_connection_as(&dir.0, port, Some((&bc, &bk))).await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let version = VersionId(u128::from(now) << 64);
    let data = b"half-written".to_vec();
    let meta = tessera_node::engine::single_shard_meta("k", version, data.len(), crc32c::crc32c(&data), "whoever");
    let prepare = Request::PutShard(PutShard {
        target: TargetId(0),
        bucket: "shared".into(),
        key: "k".into(),
        version,
        stripe: StripeIndex(0),
        shard: ShardIndex(0),
        shard_crc32c: crc32c::crc32c(&data),
        meta: Some(meta),
        repair: false,
    });
    let (mut send, mut recv) = dev.open_bi().await.unwrap();
    send.write_all(&encode_frame(1, &prepare, data.len() as u64, epoch).unwrap()).await.unwrap();
    send.write_all(&data).await.unwrap();
    let _ = send.finish();
    let reply = recv.read_to_end(1 << 20).await.unwrap();
    let (h, op) = FrameHeader::decode(&reply).unwrap();
    let prepared = decode_response(op, &reply[FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.body_len.get() as usize]).unwrap();
    assert!(matches!(prepared, Response::PutShardOk(PutShardOk { prepared: true, .. })), "{prepared:?}");

    let commit =
        Request::Commit(CommitVersion { target: TargetId(0), bucket: "shared".into(), key: "k".into(), version });
    let purge = Request::Delete(DeleteObject {
        target: TargetId(0),
        bucket: "shared".into(),
        key: "k".into(),
        version,
        origin: None,
    });
    for req in [&commit, &purge] {
        match ask(&bob, req, epoch).await {
            Response::Error(e) if e.code == ErrorCode::AccessDenied => {
                assert!(
                    e.detail.contains("user:bob may not commit or purge the version of shared/k that dev"),
                    "{}",
                    e.detail
                )
            }
            other => panic!("bob's {req:?}: {other:?}"),
        }
    }
    let committed = ask(&dev, &commit, epoch).await;
    assert!(matches!(committed, Response::CommitOk(_)), "{committed:?}");
}

async fn ask(conn: &quinn::Connection, req: &Request, epoch: u64) -> Response {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&encode_frame(1, req, 0, epoch).unwrap()).await.unwrap();
    let _ = send.finish();
    let reply = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20)).await.unwrap().unwrap();
    let (h, op) = FrameHeader::decode(&reply).unwrap();
    decode_response(op, &reply[FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.body_len.get() as usize]).unwrap()
}
