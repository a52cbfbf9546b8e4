//! Durable mode's disks: one `SimDisk` per node and durable group, kept
//! outside the `Node` so that it survives the node's crashes, as a disk
//! outlives a process (docs/durable-log.md, "For the protocol integrator").
//!
//! After every step the node's log records are appended (`poll_persist`).
//! A sync follows after a seeded delay, as an fsync takes time; only then
//! does the node hear `persisted`, and so acknowledge. When the node says
//! events must wait for the disk (`must_persist_before_events`, a flush
//! delivered SafeSends), the sync happens before the next `poll_event`.
//! A crash hands each disk a seed that decides what becomes of its
//! unsynced bytes; a restart recovers the log, rebuilds the SafeSend
//! sequence, records it, rewrites the log to it and only then joins.

use std::collections::BTreeMap;

use osiris_core::durable::{encode_recovered, recover, RecoveredMessage};
use osiris_core::{GroupId, Node};
use osiris_log::{LogStore, Lsn, SimDisk, Tail};

use super::{SimEvent, Simulation};
use crate::app::decode_payload;
use crate::history::{fnv1a, group_label, RecordKind, RecoveredEntry};

/// One durable group's log at one node.
#[derive(Debug)]
struct GroupLog {
    disk: SimDisk,
    /// Records appended since the current `Node` was created: the core
    /// numbers `persisted` over its own lifetime, not the disk's.
    appended: u64,
    synced: u64,
}

/// A node's disks, one per durable group (none in a run that is not durable).
#[derive(Debug, Default)]
pub(crate) struct NodeLogs {
    logs: BTreeMap<GroupId, GroupLog>,
    /// A `Sync` is queued for this node.
    sync_queued: bool,
}

impl NodeLogs {
    /// Fresh, empty logs for `groups`; `seed` names the disks' file ids.
    pub fn create(node: usize, groups: &[GroupId], seed: u64) -> NodeLogs {
        let logs = groups
            .iter()
            .enumerate()
            .map(|(position, group)| {
                let name = format!("n{node}-{}", group_label(*group));
                let disk = SimDisk::new(&name, seed ^ position as u64);
                let log = GroupLog {
                    disk,
                    appended: 0,
                    synced: 0,
                };
                (*group, log)
            })
            .collect();
        NodeLogs {
            logs,
            sync_queued: false,
        }
    }

    fn unsynced(&self) -> bool {
        self.logs.values().any(|log| log.appended > log.synced)
    }
}

impl Simulation {
    /// Append every record the node hands out to its group's disk.
    fn append_records(&mut self, index: usize) {
        let sim = &mut self.nodes[index];
        let Some(node) = sim.node.as_mut() else {
            return;
        };
        let mut failure = None;
        while let Some((group, record)) = node.poll_persist() {
            let Some(log) = sim.logs.logs.get_mut(&group) else {
                failure = Some(format!(
                    "n{index} handed out a record of {}, which is not durable",
                    group_label(group)
                ));
                continue;
            };
            if let Err(error) = log.disk.append(&record) {
                failure = Some(format!("n{index}: append failed: {error}"));
                continue;
            }
            log.appended += 1;
            self.stats.log_records += 1;
        }
        if let Some(message) = failure {
            self.sim_violation("sim", message);
        }
    }

    /// Sync every disk of the node and tell the node what is durable.
    fn sync_logs(&mut self, index: usize) {
        let sim = &mut self.nodes[index];
        sim.logs.sync_queued = false;
        let Some(node) = sim.node.as_mut() else {
            return;
        };
        let mut failure = None;
        for (group, log) in &mut sim.logs.logs {
            if log.appended == log.synced {
                continue;
            }
            if let Err(error) = log.disk.sync() {
                failure = Some(format!("n{index}: sync failed: {error}"));
                continue;
            }
            self.stats.log_syncs += 1;
            log.synced = log.appended;
            node.persisted(*group, log.synced);
        }
        if let Some(message) = failure {
            self.sim_violation("sim", message);
        }
    }

