//! Space accounting of one target: which segment is the head, which are
//! sealed or free, live bytes per segment, and LSN/generation counters.
//! Pure bookkeeping, no I/O; the engine persists dirty rows with each index
//! batch.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::io::ALIGN_BYTES;

/// State of one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) enum SegState {
    /// Holds nothing anyone needs; may be reused.
    #[default]
    Free,
    /// Receiving appends.
    Head,
    /// Full or abandoned; read-only until compacted and freed.
    Sealed,
}

/// Persistent facts about one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub(crate) struct SegInfo {
    pub(crate) generation: u64,
    pub(crate) live_bytes: u64,
    pub(crate) max_lsn: u64,
    pub(crate) state: SegState,
}

/// Who is asking for space: reserve segments are kept for deletes and
/// compaction, so a full target can still be emptied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AllocClass {
    Normal,
    Reserve,
}

/// A place for a record, and whether a segment header must be written first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Alloc {
    pub(crate) segment: u32,
    pub(crate) generation: u64,
    pub(crate) offset: u64,
    pub(crate) lsn: u64,
    /// (file offset, lsn) of a new segment header to write before the record.
    pub(crate) new_segment_header: Option<(u64, u64)>,
}

/// Space bookkeeping. See module docs.
#[derive(Debug)]
pub(crate) struct Space {
    pub(crate) segs: Vec<SegInfo>,
    dirty: BTreeSet<u32>,
    pub(crate) head: Option<(u32, u64)>,
    pub(crate) next_lsn: u64,
    pub(crate) next_gen: u64,
    pub(crate) segment_bytes: u64,
    reserve_segments: u32,
}

impl Space {
    pub(crate) fn new(segment_count: u32, segment_bytes: u64, reserve_segments: u32) -> Space {
        Space {
            segs: vec![SegInfo::default(); segment_count as usize],
            dirty: BTreeSet::new(),
            head: None,
            next_lsn: 1,
            next_gen: 1,
            segment_bytes,
            reserve_segments,
        }
    }

    /// File offset where segment `s` begins (after the superblock).
    pub(crate) fn segment_start(&self, s: u32) -> u64 {
        ALIGN_BYTES as u64 + u64::from(s) * self.segment_bytes
    }

    /// Largest record that fits in a segment.
    pub(crate) fn record_bytes_max(&self) -> u64 {
        self.segment_bytes - ALIGN_BYTES as u64
    }

    pub(crate) fn set(&mut self, s: u32, info: SegInfo) {
        if let Some(slot) = self.segs.get_mut(s as usize) {
            *slot = info;
            self.dirty.insert(s);
        }
    }

    fn free_count(&self) -> usize {
        self.segs.iter().filter(|s| s.state == SegState::Free).count()
    }

    /// Reserve `bytes` for a record. `None` means the target is full for this class.
    pub(crate) fn alloc(&mut self, bytes: u64, class: AllocClass) -> Option<Alloc> {
        assert!(bytes <= self.record_bytes_max() && bytes.is_multiple_of(ALIGN_BYTES as u64));
        if let Some((seg, off)) = self.head {
            let end = self.segment_start(seg) + self.segment_bytes;
            if off + bytes <= end {
                self.head = Some((seg, off + bytes));
                let lsn = self.take_lsn();
                let generation = self.segs[seg as usize].generation;
                return Some(Alloc { segment: seg, generation, offset: off, lsn, new_segment_header: None });
            }
        }
        let spare = match class {
            AllocClass::Normal => self.reserve_segments as usize,
            AllocClass::Reserve => 0,
        };
        if self.free_count() <= spare {
            return None;
        }
        let new = self.segs.iter().position(|s| s.state == SegState::Free)? as u32;
        if let Some((old, _)) = self.head {
            let mut info = self.segs[old as usize];
            info.state = SegState::Sealed;
            self.set(old, info);
        }
        let generation = self.next_gen;
        self.next_gen += 1;
        let header_lsn = self.take_lsn();
        let start = self.segment_start(new);
        self.set(new, SegInfo { generation, live_bytes: 0, max_lsn: header_lsn, state: SegState::Head });
        let first = start + ALIGN_BYTES as u64;
        self.head = Some((new, first + bytes));
        let lsn = self.take_lsn();
        Some(Alloc { segment: new, generation, offset: first, lsn, new_segment_header: Some((start, header_lsn)) })
    }

    fn take_lsn(&mut self) -> u64 {
        let l = self.next_lsn;
        self.next_lsn += 1;
        l
    }

