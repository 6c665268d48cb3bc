//! Golden byte vectors: one hex file per message under tests/golden/. A
//! format change shows up as a diff of these files. Regenerate deliberately
//! with `TESSERA_UPDATE_GOLDEN=1 cargo test -p tessera-wire --test golden`.

use tessera_wire::*;

fn meta() -> ObjectMeta {
    ObjectMeta {
        key: "photos/2026/cat.jpg".into(),
        version: VersionId(0x0000_0192_3456_789a_0001_0000_0000_002a),
        size_bytes: 1_500_000,
        stripe_bytes: 6 * 262_144,
        shard_bytes: 262_144,
        ec: EcProfile { data: 6, parity: 6 },
        stripe_count: 1,
        content_crc32c: 0xdead_beef,
        created_ms: 1_795_000_000_000,
        content_type: Some("image/jpeg".into()),
        owner: "alice".into(),
        user_meta: vec![("camera".into(), "x100".into())],
        storage_class: StorageClass::Standard,
        delete_marker: false,
        acl: Acl::PublicRead,
        origin: Some("eu-1".into()),
    }
}

fn change() -> crr::Change {
    crr::Change {
        bucket: "photos".into(),
        key: "a".into(),
        version: VersionId(11),
        kind: crr::ChangeKind::Put { delete_marker: false },
        size_bytes: 1_500_000,
        at_ms: 1_795_000_000_123,
        origin: None,
    }
}

fn bucket_info() -> BucketInfo {
    BucketInfo {
        name: "photos".into(),
        versioned: true,
        owner: "alice".into(),
        created_ms: 1_795_000_000_000,
        storage_class: StorageClass::InfrequentAccess,
    }
}

fn requests() -> Vec<(&'static str, Request, u64)> {
    vec![
        (
            "put_shard",
            Request::PutShard(PutShard {
                target: TargetId(3),
                bucket: "photos".into(),
                key: "photos/2026/cat.jpg".into(),
                version: meta().version,
                stripe: StripeIndex(1),
                shard: ShardIndex(0),
                shard_crc32c: 0x0102_0304,
                meta: Some(meta()),
                repair: false,
            }),
            451_424,
        ),
        (
            "get_shard",
            Request::GetShard(GetShard {
                target: TargetId(3),
                bucket: "photos".into(),
                key: "photos/2026/cat.jpg".into(),
                version: VersionId(8),
                stripe: StripeIndex(0),
                shard: ShardIndex(0),
                range: Some(ByteRange { offset: 4_096, len: 100 }),
            }),
            0,
        ),
        (
            "head",
            Request::Head(Head {
                target: TargetId(1),
                bucket: "photos".into(),
                key: "k".into(),
                version: Some(VersionId(7)),
                exclude: vec![VersionId(9)],
            }),
            0,
        ),
        (
            "delete",
            Request::Delete(DeleteObject {
                target: TargetId(1),
                bucket: "photos".into(),
                key: "k".into(),
                version: VersionId(99),
                origin: None,
            }),
            0,
        ),
        (
            "list",
            Request::List(List {
                target: TargetId(0),
                bucket: "photos".into(),
                prefix: "2026/".into(),
                delimiter: Some("/".into()),
                start_after: Some("2026/a".into()),
                limit: 1_000,
            }),
            0,
        ),
        ("create_bucket", Request::CreateBucket(CreateBucket { target: TargetId(0), info: bucket_info() }), 0),
        ("get_bucket", Request::GetBucket(GetBucket { target: TargetId(0), name: "photos".into() }), 0),
        ("node_status", Request::NodeStatus(NodeStatus {}), 0),
        (
            "commit",
            Request::Commit(CommitVersion {
                target: TargetId(4),
                bucket: "photos".into(),
                key: "k".into(),
                version: VersionId(77),
            }),
            0,
        ),
        (
            "list_versions",
            Request::ListVersions(ListVersions {
                target: TargetId(4),
                bucket: "photos".into(),
                prefix: "2026/".into(),
                after: Some(("2026/a".into(), VersionId(3))),
                limit: 500,
            }),
            0,
        ),
        ("get_map", Request::GetMap(GetMap {}), 0),
        ("set_map", Request::SetMap(SetMap {}), 1_234),
        ("pg_digest", Request::PgDigest(repair::PgDigest { target: TargetId(2), pgs: vec![0, 7, 4095] }), 0),
        (
            "pg_list",
            Request::PgList(repair::PgList {
                target: TargetId(2),
                pg: 7,
                after: Some(repair::VersionRef { bucket: "photos".into(), key: "a".into(), version: VersionId(9) }),
                limit: 100,
            }),
            0,
        ),
        ("repair_status", Request::RepairStatus(repair::RepairStatus {}), 0),
        ("set_repair_rate", Request::SetRepairRate(repair::SetRepairRate { mib_s: 200 }), 0),
        ("change_log", Request::ChangeLog(crr::ChangeLog { target: TargetId(2), pg: 7, after_lsn: 40, limit: 64 }), 0),
        (
            "crr_cursor",
            Request::CrrCursor(crr::CrrCursor {
                target: TargetId(2),
                pg: 7,
                rule: "dr".into(),
                cursor: crr::RuleCursor {
                    shipped_lsn: 41,
                    backfill_after: Some(repair::VersionRef {
                        bucket: "photos".into(),
                        key: "a".into(),
                        version: VersionId(3),
                    }),
                    backfill_done: false,
                },
            }),
            0,
        ),
        (
            "crr_forget",
            Request::CrrForget(crr::CrrForget { target: TargetId(2), pg: 7, changes: vec![change().id()] }),
            0,
        ),
        ("crr_status", Request::CrrStatus(crr::CrrStatus {}), 0),
        ("change_summary", Request::ChangeSummary(crr::ChangeSummary { target: TargetId(4) }), 0),
        (
            "crr_have",
            Request::CrrHave(crr::CrrHave {
                rule: "dr".into(),
                dest_bucket: "photos-copy".into(),
                items: vec![("a".into(), VersionId(11), false)],
            }),
            0,
        ),
        (
            "crr_apply",
            Request::CrrApply(crr::CrrApply {
                rule: "dr".into(),
                origin: "eu-1".into(),
                dest_bucket: "photos-copy".into(),
                op: crr::CrrOp::Put(meta()),
            }),
            1_500_000,
        ),
        // Appended: request ids follow the position, so earlier vectors keep theirs.
        (
            "list_buckets",
            Request::ListBuckets(ListBuckets { target: TargetId(3), after: Some("logs".into()), limit: 200 }),
            0,
        ),
        (
            "set_bucket_access",
            Request::SetBucketAccess(SetBucketAccess {
                target: TargetId(3),
                bucket: "photos".into(),
                access: access(),
            }),
            0,
        ),
        (
            "get_bucket_access",
            Request::GetBucketAccess(GetBucketAccess { target: TargetId(3), bucket: "photos".into() }),
            0,
        ),
        ("get_registry", Request::GetRegistry(GetRegistry { newer_than: 41 }), 0),
        ("set_registry", Request::SetRegistry(SetRegistry {}), 900),
    ]
}

