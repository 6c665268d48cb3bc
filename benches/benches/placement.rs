//! Placement lookups: (bucket, key) to placement group to its targets,
//! done for every request, and building the placement from a map (done on
//! every map change), for a 3-zone region of 12 and of 96 targets.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use tessera_wire::{ClusterMap, Placement};

fn map(nodes_per_zone: usize, pgs: u32) -> ClusterMap {
    let mut t = format!(
        "epoch = 1\nregion = \"bench\"\nplacement_groups = {pgs}\nshard_bytes = 1048576\ninline_bytes_max = 65536\n\
         [classes.standard]\ndata = 6\nparity = 6\n[classes.infrequent_access]\ndata = 8\nparity = 4\n"
    );
    let mut id = 1;
    for z in 0..3 {
        t.push_str(&format!("[[zones]]\nname = \"z{z}\"\n"));
        for n in 0..nodes_per_zone {
            t.push_str(&format!(
                "[[zones.nodes]]\nname = \"z{z}-n{n}\"\nhost = \"10.0.{z}.{}\"\nports = [7000, 7001]\n",
                n + 1
            ));
            for core in 0..2 {
                t.push_str(&format!(
                    "[[zones.nodes.targets]]\nid = {id}\ncore = {core}\ncapacity_bytes = 4000000000000\n"
                ));
                id += 1;
            }
        }
    }
    ClusterMap::from_toml(&t).expect("valid map")
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("placement");
    for (nodes, pgs) in [(2usize, 256u32), (16, 4096)] {
        let m = map(nodes, pgs);
        let label = format!("{} targets, {pgs} groups", nodes * 3 * 2);
        let p = Placement::build(&m).expect("placement");
        let keys: Vec<String> = (0..1_024).map(|i| format!("photos/2026/11/{i:05}.jpg")).collect();
        g.throughput(Throughput::Elements(keys.len() as u64));
        g.bench_with_input(BenchmarkId::new("key to targets", &label), &keys, |b, keys| {
            b.iter(|| {
                for k in keys {
                    black_box(p.targets(p.pg_of("photos", k)));
                }
            })
        });
        g.throughput(Throughput::Elements(1));
        g.bench_with_input(BenchmarkId::new("build from map", &label), &m, |b, m| {
            b.iter(|| black_box(Placement::build(m).expect("placement")))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
