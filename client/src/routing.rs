//! Which core of the node serves an object: the node's layout (fetched with
//! NodeStatus) and the placement function from `tessera_wire`. Pure: the
//! zone-aware placement and quorum planning replace this module's
//! functions without touching the transport.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use tessera_wire::{target_for_object, NodeStatusOk, TargetId};

/// A node's targets and the address of the core that owns each.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    targets: Vec<TargetId>,
    addr_of: BTreeMap<TargetId, SocketAddr>,
}

impl Layout {
    /// Build from a status answer; cores share the host of `seed`.
    pub(crate) fn from_status(seed: SocketAddr, status: &NodeStatusOk) -> Layout {
        let mut addr_of = BTreeMap::new();
        for core in &status.cores {
            for t in &core.targets {
                addr_of.insert(t.target, SocketAddr::new(seed.ip(), core.port));
            }
        }
        Layout { targets: addr_of.keys().copied().collect(), addr_of }
    }

    /// Target and core address for an object.
    pub(crate) fn route(&self, bucket: &str, key: &str) -> Option<(TargetId, SocketAddr)> {
        let t = target_for_object(&self.targets, bucket, key)?;
        Some((t, *self.addr_of.get(&t)?))
    }

    /// Every target with its core address (for buckets and listing).
    pub(crate) fn all(&self) -> impl Iterator<Item = (TargetId, SocketAddr)> + '_ {
        self.addr_of.iter().map(|(t, a)| (*t, *a))
    }
}
