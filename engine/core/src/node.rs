//! The `Node`: one process's whole protocol state.
//!
//! Methods fall into four sorts (quinn's order): getters; inputs
//! (`handle_packet`, `handle_timeout`); commands (`join_group`, `send`, ...);
//! outputs (`poll_transmit`, `poll_event`, `next_timeout`). After any input or
//! command, drain `poll_transmit` and `poll_event`, then sleep until
//! `next_timeout`. The protocol lives in the submodules, one per seam:
//! `gms` (membership and the flush), `multicast` (FIFO streams, acks, NAKs),
//! `transfer` (state transfer), `detector` (heartbeats, suspicion).

mod detector;
mod durable;
mod gms;
mod group;
mod multicast;
mod ordering;
mod query;
mod stream;
mod transfer;

pub use self::query::QUERY_TARGETS_MAX;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::config::Config;
use crate::error::{ConfigError, Error};
use crate::id::{GroupId, MemberId, ViewId};
use crate::kinds::{FlushId, QueryId, QueryRef, SendKind};
use crate::pool::BufPool;
use crate::rng::Rng;
use crate::time::Instant;
use crate::view::{DomainView, GroupView};
use crate::wire::{Frame, FrameWriter, Header, Msg, GROUP_NAME_MAX};

use self::gms::{Acceptor, DomainState, LeaderRun, Pending};
use self::group::LocalGroup;
use self::query::{Outstanding, PendingFlush};

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// One domain member.
    Member(MemberId),
    /// Every member of the group except the sender (IP multicast or fan-out;
    /// `Node::group_members` lists them).
    Group(GroupId),
    /// The seed address `node.config().seeds[index]`. The list can grow: a
    /// node rejoining after an exclusion adds the members of its last view.
    Seed(u16),
}

/// A frame written by `poll_transmit` into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dest: Dest,
    pub len: usize,
}

/// Why a node stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `leave` completed.
    Left,
    /// It lost contact with a majority of its view (primary partition).
    Disconnected,
    /// It was excluded and `rejoin_on_exclusion` is off.
    Excluded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not yet in a domain view.
    Joining,
    Member,
    Stopped(StopReason),
}

/// Things the application must see, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    DomainView(DomainView),
    GroupView(GroupView),
    /// A multicast delivered in the current group view, with the ordering
    /// it was sent with. The payload is valid until the next `poll_event`.
    Delivered {
        group: GroupId,
        sender: MemberId,
        kind: SendKind,
        payload: &'a [u8],
    },
    /// A point-to-point message (`send_to`) for this member; reliable and
    /// FIFO with the sender's multicasts.
    P2p {
        group: GroupId,
        sender: MemberId,
        payload: &'a [u8],
    },
    /// Every multicast this node sent in the group before `flush` is stable.
    Flushed {
        group: GroupId,
        id: FlushId,
    },
    /// A query naming this member: answer with `Node::reply(query, ..)`.
    QueryRequest {
        group: GroupId,
        from: MemberId,
        query: QueryRef,
        payload: &'a [u8],
    },
    /// A responder's answer to this node's query.
    QueryReply {
        id: QueryId,
        from: MemberId,
        payload: &'a [u8],
    },
    /// A responder left the view before answering.
    QueryFailed {
        id: QueryId,
        member: MemberId,
    },
    /// The query is over: every responder answered or failed, or (`timed_out`)
    /// its timeout passed first. Nothing more comes for it.
    QueryDone {
        id: QueryId,
        timed_out: bool,
    },
    /// Produce the group's state now: it is the state at the view boundary.
    /// Call `provide_checkpoint` before the next `poll_event` (which returns
    /// nothing until then).
    CheckpointRequested {
        group: GroupId,
        view_id: u64,
    },
    /// This joiner's state for the group; comes before any delivery in the
    /// group. `fresh` means no member held state (new group): start empty.
    StateLoaded {
        group: GroupId,
        state: &'a [u8],
        fresh: bool,
    },
    /// This node left the group (its own `leave_group`).
    GroupLeft {
        group: GroupId,
    },
    /// This incarnation was excluded; if rejoining, `new_id` is the next one.
    Excluded {
        old_id: MemberId,
        new_id: Option<MemberId>,
    },
    Stopped(StopReason),
}

/// Counters for operators and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    pub frames_received: u64,
    pub frames_malformed: u64,
    pub frames_from_strangers: u64,
    pub frames_stale: u64,
    pub frames_sent: u64,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub retransmissions: u64,
    pub naks_sent: u64,
    pub views_installed: u64,
}

