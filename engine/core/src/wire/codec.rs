//! Encoding and decoding of frames. The byte layout is specified in
//! `docs/wire-format.md`; this file is its only implementation.
//!
//! A frame is a 38-byte header followed by `count` sub-messages, each a tag
//! byte, a canonical LEB128 body length and the body. The encoding is
//! canonical: every value has exactly one encoding, so for any input that
//! [`Frame::decode`] accepts, re-encoding the decoded header and messages with
//! a [`FrameWriter`] reproduces the input byte for byte.
//!
//! Decoding never panics, never overflows and never allocates more than a
//! constant factor of the input's length: every count read from the wire is
//! checked against the bytes that remain before anything is reserved.

use super::data::{data_tag, is_data_tag, DataView};
use super::msg::{
    AckEntries, AckEntry, CarriedMsg, GroupDigest, GroupRecord, Header, JoinRequest, Msg, Promise,
    Proposal, ADDR_MAX, GROUP_NAME_MAX, MAGIC, VERSION,
};
use crate::error::DecodeError;
use crate::id::{Ballot, GroupId, MemberId, ViewId};
use crate::view::MemberInfo;

/// Bytes of the fixed frame header.
pub const HEADER_BYTES: usize = 38;

/// Byte offset of the header's sub-message count (`u16`, little-endian).
const COUNT_OFFSET: usize = 36;

/// Longest LEB128 encoding of a `u32`.
const VARINT_MAX_BYTES: usize = 5;

/// Bytes of a `StateChunk` body before its chunk bytes (group, transfer,
/// index, total).
pub const STATE_CHUNK_FIXED_BYTES: usize = 8 + 8 + 4 + 4;

/// Sub-message tags. Stable: a tag is never reused for another meaning.
pub mod tag {
    pub const DATA: u8 = 1;
    pub const ACK: u8 = 2;
    pub const NAK: u8 = 3;
    pub const HEARTBEAT: u8 = 4;
    pub const JOIN: u8 = 5;
    pub const GROUP_CHANGE: u8 = 6;
    pub const LEAVE: u8 = 7;
    pub const SUSPECT: u8 = 8;
    pub const PREPARE: u8 = 9;
    pub const PROMISE: u8 = 10;
    pub const REJECT: u8 = 11;
    pub const ACCEPT: u8 = 12;
    pub const ACCEPTED: u8 = 13;
    pub const COMMIT: u8 = 14;
    pub const COMMIT_REQUEST: u8 = 15;
    pub const EXCLUDED: u8 = 16;
    pub const STATE_CHUNK: u8 = 17;
    pub const STATE_ACK: u8 = 18;
    /// Tags 19 to 25: the data messages of the other kinds (`wire::data_tag`).
    pub const FIRST_TYPED_DATA: u8 = super::data_tag::CAUSAL;
    pub const LAST_TYPED_DATA: u8 = super::data_tag::REPLY;
    pub const ACK_WANTED: u8 = 26;
    pub const LAST: u8 = ACK_WANTED;
}

/// The tag a sub-message is encoded with.
pub fn msg_tag(msg: &Msg<'_>) -> u8 {
    match msg {
        Msg::Data { .. } => tag::DATA,
        Msg::Ack { .. } => tag::ACK,
        Msg::Nak { .. } => tag::NAK,
        Msg::Heartbeat => tag::HEARTBEAT,
        Msg::Join(_) => tag::JOIN,
        Msg::GroupChange { .. } => tag::GROUP_CHANGE,
        Msg::Leave { .. } => tag::LEAVE,
        Msg::Suspect { .. } => tag::SUSPECT,
        Msg::Prepare { .. } => tag::PREPARE,
        Msg::Promise(_) => tag::PROMISE,
        Msg::Reject { .. } => tag::REJECT,
        Msg::Accept { .. } => tag::ACCEPT,
        Msg::Accepted { .. } => tag::ACCEPTED,
        Msg::Commit { .. } => tag::COMMIT,
        Msg::CommitRequest { .. } => tag::COMMIT_REQUEST,
        Msg::Excluded { .. } => tag::EXCLUDED,
        Msg::StateChunk { .. } => tag::STATE_CHUNK,
        Msg::StateAck { .. } => tag::STATE_ACK,
        Msg::Typed { tag, .. } => *tag,
        Msg::AckWanted => tag::ACK_WANTED,
    }
}

// ---------------------------------------------------------------------------
// Varints

/// Bytes of the minimal LEB128 encoding of `value`.
fn varint_len(value: u32) -> usize {
    match value {
        0..=0x7F => 1,
        0x80..=0x3FFF => 2,
        0x4000..=0x1F_FFFF => 3,
        0x20_0000..=0x0FFF_FFFF => 4,
        _ => 5,
    }
}

