//! Virtual-synchrony checks over the event lines that member processes print
//! (format in `report.rs`): the properties the simulator's checkers test
//! (engine/sim/src/check), computed from what each process reported. Used by
//! `osiris demo` and by the multi-process and netns tests.
//!
//! * **Agreement**: members that install group view `i` install the same view
//!   (members, joined, left, failed), and the same for domain views (DVIEW).
//!   Within one member incarnation, view ids grow by exactly one after its
//!   first view; across incarnations they only grow.
//! * **Primary partition**: each domain view keeps more than half of the one
//!   before it. DVIEW lines do not tell a graceful leave from a failure, so
//!   check before members quit.
//! * **View synchrony**: members that install view `j` directly after view `i`
//!   report the same TALLY (count and digest) for every sender in `i` (a
//!   sender missing from a member's TALLY lines counts as none delivered). A
//!   member's first view is exempt: a joiner delivers only what comes after
//!   its state transfer, and the state it loads covers the rest. OPEN lines
//!   (`tally G`) of the current view compare the same way: take them when the
//!   group is quiet.
//! * **Integrity and FIFO**: no FIFOERR line (a sender's burst messages are
//!   delivered in order, without gaps or duplicates; `member.rs` checks each
//!   delivery) and no TALLY for a view other than the one that ended.
//!
//! Liveness (a multicast after a fault reaches every survivor) is the
//! driver's part: it needs waiting, not only lines.

use std::collections::BTreeMap;

use crate::cluster::Cluster;

/// One group view as a VIEW line gives it; lists are the printed text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewRecord {
    pub id: u64,
    pub members: String,
    pub joined: String,
    pub left: String,
    pub failed: String,
    /// This member's own incarnation (`node.incarnation`) if the view lists it.
    pub own: Option<String>,
}

/// Per sender (`node.incarnation`): deliveries and their chained digest.
pub type Tally = BTreeMap<String, (u64, String)>;

/// A view that ended at this member, and what it delivered in it.
#[derive(Debug, Clone)]
pub struct Ended {
    pub view: u64,
    pub next: u64,
    /// The member's first view of the group (exempt from view synchrony).
    pub first: bool,
    pub tally: Tally,
}

/// What one member reported about one group and about the domain.
#[derive(Debug, Clone, Default)]
pub struct MemberLog {
    pub label: String,
    pub node: Option<u32>,
    pub domain_views: Vec<ViewRecord>,
    pub views: Vec<ViewRecord>,
    pub ended: Vec<Ended>,
    /// The latest `tally G` answer: the view it was taken in and the tallies.
    pub open: Option<(u64, Tally)>,
    pub fifo_errors: Vec<String>,
    /// Lines that break the line protocol's own rules.
    pub problems: Vec<String>,
    pub stopped: bool,
}

/// How much the checks compared: a check that compared nothing proves nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Checked {
    /// View installs that met the same view at another member.
    pub views: usize,
    /// (view, sender) tallies compared between two members.
    pub tallies: usize,
}

fn own_of(node: Option<u32>, members: &str) -> Option<String> {
    let prefix = format!("{}.", node?);
    members
        .split(',')
        .find(|member| member.starts_with(&prefix))
        .map(str::to_owned)
}

