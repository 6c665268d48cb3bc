//! Cross-region replication: the rules (part of the cluster map), the
//! change-log entries targets keep, the messages a node's streamer uses
//! inside its region, and the messages one region sends another.
//!
//! Every target appends a [`Change`] for each committed version and each
//! new purge tombstone, in the same index transaction as the change itself
//! (keyed by the record's LSN, so crash replay rebuilds the same log). One
//! member of each placement group ships its log; see `node/src/crr`.
//!
//! Which rules a change goes to is decided here, by [`CrrRule::wants`], so
//! the streamer and its tests share one definition.

use serde::{Deserialize, Serialize};

use crate::{ObjectMeta, StorageClass, TargetId, VersionId};

/// Most entries in one [`ChangeLogOk`] or [`CrrForget`].
pub const CHANGES_PER_PAGE_MAX: usize = 256;

/// Most items in one [`CrrHave`].
pub const HAVE_ITEMS_MAX: usize = 256;

/// Longest rule id or region name.
pub const CRR_NAME_BYTES_MAX: usize = 64;

/// Which mutations a rule replicates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrrOps {
    /// Creates, overwrites, delete markers and deletes of versions.
    #[default]
    All,
    /// Creates and overwrites only: deletes stay in the source region (the
    /// safe choice for disaster recovery: a mistaken or malicious delete
    /// does not reach the copy).
    CreatesOnly,
}

/// One replication rule of a bucket, stored in the cluster map (so every
/// node and client of the region has the same rules, versioned by epoch).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrrRule {
    /// Unique id within the region's map.
    pub id: String,
    /// Source bucket in this region.
    pub bucket: String,
    /// Only keys starting with this.
    #[serde(default)]
    pub prefix: String,
    /// Destination region (a peer in the nodes' `[crr]` config).
    pub dest_region: String,
    /// Destination bucket in that region (must exist there).
    pub dest_bucket: String,
    /// Which mutations go.
    #[serde(default)]
    pub ops: CrrOps,
    /// Copy the objects the bucket held before the rule existed.
    #[serde(default)]
    pub backfill: bool,
    /// Storage class of the replicas; none keeps the source's class.
    #[serde(default)]
    pub dest_class: Option<StorageClass>,
    /// Bandwidth limit of the rule per shipping node, MiB/s (0: no limit).
    #[serde(default)]
    pub bandwidth_mib_s: u32,
}

impl CrrRule {
    /// Whether this rule ships `change` (of `bucket`): the bucket and prefix
    /// match, the operation is one the rule replicates, and the change did
    /// not come from the rule's destination (no echo in two-way setups).
    pub fn wants(&self, bucket: &str, change: &Change) -> bool {
        if bucket != self.bucket || !change.key.starts_with(&self.prefix) {
            return false;
        }
        if change.origin.as_deref() == Some(self.dest_region.as_str()) {
            return false;
        }
        match (self.ops, change.kind) {
            (CrrOps::All, _) => true,
            (CrrOps::CreatesOnly, ChangeKind::Put { delete_marker }) => !delete_marker,
            (CrrOps::CreatesOnly, ChangeKind::Purge { .. }) => false,
        }
    }

    /// Check names and lengths; `region` is the map's own region.
    pub fn validate(&self, region: &str) -> Result<(), String> {
        for (what, v) in [("id", &self.id), ("dest_region", &self.dest_region)] {
            if v.is_empty() || v.len() > CRR_NAME_BYTES_MAX {
                return Err(format!("crr rule {:?}: {what} must be 1..={CRR_NAME_BYTES_MAX} bytes", self.id));
            }
        }
        crate::validate_bucket_name(&self.bucket).map_err(|e| format!("crr rule {:?}: bucket: {e}", self.id))?;
        crate::validate_bucket_name(&self.dest_bucket)
            .map_err(|e| format!("crr rule {:?}: dest_bucket: {e}", self.id))?;
        if self.prefix.len() > crate::limits::KEY_BYTES_MAX {
            return Err(format!("crr rule {:?}: prefix longer than a key may be", self.id));
        }
        if self.dest_region == region {
            return Err(format!("crr rule {:?}: destination region {region} is this region", self.id));
        }
        Ok(())
    }
}

