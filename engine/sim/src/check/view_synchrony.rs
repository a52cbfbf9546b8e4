//! Property 3, view synchrony.
//!
//! Two members that both install group view `i+1` directly after group view
//! `i` delivered the same SET of messages in view `i`. A member that was
//! still loading the group's state when view `i` began (a joiner in state
//! transfer) is exempt for view `i`: the state it loads covers the messages
//! of view `i` delivered before the transfer's boundary (a group view can span
//! several domain epochs, and a restarted transfer starts at a later one).
//! Whether that state is right is `state_transfer`'s job.

use std::collections::{BTreeMap, BTreeSet};

use osiris_core::{GroupId, MemberId};

use super::Violation;
use crate::history::{group_label, Record, RecordKind};

const NAME: &str = "view_synchrony";

/// A delivered message: sender, counter (u64::MAX if undecodable), payload hash.
type DeliveryKey = (MemberId, u64, u64);

struct Segment {
    instance: u32,
    view_id: u64,
    /// The member held state when the view was installed.
    loaded_at_start: bool,
    delivered: BTreeSet<DeliveryKey>,
}

#[derive(Default)]
struct Membership {
    current: Option<Segment>,
    loaded: bool,
}

/// A view `i` segment that ended with the install of `i+1` at a loaded member.
struct Closed {
    member: MemberId,
    delivered: BTreeSet<DeliveryKey>,
    time: u64,
}

fn describe(keys: impl Iterator<Item = DeliveryKey>) -> String {
    let shown: Vec<String> = keys
        .take(6)
        .map(|(sender, counter, _)| format!("{sender}#{counter}"))
        .collect();
    shown.join(" ")
}

pub fn check(history: &[Record]) -> Vec<Violation> {
    let mut members: BTreeMap<(MemberId, GroupId), Membership> = BTreeMap::new();
    let mut closed: BTreeMap<(GroupId, u32, u64), Vec<Closed>> = BTreeMap::new();
    let instances = super::group_instances(history);
    for (record, instance) in history.iter().zip(instances) {
        match &record.kind {
            RecordKind::GroupView { view, .. } => {
                let membership = members.entry((record.member, view.group)).or_default();
                if let Some(segment) = membership.current.take() {
                    if view.id == segment.view_id + 1
                        && segment.instance == instance
                        && segment.loaded_at_start
                    {
                        closed
                            .entry((view.group, instance, segment.view_id))
                            .or_default()
                            .push(Closed {
                                member: record.member,
                                delivered: segment.delivered,
                                time: record.time,
                            });
                    }
                }
                if view.members.contains(&record.member) {
                    let loaded_at_start = membership.loaded;
                    membership.current = Some(Segment {
                        instance,
                        view_id: view.id,
                        loaded_at_start,
                        delivered: BTreeSet::new(),
                    });
                } else {
                    membership.loaded = false;
                }
            }
            RecordKind::Delivered {
                group,
                sender,
                msg,
                payload_hash,
                ..
            } => {
                let membership = members.entry((record.member, *group)).or_default();
                if let Some(segment) = membership.current.as_mut() {
                    let counter = msg.map_or(u64::MAX, |id| id.counter);
                    segment.delivered.insert((*sender, counter, *payload_hash));
                }
            }
            RecordKind::StateLoaded { group, .. } => {
                members.entry((record.member, *group)).or_default().loaded = true;
            }
            RecordKind::GroupLeft { group } => {
                members.remove(&(record.member, *group));
            }
            RecordKind::Excluded { .. } | RecordKind::Crashed | RecordKind::Stopped(_) => {
                members.retain(|(member, _), _| *member != record.member);
            }
            _ => {}
        }
    }
    let mut violations = Vec::new();
    for ((group, _, view_id), segments) in &closed {
        let Some(first) = segments.first() else {
            continue;
        };
        for other in &segments[1..] {
            if other.delivered == first.delivered {
                continue;
            }
            let only_first = describe(first.delivered.difference(&other.delivered).copied());
            let only_other = describe(other.delivered.difference(&first.delivered).copied());
            let message = format!(
                "group {} view {view_id}: {} and {} both installed view {} but delivered different sets \
                 ({} vs {} messages; only at {}: [{only_first}]; only at {}: [{only_other}])",
                group_label(*group),
                first.member,
                other.member,
                view_id + 1,
                first.delivered.len(),
                other.delivered.len(),
                first.member,
                other.member,
            );
            violations.push(Violation {
                checker: NAME,
                time: other.time.max(first.time),
                message,
            });
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fixtures::*;

    fn base() -> (MemberId, MemberId, MemberId, Vec<Record>) {
        let (a, b, c) = (member(0), member(1), member(2));
        let history = vec![
            group_view_full(1, a, 1, &[a], &[a], None),
            loaded(2, a, state_of(&[]), true),
            group_view_full(3, a, 2, &[a, b], &[b], None),
            group_view_full(3, b, 2, &[a, b], &[b], None),
            loaded(4, b, state_of(&[]), false),
            sent(5, msg(a, 1)),
            delivered(6, a, msg(a, 1)),
        ];
        (a, b, c, history)
    }

    #[test]
    fn accepts_equal_sets_in_any_order() {
        let (a, b, c, mut history) = base();
        history.extend([
            sent(7, msg(b, 1)),
            delivered(8, b, msg(b, 1)),
            delivered(9, b, msg(a, 1)),
            delivered(9, a, msg(b, 1)),
            group_view(10, a, 3, &[a, b, c]),
            group_view(11, b, 3, &[a, b, c]),
            // c joined in view 3 and never loaded: exempt for view 3 (and 4).
            group_view(11, c, 3, &[a, b, c]),
            sent(12, msg(a, 2)),
            delivered(12, a, msg(a, 2)),
            delivered(12, b, msg(a, 2)),
            group_view(13, a, 4, &[a, b, c]),
            group_view(13, b, 4, &[a, b, c]),
            group_view(13, c, 4, &[a, b, c]),
        ]);
        assert_eq!(check(&history), vec![]);
    }

    #[test]
    fn flags_a_survivor_that_missed_a_message() {
        let (a, b, _, mut history) = base();
        history.extend([
            delivered(7, b, msg(a, 1)),
            group_view(10, a, 3, &[a, b]),
            group_view(11, b, 3, &[a, b]),
            sent(12, msg(a, 2)),
            delivered(12, a, msg(a, 2)),
            group_view(13, a, 4, &[a, b]),
            group_view(14, b, 4, &[a, b]),
        ]);
        let violations = check(&history);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].message.contains("n0.1#2"));
    }

    #[test]
    fn a_member_that_leaves_is_not_compared() {
        let (a, b, _, mut history) = base();
        history.extend([
            record(9, b, RecordKind::GroupLeft { group: GROUP }),
            group_view(10, a, 3, &[a]),
        ]);
        assert_eq!(check(&history), vec![]);
    }
}
