//! Node configuration. Every limit is named and checked by `validate`.

use std::time::Duration;

use crate::error::ConfigError;
use crate::id::{Incarnation, NodeId};

/// Protocol bugs that tests switch on to prove the simulator's checkers catch
/// them. Never set outside tests.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InjectedBug {
    /// The flush neither carries nor fetches messages a survivor misses.
    FlushSkipsRetransmission,
    /// A joiner delivers new-view messages before it loaded the state.
    DeliverBeforeStateLoad,
    /// CausalSend delivers without waiting for the causal predecessors.
    CausalIgnoresDeps,
    /// OrderedSend and SafeSend deliver on receipt, ignoring the sequencer.
    OrderedIgnoresSequencer,
    /// SafeSend delivers in order but without waiting for the acknowledgements.
    SafeSkipsAcks,
    /// A query never reports `QueryFailed` for a responder that left.
    QueryForgetsFailed,
    /// Durable SafeSend acknowledges what it received before the log has
    /// made it durable (ack before fsync).
    AckBeforePersist,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub node: NodeId,
    pub incarnation: Incarnation,
    /// How others reach this node; opaque to the core (the runtime's address).
    pub addr: String,
    /// Addresses of known domain members to join through.
    pub seeds: Vec<String>,
    /// Found a new domain instead of joining one. Exactly one node of a new
    /// domain does this, once.
    pub bootstrap: bool,
    /// How often a member tells every other member it is alive.
    pub heartbeat_period: Duration,
    /// Silence after which a member is suspected (and so excluded).
    pub suspect_timeout: Duration,
    /// How long a leader waits for promises or accepts before it suspects
    /// the members that did not answer.
    pub view_change_timeout: Duration,
    /// How often a joiner (or a member waiting for a group change) repeats
    /// its request.
    pub request_retry: Duration,
    /// How long a gap may stand before the receiver asks for a resend,
    /// and how long before it asks again.
    pub nak_delay: Duration,
    /// How often receive vectors (acks) go out while traffic is unstable.
    pub ack_period: Duration,
    /// Largest payload a single message may carry.
    pub payload_max: usize,
    /// Largest data frame the core builds; many messages share one frame up to it.
    pub frame_max: usize,
    /// Messages a sender may have unstable per group before it queues.
    pub send_window: u32,
    /// Bytes of its own messages a sender may have sent and not yet stable
    /// per group (at least one message always goes): with large messages
    /// the message window alone would let a sender overrun its receivers'
    /// socket buffers, and the losses would drown their heartbeats.
    pub send_window_bytes: usize,
    /// Messages a sender may queue behind a full window before `send` fails.
    pub send_queue_max: usize,
    /// Bytes a sender may queue untransmitted per group before `send`
    /// fails (at least one message is always taken): with large messages
    /// the message count alone would let gigabytes queue up.
    pub send_queue_bytes_max: usize,
    /// Bytes per state-transfer chunk.
    pub state_chunk_bytes: usize,
    /// Acknowledgements a SafeSend message needs before delivery: None =
    /// every member of the view (uniform as long as one member survives);
    /// Some(k) = any k members (uniform only if one of those k survives).
    pub safe_quorum: Option<u32>,
    /// Rejoin as a new incarnation on learning of an exclusion (else stop).
    pub rejoin_on_exclusion: bool,
    /// Seed for the core's only randomness: retry jitter.
    pub seed: u64,
    #[doc(hidden)]
    pub inject_bug: Option<InjectedBug>,
}

/// Bytes a frame needs beyond its payload: the 38-byte header plus the
/// largest sub-message framing (a state chunk: tag, 5-byte length, 24 bytes
/// of fields). Payloads and chunks must fit a frame with this overhead.
pub const FRAME_OVERHEAD_MAX: usize = 72;

impl Config {
    pub fn new(node: u32, addr: impl Into<String>) -> Config {
        Config {
            node: NodeId(node),
            incarnation: Incarnation(1),
            addr: addr.into(),
            seeds: Vec::new(),
            bootstrap: false,
            heartbeat_period: Duration::from_millis(20),
            suspect_timeout: Duration::from_millis(200),
            view_change_timeout: Duration::from_millis(200),
            request_retry: Duration::from_millis(100),
            nak_delay: Duration::from_millis(5),
            ack_period: Duration::from_millis(5),
            payload_max: 8 * 1024,
            frame_max: 60 * 1024,
            send_window: 1024,
            send_window_bytes: 1 << 20,
            send_queue_max: 4096,
            send_queue_bytes_max: 4 << 20,
            state_chunk_bytes: 16 * 1024,
            safe_quorum: None,
            rejoin_on_exclusion: true,
            seed: 0,
            inject_bug: None,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |field: &'static str, reason: &'static str| Err(ConfigError { field, reason });
        if self.heartbeat_period.is_zero() {
            return invalid("heartbeat_period", "must be positive");
        }
        if self.suspect_timeout < self.heartbeat_period * 2 {
            return invalid("suspect_timeout", "must be at least two heartbeat periods");
        }
        if self.view_change_timeout.is_zero() || self.request_retry.is_zero() {
            return invalid("view_change_timeout", "timeouts must be positive");
        }
        if self.nak_delay.is_zero() || self.ack_period.is_zero() {
            return invalid("nak_delay", "timeouts must be positive");
        }
        if self.addr.len() > crate::wire::ADDR_MAX {
            return invalid("addr", "at most 255 bytes");
        }
        if self.payload_max == 0 {
            return invalid("payload_max", "must be positive");
        }
        if self.payload_max + FRAME_OVERHEAD_MAX > self.frame_max {
            return invalid(
                "payload_max",
                "a payload must fit one frame with its header",
            );
        }
        if self.safe_quorum == Some(0) {
            return invalid("safe_quorum", "must be positive");
        }
        if self.send_window == 0 {
            return invalid("send_window", "must be positive");
        }
        if self.send_window_bytes == 0 {
            return invalid("send_window_bytes", "must be positive");
        }
        if self.send_queue_bytes_max == 0 {
            return invalid("send_queue_bytes_max", "must be positive");
        }
        if self.state_chunk_bytes == 0
            || self.state_chunk_bytes + FRAME_OVERHEAD_MAX > self.frame_max
        {
            return invalid("state_chunk_bytes", "must be positive and fit one frame");
        }
        if !self.bootstrap && self.seeds.is_empty() {
            return invalid(
                "seeds",
                "a node that does not bootstrap needs at least one seed",
            );
        }
        if self.seeds.len() > usize::from(u16::MAX) {
            return invalid("seeds", "at most 65535 seeds");
        }
        Ok(())
    }
}
