//! View-synchronous FIFO multicast within an epoch: per-sender sequence
//! numbers, receive vectors (acks) multicast in batches, NAKs for gaps,
//! resends from the sender, stability and garbage collection, and natural
//! batching (every message waiting when `poll_transmit` runs shares frames).
//!
//! The per-message path allocates nothing in steady state: payloads live in
//! pooled buffers, frames are written into the caller's buffer.

use super::group::{LocalGroup, RETRANSMIT_QUEUE_MAX};
use super::{Dest, Node, Queued, Transmit};
use crate::config::InjectedBug;
use crate::error::Error;
use crate::id::{GroupId, MemberId};
use crate::time::Instant;
use crate::wire::{AckEntries, AckEntry, FrameWriter, Header, Msg};

/// Bytes a `Data` sub-message adds beyond its payload (tag + length varint).
const DATA_OVERHEAD: usize = 6;

impl Node {
    pub(super) fn multicast_send(&mut self, group: GroupId, payload: &[u8]) -> Result<(), Error> {
        let queue_max = self.config.send_queue_max;
        let window = u64::from(self.config.send_window);
        let wedged = self.acceptor.wedged;
        let Some(local) = self.groups.get_mut(&group) else {
            return Err(Error::NotJoined(group));
        };
        if wedged {
            if local.deferred.len() >= queue_max {
                return Err(Error::SendQueueFull(group));
            }
            local.deferred.push_back(self.pool.copy_of(payload));
        } else {
            let own = &mut local.streams[local.me_index];
            if own.hi - own.stable >= window + queue_max as u64 {
                return Err(Error::SendQueueFull(group));
            }
            own.push_own(self.pool.copy_of(payload));
            local.ack_dirty = local.view.members.len() > 1;
            if !local.ack_dirty {
                // Alone in the group: a message is stable once sent.
                local.update_stability(&mut self.pool);
            }
            self.deliver_ready(group);
        }
        self.stats.messages_sent += 1;
        Ok(())
    }

    /// Move deferred sends into the new epoch's own stream.
    pub(super) fn release_deferred(&mut self, group: GroupId) {
        let Some(local) = self.groups.get_mut(&group) else {
            return;
        };
        while let Some(buf) = local.deferred.pop_front() {
            local.streams[local.me_index].push_own(buf);
            local.ack_dirty = local.view.members.len() > 1;
        }
        if local.view.members.len() == 1 {
            local.update_stability(&mut self.pool);
        }
        self.deliver_ready(group);
    }

    pub(super) fn on_data(&mut self, now: Instant, header: &Header, seq: u64, payload: &[u8]) {
        let span_max = 2 * u64::from(self.config.send_window) + self.config.send_queue_max as u64;
        let view_id = self.view_id();
        let Some(local) = self.groups.get_mut(&header.group) else {
            return;
        };
        if header.view != local.epoch {
            if header.view < view_id {
                self.stats.frames_stale += 1;
            }
            return;
        }
        let Some(sender_index) = local.index_of(header.sender) else {
            self.stats.frames_from_strangers += 1;
            return;
        };
        if sender_index == local.me_index {
            return;
        }
        let stream = &mut local.streams[sender_index];
        stream.seen_max = stream.seen_max.max(seq);
        if stream.insert(seq, payload, &mut self.pool, span_max) {
            local.ack_dirty = true;
            if stream.seen_max > stream.hi && stream.nak_due.is_none() {
                stream.nak_due = Some(now + self.config.nak_delay);
            }
            if stream.seen_max <= stream.hi {
                stream.nak_due = None;
            }
            self.deliver_ready(header.group);
        }
    }

    pub(super) fn on_ack(&mut self, now: Instant, header: &Header, entries: AckEntries<'_>) {
        let nak_delay = self.config.nak_delay;
        let Some(local) = self.groups.get_mut(&header.group) else {
            return;
        };
        if header.view != local.epoch {
            return;
        }
        let Some(member_index) = local.index_of(header.sender) else {
            return;
        };
        for entry in entries.iter() {
            let Some(sender_index) = local.index_of(entry.sender) else {
                continue;
            };
            let row = &mut local.acks[member_index];
            row[sender_index] = row[sender_index].max(entry.hi);
            if sender_index == member_index && sender_index != local.me_index {
                // The sender's own entry says how far it has sent: find gaps.
                let stream = &mut local.streams[sender_index];
                stream.seen_max = stream.seen_max.max(entry.hi);
                if stream.seen_max > stream.hi && stream.nak_due.is_none() {
                    stream.nak_due = Some(now + nak_delay);
                }
            }
        }
        local.update_stability(&mut self.pool);
    }