/// An event waiting in the queue; payloads sit in pooled buffers.
#[derive(Debug)]
enum Queued {
    DomainView(DomainView),
    GroupView(GroupView),
    Delivered {
        group: GroupId,
        sender: MemberId,
        kind: SendKind,
        buf: Vec<u8>,
    },
    P2p {
        group: GroupId,
        sender: MemberId,
        buf: Vec<u8>,
    },
    Flushed {
        group: GroupId,
        id: FlushId,
    },
    QueryRequest {
        group: GroupId,
        from: MemberId,
        query: QueryRef,
        buf: Vec<u8>,
    },
    QueryReply {
        id: QueryId,
        from: MemberId,
        buf: Vec<u8>,
    },
    QueryFailed {
        id: QueryId,
        member: MemberId,
    },
    QueryDone {
        id: QueryId,
        timed_out: bool,
    },
    CheckpointRequested {
        group: GroupId,
        view_id: u64,
        epoch: ViewId,
    },
    StateLoaded {
        group: GroupId,
        buf: Vec<u8>,
        fresh: bool,
    },
    GroupLeft {
        group: GroupId,
    },
    Excluded {
        old_id: MemberId,
        new_id: Option<MemberId>,
    },
    Stopped(StopReason),
}

/// Group membership this node asked for and the view does not show yet.
#[derive(Debug, Clone)]
struct Wanted {
    name: String,
    join: bool,
}

#[derive(Debug)]
pub struct Node {
    config: Config,
    me: MemberId,
    status: Status,
    rng: Rng,
    stats: NodeStats,
    pool: BufPool,

    /// The installed domain state; `None` while joining.
    domain: Option<DomainState>,
    /// The commit that installed the current view (for members that missed it).
    last_commit: Option<crate::wire::Proposal>,
    acceptor: Acceptor,
    leader: Option<LeaderRun>,
    /// Changes the leader should propose (any member may become leader).
    pending: Pending,
    /// Earliest time the next leader run may start (backoff after a failed one).
    next_run_at: Instant,
    /// Members this node believes failed. Sticky until they leave the view.
    suspects: BTreeSet<MemberId>,
    /// The suspects this node saw fall silent itself (the rest were reported).
    observed: BTreeSet<MemberId>,
    last_heard: BTreeMap<MemberId, Instant>,
    next_heartbeat_at: Instant,
    /// Index into the view's members of the next heartbeat to send.
    heartbeat_cursor: usize,

    groups: BTreeMap<GroupId, LocalGroup>,
    wanted: BTreeMap<GroupId, Wanted>,
    leave_requested: bool,
    /// When to repeat join / group-change / leave requests.
    next_request_at: Instant,
    seed_cursor: usize,
    /// Rate limits for catch-up and exclusion notices.
    next_commit_request_at: Instant,
    next_excluded_notice_at: Instant,

    outbox: VecDeque<(Dest, Vec<u8>)>,
    loopback: VecDeque<Vec<u8>>,
    events: VecDeque<Queued>,
    /// Payload buffer of the event last returned by `poll_event`.
    current_event_buf: Option<Vec<u8>>,
    /// A checkpoint request returned by `poll_event` and not yet answered.
    awaiting_checkpoint: Option<(GroupId, ViewId)>,
    /// After leaving: the commit that removed this node, repeated for a while
    /// so the members that stay learn it even if this node led the change.
    linger: Option<Linger>,

    /// Flushes not yet complete, in call order.
    flushes: Vec<PendingFlush>,
    next_flush_id: u64,
    /// Queries this node asked that are not done.
    queries: BTreeMap<QueryId, Outstanding>,
    next_query_id: u64,
    /// Rotation point for `QueryTarget::One` and `K`.
    query_cursor: u64,
    /// Queries delivered to this node and not yet answered.
    inbox: BTreeSet<QueryRef>,
    /// Durable groups and their logs (node/durable.rs).
    durable: BTreeMap<GroupId, self::durable::DurableLog>,
}

#[derive(Debug)]
struct Linger {
    commit: crate::wire::Proposal,
    resend_at: Instant,
    until: Instant,
}

