//! The simulated network: per-copy delay, loss, duplication and partitions.
//!
//! A multicast is fanned out by the simulator into one copy per destination and
//! every copy is faulted independently, as on a real switched network. Reordering
//! needs no separate knob: two frames on one link get independent delays, so a
//! later frame often arrives first. A partition assigns each node a side; frames
//! cross neither at send time nor at arrival time (a cut link also drops the
//! frames in flight on it).

use crate::rng::SimRng;

/// Nanoseconds per millisecond, for readable constants.
pub const NANOS_PER_MS: u64 = 1_000_000;

/// Fault rates of the network. All probabilities are per frame copy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NetParams {
    pub delay_min_ns: u64,
    pub delay_max_ns: u64,
    /// Probability a copy is lost.
    pub loss: f64,
    /// Probability a copy is delivered twice (the duplicate gets its own delay).
    pub duplicate: f64,
    /// Probability a copy is held back much longer (a "clog"), up to `spike_max_ns`.
    pub spike: f64,
    pub spike_max_ns: u64,
}

impl NetParams {
    /// A clean LAN: 0.1–5 ms, nothing lost.
    pub fn calm() -> NetParams {
        NetParams {
            delay_min_ns: 100_000,
            delay_max_ns: 5 * NANOS_PER_MS,
            loss: 0.0,
            duplicate: 0.0,
            spike: 0.0,
            spike_max_ns: 0,
        }
    }

    /// A bad network, with rates drawn from `rng`: loss up to 20%, duplicates
    /// up to 10%, occasional 20–50 ms clogs.
    pub fn lossy(rng: &mut SimRng) -> NetParams {
        NetParams {
            delay_min_ns: 100_000,
            delay_max_ns: rng.range_inclusive(1, 5) * NANOS_PER_MS,
            loss: rng.unit() * 0.20,
            duplicate: rng.unit() * 0.10,
            spike: rng.unit() * 0.02,
            spike_max_ns: rng.range_inclusive(20, 50) * NANOS_PER_MS,
        }
    }

    /// A mildly bad network, for mixes where loss is not the point.
    pub fn mild(rng: &mut SimRng) -> NetParams {
        NetParams {
            delay_min_ns: 100_000,
            delay_max_ns: 5 * NANOS_PER_MS,
            loss: rng.unit() * 0.05,
            duplicate: rng.unit() * 0.02,
            spike: 0.0,
            spike_max_ns: 0,
        }
    }
}

/// Counters of what the network did to frames.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NetStats {
    pub copies_sent: u64,
    pub copies_lost: u64,
    pub copies_duplicated: u64,
    pub copies_partitioned: u64,
    pub copies_delivered: u64,
}

#[derive(Debug)]
pub struct Network {
    pub params: NetParams,
    /// Partition side of each node; nodes on different sides cannot talk.
    side: Vec<u8>,
    rng: SimRng,
    pub stats: NetStats,
}

impl Network {
    pub fn new(node_count: usize, params: NetParams, rng: SimRng) -> Network {
        assert!(node_count > 0);
        assert!(params.delay_min_ns <= params.delay_max_ns);
        Network {
            params,
            side: vec![0; node_count],
            rng,
            stats: NetStats::default(),
        }
    }

    pub fn connected(&self, from: usize, to: usize) -> bool {
        self.side[from] == self.side[to]
    }

    /// Whether any partition is in force.
    pub fn is_partitioned(&self) -> bool {
        self.side.iter().any(|side| *side != 0)
    }

    /// Nodes cut off from side 0 (the side the simulator keeps a majority on).
    pub fn cut_off(&self, node: usize) -> bool {
        self.side[node] != 0
    }

    /// Cut `minority` off from everyone else (they can still talk among themselves).
    pub fn partition(&mut self, minority: &[usize]) {
        assert!(
            minority.len() < self.side.len(),
            "a partition needs two sides"
        );
        self.side.iter_mut().for_each(|side| *side = 0);
        for node in minority {
            self.side[*node] = 1;
        }
    }

    pub fn heal(&mut self) {
        self.side.iter_mut().for_each(|side| *side = 0);
    }

    /// Decide the fate of one copy of a frame from `from` to `to`: pushes zero,
    /// one or two delays (ns from now) into `arrivals`.
    pub fn route(&mut self, from: usize, to: usize, arrivals: &mut Vec<u64>) {
        arrivals.clear();
        self.stats.copies_sent += 1;
        if !self.connected(from, to) {
            self.stats.copies_partitioned += 1;
            return;
        }
        if self.rng.chance(self.params.loss) {
            self.stats.copies_lost += 1;
            return;
        }
        let copies = if self.rng.chance(self.params.duplicate) {
            self.stats.copies_duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut delay = self
                .rng
                .range_inclusive(self.params.delay_min_ns, self.params.delay_max_ns);
            if self.params.spike > 0.0 && self.rng.chance(self.params.spike) {
                delay += self.rng.range_inclusive(0, self.params.spike_max_ns);
            }
            arrivals.push(delay);
        }
        debug_assert!(!arrivals.is_empty() && arrivals.len() <= 2);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lossy_params() -> NetParams {
        NetParams {
            delay_min_ns: 1_000,
            delay_max_ns: 9_000,
            loss: 0.2,
            duplicate: 0.1,
            spike: 0.0,
            spike_max_ns: 0,
        }
    }

    #[test]
    fn loss_duplication_and_delay_bounds() {
        let mut net = Network::new(3, lossy_params(), SimRng::new(1));
        let mut arrivals = Vec::new();
        let (mut lost, mut doubled, mut reordered, mut previous) = (0, 0, 0, 0);
        for _ in 0..10_000 {
            net.route(0, 1, &mut arrivals);
            match arrivals.len() {
                0 => lost += 1,
                2 => doubled += 1,
                _ => {}
            }
            for delay in &arrivals {
                assert!((1_000..=9_000).contains(delay));
            }
            if let Some(first) = arrivals.first() {
                if *first < previous {
                    reordered += 1;
                }
                previous = *first;
            }
        }
        assert!((1_700..2_300).contains(&lost), "lost {lost}");
        assert!((500..1_100).contains(&doubled), "doubled {doubled}");
        assert!(
            reordered > 1_000,
            "independent delays reorder frames ({reordered})"
        );
        assert_eq!(net.stats.copies_lost, lost);
    }

    #[test]
    fn partitions_block_both_ways_until_healed() {
        let mut net = Network::new(5, NetParams::calm(), SimRng::new(2));
        let mut arrivals = Vec::new();
        net.partition(&[3, 4]);
        assert!(net.is_partitioned() && net.cut_off(3) && !net.cut_off(0));
        for (from, to, open) in [(0, 1, true), (3, 4, true), (0, 3, false), (4, 2, false)] {
            net.route(from, to, &mut arrivals);
            assert_eq!(!arrivals.is_empty(), open, "{from}->{to}");
        }
        net.heal();
        net.route(0, 3, &mut arrivals);
        assert_eq!(arrivals.len(), 1);
        assert!(!net.is_partitioned());
    }

    #[test]
    fn same_seed_same_fates() {
        let fates = |seed| {
            let mut net = Network::new(2, lossy_params(), SimRng::new(seed));
            let mut arrivals = Vec::new();
            (0..500)
                .map(|_| {
                    net.route(0, 1, &mut arrivals);
                    arrivals.clone()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(fates(9), fates(9));
        assert_ne!(fates(9), fates(10));
    }
}
