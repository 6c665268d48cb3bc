//! One simulated target: what a node's engine keeps for it, reduced to
//! version states. Applying a message is atomic and durable (the engine
//! syncs before it answers), so a crash loses only messages in flight.

use std::collections::{BTreeMap, BTreeSet};

use tessera_wire::repair::VersionState;
use tessera_wire::VersionId;

/// A version held by a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub(crate) committed: bool,
    pub(crate) corrupt: bool,
}

/// One target's versions (one unversioned bucket: the newest committed
/// version of a key removes the others when it commits, as the engine does).
#[derive(Default, Debug)]
pub(crate) struct Store {
    pub(crate) versions: BTreeMap<(u32, VersionId), Held>,
    pub(crate) purged: BTreeSet<(u32, VersionId)>,
}

/// Every version of one key, as a map range.
fn of_key(key: u32) -> std::ops::RangeInclusive<(u32, VersionId)> {
    (key, VersionId(0))..=(key, VersionId(u128::MAX))
}

impl Store {
    /// Prepare; false when the version was purged here.
    pub(crate) fn prepare(&mut self, key: u32, v: VersionId) -> bool {
        if self.purged.contains(&(key, v)) {
            return false;
        }
        self.versions.entry((key, v)).or_insert(Held { committed: false, corrupt: false });
        true
    }

    /// Commit a prepared version; false when it is not held.
    pub(crate) fn commit(&mut self, key: u32, v: VersionId) -> bool {
        let Some(h) = self.versions.get_mut(&(key, v)) else { return false };
        h.committed = true;
        let newest = self.versions.range(of_key(key)).filter(|(_, h)| h.committed).map(|((_, v), _)| *v).max();
        if let Some(newest) = newest {
            let doomed: Vec<VersionId> = self
                .versions
                .range(of_key(key))
                .filter(|((_, v), h)| h.committed && *v != newest)
                .map(|((_, v), _)| *v)
                .collect();
            for d in doomed {
                self.versions.remove(&(key, d));
            }
        }
        true
    }

    /// Write a complete committed copy (repair).
    pub(crate) fn install(&mut self, key: u32, v: VersionId) {
        if self.purged.contains(&(key, v)) {
            return;
        }
        self.versions.insert((key, v), Held { committed: false, corrupt: false });
        self.commit(key, v);
    }

    pub(crate) fn purge(&mut self, key: u32, v: VersionId) {
        self.versions.remove(&(key, v));
        self.purged.insert((key, v));
    }

    /// Newest committed version of a key (corrupt or not: its metadata is
    /// intact), and the purged versions: what Head answers.
    pub(crate) fn head(&self, key: u32) -> (Option<VersionId>, Vec<VersionId>) {
        let newest = self.versions.range(of_key(key)).filter(|(_, h)| h.committed).map(|((_, v), _)| *v).max();
        let purged = self.purged.range(of_key(key)).map(|(_, v)| *v).collect();
        (newest, purged)
    }

    /// A shard read: Some(true) intact, Some(false) corrupt, None absent.
    pub(crate) fn read(&self, key: u32, v: VersionId) -> Option<bool> {
        self.versions.get(&(key, v)).map(|h| !h.corrupt)
    }

    /// Every version of the keys `in_group` selects, as anti-entropy lists them.
    pub(crate) fn list(&self, in_group: impl Fn(u32) -> bool) -> Vec<(u32, VersionId, VersionState)> {
        let mut out: Vec<(u32, VersionId, VersionState)> = self
            .versions
            .iter()
            .filter(|((k, _), _)| in_group(*k))
            .map(|((k, v), h)| {
                let s = match (h.committed, h.corrupt) {
                    (false, _) => VersionState::Prepared,
                    (true, false) => VersionState::Committed,
                    (true, true) => VersionState::Corrupt,
                };
                (*k, *v, s)
            })
            .collect();
        out.extend(self.purged.iter().filter(|(k, _)| in_group(*k)).map(|(k, v)| (*k, *v, VersionState::Purged)));
        out
    }
}
