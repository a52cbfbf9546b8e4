//! UDP transport: `sendmmsg`/`recvmmsg` batches, IP multicast, UDP GSO/GRO,
//! and transparent fragmentation for frames larger than a datagram.
//!
//! Set-up (`UdpTransport::new`) does every allocation and every socket
//! option; the data path (`send_batch`, `recv_batch`) makes at most one
//! `sendmmsg` per `batch_len` entries and one `recvmmsg` per call, and
//! allocates nothing.
//!
//! GSO: detected at set-up (`getsockopt(UDP_SEGMENT)`), used for runs of
//! full-size fragments of one frame when `datagram_len_max` leaves room for
//! at least two segments per 64 KiB; if the kernel or device refuses a GSO
//! send, GSO is turned off for good and the same fragments go out one per
//! entry (`GsoStatus::Refused`). GRO: `setsockopt(UDP_GRO)` at set-up; a
//! coalesced buffer is split by its segment size.

mod config;
mod recv;
mod send;
mod sys;

pub use config::{MulticastConfig, MulticastMembership, UdpConfig, UDP_PAYLOAD_MAX};

use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::{Duration, Instant};

use crate::batch::RecvBatch;
use crate::error::{ConfigError, TransportError};
use crate::fragment::Reassembler;
use crate::poll::{wait_fd, Interest, Readiness};
use crate::stats::TransportStats;
use crate::transport::{Transmit, Transport};
use recv::RecvState;
use send::{SendState, GSO_SEGMENTS_MAX};

/// Receive slot size when GRO is on: the kernel coalesces up to 64 KiB.
const GRO_SLOT_LEN: usize = 65_536;
/// Datagrams the kernel coalesces into one GRO buffer at most
/// (`UDP_GRO_CNT_MAX`).
const GRO_SEGMENTS_MAX: usize = 64;

/// Whether and how UDP GSO is used for sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GsoStatus {
    /// Turned off in the config.
    Disabled,
    /// The kernel does not know `UDP_SEGMENT` (before Linux 4.18).
    Unsupported,
    /// Supported, but `datagram_len_max` leaves room for only one segment in
    /// a 64 KiB GSO send, so there is nothing to gain.
    NotApplicable,
    /// In use: up to `segments_max` fragments per `sendmmsg` entry.
    Active {
        /// Fragments per GSO entry.
        segments_max: usize,
    },
    /// The kernel refused a GSO send with this `errno` (no checksum offload,
    /// segment larger than the route MTU, ...); GSO is off since.
    Refused {
        /// The `errno` of the refusal.
        errno: i32,
    },
}

/// What the kernel granted at set-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocketInfo {
    /// The bound address.
    pub local_addr: SocketAddr,
    /// `SO_RCVBUF` as the kernel reports it (Linux doubles the request to
    /// cover its bookkeeping, and caps unprivileged requests at
    /// `net.core.rmem_max`).
    pub recv_buffer_bytes: usize,
    /// `SO_SNDBUF` as the kernel reports it.
    pub send_buffer_bytes: usize,
    /// Whether `SO_RCVBUFFORCE` was used (root): the cap did not apply.
    pub recv_buffer_forced: bool,
    /// Whether `SO_SNDBUFFORCE` was used.
    pub send_buffer_forced: bool,
    /// Whether the kernel accepted `UDP_GRO`.
    pub gro: bool,
}

/// A UDP socket moving frames in batches. See the module documentation.
pub struct UdpTransport {
    socket: UdpSocket,
    config: UdpConfig,
    info: SocketInfo,
    gso: GsoStatus,
    send: SendState,
    recv: RecvState,
    slot_len: usize,
    frames_max: usize,
    stats: TransportStats,
}

impl fmt::Debug for UdpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UdpTransport")
            .field("info", &self.info)
            .field("gso", &self.gso)
            .field("pending_send", &self.send.has_tail())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

fn socket_error(operation: &'static str) -> impl FnOnce(std::io::Error) -> TransportError {
    move |source| TransportError::Socket { operation, source }
}

