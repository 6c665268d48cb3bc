//! Listings: ask every target of one zone (every placement group has
//! shards in every zone, and an acknowledged write is committed on at
//! least one target of every zone), merge their pages; if a target of the
//! zone does not answer, ask the next zone instead.

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
    make: impl Fn(TargetId) -> Request,
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

pub(crate) async fn list(
    client: &Client,
    view: &MapView,
    bucket: &str,
    req: ListRequest,
) -> Result<ListPage, ClientError> {
    let limit =
        req.limit.unwrap_or(tessera_wire::limits::LIST_LIMIT_MAX).clamp(1, tessera_wire::limits::LIST_LIMIT_MAX);
    let mut last = None;
    for targets in zone_order(client, view) {
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
        match ask_zone(client, view, &targets, make, pick).await {
            Ok(pages) => {
                let (entries, common_prefixes, next) = crate::merge_pages(pages, limit as usize);
                return Ok(ListPage { entries, common_prefixes, next });
            }
            Err(e) if fallback_ok(&e) => {
                tracing::debug!(error = %e, "listing zone unavailable; trying the next zone");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(ClientError::Unavailable { detail: "no zone could list".into() }))
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
    let mut last = None;
    for targets in zone_order(client, view) {
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
        match ask_zone(client, view, &targets, make, pick).await {
            Ok(pages) => {
                let (entries, next) = crate::list::merge_version_pages(pages, limit as usize);
                return Ok(VersionsPage { entries, next });
            }
            Err(e) if fallback_ok(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or(ClientError::Unavailable { detail: "no zone could list versions".into() }))
}
