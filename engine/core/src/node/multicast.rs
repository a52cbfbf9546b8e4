//! View-synchronous multicast within an epoch: per-sender sequence
//! numbers, receive vectors (acks) multicast in batches, NAKs for gaps,
//! resends from the sender, stability and garbage collection, and natural
//! batching (every message waiting when `poll_transmit` runs shares frames).
//! Every kind of message shares the sender's stream (docs/ordering.md);
//! `ordering` decides when each is delivered.
//!
//! The per-message path allocates nothing in steady state: payloads live in
//! pooled buffers, frames are written into the caller's buffer.

use super::group::{LocalGroup, RETRANSMIT_QUEUE_MAX};
use super::{Dest, Node, Transmit};
use crate::error::Error;
use crate::id::{GroupId, MemberId};
use crate::kinds::SendKind;
use crate::time::Instant;
use crate::wire::{
    data_tag, put_causal_header, put_query, AckEntries, AckEntry, DataView, FrameWriter, Header,
    Msg,
};

/// Bytes a `Data` sub-message adds beyond its payload (tag + length varint).
const DATA_OVERHEAD: usize = 6;

/// What goes before the payload of an own message, by kind.
#[derive(Clone, Copy, Debug)]
pub(super) enum Head<'h> {
    /// The tag alone; for Causal, the delivery vector at the time of sending.
    Plain(SendKind),
    P2p(MemberId),
    Query {
        id: u64,
        total: bool,
        targets: &'h [MemberId],
    },
    Reply {
        to: MemberId,
        id: u64,
    },
}

impl Node {
    /// Append an own message of any kind to the group's stream (or, during a
    /// view change, to the queue for the next epoch) and deliver what is ready.
    pub(super) fn submit(
        &mut self,
        group: GroupId,
        head: Head<'_>,
        payload: &[u8],
    ) -> Result<(), Error> {
        let queue_max = self.config.send_queue_max;
        let queue_bytes_max = self.config.send_queue_bytes_max as u64;
        let window = u64::from(self.config.send_window);
        let quorum = self.config.safe_quorum;
        let wedged = self.acceptor.wedged;
        let Some(local) = self.groups.get_mut(&group) else {
            return Err(Error::NotJoined(group));
        };
        let own = &local.streams[local.me_index];
        let full = if wedged {
            local.deferred.len() >= queue_max
        } else {
            own.hi - own.stable >= window + queue_max as u64
                || (local.unsent_bytes > 0 && local.unsent_bytes >= queue_bytes_max)
        };
        if full {
            return Err(Error::SendQueueFull(group));
        }
        // Room for the tag, a causal header (8 bytes per member) and the payload.
        let header_room = 16 + 8 * local.streams.len();
        let mut buf = self.pool.take_with(header_room + payload.len());
        match head {
            Head::Plain(SendKind::Fifo) => buf.push(data_tag::FIFO),
            Head::Plain(SendKind::Ordered) => buf.push(data_tag::ORDERED),
            Head::Plain(SendKind::Safe) => buf.push(data_tag::SAFE),
            Head::Plain(SendKind::Causal) => {
                buf.push(data_tag::CAUSAL);
                // Queued for the next epoch, it depends on nothing of it yet.
                let count = if wedged { 0 } else { local.streams.len() };
                let deps = local.streams.iter().map(|stream| stream.delivered);
                put_causal_header(&mut buf, deps.take(count), count);
            }
            Head::P2p(to) => {
                buf.push(data_tag::P2P);
                buf.extend_from_slice(&to.node.0.to_le_bytes());
                buf.extend_from_slice(&to.incarnation.0.to_le_bytes());
            }
            Head::Query { id, total, targets } => {
                buf.push(data_tag::QUERY);
                put_query(
                    &mut buf,
                    id,
                    total,
                    targets.iter().copied(),
                    targets.len(),
                    &[],
                );
            }
            Head::Reply { to, id } => {
                buf.push(data_tag::REPLY);
                buf.extend_from_slice(&to.node.0.to_le_bytes());
                buf.extend_from_slice(&to.incarnation.0.to_le_bytes());
                buf.extend_from_slice(&id.to_le_bytes());
            }
        }
        buf.extend_from_slice(payload);
        debug_assert!(DataView::parse_stored(&buf).is_ok());
        if wedged {
            local.deferred.push_back(buf);
        } else {
            local.push_own(buf);
            local.ack_dirty = local.view.members.len() > 1;
            if !local.ack_dirty {
                // Alone in the group: a message is stable once sent.
                local.update_stability(&mut self.pool, quorum);
            }
            self.deliver_ready(group);
        }
        self.stats.messages_sent += 1;
        Ok(())
    }

    /// Move deferred sends into the new epoch's own stream.
    pub(super) fn release_deferred(&mut self, group: GroupId) {
        let quorum = self.config.safe_quorum;
        let Some(local) = self.groups.get_mut(&group) else {
            return;
        };
        while let Some(buf) = local.deferred.pop_front() {
            local.push_own(buf);
            local.ack_dirty = local.view.members.len() > 1;
        }
        if local.view.members.len() == 1 {
            local.update_stability(&mut self.pool, quorum);
        }
        self.deliver_ready(group);
    }