    pub(super) fn on_nak(&mut self, header: &Header, sender: MemberId, from: u64, to: u64) {
        let Some(local) = self.groups.get_mut(&header.group) else {
            return;
        };
        if header.view != local.epoch || sender != local.me() || from > to {
            return;
        }
        // A NAK from `from` says its sender holds every message before it:
        // an ack. It is the one the sender gets when a receiver's last ack
        // was lost while the window was full (the receiver, seeing all it
        // holds stable, would never ack again).
        if let Some(member_index) = local.index_of(header.sender) {
            let me_index = local.me_index;
            let held = from.saturating_sub(1).min(local.transmitted);
            let row = &mut local.acks[member_index];
            if held > row[me_index] {
                row[me_index] = held;
                local.update_stability(&mut self.pool);
            }
        }
        if local.retransmit.len() < RETRANSMIT_QUEUE_MAX {
            local.retransmit.push_back((header.sender, from, to));
        }
    }

    /// Deliver, in FIFO order per sender, everything contiguous and not yet
    /// delivered; nothing while wedged (a view change is deciding the cut) or
    /// while waiting for state.
    pub(super) fn deliver_ready(&mut self, group: GroupId) {
        let loading_bug = self.config.inject_bug == Some(InjectedBug::DeliverBeforeStateLoad);
        if self.acceptor.wedged {
            return;
        }
        let Some(local) = self.groups.get(&group) else {
            return;
        };
        if !local.has_state && !loading_bug {
            return;
        }
        for sender_index in 0..local.streams.len() {
            self.deliver_up_to(group, sender_index, u64::MAX);
        }
        if let Some(local) = self.groups.get_mut(&group) {
            for stream in &mut local.streams {
                stream.collect(&mut self.pool);
            }
        }
    }

    /// Deliver up to `limit` from one stream regardless of the wedge (the flush).
    pub(super) fn deliver_up_to(&mut self, group: GroupId, sender_index: usize, limit: u64) {
        let Some(local) = self.groups.get_mut(&group) else {
            return;
        };
        let stream = &mut local.streams[sender_index];
        while stream.delivered < stream.hi.min(limit) {
            stream.delivered += 1;
            let payload = stream.get(stream.delivered).expect("held up to hi");
            let buf = self.pool.copy_of(payload);
            self.events.push_back(Queued::Delivered {
                group,
                sender: stream.sender,
                buf,
            });
            self.stats.messages_delivered += 1;
        }
    }

    /// NAKs for gaps that have stood for `nak_delay`; acks falling due.
    pub(super) fn multicast_tick(&mut self, now: Instant) {
        let window = u64::from(self.config.send_window);
        let nak_delay = self.config.nak_delay;
        let me = self.me;
        // Split borrows: NAKs are written while the streams are walked, into
        // pooled buffers (loss recovery allocates nothing either).
        let Node {
            groups,
            outbox,
            pool,
            stats,
            ..
        } = self;
        for (group, local) in groups.iter_mut() {
            for stream in &mut local.streams {
                if stream.sender == me || stream.seen_max <= stream.hi {
                    stream.nak_due = None;
                    continue;
                }
                match stream.nak_due {
                    None => stream.nak_due = Some(now + nak_delay),
                    Some(due) if due <= now => {
                        let to = stream.seen_max.min(stream.hi + window);
                        let header = Header {
                            sender: me,
                            view: local.epoch,
                            group: *group,
                            seq: 0,
                        };
                        let mut bytes = pool.copy_of(&[]);
                        let mut writer = FrameWriter::new(&mut bytes, &header);
                        let pushed = writer.push(&Msg::Nak {
                            sender: stream.sender,
                            from: stream.hi + 1,
                            to,
                        });
                        debug_assert!(pushed);
                        outbox.push_back((Dest::Member(stream.sender), bytes));
                        stats.naks_sent += 1;
                        stream.nak_due = Some(now + nak_delay * 4);
                    }
                    Some(_) => {}
                }
            }
        }
    }

