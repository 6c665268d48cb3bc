//! A streaming object body: the stripes covering the requested range are
//! fetched ahead, at most `stripes_in_flight` at a time, and handed out in
//! order. A full read also checks the whole-object crc32c at the end.

use std::collections::VecDeque;
use std::sync::Arc;

use tessera_wire::stripe::{Layout, StripeSlice};
use tessera_wire::ObjectMeta;
use tokio::task::JoinHandle;

use crate::view::MapView;
use crate::{Client, ClientError};

/// The bytes of a download, chunk by chunk.
pub struct ObjectBody {
    client: Client,
    view: Arc<MapView>,
    bucket: String,
    key: String,
    meta: ObjectMeta,
    todo: VecDeque<StripeSlice>,
    in_flight: VecDeque<JoinHandle<Result<Vec<u8>, ClientError>>>,
    /// Running crc of a full read, checked at the end.
    crc: Option<u32>,
    /// The first chunk, fetched before the body was handed out.
    ready: Option<Option<Vec<u8>>>,
}

impl ObjectBody {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        client: Client,
        view: Arc<MapView>,
        bucket: String,
        key: String,
        meta: ObjectMeta,
        offset: u64,
        len: u64,
        full: bool,
    ) -> ObjectBody {
        let todo = Layout::of(&meta).slices(offset, len).into();
        ObjectBody {
            client,
            view,
            bucket,
            key,
            meta,
            todo,
            in_flight: VecDeque::new(),
            crc: full.then_some(0),
            ready: None,
        }
    }

    fn launch(&mut self) {
        let window = self.client.inner.cfg.stripes_in_flight.max(1);
        while self.in_flight.len() < window {
            let Some(slice) = self.todo.pop_front() else { break };
            let (client, view, bucket, key, meta) =
                (self.client.clone(), self.view.clone(), self.bucket.clone(), self.key.clone(), self.meta.clone());
            self.in_flight.push_back(tokio::spawn(async move {
                crate::read::fetch_stripe(&client, &view, &bucket, &key, &meta, slice).await
            }));
        }
    }

    /// Fetch the first chunk now, so a version that vanished before any
    /// byte was handed out can be retried by the caller.
    pub(crate) async fn prefetch(&mut self) -> Result<(), ClientError> {
        let first = self.next_chunk().await?;
        self.ready = Some(first);
        Ok(())
    }

    /// The next chunk, or `None` at the end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ClientError> {
        if let Some(chunk) = self.ready.take() {
            return Ok(chunk);
        }
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
            addr: String::new(),
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
