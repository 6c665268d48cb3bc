//! Requests a node's replication streamer makes inside its own region: the
//! change logs and cursors of targets, and the streamer status of nodes.

use std::net::SocketAddr;
use std::time::Duration;

use tessera_wire::crr::{
    ChangeId, ChangeLog, ChangeLogOk, ChangeSummary, CrrCursor, CrrForget, CrrStatus, CrrStatusOk, PgBacklog,
    RuleCursor, CHANGES_PER_PAGE_MAX,
};
use tessera_wire::{NodeStatus, Request, Response, TargetId};

use crate::client::unexpected;
use crate::{Client, ClientError};

/// What a region holds of one version (for idempotent replication).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VersionHeld {
    /// Committed (an object or a delete marker).
    Committed(Box<tessera_wire::ObjectMeta>),
    /// Deleted for good: a tombstone.
    Purged,
    /// Not committed anywhere a read quorum can see.
    Absent,
}

impl Client {
    /// Whether `version` of `bucket/key` is committed here, purged, or
    /// absent, by the same read quorum GET uses; delete markers count.
    pub async fn version_held(
        &self,
        bucket: &str,
        key: &str,
        version: tessera_wire::VersionId,
    ) -> Result<VersionHeld, ClientError> {
        tessera_wire::validate_bucket_name(bucket)?;
        tessera_wire::validate_key(key)?;
        self.with_map_retry(|view| async move {
            let pg = view.placement.pg_of(bucket, key);
            let targets = view.placement.targets(pg).to_vec();
            let quorum = view.read_quorum(pg);
            let answers =
                crate::read::head_round(self, &view, &targets, bucket, key, Some(version), &[], quorum).await?;
            if answers.iter().any(|a| a.purged.contains(&version)) {
                return Ok(VersionHeld::Purged);
            }
            let committed =
                answers.into_iter().filter(|a| a.committed).find_map(|a| a.meta.filter(|m| m.version == version));
            Ok(committed.map_or(VersionHeld::Absent, |m| VersionHeld::Committed(Box::new(m))))
        })
        .await
    }

    /// The whole body of a version whose metadata the caller already holds
    /// (read from a member of its group): the read skips resolving the
    /// version by quorum. The replication streamer reads this way.
    pub fn body_of(&self, bucket: &str, meta: tessera_wire::ObjectMeta) -> crate::ObjectBody {
        let view = self.view();
        let (key, len) = (meta.key.clone(), meta.size_bytes);
        crate::ObjectBody::new(self.clone(), view, bucket.to_owned(), key, meta, 0, len, true)
    }

    /// Groups of `target` whose change log holds entries.
    pub async fn change_summary(&self, target: TargetId) -> Result<Vec<PgBacklog>, ClientError> {
        match self.target_call(target, &Request::ChangeSummary(ChangeSummary { target }), &[]).await? {
            Response::ChangeSummaryOk(ok) => Ok(ok.groups),
            other => Err(unexpected("change summary", other)),
        }
    }

    /// A page of `target`'s change log for group `pg`, after `after_lsn`.
    pub async fn change_log(&self, target: TargetId, pg: u32, after_lsn: u64) -> Result<ChangeLogOk, ClientError> {
        let req = Request::ChangeLog(ChangeLog { target, pg, after_lsn, limit: CHANGES_PER_PAGE_MAX as u32 });
        match self.target_call(target, &req, &[]).await? {
            Response::ChangeLogOk(ok) => Ok(ok),
            other => Err(unexpected("change log", other)),
        }
    }

    /// Record a rule's progress in a group on `target`, durably.
    pub async fn set_crr_cursor(
        &self,
        target: TargetId,
        pg: u32,
        rule: &str,
        cursor: RuleCursor,
    ) -> Result<(), ClientError> {
        let req = Request::CrrCursor(CrrCursor { target, pg, rule: rule.to_owned(), cursor });
        match self.target_call(target, &req, &[]).await? {
            Response::CrrOk(_) => Ok(()),
            other => Err(unexpected("crr cursor", other)),
        }
    }

    /// Drop change-log entries on `target` (in pages of the wire limit).
    pub async fn forget_changes(&self, target: TargetId, pg: u32, ids: &[ChangeId]) -> Result<u32, ClientError> {
        let mut n = 0;
        for chunk in ids.chunks(CHANGES_PER_PAGE_MAX) {
            let req = Request::CrrForget(CrrForget { target, pg, changes: chunk.to_vec() });
            match self.target_call(target, &req, &[]).await? {
                Response::CrrOk(ok) => n += ok.count,
                other => return Err(unexpected("crr forget", other)),
            }
        }
        Ok(n)
    }

    /// One node's replication figures.
    pub async fn crr_status(&self, addr: SocketAddr) -> Result<CrrStatusOk, ClientError> {
        let epoch = self.view().map.epoch;
        match self.inner.transport.call(addr, &Request::CrrStatus(CrrStatus {}), &[], epoch).await?.response {
            Response::CrrStatusOk(s) => Ok(s),
            other => Err(unexpected("crr status", other)),
        }
    }

    /// Does the node at `addr` answer within `within`?
    pub async fn node_answers(&self, addr: SocketAddr, within: Duration) -> bool {
        let req = Request::NodeStatus(NodeStatus {});
        matches!(self.inner.transport.call_within(addr, &req, &[], 0, within).await, Ok(r) if matches!(r.response, Response::NodeStatusOk(_)))
    }
}
