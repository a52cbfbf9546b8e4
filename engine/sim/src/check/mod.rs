//! Virtual-synchrony checkers, one property per file (openraft style).
//!
//! Every checker is a pure function of the recorded history (and, for
//! liveness, of the final snapshot), so each is unit-tested on small synthetic
//! histories: one that violates the property and one that respects it.
//! The numbering follows ARCHITECTURE.md §7: `ordering` checks property 5
//! (causal, total order, SafeSend uniform agreement; FIFO is in `integrity`),
//! `query` checks that queries complete.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use osiris_core::{GroupId, GroupView, MemberId};

use crate::history::{Record, RecordKind};

pub mod agreement;
pub mod durability;
pub mod integrity;
pub mod liveness;
pub mod ordering;
pub mod primary_partition;
pub mod query;
pub mod state_transfer;
pub mod view_synchrony;

pub use liveness::{FinalNode, FinalSnapshot};

/// One broken property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Which checker found it (the file name under `check/`).
    pub checker: &'static str,
    /// Virtual time (ns) of the record that exposed it.
    pub time: u64,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{}] at {:.3} ms: {}",
            self.checker,
            self.time as f64 / 1e6,
            self.message
        )
    }
}

/// Violations past this many per checker are counted, not listed: one broken
/// invariant tends to cascade, and the first reports are the useful ones.
pub const VIOLATIONS_PER_CHECKER_MAX: usize = 20;

pub(crate) fn cap(mut violations: Vec<Violation>) -> Vec<Violation> {
    if violations.len() > VIOLATIONS_PER_CHECKER_MAX {
        let dropped = violations.len() - VIOLATIONS_PER_CHECKER_MAX;
        violations.truncate(VIOLATIONS_PER_CHECKER_MAX);
        let last = violations.last().expect("non-empty");
        let (checker, time) = (last.checker, last.time);
        violations.push(Violation {
            checker,
            time,
            message: format!("... and {dropped} more"),
        });
    }
    violations
}

#[derive(Default)]
struct Instance {
    number: u32,
    first_view: Option<GroupView>,
    max_id: u64,
    installed_first: BTreeSet<MemberId>,
}

/// The instance of its group that each `GroupView` record belongs to (0 for
/// other records).
///
/// The core forgets a group when its last member goes, and a later join
/// creates it again from view 1. So group view ids are unique per *instance*
/// of a group, not per name. A view 1 starts a new instance only if no member
/// of the current instance is still in it — counting only members that are in
/// the installer's current domain view (an excluded member that has not heard
/// of its exclusion yet is no longer in the group). Any other repeated view 1
/// stays in the current instance, where `agreement` flags it.
pub(crate) fn group_instances(history: &[Record]) -> Vec<u32> {
    let mut result = vec![0; history.len()];
    let mut instances: BTreeMap<GroupId, Instance> = BTreeMap::new();
    let mut live: BTreeMap<GroupId, BTreeSet<MemberId>> = BTreeMap::new();
    let mut domains: BTreeMap<MemberId, BTreeSet<MemberId>> = BTreeMap::new();
    for (position, record) in history.iter().enumerate() {
        let at = record.member;
        match &record.kind {
            RecordKind::DomainView(view) => {
                domains.insert(at, view.members.iter().map(|info| info.id).collect());
            }
            RecordKind::GroupView { view, .. } => {
                let instance = instances.entry(view.group).or_default();
                let members = live.entry(view.group).or_default();
                if view.id == 1 && instance.max_id > 0 {
                    let continuation = instance.max_id == 1
                        && instance.first_view.as_ref() == Some(view)
                        && !instance.installed_first.contains(&at);
                    let domain = domains.get(&at);
                    let old_member_alive = members.iter().any(|member| {
                        !view.members.contains(member)
                            && domain.is_none_or(|domain| domain.contains(member))
                    });
                    if !continuation && !old_member_alive {
                        *instance = Instance {
                            number: instance.number + 1,
                            ..Instance::default()
                        };
                    }
                }
                if view.id == 1 {
                    instance.first_view.get_or_insert_with(|| view.clone());
                    instance.installed_first.insert(at);
                }
                instance.max_id = instance.max_id.max(view.id);
                result[position] = instance.number;
                if view.members.contains(&at) {
                    members.insert(at);
                } else {
                    members.remove(&at);
                }
            }
            RecordKind::GroupLeft { group } => {
                live.entry(*group).or_default().remove(&at);
            }
            RecordKind::Excluded { .. } | RecordKind::Crashed | RecordKind::Stopped(_) => {
                live.values_mut().for_each(|members| {
                    members.remove(&at);
                });
            }
            _ => {}
        }
    }
    result
}

/// Run every safety checker over the history, then liveness over the snapshot.
///
/// A total failure ends a domain: every member incarnation is gone and the
/// restarted nodes found a new domain whose view ids start again at 1. So
/// each checker but `durability` (which compares the two sides) reads each
/// domain's history on its own, and liveness reads the last one.
pub fn check_all(history: &[Record], last: Option<&FinalSnapshot>) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut per_checker: [Vec<Violation>; 7] = Default::default();
    let mut domain = history;
    for era in history.split(|record| record.kind == RecordKind::TotalFailure) {
        per_checker[0].extend(agreement::check(era));
        per_checker[1].extend(primary_partition::check(era));
        per_checker[2].extend(view_synchrony::check(era));
        per_checker[3].extend(integrity::check(era));
        per_checker[4].extend(state_transfer::check(era));
        per_checker[5].extend(ordering::check(era));
        per_checker[6].extend(query::check(era));
        domain = era;
    }
    for found in per_checker {
        violations.extend(cap(found));
    }
    violations.extend(cap(durability::check(history)));
    if let Some(snapshot) = last {
        violations.extend(cap(liveness::check(domain, snapshot)));
    }
    violations
}

