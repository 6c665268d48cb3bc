//! Anti-entropy: the messages repair uses to compare the members of a
//! placement group, and the pure decisions it takes from their answers.
//! Nodes and the deterministic simulator both call [`plan_key`], so the
//! simulation checks the same rules the nodes run.
//!
//! The version sets on the members *are* the durable record of what needs
//! repair: a version committed on some members and missing on others (a
//! degraded write, a straggler that never arrived, a replaced disk, a
//! corrupt shard) shows up as a digest mismatch in the next round, whoever
//! wrote it and whether or not that writer is still alive.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{TargetId, VersionId};

/// Most placement groups in one [`PgDigest`] (keeps the answer under the
/// body limit: about 15 bytes per group).
pub const PG_DIGEST_MAX: usize = 2_048;

/// Most entries in one [`PgListOk`]; the node also stops early when the
/// names it has added reach [`PG_LIST_NAME_BYTES_MAX`].
pub const PG_LIST_MAX: u32 = 256;

/// Bytes of bucket and key names one [`PgListOk`] may carry.
pub const PG_LIST_NAME_BYTES_MAX: usize = 48 * 1_024;

/// What a target holds of one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VersionState {
    /// Committed and, as far as the target knows, intact.
    Committed,
    /// Prepared by a writer, not committed (the sweeper's business).
    Prepared,
    /// Purged: a tombstone.
    Purged,
    /// Committed, but a shard of it failed its checksum (scrubber or read).
    Corrupt,
}

/// Digests of a target's version sets for some placement groups.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgDigest {
    /// Target asked.
    pub target: TargetId,
    /// Placement groups (at most [`PG_DIGEST_MAX`]).
    pub pgs: Vec<u32>,
}

/// One group's digest on one target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgSum {
    /// Placement group.
    pub pg: u32,
    /// Order-independent hash of (bucket, key, version, state) over the
    /// committed and purged versions (see [`entry_hash`]).
    pub digest: u64,
    /// Versions counted.
    pub versions: u32,
}

/// Answer to [`PgDigest`]: one sum per asked group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgDigestOk {
    /// Target.
    pub target: TargetId,
    /// Sums, in the order asked.
    pub sums: Vec<PgSum>,
}

/// A position in a group's sorted version list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VersionRef {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version.
    pub version: VersionId,
}

/// Page through every version a target holds in one placement group, in
/// (bucket, key, version) order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgList {
    /// Target asked.
    pub target: TargetId,
    /// Placement group.
    pub pg: u32,
    /// Start after this entry.
    pub after: Option<VersionRef>,
    /// Most entries (1..=[`PG_LIST_MAX`]).
    pub limit: u32,
}

/// One version on one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgEntry {
    /// Where it sorts.
    pub at: VersionRef,
    /// What the target holds.
    pub state: VersionState,
    /// The bucket keeps old versions (unversioned: the newest wins).
    pub versioned: bool,
    /// Object bytes (0 for purged versions and delete markers).
    pub size_bytes: u64,
}

/// Answer to [`PgList`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgListOk {
    /// Entries in order.
    pub entries: Vec<PgEntry>,
    /// More entries follow the last one.
    pub more: bool,
}

/// Ask a node how its repair and scrubbing are doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStatus {}

/// Change a node's repair bandwidth at run time (the priority knob:
/// operators raise it after replacing hardware, lower it when foreground
/// latency matters more). Not persisted: a restart returns to the config.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRepairRate {
    /// MiB/s of rebuilt shard bytes; 0 pauses repair.
    pub mib_s: u32,
}

