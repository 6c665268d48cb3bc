//! The Tessera storage node: one executor thread per core, each with its own
//! io_uring, QUIC endpoint and storage targets.

mod admission;
mod authz;
pub mod cluster;
pub mod config;
mod crr;
pub mod engine;
mod executor;
pub mod io;
pub mod metrics;
pub mod registry;
mod repair;
pub mod run;
mod scrub;
mod server;
pub mod sweeper;
pub mod tls;

pub use config::{ConfigError, IoBackendChoice, NodeConfig, TargetConfig};
pub use executor::{start, NodeHandle, StartError};
