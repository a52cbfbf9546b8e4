//! Query completion (docs/ordering.md):
//! * a reply comes only from a member the request reached, at most once per
//!   responder, and only before the query is done;
//! * a failure marker names a member that did not reply, and comes before done;
//! * every query is done exactly once; a query to All that is done without
//!   timing out heard from (or about) every member of the caller's view;
//! * a responder of a query to All that drops out of the caller's view while
//!   the query is waiting for it is reported failed before the query is done;
//! * a query whose caller is still running at the end of the run is done.

use std::collections::{BTreeMap, BTreeSet};

use osiris_core::{GroupId, MemberId, QueryId};

use super::Violation;
use crate::history::{Record, RecordKind};

const NAME: &str = "query";

struct Asked {
    sent_at: u64,
    group: GroupId,
    all: Option<Vec<MemberId>>,
    replied: BTreeSet<MemberId>,
    failed: BTreeSet<MemberId>,
    /// Responders that left the caller's view while the query waited for them.
    must_fail: BTreeSet<MemberId>,
    done: bool,
}

#[derive(Default)]
struct State {
    asked: BTreeMap<(MemberId, QueryId), Asked>,
    /// (responder, caller, id) of every request delivered.
    requests: BTreeSet<(MemberId, MemberId, QueryId)>,
    ended: BTreeSet<MemberId>,
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

    fn on_reply(&mut self, time: u64, caller: MemberId, id: QueryId, from: MemberId) {
        let reached = self.requests.contains(&(from, caller, id));
        let Some(asked) = self.asked.get_mut(&(caller, id)) else {
            return self.flag(
                time,
                format!("{caller} got a reply to unknown query #{}", id.0),
            );
        };
        let problem = if asked.done {
            Some("after it was done")
        } else if !asked.replied.insert(from) {
            Some("twice")
        } else if !reached {
            Some("from a member the request never reached")
        } else if asked.all.as_ref().is_some_and(|all| !all.contains(&from)) {
            Some("from a member outside the caller's view")
        } else {
            None
        };
        if let Some(problem) = problem {
            let message = format!("{caller}: query #{} reply from {from} {problem}", id.0);
            self.flag(time, message);
        }
    }

    fn on_failed(&mut self, time: u64, caller: MemberId, id: QueryId, member: MemberId) {
        let Some(asked) = self.asked.get_mut(&(caller, id)) else {
            return self.flag(
                time,
                format!("{caller}: failure marker for unknown query #{}", id.0),
            );
        };
        let bad = asked.done || asked.replied.contains(&member) || !asked.failed.insert(member);
        if bad {
            let message = format!(
                "{caller}: query #{} marks {member} failed after a reply, twice or after done",
                id.0
            );
            self.flag(time, message);
        }
    }

    fn on_done(&mut self, time: u64, caller: MemberId, id: QueryId, timed_out: bool) {
        let Some(asked) = self.asked.get_mut(&(caller, id)) else {
            return self.flag(time, format!("{caller}: unknown query #{} done", id.0));
        };
        let mut problems = Vec::new();
        if asked.done {
            problems.push("done twice".to_string());
        }
        asked.done = true;
        let unreported: Vec<MemberId> = asked
            .must_fail
            .iter()
            .filter(|member| !asked.failed.contains(member) && !asked.replied.contains(member))
            .copied()
            .collect();
        if !unreported.is_empty() {
            problems.push(format!("done without failure markers for {unreported:?}"));
        }
        if let (false, Some(all)) = (timed_out, &asked.all) {
            let heard = all
                .iter()
                .all(|member| asked.replied.contains(member) || asked.failed.contains(member));
            if !heard {
                problems.push("done before every member replied or failed".to_string());
            }
        }
        for problem in problems {
            self.flag(time, format!("{caller}: query #{} {problem}", id.0));
        }
    }