/// A node's repair and scrub progress.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepairStatusOk {
    /// Node name.
    pub node: String,
    /// Current repair bandwidth limit, MiB/s (0: paused).
    pub rate_limit_mib_s: u32,
    /// Anti-entropy rounds completed since start.
    pub rounds: u64,
    /// Duration of the last round, ms.
    pub last_round_ms: u64,
    /// Groups this node leads repair for (lowest live member).
    pub pgs_led: u32,
    /// Of those, groups whose members all agree.
    pub pgs_in_sync: u32,
    /// Groups with a member that did not answer in the last round.
    pub pgs_member_unreachable: u32,
    /// Versions found needing repair in the last round and not yet repaired.
    pub backlog_versions: u64,
    /// Shard bytes those repairs will write.
    pub backlog_bytes: u64,
    /// Versions repaired since start (one per member fixed).
    pub repaired_versions: u64,
    /// Shard bytes written by repair since start.
    pub repaired_bytes: u64,
    /// Recent repair write rate, bytes/s.
    pub rate_bytes_s: u64,
    /// Seconds until the backlog is done at the recent rate (None: no
    /// rate measured yet, or nothing to do).
    pub eta_s: Option<u64>,
    /// Versions that cannot be rebuilt now (fewer than k intact shards
    /// reachable).
    pub unrepairable: u64,
    /// Bytes the scrubber has verified since start.
    pub scrubbed_bytes: u64,
    /// Complete scrub passes over every local target.
    pub scrub_passes: u64,
    /// Corrupt shards found (by the scrubber or by reads) since start.
    pub corrupt_found: u64,
}

/// Order-independent contribution of one version to a group digest.
pub fn entry_hash(bucket: &str, key: &str, version: VersionId, state: VersionState) -> u64 {
    let mut bytes = Vec::with_capacity(bucket.len() + key.len() + 19);
    bytes.extend_from_slice(bucket.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(key.as_bytes());
    bytes.push(0);
    bytes.extend_from_slice(&version.0.to_be_bytes());
    bytes.push(state as u8);
    let hi = crc32c::crc32c(&bytes);
    let lo = crc32c::crc32c_append(0x9e37_79b9, &bytes);
    (u64::from(hi) << 32) | u64::from(lo)
}

/// Only committed and purged versions count in digests: prepared ones are
/// in flight (or the sweeper's), and a corrupt one counts as missing so
/// its group shows up as out of sync.
pub fn counts_in_digest(state: VersionState) -> bool {
    matches!(state, VersionState::Committed | VersionState::Purged)
}

/// What one member needs for one version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fix {
    /// It holds the version prepared and complete: commit it.
    Commit,
    /// Purged elsewhere: purge it here too (leaves a tombstone).
    Purge,
    /// Missing: rebuild its shard of every stripe, prepare, commit.
    Write,
    /// Corrupt: rebuild its shard of every stripe and replace it.
    Rewrite,
}

/// The repair of one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionPlan {
    /// The version.
    pub version: VersionId,
    /// (member index, fix), by member.
    pub fixes: Vec<(usize, Fix)>,
    /// Members holding it committed and intact: where to read from.
    pub sources: Vec<usize>,
    /// Fewer than k sources: no Write or Rewrite can be done now (Commit
    /// and Purge fixes still can, and may add sources).
    pub unrepairable: bool,
}

/// Decide the repair of one key from every member's versions of it.
/// `members[i]` is `None` when member i did not answer (it is neither read
/// from nor written to), else its versions of the key. `k` is the data
/// shard count. Pure.
///
/// - A tombstone anywhere wins: every other answering member purges.
/// - Otherwise a version committed (intact) anywhere is complete
///   everywhere: prepared copies are committed, missing ones written,
///   corrupt ones rewritten — from k intact sources.
/// - Prepared-only versions are left to the sweeper.
/// - In an unversioned bucket only the newest committed version is
///   repaired: committing it removes older ones on the member.
pub fn plan_key(members: &[Option<Vec<(VersionId, VersionState)>>], versioned: bool, k: usize) -> Vec<VersionPlan> {
    let mut by_version: BTreeMap<VersionId, Vec<Option<VersionState>>> = BTreeMap::new();
    for (i, m) in members.iter().enumerate() {
        let Some(vs) = m else { continue };
        for &(v, s) in vs {
            let row = by_version.entry(v).or_insert_with(|| vec![None; members.len()]);
            row[i] = Some(s);
        }
    }
    let newest_committed = by_version
        .iter()
        .rev()
        .find(|(_, row)| row.iter().any(|s| matches!(s, Some(VersionState::Committed | VersionState::Corrupt))))
        .map(|(v, _)| *v);
    let mut plans = Vec::new();
    for (version, row) in by_version {
        let answered = |i: usize| members[i].is_some();
        let mut fixes = Vec::new();
        let sources: Vec<usize> =
            (0..row.len()).filter(|&i| answered(i) && row[i] == Some(VersionState::Committed)).collect();
        if row.contains(&Some(VersionState::Purged)) {
            for (i, s) in row.iter().enumerate() {
                if answered(i) && *s != Some(VersionState::Purged) {
                    fixes.push((i, Fix::Purge));
                }
            }
            if !fixes.is_empty() {
                plans.push(VersionPlan { version, fixes, sources: Vec::new(), unrepairable: false });
            }
            continue;
        }
        let committed_somewhere =
            row.iter().any(|s| matches!(s, Some(VersionState::Committed | VersionState::Corrupt)));
        if !committed_somewhere {
            continue;
        }
        if !versioned && Some(version) != newest_committed {
            continue;
        }
        for (i, s) in row.iter().enumerate() {
            if !answered(i) {
                continue;
            }
            match s {
                Some(VersionState::Committed) | Some(VersionState::Purged) => {}
                Some(VersionState::Prepared) => fixes.push((i, Fix::Commit)),
                Some(VersionState::Corrupt) => fixes.push((i, Fix::Rewrite)),
                None => fixes.push((i, Fix::Write)),
            }
        }
        if fixes.is_empty() {
            continue;
        }
        let needs_data = fixes.iter().any(|(_, f)| matches!(f, Fix::Write | Fix::Rewrite));
        let unrepairable = needs_data && sources.len() < k;
        plans.push(VersionPlan { version, fixes, sources, unrepairable });
    }
    plans
}

