//! Scripted scenarios for the ordering family: CausalSend waits for causal
//! predecessors, OrderedSend and SafeSend share one total order, SafeSend
//! waits for every member's acknowledgement, Flush waits for stability,
//! point-to-point reaches one member, and queries collect replies, failure
//! markers and timeouts (docs/ordering.md).

mod common;

use std::time::Duration;

use common::{formed, Cluster, Seen};
use osiris_core::{Error, GroupId, QueryOrder, QuerySpec, QueryTarget, SendKind};

fn delivered_of(cluster: &Cluster, index: usize, kinds: &[SendKind]) -> Vec<Vec<u8>> {
    cluster.seen[index]
        .iter()
        .filter_map(|seen| match seen {
            Seen::Delivered(_, _, payload, kind) if kinds.contains(kind) => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

fn position(cluster: &Cluster, index: usize, payload: &[u8]) -> Option<usize> {
    cluster.seen[index]
        .iter()
        .position(|seen| matches!(seen, Seen::Delivered(_, _, p, _) if p == payload))
}

fn heal(cluster: &mut Cluster) {
    cluster.cut = Box::new(|_, _, _| false);
}

#[test]
fn ordered_and_safe_share_one_total_order_under_loss() {
    let (mut cluster, group) = formed(3, 3);
    let mut copies = 0u64;
    cluster.cut = Box::new(move |_, _, _| {
        copies += 1;
        copies % 4 == 0
    });
    for round in 0..30u8 {
        for index in 0..3 {
            let now = cluster.now;
            let node = cluster.node(index);
            let payload = [index as u8, round];
            match round % 3 {
                0 => node.ordered_send(now, group, &payload).unwrap(),
                1 => node.safe_send(now, group, &payload).unwrap(),
                _ => node.send(now, group, &payload).unwrap(),
            }
        }
        cluster.run_for_ms(1);
    }
    heal(&mut cluster);
    cluster.run_for_ms(300);
    let total = [SendKind::Ordered, SendKind::Safe];
    let first = delivered_of(&cluster, 0, &total);
    assert_eq!(first.len(), 60, "every ordered and safe message");
    for index in 1..3 {
        assert_eq!(delivered_of(&cluster, index, &total), first, "node {index}");
        assert_eq!(delivered_of(&cluster, index, &[SendKind::Fifo]).len(), 30);
    }
}

#[test]
fn causal_send_waits_for_what_its_sender_had_delivered() {
    let (mut cluster, group) = formed(3, 3);
    // Node 1's frames do not reach node 2 for a while.
    cluster.cut = Box::new(|from, to, _| from == 1 && to == 2);
    let now = cluster.now;
    cluster.node(1).send(now, group, b"cause").unwrap();
    cluster.run_for_ms(3);
    assert!(position(&cluster, 0, b"cause").is_some());
    let now = cluster.now;
    cluster.node(0).causal_send(now, group, b"effect").unwrap();
    cluster.run_for_ms(3);
    assert_eq!(position(&cluster, 2, b"effect"), None, "held back");
    heal(&mut cluster);
    cluster.run_for_ms(100);
    let cause = position(&cluster, 2, b"cause").expect("recovered by NAK");
    let effect = position(&cluster, 2, b"effect").expect("delivered after its cause");
    assert!(cause < effect);
}

#[test]
fn safe_send_waits_for_every_member_to_acknowledge() {
    let (mut cluster, group) = formed(3, 3);
    // Node 2 receives, but nobody hears its acknowledgements.
    cluster.cut = Box::new(|from, _, _| from == 2);
    let now = cluster.now;
    cluster.node(0).safe_send(now, group, b"safe").unwrap();
    cluster.node(1).ordered_send(now, group, b"after").unwrap();
    cluster.run_for_ms(30);
    for index in 0..2 {
        assert_eq!(position(&cluster, index, b"safe"), None, "node {index}");
    }
    heal(&mut cluster);
    cluster.run_for_ms(50);
    for index in 0..3 {
        assert!(position(&cluster, index, b"safe").is_some(), "node {index}");
    }
}

#[test]
fn a_safe_quorum_delivers_without_the_slowest_member() {
    let mut cluster = Cluster::with_config(3, |config| config.safe_quorum = Some(2));
    cluster.run_for_ms(500);
    let now = cluster.now;
    let mut group = GroupId::DOMAIN;
    for index in 0..3 {
        group = cluster.node(index).join_group(now, "g").unwrap();
    }
    cluster.run_for_ms(500);
    cluster.cut = Box::new(|from, _, _| from == 2);
    let now = cluster.now;
    cluster.node(0).safe_send(now, group, b"quorum").unwrap();
    cluster.run_for_ms(30);
    for index in 0..2 {
        assert!(
            position(&cluster, index, b"quorum").is_some(),
            "node {index}"
        );
    }
}

#[test]
fn flush_completes_once_earlier_sends_are_stable() {
    let (mut cluster, group) = formed(3, 3);
    cluster.cut = Box::new(|from, _, _| from == 2);
    let now = cluster.now;
    cluster.node(0).send(now, group, b"m").unwrap();
    let id = cluster.node(0).flush(now, group).unwrap();
    cluster.run_for_ms(30);
    let flushed = |cluster: &Cluster| cluster.seen[0].contains(&Seen::Flushed(group, id));
    assert!(!flushed(&cluster), "node 2 has not acknowledged");
    heal(&mut cluster);
    cluster.run_for_ms(50);
    assert!(flushed(&cluster));
    let now = cluster.now;
    assert_eq!(
        cluster.node(0).flush(now, GroupId(42)),
        Err(Error::NotJoined(GroupId(42)))
    );
}

#[test]
fn point_to_point_reaches_only_its_member() {
    let (mut cluster, group) = formed(4, 3);
    let now = cluster.now;
    let target = cluster.node(1).member_id();
    cluster
        .node(0)
        .send_to(now, group, target, b"private")
        .unwrap();
    let outsider = cluster.node(3).member_id();
    assert_eq!(
        cluster.node(0).send_to(now, group, outsider, b"x"),
        Err(Error::NotAMember {
            group,
            member: outsider
        })
    );
    cluster.run_for_ms(50);
    let sender = cluster.node(0).member_id();
    assert!(cluster.seen[1].contains(&Seen::P2p(group, sender, b"private".to_vec())));
    for index in [0, 2] {
        assert!(!cluster.seen[index]
            .iter()
            .any(|seen| matches!(seen, Seen::P2p(..))));
    }
}

fn spec(target: QueryTarget, order: QueryOrder, timeout_ms: u64) -> QuerySpec {
    QuerySpec {
        target,
        order,
        timeout: Duration::from_millis(timeout_ms),
    }
}

#[test]
fn a_query_to_all_collects_every_reply() {
    let (mut cluster, group) = formed(3, 3);
    let now = cluster.now;
    for order in [QueryOrder::Fifo, QueryOrder::Total] {
        let id = cluster
            .node(1)
            .query(now, group, spec(QueryTarget::All, order, 1_000), b"q")
            .unwrap();
        cluster.run_for_ms(50);
        let replies = cluster.seen[1]
            .iter()
            .filter(|seen| matches!(seen, Seen::QueryReply(got, _, payload) if *got == id && payload == b"re:q"))
            .count();
        assert_eq!(replies, 3, "{order:?}");
        assert!(cluster.seen[1].contains(&Seen::QueryDone(id, false)));
    }
}

#[test]
fn queries_to_one_spread_over_the_members() {
    let (mut cluster, group) = formed(3, 3);
    for _ in 0..3 {
        let now = cluster.now;
        let target = spec(QueryTarget::One, QueryOrder::Fifo, 1_000);
        cluster.node(0).query(now, group, target, b"one").unwrap();
        cluster.run_for_ms(20);
    }
    for index in 0..3 {
        let requests = cluster.seen[index]
            .iter()
            .filter(|seen| matches!(seen, Seen::QueryRequest(..)))
            .count();
        assert_eq!(requests, 1, "node {index} answered one of three");
    }
    let now = cluster.now;
    assert_eq!(
        cluster.node(0).query(
            now,
            group,
            spec(QueryTarget::K(0), QueryOrder::Fifo, 10),
            b""
        ),
        Err(Error::InvalidQuery("K(0) names no responder"))
    );
}

#[test]
fn a_responder_that_fails_is_reported_and_silence_times_out() {
    let (mut cluster, group) = formed(3, 3);
    let now = cluster.now;
    let crashed = cluster.node(2).member_id();
    let id = cluster
        .node(0)
        .query(
            now,
            group,
            spec(QueryTarget::All, QueryOrder::Fifo, 5_000),
            b"q",
        )
        .unwrap();
    cluster.crash(2);
    cluster.run_for_ms(1_000);
    let seen = &cluster.seen[0];
    let failed = seen
        .iter()
        .position(|event| *event == Seen::QueryFailed(id, crashed))
        .expect("failure marker");
    let done = seen
        .iter()
        .position(|event| *event == Seen::QueryDone(id, false))
        .expect("done");
    assert!(failed < done);

    cluster.auto_reply = false;
    let now = cluster.now;
    let id = cluster
        .node(0)
        .query(
            now,
            group,
            spec(QueryTarget::All, QueryOrder::Fifo, 50),
            b"q",
        )
        .unwrap();
    cluster.run_for_ms(30);
    assert!(!cluster.seen[0].contains(&Seen::QueryDone(id, true)));
    cluster.run_for_ms(30);
    assert!(cluster.seen[0].contains(&Seen::QueryDone(id, true)));
    let Some(Seen::QueryRequest(query, _)) = cluster.seen[1]
        .iter()
        .rev()
        .find(|seen| matches!(seen, Seen::QueryRequest(..)))
        .cloned()
    else {
        panic!("node 1 got the request");
    };
    let now = cluster.now;
    assert_eq!(cluster.node(1).reply(now, query, b"late"), Ok(()));
    assert_eq!(
        cluster.node(1).reply(now, query, b"again"),
        Err(Error::UnknownQuery(query))
    );
}
