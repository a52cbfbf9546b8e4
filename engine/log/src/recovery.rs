//! What opening a log gives back, and the recovery step both backends share:
//! scan the image, turn a header problem into a typed error, describe any
//! damaged tail. Truncating the medium is left to the backend.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::format::{self, Corruption, Header, HeaderError};
use crate::{LogError, Lsn};

/// The records found when a log was opened or recovered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// LSN of `records[0]` (and of the next append if `records` is empty).
    pub first_lsn: Lsn,
    /// Every record up to the first damaged one, in append order.
    pub records: Vec<Vec<u8>>,
    /// Whether anything was dropped after them.
    pub tail: Tail,
}

impl Recovery {
    /// LSN of the last recovered record (`first_lsn.prev()` if none).
    pub fn last_lsn(&self) -> Lsn {
        Lsn(self.first_lsn.0 + self.records.len() as u64 - 1)
    }

    /// The records with their LSNs.
    pub fn iter(&self) -> impl Iterator<Item = (Lsn, &[u8])> + '_ {
        let first = self.first_lsn.0;
        self.records
            .iter()
            .enumerate()
            .map(move |(index, record)| (Lsn(first + index as u64), record.as_slice()))
    }
}

/// How the log ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tail {
    /// The file ended exactly after the last record.
    Clean,
    /// Bytes after the last good record were dropped (and removed from the
    /// medium). Print it: its `Display` is the operator message.
    Truncated(Truncation),
}

/// A dropped tail: where, why, how much.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncation {
    /// The file (or the `SimDisk`'s name).
    pub path: PathBuf,
    /// Byte offset of the first record not accepted; the new file length.
    pub offset: u64,
    /// Bytes removed from `offset` to the old end of the file.
    pub dropped_bytes: u64,
    /// LSN the first dropped record would have had; the next append gets it.
    pub first_lost_lsn: Lsn,
    pub reason: Corruption,
    /// Records after the damaged one that still pass their checksum. Zero is
    /// what a crash leaves; more means damage a crash does not explain.
    pub intact_records_after: u64,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::Torn {
                record_bytes,
                available,
            } => write!(
                f,
                "torn record (needs {record_bytes} bytes, only {available} left in the file)"
            ),
            Corruption::ImpossibleLength { length } => write!(
                f,
                "impossible record length {length} (maximum {})",
                format::RECORD_LEN_MAX
            ),
            Corruption::ChecksumMismatch { stored, computed } => write!(
                f,
                "checksum mismatch (stored {stored:#010x}, computed {computed:#010x})"
            ),
        }
    }
}

impl fmt::Display for Truncation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "osiris-log: {}: dropped {} bytes from byte offset {} (records from LSN {} on): {}.",
            self.path.display(),
            self.dropped_bytes,
            self.offset,
            self.first_lost_lsn,
            self.reason
        )?;
        if self.intact_records_after == 0 {
            write!(f, " This is the expected result of a crash that interrupted writes that were never synced.")
        } else {
            write!(
                f,
                " WARNING: {} RECORDS AFTER THE DAMAGED ONE PASS THEIR CHECKSUMS: this is damage a crash does not explain \
                 (media error, a bug, or an edited file) and synced records may have been lost; they were dropped.",
                self.intact_records_after
            )
        }
    }
}

/// The outcome of recovering an image, before the backend truncates it.
pub(crate) struct Recovered {
    pub header: Header,
    pub recovery: Recovery,
    /// Length the medium must be truncated to (equal to the image length
    /// when the tail is clean).
    pub valid_len: usize,
}

/// Scans `image` (the whole log) and builds the [`Recovery`]. With
/// `refuse_mid_log_corruption`, damage followed by intact records is an error.
pub(crate) fn recover_image(
    path: &Path,
    image: &[u8],
    refuse_mid_log_corruption: bool,
) -> Result<Recovered, LogError> {
    let scan = format::scan(image).map_err(|error| header_error(path, error))?;
    let records: Vec<Vec<u8>> = scan
        .records
        .iter()
        .map(|range| image[range.clone()].to_vec())
        .collect();
    let first_lsn = scan.header.first_lsn;
    let tail = match scan.damage {
        None => Tail::Clean,
        Some(damage) => {
            let truncation = Truncation {
                path: path.to_path_buf(),
                offset: damage.offset,
                dropped_bytes: (image.len() - scan.valid_len) as u64,
                first_lost_lsn: Lsn(first_lsn.0 + records.len() as u64),
                reason: damage.reason,
                intact_records_after: damage.intact_records_after,
            };
            if refuse_mid_log_corruption && truncation.intact_records_after > 0 {
                return Err(LogError::MidLogCorruption(truncation));
            }
            Tail::Truncated(truncation)
        }
    };
    let recovery = Recovery {
        first_lsn,
        records,
        tail,
    };
    Ok(Recovered {
        header: scan.header,
        recovery,
        valid_len: scan.valid_len,
    })
}

fn header_error(path: &Path, error: HeaderError) -> LogError {
    let path = path.to_path_buf();
    match error {
        HeaderError::NotALog => LogError::NotALog { path },
        HeaderError::UnsupportedVersion { found } => LogError::UnsupportedVersion {
            path,
            found,
            supported: format::VERSION,
        },
        HeaderError::BadHeader { reason } => LogError::BadHeader { path, reason },
    }
}
