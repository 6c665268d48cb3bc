//! A small io_uring driver owned by one core. Submission is eager (one
//! `io_uring_enter` per operation, batched when the SQ fills); completions
//! arrive through an eventfd that the core's tokio reactor watches, so disk
//! and network events are served by the same thread with no hand-off.
//!
//! Invariant: a buffer handed to the kernel stays alive until its CQE is
//! reaped, even when the future that submitted it is dropped (the buffer
//! moves into the slot and is freed at completion).

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::future::Future;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use io_uring::{opcode, squeue, types, IoUring};
use tokio::io::unix::AsyncFd;

use super::AlignedBuf;

/// Submission queue depth per core.
const RING_ENTRIES: u32 = 256;

enum SlotState {
    /// Submitted; the future may be waiting.
    InFlight { waker: Option<Waker> },
    /// Completed; result not yet taken.
    Done { result: i32 },
    /// The future was dropped; keep the buffer until the kernel is done.
    Abandoned { _buf: Option<AlignedBuf> },
}

/// One core's ring.
pub struct Uring {
    ring: RefCell<IoUring>,
    slots: RefCell<Vec<Option<SlotState>>>,
    free_slots: RefCell<Vec<usize>>,
    event: AsyncFd<OwnedFd>,
    in_flight: Cell<usize>,
}

impl Uring {
    /// Create a ring and its eventfd. Must be called on the core's thread
    /// inside its tokio runtime; call [`Uring::run`] as a task on it.
    pub fn new() -> io::Result<Rc<Uring>> {
        let ring = IoUring::new(RING_ENTRIES)?;
        // SAFETY: eventfd returns a new descriptor or -1; no memory passed.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just created and is owned by nobody else.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        ring.submitter().register_eventfd(owned.as_raw_fd())?;
        // SAFETY: we own the descriptor and it stays open as long as the AsyncFd.
        let event = unsafe { AsyncFd::register(owned) }.map_err(io::Error::from)?;
        Ok(Rc::new(Uring {
            ring: RefCell::new(ring),
            slots: RefCell::new(Vec::new()),
            free_slots: RefCell::new(Vec::new()),
            event,
            in_flight: Cell::new(0),
        }))
    }

    /// Operations submitted and not yet completed (a metrics gauge).
    pub fn in_flight(&self) -> usize {
        self.in_flight.get()
    }

    /// Reap completions forever. Spawn once per ring on its core.
    pub async fn run(self: Rc<Self>) {
        loop {
            let mut guard = match self.event.readable().await {
                Ok(g) => g,
                Err(e) => {
                    tracing::error!(error = %e, "io_uring eventfd failed; disk I/O on this core stops");
                    return;
                }
            };
            let mut counter = [0u8; 8];
            // SAFETY: reading 8 bytes into a stack array from our eventfd.
            let _ = unsafe { libc::read(self.event.as_raw_fd(), counter.as_mut_ptr().cast(), 8) };
            guard.clear_ready();
            self.reap();
        }
    }

    fn reap(&self) {
        let mut ring = self.ring.borrow_mut();
        let mut slots = self.slots.borrow_mut();
        for cqe in ring.completion() {
            let idx = cqe.user_data() as usize;
            let Some(slot) = slots.get_mut(idx) else { continue };
            match slot.take() {
                Some(SlotState::InFlight { waker }) => {
                    *slot = Some(SlotState::Done { result: cqe.result() });
                    if let Some(w) = waker {
                        w.wake();
                    }
                }
                Some(SlotState::Abandoned { .. }) => {
                    self.free_slots.borrow_mut().push(idx);
                    self.in_flight.set(self.in_flight.get() - 1);
                }
                other => *slot = other,
            }
        }
    }

    /// Push an entry (its user data set to a fresh slot) and submit.
    ///
    /// SAFETY (for callers): every buffer the entry points to must stay
    /// valid until completion; `Op` guarantees that by owning it.
    unsafe fn submit(&self, entry: squeue::Entry) -> io::Result<usize> {
        let idx = {
            let mut slots = self.slots.borrow_mut();
            let idx = self.free_slots.borrow_mut().pop().unwrap_or_else(|| {
                slots.push(None);
                slots.len() - 1
            });
            slots[idx] = Some(SlotState::InFlight { waker: None });
            idx
        };
        let entry = entry.user_data(idx as u64);
        let mut ring = self.ring.borrow_mut();
        // SAFETY: caller guarantees the entry's buffers outlive the operation.
        while unsafe { ring.submission().push(&entry) }.is_err() {
            if let Err(e) = ring.submit() {
                // Not queued: the kernel never saw it, so the slot is free.
                self.slots.borrow_mut()[idx] = None;
                self.free_slots.borrow_mut().push(idx);
                return Err(e);
            }
        }
        // From here the kernel may hold the buffer: the operation is in
        // flight even when this enter fails (the entry stays queued and
        // goes with the next one), so its buffer must not go back.
        self.in_flight.set(self.in_flight.get() + 1);
        if let Err(e) = ring.submit() {
            tracing::warn!(error = %e, "io_uring submit failed; the operation stays queued for the next submit");
        }
        Ok(idx)
    }

    async fn op(
        self: &Rc<Self>,
        entry: squeue::Entry,
        buf: Option<AlignedBuf>,
    ) -> (io::Result<u32>, Option<AlignedBuf>) {
        // SAFETY: `buf` (the only memory `entry` points to) moves into `Op`,
        // which keeps it alive until completion or hands it to the slot.
        let slot = match unsafe { self.submit(entry) } {
            Ok(s) => s,
            Err(e) => return (Err(e), buf),
        };
        Op { uring: self.clone(), slot, buf, done: false }.await
    }

