//! `osiris bench throughput --netns`: members in network namespaces on a
//! bridge, group traffic by IP multicast, beside a raw IP multicast baseline.
//!
//! These tests check what the run reports (keys, sane values, the ratio is
//! the quotient of the two rates, the group traffic was IP multicast) and
//! that every namespace of the run is gone afterwards: after a run that
//! succeeded, one that failed (a member killed) and one interrupted by
//! SIGINT. No figure is compared with a threshold: benchmarks are not timed
//! assertions. Without root or `ip` they print `SKIP: ...` and pass.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use osiris_tools::json::{number, text};
use osiris_tools::netns::{ip, missing_prerequisite, namespaces_with_prefix, run_command};

fn exe() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_osiris"))
}

fn skip() -> bool {
    match missing_prerequisite(&[]) {
        Some(reason) => {
            println!("SKIP: bench --netns test: {reason}");
            true
        }
        None => false,
    }
}

/// Starts `osiris bench throughput --netns` with these extra arguments.
fn start(args: &[&str]) -> Child {
    Command::new(exe())
        .args(["bench", "throughput", "--netns", "--json"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start osiris bench")
}

/// The namespace name prefix of the run with this pid (`bench.rs`).
fn prefix(pid: u32) -> String {
    format!("osrb-{pid}-")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn assert_no_namespace_left(pid: u32) {
    let left = namespaces_with_prefix(&prefix(pid));
    assert!(left.is_empty(), "namespaces left behind: {left:?}");
}

/// Waits until member 2 runs (`osiris node` in host 2's namespace of the
/// run) and returns its pid. Other processes pass through that namespace
/// too: `ip -n` while the lab is built, `cat` reading its counters.
fn wait_for_member(child: &mut Child, pid: u32) -> Vec<String> {
    let namespace = format!("{}n2", prefix(pid));
    let deadline = Instant::now() + Duration::from_secs(120);
    let is_member = |pid: &String| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|cmdline| cmdline.split(|&byte| byte == 0).any(|word| word == b"node"))
    };
    loop {
        let pids: Vec<String> = ip(&["netns", "pids", &namespace])
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_owned)
            .filter(is_member)
            .collect();
        if !pids.is_empty() {
            return pids;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the run ended ({status}) before member 2 started");
        }
        assert!(Instant::now() < deadline, "member 2 never started");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether process `pid` has ended (gone, or a zombie not yet reaped).
fn ended(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                == Some("Z")
        }
    }
}

#[test]
fn netns_throughput_reports_both_rates_and_leaves_no_namespace() {
    if skip() {
        return;
    }
    let child = start(&["--kind", "ordered", "--size", "64", "--count", "20000"]);
    let pid = child.id();
    let output = child.wait_with_output().expect("wait for osiris bench");
    assert!(output.status.success(), "bench failed: {}", stderr(&output));
    let json = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    println!("{json}");

    assert_eq!(text(&json, "bench"), Some("throughput"));
    assert_eq!(text(&json, "kind"), Some("ordered"));
    assert_eq!(text(&json, "transport"), Some("netns"));
    assert_eq!(text(&json, "baseline"), Some("raw-ip-multicast"));
    assert_eq!(number(&json, "size"), Some(64.0));
    assert_eq!(number(&json, "members"), Some(3.0));
    let value = |key: &str| number(&json, key).unwrap_or_else(|| panic!("no {key} in {json}"));
    let msgs = value("msgs_per_s");
    let baseline = value("baseline_msgs_per_s");
    assert!(msgs > 0.0, "msgs_per_s {msgs}");
    assert!(baseline > 0.0, "baseline_msgs_per_s {baseline}");
    assert!(value("baseline_sent_msgs_per_s") > 0.0);
    let loss = value("baseline_loss");
    assert!((0.0..=1.0).contains(&loss), "baseline_loss {loss}");
    // Rates are printed to the unit and ratios to 3 decimals.
    for key in ["ratio_msgs", "ratio_mb"] {
        let ratio = value(key);
        let expected = msgs / baseline;
        assert!(
            (ratio - expected).abs() <= 0.0005 + expected * 1e-4,
            "{key} {ratio}, msgs/baseline {expected}"
        );
    }
    let mb = value("mb_per_s");
    assert!((mb - msgs * 64.0 / 1e6).abs() < 0.01, "mb_per_s {mb}");
    // The group's messages went over the bridge as IP multicast. The
    // namespaces' IP stacks count a looped-back copy on the sender's host
    // as received too, so only copies on other hosts make received > sent.
    let sent = value("multicast_packets_sent");
    assert!(sent > 0.0, "{json}");
    assert!(value("multicast_packets_received") > sent, "{json}");
    assert_no_namespace_left(pid);
}

/// Starts a long run, waits for member 2, then does `disturb(bench pid,
/// member pids)`; returns the bench's output and stderr, and the member
/// pids, once it has ended.
fn disturbed_run(disturb: impl FnOnce(u32, &[String])) -> (Output, String, Vec<String>) {
    let mut child = start(&["--kind", "send", "--count", "200000"]);
    let pid = child.id();
    let members = wait_for_member(&mut child, pid);
    disturb(pid, &members);
    let output = child.wait_with_output().expect("wait for osiris bench");
    let stderr = stderr(&output);
    println!("run {pid}: {stderr}");
    assert_no_namespace_left(pid);
    (output, stderr, members)
}

#[test]
fn a_failed_netns_run_leaves_no_namespace() {
    if skip() {
        return;
    }
    let (output, stderr, _) = disturbed_run(|_, members| {
        for member in members {
            // The run's own member process, by its pid.
            let _ = run_command("kill", &["-9", member]);
        }
    });
    assert!(!output.status.success(), "the run did not fail: {stderr}");
    assert!(stderr.contains("exited"), "unexpected error: {stderr}");
}

#[test]
fn an_interrupted_netns_run_leaves_no_namespace_and_no_member() {
    if skip() {
        return;
    }
    let (output, stderr, members) = disturbed_run(|pid, _| {
        run_command("kill", &["-INT", &pid.to_string()]).expect("send SIGINT");
    });
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("signal 2"), "{stderr}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !members.iter().all(|member| ended(member)) {
        assert!(Instant::now() < deadline, "member {members:?} still runs");
        std::thread::sleep(Duration::from_millis(20));
    }
}
