//! Dead letters in the ledger: a message taken off `<queue>.dead` is kept here with its
//! body and its whole `x-death` history, so that the operator API can list it, replay it
//! onto the task queue, and still show what happened to it after the replay.

use crate::store::StoreError;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use serde::Serialize;

/// A dead letter as it came off the queue.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub message_id: String,
    /// The task id, when the body was a readable task message.
    pub task_id: Option<String>,
    pub body: Vec<u8>,
    /// Why it died (`x-death[0].reason`: `rejected`, `delivery_limit`, `expired`, ...).
    pub reason: String,
    /// How many times it died (`x-death[0].count`).
    pub count: i64,
    pub first_death_at: Option<DateTime<Utc>>,
    /// This death's `x-death` entries, as JSON.
    pub history: serde_json::Value,
}

/// A dead letter as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetterView {
    pub message_id: String,
    pub task_id: Option<String>,
    pub reason: String,
    pub count: i64,
    pub first_death_at: Option<DateTime<Utc>>,
    pub taken_at: DateTime<Utc>,
    pub replayed_at: Option<DateTime<Utc>>,
    pub replayed_by: Option<String>,
    pub history: serde_json::Value,
}

/// Keeps `letter` (committed before the caller acks it off the queue). The same message
/// dying again after a replay is open again, its history appended; the same death seen
/// twice (its ack was lost, so the broker gave it again) changes nothing.
pub async fn keep(pool: &Pool, letter: &DeadLetter) -> Result<(), StoreError> {
    pool.get()
        .await?
        .execute(
            "INSERT INTO dead_letters
                 (message_id, task_id, body, reason, count, first_death_at, history, last_death)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (message_id) DO UPDATE SET
                 task_id = COALESCE(EXCLUDED.task_id, dead_letters.task_id),
                 body = EXCLUDED.body, reason = EXCLUDED.reason, count = EXCLUDED.count,
                 first_death_at = COALESCE(dead_letters.first_death_at, EXCLUDED.first_death_at),
                 history = dead_letters.history || EXCLUDED.history,
                 last_death = EXCLUDED.last_death,
                 taken_at = now(), replayed_at = NULL, replayed_by = NULL
             WHERE dead_letters.last_death IS DISTINCT FROM EXCLUDED.last_death",
            &[
                &letter.message_id,
                &letter.task_id,
                &letter.body,
                &letter.reason,
                &letter.count,
                &letter.first_death_at,
                &letter.history,
            ],
        )
        .await?;
    Ok(())
}

const COLUMNS: &str = "message_id, task_id, reason, count, first_death_at, taken_at, replayed_at, replayed_by, history";

fn view_of(row: &tokio_postgres::Row) -> DeadLetterView {
    DeadLetterView {
        message_id: row.get("message_id"),
        task_id: row.get("task_id"),
        reason: row.get("reason"),
        count: row.get("count"),
        first_death_at: row.get("first_death_at"),
        taken_at: row.get("taken_at"),
        replayed_at: row.get("replayed_at"),
        replayed_by: row.get("replayed_by"),
        history: row.get("history"),
    }
}

/// The dead letters not replayed yet (`include_replayed`: all), newest first.
pub async fn list(
    pool: &Pool,
    include_replayed: bool,
    limit: i64,
) -> Result<Vec<DeadLetterView>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE ($1 OR replayed_at IS NULL)
         ORDER BY taken_at DESC LIMIT $2"
    );
    let rows = pool
        .get()
        .await?
        .query(&sql, &[&include_replayed, &limit.clamp(1, 1000)])
        .await?;
    Ok(rows.iter().map(view_of).collect())
}

/// What claiming a dead letter for a replay found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// Claimed by this caller (marked replayed): its view and body, to publish now.
    Claimed(Box<DeadLetterView>, Vec<u8>),
    /// Replayed already (or being replayed by someone else right now).
    Taken(Box<DeadLetterView>),
    Missing,
}

/// Claims a dead letter for a replay in one statement, before it is published: of two
/// operators (or two clicks) at once, exactly one gets [`Claim::Claimed`]. A publish that
/// then fails gives the claim back with [`unclaim`].
pub async fn claim(pool: &Pool, message_id: &str, by: &str) -> Result<Claim, StoreError> {
    let client = pool.get().await?;
    let sql = format!(
        "UPDATE dead_letters SET replayed_at = now(), replayed_by = $2
         WHERE message_id = $1 AND replayed_at IS NULL RETURNING {COLUMNS}, body"
    );
    if let Some(row) = client.query_opt(&sql, &[&message_id, &by]).await? {
        return Ok(Claim::Claimed(Box::new(view_of(&row)), row.get("body")));
    }
    let sql = format!("SELECT {COLUMNS} FROM dead_letters WHERE message_id = $1");
    Ok(match client.query_opt(&sql, &[&message_id]).await? {
        Some(row) => Claim::Taken(Box::new(view_of(&row))),
        None => Claim::Missing,
    })
}

/// Gives back a claim whose publish failed: the letter is open again.
pub async fn unclaim(pool: &Pool, message_id: &str, by: &str) -> Result<(), StoreError> {
    pool.get()
        .await?
        .execute(
            "UPDATE dead_letters SET replayed_at = NULL, replayed_by = NULL
             WHERE message_id = $1 AND replayed_by = $2",
            &[&message_id, &by],
        )
        .await?;
    Ok(())
}
