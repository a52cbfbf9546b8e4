//! Fragmentation of frames larger than one datagram, and reassembly.
//!
//! A frame that fits one datagram goes out as it is: zero bytes of overhead.
//! A larger frame goes out as `count` fragments, each a datagram made of a
//! 28-byte [`FragmentHeader`] and a chunk of the frame. The receiver tells
//! the two apart by the first two bytes: the fragment magic `46 4F` ("FO",
//! `0x4F46` little-endian) differs from the protocol's `53 4F` ("SO").
//!
//! So that any opaque frame survives, a frame that fits a datagram but itself
//! begins with the fragment magic is sent as a single fragment (`count` 1).
//!
//! Fragment layout (little-endian, like the protocol's wire format):
//!
//! | offset | size | field        | rule                                                  |
//! |-------:|-----:|--------------|-------------------------------------------------------|
//! | 0      | 2    | magic        | `0x4F46` (bytes `46 4F`)                              |
//! | 2      | 1    | version      | `1`                                                   |
//! | 3      | 1    | flags        | `0`                                                   |
//! | 4      | 8    | message id   | per sender, distinct for each fragmented frame        |
//! | 12     | 4    | frame length | whole frame, 1 ..= receiver's `frame_len_max`         |
//! | 16     | 4    | index        | `0 ..count`                                           |
//! | 20     | 4    | count        | `ceil(frame length / chunk length)`                   |
//! | 24     | 4    | chunk length | payload of every fragment but the last; ≥ 512 unless `count` = 1, then = frame length |
//! | 28     | …    | payload      | `frame[index * chunk ..]`: chunk length bytes, the last fragment the rest |
//!
//! Every field is checked; redundant fields must agree, so each fragment has
//! exactly one valid encoding and a corrupted header is refused rather than
//! misplaced.

mod reassembly;

pub use reassembly::{Accepted, Reassembler, ReassemblyConfig, ReassemblyStats, Rejected};

use std::fmt;
use std::ops::Range;

/// The fragment magic, `0x4F46`: the bytes `46 4F` ("FO") on the wire.
pub const FRAGMENT_MAGIC: u16 = 0x4F46;
/// The fragment magic as it appears on the wire.
pub const FRAGMENT_MAGIC_BYTES: [u8; 2] = FRAGMENT_MAGIC.to_le_bytes();
/// The fragment format version.
pub const FRAGMENT_VERSION: u8 = 1;
/// Bytes of fragment header before the payload.
pub const FRAGMENT_HEADER_LEN: usize = 28;
/// The smallest chunk of a frame split in several fragments. It bounds the
/// number of fragments per frame (`frame_len_max / CHUNK_LEN_MIN`), hence the
/// receiver's per-reassembly bookkeeping, whatever a hostile sender claims.
pub const CHUNK_LEN_MIN: usize = 512;
/// The smallest datagram a transport may be configured with: room for a
/// header and a minimal chunk (576 is also the smallest IPv4 datagram every
/// host must accept).
pub const DATAGRAM_LEN_MIN: usize = 576;

const _: () = assert!(
    DATAGRAM_LEN_MIN >= FRAGMENT_HEADER_LEN + CHUNK_LEN_MIN,
    "a minimal datagram must carry a header and a minimal chunk"
);
const _: () = assert!(
    FRAGMENT_MAGIC_BYTES[0] == 0x46 && FRAGMENT_MAGIC_BYTES[1] == 0x4F,
    "the magic must not collide with the protocol's 53 4F"
);

/// The header at the start of every fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentHeader {
    /// Identifies the frame among the sender's fragmented frames.
    pub message_id: u64,
    /// Length of the whole frame.
    pub frame_len: u32,
    /// Position of this fragment, `0..count`.
    pub index: u32,
    /// Number of fragments of the frame.
    pub count: u32,
    /// Payload length of every fragment but the last.
    pub chunk_len: u32,
}

