//! The data-plane thread: owns the protocol core and the transports, and runs
//! the duty cycle of docs/runtime.md:
//! receive → core → submissions → timers → transmit → upcalls → idle.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use osiris_core::{
    Dest, Event, FlushId, GroupId, Instant, Node as CoreNode, QueryId, QueryRef, SendKind, Status,
};
use osiris_transport::{
    wait_readable, Destination, RecvBatch, Transmit, Transport, UdpConfig, UdpTransport,
};

use crate::addresses::AddressBook;
use crate::config::{MulticastMode, RuntimeConfig};
use crate::durable::DurableLogs;
use crate::handlers::{
    GroupHandlers, Message, NodeHandlers, QueryRequest, QueryResult, RuntimeStats,
};
use crate::idle::{IdleAction, Idler};
use crate::shared::{Control, Op, Shared, Submission};
use crate::RuntimeError;

/// Frames taken from the core per cycle at most (the rest wait a cycle).
const FRAMES_PER_CYCLE: usize = 32;
/// Room beyond the core's `frame_max` in a frame buffer (control frames
/// that carry messages may be larger; they grow the buffer once).
const FRAME_SLACK: usize = 4096;
/// Sends taken from the submission ring per cycle at most.
const SUBMISSIONS_PER_CYCLE: usize = 4096;
/// Payload bytes taken from the submission ring per cycle at most (one
/// submission always goes). Taking a send in copies it into the core, so a
/// count alone does not bound the cycle: 2,000 sends of 64 KiB (128 MiB)
/// held one cycle for about 200 ms, the default suspect timeout, with
/// nothing received or sent meanwhile, and the receivers excluded the
/// sender. 1 MiB (the default send window in bytes) is a millisecond or two
/// of copying, and still 4,096 sends of up to 256 bytes.
const SUBMISSION_BYTES_PER_CYCLE: usize = 1 << 20;
/// Longest block when the core has no timer (it always has one in practice).
const BLOCK_MAX: Duration = Duration::from_millis(100);
/// Frames from non-members per warning period that pass without a warning.
const STRANGERS_QUIET_MAX: u64 = 64;
/// At most one warning about dropped input per this period.
const WARN_PERIOD: Duration = Duration::from_secs(10);

/// The monotonic clock, as the core's nanosecond `Instant`.
#[derive(Debug, Clone, Copy)]
struct Clock {
    start: StdInstant,
}

impl Clock {
    fn now(&self) -> (Instant, StdInstant) {
        let now = StdInstant::now();
        let nanos = u64::try_from(now.duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        (Instant::from_nanos(nanos), now)
    }
}

/// A group this node joined or is joining.
struct LocalGroup {
    handlers: GroupHandlers,
    /// Waiting for the view that admits us.
    join_reply: Option<mpsc::Sender<Result<GroupId, RuntimeError>>>,
    leave_reply: Option<mpsc::Sender<Result<(), RuntimeError>>>,
    multicast_joined: bool,
}

/// Frames built by the core this cycle and not yet accepted by the socket.
#[derive(Debug, Default)]
struct Outgoing {
    bufs: Vec<Vec<u8>>,
    /// Buffers holding frames this cycle.
    used: usize,
    /// (destination, buffer index), in send order.
    entries: Vec<(Destination, usize)>,
    /// Entries already accepted by the transport.
    sent: usize,
    /// Reused allocation for the borrowed `Transmit` list.
    spare: Vec<Transmit<'static>>,
}

/// Reuses a vector's allocation for another lifetime of its (emptied)
/// elements. In-place `collect` keeps the buffer: same size and alignment.
fn recycle<'b>(mut list: Vec<Transmit<'_>>) -> Vec<Transmit<'b>> {
    list.clear();
    list.into_iter()
        .map(|transmit| Transmit {
            destination: transmit.destination,
            frame: &[],
        })
        .collect()
}

impl Outgoing {
    fn is_empty(&self) -> bool {
        self.sent == self.entries.len()
    }

    fn reset(&mut self) {
        self.used = 0;
        self.entries.clear();
        self.sent = 0;
    }

