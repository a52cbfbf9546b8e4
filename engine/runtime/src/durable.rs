//! Durable groups (docs/runtime.md, "Durable SafeSend"): one `FileLog` per
//! durable group under `durable_dir`. At join the log is recovered, the
//! recovered SafeSend sequence goes to the application, and the log is
//! rewritten to that sequence; while the group runs, every record the core
//! hands out is appended and the batch of a duty cycle is made durable with
//! one `fdatasync` (group commit) before the core may acknowledge it.
//!
//! State transfer carries the SafeSend history: a donor of a durable group
//! wraps the application's checkpoint in an envelope with the SafeSends it
//! delivered so far (read back from its log), and the joiner logs them
//! (`Node::log_loaded`), so every member's log alone holds everything the
//! group delivered.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use osiris_core::durable::{encode_recovered, recover, RecoveredMessage};
use osiris_core::{GroupId, MemberId, Node as CoreNode};
use osiris_log::{format, FileLog, LogOptions, LogStore, Tail};

use crate::shared::Shared;
use crate::RuntimeError;

/// Bytes of the group name kept in the file name (the id makes it unique).
const NAME_IN_FILE_MAX: usize = 48;

/// What the data plane asks of the log thread.
enum LogRequest {
    /// Take over a recovered log; `durable` is where it reports progress.
    Adopt {
        group: GroupId,
        log: FileLog,
        durable: Arc<AtomicU64>,
    },
    Append {
        group: GroupId,
        record: Vec<u8>,
    },
    Close {
        group: GroupId,
    },
}

/// One durable group's log, as the data plane tracks it.
#[derive(Debug)]
struct GroupLog {
    path: PathBuf,
    /// Records of this node's lifetime handed to the log thread (the core
    /// counts the same way).
    appended: u64,
    /// Records the log thread made durable (it only grows).
    durable: Arc<AtomicU64>,
    /// What the core was last told.
    synced: u64,
    /// SafeSends this member delivered, the recovered or loaded ones
    /// included: the prefix of its log's sequence that is history.
    delivered: usize,
}

/// The durable groups of one node, and the thread that writes their logs:
/// `fdatasync` takes from 0.1 to over 200 ms on a loaded machine, far too
/// long to block the data plane (heartbeats would stop and the node would
/// be suspected). The data plane hands records over and carries on; the
/// log thread appends whatever has queued up, syncs once per log (group
/// commit), publishes the durable count and wakes the data plane, which
/// then tells the core (whose acks advertise it).
#[derive(Debug, Default)]
pub(crate) struct DurableLogs {
    logs: HashMap<GroupId, GroupLog>,
    /// Records counted for groups left earlier in this node's lifetime: the
    /// core's count goes on if the group is joined again.
    closed: HashMap<GroupId, u64>,
    thread: Option<LogThread>,
}

#[derive(Debug)]
struct LogThread {
    /// Taken on drop: closing the channel ends the thread.
    requests: Option<mpsc::Sender<LogRequest>>,
    handle: Option<std::thread::JoinHandle<()>>,
    /// Set by the log thread when it made progress the data plane has not
    /// taken yet.
    progress: Arc<AtomicBool>,
    /// The first error of the log thread; the node must stop.
    failed: Arc<Mutex<Option<RuntimeError>>>,
}

impl std::fmt::Debug for LogRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogRequest::Adopt { group, .. } => write!(f, "Adopt({:#x})", group.0),
            LogRequest::Append { group, record } => {
                write!(f, "Append({:#x}, {} bytes)", group.0, record.len())
            }
            LogRequest::Close { group } => write!(f, "Close({:#x})", group.0),
        }
    }
}

/// The log file of a group: readable, and unique through the group id.
pub(crate) fn log_path(dir: &Path, group: GroupId, name: &str) -> PathBuf {
    let readable: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(NAME_IN_FILE_MAX)
        .collect();
    dir.join(format!("{readable}-{:016x}.osiris-log", group.0))
}

