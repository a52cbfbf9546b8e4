//! The total failure: every node crashes at the same virtual instant (a
//! power cut), each disk loses what a crash may take, and every node
//! restarts a little later as a new incarnation. One node bootstraps a new
//! domain; the others join it. In a durable run each restarted node first
//! recovers its logs (`disk.rs`), which the durability checker compares
//! with what was delivered before the failure.

use super::{Phase, SimEvent, Simulation, Trap};
use crate::history::{Record, RecordKind};
use crate::net::NANOS_PER_MS;

/// Restarts follow the failure by at least this much: longer than any frame
/// stays in flight (5 ms delay plus a 50 ms clog), so no frame of the old
/// domain reaches the new one. A real restart takes longer still.
const RESTART_MIN_MS: u64 = 100;
const RESTART_MAX_MS: u64 = 300;
/// No failure this close to the end of the safety phase: the restarted
/// domain gets time to form while faults still run.
const FAILURE_MARGIN_MS: u64 = 300;
/// An armed failure strikes at the latest this long after it was armed.
const TRAP_WAIT_MS: u64 = 200;
/// ... and at most this long after the SafeSend delivery that springs it:
/// the other members' acks and syncs of it may still be under way.
const TRAP_DELAY_MAX_US: u64 = 1_000;

impl Simulation {
    /// Queue the mix's total failures: the first in the first half of the
    /// safety phase, a second one 600-900 ms later if it fits. Half of them
    /// strike at that instant, half right after the next SafeSend delivery
    /// (where a lost record would show), as a power cut lands anywhere.
    pub(super) fn schedule_total_failures(&mut self) {
        let count = self.mix.total_failures(&mut self.rng_total);
        let last = self.options.safety_ms.saturating_sub(FAILURE_MARGIN_MS);
        let first_max = (self.options.safety_ms / 2).max(400);
        let mut at = self.rng_total.range_inclusive(400, first_max);
        for _ in 0..count {
            if at > last {
                break;
            }
            let event = if self.rng_total.index(2) == 0 {
                SimEvent::TotalFailure
            } else {
                SimEvent::ArmTotalFailure
            };
            self.queue.push(at * NANOS_PER_MS, event);
            at += self.rng_total.range_inclusive(600, 900);
        }
    }

    pub(super) fn arm_total_failure(&mut self) {
        let delay_ns = self.rng_total.range_inclusive(0, TRAP_DELAY_MAX_US) * 1_000;
        self.failure_trap = Some(Trap {
            deadline: self.now + TRAP_WAIT_MS * NANOS_PER_MS,
            delay_ns,
        });
    }

    /// After a node's step: strike the armed failure if the step delivered
    /// a SafeSend (or the trap waited long enough).
    pub(super) fn spring_failure_trap(&mut self) {
        let Some(trap) = self.failure_trap else {
            return;
        };
        if self.safe_delivered_at == Some(self.now) || self.now >= trap.deadline {
            self.failure_trap = None;
            self.queue
                .push(self.now + trap.delay_ns, SimEvent::TotalFailure);
        }
    }

    pub(super) fn total_failure(&mut self) {
        if self.phase != Phase::Safety {
            return;
        }
        if self.latest_view.is_none() {
            // A domain that has not formed again since the last failure:
            // crashing it would test the restart once more, nothing new.
            return self.note(
                None,
                "total failure skipped: no domain has formed yet".to_string(),
            );
        }
        self.stats.total_failures += 1;
        for index in 0..self.nodes.len() {
            if self.nodes[index].node.is_some() {
                self.crash(index);
            }
        }
        // The checkers cut the history here: what follows is a new domain.
        self.history.push(Record {
            time: self.now,
            node: None,
            member: osiris_core::MemberId::new(u32::MAX, 0),
            kind: RecordKind::TotalFailure,
        });
        if self.partition.take().is_some() {
            self.net.heal();
        }
        self.latest_view = None;
        self.pending_joiners.clear();
        self.leader_trap = None;
        self.bootstrapper = Some(self.rng_total.index(self.nodes.len()));
        self.starts_held_until = self.now + RESTART_MIN_MS * NANOS_PER_MS;
        for index in 0..self.nodes.len() {
            self.nodes[index].restart_pending = true;
            let delay = self
                .rng_total
                .range_inclusive(RESTART_MIN_MS, RESTART_MAX_MS);
            self.queue.push(
                self.now + delay * NANOS_PER_MS,
                SimEvent::Start { node: index },
            );
        }
    }
}
