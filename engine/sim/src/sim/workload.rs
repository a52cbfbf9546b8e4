//! The workload: keep group memberships in line with each node's intent, send
//! messages at random times, and in the liveness phase wait for the system to
//! settle and send probes that must reach everyone.

use std::time::Duration;

use osiris_core::{Error, GroupId, Instant, QueryOrder, QuerySpec, QueryTarget, SendKind, Status};

use super::{Phase, SimEvent, Simulation, APP_TICK_NS};
use crate::app::{encode_payload, PAYLOAD_FILLER_MAX};
use crate::check::liveness;
use crate::history::{fnv1a, group_label, MsgId, RecordKind};
use crate::net::NANOS_PER_MS;

/// A join or leave request is repeated if nothing happened for this long.
const REQUEST_RETRY_NS: u64 = 1_000 * NANOS_PER_MS;
/// Probes each node sends to each of its groups once the system settled.
const PROBES_PER_GROUP: usize = 2;
/// How long a workload query waits for its replies.
const QUERY_TIMEOUT_MS: u64 = 1_000;

impl Simulation {
    pub(super) fn app_tick(&mut self, index: usize) {
        if self.phase == Phase::Done {
            return;
        }
        self.queue
            .push(self.now + APP_TICK_NS, SimEvent::AppTick { node: index });
        self.reconcile(index);
    }

    /// Join the groups the node intends to be in and leave the others.
    pub(super) fn reconcile(&mut self, index: usize) {
        let now = self.now;
        let sim = &mut self.nodes[index];
        if sim.app.stopped.is_some() {
            return;
        }
        let Some(node) = sim.node.as_mut() else {
            return;
        };
        if node.status() != Status::Member {
            return;
        }
        let mut commands = Vec::new();
        for (group, name) in &self.group_ids {
            let intended = sim.app.intended.contains(group);
            let joined = sim.app.groups.contains_key(group);
            let recent = sim
                .app
                .requested
                .get(group)
                .is_some_and(|at| now < at + REQUEST_RETRY_NS);
            if intended == joined || recent {
                continue;
            }
            sim.app.requested.insert(*group, now);
            let outcome = if intended {
                node.join_group(Instant(now), name).map(|id| {
                    assert_eq!(id, *group, "group ids are FNV-1a of the name");
                })
            } else {
                node.leave_group(Instant(now), *group)
            };
            let verb = if intended {
                "join_group"
            } else {
                "leave_group"
            };
            match outcome {
                Err(Error::AlreadyJoined(_) | Error::NotJoined(_)) => {}
                outcome => commands.push(format!("{verb} {name} -> {outcome:?}")),
            }
        }
        let issued = !commands.is_empty();
        for command in commands {
            self.record(index, RecordKind::Command(command));
        }
        if issued {
            self.drain(index);
        }
    }

    pub(super) fn work_send(&mut self, index: usize) {
        if !matches!(self.phase, Phase::Safety | Phase::Settle { .. }) {
            return;
        }
        let next = self.now + self.rng_work.range_inclusive(5, 40) * NANOS_PER_MS;
        self.queue.push(next, SimEvent::WorkSend { node: index });
        let sim = &self.nodes[index];
        if !sim.running() {
            return;
        }
        let loaded: Vec<GroupId> = sim
            .app
            .groups
            .iter()
            .filter(|(_, group)| group.state.is_some())
            .map(|(id, _)| *id)
            .collect();
        if loaded.is_empty() {
            return;
        }
        let group = *self.rng_work.pick(&loaded);
        let burst = self.rng_work.range_inclusive(1, 100) <= self.tuning.burst_percent;
        let count = if burst {
            self.rng_work.range_inclusive(5, 20)
        } else {
            1
        };
        let kinds = self.options.kinds.multicasts();
        let choices = kinds.len() as u64 + u64::from(self.options.kinds.query);
        for _ in 0..count {
            let choice = self.rng_work.index(choices as usize);
            let outcome = match kinds.get(choice) {
                Some(kind) => self.send_one(index, group, false, *kind),
                None => self.query_one(index, group),
            };
            match outcome {
                Ok(()) => {}
                Err(Error::SendQueueFull(_)) => {
                    self.stats.backpressure += 1;
                    break;
                }
                Err(Error::NotJoined(_) | Error::NotInDomain | Error::Stopped) => {
                    self.stats.sends_refused += 1;
                    break;
                }
                Err(error) => {
                    self.sim_violation("sim", format!("n{index}: unexpected send error {error}"));
                    break;
                }
            }
        }
    }

    /// Ask a query of a random shape; record it if accepted.
    fn query_one(&mut self, index: usize, group: GroupId) -> Result<(), Error> {
        let now = self.now;
        let target = match self.rng_work.index(3) {
            0 => QueryTarget::All,
            1 => QueryTarget::One,
            _ => QueryTarget::K(2),
        };
        let order = if self.rng_work.index(2) == 0 {
            QueryOrder::Fifo
        } else {
            QueryOrder::Total
        };
        let spec = QuerySpec {
            target,
            order,
            timeout: Duration::from_millis(QUERY_TIMEOUT_MS),
        };
        let sim = &mut self.nodes[index];
        let Some(node) = sim.node.as_mut() else {
            return Err(Error::Stopped);
        };
        let all = (target == QueryTarget::All).then(|| node.group_members(group).to_vec());
        let id = node.query(Instant(now), group, spec, b"query")?;
        self.record(index, RecordKind::QuerySent { group, id, all });
        self.drain(index);
        Ok(())
    }

