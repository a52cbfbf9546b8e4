//! Driving one `Node`: start, crash, frames in, timers, and draining its
//! transmits and events after every input (the quinn-proto `step` pattern).

use std::rc::Rc;

use osiris_core::{Config, Dest, Event, GroupId, Incarnation, Instant, MemberId, Node, QueryRef};

use super::{AppGroup, AppNode, Phase, SimEvent, Simulation};
use crate::app::{decode_payload, GroupState};
use crate::check::Violation;
use crate::history::{fnv1a, fnv1a_continue, group_label, MsgId, Record, RecordKind};

/// Longest a node may keep producing work (transmits or events) for one input
/// before the simulator declares it runaway.
const DRAIN_STEPS_MAX: usize = 1_000_000;
/// Virtual time one runtime duty cycle takes when a node's deadline is overdue.
const TIMER_SPIN_NS: u64 = 100_000;

/// What the application does in answer to an event.
enum Followup {
    Checkpoint(GroupId, u64),
    Reply(QueryRef, Vec<u8>),
}

/// Everything event handling touches besides the `Node` itself.
struct EventSink<'a> {
    now: u64,
    index: usize,
    app: &'a mut AppNode,
    incarnation_max: &'a mut u32,
    history: &'a mut Vec<Record>,
    latest_view: &'a mut Option<osiris_core::DomainView>,
    pending_joiners: &'a mut std::collections::BTreeSet<MemberId>,
    probes_delivered: &'a mut std::collections::BTreeSet<(MemberId, MsgId)>,
    safe_delivered_at: &'a mut Option<u64>,
    violations: &'a mut Vec<Violation>,
}

