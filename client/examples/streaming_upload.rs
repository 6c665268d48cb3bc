//! Upload a stream of unknown length with bounded memory, then read it
//! back chunk by chunk and check its crc32c against the write receipt.
//!
//! ```sh
//! cargo run -p tessera-client --example streaming_upload -- /tmp/tessera/client.toml 256
//! ```
//!
//! The second argument is the size in MiB (default 64). The source is an
//! `AsyncRead` (here a generator; a socket, a pipe or a file works the
//! same): the SDK encodes and sends it stripe by stripe, so the process
//! holds a few stripes, never the whole object.

use std::pin::Pin;
use std::task::{Context, Poll};

use tessera_client::{Client, ClientConfig, GetOptions, PutOptions};
use tokio::io::{AsyncRead, ReadBuf};

/// `len` pseudo-random bytes, produced on demand.
struct Generator {
    left: u64,
    state: u64,
}

impl AsyncRead for Generator {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = (buf.remaining() as u64).min(self.left).min(64 * 1_024) as usize;
        let mut chunk = vec![0u8; n];
        for b in &mut chunk {
            self.state = self.state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            *b = (self.state >> 56) as u8;
        }
        self.left -= n as u64;
        buf.put_slice(&chunk);
        Poll::Ready(Ok(()))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let config =
        args.next().or_else(|| std::env::var("TESSERA_CONFIG").ok()).ok_or("usage: streaming_upload CONFIG [MiB]")?;
    let mib: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);

    let client = Client::connect(ClientConfig::load(config.as_ref())?).await?;
    client.create_bucket("examples", Default::default()).await?;

    let source = Generator { left: mib << 20, state: 42 };
    let receipt = client.put_stream("examples", "streams/generated.bin", source, PutOptions::default()).await?;
    println!(
        "streamed {} bytes in, version {}, crc32c {:#010x}",
        receipt.size_bytes, receipt.version, receipt.content_crc32c
    );

    // Read it back as a stream: chunks arrive as stripes are decoded.
    let mut got = client.get("examples", "streams/generated.bin", GetOptions::default()).await?;
    let (mut crc, mut total, mut chunks) = (0u32, 0u64, 0u64);
    while let Some(chunk) = got.body.next_chunk().await? {
        crc = crc32c::crc32c_append(crc, &chunk);
        total += chunk.len() as u64;
        chunks += 1;
    }
    if total != receipt.size_bytes || crc != receipt.content_crc32c {
        return Err(format!(
            "read {total} bytes with crc32c {crc:#010x}; the receipt says {} / {:#010x}",
            receipt.size_bytes, receipt.content_crc32c
        )
        .into());
    }
    println!("read back {total} bytes in {chunks} chunks: crc32c matches the receipt");
    Ok(())
}
