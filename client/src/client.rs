//! The object API. Uploads are cut into stripes of `stripe_bytes`; up to
//! `stripes_in_flight` stripes are on the wire at once, so memory per
//! transfer is bounded whatever the object size. The last stripe carries
//! the metadata record and is sent only after every earlier stripe is
//! acknowledged: a version becomes visible only when all of it is durable.

use std::collections::VecDeque;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};

use tessera_wire::{
    validate_bucket_name, validate_key, BucketInfo, ByteRange, CreateBucket, DeleteObject, GetBucket, GetShard, Head,
    Hlc, ListEntry, NodeStatus, ObjectMeta, PutShard, Request, Response, ShardIndex, StorageClass, StripeIndex,
    TargetId, VersionId,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use crate::body::ObjectBody;
use crate::routing::Layout;
use crate::transport::Transport;
use crate::{ClientConfig, ClientError};

/// A connected client. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: ClientConfig,
    pub(crate) transport: Transport,
    layout: Layout,
    hlc: Mutex<Hlc>,
}

/// Settings of a new bucket.
#[derive(Clone, Debug, Default)]
pub struct BucketOptions {
    /// Keep every version; deletes write markers.
    pub versioned: bool,
    /// Default storage class.
    pub storage_class: StorageClass,
}

/// Settings of an upload.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// MIME type.
    pub content_type: Option<String>,
    /// User metadata.
    pub user_meta: Vec<(String, String)>,
    /// Storage class (default: Standard).
    pub storage_class: StorageClass,
}

/// Settings of a download.
#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    /// A specific version (default: latest).
    pub version: Option<VersionId>,
    /// Only these bytes.
    pub range: Option<ByteRange>,
}

/// Proof of a durable write: which version, on which target, when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutReceipt {
    /// The version written.
    pub version: VersionId,
    /// Object size.
    pub size_bytes: u64,
    /// crc32c of the object.
    pub content_crc32c: u32,
    /// Targets that acknowledged it durably.
    pub targets: Vec<TargetId>,
}

/// A download in progress.
pub struct GetResult {
    /// Metadata of the version being read.
    pub meta: ObjectMeta,
    /// The bytes, as a stream of chunks.
    pub body: ObjectBody,
}

impl GetResult {
    /// Read the whole body into memory (convenience for small objects).
    pub async fn bytes(mut self) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        while let Some(chunk) = self.body.next_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }
}

/// A list request.
#[derive(Clone, Debug, Default)]
pub struct ListRequest {
    /// Only keys with this prefix.
    pub prefix: String,
    /// Roll keys up at this separator (usually "/").
    pub delimiter: Option<String>,
    /// Continue after this token (from the previous page).
    pub continuation: Option<String>,
    /// Page size (default and max 1000).
    pub limit: Option<u32>,
}

