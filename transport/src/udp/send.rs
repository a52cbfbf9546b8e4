//! The send path: frames → staged `mmsghdr` entries → `sendmmsg(2)`.
//!
//! Staging is zero-copy: an unfragmented frame is one `iovec` pointing into
//! the caller's frame; a fragment is two (a header written into `headers`,
//! then a slice of the caller's frame). With GSO, one entry carries a run of
//! up to `gso_segments` fragments of one frame, which the kernel cuts at the
//! segment size.
//!
//! Invariants:
//! * The staging arrays are allocated once; pointers written into `messages`
//!   point into `names`, `controls`, `iovecs` and `headers` (boxed slices
//!   that never move) or into the frames of the current `send_batch` call;
//!   they are rewritten before every use and never read by us.
//! * Frames are accepted in order: `send_batch` returns `n` and frames `n..`
//!   left nothing in the kernel, except that the frame whose fragments met a
//!   full socket buffer is kept in `tail` (a copy of its unsent part) and
//!   counted as accepted. At most one tail exists; while it does, new frames
//!   are not sent (order is kept).
//! * Every loop is bounded: by the batch, the staging capacity, or (system
//!   call retries) by `EINTR_RETRIES_MAX`.

use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use super::sys::{GsoControl, RawAddr};
use super::GsoStatus;
use crate::error::TransportError;
use crate::fragment::{FragmentPlan, FRAGMENT_HEADER_LEN};
use crate::stats::TransportStats;
use crate::transport::Transmit;

/// Segments per GSO message: the kernel's `UDP_MAX_SEGMENTS` (64 before
/// Linux 6.15, 128 after; the smaller is safe everywhere).
pub(super) const GSO_SEGMENTS_MAX: usize = 64;

/// System-call retries after `EINTR` before giving up for this call.
const EINTR_RETRIES_MAX: u32 = 8;

/// `Owner::frame` of entries that carry the tail.
const TAIL_FRAME: usize = usize::MAX;

/// What a staged `sendmmsg` entry carries.
#[derive(Debug, Clone, Copy, Default)]
struct Owner {
    /// Index of the frame in the batch, or `TAIL_FRAME`.
    frame: usize,
    /// First fragment in the entry (0 for an unfragmented frame).
    fragment: u32,
    message_id: u64,
    /// Datagrams in the entry (more than one: GSO).
    segments: u32,
    /// Payload bytes of all its datagrams.
    bytes: usize,
    fragmented: bool,
    /// The entry holds the frame's last datagram.
    ends_frame: bool,
}

/// Where staging stopped: frame index, next fragment, and the message id of a
/// fragmented frame already begun.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    frame: usize,
    fragment: u32,
    message_id: Option<u64>,
}

impl Cursor {
    fn next_frame(self) -> Cursor {
        Cursor {
            frame: self.frame + 1,
            fragment: 0,
            message_id: None,
        }
    }
}

enum Flush {
    Done,
    WouldBlock { entry: usize },
    GsoRefused { entry: usize, errno: i32 },
}

/// A frame (or the unsent part of one) being fragmented.
struct Outgoing<'a> {
    destination: SocketAddr,
    /// The frame's bytes from `base_offset` on.
    bytes: &'a [u8],
    base_offset: usize,
    plan: FragmentPlan,
    message_id: u64,
    frame: usize,
}

struct Staging {
    messages: Box<[libc::mmsghdr]>,
    names: Box<[RawAddr]>,
    controls: Box<[GsoControl]>,
    iovecs: Box<[libc::iovec]>,
    headers: Box<[[u8; FRAGMENT_HEADER_LEN]]>,
    owners: Box<[Owner]>,
    message_count: usize,
    iovec_count: usize,
    header_count: usize,
}

pub(super) fn empty_message() -> libc::mmsghdr {
    libc::mmsghdr {
        msg_hdr: libc::msghdr {
            msg_name: std::ptr::null_mut(),
            msg_namelen: 0,
            msg_iov: std::ptr::null_mut(),
            msg_iovlen: 0,
            msg_control: std::ptr::null_mut(),
            msg_controllen: 0,
            msg_flags: 0,
        },
        msg_len: 0,
    }
}

