//! The fleet half of the worker, independent of what a task does: consume the task queue
//! with manual acks, run each delivery through a [`TaskHandler`], reconnect when the broker
//! goes away, and stop gracefully.
//!
//! A delivery is taken only when a concurrency permit is free: a consumer with a prefetch
//! of one is started per free permit and cancelled as soon as its delivery arrives, so no
//! delivery ever waits unacked for a permit (after a reconnect, the dead channel's tasks
//! still hold theirs; a delivery waiting behind them could outlive `consumer_timeout`).
//!
//! Shutdown is two tokens: `stop` (SIGTERM/SIGINT: cancel the consumer, take nothing new,
//! let in-flight tasks finish and ack) and `hard_stop` (the grace period ran out: cancel the
//! handlers, clean up, requeue). A [`TaskTracker`] knows when every delivery has settled.
//!
//! With `DATABASE_URL` (or, for `worker standalone` on its embedded queue without it, in
//! the queue's SQLite file), the task ledger is started here: each run records its start
//! and, from its settle decision, how it ended; the fleet's quotas are asked through it
//! ([`quotas`]), and what it still holds is flushed at shutdown.

pub mod control;
mod decide;
pub mod delay;
pub mod delivery;
pub mod embedded;
mod embedded_cancels;
pub mod handler;
pub mod local;
pub mod locks;
pub mod metrics;
pub mod quotas;
mod settle;
pub mod wait;
pub mod workspace;

use crate::settings::WorkerSettings;
use anyhow::Context as _;
use delivery::Incoming;
use embedded::EmbeddedQueue;
use futures_util::StreamExt;
use handler::TaskHandler;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use local::LocalRuns;
use metrics::WorkerMetrics;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long the worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    /// Until SIGTERM/SIGINT.
    Forever,
    /// At most one task (KEDA ScaledJob): exit after it, or after `ONCE_IDLE_SECS` without one.
    Once,
}

/// What every delivery of this process shares.
#[derive(Debug)]
pub struct Shared {
    pub settings: WorkerSettings,
    pub metrics: WorkerMetrics,
    pub local: LocalRuns,
    /// One permit per concurrent task: bounds the work even while a dead channel's tasks
    /// finish next to a new channel's deliveries.
    pub permits: Arc<Semaphore>,
    pub hard_stop: CancellationToken,
    pub consuming: AtomicBool,
    /// The issues this process is working on (one task per issue at a time).
    pub locks: locks::IssueLocks,
    /// The connections broker-held issue locks are taken on (kept across reconnects).
    pub lock_connections: Arc<locks::LockConnections>,
    /// The tasks running here and the cancels seen lately (`/cancel`).
    pub cancels: Arc<control::Cancels>,
    /// The task ledger (`DATABASE_URL`), or one that records nothing.
    pub ledger: fleet_ledger::Ledger,
    /// This process as the ledger names it (`Started.worker`): host and process id.
    pub worker_name: String,
    /// The fleet's quotas (through the ledger's database) and the slots held here.
    pub quotas: Arc<quotas::Quotas>,
    /// `NOTIFY_URL`'s signed POSTs (or nothing), queued without waiting.
    pub notifier: fleet_ledger::notify::Notifier,
}

/// How long the ledger (and the notifications) get at shutdown to write what they hold.
const LEDGER_FLUSH: Duration = Duration::from_secs(5);

/// The ledger of `DATABASE_URL` and its store, when set; else the SQLite ledger of the
/// embedded queue's file (`worker standalone`), when the source has one; else (or with a
/// URL the pool refuses, logged) one that records nothing: the ledger never stops the
/// worker.
async fn start_ledger(
    settings: &WorkerSettings,
    source: &Source,
    registry: &prometheus::Registry,
    cancel: CancellationToken,
) -> (fleet_ledger::Ledger, Option<fleet_ledger::Store>) {
    use secrecy::ExposeSecret;
    let Some(url) = &settings.common.database_url else {
        if let Source::Embedded(queue) = source
            && let Some(db) = queue.ledger()
        {
            let ledger =
                fleet_ledger::start_sqlite(db.clone(), settings.common.ledger_buffer, registry);
            return (ledger, Some(fleet_ledger::Store::Sqlite(db.clone())));
        }
        return (fleet_ledger::Ledger::disabled(), None);
    };
    match fleet_ledger::start(
        url.expose_secret(),
        settings.common.ledger_buffer,
        registry,
        cancel,
    )
    .await
    {
        Ok((ledger, pool)) => (ledger, Some(fleet_ledger::Store::Postgres(pool))),
        Err(error) => {
            tracing::error!(%error, "the task ledger cannot start; recording nothing");
            (fleet_ledger::Ledger::disabled(), None)
        }
    }
}

