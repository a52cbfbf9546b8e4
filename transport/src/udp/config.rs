//! Configuration of the UDP transport, with its validation. Every limit has
//! a named range; `UdpConfig::validate` explains in words what is wrong.

use std::net::{Ipv4Addr, SocketAddr};

use crate::error::{check_range, ConfigError};
use crate::fragment::{ReassemblyConfig, DATAGRAM_LEN_MIN};

/// The largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header).
pub const UDP_PAYLOAD_MAX: usize = 65_507;

/// A multicast group to join, and the local interface (by its IPv4 address)
/// to join it on (`IP_ADD_MEMBERSHIP`'s `imr_interface`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MulticastMembership {
    /// The group, in `224.0.0.0/4` (use `239.0.0.0/8`, administratively
    /// scoped, for private deployments).
    pub group: Ipv4Addr,
    /// The address of the local interface that receives the group's traffic;
    /// `0.0.0.0` lets the kernel pick by its routing table.
    pub interface: Ipv4Addr,
}

/// IP multicast settings (IPv4 only).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MulticastConfig {
    /// `IP_MULTICAST_IF`: the local interface address multicast leaves
    /// through. `None`: the kernel's route for the group decides.
    pub interface: Option<Ipv4Addr>,
    /// `IP_MULTICAST_LOOP`: deliver our multicast to sockets on this host
    /// (other members on this host need it; this socket also gets its own
    /// datagrams back if it joined the group). Default `true`.
    pub loopback: bool,
    /// `IP_MULTICAST_TTL`: 1 (the default) keeps multicast on the local subnet.
    pub ttl: u32,
    /// `IP_MULTICAST_ALL`: when `false` (the default) the socket receives only
    /// groups it joined itself; Linux's own default (`true`) also delivers
    /// groups joined by any other socket on the host to a wildcard-bound port.
    pub receive_all: bool,
    /// Groups joined when the transport is made (more can be joined later).
    pub groups: Vec<MulticastMembership>,
}

impl Default for MulticastConfig {
    fn default() -> Self {
        MulticastConfig {
            interface: None,
            loopback: true,
            ttl: 1,
            receive_all: false,
            groups: Vec::new(),
        }
    }
}

/// Configuration of a [`UdpTransport`](super::UdpTransport). Start from
/// [`UdpConfig::new`] and change fields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct UdpConfig {
    /// Address to bind. Port 0: the kernel picks one (see `local_addr`).
    pub bind: SocketAddr,
    /// `SO_RCVBUF` request in bytes (`None`: the system default). Root gets it
    /// through `SO_RCVBUFFORCE`; others are capped by `net.core.rmem_max`.
    /// The size the kernel granted is in `SocketInfo`.
    pub recv_buffer_bytes: Option<usize>,
    /// `SO_SNDBUF` request, as for `recv_buffer_bytes`.
    pub send_buffer_bytes: Option<usize>,
    /// Largest datagram payload sent. 65,507 (default) suits loopback; on a
    /// network use the path MTU minus 28: 1,472 (MTU 1,500) or 8,972 (jumbo
    /// frames, MTU 9,000), so the IP layer never fragments. Every peer must
    /// use a value no larger than the receivers' (larger datagrams arrive
    /// truncated and are dropped).
    pub datagram_len_max: usize,
    /// Messages per `sendmmsg`/`recvmmsg` call (and receive slots per batch).
    pub batch_len: usize,
    /// `SO_REUSEADDR` + `SO_REUSEPORT`: several sockets on this host may bind
    /// the same port (members sharing a multicast port). Beware: unicast to a
    /// shared port is spread over the sockets by the kernel; give each member
    /// its own unicast port.
    pub reuse_port: bool,
    /// IP multicast settings.
    pub multicast: MulticastConfig,
    /// Use UDP GSO (one `sendmmsg` entry for a run of equal-size fragments)
    /// when the kernel supports it. Falls back by itself if the kernel or
    /// device refuses.
    pub gso: bool,
    /// Ask for UDP GRO (the kernel may hand over several datagrams in one
    /// buffer). Receive slots then hold 64 KiB each.
    pub gro: bool,
    /// When set, every frame delivered starts with these two bytes: an
    /// unfragmented datagram or a reassembled frame that does not is dropped
    /// and counted in `datagrams_malformed` (set it to the protocol's magic,
    /// `53 4F`). `None`: any byte string is a frame.
    pub frame_magic: Option<[u8; 2]>,
    /// Reassembled frames one receive batch can hold (each in its own buffer).
    pub large_frames_per_batch: usize,
    /// Reassembly limits; `reassembly.frame_len_max` is also the largest
    /// frame `send_batch` accepts.
    pub reassembly: ReassemblyConfig,
}

