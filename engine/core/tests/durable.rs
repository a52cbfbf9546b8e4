//! Durable SafeSend (docs/ordering.md, "Durable mode"): acks wait for the
//! host's "persisted", and one member's log rebuilds the delivered SafeSend
//! sequence. The "disk" here is a vector of records per node; the host
//! syncs them (or not) between steps.

mod common;

use common::{Cluster, Seen};
use osiris_core::durable::recover;
use osiris_core::{GroupId, InjectedBug, SendKind};

struct Disk {
    records: Vec<Vec<u8>>,
    /// Records of this node's lifetime made durable.
    synced: u64,
}

fn durable_cluster(bug: Option<InjectedBug>) -> (Cluster, GroupId, Vec<Disk>) {
    let mut cluster = Cluster::with_config(3, |config| config.inject_bug = bug);
    cluster.run_for_ms(500);
    let now = cluster.now;
    let group = GroupId::from_name("g");
    for index in 0..3 {
        cluster.node(index).set_durable(group);
        cluster.node(index).join_group(now, "g").unwrap();
    }
    let disks = (0..3)
        .map(|_| Disk {
            records: Vec::new(),
            synced: 0,
        })
        .collect();
    let mut setup = (cluster, group, disks);
    run(&mut setup, 500, &[true, true, true]);
    setup
}

/// Run `ms` milliseconds; after each, append every record and (per node,
/// if `sync`) make them durable.
fn run(setup: &mut (Cluster, GroupId, Vec<Disk>), ms: u64, sync: &[bool]) {
    let (cluster, group, disks) = setup;
    for _ in 0..ms {
        cluster.run_for_ms(1);
        for index in 0..3 {
            let node = cluster.node(index);
            while let Some((record_group, record)) = node.poll_persist() {
                assert_eq!(record_group, *group);
                disks[index].records.push(record);
            }
            if sync[index] {
                disks[index].synced = disks[index].records.len() as u64;
                node.persisted(*group, disks[index].synced);
            }
            cluster.pump(index);
        }
    }
}

fn safe_delivered(cluster: &Cluster, index: usize) -> Vec<Vec<u8>> {
    cluster.seen[index]
        .iter()
        .filter_map(|seen| match seen {
            Seen::Delivered(_, _, payload, SendKind::Safe) => Some(payload.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn safe_send_waits_for_every_members_fsync() {
    let mut setup = durable_cluster(None);
    let now = setup.0.now;
    let group = setup.1;
    setup.0.node(0).safe_send(now, group, b"durable").unwrap();
    // Node 2 receives but never syncs: nobody may deliver.
    run(&mut setup, 50, &[true, true, false]);
    for index in 0..3 {
        assert!(safe_delivered(&setup.0, index).is_empty(), "node {index}");
    }
    assert!(
        setup.2[2].records.len() as u64 > setup.2[2].synced,
        "node 2 holds an unsynced record"
    );
    run(&mut setup, 50, &[true, true, true]);
    for index in 0..3 {
        assert_eq!(safe_delivered(&setup.0, index), vec![b"durable".to_vec()]);
    }
}

#[test]
fn ack_before_persist_is_caught_by_the_same_scenario() {
    let mut setup = durable_cluster(Some(InjectedBug::AckBeforePersist));
    let now = setup.0.now;
    let group = setup.1;
    setup.0.node(0).safe_send(now, group, b"durable").unwrap();
    run(&mut setup, 50, &[true, true, false]);
    assert!(
        !safe_delivered(&setup.0, 0).is_empty(),
        "the bug delivers before node 2's fsync"
    );
}

#[test]
fn every_log_rebuilds_the_delivered_safe_sequence() {
    let mut setup = durable_cluster(None);
    let group = setup.1;
    for round in 0..40u8 {
        let now = setup.0.now;
        for index in 0..3 {
            let payload = [index as u8, round];
            let node = setup.0.node(index);
            match round % 3 {
                0 => node.safe_send(now, group, &payload).unwrap(),
                1 => node.ordered_send(now, group, &payload).unwrap(),
                _ => node.send(now, group, &payload).unwrap(),
            }
        }
        run(&mut setup, 1, &[true, round % 2 == 0, true]);
    }
    run(&mut setup, 100, &[true, true, true]);
    let delivered = safe_delivered(&setup.0, 0);
    assert_eq!(delivered.len(), 14 * 3);
    for index in 0..3 {
        assert_eq!(safe_delivered(&setup.0, index), delivered);
        let records = setup.2[index].records.iter().map(Vec::as_slice);
        let recovered: Vec<Vec<u8>> = recover(records)
            .unwrap()
            .into_iter()
            .map(|message| message.payload)
            .collect();
        assert_eq!(recovered, delivered, "log of node {index}");
    }
}

#[test]
fn a_log_cut_short_loses_only_what_nobody_could_deliver() {
    let mut setup = durable_cluster(None);
    let group = setup.1;
    for round in 0..10u8 {
        let now = setup.0.now;
        setup.0.node(1).safe_send(now, group, &[round]).unwrap();
        run(&mut setup, 2, &[true, true, true]);
    }
    // Node 2 stops syncing; later sends cannot be delivered by anyone.
    for round in 10..20u8 {
        let now = setup.0.now;
        setup.0.node(1).safe_send(now, group, &[round]).unwrap();
        run(&mut setup, 2, &[true, true, false]);
    }
    let delivered = safe_delivered(&setup.0, 0);
    assert_eq!(delivered.len(), 10);
    for index in 0..3 {
        // What a crash leaves: the synced prefix.
        let disk = &setup.2[index];
        let records = disk.records[..disk.synced as usize]
            .iter()
            .map(Vec::as_slice);
        let recovered: Vec<Vec<u8>> = recover(records)
            .unwrap()
            .into_iter()
            .map(|message| message.payload)
            .collect();
        assert!(
            recovered.starts_with(&delivered),
            "node {index}: {recovered:?} lacks some of {delivered:?}"
        );
    }
}
