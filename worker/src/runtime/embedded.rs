//! The embedded durable queue of `worker standalone` (SQLite, one file): the same semantics
//! as the quorum queue the fleet uses — a message is leased to one task at a time, acked
//! (deleted), requeued (its delivery count goes up) or rejected; past `TASK_DELIVERY_LIMIT`
//! redeliveries, or on reject, it is kept as a dead letter. Leases of a process that died are
//! returned to the queue (counted as a redelivery) when the queue is opened again.
//!
//! Order: oldest first, where a requeued message goes to the back (a message that keeps
//! failing does not hold up the others). One process owns a database file at a time
//! (opening it recovers every lease).
//!
//! Delayed retries (rate limits, a locked issue) go back to ready with a not-before time
//! and are not leased before it; they do not count as deliveries. The issue locks of the
//! fleet are in-process here (one process is the whole fleet).
//!
//! The task ledger of `worker standalone` without `DATABASE_URL` lives in the same file, in
//! tables of its own (`fleet_ledger::sqlite`), on a connection of its own: the queue only
//! carries it to whoever records and reads ([`EmbeddedQueue::ledger`]). The operator API
//! takes the dead letters from here into that ledger and replays them back onto this queue
//! ([`DeadLetterQueue`]).
//!
//! `/cancel` (a comment, or the operator API) has no fanout exchange here: the ingest's
//! control message goes into this file's `<queue>.cancels` ([`EmbeddedQueue::cancels`],
//! durable like the fleet's), where this process' runtime takes it as the fleet's durable
//! consumer does (`runtime::control::consume_embedded`).

use fleet_ledger::dead::DeadLetter as KeptLetter;
use fleet_ledger::sqlite::SqliteLedger;
use ingest::api::dead_letters::{DeadLetterQueue, QueueFuture};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use shared::TaskMessage;
use shared::amqp::PublishError;
use shared::control::ControlMessage;
use shared::queue::{PublishFuture, Settle, TaskSink, WaitState};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct EmbeddedQueue {
    db: Arc<Mutex<Connection>>,
    queue: String,
    delivery_limit: u32,
    notify: Arc<Notify>,
    /// Wakes whoever waits on the cancels' queue ([`EmbeddedQueue::cancels`]).
    cancels_notify: Arc<Notify>,
    /// The ledger in the same file, when the process keeps it here.
    ledger: Option<SqliteLedger>,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue")
            .field("queue", &self.queue)
            .finish()
    }
}

/// A message leased to this process.
#[derive(Debug)]
pub struct Lease {
    queue: EmbeddedQueue,
    id: i64,
    pub body: Vec<u8>,
    pub message_id: String,
    /// Earlier deliveries that did not complete (like `x-delivery-count`).
    pub delivery_count: u32,
    /// Its delayed retries so far (`attempts` stays 0: waits never reset the count here).
    pub wait: WaitState,
}

/// What the queue holds, for metrics and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Depth {
    pub ready: u64,
    pub leased: u64,
    pub dead: u64,
}

/// A dead-lettered message.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub body: Vec<u8>,
    pub reason: String,
    pub delivery_count: u32,
}

/// The back of the queue: a strictly increasing position (one process owns the file, and
/// every statement runs under its lock).
const NEXT_POSITION: &str = "(SELECT COALESCE(MAX(position), 0) + 1 FROM messages)";

/// Returns a lease to the queue as a redelivery: counted, and dead-lettered once past the
/// delivery limit (`?2`); `?3` is the time. The caller adds which rows (`?1`).
const RETURN_LEASE: &str = "UPDATE messages SET
    position = (SELECT COALESCE(MAX(position), 0) + 1 FROM messages),
    delivery_count = delivery_count + 1,
    state = CASE WHEN delivery_count + 1 > ?2 THEN 'dead' ELSE 'ready' END,
    death_reason = CASE WHEN delivery_count + 1 > ?2 THEN 'delivery_limit' ELSE NULL END,
    updated_at = ?3";