/// How long in-flight tasks get to unwind once the grace period ran out.
const UNWIND: Duration = Duration::from_secs(30);

/// Which queue the worker consumes.
#[derive(Debug, Clone)]
pub enum Source {
    /// RabbitMQ at `AMQP_URL` (the fleet).
    Broker,
    /// The embedded SQLite queue (`worker standalone` without `AMQP_URL`).
    Embedded(EmbeddedQueue),
}

/// One run of the worker: where its tasks come from, its settings, how long it runs and
/// the metrics it reports to.
#[derive(Debug)]
pub struct Launch {
    pub source: Source,
    pub settings: WorkerSettings,
    pub mode: RunMode,
    pub metrics: WorkerMetrics,
}

/// Runs the worker on RabbitMQ until `shutdown` resolves (or, in `Once` mode, after one
/// task).
pub async fn run<H: TaskHandler>(
    settings: WorkerSettings,
    handler: H,
    mode: RunMode,
    metrics: WorkerMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let launch = Launch {
        source: Source::Broker,
        settings,
        mode,
        metrics,
    };
    launch.run(handler, shutdown).await
}

impl Launch {
    /// A run with fresh metrics.
    pub fn new(source: Source, settings: WorkerSettings, mode: RunMode) -> Self {
        Self {
            source,
            settings,
            mode,
            metrics: WorkerMetrics::new(),
        }
    }

    /// Runs `handler` on the launch's [`Source`] until `shutdown` resolves (or, in `Once`
    /// mode, after one task).
    pub async fn run<H: TaskHandler>(
        self,
        handler: H,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let Launch {
            source,
            settings,
            mode,
            metrics,
        } = self;
        let workspace_dir = settings.workspace_dir.clone();
        let swept = tokio::task::spawn_blocking(move || workspace::sweep(&workspace_dir)).await?;
        if !swept.is_empty() {
            tracing::info!(
                count = swept.len(),
                "swept task dirs left by killed predecessors"
            );
        }
        let ledger_stop = CancellationToken::new();
        let (ledger, store) =
            start_ledger(&settings, &source, &metrics.registry, ledger_stop.clone()).await;
        let quotas = Arc::new(quotas::Quotas::new(
            store,
            settings.quotas,
            &metrics.registry,
        ));
        let worker_name = format!(
            "{}:{}",
            std::env::var("HOSTNAME")
                .ok()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "worker".to_owned()),
            std::process::id()
        );
        let notifier = match &settings.notify {
            Some(config) => {
                fleet_ledger::notify::Notifier::start(config.clone(), &metrics.registry)
            }
            None => fleet_ledger::notify::Notifier::disabled(&metrics.registry),
        };
        let shared = Arc::new(Shared {
            ledger,
            worker_name,
            quotas,
            notifier,
            permits: Arc::new(Semaphore::new(usize::from(settings.concurrency))),
            lock_connections: locks::LockConnections::new(
                settings.common.amqp_url.clone(),
                usize::from(settings.concurrency),
            ),
            settings,
            metrics,
            local: LocalRuns::default(),
            hard_stop: CancellationToken::new(),
            consuming: AtomicBool::new(false),
            locks: locks::IssueLocks::default(),
            cancels: Arc::default(),
        });
        let ops = serve_ops(&shared).await?;
        let stop = CancellationToken::new();
        let stop_on_signal = stop.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop_on_signal.cancel();
        });

        let tracker = TaskTracker::new();
        let handler = Arc::new(handler);
        let result = match source {
            Source::Broker => consume(&shared, &handler, mode, &stop, &tracker).await,
            Source::Embedded(queue) => consume_embedded(&shared, &handler, &queue, &stop, &tracker)
                .await
                .map(|()| None),
        };
        shared.consuming.store(false, Ordering::SeqCst);
        tracker.close();
        let grace = shared.settings.shutdown_grace;
        if !tracker.is_empty() {
            tracing::info!(
                in_flight = tracker.len(),
                grace_secs = grace.as_secs(),
                "finishing in-flight tasks"
            );
        }
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                in_flight = tracker.len(),
                "shutdown grace ran out; requeueing unfinished tasks"
            );
            shared.hard_stop.cancel();
            let _ = tokio::time::timeout(UNWIND, tracker.wait()).await;
        }
        shared.lock_connections.close_idle().await;
        if let Ok(Some((connection, channel))) = &result {
            let _ = channel.close(200, "worker stopping".into()).await;
            let _ = connection.close(200, "worker stopping".into()).await;
        }
        if !shared.notifier.drain(LEDGER_FLUSH).await {
            tracing::warn!("notifications still queued when the worker stopped");
        }
        if !shared.ledger.flush(LEDGER_FLUSH).await {
            tracing::warn!("the ledger could not write everything before the worker stopped");
        }
        ledger_stop.cancel();
        ops.abort();
        tracing::info!("worker stopped");
        result.map(|_| ())
    }
}

