//! Reassembly of fragmented frames, per (source address, message id), with
//! bounded memory and no clock: time comes in as a `now` argument.
//!
//! Invariants:
//! * At most `slots_max` reassemblies exist (filling or complete-undelivered).
//! * The reassembly buffers held here total at most about `memory_bytes_max`
//!   bytes of capacity (`held_bytes`), checked before any buffer grows.
//! * A slot's `buffer` always has `len() >= frame_len` while it is in use, and
//!   its length is the number of bytes ever initialised: a reused buffer is
//!   never zeroed again, so a lying fragment header costs at most one fill of
//!   fresh capacity, never repeated memsets.
//! * A filling reassembly holds `received` distinct fragments, marked in
//!   `seen`; it completes when `received == count`, and the fragments then
//!   tile `0..frame_len` exactly (the header checks guarantee it).
//! * Nothing here panics on input: every index is checked by the header
//!   decoder or bounded by `fragments_max`.
//!
//! Policy when full: a new reassembly evicts the oldest filling one (like IP
//! reassembly): lost fragments must not pin slots until their timeout. The
//! ids of completed, evicted and timed-out reassemblies are remembered in a
//! bounded ring so that their late or duplicate fragments are dropped instead
//! of starting a reassembly that can never finish.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{FragmentError, FragmentHeader, CHUNK_LEN_MIN};
use crate::error::{check_range, ConfigError};

/// Limits of a [`Reassembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReassemblyConfig {
    /// Reassemblies in progress (or complete and not yet delivered) at once.
    pub slots_max: usize,
    /// The largest frame accepted; also the largest a UDP transport sends.
    pub frame_len_max: usize,
    /// Capacity of all reassembly buffers together. At least `frame_len_max`.
    pub memory_bytes_max: usize,
    /// A reassembly not complete this long after its first fragment is dropped.
    pub timeout: Duration,
    /// How many finished or abandoned (source, message id) pairs are
    /// remembered to drop their duplicate or late fragments.
    pub recent_max: usize,
}

impl Default for ReassemblyConfig {
    fn default() -> Self {
        ReassemblyConfig {
            slots_max: 16,
            frame_len_max: 16 << 20,
            memory_bytes_max: 64 << 20,
            timeout: Duration::from_secs(2),
            recent_max: 256,
        }
    }
}

impl ReassemblyConfig {
    /// Bounds on `slots_max`.
    pub const SLOTS_MAX_RANGE: (usize, usize) = (1, 1024);
    /// Bounds on `frame_len_max`: at least two minimal chunks, at most 256 MiB
    /// (which keeps per-slot bookkeeping at 64 KiB).
    pub const FRAME_LEN_MAX_RANGE: (usize, usize) = (2 * CHUNK_LEN_MIN, 256 << 20);
    /// Bounds on `recent_max`.
    pub const RECENT_MAX_RANGE: (usize, usize) = (1, 65_536);

    /// Checks the limits.
    ///
    /// # Errors
    /// The first limit out of range, as a [`ConfigError`].
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_range(
            "reassembly.slots_max",
            self.slots_max,
            Self::SLOTS_MAX_RANGE,
        )?;
        check_range(
            "reassembly.frame_len_max",
            self.frame_len_max,
            Self::FRAME_LEN_MAX_RANGE,
        )?;
        check_range(
            "reassembly.recent_max",
            self.recent_max,
            Self::RECENT_MAX_RANGE,
        )?;
        if self.memory_bytes_max < self.frame_len_max {
            return Err(ConfigError::Inconsistent {
                rule: "reassembly.memory_bytes_max must be at least reassembly.frame_len_max",
            });
        }
        if self.timeout.is_zero() {
            return Err(ConfigError::Inconsistent {
                rule: "reassembly.timeout must not be zero",
            });
        }
        Ok(())
    }

    /// The most fragments a frame can have under these limits.
    fn fragments_max(&self) -> usize {
        self.frame_len_max.div_ceil(CHUNK_LEN_MIN)
    }
}

