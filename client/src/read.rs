//! The read path. `resolve` decides which version a read serves: it asks
//! every target of the group and waits for at least a read quorum of
//! answers (enough to meet every set that satisfied the write rule), then
//! takes the newest committed version no answer reports as purged.
//! `fetch_stripe` reads the data shards covering a range (the code is
//! systematic: no decoding when they are healthy), and after `hedge_ms`
//! or on any failure asks every shard in full and decodes from the first k.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reed_solomon_simd::ReedSolomonDecoder;
use tessera_wire::stripe::StripeSlice;
use tessera_wire::{
    ByteRange, GetShard, Head, HeadOk, ObjectMeta, Request, Response, ShardIndex, StripeIndex, TargetId, VersionId,
};
use tokio::task::JoinSet;

use crate::client::unexpected;
use crate::view::MapView;
use crate::{Client, ClientError};

async fn head_one(client: Client, addr: std::net::SocketAddr, req: Request, epoch: u64) -> Result<HeadOk, ClientError> {
    match client.inner.transport.call(addr, &req, &[], epoch).await?.response {
        Response::HeadOk(h) => Ok(h),
        other => Err(unexpected("head", other)),
    }
}

/// Ask every target; return the answers once a quorum answered and either
/// everyone did or the hedge delay passed.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn head_round(
    client: &Client,
    view: &MapView,
    targets: &[TargetId],
    bucket: &str,
    key: &str,
    version: Option<VersionId>,
    exclude: &[VersionId],
    quorum: usize,
) -> Result<Vec<HeadOk>, ClientError> {
    let mut set = JoinSet::new();
    for &target in targets {
        let addr = view.addr(target)?;
        let req =
            Request::Head(Head { target, bucket: bucket.into(), key: key.into(), version, exclude: exclude.to_vec() });
        let (c, epoch, zone) = (client.clone(), view.map.epoch, view.locs.get(&target).map(|l| l.zone));
        set.spawn(async move { (zone, head_one(c, addr, req, epoch).await) });
    }
    let hedge = Duration::from_millis(client.inner.cfg.hedge_ms);
    let deadline = Instant::now() + Duration::from_millis(client.inner.cfg.request_timeout_ms);
    let mut answers = Vec::new();
    let mut errors = Vec::new();
    let mut quorum_at: Option<Instant> = None;
    let mut missing_zones = std::collections::BTreeSet::new();
    while !set.is_empty() {
        let limit = match quorum_at {
            Some(t) => (t + hedge).min(deadline),
            None => deadline,
        };
        let next = tokio::time::timeout_at(limit.into(), set.join_next()).await;
        match next {
            Err(_) => break,
            Ok(None) => break,
            Ok(Some(Ok((_, Ok(h))))) => answers.push(h),
            // A target whose zone was down when the bucket was made may
            // not know it yet (creation holds under the zone rule): "no
            // such bucket" is believed once two zones say it, as
            // `Client::bucket` does.
            Ok(Some(Ok((zone, Err(e @ ClientError::NoSuchBucket { .. }))))) => {
                missing_zones.insert(zone);
                if crate::client::bucket_absence_believed(missing_zones.len(), view.map.zones.len()) {
                    return Err(e);
                }
                errors.push(e.to_string());
            }
            // Answers, not absences: a refusal is the node's word on who
            // may read (every target holds the same settings).
            Ok(Some(Ok((_, Err(e @ (ClientError::StaleMap { .. } | ClientError::AccessDenied { .. })))))) => {
                return Err(e)
            }
            Ok(Some(Ok((_, Err(e))))) => errors.push(e.to_string()),
            Ok(Some(Err(e))) => errors.push(e.to_string()),
        }
        if quorum_at.is_none() && answers.len() >= quorum {
            quorum_at = Some(Instant::now());
        }
    }
    set.abort_all();
    if answers.len() < quorum {
        return Err(ClientError::Unavailable {
            detail: format!(
                "{bucket}/{key}: {} of {} targets answered, {quorum} needed to be sure of the latest version: {}",
                answers.len(),
                targets.len(),
                errors.join("; ")
            ),
        });
    }
    Ok(answers)
}

