//! One sender's FIFO stream within a group epoch, as one member holds it.
//!
//! Invariants: `base <= stable + 1` and `base <= delivered + 1` (nothing
//! unstable or undelivered is dropped); `delivered <= hi`; every seq in
//! `base..=hi` has a message in `slots`; slots above `hi` may have holes;
//! `stable <= safe <= persisted <= hi` for the own stream's view of itself.
//!
//! A slot holds a *stored* data message: its tag byte (its kind), then its
//! body (`wire::DataView`).

use std::collections::VecDeque;

use crate::id::MemberId;
use crate::pool::BufPool;
use crate::time::Instant;

#[derive(Debug)]
pub(crate) struct Stream {
    pub(crate) sender: MemberId,
    /// Sequence of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<Vec<u8>>>,
    /// Every seq `<= hi` is held (or was, and is stable and delivered).
    pub(crate) hi: u64,
    pub(crate) delivered: u64,
    /// Every member of the view has received every seq `<= stable`.
    pub(crate) stable: u64,
    /// SafeSend's threshold: every seq `<= safe` was acknowledged by every
    /// member, or by `Config::safe_quorum` members.
    pub(crate) safe: u64,
    /// What this member acknowledges: every seq `<= persisted` is received
    /// and persisted (see `persist_received`).
    pub(crate) persisted: u64,
    /// Highest seq known to exist (seen in data or in the sender's ack).
    pub(crate) seen_max: u64,
    /// When to ask the sender for the gap above `hi`.
    pub(crate) nak_due: Option<Instant>,
    /// Durable mode (docs/ordering.md): `persisted` only advances when the
    /// host reports the log records durable.
    pub(crate) durable: bool,
    /// Durable mode: every seq `<= logged` was handed to the log (as a
    /// record, or skipped because its kind is not logged).
    pub(crate) logged: u64,
    /// Durable mode: (record number, seq) of the records not yet durable.
    pub(crate) unsynced: VecDeque<(u64, u64)>,
}

impl Stream {
    pub(crate) fn new(sender: MemberId) -> Stream {
        Stream {
            sender,
            base: 1,
            slots: VecDeque::new(),
            hi: 0,
            delivered: 0,
            stable: 0,
            safe: 0,
            persisted: 0,
            seen_max: 0,
            nak_due: None,
            durable: false,
            logged: 0,
            unsynced: VecDeque::new(),
        }
    }

    /// Store a received message. Returns true if it was new. Messages more
    /// than `span_max` past `base` are refused (the sender resends them).
    pub(crate) fn insert(
        &mut self,
        seq: u64,
        tag: u8,
        body: &[u8],
        pool: &mut BufPool,
        span_max: u64,
    ) -> bool {
        if seq <= self.hi || seq < self.base || seq - self.base >= span_max {
            return false;
        }
        let index = (seq - self.base) as usize;
        while self.slots.len() <= index {
            self.slots.push_back(None);
        }
        if self.slots[index].is_some() {
            return false;
        }
        self.slots[index] = Some(pool.tagged(tag, body));
        self.seen_max = self.seen_max.max(seq);
        while self.slot(self.hi + 1).is_some() {
            self.hi += 1;
        }
        self.persist_received();
        true
    }

    /// Append this member's own next message; returns its seq.
    pub(crate) fn push_own(&mut self, buf: Vec<u8>) -> u64 {
        debug_assert_eq!(self.base + self.slots.len() as u64, self.hi + 1);
        self.slots.push_back(Some(buf));
        self.hi += 1;
        self.seen_max = self.hi;
        self.persist_received();
        self.hi
    }

    /// The durability seam (docs/ordering.md): acks advertise `persisted`,
    /// so SafeSend delivery and stability wait for it. Without a log a
    /// received message is persisted at once; the durable mode replaces
    /// this step by an append whose fsync completion advances `persisted`.
    fn persist_received(&mut self) {
        if !self.durable {
            self.persisted = self.hi;
        }
    }

    /// Durable mode: recompute `persisted` from what was logged and what of
    /// it is durable (records up to `synced`).
    pub(crate) fn refresh_persisted(&mut self, synced: u64) {
        while self.unsynced.front().is_some_and(|(n, _)| *n <= synced) {
            self.unsynced.pop_front();
        }
        let persisted = self
            .unsynced
            .front()
            .map_or(self.logged, |(_, seq)| seq - 1);
        self.persisted = self.persisted.max(persisted);
    }

    fn slot(&self, seq: u64) -> Option<&Vec<u8>> {
        if seq < self.base {
            return None;
        }
        self.slots
            .get((seq - self.base) as usize)
            .and_then(Option::as_ref)
    }

    pub(crate) fn get(&self, seq: u64) -> Option<&[u8]> {
        self.slot(seq).map(Vec::as_slice)
    }

    /// Unstable messages held, in order (what a flush may need from us):
    /// seq and stored form.
    pub(crate) fn unstable(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        let base = self.base;
        let stable = self.stable;
        self.slots
            .iter()
            .enumerate()
            .filter_map(move |(i, slot)| slot.as_ref().map(|buf| (base + i as u64, buf.as_slice())))
            .filter(move |(seq, _)| *seq > stable)
    }

    /// Free messages that are both stable and delivered.
    pub(crate) fn collect(&mut self, pool: &mut BufPool) {
        let keep_from = self.stable.min(self.delivered) + 1;
        while self.base < keep_from {
            match self.slots.pop_front() {
                Some(Some(buf)) => pool.put(buf),
                Some(None) => {}
                None => {
                    self.base = keep_from;
                    break;
                }
            }
            self.base += 1;
        }
        debug_assert!(self.base <= self.stable.min(self.delivered) + 1);
    }

    /// Drop everything (end of epoch).
    pub(crate) fn release(self, pool: &mut BufPool) {
        for buf in self.slots.into_iter().flatten() {
            pool.put(buf);
        }
    }
}
