//! Linux network namespaces for `tessera dev --netns ID`: one namespace per
//! zone (`tsID-zZ`), joined by a veth link to one bridge (`tsID-br`, address
//! 10.ID.0.1/16) in the caller's namespace, node addresses 10.ID.Z.N on the
//! zone's link. A zone can then be cut off (link down), made lossy
//! (nftables drops a share of its packets both ways) or delayed (tc netem,
//! where the kernel has it), the way a real zone fails. Needs root.
//!
//! Everything is named from ID, so `teardown` removes exactly what
//! `setup` made, and two regions with different IDs do not meet.

use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;

use anyhow::{bail, Context};

/// Name of zone `z`'s namespace (0-based zone index).
pub(crate) fn ns_name(id: u8, z: usize) -> String {
    format!("ts{id}-z{}", z + 1)
}

fn bridge(id: u8) -> String {
    format!("ts{id}-br")
}

/// Address of node `n` of zone `z` (0-based).
pub(crate) fn node_host(id: u8, z: usize, n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, id, z as u8 + 1, n as u8 + 1))
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args)
}

fn run(cmd: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(cmd).args(args).output().with_context(|| format!("run {cmd} (is iproute2 installed?)"))?;
    if !out.status.success() {
        bail!("{cmd} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Fail early and clearly when namespaces cannot be made.
pub(crate) fn check_root() -> anyhow::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: geteuid(2) has no arguments and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        bail!("--netns needs root (it creates network namespaces, veth links and a bridge)");
    }
    Ok(())
}

fn exists(ns: &str) -> bool {
    Command::new("ip").args(["netns", "exec", ns, "true"]).output().is_ok_and(|o| o.status.success())
}

/// Create the bridge and one namespace per zone with `nodes` addresses
/// (idempotent: an existing namespace is kept).
pub(crate) fn setup(id: u8, zones: usize, nodes: usize) -> anyhow::Result<()> {
    check_root()?;
    let br = bridge(id);
    if !Command::new("ip").args(["link", "show", &br]).output().is_ok_and(|o| o.status.success()) {
        ip(&["link", "add", &br, "type", "bridge"])?;
        ip(&["addr", "add", &format!("10.{id}.0.1/16"), "dev", &br])?;
    }
    ip(&["link", "set", &br, "up"])?;
    allow_forwarding(&br, true)?;
    for z in 0..zones {
        let ns = ns_name(id, z);
        if exists(&ns) {
            continue;
        }
        ip(&["netns", "add", &ns])?;
        ip(&["link", "add", &ns, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
        ip(&["link", "set", &ns, "master", &br])?;
        ip(&["link", "set", &ns, "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        for n in 0..nodes {
            ip(&["-n", &ns, "addr", "add", &format!("{}/16", node_host(id, z, n)), "dev", "eth0"])?;
        }
    }
    Ok(())
}

/// Remove every namespace, link and the bridge `setup` made for `id`.
pub(crate) fn teardown(id: u8, zones: usize) {
    for z in 0..zones {
        let ns = ns_name(id, z);
        let _ = ip(&["link", "del", &ns]);
        let _ = ip(&["netns", "del", &ns]);
    }
    let _ = allow_forwarding(&bridge(id), false);
    let _ = ip(&["link", "del", &bridge(id)]);
}

/// Bridged packets pass the host's FORWARD chain when br_netfilter is
/// loaded, and Docker sets that chain's policy to DROP: let traffic
/// between this bridge's ports through (or remove that exception).
fn allow_forwarding(br: &str, allow: bool) -> anyhow::Result<()> {
    if Command::new("iptables").arg("-V").output().is_err() {
        return Ok(());
    }
    let rule = ["FORWARD", "-i", br, "-o", br, "-j", "ACCEPT"];
    let present = Command::new("iptables").arg("-C").args(rule).output().is_ok_and(|o| o.status.success());
    match (allow, present) {
        (true, false) => run("iptables", &[&["-I"][..], &rule[..]].concat()),
        (false, true) => run("iptables", &[&["-D"][..], &rule[..]].concat()),
        _ => Ok(()),
    }
}

/// Cut zone `z` off from everything (its link goes down) or reconnect it.
pub(crate) fn set_link(id: u8, z: usize, up: bool) -> anyhow::Result<()> {
    ip(&["link", "set", &ns_name(id, z), if up { "up" } else { "down" }])
}

/// Drop `loss_pct`% of zone `z`'s packets in each direction (0 removes the
/// rule), and delay them by `delay_ms` where the kernel has netem.
pub(crate) fn impair(id: u8, z: usize, loss_pct: u8, delay_ms: u32) -> anyhow::Result<()> {
    let ns = ns_name(id, z);
    let _ = run("ip", &["netns", "exec", &ns, "nft", "delete", "table", "inet", "tessera_chaos"]);
    let _ = run("ip", &["netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root"]);
    if loss_pct > 0 {
        let nft = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &ns, "nft"];
            all.extend_from_slice(args);
            run("ip", &all)
        };
        nft(&["add", "table", "inet", "tessera_chaos"])?;
        for (chain, hook) in [("in", "input"), ("out", "output")] {
            nft(&[
                "add",
                "chain",
                "inet",
                "tessera_chaos",
                chain,
                &format!("{{ type filter hook {hook} priority 0; }}"),
            ])?;
            nft(&[
                "add",
                "rule",
                "inet",
                "tessera_chaos",
                chain,
                "numgen",
                "random",
                "mod",
                "100",
                "<",
                &loss_pct.to_string(),
                "drop",
            ])?;
        }
    }
    if delay_ms > 0 {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "tc",
                "qdisc",
                "add",
                "dev",
                "eth0",
                "root",
                "netem",
                "delay",
                &format!("{delay_ms}ms"),
            ],
        )
        .context("adding delay needs the kernel's sch_netem module")?;
    }
    Ok(())
}

/// The command line that runs `program` inside zone `z`'s namespace.
pub(crate) fn exec_prefix(id: u8, z: usize) -> Vec<String> {
    vec!["ip".into(), "netns".into(), "exec".into(), ns_name(id, z)]
}
