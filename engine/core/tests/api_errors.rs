//! API misuse gets a typed error; hostile frames are counted and dropped.

mod common;

use common::{config, Cluster, Seen};
use osiris_core::wire::{FrameWriter, Header};
use osiris_core::{Error, GroupId, Instant, MemberId, Node, Status, ViewId};

fn two_member_group() -> (Cluster, GroupId) {
    let mut cluster = Cluster::new(2);
    cluster.run_for_ms(300);
    let now = cluster.now;
    let group = cluster.node(0).join_group(now, "g").unwrap();
    cluster.node(1).join_group(now, "g").unwrap();
    cluster.run_for_ms(300);
    (cluster, group)
}

#[test]
fn misuse_is_reported_with_typed_errors() {
    let (mut cluster, group) = two_member_group();
    let now = cluster.now;
    let node = cluster.node(0);
    assert_eq!(node.join_group(now, "g"), Err(Error::AlreadyJoined(group)));
    assert_eq!(node.join_group(now, ""), Err(Error::BadGroupName));
    assert_eq!(
        node.join_group(now, &"x".repeat(256)),
        Err(Error::BadGroupName)
    );
    let other = GroupId::from_name("other");
    assert_eq!(node.send(now, other, b"hi"), Err(Error::NotJoined(other)));
    assert_eq!(node.leave_group(now, other), Err(Error::NotJoined(other)));
    let max = node.config().payload_max;
    let big = vec![0u8; max + 1];
    assert_eq!(
        node.send(now, group, &big),
        Err(Error::PayloadTooLarge { len: max + 1, max })
    );
    assert_eq!(
        node.provide_checkpoint(now, group, b"s"),
        Err(Error::NoCheckpointRequested(group))
    );
    // A full send queue is back-pressure, not loss.
    let window = node.config().send_window as usize + node.config().send_queue_max;
    let mut accepted = 0;
    let outcome = loop {
        match node.send(now, group, b"m") {
            Ok(()) => accepted += 1,
            Err(error) => break error,
        }
        assert!(accepted <= window, "the queue is bounded");
    };
    assert_eq!(outcome, Error::SendQueueFull(group));
    assert_eq!(accepted, window);

    cluster.node(1).leave(now).unwrap();
    assert_eq!(
        cluster.node(1).send(now, group, b"late"),
        Err(Error::Stopped)
    );
    cluster.run_for_ms(100);
    assert_eq!(
        cluster.node(1).status(),
        Status::Stopped(osiris_core::StopReason::Left)
    );
    let now = cluster.now;
    assert_eq!(cluster.node(1).join_group(now, "h"), Err(Error::Stopped));
}

#[test]
fn bad_configuration_is_refused() {
    let mut lonely = config(1, 1);
    lonely.seeds.clear();
    assert_eq!(Node::new(lonely, Instant(0)).unwrap_err().field, "seeds");
    let mut huge = config(0, 1);
    huge.payload_max = huge.frame_max;
    assert_eq!(
        Node::new(huge, Instant(0)).unwrap_err().field,
        "payload_max"
    );
    let mut hasty = config(0, 1);
    hasty.suspect_timeout = hasty.heartbeat_period;
    assert_eq!(
        Node::new(hasty, Instant(0)).unwrap_err().field,
        "suspect_timeout"
    );
}

fn data_frame(sender: MemberId, view: ViewId, group: GroupId, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = FrameWriter::new(
        &mut bytes,
        &Header {
            sender,
            view,
            group,
            seq: 1,
        },
    );
    assert!(writer.push_data(payload));
    writer.finish();
    bytes
}

#[test]
fn hostile_frames_are_counted_and_change_nothing() {
    let (mut cluster, group) = two_member_group();
    let now = cluster.now;
    let view = cluster.node(0).domain_view().unwrap().id;
    let before = cluster.seen[0].len();
    let node = cluster.node(0);
    // Random garbage and truncations.
    let mut noise = 0x1234_5678_u64;
    for length in 0..200usize {
        let bytes: Vec<u8> = (0..length)
            .map(|_| {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                noise as u8
            })
            .collect();
        node.handle_packet(now, &bytes);
    }
    let valid = data_frame(MemberId::new(1, 1), view, group, b"truncate me");
    for cut in 0..valid.len() {
        node.handle_packet(now, &valid[..cut]);
    }
    assert_eq!(node.stats().frames_malformed, 200 + valid.len() as u64);
    // A well-formed frame from a stranger, and from an excluded incarnation.
    node.handle_packet(
        now,
        &data_frame(MemberId::new(42, 1), view, group, b"stranger"),
    );
    node.handle_packet(
        now,
        &data_frame(MemberId::new(1, 0), view, group, b"old incarnation"),
    );
    assert_eq!(node.stats().frames_from_strangers, 2);
    cluster.pump(0);
    let delivered_since = cluster.seen[0][before..]
        .iter()
        .filter(|seen| matches!(seen, Seen::Delivered(..)))
        .count();
    assert_eq!(delivered_since, 0);
    // The member still serves.
    let now = cluster.now;
    cluster.node(1).send(now, group, b"still here").unwrap();
    cluster.run_for_ms(50);
    assert!(cluster.seen[0]
        .iter()
        .any(|seen| matches!(seen, Seen::Delivered(_, _, payload, _) if payload == b"still here")));
}
