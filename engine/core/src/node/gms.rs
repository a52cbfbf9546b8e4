//! Domain membership (the GMS) and the flush, as one protocol.
//!
//! Deciding view v+1 is a single-slot Paxos whose value carries the flush of
//! epoch v (docs/protocol.md):
//! 1. The acting leader (oldest member it does not suspect) sends
//!    `Prepare(ballot)` to the members of v.
//! 2. A member promises: it stops sending and delivering in epoch v
//!    (`wedged`), and answers with its digest (per group and sender, the
//!    highest contiguous seq received), every unstable message it holds, and
//!    any proposal it already accepted.
//! 3. With promises from every unsuspected member (or, at the deadline, a
//!    majority of v), the leader re-proposes the highest-ballot accepted
//!    proposal if there is one (the inquiry phase of a takeover: it completes
//!    an interrupted change), else builds a new one: survivors = promisers
//!    minus suspects and leavers, plus joiners; the cut = per sender the
//!    highest seq any promiser received; the carried messages = what some
//!    survivor lacks. The proposal is self-contained.
//! 4. `Accept` → `Accepted` from a majority of v → `Commit` to everyone.
//!    Installing delivers up to the cut (carried messages fill gaps), drops
//!    the rest, and opens epoch v+1.
//!
//! A minority cannot promise or accept: it installs nothing.

use std::collections::{BTreeMap, BTreeSet};

use super::group::LocalGroup;
use super::{Dest, Node, Queued, Status, StopReason};
use crate::config::InjectedBug;
use crate::id::{Ballot, GroupId, MemberId, NodeId, ViewId};
use crate::time::Instant;
use crate::view::{DomainView, GroupView, MemberInfo};
use crate::wire::{
    AckEntry, CarriedMsg, GroupDigest, GroupRecord, Header, JoinRequest, Msg, Promise, Proposal,
};

/// Deadlines a leader waits for a promise from a member it still hears from
/// before it suspects it anyway (it may hear heartbeats but never a promise).
const PREPARE_PATIENCE: u32 = 4;

/// The installed domain state: the view and every group's membership.
#[derive(Debug)]
pub(super) struct DomainState {
    pub(super) view: DomainView,
    /// Per node, the highest incarnation that may never come back.
    pub(super) retired: BTreeMap<NodeId, u32>,
    pub(super) groups: BTreeMap<GroupId, GroupRecord>,
}

impl DomainState {
    fn from_proposal(proposal: &Proposal) -> DomainState {
        DomainState {
            view: DomainView {
                id: proposal.view,
                members: proposal.members.clone(),
            },
            retired: proposal
                .retired
                .iter()
                .map(|member| (member.node, member.incarnation.0))
                .collect(),
            groups: proposal
                .groups
                .iter()
                .map(|record| (record.id, record.clone()))
                .collect(),
        }
    }

    /// Whether frames from `member` must be refused: it, or a later
    /// incarnation of its node, was excluded or replaced.
    pub(super) fn is_retired(&self, member: MemberId) -> bool {
        let floor = self.retired.get(&member.node).copied().unwrap_or(0);
        let newer_in_view =
            self.view.members.iter().any(|info| {
                info.id.node == member.node && info.id.incarnation > member.incarnation
            });
        member.incarnation.0 <= floor || newer_in_view
    }
}

/// What this member promised and accepted for the next view.
#[derive(Debug, Default)]
pub(super) struct Acceptor {
    promised: Ballot,
    accepted: Option<(Ballot, Proposal)>,
    /// Promised: no sending or delivering in this epoch until the next view.
    pub(super) wedged: bool,
    /// Highest ballot round seen for the next view (to outbid it).
    round_seen: u32,
}

/// Changes the acting leader will propose.
#[derive(Debug, Default)]
pub(super) struct Pending {
    joins: BTreeMap<NodeId, JoinRequest>,
    leaves: BTreeSet<MemberId>,
    group_changes: BTreeMap<(MemberId, GroupId), (String, bool)>,
    /// A run failed; try again even if nothing else is pending.
    rerun: bool,
}

impl Pending {
    pub(super) fn has_work(&self) -> bool {
        !self.joins.is_empty()
            || !self.leaves.is_empty()
            || !self.group_changes.is_empty()
            || self.rerun
    }
}

