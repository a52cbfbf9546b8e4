//! `osiris bench`: throughput and latency between member processes, each
//! beside a raw UDP baseline measured by the same tool in the same run
//! (sendmmsg/recvmmsg through the same socket layer, one datagram per
//! message, no protocol), so every figure is also a ratio.
//!
//! Members run on loopback (group traffic by fan-out, baseline raw UDP
//! unicast to each receiver) or, with `--netns`, each in its own network
//! namespace on a bridge (group traffic by IP multicast, baseline raw IP
//! multicast from the sender's namespace to receivers in the others). The
//! baseline's sockets are made inside the namespaces by threads of this
//! process (`netns::in_namespace`), so its receivers report to it directly.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osiris_runtime::{IdleAction, IdleStrategy, Idler, RuntimeConfig, RuntimeError};
use osiris_tools::cluster::{loopback_config, Cluster};
use osiris_tools::netns::{self, Lab};
use osiris_transport::{
    Destination, Interest, MulticastMembership, Transmit, Transport, UdpConfig, UdpTransport,
};

const GROUP: &str = "bench";
const STEP: Duration = Duration::from_secs(30);
/// Second octet of the `--netns` lab's addresses (10.203.x.0/24, x = pid mod
/// 256) and of its multicast /16 (239.203.0.0). They exist only inside the
/// lab's namespaces, so they cannot clash with the machine's or another
/// run's; the pid in the namespace names keeps parallel runs apart.
const LAB_OCTET: u8 = 203;

/// What every bench run shares: the group and how its members run.
#[derive(Debug, Clone)]
pub struct Setup {
    /// `send`, `causal`, `ordered` or `safe`.
    pub kind: String,
    pub members: u32,
    pub size: usize,
    /// `backoff`, `block`, `yield` or `busy-spin`.
    pub idle: String,
    /// Pin member i's data plane to core i mod the core count.
    pub pin: bool,
    /// Print one JSON object instead of tables.
    pub json: bool,
    /// One network namespace per member, IP multicast over a bridge.
    pub netns: bool,
}

#[derive(Debug, Clone)]
pub struct Throughput {
    pub setup: Setup,
    pub senders: u32,
    pub count: u64,
}

#[derive(Debug, Clone)]
pub struct Latency {
    pub setup: Setup,
    pub count: u64,
    /// Offered rate, messages per second; 0 = saturation.
    pub rate: u64,
}

/// One member's (or one raw receiver's) rate.
#[derive(Debug, Clone, Copy)]
struct Rate {
    messages: u64,
    seconds: f64,
}

