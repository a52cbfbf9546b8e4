//! The `Node`: one process's protocol state. PLACEHOLDER bodies while the
//! protocol is written; the signatures are the contract.

use crate::config::Config;
use crate::error::{ConfigError, Error};
use crate::id::{GroupId, MemberId};
use crate::time::Instant;
use crate::view::{DomainView, GroupView};

/// Where a frame goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dest {
    /// One domain member.
    Member(MemberId),
    /// Every member of the group except the sender (IP multicast or fan-out;
    /// `Node::group_members` lists them).
    Group(GroupId),
    /// The configured seed address with this index.
    Seed(u16),
}

/// A frame written by `poll_transmit` into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    pub dest: Dest,
    pub len: usize,
}

/// Why a node stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// `leave` completed.
    Left,
    /// It lost contact with a majority of its view (primary partition).
    Disconnected,
    /// It was excluded and `rejoin_on_exclusion` is off.
    Excluded,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Not yet in a domain view.
    Joining,
    Member,
    Stopped(StopReason),
}

/// Things the application must see, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    DomainView(DomainView),
    GroupView(GroupView),
    /// A multicast delivered in the current group view. The payload is valid
    /// until the next `poll_event`.
    Delivered { group: GroupId, sender: MemberId, payload: &'a [u8] },
    /// Produce the group's state now: it is the state at the view boundary.
    /// Call `provide_checkpoint` before the next `poll_event` (which returns
    /// nothing until then).
    CheckpointRequested { group: GroupId, view_id: u64 },
    /// This joiner's state for the group; comes before any delivery in the
    /// group. `fresh` means no member held state (new group): start empty.
    StateLoaded { group: GroupId, state: &'a [u8], fresh: bool },
    /// This node left the group (its own `leave_group`).
    GroupLeft { group: GroupId },
    /// This incarnation was excluded; if rejoining, `new_id` is the next one.
    Excluded { old_id: MemberId, new_id: Option<MemberId> },
    Stopped(StopReason),
}

/// Counters for operators and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeStats {
    pub frames_received: u64,
    pub frames_malformed: u64,
    pub frames_from_strangers: u64,
    pub frames_stale: u64,
    pub frames_sent: u64,
    pub messages_sent: u64,
    pub messages_delivered: u64,
    pub retransmissions: u64,
    pub naks_sent: u64,
    pub views_installed: u64,
}

#[derive(Debug)]
pub struct Node {
    _private: (),
}

impl Node {
    pub fn new(config: Config, now: Instant) -> Result<Node, ConfigError> {
        let _ = (config, now);
        unimplemented!()
    }
    pub fn member_id(&self) -> MemberId {
        unimplemented!()
    }
    pub fn status(&self) -> Status {
        unimplemented!()
    }
    pub fn domain_view(&self) -> Option<&DomainView> {
        unimplemented!()
    }
    pub fn group_view(&self, group: GroupId) -> Option<&GroupView> {
        let _ = group;
        unimplemented!()
    }
    /// Members of the group's current view, ranked (for multicast fan-out).
    pub fn group_members(&self, group: GroupId) -> &[MemberId] {
        let _ = group;
        unimplemented!()
    }
    /// Whether this node leads the domain (rank 0 of its view).
    pub fn is_leader(&self) -> bool {
        unimplemented!()
    }
    /// Whether this node is running a view change as leader right now.
    pub fn is_proposing(&self) -> bool {
        unimplemented!()
    }
    pub fn stats(&self) -> &NodeStats {
        unimplemented!()
    }
    pub fn handle_packet(&mut self, now: Instant, bytes: &[u8]) {
        let _ = (now, bytes);
        unimplemented!()
    }
    pub fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
        unimplemented!()
    }
    pub fn join_group(&mut self, now: Instant, name: &str) -> Result<GroupId, Error> {
        let _ = (now, name);
        unimplemented!()
    }
    pub fn leave_group(&mut self, now: Instant, group: GroupId) -> Result<(), Error> {
        let _ = (now, group);
        unimplemented!()
    }
    pub fn send(&mut self, now: Instant, group: GroupId, payload: &[u8]) -> Result<(), Error> {
        let _ = (now, group, payload);
        unimplemented!()
    }
    pub fn provide_checkpoint(&mut self, now: Instant, group: GroupId, state: &[u8]) -> Result<(), Error> {
        let _ = (now, group, state);
        unimplemented!()
    }
    pub fn leave(&mut self, now: Instant) -> Result<(), Error> {
        let _ = now;
        unimplemented!()
    }
    #[must_use]
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut Vec<u8>) -> Option<Transmit> {
        let _ = (now, buf);
        unimplemented!()
    }
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event<'_>> {
        unimplemented!()
    }
    pub fn next_timeout(&self) -> Option<Instant> {
        unimplemented!()
    }
}