#[derive(Debug)]
enum Phase {
    Preparing {
        promises: BTreeMap<MemberId, Promise>,
    },
    Accepting {
        proposal: Proposal,
        accepted: BTreeSet<MemberId>,
    },
}

/// A view change this node runs as leader.
#[derive(Debug)]
pub(super) struct LeaderRun {
    ballot: Ballot,
    phase: Phase,
    started: Instant,
    pub(super) deadline: Instant,
    pub(super) resend_at: Instant,
}

impl Node {
    /// Members of the view this node accepted for its next view, if any (a
    /// proposal that may be decided: a simulator's oracle needs it to know
    /// which failures the domain can still survive).
    pub fn accepted_view_members(&self) -> Option<Vec<MemberId>> {
        let (_, proposal) = self.acceptor.accepted.as_ref()?;
        Some(proposal.members.iter().map(|info| info.id).collect())
    }

    pub(super) fn bootstrap(&mut self, now: Instant) {
        let proposal = Proposal {
            view: ViewId(1),
            members: vec![MemberInfo {
                id: self.me,
                addr: self.config.addr.clone(),
            }],
            retired: Vec::new(),
            groups: Vec::new(),
            cut: Vec::new(),
            carried: Vec::new(),
        };
        self.install(now, proposal);
    }

    pub(super) fn on_control(
        &mut self,
        now: Instant,
        header: &Header,
        is_member: bool,
        msg: Msg<'_>,
    ) {
        match msg {
            Msg::Join(request) => self.on_join(now, request),
            Msg::Commit { proposal } => self.on_commit(now, *proposal),
            Msg::CommitRequest { view } => self.on_commit_request(header.sender, view),
            Msg::Excluded { view, member } if member == self.me => self.on_excluded(now, view),
            _ if !is_member => {}
            Msg::Heartbeat if header.view < self.view_id() => self.send_last_commit(header.sender),
            Msg::GroupChange { member, name, join } => self.on_group_change(member, name, join),
            Msg::Leave { member } => self.on_leave(member),
            Msg::Suspect { suspects } => {
                self.adopt_reported_suspicions(now, header.sender, &suspects)
            }
            Msg::Prepare { ballot } => self.on_prepare(header, ballot),
            Msg::Promise(promise) => self.on_promise(header, *promise),
            Msg::Reject { promised } => self.on_reject(now, promised),
            Msg::Accept { ballot, proposal } => self.on_accept(header, ballot, *proposal),
            Msg::Accepted { ballot } => self.on_accepted(header, ballot),
            _ => {}
        }
    }

    // ----- requests that the leader collects -------------------------------

    fn forward_to_leader(&mut self, msg: &Msg<'_>) -> bool {
        match self.acting_leader() {
            Some(leader) if leader == self.me => false,
            Some(leader) => {
                self.send_control(Dest::Member(leader), msg);
                true
            }
            None => true,
        }
    }

    fn on_join(&mut self, now: Instant, request: JoinRequest) {
        let Some(domain) = &self.domain else { return };
        let joiner = request.member.id;
        if domain.is_retired(joiner) {
            self.notify_excluded(joiner, now);
            return;
        }
        if domain.view.contains(joiner) {
            self.send_last_commit(joiner);
            return;
        }
        if self.forward_to_leader(&Msg::Join(request.clone())) {
            return;
        }
        let replace = self
            .pending
            .joins
            .get(&joiner.node)
            .is_none_or(|old| old.member.id.incarnation <= joiner.incarnation);
        if replace {
            self.pending.joins.insert(joiner.node, request);
        }
    }

    fn on_group_change(&mut self, member: MemberId, name: String, join: bool) {
        let change = Msg::GroupChange {
            member,
            name: name.clone(),
            join,
        };
        if self.forward_to_leader(&change) {
            return;
        }
        self.pending
            .group_changes
            .insert((member, GroupId::from_name(&name)), (name, join));
    }

    fn on_leave(&mut self, member: MemberId) {
        if self.forward_to_leader(&Msg::Leave { member }) {
            return;
        }
        self.pending.leaves.insert(member);
    }

