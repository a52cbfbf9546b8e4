//! Loopback rates of the UDP transport on this machine: small frames in
//! batches, and 1 MiB frames fragmented with and without GSO/GRO.
//!
//! `cargo run --release -p osiris-transport --example loopback_rate`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use osiris_transport::{Destination, Interest, Transmit, Transport, UdpConfig, UdpTransport};

fn pair(datagram_len_max: usize, offload: bool) -> (UdpTransport, UdpTransport) {
    let mut config = UdpConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.recv_buffer_bytes = Some(16 << 20);
    config.datagram_len_max = datagram_len_max;
    config.gso = offload;
    config.gro = offload;
    let sender = UdpTransport::new(config.clone()).expect("sender");
    let receiver = UdpTransport::new(config).expect("receiver");
    (sender, receiver)
}

/// Sends `rounds` batches of `frames` and receives them all; returns the time.
fn run(
    sender: &mut UdpTransport,
    receiver: &mut UdpTransport,
    frames: &[Vec<u8>],
    rounds: usize,
) -> Duration {
    let destination = Destination::Unicast(receiver.local_addr());
    let transmits: Vec<Transmit<'_>> = frames
        .iter()
        .map(|frame| Transmit { destination, frame })
        .collect();
    let mut batch = receiver.new_recv_batch();
    let start = Instant::now();
    for _ in 0..rounds {
        let mut sent = 0;
        while sent < transmits.len() {
            sent += sender.send_batch(&transmits[sent..]).expect("send");
        }
        let mut received = 0;
        while received < transmits.len() {
            let got = receiver
                .recv_batch(&mut batch, Instant::now())
                .expect("recv");
            if got == 0 {
                receiver
                    .wait(Interest::READABLE, Some(Duration::from_secs(1)))
                    .expect("wait");
            }
            received += got;
        }
    }
    start.elapsed()
}

fn main() {
    let (mut sender, mut receiver) = pair(65_507, true);
    let small: Vec<Vec<u8>> = (0..64).map(|_| vec![0x53u8; 100]).collect();
    let rounds = 5_000;
    let elapsed = run(&mut sender, &mut receiver, &small, rounds);
    let frames = (rounds * small.len()) as f64;
    println!(
        "100-byte frames, batches of 64: {:.2} M frames/s, {:.0} ns per frame (send + receive, one thread); {} sendmmsg, {} recvmmsg",
        frames / elapsed.as_secs_f64() / 1e6,
        elapsed.as_nanos() as f64 / frames,
        sender.stats().sendmmsg_calls,
        receiver.stats().recvmmsg_calls
    );
    baseline_one_datagram_per_call(&small, rounds);
    let big = vec![vec![0x53u8; 1 << 20]];
    for (datagram_len_max, offload) in [(65_507, true), (1472, true), (1472, false), (8972, true)] {
        let (mut sender, mut receiver) = pair(datagram_len_max, offload);
        let rounds = 300;
        let _ = run(&mut sender, &mut receiver, &big, 10);
        let elapsed = run(&mut sender, &mut receiver, &big, rounds);
        println!(
            "1 MiB frames, datagram_len_max {datagram_len_max}, GSO {:?}, GRO {}: {:.0} MiB/s, {:.0} µs per frame, {} GRO buffers",
            sender.gso_status(),
            receiver.socket_info().gro,
            rounds as f64 / elapsed.as_secs_f64(),
            elapsed.as_micros() as f64 / rounds as f64,
            receiver.stats().gro_buffers_received
        );
    }
}

/// The same small-frame traffic with std's `send_to`/`recv_from`: one system
/// call per datagram, for comparison.
fn baseline_one_datagram_per_call(frames: &[Vec<u8>], rounds: usize) {
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let receiver = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let destination = receiver.local_addr().expect("addr");
    let mut buffer = vec![0u8; 65_536];
    let start = Instant::now();
    for _ in 0..rounds {
        for frame in frames {
            sender.send_to(frame, destination).expect("send");
        }
        for _ in frames {
            receiver.recv_from(&mut buffer).expect("recv");
        }
    }
    let elapsed = start.elapsed();
    let count = (rounds * frames.len()) as f64;
    println!(
        "baseline, std send_to/recv_from (one datagram per call): {:.0} ns per frame",
        elapsed.as_nanos() as f64 / count
    );
}
