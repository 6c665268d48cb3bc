//! The attack suite: the attacks the security issue found against a
//! `tessera dev` region, replayed against a real one (six node processes,
//! QUIC on 127.0.z.n) by `tessera admin audit` as every kind of attacker:
//! no certificate, a certificate of another CA, a valid user who owns
//! nothing here, a peer region's principal, and an admin certificate
//! without the map-signing key. Each request must be refused with an error
//! naming why, and afterwards the victim, every node's map and repair rate
//! and the registry must be as they were; the audit must also fail when an
//! attacker gets through. Then a bad map the operator did sign is undone
//! with `tessera admin map recover`, and the principal registry is put to
//! work: listed users, access keys, a node catching up, a revoked
//! certificate. (Stalled streams and oversized payloads are
//! node/tests/stalled_streams.rs; bucket names and terminal escapes are
//! dev_lifecycle.rs; the replication endpoint is crr.rs and the Ansible
//! test, which audits a deployed region with a peer region's certificate.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{content, port_base, Region};
use tessera_client::{Client, ClientConfig};
use tessera_wire::*;

const BUCKET: &str = "private";
const KEY: &str = "secret";
/// Attacks each attacker sends to the data port (tools/src/audit_raw.rs).
const ATTACKS: usize = 14;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_refused_by_every_attacker_and_changes_nothing() {
    let region = Region::new("attack", port_base(0), &["--repair-interval-ms", "1000"]);
    let tls = region.dir.join("tls");
    // The victim: the dev user's private object.
    let owner = region.client(BUCKET, true).await;
    let secret = content("the owner's secret", 200_000);
    owner.put(BUCKET, KEY, secret.clone()).await.unwrap();
    let admin = region.admin().await;
    let map = admin.view().map.clone();
    let nodes = admin.node_addrs();

    // The attackers the audit cannot make up: a user of this CA who owns
    // nothing, and a peer region's principal.
    let (bob, peer) = ((tls.join("bob.pem"), tls.join("bob.key")), (tls.join("peer.pem"), tls.join("peer.key")));
    tessera_node::tls::issue_dev_identity(&tls, &Principal::new(Role::User, "bob").unwrap(), &bob.0, &bob.1).unwrap();
    tessera_node::tls::issue_dev_identity(&tls, &Principal::new(Role::Peer, "r9").unwrap(), &peer.0, &peer.1).unwrap();
    let path = |p: &std::path::PathBuf| p.to_str().unwrap().to_owned();
    let out = region.admin_cli(&[
        "admin",
        "audit",
        "--user-cert",
        &path(&bob.0),
        "--user-key",
        &path(&bob.1),
        "--peer-cert",
        &path(&peer.0),
        "--peer-key",
        &path(&peer.1),
    ]);
    println!("{out}");
    for who in ["no certificate", "a certificate of another CA", "user:bob (owns nothing", "peer region"] {
        let refused = out.lines().filter(|l| l.starts_with(&format!("refused  {who}"))).count();
        assert_eq!(refused, ATTACKS, "{who}: {refused} of {ATTACKS} attacks refused for the right reason:\n{out}");
    }
    let rewrites = out.lines().filter(|l| l.starts_with("refused  admin:admin without the map-signing key")).count();
    assert_eq!(rewrites, 6, "map and registry rewrites by an admin without the key:\n{out}");
    assert!(out.contains("refused  user:bob / write a version id from the year 2128 into its own bucket"), "{out}");
    let total = 4 * ATTACKS + 6 + 1;
    assert!(out.contains(&format!("audit passed: {total} attempts by 4 attackers refused")), "{out}");

    // The owner's object was not the audit's victim, and is untouched too.
    let got = owner.get(BUCKET, KEY, Default::default()).await.unwrap().bytes().await.unwrap();
    assert!(got == secret, "the owner's object changed");
    let listed = owner.list(BUCKET, Default::default()).await.unwrap();
    assert_eq!(listed.entries.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), [KEY]);
    let bob_client =
        Client::connect(ClientConfig::load(&region.dir.join("client.toml")).unwrap().with_identity(bob.0, bob.1))
            .await
            .unwrap();

    // A bad map signed by the operator (z3-n1 moved to an address nobody
    // listens on) is undone by one command from a map a node kept.
    let mut bad = map.clone();
    bad.epoch += 1;
    let moved = bad.zones[2].nodes[0].name.clone();
    bad.zones[2].nodes[0].host = "127.0.9.1".parse().unwrap();
    let report = admin.push_map(&bad).await.unwrap();
    // (A node may take it from another before the push reaches it.)
    assert_eq!(report.installed.len() + report.already.len(), 5, "{report:?}");
    let kept = region.dir.join(format!("z1-n1/map.toml.epoch-{}", map.epoch));
    let out = region.admin_cli(&["admin", "map", "recover", kept.to_str().unwrap()]);
    assert!(out.contains(&format!("pushing {} as epoch {}", kept.display(), map.epoch + 2)), "{out}");
    assert!(out.contains("installed on every node"), "{out}");
    for (name, a) in &nodes {
        assert_eq!(admin.node_status(*a).await.unwrap().map_epoch, map.epoch + 2, "{name} ({moved} was moved)");
    }
    admin.refresh_map().await.unwrap();
    let mut expected = map.clone();
    expected.epoch += 2;
    assert_eq!(admin.view().map, expected, "the recovered map is the kept one under a new epoch");
    let got = owner.get(BUCKET, KEY, Default::default()).await.unwrap().bytes().await.unwrap();
    assert!(got == secret, "the owner's object after recovery");

    // Users and access keys. Once the region lists its users, a user
    // certificate of the CA is not enough: bob, connected all along, is
    // turned away at once.
    let out = region.admin_cli(&["admin", "user", "add", "dev"]);
    assert!(out.contains("only listed users") && out.contains("taken by 6 nodes"), "{out}");
    match bob_client.list_buckets().await {
        Ok(b) => panic!("an unlisted user still lists: {b:?}"),
        Err(e) => assert!(e.to_string().contains("user:bob is not a user of this region"), "{e}"),
    }
    owner.get(BUCKET, KEY, Default::default()).await.unwrap();
    let out = region.admin_cli(&["admin", "key", "add", "dev"]);
    let id = out.lines().find_map(|l| l.strip_prefix("access key id:")).unwrap_or_else(|| panic!("{out}")).trim();
    let secret_key =
        out.lines().find_map(|l| l.strip_prefix("secret access key:")).unwrap_or_else(|| panic!("{out}")).trim();
    assert_eq!(secret_key.len(), 40, "{out}");
    let listed = region.admin_cli(&["admin", "key", "ls", "dev"]);
    assert!(listed.contains(id) && !listed.contains(secret_key), "{listed}");
    let held = std::fs::read(region.dir.join("z1-n1/registry.bin")).unwrap();
    assert!(!held.windows(secret_key.len()).any(|w| w == secret_key.as_bytes()), "a node keeps the secret in clear");
    // Sealed under the region's secrets key, for this user and id only.
    let reg = admin.registry().await.unwrap();
    let sealed = &reg.user("dev").unwrap().keys[0].sealed_secret;
    let secrets = tessera_client::SecretsKey::load(&region.dir.join("tls/secrets.key")).unwrap();
    assert_eq!(secrets.open("dev", id, sealed).unwrap(), secret_key.as_bytes());
    assert!(secrets.open("bob", id, sealed).is_err());
    let refused = region.cli(&["admin", "user", "add", "mallory"]);
    assert!(refused.contains("user:dev may not send reading the principal registry"), "{refused}");

    // A node that was down takes the change from the others.
    region.stop_zone("z3");
    let out = region.admin_cli(&["admin", "user", "add", "carol"]);
    assert!(out.contains("not reached"), "{out}");
    let version = admin.registry().await.unwrap().version;
    region.start_zone("z3");
    let z3: Vec<SocketAddr> = nodes.iter().filter(|(n, _)| n.starts_with("z3")).map(|(_, a)| *a).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for a in z3 {
        while !matches!(admin.registry_bytes(a, version - 1).await, Ok(Some(_))) {
            assert!(std::time::Instant::now() < deadline, "{a} never took registry version {version}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // Revoking the owner's certificate ends its connections at once.
    let out = region.admin_cli(&["admin", "cert", "revoke", tls.join("user.pem").to_str().unwrap()]);
    assert!(out.contains("revoked") && out.contains("user:dev"), "{out}");
    match owner.get(BUCKET, KEY, Default::default()).await {
        Ok(_) => panic!("a revoked certificate still reads"),
        Err(e) => assert!(e.to_string().contains("was revoked"), "{e}"),
    }

    // The audit is no rubber stamp: an admin posing as the "user" gets
    // through (it may set repair rates and read anything), and the audit
    // says so and fails.
    let out = region.admin_cli(&[
        "admin",
        "audit",
        "--user-cert",
        tls.join("admin.pem").to_str().unwrap(),
        "--user-key",
        tls.join("admin.key").to_str().unwrap(),
    ]);
    assert!(out.contains("ACCEPTED admin:admin (owns nothing the audit made) / set the repair rate to 0"), "{out}");
    assert!(out.contains("audit FAILED"), "{out}");
}
