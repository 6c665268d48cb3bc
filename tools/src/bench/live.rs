//! The status line while jobs run, like fio's: each job's state, progress,
//! throughput and operations per second over the last second, errors, ETA.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::job::{JobSpec, Workload};
use super::runner::{phase, Live};
use super::units::human_bytes;

/// When to print it (fio's `--eta`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Eta {
    Auto,
    Always,
    Never,
}

fn state_char(spec: &JobSpec, live: &Live) -> char {
    match live.phase.load(Ordering::Relaxed) {
        phase::WAITING => 'P',
        phase::LAYOUT => 'l',
        phase::VERIFY => 'V',
        phase::DONE => '_',
        _ => {
            let c = match spec.workload {
                Workload::Read => 'r',
                Workload::Write => 'w',
                Workload::Mixed => 'm',
                Workload::Delete => 'd',
                Workload::List => 'l',
            };
            if spec.random || spec.workload == Workload::List {
                c
            } else {
                c.to_ascii_uppercase()
            }
        }
    }
}

/// Print the status every second until `done`; returns when it is set.
pub(crate) fn spawn(
    jobs: Vec<(Arc<JobSpec>, Arc<Live>)>,
    t0: Instant,
    eta: Eta,
    done: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let tty = std::io::stderr().is_terminal();
        let show = match eta {
            Eta::Never => false,
            Eta::Always => true,
            Eta::Auto => tty,
        };
        let mut last = [0u64; 8];
        let mut last_t = Instant::now();
        let mut printed = false;
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
            if last_t.elapsed() < Duration::from_secs(1) || !show {
                continue;
            }
            let dt = last_t.elapsed().as_secs_f64();
            last_t = Instant::now();
            let mut now = [0u64; 8];
            let mut errors = 0;
            let (mut running, mut eta_s, mut frac_sum, mut frac_n) = (0, 0f64, 0f64, 0u32);
            let mut states = String::new();
            let (mut lay_done, mut lay_total) = (0u64, 0u64);
            for (spec, l) in &jobs {
                for d in 0..4 {
                    now[d] += l.ops[d].load(Ordering::Relaxed);
                    now[4 + d] += l.bytes[d].load(Ordering::Relaxed);
                }
                errors += l.errors.load(Ordering::Relaxed);
                states.push(state_char(spec, l));
                let ph = l.phase.load(Ordering::Relaxed);
                if ph == phase::DONE || ph == phase::WAITING {
                    continue;
                }
                if ph == phase::LAYOUT {
                    lay_done += l.layout_done.load(Ordering::Relaxed);
                    lay_total += l.layout_total.load(Ordering::Relaxed);
                }
                running += 1;
                let (done_ops, planned) = (l.done.load(Ordering::Relaxed), l.planned.load(Ordering::Relaxed));
                let deadline = l.deadline_ms.load(Ordering::Relaxed);
                let elapsed_ms = t0.elapsed().as_millis() as f64;
                let by_time = (deadline > 0).then(|| (deadline as f64 - elapsed_ms).max(0.0) / 1e3);
                let by_ops = (planned > 0 && done_ops > 0 && ph == phase::RUNNING).then(|| {
                    let rate = done_ops as f64 / elapsed_ms.max(1.0) * 1e3;
                    planned.saturating_sub(done_ops) as f64 / rate
                });
                let left = match (by_time, by_ops) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) | (None, Some(a)) => a,
                    (None, None) => 0.0,
                };
                eta_s = f64::max(eta_s, left);
                if planned > 0 {
                    frac_sum += (done_ops as f64 / planned as f64).min(1.0);
                    frac_n += 1;
                }
            }
            let prev = std::mem::replace(&mut last, now);
            let rate = |i: usize| (now[i] - prev[i]) as f64 / dt;
            let pct = if lay_total > 0 {
                format!("laying out {lay_done}/{lay_total} objects")
            } else if frac_n > 0 {
                format!("{:.1}%", frac_sum / f64::from(frac_n) * 100.0)
            } else {
                "-".into()
            };
            let line = format!(
                "Jobs: {running} [{states}][{:.0}s][{pct}][r={}/s,w={}/s][r={:.0},w={:.0},d={:.0},l={:.0} ops/s][err={errors}][eta {:02}m:{:02}s]",
                t0.elapsed().as_secs_f64(),
                human_bytes(rate(4)),
                human_bytes(rate(5)),
                rate(0),
                rate(1),
                rate(2),
                rate(3),
                (eta_s as u64) / 60,
                (eta_s as u64) % 60,
            );
            let mut err = std::io::stderr().lock();
            if tty {
                let _ = write!(err, "\r{line:<130}");
            } else {
                let _ = writeln!(err, "{line}");
            }
            let _ = err.flush();
            printed = true;
        }
        if printed && tty {
            let _ = writeln!(std::io::stderr());
        }
    })
}
