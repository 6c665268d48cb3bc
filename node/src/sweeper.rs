//! The sweeper of prepared versions. A writer prepares a version on the
//! group's targets and commits it once the prepared shards satisfy the zone
//! rule; a writer that dies in between leaves the version prepared: never
//! served, but holding space. After `prepared_expiry_ms` each core asks the
//! group about each such version of its targets and resolves it:
//!
//! - committed on any member: the writer reached the commit phase (so the
//!   prepared shards satisfied the rule); commit it here too;
//! - purged on any member: purge it here;
//! - every member answered and none committed: the writer never committed
//!   it anywhere, so no reader can have served it; purge it here (every
//!   member's sweeper reaches the same answer);
//! - otherwise (a member did not answer): wait for the next round.
//!
//! Safe because a writer commits within its request deadline (30 s by
//! default) of preparing, far inside the expiry (10 min by default).

use std::rc::Rc;
use std::time::Duration;

use tessera_wire::HeadOk;

use crate::server::CoreCtx;

/// What to do with one prepared version, from the members' answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolution {
    /// Commit it here.
    Commit,
    /// Purge it here.
    Purge,
    /// Ask again later.
    Wait,
}

/// Decide from the answers of every member (`None`: no answer). Pure.
pub fn resolve(answers: &[Option<HeadOk>], version: tessera_wire::VersionId) -> Resolution {
    let mine = |h: &HeadOk| h.meta.as_ref().is_some_and(|m| m.version == version);
    if answers.iter().flatten().any(|h| h.committed && mine(h)) {
        return Resolution::Commit;
    }
    if answers.iter().flatten().any(|h| h.purged.contains(&version)) {
        return Resolution::Purge;
    }
    if !answers.is_empty() && answers.iter().all(|a| a.is_some()) {
        return Resolution::Purge;
    }
    Resolution::Wait
}

/// Sweep this core's targets every `interval` with a client built from
/// `client_cfg` (the node's own address as the map seed, its CA).
pub(crate) async fn run(
    ctx: Rc<CoreCtx>,
    client_cfg: tessera_client::ClientConfig,
    interval: Duration,
    expiry: Duration,
) {
    let mut client: Option<tessera_client::Client> = None;
    loop {
        tokio::time::sleep(interval).await;
        let cutoff = crate::engine::now_ms().saturating_sub(expiry.as_millis() as u64);
        for engine in ctx.engines.values() {
            let candidates = match engine.prepared_before(cutoff, 256) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(target_id = %engine.target(), error = %e, "sweeper cannot list prepared versions");
                    continue;
                }
            };
            if candidates.is_empty() {
                continue;
            }
            if client.is_none() {
                match tessera_client::Client::connect(client_cfg.clone()).await {
                    Ok(c) => client = Some(c),
                    Err(e) => {
                        tracing::warn!(error = %e, "sweeper cannot reach the region; retrying next round");
                        break;
                    }
                }
            }
            let Some(c) = client.as_ref() else { break };
            if c.view().map.epoch < ctx.map.epoch() {
                let _ = c.refresh_map().await;
            }
            for (bucket, key, version) in candidates {
                let answers = match tessera_client::group_view(c, &bucket, &key, version).await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::debug!(error = %e, "sweeper: group view failed");
                        continue;
                    }
                };
                let outcome = match resolve(&answers, version) {
                    Resolution::Commit => engine.commit(&bucket, &key, version).await.map(|_| "committed"),
                    Resolution::Purge => engine.purge(&bucket, &key, version, None).await.map(|_| "purged"),
                    Resolution::Wait => Ok("left for later (a member did not answer)"),
                };
                match outcome {
                    Ok(what) => {
                        ctx.metrics.cores[ctx.core as usize].swept.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        tracing::info!(target_id = %engine.target(), %bucket, %key, %version, what, "sweeper resolved a prepared version");
                    }
                    Err(e) => tracing::warn!(%bucket, %key, %version, error = %e, "sweeper could not resolve"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_wire::{EcProfile, ObjectMeta, StorageClass, VersionId};

    fn meta(v: u128) -> ObjectMeta {
        ObjectMeta {
            key: "k".into(),
            version: VersionId(v),
            size_bytes: 0,
            stripe_bytes: 0,
            shard_bytes: 0,
            ec: EcProfile { data: 1, parity: 1 },
            stripe_count: 0,
            content_crc32c: 0,
            created_ms: 0,
            content_type: None,
            owner: "o".into(),
            user_meta: vec![],
            storage_class: StorageClass::Standard,
            delete_marker: false,
            acl: tessera_wire::Acl::Private,
            origin: None,
        }
    }

    fn head(v: u128, committed: bool) -> Option<HeadOk> {
        Some(HeadOk { meta: Some(meta(v)), committed, purged: vec![] })
    }

    #[test]
    fn decisions() {
        let v = VersionId(5);
        // One member committed: commit, even if another did not answer.
        assert_eq!(resolve(&[head(5, false), head(5, true), None], v), Resolution::Commit);
        // Nobody committed and someone is silent: wait.
        assert_eq!(resolve(&[head(5, false), None], v), Resolution::Wait);
        // Everyone answered, nobody committed: purge.
        assert_eq!(
            resolve(&[head(5, false), Some(HeadOk { meta: None, committed: false, purged: vec![] })], v),
            Resolution::Purge
        );
        // A committed *other* version does not count.
        assert_eq!(resolve(&[head(7, true), None], v), Resolution::Wait);
        // A tombstone anywhere: purge.
        let t = Some(HeadOk { meta: None, committed: false, purged: vec![v] });
        assert_eq!(resolve(&[t, None], v), Resolution::Purge);
    }
}
