//! Opening a target: create or check the file, load the index checkpoint,
//! replay every valid record newer than it from the log, drop versions whose
//! writer never committed them, and write a fresh checkpoint.
//!
//! Replay trusts a record only if its header checksum (salted per target),
//! its segment generation, and its data checksum all match: a torn or stale
//! record is skipped block by block, never applied.

use std::cell::{Cell, RefCell};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use redb::ReadableTable;

use super::index::{self, SEGMENTS, STATE};
use super::layout::{decode_record_header, decode_segment_header, record_bytes, Loc, RecordBody, Superblock};
use super::space::{SegInfo, SegState, Space};
use super::{Engine, EngineConfig, EngineError, Inner};
use crate::io::{fallocate, fsync_dir, open_direct, AlignedBuf, BlockIo, BufPool, Io, ALIGN_BYTES};

/// Durable engine state stored in the index at each checkpoint.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
struct Checkpoint {
    /// Every record up to this LSN is in the index.
    applied_lsn: u64,
    /// Replay scans segments of this generation and newer.
    replay_generation: u64,
}

const CHECKPOINT_KEY: &str = "checkpoint";

/// Smallest segment: room for a header and a few records.
pub(crate) const SEGMENT_BYTES_MIN: u64 = 256 * 1_024;

fn bad(cfg: &EngineConfig, reason: impl Into<String>) -> EngineError {
    EngineError::BadTarget { path: cfg.path.clone(), reason: reason.into() }
}

pub(crate) fn persist_segments(txn: &redb::WriteTransaction, space: &mut Space) -> Result<(), EngineError> {
    let mut table = txn.open_table(SEGMENTS)?;
    for (s, info) in space.take_dirty() {
        let bytes = postcard::to_stdvec(&info).map_err(|e| EngineError::Index(e.to_string()))?;
        table.insert(s, bytes.as_slice())?;
    }
    Ok(())
}

pub(crate) fn write_checkpoint(inner: &Inner) -> Result<(), EngineError> {
    let space = inner.space.borrow();
    let applied_lsn = inner.queue.borrow().oldest_unapplied_lsn().map(|l| l - 1).unwrap_or(space.next_lsn - 1);
    let head_gen = space.head.map(|(s, _)| space.segs[s as usize].generation).unwrap_or(space.next_gen);
    let replay_generation = inner.queue.borrow().oldest_unapplied_generation().unwrap_or(head_gen);
    drop(space);
    let ck = Checkpoint { applied_lsn, replay_generation };
    let mut txn = inner.db.begin_write()?;
    txn.set_durability(redb::Durability::Immediate);
    {
        persist_segments(&txn, &mut inner.space.borrow_mut())?;
        let bytes = postcard::to_stdvec(&ck).map_err(|e| EngineError::Index(e.to_string()))?;
        txn.open_table(STATE)?.insert(CHECKPOINT_KEY, bytes.as_slice())?;
    }
    txn.commit()?;
    inner.checkpoint_lsn.set(applied_lsn);
    Ok(())
}

fn random_salt() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    h.write_u32(std::process::id());
    h.finish()
}

async fn read_block(io: &Io, file: &std::fs::File, pool: &BufPool, offset: u64) -> std::io::Result<AlignedBuf> {
    let (res, buf) = io.read_at(file, pool.take(ALIGN_BYTES), ALIGN_BYTES, offset).await;
    res.map(|_| buf)
}

