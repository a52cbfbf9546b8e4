//! When each message of a stream is delivered: FIFO, causal, total order
//! (the sequencer's announcements), SafeSend's acknowledgements, and the
//! flush's deterministic ordering of the unordered tail (docs/ordering.md).
//!
//! Invariants: a stream is delivered strictly in sequence order, whatever
//! the kinds; announcements are read as soon as the sequencer's stream is
//! contiguous up to them (never waiting for delivery), so the order queue
//! only depends on receipt; in the flush, everything is a function of the
//! cut and the messages up to it, which every survivor holds alike.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::group::{LocalGroup, OrderSlot, SEQUENCER};
use super::query::Outstanding;
use super::{Node, NodeStats, Queued};
use crate::config::InjectedBug;
use crate::id::{GroupId, MemberId};
use crate::kinds::{QueryId, QueryRef, SendKind};
use crate::pool::BufPool;
use crate::wire::{data_tag, put_order_range, DataView, OrderRange};

/// What the next message of a stream waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Gate {
    Now,
    Causal,
    /// Its turn in the total order; `safe`: and its acknowledgements.
    Total {
        safe: bool,
    },
}

fn gate(view: &DataView<'_>) -> Gate {
    match view {
        DataView::Causal { .. } => Gate::Causal,
        DataView::Ordered { .. } | DataView::Query { total: true, .. } => {
            Gate::Total { safe: false }
        }
        DataView::Safe { .. } => Gate::Total { safe: true },
        _ => Gate::Now,
    }
}

/// Whether a stored message takes part in the total order.
pub(super) fn is_totally_ordered(stored: &[u8]) -> bool {
    DataView::parse_stored(stored).is_ok_and(|view| matches!(gate(&view), Gate::Total { .. }))
}

/// Where deliveries go: the node's queues, borrowed apart from its groups.
struct Sink<'n> {
    group: GroupId,
    me: MemberId,
    pool: &'n mut BufPool,
    events: &'n mut VecDeque<Queued>,
    stats: &'n mut NodeStats,
    queries: &'n mut BTreeMap<QueryId, Outstanding>,
    inbox: &'n mut BTreeSet<QueryRef>,
    bug: Option<InjectedBug>,
    /// The group's log in durable mode (flush deliveries are logged).
    log: Option<&'n mut super::durable::DurableLog>,
    epoch: u64,
}

impl Sink<'_> {
    fn deliver(&mut self, sender: MemberId, kind: SendKind, payload: &[u8]) {
        let buf = self.pool.copy_of(payload);
        self.events.push_back(Queued::Delivered {
            group: self.group,
            sender,
            kind,
            buf,
        });
        self.stats.messages_delivered += 1;
    }

    /// Hand one message to the application (or to the query machinery).
    fn emit(&mut self, sender: MemberId, view: &DataView<'_>) {
        let group = self.group;
        match *view {
            DataView::Fifo { payload } => self.deliver(sender, SendKind::Fifo, payload),
            DataView::Causal { payload, .. } => self.deliver(sender, SendKind::Causal, payload),
            DataView::Ordered { payload } => self.deliver(sender, SendKind::Ordered, payload),
            DataView::Safe { payload } => self.deliver(sender, SendKind::Safe, payload),
            DataView::Order { .. } => {}
            DataView::P2p { to, payload } if to == self.me => {
                let buf = self.pool.copy_of(payload);
                self.events.push_back(Queued::P2p { group, sender, buf });
                self.stats.messages_delivered += 1;
            }
            DataView::Query {
                id,
                targets,
                payload,
                ..
            } if targets.contains(self.me) => {
                let query = QueryRef {
                    group,
                    caller: sender,
                    id: QueryId(id),
                };
                self.inbox.insert(query);
                let buf = self.pool.copy_of(payload);
                self.events.push_back(Queued::QueryRequest {
                    group,
                    from: sender,
                    query,
                    buf,
                });
            }
            DataView::Reply { to, id, payload } if to == self.me => {
                self.reply_arrived(sender, QueryId(id), payload)
            }
            DataView::P2p { .. } | DataView::Query { .. } | DataView::Reply { .. } => {}
        }
    }

    fn reply_arrived(&mut self, from: MemberId, id: QueryId, payload: &[u8]) {
        let Some(query) = self.queries.get_mut(&id) else {
            return; // done or timed out already
        };
        let Some(position) = query.waiting.iter().position(|member| *member == from) else {
            return;
        };
        if query.group != self.group {
            return;
        }
        query.waiting.swap_remove(position);
        let buf = self.pool.copy_of(payload);
        self.events.push_back(Queued::QueryReply { id, from, buf });
        if query.waiting.is_empty() {
            self.queries.remove(&id);
            self.events.push_back(Queued::QueryDone {
                id,
                timed_out: false,
            });
        }
    }
}

