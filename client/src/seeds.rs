//! Finding the region. The seeds of the config are tried concurrently,
//! each a little after the one before ("happy eyeballs", RFC 8305's idea):
//! a dead seed costs one stagger, never a whole handshake timeout, while
//! another seed can answer. The last good cluster map is kept on disk, so a
//! client whose every seed is down still finds the nodes that are up.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::transport::Transport;
use crate::view::MapView;
use crate::{ClientConfig, ClientError};

/// How a client found its first cluster map: one line per address tried.
#[derive(Clone, Debug, Default)]
pub struct ConnectReport {
    /// Every address considered, in the order attempts started.
    pub attempts: Vec<SeedAttempt>,
    /// The address whose map was taken, or `None` when the on-disk copy
    /// was newer than every answer.
    pub answered_by: Option<String>,
    /// Epoch of the map in use.
    pub epoch: u64,
    /// Epoch of the on-disk copy found at start, if any.
    pub cached_epoch: Option<u64>,
    /// From the start of `connect` to a map in hand.
    pub elapsed: Duration,
}

/// One address a client tried for its first map.
#[derive(Clone, Debug)]
pub struct SeedAttempt {
    /// `host:port` as configured (or the node's address, from the map copy).
    pub seed: String,
    /// Where it came from.
    pub from: SeedSource,
    /// When its attempt started, after the start of `connect`.
    pub started_after: Duration,
    /// What became of it.
    pub outcome: SeedOutcome,
}

/// Where a seed address came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeedSource {
    /// The client config.
    Config,
    /// A node of the on-disk copy of the last good map.
    CachedMap,
}

/// What became of one seed attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SeedOutcome {
    /// Answered with a map this long after its attempt started.
    Answered(Duration),
    /// Failed this long after its attempt started.
    Failed(Duration, String),
    /// Still pending when another seed answered: not waited for.
    NotWaitedFor,
    /// Never started: another seed answered first.
    NotTried,
}

