//! The data mechanics of repair, for the node's anti-entropy task: ask a
//! target for its group digests and version lists, rebuild shards of a
//! stripe from k intact ones, and write them back. What to repair and how
//! fast is the node's decision (node/src/repair.rs); this module only moves
//! and recomputes bytes, with the same transport and erasure code as the
//! read and write paths.

use std::net::SocketAddr;

use reed_solomon_simd::ReedSolomonEncoder;
use tessera_wire::repair::{
    PgDigest, PgEntry, PgList, PgSum, RepairStatus, RepairStatusOk, SetRepairRate, PG_LIST_MAX,
};
use tessera_wire::stripe::Layout;
use tessera_wire::{
    BucketInfo, CommitVersion, CreateBucket, DeleteObject, GetBucket, GetShard, Head, ObjectMeta, PutShard, Request,
    Response, ShardIndex, StripeIndex, TargetId, VersionId,
};

use crate::client::unexpected;
use crate::read::reconstruct;
use crate::{Client, ClientError};

impl Client {
    pub(crate) async fn target_call(
        &self,
        target: TargetId,
        req: &Request,
        payload: &[u8],
    ) -> Result<Response, ClientError> {
        let view = self.view();
        let addr = view.addr(target)?;
        Ok(self.inner.transport.call(addr, req, payload, view.map.epoch).await?.response)
    }

    /// Digests of `target`'s version sets in `pgs`.
    pub async fn pg_digests(&self, target: TargetId, pgs: Vec<u32>) -> Result<Vec<PgSum>, ClientError> {
        match self.target_call(target, &Request::PgDigest(PgDigest { target, pgs }), &[]).await? {
            Response::PgDigestOk(ok) => Ok(ok.sums),
            other => Err(unexpected("pg digest", other)),
        }
    }

    /// One page of the versions `target` holds in group `pg`, after `after`.
    pub async fn pg_list_page(
        &self,
        target: TargetId,
        pg: u32,
        after: Option<tessera_wire::repair::VersionRef>,
    ) -> Result<tessera_wire::repair::PgListOk, ClientError> {
        let req = Request::PgList(PgList { target, pg, after, limit: PG_LIST_MAX });
        match self.target_call(target, &req, &[]).await? {
            Response::PgListOk(page) => Ok(page),
            other => Err(unexpected("pg list", other)),
        }
    }

    /// Every version `target` holds in group `pg`, sorted, all pages.
    pub async fn pg_versions(&self, target: TargetId, pg: u32) -> Result<Vec<PgEntry>, ClientError> {
        let mut out: Vec<PgEntry> = Vec::new();
        loop {
            let after = out.last().map(|e| e.at.clone());
            let req = Request::PgList(PgList { target, pg, after, limit: PG_LIST_MAX });
            match self.target_call(target, &req, &[]).await? {
                Response::PgListOk(page) => {
                    let more = page.more && !page.entries.is_empty();
                    out.extend(page.entries);
                    if !more {
                        return Ok(out);
                    }
                }
                other => return Err(unexpected("pg list", other)),
            }
        }
    }

    /// The metadata of `version` as `target` holds it (committed or prepared).
    pub async fn version_meta(
        &self,
        target: TargetId,
        bucket: &str,
        key: &str,
        version: VersionId,
    ) -> Result<ObjectMeta, ClientError> {
        let req = Request::Head(Head {
            target,
            bucket: bucket.into(),
            key: key.into(),
            version: Some(version),
            exclude: vec![],
        });
        match self.target_call(target, &req, &[]).await? {
            Response::HeadOk(h) => h.meta.filter(|m| m.version == version).ok_or_else(|| ClientError::NoSuchKey {
                detail: format!("{bucket}/{key} version {version} on target {target}"),
            }),
            other => Err(unexpected("head", other)),
        }
    }

