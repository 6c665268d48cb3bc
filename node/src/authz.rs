//! Which principal may send which request. Decided on the node from the
//! principal the connection's certificate names, never from a field of the
//! request; docs/security.md has the same table for operators.
//!
//! | request                                        | user, gateway | admin | node | peer |
//! |------------------------------------------------|---------------|-------|------|------|
//! | GetMap, data reads, listings, bucket info      | yes           | yes   | yes  | no   |
//! | PutShard, CreateBucket (owner = principal)     | yes           | yes   | yes  | no   |
//! | Commit, Delete (purge) of a version            | yes (1)       | yes   | yes  | no   |
//! | PutShard that repairs or carries an origin     | no            | no    | yes  | no   |
//! | Delete with an origin (a replicated purge)     | no            | no    | yes  | no   |
//! | SetMap, SetRepairRate                          | no            | yes   | yes  | no   |
//! | NodeStatus, RepairStatus, CrrStatus            | no            | yes   | yes  | no   |
//! | PgDigest, PgList, ChangeSummary, ChangeLog,    | no            | no    | yes  | no   |
//! | CrrCursor, CrrForget, CrrHave, CrrApply        |               |       |      |      |
//!
//! (1) Users and gateways act only in buckets they own (`must_own`,
//! checked by the server against the target's bucket record); bucket ACLs
//! and policies that would grant others are not built yet.
//!
//! Peer regions replicate through the replication endpoint (its own port
//! and trust stores), never through this one. For user, gateway and admin
//! principals the node records the principal as the owner of what they
//! create, whatever the request said; nodes keep the owner of the data
//! they copy (repair, replication).

use tessera_wire::{Principal, Request, Role};

/// Who may send a request, from least to most trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// Any user, gateway, admin or node.
    Member,
    /// An admin or a node.
    Operator,
    /// A node of this region.
    Node,
}

fn need(req: &Request) -> Need {
    match req {
        Request::GetMap(_)
        | Request::GetShard(_)
        | Request::Head(_)
        | Request::List(_)
        | Request::ListVersions(_)
        | Request::GetBucket(_)
        | Request::ListBuckets(_)
        | Request::CreateBucket(_)
        | Request::Commit(_) => Need::Member,
        Request::PutShard(p) => {
            if p.repair || p.meta.as_ref().is_some_and(|m| m.origin.is_some()) {
                Need::Node
            } else {
                Need::Member
            }
        }
        Request::Delete(d) => {
            if d.origin.is_some() {
                Need::Node
            } else {
                Need::Member
            }
        }
        Request::SetMap(_)
        | Request::SetRepairRate(_)
        | Request::NodeStatus(_)
        | Request::RepairStatus(_)
        | Request::CrrStatus(_) => Need::Operator,
        Request::PgDigest(_)
        | Request::PgList(_)
        | Request::ChangeSummary(_)
        | Request::ChangeLog(_)
        | Request::CrrCursor(_)
        | Request::CrrForget(_)
        | Request::CrrHave(_)
        | Request::CrrApply(_) => Need::Node,
    }
}

fn allowed(role: Role, need: Need) -> bool {
    match role {
        Role::Node => true,
        Role::Admin => need != Need::Node,
        Role::User | Role::Gateway => need == Need::Member,
        Role::Peer => false,
    }
}

fn what(req: &Request) -> &'static str {
    match req {
        Request::PutShard(p) if p.repair => "a repair write",
        Request::PutShard(_) => "a write",
        Request::GetShard(_) => "a read",
        Request::Head(_) => "a head",
        Request::Delete(_) => "a delete",
        Request::List(_) => "a listing",
        Request::CreateBucket(_) => "creating a bucket",
        Request::GetBucket(_) => "a bucket lookup",
        Request::NodeStatus(_) => "node status",
        Request::Commit(_) => "a commit",
        Request::ListVersions(_) => "a version listing",
        Request::GetMap(_) => "the cluster map",
        Request::SetMap(_) => "installing a cluster map",
        Request::PgDigest(_) | Request::PgList(_) => "repair's group digests",
        Request::RepairStatus(_) => "repair status",
        Request::SetRepairRate(_) => "setting the repair rate",
        Request::ChangeLog(_) | Request::ChangeSummary(_) => "the change log",
        Request::CrrCursor(_) | Request::CrrForget(_) => "moving the replication cursor",
        Request::CrrStatus(_) => "replication status",
        Request::CrrHave(_) | Request::CrrApply(_) => "applying a replica",
        Request::ListBuckets(_) => "listing buckets",
    }
}