/// The metadata of the version a read serves.
pub(crate) async fn resolve(
    client: &Client,
    view: &MapView,
    bucket: &str,
    key: &str,
    version: Option<VersionId>,
) -> Result<ObjectMeta, ClientError> {
    let pg = view.placement.pg_of(bucket, key);
    let targets = view.placement.targets(pg).to_vec();
    let quorum = view.read_quorum(pg);
    let no_key = |detail: String| ClientError::NoSuchKey { detail };
    let mut exclude: Vec<VersionId> = Vec::new();
    for round in 0..4 {
        let answers = head_round(client, view, &targets, bucket, key, version, &exclude, quorum).await?;
        let purged: BTreeSet<VersionId> = answers.iter().flat_map(|a| a.purged.iter().copied()).collect();
        if let Some(v) = version {
            if purged.contains(&v) {
                return Err(no_key(format!("{bucket}/{key} version {v} was deleted")));
            }
            let committed = answers.iter().any(|a| a.committed && a.meta.as_ref().is_some_and(|m| m.version == v));
            let meta = answers.iter().find_map(|a| a.meta.clone().filter(|m| m.version == v));
            return match meta {
                Some(m) if committed && !m.delete_marker => Ok(m),
                Some(m) if committed => Err(no_key(format!("{bucket}/{key} version {} is a delete marker", m.version))),
                _ => Err(no_key(format!("no such key {bucket}/{key} version {v}"))),
            };
        }
        let stale = answers.iter().any(|a| a.meta.as_ref().is_some_and(|m| purged.contains(&m.version)));
        if stale && round < 3 {
            exclude = purged.iter().copied().take(tessera_wire::limits::VERSION_LIST_MAX).collect();
            continue;
        }
        let newest = answers
            .into_iter()
            .filter(|a| a.committed)
            .filter_map(|a| a.meta)
            .filter(|m| !purged.contains(&m.version))
            .max_by_key(|m| m.version);
        return match newest {
            Some(m) if m.delete_marker => Err(no_key(format!("no such key {bucket}/{key} (deleted)"))),
            Some(m) => {
                client.observe(m.version);
                Ok(m)
            }
            None => Err(no_key(format!("no such key {bucket}/{key}"))),
        };
    }
    Err(ClientError::Unavailable { detail: format!("{bucket}/{key}: versions kept changing while resolving") })
}

/// One shard (or range of it), checked end to end.
async fn get_shard(
    client: Client,
    addr: std::net::SocketAddr,
    req: GetShard,
    epoch: u64,
) -> Result<Vec<u8>, ClientError> {
    let (version, what) =
        (req.version, format!("{}/{} stripe {} shard {}", req.bucket, req.key, req.stripe.0, req.shard.0));
    let mut reply = client.inner.transport.call(addr, &Request::GetShard(req), &[], epoch).await?;
    let Response::GetShardOk(ok) = &reply.response else {
        return Err(unexpected("get shard", reply.response));
    };
    let (expected, got_version) = (ok.payload_crc32c, ok.meta.version);
    if got_version != version {
        return Err(ClientError::Integrity {
            what: format!("{what}: wrong version {got_version}"),
            expected: 0,
            computed: 0,
        });
    }
    let data = client.inner.transport.read_payload(&mut reply, addr).await?;
    let computed = crc32c::crc32c(&data);
    if computed != expected {
        return Err(ClientError::Integrity { what, expected, computed });
    }
    Ok(data)
}

