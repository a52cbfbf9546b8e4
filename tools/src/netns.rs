//! Hosts on one machine for the tests and `osiris bench --netns`: one network
//! namespace per host, each joined by a veth pair to a bridge that sits in a
//! namespace of its own (the recipe of /work/shared/NETNS.md). Multicast
//! snooping is off, so the bridge floods multicast to every port. Each host
//! routes 224.0.0.0/4 through its veth. Nothing is created in the root
//! namespace. Needs root and `ip` (iproute2).
//!
//! A `Lab` deletes its namespaces when dropped, after killing whatever still
//! runs inside them. On SIGINT, SIGTERM or SIGHUP, a watcher thread does the
//! same for every lab of the process and exits with status 128 + signal, so an
//! interrupted run leaves nothing behind either.

use std::fs::File;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::Command;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, Once};

use crate::cluster::member_config;

/// Runs a program, returns its stdout; an error carries its stderr.
pub fn run_command(program: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

pub fn ip(args: &[&str]) -> Result<String, String> {
    run_command("ip", args)
}

/// Why this machine cannot build a lab, if it cannot: not root, no `ip`, or
/// none of one of `programs` (each must answer `--version`).
pub fn missing_prerequisite(programs: &[&str]) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        == Some("0");
    if !root {
        return Some("not root (network namespaces need CAP_SYS_ADMIN; run with sudo)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("`ip` is missing (Debian: iproute2)".into());
    }
    for program in programs {
        if Command::new(program).arg("--version").output().is_err() {
            return Some(format!("`{program}` is missing"));
        }
    }
    None
}

/// The namespaces with this name prefix that exist now.
pub fn namespaces_with_prefix(prefix: &str) -> Vec<String> {
    ip(&["netns", "list"])
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

/// Runs `f` on a thread that has joined network namespace `namespace`. A
/// socket made by `f` belongs to that namespace for its whole life, whichever
/// thread uses it afterwards: this is how one process measures between hosts.
pub fn in_namespace<T: Send>(namespace: &str, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    let path = format!("/run/netns/{namespace}");
    let handle = File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: `handle` is an open namespace file for the whole
                // call; setns(2) changes only this thread's network
                // namespace, and the thread ends when `f` returns.
                if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    let error = std::io::Error::last_os_error();
                    return Err(format!("setns {namespace}: {error}"));
                }
                Ok(f())
            })
            .join()
            .map_err(|_| format!("thread in {namespace} panicked"))?
    })
}

/// Namespaces of every lab of this process not yet deleted: what the signal
/// watcher removes. Whoever deletes namespaces holds this lock throughout,
/// so a lab's drop waits while the watcher cleans up (and never returns,
/// since the watcher exits the process): the process cannot end before
/// the clean-up does.
static LIVE: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Write end of the pipe from the signal handler to the watcher thread.
static SIGNAL_PIPE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signal: libc::c_int) {
    let byte = signal as u8;
    let fd = SIGNAL_PIPE.load(Ordering::Relaxed);
    // SAFETY: write(2) is async-signal-safe; `byte` outlives the call and one
    // byte is written from it. A failed write leaves nothing to do here.
    let _ = unsafe { libc::write(fd, std::ptr::addr_of!(byte).cast(), 1) };
}

/// Installs (once per process) the handler for SIGINT, SIGTERM and SIGHUP
/// and the thread that cleans up when one arrives. A handler may only do
/// async-signal-safe work, so it writes the signal to a pipe; the thread
/// reads it, kills what runs in every live namespace, deletes them and exits.
fn watch_signals() -> Result<(), String> {
    static INSTALL: Once = Once::new();
    let mut result = Ok(());
    INSTALL.call_once(|| result = install_signal_watcher());
    result
}

