//! Listings: ask every target of two zones and merge their pages. Every
//! placement group has shards in every zone, and an acknowledged write is
//! committed in at least two zones: a set that satisfies the rule has
//! shards outside every zone, so it cannot sit in one zone alone, and a
//! degraded write (k + 1 shards in the live zones, k + 1 > a zone's share)
//! spans both live zones. One zone is not enough: a write acknowledged
//! while that zone lagged (the degraded rule) may not have reached it yet.
//! If a target of a zone does not answer, the next zone is asked instead.

use tessera_wire::{List, ListVersions, Request, Response, TargetId, VersionId};
use tokio::task::JoinSet;

use crate::client::{unexpected, VersionsPage};
use crate::view::MapView;
use crate::{Client, ClientError, ListPage, ListRequest};

/// Zones in the order to try: the configured one first.
fn zone_order(client: &Client, view: &MapView) -> Vec<Vec<TargetId>> {
    let preferred = client.inner.cfg.zone.as_deref();
    let mut zones: Vec<(bool, Vec<TargetId>)> = view
        .map
        .zones
        .iter()
        .enumerate()
        .map(|(zi, z)| {
            let targets =
                view.locs.iter().filter(|(_, l)| l.zone == zi && l.capacity_bytes > 0).map(|(t, _)| *t).collect();
            (Some(z.name.as_str()) != preferred, targets)
        })
        .filter(|(_, t): &(bool, Vec<TargetId>)| !t.is_empty())
        .collect();
    zones.sort_by_key(|(not_preferred, _)| *not_preferred);
    zones.into_iter().map(|(_, t)| t).collect()
}

async fn ask_zone<T: Send + 'static>(
    client: &Client,
    view: &MapView,
    targets: &[TargetId],
    make: &impl Fn(TargetId) -> Request,
    pick: fn(Response) -> Result<T, Box<Response>>,
) -> Result<Vec<T>, ClientError> {
    let mut set = JoinSet::new();
    for &t in targets {
        let addr = view.addr(t)?;
        let (c, req, epoch) = (client.clone(), make(t), view.map.epoch);
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

fn fallback_ok(e: &ClientError) -> bool {
    !matches!(e, ClientError::NoSuchBucket { .. } | ClientError::StaleMap { .. } | ClientError::Invalid(_))
}

/// Pages from every target of two zones (one in a one-zone map): the
/// preferred zone and the next, each replaced by a further zone if one of
/// its targets fails.
async fn ask_two_zones<T: Send + 'static>(
    client: &Client,
    view: &MapView,
    make: impl Fn(TargetId) -> Request,
    pick: fn(Response) -> Result<T, Box<Response>>,
) -> Result<Vec<T>, ClientError> {
    let zones = zone_order(client, view);
    let needed = zones.len().min(2);
    let mut pages = Vec::new();
    let mut answered = 0;
    let mut last = None;
    let mut rest = zones.iter();
    // The first two zones at once, then one at a time as needed.
    let first: Vec<&Vec<TargetId>> = rest.by_ref().take(needed).collect();
    let mut results = Vec::new();
    match first.as_slice() {
        [a, b] => {
            let (ra, rb) = tokio::join!(ask_zone(client, view, a, &make, pick), ask_zone(client, view, b, &make, pick));
            results.push(ra);
            results.push(rb);
        }
        [a] => results.push(ask_zone(client, view, a, &make, pick).await),
        _ => {}
    }
    loop {
        for r in results.drain(..) {
            match r {
                Ok(p) => {
                    pages.extend(p);
                    answered += 1;
                }
                Err(e) if fallback_ok(&e) => {
                    tracing::debug!(error = %e, "listing zone unavailable; trying the next zone");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        if answered >= needed {
            return Ok(pages);
        }
        let Some(z) = rest.next() else { break };
        results.push(ask_zone(client, view, z, &make, pick).await);
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
    let pages = ask_two_zones(client, view, make, pick).await?;
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
    let pages = ask_two_zones(client, view, make, pick).await?;
    let (entries, next) = crate::list::merge_version_pages(pages, limit as usize);
    Ok(VersionsPage { entries, next })
}
