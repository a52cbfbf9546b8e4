//! Scripted scenarios on a small deterministic cluster.

mod common;

use common::{formed, formed_with, Cluster, Seen};
use osiris_core::{GroupId, Status};

#[test]
fn nodes_join_a_domain_and_a_group_and_deliver_fifo() {
    let mut cluster = Cluster::new(3);
    cluster.run_for_ms(500);
    for index in 0..3 {
        assert_eq!(cluster.node(index).status(), Status::Member, "node {index}");
        assert_eq!(cluster.node(index).domain_view().unwrap().members.len(), 3);
    }
    let now = cluster.now;
    let group = cluster.node(0).join_group(now, "g").unwrap();
    cluster.node(1).join_group(now, "g").unwrap();
    cluster.node(2).join_group(now, "g").unwrap();
    cluster.run_for_ms(500);
    for index in 0..3 {
        assert_eq!(
            cluster.node(index).group_members(group).len(),
            3,
            "node {index}"
        );
    }
    let now = cluster.now;
    for round in 0..50u8 {
        for index in 0..3 {
            cluster
                .node(index)
                .send(now, group, &[index as u8, round])
                .unwrap();
        }
    }
    cluster.run_for_ms(200);
    for index in 0..3 {
        let delivered: Vec<&Seen> = cluster.seen[index]
            .iter()
            .filter(|seen| matches!(seen, Seen::Delivered(..)))
            .collect();
        assert_eq!(delivered.len(), 150, "node {index}");
    }
    let _ = GroupId::DOMAIN;
}

