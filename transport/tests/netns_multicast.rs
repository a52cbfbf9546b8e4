//! IP multicast between hosts in network namespaces (see
//! /work/shared/NETNS.md), and a large frame through a rate-limited link
//! (the socket buffer fills mid-frame: the transport keeps the frame's tail
//! and finishes it after waiting for writability).
//!
//! The test builds its own lab: namespaces `osrt-<pid>-sw` (a bridge with
//! multicast snooping off) and `osrt-<pid>-h1..h3` on the subnet
//! 10.201.<pid % 256>.0/24, each with a route for 224.0.0.0/4. It runs its
//! roles by re-executing this test binary inside the namespaces
//! (`ip netns exec NS <exe> --exact <test> --nocapture`) with `OSRT_ROLE`
//! set. A drop guard kills the children and deletes the namespaces, on
//! success and on failure. Without root or `ip`, it prints SKIP and passes.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{frame, receive};
use osiris_transport::{
    Destination, Interest, MulticastMembership, Transmit, Transport, UdpConfig, UdpTransport,
};

const TEST_NAME: &str = "multicast_and_slow_link_between_namespaces";
const ROLE: &str = "OSRT_ROLE";
const SMALL_FRAMES: u32 = 200;
const LARGE_FRAME_LEN: usize = 300_000;
const SLOW_FRAME_LEN: usize = 2 << 20;
const DATAGRAM_LEN_MAX: usize = 1472;
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Addresses of this run, derived from the orchestrator's pid (passed to the
/// roles through the environment).
#[derive(Debug, Clone, Copy)]
struct Plan {
    pid: u32,
}

impl Plan {
    fn from_env() -> Plan {
        let pid = std::env::var("OSRT_PID")
            .ok()
            .and_then(|p| p.parse().ok())
            .expect("OSRT_PID");
        Plan { pid }
    }

    fn prefix(&self) -> String {
        format!("osrt-{}-", self.pid)
    }

    fn namespace(&self, name: &str) -> String {
        format!("{}{name}", self.prefix())
    }

    fn host(&self, i: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 201, (self.pid % 256) as u8, i)
    }

    fn group(&self) -> Ipv4Addr {
        Ipv4Addr::new(239, 201, (self.pid % 256) as u8, 7)
    }

    fn port(&self) -> u16 {
        40_000 + (self.pid % 10_000) as u16
    }
}

// --- roles (run inside a namespace) -----------------------------------------

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

fn say(line: &str) {
    use std::io::Write;
    println!("OSRT {line}");
    let _ = std::io::stdout().flush();
}

fn multicast_receiver(plan: Plan, local: Ipv4Addr) {
    let mut config = UdpConfig::new(SocketAddr::from((Ipv4Addr::UNSPECIFIED, plan.port())));
    config.reuse_port = true;
    config.datagram_len_max = DATAGRAM_LEN_MAX;
    config.frame_magic = Some([0x53, 0x4F]);
    config.multicast.groups.push(MulticastMembership {
        group: plan.group(),
        interface: local,
    });
    let mut transport = UdpTransport::new(config).expect("receiver transport");
    let mut batch = transport.new_recv_batch();
    say("READY");
    let expected = SMALL_FRAMES as usize + 1;
    let got = receive(&mut transport, &mut batch, expected, STEP_TIMEOUT);
    let stats = *transport.stats();
    say(&format!(
        "receiver {local}: {} frames, {} datagrams, {} recvmmsg calls, {} GRO buffers, {} reassembled",
        got.len(),
        stats.datagrams_received,
        stats.recvmmsg_calls,
        stats.gro_buffers_received,
        stats.reassembly.frames_reassembled
    ));
    assert_eq!(got.len(), expected, "every multicast frame arrives");
    for (i, (source, bytes)) in got.iter().enumerate() {
        assert_eq!(source.ip(), std::net::IpAddr::V4(plan.host(1)));
        let sequence = i as u32;
        let len = if sequence == SMALL_FRAMES {
            LARGE_FRAME_LEN
        } else {
            100 + i
        };
        assert!(
            *bytes == frame(sequence, len),
            "frame {i} intact and in order"
        );
    }
    say("DONE");
}