/// The bytes `slice.within` of one stripe of `meta`.
pub(crate) async fn fetch_stripe(
    client: &Client,
    view: &MapView,
    bucket: &str,
    key: &str,
    meta: &ObjectMeta,
    slice: StripeSlice,
) -> Result<Vec<u8>, ClientError> {
    let pg = view.placement.pg_of(bucket, key);
    let targets = view.placement.targets(pg).to_vec();
    let (k, m) = (usize::from(meta.ec.data), usize::from(meta.ec.parity));
    let l = u64::from(slice.shard_len);
    let request = |i: usize, range: Option<ByteRange>| -> Result<(std::net::SocketAddr, GetShard), ClientError> {
        let target =
            *targets.get(i).ok_or_else(|| ClientError::Unavailable { detail: format!("no target for shard {i}") })?;
        Ok((
            view.addr(target)?,
            GetShard {
                target,
                bucket: bucket.into(),
                key: key.into(),
                version: meta.version,
                stripe: StripeIndex(slice.stripe),
                shard: ShardIndex(i as u16),
                range,
            },
        ))
    };
    // Fast path: only the data shards covering the range, only the bytes.
    // When the range covers whole shards these are full shards, kept for a
    // decode if the hedge fires.
    let whole = |i: usize| slice.within.start <= i as u64 * l && slice.within.end >= (i as u64 + 1) * l;
    let mut set = JoinSet::new();
    for i in slice.shards.clone() {
        let lo = slice.within.start.max(i as u64 * l) - i as u64 * l;
        let hi = slice.within.end.min((i as u64 + 1) * l) - i as u64 * l;
        let range = (!whole(i)).then_some(ByteRange { offset: lo, len: hi - lo });
        let (addr, req) = request(i, range)?;
        let c = client.clone();
        let epoch = view.map.epoch;
        set.spawn(async move { (i, range.is_none(), get_shard(c, addr, req, epoch).await) });
    }
    // The hedge waits for the slowest involved node's usual latency, and
    // longer for bigger shards (about 50 MB/s per stream before it gives
    // up on one), so a busy link does not double its load.
    let addrs: Vec<std::net::SocketAddr> =
        slice.shards.clone().filter_map(|i| targets.get(i).and_then(|t| view.addr(*t).ok())).collect();
    let hedge = client.inner.transport.health.hedge_delay(&addrs) + Duration::from_millis(l / 50_000);
    let mut parts: Vec<Option<Vec<u8>>> = vec![None; k];
    let mut failed = Vec::new();
    // Shards whose target says the version is not there (each counted once).
    let mut gone: BTreeSet<usize> = BTreeSet::new();
    let until = Instant::now() + hedge;
    let mut fast_ok = 0;
    while fast_ok < slice.shards.len() {
        match tokio::time::timeout_at(until.into(), set.join_next()).await {
            Ok(Some(Ok((i, _, Ok(bytes))))) => {
                parts[i] = Some(bytes);
                fast_ok += 1;
            }
            Ok(Some(Ok((i, _, Err(e))))) => {
                if matches!(e, ClientError::StaleMap { .. }) {
                    return Err(e);
                }
                if matches!(e, ClientError::NoSuchKey { .. }) {
                    gone.insert(i);
                }
                failed.push(format!("shard {i}: {e}"));
                break;
            }
            Ok(Some(Err(e))) => {
                failed.push(e.to_string());
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    if fast_ok == slice.shards.len() {
        if slice.shards.len() == 1 {
            return Ok(parts[slice.shards.start].take().unwrap_or_default());
        }
        let mut out = Vec::with_capacity((slice.within.end - slice.within.start) as usize);
        for i in slice.shards.clone() {
            out.extend_from_slice(parts[i].as_deref().unwrap_or_default());
        }
        return Ok(out);
    }
    // Whole data shards already here serve the decode as they are.
    let mut full_shards: Vec<Option<Vec<u8>>> = vec![None; k + m];
    for (i, p) in parts.into_iter().enumerate() {
        if whole(i) {
            full_shards[i] = p.filter(|b| b.len() as u64 == l);
        }
    }
    // Hedge / degraded path: ask, in full, every shard not already asked
    // for in full; decode from the first k full shards (no decode when the
    // data shards all arrive).
    let asked_full: Vec<usize> = slice.shards.clone().filter(|&i| whole(i)).collect();
    let mut full = JoinSet::new();
    for i in 0..k + m {
        if asked_full.contains(&i) {
            continue;
        }
        let (addr, req) = request(i, None)?;
        let c = client.clone();
        let epoch = view.map.epoch;
        full.spawn(async move { (i, true, get_shard(c, addr, req, epoch).await) });
    }
    let mut have = full_shards.iter().filter(|s| s.is_some()).count();
    let mut from_fast = set;
    while have < k && !(full.is_empty() && from_fast.is_empty()) {
        let next = tokio::select! {
            r = full.join_next(), if !full.is_empty() => r,
            r = from_fast.join_next(), if !from_fast.is_empty() => r,
        };
        match next {
            Some(Ok((i, true, Ok(bytes)))) if bytes.len() as u64 == l && full_shards[i].is_none() => {
                full_shards[i] = Some(bytes);
                have += 1;
            }
            Some(Ok((_, true, Ok(bytes)))) if bytes.len() as u64 == l => {}
            Some(Ok((_, false, Ok(_)))) => {}
            Some(Ok((i, _, Ok(bytes)))) => failed.push(format!("shard {i}: {} bytes, expected {l}", bytes.len())),
            Some(Ok((i, _, Err(e)))) => {
                if matches!(e, ClientError::NoSuchKey { .. }) {
                    gone.insert(i);
                }
                failed.push(format!("shard {i}: {e}"))
            }
            Some(Err(e)) => failed.push(e.to_string()),
            None => {}
        }
    }
    from_fast.abort_all();
    let mut shards = full_shards;
    full.abort_all();
    if have < k && failed.iter().any(|f| f.contains("checksum") || f.contains("integrity")) {
        // Too few good shards because stored data is corrupt: say so.
        return Err(ClientError::Corrupt {
            detail: format!(
                "{bucket}/{key} stripe {}: {have} of {} shards passed their checksums, {k} needed: {}",
                slice.stripe,
                k + m,
                failed.join("; ")
            ),
        });
    }
    if have < k && !gone.is_empty() {
        // Members say the version is not there: it may have been replaced
        // or purged since the read chose it. The caller resolves again and
        // gives up if the same version comes back.
        return Err(ClientError::VersionGone {
            detail: format!(
                "{bucket}/{key} version {}: {have} of {} shards read, {k} needed; {} members do not hold it: {}",
                meta.version,
                k + m,
                gone.len(),
                failed.join("; ")
            ),
        });
    }
    if have < k {
        return Err(ClientError::Unavailable {
            detail: format!(
                "{bucket}/{key} stripe {}: {have} of {} shards readable, {k} needed: {}",
                slice.stripe,
                k + m,
                failed.join("; ")
            ),
        });
    }
    let data = reconstruct(&mut shards, k, m, l as usize)?;
    Ok(data[slice.within.start as usize..slice.within.end as usize].to_vec())
}

/// Rebuild the k data shards from any k of the k + m and return the stripe
/// (data shards concatenated). No decoding when the data shards are all here.
pub fn reconstruct(shards: &mut [Option<Vec<u8>>], k: usize, m: usize, len: usize) -> Result<Vec<u8>, ClientError> {
    if shards[..k].iter().any(|s| s.is_none()) {
        let rs = |e: reed_solomon_simd::Error| ClientError::Config { detail: format!("erasure decoding: {e}") };
        let mut dec = ReedSolomonDecoder::new(k, m, len).map_err(rs)?;
        for (i, s) in shards.iter().enumerate() {
            if let Some(s) = s {
                if i < k {
                    dec.add_original_shard(i, s).map_err(rs)?;
                } else {
                    dec.add_recovery_shard(i - k, s).map_err(rs)?;
                }
            }
        }
        let out = dec.decode().map_err(rs)?;
        let restored: Vec<(usize, Vec<u8>)> = out.restored_original_iter().map(|(i, s)| (i, s.to_vec())).collect();
        drop(out);
        for (i, s) in restored {
            shards[i] = Some(s);
        }
    }
    let mut data = Vec::with_capacity(k * len);
    for s in &shards[..k] {
        data.extend_from_slice(s.as_deref().unwrap_or_default());
    }
    Ok(data)
}

/// What every target of a group says about one version: `None` for a
/// target that did not answer. For repair-like decisions (the node's
/// sweeper of versions left prepared by a writer that died).
pub async fn group_view(
    client: &Client,
    bucket: &str,
    key: &str,
    version: VersionId,
) -> Result<Vec<Option<HeadOk>>, ClientError> {
    let view = client.view();
    let pg = view.placement.pg_of(bucket, key);
    let targets = view.placement.targets(pg).to_vec();
    let mut set = JoinSet::new();
    for (i, &target) in targets.iter().enumerate() {
        let addr = view.addr(target)?;
        let req = Request::Head(Head {
            target,
            bucket: bucket.into(),
            key: key.into(),
            version: Some(version),
            exclude: vec![],
        });
        let c = client.clone();
        let epoch = view.map.epoch;
        set.spawn(async move { (i, head_one(c, addr, req, epoch).await) });
    }
    let mut out = vec![None; targets.len()];
    while let Some(r) = set.join_next().await {
        match r {
            Ok((i, Ok(h))) => out[i] = Some(h),
            Ok((_, Err(e @ ClientError::StaleMap { .. }))) => return Err(e),
            _ => {}
        }
    }
    Ok(out)
}