/// Replication this region accepts: changes from peer region
/// `from_region` into bucket `dest_bucket` (`tessera crr allow`). The
/// sending region's rule says what it sends; this says what the
/// destination takes, so a trusted peer cannot write into any bucket it
/// names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrrInbound {
    /// The sending peer region (the region its certificate's CA names).
    pub from_region: String,
    /// The bucket of this region the changes may be applied to.
    pub dest_bucket: String,
    /// Also take changes first made in a third region that `from_region`
    /// forwards (a chain r1 -> r2 -> r3); without it, a change's origin
    /// must be the sender.
    #[serde(default)]
    pub relay: bool,
}

impl CrrInbound {
    /// Check names; `region` is the map's own region.
    pub fn validate(&self, region: &str) -> Result<(), String> {
        if self.from_region.is_empty() || self.from_region.len() > CRR_NAME_BYTES_MAX {
            return Err(format!("crr_in: from_region must be 1..={CRR_NAME_BYTES_MAX} bytes"));
        }
        if self.from_region == region {
            return Err(format!("crr_in: from_region {region} is this region"));
        }
        crate::validate_bucket_name(&self.dest_bucket)
            .map_err(|e| format!("crr_in from {}: dest_bucket: {e}", self.from_region))
    }
}

/// Whether this region takes a change that peer region `sender` sends
/// into `dest_bucket`, first made in region `origin`: an inbound rule
/// names the sender and the bucket, and the origin is the sender unless
/// the rule allows relays. The error says which rule would be needed.
pub fn inbound_allows(rules: &[CrrInbound], sender: &str, origin: &str, dest_bucket: &str) -> Result<(), String> {
    let Some(rule) = rules.iter().find(|r| r.from_region == sender && r.dest_bucket == dest_bucket) else {
        return Err(format!(
            "region {sender} may not replicate into bucket {dest_bucket}: this region's map has no inbound rule for \
             it (an admin here runs: tessera crr allow --from {sender} --bucket {dest_bucket})"
        ));
    };
    if origin != sender && !rule.relay {
        return Err(format!(
            "region {sender} forwarded a change first made in region {origin} into bucket {dest_bucket}: the \
             inbound rule from {sender} takes only its own changes (tessera crr allow --relay to take forwarded ones)"
        ));
    }
    Ok(())
}

/// What happened to a version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ChangeKind {
    /// A version was committed (an object, or a delete marker).
    Put {
        /// The version is a delete marker.
        delete_marker: bool,
    },
    /// A version was deleted for good (a new tombstone).
    Purge {
        /// It was committed on the logging target. In a bucket that keeps
        /// no old versions, its commit had removed every older version
        /// of the key, so the destination must drop those too.
        committed: bool,
    },
}

impl ChangeKind {
    /// A purge (else a put).
    pub fn is_purge(self) -> bool {
        matches!(self, ChangeKind::Purge { .. })
    }
}

/// One entry of a target's change log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version.
    pub version: VersionId,
    /// What happened.
    pub kind: ChangeKind,
    /// Object bytes (0 for markers and purges), for backlog figures.
    pub size_bytes: u64,
    /// When the target applied it (node clock, Unix ms).
    pub at_ms: u64,
    /// The region the mutation was first made in, when it arrived here as
    /// a replica.
    pub origin: Option<String>,
}

impl Change {
    /// When the mutation was made: a version's own time for puts (so lag
    /// counts from the client's write, not from a late repair), the log
    /// time for purges.
    pub fn made_ms(&self) -> u64 {
        match self.kind {
            ChangeKind::Put { .. } => self.version.millis().min(self.at_ms),
            ChangeKind::Purge { .. } => self.at_ms,
        }
    }

    /// The identity followers forget it by.
    pub fn id(&self) -> ChangeId {
        ChangeId {
            bucket: self.bucket.clone(),
            key: self.key.clone(),
            version: self.version,
            purge: self.kind.is_purge(),
        }
    }
}

/// A change without its details: the same change has this identity on
/// every member of the group, whatever its LSN there.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ChangeId {
    /// Bucket.
    pub bucket: String,
    /// Key.
    pub key: String,
    /// Version.
    pub version: VersionId,
    /// A purge (else a put).
    pub purge: bool,
}

