//! A reader that gives up when its source stalls: a replication stream
//! that stops sending mid-payload would otherwise hold a write (and its
//! buffers) open forever. The limit is on silence, not on the whole
//! transfer, so a large replica over a slow link still completes.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `inner`, failing with `TimedOut` after `idle` without a byte.
pub(crate) struct IdleLimit<R> {
    inner: R,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<R> IdleLimit<R> {
    pub(crate) fn new(inner: R, idle: Duration) -> IdleLimit<R> {
        IdleLimit { inner, idle, deadline: Box::pin(tokio::time::sleep(idle)) }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for IdleLimit<R> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    let next = Instant::now() + self.idle;
                    self.deadline.as_mut().reset(next);
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the sender sent nothing for {} ms", self.idle.as_millis()),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[tokio::test]
    async fn a_stalled_source_times_out_and_a_slow_one_does_not() {
        // Slow but steady: a byte every 20 ms for 40 bytes (longer in all
        // than the limit) under a 500 ms limit on silence.
        let (mut tx, rx) = tokio::io::duplex(64);
        let feeder = tokio::spawn(async move {
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(20)).await;
                tokio::io::AsyncWriteExt::write_all(&mut tx, b"x").await.expect("write");
            }
        });
        let mut got = Vec::new();
        IdleLimit::new(rx, Duration::from_millis(500)).take(40).read_to_end(&mut got).await.expect("slow source");
        assert_eq!(got.len(), 40);
        feeder.await.expect("feeder");
        // Stalled: two bytes, then silence.
        let (mut tx, rx) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut tx, b"xy").await.expect("write");
        let mut got = Vec::new();
        let err = IdleLimit::new(rx, Duration::from_millis(500)).read_to_end(&mut got).await.expect_err("stalled");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(got, b"xy");
        std::mem::drop(tx);
    }
}