impl MemberLog {
    /// Reads the lines of one member for `group`.
    pub fn parse(label: &str, lines: &[String], group: &str) -> MemberLog {
        let mut log = MemberLog {
            label: label.to_owned(),
            ..MemberLog::default()
        };
        let mut pending: (Option<u64>, Tally) = (None, Tally::new());
        let mut open: Option<(u64, Tally)> = None;
        for line in lines {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["READY", node, ..] => log.node = node.parse().ok(),
                ["DVIEW", id, members] => log.domain_views.push(ViewRecord {
                    id: id.parse().unwrap_or(0),
                    members: (*members).to_owned(),
                    joined: String::new(),
                    left: String::new(),
                    failed: String::new(),
                    own: own_of(log.node, members),
                }),
                ["STOPPED", ..] => log.stopped = true,
                [kind, g, rest @ ..] if *g == group => {
                    log.group_line(kind, rest, line, &mut pending, &mut open)
                }
                _ => {}
            }
        }
        log
    }

    fn group_line(
        &mut self,
        kind: &str,
        rest: &[&str],
        line: &str,
        pending: &mut (Option<u64>, Tally),
        open: &mut Option<(u64, Tally)>,
    ) {
        let number = |word: &str| word.parse::<u64>().ok();
        match (kind, rest) {
            ("VIEW", [id, members, joined, left, failed]) => {
                let Some(id) = number(id) else {
                    self.problems.push(format!("bad line: {line}"));
                    return;
                };
                let (tally_view, tally) = std::mem::take(pending);
                if let Some(previous) = self.views.last() {
                    if tally_view.is_some_and(|view| view != previous.id) {
                        self.problems
                            .push(format!("TALLY for another view than {}", previous.id));
                    }
                    self.ended.push(Ended {
                        view: previous.id,
                        next: id,
                        first: self.views.len() == 1,
                        tally,
                    });
                } else if tally_view.is_some() {
                    self.problems.push("TALLY before the first view".to_owned());
                }
                self.views.push(ViewRecord {
                    id,
                    members: (*members).to_owned(),
                    joined: (*joined).to_owned(),
                    left: (*left).to_owned(),
                    failed: (*failed).to_owned(),
                    own: own_of(self.node, members),
                });
            }
            ("TALLY", [view, sender, count, digest]) | ("OPEN", [view, sender, count, digest]) => {
                let (Some(view), Some(count)) = (number(view), number(count)) else {
                    self.problems.push(format!("bad line: {line}"));
                    return;
                };
                let entry = (count, (*digest).to_owned());
                if kind == "TALLY" {
                    pending.0 = Some(view);
                    pending.1.insert((*sender).to_owned(), entry);
                } else {
                    match open {
                        Some((at, tally)) if *at == view => {
                            tally.insert((*sender).to_owned(), entry);
                        }
                        _ => *open = Some((view, Tally::from([((*sender).to_owned(), entry)]))),
                    }
                }
            }
            ("TALLIED", [view, ..]) => {
                let view = number(view).unwrap_or(0);
                // OPEN lines belong to the TALLIED line that follows them.
                let tally = match open.take() {
                    Some((at, tally)) if at == view => tally,
                    _ => Tally::new(),
                };
                self.open = Some((view, tally));
            }
            ("FIFOERR", _) => self.fifo_errors.push(line.to_owned()),
            _ => {}
        }
    }

    /// Deliveries per sender in views `from` and later (TALLY lines, plus the
    /// latest OPEN lines).
    pub fn delivered_since(&self, from: u64) -> BTreeMap<String, u64> {
        let mut sums = BTreeMap::new();
        let ended = self.ended.iter().map(|ended| (ended.view, &ended.tally));
        let open = self.open.iter().map(|(view, tally)| (*view, tally));
        for (view, tally) in ended.chain(open) {
            if view >= from {
                for (sender, (count, _)) in tally {
                    *sums.entry(sender.clone()).or_insert(0) += count;
                }
            }
        }
        sums
    }

    /// The latest group view this member installed.
    pub fn last_view(&self) -> Option<&ViewRecord> {
        self.views.last()
    }
}

/// Every member's log for `group`, labelled by index and node.
pub fn logs(cluster: &Cluster, group: &str) -> Vec<MemberLog> {
    cluster
        .members
        .iter()
        .enumerate()
        .map(|(index, member)| {
            let label = format!("member {index} (node {})", member.node);
            MemberLog::parse(&label, &member.lines, group)
        })
        .collect()
}

/// Runs every check over the members' logs of `group`.
///
/// # Errors
/// The first broken property, with the members and views concerned.
pub fn check(logs: &[MemberLog]) -> Result<Checked, String> {
    for log in logs {
        if let Some(problem) = log.problems.first() {
            return Err(format!("{}: {problem}", log.label));
        }
        if let Some(error) = log.fifo_errors.first() {
            return Err(format!(
                "{}: FIFO broken ({} lines), first: {error}",
                log.label,
                log.fifo_errors.len()
            ));
        }
    }
    let domain = agreement(logs, |log| &log.domain_views, "domain view")?;
    let group = agreement(logs, |log| &log.views, "group view")?;
    primary_partition(logs)?;
    let tallies = view_synchrony(logs)? + open_tallies(logs)?;
    Ok(Checked {
        views: domain + group,
        tallies,
    })
}

