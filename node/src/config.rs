//! `node.toml`: every setting of a node, with defaults where one is safe.
//! Unknown keys are errors, so a typo never silently falls back to a default.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole node configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// Name reported in status and logs.
    pub node_name: String,
    /// IP address the QUIC endpoints bind to.
    #[serde(default = "default_listen_addr")]
    pub listen_addr: IpAddr,
    /// Core `i` listens on UDP `base_port + i`; clients address cores directly.
    #[serde(default = "default_base_port")]
    pub base_port: u16,
    /// Executor threads (one per core). Default: the CPUs available.
    #[serde(default)]
    pub cores: Option<u16>,
    /// Pin executor `i` to CPU `i` (where the OS allows).
    #[serde(default = "default_true")]
    pub pin_cores: bool,
    /// `auto` (io_uring if the kernel allows, else psync), `io_uring` or `psync`.
    #[serde(default)]
    pub io_backend: IoBackendChoice,
    /// Prometheus metrics listen address (HTTP `GET /metrics`). Empty string disables.
    #[serde(default = "default_metrics_addr")]
    pub metrics_addr: String,
    /// File holding a bearer token that `GET /metrics` must present
    /// (`Authorization: Bearer TOKEN`). Required when `metrics_addr` is not
    /// a loopback address: metrics name buckets, rules and peers. `GET
    /// /health` stays open (it answers only "ok", for probes).
    #[serde(default)]
    pub metrics_token_file: Option<PathBuf>,
    /// PEM certificate chain of this node.
    pub tls_cert: PathBuf,
    /// PEM private key of this node.
    pub tls_key: PathBuf,
    /// A request whose frames do not arrive within this time is dropped
    /// (guards against clients that stall mid-stream).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Concurrent requests (QUIC streams) per connection.
    #[serde(default = "default_streams_per_connection")]
    pub streams_per_connection_max: u32,
    /// Shard payload bytes one connection may hold in memory at once, MiB
    /// (its further payloads wait, so QUIC flow control slows the sender;
    /// one client cannot take a core's memory).
    #[serde(default = "default_payload_budget_connection_mib")]
    pub payload_budget_per_connection_mib: u32,
    /// Shard payload bytes all connections of one core may hold, MiB.
    #[serde(default = "default_payload_budget_core_mib")]
    pub payload_budget_per_core_mib: u32,
    /// How far ahead of this node's clock a new version id may be, ms.
    /// Version ids order versions; one from the far future would hide
    /// every later write of its key. Ids in the past are allowed (a long
    /// upload keeps the id it started with). Writes that keep another
    /// region's or node's id (replication, repair) come from nodes and
    /// are exempt.
    #[serde(default = "default_version_skew_ms")]
    pub version_skew_ms: u64,
    /// Connections one principal may hold to one core (nodes exempt):
    /// one client cannot take every slot.
    #[serde(default = "default_connections_per_principal")]
    pub connections_per_principal_max: u32,
    /// Connections one core holds at most.
    #[serde(default = "default_connections_per_core")]
    pub connections_per_core_max: u32,
    /// Storage targets.
    pub targets: Vec<TargetConfig>,
    /// Cluster map file (TOML). Without one the node serves a one-zone
    /// map of its own targets (development only). Newer maps pushed with
    /// `tessera admin push-map` are written back to this file.
    #[serde(default)]
    pub map: Option<PathBuf>,
    /// Public keys (`ed25519:<64 hex>`, from `tessera admin map-key new`)
    /// whose signature a cluster map must carry before this node takes
    /// it: at start, from a push, or learned from another node. Required
    /// with `map`; list two while rotating the signing key.
    #[serde(default)]
    pub map_keys: Vec<String>,
    /// Where the node keeps the region's principal registry (users, access
    /// keys, revoked certificates). Default: `registry.bin` beside `map`;
    /// without either, only in memory.
    #[serde(default)]
    pub registry_file: Option<PathBuf>,
    /// PEM of the region's CA. It signed the other nodes' certificates
    /// (the node checks them when it asks its peers), and every client
    /// certificate this node admits must chain to it: a connection without
    /// one fails its handshake.
    pub ca_cert: PathBuf,
    /// Name the other nodes' certificates are issued for.
    #[serde(default = "default_peer_server_name")]
    pub peer_server_name: String,
    /// A version still only prepared this long after its version time is
    /// resolved by the sweeper: committed if any member committed it,
    /// purged if every member answered and none did.
    #[serde(default = "default_prepared_expiry_ms")]
    pub prepared_expiry_ms: u64,
    /// How often the sweeper looks.
    #[serde(default = "default_sweep_interval_ms")]
    pub sweep_interval_ms: u64,
    /// Pause between anti-entropy rounds (a round that repaired something
    /// is followed by the next at once).
    #[serde(default = "default_repair_interval_ms")]
    pub repair_interval_ms: u64,
    /// Repair bandwidth: MiB/s of rebuilt shard bytes this node writes
    /// (0 pauses repair). `tessera repair rate` changes it at run time.
    #[serde(default = "default_repair_mib_s")]
    pub repair_mib_s: u32,
    /// Scrubber read rate per core, MiB/s (0: no scrubbing).
    #[serde(default = "default_scrub_mib_s")]
    pub scrub_mib_s: u32,
    /// Pause after a complete scrub pass over a core's targets.
    #[serde(default = "default_scrub_pass_interval_ms")]
    pub scrub_pass_interval_ms: u64,
    /// Cross-region replication: this region's identity, its replication
    /// endpoint, and its peer regions. Without it, rules in the map are
    /// not shipped from this node and no region can replicate into it.
    #[serde(default)]
    pub crr: Option<CrrConfig>,
}