/// Write the minimal LEB128 encoding of `value` into `out`, which must be
/// exactly `varint_len(value)` bytes long.
fn write_varint(out: &mut [u8], mut value: u32) {
    let last = out.len() - 1;
    for (i, byte) in out.iter_mut().enumerate() {
        let low = (value & 0x7F) as u8;
        value >>= 7;
        *byte = if i == last { low } else { low | 0x80 };
    }
}

/// Read a minimal LEB128 `u32` from the front of `bytes`; returns the value and
/// the bytes it took.
fn read_varint(bytes: &[u8]) -> Result<(u32, usize), DecodeError> {
    let mut value: u32 = 0;
    for i in 0..VARINT_MAX_BYTES {
        let Some(&byte) = bytes.get(i) else {
            return Err(DecodeError::Truncated("sub-message length"));
        };
        let low = u32::from(byte & 0x7F);
        if i == VARINT_MAX_BYTES - 1 && byte > 0x0F {
            // Bits beyond the 32nd, or a sixth byte.
            return Err(DecodeError::Invalid("sub-message length (over u32)"));
        }
        value |= low << (7 * i);
        if byte & 0x80 == 0 {
            if i > 0 && byte == 0 {
                return Err(DecodeError::Invalid(
                    "sub-message length (non-minimal varint)",
                ));
            }
            return Ok((value, i + 1));
        }
    }
    // Unreachable: the fifth byte either ended the varint or was rejected.
    Err(DecodeError::Invalid("sub-message length (over u32)"))
}

// ---------------------------------------------------------------------------
// Header

