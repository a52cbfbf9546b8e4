//! UDP transport over loopback: batching, fragmentation, GSO/GRO, typed errors,
//! waiting.

mod common;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use common::{frame, loopback_config, receive, transport};
use osiris_transport::{
    ConfigError, Destination, GsoStatus, Interest, Transmit, Transport, TransportError, UdpConfig,
    UdpTransport,
};

const TIMEOUT: Duration = Duration::from_secs(5);

fn with(change: impl FnOnce(&mut UdpConfig)) -> UdpConfig {
    let mut config = loopback_config();
    change(&mut config);
    config
}

#[test]
fn unicast_batches_really_batch() {
    let mut sender = transport(loopback_config());
    let mut receiver = transport(loopback_config());
    let mut batch = receiver.new_recv_batch();
    let destination = Destination::Unicast(receiver.local_addr());
    let batches = 16u32;
    let per_batch = 64u32;
    let mut received = Vec::new();
    for round in 0..batches {
        let frames: Vec<Vec<u8>> = (0..per_batch)
            .map(|i| {
                let sequence = round * per_batch + i;
                frame(sequence, 40 + (sequence as usize * 37) % 1400)
            })
            .collect();
        let transmits: Vec<Transmit<'_>> = frames
            .iter()
            .map(|frame| Transmit { destination, frame })
            .collect();
        assert_eq!(
            sender.send_batch(&transmits).expect("send"),
            per_batch as usize
        );
        let got = receive(&mut receiver, &mut batch, per_batch as usize, TIMEOUT);
        assert_eq!(got.len(), per_batch as usize, "round {round}");
        for ((source, bytes), expected) in got.iter().zip(&frames) {
            assert_eq!(*source, sender.local_addr());
            assert_eq!(bytes, expected);
        }
        received.extend(got);
    }
    let total = u64::from(batches * per_batch);
    let sent = sender.stats();
    assert_eq!(
        sent.sendmmsg_calls,
        u64::from(batches),
        "one sendmmsg per batch of 64"
    );
    assert_eq!(sent.frames_sent, total);
    assert_eq!(sent.datagrams_sent, total);
    assert_eq!(sent.frames_sent_fragmented, 0);
    let got = receiver.stats();
    assert_eq!(got.frames_received, total);
    assert_eq!(got.datagrams_received, total);
    assert_eq!(got.bytes_received, sent.bytes_sent);
    // Loopback delivers during sendmmsg: one recvmmsg takes the whole batch.
    // Allow slack for a receive that raced a partial delivery.
    assert!(
        got.recvmmsg_calls <= u64::from(batches) * 2,
        "recvmmsg calls {} for {batches} batches",
        got.recvmmsg_calls
    );
    assert_eq!(received.len(), total as usize);
}

#[test]
fn a_large_frame_is_fragmented_and_reassembled() {
    let mut sender = transport(loopback_config());
    let mut receiver = transport(loopback_config());
    let mut batch = receiver.new_recv_batch();
    let big = frame(7, 1 << 20);
    let small = frame(8, 100);
    let destination = Destination::Unicast(receiver.local_addr());
    let transmits = [
        Transmit {
            destination,
            frame: &small,
        },
        Transmit {
            destination,
            frame: &big,
        },
        Transmit {
            destination,
            frame: &small,
        },
    ];
    assert_eq!(sender.send_batch(&transmits).expect("send"), 3);
    let got = receive(&mut receiver, &mut batch, 3, TIMEOUT);
    assert_eq!(got.len(), 3);
    let lens: Vec<usize> = got.iter().map(|(_, bytes)| bytes.len()).collect();
    assert!(lens.contains(&big.len()), "lengths {lens:?}");
    let whole = got
        .iter()
        .find(|(_, bytes)| bytes.len() == big.len())
        .expect("big frame");
    assert!(whole.1 == big, "the 1 MiB frame arrives intact");
    let sent = sender.stats();
    assert_eq!(sent.frames_sent_fragmented, 1);
    assert_eq!(sent.datagrams_sent, 2 + (1u64 << 20).div_ceil(65_507 - 28));
    assert_eq!(receiver.stats().reassembly.frames_reassembled, 1);
}

