//! Property 5: causal order, total order, SafeSend uniform agreement
//! (docs/ordering.md). FIFO order is part of `integrity`.
//!
//! * Causal: if a member had delivered m' when it sent a causal message m,
//!   every member that delivers both delivers m' first.
//! * Total order: any two members deliver the Ordered and Safe messages they
//!   both deliver in the same order. OrderedSend is not uniform (as in Isis2):
//!   an Ordered delivery counts only if the member survives that group view
//!   (installs a later view of it, leaves it gracefully, or is alive at the
//!   end); Safe deliveries always count.
//! * Uniform agreement: if any member delivers a Safe message in group view
//!   v, every member that installed v with state and installs a later view
//!   delivers it too.

use std::collections::{BTreeMap, BTreeSet};

use osiris_core::{GroupId, MemberId, SendKind, StopReason};

use super::{group_instances, Violation};
use crate::history::{group_label, MsgId, Record, RecordKind};

const NAME: &str = "ordering";

/// A group view of one group instance: (group, instance, view id).
type ViewKey = (GroupId, u32, u64);

/// One step of a member's group membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    View(ViewKey, bool),
    Left(GroupId),
}

#[derive(Default)]
struct Scan {
    /// Per member and group, the messages delivered in order.
    deliveries: BTreeMap<(MemberId, GroupId), Vec<MsgId>>,
    /// Causal sends: message, sender, group, deliveries the sender had made.
    causal: Vec<(u64, MsgId, MemberId, GroupId, usize)>,
    /// Per member and group, its current view.
    current: BTreeMap<(MemberId, GroupId), ViewKey>,
    /// Per member, in order, the views it installed (and whether it held
    /// state then) and the groups it left.
    installed: BTreeMap<MemberId, Vec<Step>>,
    /// Ordered and Safe deliveries: (time, member, group, msg, kind, view).
    total: Vec<(u64, MemberId, GroupId, MsgId, SendKind, ViewKey)>,
    /// Members that crashed, were excluded or were cut off (not a graceful end).
    ended: BTreeSet<MemberId>,
    /// (member, group) that left the group gracefully.
    left: BTreeSet<(MemberId, GroupId)>,
}

impl Scan {
    fn new(history: &[Record]) -> Scan {
        let instances = group_instances(history);
        let mut scan = Scan::default();
        for (position, record) in history.iter().enumerate() {
            let at = record.member;
            match &record.kind {
                RecordKind::GroupView { view, state } if view.members.contains(&at) => {
                    let key = (view.group, instances[position], view.id);
                    scan.current.insert((at, view.group), key);
                    scan.installed
                        .entry(at)
                        .or_default()
                        .push(Step::View(key, state.is_some()));
                }
                RecordKind::Delivered {
                    group,
                    msg: Some(msg),
                    kind,
                    ..
                } => {
                    scan.deliveries.entry((at, *group)).or_default().push(*msg);
                    let total = matches!(kind, SendKind::Ordered | SendKind::Safe);
                    if let (true, Some(view)) = (total, scan.current.get(&(at, *group))) {
                        scan.total
                            .push((record.time, at, *group, *msg, *kind, *view));
                    }
                }
                RecordKind::Sent {
                    group,
                    msg,
                    kind: SendKind::Causal,
                    ..
                } => {
                    let before = scan.deliveries.get(&(at, *group)).map_or(0, Vec::len);
                    scan.causal.push((record.time, *msg, at, *group, before));
                }
                RecordKind::GroupLeft { group } => {
                    scan.left.insert((at, *group));
                    scan.installed
                        .entry(at)
                        .or_default()
                        .push(Step::Left(*group));
                }
                RecordKind::Crashed
                | RecordKind::Stopped(StopReason::Disconnected | StopReason::Excluded) => {
                    scan.ended.insert(at);
                }
                RecordKind::Excluded { old_id, .. } => {
                    scan.ended.insert(*old_id);
                }
                _ => {}
            }
        }
        scan
    }

    /// What `member` did next in the group after installing `view`: its
    /// next view of the same instance (`Some(true)`), or leaving, or a view
    /// of another instance (`Some(false)`); None if nothing.
    fn next_step(&self, member: MemberId, view: ViewKey) -> Option<bool> {
        let steps = self.installed.get(&member)?;
        let at = steps
            .iter()
            .position(|step| matches!(step, Step::View(key, _) if *key == view))?;
        steps[at + 1..].iter().find_map(|step| match *step {
            Step::View((group, instance, id), _) if group == view.0 => {
                Some(instance == view.1 && id > view.2)
            }
            Step::Left(group) if group == view.0 => Some(false),
            _ => None,
        })
    }

