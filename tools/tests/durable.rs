//! Durable SafeSend across a total failure, with real processes and real
//! files: three `osiris node` members join a durable group (each with its
//! own `durable_dir` in a temporary directory) and all multicast SafeSend
//! bursts; once the stream is well under way every member is SIGKILLed.
//! Then one member's log gets a torn record appended (a write the crash cut
//! short), and all three are started again from their directories.
//!
//! Checked: what each member printed as delivered before the kill (`SAFE`
//! lines, read to the end of its stdout) is a prefix of what every
//! restarted member recovers from its own log (`RSAFE` lines): nothing
//! delivered is lost or reordered. The torn tail is reported on stderr and
//! cut off. The restarted members form the group again and deliver a new
//! SafeSend.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::STEP;
use osiris_tools::cluster::{loopback_config, Cluster};

const GROUP: &str = "ledger";
const MEMBERS: usize = 3;
/// SafeSends each member offers; the kill comes long before the end.
const BURST: u64 = 50_000;
/// Deliveries at member 0 before the kill.
const KILL_AFTER: usize = 3_000;
/// The member whose log gets a torn tail before the restart.
const TORN: usize = 1;

#[test]
fn sigkill_of_every_member_loses_no_delivered_safe_send() {
    let mut c = Cluster::new(Path::new(env!("CARGO_BIN_EXE_osiris")), "durable")
        .expect("cluster directory");
    c.capture_stderr();
    if let Err(error) = run(&mut c) {
        // Keep the logs for `osiris log FILE`.
        let keep =
            std::env::temp_dir().join(format!("osiris-failed-durable-logs-{}", std::process::id()));
        for member in 0..MEMBERS {
            let from = durable_dir(&c, member);
            let to = keep.join(format!("log-{member}"));
            let _ = std::fs::create_dir_all(&to);
            for entry in std::fs::read_dir(&from).into_iter().flatten().flatten() {
                let _ = std::fs::copy(entry.path(), to.join(entry.file_name()));
            }
        }
        eprintln!("logs kept in {}", keep.display());
        common::dump(&mut c, "durable");
        panic!("{error}");
    }
}

fn durable_dir(c: &Cluster, member: usize) -> PathBuf {
    c.dir().join(format!("log-{member}"))
}

/// Starts the three members (indices `first..first + 3`) on their logs and
/// joins them to the durable group; returns what each recovered.
fn start_all(c: &mut Cluster, first: usize) -> Result<Vec<Vec<String>>, String> {
    let mut recovered = Vec::new();
    let mut seed = None;
    for member in 0..MEMBERS {
        let extra = format!("durable_dir = \"{}\"\n", durable_dir(c, member).display());
        let index = c.spawn(&loopback_config(member as u32 + 1, seed, &extra), &[])?;
        assert_eq!(index, first + member);
        seed.get_or_insert(c.members[index].addr);
        c.command(index, &format!("join {GROUP} durable"))?;
        let count: usize = c
            .wait_for(index, "RECOVERED", STEP)?
            .split_whitespace()
            .nth(2)
            .and_then(|n| n.parse().ok())
            .ok_or("bad RECOVERED line")?;
        let lines = safe_lines(c, index, "RSAFE");
        if lines.len() != count {
            return Err(format!(
                "member {index}: {count} recovered, {} RSAFE lines",
                lines.len()
            ));
        }
        recovered.push(lines);
        c.wait_for(index, "JOINED", STEP)?;
    }
    for index in first..first + MEMBERS {
        c.wait_view_size(index, MEMBERS, STEP)?;
    }
    Ok(recovered)
}

/// The `<sender> <digest>` of every line of member `index` with this tag.
fn safe_lines(c: &mut Cluster, index: usize, tag: &str) -> Vec<String> {
    c.collect();
    c.members[index]
        .lines
        .iter()
        .filter_map(|line| line.strip_prefix(tag)?.strip_prefix(' '))
        .filter_map(|rest| rest.split_once(' ').map(|(_, id)| id.to_owned()))
        .collect()
}

fn run(c: &mut Cluster) -> Result<(), String> {
    let recovered = start_all(c, 0)?;
    if recovered.iter().any(|list| !list.is_empty()) {
        return Err("fresh logs recovered something".into());
    }
    for index in 0..MEMBERS {
        c.command(index, &format!("burst {GROUP} {BURST} 64 safe"))?;
    }
    let deadline = std::time::Instant::now() + STEP;
    while safe_lines(c, 0, "SAFE").len() < KILL_AFTER {
        if std::time::Instant::now() > deadline {
            return Err(format!("member 0 never delivered {KILL_AFTER} SafeSends"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    for index in 0..MEMBERS {
        c.kill(index)?;
    }
    // Everything the members printed is in their pipes: read it all.
    std::thread::sleep(Duration::from_millis(300));
    // The guarantee checked below is for a failure with no view change
    // under way (docs/ordering.md, "Limits"): make sure none was.
    for index in 0..MEMBERS {
        let views = c.members[index]
            .lines
            .iter()
            .filter(|l| l.starts_with("VIEW "))
            .count();
        let stderr = c.stderr(index).unwrap_or_default();
        if views != MEMBERS - index || stderr.contains("excluded") {
            return Err(format!(
                "member {index} saw a view change during the stream: {stderr}"
            ));
        }
    }
    let delivered: Vec<Vec<String>> = (0..MEMBERS).map(|i| safe_lines(c, i, "SAFE")).collect();
    let offered = MEMBERS * BURST as usize;
    for (index, list) in delivered.iter().enumerate() {
        if list.is_empty() || list.len() >= offered {
            return Err(format!(
                "member {index} delivered {} of {offered}: not killed mid-stream",
                list.len()
            ));
        }
    }

    let log = std::fs::read_dir(durable_dir(c, TORN))
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .find(|path| path.extension().is_some_and(|ext| ext == "osiris-log"))
        .ok_or("no log file")?;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .map_err(|e| e.to_string())?;
    file.write_all(&200u32.to_le_bytes())
        .and_then(|()| file.write_all(&[0x5a; 40]))
        .map_err(|e| e.to_string())?;
    drop(file);

    let recovered = start_all(c, MEMBERS)?;
    for (killed, before) in delivered.iter().enumerate() {
        for (restarted, after) in recovered.iter().enumerate() {
            if after.len() < before.len() || after[..before.len()] != before[..] {
                let first_difference = before
                    .iter()
                    .zip(after)
                    .position(|(a, b)| a != b)
                    .unwrap_or(before.len().min(after.len()));
                return Err(format!(
                    "member {killed} delivered {} SafeSends before the kill; member {restarted} \
                     recovered {}, differing from position {first_difference}",
                    before.len(),
                    after.len()
                ));
            }
        }
    }
    let stderr = c.stderr(MEMBERS + TORN).unwrap_or_default();
    if !stderr.contains("dropped 44 bytes") {
        return Err(format!(
            "no truncation message for the torn tail: {stderr:?}"
        ));
    }

    c.command(MEMBERS, &format!("safe {GROUP} after the restart"))?;
    for index in MEMBERS..2 * MEMBERS {
        c.wait_until(
            index,
            "the new SafeSend",
            |l| l.ends_with("after the restart"),
            STEP,
        )?;
    }
    eprintln!(
        "durable: delivered before the kill {:?}, recovered {:?}",
        delivered.iter().map(Vec::len).collect::<Vec<_>>(),
        recovered.iter().map(Vec::len).collect::<Vec<_>>()
    );
    Ok(())
}
