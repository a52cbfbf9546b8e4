//! Hostile datagrams against a running member process's unicast port.
//!
//! Three members form a group on loopback; one is SIGKILLed and the others
//! install the view that fails it. Then a plain UDP socket sprays member 0
//! with (seeded, so a failure reproduces):
//! * random datagrams (the transport drops them: `datagrams_malformed`);
//! * truncated valid frames (the core cannot decode them: `malformed`);
//! * well-formed data frames from an identity nobody knows (`strangers`);
//! * well-formed data frames claiming the killed member's identity (also
//!   `strangers`; the member answers with an `Excluded` notice, rate-limited);
//! * well-formed data frames claiming a live member's identity in a
//!   long-gone view (`stale`).
//!
//! Then: the member still serves (a probe multicast afterwards reaches every
//! live member, the view checks hold), `stats` counts every kind of drop, and
//! its stderr (captured) holds at most one drop warning per 10 s.

mod common;

use std::net::UdpSocket;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{form, probe, settle_and_check, wait_failed};
use osiris_core::wire::{Frame, FrameWriter, Header, Msg};
use osiris_core::{GroupId, MemberId, ViewId};
use osiris_tools::cluster::{loopback_config, Cluster};

const GROUP: &str = "hostile";
const TARGET: usize = 0;
const VICTIM: usize = 2;
/// Datagrams of each kind.
const EACH: u64 = 200;
/// Data messages in each forged frame (`stale` counts messages, not frames).
const FORGED_MESSAGES: u64 = 4;
/// The runtime warns about dropped input at most once per this period.
const WARN_PERIOD: Duration = Duration::from_secs(10);

/// xorshift64*: a seeded stream of bytes for the random datagrams.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

/// The counters of a STATS line that hostile input moves.
#[derive(Debug, Clone, Copy, Default)]
struct Drops {
    malformed: u64,
    strangers: u64,
    stale: u64,
    datagrams_malformed: u64,
    delivered: u64,
}

fn stats(c: &mut Cluster, index: usize) -> Result<Drops, String> {
    c.command(index, "stats")?;
    let line = c.wait_for(index, "STATS", common::STEP)?;
    let value = |key: &str| {
        line.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
            .and_then(|value| value.parse().ok())
            .ok_or_else(|| format!("no {key} in {line}"))
    };
    Ok(Drops {
        malformed: value("malformed")?,
        strangers: value("strangers")?,
        stale: value("stale")?,
        datagrams_malformed: value("datagrams_malformed")?,
        delivered: value("delivered")?,
    })
}

fn parse_member(text: &str) -> Result<MemberId, String> {
    let (node, incarnation) = text.split_once('.').ok_or(format!("bad member {text}"))?;
    let number = |word: &str| word.parse().map_err(|_| format!("bad member {text}"));
    Ok(MemberId::new(number(node)?, number(incarnation)?))
}

/// A well-formed frame of `count` data messages in the group.
fn data_frame(sender: MemberId, view: u64, seq: u64, count: u64) -> Vec<u8> {
    let header = Header {
        sender,
        view: ViewId(view),
        group: GroupId::from_name(GROUP),
        seq,
    };
    let mut buf = Vec::new();
    let mut writer = FrameWriter::new(&mut buf, &header);
    for index in 0..count {
        let mut payload = b"b:".to_vec();
        payload.extend_from_slice(&(1_000_000 + index).to_le_bytes());
        payload.resize(64, 0);
        assert!(writer.push(&Msg::Data { payload: &payload }));
    }
    writer.finish();
    buf
}

#[test]
fn hostile_datagrams_are_counted_and_the_member_keeps_serving() {
    let mut c = Cluster::new(Path::new(env!("CARGO_BIN_EXE_osiris")), "hostile")
        .expect("cluster directory");
    c.capture_stderr();
    if let Err(error) = run(&mut c) {
        common::dump(&mut c, "hostile");
        panic!("{error}");
    }
}