    fn next_buf(&mut self, frame_max: usize) -> (usize, &mut Vec<u8>) {
        if self.used == self.bufs.len() {
            self.bufs.push(Vec::with_capacity(frame_max));
        }
        self.used += 1;
        (self.used - 1, &mut self.bufs[self.used - 1])
    }

    /// Offers the unsent entries to the transport; true when all went.
    fn send(&mut self, transport: &mut UdpTransport) -> Result<bool, RuntimeError> {
        if self.is_empty() {
            return Ok(true);
        }
        let mut list = recycle(std::mem::take(&mut self.spare));
        for &(destination, index) in &self.entries[self.sent..] {
            list.push(Transmit {
                destination,
                frame: &self.bufs[index],
            });
        }
        let accepted = transport.send_batch(&list);
        self.spare = recycle(list);
        self.sent += accepted?;
        if self.is_empty() {
            self.reset();
            return Ok(true);
        }
        Ok(false)
    }
}

pub(crate) struct Engine {
    config: RuntimeConfig,
    node: CoreNode,
    clock: Clock,
    shared: Arc<Shared>,
    control: mpsc::Receiver<Control>,
    unicast: UdpTransport,
    unicast_batch: RecvBatch,
    multicast: Option<(UdpTransport, RecvBatch)>,
    local: SocketAddr,
    book: AddressBook,
    groups: HashMap<GroupId, LocalGroup>,
    handlers: NodeHandlers,
    out: Outgoing,
    idler: Idler,
    stats: RuntimeStats,
    stalled: Option<Submission>,
    /// Callers waiting for their flush.
    flushes: HashMap<FlushId, mpsc::Sender<Result<(), RuntimeError>>>,
    /// Queries in progress: what they collected so far, and the caller.
    queries: HashMap<QueryId, (QueryResult, mpsc::Sender<Result<QueryResult, RuntimeError>>)>,
    /// Logs of the durable groups.
    durable: DurableLogs,
    shutting_down: Option<StdInstant>,
    warned_at: Option<StdInstant>,
    warned_counts: (u64, u64),
}

/// Everything `Engine::start` made, before the thread runs.
pub(crate) struct Started {
    pub engine: Engine,
    pub local: SocketAddr,
}

impl Engine {
    /// Binds the sockets and makes the core; runs on the caller's thread so
    /// that set-up errors come back to it directly.
    pub fn start(
        mut config: RuntimeConfig,
        shared: Arc<Shared>,
        control: mpsc::Receiver<Control>,
        handlers: NodeHandlers,
    ) -> Result<Started, RuntimeError> {
        config.validate()?;
        let mut udp = UdpConfig::new(config.bind);
        udp.datagram_len_max = config.datagram_len_max;
        udp.recv_buffer_bytes = Some(config.socket_buffer_bytes);
        udp.send_buffer_bytes = Some(config.socket_buffer_bytes);
        udp.frame_magic = Some(osiris_core::wire::MAGIC.to_le_bytes());
        let multicast = match config.multicast {
            MulticastMode::Fanout => None,
            MulticastMode::Ip {
                port,
                interface,
                discovery,
                ..
            } => {
                udp.multicast.interface = Some(interface);
                let mut group_socket = UdpConfig::new(SocketAddr::from(([0, 0, 0, 0], port)));
                group_socket.reuse_port = true;
                group_socket.datagram_len_max = config.datagram_len_max;
                group_socket.recv_buffer_bytes = Some(config.socket_buffer_bytes);
                group_socket.frame_magic = udp.frame_magic;
                group_socket.multicast.interface = Some(interface);
                if let Some(discovery) = discovery {
                    group_socket
                        .multicast
                        .groups
                        .push(osiris_transport::MulticastMembership {
                            group: discovery,
                            interface,
                        });
                }
                let transport = UdpTransport::new(group_socket)?;
                let batch = transport.new_recv_batch();
                Some((transport, batch))
            }
        };
        let unicast = UdpTransport::new(udp)?;
        let unicast_batch = unicast.new_recv_batch();
        let local = unicast.local_addr();
        config.core.addr = local.to_string();
        if let Some(discovery) = config.discovery_address() {
            // The core sends join requests to its seeds; the discovery group
            // is one more "seed" that every member listens on.
            config.core.seeds.push(discovery.to_string());
        }
        let clock = Clock {
            start: StdInstant::now(),
        };
        let node = CoreNode::new(config.core.clone(), clock.now().0)
            .map_err(|error| RuntimeError::Config(error.to_string()))?;
        let idler = Idler::new(config.idle);
        // Frame buffers for one cycle, made now: transmitting never allocates.
        let mut out = Outgoing::default();
        let frame_buf_len = config.core.frame_max + FRAME_SLACK;
        out.bufs = (0..FRAMES_PER_CYCLE)
            .map(|_| Vec::with_capacity(frame_buf_len))
            .collect();
        let engine = Engine {
            config,
            node,
            clock,
            shared,
            control,
            unicast,
            unicast_batch,
            multicast,
            local,
            book: AddressBook::default(),
            groups: HashMap::new(),
            handlers,
            out,
            idler,
            stats: RuntimeStats::default(),
            stalled: None,
            flushes: HashMap::new(),
            queries: HashMap::new(),
            durable: DurableLogs::default(),
            shutting_down: None,
            warned_at: None,
            warned_counts: (0, 0),
        };
        Ok(Started { engine, local })
    }

