//! Several runtime nodes in one process over real loopback UDP sockets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use osiris_runtime::{IdleStrategy, MemberId, Node, RuntimeConfig};

fn config(node: u32, seeds: &[SocketAddr], idle: IdleStrategy) -> RuntimeConfig {
    let mut config = RuntimeConfig::new(node, "127.0.0.1:0".parse().unwrap());
    config.core.bootstrap = seeds.is_empty();
    config.core.seeds = seeds.iter().map(ToString::to_string).collect();
    config.idle = idle;
    config
}

type Log = Arc<Mutex<Vec<(MemberId, Vec<u8>)>>>;

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn three_members_deliver_every_message_in_sender_order(idle: IdleStrategy) {
    let first = Node::start(config(1, &[], idle)).unwrap();
    let seed = [first.local_addr()];
    let others: Vec<Node> = (2..=3)
        .map(|id| Node::start(config(id, &seed, idle)).unwrap())
        .collect();
    let nodes: Vec<Node> = std::iter::once(first).chain(others).collect();
    let logs: Vec<Log> = nodes.iter().map(|_| Log::default()).collect();
    let view_sizes: Vec<Arc<Mutex<usize>>> = nodes.iter().map(|_| Arc::default()).collect();
    let groups: Vec<_> = nodes
        .iter()
        .zip(&logs)
        .zip(&view_sizes)
        .map(|((node, log), size)| {
            let log = Arc::clone(log);
            let size = Arc::clone(size);
            node.group("in-process")
                .on_view(move |view| *size.lock().unwrap() = view.members.len())
                .on_message(move |message| {
                    log.lock()
                        .unwrap()
                        .push((message.sender, message.payload.to_vec()));
                })
                .join()
                .unwrap()
        })
        .collect();
    // Wait until every member sees all three (a sender's multicast reaches
    // only the view it is sent in).
    for size in &view_sizes {
        wait_until("the three-member view", Duration::from_secs(10), || {
            *size.lock().unwrap() == 3
        });
    }
    const PER_SENDER: u32 = 2_000;
    for index in 0..PER_SENDER {
        for group in &groups {
            group.send(&index.to_le_bytes()).unwrap();
        }
    }
    let expected = 3 * PER_SENDER as usize;
    for log in &logs {
        wait_until("every delivery", Duration::from_secs(20), || {
            log.lock().unwrap().len() >= expected
        });
    }
    for log in &logs {
        let log = log.lock().unwrap();
        assert_eq!(log.len(), expected);
        let mut next = std::collections::HashMap::new();
        for (sender, payload) in log.iter() {
            let index = u32::from_le_bytes(payload[..4].try_into().unwrap());
            let expected_index = next.entry(*sender).or_insert(0u32);
            assert_eq!(index, *expected_index, "FIFO broken for {sender}");
            *expected_index += 1;
        }
    }
    let stats = nodes[0].stats().unwrap();
    assert!(stats.node.messages_delivered >= expected as u64);
    for node in &nodes {
        node.shutdown();
    }
}

#[test]
fn fifo_multicast_between_three_nodes_with_backoff() {
    three_members_deliver_every_message_in_sender_order(IdleStrategy::default());
}

#[test]
fn fifo_multicast_between_three_nodes_blocking_on_events() {
    three_members_deliver_every_message_in_sender_order(IdleStrategy::BlockOnEvent);
}

type KindLog = Arc<Mutex<Vec<(MemberId, osiris_runtime::SendKind, bool, Vec<u8>)>>>;