/// A rule's durable progress on one target for one group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleCursor {
    /// Every change at or below this LSN is shipped (or not wanted).
    pub shipped_lsn: u64,
    /// Back-fill position: the last version of this group's listing
    /// (any bucket) that back-fill has passed.
    pub backfill_after: Option<crate::repair::VersionRef>,
    /// Back-fill of this group is complete (or the rule has none).
    pub backfill_done: bool,
}

/// Read a page of a target's change log for one group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeLog {
    /// Target.
    pub target: TargetId,
    /// Placement group.
    pub pg: u32,
    /// Only entries after this LSN.
    pub after_lsn: u64,
    /// Most entries (1..=[`CHANGES_PER_PAGE_MAX`]).
    pub limit: u32,
}

/// Answer to [`ChangeLog`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeLogOk {
    /// (LSN, change), ascending.
    pub entries: Vec<(u64, Change)>,
    /// More entries follow the last one.
    pub truncated: bool,
    /// The group's rule cursors on this target.
    pub cursors: Vec<(String, RuleCursor)>,
}

/// Which groups of a target have change-log entries?
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSummary {
    /// Target.
    pub target: TargetId,
}

/// One group's backlog on a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgBacklog {
    /// Placement group.
    pub pg: u32,
    /// Entries in its log.
    pub entries: u64,
    /// Their object bytes.
    pub bytes: u64,
    /// When the oldest of them was made (Unix ms).
    pub oldest_ms: u64,
}

/// Answer to [`ChangeSummary`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangeSummaryOk {
    /// Groups with entries, ascending (at most [`SUMMARY_GROUPS_MAX`]).
    pub groups: Vec<PgBacklog>,
    /// More groups have entries than were returned.
    pub truncated: bool,
}

/// Most groups in one [`ChangeSummaryOk`].
pub const SUMMARY_GROUPS_MAX: usize = 2_048;

/// Record a rule's progress durably (a log record, replayed after a crash).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrrCursor {
    /// Target.
    pub target: TargetId,
    /// Placement group.
    pub pg: u32,
    /// Rule id.
    pub rule: String,
    /// The new cursor.
    pub cursor: RuleCursor,
}

/// Drop change-log entries every rule is done with, by identity (the
/// shipper's LSNs mean nothing on other members).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrrForget {
    /// Target.
    pub target: TargetId,
    /// Placement group.
    pub pg: u32,
    /// Changes to drop (at most [`CHANGES_PER_PAGE_MAX`]).
    pub changes: Vec<ChangeId>,
}

/// Answer to [`CrrCursor`], [`CrrForget`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrrOk {
    /// Entries removed (forget) or 1 (cursor).
    pub count: u32,
}

/// Ask a node for its streamer's figures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrrStatus {}

/// One rule's figures on one node (for the groups it ships).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleProgress {
    /// Rule id.
    pub rule: String,
    /// Placement groups this node ships for the rule.
    pub pgs_shipped: Vec<u32>,
    /// Of those, groups whose back-fill is complete.
    pub pgs_backfilled: Vec<u32>,
    /// Changes waiting to be shipped.
    pub pending_objects: u64,
    /// Their object bytes.
    pub pending_bytes: u64,
    /// Every change made before this time (Unix ms) has been replicated,
    /// in the groups this node ships.
    pub replicated_up_to_ms: u64,
    /// Versions and purges applied at the destination since start.
    pub shipped_objects: u64,
    /// Object bytes sent since start.
    pub shipped_bytes: u64,
    /// Changes the destination already had (re-ships after a takeover).
    pub skipped_objects: u64,
    /// Last error talking to the destination, if the last attempt failed.
    pub last_error: Option<String>,
    /// Recent applies' lags as counts per [`lag_bucket`] (at most
    /// [`LAG_BUCKETS`] entries; trailing empty buckets omitted): counts
    /// add across nodes, so the rule's quantiles come from the merged
    /// histogram, never from the nodes' own quantiles.
    pub lag_counts: Vec<u32>,
    /// The largest of those lags, ms.
    pub lag_max_ms: u64,
}

