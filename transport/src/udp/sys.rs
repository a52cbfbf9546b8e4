//! Thin, checked wrappers over the socket system calls the UDP transport
//! needs, and byte-level (safe) encodings of socket addresses and control
//! messages.
//!
//! Addresses and control messages are kept in plain aligned byte arrays that
//! the kernel fills or reads; this module encodes and decodes them with safe
//! byte operations, so `unsafe` is needed only for the system calls.

use std::io;
use std::mem::{offset_of, size_of};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

/// Room for a `sockaddr_in` or a `sockaddr_in6`, aligned like either.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub(super) struct RawAddr([u8; RAW_ADDR_LEN]);

const RAW_ADDR_LEN: usize = 28;
const SOCKADDR_IN_LEN: usize = 16;

const _: () = assert!(size_of::<libc::sockaddr_in6>() == RAW_ADDR_LEN);
const _: () = assert!(size_of::<libc::sockaddr_in>() == SOCKADDR_IN_LEN);
const _: () = assert!(offset_of!(libc::sockaddr_in, sin_port) == 2);
const _: () = assert!(offset_of!(libc::sockaddr_in, sin_addr) == 4);
const _: () = assert!(offset_of!(libc::sockaddr_in6, sin6_flowinfo) == 4);
const _: () = assert!(offset_of!(libc::sockaddr_in6, sin6_addr) == 8);
const _: () = assert!(offset_of!(libc::sockaddr_in6, sin6_scope_id) == 24);

impl RawAddr {
    pub(super) const ZERO: RawAddr = RawAddr([0; RAW_ADDR_LEN]);

    /// Writes `address` as a `sockaddr_in`/`sockaddr_in6`; returns its length.
    pub(super) fn encode(&mut self, address: SocketAddr) -> libc::socklen_t {
        let bytes = &mut self.0;
        bytes.fill(0);
        match address {
            SocketAddr::V4(v4) => {
                bytes[0..2].copy_from_slice(&(libc::AF_INET as libc::sa_family_t).to_ne_bytes());
                bytes[2..4].copy_from_slice(&v4.port().to_be_bytes());
                bytes[4..8].copy_from_slice(&v4.ip().octets());
                SOCKADDR_IN_LEN as libc::socklen_t
            }
            SocketAddr::V6(v6) => {
                bytes[0..2].copy_from_slice(&(libc::AF_INET6 as libc::sa_family_t).to_ne_bytes());
                bytes[2..4].copy_from_slice(&v6.port().to_be_bytes());
                bytes[4..8].copy_from_slice(&v6.flowinfo().to_be_bytes());
                bytes[8..24].copy_from_slice(&v6.ip().octets());
                bytes[24..28].copy_from_slice(&v6.scope_id().to_ne_bytes());
                RAW_ADDR_LEN as libc::socklen_t
            }
        }
    }

    /// Reads the address the kernel wrote (`len` bytes of it).
    pub(super) fn decode(&self, len: libc::socklen_t) -> Option<SocketAddr> {
        let bytes = &self.0;
        let len = len as usize;
        let family = libc::sa_family_t::from_ne_bytes([bytes[0], bytes[1]]);
        let port = u16::from_be_bytes([bytes[2], bytes[3]]);
        if i32::from(family) == libc::AF_INET && len >= SOCKADDR_IN_LEN {
            let ip = Ipv4Addr::new(bytes[4], bytes[5], bytes[6], bytes[7]);
            return Some(SocketAddr::V4(SocketAddrV4::new(ip, port)));
        }
        if i32::from(family) == libc::AF_INET6 && len >= RAW_ADDR_LEN {
            let flowinfo = u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&bytes[8..24]);
            let scope_id = u32::from_ne_bytes([bytes[24], bytes[25], bytes[26], bytes[27]]);
            return Some(SocketAddr::V6(SocketAddrV6::new(
                ip.into(),
                port,
                flowinfo,
                scope_id,
            )));
        }
        None
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.0.as_mut_ptr().cast()
    }

    pub(super) const fn capacity() -> libc::socklen_t {
        RAW_ADDR_LEN as libc::socklen_t
    }
}

