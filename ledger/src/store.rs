//! The SQL side: migrations at start-up, and writing a batch of records (each event into
//! `events` and, only when it was new, into its task's projection; each audit entry into
//! `audit`), in one transaction per batch.

use crate::event::{AuditEntry, Event, EventKind, Record};
use deadpool_postgres::Transaction;
use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::types::ToSql;

/// The migrations, in order; `schema_migrations` records which ran.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("../migrations/0001_init.sql")),
    (2, include_str!("../migrations/0002_operator.sql")),
];

/// Advisory lock key of the migrations (two services starting at once).
const MIGRATION_LOCK: i64 = 0x6167_656e_745f_6d67;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("PostgreSQL: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("no PostgreSQL connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The SQLite ledger of `worker standalone` (`STANDALONE_DB`).
    #[error("SQLite: {0}")]
    Sqlite(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Sqlite(error.to_string())
    }
}

/// Applies the migrations not yet applied.
pub async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await?;
    for (version, sql) in MIGRATIONS {
        let applied = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !applied {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version) VALUES ($1)",
                &[version],
            )
            .await?;
            tracing::info!(version, "ledger migration applied");
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Writes `batch` in one transaction. Records already written (same `event_id`) are
/// skipped, so a batch retried after a failed commit lands once.
pub async fn write(pool: &Pool, batch: &[Record]) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    for record in batch {
        match record {
            Record::Event(event) => write_event(&tx, event).await?,
            Record::Audit(entry) => write_audit(&tx, entry).await?,
        }
    }
    tx.commit().await?;
    Ok(())
}

/// One statement of a batch, prepared once per connection (the writer sends the same few
/// statements thousands of times: a prepare each time would double the round trips).
async fn exec(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, StoreError> {
    let statement = tx.prepare_cached(sql).await?;
    Ok(tx.execute(&statement, params).await?)
}

async fn write_audit(tx: &Transaction<'_>, entry: &AuditEntry) -> Result<(), StoreError> {
    exec(
        tx,
        "INSERT INTO audit (event_id, at, kind, task_id, actor, detail)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
        &[
            &entry.event_id,
            &entry.at,
            &entry.kind.as_str(),
            &entry.task_id,
            &entry.actor,
            &entry.detail,
        ],
    )
    .await?;
    Ok(())
}

async fn write_event(tx: &Transaction<'_>, event: &Event) -> Result<(), StoreError> {
    let inserted = tx
        .execute(
            "INSERT INTO events (event_id, task_id, at, kind, detail)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (event_id) DO NOTHING",
            &[
                &event.event_id,
                &event.task_id,
                &event.at,
                &event.kind.name(),
                &event.kind.detail(),
            ],
        )
        .await?;
    if inserted == 1 {
        project(tx, event).await?;
    }
    Ok(())
}

/// Applies one new event to its task's row (created bare when an event arrives before
/// the task's `received`, as after an ingest outage).
async fn project(tx: &Transaction<'_>, event: &Event) -> Result<(), StoreError> {
    let (id, at) = (&event.task_id, &event.at);
    exec(
        tx,
        "INSERT INTO tasks (task_id, created_at, updated_at) VALUES ($1, $2, $2)
         ON CONFLICT (task_id) DO UPDATE SET updated_at = GREATEST(tasks.updated_at, $2)",
        &[id, at],
    )
    .await?;
    match &event.kind {
        EventKind::Received {
            tracker,
            issue_key,
            issue_url,
            repo_url,
            mode,
            trigger_user,
            message,
        } => {
            exec(
                tx,
                "UPDATE tasks SET tracker = $2, issue_key = $3, issue_url = $4, repo_url = $5,
                     mode = $6, trigger_user = $7, created_at = LEAST(created_at, $8),
                     message = COALESCE($9, message)
                 WHERE task_id = $1",
                &[
                    id,
                    tracker,
                    issue_key,
                    issue_url,
                    repo_url,
                    mode,
                    trigger_user,
                    at,
                    message,
                ],
            )
            .await?
        }
        EventKind::Published => 0,
        EventKind::Started { .. } => {
            exec(
                tx,
                "UPDATE tasks SET state = 'running', phase = NULL, attempts = attempts + 1,
                     started_at = COALESCE(started_at, $2)
                 WHERE task_id = $1 AND state NOT IN ('done', 'failed', 'cancelled')",
                &[id, at],
            )
            .await?
        }
        EventKind::Admitted => {
            exec(
                tx,
                "UPDATE tasks SET started_at = $2
                 WHERE task_id = $1 AND state NOT IN ('done', 'failed', 'cancelled')",
                &[id, at],
            )
            .await?
        }
        EventKind::Phase { phase } => {
            exec(tx, "UPDATE tasks SET phase = $2 WHERE task_id = $1", &[id, phase])
                .await?
        }
        EventKind::LlmCall {
            input_tokens,
            output_tokens,
            cost_usd,
            ..
        } => {
            exec(
                tx,
                "UPDATE tasks SET llm_calls = llm_calls + 1, input_tokens = input_tokens + $2,
                     output_tokens = output_tokens + $3, cost_usd = cost_usd + $4
                 WHERE task_id = $1",
                &[id, &to_i64(*input_tokens), &to_i64(*output_tokens), cost_usd],
            )
            .await?
        }
        EventKind::Check { .. } => {
            exec(
                tx,
                "UPDATE tasks SET checks = checks || jsonb_build_array($2::jsonb) WHERE task_id = $1",
                &[id, &event.kind.detail()],
            )
            .await?
        }
        EventKind::Waiting { .. } => {
            exec(
                tx,
                "UPDATE tasks SET state = 'waiting' WHERE task_id = $1 AND state IN ('queued', 'running', 'waiting')",
                &[id],
            )
            .await?
        }
        EventKind::Finished {
            outcome,
            pr_url,
            error,
        } => {
            exec(
                tx,
                "UPDATE tasks SET state = $2, finished_at = $3, phase = NULL,
                     pr_url = COALESCE($4, pr_url), error = $5
                 WHERE task_id = $1",
                &[id, &outcome.as_str(), at, pr_url, error],
            )
            .await?
        }
        EventKind::Cancelled { by } => {
            exec(
                tx,
                "UPDATE tasks SET state = 'cancelled', finished_at = $2, phase = NULL,
                     error = 'cancelled by ' || $3
                 WHERE task_id = $1",
                &[id, at, by],
            )
            .await?
        }
        EventKind::PullRequest { url, .. } => {
            exec(tx, "UPDATE tasks SET pr_url = $2 WHERE task_id = $1", &[id, url])
                .await?
        }
        EventKind::DeadLettered { reason } => {
            exec(
                tx,
                "UPDATE tasks SET state = 'dead', finished_at = $2, error = $3 WHERE task_id = $1",
                &[id, at, reason],
            )
            .await?
        }
    };
    Ok(())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Whether the database answers (readiness).
pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    pool.get().await?.simple_query("SELECT 1").await?;
    Ok(())
}
