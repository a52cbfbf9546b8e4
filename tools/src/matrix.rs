//! `osiris bench matrix`: the standard benchmark matrix (issue 6): sizes
//! 64 B, 1 KiB, 64 KiB; 1 and 3 senders; every send kind; 3 and 5 members;
//! plus self-delivery latency at 64 B. Writes `<out>/<date>.json`, a
//! Markdown table `<out>/<date>.md` and an SVG plot `<out>/<date>.svg`
//! (throughput against message size, and latency percentiles). A cell that
//! fails is recorded as failed with its error; the matrix goes on.
//!
//! The cells run on loopback; run as root, the matrix adds `NETNS_ROWS`
//! in network namespaces (IP multicast over a bridge, raw IP multicast
//! baseline). `--netns` runs every cell in network namespaces instead.

use std::fmt::Write as _;
use std::path::Path;

use osiris_runtime::RuntimeError;

use osiris_tools::json::{nested, number, text};
use osiris_tools::netns;

use crate::bench::{latency_run, throughput_run, Latency, Setup, Throughput};

/// Message sizes of the matrix (64 KiB is left out of `--quick` runs and of
/// netns cells, whose raw IP multicast baseline sends one datagram per
/// message).
const SIZES: [usize; 3] = [64, 1024, 65536];
const KINDS: [&str; 4] = ["send", "causal", "ordered", "safe"];
/// The netns cells of the standard (loopback) matrix, as (kind, size), with
/// 3 members and 1 sender: a few seconds each.
const NETNS_ROWS: [(&str, usize); 4] = [
    ("send", 64),
    ("send", 1024),
    ("ordered", 64),
    ("ordered", 1024),
];

/// What `osiris bench matrix` runs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Fewer cells and messages (3 members, 1 sender).
    pub quick: bool,
    /// Every cell in network namespaces.
    pub netns: bool,
}

fn transport(netns: bool) -> &'static str {
    if netns {
        "netns"
    } else {
        "loopback"
    }
}

fn setup(kind: &str, members: u32, size: usize, netns: bool) -> Setup {
    Setup {
        kind: kind.to_owned(),
        members,
        size,
        idle: "backoff".to_owned(),
        pin: false,
        json: true,
        netns,
    }
}

/// Runs one throughput cell: its JSON record (or a failed one) and its
/// Markdown row.
fn throughput_cell(
    kind: &str,
    size: usize,
    members: u32,
    senders: u32,
    quick: bool,
    netns: bool,
) -> Option<(String, String)> {
    // About 20 MB or 100,000 messages per sender, whichever is less.
    let count = ((20 << 20) / size as u64).min(100_000) / u64::from(senders);
    let count = if quick { count / 4 } else { count }.max(100);
    let spec = Throughput {
        setup: setup(kind, members, size, netns),
        senders,
        count,
    };
    let network = transport(netns);
    eprintln!(
        "matrix: throughput {kind} {size} B, {members} members, {senders} sender(s), {network}"
    );
    let record = match throughput_run(spec) {
        Ok(Some(json)) => json,
        Ok(None) => return None,
        Err(error) => format!(
            "{{\"bench\":\"throughput\",\"kind\":\"{kind}\",\"size\":{size},\"members\":{members},\"senders\":{senders},\"transport\":\"{network}\",\"failed\":\"{}\"}}",
            error.to_string().replace('"', "'")
        ),
    };
    let cell = |key| number(&record, key);
    let row = match cell("msgs_per_s") {
        Some(msgs) => format!(
            "| {kind} | {size} | {members} | {senders} | {network} | {:.0} | {:.1} | {:.0} | {:.1} | {:.2} | {:.3} | {:.3} |",
            msgs,
            cell("mb_per_s").unwrap_or(0.0),
            cell("baseline_msgs_per_s").unwrap_or(0.0),
            cell("baseline_loss").unwrap_or(0.0) * 100.0,
            cell("ratio_msgs").unwrap_or(0.0),
            cell("syscalls_per_msg").unwrap_or(0.0),
            cell("allocations_per_msg").unwrap_or(0.0),
        ),
        None => format!("| {kind} | {size} | {members} | {senders} | {network} | failed | | | | | | |"),
    };
    Some((record, row))
}

