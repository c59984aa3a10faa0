//! What the ingest writes to the ledger (`DATABASE_URL`, or the SQLite file of `worker
//! standalone`): each accepted trigger (the task's
//! `received` event with the message it was published with, and an audit `trigger` entry
//! naming who sent it from which event), each confirmed publish, each cancel. Through the
//! ledger's bounded buffer: a database outage never delays or fails a webhook.

use fleet_ledger::sqlite::SqliteLedger;
use fleet_ledger::{AuditEntry, AuditKind, Event, EventKind, Ledger, Store};
use secrecy::ExposeSecret;
use serde_json::json;
use shared::TaskMessage;
use shared::control::ControlMessage;
use shared::settings::CommonSettings;
use tokio_util::sync::CancellationToken;

/// The ingest's ledger: the writer, and the store the operator API reads through.
#[derive(Debug, Clone)]
pub struct Records {
    ledger: Ledger,
    store: Option<Store>,
}

impl Records {
    pub fn disabled() -> Self {
        Self {
            ledger: Ledger::disabled(),
            store: None,
        }
    }

    /// The ledger in the SQLite file of `worker standalone` (opened and migrated already),
    /// with room for `buffer` records.
    pub fn sqlite(db: SqliteLedger, buffer: usize, registry: &prometheus::Registry) -> Self {
        Self {
            ledger: fleet_ledger::start_sqlite(db.clone(), buffer, registry),
            store: Some(Store::Sqlite(db)),
        }
    }

    /// The ledger of `DATABASE_URL`, if set (`fleet_ledger::start`: migrations in the
    /// background, records buffered meanwhile).
    pub async fn start(
        settings: &CommonSettings,
        registry: &prometheus::Registry,
        cancel: CancellationToken,
    ) -> anyhow::Result<Self> {
        let Some(url) = &settings.database_url else {
            return Ok(Self::disabled());
        };
        let (ledger, pool) = fleet_ledger::start(
            url.expose_secret(),
            settings.ledger_buffer,
            registry,
            cancel,
        )
        .await
        .map_err(anyhow::Error::msg)?;
        Ok(Self {
            ledger,
            store: Some(Store::Postgres(pool)),
        })
    }

    /// The store, when the ledger is configured.
    pub fn store(&self) -> Option<&Store> {
        self.store.as_ref()
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// A task about to be published: its `received` event and the audit `trigger` entry.
    pub fn accepted(&self, task: &TaskMessage, kind: AuditKind, actor: &str) {
        let message = serde_json::to_value(task).ok();
        self.ledger.record(Event::now(
            &task.task_id,
            EventKind::Received {
                tracker: task.issue.tracker.to_string(),
                issue_key: task.issue.key.clone(),
                issue_url: task.issue.url.clone(),
                repo_url: task.repo_url.to_string(),
                mode: task.mode.to_string(),
                trigger_user: task.trigger_user.clone(),
                message,
            },
        ));
        self.ledger.audit(AuditEntry::now(
            kind,
            Some(&task.task_id),
            Some(actor),
            json!({
                "event": task.trigger.event,
                "delivery_id": task.trigger.delivery_id,
                "mode": task.mode,
                "issue_key": task.issue.key,
                "repo_url": task.repo_url,
                "comment_id": task.trigger.comment_id,
            }),
        ));
    }

    pub fn published(&self, task_id: &str) {
        self.ledger
            .record(Event::now(task_id, EventKind::Published));
    }

    /// A cancel sent to the workers: by a comment (of an issue, no task named), or through
    /// the API (for `task_id`).
    pub fn cancel_requested(&self, message: &ControlMessage, actor: &str, task_id: Option<&str>) {
        self.ledger.audit(AuditEntry::now(
            AuditKind::Cancel,
            task_id,
            Some(actor),
            json!({
                "cancel_id": message.cancel_id,
                "issue_key": message.issue_key,
                "requested_by": message.requested_by,
                "comment_id": message.comment_id,
            }),
        ));
    }
}
