//! Listings: ask every target of two zones and merge their pages. Every
//! placement group has shards in every zone, and an acknowledged write is
//! committed in at least two zones: a set that satisfies the rule has
//! shards outside every zone, so it cannot sit in one zone alone, and a
//! degraded write (k + 1 shards in the live zones, k + 1 > a zone's share)
//! spans both live zones. One zone is not enough: a write acknowledged
//! while that zone lagged (the degraded rule) may not have reached it yet.
//! If a target of a zone does not answer, the next zone is asked instead.

use tessera_wire::{BucketInfo, List, ListBuckets, ListVersions, Request, Response, TargetId, VersionId};
use tokio::task::JoinSet;

use crate::client::{unexpected, VersionsPage};
use crate::view::MapView;
use crate::{Client, ClientError, ListPage, ListRequest};

/// Zones in the order to try: the configured one first, else the zone of
/// the seed that answered first (it was alive a moment ago); zones with a
/// node known to be down last (a listing would wait on it).
fn zone_order(client: &Client, view: &MapView) -> Vec<Vec<TargetId>> {
    let answered_zone = client.home_zone(view).map(|zi| view.map.zones[zi].name.as_str());
    let preferred = client.inner.cfg.zone.as_deref().or(answered_zone);
    let t = &client.inner.transport;
    let mut zones: Vec<(bool, bool, Vec<TargetId>)> = view
        .map
        .zones
        .iter()
        .enumerate()
        .map(|(zi, z)| {
            let targets =
                view.locs.iter().filter(|(_, l)| l.zone == zi && l.capacity_bytes > 0).map(|(t, _)| *t).collect();
            let down = view.locs.iter().any(|(_, l)| l.zone == zi && t.is_down(l.addr));
            (down, Some(z.name.as_str()) != preferred, targets)
        })
        .filter(|(_, _, t): &(bool, bool, Vec<TargetId>)| !t.is_empty())
        .collect();
    zones.sort_by_key(|(down, not_preferred, _)| (*down, *not_preferred));
    zones.into_iter().map(|(_, _, t)| t).collect()
}

/// Every target of one zone, all at once; the first failure fails the zone.
async fn ask_zone<T: Send + 'static>(
    client: Client,
    epoch: u64,
    plan: Vec<(std::net::SocketAddr, Request)>,
    pick: fn(Response) -> Result<T, Box<Response>>,
) -> Result<Vec<T>, ClientError> {
    let mut set = JoinSet::new();
    for (addr, req) in plan {
        let c = client.clone();
        set.spawn(async move {
            match c.inner.transport.call(addr, &req, &[], epoch).await {
                Ok(r) => pick(r.response).map_err(|other| unexpected("list", *other)),
                Err(e) => Err(e),
            }
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(p)) => out.push(p),
            Ok(Err(e)) => {
                set.abort_all();
                return Err(e);
            }
            Err(e) => return Err(ClientError::Unavailable { detail: format!("list task: {e}") }),
        }
    }
    Ok(out)
}

/// May another zone answer instead? Also for "no such bucket": a zone
/// that was down when the bucket was made may not know it yet (two zones
/// that do not know it end the listing with that error).
fn fallback_ok(e: &ClientError) -> bool {
    !matches!(e, ClientError::StaleMap { .. } | ClientError::Invalid(_))
}

