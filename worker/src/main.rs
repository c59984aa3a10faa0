//! The `worker` binary: parses the command line, checks the settings the subcommand needs
//! (exit 2 naming the variable when one is wrong) and hands over to the library.

use clap::{Parser, Subcommand};
use shared::settings::{Env, SettingsError};
use std::future::Future;
use std::process::ExitCode;
use worker::runtime::RunMode;
use worker::settings::WorkerSettings;
use worker::startup::{self, Handlers};

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
    /// One process serving the webhooks and working the tasks: an embedded durable queue
    /// (STANDALONE_DB) without AMQP_URL, RabbitMQ with it.
    Standalone,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any secret is read: the worker's /proc/<pid>/environ and mem are then closed
    // to every process without CAP_SYS_PTRACE, such as the repositories' checks
    // (docs/checks.md). A kernel that refuses is only worth a warning: the bubblewrap
    // sandbox does not depend on it.
    if let Err(error) = fleet_sandbox::protect_worker() {
        eprintln!("worker: cannot make the process non-dumpable ({error}); continuing");
    }
    match cli.command {
        Some(Command::Context(args)) => match fleet_context::run_cli(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("worker context: {error:#}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Run(args)) => {
            shared::telemetry::init_tracing(shared::settings::LogFormat::Pretty);
            block_on("worker run", async {
                let report = worker::oneshot::run(args).await?;
                for summary in &report.summaries {
                    eprintln!("{summary}");
                }
                for text in &report.shown {
                    println!("{text}");
                }
                Ok(())
            })
        }
        Some(Command::Standalone) => {
            let env = Env::process();
            let (settings, handlers) = match checked(&env) {
                Ok(checked) => checked,
                Err(code) => return code,
            };
            let ingest = match ingest::IngestSettings::from_env(&env) {
                Ok(ingest) => ingest,
                Err(error) => return invalid(&error),
            };
            let embedded_db = env
                .get("AMQP_URL")
                .is_none()
                .then(|| env.string_or("STANDALONE_DB", "./agent-fleet.db"));
            shared::telemetry::init_tracing(settings.common.log_format);
            block_on(
                "worker standalone",
                startup::standalone(settings, handlers, ingest, embedded_db),
            )
        }
        None => {
            let (settings, handlers) = match checked(&Env::process()) {
                Ok(checked) => checked,
                Err(code) => return code,
            };
            shared::telemetry::init_tracing(settings.common.log_format);
            let mode = if cli.once {
                RunMode::Once
            } else {
                RunMode::Forever
            };
            block_on("worker", startup::consume(settings, handlers, mode))
        }
    }
}

fn invalid(error: &SettingsError) -> ExitCode {
    eprintln!("worker: invalid settings: {error}");
    ExitCode::from(2)
}

/// The worker's settings and its handler's, all checked before anything starts.
fn checked(env: &Env) -> Result<(WorkerSettings, Handlers), ExitCode> {
    let settings = WorkerSettings::from_env(env).map_err(|e| invalid(&e))?;
    let handlers = Handlers::from_env(&settings, env).map_err(|e| invalid(&e))?;
    Ok((settings, handlers))
}

fn block_on(name: &str, work: impl Future<Output = anyhow::Result<()>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("{name}: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "{name} failed");
            eprintln!("{name}: {error:#}");
            ExitCode::FAILURE
        }
    }
}
