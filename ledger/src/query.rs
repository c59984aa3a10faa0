//! What the operator API and the console read: a task's row with its events, task lists,
//! the audit trail. Shapes follow docs/contracts.md ("Operator API").

use crate::store::StoreError;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

/// A task as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskView {
    pub task_id: String,
    pub issue: IssueView,
    pub repo_url: String,
    pub mode: String,
    pub state: String,
    pub phase: Option<String>,
    pub trigger_user: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub attempts: i32,
    pub tokens: Tokens,
    pub cost_usd: f64,
    pub llm_calls: i32,
    pub checks: serde_json::Value,
    pub pr_url: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueView {
    pub tracker: String,
    pub key: String,
    pub url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub input: i64,
    pub output: i64,
}

/// One event of a task's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventView {
    pub at: DateTime<Utc>,
    pub kind: String,
    #[serde(flatten)]
    pub detail: serde_json::Value,
}

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditView {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub task_id: Option<String>,
    pub actor: Option<String>,
    pub detail: serde_json::Value,
}

const TASK_COLUMNS: &str = "task_id, tracker, issue_key, issue_url, repo_url, mode, state, phase,
    trigger_user, created_at, updated_at, attempts, input_tokens, output_tokens, cost_usd,
    llm_calls, checks, pr_url, error";

fn task_of(row: &Row) -> TaskView {
    TaskView {
        task_id: row.get("task_id"),
        issue: IssueView {
            tracker: row.get("tracker"),
            key: row.get("issue_key"),
            url: row.get("issue_url"),
        },
        repo_url: row.get("repo_url"),
        mode: row.get("mode"),
        state: row.get("state"),
        phase: row.get("phase"),
        trigger_user: row.get("trigger_user"),
        created_at: row.get("created_at"),
        updated_at: row.get("updated_at"),
        attempts: row.get("attempts"),
        tokens: Tokens {
            input: row.get("input_tokens"),
            output: row.get("output_tokens"),
        },
        cost_usd: row.get("cost_usd"),
        llm_calls: row.get("llm_calls"),
        checks: row.get("checks"),
        pr_url: row.get("pr_url"),
        error: row.get("error"),
    }
}

/// A task's row, if the ledger knows it.
pub async fn task(pool: &Pool, task_id: &str) -> Result<Option<TaskView>, StoreError> {
    let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE task_id = $1");
    let row = pool.get().await?.query_opt(&sql, &[&task_id]).await?;
    Ok(row.as_ref().map(task_of))
}

/// The task message a task was published with (for a retry), if the ledger has it.
pub async fn message(pool: &Pool, task_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let row = pool
        .get()
        .await?
        .query_opt("SELECT message FROM tasks WHERE task_id = $1", &[&task_id])
        .await?;
    Ok(row.and_then(|row| row.get("message")))
}

/// A task's events, oldest first.
pub async fn events(pool: &Pool, task_id: &str) -> Result<Vec<EventView>, StoreError> {
    read(
        pool,
        "SELECT at, kind, detail FROM events WHERE task_id = $1 ORDER BY at, id",
        &[&task_id],
        |row| EventView {
            at: row.get("at"),
            kind: row.get("kind"),
            detail: row.get("detail"),
        },
    )
    .await
}

/// Filters of a task list; `None` = any.
#[derive(Debug, Clone, Default)]
pub struct TaskFilter {
    pub state: Option<String>,
    pub repo: Option<String>,
    pub user: Option<String>,
    pub limit: i64,
}

/// Tasks, most recently updated first.
pub async fn tasks(pool: &Pool, filter: &TaskFilter) -> Result<Vec<TaskView>, StoreError> {
    let sql = format!(
        "SELECT {TASK_COLUMNS} FROM tasks
         WHERE ($1::text IS NULL OR state = $1)
           AND ($2::text IS NULL OR repo_url = $2 OR repo_url LIKE '%/' || $2)
           AND ($3::text IS NULL OR trigger_user = $3)
         ORDER BY updated_at DESC LIMIT $4"
    );
    let limit = filter.limit.clamp(1, 1000);
    let params: [&(dyn ToSql + Sync); 4] = [&filter.state, &filter.repo, &filter.user, &limit];
    read(pool, &sql, &params, task_of).await
}

/// Audit entries at or after `since`, oldest first.
pub async fn audit(
    pool: &Pool,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<AuditView>, StoreError> {
    read(
        pool,
        "SELECT at, kind, task_id, actor, detail FROM audit WHERE at >= $1 ORDER BY at, id LIMIT $2",
        &[&since, &limit.clamp(1, 100_000)],
        audit_of,
    )
    .await
}

fn audit_of(row: &Row) -> AuditView {
    AuditView {
        at: row.get("at"),
        kind: row.get("kind"),
        task_id: row.get("task_id"),
        actor: row.get("actor"),
        detail: row.get("detail"),
    }
}

/// One page of the audit trail for an export: entries at or after `since` with an id above
/// `after_id`, in the order they were written, each with its id (the next page's cursor).
pub async fn audit_page(
    pool: &Pool,
    since: DateTime<Utc>,
    after_id: i64,
    limit: i64,
) -> Result<Vec<(i64, AuditView)>, StoreError> {
    read(
        pool,
        "SELECT id, at, kind, task_id, actor, detail FROM audit
         WHERE at >= $1 AND id > $2 ORDER BY id LIMIT $3",
        &[&since, &after_id, &limit.clamp(1, 10_000)],
        |row| (row.get("id"), audit_of(row)),
    )
    .await
}

/// Runs a read on a pooled connection and maps every row: the shape of every list query.
async fn read<T>(
    pool: &Pool,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
    of: impl Fn(&Row) -> T,
) -> Result<Vec<T>, StoreError> {
    let rows = pool.get().await?.query(sql, params).await?;
    Ok(rows.iter().map(of).collect())
}