/// Pages from every target of two zones (one in a one-zone map): the
/// preferred zone and the next at once; a further zone when one of them
/// fails, and also when two have not answered within the hedge delay (a
/// dead zone's nodes would hold the listing up for a handshake timeout).
/// The first two zones to answer in full are used. With `one_per_zone`,
/// one live target stands for its zone (for what every target of a zone
/// holds, such as buckets).
async fn ask_two_zones<T: Send + 'static>(
    client: &Client,
    view: &MapView,
    make: impl Fn(TargetId) -> Request,
    pick: fn(Response) -> Result<T, Box<Response>>,
    one_per_zone: bool,
) -> Result<Vec<T>, ClientError> {
    let mut plans = Vec::new();
    for zone in zone_order(client, view) {
        let zone = if one_per_zone { client.prefer_live(view, &zone).into_iter().take(1).collect() } else { zone };
        plans.push(zone.iter().map(|&t| Ok((view.addr(t)?, make(t)))).collect::<Result<Vec<_>, ClientError>>()?);
    }
    let needed = plans.len().min(2);
    let hedge = std::time::Duration::from_millis(client.inner.cfg.hedge_ms);
    let epoch = view.map.epoch;
    let mut plans = plans.into_iter();
    let mut set = JoinSet::new();
    for plan in plans.by_ref().take(needed) {
        set.spawn(ask_zone(client.clone(), epoch, plan, pick));
    }
    let mut pages = Vec::new();
    let mut answered = 0;
    let mut last = None;
    let mut no_bucket = 0;
    let mut hedge_at = tokio::time::Instant::now() + hedge;
    while answered < needed {
        if set.len() + answered < needed {
            match plans.next() {
                Some(plan) => {
                    set.spawn(ask_zone(client.clone(), epoch, plan, pick));
                }
                None if set.is_empty() => break,
                None => {}
            }
        }
        tokio::select! {
            r = set.join_next() => match r {
                Some(Ok(Ok(p))) => {
                    pages.extend(p);
                    answered += 1;
                }
                Some(Ok(Err(e @ ClientError::NoSuchBucket { .. }))) if no_bucket + 1 >= needed => {
                    set.abort_all();
                    return Err(e);
                }
                Some(Ok(Err(e))) if fallback_ok(&e) => {
                    tracing::debug!(error = %e, "listing zone unavailable; trying the next zone");
                    no_bucket += usize::from(matches!(e, ClientError::NoSuchBucket { .. }));
                    last = Some(e);
                }
                Some(Ok(Err(e))) => {
                    set.abort_all();
                    return Err(e);
                }
                Some(Err(e)) => last = Some(ClientError::Unavailable { detail: format!("list task: {e}") }),
                None => break,
            },
            () = tokio::time::sleep_until(hedge_at), if plans.len() > 0 => {
                if let Some(plan) = plans.next() {
                    tracing::debug!("listing zones slow to answer; asking another zone too");
                    set.spawn(ask_zone(client.clone(), epoch, plan, pick));
                }
                hedge_at = tokio::time::Instant::now() + hedge;
            }
        }
    }
    set.abort_all();
    if answered >= needed {
        return Ok(pages);
    }
    Err(last.unwrap_or(ClientError::Unavailable { detail: "fewer than two zones could list".into() }))
}

pub(crate) async fn list(
    client: &Client,
    view: &MapView,
    bucket: &str,
    req: ListRequest,
) -> Result<ListPage, ClientError> {
    let limit =
        req.limit.unwrap_or(tessera_wire::limits::LIST_LIMIT_MAX).clamp(1, tessera_wire::limits::LIST_LIMIT_MAX);
    let make = |target| {
        Request::List(List {
            target,
            bucket: bucket.into(),
            prefix: req.prefix.clone(),
            delimiter: req.delimiter.clone(),
            start_after: req.continuation.clone(),
            limit,
        })
    };
    let pick = |r| match r {
        Response::ListOk(p) => Ok(p),
        other => Err(Box::new(other)),
    };
    let pages = ask_two_zones(client, view, make, pick, false).await?;
    let (entries, common_prefixes, next) = crate::merge_pages(pages, limit as usize);
    Ok(ListPage { entries, common_prefixes, next })
}

pub(crate) async fn list_versions(
    client: &Client,
    view: &MapView,
    bucket: &str,
    prefix: &str,
    after: Option<(String, VersionId)>,
    limit: u32,
) -> Result<VersionsPage, ClientError> {
    let limit = limit.clamp(1, tessera_wire::limits::LIST_LIMIT_MAX);
    let make = |target| {
        Request::ListVersions(ListVersions {
            target,
            bucket: bucket.into(),
            prefix: prefix.into(),
            after: after.clone(),
            limit,
        })
    };
    let pick = |r| match r {
        Response::ListVersionsOk(p) => Ok(p),
        other => Err(Box::new(other)),
    };
    let pages = ask_two_zones(client, view, make, pick, false).await?;
    let (entries, next) = crate::list::merge_version_pages(pages, limit as usize);
    Ok(VersionsPage { entries, next })
}

/// One page of the region's buckets, in name order, after `after`: one
/// target in each of two zones (every target records every bucket, and a
/// bucket made while a zone was down is missing only in that zone).
pub(crate) async fn list_buckets(
    client: &Client,
    view: &MapView,
    after: Option<String>,
    limit: u32,
) -> Result<(Vec<BucketInfo>, Option<String>), ClientError> {
    let limit = limit.clamp(1, tessera_wire::limits::BUCKET_LIST_MAX);
    let make = |target| Request::ListBuckets(ListBuckets { target, after: after.clone(), limit });
    let pick = |r| match r {
        Response::ListBucketsOk(p) => Ok(p),
        other => Err(Box::new(other)),
    };
    let pages = ask_two_zones(client, view, make, pick, true).await?;
    Ok(crate::list::merge_bucket_pages(pages, limit as usize))
}
