//! The pread/pwrite backend: blocking syscalls on the core thread. Used
//! where io_uring is unavailable (old kernels, seccomp) and as the second
//! implementation every engine test runs against.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::AlignedBuf;

/// Blocking positioned I/O.
#[derive(Clone, Copy, Debug, Default)]
pub struct Psync;

impl Psync {
    pub(super) async fn read_at(
        &self,
        file: &File,
        mut buf: AlignedBuf,
        len: usize,
        offset: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        if len > buf.capacity() {
            return (Err(io::Error::new(io::ErrorKind::InvalidInput, "read longer than buffer")), buf);
        }
        buf.set_len(len);
        let r = file.read_exact_at(buf.as_mut_slice(), offset);
        (r, buf)
    }

    pub(super) async fn write_at(&self, file: &File, buf: AlignedBuf, offset: u64) -> (io::Result<()>, AlignedBuf) {
        let r = file.write_all_at(buf.as_slice(), offset);
        (r, buf)
    }

    pub(super) async fn fdatasync(&self, file: &File) -> io::Result<()> {
        file.sync_data()
    }
}
