//! Hostile and broken peers over a real QUIC connection: each bad frame gets
//! a clear error on its own stream, a stalled stream is dropped after the
//! request timeout, the node stays up and other connections are unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{raw_connection, Node, NodeOpts, TestDir};
use tessera_wire::*;

/// Send raw bytes on a new stream; return the error reply (code, detail).
async fn send_raw(conn: &quinn::Connection, bytes: &[u8]) -> Option<(ErrorCode, String)> {
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(bytes).await.unwrap();
    let _ = send.finish();
    let reply = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20)).await.ok()?.ok()?;
    let (h, op) = FrameHeader::decode(&reply).ok()?;
    let body = &reply[FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.body_len.get() as usize];
    match decode_response(op, body).ok()? {
        Response::Error(e) => Some((e.code, e.detail)),
        _ => None,
    }
}

fn reseal(frame: &mut [u8]) {
    let crc = crc32c::crc32c(&frame[..FRAME_HEADER_LEN - 4]);
    frame[FRAME_HEADER_LEN - 4..FRAME_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_get_clear_errors_and_hurt_no_one_else() {
    let dir = TestDir::new("badinput");
    let port = common::base_port(2);
    let mut node = Node::start(&dir.0, port, &NodeOpts { cores: 1, request_timeout_ms: 1_500, ..NodeOpts::default() });
    let good = node.client().await;
    good.create_bucket("good", Default::default()).await.unwrap();
    good.put("good", "before", b"still here".to_vec()).await.unwrap();

    let conn = raw_connection(&dir.0, port).await;
    let head = Request::Head(Head {
        target: TargetId(0),
        bucket: "good".into(),
        key: "before".into(),
        version: None,
        exclude: vec![],
    });
    let frame = encode_frame(7, &head, 0, 1).unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated header", frame[..10].to_vec(), "truncated"),
        (
            "wrong magic",
            {
                let mut f = frame.clone();
                f[0] = b'X';
                f
            },
            "magic",
        ),
        (
            "wrong version",
            {
                let mut f = frame.clone();
                f[4] = 99;
                reseal(&mut f);
                f
            },
            "version",
        ),
        (
            "bad header checksum",
            {
                let mut f = frame.clone();
                f[9] ^= 1;
                f
            },
            "checksum",
        ),
        (
            "oversized body length",
            {
                let mut f = frame.clone();
                f[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
                reseal(&mut f);
                f
            },
            "exceeds",
        ),
        (
            "oversized payload length",
            {
                let mut f = frame.clone();
                f[20..28].copy_from_slice(&u64::MAX.to_le_bytes());
                reseal(&mut f);
                f
            },
            "exceeds",
        ),
        ("truncated body", frame[..frame.len() - 3].to_vec(), "truncated"),
        (
            "garbage body",
            {
                let mut f = frame.clone();
                for b in &mut f[FRAME_HEADER_LEN..] {
                    *b = 0xff;
                }
                f
            },
            "malformed",
        ),
        (
            "unknown opcode",
            {
                let mut f = frame.clone();
                f[5] = 0x55;
                reseal(&mut f);
                f
            },
            "opcode",
        ),
        (
            "response opcode sent as request",
            {
                let mut f = frame.clone();
                f[5] = 0x83;
                reseal(&mut f);
                f
            },
            "not a request",
        ),
    ];
    for (name, bytes, expect) in cases {
        let (code, detail) = send_raw(&conn, &bytes).await.unwrap_or_else(|| panic!("{name}: no error reply"));
        assert_eq!(code, ErrorCode::BadRequest, "{name}");
        assert!(detail.to_lowercase().contains(expect), "{name}: detail {detail:?} should mention {expect:?}");
    }

    // A put whose payload is short of what the header promised.
    let put = Request::PutShard(PutShard {
        target: TargetId(0),
        bucket: "good".into(),
        key: "short".into(),
        version: VersionId(1 << 64),
        stripe: StripeIndex(0),
        shard: ShardIndex(0),
        shard_crc32c: 0,
        meta: None,
        repair: false,
    });
    let mut f = encode_frame(8, &put, 1_000, 1).unwrap();
    f.extend_from_slice(&[1u8; 100]);
    let (code, detail) = send_raw(&conn, &f).await.expect("short payload reply");
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(detail.contains("payload truncated"), "{detail}");

    // A put whose payload does not match its checksum.
    let mut f = encode_frame(9, &put, 4, 1).unwrap();
    f.extend_from_slice(b"abcd");
    let (code, _) = send_raw(&conn, &f).await.expect("crc reply");
    assert_eq!(code, ErrorCode::PayloadChecksumMismatch);

    // Requests made with another map epoch than the node's (1) are refused
    // before any target is touched, naming both epochs.
    let (code, detail) = send_raw(&conn, &encode_frame(10, &head, 0, 0).unwrap()).await.expect("stale reply");
    assert_eq!(code, ErrorCode::StaleEpoch);
    assert!(detail.contains("epoch 0") && detail.contains("epoch 1"), "{detail}");
    let (code, _) = send_raw(&conn, &encode_frame(11, &head, 0, 9).unwrap()).await.expect("ahead reply");
    assert_eq!(code, ErrorCode::NodeBehind);
    let mut f = encode_frame(12, &put, 4, 0).unwrap();
    f.extend_from_slice(b"abcd");
    let (code, _) = send_raw(&conn, &f).await.expect("stale put reply");
    assert_eq!(code, ErrorCode::StaleEpoch);

    // A stalled stream: half a body, then silence. The node resets it after
    // its request timeout; meanwhile the good client is served.
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    send.write_all(&frame[..FRAME_HEADER_LEN + 2]).await.unwrap();
    let got = good.get("good", "before", Default::default()).await.unwrap().bytes().await.unwrap();
    assert_eq!(got, b"still here");
    let stalled = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(1 << 20))
        .await
        .expect("node gave up on the stalled stream");
    assert!(stalled.is_err(), "a stalled stream is reset, not answered: {stalled:?}");

    // Garbage on many streams at once, then the node is still healthy.
    for i in 0..50u8 {
        let _ = send_raw(&conn, &[i; 64]).await;
    }
    assert!(node.alive(), "node died");
    good.put("good", "after", b"fine".to_vec()).await.unwrap();
    assert_eq!(good.get("good", "after", Default::default()).await.unwrap().bytes().await.unwrap(), b"fine");
    node.stop();
}
