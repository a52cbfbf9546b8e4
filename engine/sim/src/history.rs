//! The recorded history of a run: every event at every node, every command the
//! workload issued and every fault the simulator injected, stamped with virtual
//! time, the node and the member id (incarnation) it happened at.
//!
//! The checkers (`crate::check`) read only this history (and, for liveness, a
//! final snapshot), so each can be unit-tested on small synthetic histories.
//! Records are appended in virtual-time order.

use std::fmt;

use osiris_core::{
    DomainView, GroupId, GroupView, MemberId, QueryId, QueryRef, SendKind, StopReason,
};

/// Identity of one workload message: which member incarnation sent it and its
/// per-incarnation counter (1, 2, 3, ... across all of its groups).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MsgId {
    pub sender: MemberId,
    pub counter: u64,
}

impl fmt::Display for MsgId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.sender, self.counter)
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// A `Node` was created (first start or restart).
    Started {
        bootstrap: bool,
    },
    /// The process crashed: all its state is gone.
    Crashed,
    DomainView(DomainView),
    /// A group view installed at this member, with the member's serialized app
    /// state for the group at the install (None while it has not loaded state).
    GroupView {
        view: GroupView,
        state: Option<Vec<u8>>,
    },
    /// `payload_hash` is the FNV-1a hash of the whole payload; `msg` is None if
    /// the payload does not decode as a workload message (then it is invented).
    Delivered {
        group: GroupId,
        sender: MemberId,
        msg: Option<MsgId>,
        payload_hash: u64,
        probe: bool,
        kind: SendKind,
    },
    /// `send` (of that kind) returned Ok for this message.
    Sent {
        group: GroupId,
        msg: MsgId,
        payload_hash: u64,
        probe: bool,
        kind: SendKind,
    },
    /// `query` returned Ok; `all`: the view the caller saw, for `QueryTarget::All`.
    QuerySent {
        group: GroupId,
        id: QueryId,
        all: Option<Vec<MemberId>>,
    },
    /// A query request reached this member (it replies at once).
    QueryRequest {
        query: QueryRef,
    },
    QueryReply {
        id: QueryId,
        from: MemberId,
    },
    QueryFailed {
        id: QueryId,
        member: MemberId,
    },
    QueryDone {
        id: QueryId,
        timed_out: bool,
    },
    CheckpointRequested {
        group: GroupId,
        view_id: u64,
    },
    /// The state handed to `provide_checkpoint` for the request (group, view_id).
    CheckpointProvided {
        group: GroupId,
        view_id: u64,
        state: Vec<u8>,
    },
    /// `replaced`: the app state this load overwrote, if the member already held one.
    StateLoaded {
        group: GroupId,
        state: Vec<u8>,
        fresh: bool,
        replaced: Option<Vec<u8>>,
    },
    GroupLeft {
        group: GroupId,
    },
    Excluded {
        old_id: MemberId,
        new_id: Option<MemberId>,
    },
    Stopped(StopReason),
    /// `leave` returned Ok: the member asked to leave the domain.
    LeaveRequested,
    /// Every node crashed at this instant (node-less record): the durable
    /// checker compares what was delivered before it with what the logs
    /// give back after it, and the other checkers see a new domain after it.
    TotalFailure,
    /// At a restart, the SafeSend sequence `osiris_core::durable::recover`
    /// rebuilt from this node's log of a durable group, handed to the
    /// application before it joins.
    Recovered {
        group: GroupId,
        messages: Vec<RecoveredEntry>,
    },
    /// An application command and its outcome, for the trace.
    Command(String),
    /// A network fault or phase change (node-less records use node = None).
    Note(String),
}

/// One message of a recovered sequence, as the checkers compare it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveredEntry {
    pub sender: MemberId,
    /// None if the payload does not decode as a workload message.
    pub msg: Option<MsgId>,
    pub payload_hash: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Virtual time in nanoseconds.
    pub time: u64,
    /// Simulator node index (== NodeId), None for global records.
    pub node: Option<usize>,
    /// The member (node incarnation) the record belongs to.
    pub member: MemberId,
    pub kind: RecordKind,
}

/// One line of a human-readable trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    pub time: u64,
    pub node: Option<usize>,
    pub text: String,
}

impl fmt::Display for TraceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let millis = self.time / 1_000_000;
        let micros = (self.time / 1_000) % 1_000;
        match self.node {
            Some(node) => write!(f, "{millis:>6}.{micros:03}ms n{node:<2} {}", self.text),
            None => write!(f, "{millis:>6}.{micros:03}ms --- {}", self.text),
        }
    }
}

/// Short, stable rendering of a group id for traces.
pub fn group_label(group: GroupId) -> String {
    format!("g:{:04x}", group.0 & 0xffff)
}

fn members_text(members: &[MemberId]) -> String {
    let names: Vec<String> = members.iter().map(ToString::to_string).collect();
    format!("[{}]", names.join(" "))
}