impl EventSink<'_> {
    fn record(&mut self, member: MemberId, kind: RecordKind) {
        self.history.push(Record {
            time: self.now,
            node: Some(self.index),
            member,
            kind,
        });
    }

    fn violation(&mut self, checker: &'static str, message: String) {
        self.violations.push(Violation {
            checker,
            time: self.now,
            message,
        });
    }

    /// Apply one event to the app and the history; returns what the app
    /// must do about it (provide a checkpoint, reply to a query).
    fn on_event(&mut self, event: Event<'_>) -> Option<Followup> {
        let me = self.app.member;
        match event {
            Event::DomainView(view) => {
                let newer = match self.latest_view.as_ref() {
                    Some(latest) => latest.id < view.id,
                    None => true,
                };
                if newer {
                    *self.latest_view = Some(view.clone());
                }
                // A joiner shown in a view, or superseded by a newer
                // incarnation of its node in one, is no longer pending.
                self.pending_joiners.retain(|joiner| {
                    !view.members.iter().any(|info| {
                        info.id.node == joiner.node && info.id.incarnation >= joiner.incarnation
                    })
                });
                self.record(me, RecordKind::DomainView(view));
            }
            Event::GroupView(view) => self.on_group_view(view),
            Event::Delivered {
                group,
                sender,
                payload,
                kind,
            } => {
                let decoded = decode_payload(payload);
                let probe = decoded.is_some_and(|(_, probe)| probe);
                let msg = decoded.map(|(msg, _)| msg);
                if let (true, Some(msg)) = (probe, msg) {
                    self.probes_delivered.insert((me, msg));
                }
                if let Some(state) = self
                    .app
                    .groups
                    .get_mut(&group)
                    .and_then(|group| group.state.as_mut())
                {
                    state.apply(sender, payload);
                }
                if kind == osiris_core::SendKind::Safe {
                    *self.safe_delivered_at = Some(self.now);
                }
                let payload_hash = fnv1a(payload);
                self.record(
                    me,
                    RecordKind::Delivered {
                        group,
                        sender,
                        msg,
                        payload_hash,
                        probe,
                        kind,
                    },
                );
            }
            Event::CheckpointRequested { group, view_id } => {
                self.record(me, RecordKind::CheckpointRequested { group, view_id });
                return Some(Followup::Checkpoint(group, view_id));
            }
            Event::StateLoaded {
                group,
                state,
                fresh,
            } => {
                let loaded = if fresh {
                    Ok(GroupState::default())
                } else {
                    GroupState::deserialize(state)
                };
                let loaded = loaded.unwrap_or_else(|reason| {
                    self.violation(
                        "state_transfer",
                        format!("{me} loaded undecodable state: {reason}"),
                    );
                    GroupState::default()
                });
                let mut replaced = None;
                if let Some(entry) = self.app.groups.get_mut(&group) {
                    replaced = entry.state.replace(loaded).map(|old| old.serialize());
                }
                self.record(
                    me,
                    RecordKind::StateLoaded {
                        group,
                        state: state.to_vec(),
                        fresh,
                        replaced,
                    },
                );
            }
            Event::GroupLeft { group } => {
                self.app.groups.remove(&group);
                self.app.requested.remove(&group);
                self.record(me, RecordKind::GroupLeft { group });
            }
            Event::Excluded { old_id, new_id } => {
                self.record(old_id, RecordKind::Excluded { old_id, new_id });
                self.app.groups.clear();
                self.app.requested.clear();
                if let Some(new_id) = new_id {
                    self.pending_joiners.insert(new_id);
                    self.app.member = new_id;
                    *self.incarnation_max = (*self.incarnation_max).max(new_id.incarnation.0);
                }
            }
            Event::Stopped(reason) => {
                self.record(me, RecordKind::Stopped(reason));
                self.app.stopped = Some(reason);
                self.app.groups.clear();
            }
            Event::QueryRequest { query, payload, .. } => {
                self.record(me, RecordKind::QueryRequest { query });
                return Some(Followup::Reply(query, payload.to_vec()));
            }
            Event::QueryReply { id, from, .. } => {
                self.record(me, RecordKind::QueryReply { id, from })
            }
            Event::QueryFailed { id, member } => {
                self.record(me, RecordKind::QueryFailed { id, member })
            }
            Event::QueryDone { id, timed_out } => {
                self.record(me, RecordKind::QueryDone { id, timed_out })
            }
            Event::P2p { .. } | Event::Flushed { .. } => {}
        }
        None
    }

    fn on_group_view(&mut self, view: osiris_core::GroupView) {
        let me = self.app.member;
        let state = if view.members.contains(&me) {
            self.app.requested.remove(&view.group);
            let entry = self.app.groups.entry(view.group).or_insert(AppGroup {
                members: Vec::new(),
                state: None,
            });
            entry.members = view.members.clone();
            entry.state.as_ref().map(GroupState::serialize)
        } else {
            self.app.groups.remove(&view.group);
            None
        };
        self.record(me, RecordKind::GroupView { view, state });
    }
}