impl UdpTransport {
    /// Validates `config`, makes and binds the socket, sets every option,
    /// joins the configured groups and allocates every buffer.
    ///
    /// # Errors
    /// [`TransportError::Config`] for a bad config (before any socket is
    /// made), [`TransportError::Socket`] naming the system call or option the
    /// kernel refused, or [`TransportError::Multicast`] for a join.
    pub fn new(config: UdpConfig) -> Result<UdpTransport, TransportError> {
        config.validate()?;
        let fd = sys::udp_socket(&config.bind).map_err(socket_error("socket"))?;
        let raw = fd.as_raw_fd();
        if config.reuse_port {
            sys::set_option(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1 as libc::c_int)
                .map_err(socket_error("SO_REUSEADDR"))?;
            sys::set_option(raw, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1 as libc::c_int)
                .map_err(socket_error("SO_REUSEPORT"))?;
        }
        let (recv_buffer_forced, send_buffer_forced) = set_buffers(raw, &config)?;
        if config.bind.is_ipv4() {
            set_multicast_options(raw, &config)?;
        }
        let gso = detect_gso(raw, &config);
        let gro = config.gro
            && sys::set_option(raw, libc::SOL_UDP, libc::UDP_GRO, 1 as libc::c_int).is_ok();
        sys::bind(raw, config.bind).map_err(socket_error("bind"))?;
        let socket = UdpSocket::from(fd);
        let local_addr = socket.local_addr().map_err(socket_error("getsockname"))?;
        let info = SocketInfo {
            local_addr,
            recv_buffer_bytes: buffer_size(raw, libc::SO_RCVBUF, "SO_RCVBUF (read back)")?,
            send_buffer_bytes: buffer_size(raw, libc::SO_SNDBUF, "SO_SNDBUF (read back)")?,
            recv_buffer_forced,
            send_buffer_forced,
            gro,
        };
        let reassembler = Reassembler::new(config.reassembly.clone())?;
        let gso_segments = match gso {
            GsoStatus::Active { segments_max } => segments_max,
            _ => 1,
        };
        let send = SendState::new(
            config.batch_len,
            config.datagram_len_max,
            gso_segments,
            config.reassembly.frame_len_max,
            random_u64(),
        );
        let recv = RecvState::new(config.batch_len, reassembler, config.frame_magic);
        let slot_len = if gro {
            GRO_SLOT_LEN
        } else {
            config.datagram_len_max
        };
        let segments_per_slot = if gro { GRO_SEGMENTS_MAX } else { 1 };
        let frames_max = config.batch_len * segments_per_slot + config.large_frames_per_batch;
        let mut transport = UdpTransport {
            socket,
            info,
            gso,
            send,
            recv,
            slot_len,
            frames_max,
            stats: TransportStats::default(),
            config,
        };
        for membership in transport.config.multicast.groups.clone() {
            transport.join_multicast(membership.group, membership.interface)?;
        }
        Ok(transport)
    }

    /// What the kernel granted at set-up.
    #[must_use]
    pub fn socket_info(&self) -> &SocketInfo {
        &self.info
    }

    /// Whether GSO is in use, and if not, why.
    #[must_use]
    pub fn gso_status(&self) -> GsoStatus {
        self.gso
    }

    /// The configuration in force.
    #[must_use]
    pub fn config(&self) -> &UdpConfig {
        &self.config
    }

    /// Joins `group` on the interface with address `interface`
    /// (`IP_ADD_MEMBERSHIP`). Not for the data path (the kernel may allocate).
    ///
    /// # Errors
    /// [`TransportError::Config`] if the socket is IPv6 or `group` is not
    /// multicast; [`TransportError::Multicast`] if the kernel refuses.
    pub fn join_multicast(
        &mut self,
        group: Ipv4Addr,
        interface: Ipv4Addr,
    ) -> Result<(), TransportError> {
        self.check_group(group)?;
        self.socket
            .join_multicast_v4(&group, &interface)
            .map_err(|source| TransportError::Multicast {
                operation: "join",
                group,
                interface,
                source,
            })
    }

    /// Leaves `group` on `interface` (`IP_DROP_MEMBERSHIP`).
    ///
    /// # Errors
    /// As for [`join_multicast`](Self::join_multicast).
    pub fn leave_multicast(
        &mut self,
        group: Ipv4Addr,
        interface: Ipv4Addr,
    ) -> Result<(), TransportError> {
        self.check_group(group)?;
        self.socket
            .leave_multicast_v4(&group, &interface)
            .map_err(|source| TransportError::Multicast {
                operation: "leave",
                group,
                interface,
                source,
            })
    }

    fn check_group(&self, group: Ipv4Addr) -> Result<(), TransportError> {
        if !self.info.local_addr.is_ipv4() {
            return Err(ConfigError::MulticastNeedsIpv4.into());
        }
        if !group.is_multicast() {
            return Err(ConfigError::NotMulticast { group }.into());
        }
        Ok(())
    }