impl Node {
    /// Deliver everything that is ready; nothing while wedged (a view change
    /// is deciding the cut) or while waiting for state.
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
        self.deliver_epoch(group, None);
        if let Some(local) = self.groups.get_mut(&group) {
            for stream in &mut local.streams {
                stream.collect(&mut self.pool);
            }
        }
    }

    /// The delivery loop. `cut`: the flush — per stream (rank) the last seq
    /// to deliver; SafeSend needs no acknowledgements (every survivor
    /// delivers the cut) and the unordered tail is ordered by rank.
    pub(super) fn deliver_epoch(&mut self, group: GroupId, cut: Option<&[u64]>) {
        self.log_received(group);
        let Node {
            groups,
            pool,
            events,
            stats,
            queries,
            inbox,
            me,
            config,
            durable,
            ..
        } = self;
        let Some(local) = groups.get_mut(&group) else {
            return;
        };
        let epoch = local.epoch.0;
        let mut sink = Sink {
            group,
            me: *me,
            pool,
            events,
            stats,
            queries,
            inbox,
            bug: config.inject_bug,
            log: durable.get_mut(&group),
            epoch,
        };
        if let (Some(_), Some(log)) = (cut, sink.log.as_deref_mut()) {
            // Recovery must know where this member's ordinary deliveries of
            // the epoch stopped: announced SafeSends after that point were
            // delivered by this flush (logged below) or by nobody.
            log.push(super::super::durable::encode_epoch_end(
                epoch,
                local.safe_delivered_before_flush,
            ));
        }
        // Each turn delivers at least one message or ends the loop.
        loop {
            read_announcements(local, cut);
            let mut progress = false;
            for sender in 0..local.streams.len() {
                progress |= deliver_stream(local, sender, cut, &mut sink);
            }
            let tail_ordered = !progress && cut.is_some() && order_tail(local, cut);
            if !progress && !tail_ordered {
                break;
            }
        }
    }
}

/// The flush of one group: per stream (rank) the cut, reduced so that no
/// causal message is delivered without its predecessors (a sender may have
/// delivered a message that no survivor received).
pub(super) fn trim_causal(local: &LocalGroup, limits: &mut [u64]) {
    let count = local.streams.len();
    let mut changed = true;
    while changed {
        changed = false;
        for (sender, stream) in local.streams.iter().enumerate() {
            for seq in stream.delivered + 1..=limits[sender].min(stream.hi) {
                let Some(Ok(DataView::Causal { deps, .. })) =
                    stream.get(seq).map(DataView::parse_stored)
                else {
                    continue;
                };
                let missing = deps
                    .iter()
                    .enumerate()
                    .any(|(rank, dep)| rank != sender && rank < count && dep > limits[rank]);
                if missing {
                    limits[sender] = seq - 1;
                    changed = true;
                    break;
                }
            }
        }
    }
}

impl Node {
    /// At the sequencer: announce, in one `Order` message per group, every
    /// ordered message received since the last announcement.
    pub(super) fn announce_all(&mut self) {
        if self.acceptor.wedged {
            return;
        }
        let view = self.view_id();
        let mut next = self.groups.keys().next().copied();
        while let Some(group) = next {
            next = self
                .groups
                .range((std::ops::Bound::Excluded(group), std::ops::Bound::Unbounded))
                .next()
                .map(|(id, _)| *id);
            let Some(local) = self.groups.get_mut(&group) else {
                continue;
            };
            if local.epoch != view || local.me_index != SEQUENCER {
                continue;
            }
            if announce(local, &mut self.pool) {
                local.ack_dirty = local.view.members.len() > 1;
                if !local.ack_dirty {
                    local.update_stability(&mut self.pool, self.config.safe_quorum);
                }
                self.deliver_ready(group);
            }
        }
    }
}

/// Build the next announcement into the sequencer's own stream. Returns
/// whether it announced anything.
fn announce(local: &mut LocalGroup, pool: &mut BufPool) -> bool {
    let mut announcement: Option<Vec<u8>> = None;
    for (rank, stream) in local.streams.iter().enumerate() {
        let from = local.announced[rank] + 1;
        if stream.hi < from {
            continue;
        }
        let mut range: Option<(u64, u64)> = None;
        for seq in from..=stream.hi {
            if stream.get(seq).is_some_and(is_totally_ordered) {
                range = Some((range.map_or(seq, |(lo, _)| lo), seq));
            }
        }
        local.announced[rank] = stream.hi;
        if let Some((lo, hi)) = range {
            let buf = announcement.get_or_insert_with(|| {
                let mut buf = pool.take();
                buf.push(data_tag::ORDER);
                buf
            });
            let sender = stream.sender;
            put_order_range(buf, OrderRange { sender, lo, hi });
        }
    }
    let Some(buf) = announcement else {
        return false;
    };
    local.push_own(buf);
    local.announced[local.me_index] = local.streams[local.me_index].hi;
    true
}