/// Counters of a [`Reassembler`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReassemblyStats {
    /// Fragments with a valid header.
    pub fragments_received: u64,
    /// Datagrams starting with the fragment magic whose header is invalid.
    pub fragments_malformed: u64,
    /// Fragments already held by their reassembly.
    pub fragments_duplicate: u64,
    /// Fragments of a frame recently completed, evicted or timed out.
    pub fragments_stale: u64,
    /// Fragments whose lengths or count disagree with their reassembly.
    pub fragments_inconsistent: u64,
    /// Fragments of a frame longer than `frame_len_max`.
    pub fragments_too_large: u64,
    /// Fragments dropped because no slot or memory could be found.
    pub fragments_no_room: u64,
    /// Frames that came as a single fragment (escaped frames).
    pub single_fragment_frames: u64,
    /// Reassemblies begun.
    pub reassemblies_started: u64,
    /// Frames reassembled whole.
    pub frames_reassembled: u64,
    /// Reassemblies dropped by the timeout.
    pub reassemblies_timed_out: u64,
    /// Reassemblies evicted to make room for a newer one.
    pub reassemblies_evicted: u64,
}

/// What became of an accepted fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// A whole frame in one fragment: the frame is the datagram from
    /// [`FRAGMENT_HEADER_LEN`](super::FRAGMENT_HEADER_LEN) on.
    Single,
    /// Stored; the frame is not complete yet.
    Stored,
    /// This fragment completed a frame: take it with
    /// [`Reassembler::pop_complete`].
    Completed,
}

/// Why a fragment was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// The header is invalid.
    Malformed(FragmentError),
    /// The frame is longer than `frame_len_max`.
    TooLarge,
    /// Lengths or count disagree with the reassembly of the same id.
    Inconsistent,
    /// This fragment is already held.
    Duplicate,
    /// Its frame was recently completed, evicted or timed out.
    Stale,
    /// No slot or memory (every slot holds a complete, undelivered frame).
    NoRoom,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Free,
    Filling,
    Complete,
}

#[derive(Debug)]
struct Slot {
    state: State,
    source: SocketAddr,
    message_id: u64,
    frame_len: u32,
    count: u32,
    chunk_len: u32,
    received: u32,
    started: Option<Instant>,
    seen: Box<[u64]>,
    buffer: Vec<u8>,
}

impl Slot {
    fn matches(&self, source: SocketAddr, message_id: u64) -> bool {
        self.message_id == message_id && self.source == source
    }
}

/// Reassembles fragmented frames. See the module documentation for limits
/// and policy.
#[derive(Debug)]
pub struct Reassembler {
    config: ReassemblyConfig,
    slots: Box<[Slot]>,
    /// Complete slots in completion order.
    complete: VecDeque<usize>,
    recent: Box<[Option<(SocketAddr, u64)>]>,
    recent_next: usize,
    held_bytes: usize,
    stats: ReassemblyStats,
}

impl Reassembler {
    /// Makes a reassembler; allocates its bookkeeping (not its buffers, which
    /// grow on first use and are then kept).
    ///
    /// # Errors
    /// If `config` does not validate.
    pub fn new(config: ReassemblyConfig) -> Result<Reassembler, ConfigError> {
        config.validate()?;
        let words = config.fragments_max().div_ceil(64);
        let unspecified = SocketAddr::from(([0, 0, 0, 0], 0));
        let slots = (0..config.slots_max)
            .map(|_| Slot {
                state: State::Free,
                source: unspecified,
                message_id: 0,
                frame_len: 0,
                count: 0,
                chunk_len: 0,
                received: 0,
                started: None,
                seen: vec![0u64; words].into_boxed_slice(),
                buffer: Vec::new(),
            })
            .collect();
        Ok(Reassembler {
            complete: VecDeque::with_capacity(config.slots_max),
            recent: vec![None; config.recent_max].into_boxed_slice(),
            recent_next: 0,
            held_bytes: 0,
            stats: ReassemblyStats::default(),
            slots,
            config,
        })
    }

