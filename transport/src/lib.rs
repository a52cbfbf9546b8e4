//! osiris-transport: moves opaque frames (byte strings) between processes.
//!
//! This crate knows nothing of groups, views or the protocol. It offers one
//! frame-oriented trait, [`Transport`], and its UDP implementation,
//! [`UdpTransport`] (`sendmmsg`/`recvmmsg`, IP multicast, UDP GSO/GRO), with
//! transparent fragmentation and reassembly ([`fragment`]) for frames larger
//! than one datagram.
//!
//! Invariants every transport here keeps:
//! * **Batches.** `send_batch` hands many frames to the kernel per system call;
//!   `recv_batch` fills a caller-owned [`RecvBatch`] with many frames per call.
//! * **No allocation per frame.** Every buffer is allocated at construction;
//!   reassembly buffers are reused (see [`fragment::Reassembler`]). The
//!   `no_alloc` integration test counts allocations to prove it.
//! * **Never blocks unless asked.** Sockets are non-blocking; a receive with
//!   nothing there returns 0 frames. [`Transport::wait`] blocks on `ppoll(2)`
//!   with a timeout, for the block-on-event idle strategy.
//! * **Bounded.** Batches, reassemblies and their memory have named limits.
//! * **Hostile input is normal input.** Nothing a peer sends can make this
//!   crate panic; bad datagrams are counted and dropped.
//!
//! `unsafe` lives only where system calls are made (the `udp` module's socket
//! calls and `ppoll` for [`Transport::wait`]); each block says why it is sound.
//! Linux only: `sendmmsg`, `recvmmsg`, UDP GSO/GRO and `IP_MULTICAST_ALL` are
//! Linux interfaces.

#[cfg(not(target_os = "linux"))]
compile_error!("osiris-transport supports Linux only (sendmmsg/recvmmsg, UDP GSO/GRO)");

mod batch;
mod error;
pub mod fragment;
mod poll;
mod stats;
mod transport;
pub mod udp;

pub use batch::{Frame, Frames, RecvBatch};
pub use error::{ConfigError, TransportError};
pub use fragment::{ReassemblyConfig, ReassemblyStats};
pub use poll::{wait_readable, Interest, Readiness, Waker, WAIT_FDS_MAX};
pub use stats::TransportStats;
pub use transport::{Destination, Transmit, Transport};
pub use udp::{
    GsoStatus, MulticastConfig, MulticastMembership, SocketInfo, UdpConfig, UdpTransport,
};

#[cfg(test)]
mod tests {
    /// The runtime moves a transport to its data-plane thread.
    #[test]
    fn transports_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<crate::UdpTransport>();
        assert_send::<crate::RecvBatch>();
        assert_send::<crate::fragment::Reassembler>();
    }
}