/// Every send kind, flush, point to point and query through the Rust API.
#[test]
fn every_send_kind_flush_point_to_point_and_query() {
    use osiris_runtime::{QueryOrder, QuerySpec, QueryTarget, SendKind};
    let first = Node::start(config(1, &[], IdleStrategy::default())).unwrap();
    let seed = [first.local_addr()];
    let nodes: Vec<Node> = std::iter::once(first)
        .chain((2..=3).map(|id| Node::start(config(id, &seed, IdleStrategy::default())).unwrap()))
        .collect();
    let logs: Vec<KindLog> = nodes.iter().map(|_| KindLog::default()).collect();
    let sizes: Vec<Arc<Mutex<usize>>> = nodes.iter().map(|_| Arc::default()).collect();
    let groups: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(index, node)| {
            let log = Arc::clone(&logs[index]);
            let size = Arc::clone(&sizes[index]);
            node.group("kinds")
                .on_view(move |view| *size.lock().unwrap() = view.members.len())
                .on_message(move |m| {
                    log.lock().unwrap().push((
                        m.sender,
                        m.kind,
                        m.point_to_point,
                        m.payload.to_vec(),
                    ));
                })
                .on_query(move |request| {
                    let mut answer = format!("member {} saw ", index + 1).into_bytes();
                    answer.extend_from_slice(request.payload);
                    Some(answer)
                })
                .join()
                .unwrap()
        })
        .collect();
    for size in &sizes {
        wait_until("the three-member view", Duration::from_secs(10), || {
            *size.lock().unwrap() == 3
        });
    }
    const ORDERED: u32 = 300;
    for index in 0..ORDERED {
        for (sender, group) in groups.iter().enumerate() {
            let payload = format!("o{sender}:{index}");
            if index % 3 == 0 {
                group.safe_send(payload.as_bytes()).unwrap();
            } else {
                group.ordered_send(payload.as_bytes()).unwrap();
            }
            group.causal_send(b"c").unwrap();
        }
    }
    groups[0]
        .send_to(MemberId::new(3, 1), b"just for 3")
        .unwrap();
    groups[0].flush().unwrap();
    let total_order = |log: &KindLog| -> Vec<Vec<u8>> {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(_, kind, ..)| matches!(kind, SendKind::Ordered | SendKind::Safe))
            .map(|(.., payload)| payload.clone())
            .collect()
    };
    for log in &logs {
        wait_until(
            "every ordered and safe message",
            Duration::from_secs(20),
            || total_order(log).len() == 3 * ORDERED as usize,
        );
    }
    let point_to_point = |log: &KindLog| {
        log.lock()
            .unwrap()
            .iter()
            .filter(|(.., p2p, payload)| *p2p && payload == b"just for 3")
            .count()
    };
    wait_until(
        "the point-to-point message",
        Duration::from_secs(10),
        || point_to_point(&logs[2]) == 1,
    );
    assert_eq!(point_to_point(&logs[0]) + point_to_point(&logs[1]), 0);
    let reference = total_order(&logs[0]);
    for log in &logs[1..] {
        assert_eq!(total_order(log), reference, "total order differs");
    }
    let spec = QuerySpec {
        target: QueryTarget::All,
        order: QueryOrder::Total,
        timeout: Duration::from_secs(5),
    };
    let result = groups[1].query(spec, b"q").unwrap();
    assert!(!result.timed_out, "{result:?}");
    assert!(result.failed.is_empty());
    let mut answers: Vec<String> = result
        .replies
        .iter()
        .map(|(_, reply)| String::from_utf8_lossy(reply).into_owned())
        .collect();
    answers.sort();
    assert_eq!(
        answers,
        ["member 1 saw q", "member 2 saw q", "member 3 saw q"]
    );
    let one = groups[0]
        .query(
            QuerySpec {
                target: QueryTarget::One,
                ..spec
            },
            b"one",
        )
        .unwrap();
    assert_eq!(one.replies.len(), 1, "{one:?}");
    for node in &nodes {
        node.shutdown();
    }
}

