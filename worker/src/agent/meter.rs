//! What the agent records about its work: phase timings, clone size and time, LLM requests
//! and tokens, checks. The one place the agent touches the worker's metrics registry, so the
//! handler interface can hand it something narrower without the modes noticing.

use crate::adapters::git::Cloned;
use crate::runtime::handler::TaskMetrics;
use fleet_llm::{Phase, Usage};

/// The agent's handle on the worker's metrics (cheap to clone).
#[derive(Debug, Clone)]
pub struct Meter {
    metrics: TaskMetrics,
}

impl Meter {
    pub fn new(metrics: TaskMetrics) -> Self {
        Self { metrics }
    }

    /// A meter nobody scrapes (`worker run`).
    pub fn detached() -> Self {
        Self::new(TaskMetrics::new())
    }

    /// `agent_fleet_task_phase_duration_seconds{phase}`.
    pub fn phase(&self, phase: &str, seconds: f64) {
        self.metrics.phase(phase, seconds);
    }

    /// The clone's time and size, and its phase.
    pub fn cloned(&self, cloned: &Cloned) {
        self.metrics.clone_seconds.observe(cloned.seconds);
        self.metrics.clone_bytes.observe(cloned.bytes as f64);
        self.phase("clone", cloned.seconds);
    }

    /// An answered LLM request and the tokens it used.
    pub fn llm_answered(&self, provider: &str, phase: Phase, usage: Usage) {
        self.metrics
            .llm_requests
            .with_label_values(&[provider, phase.as_str(), "ok"])
            .inc();
        self.metrics
            .llm_tokens
            .with_label_values(&[provider, "input"])
            .inc_by(usage.input_tokens);
        self.metrics
            .llm_tokens
            .with_label_values(&[provider, "output"])
            .inc_by(usage.output_tokens);
    }

    /// A failed LLM request, by the error's kind.
    pub fn llm_failed(&self, provider: &str, phase: Phase, kind: &str) {
        self.metrics
            .llm_requests
            .with_label_values(&[provider, phase.as_str(), kind])
            .inc();
    }

    /// A task stopped by `budget` (its setting's name).
    pub fn budget_stop(&self, budget: &str) {
        self.metrics.budget_stops.with_label_values(&[budget]).inc();
    }

    /// What a task's LLM calls cost, once its mode ended.
    pub fn task_cost(&self, usd: f64) {
        self.metrics.task_cost.observe(usd);
    }

    /// One check's run: its result and how long it took.
    pub fn check_ran(&self, result: &str, seconds: f64) {
        self.metrics.checks.with_label_values(&[result]).inc();
        self.metrics.check_seconds.observe(seconds);
    }
}
