//! Writing a batch into the SQLite ledger, in one immediate transaction: each event into
//! `ledger_events` and, only when it was new, into its task's row (the same projection as
//! `store.rs` does in PostgreSQL); each audit entry into `ledger_audit`. Records already
//! written (same `event_id`) are skipped, so a batch retried after a failure lands once.

use super::{SqliteLedger, micros};
use crate::event::{AuditEntry, Event, EventKind, Record};
use crate::store::StoreError;
use rusqlite::{Transaction, params};

impl SqliteLedger {
    /// Writes `batch` (a copy goes to the blocking pool).
    pub async fn write(&self, batch: &[Record]) -> Result<(), StoreError> {
        let batch = batch.to_vec();
        self.with(move |db| {
            let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            for record in &batch {
                match record {
                    Record::Event(event) => write_event(&tx, event)?,
                    Record::Audit(entry) => write_audit(&tx, entry)?,
                }
            }
            tx.commit()
        })
        .await
    }
}

fn write_audit(tx: &Transaction<'_>, entry: &AuditEntry) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO ledger_audit (event_id, at, kind, task_id, actor, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (event_id) DO NOTHING",
    )?
    .execute(params![
        entry.event_id.to_string(),
        micros(entry.at),
        entry.kind.as_str(),
        entry.task_id,
        entry.actor,
        entry.detail.to_string(),
    ])?;
    Ok(())
}

fn write_event(tx: &Transaction<'_>, event: &Event) -> rusqlite::Result<()> {
    let inserted = tx
        .prepare_cached(
            "INSERT INTO ledger_events (event_id, task_id, at, kind, detail)
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (event_id) DO NOTHING",
        )?
        .execute(params![
            event.event_id.to_string(),
            event.task_id,
            micros(event.at),
            event.kind.name(),
            event.kind.detail().to_string(),
        ])?;
    if inserted == 1 {
        project(tx, event)?;
    }
    Ok(())
}

/// Applies one new event to its task's row (created bare when an event arrives before the
/// task's `received`).
fn project(tx: &Transaction<'_>, event: &Event) -> rusqlite::Result<()> {
    let (id, at) = (event.task_id.as_str(), micros(event.at));
    let exec = |sql: &str, params: &[&dyn rusqlite::ToSql]| -> rusqlite::Result<usize> {
        tx.prepare_cached(sql)?.execute(params)
    };
    exec(
        "INSERT INTO ledger_tasks (task_id, created_at, updated_at) VALUES (?1, ?2, ?2)
         ON CONFLICT (task_id) DO UPDATE SET updated_at = max(updated_at, excluded.updated_at)",
        &[&id, &at],
    )?;
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
            let message = message.as_ref().map(|m| m.to_string());
            exec(
                "UPDATE ledger_tasks SET tracker = ?2, issue_key = ?3, issue_url = ?4,
                     repo_url = ?5, mode = ?6, trigger_user = ?7, created_at = min(created_at, ?8),
                     message = COALESCE(?9, message)
                 WHERE task_id = ?1",
                &[
                    &id,
                    tracker,
                    issue_key,
                    issue_url,
                    repo_url,
                    mode,
                    trigger_user,
                    &at,
                    &message,
                ],
            )?
        }
        EventKind::Published => 0,
        EventKind::Started { .. } => exec(
            "UPDATE ledger_tasks SET state = 'running', phase = NULL, attempts = attempts + 1,
                 started_at = COALESCE(started_at, ?2)
             WHERE task_id = ?1 AND state NOT IN ('done', 'failed', 'cancelled')",
            &[&id, &at],
        )?,
        EventKind::Admitted => exec(
            "UPDATE ledger_tasks SET started_at = ?2
             WHERE task_id = ?1 AND state NOT IN ('done', 'failed', 'cancelled')",
            &[&id, &at],
        )?,
        EventKind::Phase { phase } => exec(
            "UPDATE ledger_tasks SET phase = ?2 WHERE task_id = ?1",
            &[&id, phase],
        )?,
        EventKind::LlmCall {
            input_tokens,
            output_tokens,
            cost_usd,
            ..
        } => exec(
            "UPDATE ledger_tasks SET llm_calls = llm_calls + 1,
                 input_tokens = input_tokens + ?2, output_tokens = output_tokens + ?3,
                 cost_usd = cost_usd + ?4
             WHERE task_id = ?1",
            &[
                &id,
                &to_i64(*input_tokens),
                &to_i64(*output_tokens),
                cost_usd,
            ],
        )?,
        EventKind::Check { .. } => exec(
            "UPDATE ledger_tasks SET checks = json_insert(checks, '$[#]', json(?2))
             WHERE task_id = ?1",
            &[&id, &event.kind.detail().to_string()],
        )?,
        EventKind::Waiting { .. } => exec(
            "UPDATE ledger_tasks SET state = 'waiting'
             WHERE task_id = ?1 AND state IN ('queued', 'running', 'waiting')",
            &[&id],
        )?,
        EventKind::Finished {
            outcome,
            pr_url,
            error,
        } => exec(
            "UPDATE ledger_tasks SET state = ?2, finished_at = ?3, phase = NULL,
                 pr_url = COALESCE(?4, pr_url), error = ?5
             WHERE task_id = ?1",
            &[&id, &outcome.as_str(), &at, pr_url, error],
        )?,
        EventKind::Cancelled { by } => exec(
            "UPDATE ledger_tasks SET state = 'cancelled', finished_at = ?2, phase = NULL,
                 error = 'cancelled by ' || ?3
             WHERE task_id = ?1",
            &[&id, &at, by],
        )?,
        EventKind::PullRequest { url, .. } => exec(
            "UPDATE ledger_tasks SET pr_url = ?2 WHERE task_id = ?1",
            &[&id, url],
        )?,
        EventKind::DeadLettered { reason } => exec(
            "UPDATE ledger_tasks SET state = 'dead', finished_at = ?2, error = ?3
             WHERE task_id = ?1",
            &[&id, &at, reason],
        )?,
    };
    Ok(())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
