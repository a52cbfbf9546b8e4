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
    pub(crate) ack_dirty: bool,
    pub(crate) next_ack_at: Instant,
    /// While anything is unstable, acks are repeated at this pace.
    pub(crate) next_ack_refresh_at: Instant,
    /// Sends made while a view change is under way; sent in the next epoch.
    pub(crate) deferred: VecDeque<Vec<u8>>,
    /// NAKed ranges of own messages to resend: (to, from, to_seq).
    pub(crate) retransmit: VecDeque<(MemberId, u64, u64)>,
    pub(crate) incoming: Option<Incoming>,
    pub(crate) donation: Option<Donation>,
}

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
            ack_dirty: false,
            next_ack_at: now,
            next_ack_refresh_at: now,
            deferred: VecDeque::new(),
            retransmit: VecDeque::new(),
            incoming: None,
            donation: None,
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

    /// Recompute stability of every stream from the ack matrix.
    pub(crate) fn update_stability(&mut self, pool: &mut BufPool) {
        for sender_index in 0..self.streams.len() {
            let mut stable = u64::MAX;
            for (member_index, row) in self.acks.iter().enumerate() {
                let held = if member_index == self.me_index {
                    self.streams[sender_index].hi
                } else {
                    row[sender_index]
                };
                stable = stable.min(held);
            }
            let stream = &mut self.streams[sender_index];
            if stable > stream.stable {
                stream.stable = stable.min(stream.hi.max(stream.stable));
                stream.collect(pool);
            }
        }
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