    pub(super) fn on_data(
        &mut self,
        now: Instant,
        header: &Header,
        seq: u64,
        tag: u8,
        body: &[u8],
    ) {
        let span_max = 2 * u64::from(self.config.send_window) + self.config.send_queue_max as u64;
        let ack_bytes_early = (self.config.send_window_bytes as u64 / 4).max(1);
        let ack_msgs_early = (u64::from(self.config.send_window) / 4).max(1);
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
        if stream.insert(seq, tag, body, &mut self.pool, span_max) {
            local.ack_dirty = true;
            local.unacked.0 += body.len() as u64;
            local.unacked.1 += 1;
            // SafeSend waits for acks (of the message and of its
            // announcement): ack those at once, not at the next period.
            if local.unacked.0 >= ack_bytes_early
                || local.unacked.1 >= ack_msgs_early
                || tag == data_tag::SAFE
                || tag == data_tag::ORDER
            {
                local.next_ack_at = now;
            }
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
        let quorum = self.config.safe_quorum;
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
        local.update_stability(&mut self.pool, quorum);
        // Stability releases SafeSend messages and completes flushes.
        self.deliver_ready(header.group);
        self.check_flushes(header.group);
    }

    pub(super) fn on_ack_wanted(&mut self, header: &Header) {
        if let Some(local) = self.groups.get_mut(&header.group) {
            if header.view == local.epoch {
                local.ack_dirty = true;
            }
        }
    }

    pub(super) fn on_nak(&mut self, header: &Header, sender: MemberId, from: u64, to: u64) {
        let Some(local) = self.groups.get_mut(&header.group) else {
            return;
        };
        if header.view != local.epoch || sender != local.me() || from > to {
            return;
        }
        if local.retransmit.len() < RETRANSMIT_QUEUE_MAX {
            local.retransmit.push_back((header.sender, from, to));
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
            if self.acceptor.wedged {
                // No acks while wedged (see `poll_data`): nothing falls due.
            } else if local.ack_dirty {
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
        self.announce_all();
        let view = self.view_id();
        let frame_max = self.config.frame_max;
        let window = u64::from(self.config.send_window);
        let window_bytes = self.config.send_window_bytes as u64;
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
            let fits = |len: usize, in_flight: u64| {
                in_flight == 0 || in_flight + len as u64 <= window_bytes
            };
            let next_fits = own
                .get(local.transmitted + 1)
                .is_some_and(|stored| fits(stored.len(), local.in_flight_bytes));
            if !wedged && local.transmitted < sendable && next_fits {
                let first = local.transmitted + 1;
                let header = Header {
                    sender: local.me(),
                    view,
                    group: *group,
                    seq: first,
                };
                let mut writer = FrameWriter::new(buf, &header);
                let mut seq = first;
                let mut in_flight = local.in_flight_bytes;
                while seq <= sendable {
                    let stored = own.get(seq).expect("own unstable message held");
                    if !fits(stored.len(), in_flight)
                        || writer.len() + stored.len() + DATA_OVERHEAD > frame_max
                        || !writer.push_stored(stored)
                    {
                        break;
                    }
                    in_flight += stored.len() as u64;
                    seq += 1;
                }
                local.unsent_bytes = local
                    .unsent_bytes
                    .saturating_sub(in_flight - local.in_flight_bytes);
                local.in_flight_bytes = in_flight;
                let last = seq - 1;
                if local.ack_dirty && writer.len() + ack_bytes(local) <= frame_max {
                    writer.push_ack(ack_entries(local));
                    local.ack_dirty = false;
                    local.unacked = (0, 0);
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
            // A wedged member acknowledges nothing more: its promise reported
            // what it holds, and the cut is built from promises. An ack past
            // the promise could let SafeSend deliver a message the flush then
            // drops (uniform agreement).
            if ack_due && !wedged && local.view.members.len() > 1 {
                let header = Header {
                    sender: local.me(),
                    view,
                    group: *group,
                    seq: 0,
                };
                let mut writer = FrameWriter::new(buf, &header);
                writer.push_ack(ack_entries(local));
                if local.has_unstable() {
                    writer.push(&Msg::AckWanted);
                }
                local.ack_dirty = false;
                local.unacked = (0, 0);
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
    let me = local.me_index;
    local
        .streams
        .iter()
        .enumerate()
        .map(move |(index, stream)| AckEntry {
            sender: stream.sender,
            // Our own entry tells receivers how far we have sent: not what
            // waits behind the window, which they would NAK as lost.
            hi: if index == me {
                stream.persisted.min(local.transmitted)
            } else {
                stream.persisted
            },
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
            let Some(stored) = own.get(seq) else { break };
            let fits = writer.message_count() == 0
                || writer.len() + stored.len() + DATA_OVERHEAD <= frame_max;
            if !fits || !writer.push_stored(stored) {
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
