//! `tessera dev --dir DIR --regions N`: N local regions (r1, r2, ...), each
//! a full `tessera dev` region in DIR/<region> with its own client.toml,
//! plus cross-region replication: a CA and a region certificate per region
//! (DIR/<region>/crr/), every region trusting the others' CAs, a
//! replication endpoint on every node, and a rule r1 → r2 on bucket `demo`
//! with back-fill, so a user can watch replication happen.
//!
//! Traffic between regions goes through a shaped relay run by this process
//! (`--link-delay-ms`, `--link-mib-s`; `tessera dev cut-link --dir DIR` and
//! `heal-link` partition and heal it), see `relay.rs`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tessera_client::VersionHeld;
use tessera_wire::crr::{CrrInbound, CrrOps, CrrRule};
use tessera_wire::ClusterMap;

use crate::dev::{create_region, start_node, stop_all, wait_up, DevArgs};
use crate::dev_proc::{check_free, Need};
use crate::relay::{relay, Shape};

/// Port offset between regions.
const REGION_PORT_STEP: u16 = 100;
/// Offset of the replication endpoint from a region's base port.
const CRR_PORT_OFFSET: u16 = 90;

fn region_name(i: usize) -> String {
    format!("r{}", i + 1)
}

/// Every node's replication endpoint in region `i`, in map order.
fn endpoints(map: &ClusterMap, base_port: u16, i: usize) -> Vec<SocketAddr> {
    let port = base_port + REGION_PORT_STEP * i as u16 + CRR_PORT_OFFSET;
    map.zones.iter().flat_map(|z| z.nodes.iter()).map(|n| SocketAddr::new(n.host, port)).collect()
}

/// Where region `i`'s endpoint `k` is reached through the relay.
fn relayed(base_port: u16, i: usize, k: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(127, 1, i as u8 + 1, k as u8 + 1);
    SocketAddr::new(IpAddr::V4(ip), base_port + REGION_PORT_STEP * i as u16 + CRR_PORT_OFFSET)
}

