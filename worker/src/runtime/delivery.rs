//! One delivery, from the broker's message to its settle: parse, run the handler in its own
//! directory under a timeout, delete the directory, then ack, nack or reject (DESIGN.md,
//! "Worker, per delivery").

use super::Shared;
use super::local::{Begin, Settle};
use super::workspace;
use crate::embedded::Lease;
use crate::handler::{TaskContext, TaskError, TaskHandler};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::types::AMQPValue;
use shared::TaskMessage;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;
use tracing::Instrument;

/// How a run ended, before it is turned into a settle.
#[derive(Debug)]
enum RunEnd {
    Finished(Result<(), TaskError>),
    TimedOut,
    Panicked,
    Interrupted,
    NoWorkdir(String),
}

/// The settle a run ends in, with the labels it is logged and counted under.
struct Decision {
    settle: Settle,
    outcome: &'static str,
    reason: Option<String>,
    report_exhausted: bool,
}

fn decide(end: RunEnd, last_attempt: bool, timeout_secs: u64) -> Decision {
    let retry = |outcome: &'static str, reason: String| Decision {
        settle: Settle::Requeue,
        outcome: if last_attempt { "exhausted" } else { outcome },
        report_exhausted: last_attempt,
        reason: Some(reason),
    };
    match end {
        RunEnd::Finished(Ok(())) => Decision {
            settle: Settle::Ack,
            outcome: "done",
            reason: None,
            report_exhausted: false,
        },
        RunEnd::Finished(Err(TaskError::Permanent(reason))) => Decision {
            settle: Settle::Ack,
            outcome: "failed",
            reason: Some(reason),
            report_exhausted: false,
        },
        RunEnd::Finished(Err(TaskError::Unsupported(reason))) => Decision {
            settle: Settle::Reject,
            outcome: "rejected",
            reason: Some(reason),
            report_exhausted: false,
        },
        RunEnd::Finished(Err(TaskError::Transient(reason))) => retry("retry", reason),
        RunEnd::NoWorkdir(reason) => retry("retry", reason),
        RunEnd::TimedOut => retry("timeout", format!("timed out after {timeout_secs} s")),
        RunEnd::Panicked => retry("panic", "the handler panicked".to_owned()),
        // Shutdown ran out of grace: not the task's fault, so no report and no exhaustion.
        RunEnd::Interrupted => Decision {
            settle: Settle::Requeue,
            outcome: "interrupted",
            reason: Some("the worker stopped before the task finished".to_owned()),
            report_exhausted: false,
        },
    }
}

/// A delivery from either queue the runtime consumes.
#[derive(Debug)]
pub enum Incoming {
    Amqp(Box<Delivery>),
    Embedded(Lease),
}

impl Incoming {
    fn body(&self) -> &[u8] {
        match self {
            Incoming::Amqp(d) => &d.data,
            Incoming::Embedded(l) => &l.body,
        }
    }

    fn delivery_count(&self) -> u32 {
        match self {
            Incoming::Amqp(d) => delivery_count(d),
            Incoming::Embedded(l) => l.delivery_count,
        }
    }

    fn redelivered(&self) -> bool {
        match self {
            Incoming::Amqp(d) => d.redelivered,
            Incoming::Embedded(l) => l.delivery_count > 0,
        }
    }

