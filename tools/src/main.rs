//! `osiris`: the command line. `osiris demo` shows a local group at work;
//! `osiris node --config FILE` runs one member (driven by commands on stdin,
//! reporting events on stdout; see `member.rs` for the line format).

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { members, burst } => demo::run(members, burst),
        Command::Node { config } => member::run(&config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("osiris: {error}");
            ExitCode::FAILURE
        }
    }
}