    fn send_last_commit(&mut self, to: MemberId) {
        if let Some(last) = &self.last_commit {
            if last.members.iter().any(|info| info.id == to) {
                let msg = Msg::Commit {
                    proposal: Box::new(last.clone()),
                };
                self.send_control(Dest::Member(to), &msg);
            }
        }
    }

    fn on_commit_request(&mut self, from: MemberId, view: ViewId) {
        let next = self.last_commit.as_ref().map(|last| last.view);
        if next == Some(view.next()) || view == ViewId(0) {
            self.send_last_commit(from);
        }
    }

    fn on_excluded(&mut self, now: Instant, view: ViewId) {
        match self.status {
            Status::Joining => self.rejoin_as_new_incarnation(now),
            Status::Member if view > self.view_id() => self.rejoin_as_new_incarnation(now),
            _ => {}
        }
    }

    // ----- acceptor ----------------------------------------------------------

    /// Promise `ballot` (and wedge) unless a higher one was promised, in
    /// which case the proposer is told so. Returns whether it was admitted.
    fn admit_ballot(&mut self, proposer: MemberId, ballot: Ballot) -> bool {
        self.acceptor.round_seen = self.acceptor.round_seen.max(ballot.round);
        if ballot < self.acceptor.promised {
            let promised = self.acceptor.promised;
            self.send_control(Dest::Member(proposer), &Msg::Reject { promised });
            return false;
        }
        self.acceptor.promised = ballot;
        self.acceptor.wedged = true;
        true
    }

    fn on_prepare(&mut self, header: &Header, ballot: Ballot) {
        if header.view != self.view_id() {
            if header.view < self.view_id() {
                self.send_last_commit(header.sender);
            }
            return;
        }
        if !self.admit_ballot(header.sender, ballot) {
            return;
        }
        let promise = Promise {
            ballot,
            accepted: self.acceptor.accepted.clone(),
            digests: self.flush_digests(),
            carried: self.flush_carried(),
        };
        self.send_control(
            Dest::Member(header.sender),
            &Msg::Promise(Box::new(promise)),
        );
    }

    fn on_accept(&mut self, header: &Header, ballot: Ballot, proposal: Proposal) {
        if header.view != self.view_id() || proposal.view != self.view_id().next() {
            return;
        }
        if !self.admit_ballot(header.sender, ballot) {
            return;
        }
        self.acceptor.accepted = Some((ballot, proposal));
        self.send_control(Dest::Member(header.sender), &Msg::Accepted { ballot });
    }

    fn flush_digests(&self) -> Vec<GroupDigest> {
        self.groups
            .iter()
            .map(|(group, local)| GroupDigest {
                group: *group,
                has_state: local.has_state,
                received: local
                    .streams
                    .iter()
                    .map(|stream| AckEntry {
                        sender: stream.sender,
                        hi: stream.hi,
                    })
                    .collect(),
            })
            .collect()
    }

    fn flush_carried(&self) -> Vec<CarriedMsg> {
        let mut carried = Vec::new();
        for (group, local) in &self.groups {
            for stream in &local.streams {
                for (seq, stored) in stream.unstable() {
                    carried.push(CarriedMsg {
                        group: *group,
                        sender: stream.sender,
                        seq,
                        tag: stored[0],
                        payload: stored[1..].to_vec(),
                    });
                }
            }
        }
        carried
    }

    fn on_commit(&mut self, now: Instant, proposal: Proposal) {
        let contains_me = proposal.members.iter().any(|info| info.id == self.me);
        match &self.domain {
            None if contains_me => self.install(now, proposal),
            None => {}
            Some(domain) if proposal.view == domain.view.id.next() => self.install(now, proposal),
            Some(domain) if proposal.view > domain.view.id.next() && !contains_me => {
                self.rejoin_as_new_incarnation(now)
            }
            Some(_) => {}
        }
    }

    // ----- leader ------------------------------------------------------------

    fn on_promise(&mut self, header: &Header, promise: Promise) {
        if header.view != self.view_id() {
            return;
        }
        if let Some(LeaderRun {
            ballot,
            phase: Phase::Preparing { promises },
            ..
        }) = &mut self.leader
        {
            if promise.ballot == *ballot {
                promises.insert(header.sender, promise);
            }
        }
    }

