//! The wire codec: round trips of every sub-message, canonical encoding,
//! robustness against arbitrary and mutated input, and one test per
//! `DecodeError` on hand-made bytes (built here independently of the codec,
//! following `docs/wire-format.md`).

use osiris_core::wire::{
    data_tag, put_causal_header, put_order_range, put_query, AckEntries, AckEntry, CarriedMsg,
    DataView, Frame, FrameWriter, GroupDigest, GroupRecord, Header, JoinRequest, Msg, OrderRange,
    Promise, Proposal, ADDR_MAX, GROUP_NAME_MAX, HEADER_BYTES, MAGIC, VERSION,
};
use osiris_core::{Ballot, DecodeError, GroupId, MemberId, MemberInfo, ViewId};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::Union;

// ---------------------------------------------------------------------------
// Helpers

/// A sub-message whose borrowed parts live in the spec itself.
#[derive(Clone, Debug)]
enum Spec {
    Data(Vec<u8>),
    /// Raw ack entries (a whole number of 16-byte entries).
    Ack(Vec<u8>),
    StateChunk {
        group: GroupId,
        transfer: u64,
        index: u32,
        total: u32,
        bytes: Vec<u8>,
    },
    /// A data message of another kind, in stored form (tag, then body).
    Typed(Vec<u8>),
    /// Any sub-message that owns its data.
    Owned(Msg<'static>),
}

impl Spec {
    fn msg(&self) -> Msg<'_> {
        match self {
            Spec::Data(payload) => Msg::Data { payload },
            Spec::Ack(raw) => Msg::Ack {
                entries: AckEntries::from_raw(raw).unwrap(),
            },
            Spec::StateChunk {
                group,
                transfer,
                index,
                total,
                bytes,
            } => Msg::StateChunk {
                group: *group,
                transfer: *transfer,
                index: *index,
                total: *total,
                bytes,
            },
            Spec::Typed(stored) => Msg::Typed {
                tag: stored[0],
                body: &stored[1..],
            },
            Spec::Owned(msg) => msg.clone(),
        }
    }
}

/// Encode with `push` only, or (`fast`) with `push_data`/`push_ack` for data and acks.
fn encode(header: &Header, specs: &[Spec], fast: bool) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut writer = FrameWriter::new(&mut buf, header);
    assert!(writer.is_empty());
    assert_eq!(writer.len(), HEADER_BYTES);
    for (i, spec) in specs.iter().enumerate() {
        let pushed = match (spec, fast) {
            (Spec::Data(payload), true) => writer.push_data(payload),
            (Spec::Typed(stored), true) => writer.push_stored(stored),
            (Spec::Ack(raw), true) => writer.push_ack(AckEntries::from_raw(raw).unwrap().iter()),
            _ => writer.push(&spec.msg()),
        };
        assert!(pushed);
        assert_eq!(usize::from(writer.message_count()), i + 1);
    }
    assert_eq!(writer.is_empty(), specs.is_empty());
    let len = writer.len();
    assert_eq!(writer.finish(), len);
    assert_eq!(buf.len(), len);
    buf
}

fn header() -> Header {
    Header {
        sender: MemberId::new(7, 3),
        view: ViewId(42),
        group: GroupId(0x1122),
        seq: 1000,
    }
}

/// Header bytes written by hand (not by the codec).
fn raw_header(count: u16) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.push(VERSION);
    out.push(0);
    out.extend_from_slice(&7u32.to_le_bytes());
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&42u64.to_le_bytes());
    out.extend_from_slice(&0x1122u64.to_le_bytes());
    out.extend_from_slice(&1000u64.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    assert_eq!(out.len(), HEADER_BYTES);
    out
}

/// A frame written by hand: header and `(tag, body)` sub-messages, with
/// minimal varint lengths.
fn raw_frame(msgs: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = raw_header(msgs.len() as u16);
    for (tag, body) in msgs {
        out.push(*tag);
        let mut len = body.len() as u32;
        loop {
            let low = (len & 0x7F) as u8;
            len >>= 7;
            if len == 0 {
                out.push(low);
                break;
            }
            out.push(low | 0x80);
        }
        out.extend_from_slice(body);
    }
    out
}

fn decode_err(bytes: &[u8]) -> DecodeError {
    match Frame::decode(bytes) {
        Ok(frame) => panic!("decoded {:?}", frame.messages().collect::<Vec<_>>()),
        Err(err) => err,
    }
}

fn le32(v: u32) -> [u8; 4] {
    v.to_le_bytes()
}

fn le64(v: u64) -> [u8; 8] {
    v.to_le_bytes()
}

/// Body of a `GroupChange` with a raw name and join byte.
fn group_change_body(name: &[u8], join: u8) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&le32(1));
    body.extend_from_slice(&le32(1));
    body.extend_from_slice(&(name.len() as u16).to_le_bytes());
    body.extend_from_slice(name);
    body.push(join);
    body
}

// Tags, as documented in docs/wire-format.md.
const DATA: u8 = 1;
const ACK: u8 = 2;
const NAK: u8 = 3;
const HEARTBEAT: u8 = 4;
const JOIN: u8 = 5;
const GROUP_CHANGE: u8 = 6;
const SUSPECT: u8 = 8;
const PROMISE: u8 = 10;
const STATE_ACK: u8 = 18;

