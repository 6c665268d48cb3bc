//! Disk-level faults seen through the client: bytes flipped in a target file
//! while the node is stopped, and a target that fills up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{content, Node, NodeOpts, TestDir};
use tessera_client::ClientError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_bytes_are_reported_as_corruption_and_nothing_else_is_hurt() {
    let dir = TestDir::new("flip");
    let mut node = Node::start(&dir.0, common::base_port(4), &NodeOpts { cores: 1, ..NodeOpts::default() });
    let c = node.client().await;
    c.create_bucket("flip", Default::default()).await.unwrap();
    for k in ["victim", "bystander"] {
        c.put("flip", k, content(k, 50_000)).await.unwrap();
    }
    node.stop();
    let path = dir.0.join("t0.dat");
    let mut raw = std::fs::read(&path).unwrap();
    let victim = content("victim", 50_000);
    let at = raw.windows(64).position(|w| w == &victim[30_000..30_064]).expect("victim bytes on disk");
    raw[at + 7] ^= 0x01;
    std::fs::write(&path, raw).unwrap();
    node.restart();
    let c = node.client().await;
    let err = match c.get("flip", "victim", Default::default()).await {
        Ok(g) => g.bytes().await.expect_err("corrupt data must not be served"),
        Err(e) => e,
    };
    assert!(matches!(err, ClientError::Corrupt { .. }), "got {err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    let ok = c.get("flip", "bystander", Default::default()).await.unwrap().bytes().await.unwrap();
    assert_eq!(ok, content("bystander", 50_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_target_says_so_keeps_serving_and_recovers_after_deletes() {
    let dir = TestDir::new("full");
    let opts = NodeOpts {
        cores: 1,
        capacity_bytes: 12 * 262_144 + 4_096,
        segment_bytes: 262_144,
        checkpoint_ms: 200,
        ..NodeOpts::default()
    };
    let mut node = Node::start(&dir.0, common::base_port(6), &opts);
    let c = node.client().await;
    c.create_bucket("full", Default::default()).await.unwrap();
    let mut stored = Vec::new();
    let mut full_error = None;
    for i in 0..200 {
        let key = format!("k{i}");
        match c.put("full", &key, content(&key, 100_000)).await {
            Ok(_) => stored.push(key),
            Err(e) => {
                full_error = Some(e);
                break;
            }
        }
    }
    let err = full_error.expect("the target never filled");
    assert!(matches!(err, ClientError::TargetFull { .. }), "got {err}");
    assert!(err.to_string().contains("full"), "{err}");
    for k in &stored {
        assert_eq!(c.get("full", k, Default::default()).await.unwrap().bytes().await.unwrap(), content(k, 100_000));
    }
    for k in &stored[1..] {
        c.delete("full", k).await.unwrap();
    }
    let mut ok = false;
    for _ in 0..100 {
        if c.put("full", "again", content("again", 100_000)).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "writes never succeeded again after deletes");
    assert_eq!(
        c.get("full", &stored[0], Default::default()).await.unwrap().bytes().await.unwrap(),
        content(&stored[0], 100_000)
    );
    node.stop();
}
