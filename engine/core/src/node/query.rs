//! Flush() and Query: the caller-side bookkeeping (docs/ordering.md).
//!
//! A flush waits for the caller's own stream to be stable up to the seq it
//! had when called (or, called during a view change, for the sends queued
//! for the next epoch). A query waits for one reply per responder; a
//! responder that leaves the view is reported failed, and the timeout ends it.

use std::time::Duration;

use super::multicast::Head;
use super::{Node, Queued};
use crate::config::InjectedBug;
use crate::error::Error;
use crate::id::{GroupId, MemberId, ViewId};
use crate::kinds::{FlushId, QueryId, QueryOrder, QueryRef, QuerySpec, QueryTarget, SendKind};
use crate::time::Instant;

/// Most responders one query names (the wire counts them in a u16).
pub const QUERY_TARGETS_MAX: usize = u16::MAX as usize;

/// A query this node asked and that is not done.
#[derive(Debug)]
pub(super) struct Outstanding {
    pub(super) group: GroupId,
    /// Responders that neither replied nor failed yet.
    pub(super) waiting: Vec<MemberId>,
    pub(super) deadline: Instant,
}

/// What a flush waits for.
#[derive(Clone, Copy, Debug)]
enum FlushWait {
    /// Own seq `.1` of epoch `.0` stable.
    Epoch(ViewId, u64),
    /// The first `.0` sends queued during a view change, in the next epoch.
    NextEpoch(u64),
}

#[derive(Debug)]
pub(super) struct PendingFlush {
    id: FlushId,
    group: GroupId,
    wait: FlushWait,
}

impl Node {
    /// Multicast `payload` with the given ordering guarantee (docs/ordering.md
    /// says which to use when). Delivered as `Event::Delivered { kind, .. }`.
    pub fn send_kind(
        &mut self,
        now: Instant,
        group: GroupId,
        kind: SendKind,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.check_send(payload)?;
        let _ = now;
        self.submit(group, Head::Plain(kind), payload)
    }

    /// CausalSend: delivered after every message the sender had delivered.
    pub fn causal_send(
        &mut self,
        now: Instant,
        group: GroupId,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.send_kind(now, group, SendKind::Causal, payload)
    }

    /// OrderedSend: one total order with all Ordered and Safe messages.
    pub fn ordered_send(
        &mut self,
        now: Instant,
        group: GroupId,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.send_kind(now, group, SendKind::Ordered, payload)
    }

    /// SafeSend: ordered, and delivered only once every member (or the
    /// `safe_quorum`) acknowledged it.
    pub fn safe_send(&mut self, now: Instant, group: GroupId, payload: &[u8]) -> Result<(), Error> {
        self.send_kind(now, group, SendKind::Safe, payload)
    }

    /// Reliable FIFO point to point to one member of the group, in order
    /// with this node's multicasts; delivered as `Event::P2p`.
    pub fn send_to(
        &mut self,
        now: Instant,
        group: GroupId,
        member: MemberId,
        payload: &[u8],
    ) -> Result<(), Error> {
        self.check_send(payload)?;
        let _ = now;
        let local = self.groups.get(&group).ok_or(Error::NotJoined(group))?;
        if !local.view.members.contains(&member) {
            return Err(Error::NotAMember { group, member });
        }
        self.submit(group, Head::P2p(member), payload)
    }

    /// `Event::Flushed { group, id }` follows once every multicast this node
    /// sent in the group before the call is stable at every member.
    pub fn flush(&mut self, now: Instant, group: GroupId) -> Result<FlushId, Error> {
        self.check_running()?;
        let _ = now;
        let local = self.groups.get(&group).ok_or(Error::NotJoined(group))?;
        let wait = if self.acceptor.wedged {
            FlushWait::NextEpoch(local.deferred.len() as u64)
        } else {
            FlushWait::Epoch(local.epoch, local.streams[local.me_index].hi)
        };
        self.next_flush_id += 1;
        let id = FlushId(self.next_flush_id);
        self.flushes.push(PendingFlush { id, group, wait });
        self.check_flushes(group);
        Ok(id)
    }

    /// Ask members of the group (`spec.target`) and collect their replies:
    /// `Event::QueryReply` per answer, `Event::QueryFailed` per responder
    /// that leaves the view first, then `Event::QueryDone`.
    pub fn query(
        &mut self,
        now: Instant,
        group: GroupId,
        spec: QuerySpec,
        payload: &[u8],
    ) -> Result<QueryId, Error> {
        self.check_send(payload)?;
        let local = self.groups.get(&group).ok_or(Error::NotJoined(group))?;
        let members = &local.view.members;
        let count = match spec.target {
            QueryTarget::All => members.len(),
            QueryTarget::One => 1,
            QueryTarget::K(0) => return Err(Error::InvalidQuery("K(0) names no responder")),
            QueryTarget::K(k) => (k as usize).min(members.len()),
        };
        if count > QUERY_TARGETS_MAX {
            return Err(Error::InvalidQuery("more responders than a query can name"));
        }
        // Rotate over the view, from a point that differs per caller, so that
        // One and K spread the requests (coordinator-cohort).
        let start = if count == members.len() {
            0
        } else {
            (self.query_cursor as usize + local.me_index) % members.len()
        };
        let targets: Vec<MemberId> = (0..count)
            .map(|i| members[(start + i) % members.len()])
            .collect();
        let id = QueryId(self.next_query_id + 1);
        let head = Head::Query {
            id: id.0,
            total: spec.order == QueryOrder::Total,
            targets: &targets,
        };
        self.submit(group, head, payload)?;
        self.next_query_id += 1;
        self.query_cursor += count as u64;
        self.queries.insert(
            id,
            Outstanding {
                group,
                waiting: targets,
                deadline: now + spec.timeout.max(Duration::from_nanos(1)),
            },
        );
        Ok(id)
    }

