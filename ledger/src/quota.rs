//! The fleet's quotas: `MAX_RUNNING_PER_USER`, `MAX_RUNNING_PER_REPO` and
//! `MAX_TASKS_PER_USER_PER_DAY`, taken atomically. A slot is taken in one transaction that
//! first holds the user's and then the repository's advisory lock (always in that order,
//! so two admissions cannot deadlock), counts, and inserts: two workers admitting two
//! tasks of one user at the same instant are serialized by the lock, never both let in by
//! a read-then-write race.
//!
//! A slot has a lease that its worker renews while the task runs; a killed worker's slot
//! stops counting when its lease runs out, so a crash never blocks a user for good.

use crate::store::StoreError;
use deadpool_postgres::Pool;
use std::time::Duration;

/// The limits; `None` = no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QuotaLimits {
    pub running_per_user: Option<u32>,
    pub running_per_repo: Option<u32>,
    pub tasks_per_user_per_day: Option<u32>,
}

/// Which quota made a task wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    RunningPerUser,
    RunningPerRepo,
    TasksPerUserPerDay,
}

impl Quota {
    /// The label of `agent_fleet_quota_waits_total{quota}` and the setting's name.
    pub fn setting(self) -> &'static str {
        match self {
            Quota::RunningPerUser => "MAX_RUNNING_PER_USER",
            Quota::RunningPerRepo => "MAX_RUNNING_PER_REPO",
            Quota::TasksPerUserPerDay => "MAX_TASKS_PER_USER_PER_DAY",
        }
    }
}

/// The answer to "may this task start now".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    Admitted,
    /// Over `quota`: `in_use` of `limit` are taken.
    Wait {
        quota: Quota,
        in_use: u32,
        limit: u32,
    },
}

impl Admission {
    /// The status comment's words for a waiting task.
    pub fn describe(&self, user: &str, repo: &str) -> Option<String> {
        match self {
            Admission::Admitted => None,
            Admission::Wait {
                quota,
                in_use,
                limit,
            } => Some(match quota {
                Quota::RunningPerUser => format!(
                    "waiting: @{user} has {in_use} of {limit} tasks running ({})",
                    quota.setting()
                ),
                Quota::RunningPerRepo => format!(
                    "waiting: {repo} has {in_use} of {limit} tasks running ({})",
                    quota.setting()
                ),
                Quota::TasksPerUserPerDay => format!(
                    "waiting: @{user} has started {in_use} of {limit} tasks today ({})",
                    quota.setting()
                ),
            }),
        }
    }
}

/// The advisory lock an admission holds for a user (`kind` = `user`) or a repository
/// (`repo`), as text given to `hashtextextended`.
pub fn lock_key(kind: &str, name: &str) -> String {
    format!("agent-fleet:{kind}:{name}")
}

/// Takes a slot for `task_id` when the limits allow. A task that holds a slot already
/// (a redelivery) keeps it, with its lease renewed.
pub async fn admit(
    pool: &Pool,
    task_id: &str,
    user: &str,
    repo: &str,
    limits: QuotaLimits,
    lease: Duration,
) -> Result<Admission, StoreError> {
    let lease_secs = lease.as_secs_f64();
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    for key in [lock_key("user", user), lock_key("repo", repo)] {
        tx.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
        .await?;
    }
    let renewed = tx
        .execute(
            "UPDATE running SET lease_until = now() + make_interval(secs => $2) WHERE task_id = $1",
            &[&task_id, &lease_secs],
        )
        .await?;
    if renewed == 1 {
        tx.commit().await?;
        return Ok(Admission::Admitted);
    }
    let count = |sql: &'static str, name: &str| {
        let tx = &tx;
        let name = name.to_owned();
        async move {
            let row = tx.query_one(sql, &[&name]).await?;
            Ok::<u32, StoreError>(u32::try_from(row.get::<_, i64>(0)).unwrap_or(u32::MAX))
        }
    };
    let checks = [
        (
            Quota::RunningPerUser,
            limits.running_per_user,
            "SELECT count(*) FROM running WHERE trigger_user = $1 AND lease_until > now()",
            user,
        ),
        (
            Quota::RunningPerRepo,
            limits.running_per_repo,
            "SELECT count(*) FROM running WHERE repo = $1 AND lease_until > now()",
            repo,
        ),
        (
            Quota::TasksPerUserPerDay,
            limits.tasks_per_user_per_day,
            "SELECT count(*) FROM admissions WHERE trigger_user = $1 AND at >= date_trunc('day', now())",
            user,
        ),
    ];
    let admitted_before = tx
        .query_opt("SELECT 1 FROM admissions WHERE task_id = $1", &[&task_id])
        .await?
        .is_some();
    for (quota, limit, sql, name) in checks {
        let Some(limit) = limit else { continue };
        // A task admitted earlier today (then waiting, then back) is not counted twice.
        if quota == Quota::TasksPerUserPerDay && admitted_before {
            continue;
        }
        let in_use = count(sql, name).await?;
        if in_use >= limit {
            tx.commit().await?;
            return Ok(Admission::Wait {
                quota,
                in_use,
                limit,
            });
        }
    }
    tx.execute(
        "DELETE FROM running WHERE task_id = $1 OR lease_until <= now() - interval '1 day'",
        &[&task_id],
    )
    .await?;
    tx.execute(
        "INSERT INTO running (task_id, trigger_user, repo, lease_until)
         VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
        &[&task_id, &user, &repo, &lease_secs],
    )
    .await?;
    tx.execute(
        "INSERT INTO admissions (task_id, trigger_user) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&task_id, &user],
    )
    .await?;
    tx.commit().await?;
    Ok(Admission::Admitted)
}

/// Renews the lease of a running task's slot.
pub async fn renew(pool: &Pool, task_id: &str, lease: Duration) -> Result<(), StoreError> {
    pool.get()
        .await?
        .execute(
            "UPDATE running SET lease_until = now() + make_interval(secs => $2) WHERE task_id = $1",
            &[&task_id, &lease.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// Gives the slot back (the task ended, in any way).
pub async fn release(pool: &Pool, task_id: &str) -> Result<(), StoreError> {
    pool.get()
        .await?
        .execute("DELETE FROM running WHERE task_id = $1", &[&task_id])
        .await?;
    Ok(())
}
