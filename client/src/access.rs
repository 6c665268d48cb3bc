//! Bucket ACLs and policies from the SDK. A bucket's settings live on
//! every target (as the bucket record does), so a change goes to all of
//! them with one stamp from this client's clock; each target keeps the
//! newest stamp it has seen. A read asks every target and keeps the newest.

use tessera_wire::access::{BucketAccess, Policy};
use tessera_wire::{Acl, BucketAccessOk, GetBucketAccess, Request, Response, SetBucketAccess};

use crate::client::{unexpected, Client};
use crate::error::ClientError;
use crate::view::MapView;

/// What a bucket's access settings are, as the region holds them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BucketAccessView {
    /// The bucket's owner (its creator).
    pub owner: String,
    /// The canned ACL and policy with the newest stamp any target holds.
    pub access: BucketAccess,
    /// Targets that answered with older settings or not at all (a change
    /// made while they were away); naming them lets an operator re-run
    /// the change once they are back.
    pub behind: Vec<String>,
}

impl Client {
    /// Set a bucket's canned ACL and policy (None removes the policy).
    /// Only the bucket's owner and admins may. Every target must take
    /// the change: a target that missed it would keep enforcing the old
    /// settings, so an error lists the targets that did not, and running
    /// the change again (it is idempotent) completes it.
    pub async fn set_bucket_access(
        &self,
        bucket: &str,
        acl: Acl,
        policy: Option<Policy>,
    ) -> Result<BucketAccessView, ClientError> {
        tessera_wire::validate_bucket_name(bucket)?;
        if let Some(p) = &policy {
            p.check(bucket).map_err(|detail| ClientError::InvalidArgument { detail })?;
        }
        let access = BucketAccess { acl, policy, stamp: self.new_version() };
        let access = &access;
        self.with_map_retry(|view| async move {
            let req = |target| {
                Request::SetBucketAccess(SetBucketAccess { target, bucket: bucket.into(), access: access.clone() })
            };
            let view_now = self.ask_every_target(&view, req).await?;
            if !view_now.behind.is_empty() {
                return Err(ClientError::Unavailable {
                    detail: format!(
                        "bucket {bucket}: the new settings reached {} of {} targets; the rest still enforce the old \
                         ones until this is run again: {}",
                        view.locs.len() - view_now.behind.len(),
                        view.locs.len(),
                        view_now.behind.join("; ")
                    ),
                });
            }
            Ok(view_now)
        })
        .await
    }

    /// A bucket's owner, canned ACL and policy. Only those who may change
    /// them (the owner, admins, and principals a policy grants `acl`) may
    /// read them.
    pub async fn bucket_access(&self, bucket: &str) -> Result<BucketAccessView, ClientError> {
        tessera_wire::validate_bucket_name(bucket)?;
        self.with_map_retry(|view| async move {
            self.ask_every_target(&view, |target| {
                Request::GetBucketAccess(GetBucketAccess { target, bucket: bucket.into() })
            })
            .await
        })
        .await
    }

    /// Send one request per target and keep the newest settings. A
    /// refusal, a missing bucket or a map change ends the call: they are
    /// answers, not absences.
    async fn ask_every_target(
        &self,
        view: &MapView,
        req: impl Fn(tessera_wire::TargetId) -> Request,
    ) -> Result<BucketAccessView, ClientError> {
        let mut tasks = Vec::new();
        for (&target, loc) in view.locs.iter() {
            let (client, req, addr, epoch) = (self.clone(), req(target), loc.addr, view.map.epoch);
            tasks
                .push(tokio::spawn(async move { (target, client.inner.transport.call(addr, &req, &[], epoch).await) }));
        }
        let mut answers: Vec<(tessera_wire::TargetId, BucketAccessOk)> = Vec::new();
        let mut behind = Vec::new();
        for t in tasks {
            match t.await {
                Ok((target, Ok(reply))) => match reply.response {
                    Response::BucketAccessOk(a) => answers.push((target, a)),
                    other => return Err(unexpected("bucket access", other)),
                },
                Ok((
                    _,
                    Err(
                        e @ (ClientError::AccessDenied { .. }
                        | ClientError::NoSuchBucket { .. }
                        | ClientError::StaleMap { .. }
                        | ClientError::InvalidArgument { .. }),
                    ),
                )) => return Err(e),
                Ok((target, Err(e))) => behind.push(format!("{target}: {e}")),
                Err(e) => behind.push(format!("task: {e}")),
            }
        }
        let newest =
            answers.iter().max_by_key(|(_, a)| a.access.stamp).map(|(_, a)| a.clone()).ok_or_else(|| {
                ClientError::Unavailable { detail: format!("no target answered: {}", behind.join("; ")) }
            })?;
        for (target, a) in &answers {
            if a.access.stamp < newest.access.stamp {
                behind.push(format!("{target}: holds older settings"));
            }
        }
        Ok(BucketAccessView { owner: newest.owner, access: newest.access, behind })
    }
}
