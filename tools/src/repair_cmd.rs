//! `tessera repair status`, `rate` and `wait`: every node's
//! anti-entropy and scrub progress, and the repair bandwidth knob.

use std::collections::BTreeMap;

use tessera_client::Client;
use tessera_wire::repair::RepairStatusOk;

/// Repair subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum RepairCmd {
    /// Progress, backlog and ETA of repair and scrubbing, per node and in total.
    ///
    /// Columns: MiB/s = repair bandwidth limit (0: paused); in-sync/led =
    /// placement groups this node leads repair for whose members all
    /// agree / all it leads; unrch = led groups with a member that did not
    /// answer in the last round; backlog = versions found needing repair
    /// and not yet repaired; back MiB = shard bytes they need; done MiB =
    /// shard bytes repaired since the node started; rate MiB = recent
    /// repair MiB/s; ETA = backlog at that rate; unrep = versions that
    /// cannot be rebuilt now (fewer than k intact shards reachable); scrub
    /// MiB = bytes the scrubber verified; corrupt = corrupt shards found.
    /// Figures come from each node's last finished round: a node that has
    /// not finished one since it started is named below the table.
    #[command(verbatim_doc_comment)]
    Status,
    /// Set the repair bandwidth of every node, MiB/s of rebuilt shards
    /// (raise it after replacing hardware; 0 pauses repair). Lasts until
    /// the node restarts, which returns to `repair_mib_s` in its config.
    Rate {
        /// MiB/s per node.
        mib_s: u32,
    },
    /// Wait until repair has caught up with the current map: every node
    /// answers and has finished two anti-entropy rounds since the wait
    /// began, every placement group has a leader, all members agree, and
    /// nothing is left to repair. The gate between steps of adding or
    /// draining nodes (a map change leaves new group members empty until
    /// repair fills them). Exits non-zero on timeout, naming what is
    /// still pending.
    Wait {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 1_800)]
        timeout_s: u64,
    },
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

fn eta(s: Option<u64>, backlog: u64) -> String {
    match (s, backlog) {
        (_, 0) => "-".into(),
        (Some(s), _) => format!("{s}s"),
        (None, _) => "?".into(),
    }
}

fn row(s: &RepairStatusOk) -> String {
    format!(
        "{:<10} {:>6} {:>5}/{:<5} {:>5} {:>9} {:>10} {:>10} {:>9} {:>6} {:>6} {:>10} {:>7}",
        s.node,
        s.rate_limit_mib_s,
        s.pgs_in_sync,
        s.pgs_led,
        s.pgs_member_unreachable,
        s.backlog_versions,
        mib(s.backlog_bytes),
        mib(s.repaired_bytes),
        mib(s.rate_bytes_s),
        eta(s.eta_s, s.backlog_bytes),
        s.unrepairable,
        mib(s.scrubbed_bytes),
        s.corrupt_found,
    )
}

