//! Where a job's operations go: a region through the client SDK, or one
//! storage engine on a local file (the same code a node core runs, minus
//! the network), so the engine can be set beside fio on the same disk.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use tessera_client::{BucketOptions, Client, ClientConfig, ClientError, GetOptions, ListRequest};
use tessera_node::engine::{single_shard_meta, Engine, EngineConfig, EngineError};
use tessera_node::io::{BufPool, Io, Psync, Uring, ALIGN_BYTES};
use tessera_wire::{BucketInfo, Hlc, ShardIndex, StorageClass, StripeIndex, TargetId, VersionId};

/// A failed operation: a short kind (for "errors by kind") and the detail.
#[derive(Debug)]
pub(crate) struct OpError {
    pub(crate) kind: &'static str,
    pub(crate) detail: String,
}

/// One page of a listing: (key, size) pairs and where to go on.
pub(crate) type Page = (Vec<(String, u64)>, Option<String>);

/// The operations a job issues.
pub(crate) trait Target {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), OpError>;
    async fn get(&self, key: &str) -> Result<Vec<u8>, OpError>;
    async fn delete(&self, key: &str) -> Result<(), OpError>;
    async fn list(&self, prefix: &str, after: Option<String>, limit: u32) -> Result<Page, OpError>;
}

fn client_error(e: ClientError) -> OpError {
    let kind = match &e {
        ClientError::Timeout { .. } => "timeout",
        ClientError::Unavailable { .. } => "unavailable",
        ClientError::Connection { .. } => "connection",
        ClientError::NoSuchKey { .. } | ClientError::VersionGone { .. } => "not_found",
        ClientError::NoSuchBucket { .. } => "no_such_bucket",
        ClientError::TargetFull { .. } => "full",
        ClientError::Corrupt { .. } | ClientError::Integrity { .. } => "corrupt",
        ClientError::StaleMap { .. } => "stale_map",
        ClientError::Server { .. } => "server",
        _ => "other",
    };
    OpError { kind, detail: e.to_string() }
}

/// A region, reached with a client config as the `tessera` CLI uses.
pub(crate) struct Region {
    client: Client,
    bucket: String,
}

impl Region {
    /// Connect and make sure the bucket exists, waiting up to 30 s for a
    /// region that is still starting (as right after `tessera dev`).
    pub(crate) async fn connect(config: &Path, bucket: &str) -> Result<Region, String> {
        let cfg = ClientConfig::load(config).map_err(|e| format!("client config {}: {e}", config.display()))?;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let attempt = async {
                let client = Client::connect(cfg.clone()).await?;
                match client.create_bucket(bucket, BucketOptions::default()).await {
                    Ok(_) | Err(ClientError::BucketExists { .. }) => Ok(client),
                    Err(e) => Err(e),
                }
            };
            match attempt.await {
                Ok(client) => return Ok(Region { client, bucket: bucket.to_owned() }),
                Err(
                    e
                    @ (ClientError::Unavailable { .. } | ClientError::Connection { .. } | ClientError::Timeout { .. }),
                ) if tokio::time::Instant::now() < deadline => {
                    tracing::debug!(error = %e, "region not ready yet");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(format!("region (bucket {bucket}) did not answer within 30 s: {e}")),
            }
        }
    }
}

impl Target for Region {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), OpError> {
        self.client.put(&self.bucket, key, data).await.map(|_| ()).map_err(client_error)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, OpError> {
        let r = self.client.get(&self.bucket, key, GetOptions::default()).await.map_err(client_error)?;
        r.bytes().await.map_err(client_error)
    }

    async fn delete(&self, key: &str) -> Result<(), OpError> {
        self.client.delete(&self.bucket, key).await.map(|_| ()).map_err(client_error)
    }

    async fn list(&self, prefix: &str, after: Option<String>, limit: u32) -> Result<Page, OpError> {
        let req = ListRequest { prefix: prefix.to_owned(), delimiter: None, continuation: after, limit: Some(limit) };
        let page = self.client.list(&self.bucket, req).await.map_err(client_error)?;
        Ok((page.entries.into_iter().map(|e| (e.key, e.size_bytes)).collect(), page.next))
    }
}