    fn on_accepted(&mut self, header: &Header, ballot: Ballot) {
        if header.view != self.view_id() {
            return;
        }
        if let Some(LeaderRun {
            ballot: ours,
            phase: Phase::Accepting { accepted, .. },
            ..
        }) = &mut self.leader
        {
            if ballot == *ours {
                accepted.insert(header.sender);
            }
        }
    }

    fn on_reject(&mut self, now: Instant, promised: Ballot) {
        self.acceptor.round_seen = self.acceptor.round_seen.max(promised.round);
        if self
            .leader
            .as_ref()
            .is_some_and(|run| promised > run.ballot)
        {
            self.abort_run(now);
        }
    }

    fn abort_run(&mut self, now: Instant) {
        self.leader = None;
        self.pending.rerun = true;
        let timeout = self.config.view_change_timeout;
        let jitter = self.rng.below(timeout.as_nanos() as u64 / 2 + 1);
        self.next_run_at = now + timeout / 2 + std::time::Duration::from_nanos(jitter);
    }

    /// Move the leader's view change along. Returns true if it did something.
    pub(super) fn leader_tick(&mut self, now: Instant) -> bool {
        if self.domain.is_none() || self.is_stopped() {
            return false;
        }
        if self.acting_leader() != Some(self.me) {
            return self.leader.take().is_some();
        }
        let Some(run) = &self.leader else {
            return self.maybe_start_run(now);
        };
        if self.acceptor.promised > run.ballot {
            self.abort_run(now);
            return true;
        }
        match &run.phase {
            Phase::Preparing { .. } => self.advance_prepare(now),
            Phase::Accepting { .. } => self.advance_accept(now),
        }
    }

    /// Whether this node, as acting leader, has a change to propose.
    pub(super) fn leader_has_work(&self) -> bool {
        let Some(domain) = &self.domain else {
            return false;
        };
        let suspects_in_view = self
            .suspects
            .iter()
            .any(|member| domain.view.contains(*member));
        (self.pending.has_work() || suspects_in_view) && self.acting_leader() == Some(self.me)
    }

    fn maybe_start_run(&mut self, now: Instant) -> bool {
        if !self.leader_has_work() || now < self.next_run_at {
            return false;
        }
        let ballot = Ballot {
            round: self.acceptor.round_seen.max(self.acceptor.promised.round) + 1,
            node: self.me.node.0,
        };
        self.acceptor.round_seen = ballot.round;
        let timeout = self.config.view_change_timeout;
        self.leader = Some(LeaderRun {
            ballot,
            phase: Phase::Preparing {
                promises: BTreeMap::new(),
            },
            started: now,
            deadline: now + timeout,
            resend_at: now + timeout / 4,
        });
        self.pending.rerun = false;
        for member in self.unsuspected_members() {
            self.send_control(Dest::Member(member), &Msg::Prepare { ballot });
        }
        true
    }

    fn unsuspected_members(&self) -> Vec<MemberId> {
        let domain = self.domain.as_ref().expect("member");
        domain
            .view
            .members
            .iter()
            .map(|info| info.id)
            .filter(|member| !self.suspects.contains(member))
            .collect()
    }

    fn advance_prepare(&mut self, now: Instant) -> bool {
        let needed = self.unsuspected_members();
        let majority = self.domain.as_ref().expect("member").view.majority();
        let run = self.leader.as_mut().expect("running");
        let Phase::Preparing { promises } = &run.phase else {
            unreachable!()
        };
        let missing: Vec<MemberId> = needed
            .iter()
            .copied()
            .filter(|member| !promises.contains_key(member))
            .collect();
        if missing.is_empty() && promises.len() >= majority {
            return self.propose(now);
        }
        if now >= run.deadline {
            // Members still heard from are only slow (or their answers were
            // lost): keep asking, up to PREPARE_PATIENCE deadlines. Members
            // the failure detector also finds silent are suspected now.
            let timeout = self.config.view_change_timeout;
            let patience_over = now >= run.started + timeout * PREPARE_PATIENCE;
            let silent: Vec<MemberId> = missing
                .iter()
                .copied()
                .filter(|member| {
                    patience_over
                        || self.last_heard.get(member).is_none_or(|heard| {
                            now.saturating_since(*heard) > self.config.suspect_timeout
                        })
                })
                .collect();
            if silent.len() < missing.len() {
                run.deadline = now + timeout / 2;
            }
            let enough = promises.len() >= majority;
            let all_silent = silent.len() == missing.len();
            self.suspect(now, &silent, super::detector::Suspicion::Observed);
            if self.is_stopped() || !all_silent {
                return true;
            }
            if enough {
                return self.propose(now);
            }
            self.abort_run(now);
            return true;
        }
        if now >= run.resend_at {
            run.resend_at = now + self.config.view_change_timeout / 4;
            let ballot = run.ballot;
            for member in missing {
                self.send_control(Dest::Member(member), &Msg::Prepare { ballot });
            }
            return true;
        }
        false
    }

