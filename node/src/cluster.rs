//! The node's copy of the cluster map: loaded at start, replaced by newer
//! maps pushed with SetMap or learned from the region (and written back to
//! the map file, atomically, the replaced one kept beside it), read by
//! every core. The hot path reads only the epoch, an atomic. Every map the
//! node takes, including its own file, must be signed by a key `map_keys`
//! trusts.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use tessera_wire::{ClassProfiles, ClusterMap, EcProfile, MapKey, MapNode, MapTarget, MapZone, SignedMap, TargetId};

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
    /// The node's settings are invalid.
    #[error("node config: {0}")]
    Config(String),
    /// The map file cannot be used.
    #[error("cluster map file {path}: {detail}")]
    File {
        /// File.
        path: PathBuf,
        /// What was wrong.
        detail: String,
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
    /// The postcard bytes the signature covers (what two maps of one
    /// epoch are compared by).
    postcard: Arc<Vec<u8>>,
    /// What GetMap sends: the postcard bytes and the signature trailer.
    encoded: Arc<Vec<u8>>,
}

/// Replaced maps kept beside the map file (`map.toml.epoch-N`), for an
/// operator recovering from a bad map (`tessera admin map recover`).
pub const MAP_HISTORY_KEPT: usize = 8;

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
    /// Keys whose signature a map must carry.
    trusted: Vec<MapKey>,
}

