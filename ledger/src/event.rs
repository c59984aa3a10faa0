//! What the services tell the ledger: a task's events (its life, projected into the
//! `tasks` row) and audit entries (who did what, append-only). Each carries a fresh
//! `event_id`, so a write retried after an outage lands once.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

/// One event in a task's life.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub event_id: Uuid,
    pub task_id: String,
    pub at: DateTime<Utc>,
    pub kind: EventKind,
}

impl Event {
    pub fn now(task_id: impl Into<String>, kind: EventKind) -> Self {
        Self {
            event_id: Uuid::new_v4(),
            task_id: task_id.into(),
            at: Utc::now(),
            kind,
        }
    }
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Done,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Failed => "failed",
        }
    }
}

/// The kinds of task events, stored as `kind` plus a JSON `detail`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// The ingest accepted a trigger (or the API a retry).
    Received {
        tracker: String,
        issue_key: String,
        issue_url: String,
        repo_url: String,
        mode: String,
        trigger_user: String,
        /// The task message as published (what a retry publishes again).
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<serde_json::Value>,
    },
    /// The task message is on the queue (broker confirm).
    Published,
    /// A worker took a delivery.
    Started {
        attempt: u32,
        worker: String,
    },
    /// The task got its quota slot: its work starts now (`started_at` is this moment, not
    /// the first delivery's, which may have waited for the slot).
    Admitted,
    /// The task entered a phase (`clone`, `context`, `llm`, `edit`, `check`, `push`, ...).
    Phase {
        phase: String,
    },
    /// One LLM request, answered.
    LlmCall {
        phase: String,
        input_tokens: u64,
        output_tokens: u64,
        cost_usd: f64,
    },
    /// One check run.
    Check {
        name: String,
        result: String,
        duration_ms: u64,
    },
    /// Waiting (a quota, a rate limit, the issue's lock): a delayed retry.
    Waiting {
        reason: String,
    },
    Finished {
        outcome: Outcome,
        pr_url: Option<String>,
        error: Option<String>,
    },
    Cancelled {
        by: String,
    },
    /// The task opened or updated a pull request (sets the task's `pr_url`).
    PullRequest {
        url: String,
        number: u64,
    },
    DeadLettered {
        reason: String,
    },
}

impl EventKind {
    pub fn name(&self) -> &'static str {
        match self {
            EventKind::Received { .. } => "received",
            EventKind::Published => "published",
            EventKind::Started { .. } => "started",
            EventKind::Admitted => "admitted",
            EventKind::Phase { .. } => "phase",
            EventKind::LlmCall { .. } => "llm_call",
            EventKind::Check { .. } => "check",
            EventKind::Waiting { .. } => "waiting",
            EventKind::Finished { .. } => "finished",
            EventKind::Cancelled { .. } => "cancelled",
            EventKind::PullRequest { .. } => "pull_request",
            EventKind::DeadLettered { .. } => "dead_lettered",
        }
    }

    /// The JSON detail (the variant's fields, without the tag).
    pub fn detail(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(self).unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            object.remove("kind");
        }
        value
    }
}

/// The kinds of audit entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    Trigger,
    Permission,
    Approval,
    Push,
    PullRequest,
    Comment,
    Cancel,
    Retry,
    Replay,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::Trigger => "trigger",
            AuditKind::Permission => "permission",
            AuditKind::Approval => "approval",
            AuditKind::Push => "push",
            AuditKind::PullRequest => "pull_request",
            AuditKind::Comment => "comment",
            AuditKind::Cancel => "cancel",
            AuditKind::Retry => "retry",
            AuditKind::Replay => "replay",
        }
    }
}

/// One audit entry: who (`actor`) did what, about which task, with what detail (a plan
/// hash, a push sha, a PR number, comment ids, a permission decision).
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    pub event_id: Uuid,
    pub at: DateTime<Utc>,
    pub kind: AuditKind,
    pub task_id: Option<String>,
    pub actor: Option<String>,
    pub detail: serde_json::Value,
}

impl AuditEntry {
    pub fn now(
        kind: AuditKind,
        task_id: Option<&str>,
        actor: Option<&str>,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            event_id: Uuid::new_v4(),
            at: Utc::now(),
            kind,
            task_id: task_id.map(str::to_owned),
            actor: actor.map(str::to_owned),
            detail,
        }
    }
}

/// What goes through the ledger's buffer.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Event(Event),
    Audit(AuditEntry),
}
