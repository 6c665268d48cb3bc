//! `tessera`: the command-line client (buckets and objects) and `tessera dev`.

mod access_cmd;
mod admin_cmd;
mod audit;
mod audit_raw;
mod civil;
mod crr_cmd;
mod dev;
mod dev_proc;
mod dev_regions;
mod du;
mod ls_cmd;
mod map_cmd;
mod netns;
mod relay;
mod repair_cmd;
mod user_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tessera_client::{
    ByteRange, Client, ClientConfig, ClientError, GetOptions, ListRequest, PutOptions, StorageClass, VersionId,
};
use tokio::io::AsyncWriteExt;

/// Exit codes, so scripts can tell failures apart.
mod exit {
    pub(crate) const ERROR: u8 = 1;
    pub(crate) const NOT_FOUND: u8 = 3;
    pub(crate) const CORRUPT: u8 = 4;
    pub(crate) const UNREACHABLE: u8 = 5;
    pub(crate) const FULL: u8 = 6;
    pub(crate) const DENIED: u8 = 7;
}

#[derive(Parser)]
#[command(name = "tessera", version, about = "Tessera object store client and local dev cluster")]
struct Cli {
    /// Client config (TOML). Written by `tessera dev` as DIR/client.toml.
    #[arg(long, global = true, env = "TESSERA_CONFIG")]
    config: Option<PathBuf>,
    /// Print how the client reached the region (every seed tried, which
    /// answered, which were not waited for) on stderr.
    #[arg(long, short, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Make a bucket.
    Mb {
        /// Bucket name.
        bucket: String,
        /// Keep every version; deletes write delete markers.
        #[arg(long)]
        versioned: bool,
    },
    /// Upload FILE (or - for stdin) to BUCKET/KEY.
    Put {
        /// Local file, or - for stdin.
        file: String,
        /// BUCKET/KEY.
        target: String,
        /// MIME type to record.
        #[arg(long)]
        content_type: Option<String>,
        /// Storage class: standard or ia (default: the bucket's).
        #[arg(long)]
        class: Option<String>,
        /// Canned ACL: private, public-read, public-read-write,
        /// authenticated-read, bucket-owner-read, bucket-owner-full-control.
        #[arg(long, default_value = "private")]
        acl: String,
    },
    /// Show a bucket's owner and canned ACL, or set the canned ACL
    /// (private, public-read, public-read-write, authenticated-read).
    /// Only the owner and admins may.
    Acl {
        /// Bucket name.
        bucket: String,
        /// The new canned ACL.
        canned: Option<String>,
    },
    /// Print a bucket's policy (S3-style JSON), or set or remove it.
    /// Only the owner and admins may; docs/security.md has the language.
    Policy {
        /// Bucket name.
        bucket: String,
        /// Replace the policy with this JSON file (- for stdin).
        #[arg(long)]
        set: Option<PathBuf>,
        /// Remove the policy.
        #[arg(long)]
        delete: bool,
    },
    /// Download BUCKET/KEY to FILE (stdout without FILE).
    Get {
        /// BUCKET/KEY.
        source: String,
        /// Local file; stdout if absent.
        file: Option<PathBuf>,
        /// Bytes A-B (inclusive), as in HTTP ranges.
        #[arg(long)]
        range: Option<String>,
        /// A specific version id.
        #[arg(long)]
        version: Option<String>,
    },
    /// List buckets, or the keys of BUCKET[/PREFIX]. Times are local;
    /// names with control characters are printed escaped (`--json` gives
    /// them raw, JSON-encoded).
    Ls {
        /// BUCKET or BUCKET/PREFIX; without it, the region's buckets.
        path: Option<String>,
        /// List every key under the prefix instead of rolling up at '/'.
        #[arg(long, short)]
        recursive: bool,
        /// List every version (and delete marker), newest first per key.
        #[arg(long)]
        versions: bool,
        /// Exact bytes, storage class, checksum and version id (owner for
        /// buckets).
        #[arg(long, short, conflicts_with = "json")]
        long: bool,
        /// One JSON object per line, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Usage of a bucket by storage class, with IA billing rules applied.
    Du {
        /// Bucket name.
        bucket: String,
    },
    /// Remove BUCKET/KEY (or one version of it).
    Rm {
        /// BUCKET/KEY.
        path: String,
        /// A specific version id.
        #[arg(long)]
        version: Option<String>,
    },
    /// Show an object's metadata.
    Stat {
        /// BUCKET/KEY.
        path: String,
        /// A specific version id.
        #[arg(long)]
        version: Option<String>,
    },
    /// Run a local region (3 zones x 2 nodes x 2 cores by default) with a demo;
    /// `tessera dev stop-zone|start-zone --dir DIR ZONE` from another shell.
    Dev(dev::DevArgs),
    /// Run one storage node (what `tessera dev` starts per node).
    Node {
        /// Node config (TOML).
        #[arg(long)]
        config: PathBuf,
    },
    /// Push a newer cluster map (TOML) to every node it lists.
    PushMap {
        /// Map file.
        map: PathBuf,
        /// Only check the file (parse, validate, build placement) and print
        /// what it describes; contact no node.
        #[arg(long)]
        check: bool,
    },
    /// Anti-entropy repair and scrubbing: `status`, `rate MIB_S`, or `wait`.
    Repair {
        #[command(subcommand)]
        cmd: repair_cmd::RepairCmd,
    },
    /// Administration: `admin cert issue NAME` makes a client identity
    /// from the region's CA.
    Admin {
        #[command(subcommand)]
        cmd: admin_cmd::AdminCmd,
    },
    /// Cross-region replication rules: `add`, `ls`, `rm ID`, `status`.
    Crr {
        #[command(subcommand)]
        cmd: crr_cmd::CrrCmd,
    },
}

#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Io(String),
    #[error("{0:#}")]
    Other(#[from] anyhow::Error),
}

impl CliError {
    fn code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Client(ClientError::NoSuchKey { .. } | ClientError::NoSuchBucket { .. }) => exit::NOT_FOUND,
            CliError::Client(ClientError::Corrupt { .. } | ClientError::Integrity { .. }) => exit::CORRUPT,
            CliError::Client(
                ClientError::Connection { .. } | ClientError::Timeout { .. } | ClientError::Unavailable { .. },
            ) => exit::UNREACHABLE,
            CliError::Client(ClientError::TargetFull { .. }) => exit::FULL,
            CliError::Client(ClientError::AccessDenied { .. }) => exit::DENIED,
            _ => exit::ERROR,
        }
    }
}

