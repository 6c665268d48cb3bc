//! `tessera admin map ...` is in `map_cmd`.
//!
//! `tessera admin cert issue NAME`: a client identity for a new user (or
//! gateway, or admin) from the region's CA, and a client config that uses
//! it. Runs where the CA's private key is (the `tessera dev` directory, or
//! the Ansible controller's PKI directory); no node is asked, since a
//! certificate of the region's CA is all a node checks.

use std::path::{Path, PathBuf};

use tessera_client::ClientConfig;
use tessera_wire::{Principal, Role};

/// Administration subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum AdminCmd {
    /// Client certificates.
    Cert {
        #[command(subcommand)]
        cmd: CertCmd,
    },
    /// Cluster-map signing: `key`, `sign`, `recover`.
    Map {
        #[command(subcommand)]
        cmd: crate::map_cmd::MapCmd,
    },
    /// The region's users: `add NAME`, `ls`, `rm NAME`.
    User {
        #[command(subcommand)]
        cmd: crate::user_cmd::UserCmd,
    },
    /// Users' access keys: `add USER`, `ls USER`, `rm USER ID`.
    Key {
        #[command(subcommand)]
        cmd: crate::user_cmd::KeyCmd,
    },
    /// Try the region's doors as attackers would (no certificate, another
    /// CA, a user who owns nothing, a peer region, an admin without the
    /// map-signing key); fails unless every attempt is refused for the
    /// right reason and nothing changed.
    Audit(crate::audit::AuditArgs),
    /// Make the region's secrets key (seals access-key secrets); name it
    /// as secrets_key in the admin config.
    SecretsKey {
        /// Where to write it (mode 0600; an existing file is kept).
        out: PathBuf,
    },
}