/// Queue the ranges of every announcement the sequencer's stream holds
/// contiguously (up to the cut in a flush).
fn read_announcements(local: &mut LocalGroup, cut: Option<&[u64]>) {
    let LocalGroup {
        streams,
        view,
        order,
        order_read,
        ..
    } = local;
    let limit = cut.map_or(u64::MAX, |cut| cut[SEQUENCER]);
    let sequencer = &streams[SEQUENCER];
    while *order_read < sequencer.hi.min(limit) {
        *order_read += 1;
        let at = *order_read;
        let Some(Ok(DataView::Order { ranges })) = sequencer.get(at).map(DataView::parse_stored)
        else {
            continue;
        };
        for range in ranges.iter() {
            let sender = view.members.iter().position(|m| *m == range.sender);
            if let Some(sender) = sender {
                order.push_back(OrderSlot {
                    sender,
                    lo: range.lo,
                    hi: range.hi,
                    at,
                });
            }
        }
    }
}

/// Drop the front ranges that are delivered (or lie past the cut).
fn pop_consumed(local: &mut LocalGroup, cut: Option<&[u64]>) {
    while let Some(front) = local.order.front() {
        let limit = front.hi.min(cut.map_or(u64::MAX, |cut| cut[front.sender]));
        if local.streams[front.sender].delivered >= limit || front.lo > limit {
            local.order.pop_front();
        } else {
            break;
        }
    }
}

/// The flush is stuck and no announcement is left: the next ordered message
/// is the one at the head of the lowest-ranked stream (a function of the
/// cut, so every survivor picks the same). Returns whether it found one.
fn order_tail(local: &mut LocalGroup, cut: Option<&[u64]>) -> bool {
    pop_consumed(local, cut);
    if !local.order.is_empty() {
        return false;
    }
    for (rank, stream) in local.streams.iter().enumerate() {
        let limit = cut.map_or(u64::MAX, |cut| cut[rank]);
        let seq = stream.delivered + 1;
        if seq <= stream.hi.min(limit) && stream.get(seq).is_some_and(is_totally_ordered) {
            local.order.push_back(OrderSlot {
                sender: rank,
                lo: seq,
                hi: seq,
                at: 0,
            });
            return true;
        }
    }
    false
}

fn causal_ready(local: &LocalGroup, sender: usize, view: &DataView<'_>) -> bool {
    let DataView::Causal { deps, .. } = view else {
        return true;
    };
    let count = local.streams.len();
    deps.iter()
        .enumerate()
        .all(|(rank, dep)| rank == sender || rank >= count || local.streams[rank].delivered >= dep)
}

fn total_ready(local: &LocalGroup, sender: usize, seq: u64, need_acks: bool) -> bool {
    match local.order.front() {
        Some(front) if front.sender == sender && front.lo <= seq && seq <= front.hi => {
            !need_acks
                || (local.streams[sender].safe >= seq && local.streams[SEQUENCER].safe >= front.at)
        }
        _ => false,
    }
}

/// Deliver the ready prefix of one stream. Returns whether it delivered.
fn deliver_stream(
    local: &mut LocalGroup,
    sender: usize,
    cut: Option<&[u64]>,
    sink: &mut Sink<'_>,
) -> bool {
    let limit = cut.map_or(u64::MAX, |cut| cut[sender]);
    let flush = cut.is_some();
    let injected = sink.bug;
    let bug = |which: InjectedBug| !flush && injected == Some(which);
    let mut delivered_any = false;
    loop {
        pop_consumed(local, cut);
        let stream = &local.streams[sender];
        if stream.delivered >= stream.hi.min(limit) {
            break;
        }
        let seq = stream.delivered + 1;
        let Some(stored) = stream.get(seq) else {
            break;
        };
        let Ok(view) = DataView::parse_stored(stored) else {
            // Validated on receipt and on sending: cannot happen. Skip it.
            local.streams[sender].delivered = seq;
            continue;
        };
        let gate = gate(&view);
        let ready = match gate {
            Gate::Now => true,
            Gate::Causal => {
                bug(InjectedBug::CausalIgnoresDeps) || causal_ready(local, sender, &view)
            }
            Gate::Total { safe } => {
                bug(InjectedBug::OrderedIgnoresSequencer)
                    || total_ready(
                        local,
                        sender,
                        seq,
                        safe && !flush && !bug(InjectedBug::SafeSkipsAcks),
                    )
            }
        };
        if !ready {
            break;
        }
        if let (true, Gate::Total { safe: true }, Some(log)) =
            (flush, gate, sink.log.as_deref_mut())
        {
            super::durable::log_flush_delivery(log, sink.epoch, stream.sender, seq);
        }
        sink.emit(stream.sender, &view);
        if !flush && gate == (Gate::Total { safe: true }) {
            local.safe_delivered_before_flush += 1;
        }
        local.streams[sender].delivered = seq;
        delivered_any = true;
        if let (Gate::Total { .. }, Some(front)) = (gate, local.order.front_mut()) {
            if front.sender == sender && front.lo <= seq {
                front.lo = seq + 1;
            }
        }
    }
    delivered_any
}
