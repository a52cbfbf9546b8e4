//! Starts `osiris node` member processes, feeds them commands and reads their
//! event lines (format in `report.rs`). Used by `osiris demo` and by the
//! multi-process tests. Dropping a `Cluster` kills (SIGKILL) every member
//! still running and removes its temporary directory.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

/// One member process.
#[derive(Debug)]
pub struct Member {
    pub node: u32,
    pub addr: SocketAddr,
    pub pid: u32,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Every line it printed so far.
    pub lines: Vec<String>,
    /// Lines before this index were matched by `wait_for` already.
    cursor: usize,
    pub running: bool,
    /// Its stdout reached end of file: it exited (or closed it), and no
    /// further line will come.
    pub stdout_closed: bool,
}

/// A line a member printed, or `None` once its stdout closed.
type Event = (usize, Option<String>);

#[derive(Debug)]
pub struct Cluster {
    exe: PathBuf,
    dir: PathBuf,
    pub members: Vec<Member>,
    tx: Sender<Event>,
    rx: Receiver<Event>,
    /// Members started from now on write stderr to `member-<index>.stderr`
    /// in `dir` instead of inheriting this process's stderr.
    capture_stderr: bool,
}

/// What went wrong while driving members.
pub type ClusterError = String;

impl Cluster {
    /// `exe` is the `osiris` binary; config files go into a fresh temporary
    /// directory named after `tag` and this process.
    pub fn new(exe: &Path, tag: &str) -> Result<Cluster, ClusterError> {
        let dir = std::env::temp_dir().join(format!("osiris-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let (tx, rx) = channel();
        Ok(Cluster {
            exe: exe.to_owned(),
            dir,
            members: Vec::new(),
            tx,
            rx,
            capture_stderr: false,
        })
    }

    /// Members started after this call write their stderr to a file (read
    /// it with `stderr`) instead of this process's stderr.
    pub fn capture_stderr(&mut self) {
        self.capture_stderr = true;
    }

    /// What member `index` wrote to stderr so far, if it was captured.
    pub fn stderr(&self, index: usize) -> Option<String> {
        std::fs::read_to_string(self.stderr_path(index)).ok()
    }

    fn stderr_path(&self, index: usize) -> PathBuf {
        self.dir.join(format!("member-{index}.stderr"))
    }

    /// Starts a member with this config text (TOML, see docs/runtime.md),
    /// optionally under a wrapper command (`ip netns exec NS`). Waits for its
    /// READY line; returns its index.
    pub fn spawn(&mut self, config: &str, wrapper: &[String]) -> Result<usize, ClusterError> {
        let index = self.members.len();
        let path = self.dir.join(format!("member-{index}.toml"));
        std::fs::write(&path, config).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(&self.exe);
                command
            }
            None => Command::new(&self.exe),
        };
        let stderr = if self.capture_stderr {
            let path = self.stderr_path(index);
            let file =
                std::fs::File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            Stdio::from(file)
        } else {
            Stdio::inherit()
        };
        command
            .arg("node")
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.exe.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let stdin = child.stdin.take();
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((index, Some(line))).is_err() {
                    return;
                }
            }
            let _ = tx.send((index, None));
        });
        self.members.push(Member {
            node: 0,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            pid: child.id(),
            child,
            stdin,
            lines: Vec::new(),
            cursor: 0,
            running: true,
            stdout_closed: false,
        });
        let ready = self.wait_for(index, "READY", Duration::from_secs(10))?;
        let words: Vec<&str> = ready.split_whitespace().collect();
        let member = &mut self.members[index];
        member.node = words.get(1).and_then(|w| w.parse().ok()).unwrap_or(0);
        member.addr = words
            .get(2)
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| format!("bad READY line: {ready}"))?;
        Ok(index)
    }

    /// Sends one command line to member `index`.
    pub fn command(&mut self, index: usize, line: &str) -> Result<(), ClusterError> {
        let member = &mut self.members[index];
        let stdin = member
            .stdin
            .as_mut()
            .ok_or_else(|| format!("member {index} has no stdin"))?;
        writeln!(stdin, "{line}").map_err(|e| format!("member {index}: {e}"))
    }

    /// Waits until member `index` prints a line starting with `prefix` (after
    /// the last line matched for it) and returns that line.
    pub fn wait_for(
        &mut self,
        index: usize,
        prefix: &str,
        timeout: Duration,
    ) -> Result<String, ClusterError> {
        self.wait_until(index, prefix, |line| line.starts_with(prefix), timeout)
    }

    /// Waits until member `index` prints a line for which `matches` holds
    /// (after the last line matched for it) and returns that line. `what`
    /// names it in the error.
    pub fn wait_until(
        &mut self,
        index: usize,
        what: &str,
        matches: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            let member = &mut self.members[index];
            if let Some(offset) = member.lines[member.cursor..]
                .iter()
                .position(|line| matches(line))
            {
                let at = member.cursor + offset;
                member.cursor = at + 1;
                return Ok(member.lines[at].clone());
            }
            if member.stdout_closed {
                return Err(self.exited(index, what));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(event) => self.record(event),
                Err(RecvTimeoutError::Timeout) => return Err(self.timed_out(index, what, timeout)),
                Err(RecvTimeoutError::Disconnected) => return Err("all readers ended".into()),
            }
        }
    }

    /// Waits until member `index` has printed, at any time, a line for which
    /// `matches` holds, and returns the first such line. Unlike `wait_until`
    /// it looks at every line and leaves the cursor alone.
    pub fn wait_seen(
        &mut self,
        index: usize,
        what: &str,
        matches: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.collect();
            if let Some(line) = self.members[index].lines.iter().find(|line| matches(line)) {
                return Ok(line.clone());
            }
            if self.members[index].stdout_closed {
                return Err(self.exited(index, what));
            }
            if Instant::now() >= deadline {
                return Err(self.timed_out(index, what, timeout));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn exited(&self, index: usize, what: &str) -> ClusterError {
        let tail: Vec<&String> = self.members[index].lines.iter().rev().take(5).collect();
        format!("member {index} exited before printing a {what} line (last lines: {tail:?})")
    }

    fn record(&mut self, (from, line): Event) {
        match line {
            Some(line) => {
                if line.starts_with("ERROR") {
                    eprintln!("member {from}: {line}");
                }
                self.members[from].lines.push(line);
            }
            None => self.members[from].stdout_closed = true,
        }
    }

    fn timed_out(&self, index: usize, what: &str, timeout: Duration) -> ClusterError {
        let tail: Vec<&String> = self.members[index].lines.iter().rev().take(5).collect();
        format!("member {index} printed no {what} line within {timeout:?} (last lines: {tail:?})")
    }

    /// The latest line member `index` printed that starts with `prefix`
    /// (whether or not `wait_for` passed it).
    pub fn last(&mut self, index: usize, prefix: &str) -> Option<String> {
        self.collect();
        self.members[index]
            .lines
            .iter()
            .rev()
            .find(|line| line.starts_with(prefix))
            .cloned()
    }

    /// Waits until the latest group view member `index` printed has `size`
    /// members.
    pub fn wait_view_size(
        &mut self,
        index: usize,
        size: usize,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        loop {
            let full = self.last(index, "VIEW").is_some_and(|view| {
                view.split_whitespace()
                    .nth(3)
                    .is_some_and(|members| members.split(',').count() == size)
            });
            if full {
                return Ok(());
            }
            if self.members[index].stdout_closed {
                return Err(self.exited(index, &format!("VIEW of {size}")));
            }
            if Instant::now() > deadline {
                return Err(format!("member {index} never saw a view of {size}"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reads whatever lines arrived, without waiting.
    pub fn collect(&mut self) {
        while let Ok(event) = self.rx.try_recv() {
            self.record(event);
        }
    }

    /// Kills member `index` with SIGKILL (by its pid) and reaps it.
    pub fn kill(&mut self, index: usize) -> Result<(), ClusterError> {
        let member = &mut self.members[index];
        member.child.kill().map_err(|e| format!("kill: {e}"))?;
        let _ = member.child.wait();
        member.running = false;
        member.stdin = None;
        Ok(())
    }

    /// Asks member `index` to leave and exit, and waits for it.
    pub fn quit(&mut self, index: usize) -> Result<(), ClusterError> {
        if !self.members[index].running {
            return Ok(());
        }
        self.command(index, "quit")?;
        self.wait_for(index, "BYE", Duration::from_secs(10))?;
        let member = &mut self.members[index];
        member.stdin = None;
        let _ = member.child.wait();
        member.running = false;
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            if member.running {
                let _ = member.child.kill();
                let _ = member.child.wait();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Config text for a loopback member.
pub fn loopback_config(node: u32, seed: Option<SocketAddr>, extra: &str) -> String {
    let seeds: Option<Vec<SocketAddr>> = seed.map(|seed| vec![seed]);
    member_config(node, Ipv4Addr::LOCALHOST, seeds.as_deref(), extra)
}

/// Config text for member `node` bound to `ip` (any port). `seeds`: `None`
/// founds the domain (`bootstrap`); an empty list finds it by multicast
/// discovery (set in `extra`). `extra` follows the keys written here.
pub fn member_config(node: u32, ip: Ipv4Addr, seeds: Option<&[SocketAddr]>, extra: &str) -> String {
    let mut text = format!("node = {node}\nbind = \"{ip}:0\"\n");
    match seeds {
        Some([]) => {}
        Some(seeds) => {
            let quoted: Vec<String> = seeds.iter().map(|seed| format!("\"{seed}\"")).collect();
            text.push_str(&format!("seeds = [{}]\n", quoted.join(", ")));
        }
        None => text.push_str("bootstrap = true\n"),
    }
    text.push_str(extra);
    text
}