    /// Whether `member` outlived group view `view` for the total order (see
    /// the module doc): a later view, a graceful leave (its promise carried
    /// what it had), or alive at the end.
    fn survived(&self, member: MemberId, view: ViewKey) -> bool {
        self.next_step(member, view) == Some(true)
            || self.left.contains(&(member, view.0))
            || !self.ended.contains(&member)
    }
}

fn flag(violations: &mut Vec<Violation>, time: u64, message: String) {
    violations.push(Violation {
        checker: NAME,
        time,
        message,
    });
}

fn positions(list: &[MsgId]) -> BTreeMap<MsgId, usize> {
    list.iter()
        .enumerate()
        .map(|(index, msg)| (*msg, index))
        .collect()
}

fn check_causal(scan: &Scan, violations: &mut Vec<Violation>) {
    let mut position_maps: BTreeMap<(MemberId, GroupId), BTreeMap<MsgId, usize>> = BTreeMap::new();
    for ((member, group), list) in &scan.deliveries {
        position_maps.insert((*member, *group), positions(list));
    }
    for (time, msg, sender, group, before) in &scan.causal {
        let causes = &scan
            .deliveries
            .get(&(*sender, *group))
            .map_or(&[][..], Vec::as_slice)[..*before];
        for ((member, in_group), at) in &position_maps {
            if in_group != group || member == sender {
                continue;
            }
            let Some(effect) = at.get(msg) else {
                continue;
            };
            let late = causes
                .iter()
                .find(|cause| at.get(cause).is_some_and(|position| position > effect));
            if let Some(cause) = late {
                let message = format!(
                    "{member} delivered causal {msg} in {} before {cause}, which {sender} had delivered before sending it",
                    group_label(*group)
                );
                flag(violations, *time, message);
            }
        }
    }
}

fn check_total(scan: &Scan, violations: &mut Vec<Violation>) {
    let mut orders: BTreeMap<(GroupId, MemberId), Vec<MsgId>> = BTreeMap::new();
    for (_, member, group, msg, kind, view) in &scan.total {
        if *kind == SendKind::Safe || scan.survived(*member, *view) {
            orders.entry((*group, *member)).or_default().push(*msg);
        }
    }
    let keys: Vec<(GroupId, MemberId)> = orders.keys().copied().collect();
    for (i, first) in keys.iter().enumerate() {
        for second in &keys[i + 1..] {
            if first.0 != second.0 {
                continue;
            }
            let other = positions(&orders[second]);
            let mut last: Option<(MsgId, usize)> = None;
            for msg in &orders[first] {
                let Some(&position) = other.get(msg) else {
                    continue;
                };
                if let Some((previous, previous_position)) = last {
                    if position < previous_position {
                        let message = format!(
                            "{} delivered {previous} before {msg} in {}, {} the other way round",
                            first.1,
                            group_label(first.0),
                            second.1
                        );
                        flag(violations, 0, message);
                        break;
                    }
                }
                last = Some((*msg, position));
            }
        }
    }
}

fn check_uniform(scan: &Scan, violations: &mut Vec<Violation>) {
    // Per view, each safe message with its first delivery.
    let mut safe: BTreeMap<ViewKey, BTreeMap<MsgId, (u64, MemberId)>> = BTreeMap::new();
    for (time, member, _, msg, kind, view) in &scan.total {
        if *kind == SendKind::Safe {
            let first = safe.entry(*view).or_default();
            first.entry(*msg).or_insert((*time, *member));
        }
    }
    for (member, steps) in &scan.installed {
        for step in steps {
            let Step::View(view, had_state) = step else {
                continue;
            };
            let Some(messages) = safe.get(view) else {
                continue;
            };
            // It survived v if the next thing it did in the group was to
            // install the next view (not to leave, crash or be excluded).
            let survived = scan.next_step(*member, *view) == Some(true);
            if !had_state || !survived {
                continue;
            }
            let delivered: BTreeSet<MsgId> = scan
                .deliveries
                .get(&(*member, view.0))
                .map(|list| list.iter().copied().collect())
                .unwrap_or_default();
            for (msg, (time, at)) in messages {
                if !delivered.contains(msg) {
                    let message = format!(
                        "{at} delivered safe {msg} in {} view #{}, but {member}, which survived that view, never did",
                        group_label(view.0),
                        view.2
                    );
                    flag(violations, *time, message);
                }
            }
        }
    }
}