/// Flow control: a receiver whose handler is slow holds the sender back.
/// The sender's backlog (sent by the application, not yet delivered at the
/// slow member) stays within the submission ring plus the core's window and
/// queue, instead of growing with the number of messages sent.
#[test]
fn a_slow_receiver_bounds_what_the_sender_holds() {
    use std::sync::atomic::{AtomicU64, Ordering};
    let slow_config = |node: u32, seeds: &[SocketAddr]| {
        let mut config = config(node, seeds, IdleStrategy::default());
        // The slow handler stalls its data plane for long stretches: keep
        // the failure detector out of this test.
        config.core.suspect_timeout = Duration::from_secs(20);
        config.core.view_change_timeout = Duration::from_secs(20);
        config
    };
    let fast = Node::start(slow_config(1, &[])).unwrap();
    let slow = Node::start(slow_config(2, &[fast.local_addr()])).unwrap();
    let delivered = Arc::new(AtomicU64::new(0));
    let size = Arc::new(Mutex::new(0));
    let sender = {
        let size = Arc::clone(&size);
        fast.group("flow")
            .on_view(move |view| *size.lock().unwrap() = view.members.len())
            .join()
            .unwrap()
    };
    let _receiver = {
        let delivered = Arc::clone(&delivered);
        slow.group("flow")
            .on_message(move |_| {
                // About 20 µs of work per message.
                let until = Instant::now() + Duration::from_micros(20);
                while Instant::now() < until {
                    std::hint::spin_loop();
                }
                delivered.fetch_add(1, Ordering::Relaxed);
            })
            .join()
            .unwrap()
    };
    wait_until("the two-member view", Duration::from_secs(10), || {
        *size.lock().unwrap() == 2
    });
    let core = &fast.config().core;
    // Where the backlog can sit: the submission ring (+1 held aside), the
    // sender core's queue, one window sent but not yet acked, and one window
    // the receiver acked (it acks in the cycle it receives) but whose upcalls
    // are still running.
    let bound = fast.config().submit_ring_len as u64
        + 1
        + core.send_queue_max as u64
        + 2 * u64::from(core.send_window);
    const COUNT: u64 = 60_000;
    let mut max_backlog = 0;
    for sent in 1..=COUNT {
        sender.send(&[1u8; 64]).unwrap();
        max_backlog = max_backlog.max(sent - delivered.load(Ordering::Relaxed));
    }
    wait_until(
        "every delivery at the slow member",
        Duration::from_secs(30),
        || delivered.load(Ordering::Relaxed) == COUNT,
    );
    println!("max backlog {max_backlog} (bound {bound}) over {COUNT} messages");
    assert!(max_backlog <= bound, "backlog {max_backlog} beyond {bound}");
    // The sender was really held back (else the test shows nothing).
    assert!(
        max_backlog > u64::from(core.send_window),
        "backlog {max_backlog}"
    );
    let stats = fast.stats().unwrap();
    assert!(
        stats.send_stalls > 0,
        "the data plane never held a send back"
    );
    fast.shutdown();
    slow.shutdown();
}

/// A burst of 64 KiB messages (each frame fragmented by the transport: above
/// the 65,507-byte datagram limit) reaches every member, and the sender is
/// never suspected. The data plane used to take up to 4,096 submissions per
/// cycle whatever their size: copying 2,000 of these into the core (128 MiB)
/// held one cycle for about 200 ms, the suspect timeout, with nothing sent or
/// received meanwhile, and the receivers excluded the sender.
#[test]
fn a_burst_of_fragmented_messages_keeps_the_sender_in_the_view() {
    const SIZE: usize = 65_536;
    const COUNT: usize = 2_000;
    let large = |node: u32, seeds: &[SocketAddr]| {
        let mut config = config(node, seeds, IdleStrategy::default());
        config.core.payload_max = SIZE;
        config.core.frame_max = SIZE + 4_096;
        config
    };
    let first = Node::start(large(1, &[])).unwrap();
    let seed = [first.local_addr()];
    let nodes: Vec<Node> = std::iter::once(first)
        .chain((2..=3).map(|id| Node::start(large(id, &seed)).unwrap()))
        .collect();
    let counts: Vec<Arc<Mutex<usize>>> = nodes.iter().map(|_| Arc::default()).collect();
    // Every view size each member installed, in order.
    let views: Vec<Arc<Mutex<Vec<usize>>>> = nodes.iter().map(|_| Arc::default()).collect();
    let groups: Vec<_> = nodes
        .iter()
        .zip(&counts)
        .zip(&views)
        .map(|((node, count), views)| {
            let count = Arc::clone(count);
            let views = Arc::clone(views);
            node.group("large")
                .on_view(move |view| views.lock().unwrap().push(view.members.len()))
                .on_message(move |message| {
                    assert_eq!(message.payload.len(), SIZE);
                    *count.lock().unwrap() += 1;
                })
                .join()
                .unwrap()
        })
        .collect();
    for views in &views {
        wait_until("the three-member view", Duration::from_secs(10), || {
            views.lock().unwrap().last() == Some(&3)
        });
    }
    let installed: Vec<usize> = views.iter().map(|v| v.lock().unwrap().len()).collect();
    let payload = vec![0x5A; SIZE];
    for _ in 0..COUNT {
        groups[0].send(&payload).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for (index, count) in counts.iter().enumerate() {
        while *count.lock().unwrap() < COUNT {
            for (member, views) in views.iter().enumerate() {
                let views = views.lock().unwrap();
                assert_eq!(
                    views.len(),
                    installed[member],
                    "member {} installed views of sizes {:?} during the burst",
                    member + 1,
                    &views[installed[member]..]
                );
            }
            assert!(
                Instant::now() < deadline,
                "member {} delivered {} of {COUNT}",
                index + 1,
                count.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let stats = nodes[0].stats().unwrap();
    assert!(stats.unicast.frames_sent_fragmented >= 2 * COUNT as u64);
    for node in &nodes {
        node.shutdown();
    }
}
