//! Group commit. Writes complete out of order; the committer takes the
//! longest run of completed LSNs from the next unapplied one, makes it
//! durable with one fdatasync (submitted through io_uring, so the core keeps
//! serving while the disk flushes), applies it to the index in one batch,
//! and only then answers the writers. Writes that complete during a flush
//! form the next batch.
//!
//! Invariant: every LSN the space allocator hands out is completed exactly
//! once (ok or failed), or the queue stalls; writes therefore run in their
//! own spawned tasks that nobody can cancel.

use std::collections::BTreeMap;

use tokio::sync::oneshot;

use super::index::Applied;
use super::layout::{Loc, RecordBody};
use super::EngineError;

/// What the committer does for one LSN once it is durable.
pub(crate) struct Completed {
    pub(crate) result: Result<(), EngineError>,
    /// The record to apply, with the time written into its header (None
    /// for segment headers).
    pub(crate) apply: Option<(Loc, u64, RecordBody)>,
    pub(crate) reply: Option<oneshot::Sender<Result<Applied, EngineError>>>,
}

/// Pending LSNs. See module docs.
#[derive(Default)]
pub(crate) struct CommitQueue {
    /// LSNs allocated and not yet applied → generation of their segment.
    allocated: BTreeMap<u64, u64>,
    completed: BTreeMap<u64, Completed>,
    /// Taken by the committer, not yet applied to the index (lsn → generation).
    committing: BTreeMap<u64, u64>,
}

impl CommitQueue {
    pub(crate) fn allocate(&mut self, lsn: u64, generation: u64) {
        self.allocated.insert(lsn, generation);
    }

    pub(crate) fn complete(&mut self, lsn: u64, c: Completed) {
        self.completed.insert(lsn, c);
    }

    /// The run of completed LSNs that starts at the oldest allocated one.
    pub(crate) fn take_ready(&mut self) -> Vec<(u64, Completed)> {
        let mut out = Vec::new();
        while let Some((&lsn, _)) = self.allocated.first_key_value() {
            let Some(c) = self.completed.remove(&lsn) else { break };
            if let Some(g) = self.allocated.remove(&lsn) {
                self.committing.insert(lsn, g);
            }
            out.push((lsn, c));
        }
        out
    }

    /// The batch taken by `take_ready` is now in the index.
    pub(crate) fn mark_applied(&mut self) {
        self.committing.clear();
    }

    fn oldest_unapplied(&self) -> Option<(u64, u64)> {
        let a = self.committing.first_key_value().map(|(&l, &g)| (l, g));
        let b = self.allocated.first_key_value().map(|(&l, &g)| (l, g));
        match (a, b) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        }
    }

    /// Generation of the oldest record not yet in the index: replay after a
    /// crash must start at that segment.
    pub(crate) fn oldest_unapplied_generation(&self) -> Option<u64> {
        self.oldest_unapplied().map(|(_, g)| g)
    }

    /// The oldest LSN not yet in the index (allocated, written or being
    /// committed): a checkpoint may only claim the LSNs before it.
    pub(crate) fn oldest_unapplied_lsn(&self) -> Option<u64> {
        self.oldest_unapplied().map(|(l, _)| l)
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.allocated.is_empty() && self.committing.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done() -> Completed {
        Completed { result: Ok(()), apply: None, reply: None }
    }

    #[test]
    fn only_a_contiguous_prefix_is_ready() {
        let mut q = CommitQueue::default();
        for l in 1..=4 {
            q.allocate(l, 1);
        }
        q.complete(2, done());
        q.complete(4, done());
        assert!(q.take_ready().is_empty(), "1 is still in flight");
        q.complete(1, done());
        let ready: Vec<u64> = q.take_ready().into_iter().map(|(l, _)| l).collect();
        assert_eq!(ready, vec![1, 2]);
        assert_eq!(q.oldest_unapplied_lsn(), Some(1), "taken but not applied is not applied");
        q.mark_applied();
        assert_eq!(q.oldest_unapplied_lsn(), Some(3));
        q.complete(3, done());
        assert_eq!(q.take_ready().len(), 2);
        assert!(!q.is_idle());
        q.mark_applied();
        assert!(q.is_idle());
    }
}
