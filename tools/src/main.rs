//! `osiris`: the command line. `osiris demo` shows a local group at work;
//! `osiris node --config FILE` runs one member (driven by commands on stdin,
//! reporting events on stdout; see `member.rs` for the line format).

mod bench;
mod demo;
mod latency;
mod log_dump;
mod matrix;
mod member;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "osiris", version, about = "Osiris group communication")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a local group of member processes on loopback and narrate what
    /// they do: joins with state transfer, multicasts, a SIGKILL and the view
    /// change that follows.
    Demo {
        /// Member processes to start (at least 3).
        #[arg(long, default_value_t = 4)]
        members: u32,
        /// Messages each member multicasts in the burst phase.
        #[arg(long, default_value_t = 20_000)]
        burst: u32,
    },
    /// Run one member from a TOML config file. Reads commands on stdin
    /// (`join G`, `send G TEXT`, `burst G COUNT SIZE`, `await G TOTAL`,
    /// `tally G`, `leave G`, `stats`, `stats-all`, `quit`) and prints one line per event on
    /// stdout.
    Node {
        #[arg(long)]
        config: PathBuf,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print a durable group's log (read only: a torn tail is reported,
    /// not truncated): one line per record, then the SafeSend sequence it
    /// recovers to.
    Log { file: PathBuf },
}

/// Options every benchmark shares.
#[derive(Debug, clap::Args)]
struct BenchSetup {
    /// Send kind.
    #[arg(long, default_value = "send", value_parser = ["send", "causal", "ordered", "safe"])]
    kind: String,
    /// Member processes.
    #[arg(long, default_value_t = 3)]
    members: u32,
    /// Message size in bytes.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Idle strategy of every member's data plane.
    #[arg(long, default_value = "backoff", value_parser = ["backoff", "block", "yield", "busy-spin"])]
    idle: String,
    /// Pin member i's data plane to core i (mod the cores there are).
    #[arg(long)]
    pin: bool,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
    /// Run each member in a network namespace of its own, on one bridge,
    /// with group traffic by IP multicast; the baseline becomes raw IP
    /// multicast between the namespaces. Needs root; every namespace is
    /// removed afterwards, also on failure and on Ctrl-C.
    #[arg(long)]
    netns: bool,
}

impl BenchSetup {
    fn into_setup(self) -> bench::Setup {
        bench::Setup {
            kind: self.kind,
            members: self.members,
            size: self.size,
            idle: self.idle,
            pin: self.pin,
            json: self.json,
            netns: self.netns,
        }
    }
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Delivered messages per second between member processes on loopback
    /// (or in network namespaces), beside raw UDP (sendmmsg/recvmmsg)
    /// measured in the same run.
    Throughput {
        #[command(flatten)]
        setup: BenchSetup,
        /// Members that send (the first ones).
        #[arg(long, default_value_t = 1)]
        senders: u32,
        /// Messages per sender.
        #[arg(long, default_value_t = 200_000)]
        count: u64,
    },
    /// The standard matrix (sizes, senders, kinds, members) plus latency;
    /// writes JSON, a Markdown table and an SVG plot into `--out`.
    Matrix {
        /// Directory for `<date>.json`, `<date>.md`, `<date>.svg`.
        #[arg(long, default_value = "perf/results")]
        out: PathBuf,
        /// Fewer cells and messages (3 members, 1 sender).
        #[arg(long)]
        quick: bool,
        /// The file name stem (default: today's date, UTC).
        #[arg(long)]
        date: Option<String>,
        /// Run every cell in network namespaces (IP multicast, root only)
        /// instead of on loopback. Without it, the matrix adds a few netns
        /// rows when it runs as root.
        #[arg(long)]
        netns: bool,
    },
    /// Self-delivery latency of a send kind at a fixed offered rate
    /// (coordinated omission corrected) or at saturation, and the
    /// member-to-member round trip, beside raw UDP ping-pong.
    Latency {
        #[command(flatten)]
        setup: BenchSetup,
        /// Messages measured.
        #[arg(long, default_value_t = 50_000)]
        count: u64,
        /// Offered rate in messages per second; 0 = saturation.
        #[arg(long, default_value_t = 10_000)]
        rate: u64,
    },
}

/// Counts heap allocations of the whole process, so that `stats` (and
/// `osiris bench`) can report allocations per delivered message. One relaxed
/// atomic add per allocation; the steady state makes none.
struct CountingAllocator;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; the
// counter is a relaxed atomic that never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout (above).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Heap allocations since the process started.
pub(crate) fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
fn today() -> String {
    let days = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { members, burst } => demo::run(members, burst),
        Command::Node { config } => member::run(&config),
        Command::Log { file } => log_dump::run(&file),
        Command::Bench(BenchCommand::Throughput {
            setup,
            senders,
            count,
        }) => bench::throughput(bench::Throughput {
            setup: setup.into_setup(),
            senders,
            count,
        }),
        Command::Bench(BenchCommand::Matrix {
            out,
            quick,
            date,
            netns,
        }) => {
            let date = date.unwrap_or_else(today);
            matrix::run(&out, matrix::Options { quick, netns }, &date)
        }
        Command::Bench(BenchCommand::Latency { setup, count, rate }) => {
            bench::latency(bench::Latency {
                setup: setup.into_setup(),
                count,
                rate,
            })
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("osiris: {error}");
            ExitCode::FAILURE
        }
    }
}