/// Same id, same view; ids grow by one within an incarnation. Returns how
/// many installs met one made elsewhere.
fn agreement(
    logs: &[MemberLog],
    views: impl Fn(&MemberLog) -> &Vec<ViewRecord>,
    what: &str,
) -> Result<usize, String> {
    let mut seen: BTreeMap<u64, (&ViewRecord, &str)> = BTreeMap::new();
    let mut compared = 0;
    for log in logs {
        let mut previous: Option<&ViewRecord> = None;
        for view in views(log) {
            if let Some(previous) = previous {
                let same_life = previous.own.is_some() && previous.own == view.own;
                if (same_life && view.id != previous.id + 1) || view.id <= previous.id {
                    return Err(format!(
                        "{}: {what} {} follows {what} {}",
                        log.label, view.id, previous.id
                    ));
                }
            }
            previous = Some(view);
            let key = |view: &ViewRecord| {
                let mut view = view.clone();
                view.own = None;
                view
            };
            match seen.get(&view.id) {
                Some((other, label)) if key(other) != key(view) => {
                    return Err(format!(
                        "{what} {} differs: {label} installed {other:?}, {} installed {view:?}",
                        view.id, log.label
                    ));
                }
                Some(_) => compared += 1,
                None => {
                    seen.insert(view.id, (view, &log.label));
                }
            }
        }
    }
    Ok(compared)
}

/// Consecutive domain views: the later keeps more than half of the earlier.
fn primary_partition(logs: &[MemberLog]) -> Result<(), String> {
    let mut chain: BTreeMap<u64, &str> = BTreeMap::new();
    for log in logs {
        for view in &log.domain_views {
            chain.insert(view.id, &view.members);
        }
    }
    for (id, members) in &chain {
        let Some(next) = chain.get(&(id + 1)) else {
            continue;
        };
        let before: Vec<&str> = members.split(',').collect();
        let kept = next.split(',').filter(|m| before.contains(m)).count();
        if 2 * kept <= before.len() {
            return Err(format!(
                "domain view {} = [{next}] keeps {kept} of view {id} = [{members}]: not a majority",
                id + 1
            ));
        }
    }
    Ok(())
}

fn compare_tallies(a: (&Tally, &str), b: (&Tally, &str), what: &str) -> Result<usize, String> {
    let none = (0, "none".to_owned());
    let senders: std::collections::BTreeSet<&String> = a.0.keys().chain(b.0.keys()).collect();
    for &sender in &senders {
        let left = a.0.get(sender).unwrap_or(&none);
        let right = b.0.get(sender).unwrap_or(&none);
        if left != right {
            return Err(format!(
                "{what}, sender {sender}: {} delivered {} (digest {}), {} delivered {} (digest {})",
                a.1, left.0, left.1, b.1, right.0, right.1
            ));
        }
    }
    Ok(senders.len())
}

/// Members with the same (view, next view) transition delivered the same.
fn view_synchrony(logs: &[MemberLog]) -> Result<usize, String> {
    let mut seen: BTreeMap<(u64, u64), (&Tally, &str)> = BTreeMap::new();
    let mut compared = 0;
    for log in logs {
        for ended in log.ended.iter().filter(|ended| !ended.first) {
            let what = format!("view {} (then {})", ended.view, ended.next);
            match seen.get(&(ended.view, ended.next)) {
                Some(&other) => {
                    compared += compare_tallies(other, (&ended.tally, &log.label), &what)?;
                }
                None => {
                    seen.insert((ended.view, ended.next), (&ended.tally, &log.label));
                }
            }
        }
    }
    Ok(compared)
}

