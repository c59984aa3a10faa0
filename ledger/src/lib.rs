//! The task ledger: every task's life (received, queued, started, each phase, each LLM
//! call with tokens and cost, checks, the outcome and the PR, cancels, dead letters) and
//! the append-only audit trail, in PostgreSQL (`DATABASE_URL`), or, for `worker standalone`
//! without it, in the SQLite file of its embedded queue (`STANDALONE_DB`, [`sqlite`]).
//!
//! The rule that shapes it: a ledger outage never fails, delays or loses a task. Writes go
//! through a bounded buffer ([`Ledger`]) that keeps records while the database is away and
//! catches up when it is back; only the quotas ([`quota`]) ask the database synchronously,
//! and their callers decide what an unanswered question means (the worker lets the task
//! run and counts it).
//!
//! # Layout
//! - `event.rs`: what is recorded ([`Event`], [`AuditEntry`]).
//! - `writer.rs`: the buffer, the batch writer, its metrics.
//! - `store.rs`: migrations (`migrations/*.sql`) and the SQL of writing and projecting.
//! - `quota.rs`: quota slots taken atomically under advisory locks.
//! - `query.rs`: what the operator API reads.
//! - `dead.rs`: dead letters taken off the queue, with their `x-death` history, for replay.
//! - `start.rs`: starting it in a service ([`start`]); [`TaskLedger`], a task's handle.
//! - `notify.rs`: signed notifications of finished tasks (`NOTIFY_URL`).
//! - `backend.rs`: [`Store`], the one type the writer, the operator API and the quotas ask,
//!   whichever of the two databases answers.
//! - `sqlite/`: the same ledger in SQLite (`migrations/sqlite/*.sql`): its writes, reads,
//!   quotas (one `BEGIN IMMEDIATE` transaction per admission) and dead letters.

pub mod backend;
pub mod dead;
pub mod event;
pub mod notify;
pub mod query;
pub mod quota;
pub mod sqlite;
mod start;
pub mod store;
mod writer;

pub use backend::Store;
pub use event::{AuditEntry, AuditKind, Event, EventKind, Outcome};
pub use start::{Tally, TaskLedger, start, start_sqlite};
pub use store::StoreError;
pub use writer::{Ledger, LedgerMetrics};

use std::str::FromStr;
use std::time::Duration;

/// `LEDGER_BUFFER` when unset: records kept while the database is away.
pub const DEFAULT_BUFFER: usize = 10_000;

/// A connection pool for `url` (`postgres://user:password@host:port/db`). Connections are
/// made lazily: a database that is down at start-up delays nothing.
pub fn pool(url: &str, max_size: usize) -> Result<deadpool_postgres::Pool, String> {
    let mut config = tokio_postgres::Config::from_str(url)
        .map_err(|e| format!("DATABASE_URL is not a PostgreSQL URL: {e}"))?;
    config.connect_timeout(Duration::from_secs(5));
    config.application_name("agent-fleet");
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tokio_postgres::NoTls,
        deadpool_postgres::ManagerConfig {
            recycling_method: deadpool_postgres::RecyclingMethod::Fast,
        },
    );
    deadpool_postgres::Pool::builder(manager)
        .max_size(max_size.max(1))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| format!("cannot build the PostgreSQL pool: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bad_database_url_is_refused_without_showing_its_password() {
        for url in [
            "postgres://u:pa55word@host:notaport/db",
            "postgres://u:pa55word@host/db?sslmode=sometimes",
            "postgres://u:pa55word@host/db?connect_timeout=x",
        ] {
            let error = super::pool(url, 1).expect_err(url);
            assert!(error.starts_with("DATABASE_URL"), "{error}");
            assert!(!error.contains("pa55word"), "{error}");
        }
    }
}
