//! Typed errors: API misuse, bad configuration, malformed frames.

use std::fmt;

use crate::id::{GroupId, MemberId};
use crate::kinds::QueryRef;

/// What the application did wrong, or why the node cannot do it now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// The node is not (yet) a member of a domain view.
    NotInDomain,
    /// The node has stopped (left, disconnected, or excluded without rejoin).
    Stopped,
    /// Sending to, or leaving, a group this node is not a member of.
    NotJoined(GroupId),
    /// Joining a group this node is already a member of, or joining.
    AlreadyJoined(GroupId),
    /// A group name that is empty or longer than `GROUP_NAME_MAX`.
    BadGroupName,
    /// Another group name hashes to the same id.
    GroupIdCollision(GroupId),
    /// The payload is larger than the configured `payload_max`.
    PayloadTooLarge { len: usize, max: usize },
    /// The send window and the queue behind it are full: the group's slowest
    /// member is behind. Retry after `poll_transmit`/`handle_*` made progress.
    SendQueueFull(GroupId),
    /// `provide_checkpoint` without an outstanding checkpoint request for the group.
    NoCheckpointRequested(GroupId),
    /// The checkpoint is larger than `STATE_BYTES_MAX`.
    CheckpointTooLarge { len: usize, max: usize },
    /// `send_to` a member that is not in the group's current view.
    NotAMember { group: GroupId, member: MemberId },
    /// `reply` to a query this node did not receive, or answered already.
    UnknownQuery(QueryRef),
    /// A query spec that cannot work (`K(0)`, or more targets than the wire holds).
    InvalidQuery(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotInDomain => write!(f, "the node is not a member of a domain view yet"),
            Error::Stopped => write!(f, "the node has stopped"),
            Error::NotJoined(group) => write!(f, "not a member of group {:#x}", group.0),
            Error::AlreadyJoined(group) => write!(f, "already a member of group {:#x}", group.0),
            Error::BadGroupName => write!(f, "group name must be 1 to 255 bytes"),
            Error::GroupIdCollision(group) => {
                write!(f, "another group name hashes to id {:#x}", group.0)
            }
            Error::PayloadTooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds payload_max {max}")
            }
            Error::SendQueueFull(group) => write!(f, "send queue of group {:#x} is full", group.0),
            Error::NoCheckpointRequested(group) => {
                write!(f, "no checkpoint was requested for group {:#x}", group.0)
            }
            Error::CheckpointTooLarge { len, max } => {
                write!(f, "checkpoint of {len} bytes exceeds {max}")
            }
            Error::NotAMember { group, member } => {
                write!(f, "{member} is not a member of group {:#x}", group.0)
            }
            Error::UnknownQuery(query) => write!(
                f,
                "no outstanding query {} from {} in group {:#x}",
                query.id.0, query.caller, query.group.0
            ),
            Error::InvalidQuery(why) => write!(f, "invalid query: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// A configuration value that cannot work.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config field `{}`: {}", self.field, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Why a byte string is not a valid frame. Decoding never panics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The input ended inside the named structure.
    Truncated(&'static str),
    BadMagic(u16),
    UnsupportedVersion(u8),
    UnknownMessageTag(u8),
    /// A length, count or enum value is out of its range.
    Invalid(&'static str),
    /// Bytes left over after the last sub-message.
    TrailingBytes(usize),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated(what) => write!(f, "frame truncated in {what}"),
            DecodeError::BadMagic(magic) => write!(f, "bad magic {magic:#06x}"),
            DecodeError::UnsupportedVersion(version) => {
                write!(f, "unsupported wire version {version}")
            }
            DecodeError::UnknownMessageTag(tag) => write!(f, "unknown sub-message tag {tag}"),
            DecodeError::Invalid(what) => write!(f, "invalid {what}"),
            DecodeError::TrailingBytes(count) => {
                write!(f, "{count} trailing bytes after the last sub-message")
            }
        }
    }
}

impl std::error::Error for DecodeError {}