fn multicast_sender(plan: Plan) {
    let local = plan.host(1);
    let mut config = UdpConfig::new(SocketAddr::from((local, 0)));
    config.datagram_len_max = DATAGRAM_LEN_MAX;
    config.multicast.interface = Some(local);
    config.multicast.loopback = false;
    let mut transport = UdpTransport::new(config).expect("sender transport");
    let destination = Destination::Multicast(SocketAddrV4::new(plan.group(), plan.port()));
    let mut frames: Vec<Vec<u8>> = (0..SMALL_FRAMES)
        .map(|i| frame(i, 100 + i as usize))
        .collect();
    frames.push(frame(SMALL_FRAMES, LARGE_FRAME_LEN));
    for chunk in frames.chunks(50) {
        let transmits: Vec<Transmit<'_>> = chunk
            .iter()
            .map(|frame| Transmit { destination, frame })
            .collect();
        send_all(&mut transport, &transmits);
        // Pace the bursts: the receivers' backlog queues are finite.
        std::thread::sleep(Duration::from_millis(5));
    }
    let stats = transport.stats();
    say(&format!(
        "sender: GSO {:?}, {} frames in {} datagrams, {} sendmmsg calls, {} GSO entries",
        transport.gso_status(),
        stats.frames_sent,
        stats.datagrams_sent,
        stats.sendmmsg_calls,
        stats.gso_messages_sent
    ));
    assert_eq!(stats.frames_sent, u64::from(SMALL_FRAMES) + 1);
    say("DONE");
}

