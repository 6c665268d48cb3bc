//! Which principal may send which request. Decided on the node from the
//! principal the connection's certificate names, never from a field of the
//! request; docs/security.md has the same table for operators.
//!
//! | request                                        | user, gateway | admin | node | peer |
//! |------------------------------------------------|---------------|-------|------|------|
//! | GetMap, GetBucket, ListBuckets (own buckets)   | yes           | yes   | yes  | no   |
//! | CreateBucket (owner = principal)               | yes           | yes   | yes  | no   |
//! | reads, writes, commits, deletes, listings,     | yes (1)       | yes   | yes  | no   |
//! | bucket ACL and policy                          |               |       |      |      |
//! | PutShard that repairs or carries an origin     | no            | no    | yes  | no   |
//! | Delete with an origin (a replicated purge)     | no            | no    | yes  | no   |
//! | SetMap, SetRepairRate, Get/SetRegistry         | no            | yes   | yes  | no   |
//! | NodeStatus, RepairStatus, CrrStatus            | no            | yes   | yes  | no   |
//! | PgDigest, PgList, ChangeSummary, ChangeLog,    | no            | no    | yes  | no   |
//! | CrrCursor, CrrForget, CrrHave, CrrApply        |               |       |      |      |
//!
//! (1) As the bucket's owner, its canned ACL, its policy and the object's
//! ACL allow (`tessera_wire::access::decide`, from the target's bucket
//! record); a commit or a purge of a version still being written only by
//! its writer.
//!
//! Peer regions replicate through the replication endpoint (its own port
//! and trust stores), never through this one. For user, gateway and admin
//! principals the node records the principal as the owner of what they
//! create, whatever the request said; nodes keep the owner of the data
//! they copy (repair, replication).

use tessera_wire::access::{decide, Action, Subject};
use tessera_wire::{Acl, Principal, Request, Role, TargetId};

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
        | Request::SetBucketAccess(_)
        | Request::GetBucketAccess(_)
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
        | Request::GetRegistry(_)
        | Request::SetRegistry(_)
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
        Request::SetBucketAccess(_) => "setting a bucket's ACL and policy",
        Request::GetBucketAccess(_) => "reading a bucket's ACL and policy",
        Request::GetRegistry(_) => "reading the principal registry",
        Request::SetRegistry(_) => "installing a principal registry",
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
            // An admin may make a bucket for someone; everyone else owns
            // what they make (`check_bucket_owner` refused the rest).
            Request::CreateBucket(c) if who.role != Role::Admin || c.info.owner.is_empty() => {
                c.info.owner = who.name.clone()
            }
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
    if who.role == Role::Node {
        return Ok(());
    }
    let ids: Vec<tessera_wire::VersionId> = match req {
        Request::PutShard(p) => std::iter::once(p.version).chain(p.meta.as_ref().map(|m| m.version)).collect(),
        Request::SetBucketAccess(a) => vec![a.access.stamp],
        _ => return Ok(()),
    };
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

/// The bucket action a user's or gateway's request takes, with its
/// target, bucket and key. None: no bucket check (the role table
/// decided; `GetBucket` and `ListBuckets` are open to members, and
/// `ListBuckets` answers only the asker's buckets).
pub(crate) fn action_of(req: &Request) -> Option<(TargetId, &str, Action, Option<&str>)> {
    match req {
        Request::PutShard(p) if p.meta.as_ref().is_some_and(|m| m.delete_marker) => {
            Some((p.target, &p.bucket, Action::Delete, Some(&p.key)))
        }
        Request::PutShard(p) => Some((p.target, &p.bucket, Action::Put, Some(&p.key))),
        Request::Commit(c) => Some((c.target, &c.bucket, Action::Put, Some(&c.key))),
        Request::GetShard(g) => Some((g.target, &g.bucket, Action::Get, Some(&g.key))),
        Request::Head(h) => Some((h.target, &h.bucket, Action::Get, Some(&h.key))),
        Request::Delete(d) => Some((d.target, &d.bucket, Action::Delete, Some(&d.key))),
        Request::List(l) => Some((l.target, &l.bucket, Action::List, None)),
        Request::ListVersions(l) => Some((l.target, &l.bucket, Action::List, None)),
        Request::SetBucketAccess(a) => Some((a.target, &a.bucket, Action::Acl, None)),
        Request::GetBucketAccess(a) => Some((a.target, &a.bucket, Action::Acl, None)),
        _ => None,
    }
}

/// Whether ACLs and policies bind `who`: users and gateways; admins and
/// nodes act in every bucket.
pub(crate) fn bound_by_acls(who: &Principal) -> bool {
    matches!(who.role, Role::User | Role::Gateway)
}

/// A bucket's owner and access settings, kept for a decision that needs
/// the object (reads decide once the engine has found it).
pub(crate) struct Pending {
    pub(crate) key: String,
    pub(crate) settings: std::rc::Rc<crate::engine::BucketSettings>,
}

impl Pending {
    /// Decide a read once the object's owner and ACL are known (None: the
    /// target has no such object).
    pub(crate) fn decide_read(&self, who: &Principal, object: Option<(&str, Acl)>) -> Result<(), String> {
        let subject = Subject {
            bucket: &self.settings.info.name,
            bucket_owner: &self.settings.info.owner,
            access: &self.settings.access,
            key: Some(&self.key),
            object,
        };
        decide(who, Action::Get, &subject).map(|_| ())
    }
}

/// Decide a bucket action for a user or gateway from the bucket's owner
/// and settings. Reads are left pending (Ok(Some)) until the object is
/// found.
pub(crate) fn decide_bucket(
    who: &Principal,
    action: Action,
    key: Option<&str>,
    settings: std::rc::Rc<crate::engine::BucketSettings>,
) -> Result<Option<Pending>, String> {
    if action == Action::Get {
        return Ok(Some(Pending { key: key.unwrap_or_default().to_owned(), settings }));
    }
    let subject = Subject {
        bucket: &settings.info.name,
        bucket_owner: &settings.info.owner,
        access: &settings.access,
        key,
        object: None,
    };
    decide(who, action, &subject).map(|_| None)
}

/// A user's or gateway's `CreateBucket` must name the sender as owner (or
/// no one: the node stamps the sender). A client that re-records a bucket a
/// target missed sends the owner it read elsewhere; only that owner, an
/// admin or a node may, or the first to ask would own the bucket there.
pub(crate) fn check_bucket_owner(who: &Principal, req: &Request) -> Result<(), String> {
    match req {
        Request::CreateBucket(c) if bound_by_acls(who) && !c.info.owner.is_empty() && c.info.owner != who.name => {
            Err(format!(
                "{who} may not record bucket {} for {}: a bucket a target missed is re-recorded by its owner, an \
                 admin or repair",
                c.info.name, c.info.owner
            ))
        }
        _ => Ok(()),
    }
}

/// The refusal for committing or purging a version someone else is
/// writing (only its writer, admins and nodes may).
pub(crate) fn not_writer(who: &Principal, bucket: &str, key: &str, writer: &str) -> String {
    format!(
        "{who} may not commit or purge the version of {bucket}/{key} that {writer} is writing: only its writer, \
         admins and nodes may"
    )
}
