//! Latency probes run inside a member process (`osiris node`), for `osiris
//! bench latency`: self-delivery latency of a multicast kind, at a fixed
//! offered rate (coordinated omission corrected: each message is timed from
//! when the schedule said to send it, not from when the sender got round to
//! it) or at saturation; and member-to-member ping-pong round trips.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Payload prefixes: `l:` latency probe (multicast), `p:` ping and `q:` pong
/// (point to point).
pub const PROBE: &[u8; 2] = b"l:";
pub const PING: &[u8; 2] = b"p:";
pub const PONG: &[u8; 2] = b"q:";
/// Prefix, node (u32), index (u64), nanoseconds since the run began (u64).
pub const HEADER_LEN: usize = 2 + 4 + 8 + 8;

#[derive(Debug)]
pub struct Probe {
    pub histogram: Histogram<u64>,
    /// The schedule's start: probes carry their due time relative to it.
    start: Instant,
    pub recorded: u64,
}

impl Probe {
    /// A probe and the schedule its sender follows: `rate_per_second`
    /// probes per second, or as fast as possible if 0.
    pub fn new(rate_per_second: u64) -> (Probe, Schedule) {
        let period = if rate_per_second == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos(1_000_000_000 / rate_per_second.max(1))
        };
        let start = Instant::now();
        let probe = Probe {
            // 1 ns to 60 s at 3 significant digits: recording never allocates.
            histogram: Histogram::new_with_bounds(1, 60_000_000_000, 3)
                .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits")),
            start,
            recorded: 0,
        };
        (probe, Schedule { start, period })
    }

    /// A probe (or pong) payload came back: record now minus its due time.
    pub fn record(&mut self, payload: &[u8]) {
        let Some(sent) = payload.get(14..22) else {
            return;
        };
        let sent = u64::from_le_bytes(sent.try_into().unwrap_or_default());
        let now = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let _ = self.histogram.record(now.saturating_sub(sent).max(1));
        self.recorded += 1;
    }

    /// `count p50 p90 p99 p99.9 max` in nanoseconds.
    pub fn summary(&self) -> String {
        let h = &self.histogram;
        format!(
            "{} {} {} {} {} {}",
            h.len(),
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max()
        )
    }
}

/// The node id a probe payload carries.
pub fn probe_node(payload: &[u8]) -> Option<u32> {
    payload
        .get(2..6)
        .map(|bytes| u32::from_le_bytes(bytes.try_into().unwrap_or_default()))
}

/// When probes are due, and how they are stamped.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    period: Duration,
}

impl Schedule {
    pub fn due(&self, index: u64) -> Instant {
        if self.period.is_zero() {
            Instant::now()
        } else {
            self.start + self.period * u32::try_from(index).unwrap_or(u32::MAX)
        }
    }

    pub fn fill(&self, buf: &mut [u8], prefix: &[u8; 2], node: u32, index: u64, due: Instant) {
        let since = u64::try_from(due.duration_since(self.start).as_nanos()).unwrap_or(u64::MAX);
        buf[..2].copy_from_slice(prefix);
        buf[2..6].copy_from_slice(&node.to_le_bytes());
        buf[6..14].copy_from_slice(&index.to_le_bytes());
        buf[14..22].copy_from_slice(&since.to_le_bytes());
    }
}
