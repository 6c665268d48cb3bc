//! Prometheus metrics. Each core writes only its own atomics (relaxed
//! stores, no lock, nothing shared on the data path); the exporter thread
//! reads them all and renders the text format on `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// Operations counted separately.
pub const OPS: [&str; 8] =
    ["put_shard", "get_shard", "head", "delete", "list", "create_bucket", "get_bucket", "node_status"];

/// Upper bounds of the latency histogram buckets, in microseconds.
const BUCKETS_US: [u64; 16] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// (name, help, reader) of a per-core gauge.
type CoreGauge = (&'static str, &'static str, fn(&CoreMetrics) -> u64);
/// (name, help, reader) of a per-target gauge.
type TargetGauge = (&'static str, &'static str, fn(&TargetMetrics) -> u64);

/// Counters of one operation on one core.
#[derive(Default)]
pub struct OpMetrics {
    count: AtomicU64,
    errors: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    latency_sum_us: AtomicU64,
    buckets: [AtomicU64; BUCKETS_US.len()],
}

impl OpMetrics {
    /// Record one finished request.
    pub fn record(&self, elapsed: Duration, ok: bool, bytes_in: u64, bytes_out: u64) {
        let us = elapsed.as_micros() as u64;
        self.count.fetch_add(1, Relaxed);
        if !ok {
            self.errors.fetch_add(1, Relaxed);
        }
        self.bytes_in.fetch_add(bytes_in, Relaxed);
        self.bytes_out.fetch_add(bytes_out, Relaxed);
        self.latency_sum_us.fetch_add(us, Relaxed);
        if let Some(i) = BUCKETS_US.iter().position(|&b| us <= b) {
            self.buckets[i].fetch_add(1, Relaxed);
        }
    }
}

/// One core's metrics.
#[derive(Default)]
pub struct CoreMetrics {
    /// Per operation, indexed like [`OPS`].
    pub ops: [OpMetrics; OPS.len()],
    /// Disk operations submitted and not completed.
    pub io_in_flight: AtomicU64,
    /// Requests being served.
    pub requests_in_flight: AtomicU64,
    /// Frames refused as malformed.
    pub bad_frames: AtomicU64,
    /// Prepared versions the sweeper resolved (committed or purged).
    pub swept: AtomicU64,
}

/// One target's gauges.
#[derive(Default)]
pub struct TargetMetrics {
    /// Target id.
    pub id: u32,
    /// Record capacity.
    pub capacity_bytes: AtomicU64,
    /// Bytes free for writes.
    pub free_bytes: AtomicU64,
    /// Committed versions.
    pub objects: AtomicU64,
    /// Segments compacted.
    pub compactions: AtomicU64,
}

/// All metrics of a node.
pub struct NodeMetrics {
    /// Node name label.
    pub node: String,
    /// Per core.
    pub cores: Vec<CoreMetrics>,
    /// Per target.
    pub targets: Vec<TargetMetrics>,
    /// Repair and scrub progress (written by the repair task and the
    /// scrubbers, read by status requests and the exporter).
    pub repair: RepairStats,
    /// Cross-region replication (written by the streamer).
    pub crr: CrrStats,
}

/// Figures written by one background task a few times per second and read
/// by status requests and the exporter. A mutex, not atomics: they change
/// per repaired version or replicated batch, never per request.
#[derive(Default)]
pub struct Shared<T> {
    status: std::sync::Mutex<T>,
}

impl<T: Clone> Shared<T> {
    /// Wrap initial figures.
    pub fn new(value: T) -> Self {
        Shared { status: std::sync::Mutex::new(value) }
    }

    /// A copy of the current figures.
    pub fn snapshot(&self) -> T {
        match self.status.lock() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Change the figures.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        match self.status.lock() {
            Ok(mut s) => f(&mut s),
            Err(p) => f(&mut p.into_inner()),
        }
    }
}