pub(super) async fn open(cfg: EngineConfig, io: Io, pool: BufPool) -> Result<Engine, EngineError> {
    let exists = std::fs::metadata(&cfg.path)
        .map(|m| {
            use std::os::unix::fs::FileTypeExt;
            m.len() > 0 || m.file_type().is_block_device()
        })
        .unwrap_or(false);
    if let Some(parent) = cfg.path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| bad(&cfg, format!("create directory: {e}")))?;
    }
    let file = open_direct(&cfg.path, !exists)
        .map_err(|e| bad(&cfg, format!("open with O_DIRECT: {e} (the file system must support direct I/O)")))?;
    let existing = if exists {
        let block = read_block(&io, &file, &pool, 0).await.map_err(|e| bad(&cfg, format!("read superblock: {e}")))?;
        match Superblock::decode(block.as_slice()) {
            Ok(sb) => Some(sb),
            // A zeroed device or file has never held a target: format it.
            Err(_) if block.as_slice().iter().all(|&b| b == 0) => None,
            Err(e) => return Err(bad(&cfg, format!("{e}; refusing to format a device that holds other data"))),
        }
    } else {
        None
    };
    let sb = if let Some(sb) = existing {
        sb
    } else {
        if cfg.segment_bytes < SEGMENT_BYTES_MIN || !cfg.segment_bytes.is_multiple_of(ALIGN_BYTES as u64) {
            return Err(bad(
                &cfg,
                format!(
                    "segment_bytes {} must be a multiple of 4096 and at least {SEGMENT_BYTES_MIN}",
                    cfg.segment_bytes
                ),
            ));
        }
        let segment_count = (cfg.capacity_bytes.saturating_sub(ALIGN_BYTES as u64)) / cfg.segment_bytes;
        if segment_count < u64::from(cfg.reserve_segments) + 2 {
            return Err(bad(
                &cfg,
                format!(
                    "capacity {} holds {segment_count} segments of {}; need at least reserve_segments + 2 = {}",
                    cfg.capacity_bytes,
                    cfg.segment_bytes,
                    cfg.reserve_segments + 2
                ),
            ));
        }
        let sb = Superblock {
            salt: random_salt(),
            segment_bytes: cfg.segment_bytes,
            segment_count: u32::try_from(segment_count).map_err(|_| bad(&cfg, "too many segments"))?,
            target_id: cfg.target.0,
        };
        let len = ALIGN_BYTES as u64 + segment_count * cfg.segment_bytes;
        if !is_block_device(&file) {
            fallocate(&file, len).map_err(|e| bad(&cfg, format!("fallocate {len} bytes: {e}")))?;
        }
        let mut block = pool.take(ALIGN_BYTES);
        block.set_len(ALIGN_BYTES);
        sb.encode(block.as_mut_slice());
        let (res, _) = io.write_at(&file, block, 0).await;
        res.map_err(|e| bad(&cfg, format!("write superblock: {e}")))?;
        io.fdatasync(&file).await.map_err(|e| bad(&cfg, format!("fdatasync: {e}")))?;
        if let Some(parent) = cfg.path.parent() {
            fsync_dir(parent).map_err(|e| bad(&cfg, format!("fsync directory: {e}")))?;
        }
        sb
    };
    if sb.target_id != cfg.target.0 {
        return Err(bad(&cfg, format!("file belongs to target {} but is configured as {}", sb.target_id, cfg.target)));
    }

    let db = redb::Database::create(&cfg.index_path)?;
    index::create_tables(&db)?;
    let ck: Checkpoint = {
        let txn = db.begin_read()?;
        let state = txn.open_table(STATE)?;
        let ck = match state.get(CHECKPOINT_KEY)? {
            Some(v) => postcard::from_bytes(v.value())
                .map_err(|e| EngineError::IndexCorrupt { what: "checkpoint", detail: e.to_string() })?,
            None => Checkpoint::default(),
        };
        ck
    };
    let mut space = Space::new(sb.segment_count, sb.segment_bytes, cfg.reserve_segments);
    {
        let txn = db.begin_read()?;
        let table = txn.open_table(SEGMENTS)?;
        for row in table.iter()? {
            let (s, v) = row?;
            let mut info: SegInfo = postcard::from_bytes(v.value())
                .map_err(|e| EngineError::IndexCorrupt { what: "segment", detail: e.to_string() })?;
            if info.state == SegState::Head {
                info.state = SegState::Sealed;
            }
            space.set(s.value(), info);
        }
    }

    // Scan segment headers and, from the replay generation on, records.
    let mut max_gen = 0u64;
    let mut scanned: Vec<(u64, u32, u64)> = Vec::new(); // (gen, segment, end of last valid record)
    let mut records: Vec<(u64, Loc, u64, RecordBody)> = Vec::new();
    for s in 0..sb.segment_count {
        let start = space.segment_start(s);
        let block = read_block(&io, &file, &pool, start)
            .await
            .map_err(|e| bad(&cfg, format!("read segment {s} header: {e}")))?;
        let Some(generation) = decode_segment_header(block.as_slice(), sb.salt) else { continue };
        max_gen = max_gen.max(generation);
        if generation < ck.replay_generation.max(1) {
            continue;
        }
        let end = scan_segment(&io, &file, &pool, &space, sb.salt, s, generation, ck.applied_lsn, &mut records).await?;
        scanned.push((generation, s, end));
    }
    records.sort_by_key(|(lsn, _, _, _)| *lsn);
    scanned.sort();
    let max_lsn = records.last().map(|(l, _, _, _)| *l).unwrap_or(0).max(ck.applied_lsn);
    for &(generation, s, _) in &scanned {
        let prev = space.segs[s as usize];
        let live = if prev.generation == generation { prev.live_bytes } else { 0 };
        let max_lsn = if prev.generation == generation { prev.max_lsn } else { 0 };
        space.set(s, SegInfo { generation, live_bytes: live, max_lsn, state: SegState::Sealed });
    }
    if let Some(&(_, s, end)) = scanned.last() {
        let mut info = space.segs[s as usize];
        info.state = SegState::Head;
        space.set(s, info);
        space.head = Some((s, end));
    }
    space.next_gen = max_gen + 1;
    space.next_lsn = max_lsn + 1;

    let replayed = records.len();
    let mut aborted = 0usize;
    {
        let mut txn = db.begin_write()?;
        txn.set_durability(redb::Durability::None);
        for (lsn, loc, at_ms, body) in &records {
            match index::apply(&txn, &mut space, cfg.placement_groups, *lsn, *loc, *at_ms, body) {
                Ok(_) => {}
                // The writer got the same error when it happened.
                Err(e) => tracing::debug!(lsn, error = %e, "replayed record was refused again"),
            }
        }
        // Versions whose writer died before committing are never served.
        for (bucket, key, version) in index::pending_versions(&txn)? {
            index::remove_version(&txn, &mut space, &bucket, &key, version)?;
            aborted += 1;
        }
        persist_segments(&txn, &mut space)?;
        txn.commit()?;
    }
    let segment_count = sb.segment_count as usize;
    let inner = Inner {
        cfg,
        file,
        io,
        pool,
        salt: sb.salt,
        db,
        space: RefCell::new(space),
        queue: RefCell::default(),
        queue_notify: Notify::new(),
        readers: RefCell::new(vec![0; segment_count]),
        settings: RefCell::new(std::collections::HashMap::new()),
        checkpoint_lsn: Cell::new(0),
        last_checkpoint: Cell::new(Instant::now()),
        failed: RefCell::new(None),
        maintain_notify: Notify::new(),
        compactions: Cell::new(0),
        checkpoints: Cell::new(0),
        stopped: Cell::new(false),
    };
    write_checkpoint(&inner)?;
    tracing::info!(
        target_id = %inner.cfg.target,
        path = %inner.cfg.path.display(),
        replayed,
        aborted_uploads = aborted,
        backend = inner.io.name(),
        "target open"
    );
    Ok(Engine { inner: std::rc::Rc::new(inner) })
}