    /// Build and send one workload message (or probe); record it if accepted.
    fn send_one(
        &mut self,
        index: usize,
        group: GroupId,
        probe: bool,
        kind: SendKind,
    ) -> Result<(), Error> {
        let now = self.now;
        let filler_len = self.rng_work.range_inclusive(0, PAYLOAD_FILLER_MAX as u64) as usize;
        let mut filler = [0u8; PAYLOAD_FILLER_MAX];
        self.rng_work.fill(&mut filler[..filler_len]);
        let sim = &mut self.nodes[index];
        let Some(node) = sim.node.as_mut() else {
            return Err(Error::Stopped);
        };
        let msg = MsgId {
            sender: node.member_id(),
            counter: sim.app.counter + 1,
        };
        encode_payload(msg, probe, &filler[..filler_len], &mut self.payload);
        node.send_kind(Instant(now), group, kind, &self.payload)?;
        sim.app.counter += 1;
        let payload_hash = fnv1a(&self.payload);
        self.record(
            index,
            RecordKind::Sent {
                group,
                msg,
                payload_hash,
                probe,
                kind,
            },
        );
        if probe {
            self.probes_sent.push((msg, group));
        }
        self.drain(index);
        Ok(())
    }

    /// Settled: every node runs as a member of one domain view holding exactly
    /// the running nodes, every node is in exactly its intended groups with
    /// state loaded, the groups agree, and no leader is mid-change.
    fn converged(&self) -> bool {
        let all_members = self.nodes.iter().all(|sim| {
            sim.running()
                && sim
                    .node
                    .as_ref()
                    .is_some_and(|node| node.status() == Status::Member && !node.is_proposing())
                && sim.app.groups.len() == sim.app.intended.len()
                && sim
                    .app
                    .groups
                    .iter()
                    .all(|(id, group)| sim.app.intended.contains(id) && group.state.is_some())
        });
        all_members && liveness::check(&[], &self.snapshot()).is_empty()
    }

    pub(super) fn check_settled(&mut self) {
        let Phase::Settle { deadline } = self.phase else {
            return;
        };
        let settled = self.converged();
        if !settled && self.now < deadline {
            self.queue
                .push(self.now + 100 * NANOS_PER_MS, SimEvent::CheckSettled);
            return;
        }
        if settled {
            self.stats.settle_ms = Some((self.now - self.liveness_started) / NANOS_PER_MS);
            self.note(None, "=== settled: sending probes ===".to_string());
        } else {
            self.note(
                None,
                "=== did NOT settle in time: sending probes anyway ===".to_string(),
            );
        }
        self.phase = Phase::Probing {
            deadline: self.now + self.options.probe_max_ms * NANOS_PER_MS,
        };
        for index in 0..self.nodes.len() {
            let sim = &self.nodes[index];
            if !sim.running() {
                continue;
            }
            let groups: Vec<GroupId> = sim.app.groups.keys().copied().collect();
            for group in groups {
                for _ in 0..PROBES_PER_GROUP {
                    self.probes_unsent.push((index, group, None));
                }
            }
        }
        self.queue.push(self.now, SimEvent::ProbeTick);
        self.queue
            .push(self.now + 50 * NANOS_PER_MS, SimEvent::CheckProbes);
    }

    pub(super) fn probe_tick(&mut self) {
        if !matches!(self.phase, Phase::Probing { .. }) {
            return;
        }
        let pending = std::mem::take(&mut self.probes_unsent);
        let mut kinds = self.options.kinds.multicasts();
        if kinds.is_empty() {
            kinds.push(SendKind::Fifo);
        }
        for (index, group, last) in pending {
            // Probes cycle through the kinds: each must be live.
            let kind = kinds[(self.probes_sent.len() + index) % kinds.len()];
            match self.send_one(index, group, true, kind) {
                Ok(()) => {}
                Err(error) => {
                    if let Error::SendQueueFull(_) = error {
                        self.stats.backpressure += 1;
                    }
                    if last.as_ref() != Some(&error) {
                        let text =
                            format!("probe to {} refused: {error}; retrying", group_label(group));
                        self.note(Some(index), text);
                    }
                    self.probes_unsent.push((index, group, Some(error)));
                }
            }
        }
        if !self.probes_unsent.is_empty() {
            self.queue
                .push(self.now + 10 * NANOS_PER_MS, SimEvent::ProbeTick);
        }
    }

    fn probes_everywhere(&self) -> bool {
        self.probes_sent.iter().all(|(msg, group)| {
            self.nodes.iter().all(|sim| {
                let loaded_member =
                    sim.running() && sim.app.groups.get(group).is_some_and(|g| g.state.is_some());
                !loaded_member || self.probes_delivered.contains(&(sim.app.member, *msg))
            })
        })
    }

    pub(super) fn check_probes(&mut self) {
        let Phase::Probing { deadline } = self.phase else {
            return;
        };
        let done = self.probes_unsent.is_empty() && self.probes_everywhere();
        if done || self.now >= deadline {
            self.note(
                None,
                format!(
                    "=== end of run (probes {}) ===",
                    if done { "delivered" } else { "TIMED OUT" }
                ),
            );
            self.phase = Phase::Done;
            return;
        }
        self.queue
            .push(self.now + 50 * NANOS_PER_MS, SimEvent::CheckProbes);
    }
}
