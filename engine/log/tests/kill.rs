//! A writer process killed with SIGKILL mid-stream: every LSN it reported as
//! synced must be in the recovered log, intact.
//!
//! The child is this very test binary, re-run with `OSIRIS_LOG_KILL_CHILD`
//! naming the log file: `child_writer` then appends and syncs in a loop and
//! prints `synced <lsn>` after each successful sync. Without the variable
//! `child_writer` does nothing.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::{payload, TempDir};
use osiris_log::{FileLog, LogOptions, LogStore, Lsn};

const CHILD_ENV: &str = "OSIRIS_LOG_KILL_CHILD";

fn record_len(lsn: u64) -> usize {
    // Varied sizes, some batches crossing page boundaries.
    (lsn as usize * 131) % 2000
}

#[test]
fn child_writer() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (mut log, _) = FileLog::open(&path, LogOptions::default()).expect("child: open");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    // Bounded: the parent kills us long before this ends.
    for batch in 0..100_000u64 {
        let mut last = Lsn::NONE;
        for _ in 0..=(batch % 4) {
            let lsn = log.last_lsn().next();
            last = log
                .append(&payload(lsn.0, record_len(lsn.0)))
                .expect("child: append");
        }
        // Unsynced records written to the kernel but never synced also exist
        // at the moment of the kill: the next batch's first append.
        let synced = log.sync().expect("child: sync");
        assert_eq!(synced, last);
        writeln!(out, "synced {}", synced.0).expect("child: stdout");
        out.flush().expect("child: flush");
    }
}

#[test]
fn sigkill_mid_stream_loses_no_synced_record() {
    let dir = TempDir::new("kill");
    let path = dir.join("killed.log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the child writer");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut reported = Vec::new();
    while reported.len() < 300 {
        let line = lines.next().expect("child ended early").unwrap();
        if let Some(lsn) = line.strip_prefix("synced ") {
            reported.push(lsn.parse::<u64>().unwrap());
        }
    }
    child.kill().expect("SIGKILL the child");
    // Whatever it printed before dying also counts as reported.
    for line in lines {
        if let Some(lsn) = line.unwrap().strip_prefix("synced ") {
            reported.push(lsn.parse::<u64>().unwrap());
        }
    }
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the child was killed, not finished: {status:?}"
    );

    let (_, recovery) = FileLog::open(&path, LogOptions::default()).expect("recover");
    let highest = *reported.iter().max().unwrap();
    assert!(
        recovery.last_lsn().0 >= highest,
        "child reported LSN {highest} synced, recovery has only up to {}",
        recovery.last_lsn()
    );
    for (lsn, record) in recovery.iter() {
        assert_eq!(
            record,
            payload(lsn.0, record_len(lsn.0)).as_slice(),
            "record {lsn} damaged"
        );
    }
    eprintln!(
        "killed after {} reported syncs; recovered {} records, tail {:?}",
        reported.len(),
        recovery.records.len(),
        recovery.tail
    );
}