fn install_signal_watcher() -> Result<(), String> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2 writes two descriptors into the two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    SIGNAL_PIPE.store(fds[1], Ordering::Relaxed);
    // SAFETY: fds[0] was just made by pipe2 and nothing else owns it.
    let mut reader = unsafe { File::from_raw_fd(fds[0]) };
    std::thread::Builder::new()
        .name("netns-signals".into())
        .spawn(move || {
            let mut byte = [0u8; 1];
            if reader.read_exact(&mut byte).is_err() {
                return;
            }
            // Held until the process exits: no lab is built or dropped meanwhile.
            let live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!(
                "osiris: signal {}: removing {} network namespace(s)",
                byte[0],
                live.len()
            );
            for namespace in live.iter().rev() {
                destroy_namespace(namespace);
            }
            std::process::exit(128 + i32::from(byte[0]));
        })
        .map_err(|e| format!("signal watcher thread: {e}"))?;
    for signal in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: an all-zero sigaction is a valid value to fill in.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        // SAFETY: `action` is initialised above; its mask is emptied before
        // use; no old action is asked for (null).
        let status = unsafe {
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if status != 0 {
            return Err(format!("sigaction: {}", std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

/// Kills (SIGKILL, by pid) every process still in `namespace`, then deletes
/// it. A namespace with a process in it lives on after `ip netns del`.
fn destroy_namespace(namespace: &str) {
    for pid in ip(&["netns", "pids", namespace])
        .unwrap_or_default()
        .split_whitespace()
    {
        let _ = run_command("kill", &["-9", pid]);
    }
    if let Err(error) = ip(&["netns", "del", namespace]) {
        eprintln!("clean-up: {error}");
    }
}

/// The namespaces of one run: a switch `<name>-<id>-nsw` holding bridge
/// `br0`, and hosts `<name>-<id>-n1..` at 10.`octet`.`id % 256`.1.. (/24),
/// host `h`'s veth `v<h>` on bridge port `p<h>`. Interface names live in the
/// lab's namespaces only, so they need not be unique on the machine; the
/// namespace names do, hence the `id` (a pid). Dropping it removes it all.
#[derive(Debug)]
pub struct Lab {
    prefix: String,
    id: u32,
    octet: u8,
    hosts: u8,
    namespaces: Vec<String>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        for namespace in self.namespaces.iter().rev() {
            destroy_namespace(namespace);
            live.retain(|entry| entry != namespace);
        }
    }
}

impl Lab {
    /// Builds the bridge and `hosts` hosts (at most 250).
    pub fn build(name: &str, id: u32, octet: u8, hosts: u8) -> Result<Lab, String> {
        if !(1..=250).contains(&hosts) {
            return Err(format!("a lab has 1 to 250 hosts, not {hosts}"));
        }
        watch_signals()?;
        let mut lab = Lab {
            prefix: format!("{name}-{id}-"),
            id,
            octet,
            hosts,
            namespaces: Vec::new(),
        };
        let switch = lab.add_namespace(format!("{}nsw", lab.prefix))?;
        let bridge = "br0";
        ip(&["-n", &switch, "link", "add", bridge, "type", "bridge"])?;
        ip(&[
            "-n",
            &switch,
            "link",
            "set",
            bridge,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ])?;
        ip(&["-n", &switch, "link", "set", bridge, "up"])?;
        for host in 1..=hosts {
            let namespace = lab.add_namespace(lab.host_namespace(host))?;
            let (veth, port) = (lab.veth(host), format!("p{host}"));
            ip(&[
                "link", "add", &veth, "netns", &namespace, "type", "veth", "peer", "name", &port,
                "netns", &switch,
            ])?;
            ip(&["-n", &switch, "link", "set", &port, "master", bridge])?;
            ip(&["-n", &switch, "link", "set", &port, "up"])?;
            let address = format!("{}/24", lab.host_addr(host));
            ip(&["-n", &namespace, "addr", "add", &address, "dev", &veth])?;
            ip(&["-n", &namespace, "link", "set", &veth, "up"])?;
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &namespace,
                "route",
                "add",
                "224.0.0.0/4",
                "dev",
                &veth,
            ])?;
        }
        Ok(lab)
    }

    fn add_namespace(&mut self, namespace: String) -> Result<String, String> {
        // Under the lock: the signal watcher removes it after `add`, never
        // before (an `ip` still running would outlive our exit).
        let mut live = LIVE.lock().unwrap_or_else(|e| e.into_inner());
        live.push(namespace.clone());
        self.namespaces.push(namespace.clone());
        // A namespace left by an earlier run with the same id goes first.
        let _ = ip(&["netns", "del", &namespace]);
        ip(&["netns", "add", &namespace])?;
        Ok(namespace)
    }

    /// `<name>-<id>-`: every namespace of the lab starts with it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn hosts(&self) -> u8 {
        self.hosts
    }

    pub fn host_namespace(&self, host: u8) -> String {
        format!("{}n{host}", self.prefix)
    }

    pub fn host_addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, self.octet, (self.id % 256) as u8, host)
    }

    pub fn veth(&self, host: u8) -> String {
        format!("v{host}")
    }

    /// The /16 the members' `[multicast] base` names.
    pub fn multicast_base(&self) -> Ipv4Addr {
        Ipv4Addr::new(239, self.octet, 0, 0)
    }

    pub fn multicast_port(&self) -> u16 {
        41_000 + (self.id % 10_000) as u16
    }

    /// `ip netns exec <host's namespace>`: the wrapper for `Cluster::spawn`.
    pub fn wrapper(&self, host: u8) -> Vec<String> {
        ["ip", "netns", "exec", &self.host_namespace(host)]
            .iter()
            .map(|word| (*word).to_owned())
            .collect()
    }

    /// Runs a program inside host `host`'s namespace.
    pub fn exec(&self, host: u8, program: &str, args: &[&str]) -> Result<String, String> {
        let namespace = self.host_namespace(host);
        let mut words = vec!["netns", "exec", &namespace, program];
        words.extend_from_slice(args);
        ip(&words)
    }

    /// Config text of the member on host `host` (node id `host`), bound to
    /// the host's address, with group traffic by IP multicast over the
    /// bridge. `seed`: the founder's address (`None`: this is the founder).
    /// With `discovery`, a joiner gets no seed list and finds the domain by
    /// multicast discovery. `extra` is added before the `[multicast]` table
    /// (top-level keys, then tables of its own).
    pub fn member_config(
        &self,
        host: u8,
        seed: Option<SocketAddr>,
        discovery: bool,
        extra: &str,
    ) -> String {
        let addr = self.host_addr(host);
        // Path MTU 1500 minus the IP and UDP headers: no IP fragmentation.
        let mut extra = format!("datagram_len_max = 1472\n{extra}");
        extra.push_str(&format!(
            "[multicast]\nbase = \"{}\"\nport = {}\ninterface = \"{addr}\"\n",
            self.multicast_base(),
            self.multicast_port()
        ));
        if discovery {
            let group = Ipv4Addr::new(239, self.octet, 255, 250);
            extra.push_str(&format!("discovery = \"{group}\"\n"));
        }
        let seeds: Option<Vec<SocketAddr>> = match seed {
            Some(_) if discovery => Some(Vec::new()),
            seed => seed.map(|seed| vec![seed]),
        };
        member_config(u32::from(host), addr, seeds.as_deref(), &extra)
    }

    /// Counters of host `host`'s IP stack (`/proc/net/netstat` and
    /// `/proc/net/snmp` as seen from inside its namespace), such as
    /// `IpExt:InMcastPkts` or `Udp:InDatagrams`.
    pub fn counters(&self, host: u8) -> Result<Vec<(String, u64)>, String> {
        let text = self.exec(host, "cat", &["/proc/net/netstat", "/proc/net/snmp"])?;
        let mut counters = Vec::new();
        let lines: Vec<&str> = text.lines().collect();
        for pair in lines.chunks(2) {
            let [names, values] = pair else { break };
            let mut names = names.split_whitespace();
            let mut values = values.split_whitespace();
            let (Some(section), Some(_)) = (names.next(), values.next()) else {
                continue;
            };
            for (name, value) in names.zip(values) {
                if let Ok(value) = value.parse() {
                    counters.push((format!("{section}{name}"), value));
                }
            }
        }
        Ok(counters)
    }

    /// One counter of `counters` (0 if it is missing).
    pub fn counter(&self, host: u8, name: &str) -> Result<u64, String> {
        Ok(self
            .counters(host)?
            .into_iter()
            .find(|(key, _)| key == name)
            .map_or(0, |(_, value)| value))
    }
}
