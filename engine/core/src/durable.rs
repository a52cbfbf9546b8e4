//! Durable SafeSend: the records the core asks the host to log, and the
//! recovery of the delivered SafeSend sequence from one member's log
//! (docs/ordering.md, "Durable mode").
//!
//! A record is one of (little-endian):
//! * `MESSAGE` (1): epoch u64, sender node u32, incarnation u32, seq u64,
//!   then the stored data message (its tag byte and body). Only SafeSend
//!   messages and order announcements are logged.
//! * `FLUSH_DELIVERY` (2): epoch u64, sender node u32, incarnation u32,
//!   seq u64, index u64: this member delivered that SafeSend in the flush
//!   of the epoch, as the `index`-th delivery of its flushes.
//! * `RECOVERED` (3): sender node u32, incarnation u32, payload: one message
//!   of a sequence recovered earlier (the log is rewritten to these at
//!   every restart, see `encode_recovered`).
//! * `EPOCH_END` (5): epoch u64, count u64: this member's flush of `epoch`
//!   started after it had delivered `count` SafeSends of the epoch in the
//!   ordinary way (in announcement order); announced SafeSends past those
//!   were delivered by the flush (a `FLUSH_DELIVERY` record each) or by
//!   nobody.
//! * `LOADED` (4): epoch u64, sender node u32, incarnation u32, payload: one
//!   message of the SafeSend sequence a joiner loaded by state transfer at
//!   the start of `epoch` (`Node::log_loaded`). The latest epoch's loaded
//!   sequence replaces whatever was recovered or logged before that epoch:
//!   it is everything the group delivered before this member joined.
//!
//! The core does no I/O: the host appends the records, syncs, and reports
//! them durable with `Node::persisted`.

use std::collections::BTreeMap;

use crate::error::DecodeError;
use crate::id::MemberId;
use crate::wire::DataView;

pub(crate) const MESSAGE: u8 = 1;
pub(crate) const FLUSH_DELIVERY: u8 = 2;
pub(crate) const RECOVERED: u8 = 3;
pub(crate) const LOADED: u8 = 4;
pub(crate) const EPOCH_END: u8 = 5;

/// One SafeSend of a recovered sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredMessage {
    pub sender: MemberId,
    pub payload: Vec<u8>,
}

pub(crate) fn put_member(out: &mut Vec<u8>, member: MemberId) {
    out.extend_from_slice(&member.node.0.to_le_bytes());
    out.extend_from_slice(&member.incarnation.0.to_le_bytes());
}

pub(crate) fn encode_message(epoch: u64, sender: MemberId, seq: u64, stored: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(29 + stored.len());
    out.push(MESSAGE);
    out.extend_from_slice(&epoch.to_le_bytes());
    put_member(&mut out, sender);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(stored);
    out
}

pub(crate) fn encode_flush_delivery(epoch: u64, sender: MemberId, seq: u64, index: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(37);
    out.push(FLUSH_DELIVERY);
    out.extend_from_slice(&epoch.to_le_bytes());
    put_member(&mut out, sender);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&index.to_le_bytes());
    out
}

/// The record that stands for one recovered message when the host rewrites
/// the log after a restart: `log.rewrite(first, &[encode_recovered(m), ...])`.
pub fn encode_recovered(message: &RecoveredMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + message.payload.len());
    out.push(RECOVERED);
    put_member(&mut out, message.sender);
    out.extend_from_slice(&message.payload);
    out
}

