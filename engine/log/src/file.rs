//! The real backend: one file, buffered appends, `sync` = one write + one
//! `fdatasync`. Creation and rewrite go through a temporary file, fsync,
//! rename and a directory fsync, so a log file always has a whole header.
//!
//! Invariants: the file holds a valid header followed by `written_len - 40`
//! bytes of whole records; `pending` holds the frames of LSNs
//! `written_lsn+1 ..= last_lsn`; `durable_lsn <= written_lsn <= last_lsn`.
//! After any I/O error on the write path the log is poisoned and every call
//! fails: the on-disk state is unknown until the file is reopened.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::format::{self, Header, FIRST_LSN_MAX, RECORD_LEN_MAX};
use crate::recovery::recover_image;
use crate::{LogError, LogStore, Lsn, Recovery};

/// How to open a [`FileLog`].
#[derive(Clone, Debug)]
pub struct LogOptions {
    /// Create an empty log when the file does not exist (else: an `Io`
    /// error of kind `NotFound`). Default: true.
    pub create_if_missing: bool,
    /// Appended bytes buffered in memory before they are handed to the kernel
    /// (without fsync) to bound memory. Default: 1 MiB.
    pub write_buffer_bytes_max: usize,
    /// When a damaged record is followed by records that pass their
    /// checksum, fail with `LogError::MidLogCorruption` and change nothing,
    /// instead of truncating. Default: false (truncate and report).
    pub refuse_mid_log_corruption: bool,
}

impl Default for LogOptions {
    fn default() -> LogOptions {
        LogOptions {
            create_if_missing: true,
            write_buffer_bytes_max: 1024 * 1024,
            refuse_mid_log_corruption: false,
        }
    }
}

/// A durable log in one file. See docs/durable-log.md.
#[derive(Debug)]
pub struct FileLog {
    path: PathBuf,
    file: File,
    options: LogOptions,
    header: Header,
    /// Frames appended but not yet written to the file.
    pending: Vec<u8>,
    /// Bytes of the file (header included) handed to the kernel.
    written_len: u64,
    written_lsn: Lsn,
    durable_lsn: Lsn,
    last_lsn: Lsn,
    poisoned: bool,
}

impl FileLog {
    /// Opens (or creates) the log at `path` and recovers it: returns every
    /// intact record and, if the tail was torn or corrupt, truncates the file
    /// to the last good record (fsynced) and says so in `Recovery::tail`.
    pub fn open(
        path: impl AsRef<Path>,
        options: LogOptions,
    ) -> Result<(FileLog, Recovery), LogError> {
        let path = path.as_ref().to_path_buf();
        remove_stale_temp(&path)?;
        let exists = fs::symlink_metadata(&path).is_ok();
        if !exists && options.create_if_missing {
            let header = Header {
                file_id: new_file_id(),
                first_lsn: Lsn::FIRST,
            };
            install(&path, &format::encode_header(&header))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_failure(&path, "open"))?;
        let mut image = Vec::new();
        file.read_to_end(&mut image)
            .map_err(io_failure(&path, "read"))?;
        let recovered = recover_image(&path, &image, options.refuse_mid_log_corruption)?;
        if recovered.valid_len < image.len() {
            file.set_len(recovered.valid_len as u64)
                .map_err(io_failure(&path, "truncate"))?;
            file.sync_all()
                .map_err(io_failure(&path, "fsync after truncate"))?;
        }
        file.seek(SeekFrom::Start(recovered.valid_len as u64))
            .map_err(io_failure(&path, "seek"))?;
        let last_lsn = recovered.recovery.last_lsn();
        let log = FileLog {
            path,
            file,
            options,
            header: recovered.header,
            pending: Vec::new(),
            written_len: recovered.valid_len as u64,
            written_lsn: last_lsn,
            durable_lsn: last_lsn,
            last_lsn,
            poisoned: false,
        };
        Ok((log, recovered.recovery))
    }

    /// The log's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io_error(&mut self, op: &'static str, source: io::Error) -> LogError {
        self.poisoned = true;
        LogError::Io {
            path: self.path.clone(),
            op,
            source,
        }
    }

    fn check_usable(&self) -> Result<(), LogError> {
        if self.poisoned {
            return Err(LogError::Poisoned {
                path: self.path.clone(),
            });
        }
        Ok(())
    }

    /// Hands the buffered frames to the kernel (no fsync).
    fn write_pending(&mut self) -> Result<(), LogError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        if let Err(source) = self.file.write_all(&self.pending) {
            return Err(self.io_error("write", source));
        }
        self.written_len += self.pending.len() as u64;
        self.written_lsn = self.last_lsn;
        self.pending.clear();
        Ok(())
    }
}

