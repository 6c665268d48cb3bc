//! Newtypes for the ids both sides exchange, so a stripe index is never
//! passed where a shard index belongs.

use serde::{Deserialize, Serialize};

/// A storage target, unique within a node (later: within the cluster map).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TargetId(pub u32);

/// Which executor core of a node; the core listens on `base_port + index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct CoreIndex(pub u16);

/// Position of a stripe within an object, from 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StripeIndex(pub u32);

/// Position of a shard within a stripe (0..k are data, k..k+m parity).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ShardIndex(pub u16);

impl std::fmt::Display for TargetId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "t{}", self.0)
    }
}