    pub(super) async fn read_at(
        self: &Rc<Self>,
        file: &File,
        mut buf: AlignedBuf,
        len: usize,
        offset: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        if len > buf.capacity() {
            return (Err(io::Error::new(io::ErrorKind::InvalidInput, "read longer than buffer")), buf);
        }
        buf.set_len(len);
        self.transfer_all(file, buf, offset, Direction::Read).await
    }

    pub(super) async fn write_at(
        self: &Rc<Self>,
        file: &File,
        buf: AlignedBuf,
        offset: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        self.transfer_all(file, buf, offset, Direction::Write).await
    }

    /// Move all of `buf[..buf.len()]` to or from `offset`, resubmitting
    /// after short transfers; zero bytes moved is an error, never a loop.
    async fn transfer_all(
        self: &Rc<Self>,
        file: &File,
        mut buf: AlignedBuf,
        offset: u64,
        dir: Direction,
    ) -> (io::Result<()>, AlignedBuf) {
        let len = buf.len();
        let fd = types::Fd(file.as_raw_fd());
        let mut done = 0usize;
        while done < len {
            // SAFETY: pointer into buf's allocation, in bounds (done < len <= cap).
            let ptr = unsafe { buf.as_mut_ptr().add(done) };
            let (rest, at) = ((len - done) as u32, offset + done as u64);
            let entry = match dir {
                Direction::Read => opcode::Read::new(fd, ptr, rest).offset(at).build(),
                Direction::Write => opcode::Write::new(fd, ptr, rest).offset(at).build(),
            };
            let (res, b) = self.op(entry, Some(buf)).await;
            // Invariant: op returns the buffer it was given.
            #[allow(clippy::expect_used)]
            let b = b.expect("buffer returned");
            buf = b;
            match res {
                Ok(0) => {
                    let kind = match dir {
                        Direction::Read => io::ErrorKind::UnexpectedEof,
                        Direction::Write => io::ErrorKind::WriteZero,
                    };
                    return (Err(io::Error::from(kind)), buf);
                }
                Ok(n) => done += n as usize,
                Err(e) => return (Err(e), buf),
            }
        }
        (Ok(()), buf)
    }

    pub(super) async fn fdatasync(self: &Rc<Self>, file: &File) -> io::Result<()> {
        let entry = opcode::Fsync::new(types::Fd(file.as_raw_fd())).flags(types::FsyncFlags::DATASYNC).build();
        self.op(entry, None).await.0.map(|_| ())
    }
}

impl Drop for Uring {
    /// Closing a ring does not stop the kernel from finishing what it holds:
    /// an abandoned read would land in a buffer already freed (heap
    /// corruption). Wait for every submitted operation first.
    fn drop(&mut self) {
        let ring = self.ring.get_mut();
        let slots = self.slots.get_mut();
        let mut pending = slots
            .iter()
            .filter(|s| matches!(s, Some(SlotState::InFlight { .. } | SlotState::Abandoned { .. })))
            .count();
        while pending > 0 {
            if let Err(e) = ring.submit_and_wait(1) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // Cannot tell when the kernel is done: leak the buffers
                // rather than free memory it may still write.
                tracing::error!(error = %e, pending, "io_uring wait at shutdown failed; leaking in-flight buffers");
                for slot in slots.iter_mut() {
                    if let Some(SlotState::Abandoned { _buf }) = slot.take() {
                        std::mem::forget(_buf);
                    }
                }
                return;
            }
            for cqe in ring.completion() {
                if let Some(slot) = slots.get_mut(cqe.user_data() as usize) {
                    if matches!(slot, Some(SlotState::InFlight { .. } | SlotState::Abandoned { .. })) {
                        *slot = None;
                        pending -= 1;
                    }
                }
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Direction {
    Read,
    Write,
}

struct Op {
    uring: Rc<Uring>,
    slot: usize,
    buf: Option<AlignedBuf>,
    done: bool,
}

impl Future for Op {
    type Output = (io::Result<u32>, Option<AlignedBuf>);

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut slots = this.uring.slots.borrow_mut();
        let Some(state) = slots.get_mut(this.slot) else {
            return Poll::Ready((Err(io::Error::other("io_uring slot vanished")), this.buf.take()));
        };
        match state {
            Some(SlotState::Done { result }) => {
                let result = *result;
                *state = None;
                drop(slots);
                this.uring.free_slots.borrow_mut().push(this.slot);
                this.uring.in_flight.set(this.uring.in_flight.get() - 1);
                this.done = true;
                let res = if result < 0 { Err(io::Error::from_raw_os_error(-result)) } else { Ok(result as u32) };
                Poll::Ready((res, this.buf.take()))
            }
            Some(SlotState::InFlight { waker }) => {
                *waker = Some(cx.waker().clone());
                Poll::Pending
            }
            _ => Poll::Ready((Err(io::Error::other("io_uring slot in unexpected state")), this.buf.take())),
        }
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut slots = self.uring.slots.borrow_mut();
        if let Some(state) = slots.get_mut(self.slot) {
            match state {
                Some(SlotState::Done { .. }) => {
                    *state = None;
                    drop(slots);
                    self.uring.free_slots.borrow_mut().push(self.slot);
                    self.uring.in_flight.set(self.uring.in_flight.get() - 1);
                }
                _ => *state = Some(SlotState::Abandoned { _buf: self.buf.take() }),
            }
        }
    }
}