/// Buckets of a lag histogram: bucket `i` holds lags up to
/// [`lag_bucket_upper_ms`]`(i)` = ⌈2^(i/4)⌉ ms (a quarter octave, so a
/// quantile read from it is at most 19% high), the last one everything
/// above ~3.9 hours.
pub const LAG_BUCKETS: usize = 96;

/// Upper bound of lag bucket `i`, ms.
pub fn lag_bucket_upper_ms(i: usize) -> u64 {
    2f64.powf(i as f64 / 4.0).ceil() as u64
}

/// The bucket of a lag.
pub fn lag_bucket(lag_ms: u64) -> usize {
    (0..LAG_BUCKETS).find(|&i| lag_ms <= lag_bucket_upper_ms(i)).unwrap_or(LAG_BUCKETS - 1)
}

/// Add `other` into `into` bucket by bucket.
pub fn merge_lag_counts(into: &mut Vec<u32>, other: &[u32]) {
    if into.len() < other.len() {
        into.resize(other.len(), 0);
    }
    for (a, b) in into.iter_mut().zip(other) {
        *a = a.saturating_add(*b);
    }
}

/// The `q` quantile (0..=1) of a lag histogram as its bucket's upper
/// bound; `None` when it is empty.
pub fn lag_quantile_ms(counts: &[u32], q: f64) -> Option<u64> {
    let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
    if total == 0 {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        seen += u64::from(c);
        if seen >= rank {
            return Some(lag_bucket_upper_ms(i));
        }
    }
    Some(lag_bucket_upper_ms(counts.len() - 1))
}

/// Answer to [`CrrStatus`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrrStatusOk {
    /// Node name.
    pub node: String,
    /// Per rule.
    pub rules: Vec<RuleProgress>,
}

/// Which of these versions does the destination already hold (or has
/// purged)? Sent before the bytes, so a re-ship after a takeover and a
/// back-fill of already-replicated objects cost one round trip per page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrrHave {
    /// Rule id (for the destination's logs).
    pub rule: String,
    /// Destination bucket.
    pub dest_bucket: String,
    /// (key, version, is a purge).
    pub items: Vec<(String, VersionId, bool)>,
}

/// Answer to [`CrrHave`]: for each item, nothing more is needed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrrHaveOk {
    /// In the order asked.
    pub done: Vec<bool>,
}

/// What one apply does at the destination.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CrrOp {
    /// Write this version (the object's bytes follow as payload; none for
    /// a delete marker), preserving its id and metadata.
    Put(ObjectMeta),
    /// Delete this version for good.
    Purge {
        /// Key.
        key: String,
        /// Version.
        version: VersionId,
        /// The version had been committed at the source: in a destination
        /// bucket that keeps no old versions, older versions of the key go
        /// too (the source's commit of this version had removed them).
        supersedes: bool,
    },
}

/// Apply one change at the destination, through its normal quorum write.
/// Idempotent: a version the destination holds or purged is a no-op.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrrApply {
    /// Rule id.
    pub rule: String,
    /// Region the change was first made in (checked against the sender's
    /// certificate unless the change is itself a replica being forwarded).
    pub origin: String,
    /// Destination bucket.
    pub dest_bucket: String,
    /// The change.
    pub op: CrrOp,
}

/// Answer to [`CrrApply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrrApplyOk {
    /// The destination changed (false: it already had it).
    pub applied: bool,
}

#[cfg(test)]
mod lag_tests {
    use super::*;

