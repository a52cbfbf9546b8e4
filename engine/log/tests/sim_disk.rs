//! `SimDisk`: the crash model, determinism, and the properties the protocol
//! relies on (a synced record is never lost, no record is ever invented).

mod common;

use common::payload;
use osiris_log::{CrashTail, LogError, LogStore, Lsn, SimDisk, Tail};
use proptest::prelude::*;

#[test]
fn same_seed_same_crash() {
    let run = |seed| {
        let mut disk = SimDisk::new("n1", 7);
        for lsn in 1..=20 {
            disk.append(&payload(lsn, 50)).unwrap();
            if lsn == 10 {
                disk.sync().unwrap();
            }
        }
        let report = disk.crash(seed);
        (report, disk.image().to_vec(), disk.recover().unwrap())
    };
    assert_eq!(run(99), run(99));
    let outcomes: std::collections::HashSet<_> = (0..64)
        .map(|seed| std::mem::discriminant(&run(seed).0.tail))
        .collect();
    assert_eq!(outcomes.len(), 4, "every kind of crash is drawn");
}

#[test]
fn a_crashed_disk_refuses_calls_until_recovered() {
    let mut disk = SimDisk::new("n1", 1);
    disk.append(b"a").unwrap();
    disk.sync().unwrap();
    disk.crash(5);
    assert!(matches!(
        disk.append(b"b"),
        Err(LogError::NeedsRecovery { .. })
    ));
    assert!(matches!(disk.sync(), Err(LogError::NeedsRecovery { .. })));
    let recovery = disk.recover().unwrap();
    assert_eq!(recovery.records, vec![b"a".to_vec()]);
    assert_eq!(disk.append(b"b").unwrap(), Lsn(2));
}

#[test]
fn an_injected_sync_failure_poisons_until_recovery() {
    let mut disk = SimDisk::new("n1", 1);
    disk.append(b"a").unwrap();
    disk.fail_next_sync();
    let error = disk.sync().unwrap_err();
    assert!(
        matches!(
            error,
            LogError::Io {
                op: "fdatasync",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(disk.durable_lsn(), Lsn(0));
    assert!(matches!(disk.append(b"b"), Err(LogError::Poisoned { .. })));
    disk.crash(3);
    disk.recover().unwrap();
    assert!(disk.append(b"b").is_ok());
}

#[test]
fn rewrite_is_atomic_and_durable() {
    let mut disk = SimDisk::new("n1", 1);
    disk.append(b"old").unwrap();
    disk.sync().unwrap();
    disk.rewrite(Lsn(50), &[b"x", b"y"]).unwrap();
    disk.append(b"unsynced").unwrap();
    for seed in 0..32 {
        let mut copy = disk.clone();
        copy.crash(seed);
        let recovery = copy.recover().unwrap();
        assert_eq!(recovery.first_lsn, Lsn(50));
        assert_eq!(&recovery.records[..2], &[b"x".to_vec(), b"y".to_vec()]);
    }
}

#[test]
fn truncation_message_names_the_disk() {
    let mut disk = SimDisk::new("node-3", 1);
    disk.append(&[1u8; 100]).unwrap();
    // Find a seed that tears the record.
    let seed = (0..)
        .find(|seed| {
            let mut copy = disk.clone();
            matches!(
                copy.crash(*seed).tail,
                CrashTail::Torn { kept_bytes: 1..=50 }
            )
        })
        .unwrap();
    disk.crash(seed);
    let recovery = disk.recover().unwrap();
    let Tail::Truncated(truncation) = recovery.tail else {
        panic!("expected a truncation")
    };
    assert!(truncation
        .to_string()
        .starts_with("osiris-log: sim-disk:node-3: dropped "));
}

#[derive(Clone, Debug)]
enum Op {
    Append(usize),
    Sync,
    Crash(u64),
    Rewrite,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0usize..300).prop_map(Op::Append),
        3 => Just(Op::Sync),
        2 => any::<u64>().prop_map(Op::Crash),
        1 => Just(Op::Rewrite),
    ]
}

proptest! {
    /// The model: `appended[i]` is the record at LSN `first + i`. After any
    /// crash, recovery returns a prefix of `appended` that contains every
    /// record up to the last durable LSN.
    #[test]
    fn crashes_never_lose_a_synced_record_nor_invent_one(
        disk_seed in any::<u64>(),
        ops in prop::collection::vec(op_strategy(), 1..60),
    ) {
        let mut disk = SimDisk::new("model", disk_seed);
        let mut first = Lsn(1);
        let mut appended: Vec<Vec<u8>> = Vec::new();
        let mut durable = 0usize; // how many of `appended` are durable
        let mut counter = 0u64; // makes every record distinct
        for op in ops {
            match op {
                Op::Append(len) => {
                    counter += 1;
                    let record = payload(counter, len);
                    let lsn = disk.append(&record).unwrap();
                    prop_assert_eq!(lsn, Lsn(first.0 + appended.len() as u64));
                    appended.push(record);
                }
                Op::Sync => {
                    let lsn = disk.sync().unwrap();
                    durable = appended.len();
                    prop_assert_eq!(lsn, Lsn(first.0 + durable as u64 - 1));
                }
                Op::Crash(seed) => {
                    disk.crash(seed);
                    let recovery = disk.recover().unwrap();
                    prop_assert_eq!(recovery.first_lsn, first);
                    let count = recovery.records.len();
                    prop_assert!(count >= durable, "lost a synced record: {} < {}", count, durable);
                    prop_assert!(count <= appended.len(), "invented a record");
                    prop_assert_eq!(&recovery.records[..], &appended[..count]);
                    appended.truncate(count);
                    durable = count;
                    prop_assert_eq!(disk.durable_lsn(), recovery.last_lsn());
                }
                Op::Rewrite => {
                    // Keep the durable suffix from the middle on, at the same LSNs.
                    let drop = durable / 2;
                    let keep: Vec<&[u8]> = appended[drop..durable].iter().map(Vec::as_slice).collect();
                    first = Lsn(first.0 + drop as u64);
                    disk.rewrite(first, &keep).unwrap();
                    appended = appended[drop..durable].to_vec();
                    durable = appended.len();
                }
            }
        }
    }
}