pub fn run(out: &Path, options: Options, date: &str) -> Result<(), RuntimeError> {
    std::fs::create_dir_all(out)
        .map_err(|e| RuntimeError::Config(format!("{}: {e}", out.display())))?;
    let Options { quick, netns } = options;
    if netns {
        if let Some(reason) = netns::missing_prerequisite(&[]) {
            return Err(RuntimeError::Config(format!("--netns: {reason}")));
        }
    }
    let members_list: &[u32] = if quick { &[3] } else { &[3, 5] };
    let senders_list: &[u32] = if quick { &[1] } else { &[1, 3] };
    let mut records: Vec<String> = Vec::new();
    let mut rows: Vec<String> = Vec::new();
    let mut cells = Vec::new();
    for &members in members_list {
        for &senders in senders_list {
            for kind in KINDS {
                for size in SIZES {
                    if size <= 8192 || !(quick || netns) {
                        cells.push((kind, size, members, senders, netns));
                    }
                }
            }
        }
    }
    if !netns {
        match netns::missing_prerequisite(&[]) {
            None => cells.extend(NETNS_ROWS.map(|(kind, size)| (kind, size, 3, 1, true))),
            Some(reason) => eprintln!("matrix: no netns rows: {reason}"),
        }
    }
    for (kind, size, members, senders, netns) in cells {
        if let Some((record, row)) = throughput_cell(kind, size, members, senders, quick, netns) {
            records.push(record);
            rows.push(row);
        }
    }
    let mut latency_rows = Vec::new();
    // Per latency run: members, kind, then round trip p50 and p99 and the
    // raw UDP ping-pong p50 of the same run.
    let mut latency_table: Vec<(u32, &str, [f64; 5], [f64; 3])> = Vec::new();
    for &members in members_list {
        for kind in ["send", "ordered", "safe"] {
            let spec = Latency {
                setup: setup(kind, members, 64, netns),
                count: if quick { 5_000 } else { 20_000 },
                rate: 10_000,
            };
            eprintln!(
                "matrix: latency {kind} 64 B at 10,000 msgs/s, {members} members, {}",
                transport(netns)
            );
            let record = match latency_run(spec) {
                Ok(Some(json)) => json,
                Ok(None) => continue,
                Err(error) => format!(
                    "{{\"bench\":\"latency\",\"kind\":\"{kind}\",\"members\":{members},\"transport\":\"{}\",\"failed\":\"{}\"}}",
                    transport(netns),
                    error.to_string().replace('"', "'")
                ),
            };
            let p = |object, key| nested(&record, object, key).unwrap_or(0.0);
            let self_delivery = [
                p("self_delivery", "p50_us"),
                p("self_delivery", "p90_us"),
                p("self_delivery", "p99_us"),
                p("self_delivery", "p999_us"),
                p("self_delivery", "max_us"),
            ];
            let round_trip = [
                p("round_trip", "p50_us"),
                p("round_trip", "p99_us"),
                p("baseline_round_trip", "p50_us"),
            ];
            if members == members_list[0] {
                latency_rows.push((kind, self_delivery));
            }
            latency_table.push((members, kind, self_delivery, round_trip));
            records.push(record);
        }
    }

    let base = out.join(date);
    let write = |extension: &str, text: String| {
        let path = base.with_extension(extension);
        std::fs::write(&path, text)
            .map_err(|e| RuntimeError::Config(format!("{}: {e}", path.display())))
    };
    write("json", format!("[\n{}\n]\n", records.join(",\n")))?;
    let mut md = String::new();
    let _ = writeln!(md, "| kind | size B | members | senders | network | msgs/s per member | MB/s | raw msgs/s per receiver | raw loss % | ratio | syscalls/msg | allocs/msg |");
    let _ = writeln!(
        md,
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    for row in &rows {
        let _ = writeln!(md, "{row}");
    }
    let _ = writeln!(md, "\nThe raw baseline is raw UDP unicast to each receiver on loopback, raw IP multicast between the namespaces on netns rows.");
    let _ = writeln!(md, "\n| latency, 64 B at 10,000 msgs/s, {} (µs) | members | self-delivery p50 | p90 | p99 | p99.9 | max | round trip p50 | p99 | raw round trip p50 |", transport(netns));
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (members, kind, p, rtt) in &latency_table {
        let _ = writeln!(
            md,
            "| {kind} | {members} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
            p[0], p[1], p[2], p[3], p[4], rtt[0], rtt[1], rtt[2]
        );
    }
    write("md", md)?;
    write("svg", svg(&records, &latency_rows, transport(netns)))?;
    eprintln!("matrix: wrote {}.json, .md and .svg", base.display());
    Ok(())
}

/// Two panels: per-member msgs/s against message size (3 members, 1 sender,
/// one line per kind, raw UDP dashed; the cells of `network` only), and
/// latency percentiles per kind. Plain SVG written by hand: a few lines of
/// markup, no plotting dependency.
fn svg(records: &[String], latency: &[(&str, [f64; 5])], network: &str) -> String {
    const COLORS: [&str; 5] = ["#1f77b4", "#2ca02c", "#ff7f0e", "#d62728", "#7f7f7f"];
    let (width, height) = (960.0, 420.0);
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
    );
    // Panel 1: log-log throughput against size.
    let (x0, y0, w, h) = (60.0, 40.0, 380.0, 320.0);
    let series = |kind: &str, key: &str| -> Vec<(f64, f64)> {
        records
            .iter()
            .filter(|r| {
                r.contains("\"bench\":\"throughput\"")
                    && r.contains(&format!("\"kind\":\"{kind}\""))
            })
            .filter(|r| number(r, "members") == Some(3.0) && number(r, "senders") == Some(1.0))
            .filter(|r| text(r, "transport") == Some(network))
            .filter_map(|r| Some((number(r, "size")?, number(r, key)?)))
            .filter(|(_, v)| *v > 0.0)
            .collect()
    };
    let mut all: Vec<f64> = KINDS
        .iter()
        .flat_map(|k| series(k, "msgs_per_s"))
        .map(|p| p.1)
        .collect();
    all.extend(series("send", "baseline_msgs_per_s").iter().map(|p| p.1));
    let (lo, hi) = all
        .iter()
        .fold((f64::MAX, 1.0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    let (ylo, yhi) = (
        (lo.max(1.0)).log10().floor(),
        hi.log10().ceil().max(lo.log10().floor() + 1.0),
    );
    let px = |size: f64| x0 + (size.log2() - 6.0) / 10.0 * w;
    let py = |v: f64| y0 + h - (v.log10() - ylo) / (yhi - ylo) * h;
    let _ = writeln!(svg, "<text x=\"{x0}\" y=\"24\" font-size=\"14\">Delivered msgs/s per member (3 members, 1 sender, {network})</text>");
    let _ = writeln!(
        svg,
        "<rect x=\"{x0}\" y=\"{y0}\" width=\"{w}\" height=\"{h}\" fill=\"none\" stroke=\"#999\"/>"
    );
    for size in SIZES {
        let x = px(size as f64);
        let _ = writeln!(
            svg,
            "<text x=\"{x}\" y=\"{}\" text-anchor=\"middle\">{size} B</text>",
            y0 + h + 16.0
        );
    }
    let mut decade = ylo;
    while decade <= yhi {
        let y = py(10f64.powf(decade));
        let _ = writeln!(svg, "<line x1=\"{x0}\" x2=\"{}\" y1=\"{y}\" y2=\"{y}\" stroke=\"#eee\"/><text x=\"{}\" y=\"{}\" text-anchor=\"end\">1e{decade}</text>", x0 + w, x0 - 4.0, y + 4.0);
        decade += 1.0;
    }
    let mut legend = 0.0;
    let mut line = |svg: &mut String,
                    points: &[(f64, f64)],
                    color: &str,
                    dash: &str,
                    label: &str| {
        if points.is_empty() {
            return;
        }
        let path: Vec<String> = points
            .iter()
            .map(|(s, v)| format!("{:.1},{:.1}", px(*s), py(*v)))
            .collect();
        let _ = writeln!(svg, "<polyline points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/>", path.join(" "));
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"{color}\">{label}</text>",
            x0 + w - 90.0,
            y0 + 16.0 + legend
        );
        legend += 14.0;
    };
    for (index, kind) in KINDS.iter().enumerate() {
        line(
            &mut svg,
            &series(kind, "msgs_per_s"),
            COLORS[index],
            "",
            kind,
        );
    }
    line(
        &mut svg,
        &series("send", "baseline_msgs_per_s"),
        COLORS[4],
        "6 4",
        "raw",
    );
    // Panel 2: latency percentiles, one bar group per kind (log scale).
    let (x1, w1) = (540.0, 380.0);
    let _ = writeln!(svg, "<text x=\"{x1}\" y=\"24\" font-size=\"14\">Self-delivery latency, 64 B at 10,000 msgs/s (µs)</text>");
    let _ = writeln!(
        svg,
        "<rect x=\"{x1}\" y=\"{y0}\" width=\"{w1}\" height=\"{h}\" fill=\"none\" stroke=\"#999\"/>"
    );
    let max = latency
        .iter()
        .flat_map(|(_, p)| p.iter().copied())
        .fold(10.0f64, f64::max);
    let top = max.log10().ceil();
    let ly = |v: f64| y0 + h - (v.max(1.0).log10() / top) * h;
    let labels = ["p50", "p90", "p99", "p99.9", "max"];
    let group_w = w1 / latency.len().max(1) as f64;
    for (g, (kind, p)) in latency.iter().enumerate() {
        let gx = x1 + g as f64 * group_w;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{kind}</text>",
            gx + group_w / 2.0,
            y0 + h + 16.0
        );
        for (i, value) in p.iter().enumerate() {
            let bar_w = group_w / 6.0;
            let x = gx + bar_w * (i as f64 + 0.5);
            let y = ly(*value);
            let _ = writeln!(svg, "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"><title>{} {:.1} µs</title></rect>", bar_w * 0.9, y0 + h - y, COLORS[i], labels[i], value);
        }
    }
    for (i, label) in labels.iter().enumerate() {
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" fill=\"{}\">{label}</text>",
            x1 + w1 - 50.0,
            y0 + 16.0 + 14.0 * i as f64,
            COLORS[i]
        );
    }
    let mut decade = 0.0;
    while decade <= top {
        let y = ly(10f64.powf(decade));
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">1e{decade}</text>",
            x1 - 4.0,
            y + 4.0
        );
        decade += 1.0;
    }
    svg.push_str("</svg>\n");
    svg
}
