//! Durable SafeSend (docs/ordering.md, "Durable mode"): which received
//! messages become log records, and how the host's "durable up to record n"
//! advances `Stream::persisted`, which acks advertise.
//!
//! Invariants: per durable group, records are numbered 1, 2, 3, ... in the
//! order `poll_persist` hands them out (over the node's lifetime, across
//! epochs); `synced <= issued`; a stream's `persisted` never passes a seq
//! whose record is not durable.

use std::collections::VecDeque;

use super::Node;
use crate::config::InjectedBug;
use crate::durable::{encode_flush_delivery, encode_loaded, encode_message, RecoveredMessage};
use crate::id::GroupId;
use crate::wire::DataView;

/// One durable group's log, as the core sees it.
#[derive(Debug, Default)]
pub(crate) struct DurableLog {
    /// Records handed out or queued.
    pub(crate) issued: u64,
    /// Records the host reported durable.
    pub(crate) synced: u64,
    /// Records not yet handed out.
    pub(crate) out: VecDeque<Vec<u8>>,
    /// Events queued so far must not reach the application before record
    /// `barrier` is durable (flush deliveries).
    pub(crate) barrier: u64,
    /// Flush deliveries logged so far.
    pub(crate) flush_deliveries: u64,
}

impl DurableLog {
    pub(crate) fn push(&mut self, record: Vec<u8>) -> u64 {
        self.out.push_back(record);
        self.issued += 1;
        self.issued
    }
}

/// Whether a stored message is logged: SafeSends and order announcements.
fn logged_kind(stored: &[u8]) -> bool {
    matches!(
        DataView::parse_stored(stored),
        Ok(DataView::Safe { .. } | DataView::Order { .. })
    )
}

impl Node {
    /// Durable mode for a group: SafeSend acknowledges only what the host
    /// reports durable (`persisted`), after appending the records of
    /// `poll_persist`. Call before `join_group`; it holds for the node's
    /// lifetime.
    pub fn set_durable(&mut self, group: GroupId) {
        self.durable.entry(group).or_default();
        if let Some(local) = self.groups.get_mut(&group) {
            for stream in &mut local.streams {
                stream.durable = true;
            }
        }
    }

    /// Whether the group is in durable mode.
    pub fn is_durable(&self, group: GroupId) -> bool {
        self.durable.contains_key(&group)
    }

    /// The next record to append to the group's log. Append every record,
    /// `sync`, then call `persisted(group, n)` with the number of records
    /// of that group made durable so far (over this node's lifetime).
    pub fn poll_persist(&mut self) -> Option<(GroupId, Vec<u8>)> {
        let groups: Vec<GroupId> = self.durable.keys().copied().collect();
        for group in groups {
            self.log_received(group);
            if let Some(record) = self
                .durable
                .get_mut(&group)
                .and_then(|log| log.out.pop_front())
            {
                return Some((group, record));
            }
        }
        None
    }

    /// The host made the group's first `upto` records durable.
    pub fn persisted(&mut self, group: GroupId, upto: u64) {
        let quorum = self.config.safe_quorum;
        let Some(log) = self.durable.get_mut(&group) else {
            return;
        };
        let upto = upto.min(log.issued);
        if upto <= log.synced {
            return;
        }
        log.synced = upto;
        let Some(local) = self.groups.get_mut(&group) else {
            return;
        };
        let mut advanced = false;
        for stream in &mut local.streams {
            let before = stream.persisted;
            stream.refresh_persisted(upto);
            advanced |= stream.persisted > before;
        }
        if advanced {
            local.ack_dirty = local.view.members.len() > 1;
            // SafeSends wait on this ack: send it at once.
            local.next_ack_at = crate::time::Instant::ZERO;
            local.update_stability(&mut self.pool, quorum);
            self.deliver_ready(group);
        }
    }

    /// The host loaded, by state transfer from a donor, the SafeSend
    /// sequence the group delivered before this member joined (the donor's
    /// recovered and delivered SafeSends): log it, so that this member's
    /// log alone again holds everything delivered. Call when the state is
    /// loaded (before the application sees a delivery of the group); the
    /// records are durable before the next event (`must_persist_before_events`).
    pub fn log_loaded(&mut self, group: GroupId, sequence: &[RecoveredMessage]) {
        let Some(epoch) = self.groups.get(&group).map(|local| local.epoch.0) else {
            return;
        };
        let Some(log) = self.durable.get_mut(&group) else {
            return;
        };
        for message in sequence {
            log.barrier = log.push(encode_loaded(epoch, message));
        }
    }

    /// Whether the events queued now include deliveries whose records are
    /// not durable yet: the host must sync and call `persisted` before
    /// `poll_event` (output commit; only a flush causes it).
    pub fn must_persist_before_events(&self) -> bool {
        self.durable.values().any(|log| log.barrier > log.synced)
    }

    /// Turn every newly received (contiguous) message of the group's
    /// streams into records.
    pub(super) fn log_received(&mut self, group: GroupId) {
        let ack_early = self.config.inject_bug == Some(InjectedBug::AckBeforePersist);
        let Some(log) = self.durable.get_mut(&group) else {
            return;
        };
        let Some(local) = self.groups.get_mut(&group) else {
            return;
        };
        let epoch = local.epoch.0;
        for stream in &mut local.streams {
            stream.durable = true;
            if stream.logged >= stream.hi {
                continue;
            }
            for seq in stream.logged + 1..=stream.hi {
                let Some(stored) = stream.get(seq) else {
                    continue;
                };
                if logged_kind(stored) {
                    let n = log.push(encode_message(epoch, stream.sender, seq, stored));
                    stream.unsynced.push_back((n, seq));
                }
            }
            stream.logged = stream.hi;
            stream.refresh_persisted(log.synced);
            if ack_early {
                stream.persisted = stream.hi;
            }
        }
    }
}

/// Log a SafeSend delivered by the flush (its place in the order is this
/// member's, not an announcement's).
pub(super) fn log_flush_delivery(
    log: &mut DurableLog,
    epoch: u64,
    sender: crate::id::MemberId,
    seq: u64,
) {
    log.flush_deliveries += 1;
    let index = log.flush_deliveries;
    let n = log.push(encode_flush_delivery(epoch, sender, seq, index));
    log.barrier = n;
}
