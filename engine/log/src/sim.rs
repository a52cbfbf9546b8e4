//! `SimDisk`: a deterministic in-memory disk holding one log, for the
//! simulator. It models what a crash does to a file: bytes covered by a
//! `sync` survive; the rest is lost, kept, cut, zero-filled or has a byte
//! flipped, by a seeded choice. Recovery is the file backend's own
//! (`recover_image`), run on the in-memory image.
//!
//! No dependency on the simulator: randomness comes from the `u64` seeds the
//! caller passes (derive them from the run's seed), so a run replays exactly.
//!
//! Invariants while up: `image[..synced_len]` is durable and ends on a record
//! boundary at `durable_lsn`; `image[synced_len..]` holds the frames of LSNs
//! `durable_lsn+1 ..= last_lsn`.

use std::io;
use std::path::{Path, PathBuf};

use crate::file::rewrite_image;
use crate::format::{self, Header, RECORD_LEN_MAX};
use crate::recovery::recover_image;
use crate::{LogError, LogStore, Lsn, Recovery};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DiskState {
    Up,
    /// A sync failed; every call fails until `recover`.
    Poisoned,
    /// Crashed; every call fails until `recover`.
    Crashed,
}

/// A simulated disk holding one log. See the module doc and
/// docs/durable-log.md.
#[derive(Clone, Debug)]
pub struct SimDisk {
    path: PathBuf,
    image: Vec<u8>,
    synced_len: usize,
    header: Header,
    durable_lsn: Lsn,
    last_lsn: Lsn,
    /// Seeded state for the file ids of rewrites.
    file_id_state: u64,
    state: DiskState,
    fail_next_sync: bool,
}

/// What a crash did to the unsynced part of the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashTail {
    /// Every unsynced byte was lost.
    Lost,
    /// Every unsynced byte reached the disk.
    Kept,
    /// A prefix of the unsynced bytes reached the disk, possibly cutting a record.
    Torn { kept_bytes: u64 },
    /// A prefix reached the disk, and the rest of the unsynced length reads
    /// as zeros (the file size was updated, the data was not).
    ZeroFilled { kept_bytes: u64, zeroed_bytes: u64 },
}

/// What [`SimDisk::crash`] did, for the simulator's trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrashReport {
    /// Unsynced bytes at the moment of the crash.
    pub unsynced_bytes: u64,
    pub tail: CrashTail,
    /// Byte offset in the image of a byte that was flipped, if any (always
    /// in the unsynced part that was kept).
    pub flipped_offset: Option<u64>,
}

impl SimDisk {
    /// A disk holding a freshly created, empty log (durable, as
    /// `FileLog::open` with `create_if_missing` leaves it). `seed` chooses
    /// the file ids.
    pub fn new(name: &str, seed: u64) -> SimDisk {
        let mut file_id_state = seed;
        let header = Header {
            file_id: splitmix64(&mut file_id_state),
            first_lsn: Lsn::FIRST,
        };
        let image = format::encode_header(&header).to_vec();
        SimDisk {
            path: sim_path(name),
            synced_len: image.len(),
            image,
            header,
            durable_lsn: Lsn::NONE,
            last_lsn: Lsn::NONE,
            file_id_state,
            state: DiskState::Up,
            fail_next_sync: false,
        }
    }

    /// A crashed disk holding `image` as its file (any bytes at all, for
    /// tests of recovery); call `recover` to read it.
    pub fn from_image(name: &str, image: Vec<u8>, seed: u64) -> SimDisk {
        let mut disk = SimDisk::new(name, seed);
        disk.synced_len = image.len();
        disk.image = image;
        disk.state = DiskState::Crashed;
        disk
    }

    /// The disk's name, as it appears in errors and truncation messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bytes of the file as they are now, synced or not.
    pub fn image(&self) -> &[u8] {
        &self.image
    }

    /// How many leading bytes of `image()` are durable.
    pub fn synced_len(&self) -> usize {
        self.synced_len
    }

    /// Makes the next `sync` fail with an I/O error and poison the log, as
    /// an `fdatasync` error would.
    pub fn fail_next_sync(&mut self) {
        self.fail_next_sync = true;
    }