pub(super) fn empty_iovec() -> libc::iovec {
    libc::iovec {
        iov_base: std::ptr::null_mut(),
        iov_len: 0,
    }
}

impl Staging {
    fn new(messages_max: usize, segments_max: usize) -> Staging {
        Staging {
            messages: vec![empty_message(); messages_max].into_boxed_slice(),
            names: vec![RawAddr::ZERO; messages_max].into_boxed_slice(),
            controls: vec![GsoControl::new(); messages_max].into_boxed_slice(),
            iovecs: vec![empty_iovec(); 2 * segments_max].into_boxed_slice(),
            headers: vec![[0u8; FRAGMENT_HEADER_LEN]; segments_max].into_boxed_slice(),
            owners: vec![Owner::default(); messages_max].into_boxed_slice(),
            message_count: 0,
            iovec_count: 0,
            header_count: 0,
        }
    }

    fn reset(&mut self) {
        self.message_count = 0;
        self.iovec_count = 0;
        self.header_count = 0;
    }

    /// Fills entry `self.message_count` with `iovec_len` iovecs from
    /// `iovec_start`, and (for GSO) the segment-size control message.
    fn finish_entry(
        &mut self,
        destination: SocketAddr,
        iovec_start: usize,
        iovec_len: usize,
        gso_segment_size: Option<u16>,
        owner: Owner,
    ) {
        let entry = self.message_count;
        let name_len = self.names[entry].encode(destination);
        let (control, control_len) = match gso_segment_size {
            Some(size) => {
                self.controls[entry].set_segment_size(size);
                (self.controls[entry].as_mut_ptr(), GsoControl::len())
            }
            None => (std::ptr::null_mut(), 0),
        };
        self.messages[entry] = libc::mmsghdr {
            msg_hdr: libc::msghdr {
                msg_name: self.names[entry].as_mut_ptr(),
                msg_namelen: name_len,
                msg_iov: std::ptr::from_mut(&mut self.iovecs[iovec_start]),
                msg_iovlen: iovec_len,
                msg_control: control,
                msg_controllen: control_len,
                msg_flags: 0,
            },
            msg_len: 0,
        };
        self.owners[entry] = owner;
        self.message_count += 1;
    }

    /// Stages an unfragmented frame. `false` if the staging is full.
    fn push_whole(&mut self, destination: SocketAddr, frame: &[u8], frame_index: usize) -> bool {
        if self.message_count == self.messages.len() || self.iovec_count == self.iovecs.len() {
            return false;
        }
        let iovec_start = self.iovec_count;
        // The kernel only reads through a send iovec; the `*mut` is the C type.
        self.iovecs[iovec_start] = libc::iovec {
            iov_base: frame.as_ptr().cast_mut().cast(),
            iov_len: frame.len(),
        };
        self.iovec_count += 1;
        let owner = Owner {
            frame: frame_index,
            fragment: 0,
            message_id: 0,
            segments: 1,
            bytes: frame.len(),
            fragmented: false,
            ends_frame: true,
        };
        self.finish_entry(destination, iovec_start, 1, None, owner);
        true
    }

