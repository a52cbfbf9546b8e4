//! Property 4, integrity (and Send's FIFO guarantee).
//!
//! * No duplicate: a member incarnation delivers each message at most once.
//! * No invention: every delivered payload is one some member sent (its id
//!   decodes, `send` returned Ok for it earlier, same group, same bytes), and
//!   the `sender` the core reports is the member that sent it.
//! * Membership: the sender is a member of the group view in which the message
//!   is delivered (the latest view the receiver installed) — so nothing is
//!   delivered from an excluded or departed member after its removal.
//! * FIFO: messages of one sender incarnation are delivered in the order they
//!   were sent (increasing counters) within a group.

use std::collections::{BTreeMap, BTreeSet};

use osiris_core::{GroupId, MemberId};

use super::Violation;
use crate::history::{group_label, MsgId, Record, RecordKind};

const NAME: &str = "integrity";

#[derive(Default)]
struct State {
    sent: BTreeMap<MsgId, (GroupId, u64)>,
    delivered: BTreeSet<(MemberId, MsgId)>,
    views: BTreeMap<(MemberId, GroupId), Vec<MemberId>>,
    fifo_last: BTreeMap<(MemberId, GroupId, MemberId), u64>,
    violations: Vec<Violation>,
}

impl State {
    fn flag(&mut self, time: u64, message: String) {
        self.violations.push(Violation {
            checker: NAME,
            time,
            message,
        });
    }

    fn delivered(
        &mut self,
        record: &Record,
        group: GroupId,
        sender: MemberId,
        msg: Option<MsgId>,
        hash: u64,
    ) {
        let at = record.member;
        let Some(msg) = msg else {
            let message = format!(
                "{at} delivered an undecodable payload from {sender} in {}",
                group_label(group)
            );
            return self.flag(record.time, message);
        };
        match self.sent.get(&msg).copied() {
            None => self.flag(
                record.time,
                format!("{at} delivered {msg}, which was never sent"),
            ),
            Some((sent_group, sent_hash)) => {
                if sent_group != group {
                    let message = format!(
                        "{at} delivered {msg} in {} but it was sent to {}",
                        group_label(group),
                        group_label(sent_group)
                    );
                    self.flag(record.time, message);
                }
                if sent_hash != hash {
                    self.flag(
                        record.time,
                        format!("{at} delivered {msg} with corrupted bytes"),
                    );
                }
            }
        }
        if sender != msg.sender {
            let message = format!("{at} delivered {msg} attributed to {sender}");
            self.flag(record.time, message);
        }
        let duplicate = !self.delivered.insert((at, msg));
        if duplicate {
            self.flag(record.time, format!("{at} delivered {msg} twice"));
        }
        match self.views.get(&(at, group)) {
            None => {
                let message = format!(
                    "{at} delivered {msg} in {} without a view of it",
                    group_label(group)
                );
                self.flag(record.time, message);
            }
            Some(members) if !members.contains(&sender) => {
                let message = format!(
                    "{at} delivered {msg} in {} from {sender}, not a member of its view {members:?}",
                    group_label(group)
                );
                self.flag(record.time, message);
            }
            Some(_) => {}
        }
        let last = self.fifo_last.entry((at, group, msg.sender)).or_insert(0);
        if duplicate {
            // Already reported; a duplicate is not also a FIFO break.
        } else if msg.counter <= *last {
            let message = format!(
                "{at} delivered {msg} after {}#{}: not FIFO",
                msg.sender, *last
            );
            self.flag(record.time, message);
        } else {
            *last = msg.counter;
        }
    }
}

pub fn check(history: &[Record]) -> Vec<Violation> {
    let mut state = State::default();
    for record in history {
        match &record.kind {
            RecordKind::Sent {
                group,
                msg,
                payload_hash,
                ..
            } => {
                if msg.sender != record.member {
                    let message = format!(
                        "workload bug: {} recorded a send as {}",
                        record.member, msg.sender
                    );
                    state.flag(record.time, message);
                }
                if state.sent.insert(*msg, (*group, *payload_hash)).is_some() {
                    state.flag(
                        record.time,
                        format!("workload bug: message id {msg} sent twice"),
                    );
                }
            }
            RecordKind::GroupView { view, .. } => {
                if view.members.contains(&record.member) {
                    state
                        .views
                        .insert((record.member, view.group), view.members.clone());
                } else {
                    state.views.remove(&(record.member, view.group));
                }
            }
            RecordKind::GroupLeft { group } => {
                state.views.remove(&(record.member, *group));
            }
            RecordKind::Excluded { .. } => {
                state
                    .views
                    .retain(|(member, _), _| *member != record.member);
            }
            RecordKind::Delivered {
                group,
                sender,
                msg,
                payload_hash,
                ..
            } => {
                state.delivered(record, *group, *sender, *msg, *payload_hash);
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

    #[test]
    fn accepts_fifo_deliveries_from_members() {
        let (a, b) = (member(0), member(1));
        let history = vec![
            group_view(1, a, 1, &[a, b]),
            group_view(1, b, 1, &[a, b]),
            sent(2, msg(a, 1)),
            sent(3, msg(a, 2)),
            sent(3, msg(b, 1)),
            delivered(4, b, msg(b, 1)),
            delivered(4, b, msg(a, 1)),
            delivered(5, b, msg(a, 2)),
            delivered(5, a, msg(a, 1)),
        ];
        assert_eq!(check(&history), vec![]);
    }

    #[test]
    fn flags_duplicates_inventions_strangers_and_reordering() {
        let (a, b, c) = (member(0), member(1), member(2));
        let prefix = || {
            vec![
                group_view(1, b, 1, &[a, b]),
                sent(2, msg(a, 1)),
                sent(3, msg(a, 2)),
                sent(3, msg(c, 1)),
            ]
        };
        let cases: Vec<(Vec<Record>, &str)> = vec![
            (
                vec![delivered(4, b, msg(a, 1)), delivered(5, b, msg(a, 1))],
                "twice",
            ),
            (vec![delivered(4, b, msg(a, 9))], "never sent"),
            (vec![delivered(4, b, msg(c, 1))], "not a member"),
            (
                vec![delivered(4, b, msg(a, 2)), delivered(5, b, msg(a, 1))],
                "not FIFO",
            ),
            (
                vec![
                    record(4, b, RecordKind::GroupLeft { group: GROUP }),
                    delivered(5, b, msg(a, 1)),
                ],
                "without a view",
            ),
        ];
        for (tail, expected) in cases {
            let mut history = prefix();
            history.extend(tail);
            let violations = check(&history);
            assert_eq!(violations.len(), 1, "{expected}: {violations:?}");
            assert!(
                violations[0].message.contains(expected),
                "{expected}: {violations:?}"
            );
        }
        let mut corrupted = prefix();
        let mut bad = delivered(4, b, msg(a, 1));
        if let RecordKind::Delivered { payload_hash, .. } = &mut bad.kind {
            *payload_hash ^= 1;
        }
        corrupted.push(bad);
        assert!(check(&corrupted)[0].message.contains("corrupted"));
    }
}