// --- control messages ---------------------------------------------------------

/// `cmsghdr` as glibc/musl on 64-bit Linux lay it out: `cmsg_len` (a
/// `size_t`), level, type; the data starts right after, at 16 bytes.
const CMSG_HEADER_LEN: usize = size_of::<libc::cmsghdr>();
const _: () = assert!(CMSG_HEADER_LEN == 16);
const _: () = assert!(offset_of!(libc::cmsghdr, cmsg_level) == 8);
const _: () = assert!(offset_of!(libc::cmsghdr, cmsg_type) == 12);
// SAFETY: `CMSG_LEN` is pure arithmetic on its argument (an `unsafe fn` only
// because of how libc declares the macro translations); it reads no memory.
const _: () = assert!(unsafe { libc::CMSG_LEN(0) } as usize == CMSG_HEADER_LEN);
// SAFETY: as above, pure arithmetic.
const _: () = assert!(unsafe { libc::CMSG_SPACE(2) } as usize == GSO_CONTROL_LEN);

const fn cmsg_align(len: usize) -> usize {
    (len + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// Control-message room for a received datagram (the UDP_GRO segment size
/// takes 20 bytes; room for a few more the kernel might add).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(8))]
pub(super) struct RecvControl([u8; 64]);

impl RecvControl {
    pub(super) const ZERO: RecvControl = RecvControl([0; 64]);

    pub(super) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        self.0.as_mut_ptr().cast()
    }

    pub(super) const fn capacity() -> usize {
        64
    }

    /// The UDP_GRO segment size among the first `len` control bytes, if the
    /// kernel coalesced datagrams. Malformed control data reads as `None`.
    pub(super) fn gro_segment_size(&self, len: usize) -> Option<usize> {
        let bytes = &self.0[..len.min(self.0.len())];
        let mut offset = 0;
        // Each round advances by at least CMSG_HEADER_LEN: bounded by len.
        while offset + CMSG_HEADER_LEN <= bytes.len() {
            let at = |start: usize, n: usize| &bytes[offset + start..offset + start + n];
            let mut cmsg_len = [0u8; size_of::<usize>()];
            cmsg_len.copy_from_slice(at(0, size_of::<usize>()));
            let cmsg_len = usize::from_ne_bytes(cmsg_len);
            let level = i32::from_ne_bytes(at(8, 4).try_into().ok()?);
            let kind = i32::from_ne_bytes(at(12, 4).try_into().ok()?);
            if cmsg_len < CMSG_HEADER_LEN {
                return None;
            }
            let data_len = cmsg_len - CMSG_HEADER_LEN;
            if level == libc::SOL_UDP
                && kind == libc::UDP_GRO
                && data_len >= 4
                && offset + CMSG_HEADER_LEN + 4 <= bytes.len()
            {
                let size = i32::from_ne_bytes(at(CMSG_HEADER_LEN, 4).try_into().ok()?);
                return usize::try_from(size).ok().filter(|&size| size > 0);
            }
            offset += cmsg_align(cmsg_len);
        }
        None
    }
}

/// The control message asking for UDP GSO: `cmsghdr` + a `u16` segment size.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub(super) struct GsoControl {
    header: libc::cmsghdr,
    segment_size: u16,
    padding: [u8; 6],
}

const GSO_CONTROL_LEN: usize = 24;
const _: () = assert!(size_of::<GsoControl>() == GSO_CONTROL_LEN);
const _: () = assert!(offset_of!(GsoControl, segment_size) == CMSG_HEADER_LEN);