// ---------------------------------------------------------------------------
// Strategies

fn member() -> impl Strategy<Value = MemberId> {
    (any::<u32>(), any::<u32>()).prop_map(|(node, inc)| MemberId::new(node, inc))
}

fn members(max: usize) -> impl Strategy<Value = Vec<MemberId>> {
    vec(member(), 0..=max)
}

fn ballot() -> impl Strategy<Value = Ballot> {
    (any::<u32>(), any::<u32>()).prop_map(|(round, node)| Ballot { round, node })
}

fn group() -> impl Strategy<Value = GroupId> {
    any::<u64>().prop_map(GroupId)
}

fn group_name() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "\\PC{1,40}",
        1 => "[a-z]{255}",
        1 => "[é]{1,127}",
    ]
    .prop_filter("fits GROUP_NAME_MAX", |name| {
        !name.is_empty() && name.len() <= GROUP_NAME_MAX
    })
}

fn addr() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "\\PC{0,40}",
        1 => "[0-9.:]{255}",
    ]
    .prop_filter("fits ADDR_MAX", |addr| addr.len() <= ADDR_MAX)
}

fn member_info() -> impl Strategy<Value = MemberInfo> {
    (member(), addr()).prop_map(|(id, addr)| MemberInfo { id, addr })
}

fn ack_entry() -> impl Strategy<Value = AckEntry> {
    (member(), any::<u64>()).prop_map(|(sender, hi)| AckEntry { sender, hi })
}

fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

/// A data message of any kind, in stored form (tag, then a valid body).
fn stored_data() -> impl Strategy<Value = Vec<u8>> {
    let with_tag = |tag: u8, body: Vec<u8>| {
        let mut stored = vec![tag];
        stored.extend_from_slice(&body);
        stored
    };
    prop_oneof![
        payload(200).prop_map(move |body| with_tag(data_tag::FIFO, body)),
        (vec(any::<u64>(), 0..8), payload(100)).prop_map(move |(deps, body)| {
            let mut out = vec![data_tag::CAUSAL];
            put_causal_header(&mut out, deps.iter().copied(), deps.len());
            out.extend_from_slice(&body);
            out
        }),
        payload(100).prop_map(move |body| with_tag(data_tag::ORDERED, body)),
        payload(100).prop_map(move |body| with_tag(data_tag::SAFE, body)),
        vec((member(), 1..u64::MAX / 2, 0..1000u64), 0..6).prop_map(|ranges| {
            let mut out = vec![data_tag::ORDER];
            for (sender, lo, len) in ranges {
                put_order_range(
                    &mut out,
                    OrderRange {
                        sender,
                        lo,
                        hi: lo + len,
                    },
                );
            }
            out
        }),
        (member(), payload(100)).prop_map(|(to, body)| {
            let mut out = Vec::new();
            DataView::P2p { to, payload: &body }.write_stored(&mut out);
            out
        }),
        (any::<u64>(), any::<bool>(), members(6), payload(100)).prop_map(
            |(id, total, targets, body)| {
                let mut out = vec![data_tag::QUERY];
                put_query(
                    &mut out,
                    id,
                    total,
                    targets.iter().copied(),
                    targets.len(),
                    &body,
                );
                out
            }
        ),
        (member(), any::<u64>(), payload(100)).prop_map(|(to, id, body)| {
            let mut out = Vec::new();
            DataView::Reply {
                to,
                id,
                payload: &body,
            }
            .write_stored(&mut out);
            out
        }),
    ]
}

fn carried() -> impl Strategy<Value = CarriedMsg> {
    (group(), member(), any::<u64>(), stored_data()).prop_map(|(group, sender, seq, stored)| {
        CarriedMsg {
            group,
            sender,
            seq,
            tag: stored[0],
            payload: stored[1..].to_vec(),
        }
    })
}

fn group_record() -> impl Strategy<Value = GroupRecord> {
    (
        group(),
        group_name(),
        any::<u64>(),
        members(4),
        members(2),
        members(2),
        members(2),
        members(2),
    )
        .prop_map(
            |(id, name, view_id, members, joined, left, failed, loading)| GroupRecord {
                id,
                name,
                view_id,
                members,
                joined,
                left,
                failed,
                loading,
            },
        )
}

fn digest() -> impl Strategy<Value = GroupDigest> {
    (group(), any::<bool>(), vec(ack_entry(), 0..4)).prop_map(|(group, has_state, received)| {
        GroupDigest {
            group,
            has_state,
            received,
        }
    })
}

fn proposal() -> impl Strategy<Value = Proposal> {
    (
        any::<u64>().prop_map(ViewId),
        vec(member_info(), 0..5),
        members(3),
        vec(group_record(), 0..3),
        vec((group(), ack_entry()), 0..4),
        vec(carried(), 0..3),
    )
        .prop_map(|(view, members, retired, groups, cut, carried)| Proposal {
            view,
            members,
            retired,
            groups,
            cut,
            carried,
        })
}

