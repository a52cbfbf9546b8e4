//! The runtime's typed errors.

use std::fmt;

/// What went wrong, as the application sees it.
#[derive(Debug)]
#[non_exhaustive]
pub enum RuntimeError {
    /// A bad configuration value or file; the text says which and why.
    Config(String),
    /// The transport could not be set up (bind, socket option, multicast join).
    Transport(osiris_transport::TransportError),
    /// The protocol core refused the operation (not joined, bad name, ...).
    Core(osiris_core::Error),
    /// The data-plane thread could not be started or pinned.
    Thread(String),
    /// The operation did not complete in time (`join_timeout`, `send_timeout`).
    Timeout(&'static str),
    /// The node has stopped (shut down, left, excluded, or disconnected from
    /// the majority); nothing more can be sent.
    Stopped,
    /// The submission ring stayed full for `send_timeout`: the group's
    /// slowest member holds the sender back (flow control).
    Backpressure,
    /// A flush or query was abandoned (the node was excluded and rejoined
    /// as a new incarnation): its outcome is unknown.
    Interrupted(&'static str),
    /// The payload exceeds the configured `payload_max`.
    PayloadTooLarge { len: usize, max: usize },
    /// A durable group's log failed (open, append, fsync, rewrite). After a
    /// failed sync the node stops: nothing more may be acknowledged.
    Log(osiris_log::LogError),
    /// A durable group's log holds something this runtime cannot use.
    Durable(String),
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeError::Config(what) => write!(f, "bad configuration: {what}"),
            RuntimeError::Transport(error) => write!(f, "transport: {error}"),
            RuntimeError::Core(error) => write!(f, "{error}"),
            RuntimeError::Thread(what) => write!(f, "data-plane thread: {what}"),
            RuntimeError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            RuntimeError::Stopped => write!(f, "the node has stopped"),
            RuntimeError::Backpressure => write!(
                f,
                "the submission ring stayed full for send_timeout (a slow member holds senders back)"
            ),
            RuntimeError::PayloadTooLarge { len, max } => {
                write!(f, "payload of {len} bytes exceeds payload_max {max}")
            }
            RuntimeError::Interrupted(why) => write!(f, "request abandoned: {why}"),
            RuntimeError::Log(error) => write!(f, "durable log: {error}"),
            RuntimeError::Durable(what) => write!(f, "durable group: {what}"),
        }
    }
}

impl std::error::Error for RuntimeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RuntimeError::Transport(error) => Some(error),
            RuntimeError::Core(error) => Some(error),
            RuntimeError::Log(error) => Some(error),
            _ => None,
        }
    }
}

impl From<osiris_transport::TransportError> for RuntimeError {
    fn from(error: osiris_transport::TransportError) -> Self {
        RuntimeError::Transport(error)
    }
}

impl From<osiris_core::Error> for RuntimeError {
    fn from(error: osiris_core::Error) -> Self {
        match error {
            osiris_core::Error::Stopped => RuntimeError::Stopped,
            osiris_core::Error::PayloadTooLarge { len, max } => {
                RuntimeError::PayloadTooLarge { len, max }
            }
            other => RuntimeError::Core(other),
        }
    }
}

impl From<osiris_log::LogError> for RuntimeError {
    fn from(error: osiris_log::LogError) -> Self {
        RuntimeError::Log(error)
    }
}
