//! The task ledger of `worker standalone` in its SQLite file (STANDALONE_DB, no
//! DATABASE_URL), end to end: the real binary on its embedded queue, the GitHub and LLM
//! stand-ins, signed webhooks. Its operator API shows a task that opened a PR with its
//! phases, tokens, cost and PR, and the audit trail its trigger, push and pull request; a
//! valid task that was dead-lettered and a poison message show in the dead letters, and
//! the replay of the valid one runs it to its PR; tokens are checked as in the fleet (401,
//! 403); a restarted process still has it all (it is a file). With DATABASE_URL, the same
//! command keeps its ledger in PostgreSQL and none in the file.

mod common;
mod standalone_common;

use common::standins::Answer;
use common::world::{REPO, World, good_answer};
use serde_json::{Value, json};
use standalone_common::{LONG, OPERATOR, Standalone, VIEWER, letter_in, put_on_queue};
use std::path::Path;
use testkit::wait::poll_until;

const QUEUE: &str = "sa-ledger-tasks";

/// Puts a body no worker can read onto the embedded queue, as a broken publisher would.
fn publish_poison(db: &Path, message_id: &str) {
    put_on_queue(db, QUEUE, b"\xff not a task", message_id);
}

fn kinds_of(entries: &Value, task_id: &str) -> Vec<String> {
    entries["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["task_id"] == task_id)
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn standalone_keeps_its_ledger_in_its_sqlite_file_and_serves_the_operator_api() {
    let world = World::new(
        "sa-ledger",
        5,
        &[(
            "edit",
            vec![
                Answer::Status(503, Some(0)),
                Answer::Status(503, Some(0)),
                Answer::Text(good_answer()),
            ],
        )],
    )
    .await;
    let db = world.fleet.root.path().join("standalone.db");
    let process = Standalone::start(&world, &db, QUEUE, &[]).await;

    // Tokens as in the fleet.
    assert_eq!(process.call("GET", "/api/v1/tasks", None).await.0, 401);
    let wrong = Some("not-a-token-0123456789");
    assert_eq!(process.call("GET", "/api/v1/audit", wrong).await.0, 401);

    // The LLM is down for both deliveries of the first task: a dead letter.
    let dead = process.webhook(&world, "sa-ledger-dead", 81).await;
    let letter = process.dead_letter(&dead).await;
    assert_eq!(letter["reason"], "delivery_limit", "{letter}");
    assert_eq!(letter["task_id"], dead.as_str(), "{letter}");
    let row = process
        .task_when(&dead, "the ledger shows it dead", |t| t["state"] == "dead")
        .await;
    assert_eq!(row["attempts"], 2, "{row}");

    // The next task opens its PR.
    let done = process.webhook(&world, "sa-ledger-done", 82).await;
    let row = process
        .task_when(&done, "the ledger shows it done", |t| {
            t["state"] == "done" && !t["pr_url"].is_null()
        })
        .await;
    let pulls = world.github.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(row["pr_url"], pulls[0]["html_url"], "{row}");
    assert_eq!(row["issue"]["key"], format!("{REPO}#82"), "{row}");
    assert_eq!(row["trigger_user"], "dev1", "{row}");
    assert_eq!(
        (row["attempts"].as_i64(), row["llm_calls"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        row["tokens"],
        json!({ "input": 1200, "output": 80 }),
        "{row}"
    );
    assert!(
        (row["cost_usd"].as_f64().expect("cost") - 0.0048).abs() < 1e-9,
        "{row}"
    );
    let events = row["events"].as_array().expect("events");
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "phase")
        .filter_map(|e| e["phase"].as_str())
        .collect();
    for phase in ["cloned", "context", "pushed", "pr"] {
        assert!(phases.contains(&phase), "{phase} in {phases:?}");
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"received"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"finished"), "{kinds:?}");

    let (status, list) = process.call("GET", "/api/v1/tasks", Some(VIEWER)).await;
    assert_eq!(status, 200, "{list}");
    let listed: Vec<&str> = list["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    assert_eq!(listed, [done.as_str(), dead.as_str()], "newest first");
    let (_, only_dead) = process
        .call("GET", "/api/v1/tasks?state=dead", Some(VIEWER))
        .await;
    assert_eq!(
        only_dead["tasks"].as_array().map(Vec::len),
        Some(1),
        "{only_dead}"
    );

    let (_, audit) = poll_until(
        "the audit has the PR",
        LONG,
        || process.call("GET", "/api/v1/audit", Some(VIEWER)),
        |(_, a)| kinds_of(a, &done).contains(&"pull_request".to_owned()),
    )
    .await;
    let kinds = kinds_of(&audit, &done);
    for kind in ["trigger", "permission", "push", "pull_request"] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
    let trigger = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["task_id"] == done.as_str() && e["kind"] == "trigger")
        .expect("trigger");
    assert_eq!(trigger["actor"], "dev1", "{trigger}");
    assert_eq!(
        trigger["detail"]["delivery_id"], "sa-ledger-done",
        "{trigger}"
    );

    // A poison message is rejected and listed.
    publish_poison(&db, "poison-1");
    let poison = process.dead_letter("poison-1").await;
    assert_eq!(poison["reason"], "rejected", "{poison}");
    assert_eq!(poison["task_id"], Value::Null, "{poison}");

    // The console reads the same ledger.
    let page = process
        .http
        .get(format!(
            "http://127.0.0.1:{}/console/tasks/{done}?token={VIEWER}",
            process.port
        ))
        .send()
        .await
        .expect("console");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains(pulls[0]["html_url"].as_str().expect("url")),
        "{html}"
    );

    // A restart keeps it all: the ledger is in the file.
    drop(process);
    let process = Standalone::start(&world, &db, QUEUE, &[]).await;
    let row = process
        .task_when(&done, "kept", |t| t["state"] == "done")
        .await;
    assert_eq!(row["pr_url"], pulls[0]["html_url"], "{row}");
    assert_eq!(process.dead_letter(&dead).await["reason"], "delivery_limit");
    process.dead_letter("poison-1").await;

    // Replays: a viewer may not, an unknown letter is 404, the dead task runs to its PR.
    let replay = format!("/api/v1/dead-letters/{dead}/replay");
    assert_eq!(process.call("POST", &replay, Some(VIEWER)).await.0, 403);
    let (status, body) = process
        .call(
            "POST",
            "/api/v1/dead-letters/nothing/replay",
            Some(OPERATOR),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = process.call("POST", &replay, Some(OPERATOR)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["task_id"], dead.as_str(), "{body}");
    assert_eq!(
        process.call("POST", &replay, Some(OPERATOR)).await.0,
        409,
        "replayed once"
    );
    let row = process
        .task_when(&dead, "the replayed task is done", |t| {
            t["state"] == "done" && !t["pr_url"].is_null()
        })
        .await;
    assert_eq!(world.github.pulls().len(), 2, "the replay opened its PR");
    assert_eq!(row["issue"]["key"], format!("{REPO}#81"), "{row}");
    let (_, open) = process
        .call("GET", "/api/v1/dead-letters", Some(VIEWER))
        .await;
    assert!(letter_in(&open, &dead).is_none(), "{open}");
    assert!(letter_in(&open, "poison-1").is_some(), "{open}");
    let (_, all) = process
        .call("GET", "/api/v1/dead-letters?all=true", Some(VIEWER))
        .await;
    let replayed = letter_in(&all, &dead).expect("kept after the replay");
    assert_eq!(replayed["replayed_by"], "alice", "{replayed}");
    let (_, audit) = process.call("GET", "/api/v1/audit", Some(VIEWER)).await;
    let entry = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "replay")
        .cloned()
        .expect("the replay is audited");
    assert_eq!(entry["actor"], "alice", "{entry}");
    assert_eq!(entry["task_id"], dead.as_str(), "{entry}");

    // A retry publishes the task again under a new id, recorded in the same ledger.
    let (status, body) = process
        .call(
            "POST",
            &format!("/api/v1/tasks/{done}/retry"),
            Some(OPERATOR),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let retry = body["task_id"].as_str().expect("new id").to_owned();
    // The worker may record the retry's start before the ingest's `received` lands (two
    // writers): the ledger converges, so wait for the row with its issue.
    let row = process
        .task_when(&retry, "the retry is recorded with its issue", |row| {
            row["issue"]["key"] != ""
        })
        .await;
    assert_eq!(row["issue"]["key"], format!("{REPO}#82"), "{row}");
    assert_eq!(
        process
            .call("POST", &format!("/api/v1/tasks/{done}/retry"), Some(VIEWER))
            .await
            .0,
        403
    );
}

/// The tables of the SQLite file whose names start with `ledger_`.
fn ledger_tables(db: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(db).expect("db");
    let mut statement = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'ledger_%'")
        .expect("sql");
    statement
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[tokio::test]
async fn with_database_url_standalone_keeps_its_ledger_in_postgresql() {
    let pg = testkit::db::TestDb::new("standalone_ledger").await;
    let url = pg.url();
    let world = World::new(
        "sa-ledger-pg",
        5,
        &[("edit", vec![Answer::Text(good_answer())])],
    )
    .await;
    let db = world.fleet.root.path().join("standalone.db");
    let process = Standalone::start(&world, &db, QUEUE, &[("DATABASE_URL", url.as_str())]).await;
    let task_id = process.webhook(&world, "sa-ledger-pg", 91).await;
    let pool = fleet_ledger::pool(&url, 2).expect("pool");
    let row = poll_until(
        "PostgreSQL shows the task done",
        LONG,
        || fleet_ledger::query::task(&pool, &task_id),
        |row| matches!(row, Ok(Some(row)) if row.state == "done" && row.pr_url.is_some()),
    )
    .await
    .expect("query")
    .expect("row");
    let served = process
        .task_when(&task_id, "the API shows it", |t| t["state"] == "done")
        .await;
    assert_eq!(served["pr_url"].as_str(), row.pr_url.as_deref(), "{served}");
    assert!(db.exists(), "the embedded queue is in the file");
    assert!(ledger_tables(&db).is_empty(), "{:?}", ledger_tables(&db));
}
