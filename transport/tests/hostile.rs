//! Hostile datagrams (random bytes, bogus fragment headers, fake fragments,
//! oversized claims) are counted and dropped, and valid traffic interleaved
//! with them arrives intact.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::{frame, loopback_config, receive, transport, Rng};
use osiris_transport::fragment::{FragmentHeader, FragmentPlan, FRAGMENT_HEADER_LEN};
use osiris_transport::{Destination, Transmit, Transport};

/// Datagrams the receiver must count as malformed.
fn malformed_datagrams(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    // Random bytes that do not start with the protocol magic.
    for _ in 0..40 {
        let mut bytes = vec![0u8; rng.below(1500) as usize];
        rng.fill(&mut bytes);
        if bytes.first() == Some(&0x53) {
            bytes[0] = 0x54;
        }
        out.push(bytes);
    }
    // The fragment magic followed by garbage of every length around a header.
    for len in 2..40 {
        let mut bytes = vec![0u8; len];
        rng.fill(&mut bytes);
        bytes[0] = 0x46;
        bytes[1] = 0x4F;
        if len > 2 {
            bytes[2] = 2 + (bytes[2] % 200); // never version 1
        }
        out.push(bytes);
    }
    // Well-formed headers with one field wrong.
    let good = FragmentHeader {
        message_id: 1,
        frame_len: 5000,
        index: 0,
        count: 4,
        chunk_len: 1444,
    };
    let mut encode = |header: FragmentHeader, payload_len: usize, patch: Option<(usize, u8)>| {
        let mut head = [0u8; FRAGMENT_HEADER_LEN];
        header.encode(&mut head);
        let mut bytes = head.to_vec();
        bytes.resize(FRAGMENT_HEADER_LEN + payload_len, 0xAB);
        if let Some((at, value)) = patch {
            bytes[at] = value;
        }
        out.push(bytes);
    };
    encode(good, 1443, None); // payload one byte short
    encode(good, 1445, None); // one byte long
    encode(good, 1444, Some((3, 0x80))); // flags
    encode(good, 1444, Some((20, 5))); // count 5 for 5000 / 1444
    encode(good, 1444, Some((16, 4))); // index == count
    encode(
        FragmentHeader {
            chunk_len: 100,
            count: 50,
            ..good
        },
        100,
        None,
    ); // chunk < 512
    encode(
        FragmentHeader {
            frame_len: 0,
            ..good
        },
        1444,
        None,
    );
    encode(
        FragmentHeader {
            count: 1,
            chunk_len: 10,
            frame_len: 9,
            ..good
        },
        10,
        None,
    );
    out
}

/// Fragments with valid headers that the reassembler accepts or refuses
/// without calling them malformed: fake starts and oversized claims.
fn fake_fragments(rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..4 {
        let header = FragmentHeader {
            message_id: rng.next_u64(),
            frame_len: 10_000,
            index: i,
            count: 7,
            chunk_len: 1444,
        };
        let mut head = [0u8; FRAGMENT_HEADER_LEN];
        header.encode(&mut head);
        let mut bytes = head.to_vec();
        bytes.resize(FRAGMENT_HEADER_LEN + 1444, 0xCD);
        out.push(bytes);
    }
    let huge = FragmentHeader {
        message_id: 99,
        frame_len: 100 << 20,
        index: 0,
        count: (100u32 << 20).div_ceil(60_000),
        chunk_len: 60_000,
    };
    let mut head = [0u8; FRAGMENT_HEADER_LEN];
    huge.encode(&mut head);
    let mut bytes = head.to_vec();
    bytes.resize(FRAGMENT_HEADER_LEN + 60_000, 0);
    out.push(bytes);
    out
}

/// A whole, correctly fragmented frame that lacks the protocol magic: it
/// reassembles, then the `frame_magic` filter drops it.
fn junk_frame(id: u64) -> Vec<Vec<u8>> {
    let junk = vec![0xEEu8; 3000];
    let plan = FragmentPlan::for_frame(&junk, 1472).expect("fragmented");
    (0..plan.count)
        .map(|index| {
            let mut head = [0u8; FRAGMENT_HEADER_LEN];
            plan.header(id, index).encode(&mut head);
            let mut datagram = head.to_vec();
            datagram.extend_from_slice(&junk[plan.payload_range(index)]);
            datagram
        })
        .collect()
}

#[test]
fn hostile_datagrams_are_counted_and_do_not_disturb_valid_traffic() {
    let mut config = loopback_config();
    config.frame_magic = Some([0x53, 0x4F]);
    let mut receiver = transport(config);
    let mut sender_config = loopback_config();
    sender_config.datagram_len_max = 1472;
    let mut sender = transport(sender_config);
    let attacker = UdpSocket::bind("127.0.0.1:0").expect("attacker socket");
    let mut batch = receiver.new_recv_batch();
    let destination = Destination::Unicast(receiver.local_addr());
    let mut rng = Rng(0x05EE_D0F0_0D15_EA5E);
    let mut malformed_sent = 0u64;
    let mut fakes_sent = 0u64;
    let rounds = 8u32;
    for round in 0..rounds {
        let malformed = malformed_datagrams(&mut rng);
        let fakes = if round < 2 {
            fake_fragments(&mut rng)
        } else {
            Vec::new()
        };
        let (first, second) = malformed.split_at(malformed.len() / 2);
        for datagram in first {
            attacker
                .send_to(datagram, receiver.local_addr())
                .expect("attack");
        }
        let frames: Vec<Vec<u8>> = (0..10)
            .map(|i| frame(round * 100 + i, if i == 5 { 150_000 } else { 300 }))
            .collect();
        let transmits: Vec<Transmit<'_>> = frames
            .iter()
            .map(|frame| Transmit { destination, frame })
            .collect();
        assert_eq!(sender.send_batch(&transmits).expect("send"), frames.len());
        for datagram in second
            .iter()
            .chain(&fakes)
            .chain(&junk_frame(u64::from(round)))
        {
            attacker
                .send_to(datagram, receiver.local_addr())
                .expect("attack");
        }
        malformed_sent += malformed.len() as u64;
        fakes_sent += fakes.len() as u64;
        let got = receive(
            &mut receiver,
            &mut batch,
            frames.len(),
            Duration::from_secs(5),
        );
        assert_eq!(
            got.len(),
            frames.len(),
            "round {round}: every valid frame arrives"
        );
        for ((source, bytes), expected) in got.iter().zip(&frames) {
            assert_eq!(
                *source,
                sender.local_addr(),
                "nothing from the attacker is delivered"
            );
            assert!(
                bytes == expected,
                "round {round}: frames intact and in order"
            );
        }
    }
    // Drain whatever hostile datagrams are still queued.
    let _ = receive(
        &mut receiver,
        &mut batch,
        usize::MAX,
        Duration::from_millis(50),
    );
    let stats = receiver.stats();
    println!("receiver stats: {stats:#?}");
    // Each round also sent one junk frame that reassembles, then is dropped.
    assert_eq!(
        stats.datagrams_malformed,
        malformed_sent + u64::from(rounds)
    );
    assert_eq!(
        stats.reassembly.fragments_malformed,
        malformed_sent - 40 * u64::from(rounds)
    );
    assert_eq!(stats.reassembly.fragments_too_large, 2);
    assert_eq!(stats.reassembly.frames_reassembled, 2 * u64::from(rounds));
    assert_eq!(stats.frames_received, 10 * u64::from(rounds));
    assert!(fakes_sent > 0 && stats.reassembly.reassemblies_started >= 2 + 2 * u64::from(rounds));
}
