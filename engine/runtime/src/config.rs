//! Runtime configuration: the core's `Config` plus what the runtime adds
//! (sockets, idle strategy, pinning, multicast, rings), built in code
//! (`RuntimeConfig::new` and field changes) or read from a TOML file.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use osiris_core::Config;
use serde::Deserialize;

use crate::error::RuntimeError;
use crate::idle::IdleStrategy;

/// Largest core frame the runtime accepts (the transport fragments frames
/// larger than a datagram and reassembles up to 16 MiB).
const FRAME_MAX_LIMIT: usize = 4 << 20;

/// How a group multicast reaches the group's members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MulticastMode {
    /// One unicast datagram per member, all in one `sendmmsg`: works on any
    /// network, and the default (loopback has no multicast route of its own).
    Fanout,
    /// IP multicast: group `g` uses `base + (g mod 65,534) + 1` inside the
    /// configured /16 on `port`; every member binds `port` too (a second
    /// socket, `SO_REUSEPORT`) and joins on `interface`.
    Ip {
        base: Ipv4Addr,
        port: u16,
        interface: Ipv4Addr,
        /// Multicast discovery: members listen on this group address (on
        /// `port`), and a joiner sends its join request there as well as to
        /// its seeds, so it needs no seed list at all.
        discovery: Option<Ipv4Addr>,
    },
}

/// Everything a runtime node needs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// The protocol core's config. Its `addr` is set by the runtime to the
    /// bound unicast address (so a port of 0 works).
    pub core: Config,
    /// The unicast address to bind: the member's own port.
    pub bind: SocketAddr,
    pub idle: IdleStrategy,
    /// Pin the data-plane thread to this core (`core_affinity`); `None`: no pinning.
    pub pin_core: Option<usize>,
    pub multicast: MulticastMode,
    /// Largest UDP payload sent: 65,507 on loopback, path MTU − 28 on a network.
    pub datagram_len_max: usize,
    /// Socket buffer request (both directions), bytes.
    pub socket_buffer_bytes: usize,
    /// Slots of the submission ring between application threads and the data
    /// plane: the most sends in flight before `send` blocks.
    pub submit_ring_len: usize,
    /// How long `Group::join` waits for the view that admits this node.
    pub join_timeout: Duration,
    /// How long `flush`, `leave` (and a query beyond its own timeout) wait.
    pub request_timeout: Duration,
    /// How long `send` waits for room in a full submission ring.
    pub send_timeout: Duration,
    /// How long `shutdown` waits for the leave to be agreed.
    pub leave_timeout: Duration,
    /// Where durable groups keep their logs (one file per group); needed
    /// to join a group with `GroupBuilder::durable`. One node per directory.
    pub durable_dir: Option<PathBuf>,
}

impl RuntimeConfig {
    /// A node with id `node` bound to `bind`, fan-out multicast, backoff idling.
    pub fn new(node: u32, bind: SocketAddr) -> RuntimeConfig {
        RuntimeConfig {
            core: Config::new(node, bind.to_string()),
            bind,
            idle: IdleStrategy::default(),
            pin_core: None,
            multicast: MulticastMode::Fanout,
            datagram_len_max: osiris_transport::udp::UDP_PAYLOAD_MAX,
            socket_buffer_bytes: 4 << 20,
            submit_ring_len: 4096,
            join_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(5),
            leave_timeout: Duration::from_secs(2),
            durable_dir: None,
        }
    }

