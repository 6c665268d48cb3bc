//! The node's copy of the cluster map: loaded at start, replaced by newer
//! maps pushed with SetMap (and written back to the map file, atomically),
//! read by every core. The hot path reads only the epoch, an atomic.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tessera_wire::{ClassProfiles, ClusterMap, EcProfile, MapNode, MapTarget, MapZone, TargetId};

use crate::config::NodeConfig;

/// Why the node's map cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MapStateError {
    /// The map file could not be read or written.
    #[error("cluster map file {path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The map is invalid.
    #[error(transparent)]
    Map(#[from] tessera_wire::MapError),
    /// The map and this node's config disagree.
    #[error("cluster map epoch {epoch} does not match this node ({node}): {detail}")]
    Mismatch {
        /// Map epoch.
        epoch: u64,
        /// Node name.
        node: String,
        /// What differs.
        detail: String,
    },
    /// A pushed map jumps too far ahead.
    #[error(
        "pushed map epoch {pushed} is more than {max} ahead of the node's epoch {current}: a map change raises \
         the epoch by one (push a map with epoch {current} + 1)"
    )]
    TooFar {
        /// Pushed epoch.
        pushed: u64,
        /// Current epoch.
        current: u64,
        /// The bound.
        max: u64,
    },
    /// Two different maps with one epoch.
    #[error(
        "two different maps have epoch {epoch}: this node's (postcard crc32c {held:08x}) and the pushed one \
         (crc32c {pushed:08x}); make the intended change with a higher epoch"
    )]
    Conflict {
        /// The epoch.
        epoch: u64,
        /// crc32c of the node's map encoding.
        held: u32,
        /// crc32c of the other map's encoding.
        pushed: u32,
    },
    /// A pushed map is not newer.
    #[error("pushed map epoch {pushed} is not newer than the node's epoch {current}")]
    NotNewer {
        /// Pushed epoch.
        pushed: u64,
        /// Current epoch.
        current: u64,
    },
}

struct Current {
    map: Arc<ClusterMap>,
    encoded: Arc<Vec<u8>>,
}

/// The node's map, shared by its cores.
pub struct MapState {
    epoch: AtomicU64,
    current: RwLock<Current>,
    file: Option<PathBuf>,
    node: String,
    ports: Vec<u16>,
    targets: Vec<(TargetId, u16)>,
    /// Placement of the current map, built on first use per epoch.
    placement: RwLock<Option<(u64, Arc<tessera_wire::Placement>)>>,
}

