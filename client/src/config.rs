//! `client.toml`: where the node is and how to trust it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ClientError;

/// Client settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// `host:port` of any core of any node (the cluster map is fetched from
    /// there; later from any node in the map).
    #[serde(default)]
    pub endpoint: String,
    /// More seeds. All seeds are tried concurrently, each `seed_stagger_ms`
    /// after the one before ("happy eyeballs"), and the first map that
    /// answers wins: list nodes of every zone, so a client starts while any
    /// one zone is down without waiting on it.
    #[serde(default)]
    pub endpoints: Vec<String>,
    /// Pause before trying the next seed while earlier ones have not
    /// answered yet. Default 50.
    #[serde(default = "default_seed_stagger_ms")]
    pub seed_stagger_ms: u64,
    /// Region name. Names the on-disk copy of the last good cluster map
    /// (with a fingerprint of the CA certificate).
    #[serde(default)]
    pub region: Option<String>,
    /// Keep the last good cluster map on disk and use its nodes when every
    /// seed is down (a newer epoch from any node always replaces it).
    /// Default true.
    #[serde(default = "default_true")]
    pub map_cache: bool,
    /// Where the map copy lives. Default `$TESSERA_CACHE_DIR`, else
    /// `$XDG_CACHE_HOME/tessera`, else `~/.cache/tessera`.
    #[serde(default)]
    pub map_cache_dir: Option<PathBuf>,
    /// Name the node's certificate is issued for.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// PEM file of the CA that signed the node certificates.
    pub ca_cert: PathBuf,
    /// PEM certificate naming this client's principal
    /// (`urn:tessera:ROLE:NAME`, issued by the region's CA). Every node
    /// requires one; the node authorizes requests as that principal.
    /// `tessera dev` writes `client.toml` with a user identity and
    /// `admin.toml` with an admin identity.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (keep it mode 0600).
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// PEM private key that signs cluster maps this config pushes (admin
    /// configs: `tessera push-map`, `tessera crr add`, ...). Nodes take
    /// only maps signed by a key their `map_keys` trust. Keep it mode 0600,
    /// and only where maps are made.
    #[serde(default)]
    pub map_key: Option<PathBuf>,
    /// The region's secrets key (32 bytes, hex), which seals access-key
    /// secrets before they enter the principal registry (`tessera admin
    /// key add`). Admin configs only; keep it mode 0600.
    #[serde(default)]
    pub secrets_key: Option<PathBuf>,
    /// Stripes one transfer keeps in flight (bounds memory to about this
    /// many stripes per upload or download). Default 4.
    #[serde(default = "default_in_flight")]
    pub stripes_in_flight: usize,
    /// UDP receive and send buffer the SDK asks the kernel for, in bytes
    /// (capped by `net.core.rmem_max`/`wmem_max`). A read's shard replies
    /// arrive from many nodes at once; a buffer too small for the burst
    /// drops its tail, which QUIC then waits ~25 ms to resend. 0 keeps
    /// the kernel's default. Default 8 MiB.
    #[serde(default = "default_udp_buffer_bytes")]
    pub udp_buffer_bytes: usize,
    /// Owner the client proposes for buckets and objects. Nodes record
    /// the principal of the client certificate instead for every user,
    /// gateway and admin; only nodes copying data keep the owner they
    /// send (repair, replication).
    #[serde(default = "default_owner")]
    pub owner: String,
    /// Per-request timeout in milliseconds. Default 30000.
    #[serde(default = "default_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Deadline for a QUIC handshake. Default 1000.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// A connection with no answer to keep-alives for this long is dead
    /// (a killed node sends nothing back). Default 3000.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// A request fails when its connection has received no packet at all
    /// (not even a keep-alive acknowledgement) for this long: a node that
    /// died is noticed this fast. Default 2000.
    #[serde(default = "default_silence_ms")]
    pub silence_ms: u64,
    /// How long an address that failed is skipped. Default 3000.
    #[serde(default = "default_down_ms")]
    pub down_ms: u64,
    /// Reads ask parity shards too when data shards have not all arrived
    /// after the slowest involved node's usual latency (smoothed latency
    /// plus four deviations), but never sooner than this. Default 50.
    #[serde(default = "default_hedge_ms")]
    pub hedge_ms: u64,
    /// ... and never later than this. Default 1000.
    #[serde(default = "default_hedge_max_ms")]
    pub hedge_max_ms: u64,
    /// A node whose smoothed latency exceeds this many times the median of
    /// all nodes (and `gray_floor_ms`) is skipped by reads for `down_ms`
    /// like a dead one: slow but alive ("gray") nodes must not slow every
    /// read. Writes still wait for it (they need every live member).
    /// Default 10.
    #[serde(default = "default_gray_factor")]
    pub gray_factor: f64,
    /// Latency under which no node is judged slow. Default 250.
    #[serde(default = "default_gray_floor_ms")]
    pub gray_floor_ms: u64,
    /// A write whose remaining shards are all in one silent zone waits this
    /// long before declaring the zone down and using the degraded rule.
    /// Default 500.
    #[serde(default = "default_zone_wait_ms")]
    pub zone_wait_ms: u64,
    /// A write whose other zones are all done while one zone is still
    /// busy waits this long, then declares that zone down for this write
    /// and uses the degraded rule (the zone's shards still finish in the
    /// background, or repair writes them). Bounds write latency when a
    /// zone is slow rather than dead. Default 1000.
    #[serde(default = "default_zone_lag_ms")]
    pub zone_lag_ms: u64,
    /// A write keeps trying a target that stopped answering (a node
    /// restarting) for this long, sending its stripes again when it is
    /// back, before leaving its shard to repair. Applies to objects of at
    /// most `stripes_in_flight` stripes (larger ones do not keep their
    /// sent stripes). Default 5000.
    #[serde(default = "default_shard_retry_ms")]
    pub shard_retry_ms: u64,
    /// Zone whose nodes answer listings (default: the first zone).
    #[serde(default)]
    pub zone: Option<String>,
}

