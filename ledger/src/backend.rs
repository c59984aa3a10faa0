//! The two places the ledger can live, behind one type: PostgreSQL (`DATABASE_URL`, the
//! fleet, and `worker standalone` when it is set) and the SQLite file of `worker standalone`
//! (`STANDALONE_DB`). The writer, the operator API and the quotas ask a [`Store`] and never
//! learn which one answers; each call is the PostgreSQL module's own (`store`, `query`,
//! `quota`, `dead`) or the SQLite one's (`sqlite::*`), with the same meaning.

use crate::dead::{self, Claim, DeadLetter, DeadLetterView};
use crate::event::Record;
use crate::query::{self, AuditView, EventView, TaskFilter, TaskView};
use crate::quota::{self, Admission, QuotaLimits};
use crate::sqlite::SqliteLedger;
use crate::store::{self, StoreError};
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::time::Duration;

/// Where the ledger is; cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    Postgres(Pool),
    Sqlite(SqliteLedger),
}

impl Store {
    /// The PostgreSQL pool, when the ledger is there (`ingest audit-export`, tests).
    pub fn pool(&self) -> Option<&Pool> {
        match self {
            Store::Postgres(pool) => Some(pool),
            Store::Sqlite(_) => None,
        }
    }

    /// Writes a batch in one transaction (records written before are skipped).
    pub async fn write(&self, batch: &[Record]) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => store::write(pool, batch).await,
            Store::Sqlite(db) => db.write(batch).await,
        }
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => store::ping(pool).await,
            Store::Sqlite(db) => db.ping().await,
        }
    }

    pub async fn task(&self, task_id: &str) -> Result<Option<TaskView>, StoreError> {
        match self {
            Store::Postgres(pool) => query::task(pool, task_id).await,
            Store::Sqlite(db) => db.task(task_id).await,
        }
    }

    pub async fn message(&self, task_id: &str) -> Result<Option<serde_json::Value>, StoreError> {
        match self {
            Store::Postgres(pool) => query::message(pool, task_id).await,
            Store::Sqlite(db) => db.message(task_id).await,
        }
    }

    pub async fn events(&self, task_id: &str) -> Result<Vec<EventView>, StoreError> {
        match self {
            Store::Postgres(pool) => query::events(pool, task_id).await,
            Store::Sqlite(db) => db.events(task_id).await,
        }
    }

    pub async fn tasks(&self, filter: &TaskFilter) -> Result<Vec<TaskView>, StoreError> {
        match self {
            Store::Postgres(pool) => query::tasks(pool, filter).await,
            Store::Sqlite(db) => db.tasks(filter).await,
        }
    }

    pub async fn audit(
        &self,
        since: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<AuditView>, StoreError> {
        match self {
            Store::Postgres(pool) => query::audit(pool, since, limit).await,
            Store::Sqlite(db) => db.audit(since, limit).await,
        }
    }

    pub async fn keep_dead(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => dead::keep(pool, letter).await,
            Store::Sqlite(db) => db.keep_dead(letter).await,
        }
    }

    pub async fn list_dead(
        &self,
        include_replayed: bool,
        limit: i64,
    ) -> Result<Vec<DeadLetterView>, StoreError> {
        match self {
            Store::Postgres(pool) => dead::list(pool, include_replayed, limit).await,
            Store::Sqlite(db) => db.list_dead(include_replayed, limit).await,
        }
    }

    pub async fn claim_dead(&self, message_id: &str, by: &str) -> Result<Claim, StoreError> {
        match self {
            Store::Postgres(pool) => dead::claim(pool, message_id, by).await,
            Store::Sqlite(db) => db.claim_dead(message_id, by).await,
        }
    }

    pub async fn unclaim_dead(&self, message_id: &str, by: &str) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => dead::unclaim(pool, message_id, by).await,
            Store::Sqlite(db) => db.unclaim_dead(message_id, by).await,
        }
    }

    pub async fn admit(
        &self,
        task_id: &str,
        user: &str,
        repo: &str,
        limits: QuotaLimits,
        lease: Duration,
    ) -> Result<Admission, StoreError> {
        match self {
            Store::Postgres(pool) => quota::admit(pool, task_id, user, repo, limits, lease).await,
            Store::Sqlite(db) => db.admit(task_id, user, repo, limits, lease).await,
        }
    }

    pub async fn renew(&self, task_id: &str, lease: Duration) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => quota::renew(pool, task_id, lease).await,
            Store::Sqlite(db) => db.renew(task_id, lease).await,
        }
    }

    pub async fn release(&self, task_id: &str) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool) => quota::release(pool, task_id).await,
            Store::Sqlite(db) => db.release(task_id).await,
        }
    }
}