fn split_path(path: &str) -> Result<(&str, &str), CliError> {
    match path.split_once('/') {
        Some((b, k)) if !b.is_empty() && !k.is_empty() => Ok((b, k)),
        _ => Err(CliError::Usage(format!("expected BUCKET/KEY, got {path:?}"))),
    }
}

fn parse_version(v: Option<String>) -> Result<Option<VersionId>, CliError> {
    v.map(|s| s.parse().map_err(|_| CliError::Usage(format!("bad version id {s:?}: expected 32 hex digits"))))
        .transpose()
}

fn parse_range(r: &str) -> Result<ByteRange, CliError> {
    let bad = || CliError::Usage(format!("bad range {r:?}: expected A-B with A <= B (inclusive byte offsets)"));
    let (a, b) = r.split_once('-').ok_or_else(bad)?;
    let a: u64 = a.parse().map_err(|_| bad())?;
    let b: u64 = b.parse().map_err(|_| bad())?;
    if b < a {
        return Err(bad());
    }
    // 0-18446744073709551615 would be 2^64 bytes: more than any object.
    let len = (b - a).checked_add(1).ok_or_else(|| {
        CliError::Usage(format!("bad range {r:?}: {} bytes is more than any object can hold", u128::from(b - a) + 1))
    })?;
    Ok(ByteRange { offset: a, len })
}

/// Whether `--verbose` was given (read by `client`).
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

async fn client(config: Option<PathBuf>) -> Result<Client, CliError> {
    let path = config.ok_or_else(|| {
        CliError::Usage(
            "no client config: pass --config FILE or set TESSERA_CONFIG (tessera dev writes DIR/client.toml)".into(),
        )
    })?;
    let c = Client::connect(ClientConfig::load(&path)?).await?;
    if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
        eprint!("{}", c.connect_report());
    }
    Ok(c)
}

fn progress(len: Option<u64>, what: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(n) => indicatif::ProgressBar::new(n),
        None => indicatif::ProgressBar::no_length(),
    };
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(what.to_owned());
    bar
}