impl UdpConfig {
    /// Bounds on `datagram_len_max`.
    pub const DATAGRAM_LEN_MAX_RANGE: (usize, usize) = (DATAGRAM_LEN_MIN, UDP_PAYLOAD_MAX);
    /// Bounds on `batch_len` (1,024 is the kernel's `UIO_MAXIOV`, the most
    /// `sendmmsg`/`recvmmsg` take in one call).
    pub const BATCH_LEN_RANGE: (usize, usize) = (1, 1024);
    /// Bounds on socket buffer requests (the kernel doubles the value and
    /// stores it in an `int`).
    pub const BUFFER_BYTES_RANGE: (usize, usize) = (4096, (i32::MAX / 2) as usize);
    /// Bounds on `large_frames_per_batch`.
    pub const LARGE_FRAMES_PER_BATCH_RANGE: (usize, usize) = (1, 64);

    /// Defaults for a socket bound to `bind`: 64-message batches, 65,507-byte
    /// datagrams, 4 MiB socket buffers, GSO and GRO on, 16 MiB frames.
    #[must_use]
    pub fn new(bind: SocketAddr) -> UdpConfig {
        UdpConfig {
            bind,
            recv_buffer_bytes: Some(4 << 20),
            send_buffer_bytes: Some(4 << 20),
            datagram_len_max: UDP_PAYLOAD_MAX,
            batch_len: 64,
            reuse_port: false,
            multicast: MulticastConfig::default(),
            gso: true,
            gro: true,
            frame_magic: None,
            large_frames_per_batch: 4,
            reassembly: ReassemblyConfig::default(),
        }
    }

    /// Checks every setting.
    ///
    /// # Errors
    /// The first setting found wrong.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "datagram_len_max",
            self.datagram_len_max,
            Self::DATAGRAM_LEN_MAX_RANGE,
        )?;
        check_range("batch_len", self.batch_len, Self::BATCH_LEN_RANGE)?;
        if let Some(bytes) = self.recv_buffer_bytes {
            check_range("recv_buffer_bytes", bytes, Self::BUFFER_BYTES_RANGE)?;
        }
        if let Some(bytes) = self.send_buffer_bytes {
            check_range("send_buffer_bytes", bytes, Self::BUFFER_BYTES_RANGE)?;
        }
        check_range(
            "large_frames_per_batch",
            self.large_frames_per_batch,
            Self::LARGE_FRAMES_PER_BATCH_RANGE,
        )?;
        check_range("multicast.ttl", self.multicast.ttl as usize, (0, 255))?;
        self.reassembly.validate()?;
        let multicast_used =
            self.multicast.interface.is_some() || !self.multicast.groups.is_empty();
        if multicast_used && !self.bind.is_ipv4() {
            return Err(ConfigError::MulticastNeedsIpv4);
        }
        if let Some(membership) = self
            .multicast
            .groups
            .iter()
            .find(|m| !m.group.is_multicast())
        {
            return Err(ConfigError::NotMulticast {
                group: membership.group,
            });
        }
        Ok(())
    }
}