    pub(super) fn multicast_deadline(&self) -> Instant {
        let mut earliest = Instant(u64::MAX);
        for local in self
            .groups
            .values()
            .filter(|local| local.view.members.len() > 1)
        {
            for stream in &local.streams {
                if let Some(due) = stream.nak_due {
                    earliest = earliest.min(due);
                }
            }
            if local.ack_dirty {
                earliest = earliest.min(local.next_ack_at);
            } else if local.has_unstable() {
                earliest = earliest.min(local.next_ack_refresh_at);
            }
        }
        earliest
    }

    /// Resends first, then fresh messages (with the ack piggybacked), then
    /// acks on their own.
    pub(super) fn poll_data(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let view = self.view_id();
        let frame_max = self.config.frame_max;
        let window = u64::from(self.config.send_window);
        let ack_period = self.config.ack_period;
        let wedged = self.acceptor.wedged;
        for (group, local) in &mut self.groups {
            if local.epoch != view {
                continue;
            }
            if let Some(transmit) = write_retransmit(*group, local, frame_max, buf) {
                self.stats.retransmissions += 1;
                return Some(transmit);
            }
            if local.view.members.len() == 1 {
                // Nobody to send to; the messages were delivered and are stable.
                local.transmitted = local.streams[local.me_index].hi;
                continue;
            }
            let own = &local.streams[local.me_index];
            let sendable = own.hi.min(own.stable + window);
            if !wedged && local.transmitted < sendable {
                let first = local.transmitted + 1;
                let header = Header {
                    sender: local.me(),
                    view,
                    group: *group,
                    seq: first,
                };
                let mut writer = FrameWriter::new(buf, &header);
                let mut seq = first;
                while seq <= sendable {
                    let payload = own.get(seq).expect("own unstable message held");
                    if writer.len() + payload.len() + DATA_OVERHEAD > frame_max
                        || !writer.push_data(payload)
                    {
                        break;
                    }
                    seq += 1;
                }
                let last = seq - 1;
                if local.ack_dirty && writer.len() + ack_bytes(local) <= frame_max {
                    writer.push_ack(ack_entries(local));
                    local.ack_dirty = false;
                    local.next_ack_at = now + ack_period;
                    local.next_ack_refresh_at = now + ack_period * 4;
                }
                local.transmitted = last;
                let len = writer.finish();
                return Some(Transmit {
                    dest: Dest::Group(*group),
                    len,
                });
            }
            let ack_due = (local.ack_dirty && local.next_ack_at <= now)
                || (local.has_unstable() && local.next_ack_refresh_at <= now);
            if ack_due && local.view.members.len() > 1 {
                let header = Header {
                    sender: local.me(),
                    view,
                    group: *group,
                    seq: 0,
                };
                let mut writer = FrameWriter::new(buf, &header);
                writer.push_ack(ack_entries(local));
                local.ack_dirty = false;
                local.next_ack_at = now + ack_period;
                local.next_ack_refresh_at = now + ack_period * 4;
                let len = writer.finish();
                return Some(Transmit {
                    dest: Dest::Group(*group),
                    len,
                });
            }
        }
        None
    }
}

fn ack_bytes(local: &LocalGroup) -> usize {
    DATA_OVERHEAD + local.streams.len() * AckEntries::ENTRY_BYTES
}

fn ack_entries(local: &LocalGroup) -> impl Iterator<Item = AckEntry> + '_ {
    local.streams.iter().map(|stream| AckEntry {
        sender: stream.sender,
        hi: stream.hi,
    })
}

/// Resend the first queued NAKed range of own messages that are still held.
fn write_retransmit(
    group: GroupId,
    local: &mut LocalGroup,
    frame_max: usize,
    buf: &mut Vec<u8>,
) -> Option<Transmit> {
    while let Some((to_member, from, to)) = local.retransmit.pop_front() {
        let own = &local.streams[local.me_index];
        let first = from.max(1);
        let last = to.min(local.transmitted);
        if first > last || own.get(first).is_none() {
            continue;
        }
        let header = Header {
            sender: local.me(),
            view: local.epoch,
            group,
            seq: first,
        };
        let mut writer = FrameWriter::new(buf, &header);
        let mut seq = first;
        while seq <= last {
            let Some(payload) = own.get(seq) else { break };
            let fits = writer.message_count() == 0
                || writer.len() + payload.len() + DATA_OVERHEAD <= frame_max;
            if !fits || !writer.push_data(payload) {
                break;
            }
            seq += 1;
        }
        if seq <= last {
            local.retransmit.push_front((to_member, seq, last));
        }
        let len = writer.finish();
        return Some(Transmit {
            dest: Dest::Member(to_member),
            len,
        });
    }
    None
}
