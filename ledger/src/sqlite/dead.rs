//! Dead letters in the SQLite ledger: the same rules as `dead.rs` in PostgreSQL. A letter
//! is kept with its whole history (the same death seen twice changes nothing; a new death
//! of a replayed letter opens it again, its history appended), listed, and claimed for a
//! replay by exactly one caller.

use super::{SqliteLedger, json, micros, time};
use crate::dead::{Claim, DeadLetter, DeadLetterView};
use crate::store::StoreError;
use chrono::Utc;
use rusqlite::{OptionalExtension, Row, params};
use serde_json::Value;

const COLUMNS: &str = "message_id, task_id, reason, count, first_death_at, taken_at, replayed_at, replayed_by, history";

fn view_of(row: &Row<'_>) -> rusqlite::Result<DeadLetterView> {
    Ok(DeadLetterView {
        message_id: row.get("message_id")?,
        task_id: row.get("task_id")?,
        reason: row.get("reason")?,
        count: row.get("count")?,
        first_death_at: row.get::<_, Option<i64>>("first_death_at")?.map(time),
        taken_at: time(row.get("taken_at")?),
        replayed_at: row.get::<_, Option<i64>>("replayed_at")?.map(time),
        replayed_by: row.get("replayed_by")?,
        history: json(&row.get::<_, String>("history")?),
    })
}

/// `history` with `more` appended (both JSON arrays; anything else counts as one entry).
fn appended(history: Value, more: &Value) -> Value {
    let as_list = |v: Value| match v {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    };
    let mut all = as_list(history);
    all.extend(as_list(more.clone()));
    Value::Array(all)
}

impl SqliteLedger {
    /// Keeps `letter` (committed before the caller takes it off its queue).
    pub async fn keep_dead(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        let letter = letter.clone();
        self.with(move |db| {
            let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let death = letter.history.to_string();
            let now = micros(Utc::now());
            let known: Option<(String, String)> = tx
                .query_row(
                    "SELECT history, last_death FROM ledger_dead_letters WHERE message_id = ?1",
                    params![letter.message_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match known {
                None => {
                    tx.execute(
                        "INSERT INTO ledger_dead_letters (message_id, task_id, body, reason, count,
                             first_death_at, history, last_death, taken_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
                        params![
                            letter.message_id,
                            letter.task_id,
                            letter.body,
                            letter.reason,
                            letter.count,
                            letter.first_death_at.map(micros),
                            death,
                            now
                        ],
                    )?;
                }
                // The same death again (the letter's removal from its queue was lost).
                Some((_, last)) if json(&last) == letter.history => {}
                Some((history, _)) => {
                    let history = appended(json(&history), &letter.history).to_string();
                    tx.execute(
                        "UPDATE ledger_dead_letters SET task_id = COALESCE(?2, task_id),
                             body = ?3, reason = ?4, count = ?5,
                             first_death_at = COALESCE(first_death_at, ?6),
                             history = ?7, last_death = ?8, taken_at = ?9,
                             replayed_at = NULL, replayed_by = NULL
                         WHERE message_id = ?1",
                        params![
                            letter.message_id,
                            letter.task_id,
                            letter.body,
                            letter.reason,
                            letter.count,
                            letter.first_death_at.map(micros),
                            history,
                            death,
                            now
                        ],
                    )?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// The dead letters not replayed yet (`include_replayed`: all), newest first.
    pub async fn list_dead(
        &self,
        include_replayed: bool,
        limit: i64,
    ) -> Result<Vec<DeadLetterView>, StoreError> {
        self.with(move |db| {
            db.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM ledger_dead_letters WHERE (?1 OR replayed_at IS NULL)
                 ORDER BY taken_at DESC, rowid DESC LIMIT ?2"
            ))?
            .query_map(params![include_replayed, limit.clamp(1, 1000)], view_of)?
            .collect()
        })
        .await
    }

    /// Claims a dead letter for a replay in one statement: of two callers at once, exactly
    /// one gets [`Claim::Claimed`].
    pub async fn claim_dead(&self, message_id: &str, by: &str) -> Result<Claim, StoreError> {
        let (message_id, by) = (message_id.to_owned(), by.to_owned());
        self.with(move |db| {
            let claimed = db
                .query_row(
                    &format!(
                        "UPDATE ledger_dead_letters SET replayed_at = ?3, replayed_by = ?2
                         WHERE message_id = ?1 AND replayed_at IS NULL RETURNING {COLUMNS}, body"
                    ),
                    params![message_id, by, micros(Utc::now())],
                    |row| Ok((view_of(row)?, row.get::<_, Vec<u8>>("body")?)),
                )
                .optional()?;
            if let Some((view, body)) = claimed {
                return Ok(Claim::Claimed(Box::new(view), body));
            }
            let known = db
                .query_row(
                    &format!("SELECT {COLUMNS} FROM ledger_dead_letters WHERE message_id = ?1"),
                    params![message_id],
                    view_of,
                )
                .optional()?;
            Ok(match known {
                Some(view) => Claim::Taken(Box::new(view)),
                None => Claim::Missing,
            })
        })
        .await
    }

    /// Gives back a claim whose publish failed: the letter is open again.
    pub async fn unclaim_dead(&self, message_id: &str, by: &str) -> Result<(), StoreError> {
        let (message_id, by) = (message_id.to_owned(), by.to_owned());
        self.with(move |db| {
            db.execute(
                "UPDATE ledger_dead_letters SET replayed_at = NULL, replayed_by = NULL
                 WHERE message_id = ?1 AND replayed_by = ?2",
                params![message_id, by],
            )
            .map(drop)
        })
        .await
    }
}