fn now() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl EmbeddedQueue {
    /// Opens (or creates) the database and returns every lease a dead process left.
    pub fn open(path: &Path, queue: &str, delivery_limit: u32) -> anyhow::Result<Self> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS messages(
                 id INTEGER PRIMARY KEY AUTOINCREMENT,
                 queue TEXT NOT NULL,
                 body BLOB NOT NULL,
                 message_id TEXT NOT NULL DEFAULT '',
                 delivery_count INTEGER NOT NULL DEFAULT 0,
                 state TEXT NOT NULL CHECK (state IN ('ready', 'leased', 'dead')),
                 death_reason TEXT,
                 enqueued_at INTEGER NOT NULL,
                 updated_at INTEGER NOT NULL,
                 position INTEGER NOT NULL DEFAULT 0);
             CREATE INDEX IF NOT EXISTS messages_by_position ON messages(queue, state, position);",
        )?;
        // Columns of delayed retries, added to databases made before them.
        for (column, kind) in [
            ("not_before", "INTEGER NOT NULL DEFAULT 0"),
            ("waits", "INTEGER NOT NULL DEFAULT 0"),
            ("waited_ms", "INTEGER NOT NULL DEFAULT 0"),
        ] {
            let present: bool = db.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('messages') WHERE name = ?1",
                params![column],
                |r| r.get(0),
            )?;
            if !present {
                db.execute_batch(&format!("ALTER TABLE messages ADD COLUMN {column} {kind}"))?;
            }
        }
        let recovered = db.execute(
            &format!("{RETURN_LEASE} WHERE queue IN (?1, ?1 || '.cancels') AND state = 'leased'"),
            params![queue, delivery_limit, now()],
        )?;
        if recovered > 0 {
            tracing::info!(
                recovered,
                "returned leases of a stopped process to the embedded queue"
            );
        }
        Ok(Self {
            db: Arc::new(Mutex::new(db)),
            queue: queue.to_owned(),
            delivery_limit,
            notify: Arc::new(Notify::new()),
            cancels_notify: Arc::new(Notify::new()),
            ledger: None,
        })
    }

    /// `<queue>.cancels` in the same file: the control messages (`/cancel`) published here.
    pub fn cancels(&self) -> Self {
        Self {
            db: self.db.clone(),
            queue: format!("{}.cancels", self.queue),
            delivery_limit: self.delivery_limit,
            notify: self.cancels_notify.clone(),
            cancels_notify: self.cancels_notify.clone(),
            ledger: None,
        }
    }

    /// The queue carrying `ledger` (the ledger in the same file) to the worker and the API.
    pub fn with_ledger(mut self, ledger: SqliteLedger) -> Self {
        self.ledger = Some(ledger);
        self
    }

    /// The ledger in the same file, if this process keeps one there.
    pub fn ledger(&self) -> Option<&SqliteLedger> {
        self.ledger.as_ref()
    }

    async fn with_db<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection, &str, u32) -> rusqlite::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let (db, queue, limit) = (self.db.clone(), self.queue.clone(), self.delivery_limit);
        let result = tokio::task::spawn_blocking(move || {
            let db = db.lock().unwrap_or_else(|p| p.into_inner());
            work(&db, &queue, limit)
        })
        .await?;
        Ok(result?)
    }

    /// Durably enqueues a message (committed before this returns).
    pub async fn publish(&self, body: Vec<u8>, message_id: String) -> anyhow::Result<()> {
        self.with_db(move |db, queue, _| {
            let t = now();
            db.execute(
                &format!("INSERT INTO messages(queue, body, message_id, state, enqueued_at, updated_at, position) VALUES (?1, ?2, ?3, 'ready', ?4, ?4, {NEXT_POSITION})"),
                params![queue, body, message_id, t],
            )
        })
        .await?;
        self.notify.notify_one();
        Ok(())
    }

    /// Leases the oldest ready message that is due, if any.
    pub async fn lease(&self) -> anyhow::Result<Option<Lease>> {
        let row = self
            .with_db(|db, queue, _| {
                db.query_row(
                    "UPDATE messages SET state = 'leased', updated_at = ?2
                     WHERE id = (SELECT id FROM messages WHERE queue = ?1 AND state = 'ready' AND not_before <= ?2 ORDER BY position LIMIT 1)
                     RETURNING id, body, message_id, delivery_count, waits, waited_ms, not_before",
                    params![queue, now()],
                    |r| {
                        let wait = WaitState {
                            waits: r.get(4)?,
                            waited_ms: r.get(5)?,
                            not_before_ms: r.get(6)?,
                            attempts: 0,
                        };
                        Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?, r.get::<_, String>(2)?, r.get::<_, u32>(3)?, wait))
                    },
                )
                .optional()
            })
            .await?;
        Ok(
            row.map(|(id, body, message_id, delivery_count, wait)| Lease {
                queue: self.clone(),
                id,
                body,
                message_id,
                delivery_count,
                wait,
            }),
        )
    }

    /// Resolves when a message may be ready (a publish here, or a periodic look).
    pub async fn wait(&self) {
        tokio::select! {
            () = self.notify.notified() => {}
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }

    pub async fn depth(&self) -> anyhow::Result<Depth> {
        self.with_db(|db, queue, _| {
            let count = |state: &str| -> rusqlite::Result<u64> {
                db.query_row(
                    "SELECT COUNT(*) FROM messages WHERE queue = ?1 AND state = ?2",
                    params![queue, state],
                    |r| r.get(0),
                )
            };
            Ok(Depth {
                ready: count("ready")?,
                leased: count("leased")?,
                dead: count("dead")?,
            })
        })
        .await
    }

    pub async fn dead_letters(&self) -> anyhow::Result<Vec<DeadLetter>> {
        self.with_db(|db, queue, _| {
            let mut statement = db.prepare(
                "SELECT body, COALESCE(death_reason, ''), delivery_count FROM messages WHERE queue = ?1 AND state = 'dead' ORDER BY id",
            )?;
            let rows = statement.query_map(params![queue], |r| {
                Ok(DeadLetter { body: r.get(0)?, reason: r.get(1)?, delivery_count: r.get(2)? })
            })?;
            rows.collect()
        })
        .await
    }
}

