//! The in-process wait budget of one task attempt: how long the tracker clients (GitHub,
//! Jira) may sleep off a rate limit inside the running task, cancellation-aware, and the
//! deferral they leave behind when a limit lasts longer than that.
//!
//! Why in-process first: the rate limit often hits after the LLM answered (the PR is
//! created last), and a whole-task retry would ask the LLM again. Short limits are waited
//! out where they hit; a limit longer than `GITHUB_RATE_LIMIT_MAX_WAIT_SECS` (or past the
//! attempt's total, five times that) ends the attempt, and the recorded deferral turns its
//! transient failure into a delayed retry through the delay queues.
//!
//! The budget travels as a task-local set by the runtime around the handler, so the clients
//! need no new parameters; outside a task (the `worker run` CLI, reports) nothing waits.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

tokio::task_local! {
    static BUDGET: Arc<WaitBudget>;
}

/// What one attempt may still wait, and the longest wait it was refused.
#[derive(Debug)]
pub struct WaitBudget {
    cancel: CancellationToken,
    max_single: Duration,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    remaining: Duration,
    deferral: Option<Duration>,
}

/// How many single waits an attempt may spend in total.
const TOTAL_FACTOR: u32 = 5;

impl WaitBudget {
    /// `max_single`: the longest one wait taken in-process; the attempt may wait five times
    /// that in total. `cancel` ends a wait at once (timeout, shutdown).
    pub fn new(cancel: CancellationToken, max_single: Duration) -> Arc<Self> {
        Arc::new(Self {
            cancel,
            max_single,
            state: Mutex::new(State {
                remaining: max_single.saturating_mul(TOTAL_FACTOR),
                deferral: None,
            }),
        })
    }

    /// Runs `work` with this budget available to [`wait_out`].
    pub async fn scope<F: Future>(self: Arc<Self>, work: F) -> F::Output {
        BUDGET.scope(self, work).await
    }

    /// The longest wait that was refused, if any.
    pub fn deferral(&self) -> Option<Duration> {
        self.lock().deferral
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn defer(&self, wait: Duration) {
        let mut state = self.lock();
        state.deferral = Some(state.deferral.map_or(wait, |d| d.max(wait)));
    }
}

/// A client was told to come back in `wait`: sleeps it off when the attempt's budget allows
/// (`true`: send again), else records the deferral (`false`: give up with a rate-limit
/// error). Also `false` when cancelled while waiting, or outside a task.
pub async fn wait_out(wait: Duration) -> bool {
    let Ok(budget) = BUDGET.try_with(Arc::clone) else {
        return false;
    };
    {
        let mut state = budget.lock();
        if wait > budget.max_single || wait > state.remaining {
            drop(state);
            budget.defer(wait);
            tracing::info!(
                wait_secs = wait.as_secs(),
                "rate limit outlasts the in-process wait; the task will be retried later"
            );
            return false;
        }
        state.remaining -= wait;
    }
    tracing::info!(
        wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
        "rate-limited; waiting in-process"
    );
    tokio::select! {
        () = budget.cancel.cancelled() => false,
        () = tokio::time::sleep(wait) => true,
    }
}

/// Records that the current task should come back in `wait` at the earliest (a server that
/// kept refusing after the client's own retries). Outside a task it does nothing.
pub fn defer_current(wait: Duration) {
    let _ = BUDGET.try_with(|b| b.defer(wait));
}

/// The deferral recorded in the current task's budget (for mapping a failure).
pub fn current_deferral() -> Option<Duration> {
    BUDGET.try_with(|b| b.deferral()).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_within_the_budget_and_defers_beyond_it() {
        let budget = WaitBudget::new(CancellationToken::new(), Duration::from_millis(30));
        let inner = budget.clone();
        budget
            .scope(async move {
                assert!(
                    wait_out(Duration::from_millis(10)).await,
                    "short wait taken"
                );
                assert_eq!(current_deferral(), None);
                assert!(!wait_out(Duration::from_secs(5)).await, "long wait refused");
                assert_eq!(current_deferral(), Some(Duration::from_secs(5)));
                // Five times the single limit in total: 150 ms, 10 already spent.
                for _ in 0..4 {
                    assert!(wait_out(Duration::from_millis(30)).await);
                }
                assert!(!wait_out(Duration::from_millis(30)).await, "total spent");
                assert_eq!(inner.deferral(), Some(Duration::from_secs(5)), "max kept");
            })
            .await;
        assert!(
            !wait_out(Duration::from_millis(1)).await,
            "no budget outside"
        );
    }

    #[tokio::test]
    async fn a_cancelled_task_stops_waiting() {
        let cancel = CancellationToken::new();
        let budget = WaitBudget::new(cancel.clone(), Duration::from_secs(60));
        cancel.cancel();
        let started = std::time::Instant::now();
        assert!(!budget.scope(wait_out(Duration::from_secs(30))).await);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
