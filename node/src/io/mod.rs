//! The I/O seam of a core: aligned buffers, their pool, and the `BlockIo`
//! trait with an io_uring and a pread/pwrite implementation. Buffer
//! ownership passes into an operation and comes back with its result, which
//! is what io_uring needs: the kernel may touch the buffer until completion.
#![allow(unsafe_code)]

mod buf;
mod psync;
mod uring;

pub use buf::{AlignedBuf, BufPool, ALIGN_BYTES};
pub use psync::Psync;
pub use uring::Uring;

use std::fs::File;
use std::io;
use std::rc::Rc;

/// Positioned block I/O on files opened with O_DIRECT. Every buffer, length
/// and offset is a multiple of [`ALIGN_BYTES`].
#[allow(async_fn_in_trait)]
pub trait BlockIo {
    /// Fill `buf[..len]` from `offset`; a short read (end of file) is an error.
    async fn read_at(&self, file: &File, buf: AlignedBuf, len: usize, offset: u64) -> (io::Result<()>, AlignedBuf);
    /// Write all of `buf[..buf.len()]` at `offset`.
    async fn write_at(&self, file: &File, buf: AlignedBuf, offset: u64) -> (io::Result<()>, AlignedBuf);
    /// Make every completed write to `file` durable (fdatasync).
    async fn fdatasync(&self, file: &File) -> io::Result<()>;
}

/// The backend a core uses, chosen at start-up: io_uring where the kernel
/// allows it, else plain pread/pwrite. Same behaviour, same tests.
#[derive(Clone)]
pub enum Io {
    /// The core's own ring.
    Uring(Rc<Uring>),
    /// Blocking syscalls on the core thread.
    Psync(Psync),
}

impl Io {
    /// Name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Io::Uring(_) => "io_uring",
            Io::Psync(_) => "psync",
        }
    }
}

impl BlockIo for Io {
    async fn read_at(&self, file: &File, buf: AlignedBuf, len: usize, offset: u64) -> (io::Result<()>, AlignedBuf) {
        match self {
            Io::Uring(u) => u.read_at(file, buf, len, offset).await,
            Io::Psync(p) => p.read_at(file, buf, len, offset).await,
        }
    }
    async fn write_at(&self, file: &File, buf: AlignedBuf, offset: u64) -> (io::Result<()>, AlignedBuf) {
        match self {
            Io::Uring(u) => u.write_at(file, buf, offset).await,
            Io::Psync(p) => p.write_at(file, buf, offset).await,
        }
    }
    async fn fdatasync(&self, file: &File) -> io::Result<()> {
        match self {
            Io::Uring(u) => u.fdatasync(file).await,
            Io::Psync(p) => p.fdatasync(file).await,
        }
    }
}

/// Open a data file with O_DIRECT (bypass the page cache: the disk, not
/// memory, is the source of truth), read-write, creating it if asked.
pub fn open_direct(path: &std::path::Path, create: bool) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
        .open(path)
}

/// Reserve `len` bytes for `file` so later writes do not allocate extents
/// (without this ext4 throughput drops 2-3x during writes).
pub fn fallocate(file: &File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: plain syscall on a valid, owned descriptor; no memory is passed.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Durably record a directory entry (after creating a file in `dir`).
pub fn fsync_dir(dir: &std::path::Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests;

/// Pin the calling thread to CPU `cpu`. Returns false where the OS refuses
/// (containers with restricted cpusets); the node then runs unpinned.
pub fn pin_current_thread(cpu: usize) -> bool {
    // SAFETY: cpu_set_t is plain data; CPU_SET writes within it for cpu < CPU_SETSIZE.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return false;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

/// Ask for larger UDP socket buffers (QUIC at multi-Gbit/s drops packets
/// with the defaults). Best effort: the kernel caps them at rmem_max/wmem_max.
pub fn set_udp_buffers(socket: &std::net::UdpSocket, bytes: usize) {
    use std::os::fd::AsRawFd;
    let v = bytes as libc::c_int;
    for opt in [libc::SO_RCVBUF, libc::SO_SNDBUF] {
        // SAFETY: setsockopt with a pointer to a live c_int of the stated size.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}