    /// The limits.
    #[must_use]
    pub fn config(&self) -> &ReassemblyConfig {
        &self.config
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> &ReassemblyStats {
        &self.stats
    }

    /// Capacity of the buffers held, in bytes.
    #[must_use]
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Reassemblies filling now.
    #[must_use]
    pub fn filling(&self) -> usize {
        self.slots
            .iter()
            .filter(|slot| slot.state == State::Filling)
            .count()
    }

    /// Whether a complete frame waits for [`pop_complete`](Self::pop_complete).
    #[must_use]
    pub fn has_complete(&self) -> bool {
        !self.complete.is_empty()
    }

    /// Takes in one datagram that starts with the fragment magic.
    ///
    /// # Errors
    /// Why the fragment was dropped (also counted in [`stats`](Self::stats)).
    pub fn accept(
        &mut self,
        now: Instant,
        source: SocketAddr,
        datagram: &[u8],
    ) -> Result<Accepted, Rejected> {
        let (header, payload) = match FragmentHeader::decode(datagram) {
            Ok(decoded) => decoded,
            Err(error) => {
                self.stats.fragments_malformed += 1;
                return Err(Rejected::Malformed(error));
            }
        };
        self.stats.fragments_received += 1;
        if header.count == 1 {
            self.stats.single_fragment_frames += 1;
            return Ok(Accepted::Single);
        }
        if header.frame_len as usize > self.config.frame_len_max {
            self.stats.fragments_too_large += 1;
            return Err(Rejected::TooLarge);
        }
        let found = self.slots.iter().position(|slot| {
            slot.state == State::Filling && slot.matches(source, header.message_id)
        });
        let index = match found {
            Some(index) => index,
            None => self.begin(now, source, &header)?,
        };
        self.store(index, &header, payload)
    }

    /// Starts a reassembly for `header`'s frame; returns its slot.
    fn begin(
        &mut self,
        now: Instant,
        source: SocketAddr,
        header: &FragmentHeader,
    ) -> Result<usize, Rejected> {
        let key = Some((source, header.message_id));
        if self.recent.contains(&key) {
            self.stats.fragments_stale += 1;
            return Err(Rejected::Stale);
        }
        let frame_len = header.frame_len as usize;
        let Some(index) = self.claim(frame_len) else {
            self.stats.fragments_no_room += 1;
            return Err(Rejected::NoRoom);
        };
        let slot = &mut self.slots[index];
        debug_assert!(slot.state == State::Free && slot.buffer.len() >= frame_len);
        slot.state = State::Filling;
        slot.source = source;
        slot.message_id = header.message_id;
        slot.frame_len = header.frame_len;
        slot.count = header.count;
        slot.chunk_len = header.chunk_len;
        slot.received = 0;
        slot.started = Some(now);
        let words = (header.count as usize).div_ceil(64);
        slot.seen[..words].fill(0);
        self.stats.reassemblies_started += 1;
        Ok(index)
    }

    /// Stores one fragment in the filling slot `index`.
    fn store(
        &mut self,
        index: usize,
        header: &FragmentHeader,
        payload: &[u8],
    ) -> Result<Accepted, Rejected> {
        let slot = &mut self.slots[index];
        if (slot.frame_len, slot.count, slot.chunk_len)
            != (header.frame_len, header.count, header.chunk_len)
        {
            self.stats.fragments_inconsistent += 1;
            return Err(Rejected::Inconsistent);
        }
        // The decoder checked index < count; count <= fragments_max because
        // frame_len <= frame_len_max and chunk_len >= CHUNK_LEN_MIN.
        let (word, bit) = (header.index as usize / 64, header.index % 64);
        let Some(seen) = slot.seen.get_mut(word) else {
            self.stats.fragments_too_large += 1;
            return Err(Rejected::TooLarge);
        };
        if *seen & (1 << bit) != 0 {
            self.stats.fragments_duplicate += 1;
            return Err(Rejected::Duplicate);
        }
        *seen |= 1 << bit;
        let range = header.payload_range();
        debug_assert_eq!(range.len(), payload.len());
        slot.buffer[range].copy_from_slice(payload);
        slot.received += 1;
        if slot.received < slot.count {
            return Ok(Accepted::Stored);
        }
        slot.state = State::Complete;
        slot.started = None;
        let key = (slot.source, slot.message_id);
        self.complete.push_back(index);
        self.remember(key);
        self.stats.frames_reassembled += 1;
        Ok(Accepted::Completed)
    }

    /// Finds a free slot whose buffer holds `frame_len` bytes, growing one
    /// within the memory limit or evicting the oldest filling reassembly.
    fn claim(&mut self, frame_len: usize) -> Option<usize> {
        // Each round returns or evicts one filling slot: at most slots_max + 1.
        for _ in 0..=self.slots.len() {
            let best_fit = self
                .free_slots()
                .filter(|&i| self.slots[i].buffer.capacity() >= frame_len)
                .min_by_key(|&i| self.slots[i].buffer.capacity());
            if let Some(index) = best_fit {
                self.initialise(index, frame_len);
                return Some(index);
            }
            if let Some(index) = self
                .free_slots()
                .max_by_key(|&i| self.slots[i].buffer.capacity())
            {
                if self.make_room(index, frame_len) {
                    self.initialise(index, frame_len);
                    return Some(index);
                }
            }
            let oldest = (0..self.slots.len())
                .filter(|&i| self.slots[i].state == State::Filling)
                .min_by_key(|&i| self.slots[i].started);
            let evicted = oldest?;
            self.release(evicted);
            self.stats.reassemblies_evicted += 1;
        }
        None
    }

    fn free_slots(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.slots.len()).filter(|&i| self.slots[i].state == State::Free)
    }

