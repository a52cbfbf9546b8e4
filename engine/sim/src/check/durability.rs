//! Durability across a total failure (docs/ordering.md, "Durable mode"):
//! nothing delivered is lost when every node crashes at once, as far as
//! one member's log can hold it. docs/simulator.md states the rules; in
//! short, for a node that was a member of durable group G at the failure,
//! joined in epoch J (domain view id), loaded state in epoch S and was in
//! epoch E, the sequence R it recovers must
//! * begin with the sequence it recovered when its life (`Node`) started;
//! * hold every SafeSend any member delivered in G in epochs J..=E, in each
//!   member's order, except deliveries that may be a flush's outside
//!   epochs S..E (a flush it had not completed, or completed while loading
//!   state: it logged neither);
//! * if it joined G once in its life, hold nothing that nobody delivered
//!   between the first message required from epoch S on and the last one
//!   required.
//!
//! And every recovered sequence holds only SafeSends sent to G, each once.

use std::collections::{BTreeMap, BTreeSet};

use osiris_core::{GroupId, MemberId, SendKind};

use super::Violation;
use crate::history::{group_label, MsgId, Record, RecordKind, RecoveredEntry};

const NAME: &str = "durability";

/// A SafeSend delivered in the current domain.
struct Delivery {
    member: MemberId,
    epoch: u64,
    time: u64,
    msg: MsgId,
    /// Made at the instant the member installed its next domain view or
    /// stopped: it may be a delivery of the flush.
    maybe_flush: bool,
}

/// One `Node` object, from its start to its crash.
struct Life {
    member: MemberId,
    /// The domain view id it last installed.
    epoch: Option<u64>,
    /// Per group, the sequence recovered when it started.
    recovered: BTreeMap<GroupId, Vec<MsgId>>,
    /// Per group it is a member of now, the epoch it joined in.
    member_since: BTreeMap<GroupId, u64>,
    /// Per group it is a member of now, the epoch it loaded state in.
    state_since: BTreeMap<GroupId, u64>,
    /// Per group, how many times it joined.
    joins: BTreeMap<GroupId, u32>,
}

impl Life {
    fn new(member: MemberId) -> Life {
        Life {
            member,
            epoch: None,
            recovered: BTreeMap::new(),
            member_since: BTreeMap::new(),
            state_since: BTreeMap::new(),
            joins: BTreeMap::new(),
        }
    }

    fn left(&mut self, group: GroupId) {
        self.member_since.remove(&group);
        self.state_since.remove(&group);
    }

    fn left_all(&mut self) {
        self.member_since.clear();
        self.state_since.clear();
    }
}

/// What a node must recover of a group after a total failure.
struct Expectation {
    failure_time: u64,
    member: MemberId,
    since: u64,
    state_since: Option<u64>,
    epoch: u64,
    /// What its recovered sequence must begin with: what it recovered
    /// when its life started.
    prefix: Vec<MsgId>,
    /// Per member, the SafeSends it delivered that the log must hold (with
    /// their epochs), in its delivery order.
    required: BTreeMap<MemberId, Vec<(MsgId, u64)>>,
    /// Every SafeSend delivered in the group in this domain, if the node
    /// had one membership in its life: nothing else may stand between the
    /// first message required from the epoch it loaded state in and the
    /// last one required.
    delivered: Option<BTreeSet<MsgId>>,
}

impl Expectation {
    /// Add `delivery` to what the log must hold if the log covers it: the
    /// node acknowledged every SafeSend delivered outside a flush in an
    /// epoch it was a member in, and logged the flush deliveries of every
    /// epoch it completed holding state (a node loading state delivers
    /// nothing of a flush: the state it loads later covers them).
    fn require(mut self, delivery: &Delivery) -> Expectation {
        let member_then = (self.since..=self.epoch).contains(&delivery.epoch);
        let flush_logged = delivery.epoch < self.epoch
            && self
                .state_since
                .is_some_and(|loaded| loaded <= delivery.epoch);
        if member_then && (!delivery.maybe_flush || flush_logged) {
            self.required
                .entry(delivery.member)
                .or_default()
                .push((delivery.msg, delivery.epoch));
        }
        self
    }
}