    /// Stages fragments of `out` from `first` on, up to `gso_segments` of them
    /// in one entry. Returns how many (0: the staging is full).
    fn push_fragments(&mut self, out: &Outgoing<'_>, first: u32, gso_segments: usize) -> u32 {
        debug_assert!(first < out.plan.count);
        if self.message_count == self.messages.len() {
            return 0;
        }
        let room = (self.headers.len() - self.header_count)
            .min((self.iovecs.len() - self.iovec_count) / 2);
        let count = ((out.plan.count - first) as usize)
            .min(gso_segments.max(1))
            .min(room);
        if count == 0 {
            return 0;
        }
        let iovec_start = self.iovec_count;
        let mut bytes = 0;
        for index in first..first + count as u32 {
            let header = &mut self.headers[self.header_count];
            out.plan.header(out.message_id, index).encode(header);
            let range = out.plan.payload_range(index);
            let payload = &out.bytes[range.start - out.base_offset..range.end - out.base_offset];
            self.iovecs[self.iovec_count] = libc::iovec {
                iov_base: header.as_mut_ptr().cast(),
                iov_len: FRAGMENT_HEADER_LEN,
            };
            self.iovecs[self.iovec_count + 1] = libc::iovec {
                iov_base: payload.as_ptr().cast_mut().cast(),
                iov_len: payload.len(),
            };
            self.iovec_count += 2;
            self.header_count += 1;
            bytes += FRAGMENT_HEADER_LEN + payload.len();
        }
        // Every segment but the last is a full chunk: GSO's rule exactly.
        let gso_segment_size = (count > 1).then(|| {
            u16::try_from(FRAGMENT_HEADER_LEN + out.plan.chunk_len as usize)
                .expect("datagram_len_max <= 65,507 fits u16")
        });
        let owner = Owner {
            frame: out.frame,
            fragment: first,
            message_id: out.message_id,
            segments: count as u32,
            bytes,
            fragmented: true,
            ends_frame: first + count as u32 == out.plan.count,
        };
        self.finish_entry(
            out.destination,
            iovec_start,
            2 * count,
            gso_segment_size,
            owner,
        );
        count as u32
    }

    /// Hands the staged entries to the kernel until all are sent, the socket
    /// buffer is full, or GSO is refused.
    fn flush(&mut self, fd: RawFd, stats: &mut TransportStats) -> Result<Flush, TransportError> {
        let mut position = 0;
        let mut interrupted = 0;
        while position < self.message_count {
            let pending = &mut self.messages[position..self.message_count];
            let pending_len = pending.len() as libc::c_uint;
            // SAFETY: `pending` is a valid, exclusively borrowed array of
            // `pending_len` (<= 1024) entries. Each entry was filled by
            // `finish_entry` during this call: its name, iovecs, headers and
            // control message live in this `Staging` (boxed, not moved while
            // borrowed), and its payload iovecs point into frames the caller
            // lent to `send_batch` (alive for the whole call) or into `tail`
            // (not touched until the call returns). The kernel reads those
            // and writes only `msg_len`.
            let sent = unsafe { libc::sendmmsg(fd, pending.as_mut_ptr(), pending_len, 0) };
            stats.sendmmsg_calls += 1;
            if sent > 0 {
                for owner in &self.owners[position..position + sent as usize] {
                    account_sent(owner, stats);
                }
                position += sent as usize;
                continue;
            }
            let error = io::Error::last_os_error();
            let errno = error.raw_os_error().unwrap_or(0);
            match errno {
                libc::EINTR if interrupted < EINTR_RETRIES_MAX => interrupted += 1,
                libc::EAGAIN | libc::ENOBUFS | libc::ENOMEM | libc::EINTR => {
                    stats.send_would_block += 1;
                    return Ok(Flush::WouldBlock { entry: position });
                }
                libc::EIO
                | libc::EINVAL
                | libc::EOPNOTSUPP
                | libc::EMSGSIZE
                | libc::ENOPROTOOPT
                    if self.owners[position].segments > 1 =>
                {
                    return Ok(Flush::GsoRefused {
                        entry: position,
                        errno,
                    });
                }
                libc::EBADF | libc::ENOTSOCK | libc::EFAULT => {
                    return Err(TransportError::Send { source: error });
                }
                _ => {
                    // Refused for this destination (unreachable, no route,
                    // firewall, wrong family ...): drop it, keep going.
                    stats.send_errors += u64::from(self.owners[position].segments);
                    stats.last_send_errno = errno;
                    position += 1;
                }
            }
        }
        Ok(Flush::Done)
    }
}