impl Rate {
    fn per_second(self) -> f64 {
        if self.seconds > 0.0 {
            self.messages as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// Counters of one member between two `stats` lines.
#[derive(Debug, Clone, Copy, Default)]
struct Costs {
    delivered: u64,
    syscalls: u64,
    allocations: u64,
    retransmissions: u64,
    naks: u64,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0usize), |(sum, count), v| (sum + v, count + 1));
    if count == 0 {
        0.0
    } else {
        sum / count as f64
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

/// Where the members run, and what the raw baseline is made of.
#[derive(Debug)]
enum Network {
    /// Every member on 127.0.0.1; group traffic by fan-out; the baseline
    /// sends raw UDP unicast to each receiver.
    Loopback,
    /// Member `i` on host `i` of a lab; group traffic by IP multicast over
    /// the bridge; the baseline sends raw IP multicast from the senders'
    /// hosts to receivers on the other members' hosts.
    Netns(Lab),
}

impl Network {
    fn new(setup: &Setup) -> Result<Network, String> {
        if !setup.netns {
            return Ok(Network::Loopback);
        }
        if let Some(reason) = netns::missing_prerequisite(&[]) {
            return Err(format!("--netns: {reason}"));
        }
        let hosts = u8::try_from(setup.members)
            .ok()
            .filter(|&hosts| hosts <= 250)
            .ok_or("--netns runs at most 250 members")?;
        Lab::build("osrb", std::process::id(), LAB_OCTET, hosts).map(Network::Netns)
    }

    fn lab(&self) -> Option<&Lab> {
        match self {
            Network::Loopback => None,
            Network::Netns(lab) => Some(lab),
        }
    }

    /// The JSON `transport` value.
    fn name(&self) -> &'static str {
        match self {
            Network::Loopback => "loopback",
            Network::Netns(_) => "netns",
        }
    }

    /// Config text and wrapper command of member `node` (1, 2, ...).
    fn member(&self, node: u32, seed: Option<SocketAddr>, extra: &str) -> (String, Vec<String>) {
        match self {
            Network::Loopback => (loopback_config(node, seed, extra), Vec::new()),
            Network::Netns(lab) => {
                let host = node as u8;
                (
                    lab.member_config(host, seed, false, extra),
                    lab.wrapper(host),
                )
            }
        }
    }

    /// A raw socket of host `host` bound to its address (or 127.0.0.1).
    fn host_socket(&self, host: u8) -> Result<UdpTransport, String> {
        let ip = self
            .lab()
            .map_or(Ipv4Addr::LOCALHOST, |lab| lab.host_addr(host));
        raw_socket(self.lab(), host, SocketAddr::from((ip, 0)), |_| {})
    }

    /// The two ends of the raw ping-pong: hosts 1 and 2, like the members'.
    fn ping_pong_sockets(&self) -> Result<(UdpTransport, UdpTransport), String> {
        Ok((self.host_socket(1)?, self.host_socket(2)?))
    }

    /// The raw throughput baseline's sockets: receivers on hosts 2.. (one per
    /// member but the first), senders on hosts 1.. (one per sending member).
    fn raw_plan(&self, receivers: u32, senders: u32, count: u64) -> Result<RawPlan, String> {
        let senders_sockets = (1..=senders)
            .map(|host| self.sender_socket(host as u8))
            .collect::<Result<Vec<_>, _>>()?;
        let Network::Netns(lab) = self else {
            let receivers = (2..=receivers + 1)
                .map(|host| Ok((self.host_socket(host as u8)?, count * u64::from(senders))))
                .collect::<Result<Vec<_>, String>>()?;
            let destinations = receivers
                .iter()
                .map(|(socket, _)| Destination::Unicast(socket.local_addr()))
                .collect();
            return Ok(RawPlan {
                receivers,
                senders: senders_sockets,
                destinations,
            });
        };
        let group = raw_group(lab);
        let receivers = (2..=receivers + 1)
            .map(|host| {
                let host = host as u8;
                let interface = lab.host_addr(host);
                let bind = SocketAddr::from(([0, 0, 0, 0], group.port()));
                let socket = raw_socket(Some(lab), host, bind, |config| {
                    config.multicast.groups.push(MulticastMembership {
                        group: *group.ip(),
                        interface,
                    });
                })?;
                // A sender's own datagrams do not loop back to its host.
                let from_elsewhere = senders - u32::from(u32::from(host) <= senders);
                Ok((socket, count * u64::from(from_elsewhere)))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(RawPlan {
            receivers,
            senders: senders_sockets,
            destinations: vec![Destination::Multicast(group)],
        })
    }

    fn sender_socket(&self, host: u8) -> Result<UdpTransport, String> {
        let Network::Netns(lab) = self else {
            return self.host_socket(host);
        };
        let interface = lab.host_addr(host);
        raw_socket(
            Some(lab),
            host,
            SocketAddr::from((interface, 0)),
            |config| {
                config.multicast.interface = Some(interface);
                config.multicast.loopback = false;
            },
        )
    }

    /// IP multicast packets sent and received, summed over the hosts'
    /// namespaces (`IpExt` counters); `None` on loopback.
    fn multicast_packets(&self) -> Result<Option<(u64, u64)>, String> {
        let Network::Netns(lab) = self else {
            return Ok(None);
        };
        let (mut sent, mut received) = (0, 0);
        for host in 1..=lab.hosts() {
            sent += lab.counter(host, "IpExt:OutMcastPkts")?;
            received += lab.counter(host, "IpExt:InMcastPkts")?;
        }
        Ok(Some((sent, received)))
    }
}

/// The group address of the raw IP multicast baseline. The members' group
/// may map into the same /16: the two never run at the same time.
fn raw_group(lab: &Lab) -> SocketAddrV4 {
    let [a, b, _, _] = lab.multicast_base().octets();
    SocketAddrV4::new(Ipv4Addr::new(a, b, 255, 1), lab.multicast_port())
}

/// Starts the members, joins the group, waits for the full view.
fn form(setup: &Setup, network: &Network) -> Result<Cluster, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = Cluster::new(&exe, "bench")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let extra = |index: u32| {
        let mut extra = format!("idle = \"{}\"\n", setup.idle);
        if setup.pin {
            let _ = writeln!(extra, "pin_core = {}", index as usize % cores);
        }
        // Large messages need room: a payload limit of at least the size,
        // and frames that hold one (the transport fragments large frames).
        let _ = writeln!(extra, "[limits]\npayload_max = {}", setup.size.max(8192));
        if setup.size > 8192 {
            let _ = writeln!(extra, "frame_max = {}", setup.size + 4096);
        }
        // The core's window counts messages, not bytes: keep about 4 MiB in
        // flight per sender so large messages do not swamp socket buffers
        // (and starve heartbeats). A byte-based window is future work.
        let _ = writeln!(
            extra,
            "send_window = {}",
            ((4 << 20) / setup.size).clamp(16, 1024)
        );
        extra
    };
    let (config, wrapper) = network.member(1, None, &extra(0));
    let first = c.spawn(&config, &wrapper)?;
    let seed = c.members[first].addr;
    c.command(first, &format!("join {GROUP}"))?;
    c.wait_for(first, "JOINED", STEP)?;
    for node in 2..=setup.members {
        let (config, wrapper) = network.member(node, Some(seed), &extra(node - 1));
        let index = c.spawn(&config, &wrapper)?;
        c.command(index, &format!("join {GROUP}"))?;
        c.wait_for(index, "JOINED", STEP)?;
    }
    for index in 0..c.members.len() {
        c.wait_view_size(index, setup.members as usize, STEP)?;
    }
    Ok(c)
}

fn costs(c: &mut Cluster, index: usize) -> Result<Costs, String> {
    c.command(index, "stats")?;
    let line = c.wait_for(index, "STATS", STEP)?;
    let field = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    };
    Ok(Costs {
        delivered: field("delivered="),
        syscalls: field("sendmmsg=")
            + field("recvmmsg=")
            + field("mcast_sendmmsg=")
            + field("mcast_recvmmsg=")
            + field("blocks="),
        allocations: field("allocations="),
        retransmissions: field("retransmissions="),
        naks: field("naks="),
    })
}

/// Runs one burst from the senders and waits for every member to deliver
/// it; returns each member's delivery rate over the burst.
fn burst_all(
    c: &mut Cluster,
    spec: &Throughput,
    target: u64,
    quiet: bool,
) -> Result<Vec<Rate>, String> {
    for index in 0..spec.senders as usize {
        c.command(
            index,
            &format!(
                "burst {GROUP} {} {} {}",
                spec.count, spec.setup.size, spec.setup.kind
            ),
        )?;
    }
    for index in 0..c.members.len() {
        c.command(index, &format!("await {GROUP} {target}"))?;
    }
    let started = Instant::now();
    let mut rates = Vec::new();
    for index in 0..c.members.len() {
        let line = loop {
            let line = c.wait_until(
                index,
                "REACHED",
                |line| line.starts_with("REACHED") || line.starts_with("PROGRESS"),
                Duration::from_secs(300),
            )?;
            if line.starts_with("REACHED") {
                break line;
            }
            if !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
                let words: Vec<&str> = line.split_whitespace().collect();
                eprint!(
                    "\r  member {}: {} of {} delivered, {:.1} s   ",
                    index + 1,
                    words.get(1).unwrap_or(&"?"),
                    words.get(2).unwrap_or(&"?"),
                    started.elapsed().as_secs_f64()
                );
            }
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        let messages: u64 = words.get(3).and_then(|w| w.parse().ok()).unwrap_or(0);
        let micros: u64 = words.get(4).and_then(|w| w.parse().ok()).unwrap_or(0);
        rates.push(Rate {
            messages,
            seconds: micros as f64 / 1e6,
        });
    }
    if !quiet {
        eprint!("\r{:60}\r", "");
    }
    Ok(rates)
}

pub fn throughput(spec: Throughput) -> Result<(), RuntimeError> {
    if let Some(json) = throughput_run(spec)? {
        println!("{json}");
    }
    Ok(())
}

/// Runs one throughput benchmark. With `setup.json`, returns the result as
/// one JSON object (and prints nothing); else prints tables.
pub fn throughput_run(spec: Throughput) -> Result<Option<String>, RuntimeError> {
    let mut spec = spec;
    spec.setup.members = spec.setup.members.max(2);
    spec.senders = spec.senders.clamp(1, spec.setup.members);
    spec.setup.size = spec.setup.size.max(10);
    spec.count = spec.count.max(1);
    let setup = spec.setup.clone();
    // On loopback a larger message goes through the same transport's
    // fragmentation in the baseline too (two datagrams for 64 KiB); raw IP
    // multicast between namespaces sends one datagram per message.
    if setup.netns && setup.size > osiris_transport::udp::UDP_PAYLOAD_MAX {
        return Err(RuntimeError::Config(format!(
            "--size {} with --netns: the raw IP multicast baseline sends one datagram per message, at most {} bytes",
            setup.size,
            osiris_transport::udp::UDP_PAYLOAD_MAX
        )));
    }
    // Declared before the members: dropped (namespaces deleted) after them.
    let network = Network::new(&setup).map_err(RuntimeError::Config)?;
    if !setup.json {
        println!(
            "bench throughput: kind {}, {} B messages, {} members, {} sender(s), {} messages per sender, idle {}, {}",
            setup.kind, setup.size, setup.members, spec.senders, spec.count, setup.idle,
            if setup.netns { "network namespaces, IP multicast" } else { "loopback, fan-out" }
        );
    }
    let plan = network
        .raw_plan(setup.members - 1, spec.senders, spec.count)
        .map_err(RuntimeError::Config)?;
    let raw = raw_baseline(plan, setup.size, spec.count).map_err(RuntimeError::Config)?;
    let mut c = form(&setup, &network).map_err(RuntimeError::Config)?;
    let mut multicast = None;
    let run = (|| -> Result<(Vec<Rate>, Vec<Costs>), String> {
        // The members run the runtime's default ring.
        let ring_len =
            RuntimeConfig::new(0, SocketAddr::from(([127, 0, 0, 1], 0))).submit_ring_len as u64;
        // Warm-up: the pools reach their working size. Each sender's
        // submission ring hands out its prefilled buffers in turn (FIFO),
        // each growing once to the message size: send at least a ring's
        // worth so that the measured burst meets only grown ones.
        let warm = Throughput {
            count: (spec.count / 10).max(ring_len),
            ..spec.clone()
        };
        let per_burst_warm = warm.count * u64::from(spec.senders);
        burst_all(&mut c, &warm, per_burst_warm, true)?;
        let before: Vec<Costs> = (0..c.members.len())
            .map(|index| costs(&mut c, index))
            .collect::<Result<_, _>>()?;
        let target = per_burst_warm + spec.count * u64::from(spec.senders);
        for index in 0..c.members.len() {
            c.command(index, &format!("mark {GROUP}"))?;
        }
        let packets_before = network.multicast_packets()?;
        let rates = burst_all(&mut c, &spec, target, setup.json)?;
        let after: Vec<Costs> = (0..c.members.len())
            .map(|index| costs(&mut c, index))
            .collect::<Result<_, _>>()?;
        if let (Some(before), Some(after)) = (packets_before, network.multicast_packets()?) {
            multicast = Some((after.0 - before.0, after.1 - before.1));
        }
        let deltas = before
            .iter()
            .zip(&after)
            .map(|(b, a)| Costs {
                delivered: a.delivered - b.delivered,
                syscalls: a.syscalls - b.syscalls,
                // The stats command itself allocates a few times.
                allocations: a.allocations - b.allocations,
                retransmissions: a.retransmissions - b.retransmissions,
                naks: a.naks - b.naks,
            })
            .collect();
        Ok((rates, deltas))
    })();
    for index in 0..c.members.len() {
        let _ = c.quit(index);
    }
    let (rates, deltas) = run.map_err(RuntimeError::Config)?;

    let size = setup.size as f64;
    let msgs = mean(rates.iter().map(|r| r.per_second()));
    let raw_msgs = mean(raw.rates.iter().map(|r| r.per_second()));
    let raw_sent = mean(raw.sent.iter().map(|r| r.per_second()));
    let delivered: u64 = deltas.iter().map(|d| d.delivered).sum();
    let syscalls_per_message = ratio(
        deltas.iter().map(|d| d.syscalls).sum::<u64>() as f64,
        delivered as f64,
    );
    let allocations_per_message = ratio(
        deltas.iter().map(|d| d.allocations).sum::<u64>() as f64,
        delivered as f64,
    );
    let retransmissions: u64 = deltas.iter().map(|d| d.retransmissions).sum();
    let naks: u64 = deltas.iter().map(|d| d.naks).sum();
    if setup.json {
        let members: Vec<String> = rates
            .iter()
            .map(|r| format!("{:.0}", r.per_second()))
            .collect();
        let packets = multicast.map_or(String::new(), |(sent, received)| {
            format!(",\"multicast_packets_sent\":{sent},\"multicast_packets_received\":{received}")
        });
        return Ok(Some(format!(
            "{{\"bench\":\"throughput\",\"kind\":\"{}\",\"size\":{},\"members\":{},\"senders\":{},\"count\":{},\"idle\":\"{}\",\"transport\":\"{}\",\"baseline\":\"{}\",\"msgs_per_s\":{:.0},\"mb_per_s\":{:.3},\"overall_msgs_per_s\":{:.0},\"member_msgs_per_s\":[{}],\"baseline_msgs_per_s\":{:.0},\"baseline_mb_per_s\":{:.3},\"baseline_loss\":{:.4},\"baseline_sent_msgs_per_s\":{:.0},\"ratio_msgs\":{:.3},\"ratio_mb\":{:.3},\"syscalls_per_msg\":{:.5},\"allocations_per_msg\":{:.5},\"retransmissions\":{retransmissions},\"naks_sent\":{naks}{packets}}}",
            setup.kind,
            setup.size,
            setup.members,
            spec.senders,
            spec.count,
            setup.idle,
            network.name(),
            raw.kind,
            msgs,
            msgs * size / 1e6,
            msgs * rates.len() as f64,
            members.join(","),
            raw_msgs,
            raw_msgs * size / 1e6,
            raw.loss,
            raw_sent,
            ratio(msgs, raw_msgs),
            ratio(msgs, raw_msgs),
            syscalls_per_message,
            allocations_per_message,
        )));
    }
    println!(
        "{:<28} {:>12} {:>14} {:>10}",
        "", "messages", "msgs/s", "MB/s"
    );
    for (index, rate) in rates.iter().enumerate() {
        println!(
            "{:<28} {:>12} {:>14.0} {:>10.1}",
            format!("osiris member {}", index + 1),
            rate.messages,
            rate.per_second(),
            rate.per_second() * size / 1e6
        );
    }
    for (index, rate) in raw.rates.iter().enumerate() {
        println!(
            "{:<28} {:>12} {:>14.0} {:>10.1}",
            format!("raw receiver {}", index + 1),
            rate.messages,
            rate.per_second(),
            rate.per_second() * size / 1e6
        );
    }
    println!(
        "raw baseline ({}): {} sender thread(s) sent {:.0} datagrams/s each -> {} receiver(s), {:.1}% of datagrams lost",
        raw.kind,
        spec.senders,
        raw_sent,
        setup.members - 1,
        raw.loss * 100.0
    );
    if let Some((sent, received)) = multicast {
        println!(
            "IP multicast packets during the measured burst, over all namespaces: {sent} sent, {received} received"
        );
    }
    println!(
        "osiris overall: {:.0} deliveries/s; per delivered message: {:.4} system calls, {:.4} allocations (steady state, after a warm-up burst); {retransmissions} retransmissions, {naks} NAKs",
        msgs * rates.len() as f64,
        syscalls_per_message,
        allocations_per_message
    );
    println!(
        "per-member delivered msgs/s: osiris {:.0}, raw {:.0}, ratio {:.2} (MB/s ratio the same)",
        msgs,
        raw_msgs,
        ratio(msgs, raw_msgs)
    );
    Ok(None)
}

pub fn latency(spec: Latency) -> Result<(), RuntimeError> {
    if let Some(json) = latency_run(spec)? {
        println!("{json}");
    }
    Ok(())
}

/// Runs one latency benchmark; as `throughput_run`.
pub fn latency_run(spec: Latency) -> Result<Option<String>, RuntimeError> {
    let mut spec = spec;
    spec.setup.members = spec.setup.members.max(2);
    spec.setup.size = spec.setup.size.max(22);
    let setup = spec.setup.clone();
    // Declared before the members: dropped (namespaces deleted) after them.
    let network = Network::new(&setup).map_err(RuntimeError::Config)?;
    let sockets = network.ping_pong_sockets().map_err(RuntimeError::Config)?;
    let raw =
        raw_ping_pong(sockets, setup.size, spec.count.min(20_000)).map_err(RuntimeError::Config)?;
    let mut c = form(&setup, &network).map_err(RuntimeError::Config)?;
    let run = (|| -> Result<(Vec<u64>, Vec<u64>), String> {
        // Warm-up, then the measured runs.
        c.command(
            0,
            &format!(
                "latency {GROUP} {} {} {} {}",
                spec.count / 10 + 1,
                setup.size,
                setup.kind,
                spec.rate
            ),
        )?;
        c.wait_for(0, "LATENCY", Duration::from_secs(300))?;
        c.command(
            0,
            &format!(
                "latency {GROUP} {} {} {} {}",
                spec.count, setup.size, setup.kind, spec.rate
            ),
        )?;
        let self_delivery =
            parse_percentiles(&c.wait_for(0, "LATENCY", Duration::from_secs(300))?);
        let peer = c.members[1].node;
        c.command(
            0,
            &format!(
                "ping {GROUP} {peer} {} {}",
                spec.count.min(20_000),
                setup.size
            ),
        )?;
        let round_trip = parse_percentiles(&c.wait_for(0, "RTT", Duration::from_secs(300))?);
        Ok((self_delivery, round_trip))
    })();
    for index in 0..c.members.len() {
        let _ = c.quit(index);
    }
    let (self_delivery, round_trip) = run.map_err(RuntimeError::Config)?;
    let us = |ns: u64| ns as f64 / 1000.0;
    if setup.json {
        let list = |values: &[u64]| {
            format!(
                "{{\"p50_us\":{:.2},\"p90_us\":{:.2},\"p99_us\":{:.2},\"p999_us\":{:.2},\"max_us\":{:.2}}}",
                us(values[0]),
                us(values[1]),
                us(values[2]),
                us(values[3]),
                us(values[4])
            )
        };
        return Ok(Some(format!(
            "{{\"bench\":\"latency\",\"kind\":\"{}\",\"size\":{},\"members\":{},\"count\":{},\"rate\":{},\"idle\":\"{}\",\"transport\":\"{}\",\"baseline\":\"raw-udp-ping-pong\",\"self_delivery\":{},\"round_trip\":{},\"baseline_round_trip\":{},\"ratio_p50_rtt\":{:.3}}}",
            setup.kind,
            setup.size,
            setup.members,
            spec.count,
            spec.rate,
            setup.idle,
            network.name(),
            list(&self_delivery),
            list(&round_trip),
            list(&raw),
            ratio(round_trip[0] as f64, raw[0] as f64),
        )));
    }
    println!(
        "bench latency: kind {}, {} B, {} members, {} messages, {}, idle {}, {}",
        setup.kind,
        setup.size,
        setup.members,
        spec.count,
        if spec.rate == 0 {
            "at saturation".to_owned()
        } else {
            format!(
                "offered {} msgs/s (coordinated omission corrected)",
                spec.rate
            )
        },
        setup.idle,
        network.name()
    );
    println!(
        "{:<40} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "microseconds", "p50", "p90", "p99", "p99.9", "max"
    );
    for (label, values) in [
        (format!("{} self-delivery", setup.kind), &self_delivery),
        ("point-to-point round trip".to_owned(), &round_trip),
        ("raw UDP round trip (baseline)".to_owned(), &raw),
    ] {
        println!(
            "{:<40} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            label,
            us(values[0]),
            us(values[1]),
            us(values[2]),
            us(values[3]),
            us(values[4])
        );
    }
    println!(
        "round trip p50: osiris / raw UDP = {:.2}",
        ratio(round_trip[0] as f64, raw[0] as f64)
    );
    Ok(None)
}

/// `LATENCY|RTT group count p50 p90 p99 p999 max` → the five percentiles.
fn parse_percentiles(line: &str) -> Vec<u64> {
    let mut values: Vec<u64> = line
        .split_whitespace()
        .skip(3)
        .filter_map(|w| w.parse().ok())
        .collect();
    values.resize(5, 0);
    values
}

struct RawResult {
    /// Per receiver: datagrams received, first to last.
    rates: Vec<Rate>,
    /// Per sender: datagrams sent, first call to last.
    sent: Vec<Rate>,
    /// Share of the datagrams due at the receivers that did not arrive.
    loss: f64,
    /// The JSON `baseline` value.
    kind: &'static str,
}

/// The raw throughput baseline's sockets, made (and in `--netns` joined to
/// the group) before any datagram is sent.
struct RawPlan {
    /// Each receiver's socket and the datagrams due to it.
    receivers: Vec<(UdpTransport, u64)>,
    senders: Vec<UdpTransport>,
    /// Where every sender sends each datagram: one multicast group, or
    /// every receiver's unicast address.
    destinations: Vec<Destination>,
}

/// A UDP socket without GSO or GRO (one datagram per message) bound to
/// `bind`; made inside host `host`'s namespace when there is a lab.
fn raw_socket(
    lab: Option<&Lab>,
    host: u8,
    bind: SocketAddr,
    configure: impl FnOnce(&mut UdpConfig) + Send,
) -> Result<UdpTransport, String> {
    let make = move || {
        let mut config = UdpConfig::new(bind);
        config.gso = false;
        config.gro = false;
        configure(&mut config);
        UdpTransport::new(config).map_err(|e| e.to_string())
    };
    match lab {
        None => make(),
        Some(lab) => netns::in_namespace(&lab.host_namespace(host), make)?,
    }
}

/// Sender threads send `count` datagrams of `size` bytes to every
/// destination (up to 64 per `sendmmsg`); receiver threads `recvmmsg` and
/// count. The rate is what a receiver got, first datagram to last.
fn raw_baseline(plan: RawPlan, size: usize, count: u64) -> Result<RawResult, String> {
    let kind = match plan.destinations.first() {
        Some(Destination::Multicast(_)) => "raw-ip-multicast",
        _ => "raw-udp-unicast",
    };
    let done = Arc::new(AtomicBool::new(false));
    let due: u64 = plan.receivers.iter().map(|(_, expected)| expected).sum();
    let receiver_threads: Vec<_> = plan
        .receivers
        .into_iter()
        .map(|(mut transport, expected)| {
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut batch = transport.new_recv_batch();
                let mut received = 0u64;
                let mut first = None;
                let mut last = Instant::now();
                let mut quiet_since: Option<Instant> = None;
                while received < expected {
                    let got = transport
                        .recv_batch(&mut batch, Instant::now())
                        .unwrap_or(0);
                    if got > 0 {
                        let now = Instant::now();
                        first.get_or_insert(now);
                        last = now;
                        received += got as u64;
                        quiet_since = None;
                        continue;
                    }
                    // After the senders finished, 200 ms of silence ends it.
                    if done.load(Ordering::SeqCst) {
                        let since = *quiet_since.get_or_insert_with(Instant::now);
                        if since.elapsed() > Duration::from_millis(200) {
                            break;
                        }
                    }
                    let _ = transport.wait(Interest::READABLE, Some(Duration::from_millis(10)));
                }
                Rate {
                    messages: received,
                    seconds: first.map_or(0.0, |first| last.duration_since(first).as_secs_f64()),
                }
            })
        })
        .collect();
    let sender_threads: Vec<_> = plan
        .senders
        .into_iter()
        .map(|mut transport| {
            let destinations = plan.destinations.clone();
            std::thread::spawn(move || -> Result<Rate, String> {
                let payload = vec![0x5a; size];
                let per_call = (64 / destinations.len().max(1)).max(1);
                let mut list = Vec::with_capacity(64);
                let mut sent = 0u64;
                let started = Instant::now();
                while sent < count {
                    list.clear();
                    let n = (count - sent).min(per_call as u64);
                    for _ in 0..n {
                        for &destination in &destinations {
                            list.push(Transmit {
                                destination,
                                frame: &payload,
                            });
                        }
                    }
                    let mut offset = 0;
                    while offset < list.len() {
                        offset += transport
                            .send_batch(&list[offset..])
                            .map_err(|e| e.to_string())?;
                        if offset < list.len() {
                            let _ =
                                transport.wait(Interest::WRITABLE, Some(Duration::from_millis(10)));
                        }
                    }
                    sent += n;
                }
                Ok(Rate {
                    messages: sent,
                    seconds: started.elapsed().as_secs_f64(),
                })
            })
        })
        .collect();
    let sent = sender_threads
        .into_iter()
        .map(|thread| thread.join().map_err(|_| "raw sender panicked")?)
        .collect::<Result<Vec<Rate>, String>>();
    // Set even when a sender failed, so that the receivers end.
    done.store(true, Ordering::SeqCst);
    let rates: Vec<Rate> = receiver_threads
        .into_iter()
        .map(|thread| {
            thread
                .join()
                .map_err(|_| "raw receiver panicked".to_owned())
        })
        .collect::<Result<_, _>>()?;
    let received: u64 = rates.iter().map(|rate| rate.messages).sum();
    Ok(RawResult {
        loss: 1.0 - received as f64 / due.max(1) as f64,
        rates,
        sent: sent?,
        kind,
    })
}

