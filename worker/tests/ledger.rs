//! The worker's side of the task ledger, end to end (the worker binary with `DATABASE_URL`,
//! real PostgreSQL and RabbitMQ, the GitHub and LLM stand-ins): a QuickFix task leaves in
//! the ledger its start, the phases it went through, its LLM call with tokens and cost, its
//! check, its pull request and its end, and the audit trail says who was allowed, what was
//! pushed and which PR was opened.

mod common;

use common::standins::Answer;
use common::world::*;
use std::time::Duration;
use testkit::db::TestDb;
use testkit::wait::poll_until;

/// 1200 input and 80 output tokens per stand-in answer at 3/15 USD per million: 0.0048 USD.
const PRICES: &str = "test-model=3/15";

const CHECK: &str =
    "checks:\n  - name: cents\n    run: \"! grep -q 'round(amount)' pay/refunds.py\"\n";

#[tokio::test]
async fn a_quickfix_task_leaves_its_life_and_its_audit_in_the_ledger() {
    let db = TestDb::new("worker_ledger").await;
    let world = World::new(
        "ledger-quickfix",
        5,
        &[("edit", vec![Answer::Text(good_answer())])],
    )
    .await;
    world.commit_files(&[(".agent-fleet.yml", CHECK)]);
    let url = db.url();
    let worker = world.worker(&[("DATABASE_URL", url.as_str()), ("LLM_PRICES", PRICES)]);
    worker.wait_ready().await;
    let task = world.task("github:ledger-quickfix", 71, "dev1");
    world.run(&worker, &task, "done").await;
    let pr_url = world.github.pulls()[0]["html_url"]
        .as_str()
        .expect("the PR's URL")
        .to_owned();

    let pool = fleet_ledger::pool(&url, 2).expect("pool");
    let row = poll_until(
        "the ledger shows the task done",
        Duration::from_secs(30),
        || fleet_ledger::query::task(&pool, &task.task_id),
        |row| matches!(row, Ok(Some(row)) if row.state == "done"),
    )
    .await
    .expect("query")
    .expect("row");
    assert_eq!(row.attempts, 1, "{row:?}");
    assert_eq!(row.llm_calls, 1, "{row:?}");
    assert_eq!((row.tokens.input, row.tokens.output), (1200, 80), "{row:?}");
    assert!((row.cost_usd - 0.0048).abs() < 1e-9, "{row:?}");
    assert_eq!(row.pr_url.as_deref(), Some(pr_url.as_str()), "{row:?}");
    let checks = row.checks.as_array().expect("checks");
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0]["name"], "cents", "{checks:?}");
    assert_eq!(checks[0]["result"], "passed", "{checks:?}");

    let events = fleet_ledger::query::events(&pool, &task.task_id)
        .await
        .expect("events");
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds.first(), Some(&"started"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"finished"), "{kinds:?}");
    assert!(kinds.contains(&"pull_request"), "{kinds:?}");
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "phase")
        .filter_map(|e| e.detail["phase"].as_str())
        .collect();
    for phase in ["cloned", "context", "check", "pushed", "pr"] {
        assert!(phases.contains(&phase), "{phase} in {phases:?}");
    }
    let started = &events[0];
    assert_eq!(started.detail["attempt"], 1, "{started:?}");
    assert!(
        started.detail["worker"]
            .as_str()
            .is_some_and(|w| w.ends_with(&format!(":{}", worker.child.id()))),
        "the worker names itself: {started:?}"
    );

    let since = chrono::Utc::now() - chrono::Duration::hours(1);
    let audit = poll_until(
        "the audit has the task's entries",
        Duration::from_secs(30),
        || fleet_ledger::query::audit(&pool, since, 1000),
        |audit| {
            audit
                .as_ref()
                .is_ok_and(|a| a.iter().any(|e| e.kind == "pull_request"))
        },
    )
    .await
    .expect("audit");
    let of_task: Vec<_> = audit
        .iter()
        .filter(|e| e.task_id.as_deref() == Some(task.task_id.as_str()))
        .collect();
    let entry = |kind: &str| {
        of_task
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("an audit {kind} entry in {of_task:?}"))
    };
    let permission = entry("permission");
    assert_eq!(permission.actor.as_deref(), Some("dev1"));
    assert_eq!(permission.detail["allowed"], true, "{permission:?}");
    let push = entry("push");
    assert_eq!(push.detail["branch"], "agent/github-71", "{push:?}");
    assert!(
        push.detail["sha"].as_str().is_some_and(|s| s.len() == 40),
        "{push:?}"
    );
    let pull = entry("pull_request");
    assert_eq!(pull.detail["url"], pr_url.as_str(), "{pull:?}");
    assert!(pull.detail["number"].as_u64().is_some(), "{pull:?}");
    entry("comment");
}

/// The worker's `agent_fleet_ledger_errors_total`.
async fn ledger_errors(worker: &common::WorkerProc) -> u64 {
    worker
        .metrics()
        .await
        .lines()
        .find(|l| l.starts_with("agent_fleet_ledger_errors_total "))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_database_outage_during_a_stream_of_tasks_fails_and_loses_none() {
    let db = TestDb::new("worker_ledger_outage").await;
    let proxy = testkit::CutProxy::start("127.0.0.1:5432", true).await;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/{}", proxy.port, db.name);
    let world = World::new(
        "ledger-outage",
        5,
        &[("edit", vec![Answer::Text(good_answer())])],
    )
    .await;
    let worker = world.worker(&[("DATABASE_URL", via_proxy.as_str())]);
    worker.wait_ready().await;
    let direct = fleet_ledger::pool(&db.url(), 2).expect("pool");
    let first = world.task("github:ledger-outage-0", 100, "dev1");
    world.run(&worker, &first, "done").await;
    poll_until(
        "the first task in the ledger",
        Duration::from_secs(30),
        || fleet_ledger::query::task(&direct, &first.task_id),
        |row| matches!(row, Ok(Some(row)) if row.state == "done"),
    )
    .await
    .expect("query");

    // PostgreSQL away for 20 s while tasks keep coming.
    proxy.set_enabled(false);
    let cut_at = tokio::time::Instant::now();
    let mut during = Vec::new();
    for i in 1..=3 {
        let task = world.task(&format!("github:ledger-outage-{i}"), 100 + i, "dev1");
        world.run(&worker, &task, "done").await;
        during.push(task);
    }
    assert!(
        cut_at.elapsed() < Duration::from_secs(20),
        "the tasks ran during the outage"
    );
    assert!(ledger_errors(&worker).await > 0, "the outage is counted");
    // The outage lasts its 20 s whatever the tasks took.
    tokio::time::sleep_until(cut_at + Duration::from_secs(20)).await;
    proxy.set_enabled(true);

    for task in &during {
        let row = poll_until(
            "the ledger caught up",
            Duration::from_secs(60),
            || fleet_ledger::query::task(&direct, &task.task_id),
            |row| matches!(row, Ok(Some(row)) if row.state == "done" && row.pr_url.is_some()),
        )
        .await
        .expect("query")
        .expect("row");
        assert_eq!(
            (row.attempts, row.llm_calls),
            (1, 1),
            "nothing doubled: {row:?}"
        );
        let events = fleet_ledger::query::events(&direct, &task.task_id)
            .await
            .expect("events");
        let started = events.iter().filter(|e| e.kind == "started").count();
        assert_eq!(started, 1, "each event once: {events:?}");
    }
    assert_eq!(world.github.pulls().len(), 4, "every task opened its PR");
    assert!(
        world.fleet.take_dead().await.is_empty(),
        "nothing dead-lettered"
    );
}