fn account_sent(owner: &Owner, stats: &mut TransportStats) {
    stats.datagrams_sent += u64::from(owner.segments);
    stats.bytes_sent += owner.bytes as u64;
    if owner.segments > 1 {
        stats.gso_messages_sent += 1;
    }
    if owner.ends_frame {
        stats.frames_sent += 1;
        if owner.fragmented {
            stats.frames_sent_fragmented += 1;
        }
    }
}

/// The unsent fragments of a frame that met a full socket buffer.
struct Tail {
    active: bool,
    destination: SocketAddr,
    plan: FragmentPlan,
    message_id: u64,
    /// Offset in the frame of `bytes[0]`.
    base_offset: usize,
    next_fragment: u32,
    /// Capacity `frame_len_max`, reserved at construction (virtual memory
    /// until a tail is first kept).
    bytes: Vec<u8>,
}

/// Send-side state of a UDP transport.
pub(super) struct SendState {
    staging: Staging,
    tail: Tail,
    datagram_len_max: usize,
    /// Fragments per GSO entry when GSO is active.
    gso_segments: usize,
    next_message_id: u64,
}

impl SendState {
    /// `gso_segments`: fragments per GSO entry if GSO may be used, else 1.
    pub(super) fn new(
        batch_len: usize,
        datagram_len_max: usize,
        gso_segments: usize,
        frame_len_max: usize,
        first_message_id: u64,
    ) -> SendState {
        let plan = FragmentPlan {
            frame_len: 1,
            chunk_len: 1,
            count: 1,
        };
        SendState {
            staging: Staging::new(batch_len, batch_len * gso_segments.max(1)),
            tail: Tail {
                active: false,
                destination: SocketAddr::from(([0, 0, 0, 0], 0)),
                plan,
                message_id: 0,
                base_offset: 0,
                next_fragment: 0,
                bytes: Vec::with_capacity(frame_len_max),
            },
            datagram_len_max,
            gso_segments: gso_segments.max(1),
            next_message_id: first_message_id,
        }
    }

    pub(super) fn has_tail(&self) -> bool {
        self.tail.active
    }

    fn segments(&self, gso: &GsoStatus) -> usize {
        if matches!(gso, GsoStatus::Active { .. }) {
            self.gso_segments
        } else {
            1
        }
    }

    fn take_message_id(&mut self) -> u64 {
        let id = self.next_message_id;
        self.next_message_id = id.wrapping_add(1);
        id
    }