    /// The data-plane loop; returns when the node has stopped.
    pub fn run(mut self) {
        if let Some(core) = self.config.pin_core {
            // Best effort: a missing core is reported, not fatal.
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                eprintln!("osiris: could not pin the data plane to core {core}; running unpinned");
            }
        }
        loop {
            let work = match self.cycle() {
                Ok(work) => work,
                Err(error) => {
                    eprintln!("osiris: data plane stopping: {error}");
                    break;
                }
            };
            if self.finished() {
                break;
            }
            if work > 0 {
                self.idler.reset();
            } else {
                self.idle();
            }
        }
        self.shared.stopped.store(true, Ordering::SeqCst);
        // Answer whoever still waits.
        self.abandon_requests(|| RuntimeError::Stopped);
        for (_, group) in self.groups.drain() {
            if let Some(reply) = group.join_reply {
                let _ = reply.send(Err(RuntimeError::Stopped));
            }
            if let Some(reply) = group.leave_reply {
                let _ = reply.send(Err(RuntimeError::Stopped));
            }
        }
        while let Ok(control) = self.control.try_recv() {
            self.refuse(control);
        }
    }

    fn finished(&self) -> bool {
        let stopped = matches!(self.node.status(), Status::Stopped(_));
        let drained = self.out.is_empty() && !self.unicast.has_pending_send();
        match self.shutting_down {
            Some(deadline) => (stopped && drained) || StdInstant::now() >= deadline,
            None => stopped && drained && self.node.next_timeout().is_none(),
        }
    }

    /// One duty cycle; returns how much work it found.
    fn cycle(&mut self) -> Result<usize, RuntimeError> {
        self.stats.cycles += 1;
        let (now, std_now) = self.clock.now();
        let mut work = self.receive(now, std_now)?;
        work += self.drain_control(now);
        work += self.drain_submissions(now);
        if self.node.next_timeout().is_some_and(|due| due <= now) {
            self.node.handle_timeout(now);
            work += 1;
        }
        if !self.durable.is_empty() {
            // Records to the log thread; what it made durable to the core
            // (whose acks, sent by transmit, advertise it).
            work += self.durable.persist(&mut self.node)?;
        }
        work += self.transmit(now)?;
        work += self.upcalls(now)?;
        // Upcalls may have produced frames (a checkpoint's chunks, a join).
        work += self.transmit(now)?;
        self.warn_about_drops(std_now);
        Ok(work)
    }

    fn receive(&mut self, now: Instant, std_now: StdInstant) -> Result<usize, RuntimeError> {
        let mut frames = self.unicast.recv_batch(&mut self.unicast_batch, std_now)?;
        for frame in self.unicast_batch.iter() {
            if let Some(header) = osiris_core::wire::peek_header(frame.bytes) {
                self.book.learn(header.sender, frame.source);
            }
            self.node.handle_packet(now, frame.bytes);
        }
        if let Some((transport, batch)) = &mut self.multicast {
            frames += transport.recv_batch(batch, std_now)?;
            for frame in batch.iter() {
                if frame.source == self.local {
                    self.stats.own_echoes += 1;
                    continue;
                }
                self.node.handle_packet(now, frame.bytes);
            }
        }
        Ok(frames)
    }

    fn drain_submissions(&mut self, now: Instant) -> usize {
        let mut taken = 0;
        let mut bytes = 0;
        while taken < SUBMISSIONS_PER_CYCLE && bytes < SUBMISSION_BYTES_PER_CYCLE {
            // The submission refused last cycle goes first (per-sender FIFO).
            let Some(submission) = self
                .stalled
                .take()
                .or_else(|| self.shared.submissions.pop())
            else {
                break;
            };
            let len = submission.payload_len();
            if let Err(refused) = self.apply(now, submission) {
                // Flow control: the core's window and queue are full (a
                // slow member); the ring fills behind this submission and
                // the application's `send` waits. Memory stays bounded.
                self.stats.send_stalls += 1;
                self.stalled = Some(refused);
                break;
            }
            taken += 1;
            bytes += len;
        }
        self.stats.submissions += taken as u64;
        taken
    }

    /// Hands one submission to the core; gives it back if the core's send
    /// queue is full.
    fn apply(&mut self, now: Instant, submission: Submission) -> Result<(), Submission> {
        let group = submission.group;
        match submission.op {
            Op::Send { kind, to, buf } => {
                let result = match to {
                    Some(member) => self.node.send_to(now, group, member, &buf),
                    None => self.node.send_kind(now, group, kind, &buf),
                };
                match result {
                    Err(osiris_core::Error::SendQueueFull(_)) => {
                        return Err(Submission {
                            group,
                            op: Op::Send { kind, to, buf },
                        })
                    }
                    Err(error) => {
                        self.stats.send_errors += 1;
                        self.warn(format_args!("a send was dropped: {error}"));
                    }
                    Ok(()) => {}
                }
                // The payload was copied into the core's pooled buffer: recycle.
                let _ = self.shared.free.push(buf);
            }
            Op::Reply { query, buf } => {
                match self.node.reply(now, query, &buf) {
                    Err(osiris_core::Error::SendQueueFull(_)) => {
                        return Err(Submission {
                            group,
                            op: Op::Reply { query, buf },
                        })
                    }
                    Err(error) => self.warn(format_args!("a query reply was dropped: {error}")),
                    Ok(()) => {}
                }
                let _ = self.shared.free.push(buf);
            }
            Op::Flush { reply } => match self.node.flush(now, group) {
                Ok(id) => {
                    self.flushes.insert(id, reply);
                }
                Err(error) => {
                    let _ = reply.send(Err(error.into()));
                }
            },
            Op::Query(query) => match self.node.query(now, group, query.spec, &query.payload) {
                Ok(id) => {
                    self.queries
                        .insert(id, (QueryResult::default(), query.reply));
                }
                Err(osiris_core::Error::SendQueueFull(_)) => {
                    return Err(Submission {
                        group,
                        op: Op::Query(query),
                    })
                }
                Err(error) => {
                    let _ = query.reply.send(Err(error.into()));
                }
            },
        }
        Ok(())
    }

    /// Flushes and queries the core dropped (an exclusion) or will never
    /// finish (the node stopped): their callers get `error`.
    fn abandon_requests(&mut self, error: impl Fn() -> RuntimeError) {
        for (_, reply) in self.flushes.drain() {
            let _ = reply.send(Err(error()));
        }
        for (_, (_, reply)) in self.queries.drain() {
            let _ = reply.send(Err(error()));
        }
    }

    fn drain_control(&mut self, now: Instant) -> usize {
        let mut handled = 0;
        loop {
            match self.control.try_recv() {
                Ok(control) => {
                    handled += 1;
                    self.on_control(now, control);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    // Every handle is gone: leave.
                    if self.shutting_down.is_none() {
                        self.begin_shutdown(now);
                        handled += 1;
                    }
                    break;
                }
            }
        }
        handled
    }

    fn on_control(&mut self, now: Instant, control: Control) {
        if self.shutting_down.is_some() {
            self.refuse(control);
            return;
        }
        match control {
            Control::Join {
                name,
                mut handlers,
                reply,
            } => {
                let joined = self.open_durable(&name, &mut handlers).and_then(|durable| {
                    self.node.join_group(now, &name).map_err(|error| {
                        // The log opened for this join is not the group's.
                        if let Some(group) = durable {
                            self.durable.close(group);
                        }
                        RuntimeError::from(error)
                    })
                });
                match joined {
                    Ok(group) => {
                        self.groups.insert(
                            group,
                            LocalGroup {
                                handlers,
                                join_reply: Some(reply),
                                leave_reply: None,
                                multicast_joined: false,
                            },
                        );
                    }
                    Err(error) => {
                        let _ = reply.send(Err(error));
                    }
                }
            }
            Control::Leave { group, reply } => match self.node.leave_group(now, group) {
                Ok(()) => {
                    if let Some(local) = self.groups.get_mut(&group) {
                        local.leave_reply = Some(reply);
                    }
                }
                Err(error) => {
                    let _ = reply.send(Err(error.into()));
                }
            },
            Control::Stats { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Control::Shutdown => self.begin_shutdown(now),
        }
    }

    /// For a durable group: recover its log, hand the recovered SafeSends to
    /// the application, and put the core in durable mode for it, all before
    /// the join (nothing of the new membership may be acknowledged before).
    /// Returns the group whose log it opened, if durable.
    fn open_durable(
        &mut self,
        name: &str,
        handlers: &mut GroupHandlers,
    ) -> Result<Option<GroupId>, RuntimeError> {
        let Some(on_recovered) = handlers.recovered.as_mut() else {
            return Ok(None);
        };
        let Some(dir) = self.config.durable_dir.clone() else {
            return Err(RuntimeError::Config(format!(
                "group {name} is durable but the node has no durable_dir"
            )));
        };
        if name.is_empty() || name.len() > osiris_core::wire::GROUP_NAME_MAX {
            return Err(osiris_core::Error::BadGroupName.into());
        }
        let group = GroupId::from_name(name);
        if self.groups.contains_key(&group) {
            return Err(osiris_core::Error::AlreadyJoined(group).into());
        }
        std::fs::create_dir_all(&dir).map_err(|error| {
            RuntimeError::Config(format!("durable_dir {}: {error}", dir.display()))
        })?;
        let recovered = self.durable.open(&dir, group, name, &self.shared)?;
        on_recovered(&recovered);
        self.node.set_durable(group);
        Ok(Some(group))
    }

    fn refuse(&mut self, control: Control) {
        match control {
            Control::Join { reply, .. } => {
                let _ = reply.send(Err(RuntimeError::Stopped));
            }
            Control::Leave { reply, .. } => {
                let _ = reply.send(Err(RuntimeError::Stopped));
            }
            Control::Stats { reply } => {
                let _ = reply.send(self.snapshot());
            }
            Control::Shutdown => {}
        }
    }

    fn begin_shutdown(&mut self, now: Instant) {
        self.shutting_down = Some(StdInstant::now() + self.config.leave_timeout);
        // A node that never became a member has nobody to tell.
        if self.node.status() == Status::Member {
            let _ = self.node.leave(now);
        }
    }

    fn snapshot(&self) -> RuntimeStats {
        let mut stats = self.stats;
        stats.node = *self.node.stats();
        stats.unicast = *self.unicast.stats();
        stats.multicast = self
            .multicast
            .as_ref()
            .map(|(transport, _)| *transport.stats());
        stats
    }

    /// Sends what waits, then takes new frames from the core while the
    /// socket accepts them (natural batching: every message queued since the
    /// last cycle shares frames).
    fn transmit(&mut self, now: Instant) -> Result<usize, RuntimeError> {
        if self.unicast.has_pending_send() && !self.unicast.flush()? {
            return Ok(0);
        }
        if !self.out.send(&mut self.unicast)? {
            return Ok(0);
        }
        let mut frames = 0;
        while frames < FRAMES_PER_CYCLE && self.out.used < FRAMES_PER_CYCLE {
            let frame_max = self.node.config().frame_max + FRAME_SLACK;
            let (index, buf) = self.out.next_buf(frame_max);
            let Some(transmit) = self.node.poll_transmit(now, buf) else {
                self.out.used -= 1;
                break;
            };
            frames += 1;
            self.route(transmit.dest, index);
        }
        if frames > 0 {
            self.out.send(&mut self.unicast)?;
        }
        Ok(frames)
    }

    /// Turns the core's destination into socket destinations. An address
    /// the socket cannot send to (port 0, another address family, IPv6
    /// multicast) is counted as unroutable, never handed to the transport.
    fn route(&mut self, dest: Dest, index: usize) {
        match dest {
            Dest::Member(member) => {
                let address = self.book.member(member);
                push_entry(&mut self.out, &mut self.stats, self.local, address, index);
            }
            Dest::Seed(seed) => {
                let address = self.book.seed(usize::from(seed), &self.node.config().seeds);
                push_entry(&mut self.out, &mut self.stats, self.local, address, index);
            }
            Dest::Group(group) => {
                if let Some(address) = self.config.group_address(group) {
                    self.out
                        .entries
                        .push((Destination::Multicast(address), index));
                    return;
                }
                let me = self.node.member_id();
                for &member in self.node.group_members(group) {
                    if member != me {
                        let address = self.book.member(member);
                        push_entry(&mut self.out, &mut self.stats, self.local, address, index);
                    }
                }
            }
        }
    }

    /// Hands the core's events to the handlers.
    fn upcalls(&mut self, now: Instant) -> Result<usize, RuntimeError> {
        let mut events = 0;
        loop {
            if self.node.must_persist_before_events() {
                // Output commit: no SafeSend reaches the application before
                // its record is durable here.
                self.durable.persist_all(&mut self.node)?;
            }
            let mut checkpoint = None;
            let mut loaded = None;
            let mut replies: Vec<(QueryRef, Vec<u8>)> = Vec::new();
            let mut abandoned = false;
            while let Some(event) = self.node.poll_event() {
                events += 1;
                match event {
                    Event::DomainView(view) => {
                        self.book.install(&view);
                        if self.book.unparsable > 0 {
                            eprintln!(
                                "osiris: {} member address(es) in view {} do not parse",
                                self.book.unparsable, view.id.0
                            );
                        }
                        if let Some(handler) = &mut self.handlers.domain_view {
                            handler(&view);
                        }
                    }
                    Event::GroupView(view) => {
                        let me = self.node.member_id();
                        if let Some(local) = self.groups.get_mut(&view.group) {
                            if view.members.contains(&me) {
                                if let Some(reply) = local.join_reply.take() {
                                    let _ = reply.send(Ok(view.group));
                                }
                            }
                            if let Some(handler) = &mut local.handlers.view {
                                handler(&view);
                            }
                        }
                        self.join_multicast(view.group);
                    }
                    Event::Delivered {
                        group,
                        sender,
                        kind,
                        payload,
                    } => {
                        if kind == SendKind::Safe && !self.durable.is_empty() {
                            self.durable.count_delivery(group);
                        }
                        deliver(
                            &mut self.groups,
                            &Message {
                                group,
                                sender,
                                kind,
                                point_to_point: false,
                                payload,
                            },
                        );
                    }
                    Event::P2p {
                        group,
                        sender,
                        payload,
                    } => deliver(
                        &mut self.groups,
                        &Message {
                            group,
                            sender,
                            kind: SendKind::Fifo,
                            point_to_point: true,
                            payload,
                        },
                    ),
                    Event::Flushed { id, .. } => {
                        if let Some(reply) = self.flushes.remove(&id) {
                            let _ = reply.send(Ok(()));
                        }
                    }
                    Event::QueryRequest {
                        group,
                        from,
                        query,
                        payload,
                    } => {
                        let answer = self
                            .groups
                            .get_mut(&group)
                            .and_then(|local| local.handlers.query.as_mut())
                            .and_then(|handler| {
                                handler(&QueryRequest {
                                    group,
                                    from,
                                    handle: query,
                                    payload,
                                })
                            });
                        if let Some(answer) = answer {
                            replies.push((query, answer));
                        }
                    }
                    Event::QueryReply { id, from, payload } => {
                        if let Some((result, _)) = self.queries.get_mut(&id) {
                            result.replies.push((from, payload.to_vec()));
                        }
                    }
                    Event::QueryFailed { id, member } => {
                        if let Some((result, _)) = self.queries.get_mut(&id) {
                            result.failed.push(member);
                        }
                    }
                    Event::QueryDone { id, timed_out } => {
                        if let Some((mut result, reply)) = self.queries.remove(&id) {
                            result.timed_out = timed_out;
                            let _ = reply.send(Ok(result));
                        }
                    }
                    Event::CheckpointRequested { group, .. } => {
                        let state = self
                            .groups
                            .get_mut(&group)
                            .and_then(|local| local.handlers.checkpoint.as_mut())
                            .map(|handler| handler())
                            .unwrap_or_default();
                        checkpoint = Some((group, state));
                        break;
                    }
                    Event::StateLoaded {
                        group,
                        state,
                        fresh,
                    } => {
                        if !fresh && self.durable.is_durable(group) {
                            // The history in it must be logged first.
                            loaded = Some((group, state.to_vec()));
                            break;
                        }
                        if !fresh {
                            load(&mut self.groups, group, state);
                        }
                    }
                    Event::GroupLeft { group } => {
                        self.durable.close(group);
                        if let Some(local) = self.groups.remove(&group) {
                            if let Some(reply) = local.leave_reply {
                                let _ = reply.send(Ok(()));
                            }
                            if local.multicast_joined {
                                self.leave_multicast(group);
                            }
                        }
                    }
                    Event::Excluded { old_id, new_id } => {
                        // The core drops this incarnation's flushes and queries.
                        abandoned = true;
                        eprintln!(
                            "osiris: this node ({old_id}) was excluded from the domain{}",
                            match new_id {
                                Some(new_id) => format!("; rejoining as {new_id}"),
                                None => String::new(),
                            }
                        );
                    }
                    Event::Stopped(reason) => {
                        if let Some(handler) = &mut self.handlers.stopped {
                            handler(reason);
                        }
                    }
                }
            }
            for (query, answer) in replies {
                if let Err(error) = self.node.reply(now, query, &answer) {
                    self.warn(format_args!("a query reply was refused: {error}"));
                }
            }
            if abandoned {
                self.abandon_requests(|| {
                    RuntimeError::Interrupted("this node was excluded from the domain")
                });
            }
            if let Some((group, state)) = loaded {
                let state = self
                    .durable
                    .unwrap_checkpoint(&mut self.node, group, &state);
                load(&mut self.groups, group, state);
                continue;
            }
            match checkpoint {
                Some((group, state)) => {
                    let state = if self.durable.is_durable(group) {
                        self.durable
                            .wrap_checkpoint(&mut self.node, group, &state)?
                    } else {
                        state
                    };
                    if let Err(error) = self.node.provide_checkpoint(now, group, &state) {
                        self.warn(format_args!("checkpoint refused: {error}"));
                        // The core waits for an answer: give it an empty state.
                        let _ = self.node.provide_checkpoint(now, group, &[]);
                    }
                }
                None => return Ok(events),
            }
        }
    }

    fn join_multicast(&mut self, group: GroupId) {
        let MulticastMode::Ip { interface, .. } = self.config.multicast else {
            return;
        };
        let Some(address) = self.config.group_address(group) else {
            return;
        };
        let Some(local) = self.groups.get_mut(&group) else {
            return;
        };
        if local.multicast_joined {
            return;
        }
        if let Some((transport, _)) = &mut self.multicast {
            match transport.join_multicast(*address.ip(), interface) {
                Ok(()) => local.multicast_joined = true,
                Err(error) => eprintln!("osiris: multicast join failed: {error}"),
            }
        }
    }

    fn leave_multicast(&mut self, group: GroupId) {
        let MulticastMode::Ip { interface, .. } = self.config.multicast else {
            return;
        };
        if let (Some(address), Some((transport, _))) =
            (self.config.group_address(group), &mut self.multicast)
        {
            let _ = transport.leave_multicast(*address.ip(), interface);
        }
    }

    fn idle(&mut self) {
        match self.idler.idle() {
            IdleAction::Spin => std::hint::spin_loop(),
            IdleAction::Yield => std::thread::yield_now(),
            IdleAction::Block(cap) => {
                let (now, _) = self.clock.now();
                let until_timer = self
                    .node
                    .next_timeout()
                    .map_or(BLOCK_MAX, |due| due.saturating_since(now));
                let timeout = cap
                    .map_or(until_timer, |cap| cap.min(until_timer))
                    .min(BLOCK_MAX);
                if timeout.is_zero() || !self.shared.prepare_to_sleep() {
                    return;
                }
                if self.durable.has_progress() {
                    // The log thread published after our last look (its
                    // notify may have come before we announced sleeping).
                    self.shared.woke();
                    return;
                }
                self.stats.blocks += 1;
                let unicast = self.unicast.as_fd();
                let waker = self.shared.waker.as_fd();
                let result = match &self.multicast {
                    Some((transport, _)) => {
                        wait_readable(&[unicast, waker, transport.as_fd()], Some(timeout))
                    }
                    None => wait_readable(&[unicast, waker], Some(timeout)),
                };
                self.shared.woke();
                if let Err(error) = result {
                    eprintln!("osiris: ppoll failed: {error}");
                }
            }
        }
    }

    /// A warning, at most once per `WARN_PERIOD`.
    fn warn(&mut self, message: std::fmt::Arguments<'_>) {
        let now = StdInstant::now();
        if self
            .warned_at
            .is_some_and(|at| now.duration_since(at) < WARN_PERIOD)
        {
            return;
        }
        self.warned_at = Some(now);
        eprintln!("osiris: warning: {message}");
    }

    /// Hostile or stray input is counted by the core; say so, rate-limited.
    fn warn_about_drops(&mut self, now: StdInstant) {
        let stats = self.node.stats();
        let bad = (
            stats.frames_malformed + self.unicast.stats().datagrams_malformed,
            stats.frames_from_strangers,
        );
        // A few frames from non-members are normal around view changes (a
        // member that just left, a joiner); many, or any malformed, are not.
        let strangers_normal = bad.1 - self.warned_counts.1 < STRANGERS_QUIET_MAX;
        if bad.0 == self.warned_counts.0 && strangers_normal {
            return;
        }
        if self
            .warned_at
            .is_some_and(|at| now.duration_since(at) < WARN_PERIOD)
        {
            return;
        }
        let (malformed, strangers) = (bad.0 - self.warned_counts.0, bad.1 - self.warned_counts.1);
        self.warned_counts = bad;
        self.warned_at = Some(now);
        eprintln!(
            "osiris: warning: dropped {malformed} malformed frame(s) and {strangers} frame(s) from non-members"
        );
    }
}

