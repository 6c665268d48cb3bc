//! `tessera crr add | rm | allow | disallow | ls | status`: cross-region
//! replication rules (outbound: what this region sends; inbound: what it
//! takes),
//! kept in the region's cluster map (so every node has the same rules,
//! versioned by epoch), and their progress gathered from every node.

use std::collections::{BTreeMap, BTreeSet};

use tessera_client::{Client, ClientError};
use tessera_wire::crr::{CrrInbound, CrrOps, CrrRule, RuleProgress};
use tessera_wire::StorageClass;

/// Replication subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum CrrCmd {
    /// Add a rule: replicate BUCKET (or keys under --prefix) to a bucket in
    /// another region.
    Add {
        /// Rule id, unique in the region.
        #[arg(long)]
        id: String,
        /// Source bucket in this region.
        #[arg(long)]
        bucket: String,
        /// Destination region (a [[crr.peers]] region of the nodes).
        #[arg(long)]
        dest_region: String,
        /// Destination bucket (must exist there).
        #[arg(long)]
        dest_bucket: String,
        /// Only keys starting with this.
        #[arg(long, default_value = "")]
        prefix: String,
        /// `all` (creates, overwrites, deletes) or `creates-only` (deletes
        /// stay here: the safe choice for disaster recovery).
        #[arg(long, default_value = "all")]
        ops: String,
        /// Also copy the objects the bucket already holds.
        #[arg(long)]
        backfill: bool,
        /// Storage class of the replicas: `standard` or `ia` (default: the
        /// source's).
        #[arg(long)]
        dest_class: Option<String>,
        /// Bandwidth limit per shipping node, MiB/s (0: none).
        #[arg(long, default_value_t = 0)]
        bandwidth_mib_s: u32,
    },
    /// Let peer region FROM replicate into BUCKET of this region (a
    /// replica into a bucket no inbound rule names is refused).
    Allow {
        /// The sending region.
        #[arg(long)]
        from: String,
        /// The bucket here that takes its changes.
        #[arg(long)]
        bucket: String,
        /// Also take changes FROM forwards from a third region.
        #[arg(long)]
        relay: bool,
    },
    /// Remove an inbound rule: FROM's changes into BUCKET are refused
    /// from the next map on.
    Disallow {
        /// The sending region.
        #[arg(long)]
        from: String,
        /// The bucket here.
        #[arg(long)]
        bucket: String,
    },
    /// List the rules (outbound, then inbound).
    Ls,
    /// Remove a rule (changes not yet shipped for it are dropped from the
    /// logs once no other rule needs them).
    Rm {
        /// Rule id.
        id: String,
    },
    /// Per rule: back-fill progress, the time up to which every change is
    /// replicated, pending objects and bytes, lag, errors.
    Status,
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1_048_576.0)
}

fn ops_name(ops: CrrOps) -> &'static str {
    match ops {
        CrrOps::All => "all",
        CrrOps::CreatesOnly => "creates-only",
    }
}

async fn push(c: &Client, map: &mut tessera_wire::ClusterMap) -> Result<(), ClientError> {
    map.epoch = map.epoch.checked_add(1).ok_or_else(|| ClientError::Config {
        detail: format!("the map's epoch {} cannot rise any further", map.epoch),
    })?;
    map.validate()?;
    let report = c.push_map(map).await?;
    println!("{}", report.summary(map.epoch));
    if !report.refused.is_empty() {
        return Err(ClientError::Config { detail: format!("map epoch {} refused by some nodes (above)", map.epoch) });
    }
    Ok(())
}

fn when(ms: u64) -> String {
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    format!("{:.1}s ago", now.saturating_sub(ms) as f64 / 1000.0)
}