    fn propose(&mut self, now: Instant) -> bool {
        let run = self.leader.as_mut().expect("running");
        let Phase::Preparing { promises } = std::mem::replace(
            &mut run.phase,
            Phase::Preparing {
                promises: BTreeMap::new(),
            },
        ) else {
            unreachable!()
        };
        let ballot = run.ballot;
        let proposal = self.build_proposal(&promises);
        let timeout = self.config.view_change_timeout;
        let run = self.leader.as_mut().expect("running");
        run.deadline = now + timeout;
        run.resend_at = now + timeout / 4;
        let acceptors: Vec<MemberId> = promises.keys().copied().collect();
        for member in &acceptors {
            let msg = Msg::Accept {
                ballot,
                proposal: Box::new(proposal.clone()),
            };
            self.send_control(Dest::Member(*member), &msg);
        }
        let run = self.leader.as_mut().expect("running");
        run.phase = Phase::Accepting {
            proposal,
            accepted: BTreeSet::new(),
        };
        true
    }

    fn advance_accept(&mut self, now: Instant) -> bool {
        let domain = self.domain.as_ref().expect("member");
        let majority = domain.view.majority();
        let run = self.leader.as_mut().expect("running");
        let Phase::Accepting { proposal, accepted } = &run.phase else {
            unreachable!()
        };
        let votes = accepted
            .iter()
            .filter(|member| domain.view.contains(**member))
            .count();
        if votes >= majority {
            let proposal = proposal.clone();
            self.commit(proposal);
            return true;
        }
        if now >= run.deadline {
            self.abort_run(now);
            return true;
        }
        if now >= run.resend_at {
            run.resend_at = now + self.config.view_change_timeout / 4;
            let ballot = run.ballot;
            let missing: Vec<MemberId> = domain
                .view
                .members
                .iter()
                .map(|info| info.id)
                .filter(|member| !accepted.contains(member) && !self.suspects.contains(member))
                .collect();
            let proposal = proposal.clone();
            for member in missing {
                let msg = Msg::Accept {
                    ballot,
                    proposal: Box::new(proposal.clone()),
                };
                self.send_control(Dest::Member(member), &msg);
            }
            return true;
        }
        false
    }

    fn commit(&mut self, proposal: Proposal) {
        self.leader = None;
        let domain = self.domain.as_ref().expect("member");
        let mut targets: BTreeSet<MemberId> = proposal.members.iter().map(|info| info.id).collect();
        targets.extend(domain.view.members.iter().map(|info| info.id));
        targets.remove(&self.me);
        let msg = Msg::Commit {
            proposal: Box::new(proposal),
        };
        for member in targets {
            self.send_control(Dest::Member(member), &msg);
        }
        self.send_control(Dest::Member(self.me), &msg);
    }

