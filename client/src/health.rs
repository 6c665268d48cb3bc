//! Per-address latency tracking and gray-failure ejection.
//!
//! Every request's time to its reply header is folded into a smoothed
//! latency and deviation per node address (the estimator TCP uses for its
//! retransmission timer). Reads hedge after the slowest involved address's
//! `srtt + 4 × rttvar`, clamped to [`hedge_ms`, `hedge_max_ms`], instead of
//! a fixed delay: a fast region hedges early, a loaded one does not double
//! its own load.
//!
//! A node that is alive but slow (a failing disk, a lossy link, a stalled
//! process) does not trip a dead-peer detector. It is ejected like a dead
//! one when its smoothed latency exceeds both `gray_factor` × the median of
//! all tracked addresses and `gray_floor_ms`, after `GRAY_MIN_SAMPLES`
//! samples. Ejection lasts `down_ms`; then requests flow again and act as
//! probes, starting from a clean slate, so a recovered node comes back and
//! a still-slow one is ejected again within a few requests.
//!
//! Ejection is for the odd bad node, not for a loaded region: at most a
//! quarter of the tracked addresses (at least one) are ejected at a time.
//! During a rolling restart several nodes are slow at once, and ejecting
//! them all left shard reads without enough nodes to ask.
//!
//! [`hedge_ms`]: crate::ClientConfig::hedge_ms
//! [`hedge_max_ms`]: crate::ClientConfig::hedge_max_ms

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Samples an address needs before it can be judged slow.
const GRAY_MIN_SAMPLES: u32 = 8;

#[derive(Clone, Copy, Debug)]
struct Stat {
    srtt_us: f64,
    rttvar_us: f64,
    samples: u32,
    ejected_until: Option<Instant>,
    /// The median when it was ejected, for the error a caller sees.
    ejected_median_us: f64,
}

impl Stat {
    fn fresh(srtt_us: f64) -> Stat {
        Stat { srtt_us, rttvar_us: srtt_us / 2.0, samples: 0, ejected_until: None, ejected_median_us: 0.0 }
    }
}

/// Latency estimates and ejections, shared by every request of a client.
pub(crate) struct Health {
    stats: Mutex<HashMap<SocketAddr, Stat>>,
    gray_factor: f64,
    gray_floor_us: f64,
    eject_for: Duration,
    hedge_min: Duration,
    hedge_max: Duration,
}

/// Why an address is ejected, for the error a caller sees.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Ejected {
    pub(crate) srtt_ms: f64,
    pub(crate) median_ms: f64,
}

