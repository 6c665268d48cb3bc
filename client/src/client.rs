//! The object API over a region: placement from the cluster map, the
//! two-phase zone-aware write (write.rs), systematic hedged reads
//! (read.rs), and listings merged from one zone's targets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use tessera_wire::{
    validate_bucket_name, validate_key, BucketInfo, ByteRange, CreateBucket, DeleteObject, GetBucket, GetMap, Hlc,
    ListEntry, ObjectMeta, Request, Response, StorageClass, TargetId, VersionId,
};

use crate::body::ObjectBody;
use crate::transport::Transport;
use crate::view::MapView;
use crate::{ClientConfig, ClientError};

/// A connected client. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) cfg: ClientConfig,
    pub(crate) transport: Arc<Transport>,
    view: RwLock<Arc<MapView>>,
    cache: Option<crate::seeds::MapCache>,
    pub(crate) report: crate::seeds::ConnectReport,
    hlc: Mutex<Hlc>,
    buckets: Mutex<HashMap<String, BucketInfo>>,
    pub(crate) pool: crate::write::StripePool,
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
    /// Storage class (default: the bucket's).
    pub storage_class: Option<StorageClass>,
    /// Access control (default: private).
    pub acl: tessera_wire::Acl,
}

/// Settings of a download.
#[derive(Clone, Debug, Default)]
pub struct GetOptions {
    /// A specific version (default: latest).
    pub version: Option<VersionId>,
    /// Only these bytes.
    pub range: Option<ByteRange>,
}

/// Proof of a durable write: which version, on which targets in which
/// zones, under which map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PutReceipt {
    /// The version written.
    pub version: VersionId,
    /// Object size.
    pub size_bytes: u64,
    /// crc32c of the object.
    pub content_crc32c: u32,
    /// Targets that had committed the version when it was acknowledged.
    pub targets: Vec<TargetId>,
    /// Their zones (names), sorted, without repeats.
    pub zones: Vec<String>,
    /// Cluster map epoch the write was placed by.
    pub map_epoch: u64,
    /// Storage class and its profile.
    pub storage_class: StorageClass,
    /// Acknowledged under the degraded rule (a zone was down): the missing
    /// shards are zone debt for repair.
    pub degraded: bool,
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

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Reads of the latest version that find it replaced try this many times.
const GET_ATTEMPTS: u32 = 8;

/// Whether targets saying "no such bucket" from `zones_saying` zones are
/// the region's word: a zone that was down when a bucket was made may not
/// know it yet (creation holds under the zone rule), so one zone is not
/// enough where there are two or more.
pub(crate) fn bucket_absence_believed(zones_saying: usize, zones_in_map: usize) -> bool {
    zones_saying >= 2 || zones_in_map < 2
}

pub(crate) fn unexpected(request: &'static str, got: Response) -> ClientError {
    ClientError::UnexpectedReply { request, got: format!("{got:?}").chars().take(200).collect() }
}

/// Versions of keys, as listed by `list_versions`.
#[derive(Clone, Debug)]
pub struct VersionsPage {
    /// (key ascending, version newest first).
    pub entries: Vec<ListEntry>,
    /// Pass as `after` for the next page; `None` at the end.
    pub next: Option<(String, VersionId)>,
}

