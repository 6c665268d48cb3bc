//! Cross-region replication, end to end: two regions started with
//! `tessera dev --regions 2` exactly as a user would (every node its own
//! process; the link between the regions a relay in the `tessera dev`
//! process, 25 ms each way: this machine's kernel has no sch_netem), rules
//! added with `tessera crr add`, load from the SDK, faults with `tessera
//! dev cut-link | kill-node | stop-zone`. Each test ends by comparing both
//! buckets version by version: ids, checksums, sizes, metadata, origin.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{content, seed, tessera, Rng};
use tessera_client::{BucketOptions, Client, ClientConfig, ClientError, PutOptions, VersionId};

/// Two regions run by one `tessera dev --regions 2` process.
struct Regions {
    dir: PathBuf,
    child: Child,
}

fn ports() -> u16 {
    41_000 + (std::process::id() % 90) as u16 * 250
}

impl Regions {
    fn start(name: &str) -> Regions {
        let dir = std::env::temp_dir().join(format!("tessera-crr-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let base = ports();
        let mut child = tessera()
            .args(["dev", "--regions", "2", "--no-demo", "--nodes", "2", "--cores", "1", "--target-mib", "256"])
            .args(["--link-delay-ms", "25", "--repair-interval-ms", "2000", "--dir"])
            .arg(&dir)
            .args(["--base-port", &base.to_string(), "--metrics-port", &(base + 50).to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut seen = String::new();
        loop {
            assert!(Instant::now() < deadline, "regions did not come up: {seen}");
            match lines.next() {
                Some(Ok(l)) => {
                    let done = l.contains("Ctrl-C stops");
                    seen.push_str(&l);
                    seen.push('\n');
                    if done {
                        break;
                    }
                }
                _ => panic!("tessera dev --regions exited: {seen}"),
            }
        }
        // Keep draining its output so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Regions { dir, child }
    }

    fn region(&self, r: &str) -> PathBuf {
        self.dir.join(r)
    }

    async fn client(&self, r: &str) -> Client {
        Client::connect(ClientConfig::load(&self.region(r).join("client.toml")).unwrap()).await.unwrap()
    }

    /// Run `tessera --config DIR/R/client.toml ARGS` and require success.
    fn cli(&self, r: &str, args: &[&str]) -> String {
        self.cli_as(r, "client.toml", args)
    }

    /// Run an operator command as region `r`'s admin.
    fn admin_cli(&self, r: &str, args: &[&str]) -> String {
        self.cli_as(r, "admin.toml", args)
    }

    fn cli_as(&self, r: &str, config: &str, args: &[&str]) -> String {
        let out = tessera().arg("--config").arg(self.region(r).join(config)).args(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "tessera {args:?}: {text}");
        text
    }

    fn dev(&self, what: &str, dir: &Path, args: &[&str]) {
        let out = tessera().args(["dev", what, "--dir"]).arg(dir).args(args).output().unwrap();
        assert!(out.status.success(), "tessera dev {what}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        for r in ["r1", "r2"] {
            let _ = tessera().args(["dev", "down", "--dir"]).arg(self.region(r)).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn bucket(c: &Client, name: &str, versioned: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match c.create_bucket(name, BucketOptions { versioned, ..Default::default() }).await {
            Ok(_) => return,
            Err(e) if Instant::now() > deadline => panic!("create bucket {name}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Everything a replica must match, per version.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Copy {
    size: u64,
    crc: u32,
    marker: bool,
    created_ms: u64,
    owner: String,
    user_meta: Vec<(String, String)>,
    content_type: Option<String>,
    acl: tessera_wire::Acl,
}

/// Every committed version of a bucket, with its metadata and origin.
async fn snapshot(c: &Client, bucket: &str) -> BTreeMap<(String, VersionId), (Copy, Option<String>)> {
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = c.list_versions(bucket, "", after.clone(), 1_000).await.unwrap();
        for e in &page.entries {
            let meta = match c.version_held(bucket, &e.key, e.version).await.unwrap() {
                tessera_client::VersionHeld::Committed(m) => m,
                // Purged between the listing and this look (replication
                // is running): not part of the snapshot.
                _ => continue,
            };
            let copy = Copy {
                size: meta.size_bytes,
                crc: meta.content_crc32c,
                marker: meta.delete_marker,
                created_ms: meta.created_ms,
                owner: meta.owner.clone(),
                user_meta: meta.user_meta.clone(),
                content_type: meta.content_type.clone(),
                acl: meta.acl,
            };
            out.insert((e.key.clone(), e.version), (copy, meta.origin.clone()));
        }
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}

/// Wait until `dst` holds exactly `src`'s versions with equal metadata;
/// every copy made in `src` must say it came from `origin` in `dst`.
async fn converge(src: &Client, dst: &Client, bucket: &str, origin: &str, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    loop {
        let (a, b) = (snapshot(src, bucket).await, snapshot(dst, bucket).await);
        let same = a.len() == b.len()
            && a.iter().all(|(k, (copy, from))| {
                b.get(k).is_some_and(|(c2, o2)| c2 == copy && o2.as_deref() == from.as_deref().or(Some(origin)))
            });
        if same {
            return a.len();
        }
        if Instant::now() > deadline {
            let missing: Vec<_> = a.keys().filter(|k| !b.contains_key(*k)).take(5).collect();
            let extra: Vec<_> = b.keys().filter(|k| !a.contains_key(*k)).take(5).collect();
            let differ: Vec<_> =
                a.iter().filter(|(k, v)| b.get(*k).is_some_and(|w| w.0 != v.0)).map(|(k, _)| k).take(5).collect();
            panic!(
                "{bucket}: no convergence within {limit:?}: {} vs {} versions; missing {missing:?}, extra {extra:?}, \
                 differ {differ:?}",
                a.len(),
                b.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Bounded random load on `c`: puts (some multi-stripe), overwrites,
/// deletes (markers), deletes of versions. Returns the operations done.
async fn load(c: &Client, bucket: &str, seed: u64, tag: &str, ops: usize, limit: Duration) -> usize {
    let mut rng = Rng(seed);
    let end = Instant::now() + limit;
    let mut written: Vec<(String, VersionId)> = Vec::new();
    let mut done = 0;
    while done < ops && Instant::now() < end {
        let key = format!("k{}", rng.below(40));
        match rng.below(10) {
            0..=5 => {
                let len = match rng.below(20) {
                    0 => 1_500_000 + rng.below(1_000_000) as usize,
                    1 => 0,
                    _ => rng.below(200_000) as usize,
                };
                let opts = PutOptions {
                    content_type: Some("application/test".into()),
                    user_meta: vec![("tag".into(), tag.into()), ("n".into(), done.to_string())],
                    acl: if rng.below(3) == 0 { tessera_wire::Acl::PublicRead } else { tessera_wire::Acl::Private },
                    ..Default::default()
                };
                let r = c.put_with(bucket, &key, content(&format!("{tag}{done}"), len), opts).await.unwrap();
                written.push((key, r.version));
            }
            6 | 7 => {
                c.delete(bucket, &key).await.unwrap();
            }
            _ => {
                if !written.is_empty() {
                    let (k, v) = written.swap_remove(rng.below(written.len() as u64) as usize);
                    match c.delete_version(bucket, &k, v).await {
                        Ok(()) | Err(ClientError::NoSuchKey { .. }) => {}
                        Err(e) => panic!("delete_version: {e}"),
                    }
                }
            }
        }
        done += 1;
    }
    done
}

fn add_rule(r: &Regions, from: &str, id: &str, bucket: &str, to: &str, extra: &[&str]) {
    let mut args = vec!["crr", "add", "--id", id, "--bucket", bucket, "--dest-region", to, "--dest-bucket", bucket];
    args.extend_from_slice(extra);
    let out = r.admin_cli(from, &args);
    assert!(out.contains("installed on every node"), "{out}");
    let out = r.admin_cli(to, &["crr", "allow", "--from", from, "--bucket", bucket]);
    assert!(out.contains("installed on every node"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_replicates_every_change_exactly() {
    let seed = seed("steady");
    let r = Regions::start("steady");
    let (c1, c2) = (r.client("r1").await, r.client("r2").await);
    for (b, versioned) in [("vers", true), ("plain", false)] {
        bucket(&c1, b, versioned).await;
        bucket(&c2, b, versioned).await;
        add_rule(&r, "r1", &format!("{b}-dr"), b, "r2", &[]);
    }
    let ls = r.cli("r1", &["crr", "ls"]);
    assert!(ls.contains("vers-dr") && ls.contains("plain-dr"), "{ls}");
    let file = r.dir.join("probe.txt");
    std::fs::write(&file, b"acl and origin travel").unwrap();
    r.cli("r1", &["put", "--acl", "public-read", "--content-type", "text/plain", file.to_str().unwrap(), "vers/probe"]);
    r.cli("r1", &["put", file.to_str().unwrap(), "vers/private-probe"]);
    let (a, b) = tokio::join!(
        load(&c1, "vers", seed, "v", 400, Duration::from_secs(20)),
        load(&c1, "plain", seed ^ 7, "p", 400, Duration::from_secs(20))
    );
    println!("steady: {a} + {b} operations");
    let n = converge(&c1, &c2, "vers", "r1", Duration::from_secs(90)).await;
    let m = converge(&c1, &c2, "plain", "r1", Duration::from_secs(90)).await;
    println!("steady: {n} versioned and {m} unversioned versions identical in r2");
    let status = r.admin_cli("r1", &["crr", "status"]);
    println!("{status}");
    assert!(status.contains("vers-dr") && !status.contains("last error"), "{status}");
    let stat = r.cli("r2", &["stat", "vers/probe"]);
    assert!(
        stat.contains("acl:           public-read")
            && stat.contains("origin:        r1")
            && stat.contains("text/plain"),
        "{stat}"
    );
    // Owner and ACL are enforced at the destination: another user of r2
    // reads the public-read replica and is refused the private one.
    let tls2 = r.region("r2").join("tls");
    let (bc, bk) = (tls2.join("bob.pem"), tls2.join("bob.key"));
    let bob = tessera_wire::Principal::new(tessera_wire::Role::User, "bob").unwrap();
    tessera_node::tls::issue_dev_identity(&tls2, &bob, &bc, &bk).unwrap();
    let bob2 = Client::connect(ClientConfig::load(&r.region("r2").join("client.toml")).unwrap().with_identity(bc, bk))
        .await
        .unwrap();
    let public = bob2.get("vers", "probe", Default::default()).await.unwrap().bytes().await.unwrap();
    assert_eq!(public, b"acl and origin travel");
    match bob2.get("vers", "private-probe", Default::default()).await {
        Err(tessera_client::ClientError::AccessDenied { detail }) => {
            assert!(detail.contains("user:bob") && detail.contains("dev's with ACL private"), "{detail}")
        }
        other => panic!("bob read a private replica in r2: {:?}", other.map(|_| ())),
    }
    // A rule the destination did not allow ships nothing: every replica
    // is refused, the source's status says why, and allowing it there
    // lets the change through.
    bucket(&c1, "unasked", false).await;
    bucket(&c2, "unasked", false).await;
    let out = r.admin_cli(
        "r1",
        &["crr", "add", "--id", "pushy", "--bucket", "unasked", "--dest-region", "r2", "--dest-bucket", "unasked"],
    );
    assert!(out.contains("installed on every node"), "{out}");
    c1.put("unasked", "k", b"not wanted yet".to_vec()).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = r.admin_cli("r1", &["crr", "status"]);
        if status.contains("pushy") && status.contains("no inbound rule") {
            assert!(status.contains("crr allow --from r1 --bucket unasked"), "{status}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the refusal never showed in crr status:\n{status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(c2.head("unasked", "k", None).await.is_err(), "a replica went into a bucket nobody allowed");
    let allowed = r.admin_cli("r2", &["crr", "allow", "--from", "r1", "--bucket", "unasked"]);
    assert!(allowed.contains("installed on every node"), "{allowed}");
    assert!(r.cli("r2", &["crr", "ls"]).contains("r1               unasked"), "crr ls shows the inbound rule");
    converge(&c1, &c2, "unasked", "r1", Duration::from_secs(60)).await;
    // Listing (latest versions) agrees as well.
    for b in ["vers", "plain"] {
        assert_eq!(r.cli("r1", &["ls", "--long", b]), r.cli("r2", &["ls", "--long", b]), "ls {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partition_between_regions_then_catch_up() {
    let seed = seed("partition");
    let r = Regions::start("partition");
    let (c1, c2) = (r.client("r1").await, r.client("r2").await);
    bucket(&c1, "part", true).await;
    bucket(&c2, "part", true).await;
    add_rule(&r, "r1", "part-dr", "part", "r2", &[]);
    load(&c1, "part", seed, "before", 50, Duration::from_secs(5)).await;
    r.dev("cut-link", &r.dir, &[]);
    // Status tells the truth while cut: what is stuck counts as pending
    // (also while a batch is still waiting on the silent link), and the
    // cause named is the network, not the trust stores.
    let pending_of = |status: &str| -> u64 {
        let line = status.lines().find(|l| l.starts_with("part-dr")).unwrap_or_default();
        let words: Vec<&str> = line.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "ago").map_or(4, |i| i + 1);
        words.get(at).and_then(|w| w.parse().ok()).unwrap_or(0)
    };
    let early = load(&c1, "part", seed ^ 5, "early", 100_000, Duration::from_secs(3)).await;
    let status = r.admin_cli("r1", &["crr", "status"]);
    println!("partition: {early} operations in the first seconds of the cut\n{status}");
    assert!(pending_of(&status) > 0, "nothing pending while the link is cut:\n{status}");
    assert!(!status.contains("trust store"), "a partition blamed on the trust store:\n{status}");
    let n = load(&c1, "part", seed ^ 3, "during", 100_000, Duration::from_secs(27)).await;
    let status = r.admin_cli("r1", &["crr", "status"]);
    println!("partition: {n} more operations while cut\n{status}");
    assert!(pending_of(&status) > 0, "nothing pending while the link is cut:\n{status}");
    assert!(!status.contains("trust store"), "a partition blamed on the trust store:\n{status}");
    r.dev("heal-link", &r.dir, &[]);
    let healed = Instant::now();
    let total = converge(&c1, &c2, "part", "r1", Duration::from_secs(120)).await;
    println!("partition: caught up {total} versions {:.1} s after healing", healed.elapsed().as_secs_f64());
    // Nothing applied twice as a new version: the version sets are equal
    // (converge) and every copy in r2 keeps its r1 id.
}

/// Which node of r1 ships the group of `vers/k0`: the first member.
fn first_member_node(c: &Client, bucket: &str, key: &str) -> String {
    let view = c.view();
    let first = c.targets_of(bucket, key)[0];
    view.map
        .zones
        .iter()
        .flat_map(|z| z.nodes.iter())
        .find(|n| n.targets.iter().any(|t| t.id == first))
        .map(|n| n.name.clone())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipper_node_and_source_zone_die_mid_stream() {
    let seed = seed("shipper");
    let r = Regions::start("shipper");
    let (c1, c2) = (r.client("r1").await, r.client("r2").await);
    bucket(&c1, "ship", true).await;
    bucket(&c2, "ship", true).await;
    add_rule(&r, "r1", "ship-dr", "ship", "r2", &[]);
    let shipper = first_member_node(&c1, "ship", "k0");
    let load1 = {
        let c1 = c1.clone();
        tokio::spawn(async move { load(&c1, "ship", seed, "a", 100_000, Duration::from_secs(12)).await })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    r.dev("kill-node", &r.region("r1"), &[&shipper]);
    println!("shipper: killed {shipper}, the first member of s/k0's group");
    load1.await.unwrap();
    converge(&c1, &c2, "ship", "r1", Duration::from_secs(90)).await;
    let zone = &shipper[..2];
    let other = if zone == "z1" { "z2" } else { "z1" };
    r.dev("start-node", &r.region("r1"), &[&shipper]);
    // Let the restarted node rejoin (clients probe it back after their
    // down window) before a second fault: 3+3 survives one at a time.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = c1.put("ship", "probe", vec![1]).await {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if common::fully_redundant(&c1, "ship", "probe", r.version).await {
                break;
            }
        }
        assert!(Instant::now() < deadline, "{shipper} did not rejoin");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let load2 = {
        let c1 = c1.clone();
        tokio::spawn(async move { load(&c1, "ship", seed ^ 5, "b", 100_000, Duration::from_secs(12)).await })
    };
    tokio::time::sleep(Duration::from_secs(4)).await;
    r.dev("stop-zone", &r.region("r1"), &[other]);
    println!("shipper: stopped source zone {other}");
    load2.await.unwrap();
    let total = converge(&c1, &c2, "ship", "r1", Duration::from_secs(90)).await;
    println!("shipper: {total} versions identical in r2 with zone {other} of r1 down");
    r.dev("start-zone", &r.region("r1"), &[other]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_way_replication_converges_without_echo() {
    let seed = seed("two-way");
    let r = Regions::start("twoway");
    let (c1, c2) = (r.client("r1").await, r.client("r2").await);
    for (b, versioned) in [("twoway", true), ("lastwins", false)] {
        bucket(&c1, b, versioned).await;
        bucket(&c2, b, versioned).await;
        add_rule(&r, "r1", &format!("{b}-12"), b, "r2", &[]);
        add_rule(&r, "r2", &format!("{b}-21"), b, "r1", &[]);
    }
    // Both sides write the same keys at once.
    let (a, b, x, y) = tokio::join!(
        load(&c1, "twoway", seed, "one", 300, Duration::from_secs(15)),
        load(&c2, "twoway", seed ^ 9, "two", 300, Duration::from_secs(15)),
        load(&c1, "lastwins", seed ^ 11, "one", 300, Duration::from_secs(15)),
        load(&c2, "lastwins", seed ^ 13, "two", 300, Duration::from_secs(15))
    );
    println!("two-way: {a}/{b} versioned and {x}/{y} unversioned operations");
    for bkt in ["twoway", "lastwins"] {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (s1, s2) = (snapshot(&c1, bkt).await, snapshot(&c2, bkt).await);
            let same_versions =
                s1.keys().eq(s2.keys()) && s1.iter().all(|(k, v)| s2.get(k).is_some_and(|w| w.0 == v.0));
            if same_versions {
                // No echo: a region never holds a copy of its own change.
                assert!(s1.values().all(|(_, o)| o.as_deref() != Some("r1")), "{bkt}: r1 holds an echo");
                assert!(s2.values().all(|(_, o)| o.as_deref() != Some("r2")), "{bkt}: r2 holds an echo");
                // Each version is native on exactly one side.
                for (k, (_, o1)) in &s1 {
                    let o2 = &s2[k].1;
                    assert!(o1.is_none() != o2.is_none(), "{bkt} {k:?}: origins {o1:?} / {o2:?}");
                }
                let markers = s1.values().filter(|(c, _)| c.marker).count();
                println!("two-way {bkt}: {} versions ({markers} delete markers) identical on both sides", s1.len());
                break;
            }
            if Instant::now() > deadline {
                let only1: Vec<_> = s1.iter().filter(|(k, _)| !s2.contains_key(*k)).take(5).collect();
                let only2: Vec<_> = s2.iter().filter(|(k, _)| !s1.contains_key(*k)).take(5).collect();
                panic!(
                    "{bkt}: sides differ: {} vs {} versions; only in r1 {only1:?}; only in r2 {only2:?}",
                    s1.len(),
                    s2.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        // The latest version of every key agrees (last writer by id wins).
        assert_eq!(r.cli("r1", &["ls", "--long", bkt]), r.cli("r2", &["ls", "--long", bkt]), "ls {bkt}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_copies_existing_objects_to_100_percent() {
    let seed = seed("backfill");
    let r = Regions::start("backfill");
    let (c1, c2) = (r.client("r1").await, r.client("r2").await);
    bucket(&c1, "old", true).await;
    bucket(&c2, "old", true).await;
    let n = load(&c1, "old", seed, "old", 150, Duration::from_secs(30)).await;
    add_rule(&r, "r1", "old-dr", "old", "r2", &["--backfill"]);
    let total = converge(&c1, &c2, "old", "r1", Duration::from_secs(120)).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = r.admin_cli("r1", &["crr", "status"]);
        if status.lines().any(|l| l.starts_with("old-dr") && l.contains("100.0%")) {
            println!("backfill: {n} operations before the rule, {total} versions copied\n{status}");
            break;
        }
        assert!(Instant::now() < deadline, "back-fill never reached 100%: {status}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_outside_the_trust_store_is_refused() {
    let r = Regions::start("trust");
    let rogue = r.dir.join("rogue");
    tessera_node::tls::write_dev_region_certs(&rogue, "r1").unwrap();
    let toml = std::fs::read_to_string(r.region("r1").join("z1-n1/node.toml")).unwrap();
    let addr: std::net::SocketAddr =
        toml.lines().find(|l| l.starts_with("addrs = [")).and_then(|l| l.split('"').nth(1)).unwrap().parse().unwrap();
    // A certificate named r1 but issued by a CA r2 does not trust.
    let link = tessera_client::PeerLink::new(tessera_client::PeerConfig {
        region: "r2".into(),
        addrs: vec![addr],
        ca_cert: r.region("r2").join("crr/ca.pem"),
        server_name: "r2".into(),
        cert: rogue.join("region.pem"),
        key: rogue.join("region.key"),
        timeout: Duration::from_secs(5),
    })
    .unwrap();
    let have = tessera_wire::crr::CrrHave { rule: "x".into(), dest_bucket: "demo".into(), items: vec![] };
    let err = link.have(0, have).await.expect_err("an untrusted region must be refused");
    println!("trust: refused with: {err}");
    assert!(err.to_string().contains("trust store"), "a TLS refusal should point at the trust stores: {err}");
    let log: String = ["z1-n1", "z1-n2", "z2-n1", "z2-n2", "z3-n1", "z3-n2"]
        .iter()
        .map(|n| std::fs::read_to_string(r.region("r2").join(n).join("node.log")).unwrap_or_default())
        .collect();
    assert!(log.contains("refused a replication connection"), "r2 logged no refusal");
}
