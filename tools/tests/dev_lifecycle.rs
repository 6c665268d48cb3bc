//! `tessera dev` as a new user meets it: a fresh CLI process reaches the
//! region while any one zone is down without waiting on the dead zone's
//! seeds; a second `tessera dev` on taken ports refuses at once and leaves
//! the first alone; the nodes die with `tessera dev` however it dies (an
//! interrupt during start-up, SIGKILL). One region serves the whole file.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{content, port_base, tessera};

/// A long-running `tessera dev`, started as a user would, killed at drop.
struct Dev {
    dir: PathBuf,
    child: Child,
}

impl Dev {
    fn start(name: &str, port: u16) -> Dev {
        let dir = std::env::temp_dir().join(format!("tessera-devlife-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut child = dev_command(&dir, port).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            assert!(Instant::now() < deadline, "tessera dev did not start within 90 s");
            let line = lines.next().expect("tessera dev exited during start-up").unwrap();
            if line.contains("Ctrl-C") {
                break;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Dev { dir, child }
    }

    fn cli(&self, args: &[&str]) -> Output {
        tessera().arg("--config").arg(self.dir.join("client.toml")).args(args).output().unwrap()
    }

    fn node_pids(&self) -> Vec<i32> {
        node_pids(&self.dir)
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = tessera().args(["dev", "down", "--dir"]).arg(&self.dir).output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn dev_command(dir: &Path, port: u16) -> Command {
    let mut c = tessera();
    c.args(["dev", "--no-demo", "--target-mib", "256", "--dir"]).arg(dir).args([
        "--base-port",
        &port.to_string(),
        "--metrics-port",
        &(port + 5).to_string(),
    ]);
    c
}

fn node_pids(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("pid")).ok())
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

/// Alive and not a zombie (any thread).
fn alive(pid: i32) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/task")).is_ok_and(|tasks| {
        tasks.flatten().any(|t| {
            std::fs::read_to_string(t.path().join("stat"))
                .is_ok_and(|s| s.rsplit(')').next().and_then(|r| r.split_whitespace().next()) != Some("Z"))
        })
    })
}

/// Wait (bounded) until none of `pids` is alive; the ones still alive.
fn survivors(pids: &[i32], within: Duration) -> Vec<i32> {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<i32> = pids.iter().copied().filter(|&p| alive(p)).collect();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// Seeds in the stopped zone must never have been waited on until their
/// handshake timed out: the report says "not waited for" or "not tried"
/// for them (or a failure that was not a handshake timeout).
fn assert_dead_seeds_not_waited_on(report: &str, zone_prefix: &str) {
    let seeds: Vec<&str> = report.lines().filter(|l| l.trim_start().starts_with("seed ")).collect();
    assert!(!seeds.is_empty(), "no connect report in: {report}");
    assert!(report.contains("answered in"), "no seed answered: {report}");
    for line in seeds.iter().filter(|l| l.contains(zone_prefix)) {
        assert!(!line.contains("no handshake within"), "a dead seed was waited on: {line}\n{report}");
    }
}

#[test]
fn a_fresh_cli_reaches_the_region_with_any_zone_down_and_dev_processes_die_with_it() {
    let port = port_base(0);
    let dev = Dev::start("main", port);
    let cfg = std::fs::read_to_string(dev.dir.join("client.toml")).unwrap();
    for z in 1..=3 {
        assert!(cfg.contains(&format!("\"127.0.{z}.1:{port}\"")), "client.toml lacks a seed in zone z{z}: {cfg}");
    }
    assert!(dev.cli(&["mb", "zones"]).status.success());
    let mut made = vec!["demo".to_string(), "zones".to_string()]; // demo: made by the demo
    let file = dev.dir.join("obj.bin");

    // For each zone in turn: stop it, then fresh CLI processes put, get,
    // ls and stat; none waits on the dead zone's seeds.
    for zone in ["z1", "z2", "z3"] {
        let out = tessera().args(["dev", "stop-zone", "--dir"]).arg(&dev.dir).arg(zone).output().unwrap();
        assert!(out.status.success(), "stop-zone {zone}: {}", text(&out));
        let dead_prefix = format!("127.0.{}.", &zone[1..]);
        let key = format!("zones/{zone}-down.bin");
        let body = content(&key, 300_000);
        std::fs::write(&file, &body).unwrap();
        let put = dev.cli(&["-v", "put", file.to_str().unwrap(), &key]);
        assert!(put.status.success(), "put with {zone} down: {}", text(&put));
        assert_dead_seeds_not_waited_on(&String::from_utf8_lossy(&put.stderr), &dead_prefix);
        let back = dev.dir.join("back.bin");
        let get = dev.cli(&["-v", "get", &key, back.to_str().unwrap()]);
        assert!(get.status.success(), "get with {zone} down: {}", text(&get));
        assert!(std::fs::read(&back).unwrap() == body, "{key}: bytes differ");
        assert_dead_seeds_not_waited_on(&String::from_utf8_lossy(&get.stderr), &dead_prefix);
        let ls = dev.cli(&["-v", "ls", "zones"]);
        assert!(ls.status.success(), "ls with {zone} down: {}", text(&ls));
        assert!(String::from_utf8_lossy(&ls.stdout).contains(&format!("{zone}-down.bin")), "{}", text(&ls));
        let stat = dev.cli(&["-v", "stat", &key]);
        assert!(stat.status.success(), "stat with {zone} down: {}", text(&stat));
        assert!(String::from_utf8_lossy(&stat.stdout).contains("300000"), "{}", text(&stat));
        // A bucket made while the zone is down (repair owes it the rest).
        let mb = dev.cli(&["mb", &format!("made-without-{zone}")]);
        assert!(mb.status.success(), "mb with {zone} down: {}", text(&mb));
        // The bucket list is whole with a zone down: every bucket made so
        // far, including those made while another zone was down.
        let ls = dev.cli(&["-v", "ls", "--json"]);
        assert!(ls.status.success(), "ls (buckets) with {zone} down: {}", text(&ls));
        assert_dead_seeds_not_waited_on(&String::from_utf8_lossy(&ls.stderr), &dead_prefix);
        let names: Vec<String> = String::from_utf8_lossy(&ls.stdout)
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["bucket"].as_str().unwrap().to_owned())
            .collect();
        made.push(format!("made-without-{zone}"));
        let mut want = made.clone();
        want.sort();
        assert_eq!(names, want, "bucket list with {zone} down");
        let out = tessera().args(["dev", "start-zone", "--dir"]).arg(&dev.dir).arg(zone).output().unwrap();
        assert!(out.status.success(), "start-zone {zone}: {}", text(&out));
    }

    // ls for people and for scripts: a header, human sizes, local times, and
    // a key with terminal escapes and a carriage return printed escaped
    // (raw only inside --json).
    let evil = "zones/evil\x1b[2J\rname";
    assert!(dev.cli(&["put", file.to_str().unwrap(), evil]).status.success());
    let ls = dev.cli(&["ls", "zones"]);
    let out = String::from_utf8_lossy(&ls.stdout).into_owned();
    assert!(ls.status.success(), "{}", text(&ls));
    let header = out.lines().next().unwrap_or_default();
    assert!(header.starts_with("MODIFIED (") && header.contains("SIZE") && header.ends_with("KEY"), "{out}");
    assert!(out.lines().any(|l| l.contains("293.0 KiB") && l.ends_with(" z1-down.bin")), "{out}");
    assert!(out.contains(" evil\\u{1b}[2J\\rname") && !out.contains('\x1b') && !out.contains('\r'), "{out:?}");
    let st = dev.cli(&["stat", evil]);
    let st = String::from_utf8_lossy(&st.stdout).into_owned();
    assert!(st.contains("key:           evil\\u{1b}[2J\\rname") && !st.contains('\x1b'), "{st:?}");
    // Names S3 tools could not address are refused when a bucket is made;
    // a range past 2^64 bytes is a usage error, not an empty file.
    for (name, why) in [("a..b", "adjacent dots"), ("192.168.1.1", "IP address"), ("xn--abc", "xn--")] {
        let mb = dev.cli(&["mb", name]);
        assert!(!mb.status.success() && text(&mb).contains(why), "mb {name}: {}", text(&mb));
    }
    let out = dev.dir.join("range.bin");
    let get = dev.cli(&["get", "--range", &format!("0-{}", u64::MAX), "zones/z1-down.bin", out.to_str().unwrap()]);
    assert_eq!(get.status.code(), Some(2), "{}", text(&get));
    assert!(text(&get).contains("more than any object") && !out.exists(), "{}", text(&get));
    let json = dev.cli(&["ls", "--json", "zones"]);
    let rows: Vec<serde_json::Value> =
        String::from_utf8_lossy(&json.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(rows.iter().any(|r| r["key"] == "evil\x1b[2J\rname" && r["size"] == 300_000), "{rows:?}");
    let stat = String::from_utf8_lossy(&dev.cli(&["stat", "zones/z2-down.bin"]).stdout).into_owned();
    let version = stat.lines().find_map(|l| l.strip_prefix("version:")).unwrap().trim().to_owned();
    let long = String::from_utf8_lossy(&dev.cli(&["ls", "--long", "zones"]).stdout).into_owned();
    assert!(
        long.lines().any(|l| l.contains(" 300000 ") && l.contains(&version) && l.ends_with(" z2-down.bin")),
        "{long}"
    );
    let buckets = String::from_utf8_lossy(&dev.cli(&["ls"]).stdout).into_owned();
    assert!(buckets.lines().next().unwrap_or_default().ends_with("BUCKET"), "{buckets}");
    assert!(buckets.lines().any(|l| l.ends_with(" zones")), "{buckets}");

    // A second `tessera dev` on the same ports refuses at once, naming the
    // port and the flags that move it; the first region is untouched.
    let other = std::env::temp_dir().join(format!("tessera-devlife-second-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&other);
    let mut second = dev_command(&other, port).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = second.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            panic!("the second tessera dev did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = second.wait_with_output().unwrap();
    assert!(!status.success(), "the second tessera dev succeeded: {}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!(":{port} is not available")), "{err}");
    assert!(err.contains("--base-port") && err.contains("--metrics-port"), "{err}");
    assert!(err.contains("held by pid"), "the holder is not named: {err}");
    assert!(node_pids(&other).is_empty(), "the second tessera dev started nodes");
    let _ = std::fs::remove_dir_all(&other);
    let get = dev.cli(&["get", "zones/z1-down.bin", dev.dir.join("again.bin").to_str().unwrap()]);
    assert!(get.status.success(), "the first region after the refused start: {}", text(&get));

    // SIGKILL `tessera dev`: none of its nodes may outlive it, including
    // those `start-zone` started from another shell.
    let pids = dev.node_pids();
    assert_eq!(pids.len(), 6, "{pids:?}");
    assert!(pids.iter().all(|&p| alive(p)), "{pids:?}");
    // SAFETY-free: kill through the Child handle.
    let mut dev = dev;
    dev.child.kill().unwrap();
    dev.child.wait().unwrap();
    let left = survivors(&pids, Duration::from_secs(10));
    assert!(left.is_empty(), "nodes outlived a SIGKILLed tessera dev: {left:?}");
}

/// Ctrl-C while the region is still starting stops it: nothing is left.
#[test]
fn an_interrupt_during_start_up_leaves_no_node_behind() {
    let port = port_base(20);
    let dir = std::env::temp_dir().join(format!("tessera-devlife-int-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut child = dev_command(&dir, port).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    // Interrupt as soon as the first node has been started.
    let deadline = Instant::now() + Duration::from_secs(30);
    while node_pids(&dir).is_empty() {
        assert!(Instant::now() < deadline, "no node started within 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = node_pids(&dir);
    let out = Command::new("kill").args(["-INT", &child.id().to_string()]).output().unwrap();
    assert!(out.status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "tessera dev ignored the interrupt");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    let all = node_pids(&dir);
    let left = survivors(&all, Duration::from_secs(15));
    assert!(left.is_empty(), "nodes left after the interrupt: {left:?} (started {started:?}); {err}");
    assert!(err.contains("interrupted") || err.is_empty(), "{err}");
    let _ = tessera().args(["dev", "down", "--dir"]).arg(&dir).output();
    let _ = std::fs::remove_dir_all(&dir);
}