    /// The next view from the promises (see the module comment).
    fn build_proposal(&self, promises: &BTreeMap<MemberId, Promise>) -> Proposal {
        if let Some((_, adopted)) = promises
            .values()
            .filter_map(|promise| promise.accepted.as_ref())
            .max_by_key(|(ballot, _)| *ballot)
        {
            return adopted.clone();
        }
        let domain = self.domain.as_ref().expect("member");
        let mut retired = domain.retired.clone();
        let mut retire = |member: MemberId| {
            let floor = retired.entry(member.node).or_insert(0);
            *floor = (*floor).max(member.incarnation.0);
        };

        // Joiners, newest incarnation per node, that are not retired.
        let joiners: Vec<&JoinRequest> = self
            .pending
            .joins
            .values()
            .filter(|request| {
                !domain.is_retired(request.member.id) && !domain.view.contains(request.member.id)
            })
            .collect();
        let replaced = |member: MemberId| {
            joiners.iter().any(|request| {
                request.member.id.node == member.node
                    && request.member.id.incarnation > member.incarnation
            })
        };
        let mut members: Vec<MemberInfo> = Vec::new();
        let mut failed: BTreeSet<MemberId> = BTreeSet::new();
        let mut leaving: BTreeSet<MemberId> = BTreeSet::new();
        // A suspected member that promised is alive after all. It is excluded
        // only if the others keep a majority of the view without it, so that
        // every new view contains a majority of the old one (counting members
        // that leave of their own will).
        let answered = |member: MemberId| promises.contains_key(&member) && !replaced(member);
        let staying = domain
            .view
            .members
            .iter()
            .filter(|info| answered(info.id) && !self.suspects.contains(&info.id))
            .count();
        let leavers = domain
            .view
            .members
            .iter()
            .filter(|info| self.pending.leaves.contains(&info.id))
            .count();
        let keep_suspected = staying + leavers < domain.view.majority();
        for info in &domain.view.members {
            let member = info.id;
            if self.pending.leaves.contains(&member) {
                leaving.insert(member);
                retire(member);
            } else if !answered(member) || (self.suspects.contains(&member) && !keep_suspected) {
                failed.insert(member);
                retire(member);
            } else {
                members.push(info.clone());
            }
        }
        let survivors: BTreeSet<MemberId> = members.iter().map(|info| info.id).collect();
        members.extend(joiners.iter().map(|request| request.member.clone()));
        let in_view: BTreeSet<MemberId> = members.iter().map(|info| info.id).collect();

        // Group joins and leaves asked for, by group.
        let mut group_joins: BTreeMap<GroupId, (String, Vec<MemberId>)> = BTreeMap::new();
        let mut group_leaves: BTreeSet<(MemberId, GroupId)> = BTreeSet::new();
        for ((member, group), (name, join)) in &self.pending.group_changes {
            if !in_view.contains(member) {
                continue;
            }
            if *join {
                group_joins
                    .entry(*group)
                    .or_insert_with(|| (name.clone(), Vec::new()))
                    .1
                    .push(*member);
            } else {
                group_leaves.insert((*member, *group));
            }
        }
        for request in &joiners {
            for name in &request.groups {
                let group = GroupId::from_name(name);
                group_joins
                    .entry(group)
                    .or_insert_with(|| (name.clone(), Vec::new()))
                    .1
                    .push(request.member.id);
            }
        }

        let has_state = |member: MemberId, group: GroupId| {
            promises.get(&member).is_some_and(|promise| {
                promise
                    .digests
                    .iter()
                    .any(|digest| digest.group == group && digest.has_state)
            })
        };
        let mut groups = Vec::new();
        for record in domain.groups.values() {
            let mut next = record.clone();
            next.members.retain(|member| {
                in_view.contains(member) && !group_leaves.contains(&(*member, record.id))
            });
            if let Some((name, wanting)) = group_joins.remove(&record.id) {
                if name == record.name {
                    for member in wanting {
                        if !next.members.contains(&member) {
                            next.members.push(member);
                        }
                    }
                }
            }
            // An emptied group keeps its record (a tombstone), so that a group
            // created again under the same name goes on numbering its views.
            if next.members != record.members {
                next.view_id += 1;
                next.joined = next
                    .members
                    .iter()
                    .copied()
                    .filter(|member| !record.members.contains(member))
                    .collect();
                let gone = record
                    .members
                    .iter()
                    .copied()
                    .filter(|member| !next.members.contains(member));
                let (left, lost): (Vec<MemberId>, Vec<MemberId>) = gone.partition(|member| {
                    leaving.contains(member) || group_leaves.contains(&(*member, record.id))
                });
                next.left = left;
                next.failed = lost;
            } else {
                next.joined.clear();
                next.left.clear();
                next.failed.clear();
            }
            next.loading = next
                .members
                .iter()
                .copied()
                .filter(|member| {
                    !survivors.contains(member)
                        || !has_state(*member, record.id)
                        || next.joined.contains(member)
                })
                .collect();
            groups.push(next);
        }
        for (group, (name, wanting)) in group_joins {
            let mut members: Vec<MemberId> = Vec::new();
            for member in wanting {
                if !members.contains(&member) {
                    members.push(member);
                }
            }
            groups.push(GroupRecord {
                id: group,
                name,
                view_id: 1,
                joined: members.clone(),
                loading: members.clone(),
                members,
                left: Vec::new(),
                failed: Vec::new(),
            });
        }

        let (cut, carried) = self.flush_cut(promises);
        Proposal {
            view: domain.view.id.next(),
            members,
            retired: retired
                .into_iter()
                .map(|(node, incarnation)| MemberId::new(node.0, incarnation))
                .collect(),
            groups,
            cut,
            carried,
        }
    }

