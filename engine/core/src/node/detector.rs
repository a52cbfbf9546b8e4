//! Failure detection and the requests a member repeats until answered.
//!
//! Every member sends a heartbeat to every other member each
//! `heartbeat_period`; any frame counts as a sign of life. A member silent
//! for `suspect_timeout` is suspected. Suspicion is sticky (a suspected
//! member will be excluded, Isis-style) and is reported to the acting
//! leader: the oldest member its reporter does not suspect. A member that
//! suspects so many that the rest is no majority stops: primary partition.

use super::{Dest, Node, Status, StopReason, Transmit};
use crate::id::{GroupId, MemberId};
use crate::time::Instant;
use crate::wire::{FrameWriter, JoinRequest, Msg};

/// Why this node suspects a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Suspicion {
    /// It saw the member fall silent itself.
    Observed,
    /// Another member reported it; it is withdrawn if it would cost the majority.
    Reported,
}

fn unsuspected(
    view: &crate::view::DomainView,
    suspects: &std::collections::BTreeSet<MemberId>,
) -> usize {
    view.members
        .iter()
        .filter(|info| !suspects.contains(&info.id))
        .count()
}

impl Node {
    /// The oldest member of the view this node does not suspect.
    pub(super) fn acting_leader(&self) -> Option<MemberId> {
        let domain = self.domain.as_ref()?;
        domain
            .view
            .members
            .iter()
            .map(|info| info.id)
            .find(|member| !self.suspects.contains(member))
    }

    pub(super) fn detector_tick(&mut self, now: Instant) {
        let Some(domain) = &self.domain else { return };
        if now >= self.next_heartbeat_at {
            self.heartbeat_cursor = 0;
            self.next_heartbeat_at = now + self.config.heartbeat_period;
        }
        let timeout = self.config.suspect_timeout;
        let silent: Vec<MemberId> = domain
            .view
            .members
            .iter()
            .map(|info| info.id)
            .filter(|member| *member != self.me && !self.suspects.contains(member))
            .filter(|member| {
                self.last_heard
                    .get(member)
                    .is_some_and(|heard| now.saturating_since(*heard) > timeout)
            })
            .collect();
        if !silent.is_empty() {
            self.suspect(now, &silent, Suspicion::Observed);
        }
    }

    pub(super) fn detector_deadline(&self) -> Instant {
        let mut earliest = self.next_heartbeat_at;
        if let Some(domain) = &self.domain {
            for info in &domain.view.members {
                if info.id != self.me && !self.suspects.contains(&info.id) {
                    if let Some(heard) = self.last_heard.get(&info.id) {
                        earliest = earliest.min(
                            *heard
                                + self.config.suspect_timeout
                                + std::time::Duration::from_nanos(1),
                        );
                    }
                }
            }
        }
        earliest
    }

    /// Adopt suspicions another member reported, unless the reporter is
    /// itself suspected or adopting them would leave this node without a
    /// majority: a stale report from a member that was cut off must not
    /// make the majority side stop. Only a node's own observations stop it.
    pub(super) fn adopt_reported_suspicions(
        &mut self,
        now: Instant,
        reporter: MemberId,
        reported: &[MemberId],
    ) {
        let Some(domain) = &self.domain else { return };
        if self.suspects.contains(&reporter) {
            return;
        }
        let mut would_suspect = self.suspects.clone();
        would_suspect.extend(
            reported
                .iter()
                .copied()
                .filter(|member| *member != self.me && domain.view.contains(*member)),
        );
        let alive = domain
            .view
            .members
            .iter()
            .filter(|info| !would_suspect.contains(&info.id))
            .count();
        if alive < domain.view.majority() {
            return;
        }
        self.suspect(now, reported, Suspicion::Reported);
    }