async fn run(cli: Cli) -> Result<(), CliError> {
    VERBOSE.store(cli.verbose, std::sync::atomic::Ordering::Relaxed);
    match cli.cmd {
        Cmd::Dev(args) => dev::run(args).await?,
        Cmd::Mb { bucket, versioned } => {
            let c = client(cli.config).await?;
            let info =
                c.create_bucket(&bucket, tessera_client::BucketOptions { versioned, ..Default::default() }).await?;
            println!("bucket {} ready{}", info.name, if info.versioned { " (versioned)" } else { "" });
        }
        Cmd::Admin { cmd } => admin_cmd::run(cli.config.as_deref(), cmd).await?,
        Cmd::Acl { bucket, canned } => access_cmd::acl(&client(cli.config).await?, &bucket, canned.as_deref()).await?,
        Cmd::Policy { bucket, set, delete } => {
            access_cmd::policy(&client(cli.config).await?, &bucket, set, delete).await?
        }
        Cmd::Put { file, target, content_type, class, acl } => {
            let (bucket, key) = split_path(&target)?;
            let acl = tessera_wire::Acl::parse(&acl).map_err(CliError::Usage)?;
            let storage_class = match class.as_deref() {
                None => None,
                Some("standard") => Some(StorageClass::Standard),
                Some("ia") => Some(StorageClass::InfrequentAccess),
                Some(o) => return Err(CliError::Usage(format!("unknown storage class {o:?}: use standard or ia"))),
            };
            let c = client(cli.config).await?;
            let opts = PutOptions { content_type, storage_class, acl, ..Default::default() };
            let receipt = if file == "-" {
                c.put_stream(bucket, key, tokio::io::stdin(), opts).await?
            } else {
                let f =
                    tokio::fs::File::open(&file).await.map_err(|e| CliError::Io(format!("cannot open {file}: {e}")))?;
                let len = f.metadata().await.ok().map(|m| m.len());
                let bar = progress(len, "put");
                let receipt = c.put_stream(bucket, key, bar.wrap_async_read(f), opts).await;
                bar.finish_and_clear();
                receipt?
            };
            let p = c.view().map.classes.of(receipt.storage_class);
            let all = usize::from(p.data) + usize::from(p.parity);
            let rest = if receipt.targets.len() < all {
                format!(
                    "; the ack needs only enough shards to survive losing any zone, the other {} finish in the \
                     background or are repaired",
                    all - receipt.targets.len()
                )
            } else {
                String::new()
            };
            println!(
                "put {bucket}/{key}: {} bytes, version {}, crc32c {:#010x}, {:?} {}+{}, committed on {} of {all} \
                 targets ({}) in zones {} (map epoch {}){rest}{}",
                receipt.size_bytes,
                receipt.version,
                receipt.content_crc32c,
                receipt.storage_class,
                p.data,
                p.parity,
                receipt.targets.len(),
                receipt.targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","),
                receipt.zones.join(","),
                receipt.map_epoch,
                if receipt.degraded { " DEGRADED: a zone was down; repair owes its shards" } else { "" }
            );
        }
        Cmd::Get { source, file, range, version } => {
            let (bucket, key) = split_path(&source)?;
            let range = range.as_deref().map(parse_range).transpose()?;
            let version = parse_version(version)?;
            let c = client(cli.config).await?;
            let got = c.get(bucket, key, GetOptions { version, range }).await?;
            let len = range.map(|r| r.len).unwrap_or(got.meta.size_bytes);
            match file {
                // A device or FIFO (/dev/null, a pipe) is written in place:
                // renaming a file over it would replace it.
                Some(path) if std::fs::metadata(&path).is_ok_and(|m| !m.is_file() && !m.is_dir()) => {
                    let mut f = tokio::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .await
                        .map_err(|e| CliError::Io(format!("cannot open {}: {e}", path.display())))?;
                    got.body.copy_to(&mut f).await?;
                    f.flush().await.map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
                    eprintln!("got {bucket}/{key}: {len} bytes -> {}", path.display());
                }
                Some(path) => {
                    let tmp = path.with_extension("tessera-partial");
                    let f = tokio::fs::File::create(&tmp)
                        .await
                        .map_err(|e| CliError::Io(format!("cannot create {}: {e}", tmp.display())))?;
                    let bar = progress(Some(len), "get");
                    let mut w = bar.wrap_async_write(f.try_clone().await.map_err(|e| CliError::Io(e.to_string()))?);
                    let res = got.body.copy_to(&mut w).await;
                    bar.finish_and_clear();
                    if let Err(e) = res {
                        let _ = tokio::fs::remove_file(&tmp).await;
                        return Err(e.into());
                    }
                    f.sync_all().await.map_err(|e| CliError::Io(format!("sync {}: {e}", tmp.display())))?;
                    tokio::fs::rename(&tmp, &path)
                        .await
                        .map_err(|e| CliError::Io(format!("rename to {}: {e}", path.display())))?;
                    eprintln!("got {bucket}/{key}: {len} bytes -> {}", path.display());
                }
                None => {
                    let mut out = tokio::io::stdout();
                    got.body.copy_to(&mut out).await?;
                    out.flush().await.map_err(|e| CliError::Io(format!("stdout: {e}")))?;
                }
            }
        }
        Cmd::Ls { path, recursive, versions, long, json } => {
            let format = match (long, json) {
                (_, true) => ls_cmd::Format::Json,
                (true, _) => ls_cmd::Format::Long,
                _ => ls_cmd::Format::Short,
            };
            let c = client(cli.config).await?;
            match path.as_deref() {
                None if versions => return Err(CliError::Usage("ls --versions needs BUCKET[/PREFIX]".into())),
                None => ls_cmd::buckets(&c, format).await?,
                Some(path) => {
                    let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
                    if versions {
                        ls_cmd::versions(&c, bucket, prefix, format).await?;
                    } else {
                        ls_cmd::keys(&c, bucket, prefix, recursive, format).await?;
                    }
                }
            }
        }
        Cmd::Du { bucket } => {
            let c = client(cli.config).await?;
            let view = c.view();
            let mut usage = du::Usage::default();
            let mut req = ListRequest::default();
            loop {
                let page = c.list(&bucket, req.clone()).await?;
                for e in &page.entries {
                    usage.add(e, &view.map.classes, du::now_ms());
                }
                match page.next {
                    Some(n) => req.continuation = Some(n),
                    None => break,
                }
            }
            print!("{}", usage.report(&bucket));
        }
        Cmd::Node { config } => {
            tokio::task::spawn_blocking(move || tessera_node::run::run_until_signal(&config))
                .await
                .map_err(|e| CliError::Io(e.to_string()))??;
        }
        Cmd::PushMap { map, check } => {
            let text = std::fs::read_to_string(&map).map_err(|e| CliError::Io(format!("{}: {e}", map.display())))?;
            let signed = tessera_wire::SignedMap::from_toml(&text)
                .map_err(|e| CliError::Usage(format!("{}: {e}", map.display())))?;
            let m = signed.map.clone();
            if check {
                let view = tessera_client::MapView::new(m.clone())?;
                let nodes: usize = m.zones.iter().map(|z| z.nodes.len()).sum();
                println!(
                    "{}: region {} epoch {}: {} zones, {nodes} nodes, {} targets, {} placement groups: valid",
                    map.display(),
                    m.region,
                    m.epoch,
                    m.zones.len(),
                    view.locs.len(),
                    view.placement.groups()
                );
                match &signed.signature {
                    Some(sig) => println!("  signed by {} (nodes check it against their map_keys)", sig.key),
                    None => println!("  not signed: push-map signs it with the config's map_key"),
                }
                return Ok(());
            }
            let c = client(cli.config).await?;
            // The config's key signs; without one, a file signed where the
            // key is kept goes as it is.
            let report = match (&c.config().map_key, &signed.signature) {
                (None, Some(_)) => c.push_signed_map(&signed).await?,
                _ => c.push_map(&m).await?,
            };
            println!("{}", report.summary(m.epoch));
            if !report.refused.is_empty() {
                return Err(CliError::Io(format!("map epoch {} refused by some nodes (above)", m.epoch)));
            }
        }
        Cmd::Crr { cmd } => {
            let c = client(cli.config).await?;
            if !crr_cmd::run(&c, cmd).await? {
                return Err(CliError::Io("some nodes did not answer (listed above)".into()));
            }
        }
        Cmd::Repair { cmd: repair_cmd::RepairCmd::Wait { timeout_s } } => {
            let c = client(cli.config).await?;
            repair_cmd::wait(&c, std::time::Duration::from_secs(timeout_s)).await.map_err(CliError::Io)?;
        }
        Cmd::Repair { cmd } => {
            let c = client(cli.config).await?;
            if !repair_cmd::run(&c, cmd).await? {
                return Err(CliError::Io("some nodes did not answer (listed above)".into()));
            }
        }
        Cmd::Rm { path, version } => {
            let (bucket, key) = split_path(&path)?;
            let version = parse_version(version)?;
            let c = client(cli.config).await?;
            match version {
                Some(v) => {
                    c.delete_version(bucket, key, v).await?;
                    println!("removed {bucket}/{key} version {v}");
                }
                None => {
                    let marker = c.delete(bucket, key).await?;
                    println!("removed {bucket}/{key} (delete marker {marker})");
                }
            }
        }
        Cmd::Stat { path, version } => {
            let (bucket, key) = split_path(&path)?;
            let version = parse_version(version)?;
            let c = client(cli.config).await?;
            let m = c.head(bucket, key, version).await?;
            println!("key:           {}", ls_cmd::escape(&m.key));
            println!("version:       {}", m.version);
            println!("size:          {} bytes", m.size_bytes);
            println!("crc32c:        {:#010x}", m.content_crc32c);
            println!("created:       {} ({} ms since the epoch)", civil::utc_ms(m.created_ms), m.created_ms);
            println!("content type:  {}", ls_cmd::escape(m.content_type.as_deref().unwrap_or("-")));
            println!("owner:         {}", ls_cmd::escape(&m.owner));
            println!("storage class: {:?}", m.storage_class);
            println!("acl:           {}", m.acl);
            println!("origin:        {}", ls_cmd::escape(m.origin.as_deref().unwrap_or("- (written in this region)")));
            println!(
                "stripes:       {} of up to {} ({} data + {} parity shards of up to {} each)",
                m.stripe_count,
                human_bytes(u64::from(m.stripe_bytes)),
                m.ec.data,
                m.ec.parity,
                human_bytes(u64::from(m.shard_bytes))
            );
            let targets = c.targets_of(bucket, key);
            println!("targets:       {}", targets.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(","));
            for (k, v) in &m.user_meta {
                println!("meta {}: {}", ls_cmd::escape(k), ls_cmd::escape(v));
            }
        }
    }
    Ok(())
}

