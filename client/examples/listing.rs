//! List buckets, then keys page by page, rolled up at '/' like folders.
//!
//! ```sh
//! cargo run -p tessera-client --example listing -- /tmp/tessera/client.toml
//! ```

use tessera_client::{Client, ClientConfig, ListRequest};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config =
        std::env::args().nth(1).or_else(|| std::env::var("TESSERA_CONFIG").ok()).ok_or("usage: listing CONFIG")?;
    let client = Client::connect(ClientConfig::load(config.as_ref())?).await?;
    client.create_bucket("examples-listing", Default::default()).await?;
    for key in ["2026/01/a.txt", "2026/01/b.txt", "2026/02/c.txt", "2027/d.txt", "readme.txt"] {
        client.put("examples-listing", key, key.as_bytes().to_vec()).await?;
    }

    for b in client.list_buckets().await? {
        println!("bucket {} (versioned: {}, owner {})", b.name, b.versioned, b.owner);
    }

    // Top level, two items per page to show continuation: prefixes
    // ("folders") and keys come back in one sorted sequence.
    let mut req = ListRequest { delimiter: Some("/".into()), limit: Some(2), ..Default::default() };
    let mut page_no = 0;
    loop {
        let page = client.list("examples-listing", req.clone()).await?;
        page_no += 1;
        for p in &page.common_prefixes {
            println!("page {page_no}: folder {p}");
        }
        for e in &page.entries {
            println!("page {page_no}: {} ({} bytes, version {})", e.key, e.size_bytes, e.version);
        }
        match page.next {
            Some(token) => req.continuation = Some(token),
            None => break,
        }
    }

    // Everything under one prefix, no roll-up.
    let all = client.list("examples-listing", ListRequest { prefix: "2026/".into(), ..Default::default() }).await?;
    let keys: Vec<&str> = all.entries.iter().map(|e| e.key.as_str()).collect();
    println!("under 2026/: {keys:?}");
    if keys != ["2026/01/a.txt", "2026/01/b.txt", "2026/02/c.txt"] {
        return Err(format!("unexpected keys under 2026/: {keys:?}").into());
    }
    Ok(())
}