    /// Rebuild shards `want` of stripe `stripe` of `meta` from the group
    /// `members` (shard i lives on members[i]), reading whole shards from
    /// `sources` (data shards first, so a healthy stripe needs no decode).
    /// Returns the wanted shards in the order asked.
    pub async fn rebuild_stripe(
        &self,
        bucket: &str,
        meta: &ObjectMeta,
        members: &[TargetId],
        sources: &[usize],
        stripe: u32,
        want: &[usize],
    ) -> Result<Vec<Vec<u8>>, ClientError> {
        let k = usize::from(meta.ec.data);
        let m = usize::from(meta.ec.parity);
        let len = Layout::of(meta).shard_len(stripe) as usize;
        let mut shards: Vec<Option<Vec<u8>>> = vec![None; k + m];
        let mut order: Vec<usize> = sources.to_vec();
        order.sort_unstable();
        let mut next = order.into_iter();
        let mut have = 0usize;
        let mut failed = Vec::new();
        // k reads at once, data shards first; each failure starts the next source.
        let mut reads = tokio::task::JoinSet::new();
        loop {
            while have + reads.len() < k {
                let Some(i) = next.next() else { break };
                let (c, target, bucket, meta) = (self.clone(), members[i], bucket.to_owned(), meta.clone());
                reads.spawn(async move { (i, c.fetch_shard(target, &bucket, &meta, stripe, i).await) });
            }
            let Some(done) = reads.join_next().await else { break };
            match done {
                Ok((i, Ok(data))) if data.len() == len => {
                    shards[i] = Some(data);
                    have += 1;
                }
                Ok((i, Ok(data))) => failed.push(format!("shard {i}: {} bytes, expected {len}", data.len())),
                Ok((i, Err(e))) => failed.push(format!("shard {i}: {e}")),
                Err(e) => failed.push(format!("read task: {e}")),
            }
            if have == k {
                break;
            }
        }
        reads.abort_all();
        if have < k {
            return Err(ClientError::Unavailable {
                detail: format!(
                    "rebuilding {bucket}/{} {} stripe {stripe}: {have} of {k} shards read: {}",
                    meta.key,
                    meta.version,
                    failed.join("; ")
                ),
            });
        }
        if len == 0 {
            return Ok(want.iter().map(|_| Vec::new()).collect());
        }
        // Restore the data shards, then recompute parity if asked for.
        reconstruct(&mut shards, k, m, len)?;
        if want.iter().any(|&i| i >= k) {
            let rs = |e: reed_solomon_simd::Error| ClientError::Config { detail: format!("erasure encoding: {e}") };
            let mut enc = ReedSolomonEncoder::new(k, m, len).map_err(rs)?;
            for s in &shards[..k] {
                enc.add_original_shard(s.as_deref().unwrap_or_default()).map_err(rs)?;
            }
            let out = enc.encode().map_err(rs)?;
            let parity: Vec<Vec<u8>> = out.recovery_iter().map(|s| s.to_vec()).collect();
            drop(out);
            for (j, p) in parity.into_iter().enumerate() {
                shards[k + j] = Some(p);
            }
        }
        Ok(want.iter().map(|&i| shards[i].clone().unwrap_or_default()).collect())
    }

    /// One whole shard of a version from one target, checked against the
    /// crc the node sent (what repair reads; also lets tests and tools look
    /// at a single copy).
    pub async fn fetch_shard(
        &self,
        target: TargetId,
        bucket: &str,
        meta: &ObjectMeta,
        stripe: u32,
        shard: usize,
    ) -> Result<Vec<u8>, ClientError> {
        let view = self.view();
        let addr = view.addr(target)?;
        let req = Request::GetShard(GetShard {
            target,
            bucket: bucket.into(),
            key: meta.key.clone(),
            version: meta.version,
            stripe: StripeIndex(stripe),
            shard: ShardIndex(shard as u16),
            range: None,
        });
        let mut reply = self.inner.transport.call(addr, &req, &[], view.map.epoch).await?;
        let crc = match &reply.response {
            Response::GetShardOk(ok) => ok.payload_crc32c,
            other => return Err(unexpected("get shard", other.clone())),
        };
        let data = self.inner.transport.read_payload(&mut reply, addr).await?;
        let computed = crc32c::crc32c(&data);
        if computed != crc {
            return Err(ClientError::Corrupt {
                detail: format!(
                    "shard {shard} of stripe {stripe} from target {target}: crc {computed:#010x}, sent {crc:#010x}"
                ),
            });
        }
        Ok(data)
    }

    /// Store a rebuilt shard on `target`: a new copy (`replace` false; with
    /// `meta` on the last stripe it prepares the version) or a replacement
    /// of a corrupt one (`replace` true).
    #[allow(clippy::too_many_arguments)]
    pub async fn put_rebuilt_shard(
        &self,
        target: TargetId,
        bucket: &str,
        meta: &ObjectMeta,
        stripe: u32,
        shard: usize,
        data: &[u8],
        last: bool,
        replace: bool,
    ) -> Result<(), ClientError> {
        let req = Request::PutShard(PutShard {
            target,
            bucket: bucket.into(),
            key: meta.key.clone(),
            version: meta.version,
            stripe: StripeIndex(stripe),
            shard: ShardIndex(shard as u16),
            shard_crc32c: crc32c::crc32c(data),
            meta: (last && !replace).then(|| meta.clone()),
            repair: replace,
        });
        match self.target_call(target, &req, data).await? {
            Response::PutShardOk(_) => Ok(()),
            other => Err(unexpected("put shard", other)),
        }
    }