fn promise() -> impl Strategy<Value = Promise> {
    (
        ballot(),
        proptest::option::of((ballot(), proposal())),
        vec(digest(), 0..3),
        vec(carried(), 0..3),
    )
        .prop_map(|(ballot, accepted, digests, carried)| Promise {
            ballot,
            accepted,
            digests,
            carried,
        })
}

/// Every control sub-message (those that own their data).
fn owned_msg() -> impl Strategy<Value = Msg<'static>> {
    Union::new(vec![
        (member(), any::<u64>(), any::<u64>())
            .prop_map(|(sender, from, to)| Msg::Nak { sender, from, to })
            .boxed(),
        Just(Msg::Heartbeat).boxed(),
        Just(Msg::AckWanted).boxed(),
        (member_info(), vec(group_name(), 0..4))
            .prop_map(|(member, groups)| Msg::Join(JoinRequest { member, groups }))
            .boxed(),
        (member(), group_name(), any::<bool>())
            .prop_map(|(member, name, join)| Msg::GroupChange { member, name, join })
            .boxed(),
        member().prop_map(|member| Msg::Leave { member }).boxed(),
        members(20)
            .prop_map(|suspects| Msg::Suspect { suspects })
            .boxed(),
        ballot().prop_map(|ballot| Msg::Prepare { ballot }).boxed(),
        promise()
            .prop_map(|promise| Msg::Promise(Box::new(promise)))
            .boxed(),
        ballot()
            .prop_map(|promised| Msg::Reject { promised })
            .boxed(),
        (ballot(), proposal())
            .prop_map(|(ballot, proposal)| Msg::Accept {
                ballot,
                proposal: Box::new(proposal),
            })
            .boxed(),
        ballot().prop_map(|ballot| Msg::Accepted { ballot }).boxed(),
        proposal()
            .prop_map(|proposal| Msg::Commit {
                proposal: Box::new(proposal),
            })
            .boxed(),
        any::<u64>()
            .prop_map(|view| Msg::CommitRequest { view: ViewId(view) })
            .boxed(),
        (any::<u64>(), member())
            .prop_map(|(view, member)| Msg::Excluded {
                view: ViewId(view),
                member,
            })
            .boxed(),
        (group(), any::<u64>(), any::<u32>())
            .prop_map(|(group, transfer, next)| Msg::StateAck {
                group,
                transfer,
                next,
            })
            .boxed(),
    ])
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        3 => prop_oneof![4 => payload(200), 1 => payload(20_000)].prop_map(Spec::Data),
        1 => vec(ack_entry(), 0..40).prop_map(|entries| {
            let mut raw = Vec::new();
            AckEntries::encode_into(entries.into_iter(), &mut raw);
            Spec::Ack(raw)
        }),
        1 => (group(), any::<u64>(), any::<u32>(), any::<u32>(), payload(300)).prop_map(
            |(group, transfer, index, total, bytes)| Spec::StateChunk { group, transfer, index, total, bytes }
        ),
        2 => stored_data().prop_filter("Typed holds tags 19 to 25", |stored| stored[0] != data_tag::FIFO).prop_map(Spec::Typed),
        6 => owned_msg().prop_map(Spec::Owned),
    ]
}

