//! `osiris node --config FILE`: one member process, driven by commands on
//! stdin, reporting events on stdout in the line format of `report.rs`.
//! The application it runs is a replicated log: every member keeps the
//! per-view tally of what it delivered and, for text messages, the text; a
//! joiner loads the total and the texts by state transfer.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use osiris_core::MemberId;
use osiris_runtime::{
    Group, Node, NodeBuilder, QueryOrder, QuerySpec, QueryTarget, RuntimeConfig, RuntimeError,
    SendKind,
};

use osiris_tools::report::{chain, member, members};

use crate::latency::{probe_node, Probe, HEADER_LEN, PING, PONG, PROBE};

/// Prints one line atomically (handlers and the command loop both print).
fn say(line: std::fmt::Arguments<'_>) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One group's replicated state and this member's tallies.
#[derive(Debug, Default)]
struct GroupState {
    view: u64,
    /// Deliveries in the current view, per sender: (count, digest).
    tally: BTreeMap<MemberId, (u64, u64)>,
    /// Every delivery since the group began (loaded, then counted).
    total: u64,
    texts: Vec<String>,
    /// When the first and the latest burst message were delivered (for
    /// `osiris bench`: the receive rate is bursts / (last - first)).
    burst_window: Option<(Instant, Instant)>,
    bursts: u64,
    /// Per sender, the index of the last burst message delivered (FIFO check).
    burst_last: BTreeMap<MemberId, u64>,
    /// Out-of-order, duplicate or missing burst deliveries seen so far.
    fifo_errors: u64,
    /// The index the next burst message this member sends carries: indices
    /// go on across bursts, so a sender's whole stream is one sequence.
    burst_next: u64,
    /// The latency probe or ping-pong running, if any.
    probe: Option<Probe>,
}

/// `FIFOERR` lines printed per group at most (the count goes on).
const FIFO_ERROR_LINES_MAX: u64 = 100;

impl GroupState {
    fn checkpoint(&self) -> Vec<u8> {
        let mut state = self.total.to_le_bytes().to_vec();
        state.extend_from_slice(self.texts.join("\n").as_bytes());
        state
    }

    fn load(&mut self, state: &[u8]) {
        if state.len() < 8 {
            return;
        }
        self.total = u64::from_le_bytes(state[..8].try_into().unwrap_or_default());
        let texts = String::from_utf8_lossy(&state[8..]);
        self.texts = if texts.is_empty() {
            Vec::new()
        } else {
            texts.split('\n').map(str::to_owned).collect()
        };
    }
}

type Shared = Arc<(Mutex<GroupState>, Condvar)>;

pub fn run(config_path: &Path) -> Result<(), RuntimeError> {
    let config = RuntimeConfig::from_file(config_path)?;
    let node_id = config.core.node.0;
    let node = NodeBuilder::new(config)
        .on_domain_view(|view| {
            let ids: Vec<MemberId> = view.members.iter().map(|info| info.id).collect();
            say(format_args!("DVIEW {} {}", view.id.0, members(&ids)));
        })
        .on_stopped(|reason| say(format_args!("STOPPED {reason:?}")))
        .start()?;
    say(format_args!("READY {node_id} {}", node.local_addr()));
    let mut groups: HashMap<String, (Group, Shared)> = HashMap::new();
    let stdin = std::io::stdin();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let result = match words.as_slice() {
            ["join", name, mode @ ..] if mode.is_empty() || mode == ["durable"] => join(&node, name, !mode.is_empty()).map(|joined| {
                groups.insert((*name).to_owned(), joined);
                say(format_args!("JOINED {name}"));
            }),
            [verb @ ("send" | "causal" | "ordered" | "safe"), name, ..] => {
                with_group(&groups, name, |group, _| {
                    let text = line.splitn(3, ' ').nth(2).unwrap_or("");
                    group.send_kind(kind_of(verb), format!("t:{text}").as_bytes())
                })
            }
            ["burst", name, count, size, rest @ ..] => {
                with_group(&groups, name, |group, state| {
                    let count = count.parse().unwrap_or(0);
                    let kind = kind_of(rest.first().copied().unwrap_or("send"));
                    burst(group, state, name, count, size.parse().unwrap_or(64), kind)
                })
            }
            ["latency", name, count, size, kind, rate] => with_group(&groups, name, |group, state| {
                let node = node.config().core.node.0;
                latency(group, state, node, count.parse().unwrap_or(0), size.parse().unwrap_or(64), kind_of(kind), rate.parse().unwrap_or(0))?;
                let state = state.0.lock().unwrap_or_else(|e| e.into_inner());
                let summary = state.probe.as_ref().map(Probe::summary).unwrap_or_default();
                say(format_args!("LATENCY {name} {summary}"));
                Ok(())
            }),
            ["ping", name, peer, count, size] => with_group(&groups, name, |group, state| {
                let node = node.config().core.node.0;
                let peer = MemberId::new(peer.parse().unwrap_or(0), 1);
                ping(group, state, node, peer, count.parse().unwrap_or(0), size.parse().unwrap_or(64))?;
                let state = state.0.lock().unwrap_or_else(|e| e.into_inner());
                let summary = state.probe.as_ref().map(Probe::summary).unwrap_or_default();
                say(format_args!("RTT {name} {summary}"));
                Ok(())
            }),
            ["mark", name] => with_group(&groups, name, |_, state| {
                // Start a new measurement window for REACHED.
                let mut state = state.0.lock().unwrap_or_else(|e| e.into_inner());
                state.burst_window = None;
                state.bursts = 0;
                Ok(())
            }),
            ["flush", name] => with_group(&groups, name, |group, _| {
                group.flush()?;
                say(format_args!("FLUSHED {name}"));
                Ok(())
            }),
            ["query", name, ..] => with_group(&groups, name, |group, _| {
                let text = line.splitn(3, ' ').nth(2).unwrap_or("");
                let spec = QuerySpec {
                    target: QueryTarget::All,
                    order: QueryOrder::Total,
                    timeout: Duration::from_secs(2),
                };
                let result = group.query(spec, text.as_bytes())?;
                for (from, reply) in &result.replies {
                    say(format_args!(
                        "QREPLY {name} {} {}",
                        member(*from),
                        String::from_utf8_lossy(reply)
                    ));
                }
                say(format_args!(
                    "QDONE {name} {} {} {}",
                    result.replies.len(),
                    members(&result.failed),
                    result.timed_out
                ));
                Ok(())
            }),
            ["await", name, count] => with_group(&groups, name, |_, state| {
                let count: u64 = count.parse().unwrap_or(0);
                await_total(state, count, Duration::from_secs(60))?;
                let guard = state.0.lock().unwrap_or_else(|e| e.into_inner());
                let window = guard
                    .burst_window
                    .map_or(0, |(first, last)| last.duration_since(first).as_micros());
                say(format_args!(
                    "REACHED {name} {count} {} {window}",
                    guard.bursts
                ));
                Ok(())
            }),
            ["tally", name] => with_group(&groups, name, |_, state| {
                let state = state.0.lock().unwrap_or_else(|e| e.into_inner());
                for (sender, (count, digest)) in &state.tally {
                    say(format_args!(
                        "OPEN {name} {} {} {count} {digest:016x}",
                        state.view,
                        member(*sender)
                    ));
                }
                say(format_args!(
                    "TALLIED {name} {} {} {}",
                    state.view, state.total, state.fifo_errors
                ));
                Ok(())
            }),
            ["leave", name] => match groups.remove(*name) {
                Some((group, _)) => group.leave().map(|()| say(format_args!("LEFT {name}"))),
                None => Err(RuntimeError::Config(format!("not in group {name}"))),
            },
            ["stats"] => node.stats().map(|stats| {
                say(format_args!(
                    "STATS delivered={} sent={} frames_sent={} frames_received={} malformed={} strangers={} stale={} datagrams_malformed={} sendmmsg={} recvmmsg={} mcast_sendmmsg={} mcast_recvmmsg={} blocks={} retransmissions={} naks={} allocations={}",
                    stats.node.messages_delivered,
                    stats.node.messages_sent,
                    stats.node.frames_sent,
                    stats.node.frames_received,
                    stats.node.frames_malformed,
                    stats.node.frames_from_strangers,
                    stats.node.frames_stale,
                    stats.unicast.datagrams_malformed,
                    stats.unicast.sendmmsg_calls,
                    stats.unicast.recvmmsg_calls,
                    stats.multicast.map_or(0, |m| m.sendmmsg_calls),
                    stats.multicast.map_or(0, |m| m.recvmmsg_calls),
                    stats.blocks,
                    stats.node.retransmissions,
                    stats.node.naks_sent,
                    crate::allocations(),
                ));
            }),
            ["stats-all"] => node.stats().map(|stats| say(format_args!("STATSALL {stats:?}"))),
            ["quit"] => break,
            [] => Ok(()),
            _ => Err(RuntimeError::Config(format!("unknown command: {line}"))),
        };
        if let Err(error) = result {
            say(format_args!("ERROR {error}"));
        }
    }
    node.shutdown();
    say(format_args!("BYE"));
    Ok(())
}