    /// Before the next `poll_event`: log what the node handed out, and sync
    /// now if events may not reach the application before the disk has them.
    pub(super) fn persist_before_events(&mut self, index: usize) {
        if self.nodes[index].logs.logs.is_empty() {
            return;
        }
        self.append_records(index);
        let must = self.nodes[index]
            .node
            .as_ref()
            .is_some_and(Node::must_persist_before_events);
        if must {
            self.sync_logs(index);
        }
    }

    /// When the node is idle: queue a sync, a seeded fsync latency from now,
    /// if anything is unsynced.
    pub(super) fn queue_sync(&mut self, index: usize) {
        if self.nodes[index].logs.logs.is_empty() {
            return;
        }
        self.append_records(index);
        let sim = &self.nodes[index];
        if sim.logs.sync_queued || !sim.logs.unsynced() {
            return;
        }
        let delay = self.rng_disk.range_inclusive(0, self.sync_delay_max_ns);
        let life = sim.life;
        self.nodes[index].logs.sync_queued = true;
        self.queue
            .push(self.now + delay, SimEvent::Sync { node: index, life });
    }

    pub(super) fn sync_due(&mut self, index: usize, life: u64) {
        if self.nodes[index].life != life || self.nodes[index].node.is_none() {
            return;
        }
        self.sync_logs(index);
        self.drain(index);
    }

    /// The machine went down: each disk keeps what was synced and, by a
    /// seeded choice, some, all or none of the rest.
    pub(super) fn crash_logs(&mut self, index: usize) {
        let mut reports = Vec::new();
        let sim = &mut self.nodes[index];
        sim.logs.sync_queued = false;
        for (group, log) in &mut sim.logs.logs {
            let report = log.disk.crash(self.rng_disk.next_u64());
            if report.unsynced_bytes > 0 {
                reports.push(format!("disk of {}: {report:?}", group_label(*group)));
            }
        }
        for text in reports {
            self.note(Some(index), text);
        }
    }

    /// At a (re)start, before the node joins anything: recover each log,
    /// rebuild its SafeSend sequence, rewrite the log to that sequence and
    /// put the group in durable mode. Returns the sequences to record.
    pub(super) fn open_logs(&mut self, index: usize, node: &mut Node) -> Vec<RecordKind> {
        let mut recovered = Vec::new();
        let mut notes = Vec::new();
        let mut failures = Vec::new();
        // A sync queued by the previous life was dropped with it.
        self.nodes[index].logs.sync_queued = false;
        for (group, log) in &mut self.nodes[index].logs.logs {
            log.appended = 0;
            log.synced = 0;
            node.set_durable(*group);
            let sequence = match rebuild(&mut log.disk, &mut notes) {
                Ok(sequence) => sequence,
                Err(error) => {
                    failures.push(format!(
                        "n{index}: the log of {} does not recover: {error}",
                        group_label(*group)
                    ));
                    Vec::new()
                }
            };
            let messages = sequence
                .iter()
                .map(|message| RecoveredEntry {
                    sender: message.sender,
                    msg: decode_payload(&message.payload).map(|(msg, _)| msg),
                    payload_hash: fnv1a(&message.payload),
                })
                .collect();
            recovered.push(RecordKind::Recovered {
                group: *group,
                messages,
            });
        }
        for text in notes {
            self.note(Some(index), text);
        }
        for message in failures {
            self.sim_violation("durability", message);
        }
        recovered
    }
}

/// Restart semantics (docs/ordering.md): open the log, rebuild the
/// sequence, and rewrite the log to it, durable before the node joins.
fn rebuild(disk: &mut SimDisk, notes: &mut Vec<String>) -> Result<Vec<RecoveredMessage>, String> {
    let recovery = disk.recover().map_err(|error| error.to_string())?;
    if let Tail::Truncated(truncation) = &recovery.tail {
        notes.push(truncation.to_string());
    }
    let sequence = recover(recovery.records.iter().map(Vec::as_slice))
        .map_err(|error| format!("undecodable record: {error}"))?;
    let records: Vec<Vec<u8>> = sequence.iter().map(encode_recovered).collect();
    let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
    disk.rewrite(Lsn::FIRST, &slices)
        .map_err(|error| format!("rewrite failed: {error}"))?;
    Ok(sequence)
}
