//! What application threads and the data-plane thread share: the submission
//! ring (hot: sends), the free-buffer ring that recycles send buffers, the
//! control channel (cold: join, leave, stats, shutdown), and the wake-up.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;
use osiris_core::{GroupId, MemberId, QueryRef, QuerySpec, SendKind};
use osiris_transport::Waker;

use crate::handlers::{GroupHandlers, QueryResult, RuntimeStats};
use crate::RuntimeError;

/// Work on its way to the data plane, in the order the application asked
/// for it. Sends, flushes, queries and replies share the ring so that a
/// flush or a FIFO query comes after the caller's earlier multicasts.
#[derive(Debug)]
pub(crate) struct Submission {
    pub group: GroupId,
    pub op: Op,
}

impl Submission {
    /// Payload bytes the data plane copies into the core to take this in.
    pub fn payload_len(&self) -> usize {
        match &self.op {
            Op::Send { buf, .. } | Op::Reply { buf, .. } => buf.len(),
            Op::Query(query) => query.payload.len(),
            Op::Flush { .. } => 0,
        }
    }
}

#[derive(Debug)]
pub(crate) enum Op {
    /// A multicast (or, with `to`, a point-to-point send); the payload sits
    /// in a buffer from the free ring, written in place by the application.
    Send {
        kind: SendKind,
        to: Option<MemberId>,
        buf: Vec<u8>,
    },
    Flush {
        reply: mpsc::Sender<Result<(), RuntimeError>>,
    },
    Query(Box<QueryOp>),
    Reply {
        query: QueryRef,
        buf: Vec<u8>,
    },
}

#[derive(Debug)]
pub(crate) struct QueryOp {
    pub spec: QuerySpec,
    pub payload: Vec<u8>,
    pub reply: mpsc::Sender<Result<QueryResult, RuntimeError>>,
}

/// Rare requests, each answered on its own channel.
pub(crate) enum Control {
    Join {
        name: String,
        handlers: GroupHandlers,
        reply: mpsc::Sender<Result<GroupId, RuntimeError>>,
    },
    Leave {
        group: GroupId,
        reply: mpsc::Sender<Result<(), RuntimeError>>,
    },
    Stats {
        reply: mpsc::Sender<RuntimeStats>,
    },
    Shutdown,
}

/// Shared by every handle of one node and its data-plane thread.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Sends from application threads (multi-producer, one consumer).
    pub submissions: ArrayQueue<Submission>,
    /// Buffers the data plane is done with, for the next sends to reuse.
    pub free: ArrayQueue<Vec<u8>>,
    pub control: mpsc::Sender<Control>,
    pub waker: Waker,
    /// Set by the data plane just before it blocks. Read by every sender
    /// after every push: on its own cache line, so the data plane's writes to
    /// its neighbours do not bounce the line senders read.
    pub sleeping: CachePadded<AtomicBool>,
    /// Set once the data plane has exited.
    pub stopped: AtomicBool,
    pub payload_max: usize,
    pub send_timeout: Duration,
}

impl Shared {
    /// After pushing work: wake the data plane if it is (about to be) blocked.
    /// Pairs with the fence in `prepare_to_sleep`: either the data plane sees
    /// the work, or this sees `sleeping` and wakes it.
    pub fn notify(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.waker.wake();
        }
    }

    /// Data plane: announce blocking; returns false if work arrived meanwhile.
    pub fn prepare_to_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if self.submissions.is_empty() {
            true
        } else {
            self.sleeping.store(false, Ordering::Relaxed);
            false
        }
    }

    pub fn woke(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
        self.waker.reset();
    }

    /// Sends a control request and wakes the data plane.
    pub fn control(&self, control: Control) -> Result<(), RuntimeError> {
        self.control
            .send(control)
            .map_err(|_| RuntimeError::Stopped)?;
        self.waker.wake();
        Ok(())
    }

    /// A buffer for the next send: recycled if one is free, else new.
    pub fn take_buffer(&self) -> Vec<u8> {
        let mut buf = self
            .free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.payload_max));
        buf.clear();
        buf
    }
}