    /// Commit a prepared version on one target.
    pub async fn commit_on(
        &self,
        target: TargetId,
        bucket: &str,
        key: &str,
        version: VersionId,
    ) -> Result<(), ClientError> {
        let req = Request::Commit(CommitVersion { target, bucket: bucket.into(), key: key.into(), version });
        match self.target_call(target, &req, &[]).await? {
            Response::CommitOk(_) => Ok(()),
            other => Err(unexpected("commit", other)),
        }
    }

    /// Purge a version on one target (leaves a tombstone).
    pub async fn purge_on(
        &self,
        target: TargetId,
        bucket: &str,
        key: &str,
        version: VersionId,
    ) -> Result<(), ClientError> {
        let req =
            Request::Delete(DeleteObject { target, bucket: bucket.into(), key: key.into(), version, origin: None });
        match self.target_call(target, &req, &[]).await? {
            Response::DeleteOk(_) => Ok(()),
            other => Err(unexpected("purge", other)),
        }
    }

    /// A bucket's settings as `target` holds them.
    pub async fn bucket_on(&self, target: TargetId, name: &str) -> Result<BucketInfo, ClientError> {
        match self.target_call(target, &Request::GetBucket(GetBucket { target, name: name.into() }), &[]).await? {
            Response::GetBucketOk(b) => Ok(b),
            other => Err(unexpected("get bucket", other)),
        }
    }

    /// A bucket's ACL and policy as one target holds them.
    pub async fn bucket_access_on(
        &self,
        target: TargetId,
        bucket: &str,
    ) -> Result<tessera_wire::access::BucketAccess, ClientError> {
        let req = Request::GetBucketAccess(tessera_wire::GetBucketAccess { target, bucket: bucket.into() });
        match self.target_call(target, &req, &[]).await? {
            Response::BucketAccessOk(a) => Ok(a.access),
            other => Err(unexpected("bucket access", other)),
        }
    }

    /// Give one target a bucket's ACL and policy (it keeps them only if
    /// newer than its own).
    pub async fn set_bucket_access_on(
        &self,
        target: TargetId,
        bucket: &str,
        access: tessera_wire::access::BucketAccess,
    ) -> Result<(), ClientError> {
        let req = Request::SetBucketAccess(tessera_wire::SetBucketAccess { target, bucket: bucket.into(), access });
        match self.target_call(target, &req, &[]).await? {
            Response::BucketAccessOk(_) => Ok(()),
            other => Err(unexpected("set bucket access", other)),
        }
    }

    /// Record a bucket on one target (a replaced disk starts without any).
    pub async fn create_bucket_on(&self, target: TargetId, info: BucketInfo) -> Result<(), ClientError> {
        match self.target_call(target, &Request::CreateBucket(CreateBucket { target, info }), &[]).await? {
            Response::CreateBucketOk(_) => Ok(()),
            other => Err(unexpected("create bucket", other)),
        }
    }

    /// Every node's core-0 address in the map, by node name.
    pub fn node_addrs(&self) -> Vec<(String, SocketAddr)> {
        let view = self.view();
        view.map
            .zones
            .iter()
            .flat_map(|z| z.nodes.iter())
            .filter_map(|n| {
                let port = *n.ports.first()?;
                Some((n.name.clone(), SocketAddr::new(n.host, port)))
            })
            .collect()
    }

    /// One node's repair and scrub progress.
    pub async fn repair_status(&self, addr: SocketAddr) -> Result<RepairStatusOk, ClientError> {
        let epoch = self.view().map.epoch;
        match self.inner.transport.call(addr, &Request::RepairStatus(RepairStatus {}), &[], epoch).await?.response {
            Response::RepairStatusOk(s) => Ok(s),
            other => Err(unexpected("repair status", other)),
        }
    }

    /// One node's name, map epoch, version and targets.
    pub async fn node_status(&self, addr: SocketAddr) -> Result<tessera_wire::NodeStatusOk, ClientError> {
        let req = Request::NodeStatus(tessera_wire::NodeStatus {});
        match self.inner.transport.call(addr, &req, &[], 0).await?.response {
            Response::NodeStatusOk(s) => Ok(s),
            other => Err(unexpected("node status", other)),
        }
    }

    /// Set one node's repair bandwidth (MiB/s; 0 pauses).
    pub async fn set_repair_rate(&self, addr: SocketAddr, mib_s: u32) -> Result<RepairStatusOk, ClientError> {
        let epoch = self.view().map.epoch;
        let req = Request::SetRepairRate(SetRepairRate { mib_s });
        match self.inner.transport.call(addr, &req, &[], epoch).await?.response {
            Response::RepairStatusOk(s) => Ok(s),
            other => Err(unexpected("set repair rate", other)),
        }
    }
}