/// The log thread: block for a request, take every other queued one,
/// append, sync each log that grew, publish, wake the data plane.
fn log_thread(
    requests: mpsc::Receiver<LogRequest>,
    progress: Arc<AtomicBool>,
    failed: Arc<Mutex<Option<RuntimeError>>>,
    shared: Arc<Shared>,
) {
    let mut logs: HashMap<GroupId, (FileLog, u64, Arc<AtomicU64>)> = HashMap::new();
    while let Ok(first) = requests.recv() {
        let mut result = Ok(());
        for request in std::iter::once(first).chain(requests.try_iter()) {
            match request {
                LogRequest::Adopt {
                    group,
                    log,
                    durable,
                } => {
                    let counted = durable.load(Ordering::Acquire);
                    logs.insert(group, (log, counted, durable));
                }
                LogRequest::Append { group, record } => {
                    if let Some((log, appended, _)) = logs.get_mut(&group) {
                        if result.is_ok() {
                            result = log.append(&record).map(|_| ());
                            *appended += 1;
                        }
                    }
                }
                LogRequest::Close { group } => {
                    if let Some((mut log, _, _)) = logs.remove(&group) {
                        // Best effort: the group is left, nothing waits on it.
                        let _ = log.sync();
                    }
                }
            }
        }
        for (log, appended, durable) in logs.values_mut() {
            if result.is_ok() && *appended > durable.load(Ordering::Relaxed) {
                result = log.sync().map(|_| ());
                if result.is_ok() {
                    durable.store(*appended, Ordering::Release);
                    progress.store(true, Ordering::Release);
                }
            }
        }
        if let Err(error) = result {
            *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some(error.into());
            progress.store(true, Ordering::Release);
            shared.notify();
            // Never acknowledge anything after a failed write or sync.
            return;
        }
        shared.notify();
    }
}

impl LogThread {
    fn send(&self, request: LogRequest) -> Result<(), RuntimeError> {
        self.requests
            .as_ref()
            .and_then(|requests| requests.send(request).ok())
            .ok_or_else(|| RuntimeError::Durable("the log thread has stopped".into()))
    }
}

/// The node stops: the log thread finishes what it was given (appends and
/// syncs) and ends before the data plane does, so no write of ours reaches
/// a log file after `Node` is dropped.
impl Drop for LogThread {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl DurableLogs {
    pub fn is_empty(&self) -> bool {
        self.logs.is_empty()
    }

    /// Opens (creating if needed) and recovers the group's log, prints a
    /// truncated tail, rebuilds the SafeSend sequence it holds and rewrites
    /// the log to that sequence (durable on return), then hands the log to
    /// the log thread. The caller hands the sequence to the application,
    /// then marks the group durable and joins.
    pub fn open(
        &mut self,
        dir: &Path,
        group: GroupId,
        name: &str,
        shared: &Arc<Shared>,
    ) -> Result<Vec<RecoveredMessage>, RuntimeError> {
        if self.logs.contains_key(&group) {
            return Err(RuntimeError::Durable(format!(
                "group {name} already has its log open"
            )));
        }
        self.start_thread(shared)?;
        let path = log_path(dir, group, name);
        let (mut log, recovery) = FileLog::open(&path, LogOptions::default())?;
        if let Tail::Truncated(truncation) = &recovery.tail {
            // Operators must see this (docs/durable-log.md, "Recovery").
            eprintln!("osiris: {truncation}");
        }
        let recovered = recover(recovery.records.iter().map(Vec::as_slice)).map_err(|error| {
            RuntimeError::Durable(format!(
                "{}: a record passed its checksum but does not decode ({error}); \
                 the log was not written by this version of osiris",
                path.display()
            ))
        })?;
        let records: Vec<Vec<u8>> = recovered.iter().map(encode_recovered).collect();
        let slices: Vec<&[u8]> = records.iter().map(Vec::as_slice).collect();
        let next = recovery.last_lsn().next();
        log.rewrite(next, &slices)?;
        let counted = self.closed.remove(&group).unwrap_or(0);
        let durable = Arc::new(AtomicU64::new(counted));
        self.thread()?.send(LogRequest::Adopt {
            group,
            log,
            durable: Arc::clone(&durable),
        })?;
        self.logs.insert(
            group,
            GroupLog {
                path,
                appended: counted,
                durable,
                synced: counted,
                delivered: recovered.len(),
            },
        );
        Ok(recovered)
    }

    fn thread(&mut self) -> Result<&LogThread, RuntimeError> {
        self.thread
            .as_ref()
            .ok_or_else(|| RuntimeError::Durable("no log thread".into()))
    }

