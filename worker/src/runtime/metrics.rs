//! The worker's metrics. Every task event that is logged updates its metric in the same
//! place (the runtime's settle step and the handlers' phase timers).
//!
//! Two halves: [`WorkerMetrics`], the runtime's own (tasks, settles, in flight), and
//! [`TaskMetrics`], the narrow part a handler records into (phase timings, clone size and
//! time, LLM requests and tokens), which is all the handler interface hands out.

use prometheus::core::Collector;
use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, Registry};
use shared::telemetry::{
    SLOW_BUCKETS, counter, counter_vec, gauge, histogram, histogram_vec, register_all,
};

/// What a handler records: given to it in [`super::handler::TaskContext`], registered in
/// the runtime's registry by [`WorkerMetrics::new`].
#[derive(Clone, Debug)]
pub struct TaskMetrics {
    pub phase_seconds: HistogramVec,
    pub clone_seconds: Histogram,
    pub clone_bytes: Histogram,
    pub llm_requests: IntCounterVec,
    pub llm_tokens: IntCounterVec,
    /// Checks run in the sandbox, by result (`passed`, `failed`, `timed out`, `failing
    /// before the change`).
    pub checks: IntCounterVec,
    pub check_seconds: Histogram,
    /// Tasks stopped by a budget, by the budget's setting (`TASK_MAX_LLM_CALLS`, ...).
    pub budget_stops: IntCounterVec,
    /// What one task's LLM calls cost (with `LLM_PRICES`), observed when its mode ends.
    pub task_cost: Histogram,
}

impl TaskMetrics {
    /// Metrics registered nowhere yet: for a run outside the fleet runtime (`worker run`,
    /// the report of an exhausted task), or to be registered by [`WorkerMetrics::new`].
    pub fn new() -> Self {
        Self {
            phase_seconds: histogram_vec(
                "agent_fleet_task_phase_duration_seconds",
                "Time per task phase",
                SLOW_BUCKETS,
                &["phase"],
            ),
            clone_seconds: histogram(
                "agent_fleet_clone_duration_seconds",
                "Shallow clone time",
                SLOW_BUCKETS,
            ),
            clone_bytes: histogram(
                "agent_fleet_clone_bytes",
                "Size of the cloned working tree",
                &prometheus::exponential_buckets(1_048_576.0, 4.0, 8).expect("buckets"),
            ),
            llm_requests: counter_vec(
                "agent_fleet_llm_requests_total",
                "LLM requests by provider, phase and outcome",
                &["provider", "phase", "outcome"],
            ),
            llm_tokens: counter_vec(
                "agent_fleet_llm_tokens_total",
                "LLM tokens by provider and kind (input, output)",
                &["provider", "kind"],
            ),
            checks: counter_vec(
                "agent_fleet_checks_total",
                "Repository checks run in the sandbox, by result",
                &["result"],
            ),
            check_seconds: histogram(
                "agent_fleet_check_duration_seconds",
                "Time of one repository check in the sandbox",
                SLOW_BUCKETS,
            ),
            budget_stops: counter_vec(
                "agent_fleet_budget_stops_total",
                "Tasks stopped because a budget was used up, by budget",
                &["budget"],
            ),
            task_cost: histogram(
                "agent_fleet_task_cost_usd",
                "LLM cost of one task in USD (priced with LLM_PRICES)",
                &[
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ],
            ),
        }
    }
    /// Records how long a phase took.
    pub fn phase(&self, phase: &str, seconds: f64) {
        self.phase_seconds
            .with_label_values(&[phase])
            .observe(seconds);
    }

    fn collectors(&self) -> [Box<dyn Collector>; 9] {
        [
            Box::new(self.budget_stops.clone()),
            Box::new(self.task_cost.clone()),
            Box::new(self.checks.clone()),
            Box::new(self.check_seconds.clone()),
            Box::new(self.phase_seconds.clone()),
            Box::new(self.clone_seconds.clone()),
            Box::new(self.clone_bytes.clone()),
            Box::new(self.llm_requests.clone()),
            Box::new(self.llm_tokens.clone()),
        ]
    }
}

impl Default for TaskMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The runtime's metrics, with the handlers' part in [`WorkerMetrics::task`].
#[derive(Clone, Debug)]
pub struct WorkerMetrics {
    pub registry: Registry,
    pub tasks: IntCounterVec,
    pub in_flight: IntGauge,
    pub redeliveries: IntCounter,
    pub settles: IntCounterVec,
    /// Runtime overhead after the handler: cleanup and settle.
    pub settle_seconds: Histogram,
    /// The handlers' part, handed to each task.
    pub task: TaskMetrics,
}

impl WorkerMetrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let tasks = counter_vec(
            "agent_fleet_tasks_total",
            "Tasks by mode and outcome",
            &["mode", "outcome"],
        );
        let in_flight = gauge("agent_fleet_tasks_in_flight", "Tasks being worked on now");
        let redeliveries = counter(
            "agent_fleet_redeliveries_total",
            "Deliveries that were redeliveries (x-delivery-count > 0 or redelivered flag)",
        );
        let settles = counter_vec(
            "agent_fleet_settles_total",
            "How deliveries were settled: ack, nack_requeue, reject, failed (channel gone)",
            &["result"],
        );
        let settle_seconds = histogram(
            "agent_fleet_settle_duration_seconds",
            "From the handler's end to the settled delivery (task dir removal included)",
            &[
                0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005,
                0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
            ],
        );
        let task = TaskMetrics::new();
        let own: [Box<dyn Collector>; 5] = [
            Box::new(settle_seconds.clone()),
            Box::new(tasks.clone()),
            Box::new(in_flight.clone()),
            Box::new(redeliveries.clone()),
            Box::new(settles.clone()),
        ];
        register_all(&registry, own.into_iter().chain(task.collectors()));
        Self {
            registry,
            tasks,
            in_flight,
            redeliveries,
            settles,
            settle_seconds,
            task,
        }
    }

    /// Records how long a phase took (the runtime's own: `total`).
    pub fn phase(&self, phase: &str, seconds: f64) {
        self.task.phase(phase, seconds);
    }
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        Self::new()
    }
}
