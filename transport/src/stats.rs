//! Counters a transport keeps: how much it batched, what it sent and received,
//! and what it dropped and why. Plain `u64` fields, written only by the owning
//! data-plane thread.

use crate::fragment::ReassemblyStats;

/// Counters since the transport was made.
///
/// A *frame* is what the caller sends or receives; a *datagram* is what goes
/// on the wire (a frame, or one fragment of a larger frame).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TransportStats {
    /// `sendmmsg(2)` calls made (including ones that sent nothing).
    pub sendmmsg_calls: u64,
    /// `recvmmsg(2)` calls made (including ones that found nothing).
    pub recvmmsg_calls: u64,
    /// Frames whose every datagram was handed to the kernel.
    pub frames_sent: u64,
    /// Of `frames_sent`, frames that went out in fragments.
    pub frames_sent_fragmented: u64,
    /// Whole frames put into receive batches (including reassembled ones).
    pub frames_received: u64,
    /// Datagrams handed to the kernel (each GSO segment counts as one).
    pub datagrams_sent: u64,
    /// Datagrams received (each GRO segment counts as one).
    pub datagrams_received: u64,
    /// Payload bytes of `datagrams_sent` (fragment headers included).
    pub bytes_sent: u64,
    /// Payload bytes of `datagrams_received`.
    pub bytes_received: u64,
    /// `sendmmsg` entries that carried a UDP GSO run of several datagrams.
    pub gso_messages_sent: u64,
    /// Received buffers that the kernel had coalesced (UDP GRO) from several
    /// datagrams.
    pub gro_buffers_received: u64,
    /// Times a send stopped because the socket buffer was full.
    pub send_would_block: u64,
    /// Datagrams dropped because the kernel refused them for their
    /// destination (e.g. `ENETUNREACH`); see `last_send_errno`.
    pub send_errors: u64,
    /// The `errno` of the latest per-destination send refusal (0: none).
    pub last_send_errno: i32,
    /// Received datagrams dropped as malformed: a bad fragment header, or
    /// (with `frame_magic` set) an unfragmented datagram or a whole
    /// reassembled frame that does not start with the frame magic.
    pub datagrams_malformed: u64,
    /// Received datagrams dropped because they were longer than the receive
    /// buffer (`MSG_TRUNC`): a peer with a larger `datagram_len_max`.
    pub datagrams_truncated: u64,
    /// Received frames dropped because the batch had no room left (only
    /// possible with GRO and more than `frames_max` coalesced datagrams).
    pub frames_dropped_batch_full: u64,
    /// Wait calls (`ppoll(2)`).
    pub waits: u64,
    /// Reassembly counters.
    pub reassembly: ReassemblyStats,
}
