//! One delivery, from the broker's message to its settle: parse, wait its turn (not before
//! its time, one task per issue), run the handler in its own directory under a timeout,
//! delete the directory, then ack, nack, reject or delay (docs/contracts.md, "Settling a delivery").

use super::Shared;
use super::decide::{Rules, RunEnd, decide};
use super::delay;
use super::embedded::Lease;
use super::handler::{QuotaGate, TaskContext, TaskError, TaskHandler, TaskLedger};
use super::local::Begin;
use super::locks::{self, BrokerLock, LocalLock, LockError};
use super::settle::settle;
use super::wait::WaitBudget;
use super::workspace;
use fleet_ledger::EventKind;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::types::AMQPValue;
use shared::TaskMessage;
use shared::queue::Settle;
use shared::queue::WaitState;
use shared::topology::Topology;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

/// The broker side of a delivery: its connection (issue locks live on it), a confirm-mode
/// channel for the copies of delayed retries, and the topology (delay and lock queues).
#[derive(Debug)]
pub struct BrokerSide {
    /// Where issue locks are taken: connections apart from the consuming one.
    pub lock_connections: Arc<locks::LockConnections>,
    pub retry: Channel,
    pub topology: Topology,
}

/// A delivery from either queue the runtime consumes.
#[derive(Debug)]
pub enum Incoming {
    Amqp(Box<Delivery>, Arc<BrokerSide>),
    Embedded(Lease),
}

impl Incoming {
    fn body(&self) -> &[u8] {
        match self {
            Incoming::Amqp(d, _) => &d.data,
            Incoming::Embedded(l) => &l.body,
        }
    }

    fn delivery_count(&self) -> u32 {
        match self {
            Incoming::Amqp(d, _) => delivery_count(d),
            Incoming::Embedded(l) => l.delivery_count,
        }
    }

    fn redelivered(&self) -> bool {
        match self {
            Incoming::Amqp(d, _) => d.redelivered,
            Incoming::Embedded(l) => l.delivery_count > 0,
        }
    }

    fn message_id(&self) -> String {
        match self {
            Incoming::Amqp(d, _) => d
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
            Incoming::Embedded(l) => l.message_id.clone(),
        }
    }

    fn wait_state(&self) -> WaitState {
        match self {
            Incoming::Amqp(d, _) => WaitState::from_headers(d.properties.headers().as_ref()),
            Incoming::Embedded(l) => l.wait,
        }
    }
}

/// `x-delivery-count` (set by quorum queues on redelivery), 0 on a first delivery.
pub fn delivery_count(delivery: &Delivery) -> u32 {
    let value = delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned());
    let count: i64 = match value {
        Some(AMQPValue::LongLongInt(v)) => v,
        Some(AMQPValue::LongInt(v)) => v.into(),
        Some(AMQPValue::LongUInt(v)) => v.into(),
        Some(AMQPValue::ShortInt(v)) => v.into(),
        Some(AMQPValue::ShortUInt(v)) => v.into(),
        Some(AMQPValue::ShortShortInt(v)) => v.into(),
        Some(AMQPValue::ShortShortUInt(v)) => v.into(),
        _ => 0,
    };
    u32::try_from(count.max(0)).unwrap_or(u32::MAX)
}

/// Processes one delivery, holding `permit` (a concurrency slot: the runtime takes a
/// delivery only when one is free) until it is settled.
pub async fn process<H: TaskHandler>(
    delivery: Incoming,
    shared: Arc<Shared>,
    handler: Arc<H>,
    permit: OwnedSemaphorePermit,
) {
    let received_at = Instant::now();
    let count = delivery.delivery_count();
    if count > 0 || delivery.redelivered() {
        shared.metrics.redeliveries.inc();
    }
    let task = match TaskMessage::from_slice(delivery.body()) {
        Ok(task) => task,
        Err(error) => {
            let message_id = delivery.message_id();
            tracing::warn!(%error, message_id, delivery_count = count, "malformed task message; dead-lettering it");
            shared
                .metrics
                .tasks
                .with_label_values(&["unknown", "rejected"])
                .inc();
            settle(&delivery, Settle::Reject, &shared).await;
            return;
        }
    };
    let span = tracing::info_span!(
        "task",
        task_id = %task.task_id,
        issue = %task.issue.key,
        repo = %task.repo_url,
        mode = %task.mode,
        delivery_count = count,
    );
    run_task(delivery, task, count, received_at, shared, handler, permit)
        .instrument(span)
        .await;
}

/// The issue's locks, held while its task runs.
struct IssueLock {
    local: LocalLock,
    broker: Option<BrokerLock>,
}

