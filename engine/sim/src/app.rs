//! The application model every simulated node runs.
//!
//! Per group the state is, per sender, the number of messages delivered and a
//! running hash of their payloads in delivery order. Because Send is FIFO per
//! sender, two members that delivered the same set of messages hold equal
//! state whatever the interleaving between senders — so comparing serialized
//! states at view boundaries is a strong, cheap check of view synchrony and
//! state transfer together.
//!
//! Workload payloads are self-describing: a header naming the sending member
//! incarnation and its counter, then random filler.

use std::collections::BTreeMap;

use osiris_core::MemberId;

use crate::history::{fnv1a_continue, MsgId};

const PAYLOAD_MAGIC: [u8; 2] = *b"OM";
const FLAG_PROBE: u8 = 1;
/// magic(2) + flags(1) + node(4) + incarnation(4) + counter(8).
pub const PAYLOAD_HEADER_BYTES: usize = 19;
/// Filler bytes after the header are drawn from `0..=PAYLOAD_FILLER_MAX`.
pub const PAYLOAD_FILLER_MAX: usize = 200;

/// Encode a workload payload into `out` (cleared first); the filler comes from the caller.
pub fn encode_payload(msg: MsgId, probe: bool, filler: &[u8], out: &mut Vec<u8>) {
    out.clear();
    out.extend_from_slice(&PAYLOAD_MAGIC);
    out.push(if probe { FLAG_PROBE } else { 0 });
    out.extend_from_slice(&msg.sender.node.0.to_le_bytes());
    out.extend_from_slice(&msg.sender.incarnation.0.to_le_bytes());
    out.extend_from_slice(&msg.counter.to_le_bytes());
    out.extend_from_slice(filler);
    debug_assert_eq!(out.len(), PAYLOAD_HEADER_BYTES + filler.len());
}

/// Decode a payload's header: the message id and whether it is a probe.
pub fn decode_payload(payload: &[u8]) -> Option<(MsgId, bool)> {
    if payload.len() < PAYLOAD_HEADER_BYTES
        || payload[..2] != PAYLOAD_MAGIC
        || payload[2] & !FLAG_PROBE != 0
    {
        return None;
    }
    let word32 = |at: usize| u32::from_le_bytes(payload[at..at + 4].try_into().expect("4 bytes"));
    let counter = u64::from_le_bytes(payload[11..19].try_into().expect("8 bytes"));
    let msg = MsgId {
        sender: MemberId::new(word32(3), word32(7)),
        counter,
    };
    Some((msg, payload[2] & FLAG_PROBE != 0))
}

/// One sender's contribution to a group's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderTally {
    pub count: u64,
    pub hash: u64,
}

/// A group's application state: per sender, count and running payload hash.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupState {
    pub senders: BTreeMap<MemberId, SenderTally>,
}

const STATE_ENTRY_BYTES: usize = 24;

impl GroupState {
    pub fn apply(&mut self, sender: MemberId, payload: &[u8]) {
        let tally = self.senders.entry(sender).or_insert(SenderTally {
            count: 0,
            hash: 0x5eed,
        });
        tally.count += 1;
        tally.hash = fnv1a_continue(tally.hash, payload);
    }

    /// Canonical encoding (BTreeMap order), so equal states give equal bytes.
    pub fn serialize(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.senders.len() * STATE_ENTRY_BYTES);
        out.extend_from_slice(&(self.senders.len() as u32).to_le_bytes());
        for (sender, tally) in &self.senders {
            out.extend_from_slice(&sender.node.0.to_le_bytes());
            out.extend_from_slice(&sender.incarnation.0.to_le_bytes());
            out.extend_from_slice(&tally.count.to_le_bytes());
            out.extend_from_slice(&tally.hash.to_le_bytes());
        }
        debug_assert_eq!(out.len(), 4 + self.senders.len() * STATE_ENTRY_BYTES);
        out
    }

    /// Inverse of `serialize`; an error means the core handed us bytes we never produced.
    pub fn deserialize(bytes: &[u8]) -> Result<GroupState, String> {
        if bytes.len() < 4 {
            return Err(format!(
                "state of {} bytes is shorter than its header",
                bytes.len()
            ));
        }
        let count = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        if bytes.len() != 4 + count * STATE_ENTRY_BYTES {
            return Err(format!(
                "state of {} bytes does not hold {count} entries",
                bytes.len()
            ));
        }
        let mut state = GroupState::default();
        for entry in bytes[4..].chunks_exact(STATE_ENTRY_BYTES) {
            let word32 =
                |at: usize| u32::from_le_bytes(entry[at..at + 4].try_into().expect("4 bytes"));
            let word64 =
                |at: usize| u64::from_le_bytes(entry[at..at + 8].try_into().expect("8 bytes"));
            let sender = MemberId::new(word32(0), word32(4));
            state.senders.insert(
                sender,
                SenderTally {
                    count: word64(8),
                    hash: word64(16),
                },
            );
        }
        if state.senders.len() != count {
            return Err("state lists a sender twice".to_string());
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let msg = MsgId {
            sender: MemberId::new(3, 2),
            counter: 77,
        };
        let mut out = Vec::new();
        encode_payload(msg, true, &[9, 9, 9], &mut out);
        assert_eq!(decode_payload(&out), Some((msg, true)));
        encode_payload(msg, false, &[], &mut out);
        assert_eq!(decode_payload(&out), Some((msg, false)));
        assert_eq!(decode_payload(&out[..5]), None);
        assert_eq!(decode_payload(b"XX................."), None);
    }

    #[test]
    fn state_round_trip_and_order_independence() {
        let (alice, bob) = (MemberId::new(1, 1), MemberId::new(2, 1));
        let mut first = GroupState::default();
        first.apply(alice, b"a1");
        first.apply(bob, b"b1");
        first.apply(alice, b"a2");
        let mut second = GroupState::default();
        second.apply(bob, b"b1");
        second.apply(alice, b"a1");
        second.apply(alice, b"a2");
        assert_eq!(first.serialize(), second.serialize());
        assert_eq!(
            GroupState::deserialize(&first.serialize()),
            Ok(first.clone())
        );
        let mut reordered = GroupState::default();
        reordered.apply(alice, b"a2");
        reordered.apply(alice, b"a1");
        reordered.apply(bob, b"b1");
        assert_ne!(
            first.serialize(),
            reordered.serialize(),
            "per-sender order matters"
        );
        assert!(GroupState::deserialize(&[1, 0]).is_err());
        assert!(GroupState::deserialize(&[1, 0, 0, 0]).is_err());
        assert_eq!(
            GroupState::deserialize(&GroupState::default().serialize()),
            Ok(GroupState::default())
        );
    }
}