#[test]
fn gso_and_gro_carry_mtu_sized_fragments() {
    let mut config = loopback_config();
    config.datagram_len_max = 1472;
    let mut sender = transport(config.clone());
    let mut receiver = transport(config);
    let mut batch = receiver.new_recv_batch();
    let gso = sender.gso_status();
    println!("GSO status with 1472-byte datagrams on loopback: {gso:?}");
    println!("receiver socket: {:?}", receiver.socket_info());
    let destination = Destination::Unicast(receiver.local_addr());
    let frames: Vec<Vec<u8>> = (0..4)
        .map(|i| frame(i, (1 << 20) - i as usize * 1000))
        .collect();
    for frame in &frames {
        assert_eq!(
            sender
                .send_batch(&[Transmit { destination, frame }])
                .expect("send"),
            1
        );
        let got = receive(&mut receiver, &mut batch, 1, TIMEOUT);
        assert_eq!(got.len(), 1);
        assert!(got[0].1 == *frame, "frame intact");
    }
    let sent = *sender.stats();
    let got = *receiver.stats();
    println!(
        "sender: {} datagrams in {} sendmmsg calls, {} GSO entries; receiver: {} datagrams, {} GRO buffers, {} recvmmsg calls",
        sent.datagrams_sent, sent.sendmmsg_calls, sent.gso_messages_sent,
        got.datagrams_received, got.gro_buffers_received, got.recvmmsg_calls
    );
    assert_eq!(got.datagrams_received, sent.datagrams_sent);
    if let GsoStatus::Active { segments_max } = gso {
        assert_eq!(segments_max, 44);
        assert!(sent.gso_messages_sent > 0);
        assert!(sent.sendmmsg_calls < sent.datagrams_sent / 40);
    }
    if receiver.socket_info().gro && sent.gso_messages_sent > 0 {
        assert!(
            got.gro_buffers_received > 0,
            "loopback keeps GSO runs whole for GRO sockets"
        );
    }
}

#[test]
fn gso_off_sends_the_same_bytes() {
    let mut config = loopback_config();
    config.datagram_len_max = 1472;
    config.gso = false;
    config.gro = false;
    let mut sender = transport(config.clone());
    let mut receiver = transport(config);
    assert_eq!(sender.gso_status(), GsoStatus::Disabled);
    let mut batch = receiver.new_recv_batch();
    let big = frame(1, 300_000);
    let destination = Destination::Unicast(receiver.local_addr());
    assert_eq!(
        sender
            .send_batch(&[Transmit {
                destination,
                frame: &big
            }])
            .expect("send"),
        1
    );
    let got = receive(&mut receiver, &mut batch, 1, TIMEOUT);
    assert_eq!(got.len(), 1);
    assert!(got[0].1 == big);
    assert_eq!(sender.stats().gso_messages_sent, 0);
    assert_eq!(receiver.stats().gro_buffers_received, 0);
    // 300,000 / 1,444 → 208 fragments in batches of 64 entries.
    assert_eq!(sender.stats().datagrams_sent, 208);
    assert_eq!(sender.stats().sendmmsg_calls, 4);
}

#[test]
fn opaque_frames_survive_whatever_their_first_bytes() {
    let mut sender = transport(loopback_config());
    let mut receiver = transport(loopback_config());
    let mut batch = receiver.new_recv_batch();
    let destination = Destination::Unicast(receiver.local_addr());
    let mut looks_like_fragment = vec![0x46, 0x4F, 1, 0];
    looks_like_fragment.resize(200, 9);
    let mut full_size_fragment_look = vec![0x46, 0x4F];
    full_size_fragment_look.resize(65_507, 3);
    let frames: [&[u8]; 5] = [
        &[],
        &[0x46],
        &[0x46, 0x4F],
        &looks_like_fragment,
        &full_size_fragment_look,
    ];
    let transmits: Vec<Transmit<'_>> = frames
        .iter()
        .map(|frame| Transmit { destination, frame })
        .collect();
    assert_eq!(sender.send_batch(&transmits).expect("send"), frames.len());
    let got = receive(&mut receiver, &mut batch, frames.len(), TIMEOUT);
    let mut got: Vec<Vec<u8>> = got.into_iter().map(|(_, bytes)| bytes).collect();
    let mut expected: Vec<Vec<u8>> = frames.iter().map(|frame| frame.to_vec()).collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
    assert_eq!(receiver.stats().reassembly.single_fragment_frames, 2);
    assert_eq!(receiver.stats().reassembly.frames_reassembled, 1);
    assert_eq!(receiver.stats().datagrams_malformed, 0);
}