fn engine_error(e: EngineError) -> OpError {
    let kind = match &e {
        EngineError::NoSuchKey { .. } => "not_found",
        EngineError::ChecksumMismatch { .. } => "corrupt",
        _ => "engine",
    };
    OpError { kind, detail: e.to_string() }
}

const ENGINE_BUCKET: &str = "bench";

/// One target's engine on a local file; objects are single shards, each
/// written with its metadata and then committed, as a node stores them.
pub(crate) struct Local {
    engine: Engine,
    clock: RefCell<Hlc>,
    /// Latest version written per key, so a read is one index lookup, as
    /// a node's is (the client names the version it reads).
    latest: RefCell<std::collections::HashMap<String, VersionId>>,
    path: PathBuf,
    index: PathBuf,
    device: bool,
}

/// The target id tessera-bench formats with: a device holding a node's
/// target (another id) is refused by the engine, not overwritten.
const BENCH_TARGET: TargetId = TargetId(0xbe9c_0001);

const SEGMENT: u64 = 64 << 20;

/// A block device's size.
fn device_bytes(path: &Path) -> Result<u64, String> {
    use std::io::Seek;
    let mut f = std::fs::File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
    f.seek(std::io::SeekFrom::End(0)).map_err(|e| format!("sizing {}: {e}", path.display()))
}

impl Local {
    /// Open an engine on `path`. A regular file is replaced by a fresh
    /// one (and removed at the end); a block device is used whole: a
    /// zeroed device is formatted, a device tessera-bench formatted before
    /// is reopened (its objects are reused, as fio reuses a laid-out
    /// file), and anything else (a node's target, other data) is refused
    /// by the engine. Must run inside a `LocalSet`.
    pub(crate) async fn open(path: &Path, capacity: u64, uring: bool) -> Result<Local, String> {
        use std::os::unix::fs::FileTypeExt;
        let device = std::fs::metadata(path).map(|m| m.file_type().is_block_device()).unwrap_or(false);
        let index = if device {
            let name = path.file_name().map_or("device".into(), |n| n.to_string_lossy().into_owned());
            std::env::temp_dir().join(format!("tessera-bench-{name}.index.redb"))
        } else {
            PathBuf::from(format!("{}.index.redb", path.display()))
        };
        let capacity = if device {
            device_bytes(path)?
        } else {
            if let Ok(m) = std::fs::metadata(path) {
                if !m.is_file() {
                    return Err(format!("{} is neither a regular file nor a block device", path.display()));
                }
            }
            for p in [path, index.as_path()] {
                match std::fs::remove_file(p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(format!("removing the previous run's {}: {e}", p.display())),
                }
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            // Room for the reserve, the open segment and compaction beside the data.
            (capacity.max(4 * SEGMENT) + 4 * SEGMENT).next_multiple_of(SEGMENT)
        };
        let io = if uring {
            let ring = Uring::new().map_err(|e| format!("io_uring is not available here ({e}); use ioengine=psync"))?;
            tokio::task::spawn_local(ring.clone().run());
            Io::Uring(ring)
        } else {
            Io::Psync(Psync)
        };
        let cfg = EngineConfig {
            target: BENCH_TARGET,
            path: path.to_owned(),
            index_path: index.clone(),
            capacity_bytes: capacity,
            segment_bytes: SEGMENT,
            reserve_segments: 2,
            checkpoint_interval: Duration::from_secs(5),
            compaction_live_fraction_max: 0.5,
            placement_groups: 0,
        };
        let engine = Engine::open(cfg, io, BufPool::default()).await.map_err(|e| {
            let hint =
                if device { " (tessera-bench only takes a zeroed device or one it formatted itself)" } else { "" };
            format!("opening the engine on {}: {e}{hint}", path.display())
        })?;
        engine
            .create_bucket(BucketInfo {
                name: ENGINE_BUCKET.into(),
                versioned: false,
                owner: "tessera-bench".into(),
                created_ms: 0,
                storage_class: StorageClass::Standard,
            })
            .await
            .map_err(|e| format!("creating the bench bucket: {e}"))?;
        Ok(Local {
            engine,
            clock: RefCell::new(Hlc::new(0x7e55)),
            latest: RefCell::default(),
            path: path.to_owned(),
            index,
            device,
        })
    }

    /// Close the engine; a file and its index are removed (the engine's
    /// format is of no use to anything else), a device is left formatted.
    pub(crate) async fn close(self) {
        let _ = self.engine.close().await;
        if !self.device {
            let _ = std::fs::remove_file(&self.path);
            let _ = std::fs::remove_file(&self.index);
        }
    }

    fn version(&self) -> VersionId {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.clock.borrow_mut().tick(now)
    }
}

impl Target for Local {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), OpError> {
        let mut buf = self.engine.record_buffer(data.len()).map_err(engine_error)?;
        buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + data.len()].copy_from_slice(&data);
        let crc = crc32c::crc32c(&data);
        let v = self.version();
        let m = single_shard_meta(key, v, data.len(), crc, "tessera-bench");
        self.engine
            .put_shard(ENGINE_BUCKET, key, v, StripeIndex(0), ShardIndex(0), crc, Some(m), buf, data.len())
            .await
            .map_err(engine_error)?;
        self.engine.commit(ENGINE_BUCKET, key, v).await.map_err(engine_error)?;
        let mut latest = self.latest.borrow_mut();
        let slot = latest.entry(key.to_owned()).or_insert(v);
        *slot = (*slot).max(v);
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, OpError> {
        let known = self.latest.borrow().get(key).copied();
        let version = match known {
            Some(v) => v,
            None => self.engine.head(ENGINE_BUCKET, key, None).map_err(engine_error)?.version,
        };
        let r = self
            .engine
            .get_shard(ENGINE_BUCKET, key, version, StripeIndex(0), ShardIndex(0), None)
            .await
            .map_err(engine_error)?;
        Ok(r.buf.as_slice()[r.range].to_vec())
    }

