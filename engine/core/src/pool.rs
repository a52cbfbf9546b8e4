//! Recycled byte buffers: the per-message path takes and returns buffers
//! here, so in steady state it allocates nothing.
//!
//! The pool keeps buffers up to a total capacity (not a count), so that the
//! most messages ever in flight at once — a few windows of the largest
//! messages in use — stay pooled instead of being freed and made again on the
//! next burst.

#[derive(Debug, Default)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
    /// Total capacity of the buffers in `free`.
    bytes: usize,
    /// The largest buffer asked for so far: new buffers are made this large,
    /// so that a buffer made for a small use (an ack frame) is not grown
    /// again by the next message. (With only the 256-byte minimum, 1 KiB
    /// messages cost 0.06 allocations per delivery in a 3-sender run, all
    /// regrowths; with this, 0.0004.)
    largest: usize,
}

/// Total capacity the pool keeps at most; beyond it buffers are freed.
const POOL_BYTES_MAX: usize = 64 << 20;
/// Buffers kept at most (bounds the pool's own vector).
const POOL_BUFFERS_MAX: usize = 65_536;
/// Capacity of a new buffer at least. Buffers circulate between uses of
/// different sizes (a delivered payload, then a stored message with its tag
/// and causal header): made this large, a small message never grows a
/// recycled buffer. Larger messages grow a buffer once; it keeps that size.
const BUF_CAPACITY_MIN: usize = 256;

impl BufPool {
    /// An empty buffer with room for `len` bytes (from the pool when it has one).
    pub(crate) fn take_with(&mut self, len: usize) -> Vec<u8> {
        self.largest = self.largest.max(len);
        match self.free.pop() {
            Some(mut buf) => {
                self.bytes -= buf.capacity();
                debug_assert!(buf.is_empty());
                buf.reserve(len);
                buf
            }
            None => Vec::with_capacity(len.max(BUF_CAPACITY_MIN).max(self.largest)),
        }
    }

    /// An empty buffer (from the pool when it has one).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.take_with(0)
    }

    /// A buffer holding a copy of `bytes`.
    pub(crate) fn copy_of(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = self.take_with(bytes.len());
        buf.extend_from_slice(bytes);
        buf
    }

    /// A buffer holding `tag` then a copy of `body` (a stored data message).
    pub(crate) fn tagged(&mut self, tag: u8, body: &[u8]) -> Vec<u8> {
        let mut buf = self.take_with(1 + body.len());
        buf.push(tag);
        buf.extend_from_slice(body);
        buf
    }

    pub(crate) fn put(&mut self, mut buf: Vec<u8>) {
        let capacity = buf.capacity();
        if self.free.len() < POOL_BUFFERS_MAX && self.bytes + capacity <= POOL_BYTES_MAX {
            buf.clear();
            self.bytes += capacity;
            self.free.push(buf);
        }
    }
}
