//! The checkers catch protocol bugs: with a bug switched on in every node,
//! some early seed must produce the violation the bug causes — and the same
//! seed without the bug must not (so it is the bug that is caught, not noise).

use osiris_core::InjectedBug;
use osiris_sim::{run_seed, Mix, RunOptions, Violation};

const SEEDS_MAX: u64 = 200;

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
