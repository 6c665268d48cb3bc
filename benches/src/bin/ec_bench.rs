//! Erasure coding inside the client's write path (`encode_stripe`: pad the
//! stripe, encode, slice into shards) beside reed-solomon-simd alone on the
//! same profile and shard size, in the same run, one core each, and the
//! decode path (`reconstruct`) with one zone's shards missing.
//!
//! `cargo run --release -p tessera-benches --bin ec_bench`

use std::time::{Duration, Instant};

use clap::Parser;
use reed_solomon_simd::ReedSolomonEncoder;

#[derive(Parser)]
struct Args {
    /// Shard bytes.
    #[arg(long, default_value_t = 1_048_576)]
    shard_bytes: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3)]
    secs: u64,
}

/// Run `f` repeatedly for `secs`; data bytes per second in GiB/s.
fn rate(secs: u64, bytes_per_call: usize, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(secs) {
        f();
        n += 1;
    }
    (n as f64 * bytes_per_call as f64) / start.elapsed().as_secs_f64() / (1u64 << 30) as f64
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let l = args.shard_bytes;
    for (k, m) in [(6usize, 6usize), (8, 4)] {
        let stripe: Vec<u8> = (0..k * l).map(|i| (i as u32).wrapping_mul(2_654_435_761) as u8).collect();
        // Alternate the two measurements so drift on a shared machine
        // affects both alike.
        let mut alone = Vec::new();
        let mut path = Vec::new();
        let mut enc = ReedSolomonEncoder::new(k, m, l)?;
        let mut encoder = None;
        let pool = tessera_client::StripePool::default();
        for _ in 0..3 {
            alone.push(rate(args.secs, k * l, || {
                enc.reset(k, m, l).expect("reset");
                for c in stripe.chunks(l) {
                    enc.add_original_shard(c).expect("add");
                }
                let out = enc.encode().expect("encode");
                std::hint::black_box(out.recovery(0));
            }));
            // The write path gets each stripe in a pooled buffer (as read
            // from the source; that copy is not timed), encodes it and hands
            // out the shards.
            let start = Instant::now();
            let mut spent = Duration::ZERO;
            let mut n = 0u64;
            while start.elapsed() < Duration::from_secs(args.secs) {
                let mut buf = pool.take(k * l);
                buf.extend_from_slice(&stripe);
                let t = Instant::now();
                let (_, shards) = tessera_client::encode_stripe(&mut encoder, &pool, buf, k, m)?;
                std::hint::black_box(&shards);
                drop(shards);
                spent += t.elapsed();
                n += 1;
            }
            path.push(n as f64 * (k * l) as f64 / spent.as_secs_f64() / (1u64 << 30) as f64);
        }
        let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
        let (a, p) = (best(&alone), best(&path));
        println!(
            "encode {k}+{m}, {} KiB shards: reed-solomon-simd alone {a:.2} GiB/s, write path {p:.2} GiB/s, ratio {:.2}",
            l / 1_024,
            p / a
        );
        // Decode with the first zone's shards missing (round-robin zones:
        // positions 0, 3, 6, 9 for 12 shards over 3 zones).
        let (_, shards) = tessera_client::encode_stripe(&mut encoder, &pool, stripe.clone(), k, m)?;
        let dec = rate(args.secs, k * l, || {
            let mut have: Vec<Option<Vec<u8>>> =
                shards.iter().enumerate().map(|(i, s)| (i % 3 != 0).then(|| s.to_vec())).collect();
            let data = tessera_client::reconstruct(&mut have, k, m, l).expect("decode");
            assert_eq!(data.len(), k * l);
            std::hint::black_box(data);
        });
        println!("decode {k}+{m} with a zone's shards missing: {dec:.2} GiB/s of data");
    }
    Ok(())
}
