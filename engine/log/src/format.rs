//! The on-disk format (docs/durable-log.md), and the one scanner both backends
//! recover through.
//!
//! Everything here works on byte slices: no file, no clock. The scanner is
//! total: any `&[u8]` gives a header error or a [`Scan`], never a panic, and it
//! never allocates because of a length it read (it only records ranges of the
//! slice it was given).

use std::ops::Range;

use crate::Lsn;

/// The first eight bytes of every log file.
pub const MAGIC: [u8; 8] = *b"OSIRISLG";
/// The only format version this crate reads and writes.
pub const VERSION: u32 = 1;
/// Size of the file header in bytes.
pub const HEADER_LEN: usize = 40;
/// Size of a record's frame (length + checksum) in bytes.
pub const RECORD_FRAME_LEN: usize = 8;
/// Largest payload a record may have. A format constant: recovery calls any
/// larger length impossible, so it must not vary between writer and reader.
pub const RECORD_LEN_MAX: usize = 16 * 1024 * 1024;
/// Largest LSN a header may name as its first (leaves room to count records
/// without any overflow check mattering in practice).
pub const FIRST_LSN_MAX: u64 = 1 << 62;

const _: () = assert!(
    RECORD_LEN_MAX <= u32::MAX as usize,
    "the length field is a u32"
);
const _: () = assert!(HEADER_LEN % 8 == 0, "records start 8-byte aligned");

/// The decoded file header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Distinguishes this file from every other log file; mixed into every
    /// record checksum so stale records of another file never validate.
    pub file_id: u64,
    /// LSN of the first record in the file.
    pub first_lsn: Lsn,
}

/// Why a byte string is not a readable log header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than the magic, or the magic differs: not a log at all.
    NotALog,
    /// A log, but of a version this crate does not read.
    UnsupportedVersion { found: u32 },
    /// A log of our version whose header is damaged.
    BadHeader { reason: &'static str },
}

/// Why the scan stopped before the end of the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// The record runs past the end of the file: `record_bytes` were needed
    /// (frame, or frame + payload when the length was readable), only
    /// `available` were there.
    Torn { record_bytes: u64, available: u64 },
    /// The length field exceeds [`RECORD_LEN_MAX`].
    ImpossibleLength { length: u32 },
    /// The record's CRC32C does not match its contents.
    ChecksumMismatch { stored: u32, computed: u32 },
}

/// Where and why a scan stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset of the first record not accepted.
    pub offset: u64,
    pub reason: Corruption,
    /// Records after the damaged one that pass their checksum when the
    /// damaged record's length is followed (0 is what a crash produces).
    pub intact_records_after: u64,
}

/// The result of scanning a log image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scan {
    pub header: Header,
    /// Payload ranges of the accepted records, in order (LSNs from
    /// `header.first_lsn`).
    pub records: Vec<Range<usize>>,
    /// Length of the image up to the end of the last accepted record.
    pub valid_len: usize,
    /// `None` when the image ends exactly after the last accepted record.
    pub damage: Option<Damage>,
}

/// Encodes a header.
pub fn encode_header(header: &Header) -> [u8; HEADER_LEN] {
    assert!(header.first_lsn.0 >= 1 && header.first_lsn.0 <= FIRST_LSN_MAX);
    let mut bytes = [0u8; HEADER_LEN];
    bytes[0..8].copy_from_slice(&MAGIC);
    bytes[8..12].copy_from_slice(&VERSION.to_le_bytes());
    // 12..16 flags: zero.
    bytes[16..24].copy_from_slice(&header.file_id.to_le_bytes());
    bytes[24..32].copy_from_slice(&header.first_lsn.0.to_le_bytes());
    let crc = crc32c::crc32c(&bytes[0..32]);
    bytes[32..36].copy_from_slice(&crc.to_le_bytes());
    // 36..40 reserved: zero.
    debug_assert_eq!(decode_header(&bytes), Ok(*header));
    bytes
}

