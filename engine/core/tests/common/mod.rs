//! A tiny deterministic cluster for core tests: fixed latency, optional
//! drop filter, virtual time that jumps to the next frame or timeout.
#![allow(dead_code)]

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};

use osiris_core::{
    Config, Dest, Event, FlushId, GroupId, GroupView, Instant, MemberId, Node, QueryId, QueryRef,
    SendKind,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    DomainView(u64, Vec<MemberId>),
    GroupView(GroupView),
    Delivered(GroupId, MemberId, Vec<u8>, SendKind),
    P2p(GroupId, MemberId, Vec<u8>),
    Flushed(GroupId, FlushId),
    QueryRequest(QueryRef, Vec<u8>),
    QueryReply(QueryId, MemberId, Vec<u8>),
    QueryFailed(QueryId, MemberId),
    QueryDone(QueryId, bool),
    StateLoaded(GroupId, Vec<u8>, bool),
    CheckpointGiven(GroupId, Vec<u8>),
    GroupLeft(GroupId),
    Excluded(MemberId, Option<MemberId>),
    Stopped,
}

/// A frame in flight: (arrival ns, tie-breaking sequence, destination, bytes).
type InFlight = Reverse<(u64, u64, usize, Vec<u8>)>;
/// Decides whether a frame from one node to another is dropped.
type DropRule = Box<dyn FnMut(usize, usize, &[u8]) -> bool>;

pub struct Cluster {
    pub nodes: Vec<Option<Node>>,
    pub now: Instant,
    pub latency_ns: u64,
    queue: BinaryHeap<InFlight>,
    sequence: u64,
    pub seen: Vec<Vec<Seen>>,
    /// Per node, per group: the app state (delivered payloads in order).
    pub state: Vec<BTreeMap<GroupId, Vec<u8>>>,
    /// Frames from `from` to `to` are dropped while this says so.
    pub cut: DropRule,
    /// Answer every query request at once with "re:" + the request.
    pub auto_reply: bool,
    buf: Vec<u8>,
}

pub fn config(node: u32, nodes: u32) -> Config {
    let mut config = Config::new(node, format!("n{node}"));
    config.bootstrap = node == 0;
    config.seeds = (0..nodes)
        .filter(|other| *other != node)
        .map(|other| format!("n{other}"))
        .collect();
    config.seed = 7;
    config
}

impl Cluster {
    pub fn new(count: usize) -> Cluster {
        Cluster::with_config(count, |_| {})
    }

