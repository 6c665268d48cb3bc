//! What a job measured: per direction an HDR histogram of latencies (the
//! percentiles), byte and operation counts, and every operation's
//! completion time so bandwidth/IOPS/p99 over time can be computed
//! exactly for any interval, per job or summed.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;

/// fio's directions, plus LIST (which fio has no name for).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dir {
    Read = 0,
    Write = 1,
    Trim = 2,
    List = 3,
}

pub(crate) const DIRS: [Dir; 4] = [Dir::Read, Dir::Write, Dir::Trim, Dir::List];

impl Dir {
    pub(crate) fn name(self) -> &'static str {
        ["read", "write", "trim", "list"][self as usize]
    }
}

/// Latencies from 1 ns to 1 hour at 3 significant digits (0.1%).
fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts.
    Histogram::new_with_bounds(1, 3_600_000_000_000, 3).expect("valid histogram bounds")
}

/// One completed operation, for time series.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    /// Completion, µs after the measured phase began.
    pub(crate) at_us: u64,
    pub(crate) lat_ns: u64,
    pub(crate) bytes: u32,
    pub(crate) dir: Dir,
}

/// Samples kept per job (a 10-minute run at 30k ops/s); beyond this the
/// time series stop growing and the summary notes it.
pub(crate) const SAMPLES_MAX: usize = 20_000_000;

/// One direction's totals.
#[derive(Clone, Debug)]
pub(crate) struct DirStats {
    pub(crate) hist: Histogram<u64>,
    pub(crate) bytes: u64,
    pub(crate) ops: u64,
}

impl Default for DirStats {
    fn default() -> Self {
        DirStats { hist: histogram(), bytes: 0, ops: 0 }
    }
}

/// A job's (or several jobs') measurements.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stats {
    pub(crate) dirs: [DirStats; 4],
    pub(crate) samples: Vec<Sample>,
    pub(crate) samples_dropped: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    /// The first error's text (why a job stopped).
    pub(crate) first_error: Option<String>,
    /// Length of the measured phase.
    pub(crate) runtime: Duration,
    /// For totals over jobs that ran at different times: each direction's
    /// own span (zero: `runtime`).
    pub(crate) spans: [Duration; 4],
    pub(crate) verified: u64,
}

impl Stats {
    pub(crate) fn record(&mut self, dir: Dir, at: Duration, lat: Duration, bytes: u64) {
        let lat_ns = lat.as_nanos().min(u128::from(u64::MAX)) as u64;
        let d = &mut self.dirs[dir as usize];
        d.hist.saturating_record(lat_ns.max(1));
        d.bytes += bytes;
        d.ops += 1;
        if self.samples.len() < SAMPLES_MAX {
            self.samples.push(Sample {
                at_us: at.as_micros() as u64,
                lat_ns,
                bytes: bytes.min(u64::from(u32::MAX)) as u32,
                dir,
            });
        } else {
            self.samples_dropped += 1;
        }
    }

    pub(crate) fn error(&mut self, kind: &str, detail: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{kind}: {detail}"));
        }
    }

    /// Add another job's measurements (totals, group_reporting).
    pub(crate) fn merge(&mut self, other: &Stats) {
        for (a, b) in self.dirs.iter_mut().zip(&other.dirs) {
            // Same bounds on both sides: adding cannot fail.
            let _ = a.hist.add(&b.hist);
            a.bytes += b.bytes;
            a.ops += b.ops;
        }
        self.samples.extend_from_slice(&other.samples);
        self.samples_dropped += other.samples_dropped;
        for (k, n) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += n;
        }
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
        self.runtime = self.runtime.max(other.runtime);
        self.verified += other.verified;
    }

    /// The time a direction's rates are computed over.
    pub(crate) fn runtime_of(&self, dir: Dir) -> Duration {
        match self.spans[dir as usize] {
            d if d.is_zero() => self.runtime,
            d => d,
        }
    }

    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// Latency summary in ns.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Lat {
    pub(crate) n: u64,
    pub(crate) min: u64,
    pub(crate) max: u64,
    pub(crate) mean: f64,
    pub(crate) stdev: f64,
    pub(crate) percentiles: Vec<(f64, u64)>,
}

