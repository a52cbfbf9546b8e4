//! What the multi-process tests share: forming a group of `osiris node`
//! processes (joiners get the state by transfer), bursts, faults, probes,
//! and the checks of `osiris_tools::check` over the members' lines.
//!
//! Each step returns `Err(text)` with what did not happen; the tests turn
//! that into a panic, and `Cluster`'s drop kills whatever still runs.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use osiris_tools::check::{self, Checked, MemberLog};
use osiris_tools::cluster::Cluster;

/// How long one step may take (joins, view changes, probes).
pub const STEP: Duration = Duration::from_secs(20);
/// The founder's multicasts before anyone joins: the state joiners load.
pub const TEXTS: [&str; 3] = ["open AAPL 187.20", "open MSFT 411.05", "open NVDA 131.88"];

/// Config text and wrapper command of member `index`, given the seed (the
/// founder's address; `None` for the founder itself).
pub type Start<'a> = dyn Fn(usize, Option<SocketAddr>) -> (String, Vec<String>) + 'a;

/// One group of the run and what the test knows about it.
#[derive(Debug)]
pub struct Group {
    pub name: String,
    /// The first view with every member: deliveries are counted from it.
    pub full_view: u64,
    /// Each member's id (`node.incarnation`).
    pub ids: Vec<String>,
    /// Messages each member multicast since `full_view`.
    pub sent: Vec<u64>,
    /// Members killed or cut off.
    pub gone: Vec<bool>,
}

impl Group {
    pub fn live(&self) -> Vec<usize> {
        (0..self.ids.len()).filter(|&i| !self.gone[i]).collect()
    }
}

/// Starts `count` members. The first founds the domain, creates `name` and
/// multicasts `TEXTS`; every other joins and must load exactly those by
/// state transfer. Waits until all install the view with all of them.
pub fn form(c: &mut Cluster, count: usize, name: &str, start: &Start) -> Result<Group, String> {
    let (config, wrapper) = start(0, None);
    let founder = c.spawn(&config, &wrapper)?;
    let seed = c.members[founder].addr;
    c.command(founder, &format!("join {name}"))?;
    c.wait_for(founder, "JOINED", STEP)?;
    for text in TEXTS {
        c.command(founder, &format!("send {name} {text}"))?;
        c.wait_for(founder, "MSG", STEP)?;
    }
    for index in 1..count {
        let (config, wrapper) = start(index, Some(seed));
        let joiner = c.spawn(&config, &wrapper)?;
        c.command(joiner, &format!("join {name}"))?;
        c.wait_for(joiner, "JOINED", STEP)?;
        let loaded = c.wait_seen(joiner, "LOADED", |l| l.starts_with("LOADED"), STEP)?;
        let expected = format!("LOADED {name} {} {}", TEXTS.len(), TEXTS.len());
        if loaded != expected {
            return Err(format!("member {joiner} {loaded}, expected {expected}"));
        }
    }
    let mut full_view = 0;
    for index in 0..count {
        let view = c.wait_seen(
            index,
            "VIEW of all members",
            |line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.len() == 7
                    && words[..2] == ["VIEW", name]
                    && words[3].split(',').count() == count
            },
            STEP,
        )?;
        let id: u64 = view
            .split_whitespace()
            .nth(2)
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
        if index > 0 && id != full_view {
            return Err(format!(
                "member {index}: first full view {id}, member 0: {full_view}"
            ));
        }
        full_view = id;
    }
    let ids = check::logs(c, name)
        .iter()
        .map(|log| {
            log.last_view()
                .and_then(|view| view.own.clone())
                .unwrap_or_default()
        })
        .collect();
    Ok(Group {
        name: name.to_owned(),
        full_view,
        ids,
        sent: vec![0; count],
        gone: vec![false; count],
    })
}