pub(crate) fn encode_epoch_end(epoch: u64, count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(17);
    out.push(EPOCH_END);
    out.extend_from_slice(&epoch.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out
}

pub(crate) fn encode_loaded(epoch: u64, message: &RecoveredMessage) -> Vec<u8> {
    let mut out = Vec::with_capacity(17 + message.payload.len());
    out.push(LOADED);
    out.extend_from_slice(&epoch.to_le_bytes());
    put_member(&mut out, message.sender);
    out.extend_from_slice(&message.payload);
    out
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < n {
            return Err(DecodeError::Truncated("durable record"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    fn member(&mut self) -> Result<MemberId, DecodeError> {
        let node = self.u32()?;
        let incarnation = self.u32()?;
        Ok(MemberId::new(node, incarnation))
    }
}

/// One line describing a record, for `osiris log` (operators, diagnosis).
pub fn describe(record: &[u8]) -> String {
    fn member(m: MemberId) -> String {
        format!("{}.{}", m.node.0, m.incarnation.0)
    }
    let Some((&tag, body)) = record.split_first() else {
        return "empty record".to_owned();
    };
    let mut reader = Reader { rest: body };
    let described: Result<String, DecodeError> = (|| match tag {
        MESSAGE => {
            let epoch = reader.u64()?;
            let sender = reader.member()?;
            let seq = reader.u64()?;
            let what = match DataView::parse_stored(reader.rest)? {
                DataView::Safe { payload } => format!("safe {} bytes", payload.len()),
                DataView::Order { ranges } => {
                    let list: Vec<String> = ranges
                        .iter()
                        .map(|r| format!("{}[{}..={}]", member(r.sender), r.lo, r.hi))
                        .collect();
                    format!("order {}", list.join(" "))
                }
                _ => "other".to_owned(),
            };
            Ok(format!(
                "message epoch {epoch} {}#{seq} {what}",
                member(sender)
            ))
        }
        FLUSH_DELIVERY => {
            let epoch = reader.u64()?;
            let sender = reader.member()?;
            let seq = reader.u64()?;
            let index = reader.u64()?;
            Ok(format!(
                "flush-delivery epoch {epoch} {}#{seq} index {index}",
                member(sender)
            ))
        }
        RECOVERED => {
            let sender = reader.member()?;
            Ok(format!(
                "recovered {} {} bytes",
                member(sender),
                reader.rest.len()
            ))
        }
        LOADED => {
            let epoch = reader.u64()?;
            let sender = reader.member()?;
            Ok(format!(
                "loaded epoch {epoch} {} {} bytes",
                member(sender),
                reader.rest.len()
            ))
        }
        _ => Ok(format!("unknown record kind {tag}")),
    })();
    described.unwrap_or_else(|error| format!("undecodable record: {error}"))
}

/// A message's place in the order: see `Position::sort_key`.
type SortKey = (u8, u64, u64, u64, u64);
/// Per (epoch, sender): the announced ranges (lo, hi, announcement seq, range index).
type Ranges = BTreeMap<(u64, MemberId), Vec<(u64, u64, u64, u64)>>;

/// Where a message stands in this member's delivery order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Position {
    /// A message recovered earlier: before everything of this lifetime.
    Recovered(u64),
    /// (epoch, announcement seq, range index, seq): the total order.
    Announced(u64, u64, u64, u64),
    /// (epoch, index): delivered by this member in the epoch's flush.
    Flushed(u64, u64),
}

impl Position {
    fn sort_key(self) -> SortKey {
        match self {
            Position::Recovered(index) => (0, 0, index, 0, 0),
            Position::Announced(epoch, at, range, seq) => (1, epoch, 0, at, range << 32 | seq),
            Position::Flushed(epoch, index) => (1, epoch, 1, index, 0),
        }
    }
}

/// Rebuilds, from one member's log (records in log order), the SafeSend
/// sequence: every SafeSend whose position in the total order the log
/// holds (the message and its announcement, or a flush delivery record),
/// in that order. It holds every SafeSend any member delivered in an epoch
/// this member acknowledged in full (docs/ordering.md), and may hold more
/// (messages acknowledged but delivered by nobody before the failure).
pub fn recover<'a>(
    records: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<RecoveredMessage>, DecodeError> {
    let mut recovered = Vec::new();
    // (epoch, sender, seq) -> payload
    let mut messages: BTreeMap<(u64, MemberId, u64), Vec<u8>> = BTreeMap::new();
    let mut ranges: Ranges = BTreeMap::new();
    let mut flushed: BTreeMap<(u64, MemberId, u64), u64> = BTreeMap::new();
    // The latest state transfer: (epoch, sequence).
    let mut loaded: Option<(u64, Vec<RecoveredMessage>)> = None;
    // Per epoch whose flush this member started: SafeSends it had
    // delivered before the flush.
    let mut epoch_ends: BTreeMap<u64, u64> = BTreeMap::new();
    for record in records {
        let Some((&tag, body)) = record.split_first() else {
            return Err(DecodeError::Truncated("durable record"));
        };
        let mut reader = Reader { rest: body };
        match tag {
            MESSAGE => {
                let epoch = reader.u64()?;
                let sender = reader.member()?;
                let seq = reader.u64()?;
                match DataView::parse_stored(reader.rest)? {
                    DataView::Safe { payload } => {
                        messages.insert((epoch, sender, seq), payload.to_vec());
                    }
                    DataView::Order { ranges: announced } => {
                        for (index, range) in announced.iter().enumerate() {
                            ranges.entry((epoch, range.sender)).or_default().push((
                                range.lo,
                                range.hi,
                                seq,
                                index as u64,
                            ));
                        }
                    }
                    _ => {}
                }
            }
            FLUSH_DELIVERY => {
                let epoch = reader.u64()?;
                let sender = reader.member()?;
                let seq = reader.u64()?;
                let index = reader.u64()?;
                flushed.insert((epoch, sender, seq), index);
            }
            RECOVERED => {
                let sender = reader.member()?;
                recovered.push(RecoveredMessage {
                    sender,
                    payload: reader.rest.to_vec(),
                });
            }
            EPOCH_END => {
                let epoch = reader.u64()?;
                let count = reader.u64()?;
                epoch_ends.insert(epoch, count);
            }
            LOADED => {
                let epoch = reader.u64()?;
                let message = RecoveredMessage {
                    sender: reader.member()?,
                    payload: reader.rest.to_vec(),
                };
                match &mut loaded {
                    Some((at, list)) if *at == epoch => list.push(message),
                    Some((at, _)) if *at > epoch => {}
                    _ => loaded = Some((epoch, vec![message])),
                }
            }
            _ => return Err(DecodeError::Truncated("durable record of an unknown kind")),
        }
    }
    if let Some((epoch, base)) = loaded {
        // The loaded sequence holds everything delivered before `epoch`.
        recovered = base;
        messages.retain(|(at, _, _), _| *at >= epoch);
        flushed.retain(|(at, _, _), _| *at >= epoch);
    }
    let mut placed: Vec<(SortKey, RecoveredMessage)> = recovered
        .into_iter()
        .enumerate()
        .map(|(index, message)| (Position::Recovered(index as u64).sort_key(), message))
        .collect();
    for ((epoch, sender, seq), payload) in messages {
        let position = if let Some(index) = flushed.get(&(epoch, sender, seq)) {
            Some(Position::Flushed(epoch, *index))
        } else {
            ranges.get(&(epoch, sender)).and_then(|list| {
                list.iter()
                    .filter(|(lo, hi, _, _)| *lo <= seq && seq <= *hi)
                    .min_by_key(|(_, _, at, _)| *at)
                    .map(|(_, _, at, range)| Position::Announced(epoch, *at, *range, seq))
            })
        };
        if let Some(position) = position {
            placed.push((position.sort_key(), RecoveredMessage { sender, payload }));
        }
    }
    placed.sort_by_key(|(key, _)| *key);
    // In an epoch that ended with this member's flush, only the first
    // `count` announced SafeSends were delivered before it; the rest that
    // the flush did not deliver were delivered by nobody.
    let mut announced_seen: BTreeMap<u64, u64> = BTreeMap::new();
    placed.retain(|((kind, epoch, flushed, _, _), _)| {
        if *kind != 1 || *flushed != 0 {
            return true;
        }
        let Some(count) = epoch_ends.get(epoch) else {
            return true;
        };
        let seen = announced_seen.entry(*epoch).or_insert(0);
        *seen += 1;
        *seen <= *count
    });
    Ok(placed.into_iter().map(|(_, message)| message).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(node: u32, text: &str) -> RecoveredMessage {
        RecoveredMessage {
            sender: MemberId::new(node, 1),
            payload: text.as_bytes().to_vec(),
        }
    }

    #[test]
    fn the_latest_loaded_sequence_replaces_what_came_before() {
        let (a, x, y, z) = (
            message(1, "a"),
            message(2, "x"),
            message(3, "y"),
            message(2, "z"),
        );
        let records = [
            encode_recovered(&a),
            encode_loaded(4, &z),
            encode_loaded(5, &x),
            encode_loaded(5, &y),
            encode_flush_delivery(3, MemberId::new(1, 1), 1, 1),
        ];
        let recovered = recover(records.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(recovered, vec![x, y]);
        let only_recovered = [encode_recovered(&a)];
        assert_eq!(
            recover(only_recovered.iter().map(Vec::as_slice)).unwrap(),
            vec![a]
        );
    }

    fn safe(text: &str) -> Vec<u8> {
        let mut stored = vec![crate::wire::data_tag::SAFE];
        stored.extend_from_slice(text.as_bytes());
        stored
    }

    fn order(sender: MemberId, lo: u64, hi: u64) -> Vec<u8> {
        let mut stored = vec![crate::wire::data_tag::ORDER];
        put_member(&mut stored, sender);
        stored.extend_from_slice(&lo.to_le_bytes());
        stored.extend_from_slice(&hi.to_le_bytes());
        stored
    }

    /// Found by the simulator (seed 51028 at commit 96288ce): an announced
    /// SafeSend that the flush dropped (its sender crashed; no survivor
    /// had it all) was recovered ahead of the flush's deliveries.
    #[test]
    fn announced_safe_sends_past_the_ordinary_deliveries_need_the_flush() {
        let (a, b, sequencer) = (
            MemberId::new(1, 1),
            MemberId::new(2, 1),
            MemberId::new(3, 1),
        );
        let records = [
            encode_message(5, a, 1, &safe("a1")),
            encode_message(5, a, 2, &safe("a2")),
            encode_message(5, b, 1, &safe("b1")),
            encode_message(5, sequencer, 1, &order(a, 1, 1)),
            encode_message(5, sequencer, 2, &order(b, 1, 1)),
            encode_message(5, sequencer, 3, &order(a, 2, 2)),
            // a1 was delivered in the ordinary way, then the flush
            // delivered b1; a2 was delivered by nobody.
            encode_epoch_end(5, 1),
            encode_flush_delivery(5, b, 1, 1),
        ];
        let payloads: Vec<Vec<u8>> = recover(records.iter().map(Vec::as_slice))
            .unwrap()
            .into_iter()
            .map(|m| m.payload)
            .collect();
        assert_eq!(payloads, vec![b"a1".to_vec(), b"b1".to_vec()]);
        // A member that crashed before the flush (no epoch end) keeps every
        // announced one, in announcement order.
        let payloads: Vec<Vec<u8>> = recover(records[..6].iter().map(Vec::as_slice))
            .unwrap()
            .into_iter()
            .map(|m| m.payload)
            .collect();
        assert_eq!(
            payloads,
            vec![b"a1".to_vec(), b"b1".to_vec(), b"a2".to_vec()]
        );
    }

    #[test]
    fn a_short_loaded_record_is_an_error() {
        let record = [LOADED, 1, 2, 3];
        assert!(recover([&record[..]]).is_err());
    }
}
