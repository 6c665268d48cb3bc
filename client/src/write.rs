//! The write path. The source is cut into stripes of k × shard_bytes (one
//! short stripe for objects up to `inline_bytes_max`), each encoded with
//! reed-solomon-simd into k data + m parity shards; shard i of every stripe
//! goes to target i of the placement group through its own lane (a task
//! with a small queue), so encoding, sending and the nodes' disk writes
//! overlap while memory stays bounded by a few stripes. The last stripe
//! carries the metadata record, which prepares the version on the target.
//! `WriteTracker` (tessera-wire) decides when to commit and when to ack;
//! lanes still running at the ack finish in the background.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reed_solomon_simd::ReedSolomonEncoder;
use tessera_wire::stripe::shard_len_for;
use tessera_wire::{
    check_meta, validate_bucket_name, validate_key, CommitVersion, ObjectMeta, Opcode, PutShard, Request, Response,
    ShardIndex, ShardState, StripeIndex, TargetId, VersionId, WriteStep, WriteTracker,
};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{mpsc, watch};

use crate::client::now_ms;
use crate::view::MapView;
use crate::{Client, ClientError, PutOptions, PutReceipt};

/// Reused stripe and parity buffers. Fresh multi-MiB allocations cost a
/// page fault per 4 KiB on every stripe (glibc returns them to the kernel
/// on free), several times the cost of encoding them; buffers handed to the
/// lanes come back here when the last shard of them is sent.
#[derive(Clone, Default)]
pub struct StripePool {
    free: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
}

/// Buffers kept for reuse (a few stripes' worth for every upload in flight).
const POOL_BUFFERS_MAX: usize = 8;

struct Pooled {
    buf: Vec<u8>,
    pool: StripePool,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        if let Ok(mut free) = self.pool.free.lock() {
            if free.len() < POOL_BUFFERS_MAX {
                free.push(buf);
            }
        }
    }
}

impl StripePool {
    /// An empty buffer with room for `cap` bytes.
    pub fn take(&self, cap: usize) -> Vec<u8> {
        let reused = self.free.lock().ok().and_then(|mut f| {
            let i = f.iter().position(|b| b.capacity() >= cap)?;
            Some(f.swap_remove(i))
        });
        let mut b = reused.unwrap_or_else(|| Vec::with_capacity(cap));
        b.clear();
        b
    }

    /// Hand a filled buffer out as shared bytes; it returns when dropped.
    pub fn share(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(Pooled { buf, pool: self.clone() })
    }
}

/// One shard of one stripe, on its way to a lane.
struct Item {
    stripe: u32,
    data: Bytes,
    meta: Option<ObjectMeta>,
}

type Event = (usize, Result<ShardState, ClientError>);