#[derive(Default)]
struct Scan {
    /// SafeSends accepted by `send`: group and payload hash.
    sent: BTreeMap<MsgId, (GroupId, u64)>,
    lives: BTreeMap<usize, Life>,
    /// Per node, its last life that crashed, and when.
    crashed: BTreeMap<usize, (u64, Life)>,
    /// Per group, the SafeSends delivered in the current domain, in order.
    deliveries: BTreeMap<GroupId, Vec<Delivery>>,
    /// Per (node, group), what its next recovery must show.
    expected: BTreeMap<(usize, GroupId), Expectation>,
    violations: Vec<Violation>,
}

fn ids(list: &[MsgId]) -> String {
    let names: Vec<String> = list.iter().map(ToString::to_string).collect();
    format!("[{}]", names.join(" "))
}

impl Scan {
    fn flag(&mut self, time: u64, message: String) {
        self.violations.push(Violation {
            checker: NAME,
            time,
            message,
        });
    }

    fn step(&mut self, record: &Record) {
        let Some(node) = record.node else {
            if record.kind == RecordKind::TotalFailure {
                self.total_failure(record.time);
            }
            return;
        };
        match &record.kind {
            RecordKind::Started { .. } => {
                self.lives.insert(node, Life::new(record.member));
            }
            RecordKind::Recovered { group, messages } => {
                self.recovered(node, record, *group, messages);
            }
            RecordKind::Crashed => {
                if let Some(life) = self.lives.remove(&node) {
                    self.crashed.insert(node, (record.time, life));
                }
            }
            RecordKind::Sent {
                group,
                msg,
                payload_hash,
                kind: SendKind::Safe,
                ..
            } => {
                self.sent.insert(*msg, (*group, *payload_hash));
            }
            RecordKind::DomainView(view) => {
                self.mark_flush(record.member, record.time);
                if let Some(life) = self.lives.get_mut(&node) {
                    life.epoch = Some(view.id.0);
                }
            }
            RecordKind::Stopped(_) => {
                self.mark_flush(record.member, record.time);
                if let Some(life) = self.lives.get_mut(&node) {
                    life.left_all();
                }
            }
            _ => self.membership(node, record),
        }
    }

    /// Group membership and deliveries of a life.
    fn membership(&mut self, node: usize, record: &Record) {
        let Some(life) = self.lives.get_mut(&node) else {
            return;
        };
        match &record.kind {
            RecordKind::GroupView { view, .. } => {
                if !view.members.contains(&record.member) {
                    life.left(view.group);
                } else if !life.member_since.contains_key(&view.group) {
                    life.member_since
                        .insert(view.group, life.epoch.unwrap_or(0));
                    *life.joins.entry(view.group).or_default() += 1;
                }
            }
            RecordKind::GroupLeft { group } => life.left(*group),
            RecordKind::StateLoaded { group, .. } if life.member_since.contains_key(group) => {
                let epoch = life.epoch.unwrap_or(0);
                life.state_since.entry(*group).or_insert(epoch);
            }
            RecordKind::Excluded { new_id, .. } => {
                life.left_all();
                life.epoch = None;
                if let Some(new_id) = new_id {
                    life.member = *new_id;
                }
            }
            RecordKind::Delivered {
                group,
                msg: Some(msg),
                kind: SendKind::Safe,
                ..
            } => {
                self.deliveries.entry(*group).or_default().push(Delivery {
                    member: record.member,
                    epoch: life.epoch.unwrap_or(0),
                    time: record.time,
                    msg: *msg,
                    maybe_flush: false,
                });
            }
            _ => {}
        }
    }

