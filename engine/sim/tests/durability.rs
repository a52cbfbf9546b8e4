//! Durable mode across total failures, without any injected bug: every
//! node's recovered log must give back what the checker requires
//! (docs/simulator.md, "durability"), and the runs must really exercise it.

use osiris_sim::{run_many, Durability, Mix, RunOptions};

const SEEDS: u64 = 300;

#[test]
fn total_failures_lose_no_delivered_safe_send() {
    let options = RunOptions {
        mix: Some(Mix::TotalFailure),
        durable: Durability::Always,
        ..RunOptions::quick()
    };
    let threads = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(4);
    let started = std::time::Instant::now();
    let outcomes = run_many(0, SEEDS, &options, threads, &|_, _| {});
    let mut report = String::new();
    for outcome in outcomes
        .iter()
        .filter(|outcome| !outcome.violations.is_empty())
    {
        report.push_str(&format!(
            "seed {}: {} (replay: osiris-sim --seed {} --quick --mix total-failure --durable always)\n",
            outcome.seed, outcome.violations[0], outcome.seed
        ));
    }
    let failures: u64 = outcomes
        .iter()
        .map(|outcome| outcome.stats.total_failures)
        .sum();
    let records: u64 = outcomes
        .iter()
        .map(|outcome| outcome.stats.log_records)
        .sum();
    eprintln!(
        "{SEEDS} durable runs, {failures} total failures, {records} log records, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(outcomes.iter().all(|outcome| outcome.stats.durable));
    assert!(failures >= SEEDS, "most runs fail totally at least once");
    assert!(records > 100 * SEEDS, "the nodes log their SafeSends");
    assert!(report.is_empty(), "{report}");
}
