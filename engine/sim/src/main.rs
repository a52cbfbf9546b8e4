//! `osiris-sim`: run a swarm of seeds, or replay one seed with its full trace.
//!
//! ```text
//! osiris-sim --seeds 1000 [--start 0] [--mix lossy] [--threads 2]
//! osiris-sim --seed 1234 [--mix lossy] [--trace]
//! ```
//! The swarm's last line is exactly `N runs, K violations` (K counts the runs
//! with at least one violation); the exit code is non-zero if K > 0.

use std::process::ExitCode;
use std::time::Instant as WallClock;

use clap::Parser;
use osiris_core::InjectedBug;
use osiris_sim::{run_many, run_seed, Durability, Kinds, Mix, Named, RunOptions};

#[derive(Parser, Debug)]
#[command(
    name = "osiris-sim",
    about = "Deterministic simulator and virtual-synchrony checker for osiris-core"
)]
struct Cli {
    /// Run this many seeds (a swarm).
    #[arg(long, conflicts_with = "seed")]
    seeds: Option<u64>,
    /// First seed of the swarm.
    #[arg(long, default_value_t = 0)]
    start: u64,
    /// Replay exactly one seed; prints the full trace on a violation.
    #[arg(long)]
    seed: Option<u64>,
    /// Force a fault mix: calm, lossy, crashes, leader-crash, partition, churn,
    /// mixed, total-failure.
    #[arg(long, value_parser = Mix::parse_arg)]
    mix: Option<Mix>,
    /// Force the node count (default: the seed picks 3..=7).
    #[arg(long)]
    nodes: Option<usize>,
    /// Worker threads for a swarm (default: available parallelism).
    #[arg(long)]
    threads: Option<usize>,
    /// Virtual milliseconds of faults before the liveness phase.
    #[arg(long)]
    safety_ms: Option<u64>,
    /// Longest virtual time the liveness phase may take to settle.
    #[arg(long)]
    settle_ms: Option<u64>,
    /// Simulator events after which a run is declared stuck.
    #[arg(long)]
    events_max: Option<u64>,
    /// Run every node with the core's default limits (no drawn chunk sizes,
    /// send windows, frame sizes or bursts).
    #[arg(long)]
    default_limits: bool,
    /// Use the short test-suite phases (`RunOptions::quick`).
    #[arg(long)]
    quick: bool,
    /// With --seed: print the trace even without a violation.
    #[arg(long)]
    trace: bool,
    /// Switch on a protocol bug in every node, to see the checkers catch it:
    /// flush-skips-retransmission, deliver-before-state-load,
    /// causal-ignores-deps, ordered-ignores-sequencer, safe-skips-acks,
    /// query-forgets-failed, ack-before-persist.
    #[arg(long, value_parser = parse_bug)]
    inject_bug: Option<InjectedBug>,
    /// With --seed: also trace every frame copy (messages, loss, delay).
    #[arg(long)]
    frames: bool,
    /// The send kinds the workload mixes, comma-separated:
    /// send,causal,ordered,safe,query (default: all of them).
    #[arg(long, value_parser = Kinds::parse)]
    kinds: Option<Kinds>,
    /// Which runs log SafeSend to simulated disks (durable mode): always,
    /// never, or seeded (the seed decides: one run in three).
    #[arg(long, value_parser = Durability::parse_arg, default_value = "seeded")]
    durable: Durability,
}

/// Consecutive overdue deadlines at one node that count as a busy loop.
const BUSY_LOOP_STREAK: u64 = 3;

const BUGS: [(&str, InjectedBug); 7] = [
    (
        "flush-skips-retransmission",
        InjectedBug::FlushSkipsRetransmission,
    ),
    (
        "deliver-before-state-load",
        InjectedBug::DeliverBeforeStateLoad,
    ),
    ("causal-ignores-deps", InjectedBug::CausalIgnoresDeps),
    (
        "ordered-ignores-sequencer",
        InjectedBug::OrderedIgnoresSequencer,
    ),
    ("safe-skips-acks", InjectedBug::SafeSkipsAcks),
    ("query-forgets-failed", InjectedBug::QueryForgetsFailed),
    ("ack-before-persist", InjectedBug::AckBeforePersist),
];

fn parse_bug(name: &str) -> Result<InjectedBug, String> {
    match BUGS.iter().find(|(known, _)| *known == name) {
        Some((_, bug)) => Ok(*bug),
        None => {
            let names: Vec<&str> = BUGS.iter().map(|(known, _)| *known).collect();
            Err(format!(
                "unknown bug `{name}`; one of: {}",
                names.join(", ")
            ))
        }
    }
}