    /// Starts the log thread (once, at the first durable group).
    pub fn start_thread(&mut self, shared: &Arc<Shared>) -> Result<(), RuntimeError> {
        if self.thread.is_some() {
            return Ok(());
        }
        let (requests, receiver) = mpsc::channel();
        let progress = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(Mutex::new(None));
        let (thread_progress, thread_failed, shared) = (
            Arc::clone(&progress),
            Arc::clone(&failed),
            Arc::clone(shared),
        );
        let handle = std::thread::Builder::new()
            .name("osiris-log".into())
            .spawn(move || log_thread(receiver, thread_progress, thread_failed, shared))
            .map_err(|error| RuntimeError::Thread(format!("log thread: {error}")))?;
        self.thread = Some(LogThread {
            requests: Some(requests),
            handle: Some(handle),
            progress,
            failed,
        });
        Ok(())
    }

    /// Whether the log thread made progress the data plane has not taken
    /// (checked before the data plane blocks).
    pub fn has_progress(&self) -> bool {
        self.thread
            .as_ref()
            .is_some_and(|thread| thread.progress.load(Ordering::Acquire))
    }

    /// Hands every record the core has to the log thread, and tells the
    /// core what the log thread made durable since the last call. Returns
    /// the work done. An error of the log thread is fatal for the node:
    /// nothing more may be acknowledged.
    pub fn persist(&mut self, node: &mut CoreNode) -> Result<usize, RuntimeError> {
        let Some(thread) = &self.thread else {
            return Ok(0);
        };
        let mut work = 0;
        while let Some((group, record)) = node.poll_persist() {
            let Some(entry) = self.logs.get_mut(&group) else {
                return Err(RuntimeError::Durable(format!(
                    "the core logged group {:#x}, which has no log open",
                    group.0
                )));
            };
            thread.send(LogRequest::Append { group, record })?;
            entry.appended += 1;
            work += 1;
        }
        if thread.progress.swap(false, Ordering::AcqRel) {
            if let Some(error) = thread
                .failed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
            {
                return Err(error);
            }
            for (group, entry) in &mut self.logs {
                let durable = entry.durable.load(Ordering::Acquire);
                if durable > entry.synced {
                    entry.synced = durable;
                    node.persisted(*group, durable);
                    work += 1;
                }
            }
        }
        Ok(work)
    }

    /// Waits until every record handed out is durable and the core knows
    /// (output commit before a flush delivery, or before reading a log
    /// back). Blocks the data plane for about one fsync; rare.
    pub fn persist_all(&mut self, node: &mut CoreNode) -> Result<(), RuntimeError> {
        loop {
            self.persist(node)?;
            if self
                .logs
                .values()
                .all(|entry| entry.synced == entry.appended)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// A SafeSend of the group was delivered.
    pub fn count_delivery(&mut self, group: GroupId) {
        if let Some(entry) = self.logs.get_mut(&group) {
            entry.delivered += 1;
        }
    }

    pub fn is_durable(&self, group: GroupId) -> bool {
        self.logs.contains_key(&group)
    }

    /// The donor's side of a state transfer: the application's checkpoint
    /// wrapped with the SafeSends this member delivered, read back from its
    /// log (synced first). Reads the whole log: state transfers are rare.
    pub fn wrap_checkpoint(
        &mut self,
        node: &mut CoreNode,
        group: GroupId,
        checkpoint: &[u8],
    ) -> Result<Vec<u8>, RuntimeError> {
        self.persist_all(node)?;
        let Some(entry) = self.logs.get(&group) else {
            return Ok(checkpoint.to_vec());
        };
        let path = &entry.path;
        let image = std::fs::read(path).map_err(|error| {
            RuntimeError::Durable(format!("reading back {}: {error}", path.display()))
        })?;
        let scan = format::scan(&image).map_err(|error| {
            RuntimeError::Durable(format!("reading back {}: {error:?}", path.display()))
        })?;
        let records = scan.records.iter().map(|range| &image[range.clone()]);
        let mut sequence = recover(records).map_err(|error| {
            RuntimeError::Durable(format!("reading back {}: {error}", path.display()))
        })?;
        if sequence.len() < entry.delivered {
            return Err(RuntimeError::Durable(format!(
                "{} holds {} SafeSends but this member delivered {}",
                path.display(),
                sequence.len(),
                entry.delivered
            )));
        }
        sequence.truncate(entry.delivered);
        Ok(envelope::wrap(&sequence, checkpoint))
    }

    /// The joiner's side: logs the donor's SafeSend history and returns the
    /// application's part of the state. A state without the envelope (from
    /// a donor that is not durable) is returned whole, with a warning.
    pub fn unwrap_checkpoint<'a>(
        &mut self,
        node: &mut CoreNode,
        group: GroupId,
        state: &'a [u8],
    ) -> &'a [u8] {
        let Some(entry) = self.logs.get_mut(&group) else {
            return state;
        };
        match envelope::unwrap(state) {
            Some((sequence, checkpoint)) => {
                node.log_loaded(group, &sequence);
                entry.delivered = sequence.len();
                checkpoint
            }
            None => {
                eprintln!(
                    "osiris: the donor of durable group {:#x} sent no SafeSend history \
                     (is it durable?); this member's log lacks what was delivered before it joined",
                    group.0
                );
                state
            }
        }
    }

