//! Each rejection reason of the decoder, and a seeded random sweep that
//! feeds mutated frames to it: it must return an error or a value, never panic.

use tessera_wire::limits::*;
use tessera_wire::*;

fn head_frame() -> Vec<u8> {
    let req = Request::Head(Head {
        target: TargetId(0),
        bucket: "bkt".into(),
        key: "k".into(),
        version: None,
        exclude: vec![],
    });
    encode_frame(1, &req, 0, 1).expect("encode")
}

fn reseal(frame: &mut [u8]) {
    let crc = crc32c::crc32c(&frame[..FRAME_HEADER_LEN - 4]);
    frame[FRAME_HEADER_LEN - 4..FRAME_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn header_rejections_name_their_reason() {
    let good = head_frame();
    assert!(matches!(FrameHeader::decode(&good[..10]), Err(HeaderError::Truncated { got_bytes: 10 })));

    let mut f = good.clone();
    f[0] = b'X';
    assert!(matches!(FrameHeader::decode(&f), Err(HeaderError::BadMagic { .. })));

    let mut f = good.clone();
    f[4] = 9;
    assert_eq!(FrameHeader::decode(&f), Err(HeaderError::UnsupportedVersion { found: 9 }));

    let mut f = good.clone();
    f[8] ^= 1;
    assert!(matches!(FrameHeader::decode(&f), Err(HeaderError::BadChecksum { .. })));

    let mut f = good.clone();
    f[5] = 0x42;
    reseal(&mut f);
    assert_eq!(FrameHeader::decode(&f), Err(HeaderError::UnknownOpcode { opcode: 0x42 }));

    let mut f = good.clone();
    f[6] = 1;
    reseal(&mut f);
    assert_eq!(FrameHeader::decode(&f), Err(HeaderError::UnknownFlags { flags: 1 }));

    let mut f = good.clone();
    f[16..20].copy_from_slice(&(BODY_BYTES_MAX + 1).to_le_bytes());
    reseal(&mut f);
    assert!(matches!(FrameHeader::decode(&f), Err(HeaderError::BodyTooLong { .. })));

    let mut f = good.clone();
    f[20..28].copy_from_slice(&(SHARD_BYTES_MAX + 1).to_le_bytes());
    reseal(&mut f);
    assert!(matches!(FrameHeader::decode(&f), Err(HeaderError::PayloadTooLong { .. })));

    let mut f = good.clone();
    f[20..28].copy_from_slice(&5u64.to_le_bytes());
    reseal(&mut f);
    assert!(matches!(FrameHeader::decode(&f), Err(HeaderError::UnexpectedPayload { opcode: Opcode::Head, .. })));
}

#[test]
fn body_rejections_name_their_reason() {
    let good = head_frame();
    let body = &good[FRAME_HEADER_LEN..];
    assert!(matches!(decode_request(Opcode::Head, &body[..body.len() - 1]), Err(DecodeError::Malformed { .. })));
    let mut long = body.to_vec();
    long.push(0);
    assert!(matches!(decode_request(Opcode::Head, &long), Err(DecodeError::TrailingBytes { extra_bytes: 1, .. })));
    assert!(matches!(decode_response(Opcode::Head, body), Err(DecodeError::WrongDirection { .. })));

    let bad_bucket = Request::Head(Head {
        target: TargetId(0),
        bucket: "NO".into(),
        key: "k".into(),
        version: None,
        exclude: vec![],
    });
    let f = encode_frame(1, &bad_bucket, 0, 1).expect("encode");
    assert!(matches!(
        decode_request(Opcode::Head, &f[FRAME_HEADER_LEN..]),
        Err(DecodeError::Invalid { source: ValidationError::BucketNameLength { .. }, .. })
    ));

    let list = Request::List(List {
        target: TargetId(0),
        bucket: "bkt".into(),
        prefix: String::new(),
        delimiter: None,
        start_after: None,
        limit: LIST_LIMIT_MAX + 1,
    });
    let f = encode_frame(1, &list, 0, 1).expect("encode");
    assert!(matches!(
        decode_request(Opcode::List, &f[FRAME_HEADER_LEN..]),
        Err(DecodeError::OutOfRange { field: "limit", .. })
    ));

    let list = Request::List(List {
        target: TargetId(0),
        bucket: "bkt".into(),
        prefix: "p".repeat(LIST_ARG_BYTES_MAX + 1),
        delimiter: None,
        start_after: None,
        limit: 10,
    });
    let f = encode_frame(1, &list, 0, 1).expect("encode");
    assert!(matches!(
        decode_request(Opcode::List, &f[FRAME_HEADER_LEN..]),
        Err(DecodeError::FieldTooLong { field: "prefix", .. })
    ));

    for limit in [0, BUCKET_LIST_MAX + 1] {
        let lb = Request::ListBuckets(ListBuckets { target: TargetId(0), after: None, limit });
        let f = encode_frame(1, &lb, 0, 1).expect("encode");
        assert!(matches!(
            decode_request(Opcode::ListBuckets, &f[FRAME_HEADER_LEN..]),
            Err(DecodeError::OutOfRange { field: "limit", .. })
        ));
    }
    let lb = Request::ListBuckets(ListBuckets { target: TargetId(0), after: Some("b".repeat(64)), limit: 5 });
    let f = encode_frame(1, &lb, 0, 1).expect("encode");
    assert!(matches!(
        decode_request(Opcode::ListBuckets, &f[FRAME_HEADER_LEN..]),
        Err(DecodeError::FieldTooLong { field: "after", .. })
    ));
    let info = |name: &str| BucketInfo {
        name: name.into(),
        versioned: false,
        owner: "o".into(),
        created_ms: 1,
        storage_class: StorageClass::Standard,
    };
    let too_many = Response::ListBucketsOk(ListBucketsOk {
        buckets: (0..=BUCKET_LIST_MAX).map(|i| info(&format!("b{i:04}"))).collect(),
        truncated: false,
    });
    let f = encode_frame(1, &too_many, 0, 1).expect("encode");
    assert!(matches!(
        decode_response(Opcode::ListBucketsOk, &f[FRAME_HEADER_LEN..]),
        Err(DecodeError::TooManyEntries { field: "buckets", .. })
    ));
    let bad_name = Response::ListBucketsOk(ListBucketsOk { buckets: vec![info(&"b".repeat(64))], truncated: false });
    let f = encode_frame(1, &bad_name, 0, 1).expect("encode");
    assert!(matches!(
        decode_response(Opcode::ListBucketsOk, &f[FRAME_HEADER_LEN..]),
        Err(DecodeError::FieldTooLong { field: "bucket name", .. })
    ));
    // A new bucket's name is held to S3's rules by the node as well.
    let create = Request::CreateBucket(CreateBucket { target: TargetId(0), info: info("a..b") });
    let f = encode_frame(1, &create, 0, 1).expect("encode");
    assert!(matches!(
        decode_request(Opcode::CreateBucket, &f[FRAME_HEADER_LEN..]),
        Err(DecodeError::Invalid { source: ValidationError::BucketNameForm { .. }, .. })
    ));
}

#[test]
fn an_oversized_body_is_refused_at_encode_time() {
    let meta = ObjectMeta {
        key: "k".into(),
        version: VersionId(1),
        size_bytes: 0,
        stripe_bytes: 0,
        shard_bytes: 0,
        ec: EcProfile { data: 6, parity: 6 },
        stripe_count: 0,
        content_crc32c: 0,
        created_ms: 0,
        content_type: None,
        owner: "o".repeat(BODY_BYTES_MAX as usize),
        user_meta: vec![],
        storage_class: StorageClass::Standard,
        delete_marker: false,
        acl: Acl::Private,
        origin: None,
    };
    assert!(matches!(
        encode_frame(1, &Response::HeadOk(HeadOk { meta: Some(meta), committed: true, purged: vec![] }), 0, 1),
        Err(EncodeError::BodyTooLong { .. })
    ));
}

/// splitmix64: a tiny deterministic generator so every run tests the same inputs.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn mutated_bodies_never_panic() {
    let opcodes: Vec<Opcode> = (0..=255u8).filter_map(Opcode::from_u8).collect();
    let mut seed = 42u64;
    let base = head_frame();
    for _ in 0..20_000 {
        let mut body = base[FRAME_HEADER_LEN..].to_vec();
        let flips = next(&mut seed) % 6;
        for _ in 0..flips {
            let i = (next(&mut seed) as usize) % body.len();
            body[i] = next(&mut seed) as u8;
        }
        let extra = (next(&mut seed) % 8) as usize;
        for _ in 0..extra {
            body.push(next(&mut seed) as u8);
        }
        let opcode = opcodes[(next(&mut seed) as usize) % opcodes.len()];
        let _ = decode_body(opcode, &body);
    }
}

/// A bucket policy that arrives encoded (not through the JSON parser) is
/// held to the same rules: resources in its own bucket, in normal form,
/// within the limits.
#[test]
fn a_policy_outside_the_rules_is_refused_on_decode() {
    use tessera_wire::access::{Action, BucketAccess, Effect, Policy, Statement, Who};
    let statement = |resource: &str, who: Who| Statement {
        sid: None,
        effect: Effect::Allow,
        who,
        actions: vec![Action::Get],
        resources: vec![resource.into()],
    };
    let cases = [
        (vec![statement("other/*", Who::Anyone)], "not in bucket"),
        (vec![statement("arn:aws:s3:::bkt/*", Who::Anyone)], "normal form"),
        (vec![statement("bkt/*", Who::Named(vec!["alice".into()]))], "normal form"),
        (vec![statement("bkt/a*b", Who::Anyone)], "may only end"),
        (vec![], "1 to 16 statements"),
        ((0..17).map(|_| statement("bkt/*", Who::Anyone)).collect(), "1 to 16 statements"),
    ];
    for (statements, why) in cases {
        let access = BucketAccess { policy: Some(Policy { statements }), ..Default::default() };
        let req = Request::SetBucketAccess(SetBucketAccess { target: TargetId(0), bucket: "bkt".into(), access });
        let f = encode_frame(1, &req, 0, 1).expect("encode");
        match decode_request(Opcode::SetBucketAccess, &f[FRAME_HEADER_LEN..]) {
            Err(e @ DecodeError::BadPolicy { .. }) => assert!(e.to_string().contains(why), "{e}"),
            other => panic!("want a refusal saying {why:?}, got {other:?}"),
        }
    }
}