/// Consumes until `stop` fires (or one task was taken in `Once` mode). Returns the live
/// connection and channel so that in-flight tasks can still settle on it (lapin closes a
/// channel when its last handle is dropped, and the ackers of its deliveries die with it).
async fn consume<H: TaskHandler>(
    shared: &Arc<Shared>,
    handler: &Arc<H>,
    mode: RunMode,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<Option<(Arc<Connection>, Channel)>> {
    let settings = &shared.settings;
    let topology = settings.common.topology();
    // `--once` gives up when nothing arrives in time, whether or not the broker answers.
    let idle = CancellationToken::new();
    if mode == RunMode::Once {
        let (idle, wait) = (idle.clone(), settings.once_idle);
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            idle.cancel();
        });
    }
    let give_up = CancellationToken::new();
    {
        let (give_up, stop, idle) = (give_up.clone(), stop.clone(), idle.clone());
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = idle.cancelled() => {}
            }
            give_up.cancel();
        });
    }
    let name = format!("agent-fleet worker ({})", std::process::id());
    loop {
        let Some(connection) =
            shared::amqp::connect_with_retry(&settings.common.amqp_url, &name, &give_up).await
        else {
            return Ok(None);
        };
        let connection = Arc::new(connection);
        let channel = connection
            .create_channel()
            .await
            .context("opening a channel")?;
        if let Err(error) = topology.declare(&channel).await {
            if error.is_permanent() {
                return Err(error.into());
            }
            tracing::warn!(%error, "declaring the topology failed; reconnecting");
            continue;
        }
        // One delivery per consumer; a consumer per free permit.
        channel
            .basic_qos(1, BasicQosOptions::default())
            .await
            .context("basic.qos")?;
        let retry = connection
            .create_channel()
            .await
            .context("opening the delayed-retry channel")?;
        retry
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("confirm.select")?;
        let side = Arc::new(delivery::BrokerSide {
            lock_connections: Arc::clone(&shared.lock_connections),
            retry,
            topology: topology.clone(),
        });
        // Cancels reach the tasks of this connection's deliveries (and the ones of a dead
        // channel still running) through the registry, whichever connection heard them.
        // A worker that cannot hear cancels takes no task: this connection is dropped and
        // made again, as when the broker goes away.
        let control = match control::listen(&connection, shared, handler, &give_up).await {
            Ok(channel) => channel,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for cancels on this connection; reconnecting");
                let _ = connection
                    .close(200, "cannot listen for cancels".into())
                    .await;
                tokio::select! {
                    () = give_up.cancelled() => return Ok(None),
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                continue;
            }
        };
        shared.consuming.store(true, Ordering::SeqCst);
        tracing::info!(queue = %topology.queue, concurrency = settings.concurrency, "consuming");
        loop {
            // A permit first: a delivery is taken only when it can start at once.
            let permit = tokio::select! {
                () = give_up.cancelled() => {
                    shared.consuming.store(false, Ordering::SeqCst);
                    tracing::info!("consumer cancelled; no new deliveries");
                    return Ok(Some((connection, channel)));
                }
                () = shared::amqp::wait_until_broken(&connection, &channel) => {
                    shared.consuming.store(false, Ordering::SeqCst);
                    tracing::warn!("broker connection lost; reconnecting");
                    break;
                }
                () = shared::amqp::wait_until_broken(&connection, &control) => {
                    shared.consuming.store(false, Ordering::SeqCst);
                    tracing::warn!("the cancels' channel closed; reconnecting");
                    break;
                }
                permit = shared.permits.clone().acquire_owned() => permit?,
            };
            let tag = format!(
                "worker-{}-{}",
                std::process::id(),
                uuid::Uuid::new_v4().simple()
            );
            let mut consumer = match channel
                .basic_consume(
                    topology.queue.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
            {
                Ok(consumer) => consumer,
                Err(error) => {
                    shared.consuming.store(false, Ordering::SeqCst);
                    tracing::warn!(%error, "basic.consume failed; reconnecting");
                    break;
                }
            };
            let cancel =
                || channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default());
            tokio::select! {
                () = give_up.cancelled() => {
                    let _ = cancel().await;
                    shared.consuming.store(false, Ordering::SeqCst);
                    tracing::info!("consumer cancelled; no new deliveries");
                    return Ok(Some((connection, channel)));
                }
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        // Its one delivery is in hand: no other comes to this consumer.
                        let _ = cancel().await;
                        tracker.spawn(delivery::process(
                            Incoming::Amqp(Box::new(delivery), side.clone()),
                            shared.clone(),
                            handler.clone(),
                            permit,
                        ));
                        if mode == RunMode::Once {
                            shared.consuming.store(false, Ordering::SeqCst);
                            return Ok(Some((connection, channel)));
                        }
                    }
                    Some(Err(error)) => {
                        shared.consuming.store(false, Ordering::SeqCst);
                        tracing::warn!(%error, "broker connection lost; reconnecting");
                        break;
                    }
                    None => {
                        shared.consuming.store(false, Ordering::SeqCst);
                        tracing::warn!("consumer stream ended; reconnecting");
                        break;
                    }
                }
            }
        }
    }
}