/// Why a datagram that starts like a fragment is not a valid one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FragmentError {
    /// Shorter than a fragment header.
    Truncated,
    /// The first two bytes are not the fragment magic.
    BadMagic,
    /// A version this code does not speak.
    UnsupportedVersion(u8),
    /// Reserved flags are not zero.
    NonZeroFlags(u8),
    /// Frame length or chunk length is zero.
    ZeroLength,
    /// Count, chunk length and frame length disagree.
    CountMismatch,
    /// A chunk shorter than [`CHUNK_LEN_MIN`] in a multi-fragment frame.
    ChunkTooSmall,
    /// Index not below count.
    IndexOutOfRange,
    /// The payload is not as long as index, chunk and frame length say.
    PayloadLengthMismatch,
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FragmentError::Truncated => write!(f, "shorter than a fragment header"),
            FragmentError::BadMagic => write!(f, "not the fragment magic"),
            FragmentError::UnsupportedVersion(version) => {
                write!(f, "unsupported fragment version {version}")
            }
            FragmentError::NonZeroFlags(flags) => write!(f, "reserved flags {flags:#04x} set"),
            FragmentError::ZeroLength => write!(f, "zero frame or chunk length"),
            FragmentError::CountMismatch => {
                write!(f, "count disagrees with frame and chunk lengths")
            }
            FragmentError::ChunkTooSmall => write!(f, "chunk shorter than {CHUNK_LEN_MIN} bytes"),
            FragmentError::IndexOutOfRange => write!(f, "index not below count"),
            FragmentError::PayloadLengthMismatch => write!(f, "payload length does not match"),
        }
    }
}

impl std::error::Error for FragmentError {}

/// Whether a datagram claims to be a fragment (starts with the fragment magic).
#[must_use]
pub fn is_fragment(datagram: &[u8]) -> bool {
    datagram.starts_with(&FRAGMENT_MAGIC_BYTES)
}

impl FragmentHeader {
    /// Writes the fields as they are (tests write invalid headers on
    /// purpose); the sender's [`FragmentPlan`] only makes valid ones.
    pub fn encode(&self, out: &mut [u8; FRAGMENT_HEADER_LEN]) {
        out[0..2].copy_from_slice(&FRAGMENT_MAGIC_BYTES);
        out[2] = FRAGMENT_VERSION;
        out[3] = 0;
        out[4..12].copy_from_slice(&self.message_id.to_le_bytes());
        out[12..16].copy_from_slice(&self.frame_len.to_le_bytes());
        out[16..20].copy_from_slice(&self.index.to_le_bytes());
        out[20..24].copy_from_slice(&self.count.to_le_bytes());
        out[24..28].copy_from_slice(&self.chunk_len.to_le_bytes());
    }

    /// Reads and checks a fragment: its header and the payload that follows.
    ///
    /// # Errors
    /// A [`FragmentError`] for any datagram that is not exactly a valid
    /// fragment. Never panics.
    pub fn decode(datagram: &[u8]) -> Result<(FragmentHeader, &[u8]), FragmentError> {
        let Some((head, payload)) = datagram.split_first_chunk::<FRAGMENT_HEADER_LEN>() else {
            return Err(if datagram.len() >= 2 && !is_fragment(datagram) {
                FragmentError::BadMagic
            } else {
                FragmentError::Truncated
            });
        };
        if !is_fragment(head) {
            return Err(FragmentError::BadMagic);
        }
        if head[2] != FRAGMENT_VERSION {
            return Err(FragmentError::UnsupportedVersion(head[2]));
        }
        if head[3] != 0 {
            return Err(FragmentError::NonZeroFlags(head[3]));
        }
        let u32_at =
            |at: usize| u32::from_le_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        let mut id = [0u8; 8];
        id.copy_from_slice(&head[4..12]);
        let header = FragmentHeader {
            message_id: u64::from_le_bytes(id),
            frame_len: u32_at(12),
            index: u32_at(16),
            count: u32_at(20),
            chunk_len: u32_at(24),
        };
        header.check()?;
        if payload.len() != header.payload_range().len() {
            return Err(FragmentError::PayloadLengthMismatch);
        }
        Ok((header, payload))
    }

