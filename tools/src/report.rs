//! The line protocol between `osiris node` (a member process) and whoever
//! drives it (`osiris demo`, the multi-process tests). One event per line,
//! space-separated, first word the kind:
//!
//! ```text
//! READY <node> <addr>                       started, listening on addr
//! DVIEW <id> <member>...                    a domain view
//! VIEW <group> <id> <members> <joined> <left> <failed>   (lists: a,b,c or -)
//! TALLY <group> <view> <sender> <count> <digest>          per sender, at the end of a view
//! OPEN <group> <view> <sender> <count> <digest>           the same, so far, for the current
//!                                           view (`tally G`; the last line is TALLIED)
//! TALLIED <group> <view> <total> <fifo_errors>            after the OPEN lines
//! FIFOERR <group> <view> <sender> <expected> <got>        a burst message out of order:
//!                                           duplicate, reordered or after a gap (burst
//!                                           indices; at most 100 lines per group)
//! MSG <group> <view> <sender> <text>        a text multicast (`send|causal|ordered|safe G TEXT`)
//! LOADED <group> <total> <texts>            state loaded from a donor
//! SAFE <group> <sender> <digest>            a SafeSend delivered in a group joined
//!                                           `join G durable` (digest: `chain` of the payload)
//! RSAFE <group> <sender> <digest>           one SafeSend recovered from the log at
//!                                           `join G durable`, in delivery order
//! RECOVERED <group> <count>                 after the RSAFE lines (before JOINED)
//! JOINED <group> | LEFT <group> | SENT <group> <count> <micros>
//! REACHED <group> <count> <bursts> <micros>  total deliveries reached; burst messages
//!                                           delivered, between the first and last of them
//! (`mark G` starts a new window for REACHED's burst count and time; no line)
//! PROGRESS <delivered> <awaited>            every 250 ms while `await` waits
//! LATENCY <group> <count> <p50> <p90> <p99> <p99.9> <max>   ns, `latency G COUNT SIZE KIND RATE`
//! RTT <group> <count> <p50> <p90> <p99> <p99.9> <max>       ns, `ping G NODE COUNT SIZE`
//! STATS <key=value>...                     (`stats`)
//! STATSALL <every runtime counter, Rust debug format>   (`stats-all`, for diagnosis)
//! FLUSHED <group>                           `flush G` returned: earlier multicasts stable
//! QREPLY <group> <member> <text>            a reply to `query G TEXT` (All, total order)
//! QDONE <group> <replies> <failed> <timed_out>
//! STOPPED <reason> | ERROR <text> | BYE
//! ```
//! Members are printed as `node.incarnation`.

use osiris_core::MemberId;

pub fn member(member: MemberId) -> String {
    format!("{}.{}", member.node.0, member.incarnation.0)
}

pub fn members(list: &[MemberId]) -> String {
    if list.is_empty() {
        return "-".to_owned();
    }
    list.iter()
        .map(|m| member(*m))
        .collect::<Vec<_>>()
        .join(",")
}

/// Bytes of a payload the digest reads: the burst and text messages of
/// the tests differ within them, and a 64 KiB payload then costs what a
/// 64-byte one does (hashing whole payloads in the handler was what held
/// 64 KiB benchmarks to ~2,000 msgs/s, not the protocol).
pub const DIGEST_PREFIX: usize = 64;

/// FNV-1a, chained: the digest of a sequence of payloads (each payload's
/// length and first `DIGEST_PREFIX` bytes).
pub fn chain(digest: u64, payload: &[u8]) -> u64 {
    let mut hash = digest ^ 0xcbf2_9ce4_8422_2325;
    let len = (payload.len() as u64).to_le_bytes();
    let prefix = &payload[..payload.len().min(DIGEST_PREFIX)];
    for &byte in len.iter().chain(prefix) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
