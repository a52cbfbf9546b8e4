//! Property tests of the fragment format and the reassembler: any bytes are
//! handled without panic, limits hold, and frames survive reordering,
//! duplication and interleaving.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use osiris_transport::fragment::{
    Accepted, FragmentHeader, FragmentPlan, Reassembler, FRAGMENT_HEADER_LEN,
};
use osiris_transport::ReassemblyConfig;
use proptest::prelude::*;

fn fragments(frame: &[u8], datagram_len_max: usize, id: u64) -> Vec<Vec<u8>> {
    let Some(plan) = FragmentPlan::for_frame(frame, datagram_len_max) else {
        return Vec::new();
    };
    let datagrams = plan.datagrams(frame, id);
    assert!(datagrams
        .iter()
        .all(|datagram| datagram.len() <= datagram_len_max));
    datagrams
}

fn small_config() -> ReassemblyConfig {
    let mut config = ReassemblyConfig::default();
    config.slots_max = 4;
    config.frame_len_max = 256 << 10;
    config.memory_bytes_max = 512 << 10;
    config.timeout = Duration::from_millis(50);
    config.recent_max = 16;
    config
}

fn source(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Any bytes decode to an error or to a header that re-encodes to the
    /// same bytes (one encoding per fragment).
    #[test]
    fn decode_is_total_and_canonical(mut bytes in proptest::collection::vec(any::<u8>(), 0..200),
                                     magic in any::<bool>()) {
        if magic && bytes.len() >= 2 {
            bytes[0] = 0x46;
            bytes[1] = 0x4F;
        }
        if let Ok((header, payload)) = FragmentHeader::decode(&bytes) {
            let mut head = [0u8; FRAGMENT_HEADER_LEN];
            header.encode(&mut head);
            prop_assert_eq!(&head[..], &bytes[..FRAGMENT_HEADER_LEN]);
            prop_assert_eq!(payload.len(), header.payload_range().len());
        }
    }

    /// Random and mutated datagrams, from a few sources, over time: no
    /// panic, and the slot and memory limits always hold.
    #[test]
    fn reassembler_survives_anything(
        seed_frame_len in 1usize..20_000,
        datagram_len_max in 576usize..4000,
        operations in proptest::collection::vec(
            (any::<u8>(), any::<u16>(), any::<u8>(), 0u16..3, 0u64..20), 1..300),
    ) {
        let config = small_config();
        let mut reassembler = Reassembler::new(config.clone()).expect("config");
        let frame: Vec<u8> = (0..seed_frame_len).map(|i| i as u8).collect();
        let valid = fragments(&frame, datagram_len_max, 7);
        let start = Instant::now();
        let mut now = start;
        let mut out = Vec::new();
        for (kind, position, value, port, step_ms) in operations {
            now += Duration::from_millis(step_ms);
            let mut datagram = if valid.is_empty() || kind % 4 == 0 {
                // Random bytes, often with the fragment magic.
                let mut bytes: Vec<u8> = (0..usize::from(position % 2048))
                    .map(|i| (i as u8).wrapping_mul(value).wrapping_add(kind)).collect();
                if kind % 8 == 0 && bytes.len() >= 2 { bytes[0] = 0x46; bytes[1] = 0x4F; }
                bytes
            } else {
                valid[usize::from(position) % valid.len()].clone()
            };
            if kind % 4 == 1 && !datagram.is_empty() {
                // Mutate one byte, often inside the header.
                let at = usize::from(value) % datagram.len().min(40);
                datagram[at] ^= kind | 1;
            }
            if kind % 16 == 2 {
                datagram.truncate(usize::from(position) % (datagram.len() + 1));
            }
            let _ = reassembler.accept(now, source(port), &datagram);
            if kind % 5 == 0 {
                reassembler.expire(now);
            }
            if kind % 3 == 0 {
                if let Some(from) = reassembler.pop_complete(&mut out) {
                    prop_assert!(from.port() < 3);
                }
            }
            prop_assert!(reassembler.held_bytes() <= config.memory_bytes_max);
            prop_assert!(reassembler.filling() <= config.slots_max);
        }
    }

    /// Two frames from two senders, fragments shuffled, some duplicated:
    /// both come out whole, exactly once (a single-fragment frame, like an
    /// unfragmented one, is not deduplicated: each copy comes out).
    #[test]
    fn frames_survive_shuffling_and_duplication(
        len_a in 1usize..60_000,
        len_b in 1usize..60_000,
        datagram_len_max in 576usize..9000,
        order in proptest::collection::vec(any::<u32>(), 1..400),
        duplicates in proptest::collection::vec(any::<u16>(), 0..20),
    ) {
        let a: Vec<u8> = (0..len_a).map(|i| (i * 7) as u8).collect();
        let mut b: Vec<u8> = (0..len_b).map(|i| (i * 13 + 1) as u8).collect();
        b.extend_from_slice(&[0x46, 0x4F]);
        b.rotate_right(2); // starts with the fragment magic: always fragmented
        let mut datagrams: Vec<(u16, Vec<u8>)> = Vec::new();
        datagrams.extend(fragments(&a, datagram_len_max, 1).into_iter().map(|d| (1, d)));
        datagrams.extend(fragments(&b, datagram_len_max, 1).into_iter().map(|d| (2, d)));
        let a_fragmented = !datagrams.iter().all(|(port, _)| *port == 2);
        for duplicate in duplicates {
            let copy = datagrams[usize::from(duplicate) % datagrams.len()].clone();
            datagrams.push(copy);
        }
        // A seeded shuffle from `order`.
        for (i, key) in order.iter().enumerate() {
            let j = (*key as usize) % datagrams.len();
            let i = i % datagrams.len();
            datagrams.swap(i, j);
        }
        let mut reassembler = Reassembler::new(small_config()).expect("config");
        let now = Instant::now();
        let mut whole: Vec<(u16, Vec<u8>)> = Vec::new();
        for (port, datagram) in &datagrams {
            match reassembler.accept(now, source(*port), datagram) {
                Ok(Accepted::Single) => whole.push((*port, datagram[FRAGMENT_HEADER_LEN..].to_vec())),
                Ok(Accepted::Completed) => {
                    let mut out = Vec::new();
                    let from = reassembler.pop_complete(&mut out).expect("complete");
                    whole.push((from.port(), out));
                }
                Ok(Accepted::Stored) | Err(_) => {}
            }
        }
        whole.sort();
        whole.dedup_by(|x, y| x == y && FragmentPlan::for_frame(&x.1, datagram_len_max)
            .is_some_and(|plan| plan.count == 1));
        let mut expected = vec![(2u16, b)];
        if a_fragmented {
            expected.insert(0, (1, a));
        }
        prop_assert_eq!(whole, expected);
    }
}
