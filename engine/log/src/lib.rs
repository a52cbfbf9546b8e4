//! Osiris's durable log: the storage layer of SafeSend's durable mode.
//!
//! An append-only log of opaque records. Each record is framed with its
//! length and a CRC32C; `sync` makes everything appended so far durable with
//! one `fdatasync` (group commit); opening a log recovers the records and
//! detects, reports and truncates a torn or corrupt tail. Two backends
//! implement [`LogStore`]: [`FileLog`] for the real runtime and [`SimDisk`], a
//! deterministic in-memory disk for the simulator. Both recover through the
//! same scanner ([`format::scan`]), which works on a byte slice.
//!
//! The format, the guarantees, the limits and what the protocol must do are
//! in docs/durable-log.md.

#![forbid(unsafe_code)]

mod error;
mod file;
pub mod format;
mod recovery;
mod sim;

use std::fmt;

pub use error::LogError;
pub use file::{FileLog, LogOptions};
pub use format::Corruption;
pub use recovery::{Recovery, Tail, Truncation};
pub use sim::{CrashReport, CrashTail, SimDisk};

/// Log sequence number: the position of a record in a log. The first record
/// of a new log is `Lsn(1)`; `Lsn::NONE` (0) means "no record".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    /// "No record": the durable LSN of a log with nothing durable in it.
    pub const NONE: Lsn = Lsn(0);
    /// The LSN of the first record of a newly created log.
    pub const FIRST: Lsn = Lsn(1);

    /// The LSN after this one.
    #[must_use]
    pub fn next(self) -> Lsn {
        Lsn(self
            .0
            .checked_add(1)
            .expect("LSNs are bounded far below u64::MAX"))
    }

    /// The LSN before this one (`first_lsn.prev()` is the "nothing yet" mark
    /// of a log whose records start at `first_lsn`).
    #[must_use]
    pub fn prev(self) -> Lsn {
        Lsn(self.0.checked_sub(1).expect("Lsn::NONE has no predecessor"))
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the protocol needs from a log, whichever backend holds it.
///
/// Call order: `append` any number of records, then `sync` once to make them
/// all durable (group commit), then act on them (send the acks). Opening and
/// recovering are backend-specific ([`FileLog::open`], [`SimDisk::recover`]) and
/// return a [`Recovery`].
pub trait LogStore {
    /// Buffers `record` and returns its LSN. Not durable until `sync`.
    fn append(&mut self, record: &[u8]) -> Result<Lsn, LogError>;

    /// Makes every record appended so far durable (one write, one fsync) and
    /// returns the highest durable LSN: every record with an LSN up to and
    /// including it survives a crash. An error poisons the log.
    fn sync(&mut self) -> Result<Lsn, LogError>;

    /// The highest LSN known durable (`first_lsn().prev()` if none).
    fn durable_lsn(&self) -> Lsn;

    /// The highest LSN appended, durable or not (`first_lsn().prev()` if none).
    fn last_lsn(&self) -> Lsn;

    /// The LSN of the first record the log holds (or will hold).
    fn first_lsn(&self) -> Lsn;

    /// Atomically replaces the whole log with `records` at LSNs `first_lsn..`,
    /// durable on return. Unsynced appends are discarded. Use it to start a
    /// fresh log at a new view (`records` empty) or to drop a prefix.
    fn rewrite(&mut self, first_lsn: Lsn, records: &[&[u8]]) -> Result<(), LogError>;
}
