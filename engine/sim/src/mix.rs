//! Fault mixes: which faults a run injects during its safety phase.

use std::fmt;

/// A named fault profile. The seed picks one unless `--mix` forces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mix {
    /// No faults: a clean network and a steady workload.
    Calm,
    /// Loss up to 20%, duplication, reordering and occasional clogs.
    Lossy,
    /// Crash and restart nodes (restarts are new incarnations that re-join their groups).
    Crashes,
    /// Crash the domain leader, preferably while it is proposing a view change.
    LeaderCrash,
    /// Cut off a minority for a while, then heal; the minority must stop and is restarted.
    Partition,
    /// Group joins and leaves, graceful node leaves and restarts.
    Churn,
    /// All of the above, with a mildly lossy network.
    Mixed,
}

impl Mix {
    pub const ALL: [Mix; 7] = [
        Mix::Calm,
        Mix::Lossy,
        Mix::Crashes,
        Mix::LeaderCrash,
        Mix::Partition,
        Mix::Churn,
        Mix::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Mix::Calm => "calm",
            Mix::Lossy => "lossy",
            Mix::Crashes => "crashes",
            Mix::LeaderCrash => "leader-crash",
            Mix::Partition => "partition",
            Mix::Churn => "churn",
            Mix::Mixed => "mixed",
        }
    }

    pub fn parse(name: &str) -> Option<Mix> {
        Mix::ALL.into_iter().find(|mix| mix.name() == name)
    }

    pub fn crashes(self) -> bool {
        matches!(self, Mix::Crashes | Mix::Mixed)
    }

    pub fn leader_crashes(self) -> bool {
        matches!(self, Mix::LeaderCrash | Mix::Mixed)
    }

    pub fn partitions(self) -> bool {
        matches!(self, Mix::Partition | Mix::Mixed)
    }

    pub fn churn(self) -> bool {
        matches!(self, Mix::Churn | Mix::Mixed)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for mix in Mix::ALL {
            assert_eq!(Mix::parse(mix.name()), Some(mix));
        }
        assert_eq!(Mix::parse("nope"), None);
    }
}