fn load_map(dir: &Path) -> anyhow::Result<ClusterMap> {
    let path = dir.join("map.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    Ok(ClusterMap::from_toml(&text)?)
}

/// Write the maps with the demo rule and every node's `[crr]` section.
fn create(dir: &Path, args: &DevArgs, n: usize) -> anyhow::Result<Vec<ClusterMap>> {
    let mut maps = Vec::new();
    for i in 0..n {
        let rdir = dir.join(region_name(i));
        let map = create_region(&rdir, args, &region_name(i), REGION_PORT_STEP * i as u16)?;
        tessera_node::tls::write_dev_region_certs(&rdir.join("crr"), &region_name(i))
            .context("generate region certificates")?;
        maps.push(map);
    }
    maps[0].crr.push(CrrRule {
        id: "r1-to-r2".into(),
        bucket: "demo".into(),
        prefix: String::new(),
        dest_region: "r2".into(),
        dest_bucket: "demo".into(),
        ops: CrrOps::All,
        backfill: true,
        dest_class: None,
        bandwidth_mib_s: 0,
    });
    maps[0].validate()?;
    // r2 takes what r1 sends into demo (and nothing else).
    maps[1].crr_in.push(CrrInbound { from_region: "r1".into(), dest_bucket: "demo".into(), relay: false });
    maps[1].validate()?;
    for (i, map) in maps.iter().enumerate() {
        let rdir = dir.join(region_name(i));
        let map_toml = crate::dev::signed_toml(&rdir, map)?;
        std::fs::write(rdir.join("map.toml"), &map_toml)?;
        let own = endpoints(map, args.base_port, i);
        for (k, node) in map.zones.iter().flat_map(|z| z.nodes.iter()).enumerate() {
            let nd = rdir.join(&node.name);
            std::fs::write(nd.join("map.toml"), &map_toml)?;
            let crr = rdir.join("crr");
            let mut s = format!(
                "\n[crr]\ncert = \"{}\"\nkey = \"{}\"\nlisten = \"{}\"\n",
                crr.join("region.pem").display(),
                crr.join("region.key").display(),
                own[k]
            );
            for (j, peer) in maps.iter().enumerate().filter(|(j, _)| *j != i) {
                let addrs: Vec<String> = (0..endpoints(peer, args.base_port, j).len())
                    .map(|k| format!("\"{}\"", relayed(args.base_port, j, k)))
                    .collect();
                s.push_str(&format!(
                    "\n[[crr.peers]]\nregion = \"{}\"\nca_cert = \"{}\"\nserver_name = \"{}\"\naddrs = [{}]\n",
                    region_name(j),
                    dir.join(region_name(j)).join("crr/ca.pem").display(),
                    region_name(j),
                    addrs.join(", ")
                ));
            }
            let path = nd.join("node.toml");
            let mut text = std::fs::read_to_string(&path)?;
            // [crr] must come before [[targets]] tables end the top level:
            // TOML tables can follow in any order, so append.
            text.push_str(&s);
            std::fs::write(path, text)?;
        }
    }
    Ok(maps)
}

/// Run `--regions N`.
pub(crate) async fn run(args: &DevArgs, dir: &Path, n: usize, signals: &mut crate::dev::Signals) -> anyhow::Result<()> {
    if !(2..=9).contains(&n) {
        bail!("--regions must be 2..=9");
    }
    if args.netns.is_some() {
        bail!("--regions runs on loopback; it cannot be combined with --netns");
    }
    // The relay's addresses and the replication endpoints, before anything
    // is written or started (create_region checks each region's nodes).
    let mut needs = Vec::new();
    for i in 0..n {
        let port = args.base_port + REGION_PORT_STEP * i as u16 + CRR_PORT_OFFSET;
        for z in 0..args.zones {
            for k in 0..args.nodes {
                needs.push(Need::Udp(SocketAddr::new(crate::dev::node_host(z, k), port)));
                needs.push(Need::Udp(relayed(args.base_port, i, z * args.nodes + k)));
            }
        }
    }
    let maps = if dir.join(region_name(0)).join("map.toml").exists() {
        let maps = (0..n).map(|i| load_map(&dir.join(region_name(i)))).collect::<anyhow::Result<Vec<_>>>()?;
        for (i, map) in maps.iter().enumerate() {
            needs.extend(crate::dev_proc::region_needs(&dir.join(region_name(i)), map));
        }
        check_free(&needs)?;
        println!("tessera dev: restarting {n} regions in {}", dir.display());
        maps
    } else {
        check_free(&needs)?;
        create(dir, args, n)?
    };
    let shape = Arc::new(Shape {
        delay: Duration::from_millis(args.link_delay_ms),
        rate: (args.link_mib_s > 0).then_some(args.link_mib_s as f64 * 1_048_576.0),
        cut: AtomicBool::new(false),
    });
    shape.watch_cut_file(dir.join("link-cut"));
    for (i, map) in maps.iter().enumerate() {
        for (k, upstream) in endpoints(map, args.base_port, i).into_iter().enumerate() {
            let (listen, shape) = (relayed(args.base_port, i, k), shape.clone());
            let socket = std::net::UdpSocket::bind(listen).with_context(|| format!("relay on {listen}"))?;
            drop(socket);
            tokio::spawn(async move {
                if let Err(e) = relay(listen, upstream, shape).await {
                    tracing::error!(%listen, error = %e, "relay stopped");
                }
            });
        }
    }
    let dirs: Vec<PathBuf> = (0..n).map(|i| dir.join(region_name(i))).collect();
    for d in &dirs {
        crate::dev_proc::claim(d)?;
    }
    crate::dev_proc::serve_requests(dirs.clone());
    let startup = async {
        for (d, map) in dirs.iter().zip(&maps) {
            for node in map.zones.iter().flat_map(|z| z.nodes.iter()) {
                start_node(d, &node.name)?;
            }
        }
        let mut clients = Vec::new();
        for (d, map) in dirs.iter().zip(&maps) {
            clients.push(wait_up(d, map).await?);
            println!(
                "tessera dev: region {} up in {} (client config {})",
                map.region,
                d.display(),
                d.join("client.toml").display()
            );
        }
        println!(
            "  inter-region link: {} ms one way, {} (through a relay in this process)",
            args.link_delay_ms,
            if args.link_mib_s > 0 { format!("{} MiB/s", args.link_mib_s) } else { "no bandwidth limit".into() }
        );
        for r in maps.iter().flat_map(|m| m.crr.iter()) {
            println!(
                "  replication rule {}: {} -> {}/{} ({:?}, back-fill {})",
                r.id, r.bucket, r.dest_region, r.dest_bucket, r.ops, r.backfill
            );
        }
        for (m, r) in maps.iter().flat_map(|m| m.crr_in.iter().map(move |r| (m, r))) {
            println!("  {} takes replicas from {} into {}", m.region, r.from_region, r.dest_bucket);
        }
        if !args.no_demo && clients.len() >= 2 {
            demo(&clients[0], &clients[1]).await.context("replication demo")?;
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        r = startup => r,
        () = signals.recv() => Err(anyhow::anyhow!("interrupted during start-up; the regions are stopped")),
    };
    let stop = |dirs: &[PathBuf]| {
        for (d, map) in dirs.iter().zip(&maps) {
            stop_all(d, map);
            crate::dev_proc::release(d);
        }
    };
    if let Err(e) = result {
        stop(&dirs);
        return Err(e);
    }
    println!("\nTry it (in another shell):");
    println!("  tessera --config {} put ./some-file demo/some-file", dirs[0].join("client.toml").display());
    println!("  tessera --config {} ls demo", dirs[1].join("client.toml").display());
    println!(
        "  tessera --config {} crr status    # operator commands use admin.toml",
        dirs[0].join("admin.toml").display()
    );
    println!("  tessera dev cut-link --dir {}    # partition the regions; heal-link to heal", dir.display());
    if args.exit_after_demo {
        stop(&dirs);
        println!("stopped");
        return Ok(());
    }
    println!("\nCtrl-C stops the regions.");
    signals.recv().await;
    println!("stopping…");
    stop(&dirs);
    println!("stopped cleanly");
    Ok(())
}

/// Write in r1, watch each change arrive in r2.
async fn demo(r1: &tessera_client::Client, r2: &tessera_client::Client) -> anyhow::Result<()> {
    println!();
    let mut versions = Vec::new();
    for (key, body) in [("crr/a.txt", &b"first"[..]), ("crr/b.txt", b"second"), ("crr/a.txt", b"first, overwritten")] {
        let r = r1.put("demo", key, body.to_vec()).await?;
        versions.push((key, r.version, Instant::now()));
    }
    let marker = r1.delete("demo", "crr/b.txt").await?;
    versions.push(("crr/b.txt", marker, Instant::now()));
    // `demo` keeps no old versions: wait for each key's newest.
    let newest: Vec<_> =
        versions.iter().filter(|(k, v, _)| !versions.iter().any(|(k2, v2, _)| k2 == k && v2 > v)).cloned().collect();
    let versions = newest;
    let deadline = Instant::now() + Duration::from_secs(30);
    for (key, version, at) in versions {
        loop {
            match r2.version_held("demo", key, version).await {
                Ok(VersionHeld::Committed(m)) => {
                    let what =
                        if m.delete_marker { "delete marker".to_string() } else { format!("{} bytes", m.size_bytes) };
                    println!(
                        "demo: r1 {key} version {version} ({what}) is in r2 {:.0} ms after r1 acknowledged it, origin {}",
                        at.elapsed().as_secs_f64() * 1e3,
                        m.origin.as_deref().unwrap_or("-"),
                    );
                    break;
                }
                _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(20)).await,
                other => bail!("{key} version {version} did not reach r2 within 30 s: {other:?}"),
            }
        }
    }
    println!(
        "demo: (measured from the PUT's acknowledgement in r1 to the version committed in r2, polled every 20 ms)"
    );
    let back = r2.get("demo", "crr/a.txt", Default::default()).await?.bytes().await?;
    anyhow::ensure!(back == b"first, overwritten", "r2 holds a different crr/a.txt");
    println!("demo: r2 serves the overwritten crr/a.txt; crr/b.txt is deleted in both");
    Ok(())
}
