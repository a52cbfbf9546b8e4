//! Property 7, liveness: once faults stop, a majority is connected and every
//! crashed or stopped node has been restarted, the system settles.
//!
//! At the end of the run:
//! * every running node is a `Member` of the same domain view, and that view
//!   contains exactly the running nodes (their current incarnations);
//! * every running node is in exactly the groups it intends to be in, and the
//!   members of each group agree on its view, which lists exactly the running
//!   nodes that intend to be in it;
//! * every probe (a message sent after the settle period) was delivered by
//!   every member of its group's final view that was in the group when the
//!   probe was sent; and every probe could be sent at all;
//! * a `leave` completes as a leave: the member does not come back as a new
//!   incarnation through an exclusion (it may still crash or be cut off).

use std::collections::{BTreeMap, BTreeSet};

use osiris_core::{DomainView, GroupId, GroupView, MemberId, Status};

use super::Violation;
use crate::history::{group_label, MsgId, Record, RecordKind};

const NAME: &str = "liveness";

/// One node at the end of a run, as its `Node` getters and the app report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalNode {
    pub node: usize,
    /// A `Node` exists for it (it was not left crashed).
    pub running: bool,
    pub member: MemberId,
    pub status: Status,
    pub domain_view: Option<DomainView>,
    pub intended: BTreeSet<GroupId>,
    /// The core's view of every group this node is a member of.
    pub groups: BTreeMap<GroupId, GroupView>,
}

/// The state of the whole system when the run ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FinalSnapshot {
    pub time: u64,
    pub nodes: Vec<FinalNode>,
    /// Probes the workload could not get `send` to accept before the end.
    pub unsent_probes: Vec<String>,
}

fn flag(violations: &mut Vec<Violation>, time: u64, message: String) {
    violations.push(Violation {
        checker: NAME,
        time,
        message,
    });
}

fn check_domain(snapshot: &FinalSnapshot, violations: &mut Vec<Violation>) {
    let running: Vec<&FinalNode> = snapshot.nodes.iter().filter(|node| node.running).collect();
    let expected: BTreeSet<MemberId> = running.iter().map(|node| node.member).collect();
    for node in &running {
        if node.status != Status::Member {
            let message = format!(
                "n{} ({}) ended {:?}, not a member",
                node.node, node.member, node.status
            );
            flag(violations, snapshot.time, message);
            continue;
        }
        let Some(view) = &node.domain_view else {
            flag(
                violations,
                snapshot.time,
                format!("n{} is a member without a domain view", node.node),
            );
            continue;
        };
        let members: BTreeSet<MemberId> = view.members.iter().map(|info| info.id).collect();
        if members != expected {
            let message = format!(
                "n{} ended in domain view {} {:?}, expected exactly the running members {:?}",
                node.node, view.id.0, members, expected
            );
            flag(violations, snapshot.time, message);
        }
    }
}

fn check_groups(snapshot: &FinalSnapshot, violations: &mut Vec<Violation>) {
    let mut intending: BTreeMap<GroupId, BTreeSet<MemberId>> = BTreeMap::new();
    let mut final_views: BTreeMap<GroupId, (usize, &GroupView)> = BTreeMap::new();
    for node in snapshot
        .nodes
        .iter()
        .filter(|node| node.running && node.status == Status::Member)
    {
        for group in &node.intended {
            intending.entry(*group).or_default().insert(node.member);
        }
        let joined: BTreeSet<GroupId> = node.groups.keys().copied().collect();
        if joined != node.intended {
            let labels =
                |set: &BTreeSet<GroupId>| set.iter().map(|g| group_label(*g)).collect::<Vec<_>>();
            let message = format!(
                "n{} is in groups {:?} but intends {:?}",
                node.node,
                labels(&joined),
                labels(&node.intended)
            );
            flag(violations, snapshot.time, message);
        }
        for (group, view) in &node.groups {
            match final_views.get(group) {
                None => {
                    final_views.insert(*group, (node.node, view));
                }
                Some((other, first)) if first.id != view.id || first.members != view.members => {
                    let message = format!(
                        "group {} did not settle: n{other} has view {} {:?}, n{} has view {} {:?}",
                        group_label(*group),
                        first.id,
                        first.members,
                        node.node,
                        view.id,
                        view.members
                    );
                    flag(violations, snapshot.time, message);
                }
                Some(_) => {}
            }
        }
    }
    for (group, (node, view)) in &final_views {
        let members: BTreeSet<MemberId> = view.members.iter().copied().collect();
        let expected = intending.get(group).cloned().unwrap_or_default();
        if members != expected {
            let message = format!(
                "group {} final view {} (at n{node}) is {:?}, expected the running members that intend it {:?}",
                group_label(*group),
                view.id,
                members,
                expected
            );
            flag(violations, snapshot.time, message);
        }
    }
}

