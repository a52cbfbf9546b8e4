//! `FileLog` on real files in a temporary directory.

mod common;

use std::fs;

use common::{payload, TempDir};
use osiris_log::format::{HEADER_LEN, RECORD_FRAME_LEN};
use osiris_log::{Corruption, FileLog, LogError, LogOptions, LogStore, Lsn, Tail};

fn open(path: &std::path::Path) -> (FileLog, osiris_log::Recovery) {
    FileLog::open(path, LogOptions::default()).expect("open")
}

#[test]
fn round_trip_and_lsns_continue_after_reopen() {
    let dir = TempDir::new("round-trip");
    let path = dir.join("a.log");
    let (mut log, recovery) = open(&path);
    assert_eq!(recovery.records, Vec::<Vec<u8>>::new());
    assert_eq!(recovery.tail, Tail::Clean);
    assert_eq!(
        (log.first_lsn(), log.durable_lsn(), log.last_lsn()),
        (Lsn(1), Lsn(0), Lsn(0))
    );
    let records: Vec<Vec<u8>> = (1..=100)
        .map(|lsn| payload(lsn, (lsn as usize * 37) % 3000))
        .collect();
    for (index, record) in records.iter().enumerate() {
        assert_eq!(log.append(record).unwrap(), Lsn(index as u64 + 1));
    }
    assert_eq!(
        log.durable_lsn(),
        Lsn(0),
        "append alone makes nothing durable"
    );
    assert_eq!(log.sync().unwrap(), Lsn(100));
    assert_eq!(
        log.sync().unwrap(),
        Lsn(100),
        "a sync with nothing new is harmless"
    );
    assert_eq!(
        log.append(b"").unwrap(),
        Lsn(101),
        "empty records are allowed"
    );
    log.sync().unwrap();
    drop(log);

    let (mut log, recovery) = open(&path);
    assert_eq!(recovery.tail, Tail::Clean);
    assert_eq!(recovery.first_lsn, Lsn(1));
    assert_eq!(recovery.last_lsn(), Lsn(101));
    assert_eq!(&recovery.records[..100], &records[..]);
    assert_eq!(recovery.records[100], Vec::<u8>::new());
    assert_eq!(
        recovery.iter().nth(4),
        Some((Lsn(5), records[4].as_slice()))
    );
    assert_eq!(log.append(b"next").unwrap(), Lsn(102));
    assert_eq!(log.sync().unwrap(), Lsn(102));
}

#[test]
fn appends_without_sync_are_not_durable_and_not_flushed_on_drop() {
    let dir = TempDir::new("no-sync");
    let path = dir.join("a.log");
    let (mut log, _) = open(&path);
    log.append(b"synced").unwrap();
    log.sync().unwrap();
    log.append(b"never synced").unwrap();
    drop(log);
    let (_, recovery) = open(&path);
    assert_eq!(recovery.records, vec![b"synced".to_vec()]);
    assert_eq!(recovery.tail, Tail::Clean);
}

#[test]
fn write_buffer_limit_hands_bytes_to_the_kernel_before_sync() {
    let dir = TempDir::new("buffer");
    let path = dir.join("a.log");
    let options = LogOptions {
        write_buffer_bytes_max: 100,
        ..LogOptions::default()
    };
    let (mut log, _) = FileLog::open(&path, options).unwrap();
    log.append(&[7u8; 200]).unwrap();
    // Written (not synced): a process crash now would keep it.
    assert_eq!(
        fs::metadata(&path).unwrap().len() as usize,
        HEADER_LEN + RECORD_FRAME_LEN + 200
    );
    assert_eq!(log.durable_lsn(), Lsn(0));
    assert_eq!(log.sync().unwrap(), Lsn(1));
}

