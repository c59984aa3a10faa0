//! The fleet's quotas, end to end (two worker binaries with `DATABASE_URL`, real PostgreSQL
//! and RabbitMQ, the GitHub and LLM stand-ins): with `MAX_RUNNING_PER_USER=1`, a user's
//! second task waits while the first runs (its status says which limit, it is never
//! failed nor dead-lettered), starts once the first ended, and both finish.

mod common;

use chrono::{DateTime, Utc};
use common::standins::Answer;
use common::world::*;
use std::time::Duration;
use testkit::db::TestDb;
use testkit::wait::{poll_until, wait_until};

/// When the ledger says the task started its work and ended, once it is done.
async fn run_of(pool: &deadpool_postgres::Pool, task_id: &str) -> (DateTime<Utc>, DateTime<Utc>) {
    let row = pool
        .get()
        .await
        .expect("connection")
        .query_one(
            "SELECT started_at, finished_at FROM tasks WHERE task_id = $1",
            &[&task_id],
        )
        .await
        .expect("the task's row");
    (row.get("started_at"), row.get("finished_at"))
}

async fn state_of(pool: &deadpool_postgres::Pool, task_id: &str) -> String {
    fleet_ledger::query::task(pool, task_id)
        .await
        .ok()
        .flatten()
        .map(|t| t.state)
        .unwrap_or_default()
}

#[tokio::test]
async fn a_users_second_task_waits_for_the_first_and_both_finish() {
    let db = TestDb::new("worker_quotas").await;
    let url = db.url();
    let world = World::new(
        "quota-user",
        5,
        &[("edit", vec![Answer::Text(good_answer())])],
    )
    .await;
    let settings = [
        ("DATABASE_URL", url.as_str()),
        ("MAX_RUNNING_PER_USER", "1"),
    ];
    let workers = [world.worker(&settings), world.worker(&settings)];
    for worker in &workers {
        worker.wait_ready().await;
    }
    // The first task stays in its LLM call until the second was seen waiting.
    world.llm.state.lock().expect("lock").hold = true;
    let first = world.task("github:quota-user-1", 81, "dev1");
    world.fleet.publish(&first).await;
    wait_until(
        "the first task asks the LLM",
        Duration::from_secs(60),
        || world.llm.state.lock().expect("lock").held == 1,
    )
    .await;
    let second = world.task("github:quota-user-2", 82, "dev1");
    world.fleet.publish(&second).await;
    let waiting = "Waiting for a quota: @dev1 has 1 of 1 tasks running (MAX_RUNNING_PER_USER)";
    wait_until(
        "the second task's status says it waits",
        Duration::from_secs(60),
        || {
            status_comments(&world.github, 82)
                .first()
                .is_some_and(|s| body_of(s).contains(waiting))
        },
    )
    .await;
    assert_eq!(
        world.llm.state.lock().expect("lock").held,
        1,
        "the waiting task asked nothing"
    );
    world.llm.state.lock().expect("lock").hold = false;

    let pool = fleet_ledger::pool(&url, 2).expect("pool");
    for task in [&first, &second] {
        poll_until(
            "both tasks done in the ledger",
            Duration::from_secs(120),
            || state_of(&pool, &task.task_id),
            |state| state == "done",
        )
        .await;
    }
    let (first_start, first_end) = run_of(&pool, &first.task_id).await;
    let (second_start, second_end) = run_of(&pool, &second.task_id).await;
    assert!(
        first_start < first_end && first_end <= second_start && second_start < second_end,
        "one task of the user at a time: first {first_start}..{first_end}, second {second_start}..{second_end}"
    );
    let events = fleet_ledger::query::events(&pool, &second.task_id)
        .await
        .expect("events");
    assert!(
        events.iter().any(|e| e.kind == "waiting"
            && e.detail["reason"]
                .as_str()
                .is_some_and(|r| r.contains("MAX_RUNNING_PER_USER"))),
        "the wait is in the ledger: {events:?}"
    );
    assert!(
        world.fleet.take_dead().await.is_empty(),
        "nothing dead-lettered"
    );
    let mut waits = 0;
    for worker in &workers {
        let metrics = worker.metrics().await;
        waits += metrics
            .lines()
            .find(|l| {
                l.starts_with("agent_fleet_quota_waits_total{quota=\"MAX_RUNNING_PER_USER\"}")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
    }
    assert!(waits >= 1, "the waits are counted");
    assert_eq!(world.github.pulls().len(), 2, "both tasks opened their PR");
}