impl fmt::Display for ConnectReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "connected in {:.1} ms: map epoch {} from {}{}",
            self.elapsed.as_secs_f64() * 1e3,
            self.epoch,
            self.answered_by.as_deref().unwrap_or("the on-disk copy"),
            self.cached_epoch.map(|e| format!(" (on-disk copy: epoch {e})")).unwrap_or_default()
        )?;
        for a in &self.attempts {
            let from = match a.from {
                SeedSource::Config => "seed",
                SeedSource::CachedMap => "node from the map copy",
            };
            let start = a.started_after.as_secs_f64() * 1e3;
            match &a.outcome {
                SeedOutcome::Answered(d) => {
                    writeln!(f, "  {from} {}: started at {start:.1} ms, answered in {:.1} ms", a.seed, ms(*d))?
                }
                SeedOutcome::Failed(d, e) => {
                    writeln!(f, "  {from} {}: started at {start:.1} ms, failed after {:.1} ms: {e}", a.seed, ms(*d))?
                }
                SeedOutcome::NotWaitedFor => {
                    writeln!(f, "  {from} {}: started at {start:.1} ms, not waited for", a.seed)?
                }
                SeedOutcome::NotTried => writeln!(f, "  {from} {}: not tried", a.seed)?,
            }
        }
        Ok(())
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Resolve `host:port` seeds (a seed that does not resolve is a config
/// error: it would never answer).
pub(crate) fn resolve(seeds: &[&str]) -> Result<Vec<(String, SocketAddr)>, ClientError> {
    seeds
        .iter()
        .map(|&seed| {
            let addr = seed
                .to_socket_addrs()
                .map_err(|e| ClientError::Config { detail: format!("endpoint {seed:?}: {e}") })?
                .next()
                .ok_or_else(|| ClientError::Config { detail: format!("endpoint {seed:?} resolves to nothing") })?;
            Ok((seed.to_owned(), addr))
        })
        .collect()
}

/// Try `addrs` for a map, each `stagger` after the previous one started
/// (at once when every earlier one has failed); the first map wins and the
/// attempts still running are dropped. Appends to `report`.
pub(crate) async fn race(
    transport: &Arc<Transport>,
    addrs: &[(String, SocketAddr)],
    from: SeedSource,
    stagger: Duration,
    start: Instant,
    report: &mut ConnectReport,
) -> Option<(MapView, String)> {
    let base = report.attempts.len();
    for (seed, _) in addrs {
        report.attempts.push(SeedAttempt {
            seed: seed.clone(),
            from,
            started_after: Duration::ZERO,
            outcome: SeedOutcome::NotTried,
        });
    }
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    let mut next = 0usize;
    let mut running = 0usize;
    let mut next_at = tokio::time::Instant::now();
    let mut started = vec![Instant::now(); addrs.len()];
    let won = loop {
        if next < addrs.len() && (running == 0 || tokio::time::Instant::now() >= next_at) {
            let (t, tx, addr, i) = (transport.clone(), tx.clone(), addrs[next].1, next);
            started[i] = Instant::now();
            report.attempts[base + i].started_after = start.elapsed();
            report.attempts[base + i].outcome = SeedOutcome::NotWaitedFor;
            tasks.spawn(async move {
                let _ = tx.send((i, crate::client::fetch_map(&t, addr).await));
            });
            next += 1;
            running += 1;
            next_at = tokio::time::Instant::now() + stagger;
            continue;
        }
        if running == 0 {
            break None;
        }
        tokio::select! {
            got = rx.recv() => {
                let Some((i, r)) = got else { break None };
                running -= 1;
                let took = started[i].elapsed();
                match r {
                    Ok(view) => {
                        report.attempts[base + i].outcome = SeedOutcome::Answered(took);
                        break Some((view, addrs[i].0.clone()));
                    }
                    Err(e) => report.attempts[base + i].outcome = SeedOutcome::Failed(took, e.to_string()),
                }
            }
            () = tokio::time::sleep_until(next_at), if next < addrs.len() => {}
        }
    };
    tasks.abort_all();
    won
}

/// The on-disk copy of the last good map of the region `cfg` names.
pub(crate) struct MapCache {
    path: PathBuf,
}

impl MapCache {
    /// `None` when the config opts out or no cache directory is known.
    pub(crate) fn for_config(cfg: &ClientConfig) -> Option<MapCache> {
        let dir = cfg.map_cache_path()?;
        // The trust root tells apart regions of one name (every `tessera
        // dev` region is "dev"): a copy is only ever used with the CA that
        // vouched for the nodes it came from.
        let ca = std::fs::read(&cfg.ca_cert).unwrap_or_default();
        let region = match &cfg.region {
            Some(r) if !r.is_empty() && r.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') => {
                r.as_str()
            }
            _ => "region",
        };
        let name = format!("map-{region}-{:08x}.postcard", crc32c::crc32c(&ca));
        Some(MapCache { path: dir.join(name) })
    }

    /// The copy, if there is a readable and valid one.
    pub(crate) fn load(&self) -> Option<MapView> {
        let bytes = std::fs::read(&self.path).ok()?;
        if bytes.len() as u64 > tessera_wire::map::MAP_BYTES_MAX {
            tracing::warn!(path = %self.path.display(), "map copy too large; ignored");
            return None;
        }
        let parsed =
            tessera_wire::SignedMap::from_wire(&bytes).map_err(ClientError::from).and_then(MapView::from_signed);
        match parsed {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "map copy unreadable; ignored");
                None
            }
        }
    }

    /// Replace the copy (atomically: a reader sees the old or the new).
    pub(crate) fn store(&self, view: &MapView) {
        if let Err(e) = self.try_store(view) {
            tracing::debug!(path = %self.path.display(), error = %e, "map copy not written");
        }
    }

    fn try_store(&self, view: &MapView) -> Result<(), String> {
        let bytes = view.signed().map_err(|e| e.to_string())?.to_wire();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let tmp = self.path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, &bytes).map_err(|e| format!("write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| format!("rename to {}: {e}", self.path.display()))
    }
}

/// One address per node of a map (its first core), for seeding from it.
pub(crate) fn node_addrs(view: &MapView) -> Vec<(String, SocketAddr)> {
    let mut out = Vec::new();
    for z in &view.map.zones {
        for n in &z.nodes {
            if let Some(&port) = n.ports.first() {
                let addr = SocketAddr::new(n.host, port);
                out.push((addr.to_string(), addr));
            }
        }
    }
    out
}