/// A one-line summary of a frame for the frame trace.
fn describe_frame(bytes: &[u8]) -> String {
    use osiris_core::wire::{Frame, Msg};
    let Ok(frame) = Frame::decode(bytes) else {
        return format!("<malformed {} bytes>", bytes.len());
    };
    let header = frame.header;
    let messages: Vec<String> = frame
        .messages()
        .map(|msg| match msg {
            Msg::Data { payload } => match decode_payload(payload) {
                Some((id, _)) => format!("Data({id})"),
                None => "Data(?)".to_string(),
            },
            Msg::Ack { entries } => format!(
                "Ack({})",
                entries
                    .iter()
                    .map(|e| format!("{}:{}", e.sender, e.hi))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
            Msg::Nak { sender, from, to } => format!("Nak({sender} {from}..={to})"),
            Msg::Heartbeat => "Hb".to_string(),
            Msg::AckWanted => "AckWanted".to_string(),
            Msg::Typed { tag, body } => match osiris_core::wire::DataView::parse(tag, body) {
                Ok(view) => format!("{view:?}"),
                Err(_) => format!("Typed({tag}?)"),
            },
            Msg::Join(request) => format!("Join({} {:?})", request.member.id, request.groups),
            Msg::GroupChange { member, name, join } => {
                format!("GroupChange({member} {name} join={join})")
            }
            Msg::Leave { member } => format!("Leave({member})"),
            Msg::Suspect { suspects } => format!("Suspect({suspects:?})"),
            Msg::Prepare { ballot } => format!("Prepare({}.{})", ballot.round, ballot.node),
            Msg::Promise(promise) => format!(
                "Promise({}.{} accepted={:?})",
                promise.ballot.round,
                promise.ballot.node,
                promise
                    .accepted
                    .as_ref()
                    .map(|(ballot, proposal)| (ballot.round, proposal.view.0))
            ),
            Msg::Reject { promised } => format!("Reject({}.{})", promised.round, promised.node),
            Msg::Accept { ballot, proposal } => {
                let members: Vec<String> = proposal
                    .members
                    .iter()
                    .map(|info| info.id.to_string())
                    .collect();
                format!(
                    "Accept({}.{} view {} [{}])",
                    ballot.round,
                    ballot.node,
                    proposal.view.0,
                    members.join(" ")
                )
            }
            Msg::Accepted { ballot } => format!("Accepted({}.{})", ballot.round, ballot.node),
            Msg::Commit { proposal } => format!("Commit(view {})", proposal.view.0),
            Msg::CommitRequest { view } => format!("CommitRequest({})", view.0),
            Msg::Excluded { view, member } => format!("Excluded({}, {member})", view.0),
            Msg::StateChunk {
                group,
                transfer,
                index,
                total,
                ..
            } => {
                format!(
                    "StateChunk({} t{transfer} {index}/{total})",
                    group_label(group)
                )
            }
            Msg::StateAck {
                group,
                transfer,
                next,
            } => format!("StateAck({} t{transfer} next {next})", group_label(group)),
        })
        .collect();
    format!(
        "[{} v{} {} seq {}] {}",
        header.sender,
        header.view.0,
        group_label(header.group),
        header.seq,
        messages.join(", ")
    )
}

fn node_index(addr: &str) -> Option<usize> {
    addr.strip_prefix('n')?.parse().ok()
}

impl Simulation {
    /// Start (or restart, as a new incarnation) the node at `index`.
    pub(super) fn start_node(&mut self, index: usize) {
        if self.now < self.starts_held_until {
            return;
        }
        self.nodes[index].restart_pending = false;
        if self.nodes[index].running() {
            return;
        }
        let first_start = self.nodes[index].incarnation_max == 0;
        if !first_start {
            self.stats.restarts += 1;
        }
        if self.nodes[index].node.take().is_some() {
            self.note(Some(index), "stopped process exits".to_string());
        }
        let incarnation = self.nodes[index].incarnation_max + 1;
        let bootstrap = self.bootstrapper == Some(index);
        let mut config = Config::new(index as u32, self.nodes[index].addr.clone());
        config.incarnation = Incarnation(incarnation);
        config.bootstrap = bootstrap;
        config.seeds = if bootstrap {
            Vec::new()
        } else {
            (0..self.nodes.len())
                .filter(|other| *other != index)
                .map(|other| self.nodes[other].addr.clone())
                .collect()
        };
        config.seed = self.node_seed(index, incarnation);
        config.inject_bug = self.options.inject_bug;
        self.tuning.apply(&mut config);
        let mut node = match Node::new(config, Instant(self.now)) {
            Ok(node) => node,
            Err(error) => {
                return self.sim_violation(
                    "sim",
                    format!("n{index}: Node::new refused the config: {error}"),
                )
            }
        };
        let recovered = self.open_logs(index, &mut node);
        if bootstrap {
            self.bootstrapper = None;
        }
        let sim = &mut self.nodes[index];
        sim.incarnation_max = incarnation;
        sim.restart_pending = false;
        sim.life += 1;
        sim.timer_at = None;
        sim.timeout_handled_at = None;
        sim.app.member = node.member_id();
        if !bootstrap {
            self.pending_joiners.insert(sim.app.member);
        }
        let sim = &mut self.nodes[index];
        sim.app.groups.clear();
        sim.app.requested.clear();
        sim.app.stopped = None;
        sim.app.leaving = false;
        sim.node = Some(node);
        self.record(index, RecordKind::Started { bootstrap });
        if !first_start {
            for kind in recovered {
                self.record(index, kind);
            }
        }
        self.drain(index);
    }

    /// Crash the node if it is still in the life the crash was scheduled for.
    pub(super) fn crash_if(&mut self, index: usize, life: u64, leader: bool) {
        if self.nodes[index].life != life
            || self.nodes[index].node.is_none()
            || self.phase != Phase::Safety
        {
            return;
        }
        if !self.majority_survives(&[index]) {
            return self.note(
                Some(index),
                "crash cancelled: it would cost the domain its majority".to_string(),
            );
        }
        if leader {
            self.stats.leader_crashes += 1;
            if self.nodes[index]
                .node
                .as_ref()
                .is_some_and(Node::is_proposing)
            {
                self.stats.leader_crashes_while_proposing += 1;
                self.note(
                    Some(index),
                    "crashing the leader while it proposes".to_string(),
                );
            }
        }
        self.crash(index);
    }

    pub(super) fn crash(&mut self, index: usize) {
        self.stats.crashes += 1;
        self.record(index, RecordKind::Crashed);
        self.crash_logs(index);
        let sim = &mut self.nodes[index];
        sim.node = None;
        sim.life += 1;
        sim.timer_at = None;
        sim.app.groups.clear();
        sim.app.requested.clear();
        sim.app.stopped = None;
    }

    pub(super) fn arrive(&mut self, from: usize, to: usize, frame: &Rc<[u8]>) {
        if !self.net.connected(from, to) {
            self.net.stats.copies_partitioned += 1;
            return;
        }
        let Some(node) = self.nodes[to].node.as_mut() else {
            return;
        };
        self.net.stats.copies_delivered += 1;
        let link = ((from as u64) << 8) | to as u64;
        let digest = fnv1a_continue(self.stats.net_digest, &self.now.to_le_bytes());
        self.stats.net_digest =
            fnv1a_continue(digest, &(link ^ ((frame.len() as u64) << 16)).to_le_bytes());
        node.handle_packet(Instant(self.now), frame);
        self.drain(to);
    }

    pub(super) fn timer(&mut self, index: usize, life: u64, at: u64) {
        let sim = &mut self.nodes[index];
        if sim.life != life || sim.timer_at != Some(at) {
            return;
        }
        sim.timer_at = None;
        let Some(node) = sim.node.as_mut() else {
            return;
        };
        node.handle_timeout(Instant(self.now));
        sim.timeout_handled_at = Some(self.now);
        self.drain(index);
    }

    /// After any input: route every frame, handle every event, re-arm the timer.
    pub(super) fn drain(&mut self, index: usize) {
        for _ in 0..DRAIN_STEPS_MAX {
            if self.nodes[index].node.is_none() {
                return;
            }
            let sent = self.route_one(index);
            // Right before `poll_event`: output commit holds for what the
            // node queued up to now, routing included.
            self.persist_before_events(index);
            let handled = self.handle_one(index);
            if !sent && !handled {
                self.queue_sync(index);
                self.rearm_timer(index);
                self.after_drain(index);
                return;
            }
        }
        self.sim_violation(
            "sim",
            format!("n{index} produced work without end for one input: runaway"),
        );
        self.phase = Phase::Done;
    }

    /// Poll one transmit and put its copies on the network.
    fn route_one(&mut self, index: usize) -> bool {
        let sim = &mut self.nodes[index];
        let Some(node) = sim.node.as_mut() else {
            return false;
        };
        self.frame.clear();
        let Some(transmit) = node.poll_transmit(Instant(self.now), &mut self.frame) else {
            return false;
        };
        self.destinations.clear();
        match transmit.dest {
            Dest::Member(member) => self.destinations.push(member.node.0 as usize),
            Dest::Group(group) => {
                let me = node.member_id();
                let members = node.group_members(group);
                self.destinations.extend(
                    members
                        .iter()
                        .filter(|m| **m != me)
                        .map(|m| m.node.0 as usize),
                );
            }
            // The node's own seed list: it grows when a node rejoins after
            // an exclusion (it adds the members of its last view).
            Dest::Seed(seed) => match node
                .config()
                .seeds
                .get(usize::from(seed))
                .and_then(|addr| node_index(addr))
            {
                Some(to) => self.destinations.push(to),
                None => {
                    self.sim_violation(
                        "sim",
                        format!("n{index} sent to unknown seed index {seed}"),
                    );
                    return true;
                }
            },
        }
        if transmit.len > self.frame.len() {
            let message = format!(
                "n{index} reported a {}-byte frame in a {}-byte buffer",
                transmit.len,
                self.frame.len()
            );
            self.sim_violation("sim", message);
            return true;
        }
        let frame: Rc<[u8]> = Rc::from(&self.frame[..transmit.len]);
        let described = self.options.trace_frames.then(|| describe_frame(&frame));
        for position in 0..self.destinations.len() {
            let to = self.destinations[position];
            if to >= self.nodes.len() {
                self.sim_violation("sim", format!("n{index} sent to unknown node n{to}"));
                continue;
            }
            self.net.route(index, to, &mut self.arrivals);
            if let Some(text) = &described {
                let fate = match self.arrivals.as_slice() {
                    [] if !self.net.connected(index, to) => "CUT".to_string(),
                    [] => "LOST".to_string(),
                    delays => delays
                        .iter()
                        .map(|delay| format!("+{}us", delay / 1_000))
                        .collect::<Vec<_>>()
                        .join(","),
                };
                self.note(Some(index), format!("frame -> n{to} {fate} {text}"));
            }
            for copy in 0..self.arrivals.len() {
                let arrival = self.now + self.arrivals[copy];
                self.queue.push(
                    arrival,
                    SimEvent::Arrive {
                        from: index,
                        to,
                        frame: Rc::clone(&frame),
                    },
                );
            }
        }
        true
    }

    /// Poll one event and apply it; provide a checkpoint if one was requested.
    fn handle_one(&mut self, index: usize) -> bool {
        let now = self.now;
        let sim = &mut self.nodes[index];
        let Some(node) = sim.node.as_mut() else {
            return false;
        };
        let Some(event) = node.poll_event() else {
            return false;
        };
        let mut sink = EventSink {
            now,
            index,
            app: &mut sim.app,
            incarnation_max: &mut sim.incarnation_max,
            history: &mut self.history,
            latest_view: &mut self.latest_view,
            pending_joiners: &mut self.pending_joiners,
            probes_delivered: &mut self.probes_delivered,
            safe_delivered_at: &mut self.safe_delivered_at,
            violations: &mut self.violations,
        };
        let (group, view_id) = match sink.on_event(event) {
            None => return true,
            Some(Followup::Checkpoint(group, view_id)) => (group, view_id),
            Some(Followup::Reply(query, payload)) => {
                // Back-pressure or a view change may refuse it: the caller
                // then sees a failure marker or a timeout.
                if let Err(error) = node.reply(Instant(now), query, &payload) {
                    let text = format!("reply to query #{} -> {error}", query.id.0);
                    self.note(Some(index), text);
                }
                return true;
            }
        };
        let me = sim.app.member;
        let state = match sim
            .app
            .groups
            .get(&group)
            .and_then(|group| group.state.as_ref())
        {
            Some(state) => state.serialize(),
            None => {
                let message = format!(
                    "{me} was asked for a checkpoint of {} without holding state",
                    group_label(group)
                );
                self.violations.push(Violation {
                    checker: "state_transfer",
                    time: now,
                    message,
                });
                GroupState::default().serialize()
            }
        };
        match node.provide_checkpoint(Instant(now), group, &state) {
            Ok(()) => {
                let kind = RecordKind::CheckpointProvided {
                    group,
                    view_id,
                    state,
                };
                self.history.push(Record {
                    time: now,
                    node: Some(index),
                    member: me,
                    kind,
                });
            }
            Err(error) => {
                let message =
                    format!("{me}: provide_checkpoint for a requested checkpoint failed: {error}");
                self.sim_violation("sim", message);
            }
        }
        true
    }

    fn rearm_timer(&mut self, index: usize) {
        let now = self.now;
        let sim = &self.nodes[index];
        let mut next = sim
            .node
            .as_ref()
            .and_then(Node::next_timeout)
            .map(|at| at.0.max(now));
        if next == Some(now) && sim.timeout_handled_at == Some(now) {
            // handle_timeout(now) left a deadline at or before now: a runtime
            // would spin on it. Model the spin as one duty cycle of virtual
            // time, so the run goes on, and count it (it burns CPU for real).
            next = Some(now + TIMER_SPIN_NS);
            self.stats.timer_spins += 1;
            let streak = self.nodes[index].spin_streak + 1;
            self.nodes[index].spin_streak = streak;
            self.stats.timer_spin_streak_max = self.stats.timer_spin_streak_max.max(streak);
            if self.stats.timer_spins <= 3 {
                let text = "next_timeout() is still <= now after handle_timeout(now)";
                self.note(Some(index), text.to_string());
            }
        }
        let sim = &mut self.nodes[index];
        if sim.timeout_handled_at == Some(now) && next != Some(now + TIMER_SPIN_NS) {
            sim.spin_streak = 0;
        }
        if next != sim.timer_at {
            sim.timer_at = next;
            if let Some(at) = next {
                let life = sim.life;
                self.queue.push(
                    at,
                    SimEvent::Timer {
                        node: index,
                        life,
                        at,
                    },
                );
            }
        }
    }

    /// Hooks that watch a node after it did something: the leader-crash trap
    /// and restarting nodes that stop once faults are over.
    fn after_drain(&mut self, index: usize) {
        self.spring_failure_trap();
        if let Some(trap) = self.leader_trap {
            if self.now > trap.deadline {
                self.leader_trap = None;
            } else if self.nodes[index]
                .node
                .as_ref()
                .is_some_and(|node| node.is_leader() && node.is_proposing())
            {
                self.leader_trap = None;
                let life = self.nodes[index].life;
                self.note(
                    Some(index),
                    format!(
                        "leader seen proposing: crash in {} us",
                        trap.delay_ns / 1_000
                    ),
                );
                self.queue.push(
                    self.now + trap.delay_ns,
                    SimEvent::Crash {
                        node: index,
                        life,
                        leader: true,
                    },
                );
            }
        }
        let stopped = self.nodes[index].app.stopped;
        let sim = &self.nodes[index];
        if let (Some(reason), false, false) =
            (stopped, sim.restart_pending, self.phase == Phase::Safety)
        {
            // After faults stop, a node that stops is restarted (liveness
            // requires every node back): a cut-off minority may notice its
            // disconnection only after the heal.
            self.note(
                Some(index),
                format!("stopped ({reason:?}) after faults ended: restarting"),
            );
            self.nodes[index].restart_pending = true;
            let delay = self.rng_fault.range_inclusive(10, 50) * crate::net::NANOS_PER_MS;
            self.queue
                .push(self.now + delay, SimEvent::Start { node: index });
        }
    }
}