/// Repair and scrub progress of a node.
pub type RepairStats = Shared<tessera_wire::repair::RepairStatusOk>;

/// Upper bounds of the replication lag histogram buckets, in milliseconds.
pub const LAG_BUCKETS_MS: [u64; 14] =
    [10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000, 300_000, 900_000];

/// A cumulative lag histogram of one rule (Prometheus style).
#[derive(Clone, Debug, Default)]
pub struct LagHistogram {
    /// Count per bucket of [`LAG_BUCKETS_MS`] (not cumulative); the last
    /// slot counts lags above every bound.
    pub buckets: [u64; LAG_BUCKETS_MS.len() + 1],
    /// Sum of lags, ms.
    pub sum_ms: u64,
    /// Samples.
    pub count: u64,
}

impl LagHistogram {
    /// Add one sample.
    pub fn record(&mut self, lag_ms: u64) {
        let i = LAG_BUCKETS_MS.iter().position(|&b| lag_ms <= b).unwrap_or(LAG_BUCKETS_MS.len());
        self.buckets[i] += 1;
        self.sum_ms += lag_ms;
        self.count += 1;
    }
}

/// Cross-region replication figures of a node: per rule, for the groups it
/// ships.
#[derive(Default)]
pub struct CrrStats {
    /// What `tessera crr status` shows.
    pub status: Shared<tessera_wire::crr::CrrStatusOk>,
    /// Lag histograms by rule id.
    pub lag: Shared<std::collections::BTreeMap<String, LagHistogram>>,
    /// Changes from peer regions applied through this node.
    pub applied_here: AtomicU64,
}

impl CrrStats {
    /// The status figures.
    pub fn snapshot(&self) -> tessera_wire::crr::CrrStatusOk {
        self.status.snapshot()
    }
}

impl NodeMetrics {
    /// Empty metrics for `cores` cores and the given target ids.
    pub fn new(node: &str, cores: usize, target_ids: &[u32]) -> Arc<NodeMetrics> {
        Arc::new(NodeMetrics {
            node: node.to_owned(),
            cores: (0..cores).map(|_| CoreMetrics::default()).collect(),
            targets: target_ids.iter().map(|&id| TargetMetrics { id, ..Default::default() }).collect(),
            crr: CrrStats::default(),
            repair: RepairStats::new(tessera_wire::repair::RepairStatusOk {
                node: node.to_owned(),
                ..Default::default()
            }),
        })
    }