/// Adds one socket destination for a frame, or counts it unroutable.
fn push_entry(
    out: &mut Outgoing,
    stats: &mut RuntimeStats,
    local: SocketAddr,
    address: Option<SocketAddr>,
    index: usize,
) {
    let destination = match address {
        Some(address) if address.port() == 0 || address.is_ipv4() != local.is_ipv4() => None,
        Some(SocketAddr::V4(address)) if address.ip().is_multicast() => {
            Some(Destination::Multicast(address))
        }
        Some(address) if address.ip().is_multicast() => None,
        Some(address) => Some(Destination::Unicast(address)),
        None => None,
    };
    match destination {
        Some(destination) => out.entries.push((destination, index)),
        None => stats.unroutable += 1,
    }
}

/// Hands a delivered message to its group's message handler, if any.
/// Hands a donor's state to the group's `on_load` handler.
fn load(groups: &mut HashMap<GroupId, LocalGroup>, group: GroupId, state: &[u8]) {
    if let Some(handler) = groups
        .get_mut(&group)
        .and_then(|local| local.handlers.load.as_mut())
    {
        handler(state);
    }
}

fn deliver(groups: &mut HashMap<GroupId, LocalGroup>, message: &Message<'_>) {
    if let Some(handler) = groups
        .get_mut(&message.group)
        .and_then(|local| local.handlers.message.as_mut())
    {
        handler(message);
    }
}
