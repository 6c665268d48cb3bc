//! The principal registry from the admin's side ([`tessera_wire::registry`]):
//! read the newest copy any node holds, push a changed one (signed with the
//! config's map-signing key) to every node. Nodes check the signature and
//! take only newer versions; a node that was down takes it from the
//! others when it is back.

use std::net::SocketAddr;

use tessera_wire::registry::{Registry, SIGNED_CONTEXT};
use tessera_wire::{GetRegistry, Request, Response, SetRegistry};

use crate::client::{unexpected, PushReport};
use crate::{Client, ClientError};

impl Client {
    /// The newest registry any reachable node of the map holds (version 0,
    /// empty, in a region that never had one).
    pub async fn registry(&self) -> Result<Registry, ClientError> {
        let mut best: Option<Registry> = None;
        let mut last_err = None;
        for (_, addr) in self.node_addrs() {
            let have = best.as_ref().map_or(0, |b| b.version);
            match self.registry_bytes(addr, have).await {
                Ok(Some(bytes)) => {
                    let (reg, _, _) = Registry::from_wire(&bytes)
                        .map_err(|e| ClientError::Unavailable { detail: format!("registry from {addr}: {e}") })?;
                    if reg.version > have || best.is_none() {
                        best = Some(reg);
                    }
                }
                Ok(None) => {
                    if best.is_none() {
                        best = Some(Registry::default());
                    }
                }
                Err(e @ ClientError::AccessDenied { .. }) => return Err(e),
                Err(e) => last_err = Some(e),
            }
        }
        best.ok_or_else(|| last_err.unwrap_or(ClientError::Unavailable { detail: "no node answered".into() }))
    }

    /// One node's registry (signed, as it holds it) if newer than
    /// `newer_than`; nodes catching up use this.
    pub async fn registry_bytes(&self, addr: SocketAddr, newer_than: u64) -> Result<Option<Vec<u8>>, ClientError> {
        let req = Request::GetRegistry(GetRegistry { newer_than });
        let mut reply = self.inner.transport.call(addr, &req, &[], 0).await?;
        match reply.response {
            Response::RegistryOk(ref ok) if ok.version > newer_than && reply.payload_len > 0 => {
                if reply.payload_len > tessera_wire::registry::REGISTRY_BYTES_MAX {
                    return Err(ClientError::Unavailable {
                        detail: format!("registry of {} bytes from {addr} is too large", reply.payload_len),
                    });
                }
                Ok(Some(self.inner.transport.read_payload(&mut reply, addr).await?))
            }
            Response::RegistryOk(_) => Ok(None),
            other => Err(unexpected("get registry", other)),
        }
    }

    /// Push a changed registry (its version one above the newest, see
    /// [`Client::registry`]) to every node of the map, signed with the
    /// config's `map_key`.
    pub async fn push_registry(&self, reg: &Registry) -> Result<PushReport, ClientError> {
        reg.validate().map_err(|e| ClientError::InvalidArgument { detail: e.to_string() })?;
        let Some(path) = &self.inner.cfg.map_key else {
            return Err(ClientError::Config {
                detail: "this config names no map_key: the principal registry is signed with the region's \
                         map-signing key, like maps"
                    .into(),
            });
        };
        let body = reg.to_wire(None).map_err(|e| ClientError::InvalidArgument { detail: e.to_string() })?;
        let mut message = SIGNED_CONTEXT.to_vec();
        message.extend_from_slice(&body);
        let sig = crate::MapSigner::load(path)?.sign_bytes(&message);
        let bytes = reg.to_wire(Some(&sig)).map_err(|e| ClientError::InvalidArgument { detail: e.to_string() })?;
        let mut report = PushReport::default();
        let req = Request::SetRegistry(SetRegistry {});
        for (name, addr) in self.node_addrs() {
            match self.inner.transport.call(addr, &req, &bytes, 0).await {
                Ok(r) => match r.response {
                    Response::RegistryOk(ok) if ok.version == reg.version => report.installed.push(name),
                    other => report.refused.push(format!("{name}: {other:?}")),
                },
                Err(e @ ClientError::AccessDenied { .. }) => return Err(e),
                Err(e @ (ClientError::Connection { .. } | ClientError::Timeout { .. })) => {
                    report.unreachable.push(format!("{name}: {e}"))
                }
                Err(e) => report.refused.push(format!("{name}: {e}")),
            }
        }
        Ok(report)
    }
}