fn with_group(
    groups: &HashMap<String, (Group, Shared)>,
    name: &str,
    act: impl FnOnce(&Group, &Shared) -> Result<(), RuntimeError>,
) -> Result<(), RuntimeError> {
    match groups.get(name) {
        Some((group, state)) => act(group, state),
        None => Err(RuntimeError::Config(format!("not in group {name}"))),
    }
}

/// Joins `name`; `durable`: in durable mode (the node's `durable_dir`),
/// printing what the log recovered and every SafeSend delivery.
fn join(node: &Node, name: &str, durable: bool) -> Result<(Group, Shared), RuntimeError> {
    let shared: Shared = Arc::default();
    let node_id = node.config().core.node.0;
    let responder: Arc<std::sync::OnceLock<Group>> = Arc::default();
    let responder_set = Arc::clone(&responder);
    let group_name = name.to_owned();
    let on_view = Arc::clone(&shared);
    let on_message = Arc::clone(&shared);
    let on_checkpoint = Arc::clone(&shared);
    let on_query = Arc::clone(&shared);
    let on_load = Arc::clone(&shared);
    let (name_v, name_m, name_l) = (group_name.clone(), group_name.clone(), group_name.clone());
    let mut builder = node.group(name);
    if durable {
        let name_r = group_name.clone();
        builder = builder.durable(move |recovered| {
            for message in recovered {
                say(format_args!(
                    "RSAFE {name_r} {} {:016x}",
                    member(message.sender),
                    chain(0, &message.payload)
                ));
            }
            say(format_args!("RECOVERED {name_r} {}", recovered.len()));
        });
    }
    let group = builder
        .on_view(move |view| {
            let mut state = on_view.0.lock().unwrap_or_else(|e| e.into_inner());
            // The view that ends: what this member delivered in it, per sender.
            let ended = state.view;
            for (sender, (count, digest)) in std::mem::take(&mut state.tally) {
                say(format_args!(
                    "TALLY {name_v} {ended} {} {count} {digest:016x}",
                    member(sender)
                ));
            }
            state.view = view.id;
            say(format_args!(
                "VIEW {name_v} {} {} {} {} {}",
                view.id,
                members(&view.members),
                members(&view.joined),
                members(&view.left),
                members(&view.failed)
            ));
        })
        .on_message(move |message| {
            if durable && message.kind == SendKind::Safe {
                say(format_args!(
                    "SAFE {name_m} {} {:016x}",
                    member(message.sender),
                    chain(0, message.payload)
                ));
            }
            let (lock, changed) = &*on_message;
            let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
            if message.payload.starts_with(PROBE) || message.payload.starts_with(PONG) {
                // Latency traffic: timed, not tallied. A probe is timed by
                // its own sender only.
                let mine = probe_node(message.payload) == Some(node_id);
                if let (true, Some(probe)) = (mine, state.probe.as_mut()) {
                    probe.record(message.payload);
                    changed.notify_all();
                }
                return;
            }
            if message.point_to_point && message.payload.starts_with(PING) {
                // Echo a ping at once (from the data-plane thread: the ring
                // has room, a ping-pong keeps one message in flight).
                if let Some(group) = responder.get() {
                    let mut pong = message.payload.to_vec();
                    pong[..2].copy_from_slice(PONG);
                    let _ = group.send_to(message.sender, &pong);
                }
                return;
            }
            let entry = state.tally.entry(message.sender).or_insert((0, 0));
            entry.0 += 1;
            entry.1 = chain(entry.1, message.payload);
            state.total += 1;
            if let Some(index) = burst_index(message.payload) {
                let now = Instant::now();
                let window = state.burst_window.get_or_insert((now, now));
                window.1 = now;
                state.bursts += 1;
                check_fifo(&mut state, &name_m, message.sender, index);
            } else if let Some(text) = message.payload.strip_prefix(b"t:") {
                let text = String::from_utf8_lossy(text).into_owned();
                say(format_args!(
                    "MSG {name_m} {} {} {text}",
                    state.view,
                    member(message.sender)
                ));
                state.texts.push(text);
            }
            changed.notify_all();
        })
        .on_query(move |request| {
            // The replicated state answers: how much this member has seen.
            let state = on_query.0.lock().unwrap_or_else(|e| e.into_inner());
            Some(
                format!(
                    "{} deliveries, {} texts (asked '{}' by {})",
                    state.total,
                    state.texts.len(),
                    String::from_utf8_lossy(request.payload),
                    member(request.from),
                )
                .into_bytes(),
            )
        })
        .on_checkpoint(move || {
            let state = on_checkpoint.0.lock().unwrap_or_else(|e| e.into_inner());
            state.checkpoint()
        })
        .on_load(move |bytes| {
            let mut state = on_load.0.lock().unwrap_or_else(|e| e.into_inner());
            state.load(bytes);
            say(format_args!(
                "LOADED {name_l} {} {}",
                state.total,
                state.texts.len()
            ));
        })
        .join()?;
    let _ = responder_set.set(group.clone());
    Ok((group, shared))
}