/// Certificate subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum CertCmd {
    /// Issue a certificate naming principal ROLE:NAME, and write
    /// NAME.pem, NAME.key (mode 0600) and NAME.toml (the current config,
    /// acting as NAME) into --out.
    Issue {
        /// Principal name (1-64 of A-Z a-z 0-9 . _ @ -).
        name: String,
        /// user, gateway or admin.
        #[arg(long, default_value = "user")]
        role: String,
        /// The region CA's private key (PEM), e.g. DIR/tls/ca.key of
        /// `tessera dev`.
        #[arg(long)]
        ca_key: PathBuf,
        /// The region CA's certificate (default: the config's ca_cert).
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Directory for the files (default: the config's directory).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Revoke a certificate: no node admits it again, and connections
    /// made with it are closed.
    Revoke {
        /// The certificate (PEM).
        cert: PathBuf,
    },
}

/// Run an admin subcommand with the config at `config`.
pub(crate) async fn run(config: Option<&Path>, cmd: AdminCmd) -> Result<(), crate::CliError> {
    match cmd {
        AdminCmd::Map { cmd } => crate::map_cmd::run(config, cmd).await,
        AdminCmd::User { cmd } => {
            crate::user_cmd::user(&crate::client(config.map(Path::to_path_buf)).await?, cmd).await
        }
        AdminCmd::Key { cmd } => crate::user_cmd::key(&crate::client(config.map(Path::to_path_buf)).await?, cmd).await,
        AdminCmd::Audit(args) => {
            let config = config.ok_or_else(|| {
                crate::CliError::Usage("no client config: pass --config FILE (an admin's) or set TESSERA_CONFIG".into())
            })?;
            crate::audit::run(config, args).await
        }
        AdminCmd::SecretsKey { out } => {
            if out.exists() {
                println!("{} exists; kept", out.display());
            } else {
                tessera_client::SecretsKey::create(&out)?;
                println!("wrote the region's secrets key to {} (mode 0600)", out.display());
            }
            Ok(())
        }
        AdminCmd::Cert { cmd: CertCmd::Revoke { cert } } => {
            crate::user_cmd::revoke(&crate::client(config.map(Path::to_path_buf)).await?, &cert).await
        }
        AdminCmd::Cert { cmd: CertCmd::Issue { name, role, ca_key, ca_cert, days, out } } => {
            let config = config.ok_or_else(|| {
                crate::CliError::Usage("no client config: pass --config FILE or set TESSERA_CONFIG".into())
            })?;
            issue(config, name, role, ca_key, ca_cert, days, out)
        }
    }
}

fn issue(
    config: &Path,
    name: String,
    role: String,
    ca_key: PathBuf,
    ca_cert: Option<PathBuf>,
    days: u32,
    out: Option<PathBuf>,
) -> Result<(), crate::CliError> {
    let role = match role.as_str() {
        "user" => Role::User,
        "gateway" => Role::Gateway,
        "admin" => Role::Admin,
        other => {
            return Err(crate::CliError::Usage(format!(
                "--role {other:?}: use user, gateway or admin (node and peer certificates come from the PKI setup)"
            )))
        }
    };
    let who = Principal::new(role, &name).map_err(|e| crate::CliError::Usage(e.to_string()))?;
    let cfg = ClientConfig::load(config)?;
    let ca_cert = ca_cert.unwrap_or(cfg.ca_cert.clone());
    let out = match out {
        Some(o) => o,
        None => config.parent().map(Path::to_path_buf).unwrap_or_default(),
    };
    let out = std::path::absolute(&out).map_err(|e| crate::CliError::Io(format!("{}: {e}", out.display())))?;
    std::fs::create_dir_all(&out).map_err(|e| crate::CliError::Io(format!("{}: {e}", out.display())))?;
    let (cert, key, toml) =
        (out.join(format!("{name}.pem")), out.join(format!("{name}.key")), out.join(format!("{name}.toml")));
    if toml.exists() || cert.exists() {
        return Err(crate::CliError::Usage(format!(
            "{} or {} exists; remove them first (an identity is issued once)",
            cert.display(),
            toml.display()
        )));
    }
    tessera_node::tls::issue_identity(&ca_cert, &ca_key, &who, days, &cert, &key).map_err(|e| {
        crate::CliError::Io(format!("issuing {who} with CA {} and key {}: {e}", ca_cert.display(), ca_key.display()))
    })?;
    // The current config with this identity in place of its own.
    let text =
        std::fs::read_to_string(config).map_err(|e| crate::CliError::Io(format!("{}: {e}", config.display())))?;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let k = l.split('=').next().unwrap_or_default().trim();
            // The original's own identity lines and what it says of them,
            // and its map-signing key (that stays with the operator).
            !(k == "cert"
                || k == "key"
                || k == "map_key"
                || k == "secrets_key"
                || (l.starts_with('#')
                    && (l.contains("Acts as")
                        || l.contains("Signs the cluster maps")
                        || l.contains("Seals access-key"))))
        })
        .collect();
    let absolute_ca = format!("ca_cert = {:?}", cfg.ca_cert.display().to_string());
    let body: Vec<String> = kept
        .iter()
        .map(|l| {
            if l.split('=').next().unwrap_or_default().trim() == "ca_cert" {
                absolute_ca.clone()
            } else {
                (*l).to_owned()
            }
        })
        .collect();
    let new = format!(
        "# Acts as {who} (issued by `tessera admin cert issue`).\ncert = {:?}\nkey = {:?}\n{}\n",
        cert.display().to_string(),
        key.display().to_string(),
        body.join("\n")
    );
    std::fs::write(&toml, new).map_err(|e| crate::CliError::Io(format!("{}: {e}", toml.display())))?;
    println!("issued {who}, valid {days} days");
    println!("  certificate: {}", cert.display());
    println!("  key:         {} (mode 0600)", key.display());
    println!("  config:      {}   (TESSERA_CONFIG={} tessera ls)", toml.display(), toml.display());
    Ok(())
}
