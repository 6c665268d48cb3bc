//! A node killed under a writer: the writer's request fails because the
//! connection went silent (the client's silence detector), not after quinn's
//! much longer idle timeout; and the error names what happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{content, Node, NodeOpts, TestDir};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_is_noticed_by_silence() {
    let dir = TestDir::new("deadpeer");
    let mut node = Node::start(&dir.0, common::base_port(7), &NodeOpts::default());
    let c = node.client().await;
    c.create_bucket("dead", Default::default()).await.unwrap();
    let writer = tokio::spawn(async move {
        for i in 0..100_000u32 {
            if let Err(e) = c.put("dead", &format!("k{i}"), content("x", 400_000)).await {
                return e.to_string();
            }
        }
        String::from("never failed")
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    node.kill();
    let err = tokio::time::timeout(Duration::from_secs(30), writer).await.expect("writer stuck").unwrap();
    // Either an open connection went silent, or a lane that had to connect
    // after the kill met the handshake deadline: both name the cause and
    // come long before quinn's idle timeout would.
    assert!(
        err.contains("no packet from the node") || err.contains("no handshake within"),
        "the write failed another way: {err}"
    );
}
