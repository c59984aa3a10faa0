//! The ledger in a SQLite file: what `worker standalone` keeps in `STANDALONE_DB` next to
//! its embedded queue when no `DATABASE_URL` is set. The same records, projection, audit
//! trail, quotas and dead letters as the PostgreSQL ledger, in tables of its own
//! (`ledger_*`, `migrations/sqlite/*.sql`, recorded in `ledger_migrations`).
//!
//! One connection (WAL, a busy timeout for the queue's connection on the same file), behind
//! a mutex; every call runs on tokio's blocking pool, never on the async runtime's threads.
//! Writes take `BEGIN IMMEDIATE`, so a transaction never has to upgrade a read lock (which
//! SQLite refuses at once instead of waiting).
//!
//! | module | role |
//! |---|---|
//! | [`mod@write`] | a batch of records: events, projection, audit |
//! | [`read`] | what the operator API reads |
//! | [`quota`] | quota slots, one immediate transaction per admission |
//! | [`dead`] | dead letters kept, listed, claimed for a replay |

pub mod dead;
pub mod quota;
pub mod read;
pub mod write;

use crate::store::StoreError;
use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The migrations, in order.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../../migrations/sqlite/0001_init.sql"))];

/// The ledger's SQLite file, shared by its writer and its readers; cheap to clone.
#[derive(Clone)]
pub struct SqliteLedger {
    db: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteLedger").finish_non_exhaustive()
    }
}

impl SqliteLedger {
    /// Opens (or creates) the ledger in `path` and applies its migrations (on the
    /// blocking pool).
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || Self::open_blocking(&path))
            .await
            .map_err(|e| StoreError::Sqlite(e.to_string()))?
    }

    fn open_blocking(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::Sqlite(e.to_string()))?;
        }
        let mut db = Connection::open(path)?;
        db.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA busy_timeout=5000;",
        )?;
        migrate(&mut db)?;
        Ok(Self {
            db: Arc::new(Mutex::new(db)),
        })
    }

    /// Runs `work` on the connection, on the blocking pool.
    pub(crate) async fn with<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || {
            let mut db = db.lock().unwrap_or_else(|p| p.into_inner());
            work(&mut db)
        })
        .await
        .map_err(|e| StoreError::Sqlite(e.to_string()))?
        .map_err(StoreError::from)
    }

    /// Whether the file answers (readiness).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.with(|db| db.query_row("SELECT 1", [], |_| Ok(())))
            .await
    }
}

/// Applies the migrations not yet applied, in one immediate transaction (a second process
/// opening the same file waits for the first).
fn migrate(db: &mut Connection) -> rusqlite::Result<()> {
    let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS ledger_migrations (
             version INTEGER PRIMARY KEY,
             applied_at INTEGER NOT NULL)",
    )?;
    for (version, sql) in MIGRATIONS {
        let applied: bool = tx.query_row(
            "SELECT COUNT(*) > 0 FROM ledger_migrations WHERE version = ?1",
            params![version],
            |r| r.get(0),
        )?;
        if !applied {
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO ledger_migrations (version, applied_at) VALUES (?1, ?2)",
                params![version, micros(Utc::now())],
            )?;
            tracing::info!(version, "ledger (SQLite) migration applied");
        }
    }
    tx.commit()
}

/// A time as the tables keep it.
pub(crate) fn micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// A time the tables kept.
pub(crate) fn time(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

/// JSON the tables kept as text (what cannot be read shows as `null`).
pub(crate) fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests;
