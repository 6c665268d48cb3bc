//! The same test body against both backends.

use super::*;

async fn round_trip(io: Io, dir: &std::path::Path) {
    let path = dir.join(format!("f-{}", io.name()));
    let file = open_direct(&path, true).expect("open");
    fallocate(&file, 1 << 20).expect("fallocate");
    let pool = BufPool::default();
    let mut w = pool.take(3 * ALIGN_BYTES);
    w.set_len(3 * ALIGN_BYTES);
    for (i, b) in w.as_mut_slice().iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let (r, w) = io.write_at(&file, w, 8 * ALIGN_BYTES as u64).await;
    r.expect("write");
    io.fdatasync(&file).await.expect("fdatasync");
    let (r, got) = io.read_at(&file, pool.take(3 * ALIGN_BYTES), 3 * ALIGN_BYTES, 8 * ALIGN_BYTES as u64).await;
    r.expect("read");
    assert_eq!(got.as_slice(), w.as_slice());
    let (r, _) = io.read_at(&file, pool.take(ALIGN_BYTES), ALIGN_BYTES, 1 << 20).await;
    assert!(r.is_err(), "read past the end must fail, not return short data");
}

fn with_runtime(f: impl FnOnce(std::path::PathBuf) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let local = tokio::task::LocalSet::new();
    let dir = std::env::temp_dir().join(format!("tessera-io-{}-{:?}", std::process::id(), std::thread::current().id()));
    std::fs::create_dir_all(&dir).expect("dir");
    local.block_on(&rt, f(dir.clone()));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn psync_round_trip() {
    with_runtime(|dir| Box::pin(async move { round_trip(Io::Psync(Psync), &dir).await }));
}

#[test]
fn uring_round_trip() {
    with_runtime(|dir| {
        Box::pin(async move {
            let ring = Uring::new().expect("io_uring available");
            tokio::task::spawn_local(ring.clone().run());
            round_trip(Io::Uring(ring), &dir).await
        })
    });
}

#[test]
fn dropped_uring_op_keeps_its_buffer_alive() {
    with_runtime(|dir| {
        Box::pin(async move {
            let ring = Uring::new().expect("io_uring available");
            tokio::task::spawn_local(ring.clone().run());
            let file = open_direct(&dir.join("drop"), true).expect("open");
            fallocate(&file, 1 << 20).expect("fallocate");
            for _ in 0..50 {
                let mut b = AlignedBuf::new(1 << 16);
                b.set_len(1 << 16);
                let fut = ring.write_at(&file, b, 0);
                // Poll once then drop: the write is in flight.
                let _ = tokio::time::timeout(std::time::Duration::from_nanos(1), fut).await;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            assert_eq!(ring.in_flight(), 0, "every abandoned op is reaped");
        })
    });
}

/// A ring dropped with a read in flight must wait for the kernel to finish
/// it before freeing the buffer. A pipe makes the read wait for a writer
/// that comes after the drop began; the ring must consume those bytes (an
/// early teardown cancels the read and leaves them in the pipe, and an
/// abandoned O_DIRECT read would land in freed heap memory).
#[test]
fn dropping_the_ring_waits_for_operations_the_kernel_still_holds() {
    use std::io::Read;
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two descriptors into the array it is given.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0, "pipe2");
    // SAFETY: both descriptors were just created and are owned here only.
    let (mut reader, writer) = unsafe { (std::fs::File::from_raw_fd(fds[0]), std::fs::File::from_raw_fd(fds[1])) };
    with_runtime(|_dir| {
        let reader = reader.try_clone().expect("dup");
        Box::pin(async move {
            // No reaper task: only this handle keeps the ring alive.
            let ring = Uring::new().expect("io_uring available");
            let read = ring.read_at(&reader, AlignedBuf::new(ALIGN_BYTES), ALIGN_BYTES, 0);
            // Poll once (submits) then drop the future: the read is abandoned.
            let _ = tokio::time::timeout(std::time::Duration::from_nanos(1), read).await;
            assert_eq!(ring.in_flight(), 1, "the read is in flight");
            let feeder = std::thread::spawn(move || {
                use std::io::Write;
                std::thread::sleep(std::time::Duration::from_millis(200));
                (&writer).write_all(&[7u8; ALIGN_BYTES]).expect("write to pipe");
            });
            drop(ring);
            feeder.join().expect("feeder");
        })
    });
    // SAFETY: sets a flag on a descriptor we own.
    unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
    let mut rest = [0u8; ALIGN_BYTES];
    match reader.read(&mut rest) {
        // Empty: end of file (the writer has closed) or nothing yet.
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the ring was torn down before its read finished (pipe still holds data: {other:?})"),
    }
}
