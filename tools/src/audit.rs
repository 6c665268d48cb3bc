//! `tessera admin audit`: try a region's doors the way an attacker would,
//! and fail unless every attempt is refused for the right reason and
//! nothing changed. An operator runs it after a deployment or a change to
//! the PKI; the attack suite test and the Ansible container test run it
//! against their regions.
//!
//! The audit writes one private object of its own (bucket
//! `tessera-audit`, owned by the config's admin) as the victim, then every
//! attacker (no certificate; a certificate of a CA it makes up; the user
//! given, who owns nothing the audit made; the peer region given) sends
//! every attack of `audit_raw` to the node holding the victim's first
//! shard. The config's own identity, without the map-signing key, tries
//! the map and registry rewrites. Afterwards the victim, every node's map
//! and repair rate, and the registry must be as they were; the victim is
//! purged at the end. Bucket `tessera-audit` (and one per audited user,
//! empty) stays, since buckets are not deleted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tessera_client::{Client, ClientConfig, ClientError, MapSigner};
use tessera_wire::{ErrorCode, Response};

use crate::audit_raw::{ask, attacks, connect, far_future_version, put_shard, replica_attacks};
use crate::audit_raw::{Attack, Door, Identity, Scene};
use crate::CliError;

/// The victims' bucket.
const BUCKET: &str = "tessera-audit";
/// What a node says when it refuses a version id from the future.
const CLOCK_REFUSAL: &str = "ahead of this node's clock";

/// `tessera admin audit` options.
#[derive(clap::Args, Debug)]
pub(crate) struct AuditArgs {
    /// A user certificate of this region (with --user-key) to attack as:
    /// a valid user who owns nothing the audit made.
    #[arg(long, requires = "user_key")]
    user_cert: Option<PathBuf>,
    /// The key of --user-cert.
    #[arg(long, requires = "user_cert")]
    user_key: Option<PathBuf>,
    /// A peer region's certificate (with --peer-key), e.g. a node
    /// certificate of another region.
    #[arg(long, requires = "peer_key")]
    peer_cert: Option<PathBuf>,
    /// The key of --peer-cert.
    #[arg(long, requires = "peer_cert")]
    peer_key: Option<PathBuf>,
    /// A replication endpoint of this region (HOST:PORT): the peer also
    /// tries replicas there.
    #[arg(long, requires_all = ["peer_cert", "peer_region"])]
    crr_endpoint: Option<SocketAddr>,
    /// The region --peer-cert belongs to (with --crr-endpoint).
    #[arg(long, requires = "crr_endpoint")]
    peer_region: Option<String>,
}

/// Who attacks, through which door, and what every refusal must name
/// (any one of these, case-insensitive).
struct Attacker {
    name: String,
    identity: Option<Identity>,
    refused_because: Vec<String>,
}

/// A directory of its own for the made-up CA and map key, removed at the
/// end.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch, CliError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let dir = std::env::temp_dir().join(format!("tessera-audit-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| CliError::Io(format!("{}: {e}", dir.display())))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The outcome of every attempt, printed as it comes.
#[derive(Default)]
struct Report {
    refused: usize,
    failures: Vec<String>,
}

impl Report {
    /// Judge one answer: refused, for a reason naming one of `because`.
    fn judge(&mut self, who: &str, what: &str, answer: Result<Response, String>, because: &[String]) {
        let why = match answer {
            Ok(Response::Error(e)) if matches!(e.code, ErrorCode::AccessDenied | ErrorCode::BadRequest) => e.detail,
            Ok(other) => {
                println!("ACCEPTED {who} / {what}: {other:?}");
                self.failures.push(format!("{who} / {what}: answered {other:?}"));
                return;
            }
            Err(e) => e,
        };
        let lower = why.to_lowercase();
        // A user's version from 2128 is refused by the clock check first.
        let named = because.iter().any(|b| lower.contains(&b.to_lowercase()))
            || (what.contains("2128") && why.contains(CLOCK_REFUSAL));
        if named {
            println!("refused  {who} / {what}: {why}");
            self.refused += 1;
        } else {
            println!("WRONG    {who} / {what}: refused, but not for naming {because:?}: {why}");
            self.failures.push(format!("{who} / {what}: refused for another reason: {why}"));
        }
    }

    fn fail(&mut self, what: String) {
        println!("CHANGED  {what}");
        self.failures.push(what);
    }
}