    async fn delete(&self, key: &str) -> Result<(), OpError> {
        let m = self.engine.head(ENGINE_BUCKET, key, None).map_err(engine_error)?;
        let marker = self.version();
        self.engine.delete(ENGINE_BUCKET, key, Some(m.version), marker).await.map_err(engine_error)?;
        self.latest.borrow_mut().remove(key);
        Ok(())
    }

    async fn list(&self, prefix: &str, after: Option<String>, limit: u32) -> Result<Page, OpError> {
        let page = self.engine.list(ENGINE_BUCKET, prefix, None, after.as_deref(), limit).map_err(engine_error)?;
        let next = page.entries.last().map(|e| e.key.clone()).filter(|_| page.truncated);
        Ok((page.entries.into_iter().map(|e| (e.key, e.size_bytes)).collect(), next))
    }
}

/// Either target, so a job's code is written once.
pub(crate) enum Any {
    Region(Region),
    Local(Local),
}

impl Target for Rc<Any> {
    async fn put(&self, key: &str, data: Vec<u8>) -> Result<(), OpError> {
        match &**self {
            Any::Region(r) => r.put(key, data).await,
            Any::Local(l) => l.put(key, data).await,
        }
    }
    async fn get(&self, key: &str) -> Result<Vec<u8>, OpError> {
        match &**self {
            Any::Region(r) => r.get(key).await,
            Any::Local(l) => l.get(key).await,
        }
    }
    async fn delete(&self, key: &str) -> Result<(), OpError> {
        match &**self {
            Any::Region(r) => r.delete(key).await,
            Any::Local(l) => l.delete(key).await,
        }
    }
    async fn list(&self, prefix: &str, after: Option<String>, limit: u32) -> Result<Page, OpError> {
        match &**self {
            Any::Region(r) => r.list(prefix, after, limit).await,
            Any::Local(l) => l.list(prefix, after, limit).await,
        }
    }
}