/// After a failure: prints each member's last lines and keeps all of them
/// (and captured stderr) in `<tmp>/osiris-failed-<tag>-<pid>/` for a look.
pub fn dump(c: &mut Cluster, tag: &str) {
    for index in 0..c.members.len() {
        if c.members[index].running && c.command(index, "stats-all").is_ok() {
            let _ = c.wait_for(index, "STATSALL", Duration::from_secs(2));
        }
    }
    let dir = std::env::temp_dir().join(format!("osiris-failed-{tag}-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    for (index, member) in c.members.iter().enumerate() {
        let tail: Vec<&String> = member.lines.iter().rev().take(12).collect();
        eprintln!("member {index} (pid {}) last lines: {tail:?}", member.pid);
        let mut text = member.lines.join("\n");
        if let Some(stderr) = c.stderr(index) {
            text.push_str(&format!("\n--- stderr ---\n{stderr}"));
        }
        let _ = std::fs::write(dir.join(format!("member-{index}.log")), text);
    }
    eprintln!("every member's lines: {}", dir.display());
}

/// The member's delivery total (loaded state included), from `tally`.
pub fn total(c: &mut Cluster, g: &Group, index: usize) -> Result<u64, String> {
    c.command(index, &format!("tally {}", g.name))?;
    let line = c.wait_for(index, "TALLIED", STEP)?;
    line.split_whitespace()
        .nth(3)
        .and_then(|word| word.parse().ok())
        .ok_or_else(|| format!("bad TALLIED line: {line}"))
}

/// Every live member multicasts `count` messages of `size` bytes.
pub fn burst(c: &mut Cluster, g: &mut Group, count: u64, size: usize) -> Result<(), String> {
    for index in g.live() {
        c.command(index, &format!("burst {} {count} {size}", g.name))?;
        g.sent[index] += count;
    }
    Ok(())
}

/// Once `victim` has delivered `deliveries` more messages than `before`
/// (its total when the burst began), SIGKILLs it.
pub fn kill_after(
    c: &mut Cluster,
    g: &mut Group,
    victim: usize,
    before: u64,
    deliveries: u64,
) -> Result<(), String> {
    c.command(victim, &format!("await {} {}", g.name, before + deliveries))?;
    c.wait_for(victim, "REACHED", STEP)?;
    c.kill(victim)?;
    g.gone[victim] = true;
    Ok(())
}

/// Waits until every live member installed a view with `faulty` in its
/// failed list; returns that view's id (the same at all, by agreement).
pub fn wait_failed(c: &mut Cluster, g: &Group, faulty: usize) -> Result<u64, String> {
    let id = g.ids[faulty].clone();
    let mut view = 0;
    for index in g.live() {
        let line = c.wait_seen(
            index,
            &format!("VIEW failing {id}"),
            |line| {
                let words: Vec<&str> = line.split_whitespace().collect();
                words.len() == 7
                    && words[..2] == ["VIEW", g.name.as_str()]
                    && words[6].split(',').any(|m| m == id)
            },
            STEP,
        )?;
        view = line
            .split_whitespace()
            .nth(2)
            .unwrap_or("0")
            .parse()
            .unwrap_or(0);
    }
    Ok(view)
}

/// Every live member multicasts one probe text; waits until every live
/// member delivered every probe. This is the liveness check after a fault,
/// and, since a member's stream is FIFO, it also means each live member's
/// earlier multicasts have been delivered everywhere.
pub fn probe(c: &mut Cluster, g: &mut Group, tag: &str) -> Result<Duration, String> {
    let started = Instant::now();
    let live = g.live();
    for &index in &live {
        c.command(index, &format!("send {} probe-{tag}-{index}", g.name))?;
        g.sent[index] += 1;
    }
    for &receiver in &live {
        for &sender in &live {
            let text = format!("probe-{tag}-{sender}");
            c.wait_seen(receiver, &text, |line| line.ends_with(&text), STEP)?;
        }
    }
    Ok(started.elapsed())
}

/// Takes the live members' OPEN tallies, runs every check over every
/// member's lines, and checks that each live member delivered, since the
/// full view, exactly what each live member multicast since then. Returns
/// the logs and what the checks compared.
pub fn settle_and_check(c: &mut Cluster, g: &Group) -> Result<(Vec<MemberLog>, Checked), String> {
    for index in g.live() {
        c.command(index, &format!("tally {}", g.name))?;
        c.wait_for(index, "TALLIED", STEP)?;
    }
    let logs = check::logs(c, &g.name);
    let checked = check::check(&logs)?;
    for receiver in g.live() {
        let delivered = logs[receiver].delivered_since(g.full_view);
        for sender in g.live() {
            let got = delivered.get(&g.ids[sender]).copied().unwrap_or(0);
            if got != g.sent[sender] {
                return Err(format!(
                    "member {receiver} delivered {got} of the {} messages member {sender} ({}) multicast",
                    g.sent[sender], g.ids[sender]
                ));
            }
        }
    }
    Ok((logs, checked))
}

/// What every live member delivered from `sender` since the full view; the
/// same at all of them (view synchrony makes it so; this says so in one
/// place).
pub fn delivered_from(logs: &[MemberLog], g: &Group, sender: usize) -> Result<u64, String> {
    let counts: Vec<u64> = g
        .live()
        .iter()
        .map(|&receiver| {
            let delivered = logs[receiver].delivered_since(g.full_view);
            delivered.get(&g.ids[sender]).copied().unwrap_or(0)
        })
        .collect();
    if counts.windows(2).any(|pair| pair[0] != pair[1]) {
        return Err(format!(
            "live members delivered {counts:?} messages of member {sender}"
        ));
    }
    Ok(counts.first().copied().unwrap_or(0))
}

/// Whether the burst was still in flight when `victim` was killed: the
/// live members did not deliver all of the victim's `burst` messages, or they
/// still delivered burst messages (more than their probes) in the view that
/// failed it, `failure_view`, or later. Returns the two figures for the log.
pub fn in_flight_at_kill(
    logs: &[MemberLog],
    g: &Group,
    victim: usize,
    burst: u64,
    failure_view: u64,
) -> Result<(u64, u64), String> {
    let from_victim = delivered_from(logs, g, victim)?;
    let first = *g.live().first().ok_or("no live member")?;
    let delivered = logs[first].delivered_since(failure_view);
    let after_failure: u64 = g
        .live()
        .iter()
        .map(|&sender| delivered.get(&g.ids[sender]).copied().unwrap_or(0))
        .sum();
    if from_victim >= burst && after_failure <= g.live().len() as u64 {
        return Err(format!(
            "the burst was over before the kill: all {burst} of the victim's messages \
             were delivered and nothing but the probes after view {failure_view}"
        ));
    }
    Ok((from_victim, after_failure))
}
