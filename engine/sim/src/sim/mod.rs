//! The simulation: N nodes, one virtual clock, one event queue, one seed.
//!
//! Everything that happens is an entry in the queue — a frame arriving, a
//! node's timer, a workload action, a fault — and the loop pops the earliest,
//! advances the clock to it and handles it. Nothing reads the wall clock and
//! every collection that is iterated is ordered (Vec or BTreeMap), so the run
//! is a pure function of the seed and the options.
//!
//! A run has two phases (openraft / VOPR style):
//! 1. safety: the mix's faults are injected for `safety_ms`;
//! 2. liveness: faults stop, partitions heal, loss goes away, every crashed or
//!    stopped node is restarted; once the system settles (or `settle_max_ms`
//!    passes) every node sends probe messages, and the run ends when the probes
//!    are delivered everywhere (or `probe_max_ms` passes).
//!
//! The checkers then read the recorded history and the final snapshot.

mod disk;
mod driver;
mod faults;
mod total_failure;
mod workload;

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use osiris_core::{DomainView, GroupId, MemberId, Node, StopReason};

use crate::app::GroupState;
use crate::check::{self, FinalNode, FinalSnapshot, Violation};
use crate::history::{MsgId, Record, RecordKind};
use crate::mix::Mix;
use crate::net::{NetParams, Network, NANOS_PER_MS};
use crate::queue::EventQueue;
use crate::rng::SimRng;
use crate::run::{RunOptions, RunReport, RunStats};

/// Group names the workload uses.
pub const GROUP_NAMES: [&str; 3] = ["g0", "g1", "g2"];
/// How often each node's app reconciles its group memberships with its intent.
const APP_TICK_NS: u64 = 30 * NANOS_PER_MS;
/// Sub-seed tags (stable: changing one reshuffles every seed's run).
const TAG_SETUP: u64 = 1;
const TAG_NET: u64 = 2;
const TAG_FAULT: u64 = 3;
const TAG_WORK: u64 = 4;
const TAG_NODE: u64 = 5;
const TAG_DURABLE: u64 = 6;
const TAG_TOTAL_FAILURE: u64 = 7;
const TAG_DISK: u64 = 8;
const TAG_WINDOW_BYTES: u64 = 9;

#[derive(Debug)]
pub(crate) enum SimEvent {
    Arrive {
        from: usize,
        to: usize,
        frame: Rc<[u8]>,
    },
    Timer {
        node: usize,
        life: u64,
        at: u64,
    },
    Start {
        node: usize,
    },
    Crash {
        node: usize,
        life: u64,
        leader: bool,
    },
    AppTick {
        node: usize,
    },
    WorkSend {
        node: usize,
    },
    FaultTick,
    Heal {
        partition: u64,
    },
    BeginLiveness,
    CheckSettled,
    ProbeTick,
    CheckProbes,
    /// The node's disks finish an fsync.
    Sync {
        node: usize,
        life: u64,
    },
    TotalFailure,
    /// Strike a total failure right after the next SafeSend delivery.
    ArmTotalFailure,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Safety,
    Settle { deadline: u64 },
    Probing { deadline: u64 },
    Done,
}

/// One group as a node's application sees it.
#[derive(Debug)]
pub(crate) struct AppGroup {
    pub members: Vec<MemberId>,
    /// None while the joiner waits for `StateLoaded`.
    pub state: Option<GroupState>,
}

/// A node's application: identity, intent and per-group state.
#[derive(Debug)]
pub(crate) struct AppNode {
    pub member: MemberId,
    /// Groups this node wants to be in (survives restarts).
    pub intended: BTreeSet<GroupId>,
    pub groups: BTreeMap<GroupId, AppGroup>,
    /// Last time a join or leave was requested per group, to pace retries.
    pub requested: BTreeMap<GroupId, u64>,
    pub counter: u64,
    pub stopped: Option<StopReason>,
    /// `leave` was called: the node is about to go, fault guards count it gone.
    pub leaving: bool,
}

#[derive(Debug)]
pub(crate) struct SimNode {
    pub addr: String,
    pub node: Option<Node>,
    pub app: AppNode,
    pub incarnation_max: u32,
    /// Bumped at every crash and restart, so stale timers and crashes are ignored.
    pub life: u64,
    pub timer_at: Option<u64>,
    /// A `Start` is queued for this node.
    pub restart_pending: bool,
    /// When `handle_timeout` last ran (to detect overdue deadlines).
    pub timeout_handled_at: Option<u64>,
    /// Consecutive `handle_timeout` calls that left an overdue deadline.
    pub spin_streak: u64,
    /// The disks of durable mode (outside `node`: they survive its crashes).
    pub logs: disk::NodeLogs,
}

