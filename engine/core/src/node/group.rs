//! A group this node is a member of, in the current epoch (domain view).
//!
//! Each epoch starts fresh streams (sequence numbers restart at 1); the
//! group view id only grows when membership changes. `streams` and `acks` are
//! indexed by rank in `view.members`.

use std::collections::VecDeque;

use super::stream::Stream;
use super::transfer::{Donation, Incoming};
use crate::id::{MemberId, ViewId};
use crate::pool::BufPool;
use crate::time::Instant;
use crate::view::GroupView;

#[derive(Debug)]
pub(crate) struct LocalGroup {
    pub(crate) view: GroupView,
    pub(crate) epoch: ViewId,
    pub(crate) streams: Vec<Stream>,
    pub(crate) me_index: usize,
    /// `acks[m][s]`: member m reported holding sender s's messages up to this.
    pub(crate) acks: Vec<Vec<u64>>,
    /// False while this member waits for a state transfer.
    pub(crate) has_state: bool,
    /// Highest own seq put in a frame at least once.
    pub(crate) transmitted: u64,
    /// SafeSends delivered in this epoch before its flush (durable mode
    /// logs the count when the flush starts: see `durable::EPOCH_END`).
    pub(crate) safe_delivered_before_flush: u64,
    /// Bytes of own messages transmitted and not yet stable (the byte window).
    pub(crate) in_flight_bytes: u64,
    /// Bytes of own messages in the stream not yet transmitted (the queue
    /// behind the windows; `send_queue_bytes_max` bounds it).
    pub(crate) unsent_bytes: u64,
    pub(crate) ack_dirty: bool,
    /// Data received since our last ack (bytes, messages): past a quarter
    /// of the senders' window the ack goes out at once, so that the window,
    /// not the ack period, paces a fast sender.
    pub(crate) unacked: (u64, u64),
    pub(crate) next_ack_at: Instant,
    /// While anything is unstable, acks are repeated at this pace.
    pub(crate) next_ack_refresh_at: Instant,
    /// Sends made while a view change is under way; sent in the next epoch.
    pub(crate) deferred: VecDeque<Vec<u8>>,
    /// NAKed ranges of own messages to resend: (to, from, to_seq).
    pub(crate) retransmit: VecDeque<(MemberId, u64, u64)>,
    pub(crate) incoming: Option<Incoming>,
    pub(crate) donation: Option<Donation>,
    /// The total order still to deliver: ranges announced by the sequencer
    /// (rank 0), front first (docs/ordering.md).
    pub(crate) order: VecDeque<OrderSlot>,
    /// The sequencer's stream is read for announcements up to this seq.
    pub(crate) order_read: u64,
    /// At the sequencer: per stream, the seq up to which it was announced.
    pub(crate) announced: Vec<u64>,
    /// Scratch for the quorum computation (no allocation per ack).
    pub(crate) scratch: Vec<u64>,
}

/// One announced range of the total order, as a receiver queues it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OrderSlot {
    /// Rank of the sender in the view.
    pub(crate) sender: usize,
    /// Next seq of the range to deliver.
    pub(crate) lo: u64,
    pub(crate) hi: u64,
    /// Seq of the announcement in the sequencer's stream (0: ordered by the
    /// flush, not announced).
    pub(crate) at: u64,
}

/// Rank of the sequencer in the group view.
pub(crate) const SEQUENCER: usize = 0;

/// Resend requests kept per group; more are dropped (the receiver asks again).
pub(crate) const RETRANSMIT_QUEUE_MAX: usize = 64;

impl LocalGroup {
    pub(crate) fn new(
        view: GroupView,
        epoch: ViewId,
        me: MemberId,
        has_state: bool,
        now: Instant,
    ) -> LocalGroup {
        let me_index = view
            .members
            .iter()
            .position(|member| *member == me)
            .expect("member of its own group view");
        let count = view.members.len();
        LocalGroup {
            streams: view
                .members
                .iter()
                .map(|member| Stream::new(*member))
                .collect(),
            acks: vec![vec![0; count]; count],
            view,
            epoch,
            me_index,
            has_state,
            transmitted: 0,
            safe_delivered_before_flush: 0,
            in_flight_bytes: 0,
            unsent_bytes: 0,
            ack_dirty: false,
            unacked: (0, 0),
            next_ack_at: now,
            next_ack_refresh_at: now,
            deferred: VecDeque::new(),
            retransmit: VecDeque::new(),
            incoming: None,
            donation: None,
            order: VecDeque::new(),
            order_read: 0,
            announced: vec![0; count],
            scratch: Vec::with_capacity(count),
        }
    }

    pub(crate) fn index_of(&self, member: MemberId) -> Option<usize> {
        self.view
            .members
            .iter()
            .position(|candidate| *candidate == member)
    }

    pub(crate) fn me(&self) -> MemberId {
        self.view.members[self.me_index]
    }

    /// Recompute stability (and SafeSend's threshold) of every stream from
    /// the ack matrix. `quorum`: acknowledgements a safe message needs
    /// (None: every member).
    pub(crate) fn update_stability(&mut self, pool: &mut BufPool, quorum: Option<u32>) {
        for sender_index in 0..self.streams.len() {
            let mut stable = u64::MAX;
            self.scratch.clear();
            for (member_index, row) in self.acks.iter().enumerate() {
                let held = if member_index == self.me_index {
                    self.streams[sender_index].persisted
                } else {
                    row[sender_index]
                };
                stable = stable.min(held);
                self.scratch.push(held);
            }
            let safe = match quorum {
                Some(quorum) if (quorum as usize) < self.scratch.len() => {
                    // The quorum-th highest acknowledgement.
                    self.scratch.sort_unstable_by(|a, b| b.cmp(a));
                    self.scratch[quorum.max(1) as usize - 1]
                }
                _ => stable,
            };
            let stream = &mut self.streams[sender_index];
            let cap = stream.hi.max(stream.stable);
            stream.safe = stream.safe.max(safe.min(cap));
            if stable > stream.stable && sender_index == self.me_index {
                // Own messages leave the byte window (they are still held:
                // `collect` below frees them).
                let newly_stable = stream.stable + 1..=stable.min(cap).min(self.transmitted);
                let freed: u64 = newly_stable
                    .filter_map(|seq| stream.get(seq))
                    .map(|stored| stored.len() as u64)
                    .sum();
                self.in_flight_bytes = self.in_flight_bytes.saturating_sub(freed);
            }
            if stable > stream.stable {
                stream.stable = stable.min(cap);
                stream.collect(pool);
            }
        }
    }

    /// Appends an own message to our stream (counted in the queue's bytes
    /// until it is transmitted).
    pub(crate) fn push_own(&mut self, buf: Vec<u8>) -> u64 {
        self.unsent_bytes += buf.len() as u64;
        self.streams[self.me_index].push_own(buf)
    }

    /// Whether some message this member holds is not yet known stable.
    pub(crate) fn has_unstable(&self) -> bool {
        self.streams.iter().any(|stream| stream.stable < stream.hi)
    }

    pub(crate) fn release(self, pool: &mut BufPool) {
        for stream in self.streams {
            stream.release(pool);
        }
        for buf in self.deferred {
            pool.put(buf);
        }
    }
}