    /// Sends `frames` (already validated); see `Transport::send_batch`.
    pub(super) fn send(
        &mut self,
        fd: RawFd,
        frames: &[Transmit<'_>],
        gso: &mut GsoStatus,
        stats: &mut TransportStats,
    ) -> Result<usize, TransportError> {
        if !self.flush_tail(fd, gso, stats)? {
            return Ok(0);
        }
        let mut cursor = Cursor {
            frame: 0,
            fragment: 0,
            message_id: None,
        };
        // Each round sends at least one staged entry, or returns, or turns
        // GSO off (once): bounded by the number of datagrams plus one.
        while cursor.frame < frames.len() {
            self.staging.reset();
            let staged_end = self.stage(frames, cursor, self.segments(gso));
            // An empty staging holds at least one entry: progress is certain.
            debug_assert!(self.staging.message_count > 0);
            match self.staging.flush(fd, stats)? {
                Flush::Done => cursor = staged_end,
                Flush::WouldBlock { entry } => {
                    let owner = self.staging.owners[entry];
                    if owner.fragment == 0 {
                        return Ok(owner.frame);
                    }
                    self.keep_tail(&frames[owner.frame], &owner);
                    return Ok(owner.frame + 1);
                }
                Flush::GsoRefused { entry, errno } => {
                    *gso = GsoStatus::Refused { errno };
                    let owner = self.staging.owners[entry];
                    cursor = Cursor {
                        frame: owner.frame,
                        fragment: owner.fragment,
                        message_id: Some(owner.message_id),
                    };
                }
            }
        }
        Ok(frames.len())
    }

    /// Stages frames from `cursor` until the staging is full or the batch
    /// ends; returns where it stopped.
    fn stage(&mut self, frames: &[Transmit<'_>], mut cursor: Cursor, segments: usize) -> Cursor {
        while let Some(transmit) = frames.get(cursor.frame) {
            let destination = transmit.destination.socket_addr();
            let Some(plan) = FragmentPlan::for_frame(transmit.frame, self.datagram_len_max) else {
                if !self
                    .staging
                    .push_whole(destination, transmit.frame, cursor.frame)
                {
                    return cursor;
                }
                cursor = cursor.next_frame();
                continue;
            };
            let message_id = match cursor.message_id {
                Some(id) => id,
                None => self.take_message_id(),
            };
            cursor.message_id = Some(message_id);
            let out = Outgoing {
                destination,
                bytes: transmit.frame,
                base_offset: 0,
                plan,
                message_id,
                frame: cursor.frame,
            };
            while cursor.fragment < plan.count {
                let staged = self.staging.push_fragments(&out, cursor.fragment, segments);
                if staged == 0 {
                    return cursor;
                }
                cursor.fragment += staged;
            }
            cursor = cursor.next_frame();
        }
        cursor
    }

    /// Copies the unsent part of a frame (from `owner.fragment` on) into the
    /// tail. The copy stays within the capacity reserved at construction.
    fn keep_tail(&mut self, transmit: &Transmit<'_>, owner: &Owner) {
        let plan = FragmentPlan::for_frame(transmit.frame, self.datagram_len_max)
            .expect("only a fragmented frame can be cut in the middle");
        let base_offset = plan.payload_range(owner.fragment).start;
        let tail = &mut self.tail;
        debug_assert!(!tail.active);
        tail.bytes.clear();
        tail.bytes.extend_from_slice(&transmit.frame[base_offset..]);
        tail.active = true;
        tail.destination = transmit.destination.socket_addr();
        tail.plan = plan;
        tail.message_id = owner.message_id;
        tail.base_offset = base_offset;
        tail.next_fragment = owner.fragment;
    }

    /// Sends what is left of the tail. `Ok(true)` when no tail is left.
    pub(super) fn flush_tail(
        &mut self,
        fd: RawFd,
        gso: &mut GsoStatus,
        stats: &mut TransportStats,
    ) -> Result<bool, TransportError> {
        // Each round sends at least one entry, returns, or turns GSO off.
        while self.tail.active {
            let segments = self.segments(gso);
            let SendState { staging, tail, .. } = self;
            staging.reset();
            let out = Outgoing {
                destination: tail.destination,
                bytes: &tail.bytes,
                base_offset: tail.base_offset,
                plan: tail.plan,
                message_id: tail.message_id,
                frame: TAIL_FRAME,
            };
            let mut fragment = tail.next_fragment;
            while fragment < tail.plan.count {
                let staged = staging.push_fragments(&out, fragment, segments);
                if staged == 0 {
                    break;
                }
                fragment += staged;
            }
            match staging.flush(fd, stats)? {
                Flush::Done => {
                    tail.next_fragment = fragment;
                    tail.active = fragment < tail.plan.count;
                }
                Flush::WouldBlock { entry } => {
                    tail.next_fragment = staging.owners[entry].fragment;
                    return Ok(false);
                }
                Flush::GsoRefused { entry, errno } => {
                    *gso = GsoStatus::Refused { errno };
                    tail.next_fragment = staging.owners[entry].fragment;
                }
            }
        }
        Ok(true)
    }
}

// SAFETY: `SendState` holds raw pointers only inside the staged `mmsghdr` and
// `iovec` entries. They point into its own boxed slices (which move with it)
// or into caller frames during one `send_batch` call; they are rewritten
// before every `sendmmsg` and never dereferenced by Rust code. Nothing is
// shared between threads, so moving the state to another thread is sound.
unsafe impl Send for SendState {}
