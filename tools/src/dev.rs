//! `tessera dev --dir DIR`: a local region on loopback. Every node is a
//! real process (`tessera node`) on its own 127.0.Z.N address with its own
//! data directory; one CA signs every node certificate; DIR/map.toml is the
//! cluster map and DIR/client.toml the client config. `stop-zone` SIGKILLs a
//! zone's processes (a power cut) and `start-zone` brings them back, from
//! any terminal.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tessera_wire::ClusterMap;

/// Options of `tessera dev`.
#[derive(clap::Args, Debug)]
pub(crate) struct DevArgs {
    /// Directory for data, certificates and configs (created if missing;
    /// an existing region there is restarted with its data).
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Zones.
    #[arg(long, default_value_t = 3)]
    pub(crate) zones: usize,
    /// Nodes per zone.
    #[arg(long, default_value_t = 2)]
    pub(crate) nodes: usize,
    /// Executor cores (and targets) per node.
    #[arg(long, default_value_t = 2)]
    pub(crate) cores: u16,
    /// UDP port of core 0 on every node (core i listens on port + i).
    #[arg(long, default_value_t = 7_400)]
    pub(crate) base_port: u16,
    /// Metrics HTTP port on every node's address.
    #[arg(long, default_value_t = 9_400)]
    pub(crate) metrics_port: u16,
    /// Capacity of each target file, in MiB (preallocated).
    #[arg(long, default_value_t = 512)]
    pub(crate) target_mib: u64,
    /// Skip the demo.
    #[arg(long)]
    pub(crate) no_demo: bool,
    /// Start the region, run the demo, and stop (no waiting for Ctrl-C).
    #[arg(long)]
    pub(crate) exit_after_demo: bool,
    /// Run each zone in its own Linux network namespace (needs root):
    /// nodes get addresses 10.ID.Z.N behind a bridge, so zones can be
    /// partitioned and made lossy (`partition-zone`, `impair-zone`).
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=250))]
    pub(crate) netns: Option<u8>,
    /// Pause between a node's anti-entropy repair rounds, ms.
    #[arg(long, default_value_t = 5_000)]
    pub(crate) repair_interval_ms: u64,
    /// Pause between a node's complete scrub passes, ms.
    #[arg(long, default_value_t = 60_000)]
    pub(crate) scrub_pass_interval_ms: u64,
    /// Scrub read rate per core, MiB/s (0: off).
    #[arg(long, default_value_t = 4)]
    pub(crate) scrub_mib_s: u32,
    /// Run this many regions (r1, r2, ...) in DIR/<region>, with
    /// cross-region replication between them and a rule r1 -> r2.
    #[arg(long, default_value_t = 1)]
    pub(crate) regions: usize,
    /// One-way delay of the link between regions, ms (--regions).
    #[arg(long, default_value_t = 0)]
    pub(crate) link_delay_ms: u64,
    /// Bandwidth of the link between regions, MiB/s each way; 0: unlimited
    /// (--regions).
    #[arg(long, default_value_t = 0)]
    pub(crate) link_mib_s: u64,
    #[command(subcommand)]
    pub(crate) cmd: Option<DevCmd>,
}

/// Zone control from another terminal.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum DevCmd {
    /// SIGKILL every node process of a zone (like a power cut).
    StopZone {
        /// The region's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Zone name (z1, z2, ...).
        zone: String,
    },
    /// Start a zone's node processes again.
    StartZone {
        /// The region's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Zone name.
        zone: String,
    },
    /// Cut a zone off the network, processes left running (--netns regions).
    PartitionZone {
        /// The region's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Zone name.
        zone: String,
    },
    /// Reconnect a zone and remove any loss or delay (--netns regions).
    HealZone {
        /// The region's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Zone name.
        zone: String,
    },
    /// Drop a share of a zone's packets both ways, and delay them where the
    /// kernel has netem (--netns regions).
    ImpairZone {
        /// The region's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Zone name.
        zone: String,
        /// Percent of packets dropped in each direction.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
        loss: u8,
        /// Added one-way delay, ms (needs sch_netem).
        #[arg(long, default_value_t = 0)]
        delay_ms: u32,
    },
    /// SIGKILL one node.
    KillNode {
        /// The region's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Node name (z1-n1, ...).
        node: String,
    },
    /// Start one node again.
    StartNode {
        /// The region's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Node name.
        node: String,
    },
    /// Freeze a node (SIGSTOP): alive to the kernel, silent to its peers.
    PauseNode {
        /// The region's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Node name (z1-n1, ...).
        node: String,
    },
    /// Resume a paused node (SIGCONT).
    ResumeNode {
        /// The region's directory.
        #[arg(long)]
        dir: PathBuf,
        /// Node name.
        node: String,
    },
    /// Cut the link between the regions of a --regions run (DIR is the
    /// top directory).
    CutLink {
        /// The top directory of the --regions run.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Restore the link between the regions of a --regions run.
    HealLink {
        /// The top directory of the --regions run.
        #[arg(long)]
        dir: PathBuf,
    },
    /// Stop every node and remove the region's network namespaces.
    Down {
        /// The region's directory.
        #[arg(long)]
        dir: PathBuf,
    },
}