/// Waits the way the members' default idle strategy does (spin, yield,
/// then `ppoll` with a growing bound), so the baseline idles like Osiris.
fn idle_wait(idler: &mut Idler, transport: &mut UdpTransport) {
    match idler.idle() {
        IdleAction::Spin => std::hint::spin_loop(),
        IdleAction::Yield => std::thread::yield_now(),
        IdleAction::Block(bound) => {
            let _ = transport.wait(
                Interest::READABLE,
                bound.or(Some(Duration::from_millis(100))),
            );
        }
    }
}

/// Raw UDP ping-pong between two threads (one datagram each way), idling
/// like the members' default `backoff` strategy: the round-trip percentiles.
fn raw_ping_pong(
    (mut pinger, mut ponger): (UdpTransport, UdpTransport),
    size: usize,
    count: u64,
) -> Result<Vec<u64>, String> {
    let ping_addr = pinger.local_addr();
    let pong_addr = ponger.local_addr();
    let rounds = count.max(1);
    let echo = std::thread::spawn(move || {
        let mut batch = ponger.new_recv_batch();
        let mut idler = Idler::new(IdleStrategy::default());
        let mut echoed = 0;
        let payload = vec![0u8; size];
        while echoed < rounds {
            let got = ponger.recv_batch(&mut batch, Instant::now()).unwrap_or(0);
            for _ in 0..got {
                let _ = ponger.send_batch(&[Transmit {
                    destination: Destination::Unicast(ping_addr),
                    frame: &payload,
                }]);
                echoed += 1;
            }
            if got == 0 {
                idle_wait(&mut idler, &mut ponger);
            } else {
                idler.reset();
            }
        }
    });
    let mut histogram = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| e.to_string())?;
    let mut batch = pinger.new_recv_batch();
    let mut idler = Idler::new(IdleStrategy::default());
    let payload = vec![0u8; size];
    for _ in 0..rounds {
        let sent = Instant::now();
        pinger
            .send_batch(&[Transmit {
                destination: Destination::Unicast(pong_addr),
                frame: &payload,
            }])
            .map_err(|e| e.to_string())?;
        idler.reset();
        while pinger.recv_batch(&mut batch, Instant::now()).unwrap_or(0) == 0 {
            idle_wait(&mut idler, &mut pinger);
        }
        let _ = histogram.record(
            u64::try_from(sent.elapsed().as_nanos())
                .unwrap_or(u64::MAX)
                .max(1),
        );
    }
    let _ = echo.join();
    Ok(vec![
        histogram.value_at_quantile(0.5),
        histogram.value_at_quantile(0.9),
        histogram.value_at_quantile(0.99),
        histogram.value_at_quantile(0.999),
        histogram.max(),
    ])
}
