//! Recycled byte buffers: the per-message path takes and returns buffers
//! here, so in steady state it allocates nothing.

#[derive(Debug, Default)]
pub(crate) struct BufPool {
    free: Vec<Vec<u8>>,
}

/// Buffers kept for reuse at most; more are freed.
const POOL_BUFFERS_MAX: usize = 8192;

impl BufPool {
    /// A buffer holding a copy of `bytes`.
    pub(crate) fn copy_of(&mut self, bytes: &[u8]) -> Vec<u8> {
        let mut buf = self.free.pop().unwrap_or_default();
        debug_assert!(buf.is_empty());
        buf.extend_from_slice(bytes);
        buf
    }

    /// An empty buffer (from the pool when it has one).
    pub(crate) fn take(&mut self) -> Vec<u8> {
        let buf = self.free.pop().unwrap_or_default();
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