    /// The caller installed a group view: responders missing from it must fail.
    fn on_view(&mut self, caller: MemberId, group: GroupId, members: &[MemberId]) {
        for ((asker, _), asked) in self.asked.iter_mut() {
            if *asker != caller || asked.group != group || asked.done {
                continue;
            }
            let Some(all) = &asked.all else { continue };
            for member in all {
                if !members.contains(member) && !asked.replied.contains(member) {
                    asked.must_fail.insert(*member);
                }
            }
        }
    }
}

/// Queries must be done this long after they were asked (timeout + slack).
const DONE_WITHIN_NS: u64 = 1_200_000_000;

pub fn check(history: &[Record]) -> Vec<Violation> {
    let mut state = State::default();
    for record in history {
        let at = record.member;
        match &record.kind {
            RecordKind::QuerySent { group, id, all } => {
                let asked = Asked {
                    sent_at: record.time,
                    group: *group,
                    all: all.clone(),
                    replied: BTreeSet::new(),
                    failed: BTreeSet::new(),
                    must_fail: BTreeSet::new(),
                    done: false,
                };
                state.asked.insert((at, *id), asked);
            }
            RecordKind::QueryRequest { query } => {
                state.requests.insert((at, query.caller, query.id));
            }
            RecordKind::QueryReply { id, from } => state.on_reply(record.time, at, *id, *from),
            RecordKind::QueryFailed { id, member } => {
                state.on_failed(record.time, at, *id, *member)
            }
            RecordKind::QueryDone { id, timed_out } => {
                state.on_done(record.time, at, *id, *timed_out)
            }
            RecordKind::GroupView { view, .. } => state.on_view(at, view.group, &view.members),
            RecordKind::Crashed | RecordKind::Stopped(_) => {
                state.ended.insert(at);
            }
            RecordKind::Excluded { old_id, .. } => {
                state.ended.insert(*old_id);
            }
            _ => {}
        }
    }
    let end = history.last().map_or(0, |record| record.time);
    let open: Vec<(MemberId, QueryId, u64)> = state
        .asked
        .iter()
        .filter(|((caller, _), asked)| {
            !asked.done && !state.ended.contains(caller) && asked.sent_at + DONE_WITHIN_NS < end
        })
        .map(|((caller, id), asked)| (*caller, *id, asked.sent_at))
        .collect();
    for (caller, id, sent_at) in open {
        state.flag(sent_at, format!("{caller}: query #{} never done", id.0));
    }
    state.violations
}

#[cfg(test)]
mod tests {
    use osiris_core::{QueryId, QueryRef};

    use super::check;
    use crate::check::fixtures::*;
    use crate::history::RecordKind;

    #[test]
    fn accepts_a_complete_query_and_flags_a_forgotten_failure() {
        let (a, b, c) = (member(1), member(2), member(3));
        let id = QueryId(1);
        let query = QueryRef {
            group: GROUP,
            caller: a,
            id,
        };
        let asked = RecordKind::QuerySent {
            group: GROUP,
            id,
            all: Some(vec![a, b, c]),
        };
        let reached = |at| record(2, at, RecordKind::QueryRequest { query });
        let reply = |from| record(3, a, RecordKind::QueryReply { id, from });
        let base = vec![
            record(1, a, asked),
            reached(a),
            reached(b),
            reply(a),
            reply(b),
            group_view(4, a, 2, &[a, b]),
        ];
        let good = [
            base.clone(),
            vec![
                record(4, a, RecordKind::QueryFailed { id, member: c }),
                record(
                    4,
                    a,
                    RecordKind::QueryDone {
                        id,
                        timed_out: false,
                    },
                ),
            ],
        ]
        .concat();
        assert!(check(&good).is_empty(), "{:?}", check(&good));
        let forgotten = [
            base,
            vec![record(
                9,
                a,
                RecordKind::QueryDone {
                    id,
                    timed_out: true,
                },
            )],
        ]
        .concat();
        let found = check(&forgotten);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].message.contains("without failure markers"));
        let stray = vec![
            record(
                1,
                a,
                RecordKind::QuerySent {
                    group: GROUP,
                    id,
                    all: None,
                },
            ),
            record(3, a, RecordKind::QueryReply { id, from: c }),
        ];
        assert!(check(&stray)[0].message.contains("never reached"));
    }
}
