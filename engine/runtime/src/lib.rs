//! osiris-runtime: runs the sans-IO protocol core (`osiris-core`) over a real
//! transport (`osiris-transport`), and gives applications the Rust API.
//!
//! ```no_run
//! use osiris_runtime::{Node, RuntimeConfig};
//! # fn main() -> Result<(), osiris_runtime::RuntimeError> {
//! let mut config = RuntimeConfig::new(1, "127.0.0.1:7001".parse().unwrap());
//! config.core.bootstrap = true;
//! let node = Node::start(config)?;
//! let group = node
//!     .group("prices")
//!     .on_view(|view| println!("view {}: {:?}", view.id, view.members))
//!     .on_message(|message| println!("{} bytes from {}", message.payload.len(), message.sender))
//!     .join()?;
//! group.send(b"hello")?;
//! # Ok(()) }
//! ```
//!
//! Threads: one data-plane thread per node owns the core and the sockets and
//! runs every handler (see `docs/runtime.md`). Application threads reach it
//! through a lock-free submission ring (sends) and a channel (rare requests).

mod addresses;
mod config;
mod durable;
mod engine;
mod error;
mod group;
mod handlers;
mod idle;
mod node;
mod shared;

pub use config::{MulticastMode, RuntimeConfig};
pub use error::RuntimeError;
pub use group::{Group, GroupBuilder};
pub use handlers::{Message, QueryRequest, QueryResult, RuntimeStats};
pub use idle::{IdleAction, IdleStrategy, Idler};
pub use node::{Node, NodeBuilder};
pub use osiris_core::durable::RecoveredMessage;
pub use osiris_core::{
    DomainView, GroupId, GroupView, MemberId, QueryOrder, QueryRef, QuerySpec, QueryTarget,
    SendKind, StopReason,
};
