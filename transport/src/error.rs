//! Typed errors: bad configuration, socket set-up failures, and failures of
//! the socket on the data path. Network input never produces an error (it is
//! counted and dropped); these are all local problems.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;

use crate::transport::Destination;

/// A configuration value outside what the transport supports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// A numeric setting outside its range.
    OutOfRange {
        /// The setting, as named in the config struct.
        field: &'static str,
        /// The value given.
        value: u64,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A relation between two settings does not hold.
    Inconsistent {
        /// What must hold, in words.
        rule: &'static str,
    },
    /// Multicast options were set on an IPv6 socket (multicast is IPv4 here).
    MulticastNeedsIpv4,
    /// A group to join is not a multicast address.
    NotMulticast {
        /// The address given as a group.
        group: Ipv4Addr,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::OutOfRange {
                field,
                value,
                min,
                max,
            } => {
                write!(
                    f,
                    "config `{field}` is {value}; it must be between {min} and {max}"
                )
            }
            ConfigError::Inconsistent { rule } => write!(f, "config is inconsistent: {rule}"),
            ConfigError::MulticastNeedsIpv4 => {
                write!(
                    f,
                    "IP multicast needs an IPv4 bind address (IPv6 multicast is not supported)"
                )
            }
            ConfigError::NotMulticast { group } => {
                write!(f, "{group} is not an IPv4 multicast address (224.0.0.0/4)")
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// `Ok` if `value` is in `min..=max`, else the `OutOfRange` error for `field`.
pub(crate) fn check_range(
    field: &'static str,
    value: usize,
    (min, max): (usize, usize),
) -> Result<(), ConfigError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::OutOfRange {
            field,
            value: value as u64,
            min: min as u64,
            max: max as u64,
        })
    }
}

/// Everything a transport operation can fail with.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportError {
    /// The configuration was rejected before any socket was made.
    Config(ConfigError),
    /// Creating, configuring or binding the socket failed.
    Socket {
        /// The system call or option that failed, e.g. `"bind"`, `"SO_REUSEPORT"`.
        operation: &'static str,
        /// The operating system's error.
        source: io::Error,
    },
    /// Joining or leaving a multicast group failed.
    Multicast {
        /// `"join"` or `"leave"`.
        operation: &'static str,
        /// The group address.
        group: Ipv4Addr,
        /// The local interface address.
        interface: Ipv4Addr,
        /// The operating system's error.
        source: io::Error,
    },
    /// A frame is longer than `frame_len_max`; nothing of the batch was sent.
    FrameTooLarge {
        /// Index of the frame in the batch.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// The configured maximum.
        max: usize,
    },
    /// A destination cannot be sent to; nothing of the batch was sent.
    BadDestination {
        /// Index of the frame in the batch.
        index: usize,
        /// The destination given.
        destination: Destination,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The receive batch was made for a transport with another geometry; make
    /// it with this transport's `new_recv_batch`.
    ForeignBatch,
    /// The socket failed while sending (not a per-destination refusal).
    Send {
        /// The operating system's error.
        source: io::Error,
    },
    /// The socket failed while receiving.
    Receive {
        /// The operating system's error.
        source: io::Error,
    },
    /// `ppoll(2)` failed.
    Poll {
        /// The operating system's error.
        source: io::Error,
    },
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Config(error) => write!(f, "invalid transport configuration: {error}"),
            TransportError::Socket { operation, source } => {
                write!(f, "socket set-up failed at {operation}: {source}")
            }
            TransportError::Multicast { operation, group, interface, source } => write!(
                f,
                "cannot {operation} multicast group {group} on interface {interface}: {source}"
            ),
            TransportError::FrameTooLarge { index, len, max } => write!(
                f,
                "frame {index} of the batch is {len} bytes, more than frame_len_max ({max}); nothing was sent"
            ),
            TransportError::BadDestination { index, destination, reason } => write!(
                f,
                "frame {index} of the batch has a bad destination {destination:?}: {reason}; nothing was sent"
            ),
            TransportError::ForeignBatch => write!(
                f,
                "the receive batch does not fit this transport; make it with new_recv_batch()"
            ),
            TransportError::Send { source } => write!(f, "send failed: {source}"),
            TransportError::Receive { source } => write!(f, "receive failed: {source}"),
            TransportError::Poll { source } => write!(f, "waiting on the socket failed: {source}"),
        }
    }
}

impl std::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TransportError::Config(error) => Some(error),
            TransportError::Socket { source, .. }
            | TransportError::Multicast { source, .. }
            | TransportError::Send { source }
            | TransportError::Receive { source }
            | TransportError::Poll { source } => Some(source),
            TransportError::FrameTooLarge { .. }
            | TransportError::BadDestination { .. }
            | TransportError::ForeignBatch => None,
        }
    }
}

impl From<ConfigError> for TransportError {
    fn from(error: ConfigError) -> Self {
        TransportError::Config(error)
    }
}