fn check_probes(history: &[Record], snapshot: &FinalSnapshot, violations: &mut Vec<Violation>) {
    // Since when each member has been continuously in each group.
    let mut since: BTreeMap<(MemberId, GroupId), u64> = BTreeMap::new();
    let mut probes: Vec<(MsgId, GroupId, u64)> = Vec::new();
    let mut delivered: BTreeSet<(MemberId, MsgId)> = BTreeSet::new();
    for record in history {
        match &record.kind {
            RecordKind::GroupView { view, .. } if view.members.contains(&record.member) => {
                since
                    .entry((record.member, view.group))
                    .or_insert(record.time);
            }
            RecordKind::GroupView { view, .. } => {
                since.remove(&(record.member, view.group));
            }
            RecordKind::GroupLeft { group } => {
                since.remove(&(record.member, *group));
            }
            RecordKind::Excluded { .. } => since.retain(|(member, _), _| *member != record.member),
            RecordKind::Sent {
                group,
                msg,
                probe: true,
                ..
            } => probes.push((*msg, *group, record.time)),
            RecordKind::Delivered {
                msg: Some(msg),
                probe: true,
                ..
            } => {
                delivered.insert((record.member, *msg));
            }
            _ => {}
        }
    }
    let mut final_members: BTreeMap<GroupId, Vec<MemberId>> = BTreeMap::new();
    for node in snapshot.nodes.iter().filter(|node| node.running) {
        for (group, view) in &node.groups {
            final_members
                .entry(*group)
                .or_insert_with(|| view.members.clone());
        }
    }
    for (msg, group, sent_at) in probes {
        for member in final_members
            .get(&group)
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            let was_member = since
                .get(&(*member, group))
                .is_some_and(|start| *start <= sent_at);
            if was_member && !delivered.contains(&(*member, msg)) {
                let message = format!(
                    "probe {msg} in {} was never delivered at {member}",
                    group_label(group)
                );
                flag(violations, snapshot.time, message);
            }
        }
    }
    for probe in &snapshot.unsent_probes {
        flag(
            violations,
            snapshot.time,
            format!("probe could not be sent: {probe}"),
        );
    }
}

fn check_leaves(history: &[Record], violations: &mut Vec<Violation>) {
    let mut leaving: BTreeSet<MemberId> = BTreeSet::new();
    for record in history {
        match &record.kind {
            RecordKind::LeaveRequested => {
                leaving.insert(record.member);
            }
            RecordKind::Excluded {
                old_id,
                new_id: Some(new_id),
            } if leaving.remove(old_id) => {
                let message =
                    format!("{old_id} asked to leave but was excluded and rejoined as {new_id}");
                flag(violations, record.time, message);
            }
            RecordKind::Excluded { .. } | RecordKind::Stopped(_) | RecordKind::Crashed => {
                leaving.remove(&record.member);
            }
            _ => {}
        }
    }
}

pub fn check(history: &[Record], snapshot: &FinalSnapshot) -> Vec<Violation> {
    let mut violations = Vec::new();
    check_leaves(history, &mut violations);
    check_domain(snapshot, &mut violations);
    check_groups(snapshot, &mut violations);
    check_probes(history, snapshot, &mut violations);
    violations
}