    /// Checks the header's fields against each other.
    fn check(&self) -> Result<(), FragmentError> {
        if self.frame_len == 0 || self.chunk_len == 0 {
            return Err(FragmentError::ZeroLength);
        }
        let count_expected = u64::from(self.frame_len).div_ceil(u64::from(self.chunk_len));
        if u64::from(self.count) != count_expected {
            return Err(FragmentError::CountMismatch);
        }
        if self.count == 1 && self.chunk_len != self.frame_len {
            return Err(FragmentError::CountMismatch);
        }
        if self.count > 1 && (self.chunk_len as usize) < CHUNK_LEN_MIN {
            return Err(FragmentError::ChunkTooSmall);
        }
        if self.index >= self.count {
            return Err(FragmentError::IndexOutOfRange);
        }
        Ok(())
    }

    /// Where this fragment's payload lies in the frame. Only meaningful for a
    /// checked header (made by the sender's plan or by `decode`).
    #[must_use]
    pub fn payload_range(&self) -> Range<usize> {
        let start = self.index as usize * self.chunk_len as usize;
        let end = (start + self.chunk_len as usize).min(self.frame_len as usize);
        start..end
    }
}

/// How a frame is cut into fragments (sender side).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentPlan {
    /// Length of the frame.
    pub frame_len: u32,
    /// Payload per fragment (the last may be shorter).
    pub chunk_len: u32,
    /// Number of fragments.
    pub count: u32,
}

impl FragmentPlan {
    /// `None` when `frame` goes out unfragmented (it fits `datagram_len_max`
    /// and does not begin with the fragment magic); otherwise the plan.
    ///
    /// The caller guarantees `datagram_len_max >= DATAGRAM_LEN_MIN` and a
    /// frame length below 4 GiB (both checked when a transport is configured).
    #[must_use]
    pub fn for_frame(frame: &[u8], datagram_len_max: usize) -> Option<FragmentPlan> {
        debug_assert!(datagram_len_max >= DATAGRAM_LEN_MIN);
        debug_assert!(u32::try_from(frame.len()).is_ok());
        if frame.len() <= datagram_len_max && !is_fragment(frame) {
            return None;
        }
        let frame_len = frame.len() as u32;
        let chunk_max = (datagram_len_max - FRAGMENT_HEADER_LEN) as u32;
        let plan = if frame_len <= chunk_max {
            FragmentPlan {
                frame_len,
                chunk_len: frame_len,
                count: 1,
            }
        } else {
            FragmentPlan {
                frame_len,
                chunk_len: chunk_max,
                count: frame_len.div_ceil(chunk_max),
            }
        };
        debug_assert!(plan.header(0, 0).check().is_ok());
        Some(plan)
    }

    /// The header of fragment `index`.
    #[must_use]
    pub fn header(&self, message_id: u64, index: u32) -> FragmentHeader {
        FragmentHeader {
            message_id,
            frame_len: self.frame_len,
            index,
            count: self.count,
            chunk_len: self.chunk_len,
        }
    }

    /// Where fragment `index`'s payload lies in the frame.
    #[must_use]
    pub fn payload_range(&self, index: u32) -> Range<usize> {
        self.header(0, index).payload_range()
    }