impl Client {
    /// Fetch the cluster map and connect. The seeds are tried concurrently,
    /// staggered by `seed_stagger_ms`, and the first map wins; when none
    /// answers, the nodes of the on-disk copy of the last good map are
    /// tried the same way. A newer epoch always wins over the copy.
    pub async fn connect(cfg: ClientConfig) -> Result<Client, ClientError> {
        use crate::seeds::{self, ConnectReport, MapCache, SeedOutcome, SeedSource};
        cfg.check()?;
        let start = std::time::Instant::now();
        let transport = Arc::new(Transport::new(&cfg)?);
        let seed_addrs = seeds::resolve(&cfg.seeds())?;
        let stagger = std::time::Duration::from_millis(cfg.seed_stagger_ms);
        let cache = MapCache::for_config(&cfg);
        let cached = cache.as_ref().and_then(MapCache::load);
        let mut report = ConnectReport { cached_epoch: cached.as_ref().map(|v| v.map.epoch), ..Default::default() };
        let mut won = seeds::race(&transport, &seed_addrs, SeedSource::Config, stagger, start, &mut report).await;
        if won.is_none() {
            if let Some(c) = &cached {
                let tried: Vec<SocketAddr> = seed_addrs.iter().map(|(_, a)| *a).collect();
                let more: Vec<_> = seeds::node_addrs(c).into_iter().filter(|(_, a)| !tried.contains(a)).collect();
                tracing::info!(
                    nodes = more.len(),
                    epoch = c.map.epoch,
                    "no seed answered; trying the map copy's nodes"
                );
                won = seeds::race(&transport, &more, SeedSource::CachedMap, stagger, start, &mut report).await;
            }
        }
        let Some((fetched, by)) = won else {
            let failed: Vec<String> = report
                .attempts
                .iter()
                .filter_map(|a| match &a.outcome {
                    SeedOutcome::Failed(_, e) => Some(format!("{}: {e}", a.seed)),
                    _ => None,
                })
                .collect();
            // One seed and no copy: its own error, as before.
            if failed.len() == 1 && seed_addrs.len() == 1 {
                return Err(ClientError::Unavailable { detail: failed.join("") });
            }
            let copy = match &cached {
                Some(c) => format!(" (nor any node of the on-disk map copy, epoch {})", c.map.epoch),
                None => String::new(),
            };
            return Err(ClientError::Unavailable {
                detail: format!("no endpoint answered{copy}: {}", failed.join("; ")),
            });
        };
        let view = match cached {
            Some(c) if c.map.epoch > fetched.map.epoch && c.map.region == fetched.map.region => {
                tracing::info!(copy = c.map.epoch, answered = fetched.map.epoch, "the on-disk map copy is newer");
                report.answered_by = None;
                c
            }
            _ => {
                if report.cached_epoch != Some(fetched.map.epoch) {
                    if let Some(cache) = &cache {
                        cache.store(&fetched);
                    }
                }
                report.answered_by = Some(by);
                fetched
            }
        };
        report.epoch = view.map.epoch;
        report.elapsed = start.elapsed();
        tracing::debug!(report = %report, "connected");
        let tag = {
            use std::hash::{BuildHasher, Hasher};
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(now_ms());
            h.finish()
        };
        Ok(Client {
            inner: Arc::new(Inner {
                cfg,
                transport,
                view: RwLock::new(Arc::new(view)),
                cache,
                report,
                hlc: Mutex::new(Hlc::new(tag)),
                buckets: Mutex::new(HashMap::new()),
                pool: Default::default(),
            }),
        })
    }

    /// How this client found its first map: which seeds were tried, which
    /// answered, which were not waited for.
    pub fn connect_report(&self) -> &crate::seeds::ConnectReport {
        &self.inner.report
    }

    /// Zone of the seed that answered `connect` (alive a moment ago).
    pub(crate) fn home_zone(&self, view: &MapView) -> Option<usize> {
        let addr: SocketAddr = self.inner.report.answered_by.as_deref()?.parse().ok()?;
        Some(view.locs.values().find(|l| l.addr.ip() == addr.ip())?.zone)
    }

    /// `targets` in the order to ask when any one will do: those not
    /// marked down first, then those in the zone that answered `connect`.
    pub(crate) fn prefer_live(&self, view: &MapView, targets: &[TargetId]) -> Vec<TargetId> {
        let home = self.home_zone(view);
        let mut out = targets.to_vec();
        out.sort_by_key(|t| match view.locs.get(t) {
            Some(l) => (self.inner.transport.is_down(l.addr), Some(l.zone) != home),
            None => (true, true),
        });
        out
    }

    pub(crate) fn new_version(&self) -> VersionId {
        match self.inner.hlc.lock() {
            Ok(mut h) => h.tick(now_ms()),
            Err(poisoned) => poisoned.into_inner().tick(now_ms()),
        }
    }

