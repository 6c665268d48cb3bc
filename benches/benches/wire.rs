//! Frame encode and decode of the two hottest messages: a PutShard
//! request carrying full object metadata (every write's shards) and a
//! 1,000-entry ListOk (a listing page).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use tessera_wire::{
    decode_request, decode_response, encode_frame, FrameHeader, ListEntry, ListOk, ObjectMeta, PutShard, Request,
    Response, ShardIndex, StorageClass, StripeIndex, TargetId, VersionId, FRAME_HEADER_LEN,
};

fn meta() -> ObjectMeta {
    ObjectMeta {
        key: "photos/2026/11/26/IMG_0001.jpg".into(),
        version: VersionId(0x0000_01a2_188d_0368_0000_52cb_117e_ae80),
        size_bytes: 4_718_592,
        stripe_bytes: 6 << 20,
        shard_bytes: 1 << 20,
        ec: tessera_wire::EcProfile { data: 6, parity: 6 },
        stripe_count: 1,
        content_crc32c: 0xdae0_e679,
        created_ms: 1_795_708_224_360,
        content_type: Some("image/jpeg".into()),
        owner: "default".into(),
        user_meta: vec![("camera".into(), "x100".into())],
        storage_class: StorageClass::Standard,
        delete_marker: false,
        acl: tessera_wire::Acl::Private,
        origin: None,
    }
}

fn bench(c: &mut Criterion) {
    let m = meta();
    let put = Request::PutShard(PutShard {
        target: TargetId(7),
        bucket: "photos".into(),
        key: m.key.clone(),
        version: m.version,
        stripe: StripeIndex(0),
        shard: ShardIndex(3),
        shard_crc32c: 0x1234_5678,
        meta: Some(m.clone()),
        repair: false,
    });
    let frame = encode_frame(1, &put, 1 << 20, 9).expect("encode");
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode PutShard", |b| b.iter(|| black_box(encode_frame(1, black_box(&put), 1 << 20, 9))));
    g.bench_function("decode PutShard", |b| {
        b.iter(|| {
            let (h, op) = FrameHeader::decode(black_box(&frame)).expect("header");
            let body = &frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.body_len.get() as usize];
            black_box(decode_request(op, body).expect("body"))
        })
    });
    let page = Response::ListOk(ListOk {
        entries: (0..1_000)
            .map(|i| ListEntry {
                key: format!("logs/part-{i:06}"),
                version: VersionId(0x0000_01a2_188d_0368_0000_52cb_117e_0000 + i),
                size_bytes: 64 << 20,
                created_ms: 1_795_708_224_360,
                content_crc32c: 0x1234_5678,
                delete_marker: false,
                storage_class: StorageClass::Standard,
            })
            .collect(),
        common_prefixes: vec![],
        truncated: true,
    });
    let frame = encode_frame(2, &page, 0, 9).expect("encode");
    g.bench_function("encode ListOk 1000", |b| b.iter(|| black_box(encode_frame(2, black_box(&page), 0, 9))));
    g.bench_function("decode ListOk 1000", |b| {
        b.iter(|| {
            let (h, op) = FrameHeader::decode(black_box(&frame)).expect("header");
            let body = &frame[FRAME_HEADER_LEN..FRAME_HEADER_LEN + h.body_len.get() as usize];
            black_box(decode_response(op, body).expect("body"))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