/// Consumes the embedded queue until `stop` fires: a message is leased only when a
/// concurrency slot is free, so the queue keeps what this process cannot start yet.
async fn consume_embedded<H: TaskHandler>(
    shared: &Arc<Shared>,
    handler: &Arc<H>,
    queue: &EmbeddedQueue,
    stop: &CancellationToken,
    tracker: &TaskTracker,
) -> anyhow::Result<()> {
    // The cancels (`/cancel`, the operator API) come through the same file.
    embedded_cancels::consume(queue.cancels(), shared, handler, stop);
    shared.consuming.store(true, Ordering::SeqCst);
    tracing::info!("consuming the embedded queue");
    'consume: loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break 'consume,
            permit = shared.permits.clone().acquire_owned() => permit?,
        };
        let lease = loop {
            match queue.lease().await {
                Ok(Some(lease)) => break lease,
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "cannot read the embedded queue"),
            }
            tokio::select! {
                () = stop.cancelled() => break 'consume,
                () = queue.wait() => {}
            }
        };
        tracker.spawn(delivery::process(
            Incoming::Embedded(lease),
            shared.clone(),
            handler.clone(),
            permit,
        ));
    }
    shared.consuming.store(false, Ordering::SeqCst);
    tracing::info!("stopped taking tasks from the embedded queue");
    Ok(())
}

/// Serves `/metrics`, `/healthz`, `/readyz` on `METRICS_BIND`.
async fn serve_ops(shared: &Arc<Shared>) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let bind = shared.settings.metrics_bind;
    let listener = tokio::net::TcpListener::bind(bind)
        .await
        .with_context(|| format!("METRICS_BIND {bind}: cannot listen"))?;
    let ready_shared = shared.clone();
    let router = shared::telemetry::ops_router(
        shared.metrics.registry.clone(),
        Arc::new(move || ready_shared.consuming.load(Ordering::SeqCst)),
    );
    tracing::info!(addr = %listener.local_addr()?, "metrics listening");
    Ok(tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    }))
}
