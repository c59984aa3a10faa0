//! Wiring the worker's pieces for each way it runs: the consuming worker (`worker`,
//! `worker --once`) and the single process of `worker standalone` (webhooks and tasks on one
//! queue, embedded or RabbitMQ).

use crate::agent::Agent;
use crate::agent::settings::AgentSettings;
use crate::handlers::test_recorder::TestRecorder;
use crate::runtime::embedded::EmbeddedQueue;
use crate::runtime::{Launch, RunMode, Source};
use crate::settings::{HandlerKind, WorkerSettings};
use shared::settings::{Env, SettingsError};
use std::future::Future;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The handler's own settings, checked at start-up.
#[derive(Debug)]
pub enum Handlers {
    Agent(Box<AgentSettings>),
    Test(std::path::PathBuf),
}

impl Handlers {
    pub fn from_env(settings: &WorkerSettings, env: &Env) -> Result<Self, SettingsError> {
        Ok(match &settings.handler {
            HandlerKind::Agent => Handlers::Agent(Box::new(AgentSettings::from_env(env)?)),
            HandlerKind::Test { record_dir } => Handlers::Test(record_dir.clone()),
        })
    }
}

/// Runs `launch` with the handler `handlers` names until `shutdown` resolves.
async fn work(
    launch: Launch,
    handlers: Handlers,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    match handlers {
        Handlers::Agent(agent) => {
            let mut agent = *agent;
            // Who the agent is, before the first task: only its own comments are markers.
            agent.resolve_identity().await?;
            let agent = Agent::new(agent, launch.settings.clone())?;
            launch.run(agent, shutdown).await
        }
        Handlers::Test(dir) => launch.run(TestRecorder::new(dir)?, shutdown).await,
    }
}

/// `worker` and `worker --once`: consume RabbitMQ until SIGTERM (or one task).
pub async fn consume(
    settings: WorkerSettings,
    handlers: Handlers,
    mode: RunMode,
) -> anyhow::Result<()> {
    let launch = Launch::new(Source::Broker, settings, mode);
    work(launch, handlers, shared::signals::terminated()).await
}

/// `worker standalone`: the ingest's routes and the worker in one process. With
/// `embedded_db`, tasks go through the embedded durable queue in that file, and, without
/// `DATABASE_URL`, the task ledger (read by the operator API and the console served here)
/// lives in the same file; without `embedded_db`, through RabbitMQ as in the fleet.
pub async fn standalone(
    settings: WorkerSettings,
    handlers: Handlers,
    ingest_settings: ingest::IngestSettings,
    embedded_db: Option<String>,
) -> anyhow::Result<()> {
    let stop = CancellationToken::new();
    let on_signal = stop.clone();
    tokio::spawn(async move {
        shared::signals::terminated().await;
        on_signal.cancel();
    });
    let (app, source) = match embedded_db {
        Some(path) => {
            let queue = EmbeddedQueue::open(
                std::path::Path::new(&path),
                &settings.common.task_queue,
                settings.common.delivery_limit,
            )?;
            tracing::info!(db = %path, "standalone: embedded queue");
            let queue = match &settings.common.database_url {
                Some(_) => queue,
                None => with_sqlite_ledger(queue, std::path::Path::new(&path)).await,
            };
            let embedded = ingest::app::Embedded {
                sink: Arc::new(queue.clone()),
                dead_letters: Arc::new(queue.clone()),
                ledger: queue.ledger().cloned(),
            };
            (
                ingest::Application::build_with(ingest_settings, Some(embedded)).await?,
                Source::Embedded(queue),
            )
        }
        None => {
            tracing::info!(broker = %settings.common.amqp_url, "standalone: RabbitMQ");
            (
                ingest::Application::build(ingest_settings).await?,
                Source::Broker,
            )
        }
    };
    let ingest = tokio::spawn(app.run_until_stopped(stop.clone().cancelled_owned()));
    let launch = Launch::new(source, settings, RunMode::Forever);
    let worked = work(launch, handlers, stop.clone().cancelled_owned()).await;
    // The worker stopped (signal, or a fatal error): stop taking webhooks too.
    stop.cancel();
    let served = ingest.await?;
    worked.and(served)
}

/// The queue carrying the ledger in its own file (`STANDALONE_DB`). A file that cannot hold
/// the ledger is logged and the process runs without one: the ledger never stops a task.
async fn with_sqlite_ledger(queue: EmbeddedQueue, path: &std::path::Path) -> EmbeddedQueue {
    match fleet_ledger::sqlite::SqliteLedger::open(path).await {
        Ok(ledger) => {
            tracing::info!("standalone: the task ledger is in the embedded queue's file");
            queue.with_ledger(ledger)
        }
        Err(error) => {
            tracing::error!(%error, "the task ledger cannot open its SQLite tables; recording nothing");
            queue
        }
    }
}
