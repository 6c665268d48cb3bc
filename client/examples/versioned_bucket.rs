//! A versioned bucket: overwrites keep the old versions, a delete writes a
//! marker (the key looks gone, its versions stay readable), and removing
//! a version is permanent.
//!
//! ```sh
//! cargo run -p tessera-client --example versioned_bucket -- /tmp/tessera/client.toml
//! ```

use tessera_client::{BucketOptions, Client, ClientConfig, ClientError, GetOptions};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("TESSERA_CONFIG").ok())
        .ok_or("usage: versioned_bucket CONFIG")?;
    let client = Client::connect(ClientConfig::load(config.as_ref())?).await?;
    client.create_bucket("examples-versions", BucketOptions { versioned: true, ..Default::default() }).await?;

    let v1 = client.put("examples-versions", "notes.txt", b"first draft".to_vec()).await?.version;
    let v2 = client.put("examples-versions", "notes.txt", b"second draft".to_vec()).await?.version;
    println!("wrote {v1} then {v2}");

    let latest = client.get("examples-versions", "notes.txt", GetOptions::default()).await?.bytes().await?;
    let first = client
        .get("examples-versions", "notes.txt", GetOptions { version: Some(v1), ..Default::default() })
        .await?
        .bytes()
        .await?;
    println!("latest: {:?}; version {v1}: {:?}", String::from_utf8_lossy(&latest), String::from_utf8_lossy(&first));
    if latest != b"second draft" || first != b"first draft" {
        return Err("versions read back wrong".into());
    }

    // A delete hides the key behind a marker; the versions stay.
    let marker = client.delete("examples-versions", "notes.txt").await?;
    match client.get("examples-versions", "notes.txt", GetOptions::default()).await {
        Err(ClientError::NoSuchKey { .. }) => println!("after delete (marker {marker}) the key is gone"),
        Err(e) => return Err(e.into()),
        Ok(_) => return Err("a deleted key was still readable".into()),
    }
    let page = client.list_versions("examples-versions", "notes.txt", None, 100).await?;
    for e in &page.entries {
        println!(
            "  {} {}",
            e.version,
            if e.delete_marker { "delete marker".into() } else { format!("{} bytes", e.size_bytes) }
        );
    }

    // Removing the marker brings the latest version back; removing a
    // version is permanent.
    client.delete_version("examples-versions", "notes.txt", marker).await?;
    client.delete_version("examples-versions", "notes.txt", v1).await?;
    let back = client.get("examples-versions", "notes.txt", GetOptions::default()).await?.bytes().await?;
    println!("marker removed: latest is {:?} again; {v1} is gone for good", String::from_utf8_lossy(&back));
    if back != b"second draft" {
        return Err("the latest version did not come back".into());
    }
    Ok(())
}