    /// Every fragment datagram of `frame` (header then payload), each in its
    /// own buffer. For tests and tools: the send path does not copy, it hands
    /// the header and the payload to the kernel as two iovecs.
    #[must_use]
    pub fn datagrams(&self, frame: &[u8], id: u64) -> Vec<Vec<u8>> {
        (0..self.count)
            .map(|index| {
                let mut head = [0u8; FRAGMENT_HEADER_LEN];
                self.header(id, index).encode(&mut head);
                let mut datagram = head.to_vec();
                datagram.extend_from_slice(&frame[self.payload_range(index)]);
                datagram
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fragments(frame: &[u8], datagram_len_max: usize, id: u64) -> Vec<Vec<u8>> {
        FragmentPlan::for_frame(frame, datagram_len_max)
            .expect("fragmented")
            .datagrams(frame, id)
    }

    #[test]
    fn small_frames_are_not_fragmented() {
        assert_eq!(FragmentPlan::for_frame(&[0x53, 0x4F, 1, 2], 1472), None);
        assert_eq!(FragmentPlan::for_frame(&[0u8; 1472], 1472), None);
        assert_eq!(FragmentPlan::for_frame(&[], 1472), None);
    }

    #[test]
    fn a_frame_that_looks_like_a_fragment_is_escaped() {
        let plan = FragmentPlan::for_frame(&[0x46, 0x4F, 9], 1472).expect("escaped");
        assert_eq!(
            plan,
            FragmentPlan {
                frame_len: 3,
                chunk_len: 3,
                count: 1
            }
        );
        let mut frame = vec![0x46, 0x4F];
        frame.resize(1472, 7);
        let plan = FragmentPlan::for_frame(&frame, 1472).expect("escaped");
        assert_eq!(plan.count, 2);
    }

    #[test]
    fn round_trip_and_exact_tiling() {
        let frame: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let parts = fragments(&frame, 1000, 42);
        assert_eq!(parts.len(), 11); // 972-byte chunks
        let mut rebuilt = vec![0u8; frame.len()];
        for part in &parts {
            assert!(part.len() <= 1000);
            let (header, payload) = FragmentHeader::decode(part).expect("valid");
            assert_eq!(header.message_id, 42);
            rebuilt[header.payload_range()].copy_from_slice(payload);
        }
        assert_eq!(rebuilt, frame);
    }

    #[test]
    fn every_field_is_checked() {
        let frame = vec![1u8; 3000];
        let good = fragments(&frame, 1000, 1).remove(0);
        let mutate = |at: usize, value: u8| {
            let mut bad = good.clone();
            bad[at] = value;
            FragmentHeader::decode(&bad).map(|(header, _)| header)
        };
        assert_eq!(mutate(0, 0x53), Err(FragmentError::BadMagic));
        assert_eq!(mutate(2, 2), Err(FragmentError::UnsupportedVersion(2)));
        assert_eq!(mutate(3, 1), Err(FragmentError::NonZeroFlags(1)));
        assert_eq!(mutate(13, 0x20), Err(FragmentError::CountMismatch)); // frame length 8376
        assert_eq!(mutate(16, 9), Err(FragmentError::IndexOutOfRange));
        assert_eq!(mutate(20, 7), Err(FragmentError::CountMismatch));
        assert_eq!(mutate(24, 0), Err(FragmentError::PayloadLengthMismatch)); // chunk 768
        assert_eq!(mutate(25, 0), Err(FragmentError::CountMismatch)); // chunk 204
        assert_eq!(
            FragmentHeader::decode(&good[..27]),
            Err(FragmentError::Truncated)
        );
        assert_eq!(
            FragmentHeader::decode(&good[..999]),
            Err(FragmentError::PayloadLengthMismatch)
        );
        assert_eq!(FragmentHeader::decode(b"SO"), Err(FragmentError::BadMagic));
        assert_eq!(FragmentHeader::decode(b"F"), Err(FragmentError::Truncated));
    }

    #[test]
    fn small_chunks_are_refused() {
        let header = FragmentHeader {
            message_id: 0,
            frame_len: 1000,
            index: 0,
            count: 2,
            chunk_len: 500,
        };
        assert_eq!(header.check(), Err(FragmentError::ChunkTooSmall));
    }
}