/// Run a replication subcommand. False if some node did not answer.
pub(crate) async fn run(c: &Client, cmd: CrrCmd) -> Result<bool, ClientError> {
    c.refresh_map().await?;
    let mut map = c.view().map.clone();
    match cmd {
        CrrCmd::Add { id, bucket, dest_region, dest_bucket, prefix, ops, backfill, dest_class, bandwidth_mib_s } => {
            let ops = match ops.as_str() {
                "all" => CrrOps::All,
                "creates-only" => CrrOps::CreatesOnly,
                o => return Err(ClientError::Config { detail: format!("--ops {o:?}: use all or creates-only") }),
            };
            let dest_class = match dest_class.as_deref() {
                None => None,
                Some("standard") => Some(StorageClass::Standard),
                Some("ia") => Some(StorageClass::InfrequentAccess),
                Some(o) => {
                    return Err(ClientError::Config { detail: format!("--dest-class {o:?}: use standard or ia") })
                }
            };
            if map.crr.iter().any(|r| r.id == id) {
                return Err(ClientError::Config { detail: format!("a rule {id:?} exists; remove it first") });
            }
            c.bucket(&bucket).await?;
            map.crr.push(CrrRule {
                id,
                bucket,
                prefix,
                dest_region,
                dest_bucket,
                ops,
                backfill,
                dest_class,
                bandwidth_mib_s,
            });
            push(c, &mut map).await?;
        }
        CrrCmd::Ls => {
            println!(
                "{:<16} {:<16} {:<12} {:<16} {:<12} {:<13} {:>8} {:>7}",
                "ID", "BUCKET", "PREFIX", "DEST", "DEST-CLASS", "OPS", "BACKFILL", "MIB/S"
            );
            for r in &map.crr {
                println!(
                    "{:<16} {:<16} {:<12} {:<16} {:<12} {:<13} {:>8} {:>7}",
                    r.id,
                    r.bucket,
                    r.prefix,
                    format!("{}/{}", r.dest_region, r.dest_bucket),
                    r.dest_class.map_or("same".to_string(), |c| format!("{c:?}")),
                    ops_name(r.ops),
                    if r.backfill { "yes" } else { "no" },
                    r.bandwidth_mib_s
                );
            }
            if !map.crr_in.is_empty() {
                println!();
                println!("{:<16} {:<16} {:<6}", "FROM", "INTO-BUCKET", "RELAY");
                for r in &map.crr_in {
                    println!("{:<16} {:<16} {:<6}", r.from_region, r.dest_bucket, if r.relay { "yes" } else { "no" });
                }
            }
        }
        CrrCmd::Allow { from, bucket, relay } => {
            c.bucket(&bucket).await?;
            match map.crr_in.iter_mut().find(|r| r.from_region == from && r.dest_bucket == bucket) {
                Some(r) if r.relay == relay => {
                    println!("already allowed: {from} -> {bucket}{}", if relay { " (relays)" } else { "" });
                    return Ok(true);
                }
                Some(r) => r.relay = relay,
                None => map.crr_in.push(CrrInbound { from_region: from, dest_bucket: bucket, relay }),
            }
            push(c, &mut map).await?;
        }
        CrrCmd::Disallow { from, bucket } => {
            let before = map.crr_in.len();
            map.crr_in.retain(|r| !(r.from_region == from && r.dest_bucket == bucket));
            if map.crr_in.len() == before {
                return Err(ClientError::Config { detail: format!("no inbound rule from {from} into {bucket}") });
            }
            push(c, &mut map).await?;
        }
        CrrCmd::Rm { id } => {
            let before = map.crr.len();
            map.crr.retain(|r| r.id != id);
            if map.crr.len() == before {
                return Err(ClientError::Config { detail: format!("no rule {id:?}") });
            }
            push(c, &mut map).await?;
        }
        CrrCmd::Status => return status(c, &map).await,
    }
    Ok(true)
}

async fn status(c: &Client, map: &tessera_wire::ClusterMap) -> Result<bool, ClientError> {
    let mut all_ok = true;
    let mut per_rule: BTreeMap<String, Vec<RuleProgress>> = BTreeMap::new();
    let mut errors = Vec::new();
    for (name, addr) in c.node_addrs() {
        match c.crr_status(addr).await {
            Ok(s) => {
                for r in s.rules {
                    if let Some(e) = &r.last_error {
                        errors.push(format!("  {} on {name}: last error: {e}", r.rule));
                    }
                    per_rule.entry(r.rule.clone()).or_default().push(r);
                }
            }
            // The identity, not the node: every node would say the same.
            Err(e @ ClientError::AccessDenied { .. }) => return Err(e),
            Err(e) => {
                all_ok = false;
                println!("{name}: no answer: {e}");
            }
        }
    }
    let total = map.placement_groups as usize;
    println!(
        "{:<16} {:>9} {:>8} {:>22} {:>9} {:>10} {:>10} {:>12} {:>16}",
        "RULE",
        "BACKFILL",
        "GROUPS",
        "REPLICATED-UP-TO",
        "PENDING",
        "PEND-MIB",
        "SHIPPED",
        "SHIPPED-MIB",
        "LAG p50/p99/max"
    );
    for rule in &map.crr {
        let rows = per_rule.get(&rule.id).map(Vec::as_slice).unwrap_or(&[]);
        let shipped: BTreeSet<u32> = rows.iter().flat_map(|r| r.pgs_shipped.iter().copied()).collect();
        let filled: BTreeSet<u32> = rows.iter().flat_map(|r| r.pgs_backfilled.iter().copied()).collect();
        let up_to = rows.iter().filter(|r| !r.pgs_shipped.is_empty()).map(|r| r.replicated_up_to_ms).min();
        // The rule's quantiles over every node's recent applies (merged
        // histograms; a node's own p50 says nothing about the rule's).
        let mut counts = Vec::new();
        for r in rows {
            tessera_wire::crr::merge_lag_counts(&mut counts, &r.lag_counts);
        }
        let lag_max = rows.iter().map(|r| r.lag_max_ms).max().unwrap_or(0);
        let lag =
            match (tessera_wire::crr::lag_quantile_ms(&counts, 0.5), tessera_wire::crr::lag_quantile_ms(&counts, 0.99))
            {
                (Some(p50), Some(p99)) => format!("≤{}/≤{}/{} ms", p50.min(lag_max), p99.min(lag_max), lag_max),
                _ => "-".to_string(),
            };
        println!(
            "{:<16} {:>8.1}% {:>4}/{:<4} {:>22} {:>9} {:>10} {:>10} {:>12} {:>16}",
            rule.id,
            if rule.backfill { filled.len() as f64 * 100.0 / total.max(1) as f64 } else { 100.0 },
            shipped.len(),
            total,
            up_to.map_or("-".into(), when),
            rows.iter().map(|r| r.pending_objects).sum::<u64>(),
            mib(rows.iter().map(|r| r.pending_bytes).sum()),
            rows.iter().map(|r| r.shipped_objects).sum::<u64>(),
            mib(rows.iter().map(|r| r.shipped_bytes).sum()),
            lag,
        );
        for e in errors.iter().filter(|e| e.trim_start().starts_with(&format!("{} on ", rule.id))) {
            println!("{e}");
        }
        if shipped.len() < total {
            println!("  {} groups have no shipping node (no live member with [crr] configured)", total - shipped.len());
        }
    }
    Ok(all_ok)
}
