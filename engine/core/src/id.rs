//! Identities: nodes, their incarnations, groups, views and ballots.

use std::fmt;

/// A node's stable identity in a domain (configured, not generated).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u32);

/// Which life of a node this is. A node that was excluded, or that restarts,
/// comes back with a higher incarnation; frames from older ones are ignored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Incarnation(pub u32);

/// One incarnation of one node: the unit of membership.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId {
    pub node: NodeId,
    pub incarnation: Incarnation,
}

impl MemberId {
    pub fn new(node: u32, incarnation: u32) -> MemberId {
        MemberId {
            node: NodeId(node),
            incarnation: Incarnation(incarnation),
        }
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}.{}", self.node.0, self.incarnation.0)
    }
}

/// A group, named by the 64-bit FNV-1a hash of its name. Zero is reserved for
/// the domain itself (frames that belong to no group).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);

impl GroupId {
    pub const DOMAIN: GroupId = GroupId(0);

    pub fn from_name(name: &str) -> GroupId {
        const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
        const PRIME: u64 = 0x0000_0100_0000_01b3;
        let mut hash = OFFSET;
        for byte in name.as_bytes() {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(PRIME);
        }
        // Never collide with the reserved domain id.
        GroupId(hash.max(1))
    }
}

/// The id of a domain view. Domain view ids also number the epochs of
/// multicast: a data frame is sent in, and belongs to, one domain view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ViewId(pub u64);

impl ViewId {
    pub fn next(self) -> ViewId {
        ViewId(self.0 + 1)
    }
}

/// A Paxos-style ballot for deciding the next view: higher round wins, the
/// proposer's node id breaks ties. Ballots are totally ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ballot {
    pub round: u32,
    pub node: u32,
}
