//! Views as the application sees them: the domain view and group views.
//! Members are listed by rank: oldest first. Rank 0 of the domain view leads
//! the membership protocol.

use crate::id::{GroupId, MemberId, ViewId};

/// A domain member and how to reach it (an address the core never parses).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: MemberId,
    pub addr: String,
}

/// An installed domain view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainView {
    pub id: ViewId,
    /// Ranked oldest first.
    pub members: Vec<MemberInfo>,
}

impl DomainView {
    pub fn contains(&self, member: MemberId) -> bool {
        self.members.iter().any(|info| info.id == member)
    }

    pub fn rank_of(&self, member: MemberId) -> Option<usize> {
        self.members.iter().position(|info| info.id == member)
    }

    /// The smallest number of members that is more than half of this view.
    pub fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }
}

/// An installed group view, reported identically to every member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupView {
    pub group: GroupId,
    pub name: String,
    /// Starts at 1 with the group's first view and grows by one per change.
    pub id: u64,
    /// Ranked oldest first.
    pub members: Vec<MemberId>,
    pub joined: Vec<MemberId>,
    pub left: Vec<MemberId>,
    pub failed: Vec<MemberId>,
}
