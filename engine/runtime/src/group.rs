//! Groups: `node.group("name")` gives a [`GroupBuilder`] to register the
//! handlers on, `join()` gives a [`Group`] to multicast in.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use osiris_core::durable::RecoveredMessage;
use osiris_core::{GroupId, GroupView, MemberId, QueryRef, QuerySpec, SendKind};

use crate::handlers::{GroupHandlers, Message, QueryRequest, QueryResult};
use crate::node::Node;
use crate::shared::{Control, Op, QueryOp, Submission};
use crate::RuntimeError;

/// A group being set up. Every handler runs on the node's data-plane thread
/// (see the `handlers` module): keep them short, never block in them.
pub struct GroupBuilder {
    node: Node,
    name: String,
    handlers: GroupHandlers,
}

impl std::fmt::Debug for GroupBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupBuilder")
            .field("name", &self.name)
            .field("handlers", &self.handlers)
            .finish_non_exhaustive()
    }
}

impl GroupBuilder {
    pub(crate) fn new(node: Node, name: &str) -> GroupBuilder {
        GroupBuilder {
            node,
            name: name.to_owned(),
            handlers: GroupHandlers::default(),
        }
    }

    /// Each new group view, identical at every member and in the same order.
    #[must_use]
    pub fn on_view(mut self, handler: impl FnMut(&GroupView) + Send + 'static) -> Self {
        self.handlers.view = Some(Box::new(handler));
        self
    }

