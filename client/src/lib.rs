//! Tessera's Rust SDK: an async client for buckets and objects in a
//! zone-redundant, erasure-coded region, over QUIC.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera_client::ClientError> {
//! let config = tessera_client::ClientConfig::load("client.toml".as_ref())?;
//! let client = tessera_client::Client::connect(config).await?;
//! client.create_bucket("photos", Default::default()).await?;
//! client.put("photos", "cat.jpg", b"...".to_vec()).await?;
//! let bytes = client.get("photos", "cat.jpg", Default::default()).await?.bytes().await?;
//! # Ok(()) }
//! ```

mod access;
mod body;
mod client;
mod config;
mod crr;
mod error;
mod health;
mod list;
mod listing;
mod map_sign;
mod peer;
mod read;
mod registry;
mod repair;
mod secrets;
mod seeds;
mod transport;
mod udp;
mod view;
mod write;

pub use access::BucketAccessView;
pub use body::ObjectBody;
pub use client::{
    BucketOptions, Client, GetOptions, GetResult, ListPage, ListRequest, PushReport, PutOptions, PutReceipt,
    VersionsPage,
};
pub use config::ClientConfig;
pub use crr::VersionHeld;
pub use error::ClientError;
pub use list::{merge_bucket_pages, merge_pages, merge_version_pages};
pub use map_sign::{verify_map, verify_signed, MapSigner};
pub use peer::{load_certs, load_key, tls_provider, PeerConfig, PeerLink, CRR_ALPN};
pub use read::{group_view, reconstruct};
pub use secrets::{new_access_key, SecretsKey};
pub use seeds::{ConnectReport, SeedAttempt, SeedOutcome, SeedSource};
pub use tessera_wire::{BucketInfo, ByteRange, ClusterMap, ListEntry, ObjectMeta, StorageClass, VersionId};
pub use transport::ALPN;
pub use view::MapView;
pub use write::{encode_stripe, StripePool};