    /// Against the exact quantile of the merged samples: the merged
    /// histogram's answer is never below it and at most a quarter octave
    /// above, however the samples are split among nodes.
    #[test]
    fn merged_histograms_give_the_quantiles_of_all_samples() {
        let mut seed = 11u64;
        let mut next = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            seed >> 33
        };
        for i in 0..LAG_BUCKETS {
            assert!(lag_bucket(lag_bucket_upper_ms(i)) == i || lag_bucket_upper_ms(i) == lag_bucket_upper_ms(i - 1));
        }
        for _ in 0..300 {
            let nodes = 1 + next() % 6;
            let mut merged = Vec::new();
            let mut all = Vec::new();
            for _ in 0..nodes {
                let mut counts = Vec::new();
                for _ in 0..next() % 50 {
                    // Mostly fast, some very slow (a stuck object).
                    let lag = if next() % 10 == 0 { next() % 100_000 } else { next() % 400 };
                    all.push(lag);
                    let b = lag_bucket(lag);
                    if counts.len() <= b {
                        counts.resize(b + 1, 0);
                    }
                    counts[b] += 1;
                }
                merge_lag_counts(&mut merged, &counts);
            }
            all.sort_unstable();
            for q in [0.5, 0.99] {
                let got = lag_quantile_ms(&merged, q);
                if all.is_empty() {
                    assert_eq!(got, None);
                    continue;
                }
                let exact = all[((q * all.len() as f64).ceil() as usize).max(1) - 1];
                let got = got.expect("non-empty");
                assert!(
                    got >= exact && got <= (exact as f64 * 1.19).ceil() as u64 + 1,
                    "q {q}: {got} vs exact {exact}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(ops: CrrOps) -> CrrRule {
        CrrRule {
            id: "r".into(),
            bucket: "src".into(),
            prefix: "logs/".into(),
            dest_region: "r2".into(),
            dest_bucket: "dst".into(),
            ops,
            backfill: false,
            dest_class: None,
            bandwidth_mib_s: 0,
        }
    }

    fn change(key: &str, kind: ChangeKind, origin: Option<&str>) -> Change {
        Change {
            bucket: "src".into(),
            key: key.into(),
            version: VersionId(1),
            kind,
            size_bytes: 0,
            at_ms: 5,
            origin: origin.map(str::to_owned),
        }
    }

    #[test]
    fn rules_filter_bucket_prefix_ops_and_echo() {
        let put = ChangeKind::Put { delete_marker: false };
        let marker = ChangeKind::Put { delete_marker: true };
        let all = rule(CrrOps::All);
        let creates = rule(CrrOps::CreatesOnly);
        assert!(all.wants("src", &change("logs/a", put, None)));
        assert!(!all.wants("other", &change("logs/a", put, None)), "other bucket");
        assert!(!all.wants("src", &change("img/a", put, None)), "prefix");
        assert!(all.wants("src", &change("logs/a", marker, None)));
        assert!(all.wants("src", &change("logs/a", ChangeKind::Purge { committed: true }, None)));
        assert!(creates.wants("src", &change("logs/a", put, None)));
        assert!(!creates.wants("src", &change("logs/a", marker, None)), "creates-only skips markers");
        assert!(!creates.wants("src", &change("logs/a", ChangeKind::Purge { committed: true }, None)), "and purges");
        assert!(!all.wants("src", &change("logs/a", put, Some("r2"))), "no echo to the origin");
        assert!(all.wants("src", &change("logs/a", put, Some("r3"))), "forwarded to a third region");
        let rules = [
            CrrInbound { from_region: "r1".into(), dest_bucket: "logs".into(), relay: false },
            CrrInbound { from_region: "r2".into(), dest_bucket: "logs".into(), relay: true },
        ];
        assert!(inbound_allows(&rules, "r1", "r1", "logs").is_ok());
        assert!(inbound_allows(&rules, "r1", "r1", "photos")
            .expect_err("refused")
            .contains("crr allow --from r1 --bucket photos"));
        assert!(inbound_allows(&rules, "r3", "r3", "logs").expect_err("refused").contains("no inbound rule"));
        assert!(inbound_allows(&rules, "r1", "r3", "logs").expect_err("refused").contains("--relay"));
        assert!(inbound_allows(&rules, "r2", "r3", "logs").is_ok(), "relays when the rule says so");
    }

    #[test]
    fn rule_validation_names_the_problem() {
        let mut r = rule(CrrOps::All);
        assert!(r.validate("r1").is_ok());
        assert!(r.validate("r2").expect_err("own region").contains("is this region"));
        r.dest_bucket = "X".into();
        assert!(r.validate("r1").expect_err("bad bucket").contains("dest_bucket"));
    }

    #[test]
    fn made_time_of_a_put_is_its_version_time() {
        let mut c = change("k", ChangeKind::Put { delete_marker: false }, None);
        c.version = VersionId(3u128 << 64);
        c.at_ms = 10;
        assert_eq!(c.made_ms(), 3);
        c.kind = ChangeKind::Purge { committed: true };
        assert_eq!(c.made_ms(), 10);
    }
}