/// Sends every frame, waiting for writability when the socket buffer fills.
/// Returns whether a frame's tail was ever held back.
fn send_all(transport: &mut UdpTransport, transmits: &[Transmit<'_>]) -> bool {
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut sent = 0;
    let mut tail_seen = false;
    while sent < transmits.len() || transport.has_pending_send() {
        assert!(Instant::now() < deadline, "sending stalled");
        tail_seen |= transport.has_pending_send();
        if transport.has_pending_send() {
            transport.flush().expect("flush");
        } else {
            sent += transport.send_batch(&transmits[sent..]).expect("send");
        }
        tail_seen |= transport.has_pending_send();
        if sent < transmits.len() || transport.has_pending_send() {
            transport
                .wait(Interest::WRITABLE, Some(Duration::from_millis(100)))
                .expect("wait");
        }
    }
    tail_seen
}

fn slow_receiver(plan: Plan) {
    let mut config = UdpConfig::new(SocketAddr::from((plan.host(3), plan.port() + 1)));
    config.datagram_len_max = DATAGRAM_LEN_MAX;
    let mut transport = UdpTransport::new(config).expect("receiver transport");
    let mut batch = transport.new_recv_batch();
    say("READY");
    let got = receive(&mut transport, &mut batch, 2, STEP_TIMEOUT);
    assert_eq!(got.len(), 2, "both frames arrive");
    assert!(
        got[0].1 == frame(1, SLOW_FRAME_LEN),
        "the large frame is intact"
    );
    assert!(
        got[1].1 == frame(2, 64),
        "and the frame after it follows in order"
    );
    say(&format!(
        "slow receiver: {:?}",
        transport.stats().reassembly
    ));
    say("DONE");
}

fn slow_sender(plan: Plan) {
    let mut config = UdpConfig::new(SocketAddr::from((plan.host(1), 0)));
    config.datagram_len_max = DATAGRAM_LEN_MAX;
    // A small socket buffer (forced: root) so that it fills mid-frame.
    config.send_buffer_bytes = Some(64 << 10);
    let mut transport = UdpTransport::new(config).expect("sender transport");
    let destination = Destination::Unicast(SocketAddr::from((plan.host(3), plan.port() + 1)));
    let big = frame(1, SLOW_FRAME_LEN);
    let small = frame(2, 64);
    let transmits = [
        Transmit {
            destination,
            frame: &big,
        },
        Transmit {
            destination,
            frame: &small,
        },
    ];
    let start = Instant::now();
    let tail_seen = send_all(&mut transport, &transmits);
    let stats = transport.stats();
    say(&format!(
        "slow sender: {:?} for 2 MiB, send buffer {} bytes, {} would-block stops, tail held: {tail_seen}, GSO {:?}",
        start.elapsed(),
        transport.socket_info().send_buffer_bytes,
        stats.send_would_block,
        transport.gso_status()
    ));
    assert!(
        stats.send_would_block > 0,
        "the rate limit must fill the socket buffer"
    );
    assert!(tail_seen, "a frame's tail was held and finished later");
    say("DONE");
}

fn run_role(role: &str) {
    let plan = Plan::from_env();
    match role {
        "mcast-receiver" => multicast_receiver(plan, env("OSRT_LOCAL").parse().expect("local")),
        "mcast-sender" => multicast_sender(plan),
        "slow-receiver" => slow_receiver(plan),
        "slow-sender" => slow_sender(plan),
        other => panic!("unknown role {other}"),
    }
}

// --- the lab (orchestrator side) ----------------------------------------------

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// A role process and its output.
struct Role {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

/// (role name, what it said after "OSRT ").
type Event = (String, String);

/// Namespaces and processes of one run; dropping it removes everything.
struct Lab {
    plan: Plan,
    namespaces: Vec<String>,
    roles: Vec<Role>,
    events: (Sender<Event>, Receiver<Event>),
}

impl Drop for Lab {
    fn drop(&mut self) {
        for role in &mut self.roles {
            if role.child.try_wait().ok().flatten().is_none() {
                let _ = role.child.kill(); // by its own pid
                let _ = role.child.wait();
            }
        }
        // Hosts first, the bridge's namespace last.
        for namespace in self.namespaces.iter().rev() {
            if let Err(error) = ip(&["netns", "del", namespace]) {
                eprintln!("clean-up: {error}");
            }
        }
    }
}

impl Lab {
    fn new(plan: Plan) -> Lab {
        Lab {
            plan,
            namespaces: Vec::new(),
            roles: Vec::new(),
            events: channel(),
        }
    }

    fn add_namespace(&mut self, name: &str) -> Result<String, String> {
        let namespace = self.plan.namespace(name);
        ip(&["netns", "add", &namespace])?;
        self.namespaces.push(namespace.clone());
        Ok(namespace)
    }

    /// The bridge and three hosts of NETNS.md.
    fn build(&mut self) -> Result<(), String> {
        let prefix = self.plan.prefix();
        let switch = self.add_namespace("sw")?;
        let bridge = format!("{prefix}br");
        ip(&["-n", &switch, "link", "add", &bridge, "type", "bridge"])?;
        ip(&[
            "-n",
            &switch,
            "link",
            "set",
            &bridge,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &switch, "link", "set", &bridge, "up"])?;
        for i in 1..=3u8 {
            let host = self.add_namespace(&format!("h{i}"))?;
            let veth = format!("{prefix}v{i}");
            let port = format!("{prefix}p{i}");
            ip(&[
                "link", "add", &veth, "netns", &host, "type", "veth", "peer", "name", &port,
                "netns", &switch,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", &bridge])?;
            ip(&["-n", &switch, "link", "set", &port, "up"])?;
            let address = format!("{}/24", self.plan.host(i));
            ip(&["-n", &host, "addr", "add", &address, "dev", &veth])?;
            ip(&["-n", &host, "link", "set", &veth, "up"])?;
            ip(&["-n", &host, "link", "set", "lo", "up"])?;
            ip(&["-n", &host, "route", "add", "224.0.0.0/4", "dev", &veth])?;
        }
        Ok(())
    }

    /// Starts `role` inside host namespace `host`.
    fn spawn(
        &mut self,
        host: &str,
        role: &str,
        extra_env: &[(&str, String)],
    ) -> Result<(), String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let namespace = self.plan.namespace(host);
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &namespace])
            .arg(&exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env("OSRT_PID", self.plan.pid.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in extra_env {
            command.env(name, value);
        }
        let mut child = command.spawn().map_err(|e| format!("spawn {role}: {e}"))?;
        let name = format!("{role}@{host}");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let (events, out_lines, out_name) = (self.events.0.clone(), lines.clone(), name.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may print "test <name> ... " before our first line.
                if let Some(at) = line.find("OSRT ") {
                    let _ = events.send((out_name.clone(), line[at + 5..].to_string()));
                }
                out_lines.lock().expect("lines").push(line);
            }
        });
        let err_lines = lines.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(stderr).read_to_string(&mut text);
            err_lines
                .lock()
                .expect("lines")
                .extend(text.lines().map(|l| format!("stderr: {l}")));
        });
        self.roles.push(Role { name, child, lines });
        Ok(())
    }

    /// Waits for `count` events equal to `event`.
    fn await_events(&self, event: &str, count: usize) -> Result<(), String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut seen = 0;
        while seen < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.1.recv_timeout(left) {
                Ok((_, text)) if text == event => seen += 1,
                Ok(_) => {}
                Err(_) => return Err(format!("{seen} of {count} roles said {event}")),
            }
        }
        Ok(())
    }

    /// Waits for every role to exit; fails with all output if one failed.
    fn finish(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut failures = Vec::new();
        for role in &mut self.roles {
            let status = loop {
                if let Some(status) = role.child.try_wait().map_err(|e| e.to_string())? {
                    break Some(status);
                }
                if Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if !status.is_some_and(|status| status.success()) {
                failures.push(format!("{} exited {status:?}", role.name));
            }
        }
        std::thread::sleep(Duration::from_millis(50)); // let the readers drain
        self.print_output();
        self.roles.clear();
        if failures.is_empty() {
            Ok(())
        } else {
            Err(failures.join("; "))
        }
    }

    fn print_output(&self) {
        for role in &self.roles {
            for line in role.lines.lock().expect("lines").iter() {
                if line.contains("OSRT ") || line.starts_with("stderr") {
                    println!("[{}] {line}", role.name);
                }
            }
        }
    }
}