/// Address of node `n` of zone `z` (0-based) on loopback.
pub(crate) fn node_host(z: usize, n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, z as u8 + 1, n as u8 + 1))
}

/// The namespace id of a --netns region (from DIR/netns), if it is one.
fn netns_id(dir: &Path) -> Option<u8> {
    std::fs::read_to_string(dir.join("netns")).ok()?.trim().parse().ok()
}

/// Zone index (0-based) of a zone name or of a node name.
fn zone_index(map: &ClusterMap, zone_or_node: &str) -> anyhow::Result<usize> {
    map.zones
        .iter()
        .position(|z| z.name == zone_or_node || z.nodes.iter().any(|n| n.name == zone_or_node))
        .with_context(|| format!("no zone or node {zone_or_node:?} in the map"))
}

fn node_dir(dir: &Path, node: &str) -> PathBuf {
    dir.join(node)
}

/// Write map, node configs, certificates and client config for a new
/// region. Returns the map.
pub(crate) fn create_region(dir: &Path, a: &DevArgs, region: &str, port_offset: u16) -> anyhow::Result<ClusterMap> {
    let base_port = a.base_port + port_offset;
    let metrics_port = a.metrics_port + port_offset;
    if a.zones == 0 || a.zones > 9 || a.nodes == 0 || a.nodes > 200 || a.cores == 0 {
        bail!("--zones must be 1..=9, --nodes 1..=200, --cores >= 1");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let host = |z: usize, n: usize| match a.netns {
        Some(id) => crate::netns::node_host(id, z, n),
        None => node_host(z, n),
    };
    let mut map = ClusterMap::uniform(
        region,
        a.zones,
        a.nodes,
        usize::from(a.cores),
        1,
        a.target_mib * 1_048_576,
        base_port,
        host,
    );
    if let Some(id) = a.netns {
        std::fs::write(dir.join("netns"), id.to_string())?;
    }
    let weighted = a.zones * a.nodes * usize::from(a.cores);
    if weighted < map.shards_per_pg() {
        // Small development shapes: the largest even profile that fits.
        let n = weighted.clamp(2, 12) as u8;
        let profile = tessera_wire::EcProfile { data: n / 2, parity: n - n / 2 };
        map.classes = tessera_wire::ClassProfiles { standard: profile, infrequent_access: profile };
        println!("tessera dev: {weighted} targets cannot hold 6+6 stripes; using {}+{}", n / 2, n - n / 2);
    }
    map.validate().context("the generated map")?;
    if a.netns.is_none() {
        let mut needs = crate::dev_proc::region_needs(dir, &map);
        for n in map.zones.iter().flat_map(|z| z.nodes.iter()) {
            needs.push(crate::dev_proc::Need::Tcp(std::net::SocketAddr::new(n.host, metrics_port)));
        }
        crate::dev_proc::check_free(&needs)?;
    }
    tessera_node::tls::write_dev_certs(&dir.join("tls")).context("generate dev certificates")?;
    if map.is_single_zone() {
        println!("tessera dev: WARNING one zone: no zone redundancy (development only)");
    }
    let map_toml = signed_toml(dir, &map)?;
    std::fs::write(dir.join("map.toml"), &map_toml)?;
    let map_keys = format!(
        "map_keys = [\"{}\"]\n",
        tessera_node::tls::read_map_key(&dir.join("tls/map.pub")).map_err(anyhow::Error::msg)?
    );
    // Nodes in network namespaces serve metrics on their namespace's
    // address, not loopback: that needs a bearer token (docs/security.md).
    let metrics_token = match a.netns {
        Some(_) => {
            let path = dir.join("tls/metrics.token");
            if !path.exists() {
                let mut raw = [0u8; 20];
                std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut raw)?;
                let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
                tessera_node::tls::write_private(&path, &format!("{token}\n"))?;
            }
            format!("metrics_token_file = \"{}\"\n", path.display())
        }
        None => String::new(),
    };
    for (zi, zone) in map.zones.iter().enumerate() {
        for (ni, node) in zone.nodes.iter().enumerate() {
            let nd = node_dir(dir, &node.name);
            std::fs::create_dir_all(nd.join("data"))?;
            std::fs::write(nd.join("map.toml"), &map_toml)?;
            let mut s = format!(
                "# Written by `tessera dev`. Every setting is documented in docs/node-config.md.\n\
                 node_name = \"{}\"\nlisten_addr = \"{}\"\nbase_port = {}\ncores = {}\npin_cores = false\n\
                 metrics_addr = \"{}:{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\nca_cert = \"{}\"\nmap = \"{}\"\n\
                 repair_interval_ms = {}\nscrub_mib_s = {}\nscrub_pass_interval_ms = {}\n{metrics_token}{map_keys}",
                node.name,
                host(zi, ni),
                base_port,
                a.cores,
                host(zi, ni),
                metrics_port,
                dir.join("tls/node.pem").display(),
                dir.join("tls/node.key").display(),
                dir.join("tls/ca.pem").display(),
                nd.join("map.toml").display(),
                a.repair_interval_ms,
                a.scrub_mib_s,
                a.scrub_pass_interval_ms,
            );
            for t in &node.targets {
                s.push_str(&format!(
                    "\n[[targets]]\nid = {}\ncore = {}\npath = \"{}\"\ncapacity_bytes = {}\nsegment_bytes = {}\n",
                    t.id.0,
                    t.core,
                    nd.join(format!("data/target-{}.dat", t.id.0)).display(),
                    t.capacity_bytes,
                    16 * 1_048_576
                ));
            }
            std::fs::write(nd.join("node.toml"), s)?;
        }
    }
    let seeds = seed_list(&map).iter().map(|s| format!("\"{s}\"")).collect::<Vec<_>>().join(", ");
    let secrets = dir.join("tls/secrets.key");
    if !secrets.exists() {
        tessera_client::SecretsKey::create(&secrets)?;
    }
    let signs = format!(
        "# Signs the cluster maps and principal registries this config pushes (nodes take only signed ones).\n\
         map_key = \"{}\"\n# Seals access-key secrets (tessera admin key add).\nsecrets_key = \"{}\"\n",
        dir.join("tls/map.key").display(),
        secrets.display()
    );
    for (file, who, identity, extra) in [
        ("client.toml", "the user \"dev\"", "user", ""),
        ("admin.toml", "the admin \"admin\" (operator commands)", "admin", signs.as_str()),
    ] {
        std::fs::write(
            dir.join(file),
            format!(
                "# Written by `tessera dev`. Use with `tessera --config {}` or TESSERA_CONFIG.\n\
                 # Acts as {who}: nodes authorize every request from this certificate.\n\
                 # Seeds in every zone, tried concurrently: a client starts while any zone is down.\n\
                 region = \"{region}\"\nendpoints = [{seeds}]\nserver_name = \"localhost\"\nca_cert = \"{}\"\n\
                 cert = \"{}\"\nkey = \"{}\"\n\
                 # The last good cluster map, for when every seed is down.\nmap_cache_dir = \"{}\"\n{extra}",
                dir.join(file).display(),
                dir.join("tls/ca.pem").display(),
                dir.join(format!("tls/{identity}.pem")).display(),
                dir.join(format!("tls/{identity}.key")).display(),
                dir.join("client-cache").display()
            ),
        )?;
    }
    Ok(map)
}

