//! Property 6, state transfer.
//!
//! * A joiner's loaded state equals the checkpoint a donor produced for the
//!   view that added it (`provide_checkpoint`, keyed by group and view id).
//! * `fresh` is only reported when no member of that view held state.
//! * A joiner delivers nothing in the group before its `StateLoaded`.
//! * A member loads state once per membership. A repeated `StateLoaded` that
//!   hands the member exactly the state it already holds is tolerated (and
//!   counted in the trace as a RELOAD); one that replaces a different state
//!   rolls the application back or forward and is a violation.
//! * At every group view install, all members that install that view and hold
//!   state hold EQUAL state. This catches a lost or extra message anywhere in
//!   the group's past, not only in the last view.
//!
//! Views are keyed by (group, instance, view id); see `group_instances`.

use std::collections::{BTreeMap, BTreeSet};

use osiris_core::{GroupId, MemberId};

use super::Violation;
use crate::history::{fnv1a, group_label, Record, RecordKind};

const NAME: &str = "state_transfer";

/// (group, instance, view id).
type ViewKey = (GroupId, u32, u64);

#[derive(Default)]
struct Membership {
    instance: u32,
    view_id: u64,
    loaded: bool,
}

#[derive(Default)]
struct State<'a> {
    /// Members that installed a view while holding state.
    holders: BTreeMap<ViewKey, BTreeSet<MemberId>>,
    /// Every donor's checkpoint per view.
    checkpoints: BTreeMap<ViewKey, Vec<(MemberId, &'a [u8])>>,
    installed: BTreeMap<ViewKey, (MemberId, &'a [u8])>,
    members: BTreeMap<(MemberId, GroupId), Membership>,
    violations: Vec<Violation>,
}

fn short(state: &[u8]) -> String {
    format!("{}B:{:08x}", state.len(), fnv1a(state) & 0xffff_ffff)
}

impl<'a> State<'a> {
    fn flag(&mut self, time: u64, message: String) {
        self.violations.push(Violation {
            checker: NAME,
            time,
            message,
        });
    }

    fn group_view(
        &mut self,
        record: &Record,
        key: ViewKey,
        is_member: bool,
        state: Option<&'a [u8]>,
    ) {
        let (group, instance, view_id) = key;
        if !is_member {
            self.members.remove(&(record.member, group));
            return;
        }
        let membership = self.members.entry((record.member, group)).or_default();
        if membership.instance != instance {
            *membership = Membership::default();
        }
        membership.instance = instance;
        membership.view_id = view_id;
        let Some(state) = state else { return };
        match self.installed.get(&key).copied() {
            None => {
                self.installed.insert(key, (record.member, state));
            }
            Some((first, first_state)) if first_state != state => {
                let message = format!(
                    "group {} view {view_id} installed with different states: {first} {} vs {} {}",
                    group_label(group),
                    short(first_state),
                    record.member,
                    short(state)
                );
                self.flag(record.time, message);
            }
            Some(_) => {}
        }
    }

    fn state_loaded(
        &mut self,
        record: &Record,
        group: GroupId,
        state: &[u8],
        fresh: bool,
        replaced: Option<&[u8]>,
    ) {
        let at = record.member;
        let label = group_label(group);
        let Some(membership) = self.members.get_mut(&(at, group)) else {
            return self.flag(
                record.time,
                format!("{at} loaded state of {label}, which it is not a member of"),
            );
        };
        if membership.loaded {
            if replaced != Some(state) {
                let message = format!(
                    "{at} loaded state of {label} again: {} replaced the {} it held",
                    short(state),
                    replaced.map_or_else(|| "nothing".to_string(), short)
                );
                self.flag(record.time, message);
            }
            return;
        }
        membership.loaded = true;
        let key = (group, membership.instance, membership.view_id);
        let view_id = key.2;
        if fresh {
            let holders = self.holders.get(&key);
            if let Some(holder) = holders.and_then(|set| set.iter().find(|holder| **holder != at)) {
                let message = format!(
                    "{at} got fresh state of {label} in view {view_id} but {holder} held state"
                );
                self.flag(record.time, message);
            }
            return;
        }
        let here = self.checkpoints.get(&key);
        if here.is_some_and(|list| list.iter().any(|(_, bytes)| *bytes == state)) {
            return;
        }
        if let Some(list) = here.filter(|list| !list.is_empty()) {
            let (donor, bytes) = list[0];
            let message = format!(
                "{at} loaded {} for {label} view {view_id} but donor {donor} checkpointed {}",
                short(state),
                short(bytes)
            );
            return self.flag(record.time, message);
        }
        // A transfer restarted after a view change may come from an earlier
        // request of this instance: accept any earlier checkpoint that matches.
        let earlier = self
            .checkpoints
            .range((group, key.1, 0)..=key)
            .any(|(_, list)| list.iter().any(|(_, bytes)| *bytes == state));
        if !earlier {
            let message = format!(
                "{at} loaded {} for {label} view {view_id}, which no donor checkpointed",
                short(state)
            );
            self.flag(record.time, message);
        }
    }

    fn delivered(&mut self, record: &Record, group: GroupId, shown: String) {
        if self
            .members
            .get(&(record.member, group))
            .is_some_and(|membership| !membership.loaded)
        {
            let message = format!(
                "{} delivered {shown} in {} before loading its state",
                record.member,
                group_label(group)
            );
            self.flag(record.time, message);
        }
    }

    fn current_key(&self, member: MemberId, group: GroupId, view_id: u64) -> ViewKey {
        let instance = self
            .members
            .get(&(member, group))
            .map_or(0, |membership| membership.instance);
        (group, instance, view_id)
    }
}

pub fn check(history: &[Record]) -> Vec<Violation> {
    let mut state = State::default();
    let instances = super::group_instances(history);
    for (record, instance) in history.iter().zip(&instances) {
        if let RecordKind::GroupView {
            view,
            state: Some(_),
        } = &record.kind
        {
            if view.members.contains(&record.member) {
                state
                    .holders
                    .entry((view.group, *instance, view.id))
                    .or_default()
                    .insert(record.member);
            }
        }
    }
    for (record, instance) in history.iter().zip(instances) {
        match &record.kind {
            RecordKind::GroupView { view, state: held } => {
                let is_member = view.members.contains(&record.member);
                state.group_view(
                    record,
                    (view.group, instance, view.id),
                    is_member,
                    held.as_deref(),
                );
            }
            RecordKind::CheckpointProvided {
                group,
                view_id,
                state: bytes,
            } => {
                let key = state.current_key(record.member, *group, *view_id);
                state
                    .checkpoints
                    .entry(key)
                    .or_default()
                    .push((record.member, bytes));
            }
            RecordKind::StateLoaded {
                group,
                state: bytes,
                fresh,
                replaced,
            } => {
                state.state_loaded(record, *group, bytes, *fresh, replaced.as_deref());
            }
            RecordKind::Delivered { group, msg, .. } => {
                let shown = msg.map_or_else(|| "a message".to_string(), |id| id.to_string());
                state.delivered(record, *group, shown);
            }
            RecordKind::GroupLeft { group } => {
                state.members.remove(&(record.member, *group));
            }
            RecordKind::Excluded { .. } | RecordKind::Crashed | RecordKind::Stopped(_) => {
                state
                    .members
                    .retain(|(member, _), _| *member != record.member);
            }
            _ => {}
        }
    }
    state.violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fixtures::*;

    fn checkpoint(time: u64, at: MemberId, view_id: u64, state: Vec<u8>) -> Record {
        record(
            time,
            at,
            RecordKind::CheckpointProvided {
                group: GROUP,
                view_id,
                state,
            },
        )
    }

    /// a founds the group, delivers a#1, b joins in view 2 and loads a's checkpoint.
    fn founding() -> (MemberId, MemberId, Vec<Record>) {
        let (a, b) = (member(0), member(1));
        let one = state_of(&[msg(a, 1)]);
        let history = vec![
            group_view_full(1, a, 1, &[a], &[a], None),
            loaded(2, a, state_of(&[]), true),
            sent(3, msg(a, 1)),
            delivered(3, a, msg(a, 1)),
            group_view_full(4, a, 2, &[a, b], &[b], Some(one.clone())),
            checkpoint(4, a, 2, one.clone()),
            group_view_full(5, b, 2, &[a, b], &[b], None),
        ];
        (a, b, history)
    }

    #[test]
    fn accepts_a_correct_transfer() {
        let (a, b, mut history) = founding();
        let two = state_of(&[msg(a, 1), msg(a, 2)]);
        history.extend([
            loaded(6, b, state_of(&[msg(a, 1)]), false),
            sent(7, msg(a, 2)),
            delivered(7, a, msg(a, 2)),
            delivered(8, b, msg(a, 2)),
            group_view_full(9, a, 3, &[a, b], &[], Some(two.clone())),
            group_view_full(9, b, 3, &[a, b], &[], Some(two)),
        ]);
        assert_eq!(check(&history), vec![]);
    }

    #[test]
    fn flags_wrong_state_early_delivery_false_fresh_and_divergence() {
        let (a, b, base) = founding();
        let mut wrong = base.clone();
        wrong.push(loaded(6, b, state_of(&[]), false));
        assert!(
            check(&wrong)[0].message.contains("checkpointed"),
            "{:?}",
            check(&wrong)
        );

        let mut early = base.clone();
        early.extend([
            sent(6, msg(a, 2)),
            delivered(6, b, msg(a, 2)),
            loaded(7, b, state_of(&[msg(a, 1)]), false),
        ]);
        assert!(
            check(&early)[0].message.contains("before loading"),
            "{:?}",
            check(&early)
        );

        let mut fresh = base.clone();
        fresh.push(loaded(6, b, state_of(&[]), true));
        assert!(
            check(&fresh)[0].message.contains("held state"),
            "{:?}",
            check(&fresh)
        );

        let mut reloaded = base.clone();
        let one = state_of(&[msg(a, 1)]);
        let reload = |replaced: Vec<u8>| {
            record(
                8,
                b,
                RecordKind::StateLoaded {
                    group: GROUP,
                    state: one.clone(),
                    fresh: false,
                    replaced: Some(replaced),
                },
            )
        };
        reloaded.extend([loaded(6, b, one.clone(), false), reload(one.clone())]);
        assert_eq!(
            check(&reloaded),
            vec![],
            "a reload of the same state is tolerated"
        );
        let mut rolled_back = base.clone();
        rolled_back.extend([
            loaded(6, b, one.clone(), false),
            reload(state_of(&[msg(a, 1), msg(a, 2)])),
        ]);
        assert!(
            check(&rolled_back)[0].message.contains("again"),
            "{:?}",
            check(&rolled_back)
        );

        let mut diverged = base;
        diverged.extend([
            loaded(6, b, state_of(&[msg(a, 1)]), false),
            group_view_full(
                9,
                a,
                3,
                &[a, b],
                &[],
                Some(state_of(&[msg(a, 1), msg(a, 2)])),
            ),
            group_view_full(9, b, 3, &[a, b], &[], Some(state_of(&[msg(a, 1)]))),
        ]);
        let violations = check(&diverged);
        assert_eq!(violations.len(), 1, "{violations:?}");
        assert!(violations[0].message.contains("different states"));
    }
}