    /// Each delivered multicast. The payload is borrowed for the call only.
    #[must_use]
    pub fn on_message(mut self, handler: impl FnMut(&Message<'_>) + Send + 'static) -> Self {
        self.handlers.message = Some(Box::new(handler));
        self
    }

    /// Answer a query: return the reply, or `None` to reply later with
    /// `Group::reply(request.handle, ..)` (from any thread).
    #[must_use]
    pub fn on_query(
        mut self,
        handler: impl FnMut(&QueryRequest<'_>) -> Option<Vec<u8>> + Send + 'static,
    ) -> Self {
        self.handlers.query = Some(Box::new(handler));
        self
    }

    /// Produce the group's state for a joiner. Called at the exact view
    /// boundary, on the oldest member; what it returns is what the joiner loads.
    #[must_use]
    pub fn on_checkpoint(mut self, handler: impl FnMut() -> Vec<u8> + Send + 'static) -> Self {
        self.handlers.checkpoint = Some(Box::new(handler));
        self
    }

    /// Load the state a donor produced. Called before any delivery in the
    /// group; not called when this node founds the group (no state exists).
    #[must_use]
    pub fn on_load(mut self, handler: impl FnMut(&[u8]) + Send + 'static) -> Self {
        self.handlers.load = Some(Box::new(handler));
        self
    }

    /// Durable SafeSend (docs/runtime.md, "Durable SafeSend"): this member
    /// logs every SafeSend (and its place in the order) in a file under the
    /// node's `durable_dir`, fsynced before it acknowledges, so a group
    /// restarted after every member failed loses no SafeSend any member
    /// delivered. At `join`, before any view or delivery, `on_recovered`
    /// gets the SafeSends recovered from this member's log, in delivery
    /// order (empty the first time): the application's initial state. A
    /// state transfer from a live donor (`on_load`) follows if the group is
    /// running, and supersedes it.
    #[must_use]
    pub fn durable(
        mut self,
        on_recovered: impl FnMut(&[RecoveredMessage]) + Send + 'static,
    ) -> Self {
        self.handlers.recovered = Some(Box::new(on_recovered));
        self
    }

    /// Joins (creating the group if it does not exist) and waits for the
    /// view that admits this node, at most `join_timeout`.
    ///
    /// # Errors
    /// `Core` (bad name, already joined), `Timeout`, `Stopped`; for a
    /// durable group also `Config` (no `durable_dir`), `Log` (the log could
    /// not be opened or rewritten) or `Durable` (it holds undecodable records).
    pub fn join(self) -> Result<Group, RuntimeError> {
        let (reply, answer) = mpsc::channel();
        let timeout = self.node.config().join_timeout;
        self.node.shared().control(Control::Join {
            name: self.name.clone(),
            handlers: self.handlers,
            reply,
        })?;
        let id = match answer.recv_timeout(timeout) {
            Ok(result) => result?,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                return Err(RuntimeError::Timeout("the view that admits this node"))
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return Err(RuntimeError::Stopped),
        };
        Ok(Group {
            node: self.node,
            id,
            name: self.name,
        })
    }
}

/// A joined group: multicast in it from any thread (clone it freely).
#[derive(Debug, Clone)]
pub struct Group {
    node: Node,
    id: GroupId,
    name: String,
}

impl Group {
    pub fn id(&self) -> GroupId {
        self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Send: FIFO multicast, reliable, in sender order, view-synchronous.
    /// Returns once the message is in the submission ring (it goes out on
    /// the next duty cycle); blocks while the ring is full (flow control).
    ///
    /// # Errors
    /// `PayloadTooLarge`, `Backpressure` after `send_timeout`, `Stopped`.
    pub fn send(&self, payload: &[u8]) -> Result<(), RuntimeError> {
        self.send_kind(SendKind::Fifo, payload)
    }

    /// CausalSend: delivered after every message its sender had delivered
    /// when it sent (vector timestamps per view).
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn causal_send(&self, payload: &[u8]) -> Result<(), RuntimeError> {
        self.send_kind(SendKind::Causal, payload)
    }

    /// OrderedSend: one total order, at every member, over every
    /// OrderedSend and SafeSend of the group.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn ordered_send(&self, payload: &[u8]) -> Result<(), RuntimeError> {
        self.send_kind(SendKind::Ordered, payload)
    }

    /// SafeSend: in the OrderedSend order, and delivered only once every
    /// member (or `safe_quorum`) holds it (uniform agreement).
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn safe_send(&self, payload: &[u8]) -> Result<(), RuntimeError> {
        self.send_kind(SendKind::Safe, payload)
    }

    /// A multicast of the given kind.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn send_kind(&self, kind: SendKind, payload: &[u8]) -> Result<(), RuntimeError> {
        self.send_kind_with(kind, payload.len(), |buf| buf.copy_from_slice(payload))
    }

    /// Zero-copy Send: `fill` writes the `len`-byte message straight into a
    /// recycled send buffer (no allocation in steady state).
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn send_with(&self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<(), RuntimeError> {
        self.send_kind_with(SendKind::Fifo, len, fill)
    }

    /// Zero-copy multicast of any kind.
    ///
    /// # Errors
    /// As for [`send`](Self::send).
    pub fn send_kind_with(
        &self,
        kind: SendKind,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), RuntimeError> {
        let buf = self.fill(len, fill)?;
        self.submit(Op::Send {
            kind,
            to: None,
            buf,
        })
    }

    /// Reliable FIFO point-to-point send to one member of the group, in
    /// order with this member's multicasts; the receiver's message handler
    /// sees it with `point_to_point` set.
    ///
    /// # Errors
    /// As for [`send`](Self::send); a non-member target is reported on the
    /// data plane's stderr (the view may change between call and send).
    pub fn send_to(&self, member: MemberId, payload: &[u8]) -> Result<(), RuntimeError> {
        let buf = self.fill(payload.len(), |buf| buf.copy_from_slice(payload))?;
        self.submit(Op::Send {
            kind: SendKind::Fifo,
            to: Some(member),
            buf,
        })
    }

    /// Flush: returns once every multicast this member sent before the call
    /// is stable (held by every member), at most `request_timeout`.
    ///
    /// # Errors
    /// `Timeout`, `Stopped`, `Interrupted` (excluded meanwhile).
    pub fn flush(&self) -> Result<(), RuntimeError> {
        let (reply, answer) = mpsc::channel();
        self.submit(Op::Flush { reply })?;
        wait_answer(&answer, self.node.config().request_timeout, "the flush")
    }

    /// Query: delivers `payload` to the members `spec.target` names, in FIFO
    /// or total order (`spec.order`), and waits for their replies; members
    /// that leave the view before replying are listed in `failed`. Returns
    /// after every responder answered or failed, or after `spec.timeout`.
    ///
    /// # Errors
    /// `PayloadTooLarge`, `Core` (a bad spec), `Stopped`, `Interrupted`.
    pub fn query(&self, spec: QuerySpec, payload: &[u8]) -> Result<QueryResult, RuntimeError> {
        let shared = self.node.shared();
        if payload.len() > shared.payload_max {
            return Err(RuntimeError::PayloadTooLarge {
                len: payload.len(),
                max: shared.payload_max,
            });
        }
        let (reply, answer) = mpsc::channel();
        self.submit(Op::Query(Box::new(QueryOp {
            spec,
            payload: payload.to_vec(),
            reply,
        })))?;
        // The core ends the query at its timeout; allow for the data plane.
        let patience = spec.timeout + self.node.config().request_timeout;
        wait_answer(&answer, patience, "the query's replies")
    }

    /// Replies to a query later (the query handler returned `None` and
    /// kept `handle`). From any thread.
    ///
    /// # Errors
    /// As for [`send`](Self::send); an unknown or finished query is reported
    /// on the data plane's stderr.
    pub fn reply(&self, handle: QueryRef, payload: &[u8]) -> Result<(), RuntimeError> {
        let buf = self.fill(payload.len(), |buf| buf.copy_from_slice(payload))?;
        self.submit(Op::Reply { query: handle, buf })
    }

    /// A recycled send buffer holding the `len` bytes `fill` wrote.
    fn fill(&self, len: usize, fill: impl FnOnce(&mut [u8])) -> Result<Vec<u8>, RuntimeError> {
        let shared = self.node.shared();
        if len > shared.payload_max {
            return Err(RuntimeError::PayloadTooLarge {
                len,
                max: shared.payload_max,
            });
        }
        if self.node.is_stopped() {
            return Err(RuntimeError::Stopped);
        }
        let mut buf = shared.take_buffer();
        buf.resize(len, 0);
        fill(&mut buf);
        Ok(buf)
    }

    /// Puts work into the submission ring, waiting while it is full.
    fn submit(&self, op: Op) -> Result<(), RuntimeError> {
        let shared = self.node.shared();
        let mut submission = Submission { group: self.id, op };
        let mut deadline = None;
        let mut spins = 0u32;
        loop {
            match shared.submissions.push(submission) {
                Ok(()) => {
                    shared.notify();
                    return Ok(());
                }
                Err(back) => submission = back,
            }
            // Full ring: the data plane is behind (or a member is slow).
            shared.notify();
            if self.node.is_stopped() {
                return Err(RuntimeError::Stopped);
            }
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
                continue;
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + shared.send_timeout);
            if Instant::now() >= deadline {
                return Err(RuntimeError::Backpressure);
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }

    /// Leaves the group and waits until the view without this node is agreed.
    ///
    /// # Errors
    /// `Core(NotJoined)`, `Timeout`, or `Stopped`.
    pub fn leave(self) -> Result<(), RuntimeError> {
        let (reply, answer) = mpsc::channel();
        self.node.shared().control(Control::Leave {
            group: self.id,
            reply,
        })?;
        wait_answer(
            &answer,
            self.node.config().request_timeout,
            "the group leave",
        )
    }
}

fn wait_answer<T>(
    answer: &mpsc::Receiver<Result<T, RuntimeError>>,
    timeout: Duration,
    what: &'static str,
) -> Result<T, RuntimeError> {
    match answer.recv_timeout(timeout) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(RuntimeError::Timeout(what)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(RuntimeError::Stopped),
    }
}
