//! osiris-sim: a deterministic simulator for `osiris-core` and the checkers of
//! virtual synchrony (ARCHITECTURE.md §7), in the style of TigerBeetle's VOPR
//! and openraft's fuzzer.
//!
//! One seed drives everything: the node count, the fault mix, the network's
//! delays and losses, the workload and every fault. [`run_seed`] runs one seed
//! and returns a [`RunReport`] (violations, trace, counters); the same seed
//! always yields the same run. See `docs/simulator.md`.

pub mod app;
pub mod check;
pub mod durability;
pub mod history;
pub mod kinds;
pub mod mix;
pub mod names;
pub mod net;
pub mod queue;
pub mod rng;
mod run;
mod sim;

pub use check::Violation;
pub use durability::Durability;
pub use history::{Record, RecordKind, TraceLine};
pub use kinds::Kinds;
pub use mix::Mix;
pub use names::Named;
pub use run::{run_many, run_seed, RunOptions, RunReport, RunStats, SeedOutcome};