    pub(crate) fn note_lsn(&mut self, s: u32, lsn: u64) {
        if let Some(info) = self.segs.get_mut(s as usize) {
            if lsn > info.max_lsn {
                info.max_lsn = lsn;
                self.dirty.insert(s);
            }
        }
    }

    pub(crate) fn add_live(&mut self, s: u32, bytes: u64) {
        if let Some(info) = self.segs.get_mut(s as usize) {
            info.live_bytes += bytes;
            self.dirty.insert(s);
        }
    }

    pub(crate) fn sub_live(&mut self, s: u32, bytes: u64) {
        if let Some(info) = self.segs.get_mut(s as usize) {
            info.live_bytes = info.live_bytes.saturating_sub(bytes);
            self.dirty.insert(s);
        }
    }

    /// Rows changed since the last call, to persist.
    pub(crate) fn take_dirty(&mut self) -> Vec<(u32, SegInfo)> {
        let d = std::mem::take(&mut self.dirty);
        d.into_iter().filter_map(|s| self.segs.get(s as usize).map(|i| (s, *i))).collect()
    }

    /// Bytes available to normal writes.
    pub(crate) fn free_bytes(&self) -> u64 {
        let usable = self.free_count().saturating_sub(self.reserve_segments as usize) as u64;
        let head_room = self.head.map(|(s, off)| self.segment_start(s) + self.segment_bytes - off).unwrap_or(0);
        usable * self.record_bytes_max() + head_room
    }

    pub(crate) fn free_segments(&self) -> usize {
        self.free_count()
    }

    pub(crate) fn reserve_segments(&self) -> usize {
        self.reserve_segments as usize
    }

    /// Sealed segments that hold nothing live and nothing replay could need.
    pub(crate) fn reclaimable(&self, checkpoint_lsn: u64) -> Vec<u32> {
        (0..self.segs.len() as u32)
            .filter(|&s| {
                let i = self.segs[s as usize];
                i.state == SegState::Sealed && i.live_bytes == 0 && i.max_lsn <= checkpoint_lsn
            })
            .collect()
    }

    /// Sealed segments with live data below `live_fraction_max` of a
    /// segment, fully checkpointed, emptiest first.
    pub(crate) fn compaction_candidates(&self, checkpoint_lsn: u64, live_fraction_max: f64) -> Vec<u32> {
        let limit = (self.segment_bytes as f64 * live_fraction_max) as u64;
        let mut c: Vec<u32> = (0..self.segs.len() as u32)
            .filter(|&s| {
                let i = self.segs[s as usize];
                i.state == SegState::Sealed && i.live_bytes > 0 && i.live_bytes <= limit && i.max_lsn <= checkpoint_lsn
            })
            .collect();
        c.sort_by_key(|&s| self.segs[s as usize].live_bytes);
        c
    }

    /// Whether some sealed segment is empty but waits for a checkpoint.
    pub(crate) fn waiting_for_checkpoint(&self, checkpoint_lsn: u64) -> bool {
        self.segs.iter().any(|i| i.state == SegState::Sealed && i.live_bytes == 0 && i.max_lsn > checkpoint_lsn)
    }

    pub(crate) fn mark_free(&mut self, s: u32) {
        let mut info = self.segs[s as usize];
        info.state = SegState::Free;
        info.live_bytes = 0;
        self.set(s, info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_writes_stop_at_the_reserve_and_reserve_writes_go_on() {
        let seg = 64 * 1_024;
        let mut s = Space::new(4, seg, 2);
        let rec = 16 * 1_024;
        let mut normal = 0;
        while s.alloc(rec, AllocClass::Normal).is_some() {
            normal += 1;
        }
        // 2 usable segments of (64 KiB - 4 KiB header) hold 3 records each.
        assert_eq!(normal, 6);
        assert!(s.alloc(rec, AllocClass::Reserve).is_some());
        assert_eq!(s.free_segments(), 1);
    }

    #[test]
    fn lsns_and_generations_increase() {
        let mut s = Space::new(3, 32 * 1_024, 0);
        let a = s.alloc(16 * 1_024, AllocClass::Normal).expect("room");
        let b = s.alloc(16 * 1_024, AllocClass::Normal).expect("room");
        assert!(a.new_segment_header.is_some() && b.new_segment_header.is_some());
        assert!(b.lsn > a.lsn && b.generation > a.generation);
        assert_eq!(s.segs[a.segment as usize].state, SegState::Sealed);
    }
}
