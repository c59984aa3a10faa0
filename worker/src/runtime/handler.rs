//! The interface between the fleet runtime and what a task does: a handler gets the task,
//! its private directory and a cancellation token, and answers with a typed result that
//! decides how the delivery is settled. The runtime owns this interface; a handler sees
//! nothing else of it (not the runtime's own metrics: only [`TaskMetrics`], the part a
//! handler records into).

pub use super::metrics::TaskMetrics;
pub use super::quotas::{QuotaGate, QuotaWait};
pub use fleet_ledger::TaskLedger;
use shared::TaskMessage;
use shared::control::ControlMessage;
use std::future::Future;
use std::path::PathBuf;
use tokio_util::sync::CancellationToken;

/// What the runtime gives a handler for one delivery.
#[derive(Debug, Clone)]
pub struct TaskContext {
    /// The task's own directory under `WORKSPACE_DIR`, deleted before the delivery is settled.
    pub workdir: PathBuf,
    /// Fires on timeout or when the shutdown grace runs out: stop soon, write nothing more.
    pub cancel: CancellationToken,
    /// 1 for the first delivery, then 2, 3, ... (from the quorum queue's `x-delivery-count`).
    pub attempt: u32,
    /// No further redelivery follows a transient failure of this attempt.
    pub last_attempt: bool,
    /// For phase timings, clone and LLM counters.
    pub metrics: TaskMetrics,
    /// When the delivery reached this process (the runtime's pickup overhead starts here).
    pub received_at: std::time::Instant,
    /// The task's ledger (`DATABASE_URL`; records nothing without one): phases, LLM calls,
    /// checks and audit entries go here, never waiting for the database.
    pub ledger: TaskLedger,
    /// The fleet's quotas: asked once the task is known to be allowed (a wait is a
    /// [`TaskError::Delayed`]); the slot is given back by the runtime when the task ends.
    pub quota: QuotaGate,
}

/// Why a task did not complete; the variant decides the settle (docs/contracts.md,
/// "Settling a delivery").
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Will fail the same way again; already reported on the issue. Acked.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// May succeed later (network, 5xx, 429, broker). Nacked with requeue; the delivery limit
    /// bounds the retries.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The message is not a task this worker can run. Rejected without requeue (DLQ).
    #[error("unsupported task: {0}")]
    Unsupported(String),
    /// Not now, but later: a rate limit that outlasts what a task may wait in-process, or
    /// another task holding the lock. Retried after at least `after` through the
    /// delay queues (`<queue>.retry.*`), without using up the delivery limit; the runtime
    /// bounds the waits (`TASK_MAX_WAITS`, `TASK_MAX_WAIT_SECS`), past them it is a transient
    /// failure.
    #[error("delayed retry in {} s: {reason}", after.as_secs())]
    Delayed {
        reason: String,
        after: std::time::Duration,
    },
    /// Over a fleet quota (`MAX_RUNNING_PER_USER`, ...): a delayed retry like
    /// [`TaskError::Delayed`], but never bounded by `TASK_MAX_WAITS` / `TASK_MAX_WAIT_SECS`:
    /// a task waiting its turn is not failing, and is never dead-lettered for waiting.
    #[error("waiting for a quota, again in {} s: {reason}", after.as_secs())]
    QuotaWait {
        reason: String,
        after: std::time::Duration,
    },
    /// The work was cancelled (`/cancel`) after this task was asked for: it does
    /// not run. Acked, counted as `cancelled`, never dead-lettered.
    #[error("cancelled: {0}")]
    Cancelled(String),
}

/// What a task does. Implementations must be idempotent: delivery is at-least-once.
pub trait TaskHandler: Send + Sync + 'static {
    fn handle(
        &self,
        task: &TaskMessage,
        ctx: &TaskContext,
    ) -> impl Future<Output = Result<(), TaskError>> + Send;

    /// Called once when the last allowed attempt failed transiently (or timed out), before
    /// the broker dead-letters the message: tell the people waiting on the issue.
    fn report_exhausted(&self, task: &TaskMessage, reason: &str)
    -> impl Future<Output = ()> + Send;

    /// Called once after the runtime stopped `task` for `cancel` (its directory removed,
    /// its delivery acked, the issue still locked): tell the people waiting on the issue.
    /// Bounded by the runtime.
    fn cancelled(
        &self,
        task: &TaskMessage,
        cancel: &ControlMessage,
    ) -> impl Future<Output = ()> + Send {
        let _ = (task, cancel);
        async {}
    }

    /// Called by the one worker that took `cancel` from the durable `<queue>.cancels`,
    /// holding the lock (no task of the issue runs): write the cancel where a task
    /// of the issue still queued will see it when it starts, unless the running task's
    /// report did already. Idempotent (a cancel may be delivered again).
    fn record_cancel(
        &self,
        cancel: &ControlMessage,
    ) -> impl Future<Output = Result<(), TaskError>> + Send {
        let _ = cancel;
        async { Ok(()) }
    }
}