async fn read_up_to(
    source: &mut (impl AsyncRead + Unpin),
    want: usize,
    pool: &StripePool,
) -> Result<Vec<u8>, ClientError> {
    let mut buf = pool.take(want);
    buf.resize(want, 0);
    let mut filled = 0;
    while filled < want {
        let n = source.read(&mut buf[filled..]).await.map_err(ClientError::Source)?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    buf.truncate(filled);
    Ok(buf)
}

/// Encode one stripe: data shards are slices of the zero-padded stripe,
/// parity shards slices of one buffer. Returns (shard length, shards).
pub fn encode_stripe(
    encoder: &mut Option<ReedSolomonEncoder>,
    pool: &StripePool,
    mut data: Vec<u8>,
    k: usize,
    m: usize,
) -> Result<(usize, Vec<Bytes>), ClientError> {
    let shard_len = shard_len_for(data.len() as u64, k as u8) as usize;
    let mut shards = Vec::with_capacity(k + m);
    if shard_len == 0 {
        return Ok((0, vec![Bytes::new(); k + m]));
    }
    data.resize(k * shard_len, 0);
    let mut parity = pool.take(m * shard_len);
    if m > 0 {
        let rs_err = |e: reed_solomon_simd::Error| ClientError::Config { detail: format!("erasure coding: {e}") };
        let enc = match encoder.as_mut() {
            Some(e) => {
                e.reset(k, m, shard_len).map_err(rs_err)?;
                e
            }
            None => encoder.insert(ReedSolomonEncoder::new(k, m, shard_len).map_err(rs_err)?),
        };
        for chunk in data.chunks(shard_len) {
            enc.add_original_shard(chunk).map_err(rs_err)?;
        }
        let out = enc.encode().map_err(rs_err)?;
        for r in out.recovery_iter() {
            parity.extend_from_slice(r);
        }
    }
    let data = pool.share(data);
    let parity = pool.share(parity);
    for i in 0..k {
        shards.push(data.slice(i * shard_len..(i + 1) * shard_len));
    }
    for i in 0..m {
        shards.push(parity.slice(i * shard_len..(i + 1) * shard_len));
    }
    Ok((shard_len, shards))
}

/// Where a lane sends, and what it may do when its target stops
/// answering.
struct LaneTarget {
    addr: std::net::SocketAddr,
    target: TargetId,
    shard: usize,
    bucket: String,
    key: String,
    version: VersionId,
    epoch: u64,
    /// Settings of the bucket, to record it on a target that missed it
    /// (restarted after the bucket was made while its zone was down).
    binfo: tessera_wire::BucketInfo,
    /// Keep sent stripes (to send again to a restarted target) while the
    /// object has at most this many.
    retain_stripes: usize,
    /// Until when a target that stopped answering is tried again.
    retry_until: Instant,
}

/// Is this failure one a restarted or reconnected target may get past?
fn worth_retrying(e: &ClientError) -> bool {
    matches!(e, ClientError::Connection { .. } | ClientError::Timeout { .. })
}

/// Pause between attempts at a target that stopped answering.
const LANE_RETRY_PAUSE: Duration = Duration::from_millis(150);

impl LaneTarget {
    fn put_request(&self, item: &Item) -> Request {
        Request::PutShard(PutShard {
            target: self.target,
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            version: self.version,
            stripe: StripeIndex(item.stripe),
            shard: ShardIndex(self.shard as u16),
            shard_crc32c: crc32c::crc32c(&item.data),
            meta: item.meta.clone(),
            repair: false,
        })
    }

    /// Send one stripe's shard; returns whether it prepared the version.
    async fn send(&self, client: &Client, item: &Item, probe: bool) -> Result<bool, ClientError> {
        let t = &client.inner.transport;
        let req = self.put_request(item);
        let r = if probe {
            t.call_ignoring_down(self.addr, &req, &item.data, self.epoch).await
        } else {
            t.call(self.addr, &req, &item.data, self.epoch).await
        };
        match r?.response {
            Response::PutShardOk(ok) => Ok(ok.prepared),
            other => Err(crate::client::unexpected("put shard", other)),
        }
    }

    /// After `first` failed: record a missing bucket, or wait for a target
    /// that stopped answering to come back (a node restarting), and send
    /// every stripe it was given again. `Err` when that cannot work.
    async fn recover(&self, client: &Client, sent: Option<&[Item]>, first: ClientError) -> Result<bool, ClientError> {
        let Some(sent) = sent else { return Err(first) };
        // What went wrong first is the news; later attempts only say the
        // target stayed away.
        let cause = match &first {
            ClientError::Connection { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        let started = Instant::now();
        let mut attempts = 0u32;
        let mut err = first;
        let mut bucket_made = false;
        loop {
            match &err {
                ClientError::NoSuchBucket { .. } if !bucket_made => {
                    bucket_made = true;
                    tracing::debug!(target_id = %self.target, bucket = %self.bucket, "recording a missed bucket");
                    client.create_bucket_on(self.target, self.binfo.clone()).await?;
                }
                e if worth_retrying(e) && Instant::now() + LANE_RETRY_PAUSE < self.retry_until => {
                    tokio::time::sleep(LANE_RETRY_PAUSE).await;
                }
                e if worth_retrying(e) && attempts > 0 => {
                    return Err(ClientError::Connection {
                        addr: self.addr.to_string(),
                        detail: format!(
                            "{cause}; tried again {attempts} times over {} ms, last: {e}",
                            started.elapsed().as_millis()
                        ),
                    });
                }
                _ => return Err(err),
            }
            attempts += 1;
            let mut prepared = false;
            let mut failed = None;
            for (n, item) in sent.iter().enumerate() {
                match self.send(client, item, n == 0).await {
                    Ok(p) => prepared |= p,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            match failed {
                None => {
                    tracing::debug!(target_id = %self.target, version = %self.version, "target answered again");
                    return Ok(prepared);
                }
                Some(e) => err = e,
            }
        }
    }
}

async fn lane(
    client: Client,
    to: LaneTarget,
    mut items: mpsc::Receiver<Item>,
    events: mpsc::UnboundedSender<Event>,
    mut commit: watch::Receiver<bool>,
) {
    let shard = to.shard;
    let mut prepared = false;
    // Stripes sent so far, while few enough to send again; None once the
    // object has more (its earlier stripes are gone: no retry).
    let mut sent: Option<Vec<Item>> = Some(Vec::new());
    while let Some(item) = items.recv().await {
        if let Some(s) = sent.as_mut() {
            if s.len() < to.retain_stripes {
                s.push(Item { stripe: item.stripe, data: item.data.clone(), meta: item.meta.clone() });
            } else {
                sent = None;
            }
        }
        let r = match to.send(&client, &item, false).await {
            Ok(p) => Ok(p),
            Err(e) => to.recover(&client, sent.as_deref(), e).await,
        };
        match r {
            Ok(p) => prepared |= p,
            Err(e) => {
                let _ = events.send((shard, Err(e)));
                return;
            }
        }
    }
    if !prepared {
        let detail = format!("shard {shard} on {} was abandoned before its last stripe (too slow)", to.target);
        let _ = events.send((shard, Err(ClientError::Unavailable { detail })));
        return;
    }
    drop(sent);
    let _ = events.send((shard, Ok(ShardState::Prepared)));
    if commit.wait_for(|c| *c).await.is_err() {
        return; // aborted
    }
    let req = Request::Commit(CommitVersion {
        target: to.target,
        bucket: to.bucket.clone(),
        key: to.key.clone(),
        version: to.version,
    });
    let t = &client.inner.transport;
    let mut probe = false;
    let r = loop {
        let r = if probe {
            t.call_ignoring_down(to.addr, &req, &[], to.epoch).await
        } else {
            t.call(to.addr, &req, &[], to.epoch).await
        };
        match r {
            Ok(reply) if matches!(reply.response, Response::CommitOk(_)) => break Ok(ShardState::Committed),
            Ok(reply) => break Err(crate::client::unexpected("commit", reply.response)),
            // The prepared shards are durable: a restarted target commits.
            Err(e) if worth_retrying(&e) && Instant::now() + LANE_RETRY_PAUSE < to.retry_until => {
                tokio::time::sleep(LANE_RETRY_PAUSE).await;
                probe = true;
            }
            Err(e) => break Err(e),
        }
    };
    let _ = events.send((shard, r));
}

/// What a write stores.
#[derive(Clone, Copy)]
pub(crate) enum Kind<'a> {
    /// A new object version.
    Object,
    /// A new delete marker.
    Marker,
    /// A copy of a version from another region: its id, creation time,
    /// owner, metadata, ACL and origin are kept, and the bytes must match
    /// its size and checksum.
    Replica(&'a ObjectMeta),
}

/// Store one version.
pub(crate) async fn put(
    client: &Client,
    view: &MapView,
    bucket: &str,
    key: &str,
    source: &mut (impl AsyncRead + Unpin + Send),
    opts: PutOptions,
    kind: Kind<'_>,
) -> Result<PutReceipt, ClientError> {
    validate_bucket_name(bucket)?;
    validate_key(key)?;
    let cfg = &client.inner.cfg;
    let binfo = client.bucket(bucket).await?;
    let class = opts.storage_class.unwrap_or(binfo.storage_class);
    let profile = view.map.classes.of(class);
    let (k, m) = (usize::from(profile.data), usize::from(profile.parity));
    let pg = view.placement.pg_of(bucket, key);
    let targets = view.placement.targets(pg).to_vec();
    if targets.len() != k + m {
        return Err(ClientError::Unavailable {
            detail: format!("class {class:?} is {k}+{m} but groups have {} targets", targets.len()),
        });
    }
    let geom = view.geometry(pg, class);
    let epoch = view.map.epoch;
    let mut meta = match kind {
        Kind::Replica(src) => ObjectMeta {
            ec: profile,
            storage_class: class,
            size_bytes: 0,
            stripe_bytes: 0,
            shard_bytes: 0,
            stripe_count: 0,
            content_crc32c: 0,
            ..src.clone()
        },
        Kind::Object | Kind::Marker => ObjectMeta {
            key: key.to_owned(),
            version: client.new_version(),
            size_bytes: 0,
            stripe_bytes: 0,
            shard_bytes: 0,
            ec: profile,
            stripe_count: 0,
            content_crc32c: 0,
            created_ms: now_ms(),
            content_type: opts.content_type.clone(),
            owner: cfg.owner.clone(),
            user_meta: opts.user_meta.clone(),
            storage_class: class,
            delete_marker: matches!(kind, Kind::Marker),
            acl: opts.acl,
            origin: None,
        },
    };
    if meta.key != key {
        return Err(ClientError::Config { detail: format!("replica of key {} written as {key}", meta.key) });
    }
    let version = meta.version;
    let delete_marker = meta.delete_marker;
    check_meta(Opcode::PutShard, &meta).map_err(|e| ClientError::Config { detail: format!("object metadata: {e}") })?;

    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
    let (commit_tx, commit_rx) = watch::channel(false);
    let mut lanes: Vec<Option<mpsc::Sender<Item>>> = Vec::with_capacity(targets.len());
    let retry_until = Instant::now() + Duration::from_millis(cfg.shard_retry_ms);
    for (i, &target) in targets.iter().enumerate() {
        let (tx, rx) = mpsc::channel(cfg.stripes_in_flight.max(1));
        let to = LaneTarget {
            addr: view.addr(target)?,
            target,
            shard: i,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version,
            epoch,
            binfo: binfo.clone(),
            retain_stripes: cfg.stripes_in_flight.max(1),
            retry_until,
        };
        tokio::spawn(lane(client.clone(), to, rx, ev_tx.clone(), commit_rx.clone()));
        lanes.push(Some(tx));
    }
    drop(ev_tx);

    // Encode and feed the lanes, reading one stripe ahead to know the last.
    let inline_max = view.map.inline_bytes_max as usize;
    let pool = client.inner.pool.clone();
    let first = if delete_marker { Vec::new() } else { read_up_to(source, inline_max + 1, &pool).await? };
    let full_shard =
        if first.len() <= inline_max { shard_len_for(first.len() as u64, profile.data) } else { view.map.shard_bytes };
    let stripe_bytes = k * full_shard as usize;
    let mut current = first;
    if current.len() > inline_max && current.len() < stripe_bytes {
        let more = read_up_to(source, stripe_bytes - current.len(), &pool).await?;
        current.extend_from_slice(&more);
    }
    let mut encoder = None;
    let mut crc = 0u32;
    let mut size = 0u64;
    let mut stripe = 0u32;
    let zone_wait = Duration::from_millis(cfg.zone_wait_ms);
    loop {
        let next = if current.len() == stripe_bytes && stripe_bytes > inline_max {
            read_up_to(source, stripe_bytes, &pool).await?
        } else {
            Vec::new()
        };
        let last = next.is_empty();
        crc = crc32c::crc32c_append(crc, &current);
        size += current.len() as u64;
        let nonempty = !current.is_empty();
        let (_, shards) = encode_stripe(&mut encoder, &pool, std::mem::take(&mut current), k, m)?;
        let item_meta = if last {
            meta.size_bytes = size;
            meta.content_crc32c = crc;
            if let Kind::Replica(src) = kind {
                if (src.size_bytes, src.content_crc32c) != (size, crc) {
                    // Nothing is committed: the prepared shards wait for
                    // the retry (not purged, which would refuse it).
                    return Err(ClientError::Corrupt {
                        detail: format!(
                            "replica of {bucket}/{key} version {version}: got {size} bytes crc32c {crc:08x}, the \
                             source has {} bytes crc32c {:08x}",
                            src.size_bytes, src.content_crc32c
                        ),
                    });
                }
            }
            if size > 0 {
                meta.stripe_count = stripe + 1;
                meta.shard_bytes = full_shard;
                meta.stripe_bytes = stripe_bytes as u32;
            }
            check_meta(Opcode::PutShard, &meta)
                .map_err(|e| ClientError::Config { detail: format!("object metadata: {e}") })?;
            Some(meta.clone())
        } else {
            None
        };
        for (i, shard) in shards.into_iter().enumerate() {
            let Some(tx) = &lanes[i] else { continue };
            let item = Item { stripe, data: shard, meta: item_meta.clone() };
            // A lane that cannot take a stripe for this long is dropped:
            // its target is left to repair rather than stalling the upload.
            match tokio::time::timeout(zone_wait, tx.send(item)).await {
                Ok(Ok(())) => {}
                _ => lanes[i] = None,
            }
        }
        if last {
            break;
        }
        let _ = nonempty;
        current = next;
        stripe += 1;
    }
    drop(lanes);

    // Decide: commit when the prepared shards satisfy the rule, ack when
    // the committed ones do.
    let mut tracker = WriteTracker::new(geom.clone());
    let deadline = Instant::now() + Duration::from_millis(cfg.request_timeout_ms);
    let mut first_error: Option<ClientError> = None;
    let mut last_progress = Instant::now();
    let zone_lag = Duration::from_millis(cfg.zone_lag_ms);
    let mut lagging: Option<(usize, Instant)> = None;
    loop {
        let ev = tokio::time::timeout(zone_wait / 4 + Duration::from_millis(1), ev_rx.recv()).await;
        match ev {
            Ok(Some((i, r))) => {
                last_progress = Instant::now();
                match r {
                    Ok(state) => tracker.set(i, state),
                    Err(e) => {
                        if matches!(e, ClientError::StaleMap { .. }) || first_error.is_none() {
                            first_error = Some(e);
                        }
                        tracker.set(i, ShardState::Failed);
                    }
                }
            }
            Ok(None) => {
                // Every lane has reported: whatever is still pending failed.
                for i in 0..geom.shards() {
                    if tracker.states()[i] == ShardState::Pending {
                        tracker.set(i, ShardState::Failed);
                    }
                }
            }
            Err(_) => {}
        }
        match (tracker.lagging_zone(), lagging) {
            (Some(z), Some((was, _))) if z == was => {}
            (now, _) => lagging = now.map(|z| (z, Instant::now())),
        }
        if let Some((z, since)) = lagging {
            if since.elapsed() >= zone_lag {
                tracing::debug!(zone = z, %version, "zone lags the others: writing degraded");
                tracker.zone_down(z);
            }
        }
        if last_progress.elapsed() >= zone_wait {
            // Zones that stalled (silent, or failed part way) while others
            // progressed are down.
            let states = tracker.states().to_vec();
            let any_progress = states.iter().any(|s| matches!(s, ShardState::Prepared | ShardState::Committed));
            for &z in geom.zones() {
                if any_progress && tracker.zone_stalled(z) {
                    tracker.zone_down(z);
                }
            }
        }
        match tracker.step() {
            WriteStep::Wait if Instant::now() < deadline => {}
            WriteStep::Wait | WriteStep::Fail => {
                let _ = commit_tx.send(false);
                drop(commit_tx);
                if !matches!(kind, Kind::Replica(_)) {
                    // A replica is retried with the same version id: a
                    // purge would leave a tombstone that refuses it.
                    abort(client, view, bucket, key, version);
                }
                // A refusal by the nodes (full, no bucket, map change) says
                // more than "unavailable": pass it on as it is.
                if let Some(e) = first_error.take_if(|e| {
                    !matches!(
                        e,
                        ClientError::Connection { .. } | ClientError::Timeout { .. } | ClientError::Unavailable { .. }
                    )
                }) {
                    return Err(e);
                }
                let states = tracker.states();
                return Err(ClientError::Unavailable {
                    detail: format!(
                        "write of {bucket}/{key} version {version} cannot meet the zone rule (shard states {:?}){}",
                        states,
                        first_error.map(|e| format!("; first error: {e}")).unwrap_or_default()
                    ),
                });
            }
            WriteStep::Commit { .. } => {
                let _ = commit_tx.send(true);
            }
            WriteStep::Ack { degraded } => {
                let committed: Vec<TargetId> = tracker
                    .states()
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| **s == ShardState::Committed)
                    .map(|(i, _)| targets[i])
                    .collect();
                let mut zones: Vec<String> = committed.iter().map(|t| view.zone_name(*t).to_owned()).collect();
                zones.sort();
                zones.dedup();
                // Lanes still working keep the commit signal (it stays true).
                tokio::spawn(async move {
                    commit_tx.closed().await;
                });
                return Ok(PutReceipt {
                    version,
                    size_bytes: size,
                    content_crc32c: crc,
                    targets: committed,
                    zones,
                    map_epoch: epoch,
                    storage_class: class,
                    degraded,
                });
            }
        }
    }
}

/// Purge a version that will not be acknowledged, in the background: it
/// was never committed anywhere, so no reader can have seen it.
fn abort(client: &Client, view: &MapView, bucket: &str, key: &str, version: VersionId) {
    let (client, bucket, key) = (client.clone(), bucket.to_owned(), key.to_owned());
    let view = Arc::new(MapView {
        map: view.map.clone(),
        placement: view.placement.clone(),
        locs: view.locs.clone(),
        signature: view.signature,
    });
    tokio::spawn(async move {
        if let Err(e) = client.purge(&view, &bucket, &key, version, None).await {
            tracing::debug!(error = %e, %version, "abort of a failed write left shards for the sweeper");
        }
    });
}
