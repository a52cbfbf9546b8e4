//! The data messages of a sender's stream, one kind per tag (docs/ordering.md).
//!
//! Tag 1 (`Data`) is a FIFO multicast; tags 19 to 25 are the other kinds.
//! Every data tag takes one sequence number of the frame (`Header::seq + i`).
//! A stream stores each message as its tag byte followed by its body (a
//! *stored* message), so resending, carrying it in a flush and delivering it
//! need no other bookkeeping. [`DataView::parse`] is the only parser of those
//! bodies; the frame decoder runs it, so a frame with a malformed data body
//! is rejected whole, and it never panics.

use crate::error::DecodeError;
use crate::id::MemberId;

/// Data tags (see `wire::codec::tag` for the others).
pub mod data_tag {
    pub const FIFO: u8 = 1;
    pub const CAUSAL: u8 = 19;
    pub const ORDERED: u8 = 20;
    pub const SAFE: u8 = 21;
    pub const ORDER: u8 = 22;
    pub const P2P: u8 = 23;
    pub const QUERY: u8 = 24;
    pub const REPLY: u8 = 25;
}

/// Whether `tag` is a data tag (takes a sequence number).
pub fn is_data_tag(tag: u8) -> bool {
    tag == data_tag::FIFO || (data_tag::CAUSAL..=data_tag::REPLY).contains(&tag)
}

/// Bytes of one order range on the wire: sender (8), lo (8), hi (8).
pub const ORDER_RANGE_BYTES: usize = 24;
/// Bytes of one causal dependency: a u64 sequence.
pub const DEP_BYTES: usize = 8;
/// Bytes of one query target: a MemberId.
pub const TARGET_BYTES: usize = 8;
/// Query flag: deliver the request in total order.
pub const QUERY_FLAG_TOTAL: u8 = 1;

fn le_u64(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(word)
}

fn le_member(bytes: &[u8]) -> MemberId {
    let word = le_u64(bytes);
    MemberId::new(word as u32, (word >> 32) as u32)
}

/// A borrowed list of u64 (causal dependencies, indexed by rank).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Deps<'a> {
    raw: &'a [u8],
}

impl<'a> Deps<'a> {
    pub fn len(&self) -> usize {
        self.raw.len() / DEP_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        self.raw.chunks_exact(DEP_BYTES).map(le_u64)
    }
}

/// A borrowed list of members (query targets).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Members<'a> {
    raw: &'a [u8],
}

impl<'a> Members<'a> {
    pub fn len(&self) -> usize {
        self.raw.len() / TARGET_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = MemberId> + 'a {
        self.raw.chunks_exact(TARGET_BYTES).map(le_member)
    }

    pub fn contains(&self, member: MemberId) -> bool {
        self.iter().any(|candidate| candidate == member)
    }
}

/// One range of an order announcement: the ordered messages of `sender`
/// with sequence in `lo..=hi`, in sequence order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRange {
    pub sender: MemberId,
    pub lo: u64,
    pub hi: u64,
}

/// A borrowed order announcement: `len / 24` ranges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderRanges<'a> {
    raw: &'a [u8],
}

impl<'a> OrderRanges<'a> {
    pub fn len(&self) -> usize {
        self.raw.len() / ORDER_RANGE_BYTES
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = OrderRange> + 'a {
        self.raw
            .chunks_exact(ORDER_RANGE_BYTES)
            .map(|chunk| OrderRange {
                sender: le_member(chunk),
                lo: le_u64(&chunk[8..]),
                hi: le_u64(&chunk[16..]),
            })
    }
}

/// A data message body, parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataView<'a> {
    /// Send: FIFO.
    Fifo {
        payload: &'a [u8],
    },
    /// CausalSend: `deps[j]` = how far the sender had delivered stream j.
    Causal {
        deps: Deps<'a>,
        payload: &'a [u8],
    },
    Ordered {
        payload: &'a [u8],
    },
    Safe {
        payload: &'a [u8],
    },
    /// The sequencer's order announcement (never delivered to the application).
    Order {
        ranges: OrderRanges<'a>,
    },
    /// Point to point: only `to` delivers it.
    P2p {
        to: MemberId,
        payload: &'a [u8],
    },
    /// A query request for `targets`; `total`: delivered in total order.
    Query {
        id: u64,
        total: bool,
        targets: Members<'a>,
        payload: &'a [u8],
    },
    /// A reply to query `id` of `to`.
    Reply {
        to: MemberId,
        id: u64,
        payload: &'a [u8],
    },
}