fn write_header(out: &mut Vec<u8>, header: &Header, count: u16) {
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(VERSION);
    out.push(0); // flags
    out.extend_from_slice(&header.sender.node.0.to_le_bytes());
    out.extend_from_slice(&header.sender.incarnation.0.to_le_bytes());
    out.extend_from_slice(&header.view.0.to_le_bytes());
    out.extend_from_slice(&header.group.0.to_le_bytes());
    out.extend_from_slice(&header.seq.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
}

/// Decode the fixed header; returns it and the sub-message count.
fn read_header(bytes: &[u8]) -> Result<(Header, u16), DecodeError> {
    // Check the identifying fields as soon as they are present, so that a
    // short datagram of another protocol reports `BadMagic`, not `Truncated`.
    if let Some(magic) = bytes.get(0..2) {
        let magic = u16::from_le_bytes([magic[0], magic[1]]);
        if magic != MAGIC {
            return Err(DecodeError::BadMagic(magic));
        }
    }
    if let Some(&version) = bytes.get(2) {
        if version != VERSION {
            return Err(DecodeError::UnsupportedVersion(version));
        }
    }
    if let Some(&flags) = bytes.get(3) {
        if flags != 0 {
            return Err(DecodeError::Invalid("flags"));
        }
    }
    let Some(fixed) = bytes.get(4..HEADER_BYTES) else {
        return Err(DecodeError::Truncated("header"));
    };
    let mut r = Reader::new(fixed);
    let sender = r.member("header")?;
    let view = ViewId(r.u64("header")?);
    let group = GroupId(r.u64("header")?);
    let seq = r.u64("header")?;
    let count = r.u16("header")?;
    Ok((
        Header {
            sender,
            view,
            group,
            seq,
        },
        count,
    ))
}

// ---------------------------------------------------------------------------
// Writing

/// A value that the format cannot represent: a string over its limit or an
/// empty group name, a vector of more than `u32::MAX` elements, a body of
/// more than `u32::MAX` bytes.
#[derive(Debug)]
struct Unencodable;

type Put = Result<(), Unencodable>;

fn put_u8(out: &mut Vec<u8>, value: u8) {
    out.push(value);
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_u64(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bool(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

fn put_member(out: &mut Vec<u8>, member: MemberId) {
    put_u32(out, member.node.0);
    put_u32(out, member.incarnation.0);
}

fn put_ballot(out: &mut Vec<u8>, ballot: Ballot) {
    put_u32(out, ballot.round);
    put_u32(out, ballot.node);
}

fn put_ack_entry(out: &mut Vec<u8>, entry: &AckEntry) {
    put_member(out, entry.sender);
    put_u64(out, entry.hi);
}

fn put_str(out: &mut Vec<u8>, s: &str, kind: StrKind) -> Put {
    let len = s.len();
    if len > kind.max() || (len == 0 && !kind.may_be_empty()) {
        return Err(Unencodable);
    }
    // `max()` is at most 255, so the length fits a u16.
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

fn put_count(out: &mut Vec<u8>, len: usize) -> Put {
    let len = u32::try_from(len).map_err(|_| Unencodable)?;
    put_u32(out, len);
    Ok(())
}

fn put_vec<T>(out: &mut Vec<u8>, items: &[T], mut put: impl FnMut(&mut Vec<u8>, &T) -> Put) -> Put {
    put_count(out, items.len())?;
    items.iter().try_for_each(|item| put(out, item))
}

fn put_members(out: &mut Vec<u8>, members: &[MemberId]) -> Put {
    put_vec(out, members, |out, member| {
        put_member(out, *member);
        Ok(())
    })
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) -> Put {
    put_count(out, bytes.len())?;
    out.extend_from_slice(bytes);
    Ok(())
}

fn put_member_info(out: &mut Vec<u8>, info: &MemberInfo) -> Put {
    put_member(out, info.id);
    put_str(out, &info.addr, StrKind::Addr)
}

fn put_carried(out: &mut Vec<u8>, carried: &CarriedMsg) -> Put {
    put_u64(out, carried.group.0);
    put_member(out, carried.sender);
    put_u64(out, carried.seq);
    if !is_data_tag(carried.tag) || DataView::parse(carried.tag, &carried.payload).is_err() {
        return Err(Unencodable);
    }
    put_u8(out, carried.tag);
    put_bytes(out, &carried.payload)
}

fn put_group_record(out: &mut Vec<u8>, record: &GroupRecord) -> Put {
    put_u64(out, record.id.0);
    put_str(out, &record.name, StrKind::GroupName)?;
    put_u64(out, record.view_id);
    put_members(out, &record.members)?;
    put_members(out, &record.joined)?;
    put_members(out, &record.left)?;
    put_members(out, &record.failed)?;
    put_members(out, &record.loading)
}

fn put_digest(out: &mut Vec<u8>, digest: &GroupDigest) -> Put {
    put_u64(out, digest.group.0);
    put_bool(out, digest.has_state);
    put_vec(out, &digest.received, |out, entry| {
        put_ack_entry(out, entry);
        Ok(())
    })
}

fn put_proposal(out: &mut Vec<u8>, proposal: &Proposal) -> Put {
    put_u64(out, proposal.view.0);
    put_vec(out, &proposal.members, put_member_info)?;
    put_members(out, &proposal.retired)?;
    put_vec(out, &proposal.groups, put_group_record)?;
    put_vec(out, &proposal.cut, |out, (group, entry)| {
        put_u64(out, group.0);
        put_ack_entry(out, entry);
        Ok(())
    })?;
    put_vec(out, &proposal.carried, put_carried)
}

fn put_promise(out: &mut Vec<u8>, promise: &Promise) -> Put {
    put_ballot(out, promise.ballot);
    match &promise.accepted {
        None => put_u8(out, 0),
        Some((ballot, proposal)) => {
            put_u8(out, 1);
            put_ballot(out, *ballot);
            put_proposal(out, proposal)?;
        }
    }
    put_vec(out, &promise.digests, put_digest)?;
    put_vec(out, &promise.carried, put_carried)
}

/// Append the body of `msg` (without tag or length).
fn put_body(out: &mut Vec<u8>, msg: &Msg<'_>) -> Put {
    match msg {
        Msg::Data { payload } => out.extend_from_slice(payload),
        Msg::Typed { body, .. } => out.extend_from_slice(body),
        Msg::Ack { entries } => out.extend_from_slice(entries.raw()),
        Msg::Nak { sender, from, to } => {
            put_member(out, *sender);
            put_u64(out, *from);
            put_u64(out, *to);
        }
        Msg::Heartbeat | Msg::AckWanted => {}
        Msg::Join(request) => {
            put_member_info(out, &request.member)?;
            put_vec(out, &request.groups, |out, name| {
                put_str(out, name, StrKind::GroupName)
            })?;
        }
        Msg::GroupChange { member, name, join } => {
            put_member(out, *member);
            put_str(out, name, StrKind::GroupName)?;
            put_bool(out, *join);
        }
        Msg::Leave { member } => put_member(out, *member),
        Msg::Suspect { suspects } => put_members(out, suspects)?,
        Msg::Prepare { ballot } | Msg::Reject { promised: ballot } | Msg::Accepted { ballot } => {
            put_ballot(out, *ballot)
        }
        Msg::Promise(promise) => put_promise(out, promise)?,
        Msg::Accept { ballot, proposal } => {
            put_ballot(out, *ballot);
            put_proposal(out, proposal)?;
        }
        Msg::Commit { proposal } => put_proposal(out, proposal)?,
        Msg::CommitRequest { view } => put_u64(out, view.0),
        Msg::Excluded { view, member } => {
            put_u64(out, view.0);
            put_member(out, *member);
        }
        Msg::StateChunk {
            group,
            transfer,
            index,
            total,
            bytes,
        } => {
            put_u64(out, group.0);
            put_u64(out, *transfer);
            put_u32(out, *index);
            put_u32(out, *total);
            out.extend_from_slice(bytes);
        }
        Msg::StateAck {
            group,
            transfer,
            next,
        } => {
            put_u64(out, group.0);
            put_u64(out, *transfer);
            put_u32(out, *next);
        }
    }
    Ok(())
}

/// A guess of the body length of `msg`, used to size the length slot so the
/// body rarely has to move. Exact for the hot-path and fixed-size messages.
fn body_len_hint(msg: &Msg<'_>) -> usize {
    match msg {
        Msg::Data { payload } => payload.len(),
        Msg::Typed { body, .. } => body.len(),
        Msg::Ack { entries } => entries.raw().len(),
        Msg::StateChunk { bytes, .. } => STATE_CHUNK_FIXED_BYTES + bytes.len(),
        // Fixed-size or small bodies: a one-byte length.
        _ => 0,
    }
}

/// Bytes of the length slot reserved for a body of about `hint` bytes.
fn slot_len(hint: usize) -> usize {
    u32::try_from(hint).map_or(VARINT_MAX_BYTES, varint_len)
}

/// Builds one frame in a caller-owned buffer.
///
/// Every `push*` appends one sub-message and bumps the count in the header.
/// A push returns false and leaves the buffer as it was if the frame already
/// holds `u16::MAX` sub-messages ([`FrameWriter::is_full`]) or if the message
/// cannot be represented on the wire: a group name that is empty or longer
/// than `GROUP_NAME_MAX`, an address longer than `ADDR_MAX`, a body longer
/// than `u32::MAX` bytes or a vector of more than `u32::MAX` elements, or a
/// `Data` sub-message whose sequence (`header.seq` plus the number of `Data`
/// sub-messages before it) would exceed `u64::MAX`.
#[derive(Debug)]
pub struct FrameWriter<'b> {
    buf: &'b mut Vec<u8>,
    count: u16,
    /// The sequence of the next `Data` sub-message; `None` past `u64::MAX`.
    data_seq: Option<u64>,
}

impl<'b> FrameWriter<'b> {
    /// Clear `buf` and write `header` with a message count of zero.
    pub fn new(buf: &'b mut Vec<u8>, header: &Header) -> FrameWriter<'b> {
        buf.clear();
        write_header(buf, header, 0);
        FrameWriter {
            buf,
            count: 0,
            data_seq: Some(header.seq),
        }
    }

    /// Append a sub-message. Returns false (and writes nothing) if the frame
    /// already holds `u16::MAX` sub-messages, or if `msg` violates a wire
    /// limit (see the type's documentation).
    pub fn push(&mut self, msg: &Msg<'_>) -> bool {
        match msg {
            Msg::Data { payload } => return self.push_data(payload),
            Msg::Typed { tag, body } => {
                // FIFO data is `Msg::Data`: one message, one encoding.
                return *tag != tag::DATA && self.push_typed(*tag, body);
            }
            _ => {}
        }
        if self.is_full() {
            return false;
        }
        let start = self.buf.len();
        let slot = slot_len(body_len_hint(msg));
        self.open(msg_tag(msg), slot);
        if put_body(self.buf, msg).is_err() {
            self.buf.truncate(start);
            return false;
        }
        self.seal(start, slot)
    }

    /// Append a `Data` sub-message: the hot path. Allocates nothing beyond
    /// the growth of the buffer (none if it has room for the message).
    pub fn push_data(&mut self, payload: &[u8]) -> bool {
        self.push_typed(tag::DATA, payload)
    }

    /// Append a stored data message (its tag byte, then its body), as a
    /// stream holds it. False, writing nothing, unless the tag is a data tag
    /// and the body parses (or on the limits of `push`).
    pub fn push_stored(&mut self, stored: &[u8]) -> bool {
        match stored.split_first() {
            Some((&tag, body)) => self.push_typed(tag, body),
            None => false,
        }
    }

    /// Append a data message of any kind: the tag and its body.
    fn push_typed(&mut self, tag: u8, body: &[u8]) -> bool {
        let Some(seq) = self.data_seq else {
            return false;
        };
        if self.is_full() || u32::try_from(body.len()).is_err() {
            return false;
        }
        if tag != tag::DATA && DataView::parse(tag, body).is_err() {
            return false;
        }
        let start = self.buf.len();
        let slot = slot_len(body.len());
        self.open(tag, slot);
        self.buf.extend_from_slice(body);
        if !self.seal(start, slot) {
            return false;
        }
        self.data_seq = seq.checked_add(1);
        true
    }

    /// Append an `Ack` sub-message holding `entries`, without collecting them.
    pub fn push_ack(&mut self, entries: impl Iterator<Item = AckEntry>) -> bool {
        if self.is_full() {
            return false;
        }
        let start = self.buf.len();
        let (lower, _) = entries.size_hint();
        let slot = slot_len(lower.saturating_mul(AckEntries::ENTRY_BYTES));
        self.open(tag::ACK, slot);
        AckEntries::encode_into(entries, self.buf);
        self.seal(start, slot)
    }

    /// Bytes written so far, header included.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// True while no sub-message has been pushed (the header is always there).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn message_count(&self) -> u16 {
        self.count
    }

    /// True once the frame holds `u16::MAX` sub-messages: every push fails.
    pub fn is_full(&self) -> bool {
        self.count == u16::MAX
    }

    /// Total frame length.
    pub fn finish(self) -> usize {
        self.buf.len()
    }

    /// Write `tag` and a zeroed length slot of `slot` bytes.
    fn open(&mut self, tag: u8, slot: usize) {
        self.buf.push(tag);
        self.buf.resize(self.buf.len() + slot, 0);
    }

    /// The body was appended after a `slot`-byte length slot of the message
    /// starting at `start`: move the body if its minimal length varint has
    /// another size than the slot, write the length and count the message.
    fn seal(&mut self, start: usize, slot: usize) -> bool {
        let len_at = start + 1;
        let body_at = len_at + slot;
        let end = self.buf.len();
        let Ok(body_len) = u32::try_from(end - body_at) else {
            self.buf.truncate(start);
            return false;
        };
        let need = varint_len(body_len);
        if need < slot {
            self.buf.copy_within(body_at..end, len_at + need);
            self.buf.truncate(end - (slot - need));
        } else if need > slot {
            let grow = need - slot;
            self.buf.resize(end + grow, 0);
            self.buf.copy_within(body_at..end, body_at + grow);
        }
        write_varint(&mut self.buf[len_at..len_at + need], body_len);
        self.count += 1;
        self.buf[COUNT_OFFSET..COUNT_OFFSET + 2].copy_from_slice(&self.count.to_le_bytes());
        true
    }
}

// ---------------------------------------------------------------------------
// Reading

/// Which string, for its limits and error messages.
#[derive(Clone, Copy)]
enum StrKind {
    GroupName,
    Addr,
}

impl StrKind {
    fn max(self) -> usize {
        match self {
            StrKind::GroupName => GROUP_NAME_MAX,
            StrKind::Addr => ADDR_MAX,
        }
    }

    fn may_be_empty(self) -> bool {
        matches!(self, StrKind::Addr)
    }

    fn what(self) -> &'static str {
        match self {
            StrKind::GroupName => "group name",
            StrKind::Addr => "address",
        }
    }

    fn bad_length(self) -> &'static str {
        match self {
            StrKind::GroupName => "group name length",
            StrKind::Addr => "address length",
        }
    }

    fn bad_utf8(self) -> &'static str {
        match self {
            StrKind::GroupName => "group name (not UTF-8)",
            StrKind::Addr => "address (not UTF-8)",
        }
    }
}

/// A cursor over a byte slice. Every read checks the remaining length.
struct Reader<'a> {
    rest: &'a [u8],
}