pub(crate) fn latency(d: &DirStats, percentiles: &[f64]) -> Lat {
    let h = &d.hist;
    if h.is_empty() {
        return Lat {
            n: 0,
            min: 0,
            max: 0,
            mean: 0.0,
            stdev: 0.0,
            percentiles: percentiles.iter().map(|&p| (p, 0)).collect(),
        };
    }
    Lat {
        n: h.len(),
        min: h.min(),
        max: h.max(),
        mean: h.mean(),
        stdev: h.stdev(),
        percentiles: percentiles.iter().map(|&p| (p, h.value_at_quantile(p / 100.0))).collect(),
    }
}

/// Bandwidth in bytes/s and IOPS over a runtime.
pub(crate) fn rates(d: &DirStats, runtime: Duration) -> (f64, f64) {
    let s = runtime.as_secs_f64();
    if s <= 0.0 {
        return (0.0, 0.0);
    }
    (d.bytes as f64 / s, d.ops as f64 / s)
}

/// One interval of a time series.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Interval {
    /// End of the interval, ms after the measured phase began.
    pub(crate) end_ms: u64,
    pub(crate) ops: u64,
    pub(crate) bytes: u64,
    pub(crate) mean_lat_ns: u64,
    pub(crate) p99_lat_ns: u64,
}

/// Per-interval figures of one direction over `runtime`. The last,
/// partial interval is dropped unless it is the only one.
pub(crate) fn series(samples: &[Sample], dir: Dir, every: Duration, runtime: Duration) -> Vec<Interval> {
    let step = every.as_micros().max(1) as u64;
    let total = runtime.as_micros() as u64;
    let full = (total / step) as usize;
    let n = if full == 0 { 1 } else { full };
    let mut lats: Vec<Vec<u64>> = vec![Vec::new(); n];
    let mut bytes = vec![0u64; n];
    for s in samples.iter().filter(|s| s.dir == dir) {
        let i = (s.at_us / step) as usize;
        if i < n {
            lats[i].push(s.lat_ns);
            bytes[i] += u64::from(s.bytes);
        }
    }
    lats.into_iter()
        .zip(bytes)
        .enumerate()
        .map(|(i, (mut l, b))| {
            l.sort_unstable();
            let ops = l.len() as u64;
            let mean = if l.is_empty() { 0 } else { l.iter().sum::<u64>() / ops };
            // Nearest rank, as hdrhistogram computes percentiles.
            let p99 = if l.is_empty() { 0 } else { l[((l.len() as f64 * 0.99).ceil() as usize).clamp(1, l.len()) - 1] };
            Interval { end_ms: (i as u64 + 1) * step / 1_000, ops, bytes: b, mean_lat_ns: mean, p99_lat_ns: p99 }
        })
        .collect()
}

