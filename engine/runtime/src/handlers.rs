//! Upcalls. Every handler runs **on the node's data-plane thread**, one at a
//! time, in the order the core produced the events. A handler borrows what it
//! is given (a delivered payload is a slice of the core's buffer, valid only
//! during the call: copy what you keep). A handler that blocks stalls the
//! whole node (no receive, no send, no heartbeats): hand slow work to a
//! thread of your own.

use std::fmt;

use osiris_core::durable::RecoveredMessage;
use osiris_core::{
    DomainView, GroupId, GroupView, MemberId, NodeStats, QueryRef, SendKind, StopReason,
};
use osiris_transport::TransportStats;

/// A delivered message, borrowed for the duration of the upcall.
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    pub group: GroupId,
    pub sender: MemberId,
    /// How it was sent. A point-to-point message (`Group::send_to`) is `Fifo`
    /// with `point_to_point` set.
    pub kind: SendKind,
    pub point_to_point: bool,
    pub payload: &'a [u8],
}

/// A query this member must answer, borrowed for the upcall. Return the
/// reply from the handler, or keep `handle` and call `Group::reply` later
/// (from any thread).
#[derive(Debug, Clone, Copy)]
pub struct QueryRequest<'a> {
    pub group: GroupId,
    pub from: MemberId,
    pub handle: QueryRef,
    pub payload: &'a [u8],
}

/// What a query collected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryResult {
    /// Replies, in arrival order.
    pub replies: Vec<(MemberId, Vec<u8>)>,
    /// Responders that left the view before replying.
    pub failed: Vec<MemberId>,
    /// Some responder neither replied nor failed within the timeout.
    pub timed_out: bool,
}

pub(crate) type ViewHandler = Box<dyn FnMut(&GroupView) + Send>;
pub(crate) type MessageHandler = Box<dyn FnMut(&Message<'_>) + Send>;
pub(crate) type QueryHandler = Box<dyn FnMut(&QueryRequest<'_>) -> Option<Vec<u8>> + Send>;
pub(crate) type CheckpointHandler = Box<dyn FnMut() -> Vec<u8> + Send>;
pub(crate) type LoadHandler = Box<dyn FnMut(&[u8]) + Send>;
pub(crate) type RecoveredHandler = Box<dyn FnMut(&[RecoveredMessage]) + Send>;
pub(crate) type DomainViewHandler = Box<dyn FnMut(&DomainView) + Send>;
pub(crate) type StopHandler = Box<dyn FnMut(StopReason) + Send>;

/// The handlers of one group (registered with `GroupBuilder` before `join`).
#[derive(Default)]
pub(crate) struct GroupHandlers {
    pub view: Option<ViewHandler>,
    pub message: Option<MessageHandler>,
    pub query: Option<QueryHandler>,
    pub checkpoint: Option<CheckpointHandler>,
    pub load: Option<LoadHandler>,
    /// Set for a durable group: receives the SafeSends recovered from its log.
    pub recovered: Option<RecoveredHandler>,
}

impl fmt::Debug for GroupHandlers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupHandlers")
            .field("view", &self.view.is_some())
            .field("message", &self.message.is_some())
            .field("query", &self.query.is_some())
            .field("checkpoint", &self.checkpoint.is_some())
            .field("load", &self.load.is_some())
            .field("durable", &self.recovered.is_some())
            .finish()
    }
}

/// Node-wide handlers (registered on the builder).
#[derive(Default)]
pub(crate) struct NodeHandlers {
    pub domain_view: Option<DomainViewHandler>,
    pub stopped: Option<StopHandler>,
}

/// Counters of a running node: the core's, the transports', and the data
/// plane's own.
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub struct RuntimeStats {
    pub node: NodeStats,
    pub unicast: TransportStats,
    pub multicast: Option<TransportStats>,
    /// Duty cycles run.
    pub cycles: u64,
    /// Times the data plane blocked (block-on-event, or backoff's last phase).
    pub blocks: u64,
    /// Sends taken from the submission ring.
    pub submissions: u64,
    /// Cycles that left sends in the ring because the core's send window and
    /// queue were full (flow control holding the application back).
    pub send_stalls: u64,
    /// Sends the core refused (reported, rate-limited, on stderr).
    pub send_errors: u64,
    /// Frames with no known address for their destination (dropped).
    pub unroutable: u64,
    /// Our own IP multicast frames looped back to us (dropped).
    pub own_echoes: u64,
}
