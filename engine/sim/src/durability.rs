//! Whether a run's groups are durable (`--durable always|never|seeded`).
//!
//! In a durable run every group the workload uses is in SafeSend's durable
//! mode (docs/ordering.md, "Durable mode"): each node logs to a simulated
//! disk (`sim/disk.rs`) and acknowledges only what it synced.

use crate::names::Named;
use crate::rng::SimRng;

/// Which runs are durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    Always,
    Never,
    /// The seed decides: one run in three.
    #[default]
    Seeded,
}

impl Durability {
    pub const ALL: [Durability; 3] = [Durability::Always, Durability::Never, Durability::Seeded];

    /// Whether this run is durable. `rng` is a stream of its own, so that
    /// the draw does not move any other choice of the seed.
    pub(crate) fn decide(self, rng: &mut SimRng) -> bool {
        match self {
            Durability::Always => true,
            Durability::Never => false,
            Durability::Seeded => rng.index(3) == 0,
        }
    }
}

impl Named for Durability {
    const WHAT: &'static str = "durability";

    fn all() -> &'static [Durability] {
        &Durability::ALL
    }

    fn name(self) -> &'static str {
        match self {
            Durability::Always => "always",
            Durability::Never => "never",
            Durability::Seeded => "seeded",
        }
    }
}

crate::names::display_by_name!(Durability);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_makes_about_a_third_of_runs_durable() {
        let durable = (0..3_000)
            .filter(|seed| Durability::Seeded.decide(&mut SimRng::new(*seed)))
            .count();
        assert!((800..1_200).contains(&durable), "{durable} of 3000");
    }
}
