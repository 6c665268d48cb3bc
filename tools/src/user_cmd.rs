//! `tessera admin user|key ...` and `tessera admin cert revoke`: changes to
//! the region's principal registry (`tessera_wire::registry`). Each reads
//! the newest registry any node holds, changes it, raises its version by
//! one and pushes it (signed with the config's map_key) to every node;
//! nodes close the connections it no longer admits at once.

use std::path::Path;

use tessera_client::{Client, SecretsKey};
use tessera_wire::registry::{AccessKey, Registry, RegistryUser, RevokedCert};
use tessera_wire::{Principal, Role};

use crate::CliError;

/// User subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum UserCmd {
    /// Add a user. The first user added turns the list on: from then on
    /// only listed users' certificates are admitted.
    Add {
        /// Principal name (1-64 of A-Z a-z 0-9 . _ @ -).
        name: String,
    },
    /// List users and how many access keys each has.
    Ls,
    /// Remove a user and its access keys; its open connections are closed.
    Rm {
        /// User name.
        name: String,
    },
}

/// Access-key subcommands.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum KeyCmd {
    /// Make an access key for USER; the secret is printed once.
    Add {
        /// User name.
        user: String,
    },
    /// List USER's access key ids (never the secrets).
    Ls {
        /// User name.
        user: String,
    },
    /// Delete an access key of USER.
    Rm {
        /// User name.
        user: String,
        /// Access key id (TK...).
        id: String,
    },
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn usage(s: String) -> CliError {
    CliError::Usage(s)
}

/// Read the newest registry, change it with `f` (which says what it did),
/// push it as the next version.
async fn change(c: &Client, f: impl FnOnce(&mut Registry) -> Result<String, CliError>) -> Result<(), CliError> {
    let mut reg = c.registry().await?;
    let first = reg.version == 0;
    let did = f(&mut reg)?;
    reg.version = reg
        .version
        .checked_add(1)
        .ok_or_else(|| usage(format!("registry version {} cannot be raised", reg.version)))?;
    let report = c.push_registry(&reg).await?;
    println!("{did}");
    if first && !reg.users.is_empty() {
        println!(
            "note: the region had no user list; from now on only listed users' certificates are admitted (listed: {})",
            reg.users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    println!("registry version {} taken by {} nodes", reg.version, report.installed.len());
    if !report.unreachable.is_empty() {
        println!("not reached (they take it from the others when back): {}", report.unreachable.join("; "));
    }
    if !report.refused.is_empty() {
        return Err(CliError::Io(format!(
            "registry version {} refused by: {}",
            reg.version,
            report.refused.join("; ")
        )));
    }
    Ok(())
}

/// Run a user subcommand.
pub(crate) async fn user(c: &Client, cmd: UserCmd) -> Result<(), CliError> {
    match cmd {
        UserCmd::Add { name } => {
            Principal::new(Role::User, &name).map_err(|e| usage(e.to_string()))?;
            change(c, |reg| {
                let at = match reg.users.binary_search_by(|u| u.name.as_str().cmp(&name)) {
                    Ok(_) => return Err(usage(format!("user {name} exists"))),
                    Err(at) => at,
                };
                reg.users.insert(at, RegistryUser { name: name.clone(), created_ms: now_ms(), keys: Vec::new() });
                Ok(format!("added user:{name}"))
            })
            .await
        }
        UserCmd::Rm { name } => {
            change(c, |reg| {
                let before = reg.users.len();
                reg.users.retain(|u| u.name != name);
                if reg.users.len() == before {
                    return Err(usage(format!("no user {name}")));
                }
                Ok(format!("removed user:{name} and its access keys; its connections are closed"))
            })
            .await
        }
        UserCmd::Ls => {
            let reg = c.registry().await?;
            if reg.version == 0 {
                println!(
                    "no user list: every user certificate of the region's CA is admitted (tessera admin user add)"
                );
                return Ok(());
            }
            println!("{:<32} {:<28} keys", "user", "created");
            for u in &reg.users {
                println!("{:<32} {:<28} {}", u.name, crate::civil::utc_ms(u.created_ms), u.keys.len());
            }
            println!("registry version {}; {} revoked certificates", reg.version, reg.revoked.len());
            Ok(())
        }
    }
}

/// Run an access-key subcommand.
pub(crate) async fn key(c: &Client, cmd: KeyCmd) -> Result<(), CliError> {
    match cmd {
        KeyCmd::Add { user } => {
            let path = c.config().secrets_key.clone().ok_or_else(|| {
                usage(
                    "this config names no secrets_key: access-key secrets are sealed with the region's secrets key"
                        .into(),
                )
            })?;
            let secrets = SecretsKey::load(&path)?;
            let (id, secret) = tessera_client::new_access_key()?;
            let sealed = secrets.seal(&user, &id, secret.as_bytes())?;
            let shown = id.clone();
            change(c, |reg| {
                let u = reg
                    .users
                    .iter_mut()
                    .find(|u| u.name == user)
                    .ok_or_else(|| usage(format!("no user {user} (tessera admin user add {user})")))?;
                if u.keys.len() >= tessera_wire::registry::KEYS_PER_USER_MAX {
                    return Err(usage(format!(
                        "user {user} has {} access keys already (at most {}): remove one first",
                        u.keys.len(),
                        tessera_wire::registry::KEYS_PER_USER_MAX
                    )));
                }
                u.keys.push(AccessKey { id, sealed_secret: sealed, created_ms: now_ms() });
                Ok(format!("access key for user:{user}"))
            })
            .await?;
            println!("access key id:     {shown}");
            println!("secret access key: {secret}");
            println!("(the secret is shown only now; the region keeps it sealed)");
            Ok(())
        }
        KeyCmd::Ls { user } => {
            let reg = c.registry().await?;
            let u = reg.user(&user).ok_or_else(|| usage(format!("no user {user}")))?;
            for k in &u.keys {
                println!("{}  created {}", k.id, crate::civil::utc_ms(k.created_ms));
            }
            Ok(())
        }
        KeyCmd::Rm { user, id } => {
            change(c, |reg| {
                let u =
                    reg.users.iter_mut().find(|u| u.name == user).ok_or_else(|| usage(format!("no user {user}")))?;
                let before = u.keys.len();
                u.keys.retain(|k| k.id != id);
                if u.keys.len() == before {
                    return Err(usage(format!("user {user} has no access key {id}")));
                }
                Ok(format!("deleted access key {id} of user:{user}"))
            })
            .await
        }
    }
}

/// `tessera admin cert revoke FILE`: no node admits this certificate again;
/// connections made with it are closed.
pub(crate) async fn revoke(c: &Client, cert: &Path) -> Result<(), CliError> {
    let fingerprint = tessera_node::tls::fingerprint_of_pem(cert).map_err(usage)?;
    let principal = tessera_node::tls::principal_of_pem(cert)
        .map(|p| p.to_string())
        .unwrap_or_else(|why| format!("(no principal: {why})"));
    change(c, |reg| {
        if reg.revoked.iter().any(|r| r.fingerprint == fingerprint) {
            return Err(usage(format!("{} is revoked already", cert.display())));
        }
        reg.revoked.push(RevokedCert { fingerprint, principal: principal.clone(), revoked_ms: now_ms() });
        Ok(format!("revoked {} ({principal}, sha256 {})", cert.display(), tessera_wire::map_sig::to_hex(&fingerprint)))
    })
    .await
}
