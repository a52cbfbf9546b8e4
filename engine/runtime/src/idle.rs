//! Idle strategies: what the data-plane thread does after a duty cycle that
//! found no work. Chosen in config; `Backoff` is the default because it stays
//! polite on small machines (2 cores) while keeping latency low under load.

use std::time::Duration;

/// How the data-plane thread waits when a duty cycle found nothing to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleStrategy {
    /// Spin without pause: lowest latency, burns a whole core. Only with a
    /// dedicated (pinned, isolated) core.
    BusySpin,
    /// `std::thread::yield_now` between cycles: gives the core to other
    /// runnable threads, else spins.
    Yield,
    /// Spin `spins` cycles, then yield `yields` cycles, then block on the
    /// sockets and the wake-up descriptor for a period that starts at
    /// `park_min` and doubles up to `park_max`. Any work resets it.
    Backoff {
        spins: u32,
        yields: u32,
        park_min: Duration,
        park_max: Duration,
    },
    /// Block on the sockets and the wake-up descriptor until input arrives,
    /// the application submits work, or the core's next timer is due.
    BlockOnEvent,
}

impl Default for IdleStrategy {
    fn default() -> Self {
        IdleStrategy::Backoff {
            spins: 64,
            yields: 16,
            park_min: Duration::from_micros(50),
            park_max: Duration::from_millis(1),
        }
    }
}

impl IdleStrategy {
    /// Parses the config-file spelling: `busy-spin`, `yield`, `backoff`, `block`.
    pub fn parse(text: &str) -> Option<IdleStrategy> {
        match text {
            "busy-spin" | "spin" => Some(IdleStrategy::BusySpin),
            "yield" => Some(IdleStrategy::Yield),
            "backoff" => Some(IdleStrategy::default()),
            "block" | "block-on-event" => Some(IdleStrategy::BlockOnEvent),
            _ => None,
        }
    }
}

/// What the idler tells the duty loop to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleAction {
    /// Go round again at once.
    Spin,
    /// Yield the core, then go round again.
    Yield,
    /// Block on events, at most this long (the loop also caps it by the
    /// core's next timer).
    Block(Option<Duration>),
}

/// The state of one idle strategy across cycles.
#[derive(Debug)]
pub struct Idler {
    strategy: IdleStrategy,
    idle_cycles: u64,
    park: Duration,
}

impl Idler {
    pub fn new(strategy: IdleStrategy) -> Idler {
        Idler {
            strategy,
            idle_cycles: 0,
            park: Duration::ZERO,
        }
    }

    pub fn strategy(&self) -> IdleStrategy {
        self.strategy
    }

    /// Work was done: the next idle period starts from the beginning.
    pub fn reset(&mut self) {
        self.idle_cycles = 0;
        self.park = Duration::ZERO;
    }

    /// A cycle found no work: what to do before the next one.
    pub fn idle(&mut self) -> IdleAction {
        self.idle_cycles += 1;
        match self.strategy {
            IdleStrategy::BusySpin => IdleAction::Spin,
            IdleStrategy::Yield => IdleAction::Yield,
            IdleStrategy::BlockOnEvent => IdleAction::Block(None),
            IdleStrategy::Backoff {
                spins,
                yields,
                park_min,
                park_max,
            } => {
                let spins = u64::from(spins);
                if self.idle_cycles <= spins {
                    IdleAction::Spin
                } else if self.idle_cycles <= spins + u64::from(yields) {
                    IdleAction::Yield
                } else {
                    self.park = if self.park.is_zero() {
                        park_min
                    } else {
                        (self.park * 2).min(park_max)
                    };
                    IdleAction::Block(Some(self.park))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_spins_then_yields_then_parks_with_a_doubling_bounded_period() {
        let mut idler = Idler::new(IdleStrategy::Backoff {
            spins: 2,
            yields: 1,
            park_min: Duration::from_micros(10),
            park_max: Duration::from_micros(35),
        });
        let actions: Vec<IdleAction> = (0..7).map(|_| idler.idle()).collect();
        let park = |micros| IdleAction::Block(Some(Duration::from_micros(micros)));
        assert_eq!(
            actions,
            vec![
                IdleAction::Spin,
                IdleAction::Spin,
                IdleAction::Yield,
                park(10),
                park(20),
                park(35),
                park(35)
            ]
        );
        idler.reset();
        assert_eq!(idler.idle(), IdleAction::Spin);
    }

    #[test]
    fn config_spellings() {
        assert_eq!(
            IdleStrategy::parse("busy-spin"),
            Some(IdleStrategy::BusySpin)
        );
        assert_eq!(
            IdleStrategy::parse("block"),
            Some(IdleStrategy::BlockOnEvent)
        );
        assert_eq!(
            IdleStrategy::parse("backoff"),
            Some(IdleStrategy::default())
        );
        assert_eq!(IdleStrategy::parse("sleepy"), None);
    }
}