    /// Makes the memory limit allow growing slot `index` to `frame_len` bytes,
    /// dropping other free slots' buffers if needed. Returns whether it does.
    fn make_room(&mut self, index: usize, frame_len: usize) -> bool {
        let growth = frame_len.saturating_sub(self.slots[index].buffer.capacity());
        for other in 0..self.slots.len() {
            if self.held_bytes + growth <= self.config.memory_bytes_max {
                break;
            }
            if other != index && self.slots[other].state == State::Free {
                self.held_bytes -= self.slots[other].buffer.capacity();
                self.slots[other].buffer = Vec::new();
            }
        }
        self.held_bytes + growth <= self.config.memory_bytes_max
    }

    /// Makes slot `index`'s buffer at least `frame_len` bytes long, zeroing
    /// only bytes never initialised before.
    fn initialise(&mut self, index: usize, frame_len: usize) {
        let buffer = &mut self.slots[index].buffer;
        if buffer.len() < frame_len {
            let capacity_before = buffer.capacity();
            buffer.reserve_exact(frame_len - buffer.len());
            buffer.resize(frame_len, 0);
            self.held_bytes = self.held_bytes - capacity_before + buffer.capacity();
        }
        debug_assert!(self.slots[index].buffer.len() >= frame_len);
    }

    /// Frees a filling slot (evicted or timed out) and remembers its id.
    fn release(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        debug_assert_eq!(slot.state, State::Filling);
        slot.state = State::Free;
        slot.started = None;
        let key = (slot.source, slot.message_id);
        self.remember(key);
    }

    fn remember(&mut self, key: (SocketAddr, u64)) {
        self.recent[self.recent_next] = Some(key);
        self.recent_next = (self.recent_next + 1) % self.recent.len();
    }

