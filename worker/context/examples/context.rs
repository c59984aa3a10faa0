//! The `worker context` command on its own, for benchmarking the selector without building
//! the whole worker, with two extra knobs to measure the parsing trade-off:
//!
//! `cargo run --release -p fleet-context --example context -- context --repo DIR
//! --issue-file FILE --format json [--parse-candidates N] [--parse-mb M] [--max-files N]`

use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Rank a repository's files for an issue and pack a context.
    Context {
        #[command(flatten)]
        args: fleet_context::ContextArgs,
        /// Candidates parsed with tree-sitter before the graph step.
        #[arg(long)]
        parse_candidates: Option<usize>,
        /// Upper bound on the megabytes parsed.
        #[arg(long)]
        parse_mb: Option<usize>,
        /// How many ranked files to print (the weight fit re-ranks them).
        #[arg(long)]
        max_files: Option<usize>,
    },
}

fn main() -> anyhow::Result<()> {
    let Command::Context {
        args,
        parse_candidates,
        parse_mb,
        max_files,
    } = Cli::parse().command;
    let defaults = fleet_context::SelectOptions::default();
    let options = fleet_context::SelectOptions {
        budget: args.budget,
        parse_candidates: parse_candidates.unwrap_or(defaults.parse_candidates),
        parse_bytes: parse_mb.map_or(defaults.parse_bytes, |mb| mb * 1024 * 1024),
        max_files: max_files.unwrap_or(defaults.max_files),
    };
    let issue = String::from_utf8_lossy(&std::fs::read(&args.issue_file)?).into_owned();
    let selection = fleet_context::select(&args.repo, &issue, &options)?;
    println!("{}", fleet_context::render(&selection, &args.format)?);
    Ok(())
}