/// min, max, mean, sample standard deviation, count.
pub(crate) fn spread(values: &[f64]) -> (f64, f64, f64, f64, usize) {
    if values.is_empty() {
        return (0.0, 0.0, 0.0, 0.0, 0);
    }
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = if values.len() > 1 { values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (min, max, mean, var.sqrt(), values.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(1.0)
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        // 1..=100_000 µs, each once: the p-th percentile is p * 1000 µs.
        let mut s = Stats::default();
        for us in 1..=100_000u64 {
            s.record(Dir::Read, Duration::ZERO, Duration::from_micros(us), 0);
        }
        let l = latency(&s.dirs[0], &[50.0, 90.0, 99.0, 99.9, 99.99]);
        for (p, v) in &l.percentiles {
            let want = p * 1_000.0 * 1_000.0;
            assert!(close(*v as f64, want, 0.001), "p{p}: {v} ns, want {want}");
        }
        assert_eq!(l.n, 100_000);
        assert!(close(l.min as f64, 1_000.0, 0.001) && close(l.max as f64, 1e8, 0.001));
        assert!(close(l.mean, 50_000.5e3, 0.001), "{}", l.mean);
        // Uniform on [a, b]: sd = (b - a) / sqrt(12).
        assert!(close(l.stdev, 1e8 / 12f64.sqrt(), 0.01), "{}", l.stdev);
    }

    #[test]
    fn percentiles_of_a_bimodal_distribution() {
        // 99% at 1 ms, 1% at 100 ms: p99 is still 1 ms, p99.9 is 100 ms.
        let mut s = Stats::default();
        for i in 0..10_000u64 {
            let lat = if i % 100 == 0 { 100_000 } else { 1_000 };
            s.record(Dir::Write, Duration::ZERO, Duration::from_micros(lat), 4096);
        }
        let l = latency(&s.dirs[1], &[50.0, 99.0, 99.9]);
        assert!(close(l.percentiles[0].1 as f64, 1e6, 0.001));
        assert!(close(l.percentiles[1].1 as f64, 1e6, 0.001));
        assert!(close(l.percentiles[2].1 as f64, 1e8, 0.001));
        assert!(close(l.mean, 0.99 * 1e6 + 0.01 * 1e8, 0.001));
    }

    #[test]
    fn bandwidth_and_iops_over_the_runtime() {
        let mut s = Stats::default();
        // 1,000 writes of 1 MiB over 10 s: 100 MiB/s, 100 IOPS.
        for i in 0..1_000u64 {
            s.record(Dir::Write, Duration::from_millis(i * 10 + 5), Duration::from_millis(2), 1 << 20);
        }
        let (bw, iops) = rates(&s.dirs[1], Duration::from_secs(10));
        assert!(close(bw, 100.0 * 1048576.0, 1e-9) && close(iops, 100.0, 1e-9));
        let sr = series(&s.samples, Dir::Write, Duration::from_millis(500), Duration::from_secs(10));
        assert_eq!(sr.len(), 20);
        assert!(sr.iter().all(|i| i.ops == 50 && i.bytes == 50 << 20 && i.mean_lat_ns == 2_000_000));
        assert_eq!(sr[19].end_ms, 10_000);
        let (min, max, mean, sd, n) = spread(&sr.iter().map(|i| i.bytes as f64).collect::<Vec<_>>());
        assert_eq!((min, max, mean, sd, n), (50.0 * 1048576.0, 50.0 * 1048576.0, 50.0 * 1048576.0, 0.0, 20));
        assert_eq!(rates(&s.dirs[0], Duration::from_secs(10)), (0.0, 0.0));
    }

    #[test]
    fn series_p99_and_spread_math() {
        let mut s = Stats::default();
        // Interval 0: latencies 1..=100 ms; interval 1: nothing.
        for ms in 1..=100u64 {
            s.record(Dir::Read, Duration::from_millis(ms * 9), Duration::from_millis(ms), 10);
        }
        let sr = series(&s.samples, Dir::Read, Duration::from_secs(1), Duration::from_secs(2));
        assert_eq!(sr[0].p99_lat_ns, 99_000_000);
        assert_eq!(sr[0].ops, 100);
        assert_eq!(sr[1], Interval { end_ms: 2_000, ops: 0, bytes: 0, mean_lat_ns: 0, p99_lat_ns: 0 });
        let (min, max, mean, sd, n) = spread(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0]);
        assert_eq!((min, max, mean, n), (2.0, 9.0, 5.0, 8));
        assert!(close(sd, (32.0f64 / 7.0).sqrt(), 1e-12));
    }

    #[test]
    fn merging_adds_everything() {
        let mut a = Stats::default();
        let mut b = Stats::default();
        a.record(Dir::Read, Duration::ZERO, Duration::from_millis(1), 100);
        b.record(Dir::Read, Duration::ZERO, Duration::from_millis(3), 300);
        b.error("timeout", "x");
        b.runtime = Duration::from_secs(2);
        a.merge(&b);
        assert_eq!((a.dirs[0].ops, a.dirs[0].bytes, a.samples.len()), (2, 400, 2));
        assert_eq!(a.errors.get("timeout"), Some(&1));
        assert_eq!(a.first_error.as_deref(), Some("timeout: x"));
        assert_eq!(a.runtime, Duration::from_secs(2));
        assert!(close(latency(&a.dirs[0], &[]).mean, 2e6, 0.001));
    }
}