    /// Drops reassemblies older than the timeout.
    pub fn expire(&mut self, now: Instant) {
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let expired = slot.state == State::Filling
                && slot.started.is_some_and(|started| {
                    now.saturating_duration_since(started) >= self.config.timeout
                });
            if expired {
                self.release(index);
                self.stats.reassemblies_timed_out += 1;
            }
        }
    }

    /// Hands over the oldest complete frame by exchanging buffers with `out`
    /// (no copy): `out` receives the frame (exactly its length), and the
    /// reassembler keeps `out`'s previous buffer for reuse. Returns the
    /// frame's source, or `None` if no frame is complete.
    pub fn pop_complete(&mut self, out: &mut Vec<u8>) -> Option<SocketAddr> {
        let index = self.complete.pop_front()?;
        let slot = &mut self.slots[index];
        debug_assert_eq!(slot.state, State::Complete);
        let capacity_before = slot.buffer.capacity();
        std::mem::swap(&mut slot.buffer, out);
        out.truncate(slot.frame_len as usize);
        slot.state = State::Free;
        self.held_bytes = self.held_bytes - capacity_before + slot.buffer.capacity();
        if self.held_bytes > self.config.memory_bytes_max {
            self.held_bytes -= slot.buffer.capacity();
            slot.buffer = Vec::new();
        }
        Some(slot.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fragment::FragmentPlan;

    fn source(port: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], port))
    }

    fn fragments(frame: &[u8], datagram_len_max: usize, id: u64) -> Vec<Vec<u8>> {
        FragmentPlan::for_frame(frame, datagram_len_max)
            .expect("fragmented")
            .datagrams(frame, id)
    }

    fn config() -> ReassemblyConfig {
        ReassemblyConfig {
            slots_max: 4,
            frame_len_max: 64 << 10,
            memory_bytes_max: 128 << 10,
            timeout: Duration::from_millis(100),
            recent_max: 8,
        }
    }

    #[test]
    fn out_of_order_with_duplicates() {
        let mut reassembler = Reassembler::new(config()).expect("config");
        let now = Instant::now();
        let frame: Vec<u8> = (0..5000u32).map(|i| (i * 7) as u8).collect();
        let mut parts = fragments(&frame, 1000, 9);
        parts.reverse();
        let last = parts.len() - 1;
        for (i, part) in parts.iter().enumerate() {
            let expected = if i == last {
                Accepted::Completed
            } else {
                Accepted::Stored
            };
            assert_eq!(reassembler.accept(now, source(1), part), Ok(expected));
            if i == 0 {
                assert_eq!(
                    reassembler.accept(now, source(1), part),
                    Err(Rejected::Duplicate)
                );
            }
        }
        let mut out = Vec::new();
        assert_eq!(reassembler.pop_complete(&mut out), Some(source(1)));
        assert_eq!(out, frame);
        assert_eq!(
            reassembler.accept(now, source(1), &parts[0]),
            Err(Rejected::Stale)
        );
        assert_eq!(reassembler.stats().fragments_duplicate, 1);
        assert_eq!(reassembler.stats().fragments_stale, 1);
    }

    #[test]
    fn same_id_from_two_sources_is_two_frames() {
        let mut reassembler = Reassembler::new(config()).expect("config");
        let now = Instant::now();
        let a = vec![1u8; 3000];
        let b = vec![2u8; 3000];
        for (pa, pb) in fragments(&a, 1000, 5)
            .iter()
            .zip(fragments(&b, 1000, 5).iter())
        {
            reassembler.accept(now, source(1), pa).expect("a");
            reassembler.accept(now, source(2), pb).expect("b");
        }
        let mut out = Vec::new();
        assert_eq!(reassembler.pop_complete(&mut out), Some(source(1)));
        assert_eq!(out, a);
        assert_eq!(reassembler.pop_complete(&mut out), Some(source(2)));
        assert_eq!(out, b);
        assert_eq!(reassembler.pop_complete(&mut out), None);
    }

    #[test]
    fn timeout_frees_and_late_fragments_are_stale() {
        let mut reassembler = Reassembler::new(config()).expect("config");
        let start = Instant::now();
        let parts = fragments(&[3u8; 3000], 1000, 1);
        reassembler
            .accept(start, source(1), &parts[0])
            .expect("first");
        reassembler.expire(start + Duration::from_millis(99));
        assert_eq!(reassembler.filling(), 1);
        reassembler.expire(start + Duration::from_millis(100));
        assert_eq!(reassembler.filling(), 0);
        assert_eq!(reassembler.stats().reassemblies_timed_out, 1);
        assert_eq!(
            reassembler.accept(start + Duration::from_millis(101), source(1), &parts[1]),
            Err(Rejected::Stale)
        );
    }

    #[test]
    fn full_slots_evict_the_oldest() {
        let mut reassembler = Reassembler::new(config()).expect("config");
        let start = Instant::now();
        for id in 0..5u64 {
            let parts = fragments(&[id as u8; 3000], 1000, id);
            let now = start + Duration::from_millis(id);
            assert_eq!(
                reassembler.accept(now, source(1), &parts[0]),
                Ok(Accepted::Stored)
            );
        }
        assert_eq!(reassembler.filling(), 4);
        assert_eq!(reassembler.stats().reassemblies_evicted, 1);
        let parts = fragments(&[0u8; 3000], 1000, 0);
        assert_eq!(
            reassembler.accept(start, source(1), &parts[1]),
            Err(Rejected::Stale)
        );
    }

    #[test]
    fn memory_limit_holds() {
        let mut reassembler = Reassembler::new(config()).expect("config");
        let now = Instant::now();
        for id in 0..10u64 {
            let parts = fragments(&vec![1u8; 60 << 10], 1472, id);
            reassembler
                .accept(now, source(1), &parts[0])
                .expect("stored");
            assert!(reassembler.held_bytes() <= 128 << 10);
        }
        assert!(reassembler.stats().reassemblies_evicted >= 8);
    }

    #[test]
    fn too_large_and_inconsistent() {
        let mut reassembler = Reassembler::new(config()).expect("config");
        let now = Instant::now();
        let parts = fragments(&vec![1u8; 100 << 10], 1472, 1);
        assert_eq!(
            reassembler.accept(now, source(1), &parts[0]),
            Err(Rejected::TooLarge)
        );
        let a = fragments(&[1u8; 3000], 1000, 7);
        let b = fragments(&[1u8; 4000], 1000, 7);
        reassembler.accept(now, source(1), &a[0]).expect("stored");
        assert_eq!(
            reassembler.accept(now, source(1), &b[1]),
            Err(Rejected::Inconsistent)
        );
    }

    #[test]
    fn buffers_are_reused_after_warm_up() {
        let mut reassembler = Reassembler::new(config()).expect("config");
        let now = Instant::now();
        let frame = vec![5u8; 50_000];
        let mut out = Vec::new();
        let mut held = Vec::new();
        for id in 0..4u64 {
            for part in fragments(&frame, 1472, id) {
                reassembler.accept(now, source(1), &part).expect("accepted");
            }
            assert_eq!(reassembler.pop_complete(&mut out), Some(source(1)));
            assert_eq!(out, frame);
            held.push(reassembler.held_bytes());
        }
        assert_eq!(held[2], held[3], "steady state: no growth");
    }

    #[test]
    fn bad_config_is_refused() {
        let mut bad = config();
        bad.memory_bytes_max = 1000;
        assert!(matches!(
            Reassembler::new(bad),
            Err(ConfigError::Inconsistent { .. })
        ));
        let mut bad = config();
        bad.slots_max = 0;
        assert!(matches!(
            Reassembler::new(bad),
            Err(ConfigError::OutOfRange { .. })
        ));
    }
}