/// Run the audit with the admin config at `config`.
pub(crate) async fn run(config: &Path, args: AuditArgs) -> Result<(), CliError> {
    let cfg = ClientConfig::load(config)?;
    let me = match &cfg.cert {
        Some(cert) => tessera_node::tls::principal_of_pem(cert).map_err(CliError::Usage)?,
        None => return Err(CliError::Usage(format!("{} names no cert: the audit runs as an admin", config.display()))),
    };
    let admin = Client::connect(cfg.clone()).await?;
    let scratch = Scratch::new()?;

    // The victim.
    match admin.create_bucket(BUCKET, Default::default()).await {
        Ok(_) | Err(ClientError::BucketExists { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let key = format!("victim-{stamp}");
    let secret: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 ^ stamp as u8).collect();
    let receipt = admin.put(BUCKET, &key, secret.clone()).await?;
    let map = admin.view().map.clone();
    let target = *admin
        .targets_of(BUCKET, &key)
        .first()
        .ok_or_else(|| CliError::Io(format!("the map places {BUCKET}/{key} nowhere")))?;
    let addr = admin.view().addr(target)?;
    let scene = Scene { bucket: BUCKET.into(), key: key.clone(), target, version: receipt.version, map: map.clone() };
    let nodes = admin.node_addrs();
    let rates_before = repair_rates(&admin, &nodes).await?;
    let registry_before = admin.registry().await?.version;
    println!("victim {BUCKET}/{key} (version {}) on {target} at {addr}; map epoch {}", receipt.version, map.epoch);

    // The attackers.
    let other_ca = scratch.0.join("other-ca");
    tessera_node::tls::write_dev_certs(&other_ca).map_err(|e| CliError::Io(format!("a made-up CA: {e}")))?;
    let rogue_key = scratch.0.join("rogue.key");
    tessera_node::tls::write_map_key(&rogue_key, &scratch.0.join("rogue.pub"))
        .map_err(|e| CliError::Io(format!("a made-up map-signing key: {e}")))?;
    let rogue = MapSigner::load(&rogue_key).map_err(|e| CliError::Io(format!("a made-up map-signing key: {e}")))?;
    let mut attackers = vec![
        Attacker { name: "no certificate".into(), identity: None, refused_because: vec!["certificate".into()] },
        Attacker {
            name: "a certificate of another CA".into(),
            identity: Some((other_ca.join("admin.pem"), other_ca.join("admin.key"))),
            refused_because: vec!["invalid peer certificate".into()],
        },
    ];
    let user = match (&args.user_cert, &args.user_key) {
        (Some(c), Some(k)) => {
            let who = tessera_node::tls::principal_of_pem(c).map_err(CliError::Usage)?;
            attackers.push(Attacker {
                name: format!("{who} (owns nothing the audit made)"),
                identity: Some((c.clone(), k.clone())),
                refused_because: vec![who.to_string()],
            });
            Some((who, (c.clone(), k.clone())))
        }
        _ => None,
    };
    let peer = match (&args.peer_cert, &args.peer_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ => None,
    };
    if let Some(p) = &peer {
        attackers.push(Attacker {
            name: format!("peer {}", args.peer_region.as_deref().unwrap_or("region")),
            identity: Some(p.clone()),
            // Issued by this region's CA as a peer principal, or by the
            // peer's own CA: either way not let onto the data port.
            refused_because: vec!["replication endpoint".into(), "invalid peer certificate".into()],
        });
    }

    let mut report = Report::default();
    let door = Door { addr, server_name: &cfg.server_name, ca: &cfg.ca_cert, alpn: tessera_client::ALPN };
    // Built once: every attacker sends the same requests.
    let all = attacks(&scene, &rogue).map_err(CliError::Io)?;
    for a in &attackers {
        for attack in &all {
            let answer = attempt(&door, a.identity.as_ref(), attack, map.epoch).await;
            report.judge(&a.name, attack.what, answer, &a.refused_because);
        }
    }

    // The config's own identity may run the region but, without the
    // map-signing key, not rewrite it.
    let rewrites =
        |a: &Attack| matches!(a.request, tessera_wire::Request::SetMap(_) | tessera_wire::Request::SetRegistry(_));
    let own = cfg.cert.clone().zip(cfg.key.clone());
    for attack in all.iter().filter(|a| rewrites(a)) {
        let answer = attempt(&door, own.as_ref(), attack, map.epoch).await;
        report.judge(&format!("{me} without the map-signing key"), attack.what, answer, &signature_refusals());
    }

    if let Some((who, identity)) = &user {
        own_bucket_clock_check(&cfg, who, identity, &mut report).await;
    }
    if let (Some(endpoint), Some(identity), Some(region)) = (args.crr_endpoint, &peer, &args.peer_region) {
        let crr_door =
            Door { addr: endpoint, server_name: &cfg.server_name, ca: &cfg.ca_cert, alpn: tessera_client::CRR_ALPN };
        let because = vec!["may not replicate into bucket".into(), "forwarded a change".into()];
        for attack in replica_attacks(&scene, region) {
            let answer = attempt(&crr_door, Some(identity), &attack, map.epoch).await;
            report.judge(&format!("peer {region} at the replication endpoint"), attack.what, answer, &because);
        }
    }

    // Nothing changed.
    unchanged(&admin, &scene, &secret, &nodes, &rates_before, registry_before, &mut report).await?;
    admin.delete_version(BUCKET, &key, receipt.version).await?;

    let attempts = report.refused + report.failures.len();
    if report.failures.is_empty() {
        println!("audit passed: {attempts} attempts by {} attackers refused; the region is unchanged", attackers.len());
        Ok(())
    } else {
        Err(CliError::Io(format!(
            "audit FAILED: {} of {attempts} checks:\n  {}",
            report.failures.len(),
            report.failures.join("\n  ")
        )))
    }
}

/// What a node says of a map or registry not signed by a key it trusts.
fn signature_refusals() -> Vec<String> {
    vec!["is not signed".into(), "does not trust".into()]
}

/// One attack on a fresh connection; the answer, or why there was none.
async fn attempt(
    door: &Door<'_>,
    identity: Option<&Identity>,
    attack: &Attack,
    epoch: u64,
) -> Result<Response, String> {
    let conn = connect(door, identity).await?;
    let answer = ask(&conn, attack, epoch).await;
    conn.close(0u8.into(), b"audit");
    answer
}

/// A user's own bucket is no place for a version from the future either:
/// the clock check is not an ownership check.
async fn own_bucket_clock_check(
    cfg: &ClientConfig,
    who: &tessera_wire::Principal,
    identity: &Identity,
    report: &mut Report,
) {
    let bucket: String = format!("tessera-audit-{}", who.name)
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .take(63)
        .collect();
    let bucket = bucket.trim_end_matches('-').to_owned();
    let what = format!("write a version id from the year 2128 into its own bucket {bucket}");
    let client = match Client::connect(cfg.clone().with_identity(identity.0.clone(), identity.1.clone())).await {
        Ok(c) => c,
        Err(e) => return report.fail(format!("{who} / {what}: could not connect as {who}: {e}")),
    };
    match client.create_bucket(&bucket, Default::default()).await {
        Ok(_) | Err(ClientError::BucketExists { .. }) => {}
        Err(e) => return report.fail(format!("{who} / {what}: could not make the bucket: {e}")),
    }
    let Some(target) = client.targets_of(&bucket, "future").first().copied() else {
        return report.fail(format!("{who} / {what}: the map places it nowhere"));
    };
    let addr = match client.view().addr(target) {
        Ok(a) => a,
        Err(e) => return report.fail(format!("{who} / {what}: {e}")),
    };
    let attack = Attack {
        what: "",
        request: put_shard(target, &bucket, "future", far_future_version(), b"x"),
        payload: b"x".to_vec(),
    };
    let door = Door { addr, server_name: &cfg.server_name, ca: &cfg.ca_cert, alpn: tessera_client::ALPN };
    let answer = attempt(&door, Some(identity), &attack, client.view().map.epoch).await;
    report.judge(&who.to_string(), &what, answer, &[CLOCK_REFUSAL.to_owned()]);
}

/// The victim, every node's map and repair rate, and the registry, as
/// they were before the attacks.
async fn unchanged(
    admin: &Client,
    s: &Scene,
    secret: &[u8],
    nodes: &[(String, SocketAddr)],
    rates_before: &[u32],
    registry_before: u64,
    report: &mut Report,
) -> Result<(), CliError> {
    let read = async {
        let got = admin.get(&s.bucket, &s.key, Default::default()).await?;
        let current = got.meta.version;
        Ok::<_, ClientError>((current, got.bytes().await?))
    };
    match read.await {
        Ok((current, _)) if current != s.version => {
            report.fail(format!("{}/{}: version {current} is current, not the victim's {}", s.bucket, s.key, s.version))
        }
        Ok((_, bytes)) if bytes != secret => report.fail(format!("{}/{}: the victim's bytes changed", s.bucket, s.key)),
        Ok(_) => {}
        Err(e) => report.fail(format!("{}/{}: the victim no longer reads: {e}", s.bucket, s.key)),
    }
    for (name, a) in nodes {
        let epoch = admin.node_status(*a).await?.map_epoch;
        if epoch != s.map.epoch {
            report.fail(format!("node {name}: map epoch {epoch}, was {}", s.map.epoch));
        }
    }
    admin.refresh_map().await?;
    if admin.view().map != s.map {
        report.fail("the region's map changed".into());
    }
    let rates = repair_rates(admin, nodes).await?;
    if rates != rates_before {
        report.fail(format!("repair rates {rates:?}, were {rates_before:?}"));
    }
    let version = admin.registry().await?.version;
    if version != registry_before {
        report.fail(format!("principal registry version {version}, was {registry_before}"));
    }
    Ok(())
}

async fn repair_rates(admin: &Client, nodes: &[(String, SocketAddr)]) -> Result<Vec<u32>, CliError> {
    let mut out = Vec::with_capacity(nodes.len());
    for (_, a) in nodes {
        out.push(admin.repair_status(*a).await?.rate_limit_mib_s);
    }
    Ok(out)
}