    /// The member's deliveries at this instant may be its flush's: the core
    /// delivers the flush in the step that installs the next view (or stops
    /// a leaving member), just before it says so.
    fn mark_flush(&mut self, member: MemberId, time: u64) {
        for list in self.deliveries.values_mut() {
            for delivery in list.iter_mut().rev() {
                if delivery.time != time {
                    break;
                }
                if delivery.member == member {
                    delivery.maybe_flush = true;
                }
            }
        }
    }

    fn total_failure(&mut self, time: u64) {
        let crashed = std::mem::take(&mut self.crashed);
        for (node, (at, life)) in crashed {
            let Some(epoch) = life.epoch.filter(|_| at == time) else {
                continue;
            };
            for (group, since) in &life.member_since {
                let all = self.deliveries.get(group).map_or(&[][..], Vec::as_slice);
                let expectation = Expectation {
                    failure_time: time,
                    member: life.member,
                    since: *since,
                    state_since: life.state_since.get(group).copied(),
                    epoch,
                    prefix: life.recovered.get(group).cloned().unwrap_or_default(),
                    required: BTreeMap::new(),
                    delivered: (life.joins.get(group) == Some(&1))
                        .then(|| all.iter().map(|delivery| delivery.msg).collect()),
                };
                let expectation = all.iter().fold(expectation, Expectation::require);
                self.expected.insert((node, *group), expectation);
            }
        }
        self.lives.clear();
        self.deliveries.clear();
    }

    fn recovered(
        &mut self,
        node: usize,
        record: &Record,
        group: GroupId,
        messages: &[RecoveredEntry],
    ) {
        let me = record.member;
        let label = group_label(group);
        let mut sequence = Vec::with_capacity(messages.len());
        let mut seen = BTreeSet::new();
        for entry in messages {
            let Some(msg) = entry.msg else {
                let text = format!("{me} recovered from its log of {label} a message that is no workload payload (hash {:016x})", entry.payload_hash);
                self.flag(record.time, text);
                continue;
            };
            let genuine = entry.sender == msg.sender
                && self.sent.get(&msg) == Some(&(group, entry.payload_hash));
            if !genuine {
                let text = format!("{me} recovered {msg} from its log of {label}, but no SafeSend with those bytes was sent to it");
                self.flag(record.time, text);
            }
            if !seen.insert(msg) {
                let text = format!("{me} recovered {msg} twice from its log of {label}");
                self.flag(record.time, text);
            }
            sequence.push(msg);
        }
        if let Some(expectation) = self.expected.remove(&(node, group)) {
            self.compare(record.time, me, &label, &expectation, &sequence);
        }
        if let Some(life) = self.lives.get_mut(&node) {
            life.recovered.insert(group, sequence);
        }
    }