    fn message_id(&self) -> String {
        match self {
            Incoming::Amqp(d) => d
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default(),
            Incoming::Embedded(l) => l.message_id.clone(),
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

/// Settles on the delivery's own channel; `false` when that channel is gone (the broker
/// then redelivers, and [`super::local::LocalRuns`] replays this outcome).
async fn settle(delivery: &Incoming, settle: Settle, shared: &Shared) -> bool {
    let result = match (delivery, settle) {
        (Incoming::Embedded(lease), settle) => {
            lease.settle(settle).await.map_err(|e| e.to_string())
        }
        (Incoming::Amqp(d), Settle::Ack) => d
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| e.to_string()),
        (Incoming::Amqp(d), Settle::Requeue) => d
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .map_err(|e| e.to_string()),
        (Incoming::Amqp(d), Settle::Reject) => d
            .acker
            .reject(BasicRejectOptions { requeue: false })
            .await
            .map_err(|e| e.to_string()),
    };
    let label = match settle {
        Settle::Ack => "ack",
        Settle::Requeue => "nack_requeue",
        Settle::Reject => "reject",
    };
    match result {
        Ok(true) => {
            shared.metrics.settles.with_label_values(&[label]).inc();
            tracing::info!(settle = label, "delivery settled");
            true
        }
        Ok(false) | Err(_) => {
            shared.metrics.settles.with_label_values(&["failed"]).inc();
            tracing::warn!(
                settle = label,
                "could not settle: the channel is gone; the broker will redeliver"
            );
            false
        }
    }
}

/// Processes one delivery. `permit`: a concurrency slot the caller already holds (the
/// embedded queue leases only when a slot is free); otherwise one is acquired here.
pub async fn process<H: TaskHandler>(
    delivery: Incoming,
    shared: Arc<Shared>,
    handler: Arc<H>,
    permit: Option<OwnedSemaphorePermit>,
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

async fn run_task<H: TaskHandler>(
    delivery: Incoming,
    task: TaskMessage,
    count: u32,
    received_at: Instant,
    shared: Arc<Shared>,
    handler: Arc<H>,
    permit: Option<OwnedSemaphorePermit>,
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
    let _permit = match permit {
        Some(permit) => permit,
        None => match shared.permits.clone().acquire_owned().await {
            Ok(permit) => permit,
            Err(_) => return,
        },
    };
    shared.metrics.in_flight.inc();
    let started = Instant::now();
    let attempt = count.saturating_add(1);
    let last_attempt = count >= shared.settings.common.delivery_limit;
    tracing::info!(attempt, last_attempt, "task started");

    let workspace = shared.settings.workspace_dir.clone();
    let task_id = task.task_id.clone();
    let workdir = tokio::task::spawn_blocking(move || workspace::create(&workspace, &task_id))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let (end, workdir) = match workdir {
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
                metrics: shared.metrics.clone(),
                received_at,
            };
            (
                run_handler(&task, ctx, &shared, &handler).await,
                Some(workdir),
            )
        }
    };
    let handler_ended = Instant::now();
    let decision = decide(end, last_attempt, shared.settings.task_timeout.as_secs());
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
    let seconds = started.elapsed().as_secs_f64();
    shared.metrics.phase("total", seconds);
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
    let delivered = settle(&delivery, decision.settle, &shared).await;
    shared
        .metrics
        .settle_seconds
        .observe(handler_ended.elapsed().as_secs_f64());
    guard.finish(decision.settle, delivered);
    shared.metrics.in_flight.dec();
}

async fn run_handler<H: TaskHandler>(
    task: &TaskMessage,
    ctx: TaskContext,
    shared: &Shared,
    handler: &Arc<H>,
) -> RunEnd {
    let cancel = ctx.cancel.clone();
    let (task_for_handler, handler) = (task.clone(), handler.clone());
    let mut handle = tokio::spawn(
        async move { handler.handle(&task_for_handler, &ctx).await }.in_current_span(),
    );
    let end = tokio::select! {
        joined = &mut handle => match joined {
            Ok(result) => return RunEnd::Finished(result),
            Err(error) if error.is_panic() => return RunEnd::Panicked,
            Err(_) => RunEnd::Interrupted,
        },
        () = tokio::time::sleep(shared.settings.task_timeout) => RunEnd::TimedOut,
        () = shared.hard_stop.cancelled() => RunEnd::Interrupted,
    };
    // Stop the handler before its directory goes: cancel (child processes are killed on
    // drop) and wait for the task to unwind.
    cancel.cancel();
    handle.abort();
    let _ = handle.await;
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_rules() {
        let d = decide(RunEnd::Finished(Ok(())), false, 1);
        assert_eq!((d.settle, d.outcome), (Settle::Ack, "done"));
        let d = decide(
            RunEnd::Finished(Err(TaskError::Permanent("x".into()))),
            true,
            1,
        );
        assert_eq!((d.settle, d.report_exhausted), (Settle::Ack, false));
        let d = decide(
            RunEnd::Finished(Err(TaskError::Unsupported("x".into()))),
            false,
            1,
        );
        assert_eq!(d.settle, Settle::Reject);
        let d = decide(
            RunEnd::Finished(Err(TaskError::Transient("x".into()))),
            false,
            1,
        );
        assert_eq!(
            (d.settle, d.outcome, d.report_exhausted),
            (Settle::Requeue, "retry", false)
        );
        let d = decide(RunEnd::TimedOut, true, 1);
        assert_eq!(
            (d.settle, d.outcome, d.report_exhausted),
            (Settle::Requeue, "exhausted", true)
        );
        let d = decide(RunEnd::Panicked, false, 1);
        assert_eq!((d.settle, d.outcome), (Settle::Requeue, "panic"));
        let d = decide(RunEnd::Interrupted, true, 1);
        assert_eq!((d.settle, d.report_exhausted), (Settle::Requeue, false));
    }
}