/// Decide whether `who` may send `req`; on yes, stamp `who` as the owner
/// of what it creates. The error names the principal, the operation and
/// who may do it.
pub(crate) fn authorize(who: &Principal, req: &mut Request) -> Result<(), String> {
    let n = need(req);
    if !allowed(who.role, n) {
        let op = what(req);
        let origin = match req {
            Request::PutShard(p) if p.meta.as_ref().is_some_and(|m| m.origin.is_some()) => {
                " (a write that keeps another region's version)"
            }
            Request::Delete(d) if d.origin.is_some() => " (a purge replicated from another region)",
            _ => "",
        };
        let who_may = match n {
            Need::Member => "members of this region (users, gateways, admins, nodes)",
            Need::Operator => "admins and nodes",
            Need::Node => "this region's nodes",
        };
        let hint =
            if who.role == Role::Peer { "; peer regions replicate through the replication endpoint" } else { "" };
        return Err(format!("{who} may not send {op}{origin}: only {who_may} may{hint}"));
    }
    if who.role != Role::Node {
        match req {
            Request::PutShard(p) => {
                if let Some(m) = p.meta.as_mut() {
                    m.owner = who.name.clone();
                }
            }
            Request::CreateBucket(c) => c.info.owner = who.name.clone(),
            _ => {}
        }
    }
    Ok(())
}

/// A new version's id must not lie more than `skew_ms` ahead of this
/// node's clock, unless a node sends it (nodes copy versions whose ids
/// others made: repair, replication). The id orders versions: one from the
/// far future would hide every later write of its key, and would drag the
/// writers' clocks (which observe ids) along.
pub(crate) fn vouch_version(who: &Principal, req: &Request, now_ms: u64, skew_ms: u64) -> Result<(), String> {
    let Request::PutShard(p) = req else { return Ok(()) };
    if who.role == Role::Node {
        return Ok(());
    }
    let ids = std::iter::once(p.version).chain(p.meta.as_ref().map(|m| m.version));
    for id in ids {
        let ahead = id.millis().saturating_sub(now_ms);
        if ahead > skew_ms {
            return Err(format!(
                "version id {} is {} s ahead of this node's clock (at most {} s allowed): the writer's clock is \
                 wrong, or the id was not made by a clock",
                id,
                ahead / 1_000,
                skew_ms / 1_000
            ));
        }
    }
    Ok(())
}

/// The target and bucket a request acts on, for the ownership check.
pub(crate) fn bucket_of(req: &Request) -> Option<(tessera_wire::TargetId, &str)> {
    match req {
        Request::PutShard(p) => Some((p.target, &p.bucket)),
        Request::GetShard(g) => Some((g.target, &g.bucket)),
        Request::Head(h) => Some((h.target, &h.bucket)),
        Request::Delete(d) => Some((d.target, &d.bucket)),
        Request::Commit(c) => Some((c.target, &c.bucket)),
        Request::List(l) => Some((l.target, &l.bucket)),
        Request::ListVersions(l) => Some((l.target, &l.bucket)),
        Request::GetBucket(g) => Some((g.target, &g.name)),
        _ => None,
    }
}

/// Whether `who` must own a bucket to act in it: users and gateways do
/// (bucket ACLs and policies, which would grant others, are not built
/// yet); admins and nodes act in every bucket.
pub(crate) fn must_own(who: &Principal) -> bool {
    matches!(who.role, Role::User | Role::Gateway)
}

/// The refusal for acting in someone else's bucket.
pub(crate) fn not_owner(who: &Principal, req: &Request, bucket: &str, owner: &str) -> String {
    format!(
        "{who} may not send {} in bucket {bucket}: it belongs to {owner} (only a bucket's owner, admins and nodes \
         act in it; bucket ACLs and policies are not built yet)",
        what(req)
    )
}