/// Seeds for a client config: every node's first core, zones interleaved
/// (the first node of each zone, then the second, ...), so a client whose
/// first seeds sit in a dead zone reaches a live one within a stagger or two.
pub(crate) fn seed_list(map: &ClusterMap) -> Vec<String> {
    let most = map.zones.iter().map(|z| z.nodes.len()).max().unwrap_or(0);
    let mut out = Vec::new();
    for n in 0..most {
        for z in &map.zones {
            if let Some(node) = z.nodes.get(n) {
                if let Some(port) = node.ports.first() {
                    out.push(std::net::SocketAddr::new(node.host, *port).to_string());
                }
            }
        }
    }
    out
}

/// The map as a TOML file signed with the region's dev map-signing key
/// (`DIR/tls/map.key`): nodes take only signed maps.
pub(crate) fn signed_toml(dir: &Path, map: &ClusterMap) -> anyhow::Result<String> {
    let mut signed = tessera_wire::SignedMap::unsigned(map.clone())?;
    tessera_client::MapSigner::load(&dir.join("tls/map.key"))?.sign(&mut signed);
    Ok(signed.to_toml()?)
}

fn load_map(dir: &Path) -> anyhow::Result<ClusterMap> {
    let path = dir.join("map.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    Ok(ClusterMap::from_toml(&text)?)
}

/// Alive while any thread of the process is not yet a zombie. The leader
/// alone is not enough: after SIGKILL it turns zombie while other threads
/// (io_uring workers among them) are still exiting and still hold the
/// process's sockets, so a node restarted at that moment finds its ports
/// taken.
pub(crate) fn pid_alive(pid: i32) -> bool {
    let not_zombie = |stat: &str| {
        std::fs::read_to_string(stat)
            .map(|s| s.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()).is_some_and(|st| st != "Z"))
            .unwrap_or(false)
    };
    match std::fs::read_dir(format!("/proc/{pid}/task")) {
        Ok(tasks) => tasks.flatten().any(|t| not_zombie(&t.path().join("stat").to_string_lossy())),
        Err(_) => false,
    }
}

