//! The quotas in the SQLite ledger: the same rules as `quota.rs` in PostgreSQL. Where
//! PostgreSQL serializes two admissions with advisory locks, SQLite's `BEGIN IMMEDIATE`
//! does it for the whole file: the count and the insert of one admission are one
//! transaction that no other writer can interleave with.

use super::{SqliteLedger, micros};
use crate::quota::{Admission, Quota, QuotaLimits};
use crate::store::StoreError;
use chrono::{DateTime, Duration as Span, Utc};
use rusqlite::{OptionalExtension, params};
use std::time::Duration;

/// When a lease of `lease` taken at `now` runs out (as the tables keep times).
fn until(now: DateTime<Utc>, lease: Duration) -> i64 {
    Span::from_std(lease)
        .ok()
        .and_then(|span| now.checked_add_signed(span))
        .map_or(i64::MAX, micros)
}

impl SqliteLedger {
    /// Takes a slot for `task_id` when the limits allow (a task holding one keeps it, its
    /// lease renewed).
    pub async fn admit(
        &self,
        task_id: &str,
        user: &str,
        repo: &str,
        limits: QuotaLimits,
        lease: Duration,
    ) -> Result<Admission, StoreError> {
        let (task_id, user, repo) = (task_id.to_owned(), user.to_owned(), repo.to_owned());
        self.with(move |db| {
            let now = Utc::now();
            let lease_until = until(now, lease);
            let day = micros(
                now.date_naive()
                    .and_hms_opt(0, 0, 0)
                    .map(|t| t.and_utc())
                    .unwrap_or(now),
            );
            let tx = db.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let renewed = tx.execute(
                "UPDATE ledger_running SET lease_until = ?2 WHERE task_id = ?1",
                params![task_id, lease_until],
            )?;
            if renewed == 1 {
                tx.commit()?;
                return Ok(Admission::Admitted);
            }
            let admitted_before = tx
                .query_row(
                    "SELECT 1 FROM ledger_admissions WHERE task_id = ?1",
                    params![task_id],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            let checks = [
                (
                    Quota::RunningPerUser,
                    limits.running_per_user,
                    "SELECT count(*) FROM ledger_running WHERE trigger_user = ?1 AND lease_until > ?2",
                    &user,
                    micros(now),
                ),
                (
                    Quota::RunningPerRepo,
                    limits.running_per_repo,
                    "SELECT count(*) FROM ledger_running WHERE repo = ?1 AND lease_until > ?2",
                    &repo,
                    micros(now),
                ),
                (
                    Quota::TasksPerUserPerDay,
                    limits.tasks_per_user_per_day,
                    "SELECT count(*) FROM ledger_admissions WHERE trigger_user = ?1 AND at >= ?2",
                    &user,
                    day,
                ),
            ];
            for (quota, limit, sql, name, since) in checks {
                let Some(limit) = limit else { continue };
                // A task admitted earlier today (then waiting, then back) counts once.
                if quota == Quota::TasksPerUserPerDay && admitted_before {
                    continue;
                }
                let in_use: i64 = tx.query_row(sql, params![name, since], |r| r.get(0))?;
                let in_use = u32::try_from(in_use).unwrap_or(u32::MAX);
                if in_use >= limit {
                    tx.commit()?;
                    return Ok(Admission::Wait {
                        quota,
                        in_use,
                        limit,
                    });
                }
            }
            tx.execute(
                "DELETE FROM ledger_running WHERE task_id = ?1 OR lease_until <= ?2",
                params![task_id, micros(now - Span::days(1))],
            )?;
            tx.execute(
                "INSERT INTO ledger_running (task_id, trigger_user, repo, since, lease_until)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![task_id, user, repo, micros(now), lease_until],
            )?;
            tx.execute(
                "INSERT INTO ledger_admissions (task_id, trigger_user, at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
                params![task_id, user, micros(now)],
            )?;
            tx.commit()?;
            Ok(Admission::Admitted)
        })
        .await
    }

    /// Renews the lease of a running task's slot.
    pub async fn renew(&self, task_id: &str, lease: Duration) -> Result<(), StoreError> {
        let task_id = task_id.to_owned();
        self.with(move |db| {
            db.execute(
                "UPDATE ledger_running SET lease_until = ?2 WHERE task_id = ?1",
                params![task_id, until(Utc::now(), lease)],
            )
            .map(drop)
        })
        .await
    }

    /// Gives the slot back.
    pub async fn release(&self, task_id: &str) -> Result<(), StoreError> {
        let task_id = task_id.to_owned();
        self.with(move |db| {
            db.execute(
                "DELETE FROM ledger_running WHERE task_id = ?1",
                params![task_id],
            )
            .map(drop)
        })
        .await
    }
}