#[cfg(test)]
mod tests {
    use super::*;
    use VersionState::*;

    fn v(n: u128) -> VersionId {
        VersionId(n)
    }

    #[test]
    fn missing_member_is_written_from_sources() {
        let m = vec![Some(vec![(v(1), Committed)]), Some(vec![(v(1), Committed)]), Some(vec![])];
        let p = plan_key(&m, true, 2);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].fixes, vec![(2, Fix::Write)]);
        assert_eq!(p[0].sources, vec![0, 1]);
        assert!(!p[0].unrepairable);
        // With k = 3 the two sources cannot rebuild it.
        assert!(plan_key(&m, true, 3)[0].unrepairable);
    }

    #[test]
    fn tombstone_wins_and_silent_members_are_left_alone() {
        let m = vec![Some(vec![(v(1), Committed)]), Some(vec![(v(1), Purged)]), None, Some(vec![])];
        let p = plan_key(&m, true, 1);
        assert_eq!(p[0].fixes, vec![(0, Fix::Purge), (3, Fix::Purge)]);
    }

    #[test]
    fn prepared_only_is_the_sweepers_and_prepared_copies_commit() {
        let m = vec![Some(vec![(v(1), Prepared)]), Some(vec![])];
        assert!(plan_key(&m, true, 1).is_empty());
        let m = vec![Some(vec![(v(1), Prepared)]), Some(vec![(v(1), Committed)])];
        assert_eq!(plan_key(&m, true, 1)[0].fixes, vec![(0, Fix::Commit)]);
    }

    #[test]
    fn corrupt_is_rewritten_and_is_not_a_source() {
        let m = vec![Some(vec![(v(1), Corrupt)]), Some(vec![(v(1), Committed)]), Some(vec![(v(1), Committed)])];
        let p = plan_key(&m, true, 2);
        assert_eq!(p[0].fixes, vec![(0, Fix::Rewrite)]);
        assert_eq!(p[0].sources, vec![1, 2]);
    }

    #[test]
    fn unversioned_repairs_only_the_newest() {
        let m = vec![Some(vec![(v(1), Committed)]), Some(vec![(v(2), Committed)]), Some(vec![(v(2), Committed)])];
        let p = plan_key(&m, false, 2);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].version, v(2));
        assert_eq!(p[0].fixes, vec![(0, Fix::Write)]);
        // Versioned: the old version is copied too.
        let p = plan_key(&m, true, 1);
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn digest_is_order_independent_and_state_sensitive() {
        let a = entry_hash("b", "k", v(1), Committed);
        let b = entry_hash("b", "k", v(2), Committed);
        assert_eq!(a.wrapping_add(b), b.wrapping_add(a));
        assert_ne!(a, entry_hash("b", "k", v(1), Purged));
        assert_ne!(entry_hash("b", "kx", v(1), Committed), entry_hash("bk", "x", v(1), Committed));
    }
}
