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
}

impl NodeMetrics {
    /// Empty metrics for `cores` cores and the given target ids.
    pub fn new(node: &str, cores: usize, target_ids: &[u32]) -> Arc<NodeMetrics> {
        Arc::new(NodeMetrics {
            node: node.to_owned(),
            cores: (0..cores).map(|_| CoreMetrics::default()).collect(),
            targets: target_ids.iter().map(|&id| TargetMetrics { id, ..Default::default() }).collect(),
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
        s
    }
}

/// Serve `GET /metrics` on `addr` from a small thread of its own, off the
/// executors. Returns the bound address.
pub fn serve(addr: &str, metrics: Arc<NodeMetrics>) -> std::io::Result<std::net::SocketAddr> {
    let listener = std::net::TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new().name("tessera-metrics".into()).spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
            let mut req = [0u8; 1_024];
            let n = std::io::Read::read(&mut stream, &mut req).unwrap_or(0);
            let head = String::from_utf8_lossy(&req[..n]);
            let (status, body) = if head.starts_with("GET /metrics") {
                ("200 OK", metrics.render())
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
