//! Starting the ledger in a service (the ingest, the worker): the pool, the migrations
//! applied in the background until the database answers, the metrics and the writer; and
//! [`TaskLedger`], the handle one task records through.

use crate::event::{AuditEntry, AuditKind, Event, EventKind};
use crate::writer::{Ledger, LedgerMetrics};
use deadpool_postgres::Pool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the migrations are tried again while the database is away at start-up.
const MIGRATE_RETRY: Duration = Duration::from_secs(2);

/// Connections a service keeps to the ledger's database at most.
const POOL_SIZE: usize = 8;

/// The ledger of `url`, with room for `buffer` records: its migrations are applied in the
/// background (retried until the database answers, or until `cancel`), and records are
/// buffered meanwhile, so a database that is down at start-up delays nothing. The pool is
/// for whoever reads (the operator API) or asks (the quotas).
pub fn start(
    url: &str,
    buffer: usize,
    registry: &prometheus::Registry,
    cancel: CancellationToken,
) -> Result<(Ledger, Pool), String> {
    let pool = crate::pool(url, POOL_SIZE)?;
    let migrations = pool.clone();
    tokio::spawn(async move {
        loop {
            match crate::store::migrate(&migrations).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::warn!(%error, "ledger migrations not applied yet; retrying")
                }
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(MIGRATE_RETRY) => {}
            }
        }
    });
    let metrics = LedgerMetrics::new(registry);
    Ok((Ledger::start(pool.clone(), buffer, metrics), pool))
}

/// The ledger in the SQLite file `ledger` (migrated when it was opened), with room for
/// `buffer` records: `worker standalone` without `DATABASE_URL`. The same writer as for
/// PostgreSQL (a failed write is kept and retried, never waited for).
pub fn start_sqlite(
    ledger: crate::sqlite::SqliteLedger,
    buffer: usize,
    registry: &prometheus::Registry,
) -> Ledger {
    let metrics = LedgerMetrics::new(registry);
    Ledger::start_on(crate::Store::Sqlite(ledger), buffer, metrics)
}

/// What one task records through: its id and the ledger (disabled: records nothing).
/// Cheap to clone (the clones share the [`Tally`]); never waits for the database.
#[derive(Debug, Clone)]
pub struct TaskLedger {
    task_id: String,
    ledger: Ledger,
    tally: Arc<Mutex<Tally>>,
}

/// What a task's events added up to so far (kept with or without a database): what its
/// notification tells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub cost_usd: f64,
    pub pr_url: Option<String>,
}

impl TaskLedger {
    pub fn new(task_id: impl Into<String>, ledger: Ledger) -> Self {
        Self {
            task_id: task_id.into(),
            ledger,
            tally: Arc::default(),
        }
    }

    /// What the task's events added up to so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A handle that records nothing (`worker run`, tests without a database).
    pub fn disabled() -> Self {
        Self::new(String::new(), Ledger::disabled())
    }

    pub fn task_id(&self) -> &str {
        &self.task_id
    }

    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// One event of the task's life.
    pub fn event(&self, kind: EventKind) {
        {
            let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
            match &kind {
                EventKind::LlmCall { cost_usd, .. } => tally.cost_usd += cost_usd,
                EventKind::PullRequest { url, .. } => tally.pr_url = Some(url.clone()),
                _ => {}
            }
        }
        if self.ledger.is_enabled() {
            self.ledger.record(Event::now(&self.task_id, kind));
        }
    }

    /// One audit entry about the task.
    pub fn audit(&self, kind: AuditKind, actor: Option<&str>, detail: serde_json::Value) {
        if self.ledger.is_enabled() {
            self.ledger
                .audit(AuditEntry::now(kind, Some(&self.task_id), actor, detail));
        }
    }
}