fn access() -> tessera_wire::access::BucketAccess {
    let doc = r#"{"Statement":[{"Sid":"team","Effect":"Allow","Principal":{"Tessera":["user:bob"]},
        "Action":["get","list"],"Resource":["photos","photos/shared/*"]},
        {"Effect":"Deny","Principal":"*","Action":"delete","Resource":"photos/*"}]}"#;
    tessera_wire::access::BucketAccess {
        acl: Acl::PublicRead,
        policy: Some(tessera_wire::access::Policy::from_json("photos", doc).expect("golden policy")),
        stamp: VersionId(0x0102_0304_0506_0708_090a),
    }
}

fn responses() -> Vec<(&'static str, Response, u64)> {
    vec![
        ("put_shard_ok", Response::PutShardOk(PutShardOk { target: TargetId(3), prepared: true }), 0),
        (
            "get_shard_ok",
            Response::GetShardOk(GetShardOk { meta: meta(), shard_len: 1_048_576, payload_crc32c: 0x0a0b_0c0d }),
            100,
        ),
        ("head_ok", Response::HeadOk(HeadOk { meta: Some(meta()), committed: true, purged: vec![VersionId(5)] }), 0),
        ("delete_ok", Response::DeleteOk(DeleteOk { removed: true }), 0),
        (
            "list_ok",
            Response::ListOk(ListOk {
                entries: vec![ListEntry {
                    key: "2026/a.jpg".into(),
                    version: VersionId(12),
                    size_bytes: 10,
                    created_ms: 1_795_000_000_000,
                    content_crc32c: 1,
                    storage_class: StorageClass::Standard,
                    delete_marker: false,
                }],
                common_prefixes: vec!["2026/b/".into()],
                truncated: true,
            }),
            0,
        ),
        ("create_bucket_ok", Response::CreateBucketOk(bucket_info()), 0),
        ("get_bucket_ok", Response::GetBucketOk(bucket_info()), 0),
        (
            "node_status_ok",
            Response::NodeStatusOk(NodeStatusOk {
                node: "n1".into(),
                map_epoch: 3,
                version: "0.1.0".into(),
                cores: vec![CoreStatus {
                    core: CoreIndex(0),
                    port: 7_400,
                    targets: vec![TargetStatus { target: TargetId(0), capacity_bytes: 1 << 30, free_bytes: 1 << 29 }],
                }],
            }),
            0,
        ),
        ("commit_ok", Response::CommitOk(CommitOk { target: TargetId(4) }), 0),
        (
            "list_versions_ok",
            Response::ListVersionsOk(ListVersionsOk {
                entries: vec![ListEntry {
                    key: "2026/a.jpg".into(),
                    version: VersionId(12),
                    size_bytes: 0,
                    created_ms: 1_795_000_000_000,
                    content_crc32c: 0,
                    storage_class: StorageClass::InfrequentAccess,
                    delete_marker: true,
                }],
                truncated: false,
            }),
            0,
        ),
        ("map_ok", Response::MapOk(MapOk { epoch: 3 }), 2_000),
        (
            "pg_digest_ok",
            Response::PgDigestOk(repair::PgDigestOk {
                target: TargetId(2),
                sums: vec![repair::PgSum { pg: 7, digest: 0x0123_4567_89ab_cdef, versions: 12 }],
            }),
            0,
        ),
        (
            "pg_list_ok",
            Response::PgListOk(repair::PgListOk {
                entries: vec![repair::PgEntry {
                    at: repair::VersionRef { bucket: "photos".into(), key: "b".into(), version: VersionId(10) },
                    state: repair::VersionState::Corrupt,
                    versioned: true,
                    size_bytes: 1_500_000,
                }],
                more: true,
            }),
            0,
        ),
        (
            "repair_status_ok",
            Response::RepairStatusOk(repair::RepairStatusOk {
                node: "z1-n1".into(),
                rate_limit_mib_s: 64,
                rounds: 3,
                backlog_versions: 10,
                backlog_bytes: 1 << 20,
                eta_s: Some(2),
                ..Default::default()
            }),
            0,
        ),
        (
            "change_log_ok",
            Response::ChangeLogOk(crr::ChangeLogOk {
                entries: vec![(41, change())],
                truncated: false,
                cursors: vec![("dr".into(), crr::RuleCursor::default())],
            }),
            0,
        ),
        ("crr_ok", Response::CrrOk(crr::CrrOk { count: 1 }), 0),
        (
            "change_summary_ok",
            Response::ChangeSummaryOk(crr::ChangeSummaryOk {
                groups: vec![crr::PgBacklog { pg: 7, entries: 3, bytes: 4096, oldest_ms: 1_795_000_000_000 }],
                truncated: false,
            }),
            0,
        ),
        (
            "crr_status_ok",
            Response::CrrStatusOk(crr::CrrStatusOk {
                node: "z1-n1".into(),
                rules: vec![crr::RuleProgress {
                    rule: "dr".into(),
                    pgs_shipped: vec![1, 2],
                    pending_objects: 3,
                    lag_counts: vec![0, 0, 0, 1, 4, 2],
                    lag_max_ms: 300,
                    ..Default::default()
                }],
            }),
            0,
        ),
        ("crr_have_ok", Response::CrrHaveOk(crr::CrrHaveOk { done: vec![true, false] }), 0),
        ("crr_apply_ok", Response::CrrApplyOk(crr::CrrApplyOk { applied: true }), 0),
        ("error", Response::Error(ErrorBody { code: ErrorCode::TargetFull, detail: "target t0 is full".into() }), 0),
        // Appended: request ids follow the position, so earlier vectors keep theirs.
        (
            "list_buckets_ok",
            Response::ListBucketsOk(ListBucketsOk { buckets: vec![bucket_info()], truncated: true }),
            0,
        ),
        ("bucket_access_ok", Response::BucketAccessOk(BucketAccessOk { owner: "alice".into(), access: access() }), 0),
        ("registry_ok", Response::RegistryOk(RegistryOk { version: 42 }), 900),
    ]
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 32 == 0 {
            s.push('\n');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s.push('\n');
    s
}

fn check_golden(name: &str, bytes: &[u8]) {
    let path = format!("{}/tests/golden/{name}.hex", env!("CARGO_MANIFEST_DIR"));
    let text = hex(bytes);
    if std::env::var_os("TESSERA_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).expect("write golden file");
        return;
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    assert_eq!(text, want, "{name}: encoding differs from {path}");
}

#[test]
fn every_request_matches_its_golden_vector_and_round_trips() {
    for (i, (name, msg, payload)) in requests().into_iter().enumerate() {
        let frame = encode_frame(i as u64 + 1, &msg, payload, 3).expect("encode");
        check_golden(name, &frame);
        let (header, opcode) = FrameHeader::decode(&frame).expect("header");
        assert_eq!(header.request_id.get(), i as u64 + 1);
        assert_eq!(header.payload_len.get(), payload);
        let body = &frame[FRAME_HEADER_LEN..];
        assert_eq!(header.body_len.get() as usize, body.len());
        assert_eq!(decode_request(opcode, body).expect("decode"), msg, "{name}");
    }
}

#[test]
fn every_response_matches_its_golden_vector_and_round_trips() {
    for (i, (name, msg, payload)) in responses().into_iter().enumerate() {
        let frame = encode_frame(i as u64 + 100, &msg, payload, 3).expect("encode");
        check_golden(name, &frame);
        let (_, opcode) = FrameHeader::decode(&frame).expect("header");
        assert_eq!(decode_response(opcode, &frame[FRAME_HEADER_LEN..]).expect("decode"), msg, "{name}");
    }
}
