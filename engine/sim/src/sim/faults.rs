//! Fault injection during the safety phase, and the switch to the liveness phase.
//!
//! Every fault that removes nodes (crash, partition, graceful leave) first asks
//! the oracle — the highest domain view any node installed — whether a majority
//! of that view stays alive, connected, in the same incarnation and not
//! leaving, also counting dead joiners a leader may still add (see
//! `majority_survives`). The protocol halts by design without a majority; such
//! runs would test nothing.

use osiris_core::{Instant, MemberId, Node, Status};

use super::{ActivePartition, Phase, SimEvent, Simulation, Trap};
use crate::history::RecordKind;
use crate::mix::Mix;
use crate::net::{NetParams, NANOS_PER_MS};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Crash,
    /// Crash a node and restart it shortly after.
    Bounce,
    CrashLeader,
    /// Trigger a view change, then crash the leader while it proposes.
    LeaderTrap,
    Restart,
    Partition,
    ToggleGroup,
    NodeLeave,
}

fn actions(mix: Mix) -> Vec<(Action, u32)> {
    let mut table = Vec::new();
    if mix.crashes() {
        table.extend([
            (Action::Crash, 3),
            (Action::Bounce, 1),
            (Action::CrashLeader, 1),
            (Action::Restart, 3),
        ]);
    }
    if mix.leader_crashes() {
        table.extend([
            (Action::LeaderTrap, 4),
            (Action::CrashLeader, 1),
            (Action::Restart, 3),
        ]);
    }
    if mix.partitions() {
        table.extend([(Action::Partition, 3), (Action::Restart, 2)]);
    }
    if mix.churn() {
        table.extend([
            (Action::ToggleGroup, 5),
            (Action::NodeLeave, 1),
            (Action::Bounce, 1),
            (Action::Restart, 2),
        ]);
    }
    if mix == Mix::TotalFailure {
        // Between total failures (`total_failure.rs`): members that come
        // and go, so that the logs at a failure span different epochs.
        table.extend([(Action::Bounce, 1), (Action::ToggleGroup, 2)]);
    }
    table
}

/// Partitions shorter than this may end before the minority noticed; longer
/// ones must have stopped every minority member by the heal.
const PARTITION_STOP_BOUND_NS: u64 = 1_000 * NANOS_PER_MS;

impl Simulation {
    /// Whether, with `removing` gone, a majority survives both in the latest
    /// domain view and in the worst view a leader could install next: the
    /// latest view plus every pending joiner that is not alive (adding a live
    /// joiner never costs a majority, so the dead ones are the worst case).
    pub(super) fn majority_survives(&self, removing: &[usize]) -> bool {
        let Some(view) = &self.latest_view else {
            return false;
        };
        let alive = |member: MemberId, must_be_member: bool| {
            let index = member.node.0 as usize;
            index < self.nodes.len()
                && !removing.contains(&index)
                && !self.net.cut_off(index)
                && self.nodes[index].running()
                && !self.nodes[index].app.leaving
                && self.nodes[index].app.member == member
                && (!must_be_member
                    || self.nodes[index]
                        .node
                        .as_ref()
                        .is_some_and(|node| node.status() == Status::Member))
        };
        let members: Vec<MemberId> = view.members.iter().map(|info| info.id).collect();
        let alive_now = members
            .iter()
            .filter(|member| alive(**member, true))
            .count();
        if alive_now < view.majority() {
            return false;
        }
        let dead_joiners = self
            .pending_joiners
            .iter()
            .filter(|joiner| !members.contains(joiner) && !alive(**joiner, false))
            .count();
        let potential = members.len() + dead_joiners;
        if alive_now <= potential / 2 {
            return false;
        }
        // Every running node's own view (a node may not have installed the
        // latest one yet) and every proposal a node accepted (it may be
        // decided and installed by a takeover) must keep a majority too.
        let survives = |view_members: &[MemberId]| {
            let alive_count = view_members
                .iter()
                .filter(|member| alive(**member, false))
                .count();
            alive_count > view_members.len() / 2
        };
        self.nodes.iter().filter(|sim| sim.running()).all(|sim| {
            let Some(node) = sim.node.as_ref() else {
                return true;
            };
            let installed: Option<Vec<MemberId>> = node
                .domain_view()
                .map(|view| view.members.iter().map(|info| info.id).collect());
            installed.as_deref().is_none_or(survives)
                && node.accepted_view_members().as_deref().is_none_or(survives)
        })
    }