/// The latest OPEN tallies of members in the same view agree.
fn open_tallies(logs: &[MemberLog]) -> Result<usize, String> {
    let mut seen: BTreeMap<u64, (&Tally, &str)> = BTreeMap::new();
    let mut compared = 0;
    for log in logs {
        let Some((view, tally)) = &log.open else {
            continue;
        };
        // A member's first view is exempt here too (it may be a joiner's).
        if log.views.len() <= 1 {
            continue;
        }
        let what = format!("current view {view}");
        match seen.get(view) {
            Some(&other) => compared += compare_tallies(other, (tally, &log.label), &what)?,
            None => {
                seen.insert(*view, (tally, &log.label));
            }
        }
    }
    Ok(compared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Vec<String> {
        text.lines().map(|line| line.trim().to_owned()).collect()
    }

    fn parse(text: &str) -> MemberLog {
        MemberLog::parse("m", &lines(text), "g")
    }

    const FOUNDER: &str = "READY 1 127.0.0.1:1
        DVIEW 1 1.1
        VIEW g 1 1.1 1.1 - -
        DVIEW 2 1.1,2.1
        TALLY g 1 1.1 3 00aa
        VIEW g 2 1.1,2.1 2.1 - -
        DVIEW 3 1.1,2.1,3.1
        TALLY g 2 1.1 5 00bb
        TALLY g 2 2.1 4 00cc
        VIEW g 3 1.1,2.1,3.1 3.1 - -";
    const JOINER: &str = "READY 2 127.0.0.1:2
        DVIEW 2 1.1,2.1
        VIEW g 2 1.1,2.1 2.1 - -
        DVIEW 3 1.1,2.1,3.1
        TALLY g 2 1.1 1 0011
        VIEW g 3 1.1,2.1,3.1 3.1 - -
        OPEN g 3 1.1 7 00dd
        TALLIED g 3 10 0";

    #[test]
    fn agreeing_members_pass_and_a_joiners_first_view_is_exempt() {
        let mut founder = parse(FOUNDER);
        founder.open = Some((3, Tally::from([("1.1".into(), (7, "00dd".into()))])));
        let logs = [founder, parse(JOINER)];
        let checked = check(&logs).unwrap();
        assert_eq!(checked.views, 4, "domain 2, 3 and group 2, 3 met twice");
        assert_eq!(
            checked.tallies, 1,
            "the open view; view 2 is the joiner's first"
        );
        assert_eq!(logs[1].delivered_since(3)["1.1"], 7);
        assert_eq!(logs[0].delivered_since(1)["2.1"], 4);
    }

    #[test]
    fn a_different_tally_is_caught() {
        let other = FOUNDER.replace("TALLY g 2 2.1 4 00cc", "TALLY g 2 2.1 3 00ce");
        let error = check(&[parse(FOUNDER), parse(&other)]).unwrap_err();
        assert!(error.contains("sender 2.1"), "{error}");
        let missing = FOUNDER.replace("TALLY g 2 2.1 4 00cc", "");
        let error = check(&[parse(&missing), parse(FOUNDER)]).unwrap_err();
        assert!(error.contains("delivered 0"), "{error}");
    }

    #[test]
    fn a_different_view_or_a_skipped_id_is_caught() {
        let other = JOINER.replace("VIEW g 3 1.1,2.1,3.1 3.1", "VIEW g 3 2.1,1.1,3.1 3.1");
        let error = check(&[parse(FOUNDER), parse(&other)]).unwrap_err();
        assert!(error.contains("group view 3 differs"), "{error}");
        let skipped = JOINER.replace("VIEW g 3 ", "VIEW g 4 ");
        let error = check(&[parse(&skipped)]).unwrap_err();
        assert!(
            error.contains("group view 4 follows group view 2"),
            "{error}"
        );
    }

    #[test]
    fn a_minority_view_and_fifo_errors_are_caught() {
        let minority = "READY 1 x\nDVIEW 1 1.1,2.1,3.1\nDVIEW 2 1.1";
        let error = check(&[parse(minority)]).unwrap_err();
        assert!(error.contains("not a majority"), "{error}");
        let fifo = format!("{FOUNDER}\nFIFOERR g 3 2.1 8 7");
        let error = check(&[parse(&fifo)]).unwrap_err();
        assert!(error.contains("FIFO broken"), "{error}");
    }
}