/// What keeps a region from being caught up, given each node's status now
/// and its round count when the wait began (`None` when converged).
fn pending(
    baseline: &BTreeMap<String, u64>,
    rows: &[RepairStatusOk],
    missing: &[String],
    groups: u32,
) -> Option<String> {
    let mut why = Vec::new();
    if !missing.is_empty() {
        why.push(format!("no answer from {}", missing.join(", ")));
    }
    let fresh: Vec<&str> = rows
        .iter()
        .filter(|s| baseline.get(&s.node).is_none_or(|b| s.rounds < b + 2))
        .map(|s| s.node.as_str())
        .collect();
    if !fresh.is_empty() {
        why.push(format!("a full round not yet done on {}", fresh.join(", ")));
    }
    let led: u32 = rows.iter().map(|s| s.pgs_led).sum();
    let in_sync: u32 = rows.iter().map(|s| s.pgs_in_sync).sum();
    let unreachable: u32 = rows.iter().map(|s| s.pgs_member_unreachable).sum();
    let backlog: u64 = rows.iter().map(|s| s.backlog_versions).sum();
    let unrepairable: u64 = rows.iter().map(|s| s.unrepairable).sum();
    if led < groups {
        why.push(format!("{} of {groups} groups without a leader", groups - led));
    }
    if in_sync < led {
        why.push(format!("{} groups out of sync", led - in_sync));
    }
    if unreachable > 0 {
        why.push(format!("{unreachable} groups with an unreachable member"));
    }
    if backlog > 0 {
        why.push(format!("{backlog} copies to repair"));
    }
    if unrepairable > 0 {
        why.push(format!("{unrepairable} versions not rebuildable yet"));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// `tessera repair wait`: poll every node until [`pending`] has nothing to
/// say, printing progress when it changes.
pub(crate) async fn wait(c: &Client, timeout: std::time::Duration) -> Result<(), String> {
    let start = std::time::Instant::now();
    let mut baseline: BTreeMap<String, u64> = BTreeMap::new();
    let mut said = String::new();
    loop {
        // A map pushed since the wait began adds or removes nodes.
        let _ = c.refresh_map().await;
        let (mut rows, mut missing) = (Vec::new(), Vec::new());
        for (name, addr) in c.node_addrs() {
            match c.repair_status(addr).await {
                Ok(s) => {
                    // First sight, or a restart (the count starts over).
                    let b = baseline.entry(s.node.clone()).or_insert(s.rounds);
                    if s.rounds < *b {
                        *b = s.rounds;
                    }
                    rows.push(s);
                }
                Err(e) => missing.push(format!("{name} ({e})")),
            }
        }
        let groups = c.view().placement.groups();
        let Some(why) = pending(&baseline, &rows, &missing, groups) else {
            let copies: u64 = rows.iter().map(|s| s.repaired_versions).sum();
            println!(
                "repair caught up after {:.1} s: {groups} groups in sync on {} nodes ({copies} copies repaired since the nodes started)",
                start.elapsed().as_secs_f64(),
                rows.len()
            );
            return Ok(());
        };
        if start.elapsed() >= timeout {
            return Err(format!("repair not caught up after {} s: {why}", timeout.as_secs()));
        }
        if why != said {
            println!("{:>6.1} s: waiting: {why}", start.elapsed().as_secs_f64());
            said = why;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Run a repair subcommand against every node in the client's map.
pub(crate) async fn run(c: &Client, cmd: RepairCmd) -> Result<bool, tessera_client::ClientError> {
    let mut all_ok = true;
    let mut rows = Vec::new();
    for (name, addr) in c.node_addrs() {
        let r = match &cmd {
            RepairCmd::Status => c.repair_status(addr).await,
            RepairCmd::Rate { mib_s } => c.set_repair_rate(addr, *mib_s).await,
            // main.rs calls `wait` itself (its failure is not a node's).
            RepairCmd::Wait { .. } => return Ok(true),
        };
        match r {
            Ok(s) => rows.push(s),
            // The identity, not the node: every node would say the same.
            Err(e @ tessera_client::ClientError::AccessDenied { .. }) => return Err(e),
            Err(e) => {
                all_ok = false;
                eprintln!("{name} ({addr}): {e}");
            }
        }
    }
    println!(
        "{:<10} {:>6} {:>11} {:>5} {:>9} {:>10} {:>10} {:>9} {:>6} {:>6} {:>10} {:>7}",
        "node",
        "MiB/s",
        "in-sync/led",
        "unrch",
        "backlog",
        "back MiB",
        "done MiB",
        "rate MiB",
        "ETA",
        "unrep",
        "scrub MiB",
        "corrupt"
    );
    let mut total = RepairStatusOk { node: "total".into(), ..Default::default() };
    for s in &rows {
        println!("{}", row(s));
        total.rate_limit_mib_s += s.rate_limit_mib_s;
        total.pgs_led += s.pgs_led;
        total.pgs_in_sync += s.pgs_in_sync;
        total.pgs_member_unreachable += s.pgs_member_unreachable;
        total.backlog_versions += s.backlog_versions;
        total.backlog_bytes += s.backlog_bytes;
        total.repaired_bytes += s.repaired_bytes;
        total.rate_bytes_s += s.rate_bytes_s;
        total.unrepairable += s.unrepairable;
        total.scrubbed_bytes += s.scrubbed_bytes;
        total.corrupt_found += s.corrupt_found;
    }
    total.eta_s = (total.rate_bytes_s > 0).then(|| total.backlog_bytes / total.rate_bytes_s);
    println!("{}", row(&total));
    let fresh: Vec<&str> = rows.iter().filter(|s| s.rounds == 0).map(|s| s.node.as_str()).collect();
    if !fresh.is_empty() {
        println!(
            "not checked yet: {} ha{} not finished a repair round since starting; the figures above miss what              they owe (a restarted zone's debt). `tessera repair wait` waits for it.",
            fresh.join(", "),
            if fresh.len() == 1 { "s" } else { "ve" }
        );
    }
    let led: u32 = rows.iter().map(|s| s.pgs_led).sum();
    let groups = c.view().placement.groups();
    if led < groups {
        println!(
            "note: {} of {groups} placement groups have no leader that answered (their nodes are down)",
            groups - led
        );
    }
    Ok(all_ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, rounds: u64, led: u32, in_sync: u32) -> RepairStatusOk {
        RepairStatusOk { node: name.into(), rounds, pgs_led: led, pgs_in_sync: in_sync, ..Default::default() }
    }

    #[test]
    fn converged_only_after_two_rounds_with_every_group_led_and_in_sync() {
        let base: BTreeMap<String, u64> = [("a".to_string(), 5), ("b".to_string(), 0)].into();
        let rows = [node("a", 7, 10, 10), node("b", 2, 6, 6)];
        assert_eq!(pending(&base, &rows, &[], 16), None);
        // One round since the wait began may have started before the map changed.
        let why = pending(&base, &[node("a", 6, 10, 10), node("b", 2, 6, 6)], &[], 16).expect("pending");
        assert!(why.contains("a full round not yet done on a"), "{why}");
        let why = pending(&base, &[node("a", 7, 10, 9), node("b", 2, 6, 6)], &[], 16).expect("pending");
        assert!(why.contains("1 groups out of sync"), "{why}");
        let why = pending(&base, &[node("a", 7, 10, 10), node("b", 2, 5, 5)], &[], 16).expect("pending");
        assert!(why.contains("1 of 16 groups without a leader"), "{why}");
        let why = pending(&base, &rows, &["c (timeout)".to_string()], 16).expect("pending");
        assert!(why.contains("no answer from c (timeout)"), "{why}");
        let mut busy = rows.clone();
        busy[0].backlog_versions = 3;
        busy[1].pgs_member_unreachable = 1;
        busy[1].unrepairable = 2;
        let why = pending(&base, &busy, &[], 16).expect("pending");
        for part in ["3 copies to repair", "1 groups with an unreachable member", "2 versions not rebuildable yet"] {
            assert!(why.contains(part), "{why}");
        }
        // A node not seen when the wait began has no baseline yet.
        let why = pending(&BTreeMap::new(), &rows, &[], 16).expect("pending");
        assert!(why.contains("a full round not yet done on a, b"), "{why}");
    }
}
