//! The application-facing vocabulary of the multicast family: send kinds,
//! flush and query handles (docs/ordering.md says which to use when).

use std::time::Duration;

use crate::id::{GroupId, MemberId};

/// How a multicast is ordered; reported with every delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SendKind {
    /// Send: FIFO per sender.
    Fifo,
    /// CausalSend: after every message its sender had delivered.
    Causal,
    /// OrderedSend: one total order with every Ordered and Safe message.
    Ordered,
    /// SafeSend: Ordered, and uniform: delivered once every member has it.
    Safe,
}

/// Names one `flush` call; `Event::Flushed` repeats it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlushId(pub u64);

/// Names one query of this node; its replies and markers repeat it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryId(pub u64);

/// A query as a responder sees it; hand it back to `Node::reply`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueryRef {
    pub group: GroupId,
    pub caller: MemberId,
    pub id: QueryId,
}

/// Which members answer a query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryTarget {
    /// Every member of the view (the caller included).
    All,
    /// One member, rotating over the view from call to call.
    One,
    /// `k` members (all if the view is smaller), rotating like `One`.
    K(u32),
}

/// How the request is delivered among the group's other traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryOrder {
    /// FIFO with the caller's other messages (cheapest).
    Fifo,
    /// In the total order of OrderedSend and SafeSend.
    Total,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuerySpec {
    pub target: QueryTarget,
    pub order: QueryOrder,
    /// `Event::QueryDone { timed_out: true }` comes this long after the call
    /// if some responder neither answered nor failed.
    pub timeout: Duration,
}