impl GsoControl {
    pub(super) const fn new() -> GsoControl {
        GsoControl {
            header: libc::cmsghdr {
                cmsg_len: CMSG_HEADER_LEN + size_of::<u16>(),
                cmsg_level: libc::SOL_UDP,
                cmsg_type: libc::UDP_SEGMENT,
            },
            segment_size: 0,
            padding: [0; 6],
        }
    }

    pub(super) fn set_segment_size(&mut self, size: u16) {
        self.segment_size = size;
    }

    pub(super) fn as_mut_ptr(&mut self) -> *mut libc::c_void {
        std::ptr::from_mut(self).cast()
    }

    pub(super) const fn len() -> usize {
        GSO_CONTROL_LEN
    }
}

// --- system calls -----------------------------------------------------------

fn check(result: libc::c_int) -> io::Result<libc::c_int> {
    if result < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(result)
    }
}

/// A non-blocking, close-on-exec UDP socket of the address family of `bind`.
pub(super) fn udp_socket(bind: &SocketAddr) -> io::Result<OwnedFd> {
    let domain = if bind.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let kind = libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
    // SAFETY: `socket` takes plain integers and touches no memory of ours.
    let fd = check(unsafe { libc::socket(domain, kind, libc::IPPROTO_UDP) })?;
    // SAFETY: `fd` was just returned by `socket`, is open, and is owned by
    // nothing else: the `OwnedFd` becomes its only owner and closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn bind(fd: RawFd, address: SocketAddr) -> io::Result<()> {
    let mut raw = RawAddr::ZERO;
    let len = raw.encode(address);
    // SAFETY: `raw` is a valid sockaddr of `len` bytes (encoded above) that
    // lives until `bind` returns; the kernel only reads it.
    check(unsafe { libc::bind(fd, raw.as_mut_ptr().cast::<libc::sockaddr>(), len) })?;
    Ok(())
}

/// `setsockopt` with a value of type `T` (an `int`, `in_addr`, ...).
pub(super) fn set_option<T: Copy>(
    fd: RawFd,
    level: libc::c_int,
    name: libc::c_int,
    value: T,
) -> io::Result<()> {
    let len = size_of::<T>() as libc::socklen_t;
    // SAFETY: the pointer is to `value`, `len` bytes, alive for the call; the
    // kernel copies it in and keeps no pointer. `T: Copy` values used here are
    // plain C data (`c_int`, `in_addr`).
    check(unsafe { libc::setsockopt(fd, level, name, std::ptr::from_ref(&value).cast(), len) })?;
    Ok(())
}

/// `getsockopt` of an `int` option.
pub(super) fn get_int_option(fd: RawFd, level: libc::c_int, name: libc::c_int) -> io::Result<i32> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid, writable, and alive for the call;
    // `len` tells the kernel it may write at most `size_of::<c_int>()` bytes.
    check(unsafe {
        libc::getsockopt(
            fd,
            level,
            name,
            std::ptr::from_mut(&mut value).cast(),
            &mut len,
        )
    })?;
    Ok(value)
}

/// Sets a socket buffer size. First tries the `*FORCE` option (needs
/// CAP_NET_ADMIN; ignores `net.core.[rw]mem_max`), then the plain one (capped
/// by the sysctl). Returns whether the forced option took effect.
pub(super) fn set_buffer_size(
    fd: RawFd,
    force_name: libc::c_int,
    name: libc::c_int,
    bytes: usize,
) -> io::Result<bool> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    match set_option(fd, libc::SOL_SOCKET, force_name, value) {
        Ok(()) => Ok(true),
        Err(error) if error.raw_os_error() == Some(libc::EPERM) => {
            set_option(fd, libc::SOL_SOCKET, name, value).map(|()| false)
        }
        Err(error) => Err(error),
    }
}

pub(super) fn in_addr(address: Ipv4Addr) -> libc::in_addr {
    libc::in_addr {
        s_addr: u32::from_ne_bytes(address.octets()),
    }
}