/// Is a node of the region in DIR running?
pub(crate) fn node_running(dir: &Path, node: &str) -> bool {
    read_pid(dir, node).is_some_and(pid_alive)
}

fn read_pid(dir: &Path, node: &str) -> Option<i32> {
    std::fs::read_to_string(node_dir(dir, node).join("pid")).ok()?.trim().parse().ok()
}

/// Start one node process (in its own process group, so a terminal's
/// Ctrl-C reaches only `tessera dev`, which stops the nodes cleanly;
/// logging to DIR/NODE/node.log). Started by a running `tessera dev`, the
/// node dies with it ([`crate::dev_proc`]). Does nothing if it is already
/// running.
pub(crate) fn start_node(dir: &Path, node: &str) -> anyhow::Result<()> {
    if read_pid(dir, node).is_some_and(pid_alive) {
        return Ok(());
    }
    let nd = node_dir(dir, node);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(nd.join("node.log"))?;
    let exe = std::env::current_exe().context("locate the tessera binary")?;
    use std::os::unix::process::CommandExt;
    let mut cmd = match netns_id(dir) {
        Some(id) => {
            let zi = zone_index(&load_map(dir)?, node)?;
            let prefix = crate::netns::exec_prefix(id, zi);
            let mut c = Command::new(&prefix[0]);
            c.args(&prefix[1..]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    cmd.args(["node", "--config"])
        .arg(nd.join("node.toml"))
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let pid = crate::dev_proc::spawn_node(cmd).with_context(|| format!("start node {node}"))?;
    std::fs::write(nd.join("pid"), pid.to_string())?;
    Ok(())
}

fn signal_node(dir: &Path, node: &str, sig: i32) -> bool {
    let Some(pid) = read_pid(dir, node) else { return false };
    if !pid_alive(pid) {
        return false;
    }
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with a pid we started and recorded; no memory involved.
    let rc = unsafe { libc::kill(pid, sig) };
    rc == 0
}

fn zone_nodes(map: &ClusterMap, zone: &str) -> anyhow::Result<Vec<String>> {
    let z = map.zones.iter().find(|z| z.name == zone).with_context(|| {
        format!("no zone {zone:?}; zones are {:?}", map.zones.iter().map(|z| &z.name).collect::<Vec<_>>())
    })?;
    Ok(z.nodes.iter().map(|n| n.name.clone()).collect())
}

/// SIGKILL a zone's nodes and wait until they are gone.
pub(crate) fn stop_zone(dir: &Path, zone: &str) -> anyhow::Result<()> {
    let map = load_map(dir)?;
    for node in zone_nodes(&map, zone)? {
        signal_node(dir, &node, libc::SIGKILL);
        let deadline = Instant::now() + Duration::from_secs(10);
        while read_pid(dir, &node).is_some_and(pid_alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        println!("zone {zone}: node {node} killed");
    }
    Ok(())
}

/// Start a node: by the `tessera dev` running DIR if there is one (the
/// node then dies with it), else from this process, detached.
fn start_or_ask(dir: &Path, node: &str) -> anyhow::Result<()> {
    if !crate::dev_proc::request_start(dir, node)? {
        start_node(dir, node)?;
    }
    Ok(())
}

/// Start a zone's nodes again.
pub(crate) fn start_zone(dir: &Path, zone: &str) -> anyhow::Result<()> {
    let map = load_map(dir)?;
    if let Some(id) = netns_id(dir) {
        crate::netns::setup(id, map.zones.len(), map.zones.iter().map(|z| z.nodes.len()).max().unwrap_or(0))?;
    }
    for node in zone_nodes(&map, zone)? {
        start_or_ask(dir, &node)?;
        println!("zone {zone}: node {node} started");
    }
    Ok(())
}

/// Stop every node: SIGTERM (clean checkpoint), SIGKILL after 10 s.
pub(crate) fn stop_all(dir: &Path, map: &ClusterMap) {
    let nodes: Vec<String> = map.zones.iter().flat_map(|z| z.nodes.iter().map(|n| n.name.clone())).collect();
    for n in &nodes {
        signal_node(dir, n, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in &nodes {
        while read_pid(dir, n).is_some_and(pid_alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        signal_node(dir, n, libc::SIGKILL);
    }
    // Wait out the SIGKILLed ones too: a node still exiting counts as
    // running, and `start-zone` right after would skip it (seen in CI: a
    // region whose first node never came back).
    let deadline = Instant::now() + Duration::from_secs(10);
    for n in &nodes {
        while read_pid(dir, n).is_some_and(pid_alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Wait until a client can connect and every target has the bucket.
pub(crate) async fn wait_ready(client_path: &Path) -> anyhow::Result<tessera_client::Client> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let c = tessera_client::Client::connect(tessera_client::ClientConfig::load(client_path)?).await?;
            c.create_bucket("demo", Default::default()).await?;
            Ok::<_, tessera_client::ClientError>(c)
        };
        match attempt.await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => bail!("region did not come up within 60 s: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// The zone and node subcommands, from any shell.
fn control(cmd: &DevCmd) -> anyhow::Result<()> {
    let netns = |dir: &Path| {
        netns_id(dir).with_context(|| format!("{} is not a --netns region; use stop-zone instead", dir.display()))
    };
    match cmd {
        DevCmd::StopZone { dir, zone } => stop_zone(dir, zone),
        DevCmd::StartZone { dir, zone } => start_zone(dir, zone),
        DevCmd::PartitionZone { dir, zone } => {
            let z = zone_index(&load_map(dir)?, zone)?;
            crate::netns::set_link(netns(dir)?, z, false)?;
            println!("zone {zone}: partitioned (link down)");
            Ok(())
        }
        DevCmd::HealZone { dir, zone } => {
            let id = netns(dir)?;
            let z = zone_index(&load_map(dir)?, zone)?;
            crate::netns::impair(id, z, 0, 0)?;
            crate::netns::set_link(id, z, true)?;
            println!("zone {zone}: healed");
            Ok(())
        }
        DevCmd::ImpairZone { dir, zone, loss, delay_ms } => {
            let z = zone_index(&load_map(dir)?, zone)?;
            crate::netns::impair(netns(dir)?, z, *loss, *delay_ms)?;
            println!("zone {zone}: {loss}% loss each way, {delay_ms} ms delay");
            Ok(())
        }
        DevCmd::KillNode { dir, node } => {
            zone_index(&load_map(dir)?, node)?;
            signal_node(dir, node, libc::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(10);
            while read_pid(dir, node).is_some_and(pid_alive) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            println!("node {node}: killed");
            Ok(())
        }
        DevCmd::StartNode { dir, node } => {
            zone_index(&load_map(dir)?, node)?;
            start_or_ask(dir, node)?;
            println!("node {node}: started");
            Ok(())
        }
        DevCmd::PauseNode { dir, node } => {
            anyhow::ensure!(signal_node(dir, node, libc::SIGSTOP), "node {node} is not running");
            println!("node {node}: paused");
            Ok(())
        }
        DevCmd::ResumeNode { dir, node } => {
            anyhow::ensure!(signal_node(dir, node, libc::SIGCONT), "node {node} is not running");
            println!("node {node}: resumed");
            Ok(())
        }
        DevCmd::CutLink { dir } => {
            std::fs::write(dir.join("link-cut"), b"cut\n")
                .with_context(|| format!("write {}/link-cut", dir.display()))?;
            println!("link between the regions in {}: cut", dir.display());
            Ok(())
        }
        DevCmd::HealLink { dir } => {
            match std::fs::remove_file(dir.join("link-cut")) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e).with_context(|| format!("remove {}/link-cut", dir.display())),
            }
            println!("link between the regions in {}: healed", dir.display());
            Ok(())
        }
        DevCmd::Down { dir } => {
            let map = load_map(dir)?;
            for z in &map.zones {
                for n in &z.nodes {
                    signal_node(dir, &n.name, libc::SIGCONT);
                }
            }
            stop_all(dir, &map);
            if let Some(id) = netns_id(dir) {
                crate::netns::teardown(id, map.zones.len());
            }
            println!("region in {} stopped", dir.display());
            Ok(())
        }
    }
}

/// SIGINT and SIGTERM, registered before anything starts, so that an
/// interrupt at any stage (even during start-up) stops the nodes cleanly.
pub(crate) struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    pub(crate) fn new() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals { int: signal(SignalKind::interrupt())?, term: signal(SignalKind::terminate())? })
    }

    /// Resolves at the next SIGINT or SIGTERM.
    pub(crate) async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {},
            _ = self.term.recv() => {},
        }
    }
}

/// Wait for the region's client to work, failing at once if a node dies
/// (a port taken after the check, a bad config) instead of waiting out the
/// 60 s start-up deadline.
pub(crate) async fn wait_up(dir: &Path, map: &ClusterMap) -> anyhow::Result<tessera_client::Client> {
    let client_path = dir.join("client.toml");
    let watch = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if let Some(why) = crate::dev_proc::dead_node(dir, map) {
                return why;
            }
        }
    };
    tokio::select! {
        c = wait_ready(&client_path) => c,
        why = watch => bail!("{why}"),
    }
}

pub(crate) async fn run(args: DevArgs) -> anyhow::Result<()> {
    if let Some(cmd) = &args.cmd {
        return control(cmd);
    }
    let mut signals = Signals::new()?;
    let Some(dir) = args.dir.clone() else { bail!("tessera dev needs --dir DIR") };
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    if let Some(pid) = crate::dev_proc::supervisor(&dir) {
        bail!("a tessera dev (pid {pid}) is already running the region in {}", dir.display());
    }
    crate::dev_proc::become_supervisor();
    if args.regions > 1 {
        return crate::dev_regions::run(&args, &dir, args.regions, &mut signals).await;
    }
    let map = if dir.join("map.toml").exists() {
        let map = load_map(&dir)?;
        if netns_id(&dir).is_none() {
            crate::dev_proc::check_free(&crate::dev_proc::region_needs(&dir, &map))?;
        }
        println!("tessera dev: restarting the region in {}", dir.display());
        map
    } else {
        create_region(&dir, &args, "dev", 0)?
    };
    crate::dev_proc::claim(&dir)?;
    crate::dev_proc::serve_requests(vec![dir.clone()]);
    if let Some(id) = netns_id(&dir) {
        crate::netns::setup(id, map.zones.len(), map.zones.iter().map(|z| z.nodes.len()).max().unwrap_or(0))?;
    }
    let stop = |dir: &Path, map: &ClusterMap| {
        stop_all(dir, map);
        if let Some(id) = netns_id(dir) {
            crate::netns::teardown(id, map.zones.len());
        }
        crate::dev_proc::release(dir);
    };
    let client_path = dir.join("client.toml");
    let startup = async {
        for z in &map.zones {
            for n in &z.nodes {
                start_node(&dir, &n.name)?;
            }
        }
        let client = wait_up(&dir, &map).await?;
        println!("tessera dev: region {:?} up, map epoch {}", map.region, map.epoch);
        for z in &map.zones {
            for n in &z.nodes {
                let ports: Vec<String> = n.ports.iter().map(|p| p.to_string()).collect();
                println!(
                    "  {} {}: quic {}:{{{}}}  log {}",
                    z.name,
                    n.name,
                    n.host,
                    ports.join(","),
                    dir.join(&n.name).join("node.log").display()
                );
            }
        }
        println!(
            "  profiles: standard {}+{}, infrequent_access {}+{}",
            map.classes.standard.data,
            map.classes.standard.parity,
            map.classes.infrequent_access.data,
            map.classes.infrequent_access.parity
        );
        if !args.no_demo {
            demo(&client).await.context("demo")?;
        }
        anyhow::Ok(())
    };
    let result = tokio::select! {
        r = startup => r,
        () = signals.recv() => Err(anyhow::anyhow!("interrupted during start-up; the region is stopped")),
    };
    if let Err(e) = result {
        stop(&dir, &map);
        return Err(e);
    }
    let zone = map.zones.first().map(|z| z.name.clone()).unwrap_or_default();
    println!("\nTry it (in another shell):");
    println!("  export TESSERA_CONFIG={}", client_path.display());
    println!("  tessera mb photos && tessera put ./some-file photos/some-file && tessera ls photos");
    println!("  tessera dev stop-zone --dir {} {zone}     # power-cut a zone; reads go on", dir.display());
    println!("  tessera get photos/some-file ./copy");
    println!("  tessera dev start-zone --dir {} {zone}", dir.display());
    println!(
        "  tessera --config {} repair status    # operator commands act as the admin (client.toml is a user)",
        dir.join("admin.toml").display()
    );
    if args.exit_after_demo {
        stop(&dir, &map);
        println!("stopped");
        return Ok(());
    }
    println!("\nCtrl-C stops the region.");
    signals.recv().await;
    println!("stopping…");
    stop(&dir, &map);
    println!("stopped cleanly");
    Ok(())
}

async fn demo(client: &tessera_client::Client) -> anyhow::Result<()> {
    let text = b"Hello from Tessera: erasure-coded over three zones, checksummed end to end.\n".to_vec();
    let r = client.put("demo", "hello.txt", text.clone()).await?;
    println!(
        "\ndemo: put demo/hello.txt: version {}, {} bytes, committed on {} of {} targets in zones {:?} (map epoch {}; \
         the ack waits for enough shards to survive losing any zone, the rest follow)",
        r.version,
        r.size_bytes,
        r.targets.len(),
        {
            let p = client.view().map.classes.standard;
            usize::from(p.data) + usize::from(p.parity)
        },
        r.zones,
        r.map_epoch
    );
    let big: Vec<u8> = (0..10 * 1_048_576u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let t = Instant::now();
    let r = client.put("demo", "big.bin", big.clone()).await?;
    let p = client.view().map.classes.standard;
    println!(
        "demo: put demo/big.bin: 10 MiB in {:.0} ms as {}+{} stripes, committed in zones {:?}",
        t.elapsed().as_secs_f64() * 1e3,
        p.data,
        p.parity,
        r.zones
    );
    let back = client.get("demo", "hello.txt", Default::default()).await?.bytes().await?;
    anyhow::ensure!(back == text, "demo object read back differently");
    let back = client.get("demo", "big.bin", Default::default()).await?.bytes().await?;
    anyhow::ensure!(back == big, "demo big object read back differently");
    println!("demo: both read back byte-identical");
    Ok(())
}
