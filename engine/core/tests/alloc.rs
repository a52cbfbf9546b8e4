//! The steady-state per-message path of the core allocates nothing: three
//! members multicast (FIFO, and causal, ordered and safe with the
//! sequencer's announcements), ack, reach stability and collect garbage
//! while a counting allocator watches every call into `Node`.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use common::Cluster;
use osiris_core::{Dest, Instant, Node, SendKind};

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    /// Per thread: the tests run in parallel threads of one process, and a
    /// shared counter mixed one test's warm-up into the other's count.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter only observes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as our caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCATIONS.with(|count| count.set(count.get() + 1));
        }
        // SAFETY: same contract as our caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn counted<T>(work: impl FnOnce() -> T) -> T {
    COUNTING.with(|flag| flag.set(true));
    let result = work();
    COUNTING.with(|flag| flag.set(false));
    result
}

/// Frames in flight, in buffers reused across rounds.
struct Wire {
    frames: Vec<(usize, Vec<u8>)>,
    used: usize,
    scratch: Vec<u8>,
}

impl Wire {
    fn push(&mut self, to: usize, bytes: &[u8]) {
        if self.used == self.frames.len() {
            self.frames.push((0, Vec::with_capacity(64 * 1024)));
        }
        let slot = &mut self.frames[self.used];
        slot.0 = to;
        slot.1.clear();
        slot.1.extend_from_slice(bytes);
        self.used += 1;
    }
}

#[allow(clippy::needless_range_loop)] // `from` also names the sender when routing
fn round(
    nodes: &mut [Node],
    wire: &mut Wire,
    now: Instant,
    group: osiris_core::GroupId,
    payload: &[u8],
    kinds: &[SendKind],
) -> u64 {
    for sender in nodes.iter_mut().take(2) {
        for i in 0..8 {
            let kind = kinds[i % kinds.len()];
            counted(|| sender.send_kind(now, group, kind, payload)).expect("window open");
        }
    }
    let mut delivered = 0;
    for _ in 0..3 {
        wire.used = 0;
        for from in 0..nodes.len() {
            counted(|| nodes[from].handle_timeout(now));
            loop {
                let mut scratch = std::mem::take(&mut wire.scratch);
                let transmit = counted(|| nodes[from].poll_transmit(now, &mut scratch));
                let Some(transmit) = transmit else {
                    wire.scratch = scratch;
                    break;
                };
                let targets: [usize; 2] = match transmit.dest {
                    Dest::Member(member) => [member.node.0 as usize, usize::MAX],
                    Dest::Group(_) => {
                        let mut others = (0..3).filter(|index| *index != from);
                        [others.next().unwrap(), others.next().unwrap()]
                    }
                    Dest::Seed(_) => unreachable!("members do not use seeds"),
                };
                for to in targets.into_iter().filter(|to| *to != usize::MAX) {
                    wire.push(to, &scratch[..transmit.len]);
                }
                wire.scratch = scratch;
            }
        }
        for index in 0..wire.used {
            let (to, bytes) = &wire.frames[index];
            counted(|| nodes[*to].handle_packet(now, bytes));
        }
        for node in nodes.iter_mut() {
            delivered += counted(|| {
                let mut count = 0;
                while let Some(event) = node.poll_event() {
                    if matches!(event, osiris_core::Event::Delivered { .. }) {
                        count += 1;
                    }
                }
                count
            });
        }
    }
    delivered
}

/// Warm up, then count allocations over 2,000 rounds of 16 messages of
/// `kinds` (in turn); returns the deliveries and the allocations counted.
fn steady_state(kinds: &[SendKind]) -> (u64, u64) {
    let mut cluster = Cluster::new(3);
    cluster.run_for_ms(500);
    let now = cluster.now;
    let group = cluster.node(0).join_group(now, "g").unwrap();
    cluster.node(1).join_group(now, "g").unwrap();
    cluster.node(2).join_group(now, "g").unwrap();
    cluster.run_for_ms(500);
    let mut now = cluster.now;
    let mut nodes: Vec<Node> = std::mem::take(&mut cluster.nodes)
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let mut wire = Wire {
        frames: Vec::new(),
        used: 0,
        scratch: Vec::with_capacity(64 * 1024),
    };
    let payload = [7u8; 64];
    let step_ns = 1_000_000; // 1 ms per round: acks, heartbeats and GC all run.

    let mut warm_delivered = 0;
    for _ in 0..500 {
        now = Instant(now.0 + step_ns);
        warm_delivered += round(&mut nodes, &mut wire, now, group, &payload, kinds);
    }
    // Ordered and safe messages wait for the sequencer and the acks: a few
    // rounds' worth are still on their way.
    assert!(
        warm_delivered + 20 * 16 * 3 >= 500 * 16 * 3,
        "warm-up delivers (nearly) everything to all three"
    );

    ALLOCATIONS.with(|count| count.set(0));
    let mut delivered = 0;
    for _ in 0..2_000 {
        now = Instant(now.0 + step_ns);
        delivered += round(&mut nodes, &mut wire, now, group, &payload, kinds);
    }
    (delivered, ALLOCATIONS.with(Cell::get))
}

#[test]
fn steady_state_multicast_allocates_nothing() {
    let (delivered, allocations) = steady_state(&[SendKind::Fifo]);
    assert_eq!(delivered, 2_000 * 16 * 3);
    assert_eq!(
        allocations, 0,
        "{allocations} allocations over {delivered} deliveries"
    );
}

#[test]
fn steady_state_ordered_and_safe_allocate_nothing() {
    for kinds in [
        &[SendKind::Ordered][..],
        &[SendKind::Safe],
        &[
            SendKind::Fifo,
            SendKind::Causal,
            SendKind::Ordered,
            SendKind::Safe,
        ],
    ] {
        let (delivered, allocations) = steady_state(kinds);
        assert!(
            delivered + 20 * 16 * 3 >= 2_000 * 16 * 3,
            "{kinds:?}: {delivered}"
        );
        assert_eq!(
            allocations, 0,
            "{kinds:?}: {allocations} allocations over {delivered} deliveries"
        );
    }
}