    fn compare(
        &mut self,
        time: u64,
        me: MemberId,
        label: &str,
        expected: &Expectation,
        sequence: &[MsgId],
    ) {
        let loaded = expected
            .state_since
            .map_or_else(|| "never".to_string(), |epoch| format!("in epoch {epoch}"));
        let was = format!(
            "{me} (as {}, a member of {label} from epoch {} to epoch {}, state loaded {loaded}, at the total failure at {:.3} ms)",
            expected.member,
            expected.since,
            expected.epoch,
            expected.failure_time as f64 / 1e6
        );
        if !sequence.starts_with(&expected.prefix) {
            let text = format!(
                "{was} recovered {}, which does not begin with the sequence it recovered when it started, {}",
                ids(sequence),
                ids(&expected.prefix)
            );
            self.flag(time, text);
        }
        let positions: BTreeMap<MsgId, usize> = sequence
            .iter()
            .enumerate()
            .map(|(position, msg)| (*msg, position))
            .collect();
        // The epochs it spent loading state come first; what it logged of
        // them may be what nobody delivered (the members holding state
        // crashed), so the check starts at the first epoch it held state.
        let held_state = |epoch: u64| expected.state_since.is_some_and(|since| since <= epoch);
        let required_at = |holding: bool| {
            expected
                .required
                .values()
                .flatten()
                .filter(move |(_, epoch)| !holding || held_state(*epoch))
                .filter_map(|(msg, _)| positions.get(msg).copied())
        };
        let span = required_at(true).min().zip(required_at(false).max());
        if let (Some(delivered), Some((first, last))) = (&expected.delivered, span) {
            let start = expected.prefix.len().max(first).min(last);
            let stray = sequence[start..last]
                .iter()
                .find(|msg| !delivered.contains(msg));
            if let Some(stray) = stray {
                let text = format!(
                    "{was} recovered {stray}, which nobody delivered, before {}, which was delivered: {}",
                    sequence[last],
                    ids(sequence)
                );
                self.flag(time, text);
            }
        }
        for (member, list) in &expected.required {
            let mut last: Option<(MsgId, usize)> = None;
            for (msg, epoch) in list {
                let Some(&position) = positions.get(msg) else {
                    let text = format!(
                        "{member} delivered SafeSend {msg} in epoch {epoch}, but {was} recovered a sequence without it: {}",
                        ids(sequence)
                    );
                    self.flag(time, text);
                    continue;
                };
                if let Some((before, at)) = last.filter(|(_, at)| *at > position) {
                    let text = format!(
                        "{member} delivered {before} before {msg}, but {was} recovered them the other way round (positions {at} and {position})"
                    );
                    self.flag(time, text);
                }
                last = Some((*msg, position));
            }
        }
    }
}