    /// Crashes the machine: synced bytes survive; the unsynced ones are, by
    /// a choice drawn from `seed`, lost, kept, cut or zero-filled, and one
    /// kept unsynced byte may be flipped. The disk then refuses every call
    /// until `recover`.
    pub fn crash(&mut self, seed: u64) -> CrashReport {
        let mut rng = seed;
        let unsynced = self.image.len() - self.synced_len;
        let mut draw_up_to = |bound: usize| (splitmix64(&mut rng) % (bound as u64 + 1)) as usize;
        let choice = draw_up_to(3);
        let (kept, zeroed) = match choice {
            0 => (0, 0),
            1 => (unsynced, 0),
            2 => (draw_up_to(unsynced), 0),
            _ => {
                let kept = draw_up_to(unsynced);
                (kept, unsynced - kept)
            }
        };
        let tail = match choice {
            0 => CrashTail::Lost,
            1 => CrashTail::Kept,
            2 => CrashTail::Torn {
                kept_bytes: kept as u64,
            },
            _ => CrashTail::ZeroFilled {
                kept_bytes: kept as u64,
                zeroed_bytes: zeroed as u64,
            },
        };
        let flip = kept > 0 && draw_up_to(1) == 1;
        let flip_at = self.synced_len + draw_up_to(kept.saturating_sub(1));
        let flip_mask = 1 + draw_up_to(254) as u8;
        self.image.truncate(self.synced_len + kept);
        self.image.resize(self.synced_len + kept + zeroed, 0);
        let flipped_offset = flip.then(|| {
            self.image[flip_at] ^= flip_mask;
            flip_at as u64
        });
        assert_eq!(self.image.len(), self.synced_len + kept + zeroed);
        // What is on the platter now is all there is: a second crash before
        // recovery changes nothing.
        self.synced_len = self.image.len();
        self.state = DiskState::Crashed;
        CrashReport {
            unsynced_bytes: unsynced as u64,
            tail,
            flipped_offset,
        }
    }

    /// Restarts from what is on the disk: the same recovery as
    /// `FileLog::open` (scan, report, truncate to the last good record). On a
    /// disk that did not crash it is a process restart in which the OS kept
    /// every write. Errors (a damaged header) leave the disk as it was.
    pub fn recover(&mut self) -> Result<Recovery, LogError> {
        let recovered = recover_image(&self.path, &self.image, false)?;
        self.image.truncate(recovered.valid_len);
        self.synced_len = self.image.len();
        self.header = recovered.header;
        self.durable_lsn = recovered.recovery.last_lsn();
        self.last_lsn = self.durable_lsn;
        self.state = DiskState::Up;
        self.fail_next_sync = false;
        Ok(recovered.recovery)
    }

    fn check_usable(&self) -> Result<(), LogError> {
        let path = self.path.clone();
        match self.state {
            DiskState::Up => Ok(()),
            DiskState::Poisoned => Err(LogError::Poisoned { path }),
            DiskState::Crashed => Err(LogError::NeedsRecovery { path }),
        }
    }
}

impl LogStore for SimDisk {
    fn append(&mut self, record: &[u8]) -> Result<Lsn, LogError> {
        self.check_usable()?;
        if record.len() > RECORD_LEN_MAX {
            return Err(LogError::record_too_large(record.len()));
        }
        let lsn = self.last_lsn.next();
        format::encode_record(&mut self.image, self.header.file_id, lsn, record);
        self.last_lsn = lsn;
        Ok(lsn)
    }

    fn sync(&mut self) -> Result<Lsn, LogError> {
        self.check_usable()?;
        if self.fail_next_sync {
            self.fail_next_sync = false;
            self.state = DiskState::Poisoned;
            let source = io::Error::other("injected fdatasync failure");
            return Err(LogError::Io {
                path: self.path.clone(),
                op: "fdatasync",
                source,
            });
        }
        self.synced_len = self.image.len();
        self.durable_lsn = self.last_lsn;
        Ok(self.durable_lsn)
    }

    fn durable_lsn(&self) -> Lsn {
        self.durable_lsn
    }

    fn last_lsn(&self) -> Lsn {
        self.last_lsn
    }

    fn first_lsn(&self) -> Lsn {
        self.header.first_lsn
    }

    fn rewrite(&mut self, first_lsn: Lsn, records: &[&[u8]]) -> Result<(), LogError> {
        self.check_usable()?;
        let file_id = splitmix64(&mut self.file_id_state);
        let (header, image) = rewrite_image(first_lsn, records, file_id)?;
        self.header = header;
        self.synced_len = image.len();
        self.image = image;
        self.last_lsn = Lsn(first_lsn.0 + records.len() as u64 - 1);
        self.durable_lsn = self.last_lsn;
        Ok(())
    }
}

fn sim_path(name: &str) -> PathBuf {
    PathBuf::from(format!("sim-disk:{name}"))
}

/// splitmix64 (Steele, Lea, Flood): a full-period 64-bit generator, enough
/// for crash choices and file ids.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
