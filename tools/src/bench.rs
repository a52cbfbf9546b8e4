//! `osiris bench`: throughput and latency between member processes on
//! loopback, each beside a raw UDP baseline measured by the same tool in the
//! same run (sendmmsg/recvmmsg through the same socket layer, one datagram
//! per message, no protocol), so every figure is also a ratio.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osiris_runtime::{IdleAction, IdleStrategy, Idler, RuntimeError};
use osiris_tools::cluster::{loopback_config, Cluster};
use osiris_transport::{Destination, Interest, Transmit, Transport, UdpConfig, UdpTransport};

const GROUP: &str = "bench";
const STEP: Duration = Duration::from_secs(30);

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

/// Starts the members, joins the group, waits for the full view.
fn form(setup: &Setup) -> Result<Cluster, String> {
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
    let first = c.spawn(&loopback_config(1, None, &extra(0)), &[])?;
    let seed = c.members[first].addr;
    c.command(first, &format!("join {GROUP}"))?;
    c.wait_for(first, "JOINED", STEP)?;
    for node in 2..=setup.members {
        let index = c.spawn(&loopback_config(node, Some(seed), &extra(node - 1)), &[])?;
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
        syscalls: field("sendmmsg=") + field("recvmmsg=") + field("blocks="),
        allocations: field("allocations="),
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
    if !setup.json {
        println!(
            "bench throughput: kind {}, {} B messages, {} members, {} sender(s), {} messages per sender, idle {}",
            setup.kind, setup.size, setup.members, spec.senders, spec.count, setup.idle
        );
    }
    let raw = raw_baseline(setup.members - 1, spec.senders, setup.size, spec.count)
        .map_err(RuntimeError::Config)?;
    let mut c = form(&setup).map_err(RuntimeError::Config)?;
    let run = (|| -> Result<(Vec<Rate>, Vec<Costs>), String> {
        // Warm-up: the pools reach their working size.
        let warm = Throughput {
            count: (spec.count / 10).max(1),
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
        let rates = burst_all(&mut c, &spec, target, setup.json)?;
        let after: Vec<Costs> = (0..c.members.len())
            .map(|index| costs(&mut c, index))
            .collect::<Result<_, _>>()?;
        let deltas = before
            .iter()
            .zip(&after)
            .map(|(b, a)| Costs {
                delivered: a.delivered - b.delivered,
                syscalls: a.syscalls - b.syscalls,
                // The stats command itself allocates a few times.
                allocations: a.allocations - b.allocations,
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
    let delivered: u64 = deltas.iter().map(|d| d.delivered).sum();
    let syscalls_per_message = ratio(
        deltas.iter().map(|d| d.syscalls).sum::<u64>() as f64,
        delivered as f64,
    );
    let allocations_per_message = ratio(
        deltas.iter().map(|d| d.allocations).sum::<u64>() as f64,
        delivered as f64,
    );
    if setup.json {
        let members: Vec<String> = rates
            .iter()
            .map(|r| format!("{:.0}", r.per_second()))
            .collect();
        return Ok(Some(format!(
            "{{\"bench\":\"throughput\",\"kind\":\"{}\",\"size\":{},\"members\":{},\"senders\":{},\"count\":{},\"idle\":\"{}\",\"msgs_per_s\":{:.0},\"mb_per_s\":{:.3},\"overall_msgs_per_s\":{:.0},\"member_msgs_per_s\":[{}],\"baseline_msgs_per_s\":{:.0},\"baseline_mb_per_s\":{:.3},\"baseline_loss\":{:.4},\"ratio_msgs\":{:.3},\"ratio_mb\":{:.3},\"syscalls_per_msg\":{:.5},\"allocations_per_msg\":{:.5}}}",
            setup.kind,
            setup.size,
            setup.members,
            spec.senders,
            spec.count,
            setup.idle,
            msgs,
            msgs * size / 1e6,
            msgs * rates.len() as f64,
            members.join(","),
            raw_msgs,
            raw_msgs * size / 1e6,
            raw.loss,
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
            format!("raw UDP receiver {}", index + 1),
            rate.messages,
            rate.per_second(),
            rate.per_second() * size / 1e6
        );
    }
    println!(
        "raw UDP: {} sender thread(s) -> {} receiver(s), {:.1}% of datagrams lost",
        spec.senders,
        setup.members - 1,
        raw.loss * 100.0
    );
    println!(
        "osiris overall: {:.0} deliveries/s; per delivered message: {:.4} system calls, {:.4} allocations (steady state, after a warm-up burst)",
        msgs * rates.len() as f64,
        syscalls_per_message,
        allocations_per_message
    );
    println!(
        "per-member delivered msgs/s: osiris {:.0}, raw UDP {:.0}, ratio {:.2} (MB/s ratio the same)",
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
    let raw = raw_ping_pong(setup.size, spec.count.min(20_000)).map_err(RuntimeError::Config)?;
    let mut c = form(&setup).map_err(RuntimeError::Config)?;
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
            "{{\"bench\":\"latency\",\"kind\":\"{}\",\"size\":{},\"members\":{},\"count\":{},\"rate\":{},\"idle\":\"{}\",\"self_delivery\":{},\"round_trip\":{},\"baseline_round_trip\":{},\"ratio_p50_rtt\":{:.3}}}",
            setup.kind,
            setup.size,
            setup.members,
            spec.count,
            spec.rate,
            setup.idle,
            list(&self_delivery),
            list(&round_trip),
            list(&raw),
            ratio(round_trip[0] as f64, raw[0] as f64),
        )));
    }
    println!(
        "bench latency: kind {}, {} B, {} members, {} messages, {}, idle {}",
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
        setup.idle
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
    rates: Vec<Rate>,
    loss: f64,
}

fn raw_socket() -> Result<UdpTransport, String> {
    let mut config = UdpConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.gso = false;
    config.gro = false;
    UdpTransport::new(config).map_err(|e| e.to_string())
}

/// Sender threads send `count` datagrams of `size` bytes to every receiver
/// (one `sendmmsg` per 64); receiver threads `recvmmsg` and count. The rate
/// is what a receiver got, first datagram to last.
fn raw_baseline(
    receivers: u32,
    senders: u32,
    size: usize,
    count: u64,
) -> Result<RawResult, String> {
    let receivers: Vec<UdpTransport> = (0..receivers.max(1))
        .map(|_| raw_socket())
        .collect::<Result<_, _>>()?;
    let addresses: Vec<SocketAddr> = receivers.iter().map(Transport::local_addr).collect();
    let done = Arc::new(AtomicBool::new(false));
    let expected = count * u64::from(senders);
    let receiver_threads: Vec<_> = receivers
        .into_iter()
        .map(|mut transport| {
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
    let sender_threads: Vec<_> = (0..senders)
        .map(|_| {
            let addresses = addresses.clone();
            let transport = raw_socket();
            std::thread::spawn(move || -> Result<(), String> {
                let mut transport = transport?;
                let payload = vec![0x5a; size];
                let per_call = (64 / addresses.len().max(1)).max(1);
                let mut list = Vec::with_capacity(64);
                let mut sent = 0u64;
                while sent < count {
                    list.clear();
                    let n = (count - sent).min(per_call as u64);
                    for _ in 0..n {
                        for &address in &addresses {
                            list.push(Transmit {
                                destination: Destination::Unicast(address),
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
                Ok(())
            })
        })
        .collect();
    for thread in sender_threads {
        thread.join().map_err(|_| "raw sender panicked")??;
    }
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
    let sent = expected * rates.len() as u64;
    Ok(RawResult {
        loss: 1.0 - received as f64 / sent.max(1) as f64,
        rates,
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
fn raw_ping_pong(size: usize, count: u64) -> Result<Vec<u64>, String> {
    let mut pinger = raw_socket()?;
    let mut ponger = raw_socket()?;
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
