//! `tessera admin map key|sign|recover`: the region's map-signing key, and
//! the two things done with it besides `push-map`. Nodes take only maps
//! signed by a key their `map_keys` trust, so the key is what makes an
//! admin certificate alone (or a stolen node key) unable to rewrite a
//! region. `key` and `sign` run where the key is kept and contact no node.

use std::path::{Path, PathBuf};

use tessera_client::{Client, MapSigner};
use tessera_wire::{ClusterMap, SignedMap};

use crate::CliError;

/// Map subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum MapCmd {
    /// Make a map-signing key: DIR/NAME.key (private, mode 0600; keep it
    /// where maps are made) and DIR/NAME.pub (list it in every node's
    /// `map_keys`).
    Key {
        /// Directory for the files.
        #[arg(long)]
        out: PathBuf,
        /// File name stem.
        #[arg(long, default_value = "map-signing")]
        name: String,
    },
    /// Sign a map file (adds or replaces its `[signature]` table, every
    /// other line kept as written), for a map made where the key is and
    /// pushed from elsewhere.
    Sign {
        /// Map file (TOML).
        map: PathBuf,
        /// The private key (default: the config's map_key).
        #[arg(long)]
        key: Option<PathBuf>,
        /// Where to write the signed map (default: over the input).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Recover from a bad map: push the content of a known good map file
    /// (e.g. a node's map.toml.epoch-N) as a new map whose epoch is one
    /// above the highest any reachable node holds, signed with the
    /// config's map_key, to every node of the good map.
    Recover {
        /// The good map (TOML; its epoch and signature are replaced).
        map: PathBuf,
    },
}

/// Run a map subcommand (`config` is needed by `recover`, and by `sign`
/// without --key).
pub(crate) async fn run(config: Option<&Path>, cmd: MapCmd) -> Result<(), CliError> {
    match cmd {
        MapCmd::Key { out, name } => {
            std::fs::create_dir_all(&out).map_err(|e| CliError::Io(format!("{}: {e}", out.display())))?;
            let (key, public) = (out.join(format!("{name}.key")), out.join(format!("{name}.pub")));
            if key.exists() {
                return Err(CliError::Usage(format!(
                    "{} exists: a signing key is made once (a new one needs every node's map_keys changed)",
                    key.display()
                )));
            }
            let id = tessera_node::tls::write_map_key(&key, &public)
                .map_err(|e| CliError::Io(format!("writing {}: {e}", key.display())))?;
            println!("map-signing key {id}");
            println!("  private: {} (mode 0600; map_key in the admin's config)", key.display());
            println!("  public:  {} (map_keys = [\"{id}\"] in every node.toml)", public.display());
            Ok(())
        }
        MapCmd::Sign { map, key, out } => {
            let key = match key {
                Some(k) => k,
                None => config_key(config)?,
            };
            let text = std::fs::read_to_string(&map).map_err(|e| CliError::Io(format!("{}: {e}", map.display())))?;
            let mut signed =
                SignedMap::from_toml(&text).map_err(|e| CliError::Usage(format!("{}: {e}", map.display())))?;
            let signer = MapSigner::load(&key).map_err(|e| CliError::Usage(e.to_string()))?;
            signer.sign(&mut signed);
            let Some(sig) = &signed.signature else {
                return Err(CliError::Io("signing produced no signature".into()));
            };
            let out = out.unwrap_or(map);
            write(&out, &tessera_wire::map_sig::sign_text(&text, sig))?;
            println!("{}: map epoch {} signed by {}", out.display(), signed.map.epoch, signer.key());
            Ok(())
        }
        MapCmd::Recover { map } => {
            let config = config.ok_or_else(|| CliError::Usage("recover needs --config (an admin's)".into()))?;
            let good = read(&map)?.map;
            let c = crate::client(Some(config.to_path_buf())).await?;
            let (epoch, asked) = highest_epoch(&c, &good).await?;
            let mut fresh = good.clone();
            fresh.epoch = epoch
                .checked_add(1)
                .ok_or_else(|| CliError::Usage(format!("a node holds epoch {epoch}: no epoch is above it")))?;
            println!(
                "highest epoch held by the {asked} reachable nodes: {epoch}; pushing {} as epoch {}",
                map.display(),
                fresh.epoch
            );
            let report = c.push_map(&fresh).await?;
            println!("{}", report.summary(fresh.epoch));
            if !report.refused.is_empty() {
                return Err(CliError::Io(format!("map epoch {} refused by some nodes (above)", fresh.epoch)));
            }
            Ok(())
        }
    }
}

fn config_key(config: Option<&Path>) -> Result<PathBuf, CliError> {
    let config = config.ok_or_else(|| CliError::Usage("pass --key FILE, or --config naming a map_key".into()))?;
    tessera_client::ClientConfig::load(config)?
        .map_key
        .ok_or_else(|| CliError::Usage(format!("{} names no map_key: pass --key FILE", config.display())))
}

fn read(path: &Path) -> Result<SignedMap, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))?;
    SignedMap::from_toml(&text).map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))
}

fn write(path: &Path, text: &str) -> Result<(), CliError> {
    let tmp = path.with_extension("signing");
    std::fs::write(&tmp, text).map_err(|e| CliError::Io(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| CliError::Io(format!("{}: {e}", path.display())))
}

/// The highest epoch any reachable node of the region's current map or of
/// `good` holds, and how many nodes answered.
async fn highest_epoch(c: &Client, good: &ClusterMap) -> Result<(u64, usize), CliError> {
    let mut addrs: Vec<std::net::SocketAddr> = c.node_addrs().into_iter().map(|(_, a)| a).collect();
    for n in good.zones.iter().flat_map(|z| z.nodes.iter()) {
        if let Some(p) = n.ports.first() {
            addrs.push(std::net::SocketAddr::new(n.host, *p));
        }
    }
    addrs.sort();
    addrs.dedup();
    let mut highest = c.view().map.epoch;
    let mut asked = 0;
    for a in addrs {
        match c.node_status(a).await {
            Ok(s) => {
                asked += 1;
                highest = highest.max(s.map_epoch);
            }
            Err(e @ tessera_client::ClientError::AccessDenied { .. }) => return Err(e.into()),
            Err(e) => eprintln!("{a}: not reached ({e}); it takes the new map from the others when it is back"),
        }
    }
    Ok((highest, asked))
}
