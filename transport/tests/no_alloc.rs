//! After warm-up, sending and receiving (small frames, fragmented frames,
//! GSO and plain) allocates nothing: a counting global allocator proves it.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{frame, loopback_config, transport};
use osiris_transport::{Destination, Interest, Transmit, Transport, UdpTransport};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn note_allocation() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; counting touches only an
// atomic and a const-initialised thread-local (which never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; the caller upholds the contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_allocation();
        // SAFETY: forwarded unchanged; `ptr` came from `System` via this type.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged; `ptr` came from `System` via this type.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` with allocation counting on for this thread; returns the count.
fn count_allocations(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.with(|counting| counting.set(true));
    f();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.load(Ordering::Relaxed) - before
}

/// One round: a batch of small frames and one large frame, then receive
/// until all arrived, checking every byte. Allocates nothing itself.
fn round(
    sender: &mut UdpTransport,
    receiver: &mut UdpTransport,
    batch: &mut osiris_transport::RecvBatch,
    transmits: &[Transmit<'_>],
) {
    assert_eq!(sender.send_batch(transmits).expect("send"), transmits.len());
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut received = 0;
    while received < transmits.len() {
        let now = Instant::now();
        assert!(now < deadline, "frames lost");
        if receiver.recv_batch(batch, now).expect("recv") == 0 {
            receiver
                .wait(Interest::READABLE, Some(Duration::from_millis(100)))
                .expect("wait");
            continue;
        }
        for frame in batch.iter() {
            let expected = transmits
                .iter()
                .find(|t| t.frame.len() == frame.bytes.len());
            assert!(
                expected.is_some_and(|t| t.frame == frame.bytes),
                "frame intact"
            );
            received += 1;
        }
    }
}

fn check_steady_state(datagram_len_max: usize) {
    let mut config = loopback_config();
    config.datagram_len_max = datagram_len_max;
    let mut sender = transport(config.clone());
    let mut receiver = transport(config);
    let mut batch = receiver.new_recv_batch();
    let destination = Destination::Unicast(receiver.local_addr());
    let frames: Vec<Vec<u8>> = (0..33)
        .map(|i| frame(i, if i == 32 { 1 << 20 } else { 64 + i as usize }))
        .collect();
    let transmits: Vec<Transmit<'_>> = frames
        .iter()
        .map(|frame| Transmit { destination, frame })
        .collect();
    for _ in 0..3 {
        round(&mut sender, &mut receiver, &mut batch, &transmits);
    }
    let allocations = count_allocations(|| {
        for _ in 0..20 {
            round(&mut sender, &mut receiver, &mut batch, &transmits);
        }
    });
    println!(
        "datagram_len_max {datagram_len_max}: {allocations} allocations in 20 rounds; GSO {:?}; sender {:?}",
        sender.gso_status(),
        sender.stats()
    );
    assert_eq!(allocations, 0, "the data path must not allocate");
    assert_eq!(receiver.stats().reassembly.frames_reassembled, 23);
}

#[test]
fn send_and_receive_allocate_nothing_after_warm_up() {
    // Sanity: the counter does count.
    assert!(count_allocations(|| drop(std::hint::black_box(vec![1u8; 10]))) > 0);
    check_steady_state(65_507);
    check_steady_state(1472);
}