pub fn check(history: &[Record]) -> Vec<Violation> {
    let scan = Scan::new(history);
    let mut violations = Vec::new();
    check_causal(&scan, &mut violations);
    check_total(&scan, &mut violations);
    check_uniform(&scan, &mut violations);
    violations
}

#[cfg(test)]
mod tests {
    use osiris_core::SendKind;

    use super::check;
    use crate::check::fixtures::*;
    use crate::history::RecordKind;

    #[test]
    fn flags_a_causal_message_delivered_before_its_cause() {
        let (a, b, c) = (member(1), member(2), member(3));
        let cause = msg(b, 1);
        let effect = msg(a, 1);
        let mut history = vec![
            group_view(0, a, 1, &[a, b, c]),
            group_view(0, b, 1, &[a, b, c]),
            group_view(0, c, 1, &[a, b, c]),
            sent(1, cause),
            delivered(2, a, cause),
            sent_kind(3, effect, SendKind::Causal),
        ];
        let good = [
            history.clone(),
            vec![
                delivered(4, c, cause),
                delivered_kind(5, c, effect, SendKind::Causal),
            ],
        ]
        .concat();
        assert!(check(&good).is_empty(), "{:?}", check(&good));
        history.extend([
            delivered_kind(4, c, effect, SendKind::Causal),
            delivered(5, c, cause),
        ]);
        let found = check(&history);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("causal"));
    }

    #[test]
    fn flags_two_members_that_disagree_on_the_total_order() {
        let (a, b) = (member(1), member(2));
        let (first, second) = (msg(a, 1), msg(b, 1));
        let base = vec![
            group_view(0, a, 1, &[a, b]),
            group_view(0, b, 1, &[a, b]),
            sent_kind(1, first, SendKind::Ordered),
            sent_kind(1, second, SendKind::Safe),
            delivered_kind(2, a, first, SendKind::Ordered),
            delivered_kind(3, a, second, SendKind::Safe),
        ];
        let agree = [
            base.clone(),
            vec![
                delivered_kind(2, b, first, SendKind::Ordered),
                delivered_kind(3, b, second, SendKind::Safe),
            ],
        ]
        .concat();
        assert!(check(&agree).is_empty(), "{:?}", check(&agree));
        let disagree = [
            base.clone(),
            vec![
                delivered_kind(2, b, second, SendKind::Safe),
                delivered_kind(3, b, first, SendKind::Ordered),
            ],
        ]
        .concat();
        assert_eq!(check(&disagree).len(), 1);
        // An Ordered delivery by a member that crashed in that view is not
        // uniform: it does not count.
        let crashed = [
            base,
            vec![
                record(4, a, RecordKind::Crashed),
                delivered_kind(2, b, second, SendKind::Safe),
                delivered_kind(3, b, first, SendKind::Ordered),
            ],
        ]
        .concat();
        assert!(check(&crashed).is_empty(), "{:?}", check(&crashed));
    }

    #[test]
    fn flags_a_safe_message_a_survivor_never_delivers() {
        let (a, b, c) = (member(1), member(2), member(3));
        let safe = msg(a, 1);
        let state = Some(Vec::new());
        let mut history = vec![
            group_view_full(0, a, 1, &[a, b, c], &[], state.clone()),
            group_view_full(0, b, 1, &[a, b, c], &[], state.clone()),
            group_view_full(0, c, 1, &[a, b, c], &[], state.clone()),
            sent_kind(1, safe, SendKind::Safe),
            delivered_kind(2, a, safe, SendKind::Safe),
            record(3, a, RecordKind::Crashed),
            delivered_kind(4, b, safe, SendKind::Safe),
            group_view_full(5, b, 2, &[b, c], &[], state.clone()),
            group_view_full(5, c, 2, &[b, c], &[], state),
        ];
        let found = check(&history);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("never did"));
        history.insert(7, delivered_kind(4, c, safe, SendKind::Safe));
        assert!(check(&history).is_empty());
    }
}