fn delivered(cluster: &Cluster, index: usize) -> Vec<(GroupId, osiris_core::MemberId, Vec<u8>)> {
    cluster.seen[index]
        .iter()
        .filter_map(|seen| match seen {
            Seen::Delivered(group, sender, payload, _) => Some((*group, *sender, payload.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_joiner_loads_the_state_at_the_view_boundary() {
    let (mut cluster, group) = formed(3, 2);
    let now = cluster.now;
    for round in 0..20u8 {
        cluster.node(0).send(now, group, &[0, round]).unwrap();
        cluster.node(1).send(now, group, &[1, round]).unwrap();
    }
    cluster.run_for_ms(100);
    let now = cluster.now;
    cluster.node(2).join_group(now, "g").unwrap();
    cluster.node(0).send(now, group, &[9, 9]).unwrap();
    cluster.run_for_ms(500);
    assert_eq!(cluster.node(2).group_members(group).len(), 3);
    let loaded = cluster.seen[2].iter().find_map(|seen| match seen {
        Seen::StateLoaded(_, state, fresh) => Some((state.clone(), *fresh)),
        _ => None,
    });
    let (state, fresh) = loaded.expect("joiner loaded state");
    assert!(!fresh);
    assert!(state.len() >= 80, "state holds the 40 earlier messages");
    // Every member ends with the same set of messages (FIFO: the
    // interleaving of senders may differ).
    let sorted = |index: usize| {
        let mut messages: Vec<Vec<u8>> = cluster.state[index][&group]
            .chunks(2)
            .map(<[u8]>::to_vec)
            .collect();
        messages.sort();
        messages
    };
    assert_eq!(sorted(0).len(), 41);
    assert_eq!(sorted(0), sorted(2));
    assert_eq!(sorted(1), sorted(2));
}

#[test]
fn a_crashed_member_is_excluded_and_survivors_deliver_the_same_messages() {
    let (mut cluster, group) = formed(4, 4);
    let now = cluster.now;
    for round in 0..30u8 {
        for index in 0..4 {
            cluster
                .node(index)
                .send(now, group, &[index as u8, round])
                .unwrap();
        }
    }
    // Node 3's frames reach only node 0, then node 3 dies: the flush must
    // carry what only node 0 holds to nodes 1 and 2.
    cluster.cut = Box::new(|from, to, _| from == 3 && to != 0);
    cluster.run_for_ms(1);
    cluster.crash(3);
    cluster.cut = Box::new(|_, _, _| false);
    cluster.run_for_ms(1000);
    for index in 0..3 {
        assert_eq!(
            cluster.node(index).domain_view().unwrap().members.len(),
            3,
            "node {index}"
        );
        assert_eq!(cluster.node(index).group_members(group).len(), 3);
    }
    let sets: Vec<Vec<_>> = (0..3)
        .map(|index| {
            let mut all = delivered(&cluster, index);
            all.sort();
            all
        })
        .collect();
    assert_eq!(sets[0], sets[1]);
    assert_eq!(sets[1], sets[2]);
    assert_eq!(
        sets[0].len(),
        120,
        "node 3's messages reached node 0 and so everyone"
    );
    let failed_view = cluster.seen[1].iter().rev().find_map(|seen| match seen {
        Seen::GroupView(view) => Some(view.clone()),
        _ => None,
    });
    assert_eq!(failed_view.unwrap().failed.len(), 1);
}

#[test]
fn the_leader_crashing_mid_view_change_is_taken_over() {
    let (mut cluster, group) = formed(5, 5);
    let now = cluster.now;
    cluster.node(4).leave_group(now, group).unwrap();
    // Let the leader send Prepare, then crash it before it can commit.
    cluster.run_for_ms(0);
    cluster.latency_ns = 100_000;
    cluster.run_until(osiris_core::Instant(cluster.now.0 + 150_000));
    assert!(cluster.node(0).is_proposing());
    cluster.crash(0);
    cluster.run_for_ms(2000);
    for index in 1..5 {
        let view = cluster.node(index).domain_view().unwrap();
        assert_eq!(view.members.len(), 4, "node {index}");
    }
    for index in 1..4 {
        assert_eq!(
            cluster.node(index).group_members(group).len(),
            3,
            "node {index}: 0 failed, 4 left"
        );
    }
    assert!(cluster.node(4).group_view(group).is_none());
    assert!(cluster.node(1).is_leader());
}

#[test]
fn a_minority_partition_stops_and_the_majority_goes_on() {
    let (mut cluster, group) = formed(5, 5);
    cluster.cut = Box::new(|from, to, _| (from >= 3) != (to >= 3));
    cluster.run_for_ms(2000);
    for index in 0..3 {
        assert_eq!(
            cluster.node(index).domain_view().unwrap().members.len(),
            3,
            "node {index}"
        );
        assert_eq!(cluster.node(index).group_members(group).len(), 3);
    }
    for index in 3..5 {
        assert_eq!(
            cluster.node(index).status(),
            Status::Stopped(osiris_core::StopReason::Disconnected),
            "node {index}"
        );
    }
}

#[test]
fn a_voluntary_leave_is_fast() {
    let (mut cluster, _group) = formed(3, 3);
    let now = cluster.now;
    cluster.node(2).leave(now).unwrap();
    cluster.run_for_ms(20);
    assert_eq!(
        cluster.node(2).status(),
        Status::Stopped(osiris_core::StopReason::Left)
    );
    assert_eq!(cluster.node(0).domain_view().unwrap().members.len(), 2);
}

#[test]
fn a_live_excluded_node_learns_it_and_rejoins_as_a_new_incarnation() {
    let (mut cluster, group) = formed(3, 3);
    let old_id = cluster.node(2).member_id();
    // Node 2 hears everyone but nobody hears node 2: it is excluded while alive.
    cluster.cut = Box::new(|from, _, _| from == 2);
    cluster.run_for_ms(600);
    assert_eq!(cluster.node(0).domain_view().unwrap().members.len(), 2);
    cluster.cut = Box::new(|_, _, _| false);
    cluster.run_for_ms(600);
    let excluded = cluster.seen[2].iter().find_map(|seen| match seen {
        Seen::Excluded(old, new) => Some((*old, *new)),
        _ => None,
    });
    let (old, new) = excluded.expect("node 2 learned of its exclusion");
    assert_eq!(old, old_id);
    let new = new.expect("rejoins");
    assert!(new.incarnation > old.incarnation);
    assert_eq!(cluster.node(2).member_id(), new);
    assert_eq!(cluster.node(2).status(), Status::Member);
    assert!(cluster.node(0).domain_view().unwrap().contains(new));
    assert!(!cluster.node(0).domain_view().unwrap().contains(old));
    // The new incarnation starts with no groups; it joins again and gets state.
    assert!(cluster.node(2).group_view(group).is_none());
    let now = cluster.now;
    cluster.node(2).join_group(now, "g").unwrap();
    cluster.run_for_ms(500);
    assert_eq!(cluster.node(0).group_members(group).len(), 3);
    assert!(cluster.seen[2]
        .iter()
        .any(|seen| matches!(seen, Seen::StateLoaded(..))));
}

#[test]
fn a_donor_failing_mid_transfer_is_replaced() {
    let (mut cluster, group) = formed(4, 3);
    let now = cluster.now;
    for round in 0..30u8 {
        cluster.node(0).send(now, group, &[round; 8000]).unwrap();
    }
    cluster.run_for_ms(200);
    let now = cluster.now;
    cluster.node(3).join_group(now, "g").unwrap();
    // Step until the donor (node 0, the oldest) has given its checkpoint,
    // then let a few chunks go and crash it.
    let mut steps = 0;
    while !cluster.seen[0]
        .iter()
        .any(|seen| matches!(seen, Seen::CheckpointGiven(..)))
    {
        cluster.run_until(osiris_core::Instant(cluster.now.0 + 50_000));
        steps += 1;
        assert!(steps < 10_000, "checkpoint never requested");
    }
    cluster.run_until(osiris_core::Instant(cluster.now.0 + 150_000));
    cluster.crash(0);
    cluster.run_for_ms(2000);
    assert_eq!(cluster.node(3).group_members(group).len(), 3);
    let loads: Vec<&Seen> = cluster.seen[3]
        .iter()
        .filter(|seen| matches!(seen, Seen::StateLoaded(..)))
        .collect();
    assert_eq!(loads.len(), 1, "exactly one complete load");
    let Seen::StateLoaded(_, state, fresh) = loads[0] else {
        unreachable!()
    };
    assert!(!fresh);
    assert_eq!(state.len(), 30 * 8000);
    assert_eq!(cluster.state[3][&group], cluster.state[1][&group]);
    let donors: Vec<usize> = (1..3)
        .filter(|index| {
            cluster.seen[*index]
                .iter()
                .any(|seen| matches!(seen, Seen::CheckpointGiven(..)))
        })
        .collect();
    assert_eq!(
        donors,
        vec![1],
        "the next oldest member took over the transfer"
    );
}

#[test]
fn a_group_emptied_and_created_again_goes_on_numbering_its_views() {
    let (mut cluster, group) = formed(3, 1);
    let first = cluster.node(0).group_view(group).unwrap().id;
    let now = cluster.now;
    cluster.node(0).leave_group(now, group).unwrap();
    cluster.run_for_ms(300);
    assert!(cluster.node(0).group_view(group).is_none());
    let now = cluster.now;
    cluster.node(1).join_group(now, "g").unwrap();
    cluster.run_for_ms(300);
    let again = cluster.node(1).group_view(group).unwrap();
    assert!(
        again.id > first,
        "view ids never repeat: {} after {}",
        again.id,
        first
    );
    assert!(cluster.seen[1]
        .iter()
        .any(|seen| matches!(seen, Seen::StateLoaded(_, _, true))));
}

/// A sender with more queued than its window depends on acks to move the
/// window. If a receiver's last ack is lost, the receiver (which holds
/// everything and sees it stable) has no reason to ack again; its NAK for
/// the advertised-but-unsent range must then count as the ack.
#[test]
fn a_lost_last_ack_does_not_stall_a_sender_beyond_its_window() {
    let (mut cluster, group) = formed(3, 3);
    // Drop every pure ack frame (data group, sequence 0) from node 2 to the
    // sender for the first 30 ms of the burst.
    let until = cluster.now.0 + 30_000_000;
    let clock = std::rc::Rc::new(std::cell::Cell::new(cluster.now.0));
    let seen_clock = std::rc::Rc::clone(&clock);
    cluster.cut = Box::new(move |from, to, bytes| {
        let seq = u64::from_le_bytes(bytes[28..36].try_into().unwrap());
        let group = u64::from_le_bytes(bytes[20..28].try_into().unwrap());
        from == 2 && to == 0 && group != 0 && seq == 0 && seen_clock.get() < until
    });
    let window = cluster.node(0).config().send_window as usize;
    let count = window * 3;
    for index in 0..count {
        let payload = (index as u32).to_le_bytes();
        let now = cluster.now;
        cluster.node(0).send(now, group, &payload).unwrap();
    }
    cluster.pump(0);
    for _ in 0..200 {
        clock.set(cluster.now.0);
        cluster.run_for_ms(5);
    }
    for receiver in 1..3 {
        let got = delivered(&cluster, receiver)
            .iter()
            .filter(|(g, sender, _)| *g == group && sender.node.0 == 0)
            .count();
        assert_eq!(got, count, "node {receiver} delivered {got} of {count}");
    }
}

/// Large messages: the byte window (`send_window_bytes`), not the message
/// window, limits what a sender has in flight, and the burst still gets
/// through: every message is delivered in order at every receiver.
#[test]
fn large_messages_flow_through_the_byte_window() {
    let (mut cluster, group) = formed_with(3, 3, |config| {
        config.payload_max = 64 * 1024;
        config.frame_max = 70 * 1024;
        config.send_window_bytes = 256 * 1024;
        // The whole burst is queued at once (this test is about the window).
        config.send_queue_bytes_max = 64 << 20;
    });
    let count = 200usize;
    let mut payload = vec![0u8; 64 * 1024];
    for index in 0..count {
        payload[..4].copy_from_slice(&(index as u32).to_le_bytes());
        let now = cluster.now;
        cluster.node(0).send(now, group, &payload).unwrap();
    }
    // Never more than the byte window in flight: count what the sender
    // puts on the wire to node 1 before any ack can come back.
    let sent = std::rc::Rc::new(std::cell::Cell::new(0usize));
    let counter = std::rc::Rc::clone(&sent);
    cluster.cut = Box::new(move |from, to, bytes| {
        if from == 0 && to == 1 {
            counter.set(counter.get() + bytes.len());
        }
        false
    });
    cluster.pump(0);
    let burst = sent.get();
    assert!(
        (64 * 1024..=256 * 1024 + 4096).contains(&burst),
        "{burst} bytes in flight before the first ack"
    );
    cluster.run_for_ms(2_000);
    for receiver in 1..3 {
        let got: Vec<u32> = delivered(&cluster, receiver)
            .iter()
            .filter(|(g, sender, _)| *g == group && sender.node.0 == 0)
            .map(|(_, _, p)| u32::from_le_bytes(p[..4].try_into().unwrap()))
            .collect();
        assert_eq!(
            got,
            (0..count as u32).collect::<Vec<_>>(),
            "node {receiver}"
        );
    }
}

/// A sender with a backlog behind its window advertises how far it has
/// sent, not how far it has queued: on a lossless network no receiver
/// takes the queued tail for lost, so there are no NAKs and no resends.
#[test]
fn a_backlog_behind_the_window_causes_no_naks() {
    // A small window: the backlog waits for many ack rounds, far longer
    // than the NAK delay.
    let (mut cluster, group) = formed_with(3, 3, |config| config.send_window = 4);
    let backlog = 300;
    for index in 0..backlog {
        let now = cluster.now;
        cluster
            .node(0)
            .send(now, group, &(index as u32).to_le_bytes())
            .unwrap();
    }
    cluster.run_for_ms(1_000);
    for receiver in 1..3 {
        let got = delivered(&cluster, receiver)
            .iter()
            .filter(|(g, sender, _)| *g == group && sender.node.0 == 0)
            .count();
        assert_eq!(got, backlog, "node {receiver}");
        assert_eq!(
            cluster.node(receiver).stats().naks_sent,
            0,
            "node {receiver}"
        );
    }
    assert_eq!(cluster.node(0).stats().retransmissions, 0);
}

/// Large messages queue by bytes too: behind a byte window of 64 KiB and a
/// queue of 256 KiB, `send` refuses the burst after a handful of 64 KiB
/// messages instead of taking thousands (the message counts alone allow
/// 1,024 + 4,096 of them: 320 MiB).
#[test]
fn the_send_queue_is_bounded_in_bytes() {
    let (mut cluster, group) = formed_with(3, 3, |config| {
        config.payload_max = 64 * 1024;
        config.frame_max = 70 * 1024;
        config.send_window_bytes = 64 * 1024;
        config.send_queue_bytes_max = 256 * 1024;
    });
    let payload = vec![7u8; 64 * 1024];
    let now = cluster.now;
    let mut accepted = 0;
    let refused = loop {
        match cluster.node(0).send(now, group, &payload) {
            Ok(()) => accepted += 1,
            Err(error) => break error,
        }
        assert!(
            accepted < 100,
            "no bound: {accepted} messages of 64 KiB queued"
        );
    };
    assert!(
        matches!(refused, osiris_core::Error::SendQueueFull(_)),
        "{refused}"
    );
    // The queue holds 256 KiB untransmitted (plus the message that crossed
    // the line); nothing was transmitted yet.
    assert!((4..=6).contains(&accepted), "{accepted} accepted");
    // Once transmitted and acknowledged, the room comes back.
    cluster.pump(0);
    cluster.run_for_ms(200);
    let now = cluster.now;
    cluster.node(0).send(now, group, &payload).unwrap();
}