#[test]
fn frames_to_several_destinations_in_one_batch() {
    let mut sender = transport(loopback_config());
    let mut receivers: Vec<UdpTransport> = (0..3).map(|_| transport(loopback_config())).collect();
    let frames: Vec<Vec<u8>> = (0..30).map(|i| frame(i, 500)).collect();
    let transmits: Vec<Transmit<'_>> = frames
        .iter()
        .enumerate()
        .map(|(i, frame)| Transmit {
            destination: Destination::Unicast(receivers[i % 3].local_addr()),
            frame,
        })
        .collect();
    assert_eq!(sender.send_batch(&transmits).expect("send"), 30);
    assert_eq!(sender.stats().sendmmsg_calls, 1);
    for (r, receiver) in receivers.iter_mut().enumerate() {
        let mut batch = receiver.new_recv_batch();
        let got = receive(receiver, &mut batch, 10, TIMEOUT);
        let expected: Vec<&Vec<u8>> = frames.iter().skip(r).step_by(3).collect();
        assert_eq!(got.len(), 10);
        for ((_, bytes), expected) in got.iter().zip(expected) {
            assert_eq!(bytes, expected);
        }
    }
}

#[test]
fn bad_input_from_the_caller_is_a_typed_error() {
    let mut config = loopback_config();
    config.reassembly.frame_len_max = 100_000;
    config.reassembly.memory_bytes_max = 1 << 20;
    let mut sender = transport(config);
    let ok = Destination::Unicast(SocketAddr::from(([127, 0, 0, 1], 9)));
    let big = vec![0u8; 100_001];
    let error = sender
        .send_batch(&[
            Transmit {
                destination: ok,
                frame: b"x",
            },
            Transmit {
                destination: ok,
                frame: &big,
            },
        ])
        .expect_err("too large");
    assert!(matches!(
        error,
        TransportError::FrameTooLarge {
            index: 1,
            len: 100_001,
            max: 100_000
        }
    ));
    println!("{error}");
    assert_eq!(sender.stats().sendmmsg_calls, 0, "nothing sent");
    let not_multicast = Destination::Multicast(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 9));
    let error = sender
        .send_batch(&[Transmit {
            destination: not_multicast,
            frame: b"x",
        }])
        .expect_err("not multicast");
    assert!(matches!(
        error,
        TransportError::BadDestination { index: 0, .. }
    ));
    let v6 = Destination::Unicast("[::1]:9".parse().expect("addr"));
    let error = sender
        .send_batch(&[Transmit {
            destination: v6,
            frame: b"x",
        }])
        .expect_err("family");
    println!("{error}");
    assert!(matches!(error, TransportError::BadDestination { .. }));
    let other_batch = transport(with(|c| c.batch_len = 8)).new_recv_batch();
    let mut other_batch = other_batch;
    assert!(matches!(
        sender.recv_batch(&mut other_batch, Instant::now()),
        Err(TransportError::ForeignBatch)
    ));
}

