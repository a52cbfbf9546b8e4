//! Recycled byte buffers: the per-message path takes and returns buffers
//! here, so in steady state it allocates nothing.

#[derive(Debug, Default)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
}

/// Buffers kept for reuse at most; more are freed.
const POOL_BUFFERS_MAX: usize = 8192;
/// Capacity of a new buffer. Buffers circulate between uses of different
/// sizes (a delivered payload, then a stored message with its tag and causal
/// header): made this large, a small message never grows a recycled buffer.
/// Larger messages grow a buffer once; it keeps that capacity.
const BUF_CAPACITY_MIN: usize = 256;

impl BufPool {
    /// A buffer holding a copy of `bytes`.
    pub(crate) fn copy_of(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = self.take();
        debug_assert!(buf.is_empty());
        buf.extend_from_slice(bytes);
        buf
    }

    /// An empty buffer (from the pool when it has one).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let buf = self
            .free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_CAPACITY_MIN));
        debug_assert!(buf.is_empty());
        buf
    }

    /// A buffer holding `tag` then a copy of `body` (a stored data message).
    pub(crate) fn tagged(&mut self, tag: u8, body: &[u8]) -> Vec<u8> {
        let mut buf = self.take();
        buf.push(tag);
        buf.extend_from_slice(body);
        buf
    }

    pub(crate) fn put(&mut self, mut buf: Vec<u8>) {
        if self.free.len() < POOL_BUFFERS_MAX {
            buf.clear();
            self.free.push(buf);
        }
    }
}