type Read<T> = Result<T, DecodeError>;

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    fn remaining(&self) -> usize {
        self.rest.len()
    }

    fn take(&mut self, n: usize, what: &'static str) -> Read<&'a [u8]> {
        if n > self.rest.len() {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Everything that is left.
    fn take_rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Read<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Read<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Read<u16> {
        self.array(what).map(u16::from_le_bytes)
    }

    fn u32(&mut self, what: &'static str) -> Read<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Read<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A strict boolean: 0 or 1.
    fn bool(&mut self, what: &'static str) -> Read<bool> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid(what)),
        }
    }

    fn member(&mut self, what: &'static str) -> Read<MemberId> {
        let node = self.u32(what)?;
        let incarnation = self.u32(what)?;
        Ok(MemberId::new(node, incarnation))
    }

    fn ballot(&mut self, what: &'static str) -> Read<Ballot> {
        let round = self.u32(what)?;
        let node = self.u32(what)?;
        Ok(Ballot { round, node })
    }

    fn ack_entry(&mut self, what: &'static str) -> Read<AckEntry> {
        let sender = self.member(what)?;
        let hi = self.u64(what)?;
        Ok(AckEntry { sender, hi })
    }

    fn string(&mut self, kind: StrKind) -> Read<String> {
        let len = usize::from(self.u16(kind.what())?);
        if len > kind.max() || (len == 0 && !kind.may_be_empty()) {
            return Err(DecodeError::Invalid(kind.bad_length()));
        }
        let bytes = self.take(len, kind.what())?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(DecodeError::Invalid(kind.bad_utf8())),
        }
    }

    /// A `u32` element count, checked against the remaining bytes given that
    /// each element takes at least `min_elem` bytes: the count can be used to
    /// reserve memory without trusting the sender.
    fn count(&mut self, min_elem: usize, what: &'static str) -> Read<usize> {
        let count = self.u32(what)?;
        let count = usize::try_from(count).map_err(|_| DecodeError::Truncated(what))?;
        if count > self.remaining() / min_elem.max(1) {
            return Err(DecodeError::Truncated(what));
        }
        Ok(count)
    }

    fn vec<T>(
        &mut self,
        min_elem: usize,
        what: &'static str,
        mut read: impl FnMut(&mut Self) -> Read<T>,
    ) -> Read<Vec<T>> {
        let count = self.count(min_elem, what)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(read(self)?);
        }
        Ok(items)
    }

    fn members(&mut self, what: &'static str) -> Read<Vec<MemberId>> {
        self.vec(8, what, |r| r.member(what))
    }

    fn bytes(&mut self, what: &'static str) -> Read<&'a [u8]> {
        let len = self.count(1, what)?;
        self.take(len, what)
    }

    fn member_info(&mut self) -> Read<MemberInfo> {
        let id = self.member("member info")?;
        let addr = self.string(StrKind::Addr)?;
        Ok(MemberInfo { id, addr })
    }

    fn carried(&mut self) -> Read<CarriedMsg> {
        const WHAT: &str = "carried message";
        let group = GroupId(self.u64(WHAT)?);
        let sender = self.member(WHAT)?;
        let seq = self.u64(WHAT)?;
        let tag = self.u8(WHAT)?;
        if !is_data_tag(tag) {
            return Err(DecodeError::Invalid("carried message tag"));
        }
        let payload = self.bytes(WHAT)?;
        DataView::parse(tag, payload)?;
        Ok(CarriedMsg {
            group,
            sender,
            seq,
            tag,
            payload: payload.to_vec(),
        })
    }

    fn group_record(&mut self) -> Read<GroupRecord> {
        const WHAT: &str = "group record";
        let id = GroupId(self.u64(WHAT)?);
        let name = self.string(StrKind::GroupName)?;
        let view_id = self.u64(WHAT)?;
        let members = self.members(WHAT)?;
        let joined = self.members(WHAT)?;
        let left = self.members(WHAT)?;
        let failed = self.members(WHAT)?;
        let loading = self.members(WHAT)?;
        Ok(GroupRecord {
            id,
            name,
            view_id,
            members,
            joined,
            left,
            failed,
            loading,
        })
    }

    fn digest(&mut self) -> Read<GroupDigest> {
        const WHAT: &str = "group digest";
        let group = GroupId(self.u64(WHAT)?);
        let has_state = self.bool("group digest has_state")?;
        let received = self.vec(AckEntries::ENTRY_BYTES, WHAT, |r| r.ack_entry(WHAT))?;
        Ok(GroupDigest {
            group,
            has_state,
            received,
        })
    }

    fn proposal(&mut self) -> Read<Proposal> {
        const WHAT: &str = "proposal";
        let view = ViewId(self.u64(WHAT)?);
        let members = self.vec(MIN_MEMBER_INFO, WHAT, Self::member_info)?;
        let retired = self.members(WHAT)?;
        let groups = self.vec(MIN_GROUP_RECORD, WHAT, Self::group_record)?;
        let cut = self.vec(8 + AckEntries::ENTRY_BYTES, WHAT, |r| {
            let group = GroupId(r.u64(WHAT)?);
            Ok((group, r.ack_entry(WHAT)?))
        })?;
        let carried = self.vec(MIN_CARRIED, WHAT, Self::carried)?;
        Ok(Proposal {
            view,
            members,
            retired,
            groups,
            cut,
            carried,
        })
    }

    fn promise(&mut self) -> Read<Promise> {
        const WHAT: &str = "promise";
        let ballot = self.ballot(WHAT)?;
        let accepted = match self.u8(WHAT)? {
            0 => None,
            1 => Some((self.ballot(WHAT)?, self.proposal()?)),
            _ => return Err(DecodeError::Invalid("promise accepted option")),
        };
        let digests = self.vec(MIN_DIGEST, WHAT, Self::digest)?;
        let carried = self.vec(MIN_CARRIED, WHAT, Self::carried)?;
        Ok(Promise {
            ballot,
            accepted,
            digests,
            carried,
        })
    }
}

// Smallest encodings of the variable-size elements, for `Reader::count`.
/// Member id and an empty address.
const MIN_MEMBER_INFO: usize = 8 + 2;
/// Id, a one-byte name, view id and five empty member lists.
const MIN_GROUP_RECORD: usize = 8 + 3 + 8 + 5 * 4;
/// Group, sender, seq, tag and an empty payload.
const MIN_CARRIED: usize = 8 + 8 + 8 + 1 + 4;
/// Group, has_state and no entries.
const MIN_DIGEST: usize = 8 + 1 + 4;
/// A one-byte group name.
const MIN_GROUP_NAME: usize = 3;

/// Decode one sub-message body. The body must be consumed exactly.
fn read_msg<'a>(tag: u8, body: &'a [u8]) -> Read<Msg<'a>> {
    let mut r = Reader::new(body);
    let msg = match tag {
        tag::DATA => Msg::Data {
            payload: r.take_rest(),
        },
        tag::ACK_WANTED => Msg::AckWanted,
        tag::FIRST_TYPED_DATA..=tag::LAST_TYPED_DATA => {
            let body = r.take_rest();
            DataView::parse(tag, body)?;
            Msg::Typed { tag, body }
        }
        tag::ACK => {
            let raw = r.take_rest();
            let entries =
                AckEntries::from_raw(raw).ok_or(DecodeError::Invalid("ack entries length"))?;
            Msg::Ack { entries }
        }
        tag::NAK => {
            const WHAT: &str = "nak";
            let sender = r.member(WHAT)?;
            let from = r.u64(WHAT)?;
            let to = r.u64(WHAT)?;
            Msg::Nak { sender, from, to }
        }
        tag::HEARTBEAT => Msg::Heartbeat,
        tag::JOIN => {
            let member = r.member_info()?;
            let groups = r.vec(MIN_GROUP_NAME, "join groups", |r| {
                r.string(StrKind::GroupName)
            })?;
            Msg::Join(JoinRequest { member, groups })
        }
        tag::GROUP_CHANGE => {
            let member = r.member("group change")?;
            let name = r.string(StrKind::GroupName)?;
            let join = r.bool("group change join flag")?;
            Msg::GroupChange { member, name, join }
        }
        tag::LEAVE => Msg::Leave {
            member: r.member("leave")?,
        },
        tag::SUSPECT => Msg::Suspect {
            suspects: r.members("suspect")?,
        },
        tag::PREPARE => Msg::Prepare {
            ballot: r.ballot("prepare")?,
        },
        tag::PROMISE => Msg::Promise(Box::new(r.promise()?)),
        tag::REJECT => Msg::Reject {
            promised: r.ballot("reject")?,
        },
        tag::ACCEPT => {
            let ballot = r.ballot("accept")?;
            let proposal = Box::new(r.proposal()?);
            Msg::Accept { ballot, proposal }
        }
        tag::ACCEPTED => Msg::Accepted {
            ballot: r.ballot("accepted")?,
        },
        tag::COMMIT => Msg::Commit {
            proposal: Box::new(r.proposal()?),
        },
        tag::COMMIT_REQUEST => Msg::CommitRequest {
            view: ViewId(r.u64("commit request")?),
        },
        tag::EXCLUDED => Msg::Excluded {
            view: ViewId(r.u64("excluded")?),
            member: r.member("excluded")?,
        },
        tag::STATE_CHUNK => {
            const WHAT: &str = "state chunk";
            let group = GroupId(r.u64(WHAT)?);
            let transfer = r.u64(WHAT)?;
            let index = r.u32(WHAT)?;
            let total = r.u32(WHAT)?;
            Msg::StateChunk {
                group,
                transfer,
                index,
                total,
                bytes: r.take_rest(),
            }
        }
        tag::STATE_ACK => {
            const WHAT: &str = "state ack";
            let group = GroupId(r.u64(WHAT)?);
            let transfer = r.u64(WHAT)?;
            let next = r.u32(WHAT)?;
            Msg::StateAck {
                group,
                transfer,
                next,
            }
        }
        other => return Err(DecodeError::UnknownMessageTag(other)),
    };
    if r.remaining() != 0 {
        return Err(DecodeError::Invalid("sub-message body (bytes left over)"));
    }
    Ok(msg)
}

