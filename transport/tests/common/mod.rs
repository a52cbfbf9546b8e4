//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use osiris_transport::{Interest, RecvBatch, Transport, UdpConfig, UdpTransport};

pub fn loopback_config() -> UdpConfig {
    let mut config = UdpConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.recv_buffer_bytes = Some(16 << 20);
    config.send_buffer_bytes = Some(4 << 20);
    config
}

pub fn transport(config: UdpConfig) -> UdpTransport {
    UdpTransport::new(config).expect("transport")
}

/// Receives until `count` frames have arrived or `timeout` passes, waiting on
/// the socket between empty receives. Returns copies of the frames.
pub fn receive(
    transport: &mut UdpTransport,
    batch: &mut RecvBatch,
    count: usize,
    timeout: Duration,
) -> Vec<(SocketAddr, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    let mut frames = Vec::new();
    while frames.len() < count {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let got = transport.recv_batch(batch, now).expect("recv_batch");
        if got == 0 {
            transport
                .wait(
                    Interest::READABLE,
                    Some(deadline.saturating_duration_since(now)),
                )
                .expect("wait");
            continue;
        }
        frames.extend(
            batch
                .iter()
                .map(|frame| (frame.source, frame.bytes.to_vec())),
        );
    }
    frames
}

/// A frame of `len` bytes starting with the protocol magic `53 4F`, then a
/// `u32` sequence number, then a pattern derived from both.
pub fn frame(sequence: u32, len: usize) -> Vec<u8> {
    assert!(len >= 6);
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&[0x53, 0x4F]);
    bytes.extend_from_slice(&sequence.to_le_bytes());
    bytes.extend((6..len).map(|i| (i as u32).wrapping_mul(31).wrapping_add(sequence) as u8));
    bytes
}

/// A small seeded generator (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    pub fn fill(&mut self, bytes: &mut [u8]) {
        for byte in bytes {
            *byte = self.next_u64() as u8;
        }
    }
}
