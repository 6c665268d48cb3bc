//! 4 KiB-aligned buffers for O_DIRECT, and a per-core pool of them, because
//! allocating a fresh buffer per write halves throughput.

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::cell::RefCell;
use std::ptr::NonNull;
use std::rc::Rc;

/// Alignment (and size granularity) of direct I/O.
pub const ALIGN_BYTES: usize = 4_096;

/// Largest buffer the pool keeps: a record of the largest shard plus its header.
const POOLED_BYTES_MAX: usize = 8 * 1_048_576;
/// Buffers kept per size class; more are freed on return.
const POOLED_PER_CLASS_MAX: usize = 64;
/// Bytes kept by one pool over all classes: what a burst of large writes
/// (or a flood of stalled ones) leaves resident after it is over.
const POOLED_BYTES_TOTAL_MAX: usize = 128 * 1_048_576;
const CLASSES: usize = 12; // 4 KiB << 0..=11 = 4 KiB ..= 8 MiB

const _: () = assert!(ALIGN_BYTES << (CLASSES - 1) == POOLED_BYTES_MAX);

/// An owned, zero-initialised, 4 KiB-aligned byte buffer with a length.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    cap: usize,
    len: usize,
    pool: Option<Rc<PoolInner>>,
}

impl AlignedBuf {
    /// A buffer of at least `cap` bytes (rounded up to 4 KiB), length 0.
    pub fn new(cap: usize) -> AlignedBuf {
        let cap = round_up(cap.max(1));
        // Invariant: cap is a non-zero multiple of 4096, so the layout is valid.
        #[allow(clippy::expect_used)]
        let layout = Layout::from_size_align(cap, ALIGN_BYTES).expect("aligned layout");
        // SAFETY: layout has non-zero size.
        let raw = unsafe { alloc_zeroed(layout) };
        let Some(ptr) = NonNull::new(raw) else { std::alloc::handle_alloc_error(layout) };
        AlignedBuf { ptr, cap, len: 0, pool: None }
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Bytes in use.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no bytes are in use.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Set the bytes in use; contents beyond the old length are whatever the
    /// buffer held (zeroes when new, old data when pooled).
    pub fn set_len(&mut self, len: usize) {
        assert!(len <= self.cap, "set_len {len} beyond capacity {}", self.cap);
        self.len = len;
    }

    /// The bytes in use.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for cap bytes, initialised (zeroed at alloc), len <= cap.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes in use, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and we hold &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// The whole capacity, mutably (for reads that fill it).
    pub fn full_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.cap) }
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            if let Some(class) = class_of(self.cap) {
                let mut free = pool.free.borrow_mut();
                let pooled = pool.pooled_bytes.get();
                if free[class].len() < POOLED_PER_CLASS_MAX && pooled + self.cap <= POOLED_BYTES_TOTAL_MAX {
                    let b = AlignedBuf { ptr: self.ptr, cap: self.cap, len: 0, pool: None };
                    free[class].push(b);
                    pool.pooled_bytes.set(pooled + self.cap);
                    return;
                }
            }
        }
        // Invariant: the same layout was valid at allocation.
        #[allow(clippy::expect_used)]
        let layout = Layout::from_size_align(self.cap, ALIGN_BYTES).expect("aligned layout");
        // SAFETY: ptr was allocated with this layout and is not used again.
        unsafe { dealloc(self.ptr.as_ptr(), layout) };
    }
}

// SAFETY: the buffer owns its allocation exclusively; the pool handle is an
// Rc and is only ever set on buffers that stay on their core's thread, so
// AlignedBuf is deliberately NOT Send (no impl here).

/// Round up to a multiple of [`ALIGN_BYTES`].
pub(crate) fn round_up(n: usize) -> usize {
    n.div_ceil(ALIGN_BYTES) * ALIGN_BYTES
}

fn class_of(cap: usize) -> Option<usize> {
    if !cap.is_power_of_two() || !(ALIGN_BYTES..=POOLED_BYTES_MAX).contains(&cap) {
        return None;
    }
    Some((cap / ALIGN_BYTES).trailing_zeros() as usize)
}

struct PoolInner {
    free: RefCell<Vec<Vec<AlignedBuf>>>,
    /// Capacity of the buffers in `free`.
    pooled_bytes: std::cell::Cell<usize>,
}

/// A core's pool of aligned buffers in power-of-two size classes. Buffers
/// taken from it go back on drop.
#[derive(Clone)]
pub struct BufPool {
    inner: Rc<PoolInner>,
}

impl Default for BufPool {
    fn default() -> Self {
        BufPool {
            inner: Rc::new(PoolInner {
                free: RefCell::new((0..CLASSES).map(|_| Vec::new()).collect()),
                pooled_bytes: std::cell::Cell::new(0),
            }),
        }
    }
}

impl BufPool {
    /// A buffer with capacity of at least `min_bytes` and length 0.
    pub fn take(&self, min_bytes: usize) -> AlignedBuf {
        let want = round_up(min_bytes.max(1));
        let cap = want.next_power_of_two();
        let Some(class) = class_of(cap) else {
            return AlignedBuf::new(want);
        };
        let reused = self.inner.free.borrow_mut()[class].pop();
        if let Some(r) = &reused {
            self.inner.pooled_bytes.set(self.inner.pooled_bytes.get() - r.cap);
        }
        let mut b = reused.unwrap_or_else(|| AlignedBuf::new(cap));
        b.pool = Some(self.inner.clone());
        b.len = 0;
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many large buffers were out at once, the pool keeps at most
    /// its byte cap when they come back, and reuses what it keeps.
    #[test]
    fn the_pool_keeps_at_most_its_byte_cap() {
        let pool = BufPool::default();
        let out: Vec<AlignedBuf> = (0..100).map(|_| pool.take(4 * 1_048_576 + ALIGN_BYTES)).collect();
        let cap = out[0].capacity();
        drop(out);
        let kept = pool.inner.pooled_bytes.get();
        assert!(kept <= POOLED_BYTES_TOTAL_MAX && kept + cap > POOLED_BYTES_TOTAL_MAX, "{kept}");
        let again = pool.take(4 * 1_048_576 + ALIGN_BYTES);
        assert_eq!(pool.inner.pooled_bytes.get(), kept - cap, "a kept buffer is reused");
        drop(again);
        assert_eq!(pool.inner.pooled_bytes.get(), kept);
    }
}
