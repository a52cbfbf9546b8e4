//! The frame-oriented `Transport` trait and what goes through it.
//!
//! A frame is an opaque byte string. A transport sends a batch of frames, each
//! to one [`Destination`], and receives a batch of whole frames into a
//! caller-owned [`RecvBatch`]. Fragmentation of frames larger than one
//! datagram is the transport's business and invisible here.
//!
//! Call order in a duty cycle (the runtime's data-plane thread):
//! 1. `recv_batch(&mut batch, now)`: 0 frames means "nothing there" (never
//!    blocks); hand each frame of `batch` to the protocol core.
//! 2. `send_batch(&frames)`: returns how many leading frames were accepted;
//!    the rest met a full socket buffer and must be offered again later.
//! 3. When idle: `wait(Interest::READABLE, Some(timeout))` (block-on-event), or
//!    spin / back off without calling it.

use std::net::{SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::batch::RecvBatch;
use crate::error::TransportError;
use crate::poll::{Interest, Readiness};
use crate::stats::TransportStats;

/// Where one frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Destination {
    /// One process. Must not be a multicast address.
    Unicast(SocketAddr),
    /// An IPv4 multicast group (`224.0.0.0/4`) and port: every process that
    /// joined the group on that port receives the frame.
    Multicast(SocketAddrV4),
}

impl Destination {
    /// The socket address the datagrams are sent to.
    #[must_use]
    pub fn socket_addr(&self) -> SocketAddr {
        match *self {
            Destination::Unicast(address) => address,
            Destination::Multicast(address) => SocketAddr::V4(address),
        }
    }

    /// Why this destination cannot be used, if it cannot.
    pub(crate) fn problem(&self) -> Option<&'static str> {
        match self {
            Destination::Unicast(address) if address.ip().is_multicast() => {
                Some("a unicast destination has a multicast address; use Destination::Multicast")
            }
            Destination::Unicast(address) if address.port() == 0 => Some("destination port 0"),
            Destination::Multicast(address) if !address.ip().is_multicast() => {
                Some("a multicast destination is not in 224.0.0.0/4")
            }
            Destination::Multicast(address) if address.port() == 0 => Some("destination port 0"),
            _ => None,
        }
    }
}

/// One frame to send: borrowed bytes and a destination.
#[derive(Debug, Clone, Copy)]
pub struct Transmit<'a> {
    /// Where the frame goes.
    pub destination: Destination,
    /// The frame, sent as it is (or fragmented, invisibly to the receiver).
    pub frame: &'a [u8],
}

/// A frame transport: batches of opaque frames to unicast or multicast
/// destinations.
///
/// Methods, by kind:
/// * getters: [`local_addr`](Transport::local_addr), [`stats`](Transport::stats),
///   [`has_pending_send`](Transport::has_pending_send);
/// * setup (allocates): [`new_recv_batch`](Transport::new_recv_batch);
/// * data path (never allocates, never blocks): [`send_batch`](Transport::send_batch),
///   [`flush`](Transport::flush), [`recv_batch`](Transport::recv_batch);
/// * idle: [`wait`](Transport::wait) blocks up to a timeout.
pub trait Transport {
    /// The address peers send to (after binding: the kernel-chosen port if the
    /// configured port was 0).
    fn local_addr(&self) -> SocketAddr;

    /// Sends `frames` in order, in as few system calls as possible.
    ///
    /// Returns how many leading frames were accepted. Accepted frames were
    /// handed to the kernel, except that the tail of at most one large frame
    /// may be held inside the transport when the socket buffer filled in its
    /// middle; that tail goes out first on the next `send_batch` or `flush`.
    /// Frames from the returned index on were not sent: offer them again
    /// later (after [`wait`](Transport::wait) for [`Interest::WRITABLE`]).
    ///
    /// A datagram the kernel refuses for its destination (unreachable network,
    /// for example) is dropped and counted in [`TransportStats::send_errors`]:
    /// a bad peer must not stall traffic to the others.
    ///
    /// # Errors
    /// [`TransportError::FrameTooLarge`] or [`TransportError::BadDestination`]
    /// (checked before anything is sent), or [`TransportError::Send`] if the
    /// socket itself failed.
    fn send_batch(&mut self, frames: &[Transmit<'_>]) -> Result<usize, TransportError>;

    /// Whether part of an accepted frame still waits inside the transport.
    fn has_pending_send(&self) -> bool;

    /// Tries to send what waits inside the transport. Returns `true` when
    /// nothing is left.
    ///
    /// # Errors
    /// [`TransportError::Send`] if the socket itself failed.
    fn flush(&mut self) -> Result<bool, TransportError>;

    /// A receive batch sized for this transport. Allocates: call it at setup
    /// and reuse the batch for every [`recv_batch`](Transport::recv_batch).
    fn new_recv_batch(&self) -> RecvBatch;

    /// Clears `batch`, then fills it with the whole frames that have arrived
    /// (at most one receive system call). Returns the number of frames; 0 when
    /// nothing is there. `now` drives reassembly timeouts; the transport reads
    /// no clock.
    ///
    /// # Errors
    /// [`TransportError::ForeignBatch`] if `batch` does not fit this transport,
    /// [`TransportError::Receive`] if the socket failed.
    fn recv_batch(&mut self, batch: &mut RecvBatch, now: Instant) -> Result<usize, TransportError>;

    /// Blocks until the transport is ready for `interest` or `timeout` passes
    /// (`None`: no limit). Returns at once as readable if whole frames already
    /// wait inside the transport. May return early with nothing ready (a
    /// signal): callers loop.
    ///
    /// # Errors
    /// [`TransportError::Poll`] if `ppoll(2)` failed.
    fn wait(
        &mut self,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> Result<Readiness, TransportError>;

    /// Counters since construction.
    fn stats(&self) -> &TransportStats;
}