impl Node {
    pub fn new(config: Config, now: Instant) -> Result<Node, ConfigError> {
        config.validate()?;
        let me = MemberId {
            node: config.node,
            incarnation: config.incarnation,
        };
        let mut node = Node {
            rng: Rng::new(
                config.seed ^ u64::from(config.node.0) << 32 ^ u64::from(config.incarnation.0),
            ),
            me,
            status: Status::Joining,
            stats: NodeStats::default(),
            pool: BufPool::default(),
            domain: None,
            last_commit: None,
            acceptor: Acceptor::default(),
            leader: None,
            pending: Pending::default(),
            next_run_at: now,
            suspects: BTreeSet::new(),
            observed: BTreeSet::new(),
            last_heard: BTreeMap::new(),
            next_heartbeat_at: now,
            heartbeat_cursor: usize::MAX,
            groups: BTreeMap::new(),
            wanted: BTreeMap::new(),
            leave_requested: false,
            next_request_at: now,
            seed_cursor: 0,
            next_commit_request_at: now,
            next_excluded_notice_at: now,
            outbox: VecDeque::new(),
            loopback: VecDeque::new(),
            events: VecDeque::new(),
            current_event_buf: None,
            awaiting_checkpoint: None,
            linger: None,
            flushes: Vec::new(),
            next_flush_id: 0,
            queries: BTreeMap::new(),
            next_query_id: 0,
            query_cursor: 0,
            inbox: BTreeSet::new(),
            durable: BTreeMap::new(),
            config,
        };
        if node.config.bootstrap {
            node.bootstrap(now);
        }
        Ok(node)
    }

    // ----- getters -------------------------------------------------------

    pub fn member_id(&self) -> MemberId {
        self.me
    }

    pub fn status(&self) -> Status {
        self.status
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn domain_view(&self) -> Option<&DomainView> {
        self.domain.as_ref().map(|domain| &domain.view)
    }

    pub fn group_view(&self, group: GroupId) -> Option<&GroupView> {
        self.groups.get(&group).map(|local| &local.view)
    }

    /// Members of the group's current view, ranked (for multicast fan-out).
    pub fn group_members(&self, group: GroupId) -> &[MemberId] {
        self.groups
            .get(&group)
            .map(|local| local.view.members.as_slice())
            .unwrap_or(&[])
    }

    /// Whether this node leads the domain: the oldest member it does not suspect.
    pub fn is_leader(&self) -> bool {
        self.domain.is_some() && self.acting_leader() == Some(self.me)
    }

    /// Whether this node is running a view change as leader right now.
    pub fn is_proposing(&self) -> bool {
        self.leader.is_some()
    }

    pub fn stats(&self) -> &NodeStats {
        &self.stats
    }

    fn is_stopped(&self) -> bool {
        matches!(self.status, Status::Stopped(_))
    }

    fn view_id(&self) -> ViewId {
        self.domain
            .as_ref()
            .map(|domain| domain.view.id)
            .unwrap_or_default()
    }

    // ----- inputs --------------------------------------------------------

    /// A frame arrived. Malformed frames and frames from strangers are
    /// counted and dropped; nothing the network sends can make this panic.
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) {
        self.stats.frames_received += 1;
        if self.is_stopped() {
            return;
        }
        match Frame::decode(bytes) {
            Ok(frame) => self.on_frame(now, &frame, false),
            Err(_) => self.stats.frames_malformed += 1,
        }
        self.settle(now);
    }

