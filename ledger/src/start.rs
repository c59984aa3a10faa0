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

/// How long [`start`] waits for the migrations before it returns: long enough for a
/// database that answers (milliseconds), short enough that one that does not delays the
/// service's start by little.
const READY_WITHIN: Duration = Duration::from_secs(5);

/// The ledger of `url`, with room for `buffer` records. Its migrations are applied in the
/// background (retried until the database answers, or until `cancel`); `start` waits for
/// them up to 5 s, so a service that starts with its database up never writes
/// or asks a quota before the tables exist (a quota check on a missing table lets the task
/// run: the limit would not hold for the first tasks). A database that is down at start-up
/// delays the start by that much at most, and records are buffered meanwhile. The pool is
/// for whoever reads (the operator API) or asks (the quotas).
pub async fn start(
    url: &str,
    buffer: usize,
    registry: &prometheus::Registry,
    cancel: CancellationToken,
) -> Result<(Ledger, Pool), String> {
    let pool = crate::pool(url, POOL_SIZE)?;
    let migrations = pool.clone();
    let (migrated, ready) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        loop {
            match crate::store::migrate(&migrations).await {
                Ok(()) => {
                    let _ = migrated.send(());
                    break;
                }
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
    if !matches!(tokio::time::timeout(READY_WITHIN, ready).await, Ok(Ok(()))) {
        tracing::warn!(
            "the ledger's database is not answering at start-up: records are buffered and \
             quotas let tasks run until it does"
        );
    }
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