/// Decodes and checks a header, in the order that gives the most useful
/// error: magic, version, then the rest.
pub fn decode_header(bytes: &[u8]) -> Result<Header, HeaderError> {
    if bytes.len() < MAGIC.len() || bytes[0..8] != MAGIC {
        return Err(HeaderError::NotALog);
    }
    if bytes.len() < 12 {
        return Err(HeaderError::BadHeader {
            reason: "file ends inside the header",
        });
    }
    let version = read_u32(bytes, 8);
    if version != VERSION {
        return Err(HeaderError::UnsupportedVersion { found: version });
    }
    if bytes.len() < HEADER_LEN {
        return Err(HeaderError::BadHeader {
            reason: "file ends inside the header",
        });
    }
    if read_u32(bytes, 32) != crc32c::crc32c(&bytes[0..32]) {
        return Err(HeaderError::BadHeader {
            reason: "header checksum mismatch",
        });
    }
    if read_u32(bytes, 12) != 0 || read_u32(bytes, 36) != 0 {
        return Err(HeaderError::BadHeader {
            reason: "unknown flags or non-zero reserved field",
        });
    }
    let first_lsn = read_u64(bytes, 24);
    if first_lsn == 0 || first_lsn > FIRST_LSN_MAX {
        return Err(HeaderError::BadHeader {
            reason: "first LSN out of range",
        });
    }
    Ok(Header {
        file_id: read_u64(bytes, 16),
        first_lsn: Lsn(first_lsn),
    })
}

