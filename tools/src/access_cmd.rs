//! `tessera acl` and `tessera policy`: a bucket's canned ACL and policy.
//! The node decides who may change them (the owner and admins); this only
//! reads, validates and prints.

use std::io::Read;
use std::path::PathBuf;

use tessera_client::{BucketAccessView, Client};
use tessera_wire::access::Policy;
use tessera_wire::Acl;

/// Show the settings in the CLI's usual form.
fn show(bucket: &str, v: &BucketAccessView) {
    println!("bucket:  {bucket}");
    println!("owner:   {}", crate::ls_cmd::escape(&v.owner));
    println!("acl:     {}", v.access.acl);
    match &v.access.policy {
        Some(p) => println!("policy:  {} statement(s) (tessera policy {bucket})", p.statements.len()),
        None => println!("policy:  none"),
    }
    for b in &v.behind {
        eprintln!("warning: {b}");
    }
}

/// `tessera acl BUCKET [CANNED]`: show, or set the canned ACL and keep the
/// policy.
pub(crate) async fn acl(c: &Client, bucket: &str, canned: Option<&str>) -> Result<(), crate::CliError> {
    let Some(canned) = canned else {
        show(bucket, &c.bucket_access(bucket).await?);
        return Ok(());
    };
    let acl = Acl::parse(canned).map_err(crate::CliError::Usage)?;
    let now = c.bucket_access(bucket).await?;
    let v = c.set_bucket_access(bucket, acl, now.access.policy).await?;
    show(bucket, &v);
    Ok(())
}

/// `tessera policy BUCKET [--set FILE|-] [--delete]`: print the policy as
/// JSON, or replace or remove it (keeping the canned ACL).
pub(crate) async fn policy(
    c: &Client,
    bucket: &str,
    set: Option<PathBuf>,
    delete: bool,
) -> Result<(), crate::CliError> {
    let now = c.bucket_access(bucket).await?;
    let new = match (set, delete) {
        (None, false) => {
            match &now.access.policy {
                Some(p) => println!("{}", p.to_json()),
                None => {
                    return Err(crate::CliError::Usage(format!(
                        "bucket {bucket} has no policy (set one with tessera policy {bucket} --set FILE)"
                    )))
                }
            }
            return Ok(());
        }
        (Some(_), true) => return Err(crate::CliError::Usage("--set and --delete exclude each other".into())),
        (None, true) => None,
        (Some(path), false) => {
            let mut text = String::new();
            let read = if path.as_os_str() == "-" {
                std::io::stdin().read_to_string(&mut text)
            } else {
                std::fs::File::open(&path).and_then(|mut f| f.read_to_string(&mut text))
            };
            read.map_err(|e| crate::CliError::Io(format!("reading policy {}: {e}", path.display())))?;
            Some(
                Policy::from_json(bucket, &text)
                    .map_err(|e| crate::CliError::Usage(format!("{}: {e}", path.display())))?,
            )
        }
    };
    let removed = new.is_none();
    let v = c.set_bucket_access(bucket, now.access.acl, new).await?;
    if removed {
        println!("bucket {bucket}: policy removed");
    } else {
        println!("bucket {bucket}: policy set");
    }
    for b in &v.behind {
        eprintln!("warning: {b}");
    }
    Ok(())
}