fn run(c: &mut Cluster) -> Result<(), String> {
    let started = Instant::now();
    let start = |index: usize, seed| (loopback_config(index as u32 + 1, seed, ""), Vec::new());
    let mut g = form(c, 3, GROUP, &start)?;
    c.kill(VICTIM)?;
    g.gone[VICTIM] = true;
    wait_failed(c, &g, VICTIM)?;
    c.collect();
    let domain_view: u64 = c
        .last(TARGET, "DVIEW")
        .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
        .ok_or("no DVIEW line")?;
    let excluded = parse_member(&g.ids[VICTIM])?;
    let live_other = parse_member(&g.ids[1])?;
    let before = stats(c, TARGET)?;

    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket
        .connect(c.members[TARGET].addr)
        .map_err(|e| e.to_string())?;
    let send = |bytes: &[u8]| socket.send(bytes).map(|_| ()).map_err(|e| e.to_string());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let valid = data_frame(live_other, domain_view, 1, 8);
    for round in 0..EACH {
        // Random bytes; never starting with the frame or fragment magic.
        let len = 1 + rng.below(1400) as usize;
        let mut junk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        junk[0] = 0xff;
        send(&junk)?;
        // A valid frame cut short (the magic survives, the rest does not).
        let cut = 3 + rng.below(valid.len() as u64 - 3) as usize;
        send(&valid[..cut])?;
        send(&data_frame(
            MemberId::new(77, 1),
            domain_view,
            round + 1,
            FORGED_MESSAGES,
        ))?;
        send(&data_frame(
            excluded,
            domain_view,
            round + 1,
            FORGED_MESSAGES,
        ))?;
        send(&data_frame(live_other, 1, round + 1, FORGED_MESSAGES))?;
        if round % 20 == 0 {
            // Paced a little: the member's socket buffer is finite.
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    // The excluded identity is told so (rate-limited: at least once).
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    let mut notices = 0;
    let mut buf = vec![0u8; 65_536];
    while let Ok(len) = socket.recv(&mut buf) {
        if let Ok(frame) = Frame::decode(&buf[..len]) {
            notices += frame
                .messages()
                .filter(|msg| matches!(msg, Msg::Excluded { member, .. } if *member == excluded))
                .count();
        }
    }

    probe(c, &mut g, "after-spray")?;
    settle_and_check(c, &g)?;
    let after = stats(c, TARGET)?;
    let delta = Drops {
        malformed: after.malformed - before.malformed,
        strangers: after.strangers - before.strangers,
        stale: after.stale - before.stale,
        datagrams_malformed: after.datagrams_malformed - before.datagrams_malformed,
        delivered: after.delivered - before.delivered,
    };
    println!(
        "sprayed {} datagrams; counted {delta:?}; {notices} Excluded notice(s)",
        5 * EACH
    );
    let expect = |what: &str, got: u64, want: u64| {
        if got == want {
            Ok(())
        } else {
            Err(format!("{what}: counted {got}, sent {want}"))
        }
    };
    expect("datagrams_malformed", delta.datagrams_malformed, EACH)?;
    expect("malformed", delta.malformed, EACH)?;
    expect("strangers", delta.strangers, 2 * EACH)?;
    expect("stale", delta.stale, FORGED_MESSAGES * EACH)?;
    // Only the probes were delivered: nothing forged got through.
    expect("delivered", delta.delivered, g.live().len() as u64)?;
    if notices == 0 {
        return Err("no Excluded notice came back to the excluded identity".into());
    }

    for index in g.live() {
        c.quit(index)?;
    }
    let stderr = c.stderr(TARGET).unwrap_or_default();
    let warnings = stderr.lines().filter(|l| l.contains("warning")).count();
    let allowed = 1 + (started.elapsed().as_secs_f64() / WARN_PERIOD.as_secs_f64()) as usize;
    println!("member {TARGET} stderr: {warnings} warning line(s) (allowed {allowed}): {stderr:?}");
    if warnings == 0 || warnings > allowed {
        return Err(format!(
            "{warnings} warning lines on stderr, expected 1 to {allowed}"
        ));
    }
    Ok(())
}
