//! The processes of `tessera dev`: nodes that die with it however it dies,
//! ports checked before anything starts, and node starts asked for from
//! another shell carried out by the running `tessera dev` (so those nodes
//! die with it too).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// A start request for the spawner thread: the command, and where to send
/// the child's pid (or the error).
type SpawnRequest = (Command, mpsc::Sender<std::io::Result<u32>>);

/// Set in the long-running `tessera dev` process: every node it starts is
/// forked by this one thread, which lives as long as the process.
/// PR_SET_PDEATHSIG fires when the *thread* that forked a child exits, so
/// children of short-lived runtime threads would die early.
static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();

/// Make this process the parent that its nodes die with.
pub(crate) fn become_supervisor() {
    SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::Builder::new()
            .name("dev-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let r = spawn_dying_with_us(&mut cmd).map(|child| {
                        let pid = child.id();
                        // Reap it so it never lingers as a zombie.
                        std::thread::spawn(move || {
                            let mut child = child;
                            let _ = child.wait();
                        });
                        pid
                    });
                    let _ = reply.send(r);
                }
            })
            .ok();
        tx
    });
}

fn spawn_dying_with_us(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    #[allow(unsafe_code)]
    let parent = unsafe { libc::getpid() };
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec and calls
    // only async-signal-safe functions (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The parent died between fork and prctl: nobody would kill us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Start `cmd`: from the supervising `tessera dev`, as a child that dies
/// with it; from any other process, detached. Returns the pid.
pub(crate) fn spawn_node(mut cmd: Command) -> anyhow::Result<u32> {
    if let Some(tx) = SPAWNER.get() {
        let (rtx, rrx) = mpsc::channel();
        tx.send((cmd, rtx)).map_err(|_| anyhow::anyhow!("node spawner thread is gone"))?;
        return Ok(rrx.recv().context("node spawner thread is gone")??);
    }
    let child = cmd.spawn()?;
    let pid = child.id();
    std::thread::spawn(move || {
        let mut child = child;
        let _ = child.wait();
    });
    Ok(pid)
}

/// The file holding the pid of the `tessera dev` that runs DIR.
fn supervisor_pid_file(dir: &Path) -> PathBuf {
    dir.join("dev.pid")
}

fn requests_dir(dir: &Path) -> PathBuf {
    dir.join("requests")
}

/// Record that this process runs DIR's nodes.
pub(crate) fn claim(dir: &Path) -> anyhow::Result<()> {
    std::fs::write(supervisor_pid_file(dir), std::process::id().to_string())
        .with_context(|| format!("write {}", supervisor_pid_file(dir).display()))?;
    let _ = std::fs::remove_dir_all(requests_dir(dir));
    Ok(())
}

/// Forget the claim (clean stop).
pub(crate) fn release(dir: &Path) {
    let _ = std::fs::remove_file(supervisor_pid_file(dir));
}

/// The pid of a live `tessera dev` running DIR, other than this process.
pub(crate) fn supervisor(dir: &Path) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(supervisor_pid_file(dir)).ok()?.trim().parse().ok()?;
    (pid as u32 != std::process::id() && crate::dev::pid_alive(pid)).then_some(pid)
}