    /// A cluster whose every node's config is first adjusted by `adjust`.
    pub fn with_config(count: usize, adjust: impl Fn(&mut Config)) -> Cluster {
        let mut cluster = Cluster {
            nodes: Vec::new(),
            now: Instant(1_000_000),
            latency_ns: 100_000,
            queue: BinaryHeap::new(),
            sequence: 0,
            seen: vec![Vec::new(); count],
            state: vec![BTreeMap::new(); count],
            cut: Box::new(|_, _, _| false),
            auto_reply: true,
            buf: Vec::new(),
        };
        for index in 0..count {
            let mut config = config(index as u32, count as u32);
            adjust(&mut config);
            let node = Node::new(config, cluster.now).expect("valid config");
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    pub fn node(&mut self, index: usize) -> &mut Node {
        self.nodes[index].as_mut().expect("running")
    }

    fn address(&self, dest: Dest, from: usize) -> Vec<usize> {
        let node = self.nodes[from].as_ref().expect("running");
        match dest {
            Dest::Member(member) => vec![member.node.0 as usize],
            Dest::Seed(index) => {
                let addr = &node.config().seeds[index as usize];
                vec![addr[1..].parse().expect("nN")]
            }
            Dest::Group(group) => node
                .group_members(group)
                .iter()
                .map(|member| member.node.0 as usize)
                .filter(|index| *index != from)
                .collect(),
        }
    }

    /// Drain outputs of one node.
    pub fn pump(&mut self, index: usize) {
        loop {
            let mut progressed = false;
            let now = self.now;
            let mut buf = std::mem::take(&mut self.buf);
            while let Some(transmit) = self.nodes[index]
                .as_mut()
                .and_then(|node| node.poll_transmit(now, &mut buf))
            {
                progressed = true;
                for to in self.address(transmit.dest, index) {
                    if to < self.nodes.len() && !(self.cut)(index, to, &buf[..transmit.len]) {
                        self.sequence += 1;
                        self.queue.push(Reverse((
                            now.0 + self.latency_ns,
                            self.sequence,
                            to,
                            buf[..transmit.len].to_vec(),
                        )));
                    }
                }
            }
            self.buf = buf;
            let Some(node) = self.nodes[index].as_mut() else {
                return;
            };
            while let Some(event) = node.poll_event() {
                progressed = true;
                let state = &mut self.state[index];
                let seen = match event {
                    Event::DomainView(view) => {
                        Seen::DomainView(view.id.0, view.members.iter().map(|m| m.id).collect())
                    }
                    Event::GroupView(view) => Seen::GroupView(view),
                    Event::Delivered {
                        group,
                        sender,
                        kind,
                        payload,
                    } => {
                        state.entry(group).or_default().extend_from_slice(payload);
                        Seen::Delivered(group, sender, payload.to_vec(), kind)
                    }
                    Event::P2p {
                        group,
                        sender,
                        payload,
                    } => Seen::P2p(group, sender, payload.to_vec()),
                    Event::Flushed { group, id } => Seen::Flushed(group, id),
                    Event::QueryRequest { query, payload, .. } => {
                        let request = payload.to_vec();
                        if self.auto_reply {
                            let mut answer = b"re:".to_vec();
                            answer.extend_from_slice(&request);
                            node.reply(now, query, &answer).expect("fresh query");
                        }
                        Seen::QueryRequest(query, request)
                    }
                    Event::QueryReply { id, from, payload } => {
                        Seen::QueryReply(id, from, payload.to_vec())
                    }
                    Event::QueryFailed { id, member } => Seen::QueryFailed(id, member),
                    Event::QueryDone { id, timed_out } => Seen::QueryDone(id, timed_out),
                    Event::CheckpointRequested { group, .. } => {
                        let checkpoint = state.get(&group).cloned().unwrap_or_default();
                        node.provide_checkpoint(now, group, &checkpoint)
                            .expect("requested");
                        Seen::CheckpointGiven(group, checkpoint)
                    }
                    Event::StateLoaded {
                        group,
                        state: loaded,
                        fresh,
                    } => {
                        state.insert(group, loaded.to_vec());
                        Seen::StateLoaded(group, loaded.to_vec(), fresh)
                    }
                    Event::GroupLeft { group } => Seen::GroupLeft(group),
                    Event::Excluded { old_id, new_id } => Seen::Excluded(old_id, new_id),
                    Event::Stopped(_) => Seen::Stopped,
                };
                self.seen[index].push(seen);
            }
            if !progressed {
                return;
            }
        }
    }

    /// Run until virtual time `until`.
    pub fn run_until(&mut self, until: Instant) {
        for index in 0..self.nodes.len() {
            self.pump(index);
        }
        loop {
            let next_frame = self
                .queue
                .peek()
                .map(|Reverse((at, ..))| *at)
                .unwrap_or(u64::MAX);
            let next_timer = self
                .nodes
                .iter()
                .flatten()
                .filter_map(|node| node.next_timeout())
                .map(|at| at.0)
                .min()
                .unwrap_or(u64::MAX);
            let next = next_frame.min(next_timer).max(self.now.0);
            if next > until.0 {
                self.now = until;
                return;
            }
            self.now = Instant(next);
            while self
                .queue
                .peek()
                .is_some_and(|Reverse((at, ..))| *at <= next)
            {
                let Reverse((_, _, to, bytes)) = self.queue.pop().expect("peeked");
                if let Some(node) = self.nodes[to].as_mut() {
                    node.handle_packet(Instant(next), &bytes);
                    self.pump(to);
                }
            }
            for index in 0..self.nodes.len() {
                let due = self.nodes[index]
                    .as_ref()
                    .and_then(|node| node.next_timeout())
                    .is_some_and(|at| at.0 <= next);
                if due {
                    self.node(index).handle_timeout(Instant(next));
                    self.pump(index);
                }
            }
        }
    }

    pub fn run_for_ms(&mut self, ms: u64) {
        let until = Instant(self.now.0 + ms * 1_000_000);
        self.run_until(until);
    }

    pub fn crash(&mut self, index: usize) {
        self.nodes[index] = None;
    }
}

/// A cluster of `count` nodes whose first `members_in_group` joined group "g".
pub fn formed(count: usize, members_in_group: usize) -> (Cluster, GroupId) {
    formed_with(count, members_in_group, |_| {})
}

/// `formed`, with every node's config adjusted first.
pub fn formed_with(
    count: usize,
    members_in_group: usize,
    adjust: impl Fn(&mut Config),
) -> (Cluster, GroupId) {
    let mut cluster = Cluster::with_config(count, adjust);
    cluster.run_for_ms(500);
    let now = cluster.now;
    let mut group = GroupId::DOMAIN;
    for index in 0..members_in_group {
        group = cluster.node(index).join_group(now, "g").unwrap();
    }
    cluster.run_for_ms(500);
    (cluster, group)
}
