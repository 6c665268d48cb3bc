//! The node's copy of the principal registry (`tessera_wire::registry`):
//! loaded from its file at start, replaced by newer signed versions pushed
//! by an admin or learned from peers, written back atomically. Every open
//! connection watches it: when a new version no longer admits the
//! connection's principal or certificate, the connection is closed at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tessera_wire::registry::{Registry, SIGNED_CONTEXT};
use tessera_wire::{MapKey, Principal};

/// The registry a node enforces.
pub struct RegistryState {
    version: AtomicU64,
    current: RwLock<(Arc<Registry>, Arc<Vec<u8>>)>,
    file: Option<PathBuf>,
    trusted: Vec<MapKey>,
    changed: tokio::sync::watch::Sender<u64>,
}

/// Where the node keeps the registry: `registry_file`, or beside the map.
pub fn file_of(cfg: &crate::config::NodeConfig) -> Option<PathBuf> {
    cfg.registry_file.clone().or_else(|| cfg.map.as_ref().map(|m| m.with_file_name("registry.bin")))
}

impl RegistryState {
    /// Load the node's registry file (a missing file is version 0, empty).
    pub fn load(cfg: &crate::config::NodeConfig) -> Result<RegistryState, String> {
        let trusted = cfg.trusted_map_keys().map_err(|e| e.to_string())?;
        let file = file_of(cfg);
        let (reg, bytes) = match &file {
            Some(path) if path.exists() => {
                let bytes = std::fs::read(path).map_err(|e| format!("principal registry {}: {e}", path.display()))?;
                let reg = check(&bytes, &trusted).map_err(|e| format!("principal registry {}: {e}", path.display()))?;
                (reg, bytes)
            }
            _ => (Registry::default(), Vec::new()),
        };
        let (changed, _) = tokio::sync::watch::channel(reg.version);
        Ok(RegistryState {
            version: AtomicU64::new(reg.version),
            current: RwLock::new((Arc::new(reg), Arc::new(bytes))),
            file,
            trusted,
            changed,
        })
    }

    /// The version held.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The registry held.
    pub fn current(&self) -> Arc<Registry> {
        match self.current.read() {
            Ok(c) => c.0.clone(),
            Err(p) => p.into_inner().0.clone(),
        }
    }

    /// The signed bytes held (empty at version 0).
    pub fn encoded(&self) -> Arc<Vec<u8>> {
        match self.current.read() {
            Ok(c) => c.1.clone(),
            Err(p) => p.into_inner().1.clone(),
        }
    }

    /// Changes of version, for connections to re-check themselves.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Whether `who` with the certificate `fingerprint` may be connected.
    pub fn admits(&self, who: &Principal, fingerprint: &[u8; 32]) -> Result<(), String> {
        self.current().admits(who, fingerprint)
    }

    /// Take a newer signed registry: checked, written to the file, then
    /// published (open connections re-check). The same version again is a
    /// no-op if identical, refused otherwise.
    pub fn install(&self, bytes: &[u8]) -> Result<u64, String> {
        let reg = check(bytes, &self.trusted)?;
        let mut cur = match self.current.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let held = cur.0.version;
        if reg.version == held {
            if cur.0.as_ref() == &reg {
                return Ok(held);
            }
            return Err(format!(
                "another principal registry with version {held} is installed here: make the change again from the \
                 newest (`tessera admin user ls` reads it)"
            ));
        }
        if reg.version < held {
            return Err(format!("principal registry version {} is older than this node's {held}", reg.version));
        }
        if let Some(path) = &self.file {
            crate::cluster::write_file_atomically(path, bytes)
                .map_err(|e| format!("principal registry {}: {e}", path.display()))?;
        }
        let version = reg.version;
        *cur = (Arc::new(reg), Arc::new(bytes.to_vec()));
        self.version.store(version, Ordering::Release);
        drop(cur);
        self.changed.send_replace(version);
        tracing::info!(version, "installed a new principal registry");
        Ok(version)
    }
}

/// Decode, validate and check the signature of a registry.
fn check(bytes: &[u8], trusted: &[MapKey]) -> Result<Registry, String> {
    let (reg, body, sig) = Registry::from_wire(bytes).map_err(|e| e.to_string())?;
    let mut message = SIGNED_CONTEXT.to_vec();
    message.extend_from_slice(body);
    let what = format!("principal registry version {}", reg.version);
    // The signature error without the map's "cluster map signature" prefix:
    // `what` names the registry.
    tessera_client::verify_signed(&what, &message, sig.as_ref(), trusted).map_err(|e| match e {
        tessera_wire::MapError::Signature(why) => why,
        other => other.to_string(),
    })?;
    Ok(reg)
}