/// Builders for synthetic histories in the checkers' unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use osiris_core::{DomainView, GroupId, GroupView, MemberId, MemberInfo, SendKind, ViewId};

    use crate::app::{encode_payload, GroupState};
    use crate::history::{fnv1a, MsgId, Record, RecordKind};

    pub const GROUP: GroupId = GroupId(0xabc);

    pub fn member(node: u32) -> MemberId {
        MemberId::new(node, 1)
    }

    pub fn record(time: u64, at: MemberId, kind: RecordKind) -> Record {
        Record {
            time,
            node: Some(at.node.0 as usize),
            member: at,
            kind,
        }
    }

    pub fn domain_view(time: u64, at: MemberId, id: u64, members: &[MemberId]) -> Record {
        let members = members
            .iter()
            .map(|id| MemberInfo {
                id: *id,
                addr: format!("n{}", id.node.0),
            })
            .collect();
        record(
            time,
            at,
            RecordKind::DomainView(DomainView {
                id: ViewId(id),
                members,
            }),
        )
    }

    pub fn group_view_full(
        time: u64,
        at: MemberId,
        id: u64,
        members: &[MemberId],
        joined: &[MemberId],
        state: Option<Vec<u8>>,
    ) -> Record {
        let view = GroupView {
            group: GROUP,
            name: "g0".into(),
            id,
            members: members.to_vec(),
            joined: joined.to_vec(),
            left: vec![],
            failed: vec![],
        };
        record(time, at, RecordKind::GroupView { view, state })
    }

    pub fn group_view(time: u64, at: MemberId, id: u64, members: &[MemberId]) -> Record {
        group_view_full(time, at, id, members, &[], None)
    }

    pub fn payload(msg: MsgId) -> Vec<u8> {
        let mut out = Vec::new();
        encode_payload(msg, false, &[1, 2, 3], &mut out);
        out
    }

    pub fn msg(sender: MemberId, counter: u64) -> MsgId {
        MsgId { sender, counter }
    }

    pub fn sent(time: u64, id: MsgId) -> Record {
        sent_kind(time, id, SendKind::Fifo)
    }

    pub fn sent_kind(time: u64, id: MsgId, kind: SendKind) -> Record {
        let kind = RecordKind::Sent {
            group: GROUP,
            msg: id,
            payload_hash: fnv1a(&payload(id)),
            probe: false,
            kind,
        };
        record(time, id.sender, kind)
    }

    pub fn delivered(time: u64, at: MemberId, id: MsgId) -> Record {
        delivered_kind(time, at, id, SendKind::Fifo)
    }

    pub fn delivered_kind(time: u64, at: MemberId, id: MsgId, kind: SendKind) -> Record {
        let kind = RecordKind::Delivered {
            group: GROUP,
            sender: id.sender,
            msg: Some(id),
            payload_hash: fnv1a(&payload(id)),
            probe: false,
            kind,
        };
        record(time, at, kind)
    }

    pub fn loaded(time: u64, at: MemberId, state: Vec<u8>, fresh: bool) -> Record {
        record(
            time,
            at,
            RecordKind::StateLoaded {
                group: GROUP,
                state,
                fresh,
                replaced: None,
            },
        )
    }

    /// The app state after delivering `msgs` in order.
    pub fn state_of(msgs: &[MsgId]) -> Vec<u8> {
        let mut state = GroupState::default();
        for id in msgs {
            state.apply(id.sender, &payload(*id));
        }
        state.serialize()
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use super::*;

    #[test]
    fn a_group_restarts_from_view_1_only_when_its_members_are_gone() {
        let (a, b, c) = (member(0), member(1), member(2));
        let history = vec![
            domain_view(1, a, 1, &[a, b, c]),
            domain_view(1, b, 1, &[a, b, c]),
            domain_view(1, c, 1, &[a, b, c]),
            group_view(2, a, 1, &[a, b]),
            group_view(2, b, 1, &[a, b]),
            record(3, a, RecordKind::GroupLeft { group: GROUP }),
            group_view(3, b, 2, &[b]),
            // b (the last member) is still alive: a view 1 now is the old instance.
            group_view(4, c, 1, &[c]),
            record(5, b, RecordKind::Crashed),
            // Now the group is gone: the next view 1 starts instance 1, and a
            // second member installing the same view 1 stays in it.
            group_view(6, c, 1, &[c, a]),
            group_view(6, a, 1, &[c, a]),
            group_view(7, a, 2, &[c, a]),
        ];
        let instances: Vec<u32> = group_instances(&history)
            .into_iter()
            .zip(&history)
            .filter(|(_, record)| matches!(record.kind, RecordKind::GroupView { .. }))
            .map(|(instance, _)| instance)
            .collect();
        assert_eq!(instances, [0, 0, 0, 0, 1, 1, 1]);
    }
}
