//! The one error type of the crate.

use std::fmt;
use std::io;
use std::path::PathBuf;

use crate::format::{FIRST_LSN_MAX, RECORD_LEN_MAX};
use crate::Truncation;

/// Everything that can go wrong with a log. Each variant names the file (for a
/// `SimDisk`, its name) so the message alone tells an operator where to look.
#[derive(Debug)]
#[non_exhaustive]
pub enum LogError {
    /// A system call failed. `op` says which step ("open", "fdatasync", ...).
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
    /// The file does not start with the log magic: it is not a log (an empty
    /// file included). Nothing was changed.
    NotALog { path: PathBuf },
    /// A log written by a format version this build does not read.
    UnsupportedVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    /// A log of our version whose header is damaged; nothing was changed.
    BadHeader { path: PathBuf, reason: &'static str },
    /// `append` of a record longer than [`RECORD_LEN_MAX`].
    RecordTooLarge { len: usize, max: usize },
    /// `rewrite` with a first LSN outside `1..=FIRST_LSN_MAX`.
    InvalidFirstLsn { lsn: u64 },
    /// An earlier write or fsync failed, so what is on disk is unknown. Reopen
    /// (which recovers) to go on.
    Poisoned { path: PathBuf },
    /// Intact records follow a damaged one and the options ask to stop rather
    /// than truncate. Nothing was changed.
    MidLogCorruption(Truncation),
    /// A crashed `SimDisk` was used before `recover`.
    NeedsRecovery { path: PathBuf },
}

impl fmt::Display for LogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LogError::Io { path, op, source } => {
                write!(f, "osiris-log: {}: {op} failed: {source}", path.display())
            }
            LogError::NotALog { path } => write!(
                f,
                "osiris-log: {}: not an Osiris log (no OSIRISLG magic); refusing to use or change it",
                path.display()
            ),
            LogError::UnsupportedVersion { path, found, supported } => write!(
                f,
                "osiris-log: {}: log format version {found}, this build reads version {supported}",
                path.display()
            ),
            LogError::BadHeader { path, reason } => {
                write!(f, "osiris-log: {}: damaged log header: {reason}", path.display())
            }
            LogError::RecordTooLarge { len, max } => {
                write!(f, "osiris-log: record of {len} bytes exceeds the maximum of {max}")
            }
            LogError::InvalidFirstLsn { lsn } => {
                write!(f, "osiris-log: first LSN {lsn} outside 1..={FIRST_LSN_MAX}")
            }
            LogError::Poisoned { path } => write!(
                f,
                "osiris-log: {}: an earlier write or fsync failed; reopen the log to recover",
                path.display()
            ),
            LogError::MidLogCorruption(truncation) => {
                write!(f, "{truncation} Refused to truncate (refuse_mid_log_corruption is set).")
            }
            LogError::NeedsRecovery { path } => {
                write!(f, "osiris-log: {}: disk crashed; call recover() first", path.display())
            }
        }
    }
}

impl std::error::Error for LogError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LogError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl LogError {
    pub(crate) fn record_too_large(len: usize) -> LogError {
        LogError::RecordTooLarge {
            len,
            max: RECORD_LEN_MAX,
        }
    }
}