/// Split the next sub-message off the front of `rest`: its tag and body.
fn split_msg(rest: &[u8]) -> Read<(u8, &[u8], &[u8])> {
    let Some((&tag, after_tag)) = rest.split_first() else {
        return Err(DecodeError::Truncated("sub-message tag"));
    };
    if !(tag::DATA..=tag::LAST).contains(&tag) {
        return Err(DecodeError::UnknownMessageTag(tag));
    }
    let (len, len_bytes) = read_varint(after_tag)?;
    let after_len = &after_tag[len_bytes..];
    let len = usize::try_from(len).map_err(|_| DecodeError::Truncated("sub-message body"))?;
    if len > after_len.len() {
        return Err(DecodeError::Truncated("sub-message body"));
    }
    let (body, rest) = after_len.split_at(len);
    Ok((tag, body, rest))
}

/// Decode the next sub-message off the front of `rest`.
fn next_msg(rest: &[u8]) -> Read<(Msg<'_>, &[u8])> {
    let (tag, body, rest) = split_msg(rest)?;
    Ok((read_msg(tag, body)?, rest))
}

/// A decoded, fully validated frame borrowing the received bytes.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub header: Header,
    body: &'a [u8],
    count: u16,
}

impl<'a> Frame<'a> {
    /// Validate the whole frame. Never panics, whatever the bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Frame<'a>, DecodeError> {
        let (header, count) = read_header(bytes)?;
        let body = &bytes[HEADER_BYTES..];
        let mut rest = body;
        // The sequence of the next `Data` sub-message; `None` past `u64::MAX`.
        let mut data_seq = Some(header.seq);
        for _ in 0..count {
            let (msg, after) = next_msg(rest)?;
            if let Msg::Data { .. } | Msg::Typed { .. } = msg {
                let seq = data_seq.ok_or(DecodeError::Invalid("data sequence (past u64::MAX)"))?;
                data_seq = seq.checked_add(1);
            }
            rest = after;
        }
        if !rest.is_empty() {
            return Err(DecodeError::TrailingBytes(rest.len()));
        }
        Ok(Frame {
            header,
            body,
            count,
        })
    }

    pub fn message_count(&self) -> u16 {
        self.count
    }

    /// The sub-messages, in order. Infallible: `decode` validated them.
    pub fn messages(&self) -> Messages<'a> {
        Messages {
            rest: self.body,
            left: self.count,
        }
    }
}

