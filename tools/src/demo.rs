//! `osiris demo`: a narrated local run. Starts member processes of this very
//! binary on loopback and walks through what a group does.

use std::time::{Duration, Instant};

use osiris_runtime::RuntimeError;
use osiris_tools::check;
use osiris_tools::cluster::{loopback_config, Cluster};

const GROUP: &str = "demo";
const STEP: Duration = Duration::from_secs(20);

fn narrate(text: &str) {
    println!("{text}");
}

pub fn run(members: u32, burst: u32) -> Result<(), RuntimeError> {
    let members = members.max(3);
    let exe = std::env::current_exe().map_err(|e| RuntimeError::Config(e.to_string()))?;
    let mut cluster = Cluster::new(&exe, "demo").map_err(RuntimeError::Config)?;
    script(&mut cluster, members, burst).map_err(RuntimeError::Config)
}

fn letter(index: usize) -> char {
    char::from(b'A' + index as u8)
}

fn script(c: &mut Cluster, members: u32, burst: u32) -> Result<(), String> {
    let started = Instant::now();
    narrate("Osiris demo: a group of member processes on 127.0.0.1 (UDP, fan-out).");
    let a = c.spawn(&loopback_config(1, None, ""), &[])?;
    let seed = c.members[a].addr;
    c.command(a, &format!("join {GROUP}"))?;
    c.wait_for(a, "JOINED", STEP)?;
    narrate(&format!(
        "  A (node 1, pid {}) founded the domain at {seed} and created group '{GROUP}'.",
        c.members[a].pid
    ));
    for text in ["open AAPL 187.20", "open MSFT 411.05", "open NVDA 131.88"] {
        c.command(a, &format!("send {GROUP} {text}"))?;
        c.wait_for(a, "MSG", STEP)?;
    }
    narrate("  A multicast 3 updates; the group state is now 3 messages long.");

    for index in 1..members as usize {
        let node = index as u32 + 1;
        let member = c.spawn(&loopback_config(node, Some(seed), ""), &[])?;
        c.command(member, &format!("join {GROUP}"))?;
        let loaded = c.wait_for(member, "LOADED", STEP)?;
        let view = c.last(member, "VIEW").unwrap_or_default();
        let words: Vec<&str> = loaded.split_whitespace().collect();
        let view_words: Vec<&str> = view.split_whitespace().collect();
        narrate(&format!(
            "  {} (node {node}, pid {}) joined: view {} = [{}]; state transfer gave it {} deliveries and {} texts.",
            letter(member),
            c.members[member].pid,
            view_words.get(2).unwrap_or(&"?"),
            view_words.get(3).unwrap_or(&"?"),
            words.get(2).unwrap_or(&"?"),
            words.get(3).unwrap_or(&"?"),
        ));
    }
    // Everyone must see the full view before multicasting in it.
    for index in 0..c.members.len() {
        c.wait_view_size(index, members as usize, STEP)?;
    }

    let order = round(c, "send", "hello")?;
    narrate(&format!(
        "Send (FIFO): each member multicast a line; all delivered all {} (A's order: {}; FIFO orders each sender only).",
        c.members.len(),
        order[0].join(", ")
    ));
    let order = round(c, "causal", "reply")?;
    narrate(&format!(
        "CausalSend: each member multicast a line; each is delivered after what its sender had delivered (A's order: {}).",
        order[0].join(", ")
    ));
    let order = round(c, "ordered", "bid")?;
    let same = order.iter().all(|seen| *seen == order[0]);
    narrate(&format!(
        "OrderedSend: each member multicast a bid at once; every member delivered them in {} order: {}.",
        if same { "the same" } else { "DIFFERENT" },
        order[0].join(", ")
    ));
    if !same {
        return Err(format!(
            "OrderedSend delivered in different orders: {order:?}"
        ));
    }
    let order = round(c, "safe", "trade")?;
    let same = order.iter().all(|seen| *seen == order[0]);
    narrate(&format!(
        "SafeSend: each member multicast a trade; delivered only once every member held it, in {} order: {}.",
        if same { "the same" } else { "DIFFERENT" },
        order[0].join(", ")
    ));
    if !same {
        return Err(format!("SafeSend delivered in different orders: {order:?}"));
    }
    c.command(0, &format!("flush {GROUP}"))?;
    c.wait_for(0, "FLUSHED", STEP)?;
    narrate("Flush: A's flush returned: all its earlier multicasts are stable at every member.");
    let asker = c.members.len() - 1;
    c.command(asker, &format!("query {GROUP} how many messages"))?;
    let done = c.wait_for(asker, "QDONE", STEP)?;
    let replies: Vec<String> = c.members[asker]
        .lines
        .iter()
        .filter(|line| line.starts_with("QREPLY"))
        .map(|line| {
            let words: Vec<&str> = line.splitn(4, ' ').collect();
            let node: usize = words[2]
                .split('.')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            format!(
                "{}: {}",
                letter(node.saturating_sub(1)),
                words.get(3).unwrap_or(&"")
            )
        })
        .collect();
    narrate(&format!(
        "Query: {} asked every member (in total order); {} replies:",
        letter(asker),
        done.split_whitespace().nth(2).unwrap_or("?")
    ));
    for reply in replies {
        narrate(&format!("    {reply}"));
    }

    narrate(&format!(
        "Burst: every member multicasts {burst} messages of 64 bytes at once."
    ));
    let expected_before = total_delivered(c, 0)?;
    let burst_started = Instant::now();
    for index in 0..c.members.len() {
        c.command(index, &format!("burst {GROUP} {burst} 64"))?;
    }
    let target = expected_before + u64::from(burst) * c.members.len() as u64;
    for index in 0..c.members.len() {
        c.command(index, &format!("await {GROUP} {target}"))?;
    }
    for index in 0..c.members.len() {
        c.wait_for(index, "REACHED", Duration::from_secs(120))?;
    }
    let elapsed = burst_started.elapsed();
    let delivered = u64::from(burst) * c.members.len() as u64 * c.members.len() as u64;
    narrate(&format!(
        "  {} deliveries in {:.2} s across {} members ({:.0} deliveries/s; a demo, not a benchmark).",
        delivered,
        elapsed.as_secs_f64(),
        c.members.len(),
        delivered as f64 / elapsed.as_secs_f64()
    ));

    let victim = 2;
    narrate(&format!(
        "Failure: SIGKILL to {} (pid {}).",
        letter(victim),
        c.members[victim].pid
    ));
    let killed_at = Instant::now();
    c.kill(victim)?;
    let view = loop {
        let view = c.wait_for(0, "VIEW", STEP)?;
        if view
            .split_whitespace()
            .nth(6)
            .is_some_and(|failed| failed != "-")
        {
            break view;
        }
    };
    let words: Vec<&str> = view.split_whitespace().collect();
    narrate(&format!(
        "  {:.0} ms later the survivors installed view {} = [{}], failed: [{}].",
        killed_at.elapsed().as_secs_f64() * 1000.0,
        words.get(2).unwrap_or(&"?"),
        words.get(3).unwrap_or(&"?"),
        words.get(6).unwrap_or(&"?"),
    ));
    c.command(0, &format!("send {GROUP} after the failure"))?;
    for index in 0..c.members.len() {
        if c.members[index].running {
            loop {
                let line = c.wait_for(index, "MSG", STEP)?;
                if line.ends_with("after the failure") {
                    break;
                }
            }
        }
    }
    narrate("  the survivors go on: a new multicast reached every one of them.");

    narrate(
        "Agreement check (view synchrony): survivors delivered the same messages in each view.",
    );
    c.collect();
    let checked = check::check(&check::logs(c, GROUP))?;
    narrate(&format!(
        "  {} view installs and {} (view, sender) tallies compared across members: all agree.",
        checked.views, checked.tallies
    ));

    for index in 0..c.members.len() {
        c.quit(index)?;
    }
    narrate(&format!(
        "Done in {:.1} s: every member left cleanly.",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Every member multicasts `<label> from <X>` with the command `verb`;
/// waits until every member delivered all of them and returns, per member,
/// the senders' letters in delivery order.
fn round(c: &mut Cluster, verb: &str, label: &str) -> Result<Vec<Vec<String>>, String> {
    let count = c.members.len();
    for index in 0..count {
        c.command(
            index,
            &format!("{verb} {GROUP} {label} from {}", letter(index)),
        )?;
    }
    let mut orders = Vec::new();
    for index in 0..count {
        let mut order = Vec::new();
        while order.len() < count {
            let line = c.wait_for(index, "MSG", STEP)?;
            if line.contains(&format!("{label} from ")) {
                order.push(line.rsplit(' ').next().unwrap_or("").to_owned());
            }
        }
        orders.push(order);
    }
    Ok(orders)
}

fn total_delivered(c: &mut Cluster, index: usize) -> Result<u64, String> {
    c.command(index, "stats")?;
    let stats = c.wait_for(index, "STATS", STEP)?;
    stats
        .split_whitespace()
        .find_map(|word| word.strip_prefix("delivered="))
        .and_then(|value| value.parse().ok())
        .ok_or_else(|| format!("bad STATS line: {stats}"))
}
