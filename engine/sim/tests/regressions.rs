//! Seeds that once exposed a protocol bug, kept as named scenarios
//! (TigerBeetle style). A seed replays the same run only for the same core
//! code, so after the core changes these are plain extra seeds — still worth
//! running, since they start from a situation that once went wrong.

use osiris_sim::{run_seed, Durability, Mix, RunOptions};

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

/// A wedged member (it had promised for the next view) kept acknowledging
/// messages that arrived after its promise: the sender delivered a SafeSend
/// message as stable, then the flush, built from the promise, dropped it at
/// the survivor (uniform agreement). Wedged members no longer acknowledge.
#[test]
fn a_wedged_member_acknowledges_nothing_past_its_promise() {
    for seed in [9734, 10007, 15602, 18717] {
        assert_clean(seed, &RunOptions::default(), "safe, ack after promise");
    }
}

/// A member leaving a group got no carried messages in the flush, lacked an
/// order announcement the others had, and ordered the unordered tail
/// differently (total order). Leavers now get what they lack, like survivors.
#[test]
fn a_leaver_delivers_the_epoch_in_the_survivors_order() {
    for seed in [5675, 10288, 13120, 13370] {
        assert_clean(seed, &RunOptions::default(), "ordered, leaver's flush");
    }
}

/// The uniform-agreement checker counted a member that left the group and
/// rejoined it later as a survivor of the view it left (a checker bug).
#[test]
fn leaving_and_rejoining_is_not_surviving() {
    for seed in [6774, 9975, 11114, 14483, 18682] {
        assert_clean(seed, &RunOptions::default(), "safe, leave and rejoin");
    }
}

/// A member cut off during the view change (it never promised) learned the
/// commit that excluded it after the heal and delivered the flush anyway,
/// ordering the unordered tail without the announcements the survivors had:
/// two Safe messages in the other order. Excluded members deliver nothing of
/// the flush now.
#[test]
fn an_excluded_member_delivers_nothing_of_the_flush() {
    assert_clean(
        6910,
        &RunOptions::default(),
        "safe, excluded member's flush",
    );
}

/// Found by the 100,000-seed swarm after the ordering merge. The leader
/// committed view 9, which admitted a joiner, and was cut off before the
/// other two members installed it. The joiner heard nobody, because they
/// ignored its frames as a stranger's and did not heartbeat it. It stopped
/// `Disconnected` 5 ms before the takeover installed view 9, which left view
/// 9 without a majority, and every node ended `Joining`. Fix: a frame from a
/// stranger in exactly our next view makes us ask it for the commit.
#[test]
fn a_joiner_in_a_view_others_lack_is_asked_for_its_commit() {
    assert_clean(48714, &RunOptions::default(), "partition, 4 nodes");
}

/// Found by the first 3,000-seed durable total-failure swarm. A joiner
/// still loading state acknowledged, and so logged, a SafeSend of the only
/// member holding state, which crashed before anyone delivered it; the
/// group went on with fresh state. Its log then held that SafeSend ahead of
/// ones it delivered later, which the durability checker flagged although
/// it says nothing of the epochs a node spends loading state (a checker
/// bug).
#[test]
fn a_joiners_loading_epochs_are_not_held_against_its_log() {
    let options = RunOptions {
        mix: Some(Mix::TotalFailure),
        durable: Durability::Always,
        ..RunOptions::default()
    };
    assert_clean(2811, &options, "total failure, joiner's log");
}