    /// Per group and sender of the ending epoch: the highest seq any promiser
    /// received, and the messages some promiser (staying or leaving) may lack.
    fn flush_cut(
        &self,
        promises: &BTreeMap<MemberId, Promise>,
    ) -> (Vec<(GroupId, AckEntry)>, Vec<CarriedMsg>) {
        let mut cut: BTreeMap<(GroupId, MemberId), u64> = BTreeMap::new();
        // Lowest seq held by any promiser in the group, per sender: members
        // that leave get what they lack too, so that they deliver the epoch
        // exactly as those that stay (same set, same total order).
        let mut floor: BTreeMap<(GroupId, MemberId), u64> = BTreeMap::new();
        for promise in promises.values() {
            for digest in &promise.digests {
                for entry in &digest.received {
                    let key = (digest.group, entry.sender);
                    let hi = cut.entry(key).or_insert(0);
                    *hi = (*hi).max(entry.hi);
                    let low = floor.entry(key).or_insert(u64::MAX);
                    *low = (*low).min(entry.hi);
                }
            }
        }
        let mut carried: BTreeMap<(GroupId, MemberId, u64), &CarriedMsg> = BTreeMap::new();
        if self.config.inject_bug != Some(InjectedBug::FlushSkipsRetransmission) {
            for promise in promises.values() {
                for message in &promise.carried {
                    let key = (message.group, message.sender);
                    let needed = cut.get(&key).is_some_and(|hi| message.seq <= *hi)
                        && floor.get(&key).is_some_and(|low| message.seq > *low);
                    if needed {
                        carried
                            .entry((message.group, message.sender, message.seq))
                            .or_insert(message);
                    }
                }
            }
        }
        let cut = cut
            .into_iter()
            .map(|((group, sender), hi)| (group, AckEntry { sender, hi }))
            .collect();
        let carried = carried.into_values().cloned().collect();
        (cut, carried)
    }

    // ----- installing a view -------------------------------------------------

