//! The receive path: one `recvmmsg(2)` into the caller's batch, then each
//! datagram is a frame, a fragment for the reassembler, or malformed.
//!
//! Invariants:
//! * The `mmsghdr` array is allocated once; before each call its pointers are
//!   set to the batch's arena slots, its own names and control buffers.
//! * A datagram never leaves the slot it was received in; an entry of the
//!   batch points inside it. With GRO a slot holds several datagrams of
//!   `segment` bytes each (the last may be shorter), split here.
//! * Completed reassemblies are handed over by buffer exchange, as many as
//!   the batch has large buffers; the rest wait in the reassembler for the
//!   next call (`Transport::wait` reports them as readable).

use std::io;
use std::os::fd::RawFd;
use std::time::Instant;

use super::send::{empty_iovec, empty_message};
use super::sys::{RawAddr, RecvControl};
use crate::batch::RecvBatch;
use crate::error::TransportError;
use crate::fragment::{is_fragment, Accepted, Reassembler, Rejected, FRAGMENT_HEADER_LEN};
use crate::stats::TransportStats;

/// Receive-side state of a UDP transport.
pub(super) struct RecvState {
    messages: Box<[libc::mmsghdr]>,
    iovecs: Box<[libc::iovec]>,
    names: Box<[RawAddr]>,
    controls: Box<[RecvControl]>,
    reassembler: Reassembler,
    frame_magic: Option<[u8; 2]>,
}

impl RecvState {
    pub(super) fn new(
        batch_len: usize,
        reassembler: Reassembler,
        frame_magic: Option<[u8; 2]>,
    ) -> RecvState {
        RecvState {
            messages: vec![empty_message(); batch_len].into_boxed_slice(),
            iovecs: vec![empty_iovec(); batch_len].into_boxed_slice(),
            names: vec![RawAddr::ZERO; batch_len].into_boxed_slice(),
            controls: vec![RecvControl::ZERO; batch_len].into_boxed_slice(),
            reassembler,
            frame_magic,
        }
    }

    pub(super) fn reassembler(&self) -> &Reassembler {
        &self.reassembler
    }

    /// See `Transport::recv_batch`. The batch geometry was checked by the caller.
    pub(super) fn receive(
        &mut self,
        fd: RawFd,
        batch: &mut RecvBatch,
        now: Instant,
        stats: &mut TransportStats,
    ) -> Result<usize, TransportError> {
        batch.clear();
        self.reassembler.expire(now);
        self.deliver_complete(batch, stats);
        if !batch.is_full() {
            self.receive_datagrams(fd, batch, now, stats)?;
        }
        stats.frames_received += batch.len() as u64;
        stats.reassembly = *self.reassembler.stats();
        Ok(batch.len())
    }

    fn deliver_complete(&mut self, batch: &mut RecvBatch, stats: &mut TransportStats) {
        while self.reassembler.has_complete() {
            let Some(buffer) = batch.next_large() else {
                return;
            };
            let Some(source) = self.reassembler.pop_complete(buffer) else {
                return;
            };
            if has_magic(self.frame_magic, buffer) {
                batch.commit_large(source);
            } else {
                // Not committed: the buffer stays in the batch for reuse.
                stats.datagrams_malformed += 1;
            }
        }
    }