    /// Reads a TOML config file (see `docs/runtime.md` for every key).
    ///
    /// # Errors
    /// `RuntimeError::Config` naming the file and what is wrong in it.
    pub fn from_file(path: &Path) -> Result<RuntimeConfig, RuntimeError> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            RuntimeError::Config(format!("cannot read {}: {error}", path.display()))
        })?;
        RuntimeConfig::from_toml(&text)
            .map_err(|error| RuntimeError::Config(format!("{}: {error}", path.display())))
    }

    /// Parses config text in TOML.
    ///
    /// # Errors
    /// `RuntimeError::Config` saying which key is wrong and why.
    pub fn from_toml(text: &str) -> Result<RuntimeConfig, RuntimeError> {
        let file: FileConfig =
            toml::from_str(text).map_err(|error| RuntimeError::Config(error.to_string()))?;
        file.into_config()
    }

    /// Checks what the runtime adds; the core checks its own part.
    ///
    /// # Errors
    /// `RuntimeError::Config` for the first bad value.
    pub fn validate(&self) -> Result<(), RuntimeError> {
        let bad = |what: &str| Err(RuntimeError::Config(what.to_owned()));
        if self.submit_ring_len < 2 || self.submit_ring_len > 1 << 20 {
            return bad("submit_ring_len must be 2 to 1,048,576");
        }
        // Frames larger than a datagram are fragmented by the transport (up
        // to its reassembly limit, 16 MiB); keep data frames reasonable.
        if self.core.frame_max > FRAME_MAX_LIMIT {
            return bad("core frame_max is above 4 MiB");
        }
        if let MulticastMode::Ip {
            base,
            port,
            discovery,
            ..
        } = self.multicast
        {
            if discovery.is_some_and(|address| !address.is_multicast()) {
                return bad("multicast.discovery must be a multicast address");
            }
            if !base.is_multicast() || base.octets()[2..] != [0, 0] {
                return bad("multicast.base must be a multicast /16 such as 239.77.0.0");
            }
            if port == 0 || port == self.bind.port() {
                return bad("multicast.port must be set and differ from the unicast port");
            }
            if !self.bind.is_ipv4() {
                return bad("IP multicast needs an IPv4 bind address");
            }
        }
        if let Some(dir) = &self.durable_dir {
            if dir.exists() && !dir.is_dir() {
                return Err(RuntimeError::Config(format!(
                    "durable_dir {} exists and is not a directory",
                    dir.display()
                )));
            }
        }
        if let Some(core) = self.pin_core {
            if core >= 4096 {
                return bad("pin_core is not a plausible core index");
            }
        }
        // The discovery group counts as a seed (the engine adds it).
        let mut core = self.core.clone();
        if let Some(discovery) = self.discovery_address() {
            core.seeds.push(discovery.to_string());
        }
        core.validate()
            .map_err(|error| RuntimeError::Config(error.to_string()))
    }

    /// The multicast discovery address, if configured.
    pub fn discovery_address(&self) -> Option<SocketAddrV4> {
        match self.multicast {
            MulticastMode::Ip {
                port,
                discovery: Some(address),
                ..
            } => Some(SocketAddrV4::new(address, port)),
            _ => None,
        }
    }

    /// The IP multicast address and port of a group, in `Ip` mode.
    pub fn group_address(&self, group: osiris_core::GroupId) -> Option<SocketAddrV4> {
        match self.multicast {
            MulticastMode::Fanout => None,
            MulticastMode::Ip { base, port, .. } => {
                let offset = (group.0 % 65_534) as u32 + 1;
                Some(SocketAddrV4::new(
                    Ipv4Addr::from(u32::from(base) + offset),
                    port,
                ))
            }
        }
    }
}

