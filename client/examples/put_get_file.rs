//! Store a local file and read it back.
//!
//! ```sh
//! cargo run -p tessera-client --example put_get_file -- /tmp/tessera/client.toml ./cat.jpg
//! ```
//!
//! The first argument is a client config (what `tessera dev` writes to
//! `DIR/client.toml`); without it, `TESSERA_CONFIG` names one.

use std::path::{Path, PathBuf};

use tessera_client::{Client, ClientConfig, ClientError, GetOptions, PutOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config = config_path(args.next())?;
    let file = PathBuf::from(args.next().ok_or("usage: put_get_file CONFIG FILE")?);

    // Connect: seeds in every zone are tried at once; the first map wins.
    let client = Client::connect(ClientConfig::load(&config)?).await?;
    // Idempotent: a bucket with the same settings is simply returned.
    client.create_bucket("examples", Default::default()).await?;

    let data = tokio::fs::read(&file).await?;
    let key = format!("files/{}", file.file_name().and_then(|n| n.to_str()).unwrap_or("file"));
    let opts = PutOptions { content_type: Some("application/octet-stream".into()), ..Default::default() };
    let receipt = client.put_with("examples", &key, data.clone(), opts).await?;
    // The receipt is the durability proof: it survives losing any one zone.
    println!(
        "stored examples/{key}: {} bytes, version {}, crc32c {:#010x}, on {} targets in zones {:?}{}",
        receipt.size_bytes,
        receipt.version,
        receipt.content_crc32c,
        receipt.targets.len(),
        receipt.zones,
        if receipt.degraded { " (degraded: a zone is down; repair completes it)" } else { "" }
    );

    // Stream it back into a file next to the original.
    let copy = file.with_extension("copy");
    let got = client.get("examples", &key, GetOptions::default()).await?;
    let mut out = tokio::fs::File::create(&copy).await?;
    let n = got.body.copy_to(&mut out).await?;
    out.sync_all().await?;
    let back = tokio::fs::read(&copy).await?;
    if back != data {
        return Err(format!("{} differs from {}", copy.display(), file.display()).into());
    }
    println!("read back {n} bytes into {}: identical", copy.display());

    // Errors are one enum; match the cases an application handles.
    match client.get("examples", "files/no-such-file", GetOptions::default()).await {
        Err(ClientError::NoSuchKey { detail }) => println!("a missing key is NoSuchKey: {detail}"),
        Err(other) => return Err(other.into()),
        Ok(_) => return Err("a missing key was found".into()),
    }
    Ok(())
}

fn config_path(arg: Option<String>) -> Result<PathBuf, String> {
    arg.or_else(|| std::env::var("TESSERA_CONFIG").ok())
        .map(PathBuf::from)
        .filter(|p| Path::exists(p))
        .ok_or_else(|| "give the client config (DIR/client.toml from `tessera dev`) or set TESSERA_CONFIG".into())
}