#[test]
fn bad_config_is_a_typed_error_with_a_clear_message() {
    let cases: Vec<(UdpConfig, &str)> = vec![
        (with(|c| c.datagram_len_max = 100), "datagram_len_max"),
        (with(|c| c.datagram_len_max = 70_000), "datagram_len_max"),
        (with(|c| c.batch_len = 0), "batch_len"),
        (with(|c| c.batch_len = 5000), "batch_len"),
        (with(|c| c.recv_buffer_bytes = Some(1)), "recv_buffer_bytes"),
    ];
    for (config, field) in cases {
        let error = UdpTransport::new(config).expect_err("refused");
        let message = error.to_string();
        println!("{message}");
        assert!(message.contains(field), "{message}");
        assert!(matches!(
            error,
            TransportError::Config(ConfigError::OutOfRange { .. })
        ));
    }
    let mut v6 = UdpConfig::new("[::1]:0".parse().expect("addr"));
    v6.multicast.interface = Some(Ipv4Addr::LOCALHOST);
    assert!(matches!(
        UdpTransport::new(v6),
        Err(TransportError::Config(ConfigError::MulticastNeedsIpv4))
    ));
    let mut config = loopback_config();
    config
        .multicast
        .groups
        .push(osiris_transport::MulticastMembership {
            group: Ipv4Addr::new(10, 1, 1, 1),
            interface: Ipv4Addr::LOCALHOST,
        });
    assert!(matches!(
        UdpTransport::new(config),
        Err(TransportError::Config(ConfigError::NotMulticast { .. }))
    ));
    // A bind the kernel refuses names the operation.
    let taken = transport(loopback_config());
    let error = UdpTransport::new(UdpConfig::new(taken.local_addr())).expect_err("in use");
    println!("{error}");
    assert!(matches!(
        error,
        TransportError::Socket {
            operation: "bind",
            ..
        }
    ));
}

#[test]
fn ipv6_loopback_works_too() {
    let config = UdpConfig::new("[::1]:0".parse().expect("addr"));
    let Ok(mut sender) = UdpTransport::new(config.clone()) else {
        println!("SKIP: no IPv6 loopback on this machine");
        return;
    };
    let mut receiver = transport(config);
    let mut batch = receiver.new_recv_batch();
    let big = frame(3, 200_000);
    let destination = Destination::Unicast(receiver.local_addr());
    assert_eq!(
        sender
            .send_batch(&[Transmit {
                destination,
                frame: &big
            }])
            .expect("send"),
        1
    );
    let got = receive(&mut receiver, &mut batch, 1, TIMEOUT);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, sender.local_addr());
    assert!(got[0].1 == big);
}

#[test]
fn wait_times_out_then_wakes_on_data() {
    let mut sender = transport(loopback_config());
    let mut receiver = transport(loopback_config());
    let mut batch = receiver.new_recv_batch();
    assert_eq!(
        receiver
            .recv_batch(&mut batch, Instant::now())
            .expect("recv"),
        0
    );
    let start = Instant::now();
    let ready = receiver
        .wait(Interest::READABLE, Some(Duration::from_millis(30)))
        .expect("wait");
    assert!(ready.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(29));
    let ready = sender
        .wait(Interest::WRITABLE, Some(Duration::ZERO))
        .expect("wait");
    assert!(ready.writable);
    let destination = Destination::Unicast(receiver.local_addr());
    sender
        .send_batch(&[Transmit {
            destination,
            frame: &frame(1, 64),
        }])
        .expect("send");
    let ready = receiver
        .wait(Interest::READABLE, Some(TIMEOUT))
        .expect("wait");
    assert!(ready.readable);
    assert_eq!(
        receiver
            .recv_batch(&mut batch, Instant::now())
            .expect("recv"),
        1
    );
    assert_eq!(batch.get(0).expect("frame").bytes, frame(1, 64).as_slice());
}

#[test]
fn unreachable_destinations_are_dropped_and_counted() {
    let mut sender = transport(loopback_config());
    let mut receiver = transport(loopback_config());
    let mut batch = receiver.new_recv_batch();
    // 0.0.0.0/8 as a destination: the kernel refuses (EINVAL) at send.
    let nowhere = Destination::Unicast(SocketAddr::from(([0, 1, 2, 3], 9)));
    let good = Destination::Unicast(receiver.local_addr());
    let a = frame(1, 64);
    let b = frame(2, 64);
    let transmits = [
        Transmit {
            destination: good,
            frame: &a,
        },
        Transmit {
            destination: nowhere,
            frame: &a,
        },
        Transmit {
            destination: good,
            frame: &b,
        },
    ];
    assert_eq!(sender.send_batch(&transmits).expect("send"), 3);
    let got = receive(&mut receiver, &mut batch, 2, TIMEOUT);
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].1, b);
    println!(
        "send errors: {}, errno {}",
        sender.stats().send_errors,
        sender.stats().last_send_errno
    );
    assert_eq!(sender.stats().send_errors, 1);
    assert_eq!(sender.stats().frames_sent, 2);
}
