//! Property 1, view agreement.
//!
//! * Any two members that install domain view `i` install the identical view
//!   (same ranked members, same addresses); any two members that install view
//!   `i` of a group install the identical group view (name, ranked members,
//!   joined, left and failed lists).
//! * Within one member incarnation, domain view ids grow by exactly one after
//!   its first view. Group view ids grow by exactly one while the member stays
//!   in the group; after it leaves and rejoins it may skip ids, but they never
//!   go back. Ids count per instance of a group (see `group_instances`): a
//!   group that lost its last member starts again from view 1.

use std::collections::BTreeMap;

use osiris_core::{DomainView, GroupId, GroupView, MemberId};

use super::Violation;
use crate::history::{group_label, Record, RecordKind};

const NAME: &str = "agreement";

#[derive(Default)]
struct State<'a> {
    domain_views: BTreeMap<u64, (&'a DomainView, MemberId)>,
    group_views: BTreeMap<(GroupId, u32, u64), (&'a GroupView, MemberId)>,
    domain_last: BTreeMap<MemberId, u64>,
    /// Per (member, group): instance, last view id, and whether membership is continuous.
    group_last: BTreeMap<(MemberId, GroupId), (u32, u64, bool)>,
    violations: Vec<Violation>,
}

impl<'a> State<'a> {
    fn flag(&mut self, time: u64, message: String) {
        self.violations.push(Violation {
            checker: NAME,
            time,
            message,
        });
    }

    fn domain_view(&mut self, record: &Record, view: &'a DomainView) {
        match self.domain_views.get(&view.id.0) {
            Some((first, first_member)) if *first != view => {
                let message = format!(
                    "domain view {} differs: {} installed {:?}, {} installed {:?}",
                    view.id.0, first_member, first.members, record.member, view.members
                );
                self.flag(record.time, message);
            }
            Some(_) => {}
            None => {
                self.domain_views.insert(view.id.0, (view, record.member));
            }
        }
        if let Some(last) = self.domain_last.insert(record.member, view.id.0) {
            if view.id.0 != last + 1 {
                let message = format!(
                    "{} installed domain view {} after {}",
                    record.member, view.id.0, last
                );
                self.flag(record.time, message);
            }
        }
    }

    fn group_view(&mut self, record: &Record, view: &'a GroupView, instance: u32) {
        let key = (view.group, instance, view.id);
        match self.group_views.get(&key) {
            Some((first, first_member)) if *first != view => {
                let message = format!(
                    "group {} view {} differs: {} installed {:?}, {} installed {:?}",
                    group_label(view.group),
                    view.id,
                    first_member,
                    first,
                    record.member,
                    view
                );
                self.flag(record.time, message);
            }
            Some(_) => {}
            None => {
                self.group_views.insert(key, (view, record.member));
            }
        }
        let is_member = view.members.contains(&record.member);
        let entry = (record.member, view.group);
        let last_seen = self
            .group_last
            .get(&entry)
            .copied()
            .filter(|(seen, _, _)| *seen == instance);
        if let Some((_, last, continuous)) = last_seen {
            let ok = if continuous {
                view.id == last + 1
            } else {
                view.id > last
            };
            if !ok {
                let message = format!(
                    "{} installed group {} view {} after {} ({})",
                    record.member,
                    group_label(view.group),
                    view.id,
                    last,
                    if continuous {
                        "must grow by one"
                    } else {
                        "must grow after a rejoin"
                    }
                );
                self.flag(record.time, message);
            }
        }
        self.group_last
            .insert(entry, (instance, view.id, is_member));
    }

    fn left(&mut self, member: MemberId, group: GroupId) {
        if let Some(entry) = self.group_last.get_mut(&(member, group)) {
            entry.2 = false;
        }
    }
}

pub fn check(history: &[Record]) -> Vec<Violation> {
    let mut state = State::default();
    let instances = super::group_instances(history);
    for (record, instance) in history.iter().zip(instances) {
        match &record.kind {
            RecordKind::DomainView(view) => state.domain_view(record, view),
            RecordKind::GroupView { view, .. } => state.group_view(record, view, instance),
            RecordKind::GroupLeft { group } => state.left(record.member, *group),
            _ => {}
        }
    }
    state.violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fixtures::*;

    #[test]
    fn accepts_agreeing_views() {
        let (a, b, c) = (member(0), member(1), member(2));
        let history = vec![
            domain_view(1, a, 1, &[a]),
            domain_view(2, a, 2, &[a, b]),
            domain_view(3, b, 2, &[a, b]),
            domain_view(4, b, 3, &[a, b, c]),
            domain_view(4, a, 3, &[a, b, c]),
            domain_view(5, c, 3, &[a, b, c]),
            group_view(6, a, 1, &[a]),
            group_view(7, a, 2, &[a, b]),
            group_view(7, b, 2, &[a, b]),
            record(8, b, RecordKind::GroupLeft { group: GROUP }),
            group_view(9, a, 3, &[a]),
            group_view(10, a, 4, &[a, b]),
            group_view(10, b, 4, &[a, b]),
            // Both leave: the group is gone; c creates it again from view 1.
            record(11, a, RecordKind::GroupLeft { group: GROUP }),
            group_view(11, b, 5, &[b]),
            record(12, b, RecordKind::Crashed),
            group_view(13, c, 1, &[c]),
            group_view(14, c, 2, &[c, a]),
            group_view(14, a, 2, &[c, a]),
        ];
        assert_eq!(check(&history), vec![]);
    }

    #[test]
    fn flags_disagreement_and_gaps() {
        let (a, b, c) = (member(0), member(1), member(2));
        let conflicting = vec![domain_view(1, a, 2, &[a, b]), domain_view(2, b, 2, &[b, a])];
        assert_eq!(check(&conflicting).len(), 1);
        let gap = vec![domain_view(1, a, 1, &[a]), domain_view(2, a, 3, &[a, c])];
        assert_eq!(check(&gap).len(), 1);
        let group_conflict = vec![
            group_view(1, a, 2, &[a, b]),
            group_view(2, b, 2, &[a, b, c]),
        ];
        assert_eq!(check(&group_conflict).len(), 1);
        // A second view 1 while a member of the first instance is alive is a conflict.
        let restarted_early = vec![group_view(1, a, 1, &[a]), group_view(2, b, 1, &[b])];
        assert_eq!(check(&restarted_early).len(), 1);
        let group_gap = vec![group_view(1, a, 1, &[a]), group_view(2, a, 3, &[a])];
        assert_eq!(check(&group_gap).len(), 1);
        let backwards = vec![
            group_view(1, a, 5, &[a]),
            record(2, a, RecordKind::GroupLeft { group: GROUP }),
            group_view(3, a, 4, &[a]),
        ];
        assert_eq!(check(&backwards).len(), 1);
    }
}