    pub(crate) fn observe(&self, v: VersionId) {
        match self.inner.hlc.lock() {
            Ok(mut h) => h.observe(v),
            Err(poisoned) => poisoned.into_inner().observe(v),
        }
    }

    /// The settings this client was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.cfg
    }

    /// The cluster map this client places requests by.
    pub fn view(&self) -> Arc<MapView> {
        match self.inner.view.read() {
            Ok(v) => v.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Fetch the newest map any node of the current map has, and use it.
    /// Returns the epoch now in use.
    pub async fn refresh_map(&self) -> Result<u64, ClientError> {
        let current = self.view();
        let mut best: Option<MapView> = None;
        let mut last_err = None;
        let mut addrs: Vec<SocketAddr> = current.locs.values().map(|l| l.addr).collect();
        addrs.sort();
        addrs.dedup();
        for addr in addrs {
            match fetch_map(&self.inner.transport, addr).await {
                Ok(v) if best.as_ref().is_none_or(|b| v.map.epoch > b.map.epoch) => best = Some(v),
                Ok(_) => {}
                Err(e) => last_err = Some(e),
            }
            if best.as_ref().is_some_and(|b| b.map.epoch > current.map.epoch) {
                break;
            }
        }
        let Some(best) = best else {
            return Err(last_err.unwrap_or(ClientError::Unavailable { detail: "no node answered GetMap".into() }));
        };
        let epoch = best.map.epoch;
        if epoch > current.map.epoch {
            tracing::info!(from = current.map.epoch, to = epoch, "cluster map refreshed");
            if let Some(cache) = &self.inner.cache {
                cache.store(&best);
            }
            match self.inner.view.write() {
                Ok(mut v) => *v = Arc::new(best),
                Err(p) => *p.into_inner() = Arc::new(best),
            }
        }
        Ok(self.view().map.epoch)
    }

    /// Push a newer map to every node of it (admin). A node that already
    /// holds this epoch counts as done, so pushing the same map again is
    /// harmless (configuration management re-runs it until every node has
    /// it); a node holding a newer epoch refuses, since someone changed the
    /// map since this one was made.
    ///
    /// The map is signed with the config's `map_key`; without one the
    /// push fails before any node is asked.
    pub async fn push_map(&self, map: &tessera_wire::ClusterMap) -> Result<PushReport, ClientError> {
        let mut signed = tessera_wire::SignedMap::unsigned(map.clone())?;
        let Some(path) = &self.inner.cfg.map_key else {
            return Err(ClientError::Config {
                detail: format!(
                    "this config names no map_key, and nodes take only signed maps: add map_key = \"PATH\" (the \
                     region's map-signing key) to the admin's config, or sign the file first with `tessera admin map \
                     sign` (map epoch {})",
                    map.epoch
                ),
            });
        };
        crate::MapSigner::load(path)?.sign(&mut signed);
        self.push_signed_map(&signed).await
    }

    /// Push a map that carries its signature already (a map file signed
    /// where the key is kept, e.g. by `tessera admin map sign`); see
    /// [`Client::push_map`].
    pub async fn push_signed_map(&self, signed: &tessera_wire::SignedMap) -> Result<PushReport, ClientError> {
        let map = &signed.map;
        map.validate()?;
        let bytes = signed.to_wire();
        let mut report = PushReport::default();
        for zone in &map.zones {
            for node in &zone.nodes {
                let Some(&port) = node.ports.first() else { continue };
                let addr = SocketAddr::new(node.host, port);
                let name = node.name.clone();
                // Its epoch only (NodeStatus): no map transfer, no placement build.
                let same = match self.node_status(addr).await.map(|s| s.map_epoch) {
                    Err(e @ ClientError::AccessDenied { .. }) => return Err(e),
                    Err(e) => {
                        report.unreachable.push(format!("{name}: {e}"));
                        continue;
                    }
                    Ok(held) if held > map.epoch => {
                        report.refused.push(format!("{name}: holds newer epoch {held}"));
                        continue;
                    }
                    // The same epoch: the node says whether it holds this
                    // very map (done) or another one (refused, naming both).
                    Ok(held) => held == map.epoch,
                };
                let set = Request::SetMap(tessera_wire::SetMap {});
                let answer = match self.inner.transport.call(addr, &set, &bytes, 0).await {
                    Ok(reply) if matches!(reply.response, Response::MapOk(_)) => Ok(()),
                    Ok(reply) => Err(format!("{:?}", reply.response)),
                    Err(e @ (ClientError::Connection { .. } | ClientError::Timeout { .. })) => {
                        report.unreachable.push(format!("{name}: {e}"));
                        continue;
                    }
                    Err(e) => Err(e.to_string()),
                };
                match answer {
                    Ok(()) if same => report.already.push(name),
                    Ok(()) => report.installed.push(name),
                    Err(detail) => {
                        // It may have taken this very map from another node
                        // meanwhile (nodes fetch the newest map each repair
                        // round): asked again, it says whether it holds
                        // this map (done) or another with the same epoch.
                        let again = match self.node_status(addr).await {
                            Ok(s) if s.map_epoch == map.epoch => self.inner.transport.call(addr, &set, &bytes, 0).await,
                            _ => Err(ClientError::Unavailable { detail }),
                        };
                        match again {
                            Ok(r) if matches!(r.response, Response::MapOk(_)) => report.already.push(name),
                            Ok(r) => report.refused.push(format!("{name}: {:?}", r.response)),
                            Err(ClientError::Unavailable { detail }) => {
                                report.refused.push(format!("{name}: {detail}"))
                            }
                            Err(e) => report.refused.push(format!("{name}: {e}")),
                        }
                    }
                }
            }
        }
        self.refresh_map().await?;
        Ok(report)
    }

    /// Create a bucket on every target of the region (idempotent for the
    /// same settings). Each target checks writes against its own copy.
    /// Like an object write, creation follows the zone rule: it succeeds
    /// when every target outside at most one zone recorded it (in a region
    /// of two or more zones); targets of a zone that was down get it later
    /// (a write to them records it, and so do repair and lookups).
    pub async fn create_bucket(&self, name: &str, opts: BucketOptions) -> Result<BucketInfo, ClientError> {
        tessera_wire::validate_new_bucket_name(name)?;
        let info = BucketInfo {
            name: name.to_owned(),
            versioned: opts.versioned,
            // The node records the principal this client's certificate
            // names.
            owner: String::new(),
            created_ms: now_ms(),
            storage_class: opts.storage_class,
        };
        let info = &info;
        self.with_map_retry(|view| async move { self.create_bucket_under(&view, info).await }).await
    }

    async fn create_bucket_under(&self, view: &MapView, info: &BucketInfo) -> Result<BucketInfo, ClientError> {
        let name = &info.name;
        let mut tasks = Vec::new();
        for (&target, loc) in view.locs.iter() {
            let (client, info, addr, epoch) = (self.clone(), info.clone(), loc.addr, view.map.epoch);
            tasks.push(tokio::spawn(async move {
                let req = Request::CreateBucket(CreateBucket { target, info });
                (target, client.inner.transport.call(addr, &req, &[], epoch).await)
            }));
        }
        let mut created = None;
        let mut failures = Vec::new();
        let mut failed_zones = Vec::new();
        for t in tasks {
            match t.await {
                Ok((_, Ok(reply))) => match reply.response {
                    Response::CreateBucketOk(b) => created = Some(b),
                    other => return Err(unexpected("create bucket", other)),
                },
                Ok((_, Err(e @ (ClientError::BucketExists { .. } | ClientError::StaleMap { .. })))) => return Err(e),
                Ok((target, Err(e))) => {
                    failed_zones.push(view.locs.get(&target).map(|l| l.zone));
                    failures.push(format!("{target}: {e}"));
                }
                Err(e) => {
                    failed_zones.push(None);
                    failures.push(format!("task: {e}"));
                }
            }
        }
        if !failures.is_empty()
            && tessera_wire::bucket_rule_holds(view.map.zones.len(), &failed_zones)
            && created.is_some()
        {
            tracing::info!(bucket = %name, missed = failures.len(), "bucket recorded outside one zone; the rest is debt");
        } else if !failures.is_empty() {
            return Err(ClientError::Unavailable {
                detail: format!(
                    "bucket {name} not recorded on {} of {} targets (retry; creation is idempotent): {}",
                    failures.len(),
                    view.locs.len(),
                    failures.join("; ")
                ),
            });
        }
        created.ok_or_else(|| ClientError::Config { detail: "the map has no targets".into() })
    }

    /// A bucket's settings (cached after the first answer).
    pub async fn bucket(&self, name: &str) -> Result<BucketInfo, ClientError> {
        validate_bucket_name(name)?;
        if let Some(b) = self.inner.buckets.lock().ok().and_then(|b| b.get(name).cloned()) {
            return Ok(b);
        }
        self.with_map_retry(|view| async move { self.bucket_under(&view, name).await }).await
    }

    async fn bucket_under(&self, view: &MapView, name: &str) -> Result<BucketInfo, ClientError> {
        let pg = view.placement.pg_of(name, "");
        let mut last = None;
        // A target whose zone was down when the bucket was made may not
        // know it: "no such bucket" is believed once two zones say it.
        let mut missing: Vec<TargetId> = Vec::new();
        let mut missing_zones = std::collections::BTreeSet::new();
        for target in self.prefer_live(view, view.placement.targets(pg)) {
            let addr = view.addr(target)?;
            let req = Request::GetBucket(GetBucket { target, name: name.into() });
            match self.inner.transport.call(addr, &req, &[], view.map.epoch).await {
                Ok(reply) => match reply.response {
                    Response::GetBucketOk(b) => {
                        if let Ok(mut cache) = self.inner.buckets.lock() {
                            cache.insert(name.to_owned(), b.clone());
                        }
                        for t in missing {
                            let (c, b) = (self.clone(), b.clone());
                            tokio::spawn(async move {
                                if let Err(e) = c.create_bucket_on(t, b).await {
                                    tracing::debug!(target_id = %t, error = %e, "missed bucket not recorded");
                                }
                            });
                        }
                        return Ok(b);
                    }
                    other => return Err(unexpected("get bucket", other)),
                },
                Err(e @ ClientError::NoSuchBucket { .. }) => {
                    missing.push(target);
                    missing_zones.insert(view.locs.get(&target).map(|l| l.zone));
                    if bucket_absence_believed(missing_zones.len(), view.map.zones.len()) {
                        return Err(e);
                    }
                    last = Some(e);
                }
                Err(e @ ClientError::StaleMap { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(ClientError::Unavailable { detail: format!("no target answered for bucket {name}") }))
    }

    /// Run `op` once more with a refreshed map if the first try met a map
    /// change.
    pub(crate) async fn with_map_retry<T, F, Fut>(&self, op: F) -> Result<T, ClientError>
    where
        F: Fn(Arc<MapView>) -> Fut,
        Fut: std::future::Future<Output = Result<T, ClientError>>,
    {
        for attempt in 0..4 {
            match op(self.view()).await {
                Err(ClientError::StaleMap { detail }) if attempt < 3 => {
                    tracing::debug!(%detail, "map changed; refreshing and retrying");
                    self.refresh_map().await?;
                    // A node that is behind catches up after a push.
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                }
                other => return other,
            }
        }
        Err(ClientError::StaleMap { detail: "map kept changing".into() })
    }

    /// Store an object from memory (retried as a whole across a map change).
    pub async fn put(&self, bucket: &str, key: &str, data: Vec<u8>) -> Result<PutReceipt, ClientError> {
        self.put_with(bucket, key, data, PutOptions::default()).await
    }

    /// [`Client::put`] with options.
    pub async fn put_with(
        &self,
        bucket: &str,
        key: &str,
        data: Vec<u8>,
        opts: PutOptions,
    ) -> Result<PutReceipt, ClientError> {
        let data = Arc::new(data);
        self.with_map_retry(|view| {
            let (data, opts) = (data.clone(), opts.clone());
            async move {
                crate::write::put(self, &view, bucket, key, &mut &data[..], opts, crate::write::Kind::Object).await
            }
        })
        .await
    }

    /// Store an object read from `source`, stripe by stripe, with memory
    /// bounded by a few stripes. Not retried: the source is consumed.
    pub async fn put_stream(
        &self,
        bucket: &str,
        key: &str,
        mut source: impl tokio::io::AsyncRead + Unpin + Send,
        opts: PutOptions,
    ) -> Result<PutReceipt, ClientError> {
        let view = self.view();
        crate::write::put(self, &view, bucket, key, &mut source, opts, crate::write::Kind::Object).await
    }

    /// Metadata of the latest (or a given) version.
    pub async fn head(&self, bucket: &str, key: &str, version: Option<VersionId>) -> Result<ObjectMeta, ClientError> {
        validate_bucket_name(bucket)?;
        validate_key(key)?;
        self.with_map_retry(|view| async move { crate::read::resolve(self, &view, bucket, key, version).await }).await
    }

    /// Read an object (or a range of it) as a stream.
    pub async fn get(&self, bucket: &str, key: &str, opts: GetOptions) -> Result<GetResult, ClientError> {
        // The latest version may be overwritten between choosing it and
        // reading its shards: then choose again (bounded).
        let mut attempt = 0;
        let mut last: Option<VersionId> = None;
        loop {
            attempt += 1;
            let mut r = self.get_once(bucket, key, &opts).await?;
            let chosen = r.meta.version;
            match r.body.prefetch().await {
                Ok(()) => return Ok(r),
                // Replaced since chosen: choose again.
                Err(ClientError::VersionGone { .. })
                    if opts.version.is_none() && attempt < GET_ATTEMPTS && last != Some(chosen) =>
                {
                    last = Some(chosen);
                }
                // The same version again (or a pinned one): it is not
                // replaced, too few of its shards are reachable.
                Err(ClientError::VersionGone { detail }) if last == Some(chosen) || opts.version.is_some() => {
                    return Err(ClientError::Unavailable { detail });
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn get_once(&self, bucket: &str, key: &str, opts: &GetOptions) -> Result<GetResult, ClientError> {
        let meta = self.head(bucket, key, opts.version).await?;
        let (offset, len, full) = match opts.range {
            None => (0, meta.size_bytes, true),
            Some(r) => {
                if r.len == 0 || r.offset.checked_add(r.len).is_none_or(|end| end > meta.size_bytes) {
                    return Err(ClientError::InvalidRange {
                        offset: r.offset,
                        len: r.len,
                        size_bytes: meta.size_bytes,
                    });
                }
                (r.offset, r.len, false)
            }
        };
        let view = self.view();
        let body = ObjectBody::new(self.clone(), view, bucket.into(), key.into(), meta.clone(), offset, len, full);
        Ok(GetResult { meta, body })
    }

    /// Delete the object: writes a delete-marker version through the write
    /// path (in a versioned bucket older versions stay readable by id; in
    /// an unversioned one they are removed). Returns the marker's version.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<VersionId, ClientError> {
        self.with_map_retry(|view| async move {
            let r = crate::write::put(
                self,
                &view,
                bucket,
                key,
                &mut &[][..],
                PutOptions::default(),
                crate::write::Kind::Marker,
            )
            .await?;
            Ok(r.version)
        })
        .await
    }

    /// Remove one version for good (purged on every target; acknowledged
    /// under the write rule).
    pub async fn delete_version(&self, bucket: &str, key: &str, version: VersionId) -> Result<(), ClientError> {
        validate_bucket_name(bucket)?;
        validate_key(key)?;
        self.with_map_retry(|view| async move { self.purge(&view, bucket, key, version, None).await }).await
    }

    /// Store a copy of a version from another region (cross-region
    /// replication): the version id, creation time, owner, metadata, ACL
    /// and `meta.origin` are kept; the bytes read from `source` must match
    /// `meta`'s size and checksum, else nothing is committed. `class`
    /// overrides the stored class. Writing a version the bucket already
    /// holds is a no-op on each target.
    pub async fn put_replica(
        &self,
        bucket: &str,
        meta: &ObjectMeta,
        class: Option<StorageClass>,
        mut source: impl tokio::io::AsyncRead + Unpin + Send,
    ) -> Result<PutReceipt, ClientError> {
        if meta.origin.is_none() {
            return Err(ClientError::Config { detail: format!("replica of {} has no origin region", meta.key) });
        }
        let opts = PutOptions { storage_class: Some(class.unwrap_or(meta.storage_class)), ..PutOptions::default() };
        let view = self.view();
        let kind = crate::write::Kind::Replica(meta);
        let r = crate::write::put(self, &view, bucket, &meta.key, &mut source, opts, kind).await;
        if let Err(ClientError::StaleMap { .. }) = &r {
            // The source is consumed: the caller retries, under the new map.
            let _ = self.refresh_map().await;
        }
        r
    }

    /// [`Client::delete_version`] on behalf of another region: the purge
    /// is marked with the `origin` region, so it is not replicated back.
    pub async fn delete_version_replica(
        &self,
        bucket: &str,
        key: &str,
        version: VersionId,
        origin: &str,
    ) -> Result<(), ClientError> {
        validate_bucket_name(bucket)?;
        validate_key(key)?;
        self.with_map_retry(|view| async move { self.purge(&view, bucket, key, version, Some(origin)).await }).await
    }

    pub(crate) async fn purge(
        &self,
        view: &MapView,
        bucket: &str,
        key: &str,
        version: VersionId,
        origin: Option<&str>,
    ) -> Result<(), ClientError> {
        let pg = view.placement.pg_of(bucket, key);
        let geom = view.geometry(pg, StorageClass::Standard);
        let mut tasks = Vec::new();
        for (i, &target) in view.placement.targets(pg).iter().enumerate() {
            let addr = view.addr(target)?;
            let client = self.clone();
            let origin = origin.map(str::to_owned);
            let req = Request::Delete(DeleteObject { target, bucket: bucket.into(), key: key.into(), version, origin });
            let epoch = view.map.epoch;
            tasks.push(tokio::spawn(async move { (i, client.inner.transport.call(addr, &req, &[], epoch).await) }));
        }
        let mut done = vec![false; geom.shards()];
        let mut unreachable = vec![false; geom.shards()];
        let mut errors = Vec::new();
        for t in tasks {
            match t.await {
                Ok((i, Ok(_))) => done[i] = true,
                Ok((
                    _,
                    Err(
                        e @ (ClientError::StaleMap { .. }
                        | ClientError::NoSuchBucket { .. }
                        | ClientError::AccessDenied { .. }),
                    ),
                )) => return Err(e),
                Ok((i, Err(e))) => {
                    unreachable[i] = matches!(e, ClientError::Connection { .. } | ClientError::Timeout { .. });
                    errors.push(format!("shard {i}: {e}"));
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        // A zone none of whose members answered is down: the purge holds
        // under the degraded rule, like a write (repair purges the zone's
        // copies from the tombstones when it returns).
        let down: Vec<usize> = geom
            .zones()
            .iter()
            .copied()
            .filter(|&z| (0..geom.shards()).filter(|&i| geom.zone(i) == z).all(|i| unreachable[i]))
            .collect();
        if geom.rule_holds(&done) || geom.degraded_rule_holds(&done, &down) {
            return Ok(());
        }
        Err(ClientError::Unavailable {
            detail: format!("purge of {key} version {version} reached too few targets: {}", errors.join("; ")),
        })
    }

    /// One page of keys, merged from the targets of one zone (every
    /// placement group has shards in every zone); another zone answers
    /// when one is unreachable.
    pub async fn list(&self, bucket: &str, req: ListRequest) -> Result<ListPage, ClientError> {
        validate_bucket_name(bucket)?;
        self.with_map_retry(|view| {
            let req = req.clone();
            async move { crate::listing::list(self, &view, bucket, req).await }
        })
        .await
    }

    /// Every bucket of the region, in name order. (Until requests carry an
    /// authenticated principal, that is every user's buckets.)
    pub async fn list_buckets(&self) -> Result<Vec<BucketInfo>, ClientError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self.list_buckets_page(after, tessera_wire::limits::BUCKET_LIST_MAX).await?;
            all.extend(page);
            match next {
                Some(n) => after = Some(n),
                None => return Ok(all),
            }
        }
    }

    /// One page of at most `limit` buckets named after `after`, and the
    /// name to pass as `after` for the next page (`None` at the end).
    pub async fn list_buckets_page(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> Result<(Vec<BucketInfo>, Option<String>), ClientError> {
        self.with_map_retry(|view| {
            let after = after.clone();
            async move { crate::listing::list_buckets(self, &view, after, limit).await }
        })
        .await
    }

    /// One page of versions (newest first within a key).
    pub async fn list_versions(
        &self,
        bucket: &str,
        prefix: &str,
        after: Option<(String, VersionId)>,
        limit: u32,
    ) -> Result<VersionsPage, ClientError> {
        validate_bucket_name(bucket)?;
        self.with_map_retry(|view| {
            let after = after.clone();
            async move { crate::listing::list_versions(self, &view, bucket, prefix, after, limit).await }
        })
        .await
    }

    /// Target ids of the group holding (bucket, key), in shard order.
    pub fn targets_of(&self, bucket: &str, key: &str) -> Vec<TargetId> {
        let view = self.view();
        view.placement.targets(view.placement.pg_of(bucket, key)).to_vec()
    }
}

pub(crate) async fn fetch_map(transport: &Transport, addr: SocketAddr) -> Result<MapView, ClientError> {
    let mut reply = transport.call(addr, &Request::GetMap(GetMap {}), &[], 0).await?;
    if !matches!(reply.response, Response::MapOk(_)) {
        return Err(unexpected("get map", reply.response));
    }
    if reply.payload_len > tessera_wire::map::MAP_BYTES_MAX {
        return Err(ClientError::Unavailable {
            detail: format!("map of {} bytes from {addr} is too large", reply.payload_len),
        });
    }
    let bytes = transport.read_payload(&mut reply, addr).await?;
    MapView::from_signed(tessera_wire::SignedMap::from_wire(&bytes)?)
}

/// What the nodes of a pushed map did with it ([`Client::push_map`]).
#[derive(Clone, Debug, Default)]
pub struct PushReport {
    /// Nodes that switched to the map.
    pub installed: Vec<String>,
    /// Nodes that held this epoch already.
    pub already: Vec<String>,
    /// Nodes that answered no, with their reason (a newer epoch held, or
    /// a map that does not describe them).
    pub refused: Vec<String>,
    /// Nodes that did not answer (down, or not started yet): they load the
    /// map from their file when they start, or take the next push.
    pub unreachable: Vec<String>,
}

impl PushReport {
    /// One line per outcome, for the admin CLI.
    pub fn summary(&self, epoch: u64) -> String {
        let counts = format!("{} switched to it, {} held it already", self.installed.len(), self.already.len());
        if self.refused.is_empty() && self.unreachable.is_empty() {
            return format!("map epoch {epoch} installed on every node ({counts})");
        }
        let mut out = format!("map epoch {epoch}: {counts}");
        if !self.refused.is_empty() {
            out.push_str(&format!("\nrefused by: {}", self.refused.join("; ")));
        }
        if !self.unreachable.is_empty() {
            out.push_str(&format!(
                "\nnot reached (down or not started; a node loads its map file at start): {}",
                self.unreachable.join("; ")
            ));
        }
        out
    }
}
