//! A shaped UDP link between two local regions, for `tessera dev
//! --regions`: every packet between a region and a peer's replication
//! endpoint goes through here, and is delayed (one-way `delay`), paced at a
//! bottleneck rate (a drop-tail queue of `QUEUE_BYTES`), or dropped while
//! the link is cut (`DIR/link-cut` exists: `tessera dev cut-link`).
//!
//! Why in user space: `tc netem` needs the kernel's sch_netem, which not
//! every machine has (this project's CI kernel does not). QUIC sees the
//! same thing either way: datagrams arriving late, slowly, or never.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Bytes a direction may hold queued at the bottleneck before it drops.
const QUEUE_BYTES: f64 = 4.0 * 1_048_576.0;

/// The shape of the link, shared by every relay of a `tessera dev` run.
pub(crate) struct Shape {
    /// One-way delay.
    pub(crate) delay: Duration,
    /// Bottleneck rate per direction, bytes/s (None: unlimited).
    pub(crate) rate: Option<f64>,
    /// The link is cut (packets dropped both ways).
    pub(crate) cut: AtomicBool,
}

impl Shape {
    /// Follow `DIR/link-cut` for the cut state, checking every 50 ms.
    pub(crate) fn watch_cut_file(self: &Arc<Self>, file: PathBuf) {
        let shape = self.clone();
        tokio::spawn(async move {
            loop {
                let cut = file.exists();
                if shape.cut.swap(cut, Ordering::Relaxed) != cut {
                    tracing::info!(cut, "inter-region link {}", if cut { "cut" } else { "healed" });
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
}

/// One direction of the link: a FIFO that delivers each datagram at its
/// departure from the bottleneck plus the delay.
struct Lane {
    tx: mpsc::UnboundedSender<(Instant, Vec<u8>)>,
    free_at: Mutex<Instant>,
}

impl Lane {
    fn new(out: Arc<UdpSocket>, to: SocketAddr) -> Lane {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
        tokio::spawn(async move {
            while let Some((at, pkt)) = rx.recv().await {
                tokio::time::sleep_until(at.into()).await;
                let _ = out.send_to(&pkt, to).await;
            }
        });
        Lane { tx, free_at: Mutex::new(Instant::now()) }
    }

    fn send(&self, shape: &Shape, pkt: Vec<u8>) {
        if shape.cut.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let depart = match shape.rate {
            None => now,
            Some(rate) => {
                let mut free = match self.free_at.lock() {
                    Ok(f) => f,
                    Err(p) => p.into_inner(),
                };
                let start = (*free).max(now);
                if (start - now).as_secs_f64() * rate > QUEUE_BYTES {
                    return; // queue full: drop tail
                }
                *free = start + Duration::from_secs_f64(pkt.len() as f64 / rate);
                *free
            }
        };
        let _ = self.tx.send((depart + shape.delay, pkt));
    }
}

/// Relay datagrams arriving on `listen` to `upstream` and back, one
/// upstream socket per sender so the peer sees distinct flows.
pub(crate) async fn relay(listen: SocketAddr, upstream: SocketAddr, shape: Arc<Shape>) -> std::io::Result<()> {
    let front = Arc::new(UdpSocket::bind(listen).await?);
    let mut flows: HashMap<SocketAddr, Arc<Lane>> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let (n, from) = front.recv_from(&mut buf).await?;
        let lane = match flows.get(&from) {
            Some(f) => f.clone(),
            None => {
                let bind: SocketAddr = if upstream.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }
                    .parse()
                    .map_err(|e: std::net::AddrParseError| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let up = Arc::new(UdpSocket::bind(bind).await?);
                let forward = Arc::new(Lane::new(up.clone(), upstream));
                let back = Lane::new(front.clone(), from);
                let (reader, shape) = (up.clone(), shape.clone());
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 65_536];
                    while let Ok((n, _)) = reader.recv_from(&mut buf).await {
                        back.send(&shape, buf[..n].to_vec());
                    }
                });
                flows.insert(from, forward.clone());
                forward
            }
        };
        lane.send(&shape, buf[..n].to_vec());
    }
}
