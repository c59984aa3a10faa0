//! The `worker` binary: parses the command line and hands over to the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use shared::settings::Env;
use std::process::ExitCode;
use worker::agent::Agent;
use worker::agent::settings::AgentSettings;
use worker::handlers::test_recorder::TestRecorder;
use worker::runtime::{self, RunMode, metrics::WorkerMetrics};
use worker::settings::{HandlerKind, WorkerSettings};

#[derive(Debug, Parser)]
#[command(
    name = "worker",
    version,
    about = "agent-fleet worker: consumes tasks from the queue"
)]
struct Cli {
    /// Take at most one task, finish it and exit (for a KEDA ScaledJob); exit 0 after
    /// ONCE_IDLE_SECS without one.
    #[arg(long)]
    once: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Rank a repository's files for an issue and pack a context (no settings needed).
    Context(fleet_context::ContextArgs),
    /// One task without queue or webhook; --dry-run prints the diff and touches no tracker.
    Run(worker::oneshot::RunArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Context(args)) => match fleet_context::run_cli(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("worker context: {error:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Run(args)) => one_shot(args),
        None => consume(if cli.once {
            RunMode::Once
        } else {
            RunMode::Forever
        }),
    }
}

fn one_shot(args: worker::oneshot::RunArgs) -> ExitCode {
    shared::telemetry::init_tracing(shared::settings::LogFormat::Pretty);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("worker run: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(worker::oneshot::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("worker run: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn consume(mode: RunMode) -> ExitCode {
    let settings = match WorkerSettings::from_env(&Env::process()) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("worker: invalid settings: {error}");
            return ExitCode::from(2);
        }
    };
    // The agent's own settings are checked before anything starts, like the others.
    let agent_settings = match settings.handler {
        HandlerKind::Agent => match AgentSettings::from_env(&Env::process()) {
            Ok(agent) => Some(agent),
            Err(error) => {
                eprintln!("worker: invalid settings: {error}");
                return ExitCode::from(2);
            }
        },
        HandlerKind::Test { .. } => None,
    };
    shared::telemetry::init_tracing(settings.common.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("worker: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        let metrics = WorkerMetrics::new();
        let shutdown = shared::signals::terminated();
        match settings.handler.clone() {
            HandlerKind::Test { record_dir } => {
                let handler = TestRecorder::new(record_dir)?;
                runtime::run(settings, handler, mode, metrics, shutdown).await
            }
            HandlerKind::Agent => {
                let agent_settings = agent_settings.context("agent settings were checked")?;
                let agent = Agent::new(agent_settings, settings.clone())?;
                runtime::run(settings, agent, mode, metrics, shutdown).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "worker failed");
            eprintln!("worker: {error:#}");
            ExitCode::FAILURE
        }
    }
}
