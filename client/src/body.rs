//! A streaming object body: stripes are fetched ahead, at most
//! `stripes_in_flight` at a time, and handed out in order. A full read also
//! checks the whole-object crc32c at the end.

use std::collections::VecDeque;
use std::net::SocketAddr;

use tessera_wire::{ByteRange, ObjectMeta, TargetId};
use tokio::task::JoinHandle;

use crate::{Client, ClientError};

/// The bytes of a download, chunk by chunk.
pub struct ObjectBody {
    client: Client,
    target: TargetId,
    addr: SocketAddr,
    bucket: String,
    key: String,
    meta: ObjectMeta,
    /// Next byte offset to request.
    next_offset: u64,
    /// End of the requested range.
    end: u64,
    in_flight: VecDeque<JoinHandle<Result<Vec<u8>, ClientError>>>,
    /// Running crc of a full read, checked at the end.
    crc: Option<u32>,
}

impl ObjectBody {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client: Client,
        target: TargetId,
        addr: SocketAddr,
        bucket: String,
        key: String,
        meta: ObjectMeta,
        offset: u64,
        len: u64,
        full: bool,
    ) -> ObjectBody {
        ObjectBody {
            client,
            target,
            addr,
            bucket,
            key,
            meta,
            next_offset: offset,
            end: offset + len,
            in_flight: VecDeque::new(),
            crc: full.then_some(0),
        }
    }

    fn launch(&mut self) {
        let window = self.client.inner.cfg.stripes_in_flight;
        let stripe_bytes = u64::from(self.meta.stripe_bytes.max(1));
        while self.in_flight.len() < window && self.next_offset < self.end {
            let stripe = self.next_offset / stripe_bytes;
            let stripe_start = stripe * stripe_bytes;
            let stripe_len = stripe_bytes.min(self.meta.size_bytes - stripe_start);
            let within = self.next_offset - stripe_start;
            let take = (stripe_len - within).min(self.end - self.next_offset);
            let range = (within != 0 || take != stripe_len).then_some(ByteRange { offset: within, len: take });
            let client = self.client.clone();
            let (target, addr, bucket, key, version) =
                (self.target, self.addr, self.bucket.clone(), self.key.clone(), self.meta.version);
            self.in_flight.push_back(tokio::spawn(async move {
                client.fetch_stripe(target, addr, bucket, key, version, stripe as u32, range).await
            }));
            self.next_offset += take;
        }
    }

    /// The next chunk, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        self.launch();
        let Some(h) = self.in_flight.pop_front() else {
            if let Some(crc) = self.crc.take() {
                if crc != self.meta.content_crc32c {
                    return Err(ClientError::Integrity {
                        what: format!("{}/{} (whole object)", self.bucket, self.key),
                        expected: self.meta.content_crc32c,
                        computed: crc,
                    });
                }
            }
            return Ok(None);
        };
        let chunk = h.await.map_err(|e| ClientError::Connection {
            addr: self.addr.to_string(),
            detail: format!("download task failed: {e}"),
        })??;
        if let Some(crc) = self.crc.as_mut() {
            *crc = crc32c::crc32c_append(*crc, &chunk);
        }
        self.launch();
        Ok(Some(chunk))
    }

    /// Copy the whole body into `out`.
    pub async fn copy_to(mut self, out: &mut (impl tokio::io::AsyncWrite + Unpin)) -> Result<u64, ClientError> {
        use tokio::io::AsyncWriteExt;
        let mut n = 0u64;
        while let Some(chunk) = self.next_chunk().await? {
            out.write_all(&chunk).await.map_err(ClientError::Output)?;
            n += chunk.len() as u64;
        }
        out.flush().await.map_err(ClientError::Output)?;
        Ok(n)
    }
}

impl Drop for ObjectBody {
    fn drop(&mut self) {
        for h in &self.in_flight {
            h.abort();
        }
    }
}