/// Sends `count` messages of `size` bytes: `b:`, then the sender's burst
/// index (u64, little-endian), then zeros.
/// The send kind a command word names (`send` is FIFO).
fn kind_of(word: &str) -> SendKind {
    match word {
        "causal" => SendKind::Causal,
        "ordered" => SendKind::Ordered,
        "safe" => SendKind::Safe,
        _ => SendKind::Fifo,
    }
}

fn burst(
    group: &Group,
    state: &Shared,
    name: &str,
    count: u64,
    size: usize,
    kind: SendKind,
) -> Result<(), RuntimeError> {
    let size = size.max(10);
    // Not held while sending: the data plane takes this lock to deliver, and
    // a send may wait for the data plane.
    let first = {
        let mut state = state.0.lock().unwrap_or_else(|e| e.into_inner());
        let first = state.burst_next;
        state.burst_next += count;
        first
    };
    let started = Instant::now();
    for index in first..first + count {
        group.send_kind_with(kind, size, |buf| {
            buf[..2].copy_from_slice(b"b:");
            buf[2..10].copy_from_slice(&index.to_le_bytes());
        })?;
    }
    say(format_args!(
        "SENT {name} {count} {}",
        started.elapsed().as_micros()
    ));
    Ok(())
}

/// The burst index a payload carries, if it is a burst message.
fn burst_index(payload: &[u8]) -> Option<u64> {
    let bytes = payload.strip_prefix(b"b:")?.get(..8)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

/// A sender's burst messages must arrive in index order without gaps or
/// repeats. The first one a member delivers from a sender may have any index
/// (a joiner loaded the earlier ones as state).
fn check_fifo(state: &mut GroupState, group: &str, sender: MemberId, index: u64) {
    let last = state.burst_last.insert(sender, index);
    let Some(last) = last else { return };
    if index == last + 1 {
        return;
    }
    state.fifo_errors += 1;
    if state.fifo_errors <= FIFO_ERROR_LINES_MAX {
        say(format_args!(
            "FIFOERR {group} {} {} {} {index}",
            state.view,
            member(sender),
            last + 1
        ));
    }
}

fn await_total(state: &Shared, count: u64, timeout: Duration) -> Result<(), RuntimeError> {
    let (lock, changed) = &**state;
    let deadline = Instant::now() + timeout;
    let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    let mut next_progress = Instant::now() + PROGRESS_PERIOD;
    while guard.total < count {
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            return Err(RuntimeError::Timeout("the awaited deliveries"));
        }
        if now >= next_progress {
            // For a driver's progress line (`osiris bench`).
            say(format_args!("PROGRESS {} {count}", guard.total));
            next_progress = now + PROGRESS_PERIOD;
        }
        guard = changed
            .wait_timeout(guard, left.min(PROGRESS_PERIOD))
            .map(|(guard, _)| guard)
            .unwrap_or_else(|e| e.into_inner().0);
    }
    Ok(())
}

