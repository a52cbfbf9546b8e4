//! The same seed gives the same run: identical trace (down to every frame's
//! fate), identical counters — whether run alone or inside a threaded swarm.

use osiris_sim::{run_many, run_seed, Mix, RunOptions};

#[test]
fn same_seed_same_trace() {
    for (seed, mix) in [
        (3, Mix::Mixed),
        (17, Mix::LeaderCrash),
        (42, Mix::Partition),
        (99, Mix::Lossy),
    ] {
        let options = RunOptions {
            mix: Some(mix),
            trace: true,
            trace_frames: true,
            ..RunOptions::quick()
        };
        let first = run_seed(seed, &options);
        let second = run_seed(seed, &options);
        assert!(
            first.trace.len() > 100,
            "seed {seed}: the trace should be substantial"
        );
        assert_eq!(
            first.trace.len(),
            second.trace.len(),
            "seed {seed} {mix}: trace lengths differ"
        );
        if let Some(position) = first
            .trace
            .iter()
            .zip(&second.trace)
            .position(|(a, b)| a != b)
        {
            panic!(
                "seed {seed} {mix}: traces diverge at line {position}:\n  {}\n  {}",
                first.trace[position], second.trace[position]
            );
        }
        assert_eq!(first.stats, second.stats);
        assert_eq!(first.violations, second.violations);
    }
}

#[test]
fn swarm_threads_do_not_change_outcomes() {
    let options = RunOptions::quick();
    let alone: Vec<_> = (500..510).map(|seed| run_seed(seed, &options)).collect();
    let swarm = run_many(500, 10, &options, 3, &|_, _| {});
    for (single, threaded) in alone.iter().zip(&swarm) {
        assert_eq!(single.seed, threaded.seed);
        assert_eq!(single.stats, threaded.stats, "seed {}", single.seed);
        assert_eq!(
            single.violations, threaded.violations,
            "seed {}",
            single.seed
        );
    }
}

#[test]
fn different_seeds_differ() {
    let options = RunOptions {
        mix: Some(Mix::Lossy),
        nodes: Some(5),
        ..RunOptions::quick()
    };
    let first = run_seed(1, &options);
    let second = run_seed(2, &options);
    assert_ne!(first.stats.net_digest, second.stats.net_digest);
}