impl SimNode {
    /// A live process that has not stopped.
    pub fn running(&self) -> bool {
        self.node.is_some() && self.app.stopped.is_none()
    }
}

/// Core limits the seed draws, so that multi-chunk state transfer, small
/// send windows (back-pressure) and small frames are exercised too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tuning {
    pub state_chunk_bytes: usize,
    pub send_window: u32,
    /// Drawn from its own generator (`TAG_WINDOW_BYTES`) so that adding it
    /// left every other draw of a seed as it was.
    pub send_window_bytes: usize,
    pub send_queue_max: usize,
    pub frame_max: usize,
    pub payload_max: usize,
    /// Per workload send, the chance (in percent) of a burst of 5-20 messages.
    pub burst_percent: u64,
}

impl Tuning {
    fn draw(rng: &mut SimRng) -> Tuning {
        let defaults = osiris_core::Config::new(0, "n0");
        let (frame_max, payload_max) = *rng.pick(&[
            (512, 256),
            (defaults.frame_max, defaults.payload_max),
            (defaults.frame_max, defaults.payload_max),
        ]);
        let chunks: &[usize] = if frame_max < 1024 {
            &[16, 64, 256]
        } else {
            &[16, 64, 16 * 1024, 16 * 1024]
        };
        let state_chunk_bytes = *rng.pick(chunks);
        let (send_window, send_queue_max) = *rng.pick(&[
            (4, 8),
            (32, 64),
            (defaults.send_window, defaults.send_queue_max),
            (1024, 4096),
        ]);
        let burst_percent = *rng.pick(&[0, 5, 20]);
        let tuning = Tuning {
            state_chunk_bytes,
            send_window,
            send_window_bytes: defaults.send_window_bytes,
            send_queue_max,
            frame_max,
            payload_max,
            burst_percent,
        };
        debug_assert!(
            tuning.state_chunk_bytes + osiris_core::config::FRAME_OVERHEAD_MAX <= tuning.frame_max
        );
        tuning
    }

    fn defaults() -> Tuning {
        let defaults = osiris_core::Config::new(0, "n0");
        Tuning {
            state_chunk_bytes: defaults.state_chunk_bytes,
            send_window: defaults.send_window,
            send_window_bytes: defaults.send_window_bytes,
            send_queue_max: defaults.send_queue_max,
            frame_max: defaults.frame_max,
            payload_max: defaults.payload_max,
            burst_percent: 0,
        }
    }

    pub fn apply(&self, config: &mut osiris_core::Config) {
        config.state_chunk_bytes = self.state_chunk_bytes;
        config.send_window = self.send_window;
        config.send_window_bytes = self.send_window_bytes;
        config.send_queue_max = self.send_queue_max;
        config.frame_max = self.frame_max;
        config.payload_max = self.payload_max;
    }
}

/// A fault armed to strike `delay_ns` after a moment is first seen: the
/// leader crash when the leader proposes (given up after `deadline`), the
/// total failure after a SafeSend delivery (struck at `deadline` anyway).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trap {
    pub deadline: u64,
    pub delay_ns: u64,
}

#[derive(Clone, Debug)]
pub(crate) struct ActivePartition {
    pub id: u64,
    pub minority: Vec<usize>,
    pub since: u64,
    /// Minority nodes that were running members of the view when cut off.
    pub members_cut: Vec<(usize, MemberId)>,
}

