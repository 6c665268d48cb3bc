//! Cross-region replication inside a node: the streamer that ships this
//! region's change logs to peer regions, and the endpoint where peers'
//! changes arrive. Both run on core 0, beside repair, and talk to the
//! region's targets through the ordinary client, like repair does.

mod endpoint;
mod idle;
mod ship;
mod streamer;

use std::collections::{BTreeSet, HashMap};
use std::net::UdpSocket;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tessera_client::{ClientConfig, PeerConfig, PeerLink};
use tessera_wire::TargetId;

use crate::cluster::MapState;
use crate::config::NodeConfig;
use crate::metrics::NodeMetrics;

/// Start the streamer and, if configured, the replication endpoint on the
/// current (core 0) runtime.
pub(crate) fn start(
    cfg: &NodeConfig,
    client_cfg: ClientConfig,
    map: Arc<MapState>,
    metrics: Arc<NodeMetrics>,
) -> Result<(), String> {
    let Some(crr) = cfg.crr.clone() else { return Ok(()) };
    let mut links = HashMap::new();
    for p in &crr.peers {
        if p.addrs.is_empty() {
            continue;
        }
        let link = PeerLink::new(PeerConfig {
            region: p.region.clone(),
            addrs: p.addrs.clone(),
            ca_cert: p.ca_cert.clone(),
            server_name: p.server_name.clone(),
            cert: crr.cert.clone(),
            key: crr.key.clone(),
            timeout: Duration::from_millis(crr.timeout_ms),
        })
        .map_err(|e| format!("[[crr.peers]] {}: {e}", p.region))?;
        links.insert(p.region.clone(), Arc::new(link));
    }
    let targets: BTreeSet<TargetId> = cfg.targets.iter().map(|t| TargetId(t.id)).collect();
    if let Some(listen) = crr.listen {
        let peers: Vec<_> = crr.peers.iter().map(|p| (p.region.clone(), p.ca_cert.clone())).collect();
        let (server_cfg, trust) =
            crate::tls::crr_server_config(&crr.cert, &crr.key, &peers).map_err(|e| format!("[crr]: {e}"))?;
        let socket = UdpSocket::bind(listen).map_err(|e| format!("[crr] listen {listen}: {e}"))?;
        crate::io::set_udp_buffers(&socket, 4 * 1_048_576);
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            Some(server_cfg),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
        .map_err(|e| format!("[crr] endpoint on {listen}: {e}"))?;
        let region = map.map().region.clone();
        let metrics = metrics.clone();
        let client_cfg = client_cfg.clone();
        let (ep_map, idle) = (map.clone(), Duration::from_millis(crr.timeout_ms));
        tokio::task::spawn_local(async move {
            let client = connect(client_cfg, "replication endpoint").await;
            tracing::info!(%listen, %region, "replication endpoint serving");
            let ep = Rc::new(endpoint::Endpoint { client, trust, region, metrics, map: ep_map, idle });
            endpoint::serve(ep, endpoint).await;
        });
    }
    let node = cfg.node_name.clone();
    tokio::task::spawn_local(async move {
        let client = connect(client_cfg, "replication streamer").await;
        streamer::Streamer::new(client, map, node, targets, links, crr, metrics).run().await;
    });
    Ok(())
}

/// Connect to this node's own region, retrying until it answers (the node
/// starts before its peers do).
async fn connect(cfg: ClientConfig, who: &'static str) -> tessera_client::Client {
    loop {
        match tessera_client::Client::connect(cfg.clone()).await {
            Ok(c) => return c,
            Err(e) => {
                tracing::debug!(error = %e, who, "waiting for the region");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
