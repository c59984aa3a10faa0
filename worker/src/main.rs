//! The `worker` binary: parses the command line and hands over to the library.

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "worker", version, about = "agent-fleet worker")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rank a repository's files for an issue and pack a context (no settings needed).
    Context(fleet_context::ContextArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Context(args)) => fleet_context::run_cli(&args),
        None => anyhow::bail!("the consuming worker is not built yet"),
    }
}