fn default_shard_retry_ms() -> u64 {
    5_000
}
fn default_seed_stagger_ms() -> u64 {
    50
}
fn default_true() -> bool {
    true
}
fn default_connect_timeout_ms() -> u64 {
    1_000
}
fn default_idle_timeout_ms() -> u64 {
    3_000
}
fn default_silence_ms() -> u64 {
    2_000
}
fn default_down_ms() -> u64 {
    3_000
}
fn default_udp_buffer_bytes() -> usize {
    crate::udp::UDP_BUFFER_BYTES
}
fn default_hedge_ms() -> u64 {
    50
}
fn default_hedge_max_ms() -> u64 {
    1_000
}
fn default_gray_factor() -> f64 {
    10.0
}
fn default_gray_floor_ms() -> u64 {
    250
}
fn default_zone_lag_ms() -> u64 {
    1_000
}
fn default_zone_wait_ms() -> u64 {
    500
}

fn default_server_name() -> String {
    "localhost".into()
}
fn default_in_flight() -> usize {
    4
}
fn default_owner() -> String {
    "default".into()
}
fn default_timeout_ms() -> u64 {
    30_000
}

impl ClientConfig {
    /// Defaults for everything but where the region is and whom to trust.
    pub fn new(endpoint: String, server_name: String, ca_cert: std::path::PathBuf) -> ClientConfig {
        ClientConfig {
            endpoint,
            endpoints: Vec::new(),
            seed_stagger_ms: default_seed_stagger_ms(),
            region: None,
            map_cache: true,
            map_cache_dir: None,
            server_name,
            ca_cert,
            cert: None,
            key: None,
            map_key: None,
            secrets_key: None,
            stripes_in_flight: default_in_flight(),
            udp_buffer_bytes: default_udp_buffer_bytes(),
            owner: default_owner(),
            request_timeout_ms: default_timeout_ms(),
            connect_timeout_ms: default_connect_timeout_ms(),
            idle_timeout_ms: default_idle_timeout_ms(),
            silence_ms: default_silence_ms(),
            down_ms: default_down_ms(),
            hedge_ms: default_hedge_ms(),
            hedge_max_ms: default_hedge_max_ms(),
            gray_factor: default_gray_factor(),
            gray_floor_ms: default_gray_floor_ms(),
            zone_wait_ms: default_zone_wait_ms(),
            zone_lag_ms: default_zone_lag_ms(),
            shard_retry_ms: default_shard_retry_ms(),
            zone: None,
        }
    }

