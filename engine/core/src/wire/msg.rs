//! The protocol's vocabulary: a frame is a header and a batch of sub-messages.
//!
//! Hot-path sub-messages (`Data`, `Ack`, `Nak`, `StateChunk`) borrow their
//! bytes from the received frame; control sub-messages, which are rare, own
//! theirs. See `docs/wire-format.md` for the byte layout.

use crate::id::{Ballot, GroupId, MemberId, ViewId};
use crate::view::MemberInfo;

pub const MAGIC: u16 = 0x4F53; // "OS"
pub const VERSION: u8 = 1;
/// Longest group name, in bytes.
pub const GROUP_NAME_MAX: usize = 255;
/// Longest member address, in bytes.
pub const ADDR_MAX: usize = 255;

/// Fixed-size frame header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Who sent the frame (node and incarnation).
    pub sender: MemberId,
    /// The sender's installed domain view when it built the frame; for data,
    /// the epoch the messages belong to.
    pub view: ViewId,
    /// The group the frame's data belongs to; `GroupId::DOMAIN` for control.
    pub group: GroupId,
    /// Sequence number of the frame's first `Data` sub-message; the i-th
    /// `Data` sub-message of the frame has sequence `seq + i`. Zero if none.
    pub seq: u64,
}

/// One entry of a receive vector: for `sender`, every message with sequence
/// `<= hi` has been received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckEntry {
    pub sender: MemberId,
    pub hi: u64,
}

/// A receive vector as it sits in a frame: `len / 16` entries of
/// (node u32, incarnation u32, hi u64), little-endian. Borrowed, so reading an
/// ack allocates nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckEntries<'a> {
    raw: &'a [u8],
}

impl<'a> AckEntries<'a> {
    pub const ENTRY_BYTES: usize = 16;

    /// Wrap raw entry bytes; `None` unless the length is a whole number of entries.
    pub fn from_raw(raw: &'a [u8]) -> Option<AckEntries<'a>> {
        (raw.len() % Self::ENTRY_BYTES == 0).then_some(AckEntries { raw })
    }

    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub fn len(&self) -> usize {
        self.raw.len() / Self::ENTRY_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = AckEntry> + 'a {
        self.raw.chunks_exact(Self::ENTRY_BYTES).map(|chunk| {
            let word = |range: std::ops::Range<usize>| {
                let mut bytes = [0u8; 8];
                bytes[..range.len()].copy_from_slice(&chunk[range]);
                u64::from_le_bytes(bytes)
            };
            AckEntry {
                sender: MemberId::new(word(0..4) as u32, word(4..8) as u32),
                hi: word(8..16),
            }
        })
    }

    /// Append the encoding of `entries` to `out` (the inverse of `iter`).
    pub fn encode_into(entries: impl Iterator<Item = AckEntry>, out: &mut Vec<u8>) {
        for entry in entries {
            out.extend_from_slice(&entry.sender.node.0.to_le_bytes());
            out.extend_from_slice(&entry.sender.incarnation.0.to_le_bytes());
            out.extend_from_slice(&entry.hi.to_le_bytes());
        }
    }
}

/// A member's flush report for one group: whether it holds the group's state
/// and, per sender, the highest contiguous sequence it received this epoch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupDigest {
    pub group: GroupId,
    pub has_state: bool,
    pub received: Vec<AckEntry>,
}

/// A data message carried inside a control message so that the flush is
/// self-contained (a proposal holds every message some survivor may miss).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarriedMsg {
    pub group: GroupId,
    pub sender: MemberId,
    pub seq: u64,
    /// The message's data tag (its kind, `wire::data_tag`).
    pub tag: u8,
    /// The message's body (for FIFO `Data`, the payload).
    pub payload: Vec<u8>,
}

/// A group's membership as the domain state records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupRecord {
    pub id: GroupId,
    pub name: String,
    /// The group view id; grows by one each time `members` changes.
    pub view_id: u64,
    /// Ranked oldest first.
    pub members: Vec<MemberId>,
    pub joined: Vec<MemberId>,
    pub left: Vec<MemberId>,
    pub failed: Vec<MemberId>,
    /// Members that must (still) load the group's state in this view.
    pub loading: Vec<MemberId>,
}