/// Takes the issue's locks (this process', then the broker's), or says how to settle.
async fn lock_issue(
    delivery: &Incoming,
    task: &TaskMessage,
    shared: &Shared,
    waits: u32,
) -> Result<Option<IssueLock>, RunEnd> {
    let key = task.issue.key.as_str();
    if key.is_empty() {
        return Ok(None);
    }
    let busy = || {
        RunEnd::Finished(Err(TaskError::Delayed {
            reason: format!("another task of {key} is running"),
            after: delay::lock_backoff(waits),
        }))
    };
    let Some(local) = shared.locks.try_lock(key) else {
        return Err(busy());
    };
    let broker = match delivery {
        Incoming::Embedded(_) => None,
        Incoming::Amqp(_, side) => {
            match locks::acquire(&side.lock_connections, &side.topology.lock_queue(key)).await {
                Ok(lock) => Some(lock),
                Err(LockError::Busy) => return Err(busy()),
                Err(LockError::Broker(error)) => {
                    return Err(RunEnd::NoWorkdir(format!(
                        "cannot take the issue's lock: {error}"
                    )));
                }
            }
        }
    };
    Ok(Some(IssueLock { local, broker }))
}

async fn run_task<H: TaskHandler>(
    delivery: Incoming,
    task: TaskMessage,
    count: u32,
    received_at: Instant,
    shared: Arc<Shared>,
    handler: Arc<H>,
    permit: OwnedSemaphorePermit,
) {
    let guard = match shared.local.begin(&task.task_id) {
        Begin::Run(guard) => guard,
        Begin::Replay(previous) => {
            tracing::info!("already ran here; settling the redelivery as the first run ended");
            shared
                .metrics
                .tasks
                .with_label_values(&[task.mode.as_str(), "replayed"])
                .inc();
            settle(&delivery, previous, &shared).await;
            return;
        }
        Begin::Wait(mut running) => {
            tracing::info!("the same task is running here; waiting for it");
            let outcome = running
                .wait_for(Option::is_some)
                .await
                .ok()
                .and_then(|v| *v);
            shared
                .metrics
                .tasks
                .with_label_values(&[task.mode.as_str(), "replayed"])
                .inc();
            settle(&delivery, outcome.unwrap_or(Settle::Requeue), &shared).await;
            return;
        }
    };
    let _permit = permit;
    let wait = delivery.wait_state();
    let now_ms = delay::now_ms();
    if let Some(left) = wait.remaining(now_ms) {
        // A delayed copy back before its time (its wait is longer than the bucket it took):
        // another hop, without running and without counting a wait.
        tracing::info!(
            due_in_ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX),
            "not due yet; back to a delay queue"
        );
        let (delivered, settled) =
            settle(&delivery, Settle::Delay(wait.again(count)), &shared).await;
        guard.finish(settled, delivered);
        return;
    }
    let effective = wait.attempts.saturating_add(count);
    let attempt = effective.saturating_add(1);
    let last_attempt = effective >= shared.settings.common.delivery_limit;
    let rules = Rules {
        last_attempt,
        timeout_secs: shared.settings.task_timeout.as_secs(),
        carried: wait.attempts > 0,
        wait,
        failed: count,
        limits: shared.settings.wait_limits,
        now_ms,
    };

    // One handle for the whole run: what the handler's events add up to is told at the end.
    let ledger = TaskLedger::new(&task.task_id, shared.ledger.clone());
    let (end, workdir, lock, started) =
        match lock_issue(&delivery, &task, &shared, wait.waits).await {
            Err(end) => {
                tracing::info!("the issue is locked by another task; waiting for it");
                (end, None, None, None)
            }
            Ok(lock) => {
                let started = Instant::now();
                let run = Run {
                    attempt,
                    last_attempt,
                    received_at,
                    waits: wait.waits,
                    ledger: ledger.clone(),
                };
                let (end, workdir) = run_locked(&task, run, &shared, &handler).await;
                (end, workdir, lock, Some(started))
            }
        };
    let handler_ended = Instant::now();
    let stopped_by = match &end {
        RunEnd::Cancelled { cancel, ran: true } => Some(cancel.clone()),
        _ => None,
    };
    let cancelled_by = match &end {
        RunEnd::Cancelled { cancel, .. } => Some(cancel.requested_by.clone()),
        _ => None,
    };
    let decision = decide(end, &rules);
    if let Some(kind) = decision.ledger_event(cancelled_by) {
        ledger.event(kind);
    }
    if let Some(notification) = decision.notification(&task, &ledger.tally()) {
        shared.notifier.send(notification);
    }
    // After its end is recorded: the next task of the user starts after this one ended.
    shared.quotas.release(&task.task_id);
    if decision.report_exhausted {
        let reason = decision.reason.clone().unwrap_or_default();
        let report = handler.report_exhausted(&task, &reason);
        if tokio::time::timeout(std::time::Duration::from_secs(60), report)
            .await
            .is_err()
        {
            tracing::warn!("reporting the exhausted task took too long; giving up on the report");
        }
    }
    if let Some(workdir) = workdir {
        let path = workdir.clone();
        match tokio::task::spawn_blocking(move || workspace::remove(&path)).await {
            Ok(Ok(())) => tracing::info!(workdir = %workdir.display(), "task dir removed"),
            Ok(Err(error)) => {
                tracing::error!(workdir = %workdir.display(), %error, "cannot remove the task dir; the next start sweeps it")
            }
            Err(error) => tracing::error!(%error, "task dir removal did not run"),
        }
    }
    let seconds = started.map_or(0.0, |s| s.elapsed().as_secs_f64());
    if started.is_some() {
        shared.metrics.phase("total", seconds);
    }
    shared
        .metrics
        .tasks
        .with_label_values(&[task.mode.as_str(), decision.outcome])
        .inc();
    match &decision.reason {
        None => tracing::info!(outcome = decision.outcome, seconds, "task finished"),
        Some(reason) => {
            tracing::warn!(outcome = decision.outcome, reason, seconds, "task finished")
        }
    }
    let (delivered, settled) = settle(&delivery, decision.settle, &shared).await;
    shared
        .metrics
        .settle_seconds
        .observe(handler_ended.elapsed().as_secs_f64());
    // A stopped task's report is written with the issue still locked: the worker recording
    // the same cancel takes the lock after it, and finds the report there.
    if let Some(cancel) = stopped_by {
        let report = handler.cancelled(&task, &cancel);
        if tokio::time::timeout(super::control::REPORT_WITHIN, report)
            .await
            .is_err()
        {
            tracing::warn!("reporting the cancel took too long; giving up on the report");
        }
    }
    // The issue is free for its next task once this one is settled.
    if let Some(IssueLock { broker, local }) = lock {
        if let Some(broker) = broker {
            broker.release().await;
        }
        drop(local);
    }
    guard.finish(settled, delivered);
}

