//! Background upkeep of one target, on its core: periodic index
//! checkpoints, freeing segments that hold nothing live, and compaction of
//! mostly-dead segments by relocating their live shards to the head.
//!
//! A segment is freed only when nothing in it is live AND every record in it
//! is older than the last durable checkpoint (so replay never needs it) AND
//! no read of it is in flight.

use std::rc::Rc;
use std::time::Duration;

use super::index::Reader;
use super::layout::{decode_record_header, record_bytes, Loc, RecordBody};
use super::space::AllocClass;
use super::{EngineError, Inner};
use crate::io::{BlockIo, ALIGN_BYTES};

/// How often upkeep looks for work when nobody kicks it.
const TICK: Duration = Duration::from_millis(250);

pub(super) async fn run(inner: Rc<Inner>) {
    loop {
        let _ = tokio::time::timeout(TICK, inner.maintain_notify.notified()).await;
        if inner.stopped.get() {
            return;
        }
        if let Err(e) = step(&inner).await {
            tracing::warn!(target_id = %inner.target(), error = %e, "maintenance step failed");
        }
    }
}

async fn step(inner: &Rc<Inner>) -> Result<(), EngineError> {
    let (low_space, waiting) = {
        let space = inner.space.borrow();
        (
            space.free_segments() <= space.reserve_segments() + 1,
            space.waiting_for_checkpoint(inner.checkpoint_lsn.get()),
        )
    };
    let due = inner.last_checkpoint.get().elapsed() >= inner.cfg.checkpoint_interval;
    let behind = inner.space.borrow().next_lsn - 1 > inner.checkpoint_lsn.get();
    if inner.failed.borrow().is_none() && behind && (due || (low_space && waiting)) {
        inner.checkpoint()?;
    }
    reclaim(inner);
    let candidate = {
        let space = inner.space.borrow();
        let fraction = if low_space { 0.95 } else { inner.cfg.compaction_live_fraction_max };
        space.compaction_candidates(inner.checkpoint_lsn.get(), fraction).first().copied()
    };
    if let Some(s) = candidate {
        if inner.failed.borrow().is_none() {
            compact(inner, s).await?;
            inner.compactions.set(inner.compactions.get() + 1);
        }
    }
    Ok(())
}

fn reclaim(inner: &Inner) {
    let checkpoint = inner.checkpoint_lsn.get();
    let mut space = inner.space.borrow_mut();
    let readers = inner.readers.borrow();
    for s in space.reclaimable(checkpoint) {
        if readers.get(s as usize).copied().unwrap_or(0) == 0 {
            space.mark_free(s);
            tracing::debug!(target_id = %inner.target(), segment = s, "segment freed");
        }
    }
}

/// Move every live shard record of segment `s` to the head.
async fn compact(inner: &Rc<Inner>, s: u32) -> Result<(), EngineError> {
    let (start, end, generation) = {
        let space = inner.space.borrow();
        let start = space.segment_start(s);
        (start, start + space.segment_bytes, space.segs[s as usize].generation)
    };
    let mut off = start + ALIGN_BYTES as u64;
    let mut moved = 0u32;
    while off + ALIGN_BYTES as u64 <= end {
        let (res, block) = inner.io.read_at(&inner.file, inner.pool.take(ALIGN_BYTES), ALIGN_BYTES, off).await;
        res.map_err(inner.io_err("compaction read", off, ALIGN_BYTES as u64))?;
        let room = end - off - ALIGN_BYTES as u64;
        let Ok((h, body)) = decode_record_header(block.as_slice(), inner.salt, room) else {
            off += ALIGN_BYTES as u64;
            continue;
        };
        if h.generation != generation {
            off += ALIGN_BYTES as u64;
            continue;
        }
        let loc = Loc { segment: s, offset: off, data_len: h.data_len, data_crc32c: h.data_crc32c };
        off += record_bytes(h.data_len as usize) as u64;
        let (bucket, key, version, stripe, shard) = match body {
            RecordBody::Shard { bucket, key, version, stripe, shard, .. }
            | RecordBody::RepairShard { bucket, key, version, stripe, shard } => (bucket, key, version, stripe, shard),
            _ => continue,
        };
        let live = Reader::new(&inner.db)?.shard(&bucket, &key, version, stripe.0, shard.0)? == Some(loc);
        if !live {
            continue;
        }
        // Copy the data as stored; its crc stays the writer's, so corrupt
        // data stays detectably corrupt rather than being re-blessed.
        let data = inner.read_data(loc).await?;
        let mut buf = {
            let mut b = inner.pool.take(record_bytes(h.data_len as usize));
            b.set_len(record_bytes(h.data_len as usize));
            b
        };
        let n = h.data_len as usize;
        buf.as_mut_slice()[ALIGN_BYTES..ALIGN_BYTES + n].copy_from_slice(&data.as_slice()[..n]);
        buf.as_mut_slice()[ALIGN_BYTES + n..].fill(0);
        let body = RecordBody::Shard { bucket, key, version, stripe, shard, meta: None, relocated_from: Some(loc) };
        inner.write_record(body, buf, n, h.data_crc32c, AllocClass::Reserve).await?;
        moved += 1;
    }
    tracing::debug!(target_id = %inner.target(), segment = s, moved, "segment compacted");
    Ok(())
}
