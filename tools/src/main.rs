//! `osiris`: the command line. `osiris demo` shows a local group at work;
//! `osiris node --config FILE` runs one member (driven by commands on stdin,
//! reporting events on stdout; see `member.rs` for the line format).

mod bench;
mod demo;
mod member;

use std::path::PathBuf;
use std::process::ExitCode;

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
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Delivered messages per second between member processes on loopback,
    /// beside raw UDP (sendmmsg/recvmmsg) measured in the same run.
    Throughput {
        /// Send kind.
        #[arg(long, default_value = "send", value_parser = ["send", "causal", "ordered", "safe"])]
        kind: String,
        #[arg(long, default_value_t = 3)]
        members: u32,
        #[arg(long, default_value_t = 1)]
        senders: u32,
        /// Message size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Messages per sender.
        #[arg(long, default_value_t = 200_000)]
        count: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { members, burst } => demo::run(members, burst),
        Command::Node { config } => member::run(&config),
        Command::Bench(BenchCommand::Throughput {
            kind,
            members,
            senders,
            size,
            count,
        }) => bench::throughput(bench::Throughput {
            kind: match kind.as_str() {
                "causal" => "causal",
                "ordered" => "ordered",
                "safe" => "safe",
                _ => "send",
            },
            members,
            senders,
            size,
            count,
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("osiris: {error}");
            ExitCode::FAILURE
        }
    }
}
