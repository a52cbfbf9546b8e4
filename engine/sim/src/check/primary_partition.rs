//! Property 2, primary partition.
//!
//! * Never two different domain views with one id (the views form one chain).
//! * Each domain view `i+1` keeps a majority of view `i`: the members of `i`
//!   that are also in `i+1`, plus those that left `i` voluntarily (a graceful
//!   `leave`, which cannot split the domain), are more than half of `i`. Two
//!   disjoint sides therefore cannot both install views.
//! * A member that stopped installs no view afterwards.

use std::collections::{BTreeMap, BTreeSet};

use osiris_core::{MemberId, StopReason};

use super::Violation;
use crate::history::{Record, RecordKind};

const NAME: &str = "primary_partition";

pub fn check(history: &[Record]) -> Vec<Violation> {
    let mut violations = Vec::new();
    let mut chain: BTreeMap<u64, (BTreeSet<MemberId>, u64)> = BTreeMap::new();
    let mut stopped: BTreeSet<MemberId> = BTreeSet::new();
    let mut left_voluntarily: BTreeSet<MemberId> = BTreeSet::new();
    for record in history {
        match &record.kind {
            RecordKind::DomainView(view) => {
                if stopped.contains(&record.member) {
                    let message = format!(
                        "{} installed domain view {} after it stopped",
                        record.member, view.id.0
                    );
                    violations.push(Violation {
                        checker: NAME,
                        time: record.time,
                        message,
                    });
                }
                let members: BTreeSet<MemberId> = view.members.iter().map(|info| info.id).collect();
                match chain.get(&view.id.0) {
                    Some((first, _)) if *first != members => {
                        let message = format!(
                            "two domain views with id {}: {:?} and {:?} (installed by {})",
                            view.id.0, first, members, record.member
                        );
                        violations.push(Violation {
                            checker: NAME,
                            time: record.time,
                            message,
                        });
                    }
                    Some(_) => {}
                    None => {
                        chain.insert(view.id.0, (members, record.time));
                    }
                }
            }
            RecordKind::Stopped(reason) => {
                stopped.insert(record.member);
                if *reason == StopReason::Left {
                    left_voluntarily.insert(record.member);
                }
            }
            RecordKind::Crashed => {
                stopped.insert(record.member);
            }
            _ => {}
        }
    }
    for (id, (members, _)) in &chain {
        let Some((next, time)) = chain.get(&(id + 1)) else {
            continue;
        };
        let kept = members
            .iter()
            .filter(|member| next.contains(member) || left_voluntarily.contains(member))
            .count();
        if kept < members.len() / 2 + 1 {
            let message = format!(
                "domain view {} {:?} keeps only {} of the {} members of view {} {:?}: not a majority",
                id + 1,
                next,
                kept,
                members.len(),
                id,
                members
            );
            violations.push(Violation {
                checker: NAME,
                time: *time,
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

    #[test]
    fn accepts_a_majority_chain_and_graceful_leaves() {
        let [a, b, c, d] = [member(0), member(1), member(2), member(3)];
        let history = vec![
            domain_view(1, a, 1, &[a, b, c]),
            domain_view(2, a, 2, &[a, b]),
            domain_view(3, a, 3, &[a, b, d]),
            record(4, b, RecordKind::Stopped(StopReason::Left)),
            domain_view(5, a, 4, &[a, d]),
            record(5, c, RecordKind::Stopped(StopReason::Disconnected)),
        ];
        assert_eq!(check(&history), vec![]);
    }

    #[test]
    fn flags_split_brain_minority_views_and_views_after_stop() {
        let [a, b, c, d, e] = [member(0), member(1), member(2), member(3), member(4)];
        let split = vec![
            domain_view(1, a, 4, &[a, b, c]),
            domain_view(2, d, 4, &[d, e]),
        ];
        assert_eq!(check(&split).len(), 1);
        let minority = vec![
            domain_view(1, a, 1, &[a, b, c, d, e]),
            domain_view(2, a, 2, &[a, b]),
        ];
        assert_eq!(check(&minority).len(), 1);
        let zombie = vec![
            record(1, d, RecordKind::Stopped(StopReason::Disconnected)),
            domain_view(2, d, 7, &[d, e]),
        ];
        assert_eq!(check(&zombie).len(), 1);
    }
}