/// Ask the running `tessera dev` of DIR to start `node` (so it dies with
/// it); false when there is none.
pub(crate) fn request_start(dir: &Path, node: &str) -> anyhow::Result<bool> {
    if supervisor(dir).is_none() {
        return Ok(false);
    }
    let req = requests_dir(dir);
    std::fs::create_dir_all(&req).with_context(|| format!("create {}", req.display()))?;
    let file = req.join(format!("start-{node}"));
    std::fs::write(&file, b"start\n").with_context(|| format!("write {}", file.display()))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while file.exists() {
        if Instant::now() > deadline {
            let _ = std::fs::remove_file(&file);
            bail!("the tessera dev running {} did not start {node} within 10 s", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let err = req.join(format!("error-{node}"));
    if let Ok(e) = std::fs::read_to_string(&err) {
        let _ = std::fs::remove_file(&err);
        bail!("start {node}: {}", e.trim());
    }
    Ok(true)
}

/// Carry out start requests from other shells for the regions in `dirs`
/// (runs in the supervising `tessera dev` until it exits).
pub(crate) fn serve_requests(dirs: Vec<PathBuf>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            for dir in &dirs {
                let Ok(entries) = std::fs::read_dir(requests_dir(dir)) else { continue };
                for e in entries.flatten() {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let Some(node) = name.strip_prefix("start-") else { continue };
                    if let Err(err) = crate::dev::start_node(dir, node) {
                        let _ = std::fs::write(requests_dir(dir).join(format!("error-{node}")), format!("{err:#}"));
                    }
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    });
}

/// A socket a region needs.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Need {
    /// A QUIC (UDP) port.
    Udp(SocketAddr),
    /// An HTTP (TCP) listener.
    Tcp(SocketAddr),
}

/// Bind every address the region needs, for a moment, before anything
/// starts: a taken port is refused with one line naming it, its holder if
/// this process may see it, and the flags that move the region.
pub(crate) fn check_free(needs: &[Need]) -> anyhow::Result<()> {
    for need in needs {
        let (proto, addr, r) = match *need {
            Need::Udp(a) => ("UDP", a, std::net::UdpSocket::bind(a).map(drop)),
            Need::Tcp(a) => ("TCP", a, std::net::TcpListener::bind(a).map(drop)),
        };
        if let Err(e) = r {
            let holder = match holder_of(proto, addr) {
                Some(h) => format!(" (held by {h})"),
                None => String::new(),
            };
            bail!(
                "{proto} {addr} is not available: {e}{holder}; is another region running? Stop it (tessera dev down \
                 --dir ITS_DIR), or move this one with --base-port and --metrics-port"
            );
        }
    }
    Ok(())
}

/// "pid N (command line)" of the process holding a socket, read from
/// /proc (only processes this user may inspect).
fn holder_of(proto: &str, addr: SocketAddr) -> Option<String> {
    let table = match proto {
        "UDP" => "/proc/net/udp",
        _ => "/proc/net/tcp",
    };
    let std::net::IpAddr::V4(ip) = addr.ip() else { return None };
    let want_ip = format!("{:08X}", u32::from_le_bytes(ip.octets()));
    let any_ip = "00000000";
    let want_port = format!("{:04X}", addr.port());
    let text = std::fs::read_to_string(table).ok()?;
    let inode = text.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let (ip, port) = cols.get(1)?.split_once(':')?;
        let listening = proto == "UDP" || cols.get(3) == Some(&"0A");
        (port == want_port && (ip == want_ip || ip == any_ip) && listening)
            .then(|| cols.get(9).map(|s| s.to_string()))?
    })?;
    let needle = format!("socket:[{inode}]");
    for p in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = p.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        if fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == needle)) {
            let cmd = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmd: Vec<String> =
                cmd.split(|&b| b == 0).filter(|s| !s.is_empty()).map(|s| String::from_utf8_lossy(s).into()).collect();
            return Some(format!("pid {pid}: {}", cmd.join(" ")));
        }
    }
    None
}

/// Sockets the nodes of a region need: each core's QUIC port and the
/// metrics listener (from each node's config).
pub(crate) fn region_needs(dir: &Path, map: &tessera_wire::ClusterMap) -> Vec<Need> {
    let mut out = Vec::new();
    for n in map.zones.iter().flat_map(|z| z.nodes.iter()) {
        for &p in &n.ports {
            out.push(Need::Udp(SocketAddr::new(n.host, p)));
        }
        let toml = std::fs::read_to_string(dir.join(&n.name).join("node.toml")).unwrap_or_default();
        let metrics = toml.lines().find_map(|l| {
            let v = l.strip_prefix("metrics_addr")?.trim_start().strip_prefix('=')?.trim().trim_matches('"');
            v.parse::<SocketAddr>().ok()
        });
        if let Some(m) = metrics {
            out.push(Need::Tcp(m));
        }
    }
    out
}

/// The first node of a region that has exited, with the last line of its
/// log (why it died).
pub(crate) fn dead_node(dir: &Path, map: &tessera_wire::ClusterMap) -> Option<String> {
    for n in map.zones.iter().flat_map(|z| z.nodes.iter()) {
        if !crate::dev::node_running(dir, &n.name) {
            let log = std::fs::read_to_string(dir.join(&n.name).join("node.log")).unwrap_or_default();
            let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("(empty log)");
            return Some(format!("node {} exited during start-up; its log ends: {}", n.name, last.trim()));
        }
    }
    None
}
