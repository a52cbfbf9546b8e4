//! The library entry points: run one seed, or a range of seeds on threads.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use osiris_core::InjectedBug;

use crate::check::Violation;
use crate::durability::Durability;
use crate::history::TraceLine;
use crate::kinds::Kinds;
use crate::mix::Mix;
use crate::net::NetStats;
use crate::sim::Simulation;

/// What to run. `Default` is the CLI's profile; `quick` is sized for `cargo test`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOptions {
    /// Force a fault mix; None lets the seed choose.
    pub mix: Option<Mix>,
    /// Force the node count; None lets the seed choose (3..=7, mostly 5).
    pub nodes: Option<usize>,
    /// Virtual duration of the safety phase (faults active).
    pub safety_ms: u64,
    /// Longest the liveness phase may take to settle before probes go out.
    pub settle_max_ms: u64,
    /// Longest probes may take to be delivered everywhere.
    pub probe_max_ms: u64,
    /// Switch on a protocol bug in every node (checker tests only).
    pub inject_bug: Option<InjectedBug>,
    /// The send kinds the workload mixes (all by default).
    pub kinds: Kinds,
    /// Which runs put their groups in durable mode (a run without SafeSend
    /// in `kinds` never does: nothing would be logged).
    pub durable: Durability,
    /// Keep the full event trace in the report (always kept on a violation
    /// when `trace_on_violation` is set).
    pub trace: bool,
    pub trace_on_violation: bool,
    /// Also trace every frame copy: its messages and its fate (lost, delay).
    pub trace_frames: bool,
    /// Let the seed draw core limits (chunk size, send window, frame size) and
    /// workload bursts; off: every node runs `Config::new`'s defaults.
    pub vary_limits: bool,
    /// Run the liveness phase and check (off: stop after the safety phase).
    pub liveness: bool,
    /// Simulator events after which the run is declared stuck (a livelock).
    pub events_max: u64,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            mix: None,
            nodes: None,
            safety_ms: 3_000,
            settle_max_ms: 10_000,
            probe_max_ms: 3_000,
            inject_bug: None,
            kinds: Kinds::ALL,
            durable: Durability::Seeded,
            trace: false,
            trace_on_violation: false,
            trace_frames: false,
            vary_limits: true,
            liveness: true,
            events_max: 20_000_000,
        }
    }
}

impl RunOptions {
    /// Shorter phases for the test suite (debug build, 2 cores, 1000 seeds).
    pub fn quick() -> RunOptions {
        RunOptions {
            safety_ms: 2_000,
            settle_max_ms: 6_000,
            probe_max_ms: 2_000,
            ..RunOptions::default()
        }
    }
}

/// Counters describing one run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunStats {
    pub nodes: usize,
    pub events: u64,
    pub virtual_ms: u64,
    pub net: NetStats,
    /// Hash of every frame arrival (time, link, length): equal runs, equal digest.
    pub net_digest: u64,
    pub sends: u64,
    pub sends_refused: u64,
    pub backpressure: u64,
    pub deliveries: u64,
    pub domain_views: u64,
    pub group_views: u64,
    pub state_transfers: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub partitions: u64,
    /// Every node crashed at once.
    pub total_failures: u64,
    /// The run's groups were durable.
    pub durable: bool,
    /// Log records appended to the simulated disks, and syncs of them.
    pub log_records: u64,
    pub log_syncs: u64,
    pub leader_crashes: u64,
    pub leader_crashes_while_proposing: u64,
    /// Times `handle_timeout(now)` left `next_timeout() <= now` (a busy loop
    /// in a real runtime; the simulator charges 100 us and goes on).
    pub timer_spins: u64,
    /// The longest run of consecutive overdue deadlines at one node: 1 is a
    /// one-off (harmless), a long streak is a busy loop.
    pub timer_spin_streak_max: u64,
    /// Virtual time from the start of the liveness phase to convergence.
    pub settle_ms: Option<u64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunReport {
    pub seed: u64,
    pub mix: Mix,
    pub violations: Vec<Violation>,
    /// Empty unless tracing was asked for (or a violation occurred with `trace_on_violation`).
    pub trace: Vec<TraceLine>,
    pub stats: RunStats,
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic".to_string()
    }
}

/// Run one seed: the whole run is a pure function of `seed` and `options`.
/// A panic (in the core or the simulator) is reported as a violation.
pub fn run_seed(seed: u64, options: &RunOptions) -> RunReport {
    let mut simulation = Simulation::new(seed, options);
    let outcome = catch_unwind(AssertUnwindSafe(|| simulation.run()));
    if let Err(panic) = outcome {
        simulation.report_panic(&panic_message(panic.as_ref()));
    }
    simulation.into_report()
}

/// The outcome of one seed in a swarm (no trace, to keep memory flat).
#[derive(Clone, Debug, PartialEq)]
pub struct SeedOutcome {
    pub seed: u64,
    pub mix: Mix,
    pub violations: Vec<Violation>,
    pub stats: RunStats,
}

/// Run `count` seeds from `start` on `threads` threads. `progress(done, violating)`
/// is called after each seed. Outcomes come back sorted by seed.
pub fn run_many(
    start: u64,
    count: u64,
    options: &RunOptions,
    threads: usize,
    progress: &(dyn Fn(u64, usize) + Sync),
) -> Vec<SeedOutcome> {
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let violating = AtomicUsize::new(0);
    let outcomes = Mutex::new(Vec::with_capacity(count as usize));
    let options = RunOptions {
        trace: false,
        trace_on_violation: false,
        ..options.clone()
    };
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let offset = next.fetch_add(1, Ordering::Relaxed);
                if offset >= count {
                    break;
                }
                let report = run_seed(start + offset, &options);
                if !report.violations.is_empty() {
                    violating.fetch_add(1, Ordering::Relaxed);
                }
                let outcome = SeedOutcome {
                    seed: report.seed,
                    mix: report.mix,
                    violations: report.violations,
                    stats: report.stats,
                };
                outcomes
                    .lock()
                    .expect("no thread panics holding the lock")
                    .push(outcome);
                let finished = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(finished, violating.load(Ordering::Relaxed));
            });
        }
    });
    let mut outcomes = outcomes
        .into_inner()
        .expect("no thread panics holding the lock");
    outcomes.sort_by_key(|outcome| outcome.seed);
    assert_eq!(outcomes.len() as u64, count);
    outcomes
}
