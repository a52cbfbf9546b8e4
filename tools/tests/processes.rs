//! Members in separate OS processes on loopback (`osiris node`, fan-out
//! multicast), one SIGKILLed in the middle of a burst.
//!
//! Four members form a group (the three joiners load the founder's three
//! texts by state transfer); each multicasts `BURST` messages of 64 bytes;
//! one is killed (SIGKILL) once it has delivered a tenth of all of them.
//! Then, from the members' lines (`osiris_tools::check`): the survivors
//! install a view with it failed; views agree; every pair of members that
//! went from one view to the next delivered the same per-sender tallies;
//! no burst message was delivered out of order, twice or after a gap; a
//! probe sent after the kill reaches every survivor; and every survivor
//! delivered every message every survivor multicast.

mod common;

use std::path::Path;
use std::time::Instant;

use common::{burst, form, in_flight_at_kill, kill_after, probe, settle_and_check, wait_failed};
use osiris_tools::cluster::{loopback_config, Cluster};

const GROUP: &str = "ledger";
const MEMBERS: usize = 4;
const BURST: u64 = 10_000;
const PAYLOAD_LEN: usize = 64;
const VICTIM: usize = 2;

#[test]
fn sigkill_during_a_burst_keeps_virtual_synchrony() {
    let started = Instant::now();
    let mut c = Cluster::new(Path::new(env!("CARGO_BIN_EXE_osiris")), "processes")
        .expect("cluster directory");
    if let Err(error) = run(&mut c, started) {
        common::dump(&mut c, "processes");
        panic!("{error}");
    }
}

fn run(c: &mut Cluster, started: Instant) -> Result<(), String> {
    let start = |index: usize, seed| {
        let config = loopback_config(index as u32 + 1, seed, "");
        (config, Vec::new())
    };
    let mut g = form(c, MEMBERS, GROUP, &start)?;
    println!(
        "formed: view {} = {:?} in {:.2} s",
        g.full_view,
        g.ids,
        started.elapsed().as_secs_f64()
    );

    let before = common::total(c, &g, VICTIM)?;
    let burst_started = Instant::now();
    burst(c, &mut g, BURST, PAYLOAD_LEN)?;
    let all = BURST * MEMBERS as u64;
    kill_after(c, &mut g, VICTIM, before, all / 10)?;
    let killed_at = burst_started.elapsed();
    let failure_view = wait_failed(c, &g, VICTIM)?;
    println!(
        "killed member {VICTIM} ({}) {:.0} ms into the burst; view {failure_view} failed it {:.0} ms later",
        g.ids[VICTIM],
        killed_at.as_secs_f64() * 1e3,
        (burst_started.elapsed() - killed_at).as_secs_f64() * 1e3
    );

    let probe_time = probe(c, &mut g, "after-kill")?;
    let (logs, checked) = settle_and_check(c, &g)?;
    let (from_victim, after_failure) = in_flight_at_kill(&logs, &g, VICTIM, BURST, failure_view)?;
    println!(
        "probes delivered everywhere in {:.0} ms; {} view installs and {} tallies agree; \
         the survivors delivered {from_victim} of the victim's {BURST} messages and \
         {after_failure} messages in view {failure_view} and later",
        probe_time.as_secs_f64() * 1e3,
        checked.views,
        checked.tallies
    );
    if checked.tallies == 0 || checked.views == 0 {
        return Err("the checks compared nothing".into());
    }
    for index in g.live() {
        c.quit(index)?;
    }
    println!("done in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}
