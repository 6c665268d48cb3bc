//! Starting a node: one pinned thread per core, each running a tokio
//! current-thread runtime that owns the core's io_uring, QUIC endpoint and
//! targets. Nothing is shared between cores but read-only config and the
//! metrics atomics.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tessera_wire::TargetId;

use crate::config::{IoBackendChoice, NodeConfig};
use crate::engine::{Engine, EngineConfig};
use crate::io::{pin_current_thread, set_udp_buffers, BufPool, Io, Psync, Uring};
use crate::metrics::NodeMetrics;
use crate::server::{serve, CoreCtx};

/// UDP socket buffer size requested per endpoint.
const UDP_BUFFER_BYTES: usize = 4 * 1_048_576;

/// A running node.
pub struct NodeHandle {
    threads: Vec<std::thread::JoinHandle<()>>,
    shutdown: tokio::sync::watch::Sender<bool>,
    /// The QUIC address of each core, by core index.
    pub core_addrs: Vec<SocketAddr>,
    /// Metrics of the node.
    pub metrics: Arc<NodeMetrics>,
}

impl NodeHandle {
    /// Ask every core to stop: close endpoints, checkpoint targets.
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Wait for every core thread to finish.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// TLS files.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// The cluster map cannot be used.
    #[error(transparent)]
    Map(#[from] crate::cluster::MapStateError),
    /// The principal registry file cannot be used.
    #[error("{0}")]
    Registry(String),
    /// A core failed to start.
    #[error("core {core} failed to start: {reason}")]
    Core {
        /// Core index.
        core: u16,
        /// Why.
        reason: String,
    },
}

/// Start every core of a node and wait until all are serving.
pub fn start(cfg: NodeConfig, metrics: Arc<NodeMetrics>) -> Result<NodeHandle, StartError> {
    let cores = cfg.core_count();
    let server_cfg =
        crate::tls::server_config(&cfg.tls_cert, &cfg.tls_key, &cfg.ca_cert, cfg.streams_per_connection_max)?;
    let layout: Vec<(u16, u16, Vec<TargetId>)> = (0..cores)
        .map(|c| {
            let ts = cfg.targets.iter().filter(|t| t.core == c).map(|t| TargetId(t.id)).collect();
            (c, cfg.base_port + c, ts)
        })
        .collect();
    let map = Arc::new(crate::cluster::MapState::load(&cfg)?);
    let registry = Arc::new(crate::registry::RegistryState::load(&cfg).map_err(StartError::Registry)?);
    let cfg = Arc::new(cfg);
    let (shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(u16, SocketAddr), String>>();
    let mut threads = Vec::new();
    for core in 0..cores {
        let (cfg, server_cfg, metrics, layout, ready_tx, shutdown_rx) =
            (cfg.clone(), server_cfg.clone(), metrics.clone(), layout.clone(), ready_tx.clone(), shutdown_rx.clone());
        let (map, registry) = (map.clone(), registry.clone());
        let t = std::thread::Builder::new()
            .name(format!("tessera-core-{core}"))
            .spawn(move || core_main(core, cfg, server_cfg, metrics, layout, (map, registry), ready_tx, shutdown_rx))
            .map_err(|e| StartError::Core { core, reason: e.to_string() })?;
        threads.push(t);
    }
    drop(ready_tx);
    let mut core_addrs = vec![SocketAddr::from(([0, 0, 0, 0], 0)); cores as usize];
    for _ in 0..cores {
        match ready_rx.recv() {
            Ok(Ok((core, addr))) => core_addrs[core as usize] = addr,
            Ok(Err(reason)) => {
                let _ = shutdown.send(true);
                let core = reason.split(':').next().and_then(|c| c.parse().ok()).unwrap_or(0);
                return Err(StartError::Core { core, reason });
            }
            Err(_) => return Err(StartError::Core { core: 0, reason: "a core thread exited during start-up".into() }),
        }
    }
    Ok(NodeHandle { threads, shutdown, core_addrs, metrics })
}

#[allow(clippy::too_many_arguments)]
fn core_main(
    core: u16,
    cfg: Arc<NodeConfig>,
    server_cfg: quinn::ServerConfig,
    metrics: Arc<NodeMetrics>,
    layout: Vec<(u16, u16, Vec<TargetId>)>,
    (map, registry): (Arc<crate::cluster::MapState>, Arc<crate::registry::RegistryState>),
    ready: std::sync::mpsc::Sender<Result<(u16, SocketAddr), String>>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let fail = |reason: String| {
        let _ = ready.send(Err(format!("{core}: {reason}")));
    };
    if cfg.pin_cores && !pin_current_thread(core as usize) {
        tracing::warn!(core, "could not pin the executor thread; running unpinned");
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(format!("tokio runtime: {e}")),
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        let io = match (cfg.io_backend, Uring::new()) {
            (IoBackendChoice::Psync, _) => Io::Psync(Psync),
            (_, Ok(ring)) => {
                tokio::task::spawn_local(ring.clone().run());
                Io::Uring(ring)
            }
            (IoBackendChoice::IoUring, Err(e)) => return fail(format!("io_uring unavailable: {e}")),
            (IoBackendChoice::Auto, Err(e)) => {
                tracing::warn!(core, error = %e, "io_uring unavailable; using pread/pwrite");
                Io::Psync(Psync)
            }
        };
        let pool = BufPool::default();
        let mut engines = BTreeMap::new();
        for t in cfg.targets.iter().filter(|t| t.core == core) {
            let ecfg = EngineConfig {
                target: TargetId(t.id),
                path: t.path.clone(),
                index_path: t.index_path(),
                capacity_bytes: t.capacity_bytes,
                segment_bytes: t.segment_bytes,
                reserve_segments: t.reserve_segments,
                checkpoint_interval: Duration::from_millis(t.checkpoint_interval_ms),
                compaction_live_fraction_max: t.compaction_live_fraction_max,
                // Only nodes that replicate keep change logs: without
                // [crr] nothing would ship or trim them.
                placement_groups: if cfg.crr.is_some() { map.map().placement_groups } else { 0 },
            };
            match Engine::open(ecfg, io.clone(), pool.clone()).await {
                Ok(e) => {
                    engines.insert(TargetId(t.id), e);
                }
                Err(e) => return fail(format!("target {}: {e}", t.id)),
            }
        }
        let addr = SocketAddr::new(cfg.listen_addr, cfg.base_port + core);
        let socket = match UdpSocket::bind(addr) {
            Ok(s) => s,
            Err(e) => return fail(format!("bind UDP {addr}: {e}")),
        };
        set_udp_buffers(&socket, UDP_BUFFER_BYTES);
        let endpoint = match quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server_cfg),
            socket,
            Arc::new(quinn::TokioRuntime),
        ) {
            Ok(e) => e,
            Err(e) => return fail(format!("QUIC endpoint on {addr}: {e}")),
        };
        let local_addr = endpoint.local_addr().unwrap_or(addr);
        let ctx = Rc::new(CoreCtx {
            core,
            engines,
            layout,
            node_name: cfg.node_name.clone(),
            metrics: metrics.clone(),
            request_timeout: Duration::from_millis(cfg.request_timeout_ms),
            map,
            payload_budget: tokio::sync::Semaphore::new(cfg.payload_budget_per_core_mib as usize * 1_024),
            connection_budget_kib: cfg.payload_budget_per_connection_mib.saturating_mul(1_024),
            version_skew_ms: cfg.version_skew_ms,
            admission: Rc::new(crate::admission::Admission::new(
                cfg.connections_per_principal_max,
                cfg.connections_per_core_max,
            )),
            registry,
        });
        tokio::task::spawn_local(update_gauges(ctx.clone(), io.clone()));
        tokio::task::spawn_local(crate::scrub::run(
            ctx.clone(),
            cfg.scrub_mib_s,
            Duration::from_millis(cfg.scrub_pass_interval_ms),
        ));
        let seed = SocketAddr::new(cfg.listen_addr, cfg.base_port);
        // The node asks its peers as itself (a node principal).
        let client_cfg =
            tessera_client::ClientConfig::new(seed.to_string(), cfg.peer_server_name.clone(), cfg.ca_cert.clone())
                .with_identity(cfg.tls_cert.clone(), cfg.tls_key.clone());
        if core == 0 {
            if let Err(e) = crate::crr::start(&cfg, client_cfg.clone(), ctx.map.clone(), metrics.clone()) {
                return fail(e);
            }
            metrics.repair.update(|r| r.rate_limit_mib_s = cfg.repair_mib_s);
            tokio::task::spawn_local(crate::repair::run(
                client_cfg.clone(),
                cfg.node_name.clone(),
                metrics.clone(),
                (ctx.map.clone(), ctx.registry.clone()),
                Duration::from_millis(cfg.repair_interval_ms),
            ));
        }
        tokio::task::spawn_local(crate::sweeper::run(
            ctx.clone(),
            client_cfg,
            Duration::from_millis(cfg.sweep_interval_ms),
            Duration::from_millis(cfg.prepared_expiry_ms),
        ));
        tokio::task::spawn_local(serve(ctx.clone(), endpoint.clone()));
        tracing::info!(core, %local_addr, backend = io.name(), targets = ctx.engines.len(), "core serving");
        let _ = ready.send(Ok((core, local_addr)));
        let _ = shutdown.wait_for(|&stop| stop).await;
        endpoint.close(0u8.into(), b"node shutting down");
        for engine in ctx.engines.values() {
            if let Err(e) = engine.close().await {
                tracing::warn!(core, target_id = %engine.target(), error = %e, "checkpoint at shutdown failed");
            }
        }
        endpoint.wait_idle().await;
        tracing::info!(core, "core stopped");
    });
}

async fn update_gauges(ctx: Rc<CoreCtx>, io: Io) {
    use std::sync::atomic::Ordering::Relaxed;
    loop {
        for (id, engine) in &ctx.engines {
            let s = engine.stats();
            if let Some(m) = ctx.metrics.target(id.0) {
                m.capacity_bytes.store(s.capacity_bytes, Relaxed);
                m.free_bytes.store(s.free_bytes, Relaxed);
                m.objects.store(s.objects, Relaxed);
                m.compactions.store(s.compactions, Relaxed);
            }
        }
        let in_flight = match &io {
            Io::Uring(r) => r.in_flight() as u64,
            Io::Psync(_) => 0,
        };
        ctx.metrics.cores[ctx.core as usize].io_in_flight.store(in_flight, Relaxed);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
