//! `osiris bench throughput`: delivered messages per second between member
//! processes on loopback, beside a raw UDP baseline measured in the same run
//! (sendmmsg/recvmmsg through the same socket layer, one datagram per
//! message, no protocol). A first cut for issue 4's figure; issue 6 grows it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use osiris_runtime::RuntimeError;
use osiris_tools::cluster::{loopback_config, Cluster};
use osiris_transport::{Destination, Interest, Transmit, Transport, UdpConfig, UdpTransport};

const GROUP: &str = "bench";
const STEP: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy)]
pub struct Throughput {
    /// `send`, `causal`, `ordered` or `safe`.
    pub kind: &'static str,
    pub members: u32,
    pub senders: u32,
    pub size: usize,
    pub count: u64,
}

/// One member's (or one raw receiver's) result.
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

pub fn throughput(spec: Throughput) -> Result<(), RuntimeError> {
    let spec = Throughput {
        kind: spec.kind,
        members: spec.members.max(2),
        senders: spec.senders.clamp(1, spec.members.max(2)),
        size: spec.size.max(10),
        count: spec.count.max(1),
    };
    println!(
        "bench throughput: kind {}, {} B messages, {} members, {} sender(s), {} messages per sender",
        spec.kind, spec.size, spec.members, spec.senders, spec.count
    );
    let raw = raw_baseline(spec).map_err(RuntimeError::Config)?;
    let osiris = osiris_run(spec).map_err(RuntimeError::Config)?;

    let mb = |rate: f64| rate * spec.size as f64 / 1e6;
    println!(
        "{:<28} {:>12} {:>14} {:>10}",
        "", "messages", "msgs/s", "MB/s"
    );
    for (index, rate) in osiris.iter().enumerate() {
        println!(
            "{:<28} {:>12} {:>14.0} {:>10.1}",
            format!("osiris member {}", index + 1),
            rate.messages,
            rate.per_second(),
            mb(rate.per_second())
        );
    }
    let raw_receivers = spec.members - 1;
    for (index, rate) in raw.rates.iter().enumerate() {
        println!(
            "{:<28} {:>12} {:>14.0} {:>10.1}",
            format!("raw UDP receiver {}", index + 1),
            rate.messages,
            rate.per_second(),
            mb(rate.per_second())
        );
    }
    let mean = |rates: &[Rate]| {
        rates.iter().map(|rate| rate.per_second()).sum::<f64>() / rates.len().max(1) as f64
    };
    let osiris_mean = mean(&osiris);
    let raw_mean = mean(&raw.rates);
    println!(
        "raw UDP: {} sender thread(s) -> {raw_receivers} receiver(s), {:.1}% of datagrams lost",
        spec.senders,
        raw.loss * 100.0
    );
    println!(
        "per-member delivered msgs/s: osiris {:.0}, raw UDP {:.0}, ratio {:.2}",
        osiris_mean,
        raw_mean,
        if raw_mean > 0.0 {
            osiris_mean / raw_mean
        } else {
            0.0
        }
    );
    Ok(())
}

fn osiris_run(spec: Throughput) -> Result<Vec<Rate>, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut c = Cluster::new(&exe, "bench")?;
    let first = c.spawn(&loopback_config(1, None, ""), &[])?;
    let seed = c.members[first].addr;
    c.command(first, &format!("join {GROUP}"))?;
    c.wait_for(first, "JOINED", STEP)?;
    for node in 2..=spec.members {
        let index = c.spawn(&loopback_config(node, Some(seed), ""), &[])?;
        c.command(index, &format!("join {GROUP}"))?;
        c.wait_for(index, "JOINED", STEP)?;
    }
    for index in 0..c.members.len() {
        let deadline = Instant::now() + STEP;
        loop {
            let full = c.last(index, "VIEW").is_some_and(|view| {
                view.split_whitespace()
                    .nth(3)
                    .is_some_and(|m| m.split(',').count() == spec.members as usize)
            });
            if full {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("member {index} never saw the full view"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    for index in 0..spec.senders as usize {
        c.command(
            index,
            &format!("burst {GROUP} {} {}", spec.count, spec.size),
        )?;
    }
    let expected = spec.count * u64::from(spec.senders);
    for index in 0..c.members.len() {
        c.command(index, &format!("await {GROUP} {expected}"))?;
    }
    let mut rates = Vec::new();
    for index in 0..c.members.len() {
        let line = c.wait_for(index, "REACHED", Duration::from_secs(120))?;
        let words: Vec<&str> = line.split_whitespace().collect();
        let messages: u64 = words.get(3).and_then(|w| w.parse().ok()).unwrap_or(0);
        let micros: u64 = words.get(4).and_then(|w| w.parse().ok()).unwrap_or(0);
        rates.push(Rate {
            messages,
            seconds: micros as f64 / 1e6,
        });
    }
    for index in 0..c.members.len() {
        c.quit(index)?;
    }
    Ok(rates)
}

struct RawResult {
    rates: Vec<Rate>,
    loss: f64,
}

/// Sender threads send `count` datagrams of `size` bytes to every receiver
/// (one `sendmmsg` per 64); receiver threads `recvmmsg` and count. The rate
/// is what a receiver got, first datagram to last.
fn raw_baseline(spec: Throughput) -> Result<RawResult, String> {
    let udp = |bind: SocketAddr| {
        let mut config = UdpConfig::new(bind);
        config.gso = false;
        config.gro = false;
        UdpTransport::new(config).map_err(|e| e.to_string())
    };
    let receivers: Vec<UdpTransport> = (1..spec.members)
        .map(|_| udp(SocketAddr::from(([127, 0, 0, 1], 0))))
        .collect::<Result<_, _>>()?;
    let addresses: Vec<SocketAddr> = receivers.iter().map(Transport::local_addr).collect();
    let done = Arc::new(AtomicBool::new(false));
    let expected = spec.count * u64::from(spec.senders);
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
    let sender_threads: Vec<_> = (0..spec.senders)
        .map(|_| {
            let addresses = addresses.clone();
            let mut transport = udp(SocketAddr::from(([127, 0, 0, 1], 0)));
            std::thread::spawn(move || -> Result<(), String> {
                let transport = transport.as_mut().map_err(|e| e.clone())?;
                let payload = vec![0x5a; spec.size];
                let per_call = 64 / addresses.len().max(1);
                let mut list = Vec::with_capacity(64);
                let mut sent = 0u64;
                while sent < spec.count {
                    list.clear();
                    let n = (spec.count - sent).min(per_call as u64);
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