/// One page of a listing.
#[derive(Clone, Debug)]
pub struct ListPage {
    /// Keys, in order.
    pub entries: Vec<ListEntry>,
    /// Rolled-up prefixes.
    pub common_prefixes: Vec<String>,
    /// Pass as `continuation` for the next page; `None` at the end.
    pub next: Option<String>,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn unexpected(request: &'static str, got: Response) -> ClientError {
    ClientError::UnexpectedReply { request, got: format!("{got:?}").chars().take(200).collect() }
}

impl Client {
    /// Connect to the node named in `cfg` and fetch its layout.
    pub async fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        cfg.check()?;
        let seed: SocketAddr = cfg
            .endpoint
            .to_socket_addrs()
            .map_err(|e| ClientError::Config { detail: format!("endpoint {:?}: {e}", cfg.endpoint) })?
            .next()
            .ok_or_else(|| ClientError::Config {
                detail: format!("endpoint {:?} resolves to nothing", cfg.endpoint),
            })?;
        let transport = Transport::new(&cfg)?;
        let reply = transport.call(seed, &Request::NodeStatus(NodeStatus {}), &[]).await?;
        let Response::NodeStatusOk(status) = reply.response else {
            return Err(unexpected("node status", reply.response));
        };
        let layout = Layout::from_status(seed, &status);
        let tag = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(now_ms());
            h.finish()
        };
        Ok(Client { inner: Arc::new(Inner { cfg, transport, layout, hlc: Mutex::new(Hlc::new(tag)) }) })
    }

    fn new_version(&self) -> VersionId {
        match self.inner.hlc.lock() {
            Ok(mut h) => h.tick(now_ms()),
            Err(poisoned) => poisoned.into_inner().tick(now_ms()),
        }
    }

    fn route(&self, bucket: &str, key: &str) -> Result<(TargetId, SocketAddr), ClientError> {
        validate_bucket_name(bucket)?;
        validate_key(key)?;
        self.inner
            .layout
            .route(bucket, key)
            .ok_or_else(|| ClientError::Config { detail: "node reports no targets".into() })
    }

    /// Create a bucket on every target (idempotent for the same settings).
    pub async fn create_bucket(&self, name: &str, opts: BucketOptions) -> Result<BucketInfo, ClientError> {
        validate_bucket_name(name)?;
        let info = BucketInfo {
            name: name.to_owned(),
            versioned: opts.versioned,
            owner: self.inner.cfg.owner.clone(),
            created_ms: now_ms(),
            storage_class: opts.storage_class,
        };
        let mut last = None;
        for (target, addr) in self.inner.layout.all() {
            let req = Request::CreateBucket(CreateBucket { target, info: info.clone() });
            let reply = self.inner.transport.call(addr, &req, &[]).await?;
            match reply.response {
                Response::CreateBucketOk(b) => last = Some(b),
                other => return Err(unexpected("create bucket", other)),
            }
        }
        last.ok_or_else(|| ClientError::Config { detail: "node reports no targets".into() })
    }

    /// A bucket's settings.
    pub async fn bucket(&self, name: &str) -> Result<BucketInfo, ClientError> {
        validate_bucket_name(name)?;
        let (target, addr) = self
            .inner
            .layout
            .all()
            .next()
            .ok_or_else(|| ClientError::Config { detail: "node reports no targets".into() })?;
        let reply =
            self.inner.transport.call(addr, &Request::GetBucket(GetBucket { target, name: name.into() }), &[]).await?;
        match reply.response {
            Response::GetBucketOk(b) => Ok(b),
            other => Err(unexpected("get bucket", other)),
        }
    }

    /// Store an object held in memory.
    pub async fn put(&self, bucket: &str, key: &str, data: Vec<u8>) -> Result<PutReceipt, ClientError> {
        self.put_stream(bucket, key, &data[..], PutOptions::default()).await
    }

    /// Store an object read from `source`, stripe by stripe, with memory
    /// bounded by `stripes_in_flight` stripes.
    pub async fn put_stream(
        &self,
        bucket: &str,
        key: &str,
        mut source: impl AsyncRead + Unpin,
        opts: PutOptions,
    ) -> Result<PutReceipt, ClientError> {
        let (target, addr) = self.route(bucket, key)?;
        let version = self.new_version();
        let stripe_bytes = self.inner.cfg.stripe_bytes as usize;
        let mut in_flight: VecDeque<JoinHandle<Result<(), ClientError>>> = VecDeque::new();
        let mut crc = 0u32;
        let mut size = 0u64;
        let mut current = read_stripe(&mut source, stripe_bytes).await?;
        let mut index = 0u32;
        loop {
            let next =
                if current.len() == stripe_bytes { read_stripe(&mut source, stripe_bytes).await? } else { Vec::new() };
            crc = crc32c::crc32c_append(crc, &current);
            size += current.len() as u64;
            if next.is_empty() {
                break;
            }
            if in_flight.len() >= self.inner.cfg.stripes_in_flight {
                if let Some(h) = in_flight.pop_front() {
                    join(h).await?;
                }
            }
            let req = self.put_request(target, bucket, key, version, index, &current, None);
            let client = self.clone();
            in_flight.push_back(tokio::spawn(async move { client.send_put(addr, req, current).await.map(|_| ()) }));
            index = index.checked_add(1).ok_or(ClientError::Config { detail: "object has too many stripes".into() })?;
            current = next;
        }
        // Every earlier stripe must be durable before the commit goes out.
        while let Some(h) = in_flight.pop_front() {
            join(h).await?;
        }
        let stripe_count = if size == 0 { 0 } else { index + 1 };
        let meta = ObjectMeta {
            key: key.to_owned(),
            version,
            size_bytes: size,
            stripe_bytes: stripe_bytes as u32,
            stripe_count,
            content_crc32c: crc,
            created_ms: version.millis(),
            content_type: opts.content_type,
            owner: self.inner.cfg.owner.clone(),
            user_meta: opts.user_meta,
            storage_class: opts.storage_class,
            delete_marker: false,
        };
        tessera_wire::check_meta(tessera_wire::Opcode::PutShard, &meta)?;
        let req = self.put_request(target, bucket, key, version, index, &current, Some(meta));
        let committed = self.send_put(addr, req, current).await?;
        if !committed {
            return Err(ClientError::UnexpectedReply {
                request: "put commit",
                got: "shard stored but not committed".into(),
            });
        }
        Ok(PutReceipt { version, size_bytes: size, content_crc32c: crc, targets: vec![target] })
    }

    #[allow(clippy::too_many_arguments)]
    fn put_request(
        &self,
        target: TargetId,
        bucket: &str,
        key: &str,
        version: VersionId,
        stripe: u32,
        data: &[u8],
        meta: Option<ObjectMeta>,
    ) -> Request {
        Request::PutShard(PutShard {
            target,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version,
            stripe: StripeIndex(stripe),
            shard: ShardIndex(0),
            shard_crc32c: crc32c::crc32c(data),
            meta,
        })
    }

    async fn send_put(&self, addr: SocketAddr, req: Request, data: Vec<u8>) -> Result<bool, ClientError> {
        let reply = self.inner.transport.call(addr, &req, &data).await?;
        match reply.response {
            Response::PutShardOk(ok) => Ok(ok.committed),
            other => Err(unexpected("put shard", other)),
        }
    }

    /// Metadata of the latest (or a given) version.
    pub async fn head(&self, bucket: &str, key: &str, version: Option<VersionId>) -> Result<ObjectMeta, ClientError> {
        let (target, addr) = self.route(bucket, key)?;
        let req = Request::Head(Head { target, bucket: bucket.into(), key: key.into(), version });
        match self.inner.transport.call(addr, &req, &[]).await?.response {
            Response::HeadOk(m) => Ok(m),
            other => Err(unexpected("head", other)),
        }
    }

    /// Start a download; the body streams with a bounded read-ahead.
    pub async fn get(&self, bucket: &str, key: &str, opts: GetOptions) -> Result<GetResult, ClientError> {
        let (target, addr) = self.route(bucket, key)?;
        let meta = self.head(bucket, key, opts.version).await?;
        let (offset, len) = match opts.range {
            Some(r) => {
                if r.offset.checked_add(r.len).is_none_or(|end| end > meta.size_bytes) {
                    return Err(ClientError::InvalidRange {
                        offset: r.offset,
                        len: r.len,
                        size_bytes: meta.size_bytes,
                    });
                }
                (r.offset, r.len)
            }
            None => (0, meta.size_bytes),
        };
        let body = ObjectBody::new(
            self.clone(),
            target,
            addr,
            bucket.into(),
            key.into(),
            meta.clone(),
            offset,
            len,
            opts.range.is_none(),
        );
        Ok(GetResult { meta, body })
    }

    /// Fetch one stripe (or part of it) and verify its checksum.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn fetch_stripe(
        &self,
        target: TargetId,
        addr: SocketAddr,
        bucket: String,
        key: String,
        version: VersionId,
        stripe: u32,
        range: Option<ByteRange>,
    ) -> Result<Vec<u8>, ClientError> {
        let req = Request::GetShard(GetShard {
            target,
            bucket,
            key: key.clone(),
            version: Some(version),
            stripe: StripeIndex(stripe),
            shard: ShardIndex(0),
            range,
        });
        let mut reply = self.inner.transport.call(addr, &req, &[]).await?;
        let Response::GetShardOk(ok) = &reply.response else { return Err(unexpected("get shard", reply.response)) };
        let expected = ok.payload_crc32c;
        let data = self.inner.transport.read_payload(&mut reply, addr).await?;
        let computed = crc32c::crc32c(&data);
        if computed != expected {
            return Err(ClientError::Integrity { what: format!("{key} stripe {stripe}"), expected, computed });
        }
        Ok(data)
    }

    /// Delete the object (unversioned: every version; versioned: writes a
    /// delete marker) or one version. Returns the marker written, if any.
    pub async fn delete(
        &self,
        bucket: &str,
        key: &str,
        version: Option<VersionId>,
    ) -> Result<Option<VersionId>, ClientError> {
        let (target, addr) = self.route(bucket, key)?;
        let req = Request::Delete(DeleteObject {
            target,
            bucket: bucket.into(),
            key: key.into(),
            version,
            marker_version: self.new_version(),
        });
        match self.inner.transport.call(addr, &req, &[]).await?.response {
            Response::DeleteOk(d) => Ok(d.marker),
            other => Err(unexpected("delete", other)),
        }
    }

    /// One page of keys, merged from every target.
    pub async fn list(&self, bucket: &str, req: ListRequest) -> Result<ListPage, ClientError> {
        validate_bucket_name(bucket)?;
        let limit =
            req.limit.unwrap_or(tessera_wire::limits::LIST_LIMIT_MAX).clamp(1, tessera_wire::limits::LIST_LIMIT_MAX);
        let mut pages = Vec::new();
        for (target, addr) in self.inner.layout.all() {
            let r = Request::List(tessera_wire::List {
                target,
                bucket: bucket.into(),
                prefix: req.prefix.clone(),
                delimiter: req.delimiter.clone(),
                start_after: req.continuation.clone(),
                limit,
            });
            match self.inner.transport.call(addr, &r, &[]).await?.response {
                Response::ListOk(p) => pages.push(p),
                other => return Err(unexpected("list", other)),
            }
        }
        let (entries, common_prefixes, next) = crate::merge_pages(pages, limit as usize);
        Ok(ListPage { entries, common_prefixes, next })
    }
}

async fn join(h: JoinHandle<Result<(), ClientError>>) -> Result<(), ClientError> {
    h.await.map_err(|e| ClientError::Connection { addr: String::new(), detail: format!("upload task failed: {e}") })?
}

async fn read_stripe(source: &mut (impl AsyncRead + Unpin), stripe_bytes: usize) -> Result<Vec<u8>, ClientError> {
    let mut buf = vec![0u8; stripe_bytes];
    let mut filled = 0;
    while filled < stripe_bytes {
        let n = source.read(&mut buf[filled..]).await.map_err(ClientError::Source)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}