impl Health {
    pub(crate) fn new(
        gray_factor: f64,
        gray_floor: Duration,
        eject_for: Duration,
        hedge_min: Duration,
        hedge_max: Duration,
    ) -> Health {
        Health {
            stats: Mutex::new(HashMap::new()),
            gray_factor,
            gray_floor_us: gray_floor.as_micros() as f64,
            eject_for,
            hedge_min,
            hedge_max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Stat>> {
        match self.stats.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Fold in one request's latency. Returns the ejection if this sample
    /// made the address gray.
    pub(crate) fn record(&self, addr: SocketAddr, elapsed: Duration) -> Option<Ejected> {
        let us = elapsed.as_micros() as f64;
        let mut stats = self.lock();
        let s = stats.entry(addr).or_insert(Stat::fresh(us));
        if s.samples > 0 {
            s.rttvar_us = 0.75 * s.rttvar_us + 0.25 * (s.srtt_us - us).abs();
            s.srtt_us = 0.875 * s.srtt_us + 0.125 * us;
        }
        s.samples = s.samples.saturating_add(1);
        let (srtt, samples, ejected) = (s.srtt_us, s.samples, s.ejected_until.is_some());
        if samples < GRAY_MIN_SAMPLES || ejected {
            return None;
        }
        let median = median_srtt(&stats)?;
        if srtt > self.gray_floor_us && srtt > self.gray_factor * median {
            let now = Instant::now();
            let out = stats.values().filter(|s| s.ejected_until.is_some_and(|t| t > now)).count();
            if out >= (stats.len() / 4).max(1) {
                return None;
            }
            if let Some(s) = stats.get_mut(&addr) {
                s.ejected_until = Some(now + self.eject_for);
                s.ejected_median_us = median;
            }
            return Some(Ejected { srtt_ms: srtt / 1e3, median_ms: median / 1e3 });
        }
        None
    }

    /// Is this address ejected as gray? An expired ejection ends here and
    /// the address starts over (its next requests are the probes).
    pub(crate) fn ejected(&self, addr: SocketAddr) -> Option<Ejected> {
        let mut stats = self.lock();
        let median = median_srtt(&stats);
        let s = stats.get_mut(&addr)?;
        match s.ejected_until {
            Some(t) if t > Instant::now() => {
                Some(Ejected { srtt_ms: s.srtt_us / 1e3, median_ms: s.ejected_median_us / 1e3 })
            }
            Some(_) => {
                *s = Stat::fresh(median.unwrap_or(s.ejected_median_us));
                None
            }
            None => None,
        }
    }

    /// How long a read waits for `addrs` before hedging.
    pub(crate) fn hedge_delay(&self, addrs: &[SocketAddr]) -> Duration {
        let stats = self.lock();
        let worst = addrs
            .iter()
            .filter_map(|a| stats.get(a))
            .filter(|s| s.samples >= 2)
            .map(|s| s.srtt_us + 4.0 * s.rttvar_us)
            .fold(0.0f64, f64::max);
        Duration::from_micros(worst as u64).clamp(self.hedge_min, self.hedge_max)
    }
}

/// Median smoothed latency of addresses with enough samples, not ejected.
fn median_srtt(stats: &HashMap<SocketAddr, Stat>) -> Option<f64> {
    let mut v: Vec<f64> = stats
        .values()
        .filter(|s| s.samples >= GRAY_MIN_SAMPLES && s.ejected_until.is_none())
        .map(|s| s.srtt_us)
        .collect();
    if v.len() < 3 {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u8) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, i], 7000))
    }

    fn health() -> Health {
        Health::new(
            8.0,
            Duration::from_millis(100),
            Duration::from_millis(50),
            Duration::from_millis(20),
            Duration::from_secs(1),
        )
    }

    #[test]
    fn a_slow_node_among_fast_ones_is_ejected_then_probed_back() {
        let h = health();
        for _ in 0..20 {
            for i in 1..=4 {
                assert_eq!(h.record(addr(i), Duration::from_millis(2)), None);
            }
        }
        let mut ejected = None;
        for _ in 0..GRAY_MIN_SAMPLES {
            ejected = ejected.or(h.record(addr(9), Duration::from_millis(400)));
        }
        let e = ejected.expect("a node 200x slower than the median is ejected");
        assert!(e.srtt_ms > 100.0 && e.median_ms < 5.0, "{e:?}");
        assert!(h.ejected(addr(9)).is_some());
        assert!(h.ejected(addr(1)).is_none());
        std::thread::sleep(Duration::from_millis(60));
        // Ejection over: the node is probed with a clean slate.
        assert!(h.ejected(addr(9)).is_none());
        for _ in 0..GRAY_MIN_SAMPLES {
            assert_eq!(h.record(addr(9), Duration::from_millis(2)), None, "a recovered node stays in");
        }
    }

    #[test]
    fn at_most_a_quarter_of_the_nodes_are_ejected_at_once() {
        let h = health();
        for _ in 0..20 {
            for i in 1..=8 {
                h.record(addr(i), Duration::from_millis(2));
            }
        }
        // Four of twelve turn slow together (a rolling restart, a loaded
        // zone): the first three are ejected, the fourth is not.
        let mut ejected = Vec::new();
        for _ in 0..GRAY_MIN_SAMPLES {
            for i in 9..=12 {
                if let Some(e) = h.record(addr(i), Duration::from_millis(400)) {
                    assert!(e.median_ms < 5.0, "{e:?}");
                    ejected.push(i);
                }
            }
        }
        assert_eq!(ejected.len(), 3, "{ejected:?}");
        let kept = (9..=12).filter(|i| h.ejected(addr(*i)).is_none()).count();
        assert_eq!(kept, 1);
        // The error names the median the decision was made against.
        let e = h.ejected(addr(ejected[0])).expect("still ejected");
        assert!(e.median_ms > 1.0 && e.median_ms < 5.0, "{e:?}");
    }

    #[test]
    fn uniform_slowness_ejects_nobody() {
        let h = health();
        for round in 0..50u64 {
            for i in 1..=6 {
                let ms = 300 + (round * 7 + u64::from(i) * 13) % 200;
                assert_eq!(h.record(addr(i), Duration::from_millis(ms)), None);
            }
        }
    }

    #[test]
    fn below_the_floor_nobody_is_gray() {
        let h = health();
        for _ in 0..20 {
            for i in 1..=4 {
                h.record(addr(i), Duration::from_micros(200));
            }
            assert_eq!(h.record(addr(9), Duration::from_millis(50)), None, "50 ms is under the 100 ms floor");
        }
    }

    #[test]
    fn hedge_delay_follows_the_slowest_involved_target_within_bounds() {
        let h = health();
        assert_eq!(h.hedge_delay(&[addr(1)]), Duration::from_millis(20), "no samples: the minimum");
        for _ in 0..10 {
            h.record(addr(1), Duration::from_millis(2));
            h.record(addr(2), Duration::from_millis(60));
        }
        let d = h.hedge_delay(&[addr(1), addr(2)]);
        assert!(d >= Duration::from_millis(60) && d < Duration::from_millis(400), "{d:?}");
        assert_eq!(h.hedge_delay(&[addr(1)]), Duration::from_millis(20));
        for _ in 0..10 {
            h.record(addr(3), Duration::from_secs(5));
        }
        assert_eq!(h.hedge_delay(&[addr(3)]), Duration::from_secs(1), "capped");
    }
}