    fn receive_datagrams(
        &mut self,
        fd: RawFd,
        batch: &mut RecvBatch,
        now: Instant,
        stats: &mut TransportStats,
    ) -> Result<(), TransportError> {
        let slot_len = batch.slot_len();
        let slots = batch.datagram_slots().min(self.messages.len());
        let arena = batch.arena_mut();
        for slot in 0..slots {
            let buffer = &mut arena[slot * slot_len..(slot + 1) * slot_len];
            self.iovecs[slot] = libc::iovec {
                iov_base: buffer.as_mut_ptr().cast(),
                iov_len: slot_len,
            };
            self.messages[slot] = libc::mmsghdr {
                msg_hdr: libc::msghdr {
                    msg_name: self.names[slot].as_mut_ptr(),
                    msg_namelen: RawAddr::capacity(),
                    msg_iov: std::ptr::from_mut(&mut self.iovecs[slot]),
                    msg_iovlen: 1,
                    msg_control: self.controls[slot].as_mut_ptr(),
                    msg_controllen: RecvControl::capacity(),
                    msg_flags: 0,
                },
                msg_len: 0,
            };
        }
        // SAFETY: `messages[..slots]` is a valid, exclusively borrowed array
        // of `slots` (<= 1024) entries, each set just above: one iovec of
        // `slot_len` bytes inside `arena` (exclusively borrowed from the
        // batch for this whole function, and `slots * slot_len <=
        // arena.len()` by the batch's construction), a name buffer of
        // `RawAddr::capacity()` bytes and a control buffer of
        // `RecvControl::capacity()` bytes, both owned by `self`. The kernel
        // writes at most those lengths and keeps no pointer; MSG_DONTWAIT and
        // a null timeout make it return at once.
        let received = unsafe {
            libc::recvmmsg(
                fd,
                self.messages.as_mut_ptr(),
                slots as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        stats.recvmmsg_calls += 1;
        if received < 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Ok(()),
                // An ICMP error queued for the socket: reported once, harmless.
                Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH) => Ok(()),
                _ => Err(TransportError::Receive { source: error }),
            };
        }
        for slot in 0..received as usize {
            self.take_slot(slot, slot_len, batch, now, stats);
        }
        Ok(())
    }

    /// Splits slot `slot` into datagrams and handles each.
    fn take_slot(
        &mut self,
        slot: usize,
        slot_len: usize,
        batch: &mut RecvBatch,
        now: Instant,
        stats: &mut TransportStats,
    ) {
        let header = &self.messages[slot].msg_hdr;
        let len = (self.messages[slot].msg_len as usize).min(slot_len);
        if header.msg_flags & libc::MSG_TRUNC != 0 {
            stats.datagrams_truncated += 1;
            return;
        }
        let Some(source) = self.names[slot].decode(header.msg_namelen) else {
            stats.datagrams_malformed += 1;
            return;
        };
        let segment = self.controls[slot]
            .gro_segment_size(header.msg_controllen)
            .filter(|&segment| segment < len)
            .unwrap_or(len.max(1));
        if segment < len {
            stats.gro_buffers_received += 1;
        }
        let slot_start = slot * slot_len;
        let mut offset = 0;
        // Advances by `segment` >= 1; an empty datagram is handled once.
        loop {
            let datagram_len = segment.min(len - offset);
            self.take_datagram(slot_start + offset, datagram_len, source, batch, now, stats);
            offset += datagram_len;
            if offset >= len {
                break;
            }
        }
    }

    fn take_datagram(
        &mut self,
        start: usize,
        len: usize,
        source: std::net::SocketAddr,
        batch: &mut RecvBatch,
        now: Instant,
        stats: &mut TransportStats,
    ) {
        stats.datagrams_received += 1;
        stats.bytes_received += len as u64;
        let datagram = &batch.arena()[start..start + len];
        let frame = if is_fragment(datagram) {
            match self.reassembler.accept(now, source, datagram) {
                Ok(Accepted::Single)
                    if has_magic(self.frame_magic, &datagram[FRAGMENT_HEADER_LEN..]) =>
                {
                    Some((start + FRAGMENT_HEADER_LEN, len - FRAGMENT_HEADER_LEN))
                }
                Ok(Accepted::Single) | Err(Rejected::Malformed(_)) => {
                    stats.datagrams_malformed += 1;
                    None
                }
                Ok(Accepted::Stored) => None,
                Ok(Accepted::Completed) => {
                    self.deliver_complete(batch, stats);
                    None
                }
                // Counted in the reassembly stats.
                Err(_) => None,
            }
        } else if has_magic(self.frame_magic, datagram) {
            Some((start, len))
        } else {
            stats.datagrams_malformed += 1;
            None
        };
        if let Some((start, len)) = frame {
            if !batch.push_arena(source, start, len) {
                stats.frames_dropped_batch_full += 1;
            }
        }
    }
}

/// The `frame_magic` filter: with `None` every frame passes.
fn has_magic(frame_magic: Option<[u8; 2]>, frame: &[u8]) -> bool {
    frame_magic.is_none_or(|magic| frame.starts_with(&magic))
}

// SAFETY: the raw pointers inside `messages` and `iovecs` point into this
// state's own boxed slices or into the batch lent to one `receive` call; they
// are rewritten before every `recvmmsg` and never dereferenced by Rust code.
// Nothing is shared between threads, so moving the state is sound.
unsafe impl Send for RecvState {}