    /// The same settings acting as the principal that `cert` names.
    pub fn with_identity(mut self, cert: PathBuf, key: PathBuf) -> ClientConfig {
        self.cert = Some(cert);
        self.key = Some(key);
        self
    }

    /// Read a config file.
    pub fn load(path: &Path) -> Result<ClientConfig, ClientError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Config { detail: format!("cannot read {}: {e}", path.display()) })?;
        let mut cfg: ClientConfig =
            toml::from_str(&text).map_err(|e| ClientError::Config { detail: format!("{}: {e}", path.display()) })?;
        if let Some(dir) = path.parent() {
            if cfg.ca_cert.is_relative() {
                cfg.ca_cert = dir.join(&cfg.ca_cert);
            }
            for p in [cfg.cert.as_mut(), cfg.key.as_mut(), cfg.map_key.as_mut(), cfg.secrets_key.as_mut()]
                .into_iter()
                .flatten()
            {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
            if let Some(c) = cfg.map_cache_dir.as_mut().filter(|c| c.is_relative()) {
                *c = dir.join(&*c);
            }
        }
        cfg.check()?;
        Ok(cfg)
    }

    /// The seeds to fetch the first map from, in order.
    pub fn seeds(&self) -> Vec<&str> {
        std::iter::once(self.endpoint.as_str())
            .chain(self.endpoints.iter().map(String::as_str))
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// The directory of the on-disk map copy, if the copy is kept and a
    /// place for it is known.
    pub fn map_cache_path(&self) -> Option<PathBuf> {
        if !self.map_cache {
            return None;
        }
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        self.map_cache_dir
            .clone()
            .or_else(|| env("TESSERA_CACHE_DIR"))
            .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("tessera")))
            .or_else(|| env("HOME").map(|d| d.join(".cache").join("tessera")))
    }

    /// Check value ranges.
    pub fn check(&self) -> Result<(), ClientError> {
        if self.seeds().is_empty() {
            return Err(ClientError::Config {
                detail: "no endpoint: set endpoint or endpoints (host:port of nodes)".into(),
            });
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err(ClientError::Config {
                detail: "cert and key go together: set both (a client certificate and its private key)".into(),
            });
        }
        for (name, v) in [
            ("request_timeout_ms", self.request_timeout_ms),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("zone_wait_ms", self.zone_wait_ms),
            ("zone_lag_ms", self.zone_lag_ms),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("silence_ms", self.silence_ms),
        ] {
            if v == 0 {
                return Err(ClientError::Config { detail: format!("{name} must be positive") });
            }
        }
        if self.hedge_max_ms < self.hedge_ms {
            return Err(ClientError::Config {
                detail: format!("hedge_max_ms {} is below hedge_ms {}", self.hedge_max_ms, self.hedge_ms),
            });
        }
        if !(self.gray_factor >= 2.0 && self.gray_factor.is_finite()) {
            return Err(ClientError::Config { detail: format!("gray_factor {} must be at least 2", self.gray_factor) });
        }
        if self.stripes_in_flight == 0 || self.stripes_in_flight > 256 {
            return Err(ClientError::Config {
                detail: format!("stripes_in_flight {} must be 1..=256", self.stripes_in_flight),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_come_from_endpoint_then_endpoints_and_one_is_required() {
        let cfg: ClientConfig =
            toml::from_str("endpoints = [\"10.0.0.2:7400\", \"10.0.0.3:7400\"]\nca_cert = \"ca.pem\"\n")
                .expect("parse");
        assert_eq!(cfg.seeds(), ["10.0.0.2:7400", "10.0.0.3:7400"]);
        cfg.check().expect("endpoints alone are enough");
        let mut one = ClientConfig::new("10.0.0.1:7400".into(), "n".into(), "ca.pem".into());
        one.endpoints = vec!["10.0.0.2:7400".into()];
        assert_eq!(one.seeds(), ["10.0.0.1:7400", "10.0.0.2:7400"]);
        let none: ClientConfig = toml::from_str("ca_cert = \"ca.pem\"\n").expect("parse");
        let e = none.check().expect_err("no seed");
        assert!(e.to_string().contains("no endpoint"), "{e}");
    }
}