/// Appends one framed record to `out`. The caller has checked the length.
pub fn encode_record(out: &mut Vec<u8>, file_id: u64, lsn: Lsn, payload: &[u8]) {
    assert!(
        payload.len() <= RECORD_LEN_MAX,
        "caller checks the record length"
    );
    let start = out.len();
    let length = u32::try_from(payload.len()).expect("RECORD_LEN_MAX fits in u32");
    let crc = record_crc(file_id, lsn, length, payload);
    out.extend_from_slice(&length.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    debug_assert_eq!(out.len() - start, RECORD_FRAME_LEN + payload.len());
}

fn record_crc(file_id: u64, lsn: Lsn, length: u32, payload: &[u8]) -> u32 {
    let mut prefix = [0u8; 20];
    prefix[0..8].copy_from_slice(&file_id.to_le_bytes());
    prefix[8..16].copy_from_slice(&lsn.0.to_le_bytes());
    prefix[16..20].copy_from_slice(&length.to_le_bytes());
    crc32c::crc32c_append(crc32c::crc32c(&prefix), payload)
}

/// One step of the scan: the record at `offset`, or why there is none.
enum Step {
    Record {
        payload: Range<usize>,
        next: usize,
    },
    End,
    Bad {
        reason: Corruption,
        next: Option<usize>,
    },
}

fn step(image: &[u8], offset: usize, file_id: u64, lsn: Lsn) -> Step {
    let available = image.len() - offset;
    if available == 0 {
        return Step::End;
    }
    if available < RECORD_FRAME_LEN {
        let reason = Corruption::Torn {
            record_bytes: RECORD_FRAME_LEN as u64,
            available: available as u64,
        };
        return Step::Bad { reason, next: None };
    }
    let length = read_u32(image, offset);
    let stored = read_u32(image, offset + 4);
    if length as usize > RECORD_LEN_MAX {
        return Step::Bad {
            reason: Corruption::ImpossibleLength { length },
            next: None,
        };
    }
    let record_bytes = RECORD_FRAME_LEN + length as usize;
    if available < record_bytes {
        let reason = Corruption::Torn {
            record_bytes: record_bytes as u64,
            available: available as u64,
        };
        return Step::Bad { reason, next: None };
    }
    let payload = offset + RECORD_FRAME_LEN..offset + record_bytes;
    let computed = record_crc(file_id, lsn, length, &image[payload.clone()]);
    let next = offset + record_bytes;
    if computed != stored {
        let reason = Corruption::ChecksumMismatch { stored, computed };
        return Step::Bad {
            reason,
            next: Some(next),
        };
    }
    Step::Record { payload, next }
}

/// Scans a whole log image: the header, then records until the end or the
/// first one that is torn, of impossible length or of bad checksum.
pub fn scan(image: &[u8]) -> Result<Scan, HeaderError> {
    let header = decode_header(image)?;
    let mut records = Vec::new();
    let mut offset = HEADER_LEN;
    let mut lsn = header.first_lsn;
    let damage = loop {
        match step(image, offset, header.file_id, lsn) {
            Step::Record { payload, next } => {
                records.push(payload);
                offset = next;
                lsn = lsn.next();
            }
            Step::End => break None,
            Step::Bad { reason, next } => {
                let intact_records_after = match next {
                    Some(next) => count_intact(image, next, header.file_id, lsn.next()),
                    None => 0,
                };
                break Some(Damage {
                    offset: offset as u64,
                    reason,
                    intact_records_after,
                });
            }
        }
    };
    assert!(offset <= image.len());
    assert_eq!(damage.is_none(), offset == image.len());
    Ok(Scan {
        header,
        records,
        valid_len: offset,
        damage,
    })
}

/// Counts the records that validate when the chain of lengths is followed
/// from `offset` (diagnosis only: they are dropped all the same).
fn count_intact(image: &[u8], mut offset: usize, file_id: u64, mut lsn: Lsn) -> u64 {
    let mut count = 0;
    while let Step::Record { next, .. } = step(image, offset, file_id, lsn) {
        count += 1;
        offset = next;
        lsn = lsn.next();
    }
    count
}

fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(records: &[&[u8]]) -> Vec<u8> {
        let header = Header {
            file_id: 7,
            first_lsn: Lsn(1),
        };
        let mut bytes = encode_header(&header).to_vec();
        for (index, record) in records.iter().enumerate() {
            encode_record(&mut bytes, 7, Lsn(1 + index as u64), record);
        }
        bytes
    }

    #[test]
    fn zero_filled_tail_is_a_checksum_mismatch() {
        let mut bytes = image(&[b"a"]);
        let valid_len = bytes.len();
        bytes.extend_from_slice(&[0u8; 64]);
        let scan = scan(&bytes).unwrap();
        assert_eq!(scan.records.len(), 1);
        assert_eq!(scan.valid_len, valid_len);
        let damage = scan.damage.unwrap();
        assert!(matches!(
            damage.reason,
            Corruption::ChecksumMismatch { stored: 0, .. }
        ));
    }

    #[test]
    fn record_of_another_file_or_position_does_not_validate() {
        let mut bytes = image(&[b"first"]);
        // A well-formed record, but framed for another file id.
        encode_record(&mut bytes, 8, Lsn(2), b"stale");
        assert_eq!(scan(&bytes).unwrap().records.len(), 1);
        // Well-formed for this file, but for another position.
        let mut bytes = image(&[b"first"]);
        encode_record(&mut bytes, 7, Lsn(5), b"moved");
        assert_eq!(scan(&bytes).unwrap().records.len(), 1);
    }

    #[test]
    fn header_errors_in_order() {
        assert_eq!(scan(b""), Err(HeaderError::NotALog));
        assert_eq!(scan(b"OSIRIS"), Err(HeaderError::NotALog));
        assert_eq!(scan(b"#!/bin/sh\necho hello\n"), Err(HeaderError::NotALog));
        let mut bytes = image(&[]);
        bytes[8] = 2;
        assert_eq!(
            scan(&bytes),
            Err(HeaderError::UnsupportedVersion { found: 2 })
        );
        let mut bytes = image(&[]);
        bytes[20] ^= 1;
        assert!(matches!(scan(&bytes), Err(HeaderError::BadHeader { .. })));
        let bytes = image(&[]);
        assert!(matches!(
            scan(&bytes[..39]),
            Err(HeaderError::BadHeader { .. })
        ));
    }

    #[test]
    fn impossible_length_stops_the_scan() {
        let mut bytes = image(&[b"ok"]);
        let offset = bytes.len();
        bytes.extend_from_slice(&u32::MAX.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 12]);
        let damage = scan(&bytes).unwrap().damage.unwrap();
        assert_eq!(damage.offset, offset as u64);
        assert_eq!(
            damage.reason,
            Corruption::ImpossibleLength { length: u32::MAX }
        );
    }
}