/// The next domain state, as a leader proposes it: the new view, every
/// group, and the flush of the epoch that ends (cut and carried messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proposal {
    pub view: ViewId,
    /// Ranked oldest first.
    pub members: Vec<MemberInfo>,
    /// Per node, the highest incarnation ever excluded or retired: frames and
    /// join requests from that incarnation or older are refused.
    pub retired: Vec<MemberId>,
    pub groups: Vec<GroupRecord>,
    /// Per group and sender: the last sequence of the ending epoch that every
    /// survivor delivers. Messages above it are dropped by everyone.
    pub cut: Vec<(GroupId, AckEntry)>,
    /// Messages of the ending epoch that some survivor may not have.
    pub carried: Vec<CarriedMsg>,
}

/// What a member answers to a `Prepare`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promise {
    pub ballot: Ballot,
    /// The highest-ballot proposal this member accepted for the next view.
    pub accepted: Option<(Ballot, Proposal)>,
    pub digests: Vec<GroupDigest>,
    /// Every message of the epoch this member holds and does not know stable.
    pub carried: Vec<CarriedMsg>,
}

/// A request to join the domain, and the groups to join with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinRequest {
    pub member: MemberInfo,
    pub groups: Vec<String>,
}

/// Sub-messages. Tags are given in `docs/wire-format.md`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// A multicast payload; its sequence is implied by its place in the frame.
    Data {
        payload: &'a [u8],
    },
    /// A data message of another kind than FIFO (tags 19 to 25, see
    /// `wire::DataView`); takes a sequence number like `Data`. The decoder
    /// has validated `body` for `tag`.
    Typed {
        tag: u8,
        body: &'a [u8],
    },
    /// The sender holds messages of `header.group` it does not know stable:
    /// every member answers with its receive vector (`Ack`) soon. Without
    /// it, a member that believes everything stable stops repeating its
    /// vector, and a lost last ack would stall SafeSend and `flush` forever.
    AckWanted,
    /// The sender's receive vector for `header.group` in epoch `header.view`.
    Ack {
        entries: AckEntries<'a>,
    },
    /// Please resend `sender`'s messages `from..=to` of `header.group`, epoch `header.view`.
    Nak {
        sender: MemberId,
        from: u64,
        to: u64,
    },
    /// "I am alive", sent each heartbeat period to every domain member.
    Heartbeat,
    Join(JoinRequest),
    /// Add (`join`) or remove `member` to or from the named group.
    GroupChange {
        member: MemberId,
        name: String,
        join: bool,
    },
    /// `member` leaves the domain.
    Leave {
        member: MemberId,
    },
    /// The sender suspects these members.
    Suspect {
        suspects: Vec<MemberId>,
    },
    /// Phase 1 of a view change: stop sending in this epoch, promise.
    Prepare {
        ballot: Ballot,
    },
    Promise(Box<Promise>),
    /// Refused: the member promised `promised`, higher than the ballot.
    Reject {
        promised: Ballot,
    },
    /// Phase 2: accept this proposal for the next view.
    Accept {
        ballot: Ballot,
        proposal: Box<Proposal>,
    },
    Accepted {
        ballot: Ballot,
    },
    /// The proposal is decided: install it.
    Commit {
        proposal: Box<Proposal>,
    },
    /// Please send me the commit that installed `view`.
    CommitRequest {
        view: ViewId,
    },
    /// `member` (the receiver's incarnation this is about) is not a member
    /// of my view `view`: exclusions are final. A later incarnation of the
    /// same node ignores it.
    Excluded {
        view: ViewId,
        member: MemberId,
    },
    /// Part of the state of `group` for transfer `transfer` (the group view id).
    StateChunk {
        group: GroupId,
        transfer: u64,
        index: u32,
        total: u32,
        bytes: &'a [u8],
    },
    /// The joiner has chunks `0..next` of the transfer.
    StateAck {
        group: GroupId,
        transfer: u64,
        next: u32,
    },
}
