//! The simulation in CI: a fixed set of seeds must hold every invariant,
//! a seed must replay exactly, and each planted bug must be caught (so the
//! checkers are not vacuous).
#![allow(clippy::unwrap_used, missing_docs)]

use tessera_sim::{run, Bug, Config};

/// Seeds CI runs; `cargo run --release -p tessera-sim -- --seeds N` runs more.
const CI_SEEDS: std::ops::RangeInclusive<u64> = 1..=100;

#[test]
fn fixed_seeds_hold_every_invariant() {
    let (mut acked, mut degraded, mut faults, mut repairs, mut reads, mut converge) = (0, 0, 0, 0, 0, 0);
    for seed in CI_SEEDS {
        let out = run(&Config::new(seed));
        assert!(
            out.violations.is_empty(),
            "seed {seed}: {:?}\nreplay: cargo run --release -p tessera-sim -- --seed {seed} --trace",
            out.violations
        );
        acked += out.acked;
        degraded += out.degraded;
        faults += out.faults;
        repairs += out.repairs;
        reads += out.reads_ok;
        converge = converge.max(out.converge_ms.unwrap());
    }
    println!(
        "{} seeds: {acked} acknowledged writes ({degraded} degraded), {reads} reads, {faults} faults, \
         {repairs} repair fixes, slowest convergence {converge} ms",
        CI_SEEDS.count()
    );
    // The runs did what they claim: load, faults, degraded writes, repair.
    assert!(acked > 1_000 && reads > 1_000 && faults > 100 && degraded > 0 && repairs > 0);
}

#[test]
fn a_seed_replays_exactly() {
    let cfg = Config { trace: true, ..Config::new(7) };
    let a = run(&cfg);
    let b = run(&cfg);
    assert!(!a.trace.is_empty());
    assert_eq!(a, b);
    assert_ne!(a, run(&Config { trace: true, ..Config::new(8) }), "another seed is another run");
}

fn caught(bug: Bug) -> Option<(u64, String)> {
    (1..=60).find_map(|seed| {
        let out = run(&Config { bug: Some(bug), ..Config::new(seed) });
        out.violations.first().map(|v| (seed, v.clone()))
    })
}

#[test]
fn the_checkers_catch_planted_bugs() {
    for bug in [Bug::AckBeforeCommit, Bug::ReadQuorumOne, Bug::NoRebuild] {
        let found = caught(bug);
        println!("{bug:?}: {found:?}");
        assert!(found.is_some(), "{bug:?} went unnoticed in 60 seeds");
    }
}
