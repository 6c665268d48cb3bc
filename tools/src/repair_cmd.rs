//! `tessera repair status` and `tessera repair rate`: every node's
//! anti-entropy and scrub progress, and the repair bandwidth knob.

use tessera_client::Client;
use tessera_wire::repair::RepairStatusOk;

/// Repair subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum RepairCmd {
    /// Progress, backlog and ETA of repair and scrubbing, per node and in total.
    Status,
    /// Set the repair bandwidth of every node, MiB/s of rebuilt shards
    /// (raise it after replacing hardware; 0 pauses repair). Lasts until
    /// the node restarts, which returns to `repair_mib_s` in its config.
    Rate {
        /// MiB/s per node.
        mib_s: u32,
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

/// Run a repair subcommand against every node in the client's map.
pub(crate) async fn run(c: &Client, cmd: RepairCmd) -> Result<bool, tessera_client::ClientError> {
    let mut all_ok = true;
    let mut rows = Vec::new();
    for (name, addr) in c.node_addrs() {
        let r = match &cmd {
            RepairCmd::Status => c.repair_status(addr).await,
            RepairCmd::Rate { mib_s } => c.set_repair_rate(addr, *mib_s).await,
        };
        match r {
            Ok(s) => rows.push(s),
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
