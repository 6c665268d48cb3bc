//! Erasure coding per storage-class profile: the client's write path
//! (`encode_stripe`: pad, encode, slice into shards) beside
//! reed-solomon-simd called directly on the same data, and decoding with
//! a whole zone's shards missing. Throughput is data bytes per second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use reed_solomon_simd::ReedSolomonEncoder;
use std::hint::black_box;

const SHARD: usize = 256 << 10;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ec");
    for (name, k, m) in [("standard 6+6", 6usize, 6usize), ("infrequent_access 8+4", 8, 4)] {
        let stripe: Vec<u8> = (0..k * SHARD).map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8).collect();
        g.throughput(Throughput::Bytes((k * SHARD) as u64));
        g.bench_with_input(BenchmarkId::new("reed-solomon-simd alone", name), &stripe, |b, stripe| {
            let mut enc = ReedSolomonEncoder::new(k, m, SHARD).expect("encoder");
            b.iter(|| {
                enc.reset(k, m, SHARD).expect("reset");
                for s in stripe.chunks(SHARD) {
                    enc.add_original_shard(s).expect("add");
                }
                let out = enc.encode().expect("encode");
                black_box(out.recovery(0).map(<[u8]>::len));
            })
        });
        g.bench_with_input(BenchmarkId::new("client encode_stripe", name), &stripe, |b, stripe| {
            let pool = tessera_client::StripePool::default();
            let mut encoder = None;
            b.iter_batched(
                || {
                    let mut buf = pool.take(k * SHARD);
                    buf.extend_from_slice(stripe);
                    buf
                },
                |buf| black_box(tessera_client::encode_stripe(&mut encoder, &pool, buf, k, m).expect("encode")),
                criterion::BatchSize::SmallInput,
            )
        });
        let pool = tessera_client::StripePool::default();
        let (_, shards) = tessera_client::encode_stripe(&mut None, &pool, stripe.clone(), k, m).expect("encode");
        g.bench_function(BenchmarkId::new("decode, one zone lost", name), |b| {
            b.iter_batched(
                // Shards go round-robin over 3 zones: positions 0, 3, 6, ... are one zone.
                || shards.iter().enumerate().map(|(i, s)| (i % 3 != 0).then(|| s.to_vec())).collect::<Vec<_>>(),
                |mut have| black_box(tessera_client::reconstruct(&mut have, k, m, SHARD).expect("decode")),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