impl MapState {
    /// Load the configured map, or build the one-zone development map.
    pub fn load(cfg: &NodeConfig) -> Result<MapState, MapStateError> {
        let ports: Vec<u16> = (0..cfg.core_count()).map(|c| cfg.base_port + c).collect();
        let mut targets: Vec<(TargetId, u16)> = cfg.targets.iter().map(|t| (TargetId(t.id), t.core)).collect();
        targets.sort();
        let map = match &cfg.map {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| MapStateError::Io { path: path.clone(), source })?;
                ClusterMap::from_toml(&text)?
            }
            None => standalone_map(cfg),
        };
        if map.is_single_zone() {
            tracing::warn!(epoch = map.epoch, "the cluster map has one zone: no zone redundancy (development only)");
        }
        let state = MapState {
            epoch: AtomicU64::new(map.epoch),
            current: RwLock::new(Current { encoded: Arc::new(map.to_postcard()?), map: Arc::new(map.clone()) }),
            file: cfg.map.clone(),
            node: cfg.node_name.clone(),
            ports,
            targets,
            placement: RwLock::new(None),
        };
        state.check_matches(&map)?;
        Ok(state)
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// The current map.
    pub fn map(&self) -> Arc<ClusterMap> {
        match self.current.read() {
            Ok(c) => c.map.clone(),
            Err(p) => p.into_inner().map.clone(),
        }
    }

    /// The placement of the current map (cached per epoch): which group a
    /// key is in, for anti-entropy requests.
    pub fn placement(&self) -> Result<Arc<tessera_wire::Placement>, String> {
        let epoch = self.epoch();
        if let Ok(guard) = self.placement.read() {
            if let Some((e, p)) = guard.as_ref() {
                if *e == epoch {
                    return Ok(p.clone());
                }
            }
        }
        let map = self.map();
        let p = Arc::new(
            tessera_wire::Placement::build(&map).map_err(|e| format!("placement of map epoch {}: {e}", map.epoch))?,
        );
        if let Ok(mut guard) = self.placement.write() {
            *guard = Some((map.epoch, p.clone()));
        }
        Ok(p)
    }

    /// The current map as postcard (what GetMap sends).
    pub fn encoded(&self) -> Arc<Vec<u8>> {
        match self.current.read() {
            Ok(c) => c.encoded.clone(),
            Err(p) => p.into_inner().encoded.clone(),
        }
    }

    fn check_matches(&self, map: &ClusterMap) -> Result<(), MapStateError> {
        let mismatch = |detail: String| MapStateError::Mismatch { epoch: map.epoch, node: self.node.clone(), detail };
        let Some((_, node)) = map.node(&self.node) else {
            return Err(mismatch("the map has no node of this name".into()));
        };
        if node.ports != self.ports {
            return Err(mismatch(format!("map ports {:?}, node listens on {:?}", node.ports, self.ports)));
        }
        let mut mine: Vec<(TargetId, u16)> = node.targets.iter().map(|t| (t.id, t.core)).collect();
        mine.sort();
        if mine != self.targets {
            return Err(mismatch(format!("map targets (id, core) {mine:?}, node has {:?}", self.targets)));
        }
        Ok(())
    }

    /// Adopt a newer map: validate, check it still describes this node,
    /// write it to the map file, then publish it. The same map again is
    /// a no-op; another map with the node's epoch is refused, naming both.
    /// A `pushed` map (SetMap) may be at most `MAP_EPOCH_STEP_MAX` ahead;
    /// one learned from peers may be any newer epoch.
    pub fn install(&self, bytes: &[u8], pushed: bool) -> Result<u64, MapStateError> {
        let map = ClusterMap::from_postcard(bytes)?;
        let current = self.epoch();
        if map.epoch == current {
            let held = crc32c::crc32c(&self.encoded());
            let theirs = crc32c::crc32c(&map.to_postcard()?);
            if held == theirs {
                return Ok(current);
            }
            return Err(MapStateError::Conflict { epoch: current, held, pushed: theirs });
        }
        if map.epoch < current {
            return Err(MapStateError::NotNewer { pushed: map.epoch, current });
        }
        let max = tessera_wire::limits::MAP_EPOCH_STEP_MAX;
        if pushed && map.epoch - current > max {
            return Err(MapStateError::TooFar { pushed: map.epoch, current, max });
        }
        self.check_matches(&map)?;
        let pgs = self.map().placement_groups;
        if map.placement_groups != pgs {
            return Err(MapStateError::Mismatch {
                epoch: map.epoch,
                node: self.node.clone(),
                detail: format!(
                    "placement_groups {} differs from the region's {pgs}: the group count is fixed for a region's life",
                    map.placement_groups
                ),
            });
        }
        if let Some(path) = &self.file {
            write_atomically(path, map.to_toml()?.as_bytes())?;
        }
        let epoch = map.epoch;
        let mut cur = match self.current.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        if epoch <= self.epoch() {
            return Err(MapStateError::NotNewer { pushed: epoch, current: self.epoch() });
        }
        *cur = Current { encoded: Arc::new(bytes.to_vec()), map: Arc::new(map) };
        self.epoch.store(epoch, Ordering::Release);
        tracing::info!(epoch, "installed a new cluster map");
        Ok(epoch)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MapStateError> {
    let io = |source| MapStateError::Io { path: path.to_owned(), source };
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// The one-zone map of a node run without a map file: its own targets,
/// k + m = the number of targets (at most 12), k = half of them rounded up.
pub fn standalone_map(cfg: &NodeConfig) -> ClusterMap {
    let n = cfg.targets.len().clamp(1, 12);
    let k = n.div_ceil(2) as u8;
    let profile = EcProfile { data: k, parity: n as u8 - k };
    let host: IpAddr = cfg.listen_addr;
    ClusterMap {
        epoch: 1,
        region: "local".into(),
        placement_groups: 64,
        shard_bytes: 1_048_576,
        inline_bytes_max: 65_536,
        classes: ClassProfiles { standard: profile, infrequent_access: profile },
        zones: vec![MapZone {
            name: "local".into(),
            nodes: vec![MapNode {
                name: cfg.node_name.clone(),
                host,
                ports: (0..cfg.core_count()).map(|c| cfg.base_port + c).collect(),
                targets: cfg
                    .targets
                    .iter()
                    .map(|t| MapTarget { id: TargetId(t.id), core: t.core, capacity_bytes: t.capacity_bytes })
                    .collect(),
            }],
        }],
        crr: Vec::new(),
        crr_in: Vec::new(),
    }
}