fn options(cli: &Cli) -> RunOptions {
    let mut options = if cli.quick {
        RunOptions::quick()
    } else {
        RunOptions::default()
    };
    options.mix = cli.mix;
    options.nodes = cli.nodes;
    options.inject_bug = cli.inject_bug;
    options.kinds = cli.kinds.unwrap_or_default();
    options.durable = cli.durable;
    options.vary_limits = !cli.default_limits;
    if let Some(safety_ms) = cli.safety_ms {
        options.safety_ms = safety_ms;
    }
    if let Some(events_max) = cli.events_max {
        options.events_max = events_max;
    }
    if let Some(settle_ms) = cli.settle_ms {
        options.settle_max_ms = settle_ms;
    }
    options
}

fn replay(seed: u64, options: RunOptions, trace: bool) -> ExitCode {
    let options = RunOptions {
        trace,
        trace_on_violation: true,
        ..options
    };
    let report = run_seed(seed, &options);
    for line in &report.trace {
        println!("{line}");
    }
    println!("seed {seed} mix {} stats {:?}", report.mix, report.stats);
    if report.violations.is_empty() {
        println!("seed {seed}: no violations");
        return ExitCode::SUCCESS;
    }
    for violation in &report.violations {
        println!("VIOLATION {violation}");
    }
    println!(
        "seed {seed} ({}): {} violations",
        report.mix,
        report.violations.len()
    );
    ExitCode::FAILURE
}

fn swarm(cli: &Cli, count: u64, options: RunOptions) -> ExitCode {
    let threads = cli
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let started = WallClock::now();
    let step = (count / 20).max(1);
    let progress = |done: u64, violating: usize| {
        if done.checked_rem(step) == Some(0) || done == count {
            eprintln!(
                "[{:>6.1}s] {done}/{count} runs, {violating} with violations",
                started.elapsed().as_secs_f64()
            );
        }
    };
    let outcomes = run_many(cli.start, count, &options, threads, &progress);
    let mut violating = 0;
    let mut replay_flags = String::new();
    if cli.quick {
        replay_flags.push_str(" --quick");
    }
    if let Some(mix) = cli.mix {
        replay_flags.push_str(&format!(" --mix {mix}"));
    }
    if cli.default_limits {
        replay_flags.push_str(" --default-limits");
    }
    if cli.durable != Durability::Seeded {
        replay_flags.push_str(&format!(" --durable {}", cli.durable));
    }
    for outcome in outcomes
        .iter()
        .filter(|outcome| !outcome.violations.is_empty())
    {
        violating += 1;
        let first = &outcome.violations[0];
        println!(
            "seed {} mix {} nodes {}: {} violations, first: {first} (replay: osiris-sim --seed {}{replay_flags})",
            outcome.seed,
            outcome.mix,
            outcome.stats.nodes,
            outcome.violations.len(),
            outcome.seed,
        );
    }
    let settle: Vec<u64> = outcomes
        .iter()
        .filter_map(|outcome| outcome.stats.settle_ms)
        .collect();
    let events: u64 = outcomes.iter().map(|outcome| outcome.stats.events).sum();
    let spinning = outcomes
        .iter()
        .filter(|outcome| outcome.stats.timer_spins > 0)
        .count();
    let looping: Vec<u64> = outcomes
        .iter()
        .filter(|outcome| outcome.stats.timer_spin_streak_max >= BUSY_LOOP_STREAK)
        .map(|outcome| outcome.seed)
        .collect();
    if spinning > 0 {
        println!(
            "{spinning} runs left an overdue deadline after handle_timeout; {} of them {BUSY_LOOP_STREAK}+ times in a row (busy loop){}",
            looping.len(),
            looping.first().map_or_else(String::new, |seed| format!(", e.g. seed {seed}")),
        );
    }
    let durable: Vec<&osiris_sim::SeedOutcome> = outcomes
        .iter()
        .filter(|outcome| outcome.stats.durable)
        .collect();
    let failures = |list: &mut dyn Iterator<Item = &osiris_sim::SeedOutcome>| {
        list.map(|outcome| outcome.stats.total_failures)
            .sum::<u64>()
    };
    println!(
        "{} durable runs ({} log records, {} syncs); total failures: {} in all runs, {} in durable runs",
        durable.len(),
        durable.iter().map(|outcome| outcome.stats.log_records).sum::<u64>(),
        durable.iter().map(|outcome| outcome.stats.log_syncs).sum::<u64>(),
        failures(&mut outcomes.iter()),
        failures(&mut durable.iter().copied()),
    );
    println!(
        "wall {:.1}s on {threads} threads; {events} events; settled {} of {} runs (mean {} ms virtual)",
        started.elapsed().as_secs_f64(),
        settle.len(),
        outcomes.len(),
        settle.iter().sum::<u64>() / settle.len().max(1) as u64,
    );
    println!("{count} runs, {violating} violations");
    if violating == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = options(&cli);
    match (cli.seed, cli.seeds) {
        (Some(seed), _) => replay(
            seed,
            RunOptions {
                trace_frames: cli.frames,
                ..options
            },
            cli.trace,
        ),
        (None, Some(count)) => swarm(&cli, count, options),
        (None, None) => {
            eprintln!("give --seeds N for a swarm or --seed S to replay one seed (see --help)");
            ExitCode::from(2)
        }
    }
}
