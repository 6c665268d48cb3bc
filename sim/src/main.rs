//! `tessera-sim`: run seeds of the deterministic simulation.
//!
//! ```text
//! tessera-sim --seeds 1000            # seeds 1..=1000, report failures and seeds/minute
//! tessera-sim --from 5000 --seeds 200 # seeds 5000..5199
//! tessera-sim --seed 42 --trace       # replay one seed with its trace
//! tessera-sim --seeds 50 --bug ack-before-commit   # show the checkers catch a planted bug
//! ```

use std::time::Instant;

use tessera_sim::{run, Bug, Config};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    let num = |name: &str, default: u64| -> u64 {
        match value(name) {
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("{name}: {v:?} is not a number");
                std::process::exit(2)
            }),
            None => default,
        }
    };
    let bug = match value("--bug").as_deref() {
        None => None,
        Some("ack-before-commit") => Some(Bug::AckBeforeCommit),
        Some("read-quorum-one") => Some(Bug::ReadQuorumOne),
        Some("no-rebuild") => Some(Bug::NoRebuild),
        Some(other) => {
            eprintln!("--bug {other:?}: known bugs are ack-before-commit, read-quorum-one, no-rebuild");
            return std::process::ExitCode::from(2);
        }
    };
    let trace = args.iter().any(|a| a == "--trace");
    let (from, count) = match value("--seed") {
        Some(_) => (num("--seed", 1), 1),
        None => (num("--from", 1), num("--seeds", 100)),
    };
    let load_ms = num("--load-ms", 20_000);
    let start = Instant::now();
    let mut failed = Vec::new();
    let (mut acked, mut faults, mut repairs, mut worst_converge) = (0u64, 0u64, 0u64, 0u64);
    for seed in from..from + count {
        let cfg = Config { load_ms, bug, trace, ..Config::new(seed) };
        let out = run(&cfg);
        for line in &out.trace {
            println!("{line}");
        }
        acked += out.acked;
        faults += out.faults;
        repairs += out.repairs;
        worst_converge = worst_converge.max(out.converge_ms.unwrap_or(0));
        if !out.violations.is_empty() {
            println!("seed {seed}: {} violation(s); first: {}", out.violations.len(), out.violations[0]);
            failed.push(seed);
        } else if count == 1 {
            println!("seed {seed}: ok {out:?}", out = tessera_sim::Outcome { trace: Vec::new(), ..out });
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{count} seeds from {from} in {secs:.1} s ({:.0} seeds/minute): {} failed; {acked} writes acknowledged, \
         {faults} faults, {repairs} repair fixes, slowest convergence {worst_converge} ms after the faults ended",
        count as f64 / secs * 60.0,
        failed.len()
    );
    if failed.is_empty() {
        std::process::ExitCode::SUCCESS
    } else {
        println!("replay one with: tessera-sim --seed {} --trace", failed[0]);
        std::process::ExitCode::FAILURE
    }
}