impl Lease {
    /// Settles the lease; `false` when it was no longer leased (already settled).
    pub async fn settle(&self, settle: Settle) -> anyhow::Result<bool> {
        let id = self.id;
        let changed = self
            .queue
            .with_db(move |db, _, limit| {
                let t = now();
                match settle {
                    Settle::Ack => db.execute("DELETE FROM messages WHERE id = ?1 AND state = 'leased'", params![id]),
                    Settle::Reject => db.execute(
                        "UPDATE messages SET state = 'dead', death_reason = 'rejected', updated_at = ?2 WHERE id = ?1 AND state = 'leased'",
                        params![id, t],
                    ),
                    Settle::Requeue => db.execute(
                        &format!("{RETURN_LEASE} WHERE id = ?1 AND state = 'leased'"),
                        params![id, limit, t],
                    ),
                    // Back to ready, not before its time, uncounted, at the back.
                    Settle::Delay(wait) => db.execute(
                        &format!("UPDATE messages SET state = 'ready', not_before = ?2, waits = ?3, waited_ms = ?4,
                             position = {NEXT_POSITION}, updated_at = ?5 WHERE id = ?1 AND state = 'leased'"),
                        params![id, wait.not_before_ms, wait.waits, i64::try_from(wait.waited_ms).unwrap_or(i64::MAX), t],
                    ),
                }
            })
            .await?;
        if matches!(settle, Settle::Requeue | Settle::Delay(_)) {
            self.queue.notify.notify_one();
        }
        Ok(changed == 1)
    }
}

/// A dead letter of this queue as the ledger keeps it: the same id, task id and digest
/// rules as one off RabbitMQ's `<queue>.dead` (`ingest::api::dead_letters::dead_letter`), and
/// an `x-death`-like history entry for this death.
fn kept_letter(
    queue: &str,
    body: &[u8],
    message_id: &str,
    reason: String,
    delivery_count: u32,
    died_at_ms: i64,
) -> KeptLetter {
    let mut letter = ingest::api::dead_letters::dead_letter(body, Some(message_id), None);
    let died_at = chrono::DateTime::from_timestamp_millis(died_at_ms);
    letter.history = json!([{
        "reason": reason,
        "queue": queue,
        "count": 1,
        "delivery_count": delivery_count,
        "time": died_at.map(|t| t.timestamp()),
    }]);
    letter.reason = reason;
    letter.count = 1;
    letter.first_death_at = died_at;
    letter
}

impl DeadLetterQueue for EmbeddedQueue {
    fn dead(&self, max: usize) -> QueueFuture<'_, Vec<(i64, KeptLetter)>> {
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        Box::pin(async move {
            self.with_db(move |db, queue, _| {
                let mut statement = db.prepare(
                    "SELECT id, body, message_id, COALESCE(death_reason, 'unknown'), delivery_count, updated_at
                     FROM messages WHERE queue = ?1 AND state = 'dead' ORDER BY id LIMIT ?2",
                )?;
                let rows = statement.query_map(params![queue, max], |r| {
                    let body: Vec<u8> = r.get(1)?;
                    let message_id: String = r.get(2)?;
                    let letter =
                        kept_letter(queue, &body, &message_id, r.get(3)?, r.get(4)?, r.get(5)?);
                    Ok((r.get::<_, i64>(0)?, letter))
                })?;
                rows.collect()
            })
            .await
            .map_err(|e| e.to_string())
        })
    }

    fn remove(&self, handle: i64) -> QueueFuture<'_, ()> {
        Box::pin(async move {
            self.with_db(move |db, _, _| {
                db.execute(
                    "DELETE FROM messages WHERE id = ?1 AND state = 'dead'",
                    params![handle],
                )
            })
            .await
            .map(drop)
            .map_err(|e| e.to_string())
        })
    }

    fn republish<'a>(&'a self, body: &'a [u8], message_id: &'a str) -> QueueFuture<'a, ()> {
        Box::pin(async move {
            self.publish(body.to_vec(), message_id.to_owned())
                .await
                .map_err(|e| e.to_string())
        })
    }
}

impl TaskSink for EmbeddedQueue {
    fn publish<'a>(&'a self, task: &'a TaskMessage) -> PublishFuture<'a> {
        Box::pin(async move {
            EmbeddedQueue::publish(self, task.to_json(), task.task_id.clone())
                .await
                .map_err(|e| PublishError::Queue(e.to_string()))
        })
    }

    /// Into `<queue>.cancels`, durably: this process' runtime stops the task and records
    /// the cancel from there (there is no other worker to tell).
    fn publish_control<'a>(&'a self, message: &'a ControlMessage) -> PublishFuture<'a> {
        Box::pin(async move {
            let cancels = self.cancels();
            EmbeddedQueue::publish(&cancels, message.to_json(), message.cancel_id.clone())
                .await
                .map_err(|e| PublishError::Queue(e.to_string()))
        })
    }

    fn is_ready(&self) -> bool {
        true
    }
}

#[cfg(test)]
#[path = "embedded_tests.rs"]
mod tests;
