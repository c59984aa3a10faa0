//! What the operator API reads from the SQLite ledger: the same views as `query.rs` reads
//! from PostgreSQL (a task's row, its events, task lists, the audit trail).

use super::{SqliteLedger, json, micros, time};
use crate::query::{AuditView, EventView, IssueView, TaskFilter, TaskView, Tokens};
use crate::store::StoreError;
use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension, Row, params};

const TASK_COLUMNS: &str = "task_id, tracker, issue_key, issue_url, repo_url, mode, state, phase,
    trigger_user, created_at, updated_at, attempts, input_tokens, output_tokens, cost_usd,
    llm_calls, checks, pr_url, error";

fn task_of(row: &Row<'_>) -> rusqlite::Result<TaskView> {
    Ok(TaskView {
        task_id: row.get("task_id")?,
        issue: IssueView {
            tracker: row.get("tracker")?,
            key: row.get("issue_key")?,
            url: row.get("issue_url")?,
        },
        repo_url: row.get("repo_url")?,
        mode: row.get("mode")?,
        state: row.get("state")?,
        phase: row.get("phase")?,
        trigger_user: row.get("trigger_user")?,
        created_at: time(row.get("created_at")?),
        updated_at: time(row.get("updated_at")?),
        attempts: row.get("attempts")?,
        tokens: Tokens {
            input: row.get("input_tokens")?,
            output: row.get("output_tokens")?,
        },
        cost_usd: row.get("cost_usd")?,
        llm_calls: row.get("llm_calls")?,
        checks: json(&row.get::<_, String>("checks")?),
        pr_url: row.get("pr_url")?,
        error: row.get("error")?,
    })
}

fn audit_of(row: &Row<'_>) -> rusqlite::Result<AuditView> {
    Ok(AuditView {
        at: time(row.get("at")?),
        kind: row.get("kind")?,
        task_id: row.get("task_id")?,
        actor: row.get("actor")?,
        detail: json(&row.get::<_, String>("detail")?),
    })
}

impl SqliteLedger {
    /// A task's row, if the ledger knows it.
    pub async fn task(&self, task_id: &str) -> Result<Option<TaskView>, StoreError> {
        let task_id = task_id.to_owned();
        self.with(move |db| {
            db.query_row(
                &format!("SELECT {TASK_COLUMNS} FROM ledger_tasks WHERE task_id = ?1"),
                params![task_id],
                task_of,
            )
            .optional()
        })
        .await
    }

    /// The task message a task was published with (for a retry), if the ledger has it.
    pub async fn message(&self, task_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        let task_id = task_id.to_owned();
        let text = self
            .with(move |db| {
                db.query_row(
                    "SELECT message FROM ledger_tasks WHERE task_id = ?1",
                    params![task_id],
                    |r| r.get::<_, Option<String>>(0),
                )
                .optional()
            })
            .await?;
        Ok(text.flatten().map(|t| json(&t)))
    }

    /// A task's events, oldest first.
    pub async fn events(&self, task_id: &str) -> Result<Vec<EventView>, StoreError> {
        let task_id = task_id.to_owned();
        self.with(move |db| {
            db.prepare_cached(
                "SELECT at, kind, detail FROM ledger_events WHERE task_id = ?1 ORDER BY at, id",
            )?
            .query_map(params![task_id], |row| {
                Ok(EventView {
                    at: time(row.get("at")?),
                    kind: row.get("kind")?,
                    detail: json(&row.get::<_, String>("detail")?),
                })
            })?
            .collect()
        })
        .await
    }

    /// Tasks, most recently updated first. `repo` matches the whole URL or its last part
    /// (`owner/name`), as in PostgreSQL.
    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskView>, StoreError> {
        let filter = filter.clone();
        self.with(move |db| {
            db.prepare_cached(&format!(
                "SELECT {TASK_COLUMNS} FROM ledger_tasks
                 WHERE (?1 IS NULL OR state = ?1)
                   AND (?2 IS NULL OR repo_url = ?2
                        OR (length(repo_url) > length(?2)
                            AND substr(repo_url, -length(?2) - 1) = '/' || ?2))
                   AND (?3 IS NULL OR trigger_user = ?3)
                 ORDER BY updated_at DESC LIMIT ?4"
            ))?
            .query_map(
                params![
                    filter.state,
                    filter.repo,
                    filter.user,
                    filter.limit.clamp(1, 1000)
                ],
                task_of,
            )?
            .collect()
        })
        .await
    }

    /// Audit entries at or after `since`, oldest first.
    pub async fn audit(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<AuditView>, StoreError> {
        self.with(move |db| {
            db.prepare_cached(
                "SELECT at, kind, task_id, actor, detail FROM ledger_audit
                 WHERE at >= ?1 ORDER BY at, id LIMIT ?2",
            )?
            .query_map(params![micros(since), limit.clamp(1, 100_000)], audit_of)?
            .collect()
        })
        .await
    }

    /// One page of the audit trail for an export (as `query::audit_page`).
    pub async fn audit_page(
        &self,
        since: DateTime<Utc>,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<(i64, AuditView)>, StoreError> {
        self.with(move |db| {
            db.prepare_cached(
                "SELECT id, at, kind, task_id, actor, detail FROM ledger_audit
                 WHERE at >= ?1 AND id > ?2 ORDER BY id LIMIT ?3",
            )?
            .query_map(
                params![micros(since), after_id, limit.clamp(1, 10_000)],
                |row| Ok((row.get("id")?, audit_of(row)?)),
            )?
            .collect()
        })
        .await
    }
}