    /// Add suspicions and tell the acting leader. If the unsuspected members
    /// are no longer a majority, first withdraw the suspicions this node only
    /// adopted from reports; stop (primary partition) only if its own
    /// observations leave it without a majority.
    pub(super) fn suspect(&mut self, now: Instant, members: &[MemberId], how: Suspicion) {
        let Some(domain) = &self.domain else { return };
        let mut added = Vec::new();
        for member in members {
            if *member == self.me || !domain.view.contains(*member) {
                continue;
            }
            if how == Suspicion::Observed {
                self.observed.insert(*member);
            }
            if self.suspects.insert(*member) {
                added.push(*member);
            }
        }
        let majority = domain.view.majority();
        if unsuspected(&domain.view, &self.suspects) < majority {
            self.suspects = self.observed.clone();
            if unsuspected(&domain.view, &self.suspects) < majority {
                self.stop(StopReason::Disconnected);
                return;
            }
            added.retain(|member| self.suspects.contains(member));
        }
        if added.is_empty() {
            return;
        }
        if let Some(leader) = self.acting_leader() {
            if leader == self.me {
                self.next_run_at = self.next_run_at.min(now);
            } else {
                self.send_control(Dest::Member(leader), &Msg::Suspect { suspects: added });
            }
        }
    }

    /// Heartbeats go out one frame per member, written straight into `buf`.
    pub(super) fn poll_heartbeat(&mut self, buf: &mut Vec<u8>) -> Option<Transmit> {
        let domain = self.domain.as_ref()?;
        while self.heartbeat_cursor < domain.view.members.len() {
            let target = domain.view.members[self.heartbeat_cursor].id;
            self.heartbeat_cursor += 1;
            if target == self.me {
                continue;
            }
            let header = crate::wire::Header {
                sender: self.me,
                view: domain.view.id,
                group: GroupId::DOMAIN,
                seq: 0,
            };
            let mut writer = FrameWriter::new(buf, &header);
            writer.push(&Msg::Heartbeat);
            let len = writer.finish();
            return Some(Transmit {
                dest: Dest::Member(target),
                len,
            });
        }
        None
    }

    /// Repeat what this node is waiting for: admission to the domain, group
    /// changes, its own leave.
    pub(super) fn request_tick(&mut self, now: Instant) {
        if now < self.next_request_at {
            return;
        }
        let jitter = self
            .rng
            .below(self.config.request_retry.as_nanos() as u64 / 4 + 1);
        self.next_request_at =
            now + self.config.request_retry + std::time::Duration::from_nanos(jitter);
        match self.status {
            Status::Joining => {
                let seeds = self.config.seeds.len();
                if seeds == 0 {
                    return;
                }
                let index = self.seed_cursor % seeds;
                self.seed_cursor += 1;
                let groups = self
                    .wanted
                    .values()
                    .filter(|wanted| wanted.join)
                    .map(|wanted| wanted.name.clone())
                    .collect();
                let member = crate::view::MemberInfo {
                    id: self.me,
                    addr: self.config.addr.clone(),
                };
                let request = Msg::Join(JoinRequest { member, groups });
                self.send_control(Dest::Seed(index as u16), &request);
            }
            Status::Member => {
                let Some(leader) = self.acting_leader() else {
                    return;
                };
                if self.leave_requested {
                    self.send_control(Dest::Member(leader), &Msg::Leave { member: self.me });
                }
                let changes: Vec<Msg<'static>> = self
                    .wanted
                    .values()
                    .map(|wanted| Msg::GroupChange {
                        member: self.me,
                        name: wanted.name.clone(),
                        join: wanted.join,
                    })
                    .collect();
                for change in changes {
                    self.send_control(Dest::Member(leader), &change);
                }
            }
            Status::Stopped(_) => {}
        }
    }

    /// Ask `peer` for the commit that installs our next view.
    pub(super) fn request_commit(&mut self, now: Instant, peer: MemberId) {
        if now < self.next_commit_request_at {
            return;
        }
        self.next_commit_request_at = now + self.config.nak_delay * 4;
        let view = self.view_id();
        self.send_control(Dest::Member(peer), &Msg::CommitRequest { view });
    }

    /// Tell a stranger it is not a member (rate-limited).
    pub(super) fn notify_excluded(&mut self, stranger: MemberId, now: Instant) {
        if now < self.next_excluded_notice_at {
            return;
        }
        self.next_excluded_notice_at = now + self.config.nak_delay * 4;
        let view = self.view_id();
        self.send_control(
            Dest::Member(stranger),
            &Msg::Excluded {
                view,
                member: stranger,
            },
        );
    }
}
