//! Tessera's Rust SDK: an async client for buckets and objects over QUIC.
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

mod body;
mod client;
mod config;
mod error;
mod list;
mod routing;
mod transport;

pub use body::ObjectBody;
pub use client::{BucketOptions, Client, GetOptions, GetResult, ListPage, ListRequest, PutOptions, PutReceipt};
pub use config::ClientConfig;
pub use error::ClientError;
pub use list::merge_pages;
pub use tessera_wire::{BucketInfo, ByteRange, ListEntry, ObjectMeta, StorageClass, VersionId};
