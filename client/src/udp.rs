//! The SDK's UDP socket. A read asks six or more nodes at once and their
//! shards arrive as one burst (about 1 MiB for a 1 MiB object). With the
//! kernel's default receive buffer (208 KiB) the burst's tail was dropped
//! at the socket, and QUIC recovered it only after its probe timeout
//! (which includes the peer's 25 ms ACK delay): 1 MiB GETs took ~30 ms
//! instead of ~8 (docs/BENCHMARKS.md, "The 1 MiB read stall").

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

use crate::ClientError;

/// Receive and send buffer asked for by default (`udp_buffer_bytes`). The
/// kernel caps it at `net.core.rmem_max` / `wmem_max` (the Ansible tuning
/// role raises both).
pub(crate) const UDP_BUFFER_BYTES: usize = 8 * 1_048_576;

fn socket_err(bind: SocketAddr, what: &str, e: std::io::Error) -> ClientError {
    ClientError::Config { detail: format!("UDP socket on {bind}: {what}: {e}") }
}

/// A QUIC client endpoint on `bind` whose socket buffers are `buffer`
/// bytes (0: the kernel's default).
pub(crate) fn endpoint(bind: SocketAddr, buffer: usize) -> Result<quinn::Endpoint, ClientError> {
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))
        .map_err(|e| socket_err(bind, "creating", e))?;
    if buffer > 0 {
        // Best effort: a smaller buffer still works, with losses under bursts.
        let _ = socket.set_recv_buffer_size(buffer);
        let _ = socket.set_send_buffer_size(buffer);
        if let Ok(got) = socket.recv_buffer_size() {
            // Linux reports twice what it keeps for data.
            if got < buffer / 2 {
                tracing::debug!(
                    got,
                    wanted = buffer,
                    "UDP receive buffer capped by net.core.rmem_max: bursts of shard replies may be dropped"
                );
            }
        }
    }
    socket.bind(&bind.into()).map_err(|e| socket_err(bind, "binding", e))?;
    let runtime = quinn::default_runtime()
        .ok_or_else(|| socket_err(bind, "runtime", std::io::Error::other("no tokio runtime")))?;
    quinn::Endpoint::new(quinn::EndpointConfig::default(), None, socket.into(), runtime)
        .map_err(|e| socket_err(bind, "QUIC endpoint", e))
}