#[test]
fn torn_tail_is_reported_truncated_and_appends_after_it_are_sound() {
    let dir = TempDir::new("torn");
    let path = dir.join("a.log");
    let (mut log, _) = open(&path);
    for lsn in 1..=3 {
        log.append(&payload(lsn, 100)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let good_len = fs::metadata(&path).unwrap().len();
    // A fourth record cut in its payload, as a crash mid-write leaves it.
    let mut bytes = fs::read(&path).unwrap();
    let mut torn = Vec::new();
    osiris_log::format::encode_record(&mut torn, 0, Lsn(4), &payload(4, 100));
    bytes.extend_from_slice(&torn[..50]);
    fs::write(&path, &bytes).unwrap();

    let (mut log, recovery) = open(&path);
    assert_eq!(recovery.records.len(), 3);
    let Tail::Truncated(truncation) = &recovery.tail else {
        panic!("expected a truncation")
    };
    assert_eq!(truncation.offset, good_len);
    assert_eq!(truncation.dropped_bytes, 50);
    assert_eq!(truncation.first_lost_lsn, Lsn(4));
    assert_eq!(
        truncation.reason,
        Corruption::Torn {
            record_bytes: 108,
            available: 50
        }
    );
    assert_eq!(truncation.intact_records_after, 0);
    let message = truncation.to_string();
    for needle in [
        path.display().to_string(),
        format!("offset {good_len}"),
        "dropped 50 bytes".into(),
        "torn".into(),
    ] {
        assert!(message.contains(&needle), "{message:?} lacks {needle:?}");
    }
    assert_eq!(
        fs::metadata(&path).unwrap().len(),
        good_len,
        "physically truncated"
    );

    assert_eq!(log.append(&payload(4, 10)).unwrap(), Lsn(4));
    log.sync().unwrap();
    drop(log);
    let (_, recovery) = open(&path);
    assert_eq!(recovery.tail, Tail::Clean);
    assert_eq!(recovery.records.len(), 4);
    assert_eq!(recovery.records[3], payload(4, 10));
}

#[test]
fn damage_in_the_middle_is_reported_as_such_or_refused() {
    let dir = TempDir::new("middle");
    let path = dir.join("a.log");
    let (mut log, _) = open(&path);
    for lsn in 1..=5 {
        log.append(&payload(lsn, 64)).unwrap();
    }
    log.sync().unwrap();
    drop(log);
    let mut bytes = fs::read(&path).unwrap();
    let second_payload = HEADER_LEN + (RECORD_FRAME_LEN + 64) + RECORD_FRAME_LEN;
    bytes[second_payload + 3] ^= 0x40;
    fs::write(&path, &bytes).unwrap();

    let refuse = LogOptions {
        refuse_mid_log_corruption: true,
        ..LogOptions::default()
    };
    let error = FileLog::open(&path, refuse).unwrap_err();
    let LogError::MidLogCorruption(truncation) = &error else {
        panic!("{error:?}")
    };
    assert_eq!(truncation.intact_records_after, 3);
    assert!(error.to_string().contains("Refused to truncate"));
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing changed");

    let (_, recovery) = open(&path);
    assert_eq!(recovery.records.len(), 1);
    let Tail::Truncated(truncation) = &recovery.tail else {
        panic!("expected a truncation")
    };
    assert!(matches!(
        truncation.reason,
        Corruption::ChecksumMismatch { .. }
    ));
    assert_eq!(truncation.intact_records_after, 3);
    assert!(truncation
        .to_string()
        .contains("3 RECORDS AFTER THE DAMAGED ONE PASS THEIR CHECKSUMS"));
}

#[test]
fn a_file_that_is_not_a_log_is_an_error_and_left_alone() {
    let dir = TempDir::new("not-a-log");
    for (name, contents) in [
        ("empty", &b""[..]),
        ("text", &b"hello, I am a config file\n"[..]),
    ] {
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        let error = FileLog::open(&path, LogOptions::default()).unwrap_err();
        assert!(
            matches!(&error, LogError::NotALog { path: p } if *p == path),
            "{error:?}"
        );
        assert!(error.to_string().contains("not an Osiris log"));
        assert_eq!(fs::read(&path).unwrap(), contents);
    }
}

#[test]
fn newer_version_and_damaged_header_are_errors() {
    let dir = TempDir::new("header");
    let path = dir.join("a.log");
    drop(open(&path));
    let good = fs::read(&path).unwrap();
    let mut newer = good.clone();
    newer[8] = 9;
    fs::write(&path, &newer).unwrap();
    let error = FileLog::open(&path, LogOptions::default()).unwrap_err();
    assert!(
        matches!(
            error,
            LogError::UnsupportedVersion {
                found: 9,
                supported: 1,
                ..
            }
        ),
        "{error:?}"
    );
    let mut damaged = good.clone();
    damaged[17] ^= 1;
    fs::write(&path, &damaged).unwrap();
    let error = FileLog::open(&path, LogOptions::default()).unwrap_err();
    assert!(
        matches!(
            error,
            LogError::BadHeader {
                reason: "header checksum mismatch",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(fs::read(&path).unwrap(), damaged);
}

#[test]
fn missing_file_without_create_is_not_found() {
    let dir = TempDir::new("missing");
    let options = LogOptions {
        create_if_missing: false,
        ..LogOptions::default()
    };
    let error = FileLog::open(dir.join("absent.log"), options).unwrap_err();
    let LogError::Io {
        source, op: "open", ..
    } = &error
    else {
        panic!("{error:?}")
    };
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn oversized_record_is_refused_and_the_log_stays_usable() {
    let dir = TempDir::new("too-large");
    let (mut log, _) = open(&dir.join("a.log"));
    let huge = vec![0u8; osiris_log::format::RECORD_LEN_MAX + 1];
    assert!(matches!(
        log.append(&huge),
        Err(LogError::RecordTooLarge { .. })
    ));
    assert_eq!(log.append(b"fine").unwrap(), Lsn(1));
    assert_eq!(log.sync().unwrap(), Lsn(1));
}

#[test]
fn rewrite_replaces_the_log_atomically_and_lsns_follow_it() {
    let dir = TempDir::new("rewrite");
    let path = dir.join("a.log");
    let (mut log, _) = open(&path);
    for lsn in 1..=10 {
        log.append(&payload(lsn, 20)).unwrap();
    }
    log.sync().unwrap();
    log.append(b"unsynced, discarded by the rewrite").unwrap();
    let keep: Vec<Vec<u8>> = (8..=10).map(|lsn| payload(lsn, 20)).collect();
    let keep_refs: Vec<&[u8]> = keep.iter().map(Vec::as_slice).collect();
    log.rewrite(Lsn(8), &keep_refs).unwrap();
    assert_eq!(
        (log.first_lsn(), log.durable_lsn(), log.last_lsn()),
        (Lsn(8), Lsn(10), Lsn(10))
    );
    assert_eq!(log.append(b"eleven").unwrap(), Lsn(11));
    log.sync().unwrap();
    assert!(matches!(
        log.rewrite(Lsn(0), &[]),
        Err(LogError::InvalidFirstLsn { lsn: 0 })
    ));
    drop(log);
    assert!(!dir.join("a.log.osiris-tmp").exists());

    let (mut log, recovery) = open(&path);
    assert_eq!(recovery.tail, Tail::Clean);
    assert_eq!(recovery.first_lsn, Lsn(8));
    assert_eq!(recovery.records.len(), 4);
    assert_eq!(recovery.records[3], b"eleven");
    // A fresh log at a new view.
    log.rewrite(Lsn(1000), &[]).unwrap();
    drop(log);
    let (log, recovery) = open(&path);
    assert_eq!((recovery.first_lsn, recovery.records.len()), (Lsn(1000), 0));
    assert_eq!(log.durable_lsn(), Lsn(999));
}

#[test]
fn leftover_temporary_file_is_removed_on_open() {
    let dir = TempDir::new("leftover");
    let path = dir.join("a.log");
    drop(open(&path));
    let temp = dir.join("a.log.osiris-tmp");
    fs::write(&temp, b"half a rewrite").unwrap();
    let (_, recovery) = open(&path);
    assert_eq!(recovery.tail, Tail::Clean);
    assert!(!temp.exists());
}
