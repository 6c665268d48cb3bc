//! The scrubber: each core re-reads every shard of its targets at a
//! bounded rate and checks it against the checksum written with it. A
//! shard that fails is marked corrupt (a durable record); its version then
//! counts as missing on this target, so the next anti-entropy round
//! rebuilds it from k intact shards elsewhere. Reads that meet a bad shard
//! mark it the same way (server.rs) and decode around it.

use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::server::CoreCtx;

/// Shards verified per engine call (one read transaction).
const BATCH_SHARDS: usize = 32;

/// Scrub this core's targets forever at `mib_s`, resting `pass_interval`
/// after each complete pass.
pub(crate) async fn run(ctx: Rc<CoreCtx>, mib_s: u32, pass_interval: Duration) {
    if mib_s == 0 {
        return;
    }
    let bytes_per_s = f64::from(mib_s) * 1_048_576.0;
    loop {
        let pass_start = Instant::now();
        let mut pass_bytes = 0u64;
        for engine in ctx.engines.values() {
            let mut cursor: Option<Vec<u8>> = None;
            loop {
                let step = match engine.scrub_step(cursor.as_deref(), BATCH_SHARDS).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(target_id = %engine.target(), error = %e, "scrub step failed; next pass retries");
                        break;
                    }
                };
                pass_bytes += step.bytes;
                ctx.metrics.repair.update(|r| {
                    r.scrubbed_bytes += step.bytes;
                    r.corrupt_found += step.corrupt;
                });
                // Pace: the pass so far may not run ahead of the rate.
                let due = pass_start + Duration::from_secs_f64(pass_bytes as f64 / bytes_per_s);
                tokio::time::sleep_until(due.into()).await;
                match step.next {
                    Some(next) => cursor = Some(next),
                    None => break,
                }
            }
        }
        ctx.metrics.repair.update(|r| r.scrub_passes += 1);
        tracing::debug!(
            core = ctx.core,
            bytes = pass_bytes,
            secs = pass_start.elapsed().as_secs_f64(),
            "scrub pass done"
        );
        tokio::time::sleep(pass_interval).await;
    }
}
