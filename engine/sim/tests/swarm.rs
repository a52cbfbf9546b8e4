//! The seeded swarm: 1,000 seeds across every fault mix must show no violation.
//!
//! Sized for `cargo test` (debug, `profile.test` opt-level 1, 2 cores): the
//! runs use `RunOptions::quick()` phases. A failure lists each violating seed;
//! replay one with `cargo run -p osiris-sim -- --seed S --quick --mix M`.

use osiris_sim::{run_many, Mix, RunOptions};

const SWARM_SEEDS: u64 = 1_000;

fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(4)
}

#[test]
fn swarm_of_1000_seeds_has_no_violations() {
    let started = std::time::Instant::now();
    let outcomes = run_many(0, SWARM_SEEDS, &RunOptions::quick(), threads(), &|_, _| {});
    let mut report = String::new();
    for outcome in outcomes
        .iter()
        .filter(|outcome| !outcome.violations.is_empty())
    {
        report.push_str(&format!(
            "seed {} mix {}: {} (replay: osiris-sim --seed {} --quick)\n",
            outcome.seed, outcome.mix, outcome.violations[0], outcome.seed
        ));
    }
    for mix in Mix::ALL {
        let runs = outcomes.iter().filter(|outcome| outcome.mix == mix).count();
        assert!(
            runs > 50,
            "the seed should pick every mix often; {mix} got {runs} runs"
        );
    }
    let violating = outcomes
        .iter()
        .filter(|outcome| !outcome.violations.is_empty())
        .count();
    eprintln!(
        "{SWARM_SEEDS} runs, {violating} violations, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        report.is_empty(),
        "{violating} of {SWARM_SEEDS} runs violated a property:\n{report}"
    );
}

/// Each mix must actually inject its faults, or the swarm proves nothing.
#[test]
fn every_mix_injects_its_faults() {
    let runs = |mix: Mix| {
        let options = RunOptions {
            mix: Some(mix),
            ..RunOptions::quick()
        };
        run_many(10_000, 30, &options, threads(), &|_, _| {})
    };
    let total = |outcomes: &[osiris_sim::SeedOutcome], field: fn(&osiris_sim::RunStats) -> u64| {
        outcomes
            .iter()
            .map(|outcome| field(&outcome.stats))
            .sum::<u64>()
    };
    let calm = runs(Mix::Calm);
    assert_eq!(
        total(&calm, |stats| stats.crashes
            + stats.partitions
            + stats.net.copies_lost),
        0
    );
    assert!(total(&calm, |stats| stats.deliveries) > 1_000);
    let lossy = runs(Mix::Lossy);
    assert!(total(&lossy, |stats| stats.net.copies_lost) > 1_000);
    assert!(total(&lossy, |stats| stats.net.copies_duplicated) > 50);
    let crashes = runs(Mix::Crashes);
    assert!(total(&crashes, |stats| stats.crashes) > 30);
    assert!(total(&crashes, |stats| stats.restarts) > 30);
    let leader = runs(Mix::LeaderCrash);
    assert!(total(&leader, |stats| stats.leader_crashes) > 10);
    assert!(
        total(&leader, |stats| stats.leader_crashes_while_proposing) > 5,
        "the trap must catch proposing leaders"
    );
    let partition = runs(Mix::Partition);
    assert!(total(&partition, |stats| stats.partitions) > 10);
    assert!(total(&partition, |stats| stats.net.copies_partitioned) > 100);
    let churn = runs(Mix::Churn);
    assert!(total(&churn, |stats| stats.group_views) > total(&calm, |stats| stats.group_views));
    let total_failure = runs(Mix::TotalFailure);
    assert!(total(&total_failure, |stats| stats.total_failures) >= 30);
    assert!(
        total(&total_failure, |stats| stats.restarts)
            >= total(&total_failure, |stats| stats.total_failures
                * stats.nodes as u64),
        "a total failure restarts every node"
    );
    let durable: Vec<_> = [&calm, &lossy, &crashes, &leader, &partition, &churn]
        .into_iter()
        .flatten()
        .filter(|outcome| outcome.stats.durable)
        .collect();
    assert!(
        (30..=90).contains(&durable.len()),
        "the seed makes about a third of the runs durable: {} of 180",
        durable.len()
    );
    assert!(durable.iter().all(|outcome| outcome.stats.log_syncs > 0));
    let all: Vec<_> = [calm, lossy, crashes, leader, partition, churn]
        .into_iter()
        .flatten()
        .collect();
    let settled = all
        .iter()
        .filter(|outcome| outcome.stats.settle_ms.is_some())
        .count();
    assert!(
        settled > 150,
        "most runs settle in the liveness phase ({settled} of 180)"
    );
    assert!(
        total(&all, |stats| stats.backpressure) > 0,
        "small send windows must push back sometimes"
    );
    assert!(total(&all, |stats| stats.state_transfers) > 100);
}
