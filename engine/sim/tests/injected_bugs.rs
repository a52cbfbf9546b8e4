//! The checkers catch protocol bugs: with a bug switched on in every node,
//! some early seed must produce the violation the bug causes — and the same
//! seed without the bug must not (so it is the bug that is caught, not noise).

use osiris_core::InjectedBug;
use osiris_sim::{run_many, run_seed, Durability, Mix, RunOptions, Violation};

const SEEDS_MAX: u64 = 200;
/// Seeds of forced durable mode and total failures with AckBeforePersist.
const DURABLE_SEEDS: u64 = 200;

fn threads() -> usize {
    std::thread::available_parallelism()
        .map_or(2, usize::from)
        .min(4)
}

/// The first seed (alternating the lossy and crashes mixes) whose bugged run
/// shows a violation matching `caught` and whose clean run shows none.
fn find_caught(
    bug: InjectedBug,
    caught: impl Fn(&Violation) -> bool,
) -> Option<(u64, Mix, Violation)> {
    for seed in 0..SEEDS_MAX {
        let mix = if seed % 2 == 0 {
            Mix::Lossy
        } else {
            Mix::Crashes
        };
        let options = RunOptions {
            mix: Some(mix),
            inject_bug: Some(bug),
            ..RunOptions::quick()
        };
        let bugged = run_seed(seed, &options);
        let Some(violation) = bugged.violations.iter().find(|violation| caught(violation)) else {
            continue;
        };
        let clean = run_seed(
            seed,
            &RunOptions {
                inject_bug: None,
                ..options
            },
        );
        if !clean.violations.iter().any(&caught) {
            return Some((seed, mix, violation.clone()));
        }
    }
    None
}

#[test]
fn flush_without_retransmission_breaks_view_synchrony() {
    let caught = |violation: &Violation| {
        violation.checker == "view_synchrony"
            || (violation.checker == "state_transfer"
                && violation.message.contains("different states"))
    };
    let found = find_caught(InjectedBug::FlushSkipsRetransmission, caught);
    let (seed, mix, violation) =
        found.expect("no seed in the first 200 exposed FlushSkipsRetransmission");
    eprintln!("FlushSkipsRetransmission caught by seed {seed} ({mix}): {violation}");
}

#[test]
fn delivering_before_state_load_breaks_state_transfer() {
    let caught = |violation: &Violation| {
        violation.checker == "state_transfer"
            && violation.message.contains("before loading its state")
    };
    let found = find_caught(InjectedBug::DeliverBeforeStateLoad, caught);
    let (seed, mix, violation) =
        found.expect("no seed in the first 200 exposed DeliverBeforeStateLoad");
    eprintln!("DeliverBeforeStateLoad caught by seed {seed} ({mix}): {violation}");
}

/// Find a seed that exposes `bug` through a violation of `checker` whose
/// message contains `needle`, and print it.
fn expect_caught(bug: InjectedBug, checker: &'static str, needle: &'static str) {
    let found = find_caught(bug, |violation| {
        violation.checker == checker && violation.message.contains(needle)
    });
    let (seed, mix, violation) =
        found.unwrap_or_else(|| panic!("no seed in the first {SEEDS_MAX} exposed {bug:?}"));
    eprintln!("{bug:?} caught by seed {seed} ({mix}): {violation}");
}

#[test]
fn causal_delivery_without_predecessors_breaks_causal_order() {
    expect_caught(InjectedBug::CausalIgnoresDeps, "ordering", "causal");
}

#[test]
fn ignoring_the_sequencer_breaks_total_order() {
    expect_caught(
        InjectedBug::OrderedIgnoresSequencer,
        "ordering",
        "the other way round",
    );
}

#[test]
fn safe_delivery_without_acks_breaks_uniform_agreement() {
    expect_caught(InjectedBug::SafeSkipsAcks, "ordering", "never did");
}

#[test]
fn forgetting_failed_responders_breaks_query_completion() {
    expect_caught(
        InjectedBug::QueryForgetsFailed,
        "query",
        "without failure markers",
    );
}

/// Durable mode acknowledges only what is on disk; with the bug a member
/// acknowledges before its fsync, so a SafeSend can be delivered while a
/// member's record of it is still unsynced, and a total failure then loses
/// it from that member's log. The durability checker must see it in a fair
/// share of runs, and never without the bug.
#[test]
fn acking_before_the_fsync_loses_safe_sends_in_a_total_failure() {
    let options = RunOptions {
        mix: Some(Mix::TotalFailure),
        durable: Durability::Always,
        inject_bug: Some(InjectedBug::AckBeforePersist),
        ..RunOptions::quick()
    };
    let durability = |violation: &Violation| violation.checker == "durability";
    let bugged = run_many(0, DURABLE_SEEDS, &options, threads(), &|_, _| {});
    let caught: Vec<u64> = bugged
        .iter()
        .filter(|outcome| outcome.violations.iter().any(durability))
        .map(|outcome| outcome.seed)
        .collect();
    eprintln!(
        "AckBeforePersist caught by {} of {DURABLE_SEEDS} seeds: {caught:?}",
        caught.len()
    );
    assert!(
        caught.len() as u64 >= DURABLE_SEEDS / 10,
        "only {} of {DURABLE_SEEDS} seeds caught AckBeforePersist",
        caught.len()
    );
    let clean = RunOptions {
        inject_bug: None,
        ..options
    };
    for seed in caught {
        let report = run_seed(seed, &clean);
        assert!(
            !report.violations.iter().any(durability),
            "seed {seed} violates durability without the bug: {:#?}",
            report.violations
        );
    }
}