    fn running_indices(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|index| self.nodes[*index].running())
            .collect()
    }

    /// The node that leads the domain, preferring rank 0 of the latest view.
    fn leader_index(&self) -> Option<usize> {
        let is_leader = |index: usize| {
            self.nodes[index].running()
                && self.nodes[index].node.as_ref().is_some_and(Node::is_leader)
        };
        let preferred = self
            .latest_view
            .as_ref()
            .and_then(|view| view.members.first())
            .map(|info| info.id);
        if let Some(rank0) = preferred {
            let index = rank0.node.0 as usize;
            if index < self.nodes.len() && self.nodes[index].app.member == rank0 && is_leader(index)
            {
                return Some(index);
            }
        }
        (0..self.nodes.len()).find(|index| is_leader(*index))
    }

    pub(super) fn fault_tick(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        let table = actions(self.mix);
        let total: u32 = table.iter().map(|(_, weight)| weight).sum();
        if total > 0 {
            let mut draw = self.rng_fault.range_inclusive(0, u64::from(total) - 1) as u32;
            let action = table
                .iter()
                .find(|(_, weight)| {
                    let hit = draw < *weight;
                    draw = draw.saturating_sub(*weight);
                    hit
                })
                .map(|(action, _)| *action)
                .expect("draw is below the total weight");
            self.perform(action);
        }
        let next = self.now + self.rng_fault.range_inclusive(50, 300) * NANOS_PER_MS;
        self.queue.push(next, SimEvent::FaultTick);
    }

    fn perform(&mut self, action: Action) {
        match action {
            Action::Crash => self.crash_random(None),
            Action::Bounce => {
                let delay = self.rng_fault.range_inclusive(10, 100) * NANOS_PER_MS;
                self.crash_random(Some(delay));
            }
            Action::CrashLeader => {
                if let Some(leader) = self.leader_index() {
                    let life = self.nodes[leader].life;
                    self.crash_if(leader, life, true);
                }
            }
            Action::LeaderTrap => self.leader_trap(),
            Action::Restart => self.restart_random(),
            Action::Partition => self.partition_minority(),
            Action::ToggleGroup => self.toggle_random_group(),
            Action::NodeLeave => self.leave_random(),
        }
    }

    fn crash_random(&mut self, restart_after: Option<u64>) {
        let running = self.running_indices();
        if running.is_empty() {
            return;
        }
        let victim = *self.rng_fault.pick(&running);
        if !self.majority_survives(&[victim]) {
            return;
        }
        self.crash(victim);
        if let Some(delay) = restart_after {
            self.nodes[victim].restart_pending = true;
            self.queue
                .push(self.now + delay, SimEvent::Start { node: victim });
        }
    }

    fn restart_random(&mut self) {
        let down: Vec<usize> = (0..self.nodes.len())
            .filter(|index| {
                let sim = &self.nodes[*index];
                !sim.running() && !sim.restart_pending && !self.net.cut_off(*index)
            })
            .collect();
        if !down.is_empty() {
            let index = *self.rng_fault.pick(&down);
            self.start_node(index);
        }
    }

    fn leader_trap(&mut self) {
        let Some(leader) = self.leader_index() else {
            return;
        };
        let running: Vec<usize> = self
            .running_indices()
            .into_iter()
            .filter(|index| *index != leader)
            .collect();
        match self.rng_fault.range_inclusive(0, 2) {
            0 if !running.is_empty() => {
                let victim = *self.rng_fault.pick(&running);
                if self.majority_survives(&[victim, leader]) {
                    self.note(Some(victim), "crash to make the leader propose".to_string());
                    self.crash(victim);
                }
            }
            1 => self.restart_random(),
            _ => self.toggle_random_group(),
        }
        let delay_ns = self.rng_fault.range_inclusive(0, 3_000) * 1_000;
        self.leader_trap = Some(Trap {
            deadline: self.now + 500 * NANOS_PER_MS,
            delay_ns,
        });
        self.after_trap_armed(leader);
    }

    /// The leader may already be proposing when the trap is armed.
    fn after_trap_armed(&mut self, leader: usize) {
        if let Some(trap) = self.leader_trap {
            if self.nodes[leader]
                .node
                .as_ref()
                .is_some_and(Node::is_proposing)
            {
                self.leader_trap = None;
                let life = self.nodes[leader].life;
                self.queue.push(
                    self.now + trap.delay_ns,
                    SimEvent::Crash {
                        node: leader,
                        life,
                        leader: true,
                    },
                );
            }
        }
    }

    fn partition_minority(&mut self) {
        if self.partition.is_some() {
            return;
        }
        let Some(view) = self.latest_view.clone() else {
            return;
        };
        let size_max = (view.members.len().saturating_sub(1) / 2).max(1);
        let size = self.rng_fault.range_inclusive(1, size_max as u64) as usize;
        let mut candidates: Vec<usize> = (0..self.nodes.len()).collect();
        let mut minority = Vec::new();
        while minority.len() < size && !candidates.is_empty() {
            let position = self.rng_fault.index(candidates.len());
            minority.push(candidates.remove(position));
        }
        minority.sort_unstable();
        if minority.len() >= self.nodes.len() || !self.majority_survives(&minority) {
            return;
        }
        let members_cut = minority
            .iter()
            .filter(|index| self.nodes[**index].running())
            .map(|index| (*index, self.nodes[*index].app.member))
            .filter(|(_, member)| view.contains(*member))
            .collect();
        self.partitions_made += 1;
        self.stats.partitions += 1;
        let id = self.partitions_made;
        self.net.partition(&minority);
        self.note(
            None,
            format!("PARTITION {id}: {minority:?} cut off from the rest"),
        );
        self.partition = Some(ActivePartition {
            id,
            minority,
            since: self.now,
            members_cut,
        });
        let heal_at = self.now + self.rng_fault.range_inclusive(300, 1_500) * NANOS_PER_MS;
        self.queue.push(heal_at, SimEvent::Heal { partition: id });
    }

    pub(super) fn heal(&mut self, partition: u64) {
        if self
            .partition
            .as_ref()
            .is_some_and(|active| active.id == partition)
        {
            self.heal_now();
        }
    }

    /// Heal the active partition; a long one must have stopped its minority.
    fn heal_now(&mut self) {
        let Some(active) = self.partition.take() else {
            return;
        };
        self.net.heal();
        self.note(
            None,
            format!(
                "HEAL partition {}: {:?} reconnected",
                active.id, active.minority
            ),
        );
        if self.now - active.since < PARTITION_STOP_BOUND_NS {
            return;
        }
        for (index, member) in active.members_cut {
            let sim = &self.nodes[index];
            let still_member = sim.running()
                && sim.app.member == member
                && sim
                    .node
                    .as_ref()
                    .is_some_and(|node| node.status() == Status::Member);
            if still_member {
                let message = format!(
                    "{member} was cut off in a minority for {} ms and is still a member: it should have stopped",
                    (self.now - active.since) / NANOS_PER_MS
                );
                self.sim_violation("primary_partition", message);
            }
        }
    }

    fn toggle_random_group(&mut self) {
        let index = self.rng_fault.index(self.nodes.len());
        let (group, name) = *self.rng_fault.pick(&self.group_ids);
        let intended = &mut self.nodes[index].app.intended;
        let joining = intended.insert(group);
        if !joining {
            intended.remove(&group);
        }
        let verb = if joining { "join" } else { "leave" };
        self.record(
            index,
            RecordKind::Command(format!("now intends to {verb} {name}")),
        );
        self.reconcile(index);
    }

    fn leave_random(&mut self) {
        let members: Vec<usize> = self
            .running_indices()
            .into_iter()
            .filter(|index| {
                self.nodes[*index]
                    .node
                    .as_ref()
                    .is_some_and(|node| node.status() == Status::Member)
            })
            .collect();
        if members.is_empty() {
            return;
        }
        let index = *self.rng_fault.pick(&members);
        if !self.majority_survives(&[index]) {
            return;
        }
        let now = Instant(self.now);
        let Some(node) = self.nodes[index].node.as_mut() else {
            return;
        };
        match node.leave(now) {
            Ok(()) => {
                self.nodes[index].app.leaving = true;
                self.record(index, RecordKind::LeaveRequested);
            }
            Err(error) => self.record(
                index,
                RecordKind::Command(format!("leave domain -> {error}")),
            ),
        }
        self.drain(index);
    }

    pub(super) fn begin_liveness(&mut self) {
        if !self.options.liveness {
            self.phase = Phase::Done;
            return;
        }
        self.note(
            None,
            "=== LIVENESS: faults stop, partitions heal, every node restarts ===".to_string(),
        );
        self.heal_now();
        self.net.params = NetParams::calm();
        self.leader_trap = None;
        self.liveness_started = self.now;
        self.phase = Phase::Settle {
            deadline: self.now + self.options.settle_max_ms * NANOS_PER_MS,
        };
        for index in 0..self.nodes.len() {
            if !self.nodes[index].running() && !self.nodes[index].restart_pending {
                self.nodes[index].restart_pending = true;
                let at = self.now + self.rng_fault.range_inclusive(0, 100) * NANOS_PER_MS;
                self.queue.push(at, SimEvent::Start { node: index });
            }
        }
        self.queue
            .push(self.now + 100 * NANOS_PER_MS, SimEvent::CheckSettled);
    }
}