#[derive(Debug)]
pub(crate) struct Simulation {
    pub seed: u64,
    pub options: RunOptions,
    pub mix: Mix,
    pub tuning: Tuning,
    pub now: u64,
    pub phase: Phase,
    pub queue: EventQueue<SimEvent>,
    pub nodes: Vec<SimNode>,
    pub net: Network,
    pub history: Vec<Record>,
    pub rng_fault: SimRng,
    pub rng_work: SimRng,
    /// Total failures: when, restart delays, who bootstraps.
    pub rng_total: SimRng,
    /// Disks: fsync latencies, crash outcomes.
    pub rng_disk: SimRng,
    /// Longest fsync the run draws (0: a sync as soon as the node is idle).
    pub sync_delay_max_ns: u64,
    /// The node that founds the next domain when it restarts (set by a
    /// total failure; node 0 founds the first).
    pub bootstrapper: Option<usize>,
    /// No node starts before this time (after a total failure, a `Start`
    /// queued before it by a bounce waits for the restart).
    pub starts_held_until: u64,
    /// The highest domain view any node installed (the oracle for fault guards).
    pub latest_view: Option<DomainView>,
    /// Member incarnations that asked to join and no installed view has
    /// shown yet. A leader may hold such a request and add the member in any
    /// later view — even after the joiner crashed — so fault guards count
    /// them as potential members.
    pub pending_joiners: BTreeSet<MemberId>,
    pub leader_trap: Option<Trap>,
    /// Armed: a total failure strikes `delay_ns` after the next SafeSend
    /// delivery anywhere (or at `deadline`).
    pub failure_trap: Option<Trap>,
    /// When a member last delivered a SafeSend.
    pub safe_delivered_at: Option<u64>,
    pub partition: Option<ActivePartition>,
    pub partitions_made: u64,
    pub group_ids: Vec<(GroupId, &'static str)>,
    pub violations: Vec<Violation>,
    pub stats: RunStats,
    pub liveness_started: u64,
    /// Probes still to be sent: (node, group, why the last attempt failed).
    pub probes_unsent: Vec<(usize, GroupId, Option<osiris_core::Error>)>,
    pub probes_sent: Vec<(MsgId, GroupId)>,
    pub probes_delivered: BTreeSet<(MemberId, MsgId)>,
    pub final_snapshot: Option<FinalSnapshot>,
    // Scratch buffers reused across frames.
    pub frame: Vec<u8>,
    pub arrivals: Vec<u64>,
    pub destinations: Vec<usize>,
    pub payload: Vec<u8>,
}

impl Simulation {
    pub fn new(seed: u64, options: &RunOptions) -> Simulation {
        let mut setup = SimRng::fork(seed, TAG_SETUP);
        let node_count = options
            .nodes
            .unwrap_or_else(|| *setup.pick(&[3, 4, 5, 5, 5, 6, 7]));
        assert!(
            (1..=64).contains(&node_count),
            "node count {node_count} out of range"
        );
        let mut rng_total = SimRng::fork(seed, TAG_TOTAL_FAILURE);
        let setup_mix = *setup.pick(Mix::SETUP_PICK);
        let seeded_mix = if rng_total.index(8) == 0 {
            Mix::TotalFailure
        } else {
            setup_mix
        };
        let mix = options.mix.unwrap_or(seeded_mix);
        let durable =
            options.kinds.safe && options.durable.decide(&mut SimRng::fork(seed, TAG_DURABLE));
        let mut rng_disk = SimRng::fork(seed, TAG_DISK);
        // From a sync as soon as the node is idle to a slow disk's fsync.
        let sync_delay_max_ns = *rng_disk.pick(&[0, 500_000, 2 * NANOS_PER_MS, 10 * NANOS_PER_MS]);
        let params = match mix {
            Mix::Lossy => NetParams::lossy(&mut setup),
            Mix::Mixed => NetParams::mild(&mut setup),
            _ => NetParams::calm(),
        };
        let mut drawn = Tuning::draw(&mut setup);
        // Byte windows of a few frames to the default, so that the byte
        // window and not only the message window paces senders. (Smaller
        // ones, down to one message in flight, starve the liveness phase's
        // probes behind the backlog of an 18%-lossy run: slow, not wrong.)
        drawn.send_window_bytes = *SimRng::fork(seed, TAG_WINDOW_BYTES).pick(&[
            2 * 1024,
            16 * 1024,
            drawn.send_window_bytes,
            drawn.send_window_bytes,
        ]);
        let tuning = if options.vary_limits {
            drawn
        } else {
            Tuning::defaults()
        };
        let mut work = SimRng::fork(seed, TAG_WORK);
        let group_ids: Vec<(GroupId, &'static str)> = GROUP_NAMES
            .iter()
            .map(|name| (GroupId::from_name(name), *name))
            .collect();
        let durable_groups: Vec<GroupId> = if durable {
            group_ids.iter().map(|(id, _)| *id).collect()
        } else {
            Vec::new()
        };
        let nodes = (0..node_count)
            .map(|index| {
                let logs = disk::NodeLogs::create(index, &durable_groups, rng_disk.next_u64());
                let wanted = work.range_inclusive(1, GROUP_NAMES.len() as u64) as usize;
                let mut intended = BTreeSet::new();
                while intended.len() < wanted {
                    intended.insert(work.pick(&group_ids).0);
                }
                SimNode {
                    addr: format!("n{index}"),
                    node: None,
                    app: AppNode {
                        member: MemberId::new(index as u32, 0),
                        intended,
                        groups: BTreeMap::new(),
                        requested: BTreeMap::new(),
                        counter: 0,
                        stopped: None,
                        leaving: false,
                    },
                    incarnation_max: 0,
                    life: 0,
                    timer_at: None,
                    restart_pending: false,
                    timeout_handled_at: None,
                    spin_streak: 0,
                    logs,
                }
            })
            .collect();
        let stats = RunStats {
            nodes: node_count,
            durable,
            ..RunStats::default()
        };
        Simulation {
            seed,
            options: options.clone(),
            mix,
            tuning,
            now: 0,
            phase: Phase::Safety,
            queue: EventQueue::default(),
            nodes,
            net: Network::new(node_count, params, SimRng::fork(seed, TAG_NET)),
            history: Vec::new(),
            rng_fault: SimRng::fork(seed, TAG_FAULT),
            rng_work: work,
            rng_total,
            rng_disk,
            sync_delay_max_ns,
            bootstrapper: Some(0),
            starts_held_until: 0,
            latest_view: None,
            pending_joiners: BTreeSet::new(),
            leader_trap: None,
            failure_trap: None,
            safe_delivered_at: None,
            partition: None,
            partitions_made: 0,
            group_ids,
            violations: Vec::new(),
            stats,
            liveness_started: 0,
            probes_unsent: Vec::new(),
            probes_sent: Vec::new(),
            probes_delivered: BTreeSet::new(),
            final_snapshot: None,
            frame: Vec::with_capacity(64 * 1024),
            arrivals: Vec::with_capacity(2),
            destinations: Vec::new(),
            payload: Vec::new(),
        }
    }

    /// The seed for one node incarnation's core RNG.
    pub fn node_seed(&self, index: usize, incarnation: u32) -> u64 {
        SimRng::fork(
            self.seed,
            TAG_NODE ^ ((index as u64) << 8) ^ (u64::from(incarnation) << 32),
        )
        .next_u64()
    }

    pub fn note(&mut self, node: Option<usize>, text: String) {
        let member = node.map_or(MemberId::new(u32::MAX, 0), |index| {
            self.nodes[index].app.member
        });
        self.history.push(Record {
            time: self.now,
            node,
            member,
            kind: RecordKind::Note(text),
        });
    }

    pub fn record(&mut self, index: usize, kind: RecordKind) {
        let member = self.nodes[index].app.member;
        self.history.push(Record {
            time: self.now,
            node: Some(index),
            member,
            kind,
        });
    }

    /// A violation the simulator itself detects while running (not a checker's).
    pub fn sim_violation(&mut self, checker: &'static str, message: String) {
        self.note(None, format!("VIOLATION [{checker}] {message}"));
        self.violations.push(Violation {
            checker,
            time: self.now,
            message,
        });
    }

    fn schedule_start(&mut self) {
        for index in 0..self.nodes.len() {
            let start = if index == 0 {
                0
            } else {
                self.rng_work.range_inclusive(1, 30) * NANOS_PER_MS
            };
            self.queue.push(start, SimEvent::Start { node: index });
            let tick = start + self.rng_work.range_inclusive(1, APP_TICK_NS);
            self.queue.push(tick, SimEvent::AppTick { node: index });
            let send = start + self.rng_work.range_inclusive(50, 100) * NANOS_PER_MS;
            self.queue.push(send, SimEvent::WorkSend { node: index });
        }
        if self.mix != Mix::Calm && self.mix != Mix::Lossy {
            let first = self.rng_fault.range_inclusive(250, 400) * NANOS_PER_MS;
            self.queue.push(first, SimEvent::FaultTick);
        }
        self.schedule_total_failures();
        self.queue.push(
            self.options.safety_ms * NANOS_PER_MS,
            SimEvent::BeginLiveness,
        );
    }

    pub fn run(&mut self) {
        let description = format!(
            "seed {} mix {} nodes {} net {:?} {:?} bug {:?} durable {} (fsync <= {} us)",
            self.seed,
            self.mix,
            self.nodes.len(),
            self.net.params,
            self.tuning,
            self.options.inject_bug,
            self.stats.durable,
            self.sync_delay_max_ns / 1_000,
        );
        self.note(None, description);
        self.schedule_start();
        while self.phase != Phase::Done {
            let Some((time, event)) = self.queue.pop() else {
                break;
            };
            debug_assert!(time >= self.now, "time went backwards");
            self.now = time;
            self.stats.events += 1;
            if self.stats.events > self.options.events_max {
                self.queue.push(time, event);
                let upcoming: Vec<String> = std::iter::from_fn(|| self.queue.pop())
                    .take(4)
                    .map(|(at, event)| match event {
                        SimEvent::Arrive { from, to, frame } => {
                            format!("{at}: frame n{from}->n{to} {}B", frame.len())
                        }
                        other => format!("{at}: {other:?}"),
                    })
                    .collect();
                let message = format!(
                    "event budget of {} exceeded: livelock? next events: {upcoming:?}",
                    self.options.events_max
                );
                self.sim_violation("sim", message);
                self.stats.virtual_ms = self.now / NANOS_PER_MS;
                return;
            }
            self.dispatch(event);
        }
        self.stats.virtual_ms = self.now / NANOS_PER_MS;
        if self.options.liveness {
            self.final_snapshot = Some(self.snapshot());
        }
    }

    fn dispatch(&mut self, event: SimEvent) {
        match event {
            SimEvent::Arrive { from, to, frame } => self.arrive(from, to, &frame),
            SimEvent::Timer { node, life, at } => self.timer(node, life, at),
            SimEvent::Start { node } => self.start_node(node),
            SimEvent::Crash { node, life, leader } => self.crash_if(node, life, leader),
            SimEvent::AppTick { node } => self.app_tick(node),
            SimEvent::WorkSend { node } => self.work_send(node),
            SimEvent::FaultTick => self.fault_tick(),
            SimEvent::Heal { partition } => self.heal(partition),
            SimEvent::BeginLiveness => self.begin_liveness(),
            SimEvent::CheckSettled => self.check_settled(),
            SimEvent::ProbeTick => self.probe_tick(),
            SimEvent::CheckProbes => self.check_probes(),
            SimEvent::Sync { node, life } => self.sync_due(node, life),
            SimEvent::TotalFailure => self.total_failure(),
            SimEvent::ArmTotalFailure => self.arm_total_failure(),
        }
    }

    /// The whole system as the liveness checker sees it.
    pub fn snapshot(&self) -> FinalSnapshot {
        let nodes = self
            .nodes
            .iter()
            .enumerate()
            .map(|(index, sim)| {
                let mut groups = BTreeMap::new();
                if let Some(node) = &sim.node {
                    for (group, _) in &self.group_ids {
                        if let Some(view) = node.group_view(*group) {
                            if view.members.contains(&node.member_id()) {
                                groups.insert(*group, view.clone());
                            }
                        }
                    }
                }
                FinalNode {
                    node: index,
                    running: sim.node.is_some(),
                    member: sim.node.as_ref().map_or(sim.app.member, Node::member_id),
                    status: sim
                        .node
                        .as_ref()
                        .map_or(osiris_core::Status::Joining, Node::status),
                    domain_view: sim
                        .node
                        .as_ref()
                        .and_then(|node| node.domain_view().cloned()),
                    intended: sim.app.intended.clone(),
                    groups,
                }
            })
            .collect();
        let unsent_probes = self
            .probes_unsent
            .iter()
            .map(|(node, group, error)| {
                let why = error
                    .as_ref()
                    .map_or_else(|| "never tried".to_string(), ToString::to_string);
                format!(
                    "n{node} to {} (last attempt: {why})",
                    crate::history::group_label(*group)
                )
            })
            .collect();
        FinalSnapshot {
            time: self.now,
            nodes,
            unsent_probes,
        }
    }

    pub fn report_panic(&mut self, message: &str) {
        self.sim_violation("panic", message.to_string());
    }

    pub fn into_report(mut self) -> RunReport {
        let mut violations = std::mem::take(&mut self.violations);
        let panicked = violations
            .iter()
            .any(|violation| violation.checker == "panic");
        let snapshot = if panicked {
            None
        } else {
            self.final_snapshot.as_ref()
        };
        violations.extend(check::check_all(&self.history, snapshot));
        for record in &self.history {
            match &record.kind {
                RecordKind::Sent { .. } => self.stats.sends += 1,
                RecordKind::Delivered { .. } => self.stats.deliveries += 1,
                RecordKind::DomainView(_) => self.stats.domain_views += 1,
                RecordKind::GroupView { .. } => self.stats.group_views += 1,
                RecordKind::StateLoaded { fresh: false, .. } => self.stats.state_transfers += 1,
                _ => {}
            }
        }
        self.stats.net = self.net.stats;
        let keep_trace =
            self.options.trace || (self.options.trace_on_violation && !violations.is_empty());
        let mut trace: Vec<_> = if keep_trace {
            self.history.iter().map(Record::to_trace_line).collect()
        } else {
            Vec::new()
        };
        if keep_trace {
            for violation in &violations {
                let text = format!("VIOLATION {violation}");
                trace.push(crate::history::TraceLine {
                    time: self.now,
                    node: None,
                    text,
                });
            }
        }
        RunReport {
            seed: self.seed,
            mix: self.mix,
            violations,
            trace,
            stats: self.stats,
        }
    }
}