/// How often `await` reports progress.
const PROGRESS_PERIOD: Duration = Duration::from_millis(250);

/// Sends `count` probes of `size` bytes at `rate` per second (0: as fast as
/// the flow control allows) and waits until all came back to this member.
fn latency(
    group: &Group,
    state: &Shared,
    node: u32,
    count: u64,
    size: usize,
    kind: SendKind,
    rate: u64,
) -> Result<(), RuntimeError> {
    let size = size.max(HEADER_LEN);
    let (probe, schedule) = Probe::new(rate);
    state.0.lock().unwrap_or_else(|e| e.into_inner()).probe = Some(probe);
    for index in 0..count {
        let due = schedule.due(index);
        while Instant::now() < due {
            std::hint::spin_loop();
        }
        group.send_kind_with(kind, size, |buf| {
            schedule.fill(buf, PROBE, node, index, due);
        })?;
    }
    await_probes(state, count)
}

/// Closed-loop ping-pong with `peer`: the next ping goes when the pong came.
fn ping(
    group: &Group,
    state: &Shared,
    node: u32,
    peer: MemberId,
    count: u64,
    size: usize,
) -> Result<(), RuntimeError> {
    let size = size.max(HEADER_LEN);
    let (probe, schedule) = Probe::new(0);
    state.0.lock().unwrap_or_else(|e| e.into_inner()).probe = Some(probe);
    let mut buf = vec![0u8; size];
    for index in 0..count {
        schedule.fill(&mut buf, PING, node, index, Instant::now());
        group.send_to(peer, &buf)?;
        await_probes(state, index + 1)?;
    }
    Ok(())
}

fn await_probes(state: &Shared, count: u64) -> Result<(), RuntimeError> {
    let (lock, changed) = &**state;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
    while guard.probe.as_ref().map_or(0, |probe| probe.recorded) < count {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RuntimeError::Timeout("the latency probes"));
        }
        guard = changed
            .wait_timeout(guard, left)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|e| e.into_inner().0);
    }
    Ok(())
}
