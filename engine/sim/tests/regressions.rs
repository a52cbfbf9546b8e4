//! Seeds that once exposed a protocol bug, kept as named scenarios
//! (TigerBeetle style). A seed replays the same run only for the same core
//! code, so after the core changes these are plain extra seeds — still worth
//! running, since they start from a situation that once went wrong.

use osiris_sim::{run_seed, Mix, RunOptions};

fn assert_clean(seed: u64, options: &RunOptions, what: &str) {
    let report = run_seed(seed, options);
    assert!(
        report.violations.is_empty(),
        "seed {seed} ({what}): {:#?}",
        report.violations
    );
}

/// Loss in a two-member view: the leader gave up on a member whose promises
/// were lost and both members stopped `Disconnected`, killing the domain.
#[test]
fn lossy_two_member_view_survives_lost_promises() {
    for seed in [761, 2122] {
        assert_clean(seed, &RunOptions::default(), "lossy, two-member view");
    }
}

/// A leaving leader committed the view that removed it and stopped before
/// its Commit went out; the survivor stayed wedged and stopped.
#[test]
fn leaving_leader_delivers_its_last_commit() {
    assert_clean(
        909,
        &RunOptions::quick(),
        "mixed, leader leaves while another member crashes",
    );
}

/// A member that finished loading state after it promised was listed as
/// loading again: it stopped delivering mid-view and got a second, different
/// `StateLoaded`.
#[test]
fn state_is_loaded_once_per_membership() {
    for seed in [36, 58, 61, 95, 284] {
        assert_clean(seed, &RunOptions::quick(), "state reloaded");
    }
}

/// `handle_timeout` left a one-member group's ack due forever (a busy loop).
/// A single overdue deadline (a node about to stop) is harmless; three in a
/// row at one node is a loop.
#[test]
fn deadlines_move_forward() {
    for mix in Mix::ALL {
        let options = RunOptions {
            mix: Some(mix),
            ..RunOptions::quick()
        };
        for seed in 0..10 {
            let report = run_seed(seed, &options);
            assert!(
                report.stats.timer_spin_streak_max < 3,
                "seed {seed} {mix}: next_timeout stayed <= now after {} handle_timeout calls in a row",
                report.stats.timer_spin_streak_max
            );
        }
    }
}
