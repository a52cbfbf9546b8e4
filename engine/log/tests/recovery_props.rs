//! Property tests of recovery, through the public API.

use osiris_log::format::{self, Header, HEADER_LEN, RECORD_FRAME_LEN};
use osiris_log::{LogError, Lsn, SimDisk, Tail};
use proptest::prelude::*;

/// A valid log image holding `records`, and the offset each record ends at.
fn image(file_id: u64, first_lsn: u64, records: &[Vec<u8>]) -> (Vec<u8>, Vec<usize>) {
    let header = Header {
        file_id,
        first_lsn: Lsn(first_lsn),
    };
    let mut bytes = format::encode_header(&header).to_vec();
    let mut ends = Vec::new();
    for (index, record) in records.iter().enumerate() {
        format::encode_record(&mut bytes, file_id, Lsn(first_lsn + index as u64), record);
        ends.push(bytes.len());
    }
    (bytes, ends)
}

fn records_strategy() -> impl Strategy<Value = Vec<Vec<u8>>> {
    prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..12)
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = format::scan(&bytes);
        let _ = SimDisk::from_image("arbitrary", bytes, 1).recover();
    }

    /// Past a valid header the record scanner sees the arbitrary bytes.
    #[test]
    fn arbitrary_records_after_a_valid_header_never_panic(
        file_id in any::<u64>(),
        tail in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let (mut bytes, _) = image(file_id, 1, &[]);
        bytes.extend_from_slice(&tail);
        let mut disk = SimDisk::from_image("arbitrary", bytes.clone(), 1);
        let recovery = disk.recover().expect("the header is valid");
        // Whatever was accepted is a prefix of the image, and truncation
        // left exactly that prefix.
        prop_assert!(bytes.starts_with(disk.image()));
        let accepted: usize = recovery.records.iter().map(|r| RECORD_FRAME_LEN + r.len()).sum();
        prop_assert_eq!(disk.image().len(), HEADER_LEN + accepted);
        prop_assert_eq!(recovery.tail == Tail::Clean, disk.image().len() == bytes.len());
    }

    #[test]
    fn a_cut_at_any_offset_recovers_exactly_the_complete_records(
        file_id in any::<u64>(),
        first_lsn in 1u64..1_000_000,
        records in records_strategy(),
        cut_seed in any::<u64>(),
    ) {
        let (bytes, ends) = image(file_id, first_lsn, &records);
        let cut = (cut_seed % (bytes.len() as u64 + 1)) as usize;
        let result = SimDisk::from_image("cut", bytes[..cut].to_vec(), 1).recover();
        if cut < HEADER_LEN {
            let header_error = matches!(result, Err(LogError::NotALog { .. }) | Err(LogError::BadHeader { .. }));
            prop_assert!(header_error, "cut inside the header: {:?}", result);
        } else {
            let recovery = result.expect("header intact");
            let complete = ends.iter().filter(|end| **end <= cut).count();
            prop_assert_eq!(&recovery.records[..], &records[..complete]);
            prop_assert_eq!(recovery.first_lsn, Lsn(first_lsn));
            let boundary = cut == HEADER_LEN || ends.contains(&cut);
            match &recovery.tail {
                Tail::Clean => prop_assert!(boundary),
                Tail::Truncated(truncation) => {
                    prop_assert!(!boundary);
                    let good = if complete == 0 { HEADER_LEN } else { ends[complete - 1] };
                    prop_assert_eq!(truncation.offset, good as u64);
                    prop_assert_eq!(truncation.dropped_bytes, (cut - good) as u64);
                    prop_assert_eq!(truncation.first_lost_lsn, Lsn(first_lsn + complete as u64));
                }
            }
        }
    }

    #[test]
    fn any_damaged_byte_of_the_last_record_is_detected(
        file_id in any::<u64>(),
        mut records in records_strategy(),
        last in prop::collection::vec(any::<u8>(), 0..200),
        position_seed in any::<u64>(),
        mask in 1u8..=255,
    ) {
        records.push(last);
        let (mut bytes, ends) = image(file_id, 1, &records);
        let start = if ends.len() >= 2 { ends[ends.len() - 2] } else { HEADER_LEN };
        let position = start + (position_seed % (bytes.len() - start) as u64) as usize;
        bytes[position] ^= mask;
        let recovery = SimDisk::from_image("flip", bytes.clone(), 1).recover().unwrap();
        prop_assert_eq!(&recovery.records[..], &records[..records.len() - 1]);
        let Tail::Truncated(truncation) = &recovery.tail else {
            return Err(TestCaseError::fail("damage not detected"));
        };
        prop_assert_eq!(truncation.offset, start as u64);
        prop_assert_eq!(truncation.dropped_bytes, (bytes.len() - start) as u64);
    }

    /// A damaged payload byte in the middle: the records before it survive,
    /// and the ones after it are counted as intact (then dropped).
    #[test]
    fn damage_in_the_middle_counts_the_intact_records_after_it(
        records in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..100), 2..10),
        index_seed in any::<u64>(),
        position_seed in any::<u64>(),
        mask in 1u8..=255,
    ) {
        let (mut bytes, ends) = image(42, 1, &records);
        let damaged = (index_seed % records.len() as u64) as usize;
        let start = if damaged == 0 { HEADER_LEN } else { ends[damaged - 1] };
        let payload_len = records[damaged].len();
        let position = start + RECORD_FRAME_LEN + (position_seed % payload_len as u64) as usize;
        bytes[position] ^= mask;
        let recovery = SimDisk::from_image("middle", bytes, 1).recover().unwrap();
        prop_assert_eq!(&recovery.records[..], &records[..damaged]);
        let Tail::Truncated(truncation) = &recovery.tail else {
            return Err(TestCaseError::fail("damage not detected"));
        };
        prop_assert_eq!(truncation.intact_records_after, (records.len() - damaged - 1) as u64);
    }
}