/// Collect valid records of one segment newer than `after_lsn`; return the
/// end offset of the last valid record (where appending may resume).
#[allow(clippy::too_many_arguments)]
async fn scan_segment(
    io: &Io,
    file: &std::fs::File,
    pool: &BufPool,
    space: &Space,
    salt: u64,
    s: u32,
    generation: u64,
    after_lsn: u64,
    out: &mut Vec<(u64, Loc, u64, RecordBody)>,
) -> Result<u64, EngineError> {
    let seg_start = space.segment_start(s);
    let seg_end = seg_start + space.segment_bytes;
    let mut off = seg_start + ALIGN_BYTES as u64;
    let mut end = off;
    while off + (ALIGN_BYTES as u64) <= seg_end {
        let block = read_block(io, file, pool, off).await.map_err(|source| EngineError::Io {
            target: tessera_wire::TargetId(0),
            op: "replay read",
            offset: off,
            len: ALIGN_BYTES as u64,
            source,
        })?;
        let room = seg_end - off - ALIGN_BYTES as u64;
        let Ok((h, body)) = decode_record_header(block.as_slice(), salt, room) else {
            off += ALIGN_BYTES as u64;
            continue;
        };
        if h.generation != generation {
            off += ALIGN_BYTES as u64;
            continue;
        }
        let rec = record_bytes(h.data_len as usize) as u64;
        if h.data_len > 0 {
            let len = (h.data_len as usize).div_ceil(ALIGN_BYTES) * ALIGN_BYTES;
            let (res, data) = io.read_at(file, pool.take(len), len, off + ALIGN_BYTES as u64).await;
            if res.is_err() || crc32c::crc32c(&data.as_slice()[..h.data_len as usize]) != h.data_crc32c {
                // Torn: the header reached the disk, the data did not.
                off += ALIGN_BYTES as u64;
                continue;
            }
        }
        if h.lsn > after_lsn {
            let loc = Loc { segment: s, offset: off, data_len: h.data_len, data_crc32c: h.data_crc32c };
            out.push((h.lsn, loc, h.at_ms, body));
        }
        off += rec;
        end = off;
    }
    Ok(end)
}

fn is_block_device(file: &std::fs::File) -> bool {
    use std::os::unix::fs::FileTypeExt;
    file.metadata().map(|m| m.file_type().is_block_device()).unwrap_or(false)
}
