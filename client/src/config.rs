//! `client.toml`: where the node is and how to trust it.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::ClientError;

/// Client settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// `host:port` of any core of the node (its layout is fetched from there).
    pub endpoint: String,
    /// Name the node's certificate is issued for.
    #[serde(default = "default_server_name")]
    pub server_name: String,
    /// PEM file of the CA that signed the node certificates.
    pub ca_cert: PathBuf,
    /// Bytes per stripe for uploads (default 1 MiB; at most 4 MiB).
    #[serde(default = "default_stripe_bytes")]
    pub stripe_bytes: u32,
    /// Requests one transfer keeps in flight (bounds memory to about this
    /// many stripes per upload or download). Default 8.
    #[serde(default = "default_in_flight")]
    pub stripes_in_flight: usize,
    /// Owner recorded on buckets and objects.
    #[serde(default = "default_owner")]
    pub owner: String,
    /// Per-request timeout in milliseconds. Default 30000.
    #[serde(default = "default_timeout_ms")]
    pub request_timeout_ms: u64,
}

fn default_server_name() -> String {
    "localhost".into()
}
fn default_stripe_bytes() -> u32 {
    1_048_576
}
fn default_in_flight() -> usize {
    8
}
fn default_owner() -> String {
    "default".into()
}
fn default_timeout_ms() -> u64 {
    30_000
}

impl ClientConfig {
    /// Read a config file.
    pub fn load(path: &Path) -> Result<ClientConfig, ClientError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ClientError::Config { detail: format!("cannot read {}: {e}", path.display()) })?;
        let mut cfg: ClientConfig =
            toml::from_str(&text).map_err(|e| ClientError::Config { detail: format!("{}: {e}", path.display()) })?;
        if cfg.ca_cert.is_relative() {
            if let Some(dir) = path.parent() {
                cfg.ca_cert = dir.join(&cfg.ca_cert);
            }
        }
        cfg.check()?;
        Ok(cfg)
    }

    /// Check value ranges.
    pub fn check(&self) -> Result<(), ClientError> {
        let max = tessera_wire::limits::SHARD_BYTES_MAX;
        if self.stripe_bytes == 0 || u64::from(self.stripe_bytes) > max {
            return Err(ClientError::Config {
                detail: format!("stripe_bytes {} must be 1..={max}", self.stripe_bytes),
            });
        }
        if self.stripes_in_flight == 0 || self.stripes_in_flight > 256 {
            return Err(ClientError::Config {
                detail: format!("stripes_in_flight {} must be 1..=256", self.stripes_in_flight),
            });
        }
        Ok(())
    }
}