fn state_text(state: &[u8]) -> String {
    format!("{} bytes h={:016x}", state.len(), fnv1a(state))
}

impl Record {
    pub fn to_trace_line(&self) -> TraceLine {
        let text = match &self.kind {
            RecordKind::Started { bootstrap } => {
                format!("{} started (bootstrap={bootstrap})", self.member)
            }
            RecordKind::Crashed => format!("{} CRASHED", self.member),
            RecordKind::DomainView(view) => {
                let members: Vec<MemberId> = view.members.iter().map(|info| info.id).collect();
                format!(
                    "{} domain view {} {}",
                    self.member,
                    view.id.0,
                    members_text(&members)
                )
            }
            RecordKind::GroupView { view, state } => format!(
                "{} group view {} '{}' #{} {} joined={} left={} failed={} state={}",
                self.member,
                group_label(view.group),
                view.name,
                view.id,
                members_text(&view.members),
                members_text(&view.joined),
                members_text(&view.left),
                members_text(&view.failed),
                state
                    .as_deref()
                    .map_or_else(|| "loading".to_string(), state_text),
            ),
            RecordKind::Delivered {
                group,
                sender,
                msg,
                payload_hash,
                probe,
                kind,
            } => format!(
                "{} deliver {kind:?} {} from {} msg {} h={payload_hash:016x}{}",
                self.member,
                group_label(*group),
                sender,
                msg.map_or_else(|| "<undecodable>".to_string(), |id| id.to_string()),
                if *probe { " PROBE" } else { "" },
            ),
            RecordKind::Sent {
                group,
                msg,
                payload_hash,
                probe,
                kind,
            } => format!(
                "{} send {kind:?} {} msg {msg} h={payload_hash:016x}{}",
                self.member,
                group_label(*group),
                if *probe { " PROBE" } else { "" },
            ),
            RecordKind::QuerySent { group, id, all } => format!(
                "{} query {} #{} to {}",
                self.member,
                group_label(*group),
                id.0,
                all.as_deref()
                    .map_or_else(|| "some".to_string(), members_text)
            ),
            RecordKind::QueryRequest { query } => format!(
                "{} query request #{} from {}",
                self.member, query.id.0, query.caller
            ),
            RecordKind::QueryReply { id, from } => {
                format!("{} query #{} reply from {from}", self.member, id.0)
            }
            RecordKind::QueryFailed { id, member } => {
                format!("{} query #{} FAILED {member}", self.member, id.0)
            }
            RecordKind::QueryDone { id, timed_out } => format!(
                "{} query #{} done{}",
                self.member,
                id.0,
                if *timed_out { " TIMED OUT" } else { "" }
            ),
            RecordKind::CheckpointRequested { group, view_id } => {
                format!(
                    "{} checkpoint requested {} view #{view_id}",
                    self.member,
                    group_label(*group)
                )
            }
            RecordKind::CheckpointProvided {
                group,
                view_id,
                state,
            } => format!(
                "{} checkpoint provided {} view #{view_id} {}",
                self.member,
                group_label(*group),
                state_text(state)
            ),
            RecordKind::StateLoaded {
                group,
                state,
                fresh,
                replaced,
            } => format!(
                "{} state loaded {} fresh={fresh} {}{}",
                self.member,
                group_label(*group),
                state_text(state),
                replaced.as_deref().map_or_else(String::new, |old| format!(
                    " (RELOAD over {})",
                    state_text(old)
                )),
            ),
            RecordKind::GroupLeft { group } => {
                format!("{} left group {}", self.member, group_label(*group))
            }
            RecordKind::Excluded { old_id, new_id } => format!(
                "EXCLUDED {old_id}, rejoining as {}",
                new_id.map_or_else(|| "-".to_string(), |id| id.to_string())
            ),
            RecordKind::Stopped(reason) => format!("{} STOPPED {reason:?}", self.member),
            RecordKind::LeaveRequested => format!("{} leave domain -> Ok", self.member),
            RecordKind::TotalFailure => "=== TOTAL FAILURE: every node crashes ===".to_string(),
            RecordKind::Recovered { group, messages } => {
                let ids: Vec<String> = messages
                    .iter()
                    .map(|entry| {
                        entry
                            .msg
                            .map_or_else(|| "<undecodable>".to_string(), |id| id.to_string())
                    })
                    .collect();
                format!(
                    "{} recovered {} SafeSends of {} from its log: [{}]",
                    self.member,
                    messages.len(),
                    group_label(*group),
                    ids.join(" ")
                )
            }
            RecordKind::Command(text) => format!("{} {text}", self.member),
            RecordKind::Note(text) => text.clone(),
        };
        TraceLine {
            time: self.time,
            node: self.node,
            text,
        }
    }
}

/// FNV-1a, 64-bit: payload and state fingerprints (stable, dependency-free).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    fnv1a_continue(0xcbf2_9ce4_8422_2325, bytes)
}

/// Continue an FNV-1a hash from `hash` over `bytes`.
pub fn fnv1a_continue(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