fn split<'a>(
    body: &'a [u8],
    n: usize,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    if body.len() < n {
        return Err(DecodeError::Truncated(what));
    }
    Ok(body.split_at(n))
}

/// A u16 count of `elem`-byte elements, then the elements; returns them and the rest.
fn counted<'a>(
    body: &'a [u8],
    elem: usize,
    what: &'static str,
) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
    let (count, rest) = split(body, 2, what)?;
    let count = usize::from(u16::from_le_bytes([count[0], count[1]]));
    split(rest, count * elem, what)
}

impl<'a> DataView<'a> {
    /// Parse the body of a data message with tag `tag`. Never panics.
    pub fn parse(tag: u8, body: &'a [u8]) -> Result<DataView<'a>, DecodeError> {
        Ok(match tag {
            data_tag::FIFO => DataView::Fifo { payload: body },
            data_tag::CAUSAL => {
                let (raw, payload) = counted(body, DEP_BYTES, "causal deps")?;
                DataView::Causal {
                    deps: Deps { raw },
                    payload,
                }
            }
            data_tag::ORDERED => DataView::Ordered { payload: body },
            data_tag::SAFE => DataView::Safe { payload: body },
            data_tag::ORDER => {
                if body.len() % ORDER_RANGE_BYTES != 0 {
                    return Err(DecodeError::Invalid("order ranges length"));
                }
                let ranges = OrderRanges { raw: body };
                if ranges
                    .iter()
                    .any(|range| range.lo == 0 || range.lo > range.hi)
                {
                    return Err(DecodeError::Invalid("order range"));
                }
                DataView::Order { ranges }
            }
            data_tag::P2P => {
                let (to, payload) = split(body, 8, "p2p")?;
                DataView::P2p {
                    to: le_member(to),
                    payload,
                }
            }
            data_tag::QUERY => {
                let (fixed, rest) = split(body, 9, "query")?;
                let total = match fixed[8] {
                    0 => false,
                    QUERY_FLAG_TOTAL => true,
                    _ => return Err(DecodeError::Invalid("query flags")),
                };
                let (raw, payload) = counted(rest, TARGET_BYTES, "query targets")?;
                DataView::Query {
                    id: le_u64(fixed),
                    total,
                    targets: Members { raw },
                    payload,
                }
            }
            data_tag::REPLY => {
                let (fixed, payload) = split(body, 16, "reply")?;
                DataView::Reply {
                    to: le_member(fixed),
                    id: le_u64(&fixed[8..]),
                    payload,
                }
            }
            other => return Err(DecodeError::UnknownMessageTag(other)),
        })
    }

    /// Parse a stored message (tag byte, then body).
    pub fn parse_stored(stored: &'a [u8]) -> Result<DataView<'a>, DecodeError> {
        match stored.split_first() {
            Some((&tag, body)) => DataView::parse(tag, body),
            None => Err(DecodeError::Truncated("stored data message")),
        }
    }

    pub fn tag(&self) -> u8 {
        match self {
            DataView::Fifo { .. } => data_tag::FIFO,
            DataView::Causal { .. } => data_tag::CAUSAL,
            DataView::Ordered { .. } => data_tag::ORDERED,
            DataView::Safe { .. } => data_tag::SAFE,
            DataView::Order { .. } => data_tag::ORDER,
            DataView::P2p { .. } => data_tag::P2P,
            DataView::Query { .. } => data_tag::QUERY,
            DataView::Reply { .. } => data_tag::REPLY,
        }
    }

    /// Append the stored form (tag, then body) to `out`.
    pub fn write_stored(&self, out: &mut Vec<u8>) {
        out.push(self.tag());
        match *self {
            DataView::Fifo { payload }
            | DataView::Ordered { payload }
            | DataView::Safe { payload } => out.extend_from_slice(payload),
            DataView::Causal { deps, payload } => {
                put_causal_header(out, deps.iter(), deps.len());
                out.extend_from_slice(payload);
            }
            DataView::Order { ranges } => out.extend_from_slice(ranges.raw),
            DataView::P2p { to, payload } => {
                put_member(out, to);
                out.extend_from_slice(payload);
            }
            DataView::Query {
                id,
                total,
                targets,
                payload,
            } => put_query(out, id, total, targets.iter(), targets.len(), payload),
            DataView::Reply { to, id, payload } => {
                put_member(out, to);
                out.extend_from_slice(&id.to_le_bytes());
                out.extend_from_slice(payload);
            }
        }
    }
}

fn put_member(out: &mut Vec<u8>, member: MemberId) {
    out.extend_from_slice(&member.node.0.to_le_bytes());
    out.extend_from_slice(&member.incarnation.0.to_le_bytes());
}

/// Append a causal body's dependency list (`count` entries, at most `u16::MAX`).
pub fn put_causal_header(out: &mut Vec<u8>, deps: impl Iterator<Item = u64>, count: usize) {
    debug_assert!(count <= usize::from(u16::MAX));
    out.extend_from_slice(&(count as u16).to_le_bytes());
    let start = out.len();
    for dep in deps {
        out.extend_from_slice(&dep.to_le_bytes());
    }
    debug_assert_eq!(out.len() - start, count * DEP_BYTES);
}

/// Append one order range.
pub fn put_order_range(out: &mut Vec<u8>, range: OrderRange) {
    debug_assert!(range.lo >= 1 && range.lo <= range.hi);
    put_member(out, range.sender);
    out.extend_from_slice(&range.lo.to_le_bytes());
    out.extend_from_slice(&range.hi.to_le_bytes());
}

/// Append a query body (without the tag).
pub fn put_query(
    out: &mut Vec<u8>,
    id: u64,
    total: bool,
    targets: impl Iterator<Item = MemberId>,
    count: usize,
    payload: &[u8],
) {
    debug_assert!(count <= usize::from(u16::MAX));
    out.extend_from_slice(&id.to_le_bytes());
    out.push(if total { QUERY_FLAG_TOTAL } else { 0 });
    out.extend_from_slice(&(count as u16).to_le_bytes());
    for target in targets {
        put_member(out, target);
    }
    out.extend_from_slice(payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_round_trip_every_kind() {
        let mut deps = Vec::new();
        put_causal_header(&mut deps, [3u64, 0, 7].into_iter(), 3);
        deps.extend_from_slice(b"hi");
        let causal = DataView::parse(data_tag::CAUSAL, &deps).expect("causal");
        let mut ranges = Vec::new();
        put_order_range(
            &mut ranges,
            OrderRange {
                sender: MemberId::new(2, 1),
                lo: 4,
                hi: 9,
            },
        );
        let order = DataView::parse(data_tag::ORDER, &ranges).expect("order");
        let mut query = Vec::new();
        put_query(
            &mut query,
            77,
            true,
            [MemberId::new(1, 1)].into_iter(),
            1,
            b"q",
        );
        let query = DataView::parse(data_tag::QUERY, &query).expect("query");
        for view in [
            DataView::Fifo { payload: b"a" },
            causal,
            DataView::Ordered { payload: b"" },
            DataView::Safe { payload: b"s" },
            order,
            DataView::P2p {
                to: MemberId::new(5, 2),
                payload: b"p",
            },
            query,
            DataView::Reply {
                to: MemberId::new(1, 3),
                id: 9,
                payload: b"r",
            },
        ] {
            let mut stored = Vec::new();
            view.write_stored(&mut stored);
            assert_eq!(DataView::parse_stored(&stored), Ok(view));
        }
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        assert!(DataView::parse(data_tag::CAUSAL, &[5, 0, 1]).is_err());
        assert!(DataView::parse(data_tag::ORDER, &[0; 23]).is_err());
        assert!(DataView::parse(data_tag::ORDER, &[0; 24]).is_err(), "lo 0");
        assert!(DataView::parse(data_tag::QUERY, &[0; 9]).is_err());
        let mut flags = vec![0u8; 11];
        flags[8] = 2;
        assert!(DataView::parse(data_tag::QUERY, &flags).is_err());
        assert!(DataView::parse(data_tag::REPLY, &[0; 15]).is_err());
        assert!(DataView::parse_stored(&[]).is_err());
        assert!(DataView::parse(2, &[]).is_err());
    }
}