    /// The group left: close its log (its contents stay for the next join).
    pub fn close(&mut self, group: GroupId) {
        if let Some(entry) = self.logs.remove(&group) {
            self.closed.insert(group, entry.appended);
            if let Some(thread) = &self.thread {
                let _ = thread.send(LogRequest::Close { group });
            }
        }
    }
}

/// The durable checkpoint: `OSDURST1`, the count (u64), per message its
/// sender (node u32, incarnation u32), length (u32) and payload; then the
/// application's checkpoint. Little-endian.
mod envelope {
    use super::{MemberId, RecoveredMessage};

    const MAGIC: &[u8; 8] = b"OSDURST1";

    pub fn wrap(sequence: &[RecoveredMessage], checkpoint: &[u8]) -> Vec<u8> {
        let bytes: usize = sequence.iter().map(|m| 12 + m.payload.len()).sum();
        let mut out = Vec::with_capacity(16 + bytes + checkpoint.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(sequence.len() as u64).to_le_bytes());
        for message in sequence {
            out.extend_from_slice(&message.sender.node.0.to_le_bytes());
            out.extend_from_slice(&message.sender.incarnation.0.to_le_bytes());
            out.extend_from_slice(&(message.payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&message.payload);
        }
        out.extend_from_slice(checkpoint);
        out
    }

    fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if rest.len() < n {
            return None;
        }
        let (head, tail) = rest.split_at(n);
        *rest = tail;
        Some(head)
    }

    fn u32_at(rest: &mut &[u8]) -> Option<u32> {
        Some(u32::from_le_bytes(take(rest, 4)?.try_into().ok()?))
    }

    /// `None` for anything that is not a whole envelope (never panics).
    pub fn unwrap(state: &[u8]) -> Option<(Vec<RecoveredMessage>, &[u8])> {
        let mut rest = state;
        if take(&mut rest, 8)? != MAGIC {
            return None;
        }
        let count = u64::from_le_bytes(take(&mut rest, 8)?.try_into().ok()?);
        let mut sequence = Vec::new();
        for _ in 0..count {
            let node = u32_at(&mut rest)?;
            let incarnation = u32_at(&mut rest)?;
            let len = u32_at(&mut rest)? as usize;
            sequence.push(RecoveredMessage {
                sender: MemberId::new(node, incarnation),
                payload: take(&mut rest, len)?.to_vec(),
            });
        }
        Some((sequence, rest))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn an_envelope_round_trips_and_any_cut_is_refused() {
            let sequence = vec![
                RecoveredMessage {
                    sender: MemberId::new(1, 2),
                    payload: b"first".to_vec(),
                },
                RecoveredMessage {
                    sender: MemberId::new(3, 1),
                    payload: Vec::new(),
                },
            ];
            let wrapped = wrap(&sequence, b"app state");
            assert_eq!(unwrap(&wrapped), Some((sequence, &b"app state"[..])));
            // Every cut inside the history is refused; cuts after it only
            // shorten the application's part.
            let history_len = wrapped.len() - b"app state".len();
            for cut in 0..history_len {
                assert_eq!(unwrap(&wrapped[..cut]), None, "cut at {cut}");
            }
            assert_eq!(unwrap(b"plain application state"), None);
        }
    }
}