fn frame_header() -> impl Strategy<Value = Header> {
    (member(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(sender, view, group, seq)| {
        Header {
            sender,
            view: ViewId(view),
            group: GroupId(group),
            seq,
        }
    })
}

fn frame() -> impl Strategy<Value = (Header, Vec<Spec>)> {
    (frame_header(), vec(spec(), 0..6))
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip(Index, u8),
    Truncate(Index),
    Extend(Vec<u8>),
    Insert(Index, u8),
    Remove(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<Index>(), 1..=u8::MAX).prop_map(|(at, mask)| Mutation::Flip(at, mask)),
        1 => any::<Index>().prop_map(Mutation::Truncate),
        1 => vec(any::<u8>(), 1..16).prop_map(Mutation::Extend),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
        1 => any::<Index>().prop_map(Mutation::Remove),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    match mutation {
        Mutation::Flip(at, mask) if !bytes.is_empty() => {
            let at = at.index(bytes.len());
            bytes[at] ^= mask;
        }
        Mutation::Truncate(at) if !bytes.is_empty() => bytes.truncate(at.index(bytes.len())),
        Mutation::Extend(tail) => bytes.extend_from_slice(tail),
        Mutation::Insert(at, byte) => bytes.insert(at.index(bytes.len() + 1), *byte),
        Mutation::Remove(at) if !bytes.is_empty() => {
            bytes.remove(at.index(bytes.len()));
        }
        _ => {}
    }
}

/// Decode `bytes`; if that succeeds, check the canonical-encoding property:
/// re-encoding the decoded frame gives back exactly `bytes`.
fn check_decode(bytes: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(frame) = Frame::decode(bytes) {
        let msgs: Vec<Msg<'_>> = frame.messages().collect();
        prop_assert_eq!(msgs.len(), usize::from(frame.message_count()));
        let mut again = Vec::new();
        let mut writer = FrameWriter::new(&mut again, &frame.header);
        for msg in &msgs {
            prop_assert!(writer.push(msg));
        }
        writer.finish();
        prop_assert_eq!(&again[..], bytes, "decode then encode is not the identity");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #[test]
    fn round_trip((header, specs) in frame(), fast in any::<bool>()) {
        let bytes = encode(&header, &specs, fast);
        let frame = Frame::decode(&bytes).unwrap();
        prop_assert_eq!(frame.header, header);
        prop_assert_eq!(usize::from(frame.message_count()), specs.len());
        let messages = frame.messages();
        prop_assert_eq!(messages.len(), specs.len());
        let decoded: Vec<Msg<'_>> = messages.collect();
        let expected: Vec<Msg<'_>> = specs.iter().map(Spec::msg).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn fast_paths_encode_like_push((header, specs) in frame()) {
        prop_assert_eq!(encode(&header, &specs, true), encode(&header, &specs, false));
    }

    #[test]
    fn borrowed_messages_point_into_the_frame((header, specs) in frame()) {
        let bytes = encode(&header, &specs, true);
        let frame = Frame::decode(&bytes).unwrap();
        let range = bytes.as_ptr_range();
        for msg in frame.messages() {
            let borrowed = match msg {
                Msg::Data { payload } => payload,
                Msg::Ack { entries } => entries.raw(),
                Msg::StateChunk { bytes, .. } => bytes,
                _ => continue,
            };
            prop_assert!(range.contains(&borrowed.as_ptr()) || borrowed.is_empty());
        }
    }

    #[test]
    fn every_truncation_is_an_error((header, specs) in frame()) {
        let bytes = encode(&header, &specs, false);
        // All prefixes of small frames; a spread of them (and the last 64) for big ones.
        let step = (bytes.len() / 512).max(1);
        let cuts = (0..bytes.len()).step_by(step).chain(bytes.len().saturating_sub(64)..bytes.len());
        for cut in cuts {
            let result = Frame::decode(&bytes[..cut]);
            prop_assert!(matches!(result, Err(DecodeError::Truncated(_))), "prefix {cut}: {result:?}");
        }
    }

    #[test]
    fn mutated_frames_never_panic(
        (header, specs) in frame(),
        mutations in vec(mutation(), 1..4),
    ) {
        let mut bytes = encode(&header, &specs, false);
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        check_decode(&bytes)?;
    }

    #[test]
    fn extended_frames_report_trailing_bytes((header, specs) in frame(), tail in vec(any::<u8>(), 1..64)) {
        let mut bytes = encode(&header, &specs, false);
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(Frame::decode(&bytes).unwrap_err(), DecodeError::TrailingBytes(tail.len()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every one-byte edit of a small valid frame (a bit flip, or one of the
    /// values that test strict enums: 0, 1, 2, 0x80, 0xFF) either fails to
    /// decode or decodes to a frame that re-encodes to exactly the edited bytes.
    #[test]
    fn one_byte_edits_are_rejected_or_canonical(
        (header, specs) in (frame_header(), vec(owned_msg().prop_map(Spec::Owned), 1..3)),
    ) {
        let bytes = encode(&header, &specs, false);
        prop_assume!(bytes.len() <= 1500);
        let mut edited = bytes.clone();
        for at in 0..bytes.len() {
            for value in [bytes[at] ^ 1, 0, 1, 2, 0x80, 0xFF] {
                edited[at] = value;
                check_decode(&edited)?;
            }
            edited[at] = bytes[at];
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..2048)) {
        check_decode(&bytes)?;
    }

    /// Random bytes behind a valid header, so the sub-message parser sees them.
    #[test]
    fn arbitrary_bodies_never_panic(count in 0..8u16, body in vec(any::<u8>(), 0..2048)) {
        let mut bytes = raw_header(count);
        bytes.extend_from_slice(&body);
        check_decode(&bytes)?;
    }

    /// Random bodies behind a valid header and a valid tag and length: every
    /// body decoder sees arbitrary input.
    #[test]
    fn arbitrary_message_bodies_never_panic(tag in 1..=26u8, body in vec(any::<u8>(), 0..512)) {
        check_decode(&raw_frame(&[(tag, body)]))?;
    }

    /// Every data body the decoder accepts parses as its kind, and a stored
    /// message written back from the parse is the same bytes.
    #[test]
    fn typed_data_bodies_parse_or_reject(tag in 19..=25u8, body in vec(any::<u8>(), 0..256)) {
        let bytes = raw_frame(&[(tag, body.clone())]);
        if let Ok(frame) = Frame::decode(&bytes) {
            let Some(Msg::Typed { tag: got, body: decoded }) = frame.messages().next() else {
                return Err(TestCaseError::fail("a typed data tag decodes as Msg::Typed"));
            };
            prop_assert_eq!(got, tag);
            let view = DataView::parse(tag, decoded).expect("the decoder validated it");
            let mut stored = Vec::new();
            view.write_stored(&mut stored);
            prop_assert_eq!(&stored[1..], &body[..]);
        }
    }

    /// A stored message either re-encodes through `push_stored` or is refused.
    #[test]
    fn push_stored_round_trips(stored in stored_data()) {
        let mut buf = Vec::new();
        let mut writer = FrameWriter::new(&mut buf, &header());
        prop_assert!(writer.push_stored(&stored));
        writer.finish();
        let frame = Frame::decode(&buf).expect("valid");
        let (tag, body) = match frame.messages().next() {
            Some(Msg::Data { payload }) => (data_tag::FIFO, payload),
            Some(Msg::Typed { tag, body }) => (tag, body),
            _ => return Err(TestCaseError::fail("one data message")),
        };
        prop_assert_eq!(tag, stored[0]);
        prop_assert_eq!(body, &stored[1..]);
    }
}

// ---------------------------------------------------------------------------
// Layout

#[test]
fn layout_matches_the_documentation() {
    let mut buf = Vec::new();
    let mut writer = FrameWriter::new(&mut buf, &header());
    assert!(writer.push_data(b"hi"));
    assert!(writer.push(&Msg::Heartbeat));
    assert!(writer.push(&Msg::Leave {
        member: MemberId::new(9, 1)
    }));
    assert_eq!(writer.finish(), HEADER_BYTES + 4 + 2 + 10);

    let mut expected = vec![0x53, 0x4F, 1, 0];
    expected.extend_from_slice(&[7, 0, 0, 0, 3, 0, 0, 0]);
    expected.extend_from_slice(&[42, 0, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[0x22, 0x11, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[0xE8, 0x03, 0, 0, 0, 0, 0, 0]);
    expected.extend_from_slice(&[3, 0]);
    expected.extend_from_slice(&[DATA, 2, b'h', b'i']);
    expected.extend_from_slice(&[HEARTBEAT, 0]);
    expected.extend_from_slice(&[7, 8, 9, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(buf, expected);
}

#[test]
fn body_lengths_use_minimal_varints_at_every_width() {
    for len in [0, 1, 127, 128, 16_383, 16_384, 70_000] {
        let payload = vec![0xAB; len];
        let expected = raw_frame(&[(DATA, payload.clone())]);
        let mut buf = Vec::new();
        let mut writer = FrameWriter::new(&mut buf, &header());
        assert!(writer.push_data(&payload));
        writer.finish();
        assert_eq!(buf, expected, "len {len}");
        let frame = Frame::decode(&buf).unwrap();
        assert_eq!(
            frame.messages().next(),
            Some(Msg::Data { payload: &payload })
        );
    }
}

/// An iterator whose size hint is wrong in the given direction, to exercise
/// both ways the writer moves a body whose length slot was mis-sized.
struct Hinted<I> {
    inner: I,
    lower: usize,
}

impl<I: Iterator<Item = AckEntry>> Iterator for Hinted<I> {
    type Item = AckEntry;
    fn next(&mut self) -> Option<AckEntry> {
        self.inner.next()
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.lower, None)
    }
}

#[test]
fn push_ack_fixes_up_mis_sized_length_slots() {
    let entries: Vec<AckEntry> = (0..300)
        .map(|i| AckEntry {
            sender: MemberId::new(i, 1),
            hi: u64::from(i) * 3,
        })
        .collect();
    for n in [0, 1, 7, 8, 9, 300] {
        let mut raw = Vec::new();
        AckEntries::encode_into(entries[..n].iter().copied(), &mut raw);
        let expected = raw_frame(&[(ACK, raw.clone())]);
        for lower in [0, n, 1 << 20, usize::MAX] {
            let mut buf = Vec::new();
            let mut writer = FrameWriter::new(&mut buf, &header());
            assert!(writer.push_ack(Hinted {
                inner: entries[..n].iter().copied(),
                lower
            }));
            writer.finish();
            assert_eq!(buf, expected, "{n} entries, hint {lower}");
        }
        let frame = Frame::decode(&expected).unwrap();
        let Some(Msg::Ack { entries: decoded }) = frame.messages().next() else {
            panic!()
        };
        assert_eq!(decoded.iter().collect::<Vec<_>>(), entries[..n]);
    }
}

#[test]
fn big_control_messages_grow_their_length_slot() {
    let proposal = Proposal {
        view: ViewId(9),
        members: (0..100)
            .map(|i| MemberInfo {
                id: MemberId::new(i, 1),
                addr: format!("10.0.0.{i}:7000"),
            })
            .collect(),
        retired: vec![],
        groups: vec![],
        cut: vec![],
        carried: vec![CarriedMsg {
            group: GroupId(5),
            sender: MemberId::new(1, 1),
            seq: 3,
            tag: 1,
            payload: vec![1; 20_000],
        }],
    };
    let msg = Msg::Commit {
        proposal: Box::new(proposal),
    };
    let mut buf = Vec::new();
    let mut writer = FrameWriter::new(&mut buf, &header());
    assert!(writer.push(&Msg::Heartbeat));
    assert!(writer.push(&msg));
    assert!(writer.push(&Msg::Heartbeat));
    writer.finish();
    let frame = Frame::decode(&buf).unwrap();
    assert_eq!(
        frame.messages().collect::<Vec<_>>(),
        vec![Msg::Heartbeat, msg, Msg::Heartbeat]
    );
}

// ---------------------------------------------------------------------------
// Writer limits

#[test]
fn push_data_into_a_presized_buffer_does_not_reallocate() {
    let mut buf = Vec::with_capacity(8192);
    let (ptr, capacity) = (buf.as_ptr(), buf.capacity());
    let payload = [0x5Au8; 100];
    let mut writer = FrameWriter::new(&mut buf, &header());
    let mut pushed = 0;
    while writer.len() + 1 + 1 + payload.len() <= capacity {
        assert!(writer.push_data(&payload));
        pushed += 1;
    }
    writer.finish();
    assert_eq!(pushed, (8192 - HEADER_BYTES) / 102);
    assert_eq!(buf.capacity(), capacity);
    assert_eq!(buf.as_ptr(), ptr);
    assert_eq!(
        usize::from(Frame::decode(&buf).unwrap().message_count()),
        pushed
    );
}

#[test]
fn a_full_frame_refuses_more_messages_and_stays_intact() {
    let mut buf = Vec::new();
    let mut writer = FrameWriter::new(&mut buf, &header());
    for _ in 0..u16::MAX {
        assert!(writer.push(&Msg::Heartbeat));
    }
    assert!(writer.is_full());
    let len = writer.len();
    assert!(!writer.push(&Msg::Heartbeat));
    assert!(!writer.push_data(b"x"));
    assert!(!writer.push_ack(std::iter::empty()));
    assert_eq!(writer.len(), len);
    assert_eq!(writer.message_count(), u16::MAX);
    writer.finish();
    let frame = Frame::decode(&buf).unwrap();
    assert_eq!(frame.message_count(), u16::MAX);
    assert!(frame.messages().all(|msg| msg == Msg::Heartbeat));
}

#[test]
fn messages_over_a_wire_limit_are_refused_and_write_nothing() {
    let too_long = "g".repeat(GROUP_NAME_MAX + 1);
    let refused = [
        Msg::GroupChange {
            member: MemberId::new(1, 1),
            name: String::new(),
            join: true,
        },
        Msg::GroupChange {
            member: MemberId::new(1, 1),
            name: too_long.clone(),
            join: true,
        },
        Msg::Join(JoinRequest {
            member: MemberInfo {
                id: MemberId::new(1, 1),
                addr: "a".repeat(ADDR_MAX + 1),
            },
            groups: vec![],
        }),
        Msg::Join(JoinRequest {
            member: MemberInfo {
                id: MemberId::new(1, 1),
                addr: String::new(),
            },
            groups: vec!["ok".into(), too_long],
        }),
    ];
    let mut buf = Vec::new();
    let mut writer = FrameWriter::new(&mut buf, &header());
    assert!(writer.push_data(b"before"));
    let len = writer.len();
    for msg in &refused {
        assert!(!writer.push(msg), "{msg:?}");
        assert_eq!(writer.len(), len);
        assert_eq!(writer.message_count(), 1);
    }
    writer.finish();
    assert_eq!(
        Frame::decode(&buf).unwrap().messages().collect::<Vec<_>>(),
        vec![Msg::Data { payload: b"before" }]
    );
}

#[test]
fn limits_are_inclusive() {
    let msgs = [
        Msg::GroupChange {
            member: MemberId::new(1, 1),
            name: "g".repeat(GROUP_NAME_MAX),
            join: false,
        },
        Msg::Join(JoinRequest {
            member: MemberInfo {
                id: MemberId::new(1, 1),
                addr: "a".repeat(ADDR_MAX),
            },
            groups: vec!["x".into()],
        }),
    ];
    let mut buf = Vec::new();
    let mut writer = FrameWriter::new(&mut buf, &header());
    for msg in &msgs {
        assert!(writer.push(msg));
    }
    writer.finish();
    assert_eq!(
        Frame::decode(&buf).unwrap().messages().collect::<Vec<_>>(),
        msgs
    );
}

// ---------------------------------------------------------------------------
// One test per DecodeError, on hand-made bytes

#[test]
fn empty_frame_is_valid() {
    let bytes = raw_header(0);
    let frame = Frame::decode(&bytes).unwrap();
    assert_eq!(frame.header, header());
    assert_eq!(frame.message_count(), 0);
    assert_eq!(frame.messages().next(), None);
}

#[test]
fn truncated_header() {
    assert_eq!(decode_err(&[]), DecodeError::Truncated("header"));
    assert_eq!(
        decode_err(&raw_header(0)[..HEADER_BYTES - 1]),
        DecodeError::Truncated("header")
    );
}

#[test]
fn bad_magic() {
    let mut bytes = raw_header(0);
    bytes[0] = 0x34;
    bytes[1] = 0x12;
    assert_eq!(decode_err(&bytes), DecodeError::BadMagic(0x1234));
    // Reported even when the datagram is too short to hold a header.
    assert_eq!(decode_err(&bytes[..5]), DecodeError::BadMagic(0x1234));
}

#[test]
fn unsupported_version() {
    let mut bytes = raw_header(0);
    bytes[2] = VERSION + 1;
    assert_eq!(
        decode_err(&bytes),
        DecodeError::UnsupportedVersion(VERSION + 1)
    );
}

#[test]
fn nonzero_flags() {
    for flags in [1, 0x80, 0xFF] {
        let mut bytes = raw_header(0);
        bytes[3] = flags;
        assert_eq!(decode_err(&bytes), DecodeError::Invalid("flags"));
    }
}

#[test]
fn unknown_tags() {
    for tag in [0, 27, 0x7F, 0xFF] {
        assert_eq!(
            decode_err(&raw_frame(&[(tag, vec![])])),
            DecodeError::UnknownMessageTag(tag)
        );
    }
}

#[test]
fn count_claims_more_messages_than_present() {
    let mut bytes = raw_frame(&[(HEARTBEAT, vec![])]);
    bytes[36] = 2;
    assert_eq!(
        decode_err(&bytes),
        DecodeError::Truncated("sub-message tag")
    );
}

#[test]
fn trailing_bytes() {
    let mut bytes = raw_frame(&[(HEARTBEAT, vec![])]);
    bytes.extend_from_slice(&[HEARTBEAT, 0]);
    assert_eq!(decode_err(&bytes), DecodeError::TrailingBytes(2));
    let mut bytes = raw_header(0);
    bytes.push(0);
    assert_eq!(decode_err(&bytes), DecodeError::TrailingBytes(1));
}

#[test]
fn non_minimal_varint() {
    let mut bytes = raw_header(1);
    bytes.extend_from_slice(&[HEARTBEAT, 0x80, 0x00]);
    assert!(matches!(decode_err(&bytes), DecodeError::Invalid(_)));
    let mut bytes = raw_header(1);
    bytes.extend_from_slice(&[DATA, 0x81, 0x80, 0x00, b'x']);
    assert!(matches!(decode_err(&bytes), DecodeError::Invalid(_)));
}

#[test]
fn varint_over_u32() {
    let mut bytes = raw_header(1);
    bytes.extend_from_slice(&[DATA, 0xFF, 0xFF, 0xFF, 0xFF, 0x1F]);
    assert!(matches!(decode_err(&bytes), DecodeError::Invalid(_)));
    let mut bytes = raw_header(1);
    bytes.extend_from_slice(&[DATA, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00]);
    assert!(matches!(decode_err(&bytes), DecodeError::Invalid(_)));
}

#[test]
fn truncated_varint_and_body() {
    let mut bytes = raw_header(1);
    bytes.extend_from_slice(&[DATA, 0x80]);
    assert_eq!(
        decode_err(&bytes),
        DecodeError::Truncated("sub-message length")
    );
    let mut bytes = raw_header(1);
    bytes.extend_from_slice(&[DATA, 5, 1, 2, 3, 4]);
    assert_eq!(
        decode_err(&bytes),
        DecodeError::Truncated("sub-message body")
    );
    // The largest length there is, with no body behind it.
    let mut bytes = raw_header(1);
    bytes.extend_from_slice(&[DATA, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]);
    assert_eq!(
        decode_err(&bytes),
        DecodeError::Truncated("sub-message body")
    );
}

#[test]
fn body_too_short_for_its_message() {
    assert_eq!(
        decode_err(&raw_frame(&[(NAK, vec![0; 23])])),
        DecodeError::Truncated("nak")
    );
    assert_eq!(
        decode_err(&raw_frame(&[(STATE_ACK, vec![0; 19])])),
        DecodeError::Truncated("state ack")
    );
}

#[test]
fn body_with_bytes_left_over() {
    for (tag, len) in [(HEARTBEAT, 1), (NAK, 25), (STATE_ACK, 21)] {
        assert_eq!(
            decode_err(&raw_frame(&[(tag, vec![0; len])])),
            DecodeError::Invalid("sub-message body (bytes left over)"),
            "tag {tag}"
        );
    }
}

#[test]
fn ack_body_not_a_whole_number_of_entries() {
    assert_eq!(
        decode_err(&raw_frame(&[(ACK, vec![0; 15])])),
        DecodeError::Invalid("ack entries length")
    );
    assert_eq!(
        decode_err(&raw_frame(&[(ACK, vec![0; 33])])),
        DecodeError::Invalid("ack entries length")
    );
}

#[test]
fn bad_bool() {
    assert_eq!(
        decode_err(&raw_frame(&[(GROUP_CHANGE, group_change_body(b"g", 2))])),
        DecodeError::Invalid("group change join flag")
    );
    let ok = raw_frame(&[(GROUP_CHANGE, group_change_body(b"g", 1))]);
    let frame = Frame::decode(&ok).unwrap();
    assert_eq!(
        frame.messages().next(),
        Some(Msg::GroupChange {
            member: MemberId::new(1, 1),
            name: "g".into(),
            join: true
        })
    );
}

#[test]
fn bad_option() {
    let mut body = Vec::new();
    body.extend_from_slice(&le32(1));
    body.extend_from_slice(&le32(2));
    body.push(2); // accepted: neither None (0) nor Some (1)
    body.extend_from_slice(&le32(0));
    body.extend_from_slice(&le32(0));
    assert_eq!(
        decode_err(&raw_frame(&[(PROMISE, body.clone())])),
        DecodeError::Invalid("promise accepted option")
    );
    body[8] = 0;
    let frame_bytes = raw_frame(&[(PROMISE, body)]);
    let frame = Frame::decode(&frame_bytes).unwrap();
    assert_eq!(
        frame.messages().next(),
        Some(Msg::Promise(Box::new(Promise {
            ballot: Ballot { round: 1, node: 2 },
            accepted: None,
            digests: vec![],
            carried: vec![]
        })))
    );
}

#[test]
fn bad_utf8() {
    assert_eq!(
        decode_err(&raw_frame(&[(
            GROUP_CHANGE,
            group_change_body(&[0xFF, 0xFE], 0)
        )])),
        DecodeError::Invalid("group name (not UTF-8)")
    );
    let mut join = Vec::new();
    join.extend_from_slice(&le32(1));
    join.extend_from_slice(&le32(1));
    join.extend_from_slice(&2u16.to_le_bytes());
    join.extend_from_slice(&[0xC3, 0x28]);
    join.extend_from_slice(&le32(0));
    assert_eq!(
        decode_err(&raw_frame(&[(JOIN, join)])),
        DecodeError::Invalid("address (not UTF-8)")
    );
}

#[test]
fn bad_string_lengths() {
    assert_eq!(
        decode_err(&raw_frame(&[(GROUP_CHANGE, group_change_body(b"", 0))])),
        DecodeError::Invalid("group name length")
    );
    assert_eq!(
        decode_err(&raw_frame(&[(
            GROUP_CHANGE,
            group_change_body(&[b'g'; GROUP_NAME_MAX + 1], 0)
        )])),
        DecodeError::Invalid("group name length")
    );
    let mut join = Vec::new();
    join.extend_from_slice(&le32(1));
    join.extend_from_slice(&le32(1));
    join.extend_from_slice(&((ADDR_MAX + 1) as u16).to_le_bytes());
    join.extend_from_slice(&[b'a'; ADDR_MAX + 1]);
    join.extend_from_slice(&le32(0));
    assert_eq!(
        decode_err(&raw_frame(&[(JOIN, join)])),
        DecodeError::Invalid("address length")
    );
    // A string length running past the body.
    let mut body = group_change_body(b"abc", 0);
    body.truncate(body.len() - 2);
    assert_eq!(
        decode_err(&raw_frame(&[(GROUP_CHANGE, body)])),
        DecodeError::Truncated("group name")
    );
}

#[test]
fn huge_counts_are_rejected_before_allocating() {
    // Suspect claiming u32::MAX members in a 12-byte body.
    let mut body = le32(u32::MAX).to_vec();
    body.extend_from_slice(&le64(0));
    assert_eq!(
        decode_err(&raw_frame(&[(SUSPECT, body)])),
        DecodeError::Truncated("suspect")
    );
    // A Join claiming 2^31 group names.
    let mut join = Vec::new();
    join.extend_from_slice(&le32(1));
    join.extend_from_slice(&le32(1));
    join.extend_from_slice(&0u16.to_le_bytes());
    join.extend_from_slice(&le32(1 << 31));
    assert_eq!(
        decode_err(&raw_frame(&[(JOIN, join)])),
        DecodeError::Truncated("join groups")
    );
    // A Promise whose carried-message payload length runs past the body.
    let mut promise = Vec::new();
    promise.extend_from_slice(&le64(0)); // ballot
    promise.push(0); // no accepted proposal
    promise.extend_from_slice(&le32(0)); // no digests
    promise.extend_from_slice(&le32(1)); // one carried message
    promise.extend_from_slice(&le64(5));
    promise.extend_from_slice(&le64(0));
    promise.extend_from_slice(&le64(0));
    promise.push(1); // tag: FIFO data
    promise.extend_from_slice(&le32(u32::MAX));
    assert_eq!(
        decode_err(&raw_frame(&[(PROMISE, promise)])),
        DecodeError::Truncated("carried message")
    );
}

#[test]
fn every_error_displays() {
    let errors = [
        DecodeError::Truncated("header"),
        DecodeError::BadMagic(1),
        DecodeError::UnsupportedVersion(9),
        DecodeError::UnknownMessageTag(200),
        DecodeError::Invalid("flags"),
        DecodeError::TrailingBytes(3),
    ];
    for err in errors {
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn data_sequences_never_pass_u64_max() {
    // Writer: the last sequence is u64::MAX; a further Data is refused, other
    // sub-messages are not.
    let mut buf = Vec::new();
    let top = Header {
        seq: u64::MAX - 1,
        ..header()
    };
    let mut writer = FrameWriter::new(&mut buf, &top);
    assert!(writer.push_data(b"a"));
    assert!(writer.push(&Msg::Data { payload: b"b" }));
    assert!(!writer.push_data(b"c"));
    assert!(!writer.push(&Msg::Data { payload: b"c" }));
    assert!(writer.push(&Msg::Heartbeat));
    writer.finish();
    assert_eq!(Frame::decode(&buf).unwrap().message_count(), 3);

    // Reader: a frame whose second Data would have sequence 2^64.
    let mut bytes = raw_frame(&[
        (DATA, b"a".to_vec()),
        (HEARTBEAT, vec![]),
        (DATA, b"b".to_vec()),
    ]);
    bytes[28..36].copy_from_slice(&le64(u64::MAX));
    assert_eq!(
        decode_err(&bytes),
        DecodeError::Invalid("data sequence (past u64::MAX)")
    );
    bytes[28..36].copy_from_slice(&le64(u64::MAX - 1));
    assert_eq!(Frame::decode(&bytes).unwrap().message_count(), 3);
}