/// The sub-messages of a [`Frame`], in order.
#[derive(Debug)]
pub struct Messages<'a> {
    rest: &'a [u8],
    left: u16,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Msg<'a>;

    fn next(&mut self) -> Option<Msg<'a>> {
        if self.left == 0 {
            return None;
        }
        // `Frame::decode` ran the same parser over the same bytes, so this
        // cannot fail; should it anyway, end the iteration rather than panic.
        match next_msg(self.rest) {
            Ok((msg, rest)) => {
                self.rest = rest;
                self.left -= 1;
                Some(msg)
            }
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::from(self.left);
        (left, Some(left))
    }
}

impl ExactSizeIterator for Messages<'_> {}

impl std::iter::FusedIterator for Messages<'_> {}

/// The header of a frame without decoding its sub-messages: for a runtime
/// that learns where a sender lives from the frame's source address. `None`
/// for anything that is not an Osiris frame header.
pub fn peek_header(bytes: &[u8]) -> Option<Header> {
    read_header(bytes).ok().map(|(header, _)| header)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trips_at_every_width_boundary() {
        for value in [
            0,
            1,
            0x7F,
            0x80,
            0x3FFF,
            0x4000,
            0x1F_FFFF,
            0x20_0000,
            0x0FFF_FFFF,
            0x1000_0000,
            u32::MAX,
        ] {
            let len = varint_len(value);
            let mut bytes = [0u8; VARINT_MAX_BYTES];
            write_varint(&mut bytes[..len], value);
            assert_eq!(read_varint(&bytes[..len]), Ok((value, len)), "{value:#x}");
        }
    }

    #[test]
    fn varint_rejects_non_minimal_and_oversized() {
        assert!(matches!(
            read_varint(&[0x80, 0x00]),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x10]),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            read_varint(&[0xFF, 0xFF, 0xFF, 0xFF, 0x8F]),
            Err(DecodeError::Invalid(_))
        ));
        assert!(matches!(
            read_varint(&[0x80, 0x80]),
            Err(DecodeError::Truncated(_))
        ));
    }

    #[test]
    fn tag_range_matches_decoder() {
        for tag in 0..=u8::MAX {
            let known = (tag::DATA..=tag::LAST).contains(&tag);
            let unknown = matches!(read_msg(tag, &[]), Err(DecodeError::UnknownMessageTag(_)));
            assert_eq!(known, !unknown, "tag {tag}");
        }
    }
}
