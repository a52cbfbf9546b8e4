//! Append rate of `FileLog`: one fsync per record against one fsync per batch
//! of 64 (group commit), for 64 B and 1 KiB records, in the same run.
//!
//! ```text
//! cargo run --release -p osiris-log --example append_rate -- [DIR] [SECONDS_PER_CELL]
//! ```
//!
//! DIR defaults to the system temp dir: put it on the disk you care about (a
//! tmpfs makes fsync free and the figures meaningless). Each cell runs for
//! SECONDS_PER_CELL (default 1) or 2,000,000 records, whichever comes first.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use osiris_log::{FileLog, LogOptions, LogStore};

const RECORD_SIZES: [usize; 2] = [64, 1024];
const BATCH: usize = 64;
const RECORDS_MAX: usize = 2_000_000;

struct Rate {
    records_per_second: f64,
    megabytes_per_second: f64,
}

/// Appends records of `size` bytes, syncing every `batch`, for `duration`.
fn measure(path: &Path, size: usize, batch: usize, duration: Duration) -> Rate {
    let _ = std::fs::remove_file(path);
    let (mut log, _) = FileLog::open(path, LogOptions::default()).expect("open the log");
    let record = vec![0xA5u8; size];
    let start = Instant::now();
    let mut records = 0;
    while records < RECORDS_MAX && start.elapsed() < duration {
        for _ in 0..batch {
            log.append(&record).expect("append");
        }
        log.sync().expect("sync");
        records += batch;
    }
    let seconds = start.elapsed().as_secs_f64();
    drop(log);
    std::fs::remove_file(path).expect("remove the log");
    Rate {
        records_per_second: records as f64 / seconds,
        megabytes_per_second: (records * size) as f64 / seconds / 1e6,
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let seconds: f64 = args
        .next()
        .map(|text| text.parse().expect("SECONDS_PER_CELL is a number"))
        .unwrap_or(1.0);
    let duration = Duration::from_secs_f64(seconds);
    let path = dir.join(format!("osiris-append-rate-{}.log", std::process::id()));
    println!("log file: {} ({seconds} s per cell)", path.display());
    println!();
    println!("| record | fsync per record            | fsync per {BATCH} records        | batch / single |");
    println!(
        "|-------:|----------------------------:|----------------------------:|---------------:|"
    );
    for size in RECORD_SIZES {
        let single = measure(&path, size, 1, duration);
        let batched = measure(&path, size, BATCH, duration);
        println!(
            "| {:>4} B | {:>9.0} rec/s {:>7.2} MB/s | {:>9.0} rec/s {:>7.2} MB/s | {:>13.1}x |",
            size,
            single.records_per_second,
            single.megabytes_per_second,
            batched.records_per_second,
            batched.megabytes_per_second,
            batched.records_per_second / single.records_per_second
        );
    }
}