/// `[crr]`: cross-region replication settings of a node.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrrConfig {
    /// This region's certificate chain (PEM), issued by the region's CA:
    /// presented to peers both when sending and when receiving.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// UDP address of this node's replication endpoint (peers send their
    /// changes here). Omit on nodes that take no incoming replication.
    #[serde(default)]
    pub listen: Option<std::net::SocketAddr>,
    /// How often the streamer looks for new changes when idle.
    #[serde(default = "default_crr_poll_ms")]
    pub poll_ms: u64,
    /// Changes one node applies at a destination at once, per rule, across
    /// all the groups it ships (flow control).
    #[serde(default = "default_crr_in_flight")]
    pub in_flight: usize,
    /// Deadline of one request to a peer region.
    #[serde(default = "default_crr_timeout_ms")]
    pub timeout_ms: u64,
    /// Peer regions: the trust store and addresses of each.
    #[serde(default)]
    pub peers: Vec<CrrPeer>,
}

/// `[[crr.peers]]`: one peer region.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrrPeer {
    /// Its region name (as rules name it in `dest_region`).
    pub region: String,
    /// The CA that issued its region certificate: only certificates it
    /// issued are accepted as this peer, in both directions.
    pub ca_cert: PathBuf,
    /// Name in its region certificate.
    pub server_name: String,
    /// Its nodes' replication endpoints (needed to send to it).
    #[serde(default)]
    pub addrs: Vec<std::net::SocketAddr>,
}

fn default_crr_poll_ms() -> u64 {
    50
}
fn default_crr_in_flight() -> usize {
    32
}
fn default_crr_timeout_ms() -> u64 {
    15_000
}

fn default_repair_interval_ms() -> u64 {
    10_000
}
fn default_repair_mib_s() -> u32 {
    64
}
fn default_scrub_mib_s() -> u32 {
    4
}
fn default_scrub_pass_interval_ms() -> u64 {
    3_600_000
}

fn default_peer_server_name() -> String {
    "localhost".into()
}
fn default_prepared_expiry_ms() -> u64 {
    600_000
}
fn default_sweep_interval_ms() -> u64 {
    30_000
}

/// One storage target.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Target id, unique in the node.
    pub id: u32,
    /// The core that owns it (0-based, below `cores`).
    pub core: u16,
    /// Data file or block device, opened with O_DIRECT.
    pub path: PathBuf,
    /// Index file (redb). Default: `<path>.index.redb`.
    #[serde(default)]
    pub index_path: Option<PathBuf>,
    /// Bytes to preallocate for a new file target (ignored once created).
    pub capacity_bytes: u64,
    /// Segment size (ignored once created). Default 64 MiB.
    #[serde(default = "default_segment_bytes")]
    pub segment_bytes: u64,
    /// Segments kept free for deletes and compaction. Default 2.
    #[serde(default = "default_reserve_segments")]
    pub reserve_segments: u32,
    /// Longest time between index checkpoints, bounding replay. Default 5000.
    #[serde(default = "default_checkpoint_interval_ms")]
    pub checkpoint_interval_ms: u64,
    /// Compact segments whose live bytes fall below this fraction. Default 0.5.
    #[serde(default = "default_compaction_fraction")]
    pub compaction_live_fraction_max: f64,
}

/// Which disk I/O backend the executors use.
#[derive(Clone, Copy, Debug, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum IoBackendChoice {
    /// io_uring if available, else psync.
    #[default]
    Auto,
    /// io_uring or fail.
    IoUring,
    /// pread/pwrite.
    Psync,
}

