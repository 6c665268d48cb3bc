//! The end-of-run report: fio's human output, and fio's JSON layout
//! (jobs[].read / write / trim with bw in KiB/s, iops, clat_ns percentiles)
//! so tools that read fio's JSON read ours. docs/tessera-bench.md documents
//! the schema; docs/tessera-bench.schema.json is what tests check.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::job::{JobSpec, Workload};
use super::stats::{self, Dir, DirStats, Stats, DIRS};
use super::units::human_bytes;

/// fio samples bandwidth every 500 ms (`bw_avg_time`).
const BW_SAMPLE: Duration = Duration::from_millis(500);

/// One reported job: a clone, or all clones with `group_reporting`.
pub(crate) struct Entry {
    pub(crate) spec: Arc<JobSpec>,
    pub(crate) group: usize,
    pub(crate) clones: u32,
    pub(crate) stats: Stats,
}

/// fio's workload name for a job.
pub(crate) fn workload_name(spec: &JobSpec) -> &'static str {
    match (spec.workload, spec.random) {
        (Workload::Read, false) => "read",
        (Workload::Read, true) => "randread",
        (Workload::Write, false) => "write",
        (Workload::Write, true) => "randwrite",
        (Workload::Mixed, false) => "rw",
        (Workload::Mixed, true) => "randrw",
        (Workload::Delete, false) => "trim",
        (Workload::Delete, true) => "randtrim",
        (Workload::List, _) => "list",
    }
}

/// Bandwidth (KiB/s) and IOPS per 500 ms sample.
fn samples(s: &Stats, dir: Dir) -> (Vec<f64>, Vec<f64>) {
    let secs = BW_SAMPLE.as_secs_f64();
    let series = stats::series(&s.samples, dir, BW_SAMPLE, s.runtime);
    if s.runtime < BW_SAMPLE {
        return (Vec::new(), Vec::new());
    }
    (
        series.iter().map(|i| i.bytes as f64 / 1024.0 / secs).collect(),
        series.iter().map(|i| i.ops as f64 / secs).collect(),
    )
}

fn lat_json(l: &stats::Lat, with_percentiles: bool) -> Value {
    let mut m = Map::new();
    m.insert("min".into(), json!(l.min));
    m.insert("max".into(), json!(l.max));
    m.insert("mean".into(), json!(l.mean));
    m.insert("stddev".into(), json!(l.stdev));
    m.insert("N".into(), json!(l.n));
    if with_percentiles {
        let p: Map<String, Value> = l.percentiles.iter().map(|(p, v)| (format!("{p:.6}"), json!(v))).collect();
        m.insert("percentile".into(), Value::Object(p));
    }
    Value::Object(m)
}

/// One direction in fio's layout. `total_bw` is the run's bandwidth in
/// that direction (for `bw_agg`, the job's share of it in percent).
fn dir_json(s: &Stats, dir: Dir, percentiles: &[f64], total_bw: f64) -> Value {
    let d: &DirStats = &s.dirs[dir as usize];
    let (bw, iops) = stats::rates(d, s.runtime_of(dir));
    let l = stats::latency(d, percentiles);
    let (bws, iopss) = samples(s, dir);
    let (bmin, bmax, bmean, bdev, bn) = stats::spread(&bws);
    let (imin, imax, imean, idev, inn) = stats::spread(&iopss);
    json!({
        "io_bytes": d.bytes,
        "io_kbytes": d.bytes / 1024,
        "bw_bytes": bw.round() as u64,
        "bw": (bw / 1024.0).round() as u64,
        "iops": iops,
        "runtime": if d.ops > 0 { s.runtime_of(dir).as_millis() as u64 } else { 0 },
        "total_ios": d.ops,
        "short_ios": 0,
        "drop_ios": 0,
        "slat_ns": {"min": 0, "max": 0, "mean": 0.0, "stddev": 0.0, "N": 0},
        "clat_ns": lat_json(&l, true),
        "lat_ns": lat_json(&l, false),
        "bw_min": bmin.round() as u64,
        "bw_max": bmax.round() as u64,
        "bw_agg": if total_bw > 0.0 { bw / total_bw * 100.0 } else { 0.0 },
        "bw_mean": bmean,
        "bw_dev": bdev,
        "bw_samples": bn,
        "iops_min": imin.round() as u64,
        "iops_max": imax.round() as u64,
        "iops_mean": imean,
        "iops_stddev": idev,
        "iops_samples": inn,
    })
}