    /// Answer a query received as `Event::QueryRequest` (once). A reply to a
    /// caller that has left the group is dropped.
    pub fn reply(&mut self, now: Instant, query: QueryRef, payload: &[u8]) -> Result<(), Error> {
        self.check_send(payload)?;
        let _ = now;
        if !self.inbox.contains(&query) {
            return Err(Error::UnknownQuery(query));
        }
        let Some(local) = self.groups.get(&query.group) else {
            self.inbox.remove(&query);
            return Err(Error::NotJoined(query.group));
        };
        if local.view.members.contains(&query.caller) {
            let head = Head::Reply {
                to: query.caller,
                id: query.id.0,
            };
            self.submit(query.group, head, payload)?;
        }
        self.inbox.remove(&query);
        Ok(())
    }

    fn check_send(&self, payload: &[u8]) -> Result<(), Error> {
        self.check_running()?;
        if payload.len() > self.config.payload_max {
            return Err(Error::PayloadTooLarge {
                len: payload.len(),
                max: self.config.payload_max,
            });
        }
        Ok(())
    }

    /// Report the flushes of the group that are complete.
    pub(super) fn check_flushes(&mut self, group: GroupId) {
        if !self.flushes.iter().any(|flush| flush.group == group) {
            return;
        }
        let local = self.groups.get(&group);
        let events = &mut self.events;
        self.flushes.retain(|flush| {
            if flush.group != group {
                return true;
            }
            let done = match (flush.wait, local) {
                (_, None) => true, // left the group: the view change flushed it
                (FlushWait::Epoch(epoch, seq), Some(local)) => {
                    local.epoch > epoch || local.streams[local.me_index].stable >= seq
                }
                (FlushWait::NextEpoch(_), Some(_)) => false,
            };
            if done {
                events.push_back(Queued::Flushed {
                    group,
                    id: flush.id,
                });
            }
            !done
        });
    }

    /// After installing a view: flushes waiting for the next epoch get their
    /// seq; queries learn which responders left; requests from callers that
    /// left are forgotten. `gone`: a group this node is no longer in.
    pub(super) fn after_group_install(&mut self, group: GroupId) {
        if let Some(local) = self.groups.get(&group) {
            for flush in &mut self.flushes {
                if let (true, FlushWait::NextEpoch(count)) = (flush.group == group, flush.wait) {
                    flush.wait = FlushWait::Epoch(local.epoch, count);
                }
            }
        }
        self.check_flushes(group);
        let members = self.groups.get(&group).map(|local| &local.view.members);
        self.inbox.retain(|query| {
            query.group != group || members.is_some_and(|members| members.contains(&query.caller))
        });
        let forget_failed = self.config.inject_bug == Some(InjectedBug::QueryForgetsFailed);
        let mut done = Vec::new();
        for (id, query) in &mut self.queries {
            if query.group != group || forget_failed {
                continue;
            }
            query.waiting.retain(|member| {
                let stays = members.is_some_and(|members| members.contains(member));
                if !stays {
                    self.events.push_back(Queued::QueryFailed {
                        id: *id,
                        member: *member,
                    });
                }
                stays
            });
            if query.waiting.is_empty() {
                done.push(*id);
            }
        }
        for id in done {
            self.queries.remove(&id);
            self.events.push_back(Queued::QueryDone {
                id,
                timed_out: false,
            });
        }
    }

    /// Queries whose timeout passed end.
    pub(super) fn query_tick(&mut self, now: Instant) {
        if self.queries.values().all(|query| query.deadline > now) {
            return;
        }
        let events = &mut self.events;
        self.queries.retain(|id, query| {
            let expired = query.deadline <= now;
            if expired {
                events.push_back(Queued::QueryDone {
                    id: *id,
                    timed_out: true,
                });
            }
            !expired
        });
    }

    pub(super) fn query_deadline(&self) -> Instant {
        self.queries
            .values()
            .map(|query| query.deadline)
            .min()
            .unwrap_or(Instant(u64::MAX))
    }

    /// This incarnation is gone: its flushes and queries end without events
    /// (the application saw `Excluded` or `Stopped`).
    pub(super) fn forget_requests(&mut self) {
        self.flushes.clear();
        self.queries.clear();
        self.inbox.clear();
    }
}
