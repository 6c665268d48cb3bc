//! A real node process under concurrent writes, killed with SIGKILL at
//! random moments and restarted: every acknowledged object reads back
//! byte-identical; anything unacknowledged is either absent or complete.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{content, Node, NodeOpts, TestDir};

const KILLS: usize = 20;
const WRITERS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_concurrent_writes_loses_no_acknowledged_object() {
    let dir = TestDir::new("crash");
    let opts = NodeOpts { capacity_bytes: 1_024 * 1_048_576, ..NodeOpts::default() };
    let mut node = Node::start(&dir.0, common::base_port(0), &opts);
    node.client().await.create_bucket("crash", Default::default()).await.unwrap();
    let acked: Arc<Mutex<Vec<(String, usize)>>> = Arc::default();
    let mut attempted: Vec<(String, usize)> = Vec::new();
    let mut rng = 0x5eed_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    for round in 0..KILLS {
        let round_start = std::time::Instant::now();
        let client = node.client().await;
        let mut tasks = Vec::new();
        for w in 0..WRITERS {
            let sizes: Vec<usize> = (0..30).map(|_| [100, 5_000, 60_000, 400_000][(next() % 4) as usize]).collect();
            for (i, &len) in sizes.iter().enumerate() {
                attempted.push((format!("r{round}/w{w}/{i}"), len));
            }
            let (client, acked) = (client.clone(), acked.clone());
            tasks.push(tokio::spawn(async move {
                for (i, len) in sizes.into_iter().enumerate() {
                    let key = format!("r{round}/w{w}/{i}");
                    match client.put("crash", &key, content(&key, len)).await {
                        Ok(_) => acked.lock().unwrap().push((key, len)),
                        Err(_) => return,
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(100 + next() % 500)).await;
        node.kill();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
        let killed_after = round_start.elapsed();
        node.restart();
        let verify_start = std::time::Instant::now();
        // Every acknowledged object so far must be there and identical.
        let client = node.client().await;
        let acked_now = acked.lock().unwrap().clone();
        for (key, len) in &acked_now {
            let got = client.get("crash", key, Default::default()).await;
            let got = match got {
                Ok(g) => g.bytes().await,
                Err(e) => Err(e),
            };
            assert_eq!(
                got.ok().as_deref(),
                Some(&content(key, *len)[..]),
                "round {round}: acknowledged {key} lost or changed"
            );
        }
        println!(
            "round {round}: {} acknowledged objects verified (writers stopped after {:.1} s, verified in {:.1} s)",
            acked_now.len(),
            killed_after.as_secs_f64(),
            verify_start.elapsed().as_secs_f64()
        );
    }
    // Unacknowledged writes: absent, or complete and right, never torn.
    let client = node.client().await;
    let acked_keys: std::collections::HashSet<String> = acked.lock().unwrap().iter().map(|(k, _)| k.clone()).collect();
    let mut present_unacked = 0;
    for (key, len) in attempted.iter().filter(|(k, _)| !acked_keys.contains(k)) {
        if let Ok(g) = client.get("crash", key, Default::default()).await {
            let bytes = g.bytes().await.expect("a visible object reads completely");
            assert_eq!(bytes, content(key, *len), "unacknowledged {key} served torn");
            present_unacked += 1;
        }
    }
    println!("{} acknowledged, {present_unacked} unacknowledged but complete", acked_keys.len());
    assert!(acked_keys.len() > KILLS * 2, "the test wrote too little to mean anything");
}