    /// Checks every frame of a batch before anything is sent.
    fn check_frames(&self, frames: &[Transmit<'_>]) -> Result<(), TransportError> {
        let max = self.config.reassembly.frame_len_max;
        let ipv4 = self.info.local_addr.is_ipv4();
        for (index, transmit) in frames.iter().enumerate() {
            if transmit.frame.len() > max {
                return Err(TransportError::FrameTooLarge {
                    index,
                    len: transmit.frame.len(),
                    max,
                });
            }
            let destination = transmit.destination;
            let reason = destination.problem().or_else(|| {
                (destination.socket_addr().is_ipv4() != ipv4)
                    .then_some("the destination's address family differs from the socket's")
            });
            if let Some(reason) = reason {
                return Err(TransportError::BadDestination {
                    index,
                    destination,
                    reason,
                });
            }
        }
        Ok(())
    }
}

/// Sets the socket buffer sizes; returns whether each was forced.
fn set_buffers(fd: RawFd, config: &UdpConfig) -> Result<(bool, bool), TransportError> {
    let mut forced = (false, false);
    if let Some(bytes) = config.recv_buffer_bytes {
        forced.0 = sys::set_buffer_size(fd, libc::SO_RCVBUFFORCE, libc::SO_RCVBUF, bytes)
            .map_err(socket_error("SO_RCVBUF"))?;
    }
    if let Some(bytes) = config.send_buffer_bytes {
        forced.1 = sys::set_buffer_size(fd, libc::SO_SNDBUFFORCE, libc::SO_SNDBUF, bytes)
            .map_err(socket_error("SO_SNDBUF"))?;
    }
    Ok(forced)
}

fn buffer_size(
    fd: RawFd,
    name: libc::c_int,
    operation: &'static str,
) -> Result<usize, TransportError> {
    let bytes = sys::get_int_option(fd, libc::SOL_SOCKET, name).map_err(socket_error(operation))?;
    Ok(usize::try_from(bytes).unwrap_or(0))
}

fn set_multicast_options(fd: RawFd, config: &UdpConfig) -> Result<(), TransportError> {
    let multicast = &config.multicast;
    if let Some(interface) = multicast.interface {
        sys::set_option(
            fd,
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_IF,
            sys::in_addr(interface),
        )
        .map_err(socket_error("IP_MULTICAST_IF"))?;
    }
    let flag = |on: bool| libc::c_int::from(on);
    sys::set_option(
        fd,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_LOOP,
        flag(multicast.loopback),
    )
    .map_err(socket_error("IP_MULTICAST_LOOP"))?;
    let ttl = libc::c_int::try_from(multicast.ttl).unwrap_or(1);
    sys::set_option(fd, libc::IPPROTO_IP, libc::IP_MULTICAST_TTL, ttl)
        .map_err(socket_error("IP_MULTICAST_TTL"))?;
    sys::set_option(
        fd,
        libc::IPPROTO_IP,
        libc::IP_MULTICAST_ALL,
        flag(multicast.receive_all),
    )
    .map_err(socket_error("IP_MULTICAST_ALL"))?;
    Ok(())
}

fn detect_gso(fd: RawFd, config: &UdpConfig) -> GsoStatus {
    if !config.gso {
        return GsoStatus::Disabled;
    }
    if sys::get_int_option(fd, libc::SOL_UDP, libc::UDP_SEGMENT).is_err() {
        return GsoStatus::Unsupported;
    }
    let segments_max = (UDP_PAYLOAD_MAX / config.datagram_len_max).min(GSO_SEGMENTS_MAX);
    if segments_max < 2 {
        return GsoStatus::NotApplicable;
    }
    GsoStatus::Active { segments_max }
}

/// A random first message id, so that a restarted sender on the same address
/// does not reuse ids its receivers still remember (std's hasher keys come
/// from the operating system's random source).
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(u64::from(std::process::id()));
    hasher.finish()
}

impl Transport for UdpTransport {
    fn local_addr(&self) -> SocketAddr {
        self.info.local_addr
    }

    fn send_batch(&mut self, frames: &[Transmit<'_>]) -> Result<usize, TransportError> {
        self.check_frames(frames)?;
        let fd = self.socket.as_raw_fd();
        self.send.send(fd, frames, &mut self.gso, &mut self.stats)
    }

    fn has_pending_send(&self) -> bool {
        self.send.has_tail()
    }

    fn flush(&mut self) -> Result<bool, TransportError> {
        let fd = self.socket.as_raw_fd();
        self.send.flush_tail(fd, &mut self.gso, &mut self.stats)
    }

    fn new_recv_batch(&self) -> RecvBatch {
        RecvBatch::new(
            self.config.batch_len,
            self.slot_len,
            self.frames_max,
            self.config.large_frames_per_batch,
        )
    }

    fn recv_batch(&mut self, batch: &mut RecvBatch, now: Instant) -> Result<usize, TransportError> {
        if batch.slot_len() != self.slot_len
            || batch.datagram_slots() != self.config.batch_len
            || batch.frames_max() != self.frames_max
        {
            return Err(TransportError::ForeignBatch);
        }
        let fd = self.socket.as_raw_fd();
        self.recv.receive(fd, batch, now, &mut self.stats)
    }

    fn wait(
        &mut self,
        interest: Interest,
        timeout: Option<Duration>,
    ) -> Result<Readiness, TransportError> {
        if interest.is_readable() && self.recv.reassembler().has_complete() {
            return Ok(Readiness {
                readable: true,
                writable: false,
            });
        }
        self.stats.waits += 1;
        wait_fd(self.socket.as_raw_fd(), interest, timeout)
            .map_err(|source| TransportError::Poll { source })
    }

    fn stats(&self) -> &TransportStats {
        &self.stats
    }
}

impl AsRawFd for UdpTransport {
    /// The socket, for an integrator's own `epoll`. Do not read from or write
    /// to it directly: fragments would bypass reassembly.
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}

impl AsFd for UdpTransport {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}