/// The TOML file's shape. Unknown keys are errors (a typo must not pass
/// silently).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node: u32,
    bind: SocketAddr,
    #[serde(default)]
    bootstrap: bool,
    #[serde(default)]
    seeds: Vec<String>,
    #[serde(default)]
    idle: Option<String>,
    #[serde(default)]
    pin_core: Option<usize>,
    #[serde(default)]
    datagram_len_max: Option<usize>,
    #[serde(default)]
    submit_ring_len: Option<usize>,
    #[serde(default)]
    durable_dir: Option<PathBuf>,
    #[serde(default)]
    multicast: Option<FileMulticast>,
    #[serde(default)]
    timing: FileTiming,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMulticast {
    base: Ipv4Addr,
    port: u16,
    interface: Ipv4Addr,
    #[serde(default)]
    discovery: Option<Ipv4Addr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTiming {
    heartbeat_ms: Option<u64>,
    suspect_ms: Option<u64>,
    view_change_ms: Option<u64>,
    join_timeout_ms: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    payload_max: Option<usize>,
    frame_max: Option<usize>,
    send_window: Option<u32>,
    send_window_bytes: Option<usize>,
    send_queue_max: Option<usize>,
    send_queue_bytes_max: Option<usize>,
}

impl FileConfig {
    fn into_config(self) -> Result<RuntimeConfig, RuntimeError> {
        let mut config = RuntimeConfig::new(self.node, self.bind);
        config.core.bootstrap = self.bootstrap;
        config.core.seeds = self.seeds;
        if let Some(idle) = self.idle {
            config.idle = IdleStrategy::parse(&idle).ok_or_else(|| {
                RuntimeError::Config(format!(
                    "idle = {idle:?}: expected busy-spin, yield, backoff or block"
                ))
            })?;
        }
        config.pin_core = self.pin_core;
        config.durable_dir = self.durable_dir;
        if let Some(len) = self.datagram_len_max {
            config.datagram_len_max = len;
        }
        if let Some(len) = self.submit_ring_len {
            config.submit_ring_len = len;
        }
        if let Some(multicast) = self.multicast {
            config.multicast = MulticastMode::Ip {
                base: multicast.base,
                port: multicast.port,
                interface: multicast.interface,
                discovery: multicast.discovery,
            };
        }
        let ms = Duration::from_millis;
        if let Some(value) = self.timing.heartbeat_ms {
            config.core.heartbeat_period = ms(value);
        }
        if let Some(value) = self.timing.suspect_ms {
            config.core.suspect_timeout = ms(value);
        }
        if let Some(value) = self.timing.view_change_ms {
            config.core.view_change_timeout = ms(value);
        }
        if let Some(value) = self.timing.join_timeout_ms {
            config.join_timeout = ms(value);
        }
        if let Some(value) = self.limits.payload_max {
            config.core.payload_max = value;
        }
        if let Some(value) = self.limits.frame_max {
            config.core.frame_max = value;
        }
        if let Some(value) = self.limits.send_window {
            config.core.send_window = value;
        }
        if let Some(value) = self.limits.send_window_bytes {
            config.core.send_window_bytes = value;
        }
        if let Some(value) = self.limits.send_queue_bytes_max {
            config.core.send_queue_bytes_max = value;
        }
        if let Some(value) = self.limits.send_queue_max {
            config.core.send_queue_max = value;
        }
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_parses() {
        let config = RuntimeConfig::from_toml(
            r#"
            node = 3
            bind = "10.77.0.3:7001"
            seeds = ["10.77.0.1:7001"]
            idle = "block"
            pin_core = 1
            datagram_len_max = 1472
            [multicast]
            base = "239.77.0.0"
            port = 7400
            interface = "10.77.0.3"
            discovery = "239.77.255.250"
            [timing]
            heartbeat_ms = 10
            suspect_ms = 100
            [limits]
            payload_max = 1024
            "#,
        )
        .unwrap();
        assert_eq!(config.core.node.0, 3);
        assert_eq!(config.core.seeds, vec!["10.77.0.1:7001".to_owned()]);
        assert_eq!(config.idle, IdleStrategy::BlockOnEvent);
        assert_eq!(config.core.suspect_timeout, Duration::from_millis(100));
        assert_eq!(config.core.payload_max, 1024);
        let group = osiris_core::GroupId::from_name("kv");
        let address = config.group_address(group).unwrap();
        assert_eq!(address.port(), 7400);
        assert_eq!(address.ip().octets()[..2], [239, 77]);
        assert!(matches!(
            config.multicast,
            MulticastMode::Ip {
                discovery: Some(_),
                ..
            }
        ));
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let error = |text: &str| RuntimeConfig::from_toml(text).unwrap_err().to_string();
        assert!(error("node = 1").contains("bind"), "{}", error("node = 1"));
        assert!(error("node = 1\nbind = \"127.0.0.1:1\"\nnoed = 2").contains("noed"));
        assert!(error("node = 1\nbind = \"127.0.0.1:1\"\nidle = \"sleepy\"").contains("sleepy"));
        assert!(error("node = 1\nbind = \"nowhere\"").contains("bind"));
        let multicast = "node = 1\nbind = \"127.0.0.1:1\"\n[multicast]\nbase = \"10.0.0.0\"\nport = 7\ninterface = \"127.0.0.1\"";
        assert!(error(multicast).contains("multicast.base"));
        let file = "node = 1\nbind = \"127.0.0.1:1\"\ndurable_dir = \"/etc/hostname\"";
        assert!(error(file).contains("durable_dir"), "{}", error(file));
        let core = "node = 1\nbind = \"127.0.0.1:1\"\n[limits]\npayload_max = 0";
        assert!(error(core).contains("payload_max"), "{}", error(core));
    }
}