    /// The gauges of target `id`.
    pub fn target(&self, id: u32) -> Option<&TargetMetrics> {
        self.targets.iter().find(|t| t.id == id)
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let n = &self.node;
        let _ = writeln!(s, "# HELP tessera_requests_total Requests served, by core and operation.\n# TYPE tessera_requests_total counter");
        for (c, core) in self.cores.iter().enumerate() {
            for (i, op) in OPS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "tessera_requests_total{{node=\"{n}\",core=\"{c}\",op=\"{op}\"}} {}",
                    core.ops[i].count.load(Relaxed)
                );
            }
        }
        let _ = writeln!(s, "# HELP tessera_request_errors_total Requests answered with an error.\n# TYPE tessera_request_errors_total counter");
        for (c, core) in self.cores.iter().enumerate() {
            for (i, op) in OPS.iter().enumerate() {
                let _ = writeln!(
                    s,
                    "tessera_request_errors_total{{node=\"{n}\",core=\"{c}\",op=\"{op}\"}} {}",
                    core.ops[i].errors.load(Relaxed)
                );
            }
        }
        let _ = writeln!(s, "# HELP tessera_bytes_total Payload bytes received (in) and sent (out).\n# TYPE tessera_bytes_total counter");
        for (c, core) in self.cores.iter().enumerate() {
            for (i, op) in OPS.iter().enumerate() {
                let m = &core.ops[i];
                let _ = writeln!(
                    s,
                    "tessera_bytes_total{{node=\"{n}\",core=\"{c}\",op=\"{op}\",dir=\"in\"}} {}",
                    m.bytes_in.load(Relaxed)
                );
                let _ = writeln!(
                    s,
                    "tessera_bytes_total{{node=\"{n}\",core=\"{c}\",op=\"{op}\",dir=\"out\"}} {}",
                    m.bytes_out.load(Relaxed)
                );
            }
        }
        let _ =
            writeln!(s, "# HELP tessera_request_seconds Request latency.\n# TYPE tessera_request_seconds histogram");
        for (c, core) in self.cores.iter().enumerate() {
            for (i, op) in OPS.iter().enumerate() {
                let m = &core.ops[i];
                let mut cum = 0;
                for (b, le) in BUCKETS_US.iter().enumerate() {
                    cum += m.buckets[b].load(Relaxed);
                    let _ = writeln!(
                        s,
                        "tessera_request_seconds_bucket{{node=\"{n}\",core=\"{c}\",op=\"{op}\",le=\"{}\"}} {cum}",
                        *le as f64 / 1e6
                    );
                }
                let count = m.count.load(Relaxed);
                let _ = writeln!(
                    s,
                    "tessera_request_seconds_bucket{{node=\"{n}\",core=\"{c}\",op=\"{op}\",le=\"+Inf\"}} {count}"
                );
                let _ = writeln!(
                    s,
                    "tessera_request_seconds_sum{{node=\"{n}\",core=\"{c}\",op=\"{op}\"}} {}",
                    m.latency_sum_us.load(Relaxed) as f64 / 1e6
                );
                let _ = writeln!(s, "tessera_request_seconds_count{{node=\"{n}\",core=\"{c}\",op=\"{op}\"}} {count}");
            }
        }
        let gauges: [CoreGauge; 4] = [
            ("tessera_io_in_flight", "Disk operations in flight.", |c| c.io_in_flight.load(Relaxed)),
            ("tessera_requests_in_flight", "Requests being served.", |c| c.requests_in_flight.load(Relaxed)),
            ("tessera_bad_frames_total", "Malformed frames refused.", |c| c.bad_frames.load(Relaxed)),
            ("tessera_swept_total", "Prepared versions resolved by the sweeper.", |c| c.swept.load(Relaxed)),
        ];
        for (name, help, get) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (c, core) in self.cores.iter().enumerate() {
                let _ = writeln!(s, "{name}{{node=\"{n}\",core=\"{c}\"}} {}", get(core));
            }
        }
        let tg: [TargetGauge; 4] = [
            ("tessera_target_capacity_bytes", "Record capacity of a target.", |t| t.capacity_bytes.load(Relaxed)),
            ("tessera_target_free_bytes", "Bytes free for new writes.", |t| t.free_bytes.load(Relaxed)),
            ("tessera_target_objects", "Committed versions in the index.", |t| t.objects.load(Relaxed)),
            ("tessera_target_compactions_total", "Segments compacted.", |t| t.compactions.load(Relaxed)),
        ];
        for (name, help, get) in tg {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge");
            for t in &self.targets {
                let _ = writeln!(s, "{name}{{node=\"{n}\",target=\"{}\"}} {}", t.id, get(t));
            }
        }
        let r = self.repair.snapshot();
        let repair: [(&str, &str, &str, u64); 13] = [
            (
                "tessera_repair_rate_limit_mib_per_second",
                "gauge",
                "Repair bandwidth limit (0: paused).",
                u64::from(r.rate_limit_mib_s),
            ),
            ("tessera_repair_rounds_total", "counter", "Anti-entropy rounds completed.", r.rounds),
            ("tessera_repair_pgs_led", "gauge", "Placement groups this node leads repair for.", u64::from(r.pgs_led)),
            ("tessera_repair_pgs_in_sync", "gauge", "Led groups whose members all agree.", u64::from(r.pgs_in_sync)),
            (
                "tessera_repair_pgs_member_unreachable",
                "gauge",
                "Led groups with a silent member.",
                u64::from(r.pgs_member_unreachable),
            ),
            (
                "tessera_repair_backlog_versions",
                "gauge",
                "Member copies of versions waiting for repair.",
                r.backlog_versions,
            ),
            ("tessera_repair_backlog_bytes", "gauge", "Shard bytes waiting to be rebuilt.", r.backlog_bytes),
            ("tessera_repair_repaired_bytes_total", "counter", "Shard bytes rebuilt and written.", r.repaired_bytes),
            ("tessera_repair_rate_bytes_per_second", "gauge", "Recent repair write rate.", r.rate_bytes_s),
            (
                "tessera_repair_eta_seconds",
                "gauge",
                "Backlog time left at the recent rate (-1: unknown).",
                r.eta_s.unwrap_or(u64::MAX),
            ),
            (
                "tessera_repair_unrepairable",
                "gauge",
                "Versions with fewer than k intact shards reachable.",
                r.unrepairable,
            ),
            ("tessera_scrub_bytes_total", "counter", "Bytes verified by the scrubber.", r.scrubbed_bytes),
            ("tessera_corrupt_shards_total", "counter", "Shards found failing their checksum.", r.corrupt_found),
        ];
        for (name, kind, help, value) in repair {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            if value == u64::MAX {
                let _ = writeln!(s, "{name}{{node=\"{n}\"}} -1");
            } else {
                let _ = writeln!(s, "{name}{{node=\"{n}\"}} {value}");
            }
        }
        self.render_crr(&mut s);
        s
    }

    fn render_crr(&self, s: &mut String) {
        let n = &self.node;
        let status = self.crr.snapshot();
        type RuleGauge = (&'static str, &'static str, &'static str, fn(&tessera_wire::crr::RuleProgress) -> u64);
        let gauges: [RuleGauge; 7] = [
            ("tessera_crr_pending_objects", "gauge", "Changes waiting to be replicated.", |r| r.pending_objects),
            ("tessera_crr_pending_bytes", "gauge", "Object bytes waiting to be replicated.", |r| r.pending_bytes),
            ("tessera_crr_shipped_objects_total", "counter", "Changes applied at the destination.", |r| {
                r.shipped_objects
            }),
            ("tessera_crr_shipped_bytes_total", "counter", "Object bytes sent to the destination.", |r| {
                r.shipped_bytes
            }),
            ("tessera_crr_pgs_shipped", "gauge", "Placement groups this node ships.", |r| r.pgs_shipped.len() as u64),
            ("tessera_crr_pgs_backfilled", "gauge", "Shipped groups whose back-fill is done.", |r| {
                r.pgs_backfilled.len() as u64
            }),
            (
                "tessera_crr_replicated_up_to_seconds",
                "gauge",
                "Every change made before this Unix time is replicated.",
                |r| r.replicated_up_to_ms / 1000,
            ),
        ];
        for (name, kind, help, get) in gauges {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for r in &status.rules {
                let _ = writeln!(s, "{name}{{node=\"{n}\",rule=\"{}\"}} {}", r.rule, get(r));
            }
        }
        let name = "tessera_crr_applied_total";
        let _ =
            writeln!(s, "# HELP {name} Changes from peer regions applied through this node.\n# TYPE {name} counter");
        let _ = writeln!(s, "{name}{{node=\"{n}\"}} {}", self.crr.applied_here.load(Relaxed));
        let lag = self.crr.lag.snapshot();
        let name = "tessera_crr_lag_seconds";
        let _ =
            writeln!(s, "# HELP {name} Time from a change to its apply at the destination.\n# TYPE {name} histogram");
        for (rule, h) in &lag {
            let mut cum = 0;
            for (i, le) in LAG_BUCKETS_MS.iter().enumerate() {
                cum += h.buckets[i];
                let le = *le as f64 / 1000.0;
                let _ = writeln!(s, "{name}_bucket{{node=\"{n}\",rule=\"{rule}\",le=\"{le}\"}} {cum}");
            }
            let _ = writeln!(s, "{name}_bucket{{node=\"{n}\",rule=\"{rule}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(s, "{name}_sum{{node=\"{n}\",rule=\"{rule}\"}} {}", h.sum_ms as f64 / 1000.0);
            let _ = writeln!(s, "{name}_count{{node=\"{n}\",rule=\"{rule}\"}} {}", h.count);
        }
    }
}

/// Read a metrics bearer token: the file's first line, at least 16
/// characters, printable ASCII.
pub fn read_token(path: &std::path::Path) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("metrics_token_file {}: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim().to_string();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        anyhow::bail!(
            "metrics_token_file {}: the token must be at least 16 printable ASCII characters on the first line",
            path.display()
        );
    }
    Ok(token)
}

