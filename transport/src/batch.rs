//! `RecvBatch`: caller-owned, reusable receive buffers.
//!
//! Layout: one arena of `datagram_slots` slots of `slot_len` bytes each (one
//! received datagram, or one GRO-coalesced run of datagrams, per slot), a list
//! of frame entries, and a few "large" buffers for reassembled frames.
//!
//! Invariants:
//! * Everything is allocated in `new`; `clear` and the transport's filling
//!   never allocate.
//! * An arena entry lies inside the slot it was received in.
//! * A large buffer is exchanged (`std::mem::swap`), never copied, with the
//!   reassembler's buffer: the batch returns its previous buffer to the
//!   reassembler for reuse, so a steady stream of large frames allocates
//!   nothing.

use std::net::SocketAddr;

/// One received frame, borrowed from a [`RecvBatch`].
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// The sender's address (for a reassembled frame: the sender of its
    /// fragments).
    pub source: SocketAddr,
    /// The whole frame.
    pub bytes: &'a [u8],
}

#[derive(Debug, Clone, Copy)]
enum Location {
    Arena { start: usize, len: usize },
    Large(usize),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    source: SocketAddr,
    location: Location,
}

/// Receive buffers owned by the caller and filled by
/// [`Transport::recv_batch`](crate::Transport::recv_batch). Make one with the
/// transport's [`new_recv_batch`](crate::Transport::new_recv_batch) and reuse it.
#[derive(Debug)]
pub struct RecvBatch {
    arena: Box<[u8]>,
    slot_len: usize,
    datagram_slots: usize,
    entries: Vec<Entry>,
    frames_max: usize,
    large: Box<[Vec<u8>]>,
    large_used: usize,
}

impl RecvBatch {
    /// Allocates a batch: `datagram_slots` receive slots of `slot_len` bytes,
    /// room for `frames_max` frames, and `large_frames_max` buffers for
    /// reassembled frames (which grow to the largest frame seen, then stay).
    ///
    /// # Panics
    /// If a count is 0, `frames_max < datagram_slots`, or the arena size
    /// overflows: programmer errors in the transport that sizes the batch.
    #[must_use]
    pub(crate) fn new(
        datagram_slots: usize,
        slot_len: usize,
        frames_max: usize,
        large_frames_max: usize,
    ) -> RecvBatch {
        assert!(datagram_slots > 0 && slot_len > 0 && large_frames_max > 0);
        assert!(
            frames_max >= datagram_slots,
            "a slot holds at least one frame"
        );
        let arena_len = datagram_slots
            .checked_mul(slot_len)
            .expect("arena size overflows");
        let large: Vec<Vec<u8>> = (0..large_frames_max).map(|_| Vec::new()).collect();
        RecvBatch {
            arena: vec![0u8; arena_len].into_boxed_slice(),
            slot_len,
            datagram_slots,
            entries: Vec::with_capacity(frames_max),
            frames_max,
            large: large.into_boxed_slice(),
            large_used: 0,
        }
    }

    /// Number of frames in the batch.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the batch holds no frame.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `index`-th frame, in arrival order.
    #[must_use]
    pub fn get(&self, index: usize) -> Option<Frame<'_>> {
        let entry = self.entries.get(index)?;
        let bytes = match entry.location {
            Location::Arena { start, len } => &self.arena[start..start + len],
            Location::Large(large) => &self.large[large][..],
        };
        Some(Frame {
            source: entry.source,
            bytes,
        })
    }

    /// The frames, in arrival order.
    pub fn iter(&self) -> Frames<'_> {
        Frames {
            batch: self,
            next: 0,
        }
    }

    /// The most frames one batch can hold.
    #[must_use]
    pub fn frames_max(&self) -> usize {
        self.frames_max
    }

    /// Forgets the frames; keeps every buffer.
    pub fn clear(&mut self) {
        self.entries.clear();
        self.large_used = 0;
    }

    // --- for transports -------------------------------------------------------

    pub(crate) fn datagram_slots(&self) -> usize {
        self.datagram_slots
    }

    pub(crate) fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// The arena; slot `i` is `arena[i * slot_len..(i + 1) * slot_len]`.
    pub(crate) fn arena_mut(&mut self) -> &mut [u8] {
        &mut self.arena
    }

    pub(crate) fn arena(&self) -> &[u8] {
        &self.arena
    }

    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.frames_max
    }

    /// Records arena bytes `start..start + len` as a frame. Returns `false`
    /// (and records nothing) when the batch is full.
    pub(crate) fn push_arena(&mut self, source: SocketAddr, start: usize, len: usize) -> bool {
        debug_assert!(start + len <= self.arena.len());
        if self.is_full() {
            return false;
        }
        self.entries.push(Entry {
            source,
            location: Location::Arena { start, len },
        });
        true
    }

    /// The next free large buffer, if any (to swap a reassembled frame into).
    pub(crate) fn next_large(&mut self) -> Option<&mut Vec<u8>> {
        if self.is_full() {
            return None;
        }
        self.large.get_mut(self.large_used)
    }

    /// Records the buffer last handed out by `next_large` as a frame.
    pub(crate) fn commit_large(&mut self, source: SocketAddr) {
        debug_assert!(self.large_used < self.large.len() && !self.is_full());
        self.entries.push(Entry {
            source,
            location: Location::Large(self.large_used),
        });
        self.large_used += 1;
    }
}

/// Iterator over the frames of a [`RecvBatch`], in arrival order.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    batch: &'a RecvBatch,
    next: usize,
}

impl<'a> Iterator for Frames<'a> {
    type Item = Frame<'a>;

    fn next(&mut self) -> Option<Frame<'a>> {
        let frame = self.batch.get(self.next)?;
        self.next += 1;
        Some(frame)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.batch.len() - self.next;
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for Frames<'_> {}

impl<'a> IntoIterator for &'a RecvBatch {
    type Item = Frame<'a>;
    type IntoIter = Frames<'a>;

    fn into_iter(self) -> Frames<'a> {
        self.iter()
    }
}