fn options(pairs: &[(String, String)]) -> Value {
    Value::Object(pairs.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
}

/// The whole run in fio's JSON layout, plus a "tessera" object per job
/// and at the top (LIST, errors by kind, verify counts, totals).
pub(crate) fn json(entries: &[Entry], total: &Stats, target: &str, cpu: (f64, f64), started_unix_ms: u64) -> Value {
    let percentiles = entries.first().map_or(super::job::DEFAULT_PERCENTILES.to_vec(), |e| e.spec.percentiles.clone());
    let total_bw: Vec<f64> =
        DIRS.iter().map(|&d| stats::rates(&total.dirs[d as usize], total.runtime_of(d)).0).collect();
    let jobs: Vec<Value> = entries
        .iter()
        .map(|e| {
            let s = &e.stats;
            let p = &e.spec.percentiles;
            json!({
                "jobname": e.spec.name,
                "groupid": e.group,
                "error": i32::from(s.first_error.is_some() && !e.spec.continue_on_error),
                "eta": 0,
                "elapsed": s.runtime.as_secs(),
                "job options": options(&e.spec.given),
                "read": dir_json(s, Dir::Read, p, total_bw[0]),
                "write": dir_json(s, Dir::Write, p, total_bw[1]),
                "trim": dir_json(s, Dir::Trim, p, total_bw[2]),
                "job_runtime": s.runtime.as_millis() as u64,
                "tessera": {
                    "workload": workload_name(&e.spec),
                    "clones": e.clones,
                    "list": dir_json(s, Dir::List, p, total_bw[3]),
                    "errors": s.errors,
                    "first_error": s.first_error,
                    "verified": s.verified,
                    "samples_dropped": s.samples_dropped,
                },
            })
        })
        .collect();
    let secs = started_unix_ms / 1000;
    json!({
        "fio version": concat!("tessera-bench-", env!("CARGO_PKG_VERSION")),
        "timestamp": secs,
        "timestamp_ms": started_unix_ms,
        "time": utc(secs),
        "global options": options(entries.first().map_or(&[][..], |e| &e.spec.given_globals)),
        "jobs": jobs,
        "tessera": {
            "version": env!("CARGO_PKG_VERSION"),
            "target": target,
            "usr_cpu_seconds": cpu.0,
            "sys_cpu_seconds": cpu.1,
            "errors": total.errors,
            "verified": total.verified,
            "total": {
                "read": dir_json(total, Dir::Read, &percentiles, total_bw[0]),
                "write": dir_json(total, Dir::Write, &percentiles, total_bw[1]),
                "trim": dir_json(total, Dir::Trim, &percentiles, total_bw[2]),
                "list": dir_json(total, Dir::List, &percentiles, total_bw[3]),
                "runtime": total.runtime.as_millis() as u64,
            },
        },
    })
}

/// Latencies in the unit fio would pick for them.
fn unit(max_ns: u64) -> (&'static str, f64) {
    if max_ns >= 10_000_000 {
        ("msec", 1e6)
    } else {
        ("usec", 1e3)
    }
}

fn dir_text(out: &mut String, s: &Stats, dir: Dir, percentiles: &[f64]) {
    let d = &s.dirs[dir as usize];
    if d.ops == 0 {
        return;
    }
    let (bw, iops) = stats::rates(d, s.runtime);
    let label = ["read", "write", "trim", "list"][dir as usize];
    let _ = writeln!(
        out,
        "  {label}: IOPS={iops:.1}, BW={}/s ({:.1}MB/s)({}/{}msec)",
        human_bytes(bw),
        bw / 1e6,
        human_bytes(d.bytes as f64),
        s.runtime.as_millis()
    );
    let l = stats::latency(d, percentiles);
    let (u, div) = unit(l.max);
    let _ = writeln!(
        out,
        "    clat ({u}): min={:.0}, max={:.0}, avg={:.2}, stdev={:.2}",
        l.min as f64 / div,
        l.max as f64 / div,
        l.mean / div,
        l.stdev / div
    );
    let _ = writeln!(out, "    clat percentiles ({u}):");
    for row in l.percentiles.chunks(4) {
        let cells: Vec<String> = row.iter().map(|(p, v)| format!("{:>6.2}th=[{:>7.0}]", p, *v as f64 / div)).collect();
        let _ = writeln!(out, "     | {}", cells.join(", "));
    }
    let (bws, iopss) = samples(s, dir);
    if !bws.is_empty() {
        let (a, b, m, sd, n) = stats::spread(&bws);
        let _ = writeln!(out, "   bw (  KiB/s): min={a:.0}, max={b:.0}, avg={m:.2}, stdev={sd:.2}, samples={n}");
        let (a, b, m, sd, n) = stats::spread(&iopss);
        let _ = writeln!(out, "   iops        : min={a:.0}, max={b:.0}, avg={m:.2}, stdev={sd:.2}, samples={n}");
    }
}

/// fio-style human output.
pub(crate) fn text(entries: &[Entry], total: &Stats) -> String {
    let mut out = String::new();
    for e in entries {
        let s = &e.stats;
        let _ = writeln!(
            out,
            "{}: (groupid={}, jobs={}): err={}: rw={}",
            e.spec.name,
            e.group,
            e.clones,
            s.error_count(),
            workload_name(&e.spec)
        );
        for dir in DIRS {
            dir_text(&mut out, s, dir, &e.spec.percentiles);
        }
        if !s.errors.is_empty() {
            let kinds: Vec<String> = s.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
            let _ = writeln!(out, "  errors: {}", kinds.join(", "));
            if let Some(first) = &s.first_error {
                let _ = writeln!(out, "  first error: {first}");
            }
        }
        if e.spec.verify {
            let _ = writeln!(out, "  verify: {} objects read back and checked", s.verified);
        }
        if s.samples_dropped > 0 {
            let _ = writeln!(
                out,
                "  note: {} operations beyond the time-series limit are in totals only",
                s.samples_dropped
            );
        }
    }
    let _ = writeln!(out, "\nRun status (all jobs):");
    for dir in DIRS {
        let d = &total.dirs[dir as usize];
        if d.ops == 0 {
            continue;
        }
        let (bw, iops) = stats::rates(d, total.runtime_of(dir));
        let l = stats::latency(d, &[50.0, 99.0]);
        let _ = writeln!(
            out,
            "  {:>5}: bw={}/s ({:.1}MB/s), iops={iops:.1}, io={} ({} ops), run={}msec, p50={:.2}ms, p99={:.2}ms",
            dir.name().to_uppercase(),
            human_bytes(bw),
            bw / 1e6,
            human_bytes(d.bytes as f64),
            d.ops,
            total.runtime_of(dir).as_millis(),
            l.percentiles[0].1 as f64 / 1e6,
            l.percentiles[1].1 as f64 / 1e6,
        );
    }
    let kinds: Vec<String> = total.errors.iter().map(|(k, n)| format!("{k}={n}")).collect();
    let _ = writeln!(out, "  errors: {}", if kinds.is_empty() { "none".to_string() } else { kinds.join(", ") });
    out
}

pub(crate) use crate::civil::utc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_795_708_224), "2026-11-26 15:50:24 UTC");
    }
}