#[cfg(test)]
mod tests {
    use osiris_core::{MemberInfo, ViewId};

    use super::*;
    use crate::check::fixtures::*;

    fn settled() -> (Vec<Record>, FinalSnapshot) {
        let (a, b) = (member(0), member(1));
        let domain = DomainView {
            id: ViewId(4),
            members: [a, b]
                .iter()
                .map(|id| MemberInfo {
                    id: *id,
                    addr: format!("n{}", id.node.0),
                })
                .collect(),
        };
        let view = GroupView {
            group: GROUP,
            name: "g0".into(),
            id: 2,
            members: vec![a, b],
            joined: vec![b],
            left: vec![],
            failed: vec![],
        };
        let node = |index: usize, member: MemberId| FinalNode {
            node: index,
            running: true,
            member,
            status: Status::Member,
            domain_view: Some(domain.clone()),
            intended: [GROUP].into_iter().collect(),
            groups: [(GROUP, view.clone())].into_iter().collect(),
        };
        let probe = |time, id: MsgId| {
            let mut record = sent(time, id);
            if let RecordKind::Sent { probe, .. } = &mut record.kind {
                *probe = true;
            }
            record
        };
        let delivered_probe = |time, at, id: MsgId| {
            let mut record = delivered(time, at, id);
            if let RecordKind::Delivered { probe, .. } = &mut record.kind {
                *probe = true;
            }
            record
        };
        let history = vec![
            group_view(1, a, 2, &[a, b]),
            group_view(1, b, 2, &[a, b]),
            probe(2, msg(a, 1)),
            delivered_probe(3, a, msg(a, 1)),
            delivered_probe(3, b, msg(a, 1)),
        ];
        let snapshot = FinalSnapshot {
            time: 10,
            nodes: vec![node(0, a), node(1, b)],
            unsent_probes: vec![],
        };
        (history, snapshot)
    }

    #[test]
    fn accepts_a_settled_system() {
        let (history, snapshot) = settled();
        assert_eq!(check(&history, &snapshot), vec![]);
    }

    #[test]
    fn flags_stuck_nodes_split_views_missing_groups_and_lost_probes() {
        let (history, base) = settled();
        let mut stuck = base.clone();
        stuck.nodes[1].status = Status::Joining;
        assert!(check(&history, &stuck)
            .iter()
            .any(|v| v.message.contains("not a member")));

        let mut excluded = base.clone();
        excluded.nodes[1].member = MemberId::new(1, 2);
        assert!(check(&history, &excluded)
            .iter()
            .any(|v| v.message.contains("expected exactly")));

        let mut ungrouped = base.clone();
        ungrouped.nodes[1].groups.clear();
        assert!(check(&history, &ungrouped)
            .iter()
            .any(|v| v.message.contains("intends")));

        let lost = &history[..4];
        let violations = check(lost, &base);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].message.contains("never delivered at n1.1"));

        let mut unsent = base.clone();
        unsent.unsent_probes.push("n0 g0".into());
        assert_eq!(check(&history, &unsent).len(), 1);

        let a = member(0);
        let mut rejoined = history.clone();
        rejoined.push(record(5, a, RecordKind::LeaveRequested));
        rejoined.push(record(
            6,
            a,
            RecordKind::Excluded {
                old_id: a,
                new_id: Some(MemberId::new(0, 2)),
            },
        ));
        let violations = check(&rejoined, &base);
        assert!(
            violations
                .iter()
                .any(|v| v.message.contains("asked to leave")),
            "{violations:?}"
        );
        let mut left = history;
        left.push(record(5, a, RecordKind::LeaveRequested));
        left.push(record(
            6,
            a,
            RecordKind::Stopped(osiris_core::StopReason::Left),
        ));
        assert_eq!(check(&left, &base), vec![]);
    }
}