/// What a run of the task is: which attempt, when it arrived, the waits it took.
struct Run {
    attempt: u32,
    last_attempt: bool,
    received_at: Instant,
    waits: u32,
    ledger: TaskLedger,
}

/// Runs the task once its issue is locked: its dir, the handler, the metrics of a run.
async fn run_locked<H: TaskHandler>(
    task: &TaskMessage,
    run: Run,
    shared: &Arc<Shared>,
    handler: &Arc<H>,
) -> (RunEnd, Option<std::path::PathBuf>) {
    let Run {
        attempt,
        last_attempt,
        received_at,
        waits,
        ledger,
    } = run;
    let registration = match shared.cancels.register(task) {
        Ok(registration) => registration,
        Err(cancel) => {
            tracing::info!(cancel_id = %cancel.cancel_id, "the issue was cancelled after this task was asked for; not running it");
            return (RunEnd::Cancelled { cancel, ran: false }, None);
        }
    };
    shared.metrics.in_flight.inc();
    tracing::info!(attempt, last_attempt, "task started");
    ledger.event(EventKind::Started {
        attempt,
        worker: shared.worker_name.clone(),
    });
    let workspace = shared.settings.workspace_dir.clone();
    let task_id = task.task_id.clone();
    let workdir = tokio::task::spawn_blocking(move || workspace::create(&workspace, &task_id))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let result = match workdir {
        Err(error) => (
            RunEnd::NoWorkdir(format!("cannot create the task dir: {error}")),
            None,
        ),
        Ok(workdir) => {
            let ctx = TaskContext {
                workdir: workdir.clone(),
                cancel: shared.hard_stop.child_token(),
                attempt,
                last_attempt,
                metrics: shared.metrics.task.clone(),
                received_at,
                quota: QuotaGate::new(shared.quotas.clone(), ledger.clone(), waits),
                ledger,
            };
            let end = run_handler(task, ctx, registration, shared, handler).await;
            (end, Some(workdir))
        }
    };
    shared.metrics.in_flight.dec();
    result
}

async fn run_handler<H: TaskHandler>(
    task: &TaskMessage,
    ctx: TaskContext,
    mut registration: super::control::Registration,
    shared: &Shared,
    handler: &Arc<H>,
) -> RunEnd {
    let cancel = ctx.cancel.clone();
    let (task_for_handler, handler) = (task.clone(), handler.clone());
    // Rate limits shorter than GITHUB_RATE_LIMIT_MAX_WAIT_SECS are waited out inside the run.
    let budget = WaitBudget::new(cancel.clone(), shared.settings.rate_limit_max_wait);
    let mut handle = tokio::spawn(
        budget
            .scope(async move { handler.handle(&task_for_handler, &ctx).await })
            .in_current_span(),
    );
    let end = tokio::select! {
        joined = &mut handle => match joined {
            Ok(result) => return RunEnd::Finished(result),
            Err(error) if error.is_panic() => return RunEnd::Panicked,
            Err(_) => RunEnd::Interrupted,
        },
        () = tokio::time::sleep(shared.settings.task_timeout) => RunEnd::TimedOut,
        () = shared.hard_stop.cancelled() => RunEnd::Interrupted,
        cancel = registration.cancelled() => {
            tracing::info!(cancel_id = %cancel.cancel_id, by = %cancel.requested_by, "cancelled; stopping the task");
            RunEnd::Cancelled { cancel, ran: true }
        }
    };
    // Stop the handler before its directory goes: cancel (child processes are killed on
    // drop, an LLM request in flight is dropped) and wait for the task to unwind.
    cancel.cancel();
    handle.abort();
    let _ = handle.await;
    end
}
