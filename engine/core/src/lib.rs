//! osiris-core: the sans-IO protocol core of Osiris.
//!
//! One [`Node`] holds one process's whole protocol state: domain membership
//! (the GMS), group views, view-synchronous multicast (FIFO, causal, total order, safe,
//! point to point, query) with its flush, and state transfer. It reads no clock, socket or unseeded randomness: time and
//! frames come in through `handle_*`, frames and events go out through
//! `poll_*`. The simulator (`osiris-sim`) and the runtime drive the same code.
#![forbid(unsafe_code)]

pub mod config;
pub mod durable;
pub mod error;
pub mod id;
pub mod kinds;
pub mod node;
mod pool;
mod rng;
pub mod time;
pub mod view;
pub mod wire;

pub use config::{Config, InjectedBug};
pub use error::{ConfigError, DecodeError, Error};
pub use id::{Ballot, GroupId, Incarnation, MemberId, NodeId, ViewId};
pub use kinds::{FlushId, QueryId, QueryOrder, QueryRef, QuerySpec, QueryTarget, SendKind};
pub use node::{Dest, Event, Node, NodeStats, Status, StopReason, Transmit};
pub use time::Instant;
pub use view::{DomainView, GroupView, MemberInfo};