/// Removes namespaces left by earlier runs whose process is gone (a run
/// killed with SIGKILL cannot clean up after itself).
fn remove_stale_namespaces() {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("osrt-") else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

fn skip_reason() -> Option<String> {
    // SAFETY: `geteuid` takes no arguments, touches no memory and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Some("not root (network namespaces need CAP_NET_ADMIN)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the `ip` command (iproute2) is missing".into());
    }
    None
}

#[test]
fn multicast_and_slow_link_between_namespaces() {
    if let Ok(role) = std::env::var(ROLE) {
        run_role(&role);
        return;
    }
    if let Some(reason) = skip_reason() {
        println!("SKIP {TEST_NAME}: {reason}");
        return;
    }
    remove_stale_namespaces();
    let plan = Plan {
        pid: std::process::id(),
    };
    let mut lab = Lab::new(plan);
    lab.build().expect("lab");

    // Phase 1: one sender on h1; two receivers sharing the port on h2
    // (SO_REUSEPORT) and one on h3, all joined on their veth address.
    lab.spawn(
        "h2",
        "mcast-receiver",
        &[("OSRT_LOCAL", plan.host(2).to_string())],
    )
    .expect("spawn");
    lab.spawn(
        "h2",
        "mcast-receiver",
        &[("OSRT_LOCAL", plan.host(2).to_string())],
    )
    .expect("spawn");
    lab.spawn(
        "h3",
        "mcast-receiver",
        &[("OSRT_LOCAL", plan.host(3).to_string())],
    )
    .expect("spawn");
    let ready = lab.await_events("READY", 3);
    if let Err(error) = ready {
        let _ = lab.finish();
        panic!("receivers not ready: {error}");
    }
    lab.spawn("h1", "mcast-sender", &[]).expect("spawn");
    lab.finish().expect("multicast phase");

    // Phase 2: a 2 MiB frame through a 200 Mbit/s token bucket on h1.
    let tc = run(
        "ip",
        &[
            "netns",
            "exec",
            &plan.namespace("h1"),
            "tc",
            "qdisc",
            "add",
            "dev",
            &format!("{}v1", plan.prefix()),
            "root",
            "tbf",
            "rate",
            "200mbit",
            "burst",
            "32kb",
            "limit",
            "16mb",
        ],
    );
    if let Err(error) = tc {
        println!("SKIP slow-link phase: {error}");
        return;
    }
    lab.spawn("h3", "slow-receiver", &[]).expect("spawn");
    lab.await_events("READY", 1).expect("slow receiver ready");
    lab.spawn("h1", "slow-sender", &[]).expect("spawn");
    lab.finish().expect("slow-link phase");
}