/// Bytes in the largest binary unit that keeps a whole number in front.
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1_024.0 && u + 1 < UNITS.len() {
        v /= 1_024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} bytes")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn main() -> ExitCode {
    // Die quietly on a closed pipe (`tessera ls | head`) like other CLI
    // tools, instead of panicking on the next print.
    // SAFETY: restoring the default disposition of a signal at start-up,
    // before any thread exists.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera: cannot start runtime: {e}");
            return ExitCode::from(exit::ERROR);
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tessera: {e}");
            if let CliError::Client(ClientError::AccessDenied { detail }) = &e {
                if detail.contains("only admins") || detail.contains("only this region's nodes") {
                    eprintln!(
                        "tessera: this config acts as the principal named above; operator commands need an admin \
                         identity (tessera dev writes DIR/admin.toml; see docs/security.md)"
                    );
                } else {
                    eprintln!(
                        "tessera: owners share: tessera acl and tessera policy (a bucket), put --acl (an object); see docs/security.md"
                    );
                }
            }
            ExitCode::from(e.code())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against dates computed independently (`date -u -d @S`).
    #[test]
    fn utc_times_and_sizes_read_as_people_write_them() {
        assert_eq!(civil::utc_ms(0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(civil::utc_ms(951_782_400_000), "2000-02-29 00:00:00.000 UTC");
        assert_eq!(civil::utc_ms(1_796_613_630_354), "2026-12-07 03:20:30.354 UTC");
        assert_eq!(civil::utc_ms(4_102_444_799_999), "2099-12-31 23:59:59.999 UTC");
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1_023), "1023 bytes");
        assert_eq!(human_bytes(6_291_456), "6.0 MiB");
        assert_eq!(human_bytes(300_000), "293.0 KiB");
    }

    #[test]
    fn ranges_are_checked_not_wrapped() {
        assert_eq!(parse_range("0-0").ok(), Some(ByteRange { offset: 0, len: 1 }));
        assert_eq!(parse_range("10-19").ok(), Some(ByteRange { offset: 10, len: 10 }));
        let whole = format!("0-{}", u64::MAX);
        assert!(matches!(parse_range(&whole), Err(CliError::Usage(m)) if m.contains("more than any object")));
        assert_eq!(parse_range(&format!("1-{}", u64::MAX)).ok().map(|r| r.len), Some(u64::MAX));
        for bad in ["5-4", "-3", "a-b", "3", "1-2-3", "-1-2"] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
    }
}