pub fn check(history: &[Record]) -> Vec<Violation> {
    let mut scan = Scan::default();
    for record in history {
        scan.step(record);
    }
    scan.violations
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::fixtures::*;
    use crate::history::fnv1a;

    fn recovered(time: u64, at: MemberId, msgs: &[MsgId]) -> Record {
        let messages = msgs
            .iter()
            .map(|msg| RecoveredEntry {
                sender: msg.sender,
                msg: Some(*msg),
                payload_hash: fnv1a(&payload(*msg)),
            })
            .collect();
        record(
            time,
            at,
            RecordKind::Recovered {
                group: GROUP,
                messages,
            },
        )
    }

    fn started(time: u64, at: MemberId) -> Record {
        record(time, at, RecordKind::Started { bootstrap: false })
    }

    /// Every node in `lives` crashes at `time`, then the total failure.
    fn failure(time: u64, lives: &[MemberId]) -> Vec<Record> {
        let mut records: Vec<Record> = lives
            .iter()
            .map(|member| record(time, *member, RecordKind::Crashed))
            .collect();
        records.push(Record {
            time,
            node: None,
            member: MemberId::new(u32::MAX, 0),
            kind: RecordKind::TotalFailure,
        });
        records
    }

    /// `members` start and form the group in domain view `epoch`; with
    /// `fresh`, each loads empty state at once.
    fn formed(members: &[MemberId], epoch: u64, fresh: bool) -> Vec<Record> {
        let mut records: Vec<Record> = members.iter().map(|at| started(1, *at)).collect();
        for at in members {
            records.push(domain_view(2, *at, epoch, members));
            records.push(group_view(2, *at, 1, members));
            if fresh {
                records.push(loaded(2, *at, vec![], true));
            }
        }
        records
    }

    fn again(node: u32) -> MemberId {
        MemberId::new(node, 2)
    }

    fn safe(time: u64, at: MemberId, msg: MsgId) -> Record {
        delivered_kind(time, at, msg, SendKind::Safe)
    }

    fn messages(history: &[Record]) -> Vec<String> {
        check(history)
            .into_iter()
            .map(|violation| violation.message)
            .collect()
    }

    /// a and b hold the group from epoch 1; a sends m1..m3 (Safe); both
    /// deliver m1, b also m2; then a total failure at 50.
    fn two_members() -> (Vec<Record>, [MsgId; 3]) {
        let (a, b) = (member(0), member(1));
        let sent = [msg(a, 1), msg(a, 2), msg(a, 3)];
        let mut history = formed(&[a, b], 1, true);
        history.extend(sent.map(|msg| sent_kind(3, msg, SendKind::Safe)));
        history.extend([
            safe(5, a, sent[0]),
            safe(5, b, sent[0]),
            safe(6, b, sent[1]),
        ]);
        history.extend(failure(50, &[a, b]));
        history.extend([started(200, again(0)), started(200, again(1))]);
        (history, sent)
    }

    #[test]
    fn what_anyone_delivered_must_come_back_in_order() {
        let (mut history, [m1, m2, m3]) = two_members();
        // m3 was acknowledged but delivered by nobody: it may follow.
        history.push(recovered(200, again(0), &[m1, m2, m3]));
        history.push(recovered(200, again(1), &[m1, m2]));
        assert_eq!(messages(&history), Vec::<String>::new());

        let (mut history, [m1, m2, _]) = two_members();
        history.push(recovered(200, again(0), &[m1]));
        history.push(recovered(200, again(1), &[m2, m1]));
        let found = messages(&history);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(
            found[0].starts_with("n1.1 delivered SafeSend n0.1#2 in epoch 1, but n0.2 (as n0.1")
        );
        assert!(found[1].starts_with("n1.1 delivered n0.1#1 before n0.1#2, but n1.2 (as n1.1"));
    }

    #[test]
    fn nothing_undelivered_may_stand_before_a_delivered_message() {
        let (mut history, [m1, m2, m3]) = two_members();
        history.push(recovered(200, again(0), &[m1, m3, m2]));
        let found = messages(&history);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("recovered n0.1#3, which nobody delivered, before n0.1#2"));
    }

    #[test]
    fn a_second_failure_keeps_what_the_first_recovered() {
        let (mut history, [m1, m2, m3]) = two_members();
        history.push(recovered(200, again(0), &[m1, m2]));
        let a = again(0);
        history.extend([
            domain_view(210, a, 1, &[a]),
            group_view(210, a, 1, &[a]),
            loaded(210, a, vec![], true),
        ]);
        history.extend(failure(300, &[a]));
        history.push(started(400, MemberId::new(0, 3)));
        let mut lost_one = history.clone();
        lost_one.push(recovered(400, MemberId::new(0, 3), &[m1, m3]));
        let found = messages(&lost_one);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("does not begin with the sequence it recovered when it started"));
        history.push(recovered(400, MemberId::new(0, 3), &[m1, m2, m3]));
        assert_eq!(messages(&history), Vec::<String>::new());
    }

    #[test]
    fn a_recovered_message_must_have_been_sent_once() {
        let (mut history, [m1, m2, _]) = two_members();
        let forged = msg(member(1), 9);
        history.push(recovered(200, again(0), &[m1, m2, forged, m2]));
        history.push(recovered(200, again(1), &[m1, forged, m2]));
        let found = messages(&history);
        assert_eq!(found.len(), 5, "{found:#?}");
        assert!(found[0].starts_with("n0.2 recovered n1.1#9") && found[0].contains("no SafeSend"));
        assert!(found[1].starts_with("n0.2 recovered n0.1#2 twice"));
        // A forged message also stands before a delivered one.
        assert!(found[2].contains("recovered n1.1#9, which nobody delivered, before n0.1#2"));
        assert!(found[3].starts_with("n1.2 recovered n1.1#9") && found[3].contains("no SafeSend"));
        assert!(found[4].contains("recovered n1.1#9, which nobody delivered, before n0.1#2"));
    }

    /// b delivers m2 in the step that installs epoch 2 (the flush of epoch
    /// 1); a has not installed epoch 2 at the failure. a's log need not
    /// hold m2 (a failure during a view change), unless a completed that
    /// flush too.
    #[test]
    fn a_flush_the_node_did_not_complete_is_exempt() {
        let (a, b) = (member(0), member(1));
        let (m1, m2) = (msg(a, 1), msg(a, 2));
        let mut history = formed(&[a, b], 1, true);
        history.extend([
            sent_kind(3, m1, SendKind::Safe),
            sent_kind(3, m2, SendKind::Safe),
            safe(5, a, m1),
            safe(5, b, m1),
            safe(9, b, m2),
            domain_view(9, b, 2, &[a, b]),
        ]);
        let mut tail = failure(50, &[a, b]);
        tail.extend([started(200, again(0)), recovered(200, again(0), &[m1])]);
        let mut mid_change = history.clone();
        mid_change.extend(tail.iter().cloned());
        assert_eq!(messages(&mid_change), Vec::<String>::new());

        history.push(domain_view(10, a, 2, &[a, b]));
        history.extend(tail);
        let found = messages(&history);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("n1.1 delivered SafeSend n0.1#2 in epoch 1, but n0.2"));
    }

    /// c joins in epoch 2 and loads state only in epoch 3. It acknowledged
    /// what was delivered in epoch 2 outside the flush (m1), but the flush
    /// of epoch 2 (m2) is in the state it loaded, not in its log.
    #[test]
    fn a_node_loading_state_owes_the_flush_it_did_not_deliver() {
        let (a, c) = (member(0), member(2));
        let (m1, m2) = (msg(a, 1), msg(a, 2));
        let mut history = formed(&[a, c], 2, false);
        history.extend([
            sent_kind(3, m1, SendKind::Safe),
            sent_kind(3, m2, SendKind::Safe),
            safe(5, a, m1),
            safe(9, a, m2),
            domain_view(9, a, 3, &[a, c]),
            domain_view(10, c, 3, &[a, c]),
            loaded(11, c, state_of(&[m1, m2]), false),
        ]);
        history.extend(failure(50, &[a, c]));
        history.push(started(200, again(2)));
        let mut lost_m1 = history.clone();
        lost_m1.push(recovered(200, again(2), &[]));
        let found = messages(&lost_m1);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].starts_with("n0.1 delivered SafeSend n0.1#1 in epoch 2, but n2.2"));
        history.push(recovered(200, again(2), &[m1]));
        assert_eq!(messages(&history), Vec::<String>::new());
    }

    /// c joins in epoch 2 and logs m1, which a sent; a crashes before
    /// anyone delivers it, and c goes on alone with fresh state from epoch
    /// 3. m1 nobody delivered stands ahead of c's own m2 in c's log: the
    /// part of the epochs it spent loading state is not checked. m3, which
    /// c logged in epoch 3 but nobody delivered, may not stand before m4.
    #[test]
    fn what_a_loading_node_logged_is_not_held_against_it() {
        let (a, c) = (member(0), member(2));
        let (m1, m2, m3, m4) = (msg(a, 1), msg(c, 1), msg(c, 2), msg(c, 3));
        let mut history = formed(&[a, c], 2, false);
        history.extend([
            sent_kind(3, m1, SendKind::Safe),
            record(5, a, RecordKind::Crashed),
            domain_view(10, c, 3, &[c]),
            loaded(10, c, vec![], true),
            sent_kind(11, m2, SendKind::Safe),
            sent_kind(11, m3, SendKind::Safe),
            sent_kind(11, m4, SendKind::Safe),
            safe(12, c, m2),
            safe(13, c, m4),
        ]);
        history.extend(failure(50, &[c]));
        history.push(started(200, again(2)));
        let mut stray = history.clone();
        stray.push(recovered(200, again(2), &[m1, m2, m3, m4]));
        let found = messages(&stray);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("recovered n2.1#2, which nobody delivered, before n2.1#3"));
        history.push(recovered(200, again(2), &[m1, m2, m4, m3]));
        assert_eq!(messages(&history), Vec::<String>::new());
    }
}