impl LogStore for FileLog {
    fn append(&mut self, record: &[u8]) -> Result<Lsn, LogError> {
        self.check_usable()?;
        if record.len() > RECORD_LEN_MAX {
            return Err(LogError::record_too_large(record.len()));
        }
        let lsn = self.last_lsn.next();
        format::encode_record(&mut self.pending, self.header.file_id, lsn, record);
        self.last_lsn = lsn;
        if self.pending.len() >= self.options.write_buffer_bytes_max {
            self.write_pending()?;
        }
        Ok(lsn)
    }

    fn sync(&mut self) -> Result<Lsn, LogError> {
        self.check_usable()?;
        self.write_pending()?;
        if self.written_lsn > self.durable_lsn {
            if let Err(source) = self.file.sync_data() {
                return Err(self.io_error("fdatasync", source));
            }
            self.durable_lsn = self.written_lsn;
        }
        debug_assert!(self.pending.is_empty() && self.durable_lsn == self.last_lsn);
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
        let (header, image) = rewrite_image(first_lsn, records, new_file_id())?;
        // Until the new file is in place and reopened, a failure leaves the
        // log in an unknown state (old or new file): poison.
        self.poisoned = true;
        install(&self.path, &image)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(io_failure(&self.path, "open"))?;
        file.seek(SeekFrom::End(0))
            .map_err(io_failure(&self.path, "seek"))?;
        let last_lsn = Lsn(first_lsn.0 + records.len() as u64 - 1);
        self.file = file;
        self.header = header;
        self.pending.clear();
        self.written_len = image.len() as u64;
        self.written_lsn = last_lsn;
        self.durable_lsn = last_lsn;
        self.last_lsn = last_lsn;
        self.poisoned = false;
        Ok(())
    }
}

/// Checks a rewrite's arguments and builds the new log image. Shared with
/// `SimDisk` so both accept and refuse the same calls.
pub(crate) fn rewrite_image(
    first_lsn: Lsn,
    records: &[&[u8]],
    file_id: u64,
) -> Result<(Header, Vec<u8>), LogError> {
    if first_lsn.0 == 0 || first_lsn.0 > FIRST_LSN_MAX {
        return Err(LogError::InvalidFirstLsn { lsn: first_lsn.0 });
    }
    if let Some(record) = records.iter().find(|record| record.len() > RECORD_LEN_MAX) {
        return Err(LogError::record_too_large(record.len()));
    }
    let header = Header { file_id, first_lsn };
    let mut image = format::encode_header(&header).to_vec();
    let mut lsn = first_lsn;
    for record in records {
        format::encode_record(&mut image, file_id, lsn, record);
        lsn = lsn.next();
    }
    Ok((header, image))
}

/// Maps an `io::Error` of step `op` on `path` to a `LogError`.
fn io_failure(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> LogError {
    let path = path.to_path_buf();
    move |source| LogError::Io { path, op, source }
}

/// `<log file name>.osiris-tmp`, next to the log.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|name| name.to_os_string())
        .unwrap_or_default();
    name.push(".osiris-tmp");
    path.with_file_name(name)
}

fn remove_stale_temp(path: &Path) -> Result<(), LogError> {
    let temp = temp_path(path);
    match fs::remove_file(&temp) {
        Ok(()) => Ok(()),
        Err(source) if source.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(LogError::Io {
            path: temp,
            op: "remove stale temporary file",
            source,
        }),
    }
}

/// Atomically puts `image` at `path`: write a temporary file, fsync it,
/// rename it over `path`, fsync the directory.
fn install(path: &Path, image: &[u8]) -> Result<(), LogError> {
    let temp = temp_path(path);
    let io = io_failure;
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&temp)
        .map_err(io(&temp, "create"))?;
    file.write_all(image).map_err(io(&temp, "write"))?;
    file.sync_all().map_err(io(&temp, "fsync"))?;
    drop(file);
    fs::rename(&temp, path).map_err(io(path, "rename"))?;
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(directory)
        .and_then(|directory| directory.sync_all())
        .map_err(io(directory, "fsync directory"))
}

/// A file id that differs between files with overwhelming probability: the
/// clock, the process id and a counter, mixed. (Not deterministic, and need
/// not be: the simulator uses `SimDisk`.)
fn new_file_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_nanos() as u64)
        .unwrap_or(0);
    let mut state =
        nanos ^ (u64::from(std::process::id()) << 32) ^ COUNTER.fetch_add(1, Ordering::Relaxed);
    crate::sim::splitmix64(&mut state)
}
