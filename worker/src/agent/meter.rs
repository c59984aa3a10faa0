//! What the agent records about its work: phase timings, clone size and time, LLM requests
//! and tokens, checks, and the task's ledger events and audit entries. The one place the
//! agent touches the worker's metrics registry and the ledger, so the handler interface can
//! hand it something narrower without the modes noticing; an event that goes to the ledger
//! updates its metric here too.

use crate::adapters::git::Cloned;
use crate::runtime::handler::{TaskLedger, TaskMetrics};
use fleet_ledger::{AuditKind, EventKind};
use fleet_llm::{Phase, Usage};

/// The agent's handle on the worker's metrics and the task's ledger (cheap to clone).
#[derive(Debug, Clone)]
pub struct Meter {
    metrics: TaskMetrics,
    ledger: TaskLedger,
}

impl Meter {
    pub fn new(metrics: TaskMetrics, ledger: TaskLedger) -> Self {
        Self { metrics, ledger }
    }

    /// A meter nobody scrapes and no ledger reads (`worker run`).
    pub fn detached() -> Self {
        Self::new(TaskMetrics::new(), TaskLedger::disabled())
    }

    /// The task entered `phase` (a line of the status checklist ticked, the checks begun).
    pub fn entered(&self, phase: &str) {
        self.ledger.event(EventKind::Phase {
            phase: phase.to_owned(),
        });
    }

    /// An audit entry about the task: who (`actor`) did what.
    pub fn audit(&self, kind: AuditKind, actor: Option<&str>, detail: serde_json::Value) {
        self.ledger.audit(kind, actor, detail);
    }

    /// The task opened or updated pull request `number` at `url`.
    pub fn pull_request(&self, number: u64, url: &str) {
        self.ledger.event(EventKind::PullRequest {
            url: url.to_owned(),
            number,
        });
        self.ledger.audit(
            AuditKind::PullRequest,
            None,
            serde_json::json!({ "number": number, "url": url }),
        );
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

    /// An answered LLM request, the tokens it used and what it cost (with `LLM_PRICES`).
    pub fn llm_answered(&self, provider: &str, phase: Phase, usage: Usage, cost_usd: f64) {
        self.ledger.event(EventKind::LlmCall {
            phase: phase.as_str().to_owned(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            cost_usd,
        });
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

    /// One check's run (`name`): its result and how long it took.
    pub fn check_ran(&self, name: &str, result: &str, seconds: f64) {
        self.ledger.event(EventKind::Check {
            name: name.to_owned(),
            result: result.to_owned(),
            duration_ms: (seconds * 1000.0) as u64,
        });
        self.metrics.checks.with_label_values(&[result]).inc();
        self.metrics.check_seconds.observe(seconds);
    }
}
