//! Writes whose writer died between the two phases: a version prepared on
//! every member but committed nowhere is purged by the members' sweepers; a
//! version committed on one member only is committed on the others. Real
//! node process, hand-made frames standing in for the dying writer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{raw_connection, Node, NodeOpts, TestDir};
use tessera_wire::*;

async fn send(conn: &quinn::Connection, req: &Request, payload: &[u8]) -> Response {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&encode_frame(1, req, payload.len() as u64, 1).unwrap()).await.unwrap();
    send.write_all(payload).await.unwrap();
    let _ = send.finish();
    let reply = recv.read_to_end(1 << 20).await.unwrap();
    let (h, op) = FrameHeader::decode(&reply).unwrap();
    decode_response(op, &reply[FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.body_len.get() as usize]).unwrap()
}

fn meta(key: &str, version: VersionId) -> ObjectMeta {
    ObjectMeta {
        key: key.into(),
        version,
        size_bytes: 5,
        stripe_bytes: 6,
        shard_bytes: 6,
        ec: EcProfile { data: 1, parity: 1 },
        stripe_count: 1,
        content_crc32c: crc32c::crc32c(b"hello"),
        created_ms: version.millis(),
        content_type: None,
        owner: "t".into(),
        user_meta: vec![],
        storage_class: StorageClass::Standard,
        delete_marker: false,
        acl: tessera_wire::Acl::Private,
        origin: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_prepared_versions_are_purged_or_committed() {
    let dir = TestDir::new("sweeper");
    let port = common::base_port(8);
    let opts = NodeOpts { cores: 2, prepared_expiry_ms: 300, sweep_interval_ms: 200, ..NodeOpts::default() };
    let mut node = Node::start(&dir.0, port, &opts);
    let client = node.client().await;
    client.create_bucket("sweep", Default::default()).await.unwrap();
    // Standalone map: target t (0 or 1) is owned by core t.
    let conns = [raw_connection(&dir.0, port).await, raw_connection(&dir.0, port + 1).await];
    let shard = b"hello\0";
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    let prepare = |key: &'static str, version: VersionId| {
        let targets = client.targets_of("sweep", key);
        let conns = &conns;
        async move {
            for (i, t) in targets.iter().enumerate() {
                let req = Request::PutShard(PutShard {
                    target: *t,
                    bucket: "sweep".into(),
                    key: key.into(),
                    version,
                    stripe: StripeIndex(0),
                    shard: ShardIndex(i as u16),
                    shard_crc32c: crc32c::crc32c(shard),
                    meta: Some(meta(key, version)),
                    repair: false,
                });
                match send(&conns[t.0 as usize], &req, shard).await {
                    Response::PutShardOk(ok) => assert!(ok.prepared),
                    other => panic!("prepare: {other:?}"),
                }
            }
            targets
        }
    };
    let orphan = VersionId((now << 64) | 1);
    prepare("orphan", orphan).await;
    let half = VersionId((now << 64) | 2);
    let targets = prepare("half", half).await;
    let commit = Request::Commit(CommitVersion {
        target: targets[0],
        bucket: "sweep".into(),
        key: "half".into(),
        version: half,
    });
    assert!(matches!(send(&conns[targets[0].0 as usize], &commit, &[]).await, Response::CommitOk(_)));
    // Neither is served as the newest yet... except where "half" committed.
    assert!(client.head("sweep", "orphan", None).await.is_err());

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let o = group_view(&client, "sweep", "orphan", orphan).await.unwrap();
        let h = group_view(&client, "sweep", "half", half).await.unwrap();
        let orphan_gone = o.iter().all(|a| a.as_ref().is_some_and(|a| a.meta.is_none() && a.purged.contains(&orphan)));
        let half_done = h.iter().all(|a| a.as_ref().is_some_and(|a| a.committed));
        if orphan_gone && half_done {
            break;
        }
        assert!(Instant::now() < deadline, "sweeper did not resolve: orphan {o:?} half {h:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(client.head("sweep", "orphan", None).await, Err(tessera_client::ClientError::NoSuchKey { .. })));
    assert_eq!(client.head("sweep", "half", None).await.unwrap().version, half);
    node.stop();
}

use tessera_client::group_view;