    /// Time passed: heartbeats, suspicion, retries, acks and NAKs fall due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_stopped() {
            self.linger_tick(now);
            return;
        }
        self.detector_tick(now);
        if self.is_stopped() {
            return;
        }
        self.request_tick(now);
        self.multicast_tick(now);
        self.transfer_tick(now);
        self.query_tick(now);
        self.settle(now);
    }

    /// Process what this node sent itself and move the leader along.
    fn settle(&mut self, now: Instant) {
        for _ in 0..64 {
            if self.is_stopped() {
                self.loopback.clear();
                return;
            }
            if let Some(bytes) = self.loopback.pop_front() {
                if let Ok(frame) = Frame::decode(&bytes) {
                    self.on_frame(now, &frame, true);
                }
                continue;
            }
            if !self.leader_tick(now) {
                break;
            }
        }
    }

    // ----- commands ------------------------------------------------------

    /// Join (creating if needed) the named group. Completes when a
    /// `GroupView` naming this node arrives.
    pub fn join_group(&mut self, now: Instant, name: &str) -> Result<GroupId, Error> {
        self.check_running()?;
        if name.is_empty() || name.len() > GROUP_NAME_MAX {
            return Err(Error::BadGroupName);
        }
        let group = GroupId::from_name(name);
        if let Some(record) = self
            .domain
            .as_ref()
            .and_then(|domain| domain.groups.get(&group))
        {
            if record.name != name {
                return Err(Error::GroupIdCollision(group));
            }
        }
        let joined = self.groups.contains_key(&group);
        match self.wanted.get(&group) {
            Some(wanted) if wanted.join => return Err(Error::AlreadyJoined(group)),
            Some(_) => {}
            None if joined => return Err(Error::AlreadyJoined(group)),
            None => {}
        }
        if joined {
            self.wanted.remove(&group);
        } else {
            self.wanted.insert(
                group,
                Wanted {
                    name: name.to_owned(),
                    join: true,
                },
            );
        }
        self.next_request_at = now;
        self.request_tick(now);
        self.settle(now);
        Ok(group)
    }

    /// Leave a group. Completes with `Event::GroupLeft`.
    pub fn leave_group(&mut self, now: Instant, group: GroupId) -> Result<(), Error> {
        self.check_running()?;
        let joined = self.groups.get(&group).map(|local| local.view.name.clone());
        match (self.wanted.get(&group).map(|wanted| wanted.join), joined) {
            (Some(true), None) => {
                self.wanted.remove(&group);
            }
            (Some(false), _) | (None, None) => return Err(Error::NotJoined(group)),
            (_, Some(name)) => {
                self.wanted.insert(group, Wanted { name, join: false });
            }
        }
        self.next_request_at = now;
        self.request_tick(now);
        self.settle(now);
        Ok(())
    }

    /// FIFO multicast to every member of the group's current view (Send).
    /// The other kinds: `causal_send`, `ordered_send`, `safe_send`,
    /// `send_kind`, `send_to`, `query` (in `node/query.rs`).
    pub fn send(&mut self, now: Instant, group: GroupId, payload: &[u8]) -> Result<(), Error> {
        self.send_kind(now, group, SendKind::Fifo, payload)
    }

    /// Answer the outstanding `CheckpointRequested` for the group.
    pub fn provide_checkpoint(
        &mut self,
        now: Instant,
        group: GroupId,
        state: &[u8],
    ) -> Result<(), Error> {
        match self.awaiting_checkpoint {
            Some((waiting, epoch)) if waiting == group => {
                self.awaiting_checkpoint = None;
                if state.len() > transfer::STATE_BYTES_MAX {
                    return Err(Error::CheckpointTooLarge {
                        len: state.len(),
                        max: transfer::STATE_BYTES_MAX,
                    });
                }
                self.start_donation(now, group, epoch, state);
                Ok(())
            }
            _ => Err(Error::NoCheckpointRequested(group)),
        }
    }

    /// Leave the domain (and so every group). Completes with
    /// `Event::Stopped(StopReason::Left)`.
    pub fn leave(&mut self, now: Instant) -> Result<(), Error> {
        self.check_running()?;
        if self.domain.is_none() {
            self.stop(StopReason::Left);
            return Ok(());
        }
        self.leave_requested = true;
        self.next_request_at = now;
        self.request_tick(now);
        self.settle(now);
        Ok(())
    }

    fn check_running(&self) -> Result<(), Error> {
        match self.status {
            Status::Stopped(_) => Err(Error::Stopped),
            _ if self.leave_requested => Err(Error::Stopped),
            _ => Ok(()),
        }
    }

    // ----- outputs -------------------------------------------------------

    /// Write the next frame to send into `buf` (cleared first).
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if self.is_stopped() {
            // Only what was queued before stopping (a leave's last commit).
            let (dest, bytes) = self.outbox.pop_front()?;
            buf.clear();
            buf.extend_from_slice(&bytes);
            self.stats.frames_sent += 1;
            let len = bytes.len();
            self.pool.put(bytes);
            return Some(Transmit { dest, len });
        }
        let transmit = self.next_transmit(now, buf);
        if transmit.is_some() {
            self.stats.frames_sent += 1;
        }
        transmit
    }

    fn next_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        if let Some((dest, bytes)) = self.outbox.pop_front() {
            buf.clear();
            buf.extend_from_slice(&bytes);
            let len = bytes.len();
            self.pool.put(bytes);
            return Some(Transmit { dest, len });
        }
        if let Some(transmit) = self.poll_heartbeat(buf) {
            return Some(transmit);
        }
        self.poll_data(now, buf)
    }

    /// The next event. Returns `None` while a `CheckpointRequested` is unanswered.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        if self.awaiting_checkpoint.is_some() {
            return None;
        }
        if let Some(buf) = self.current_event_buf.take() {
            self.pool.put(buf);
        }
        let queued = self.events.pop_front()?;
        Some(match queued {
            Queued::DomainView(view) => Event::DomainView(view),
            Queued::GroupView(view) => Event::GroupView(view),
            Queued::Delivered {
                group,
                sender,
                kind,
                buf,
            } => {
                let payload = self.current_event_buf.insert(buf);
                Event::Delivered {
                    group,
                    sender,
                    kind,
                    payload,
                }
            }
            Queued::P2p { group, sender, buf } => {
                let payload = self.current_event_buf.insert(buf);
                Event::P2p {
                    group,
                    sender,
                    payload,
                }
            }
            Queued::Flushed { group, id } => Event::Flushed { group, id },
            Queued::QueryRequest {
                group,
                from,
                query,
                buf,
            } => {
                let payload = self.current_event_buf.insert(buf);
                Event::QueryRequest {
                    group,
                    from,
                    query,
                    payload,
                }
            }
            Queued::QueryReply { id, from, buf } => {
                let payload = self.current_event_buf.insert(buf);
                Event::QueryReply { id, from, payload }
            }
            Queued::QueryFailed { id, member } => Event::QueryFailed { id, member },
            Queued::QueryDone { id, timed_out } => Event::QueryDone { id, timed_out },
            Queued::CheckpointRequested {
                group,
                view_id,
                epoch,
            } => {
                self.awaiting_checkpoint = Some((group, epoch));
                Event::CheckpointRequested { group, view_id }
            }
            Queued::StateLoaded { group, buf, fresh } => {
                let state = self.current_event_buf.insert(buf);
                Event::StateLoaded {
                    group,
                    state,
                    fresh,
                }
            }
            Queued::GroupLeft { group } => Event::GroupLeft { group },
            Queued::Excluded { old_id, new_id } => Event::Excluded { old_id, new_id },
            Queued::Stopped(reason) => Event::Stopped(reason),
        })
    }

    /// When `handle_timeout` should next be called.
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.is_stopped() {
            return self.linger.as_ref().map(|linger| linger.resend_at);
        }
        let mut earliest = self.next_request_at;
        if self.domain.is_some() {
            earliest = earliest.min(self.detector_deadline());
            earliest = earliest.min(self.multicast_deadline());
            earliest = earliest.min(self.transfer_deadline());
            earliest = earliest.min(self.query_deadline());
            if let Some(run) = &self.leader {
                earliest = earliest.min(run.deadline.min(run.resend_at));
            } else if self.leader_has_work() {
                earliest = earliest.min(self.next_run_at);
            }
        }
        Some(earliest)
    }

    // ----- shared plumbing -----------------------------------------------

    fn header(&self, group: GroupId, seq: u64) -> Header {
        Header {
            sender: self.me,
            view: self.view_id(),
            group,
            seq,
        }
    }

    /// Queue one control message. Messages to this node itself loop back.
    fn send_control(&mut self, dest: Dest, msg: &Msg<'_>) {
        let header = self.header(GroupId::DOMAIN, 0);
        let mut bytes = self.pool.copy_of(&[]);
        let mut writer = FrameWriter::new(&mut bytes, &header);
        let pushed = writer.push(msg);
        debug_assert!(pushed);
        if dest == Dest::Member(self.me) {
            self.loopback.push_back(bytes);
        } else {
            self.outbox.push_back((dest, bytes));
        }
    }

    fn emit(&mut self, event: Queued) {
        self.events.push_back(event);
    }

    /// Leaving: repeat the commit that removed this node to the members
    /// that stay, every 4 × `nak_delay`, for `suspect_timeout`.
    fn linger_tick(&mut self, now: Instant) {
        let Some(linger) = &mut self.linger else {
            return;
        };
        if now >= linger.until {
            self.linger = None;
            return;
        }
        if now < linger.resend_at {
            return;
        }
        linger.resend_at = now + self.config.nak_delay * 4;
        let targets: Vec<MemberId> = linger.commit.members.iter().map(|info| info.id).collect();
        let msg = Msg::Commit {
            proposal: Box::new(linger.commit.clone()),
        };
        for member in targets {
            self.send_control(Dest::Member(member), &msg);
        }
    }

    fn stop(&mut self, reason: StopReason) {
        if self.is_stopped() {
            return;
        }
        self.status = Status::Stopped(reason);
        self.leader = None;
        // The outbox is kept: it may hold the commit of this node's own leave.
        self.emit(Queued::Stopped(reason));
    }

    /// Forget this incarnation and join again as the next one.
    fn rejoin_as_new_incarnation(&mut self, now: Instant) {
        let old_id = self.me;
        if self.leave_requested {
            // It wanted out anyway: being excluded completes the leave.
            self.domain = None;
            self.stop(StopReason::Left);
            return;
        }
        if !self.config.rejoin_on_exclusion {
            self.emit(Queued::Excluded {
                old_id,
                new_id: None,
            });
            self.stop(StopReason::Excluded);
            return;
        }
        // Rejoin through the members of the last view too: a node that
        // bootstrapped the domain may have no configured seeds.
        if let Some(domain) = &self.domain {
            for info in &domain.view.members {
                if info.id.node != self.me.node && !self.config.seeds.contains(&info.addr) {
                    self.config.seeds.push(info.addr.clone());
                }
            }
        }
        self.config.incarnation.0 += 1;
        self.me = MemberId {
            node: self.config.node,
            incarnation: self.config.incarnation,
        };
        let groups = std::mem::take(&mut self.groups);
        for (_, local) in groups {
            local.release(&mut self.pool);
        }
        self.forget_requests();
        self.domain = None;
        self.last_commit = None;
        self.acceptor = Acceptor::default();
        self.leader = None;
        self.pending = Pending::default();
        self.suspects.clear();
        self.observed.clear();
        self.last_heard.clear();
        self.wanted.clear();
        // The outbox is kept: it may hold the commit that excluded this node,
        // which this node decided as leader and the others still need.

        self.loopback.clear();
        self.awaiting_checkpoint = None;
        self.status = Status::Joining;
        self.next_request_at = now;
        self.request_tick(now);
        self.emit(Queued::Excluded {
            old_id,
            new_id: Some(self.me),
        });
    }

    // ----- frame dispatch ------------------------------------------------

    fn on_frame(&mut self, now: Instant, frame: &Frame<'_>, loopback: bool) {
        let header = frame.header;
        if !loopback && header.sender.node == self.me.node {
            return; // our own multicast, echoed back
        }
        let is_member = self
            .domain
            .as_ref()
            .is_some_and(|domain| domain.view.contains(header.sender));
        if is_member {
            self.last_heard.insert(header.sender, now);
        } else if self
            .domain
            .as_ref()
            .is_some_and(|domain| domain.is_retired(header.sender))
        {
            self.stats.frames_from_strangers += 1;
            self.notify_excluded(header.sender, now);
            return;
        }
        let mut data_index = 0u64;
        for msg in frame.messages() {
            if self.is_stopped() {
                return;
            }
            match msg {
                Msg::Data { payload } => {
                    if is_member {
                        let seq = header.seq + data_index;
                        self.on_data(now, &header, seq, crate::wire::data_tag::FIFO, payload);
                    }
                    data_index += 1;
                }
                Msg::Typed { tag, body } => {
                    if is_member {
                        self.on_data(now, &header, header.seq + data_index, tag, body);
                    }
                    data_index += 1;
                }
                Msg::Ack { entries } if is_member => self.on_ack(now, &header, entries),
                Msg::AckWanted if is_member => self.on_ack_wanted(&header),
                Msg::Nak { sender, from, to } if is_member => {
                    self.on_nak(&header, sender, from, to)
                }
                Msg::StateChunk {
                    group,
                    transfer,
                    index,
                    total,
                    bytes,
                } if is_member => {
                    self.on_state_chunk(&header, group, transfer, index, total, bytes)
                }
                Msg::StateAck {
                    group,
                    transfer,
                    next,
                } if is_member => self.on_state_ack(now, &header, group, transfer, next),
                Msg::Ack { .. }
                | Msg::AckWanted
                | Msg::Nak { .. }
                | Msg::StateChunk { .. }
                | Msg::StateAck { .. } => {}
                control => self.on_control(now, &header, is_member, control),
            }
        }
        if !is_member && data_index > 0 {
            self.stats.frames_from_strangers += 1;
        }
        // A sender in a newer view holds the commit we lack. That includes a
        // stranger in exactly our next view: a member that view admitted,
        // which we do not know yet. Ignoring it let a fresh joiner, which
        // heard nobody (they had not installed its view), stop Disconnected
        // and take the majority with it (seed 48714).
        let newer = header.view > self.view_id();
        let next_view_stranger = header.view == self.view_id().next() && self.domain.is_some();
        if newer && (is_member || self.domain.is_none() || next_view_stranger) {
            self.request_commit(now, header.sender);
        }
    }
}