fn default_listen_addr() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}
fn default_base_port() -> u16 {
    7_400
}
fn default_true() -> bool {
    true
}
fn default_metrics_addr() -> String {
    "127.0.0.1:9400".into()
}
fn default_request_timeout_ms() -> u64 {
    30_000
}
fn default_payload_budget_connection_mib() -> u32 {
    64
}
fn default_connections_per_principal() -> u32 {
    256
}
fn default_connections_per_core() -> u32 {
    4_096
}
fn default_version_skew_ms() -> u64 {
    300_000
}
fn default_payload_budget_core_mib() -> u32 {
    512
}
fn default_streams_per_connection() -> u32 {
    256
}
fn default_segment_bytes() -> u64 {
    64 * 1_048_576
}
fn default_reserve_segments() -> u32 {
    2
}
fn default_checkpoint_interval_ms() -> u64 {
    5_000
}
fn default_compaction_fraction() -> f64 {
    0.5
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Could not read the file.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// TOML syntax or types.
    #[error("config {path} is invalid: {source}")]
    Parse {
        /// File.
        path: PathBuf,
        /// Cause.
        source: toml::de::Error,
    },
    /// A semantic rule broken.
    #[error("config is invalid: {0}")]
    Invalid(String),
}

impl NodeConfig {
    /// Read and check a config file.
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
        let cfg: NodeConfig =
            toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.into(), source })?;
        cfg.check()?;
        Ok(cfg)
    }

    /// Executor count.
    pub fn core_count(&self) -> u16 {
        self.cores.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u16).unwrap_or(1))
    }

    /// The parsed `map_keys`.
    pub fn trusted_map_keys(&self) -> Result<Vec<tessera_wire::MapKey>, ConfigError> {
        self.map_keys
            .iter()
            .map(|k| tessera_wire::MapKey::parse(k).map_err(|e| ConfigError::Invalid(format!("map_keys: {e}"))))
            .collect()
    }

    /// Check the rules between settings.
    pub fn check(&self) -> Result<(), ConfigError> {
        let cores = self.core_count();
        if cores == 0 || cores as usize > tessera_wire::limits::CORES_PER_NODE_MAX {
            return Err(ConfigError::Invalid(format!(
                "cores = {cores}; must be 1..={}",
                tessera_wire::limits::CORES_PER_NODE_MAX
            )));
        }
        if u32::from(self.base_port) + u32::from(cores) > 65_535 {
            return Err(ConfigError::Invalid(format!("base_port {} + cores {cores} exceeds 65535", self.base_port)));
        }
        if self.targets.is_empty() {
            return Err(ConfigError::Invalid("no [[targets]] configured".into()));
        }
        self.trusted_map_keys()?;
        if self.map.is_some() && self.map_keys.is_empty() {
            return Err(ConfigError::Invalid(
                "map is set but map_keys is empty: list the public key of the region's map-signing key \
                 (`tessera admin map-key new` prints it), since a node takes only signed maps"
                    .into(),
            ));
        }
        let mut ids = std::collections::BTreeSet::new();
        for t in &self.targets {
            if !ids.insert(t.id) {
                return Err(ConfigError::Invalid(format!("target id {} appears twice", t.id)));
            }
            if t.core >= cores {
                return Err(ConfigError::Invalid(format!(
                    "target {} is on core {} but the node runs {cores} cores",
                    t.id, t.core
                )));
            }
            if !(0.0..=1.0).contains(&t.compaction_live_fraction_max) {
                return Err(ConfigError::Invalid(format!(
                    "target {}: compaction_live_fraction_max must be in 0..=1",
                    t.id
                )));
            }
        }
        if self.repair_interval_ms == 0 || self.scrub_pass_interval_ms == 0 {
            return Err(ConfigError::Invalid("repair_interval_ms and scrub_pass_interval_ms must be positive".into()));
        }
        // A budget smaller than one largest shard would make every such
        // write wait forever.
        let shard_mib = (tessera_wire::limits::SHARD_BYTES_MAX / 1_048_576) as u32 + 1;
        if self.payload_budget_per_connection_mib < shard_mib
            || self.payload_budget_per_core_mib < self.payload_budget_per_connection_mib
        {
            return Err(ConfigError::Invalid(format!(
                "payload_budget_per_connection_mib = {} and payload_budget_per_core_mib = {}: the connection budget \
                 must hold one largest shard ({shard_mib} MiB) and the core budget at least one connection's",
                self.payload_budget_per_connection_mib, self.payload_budget_per_core_mib
            )));
        }
        if self.connections_per_principal_max == 0 || self.connections_per_core_max == 0 {
            return Err(ConfigError::Invalid(
                "connections_per_principal_max and connections_per_core_max must be positive".into(),
            ));
        }
        if !self.metrics_addr.is_empty() && self.metrics_token_file.is_none() {
            let loopback = self.metrics_addr.parse::<std::net::SocketAddr>().map(|a| a.ip().is_loopback());
            if loopback != Ok(true) {
                return Err(ConfigError::Invalid(format!(
                    "metrics_addr {} is not a loopback address: set metrics_token_file (a bearer token that \
                     GET /metrics must present) or bind 127.0.0.1",
                    self.metrics_addr
                )));
            }
        }
        if self.sweep_interval_ms == 0 {
            return Err(ConfigError::Invalid("sweep_interval_ms must be positive".into()));
        }
        if self.request_timeout_ms == 0 {
            return Err(ConfigError::Invalid("request_timeout_ms must be positive".into()));
        }
        if let Some(crr) = &self.crr {
            if crr.poll_ms == 0 || crr.in_flight == 0 || crr.timeout_ms == 0 {
                return Err(ConfigError::Invalid("[crr] poll_ms, in_flight and timeout_ms must be positive".into()));
            }
            let mut names = std::collections::BTreeSet::new();
            for p in &crr.peers {
                if !names.insert(p.region.as_str()) {
                    return Err(ConfigError::Invalid(format!("[[crr.peers]] region {} appears twice", p.region)));
                }
            }
        }
        Ok(())
    }
}