/// Longest request head read: what a scraper's GET needs, with room for
/// a few headers.
const HEAD_BYTES_MAX: usize = 8 * 1_024;

/// Read a request head up to its blank line (a head can arrive in several
/// segments), at most `HEAD_BYTES_MAX` bytes, within the socket's timeout.
fn read_head(stream: &mut std::net::TcpStream) -> String {
    let mut buf = Vec::with_capacity(1_024);
    let mut chunk = [0u8; 1_024];
    while buf.len() < HEAD_BYTES_MAX && !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match std::io::Read::read(stream, &mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Whether a request head carries `Authorization: Bearer TOKEN`, compared
/// in constant time.
fn authorized(head: &str, token: &str) -> bool {
    let presented = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.trim().eq_ignore_ascii_case("authorization").then(|| value.trim())
    });
    let Some(value) = presented else { return false };
    let Some(given) = value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serve `GET /metrics` on `addr` from a small thread of its own, off the
/// executors; with a `token`, `/metrics` answers 401 without it. Returns
/// the bound address.
pub fn serve(addr: &str, metrics: Arc<NodeMetrics>, token: Option<String>) -> std::io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new().name("tessera-metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let head = read_head(&mut stream);
            let (status, body) = if head.starts_with("GET /metrics") {
                match &token {
                    Some(t) if !authorized(&head, t) => {
                        ("401 Unauthorized", "GET /metrics needs Authorization: Bearer TOKEN (metrics_token_file)\n".into())
                    }
                    _ => ("200 OK", metrics.render()),
                }
            } else if head.starts_with("GET /health") {
                ("200 OK", "ok\n".to_string())
            } else {
                ("404 Not Found", "try GET /metrics or GET /health\n".to_string())
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = std::io::Write::write_all(&mut stream, resp.as_bytes());
        }
    })?;
    Ok(local)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    fn get(addr: std::net::SocketAddr, path: &str, auth: Option<&str>) -> String {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        let auth = auth.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    /// Over a real socket: /metrics answers only with the token, /health
    /// always.
    #[test]
    fn metrics_need_the_token_health_does_not() {
        let token = "0123456789abcdef-token";
        let addr = serve("127.0.0.1:0", NodeMetrics::new("n", 1, &[0]), Some(token.into())).unwrap();
        assert!(get(addr, "/metrics", None).starts_with("HTTP/1.1 401"));
        assert!(get(addr, "/metrics", Some("Bearer 0123456789abcdef-tokeX")).starts_with("HTTP/1.1 401"));
        assert!(get(addr, "/metrics", Some("Basic 0123456789abcdef-token")).starts_with("HTTP/1.1 401"));
        let ok = get(addr, "/metrics", Some(&format!("Bearer {token}")));
        assert!(ok.starts_with("HTTP/1.1 200") && ok.contains("tessera_"), "{ok}");
        assert!(get(addr, "/health", None).starts_with("HTTP/1.1 200"));
    }
}