impl MapState {
    /// Load the configured map, or build the one-zone development map.
    pub fn load(cfg: &NodeConfig) -> Result<MapState, MapStateError> {
        let ports: Vec<u16> = (0..cfg.core_count()).map(|c| cfg.base_port + c).collect();
        let mut targets: Vec<(TargetId, u16)> = cfg.targets.iter().map(|t| (TargetId(t.id), t.core)).collect();
        targets.sort();
        let trusted = cfg.trusted_map_keys().map_err(|e| MapStateError::Config(e.to_string()))?;
        let signed = match &cfg.map {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| MapStateError::Io { path: path.clone(), source })?;
                let signed = SignedMap::from_toml(&text)?;
                tessera_client::verify_map(&signed, &trusted).map_err(|e| MapStateError::File {
                    path: path.clone(),
                    detail: format!("{e}; sign the file with `tessera admin map sign`"),
                })?;
                signed
            }
            None => SignedMap::unsigned(standalone_map(cfg))?,
        };
        let map = signed.map.clone();
        if map.is_single_zone() {
            tracing::warn!(epoch = map.epoch, "the cluster map has one zone: no zone redundancy (development only)");
        }
        let state = MapState {
            epoch: AtomicU64::new(map.epoch),
            current: RwLock::new(Current {
                encoded: Arc::new(signed.to_wire()),
                postcard: Arc::new(signed.postcard),
                map: Arc::new(map.clone()),
            }),
            file: cfg.map.clone(),
            node: cfg.node_name.clone(),
            ports,
            targets,
            placement: RwLock::new(None),
            trusted,
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

    /// Adopt a newer map: check its signature against `map_keys` (a map
    /// learned from a peer too: a node never vouches for a map), validate,
    /// check it still describes this node, write it to the map file
    /// (keeping the one it replaces), then publish it. The same map again is
    /// a no-op; another map with the node's epoch is refused, naming both.
    /// A `pushed` map (SetMap) may be at most `MAP_EPOCH_STEP_MAX` ahead;
    /// one learned from peers may be any newer epoch.
    pub fn install(&self, bytes: &[u8], pushed: bool) -> Result<u64, MapStateError> {
        let signed = SignedMap::from_wire(bytes)?;
        tessera_client::verify_map(&signed, &self.trusted)?;
        let map = &signed.map;
        let current = self.epoch();
        if map.epoch == current {
            let held = crc32c::crc32c(&self.postcard());
            let theirs = crc32c::crc32c(&signed.postcard);
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
        self.check_matches(map)?;
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
        let mut cur = match self.current.write() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let epoch = map.epoch;
        if epoch <= self.epoch() {
            return Err(MapStateError::NotNewer { pushed: epoch, current: self.epoch() });
        }
        if let Some(path) = &self.file {
            keep_replaced(path, cur.map.epoch);
            write_atomically(path, signed.to_toml()?.as_bytes())?;
        }
        *cur = Current {
            encoded: Arc::new(signed.to_wire()),
            postcard: Arc::new(signed.postcard),
            map: Arc::new(signed.map),
        };
        self.epoch.store(epoch, Ordering::Release);
        tracing::info!(epoch, "installed a new cluster map");
        Ok(epoch)
    }

    fn postcard(&self) -> Arc<Vec<u8>> {
        match self.current.read() {
            Ok(c) => c.postcard.clone(),
            Err(p) => p.into_inner().postcard.clone(),
        }
    }
}

/// Keep the map file about to be replaced as `FILE.epoch-N`, and only the
/// newest [`MAP_HISTORY_KEPT`] of those. Best effort: losing history never
/// stops a map change.
fn keep_replaced(path: &Path, epoch: u64) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return };
    let kept = path.with_file_name(format!("{name}.epoch-{epoch}"));
    if let Err(e) = std::fs::copy(path, &kept) {
        tracing::warn!(path = %kept.display(), error = %e, "could not keep the replaced cluster map");
        return;
    }
    let Some(dir) = path.parent() else { return };
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let prefix = format!("{name}.epoch-");
    let mut old: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_str()?.strip_prefix(&prefix)?.parse::<u64>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    old.sort();
    let excess = old.len().saturating_sub(MAP_HISTORY_KEPT);
    for (_, p) in old.into_iter().take(excess) {
        let _ = std::fs::remove_file(p);
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MapStateError> {
    write_file_atomically(path, bytes).map_err(|source| MapStateError::Io { path: path.to_owned(), source })
}

/// Replace a file whole: write a temporary beside it, sync, rename, sync
/// the directory.
pub(crate) fn write_file_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A node config with a map file signed by a fresh key, in a new
    /// directory; the signer, and a stranger's signer.
    fn setup(name: &str) -> (NodeConfig, tessera_client::MapSigner, tessera_client::MapSigner) {
        let dir = std::env::temp_dir().join(format!("tessera-mapstate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ours = crate::tls::write_map_key(&dir.join("map.key"), &dir.join("map.pub")).unwrap();
        crate::tls::write_map_key(&dir.join("other.key"), &dir.join("other.pub")).unwrap();
        let cfg: NodeConfig = toml::from_str(&format!(
            "node_name = \"n1\"\ntls_cert = \"c\"\ntls_key = \"k\"\nca_cert = \"ca\"\ncores = 1\n\
             map = \"{}\"\nmap_keys = [\"{ours}\"]\n[[targets]]\nid = 1\ncore = 0\npath = \"t\"\ncapacity_bytes = 1048576\n",
            dir.join("map.toml").display()
        ))
        .unwrap();
        cfg.check().unwrap();
        let signer = tessera_client::MapSigner::load(&dir.join("map.key")).unwrap();
        let mut signed = SignedMap::unsigned(standalone_map(&cfg)).unwrap();
        signer.sign(&mut signed);
        std::fs::write(dir.join("map.toml"), signed.to_toml().unwrap()).unwrap();
        (cfg, signer, tessera_client::MapSigner::load(&dir.join("other.key")).unwrap())
    }

    fn next(state: &MapState, by: Option<&tessera_client::MapSigner>, step: u64) -> Vec<u8> {
        let mut m = (*state.map()).clone();
        m.epoch += step;
        let mut s = SignedMap::unsigned(m).unwrap();
        if let Some(by) = by {
            by.sign(&mut s);
        }
        s.to_wire()
    }

    #[test]
    fn maps_learned_from_peers_need_the_signature_pushed_ones_do() {
        let (cfg, ours, theirs) = setup("learned");
        let state = MapState::load(&cfg).unwrap();
        for pushed in [false, true] {
            let e = state.install(&next(&state, None, 1), pushed).unwrap_err().to_string();
            assert!(e.contains("is not signed"), "{e}");
            let e = state.install(&next(&state, Some(&theirs), 1), pushed).unwrap_err().to_string();
            assert!(e.contains("does not trust"), "{e}");
        }
        assert_eq!(state.epoch(), 1);
        // Learned maps may jump; pushed ones may not.
        assert_eq!(state.install(&next(&state, Some(&ours), 5_000), false).unwrap(), 5_001);
        let e = state.install(&next(&state, Some(&ours), 5_000), true).unwrap_err().to_string();
        assert!(e.contains("more than 1000 ahead"), "{e}");
        // The file now holds the signed map: the node starts from it.
        assert_eq!(MapState::load(&cfg).unwrap().epoch(), 5_001);
        // And GetMap hands on the signature.
        let served = SignedMap::from_wire(&state.encoded()).unwrap();
        assert_eq!(tessera_client::verify_map(&served, &[ours.key()]).unwrap(), ours.key());
    }

    #[test]
    fn an_unsigned_or_foreign_map_file_stops_the_node_and_replaced_maps_are_kept() {
        let (cfg, ours, theirs) = setup("file");
        let path = cfg.map.clone().unwrap();
        let state = MapState::load(&cfg).unwrap();
        for _ in 0..MAP_HISTORY_KEPT + 3 {
            state.install(&next(&state, Some(&ours), 1), true).unwrap();
        }
        let dir = path.parent().unwrap();
        let mut kept: Vec<u64> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.unwrap().file_name().to_str()?.strip_prefix("map.toml.epoch-")?.parse().ok())
            .collect();
        kept.sort();
        let newest = state.epoch();
        assert_eq!(kept, ((newest - MAP_HISTORY_KEPT as u64)..newest).collect::<Vec<_>>());
        let old =
            SignedMap::from_toml(&std::fs::read_to_string(dir.join(format!("map.toml.epoch-{}", newest - 1))).unwrap());
        assert_eq!(old.unwrap().map.epoch, newest - 1);

        let mut m = SignedMap::unsigned((*state.map()).clone()).unwrap();
        std::fs::write(&path, m.to_toml().unwrap()).unwrap();
        let e = MapState::load(&cfg).err().unwrap().to_string();
        assert!(e.contains("is not signed") && e.contains("tessera admin map sign"), "{e}");
        theirs.sign(&mut m);
        std::fs::write(&path, m.to_toml().unwrap()).unwrap();
        let e = MapState::load(&cfg).err().unwrap().to_string();
        assert!(e.contains("does not trust"), "{e}");
    }
}