impl TargetConfig {
    /// The index path, defaulted.
    pub fn index_path(&self) -> PathBuf {
        self.index_path.clone().unwrap_or_else(|| {
            let mut p = self.path.clone().into_os_string();
            p.push(".index.redb");
            PathBuf::from(p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
node_name = "n1"
tls_cert = "c.pem"
tls_key = "k.pem"
ca_cert = "ca.pem"
cores = 2
[[targets]]
id = 0
core = 1
path = "/tmp/t0"
capacity_bytes = 1073741824
"#;

    #[test]
    fn metrics_off_loopback_need_a_token() {
        for (addr, token, ok) in [
            ("127.0.0.1:9400", false, true),
            ("[::1]:9400", false, true),
            ("10.0.0.5:9400", false, false),
            ("0.0.0.0:9400", false, false),
            ("10.0.0.5:9400", true, true),
            ("", false, true),
        ] {
            let mut cfg: NodeConfig = toml::from_str(MIN).expect("parse");
            cfg.metrics_addr = addr.into();
            cfg.metrics_token_file = token.then(|| PathBuf::from("/etc/tessera/metrics.token"));
            match cfg.check() {
                Ok(()) => assert!(ok, "{addr} without a token was accepted"),
                Err(e) => assert!(!ok && e.to_string().contains("metrics_token_file"), "{addr}: {e}"),
            }
        }
    }

    #[test]
    fn defaults_fill_in() {
        let cfg: NodeConfig = toml::from_str(MIN).expect("parse");
        cfg.check().expect("valid");
        assert_eq!(cfg.base_port, 7_400);
        assert_eq!(cfg.targets[0].segment_bytes, 64 * 1_048_576);
        assert_eq!(cfg.targets[0].index_path(), PathBuf::from("/tmp/t0.index.redb"));
    }

    #[test]
    fn crr_section_parses_and_duplicate_peers_are_refused() {
        let peer =
            "[[crr.peers]]\nregion = \"r2\"\nca_cert = \"r2.pem\"\nserver_name = \"r2\"\naddrs = [\"10.0.0.1:7700\"]\n";
        let text = format!("{MIN}\n[crr]\ncert = \"r.pem\"\nkey = \"r.key\"\n{peer}");
        let cfg: NodeConfig = toml::from_str(&text).expect("parse");
        cfg.check().expect("valid");
        let crr = cfg.crr.expect("crr");
        assert_eq!((crr.poll_ms, crr.peers.len(), crr.peers[0].addrs.len()), (50, 1, 1));
        let twice: NodeConfig = toml::from_str(&format!("{text}{peer}")).expect("parse");
        assert!(matches!(twice.check(), Err(ConfigError::Invalid(m)) if m.contains("appears twice")));
        assert!(toml::from_str::<NodeConfig>(&format!("{text}bogus = 1\n")).is_err(), "unknown key in a peer");
    }

    #[test]
    fn unknown_keys_and_bad_cores_are_refused() {
        assert!(toml::from_str::<NodeConfig>(&format!("{MIN}\nbogus = 1")).is_err());
        let mut cfg: NodeConfig = toml::from_str(MIN).expect("parse");
        cfg.targets[0].core = 5;
        assert!(matches!(cfg.check(), Err(ConfigError::Invalid(m)) if m.contains("core 5")));
    }
}