    pub(super) fn install(&mut self, now: Instant, proposal: Proposal) {
        let contains_me = proposal.members.iter().any(|info| info.id == self.me);
        // An excluded member delivers nothing of the flush: it may not have
        // promised, so it may lack what the cut was built from (announcements
        // of the total order), and its incarnation is over anyway. A member
        // that leaves promised and delivers like the survivors.
        if self.domain.is_some() && (contains_me || self.leave_requested) {
            let groups: Vec<GroupId> = self.groups.keys().copied().collect();
            for group in groups {
                self.apply_cut(group, &proposal);
            }
        }
        if !contains_me {
            if self.domain.is_none() {
                return;
            }
            if self.leave_requested {
                let groups = std::mem::take(&mut self.groups);
                for (_, local) in groups {
                    local.release(&mut self.pool);
                }
                self.domain = None;
                self.stop(StopReason::Left);
                self.linger = Some(super::Linger {
                    resend_at: now + self.config.nak_delay * 4,
                    until: now + self.config.suspect_timeout,
                    commit: proposal,
                });
            } else {
                self.rejoin_as_new_incarnation(now);
            }
            return;
        }
        self.acceptor = Acceptor::default();
        self.leader = None;
        self.status = Status::Member;
        self.stats.views_installed += 1;
        let domain = DomainState::from_proposal(&proposal);
        // A suspicion outlives the view only while the member stays silent:
        // a crashed leader stays suspected (the takeover goes on at once),
        // a member heard from since a partition healed does not.
        let timeout = self.config.suspect_timeout;
        let last_heard = &self.last_heard;
        let still_silent = |member: &MemberId| {
            domain.view.contains(*member)
                && last_heard
                    .get(member)
                    .is_none_or(|heard| now.saturating_since(*heard) > timeout)
        };
        self.suspects.retain(still_silent);
        self.observed.retain(still_silent);
        self.last_heard
            .retain(|member, _| domain.view.contains(*member));
        for info in &domain.view.members {
            self.last_heard.entry(info.id).or_insert(now);
        }
        self.emit(Queued::DomainView(domain.view.clone()));
        self.domain = Some(domain);
        self.heartbeat_cursor = 0;

        let mut old_groups = std::mem::take(&mut self.groups);
        for record in &proposal.groups {
            if !record.members.contains(&self.me) {
                continue;
            }
            let old = old_groups.remove(&record.id);
            let announce = old.as_ref().is_none_or(|old| old.view.id != record.view_id);
            let view = GroupView {
                group: record.id,
                name: record.name.clone(),
                id: record.view_id,
                members: record.members.clone(),
                joined: record.joined.clone(),
                left: record.left.clone(),
                failed: record.failed.clone(),
            };
            let has_state = !record.loading.contains(&self.me);
            let mut local = LocalGroup::new(view.clone(), proposal.view, self.me, has_state, now);
            if self.durable.contains_key(&record.id) {
                for stream in &mut local.streams {
                    stream.durable = true;
                }
            }
            if let Some(mut old) = old {
                local.deferred = std::mem::take(&mut old.deferred);
                old.release(&mut self.pool);
            }
            if announce {
                self.emit(Queued::GroupView(view));
            }
            self.groups.insert(record.id, local);
            self.plan_transfer(record, proposal.view);
            self.release_deferred(record.id);
            self.after_group_install(record.id);
        }
        for (group, local) in old_groups {
            local.release(&mut self.pool);
            self.emit(Queued::GroupLeft { group });
            self.after_group_install(group);
        }
        self.prune_requests();
        self.last_commit = Some(proposal);
    }

    /// Deliver the ending epoch up to the cut, filling gaps from the carried
    /// messages, in the order rules of every kind (the unordered tail of the
    /// total order by rank), and drop the rest.
    fn apply_cut(&mut self, group: GroupId, proposal: &Proposal) {
        let carry = self.config.inject_bug != Some(InjectedBug::FlushSkipsRetransmission);
        let deliver_anyway = self.config.inject_bug == Some(InjectedBug::DeliverBeforeStateLoad);
        let Some(local) = self.groups.get_mut(&group) else {
            return;
        };
        let has_state = local.has_state || deliver_anyway;
        let mut limits = Vec::with_capacity(local.streams.len());
        for stream in &mut local.streams {
            let sender = stream.sender;
            let limit = proposal
                .cut
                .iter()
                .find(|(cut_group, entry)| *cut_group == group && entry.sender == sender)
                .map_or(stream.delivered, |(_, entry)| entry.hi);
            if carry {
                for message in proposal
                    .carried
                    .iter()
                    .filter(|m| m.group == group && m.sender == sender && m.seq <= limit)
                {
                    let (seq, tag) = (message.seq, message.tag);
                    stream.insert(seq, tag, &message.payload, &mut self.pool, u64::MAX);
                }
            }
            limits.push(limit);
        }
        if has_state {
            // Every survivor holds the same messages up to the cut: the
            // same trimming and the same order follow (docs/ordering.md).
            super::ordering::trim_causal(local, &mut limits);
            self.deliver_epoch(group, Some(&limits));
        }
    }

    /// Forget requests the installed view satisfies.
    fn prune_requests(&mut self) {
        let domain = self.domain.as_ref().expect("member");
        self.pending.joins.retain(|_, request| {
            !domain.view.contains(request.member.id) && !domain.is_retired(request.member.id)
        });
        self.pending
            .leaves
            .retain(|member| domain.view.contains(*member));
        self.pending
            .group_changes
            .retain(|(member, group), (_, join)| {
                domain.view.contains(*member)
                    && domain
                        .groups
                        .get(group)
                        .is_some_and(|record| record.members.contains(member))
                        != *join
            });
        self.pending.rerun = false;
        let groups = &self.groups;
        self.wanted
            .retain(|group, wanted| groups.contains_key(group) != wanted.join);
    }
}
