//! `/cancel` on `worker standalone`'s embedded queue (issue 15), end to end: the real binary
//! with its queue and ledger in its SQLite file (no broker, no DATABASE_URL), the GitHub
//! and LLM stand-ins. A task whose LLM call is held is cancelled, once through the operator
//! API and once by a signed `/cancel` comment: it stops within 5 s (the ledger says
//! `cancelled`, with who), nothing is pushed, its dir is gone, its delivery and the cancel
//! are acked (the file's queues are empty, nothing dead), the status comment has the cancel,
//! the audit the `cancel` with its actor (and, from the API, its task). A task of the issue
//! asked for before the comment's cancel and queued after it is not run, also after a
//! restart (from the status comment).

mod common;
mod standalone_common;

use common::standins::Answer;
use common::world::{REPO, World, body_of, good_answer, status_comments};
use serde_json::{Value, json};
use standalone_common::{LONG, OPERATOR, Standalone, VIEWER, put_on_queue};
use std::path::Path;
use std::time::{Duration, Instant};
use testkit::wait::{poll_until, wait_until};
use testkit::webhook::fixture;

const QUEUE: &str = "sa-cancel-tasks";

/// The world (the LLM holding its answers) and the process on its own file.
async fn started(name: &str) -> (World, Standalone, std::path::PathBuf) {
    let world = World::new(name, 5, &[("edit", vec![Answer::Text(good_answer())])]).await;
    world.llm.state.lock().expect("lock").hold = true;
    let db = world.fleet.root.path().join("standalone.db");
    let process = Standalone::start(&world, &db, QUEUE, &[]).await;
    (world, process, db)
}

/// A labeled issue whose task is running (the LLM asked, the API shows it running).
async fn running(world: &World, process: &Standalone, delivery: &str, number: u64) -> String {
    let id = process.webhook(world, delivery, number).await;
    wait_until("the LLM was asked", LONG, || {
        world.llm.state.lock().expect("lock").held == 1
    })
    .await;
    process
        .task_when(&id, "the API shows the task running, with its issue", |t| {
            t["state"] == "running" && t["issue"]["key"] == format!("{REPO}#{number}")
        })
        .await;
    id
}

/// Waits (at most 5 s from `sent`) for the ledger to show `id` cancelled; returns it.
async fn cancelled_within_5_s(process: &Standalone, id: &str, sent: Instant) -> Value {
    let path = format!("/api/v1/tasks/{id}");
    let left = Duration::from_secs(5).saturating_sub(sent.elapsed());
    let (_, detail) = poll_until(
        "the ledger shows the task cancelled within 5 s",
        left,
        || process.call("GET", &path, Some(VIEWER)),
        |(status, body)| *status == 200 && body["state"] == "cancelled",
    )
    .await;
    println!("standalone cancel: {:?} after it was sent", sent.elapsed());
    detail
}

/// The rows of the file's queues (tasks, cancels), by state.
fn queued(db: &Path) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open(db).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("timeout");
    let mut statement = db
        .prepare("SELECT queue, state FROM messages ORDER BY id")
        .expect("sql");
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

/// What every stopped task leaves: nothing pushed, no PR, no task dir, the file's queues
/// empty once the cancel is recorded, and the one status comment naming the cancel.
async fn assert_stopped_and_recorded(
    world: &World,
    process: &Standalone,
    db: &Path,
    number: u64,
    cancel_id: &str,
) -> String {
    world.llm.state.lock().expect("lock").hold = false;
    wait_until("the cancel was recorded and settled", LONG, || {
        process.logged("cancel recorded") && process.logged("cancel settled")
    })
    .await;
    let branches = world.repos.git_in(
        REPO,
        &["branch", "--list", &format!("agent/github-{number}")],
    );
    assert!(branches.trim().is_empty(), "nothing pushed: {branches}");
    assert!(world.github.pulls().is_empty(), "no pull request");
    let workspace = world.fleet.root.path().join("workspace");
    let left: Vec<_> = std::fs::read_dir(&workspace)
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "the task dir is removed: {left:?}");
    assert!(
        queued(db).is_empty(),
        "acked, nothing dead: {:?}",
        queued(db)
    );
    let status = status_comments(&world.github, number);
    assert_eq!(status.len(), 1, "one status comment: {status:?}");
    let body = body_of(&status[0]).to_owned();
    assert!(body.contains("stopped while it ran"), "{body}");
    assert!(
        body.contains(&format!("<!-- agent-fleet:cancel id={cancel_id} at=")),
        "{body}"
    );
    body
}

/// The audit's `cancel` entry with `cancel_id`.
async fn audited(process: &Standalone, cancel_id: &str) -> Value {
    let find = |audit: &Value| {
        audit["events"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["kind"] == "cancel" && e["detail"]["cancel_id"] == cancel_id)
            .cloned()
    };
    let (_, audit) = poll_until(
        "the audit has the cancel",
        LONG,
        || process.call("GET", "/api/v1/audit", Some(VIEWER)),
        |(_, audit)| find(audit).is_some(),
    )
    .await;
    find(&audit).expect("the cancel entry")
}

#[tokio::test]
async fn the_operator_api_cancels_a_running_task_on_the_embedded_queue() {
    let (world, process, db) = started("sa-cancel-api").await;
    let id = running(&world, &process, "sa-cancel-api-1", 71).await;

    let sent = Instant::now();
    let path = format!("/api/v1/tasks/{id}/cancel");
    assert_eq!(process.call("POST", &path, Some(VIEWER)).await.0, 403);
    let (status, answer) = process.call("POST", &path, Some(OPERATOR)).await;
    assert_eq!(status, 202, "{answer}");
    let cancel_id = answer["cancel_id"].as_str().expect("cancel id").to_owned();
    let detail = cancelled_within_5_s(&process, &id, sent).await;
    assert_eq!(detail["error"], "cancelled by alice", "{detail}");
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds.last(), Some(&"cancelled"), "{kinds:?}");
    process.assert_outcome(&id, "cancelled").await;

    let body = assert_stopped_and_recorded(&world, &process, &db, 71, &cancel_id).await;
    assert!(
        body.contains("agent-fleet: cancelled by the operator `alice` (operator API)."),
        "{body}"
    );
    let entry = audited(&process, &cancel_id).await;
    assert_eq!(entry["actor"], "alice", "{entry}");
    assert_eq!(
        entry["task_id"],
        id.as_str(),
        "the API names the task: {entry}"
    );
    assert_eq!(
        entry["detail"]["issue_key"],
        format!("{REPO}#71"),
        "{entry}"
    );
}

#[tokio::test]
async fn a_cancel_comment_stops_the_running_task_and_the_older_queued_one() {
    let (world, process, db) = started("sa-cancel-comment").await;
    let number = 72;
    let id = running(&world, &process, "sa-cancel-comment-1", number).await;

    let comment = world.github.add_comment(number, "dev2", "/cancel");
    let payload = cancel_comment(number, &comment);
    let sent = Instant::now();
    let (status, answer) = process
        .github("issue_comment", "sa-cancel-comment-dl", &payload)
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["status"], "accepted", "{answer}");
    let cancel_id = answer["cancel_id"].as_str().expect("cancel id").to_owned();
    let detail = cancelled_within_5_s(&process, &id, sent).await;
    assert_eq!(detail["error"], "cancelled by dev2", "{detail}");
    process.assert_outcome(&id, "cancelled").await;

    let body = assert_stopped_and_recorded(&world, &process, &db, number, &cancel_id).await;
    assert!(body.contains("agent-fleet: cancelled by @dev2."), "{body}");
    assert!(
        world
            .github
            .requests()
            .contains(&format!("POST reaction {comment} eyes")),
        "the /cancel comment is acknowledged"
    );
    let entry = audited(&process, &cancel_id).await;
    assert_eq!(entry["actor"], "dev2", "{entry}");

    // A task of the issue asked for before the cancel and queued only now is not run.
    let asked = chrono::Utc::now()
        - chrono::Duration::from_std(sent.elapsed() + Duration::from_secs(1)).expect("span");
    let older = |late: &str| older_task(late, number, asked);
    let late = format!("{id}-late");
    publish(&db, &older(&late));
    process.assert_outcome(&late, "cancelled").await;
    assert!(
        process.logged("the issue was cancelled after this task was asked for; not running it"),
        "skipped"
    );
    // After a restart (no memory of the cancel), the status comment still says it.
    drop(process);
    let process = Standalone::start(&world, &db, QUEUE, &[]).await;
    let later = format!("{id}-after-restart");
    publish(&db, &older(&later));
    process.assert_outcome(&later, "cancelled").await;
    assert!(
        process.logged("skipped: the issue was cancelled after this task was asked for"),
        "skipped from the status comment"
    );
    assert!(world.github.pulls().is_empty(), "no pull request");
}

#[tokio::test]
async fn a_cancel_comment_while_nothing_runs_is_recorded_and_skips_an_older_task_after_a_restart() {
    let (world, process, db) = started("sa-cancel-idle").await;
    let number = 73;
    world
        .github
        .issue_if_unknown(number, "Refunds are not rounded", "Round them.");
    let asked = chrono::Utc::now() - chrono::Duration::seconds(30);
    let comment = world.github.add_comment(number, "dev2", "/cancel");
    let (status, answer) = process
        .github(
            "issue_comment",
            "sa-cancel-idle-dl",
            &cancel_comment(number, &comment),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let cancel_id = answer["cancel_id"].as_str().expect("cancel id").to_owned();
    wait_until("the cancel is on the status comment", LONG, || {
        status_comments(&world.github, number)
            .iter()
            .any(|c| body_of(c).contains("Nothing was running"))
    })
    .await;
    let body = body_of(&status_comments(&world.github, number)[0]).to_owned();
    assert!(body.contains("cancelled by @dev2"), "{body}");
    assert!(
        body.contains(&format!("<!-- agent-fleet:cancel id={cancel_id} at=")),
        "{body}"
    );
    wait_until("the cancel was settled", LONG, || {
        process.logged("cancel settled")
    })
    .await;
    assert!(queued(&db).is_empty(), "acked: {:?}", queued(&db));

    drop(process);
    let process = Standalone::start(&world, &db, QUEUE, &[]).await;
    publish(
        &db,
        &older_task("github:sa-cancel-idle-older", number, asked),
    );
    process
        .assert_outcome("github:sa-cancel-idle-older", "cancelled")
        .await;
    assert!(
        process.logged("skipped: the issue was cancelled after this task was asked for"),
        "skipped from the status comment"
    );
    assert!(world.github.pulls().is_empty(), "no pull request");
}

/// A signed-to-be `/cancel` comment (`comment`, by `dev2`, a collaborator) on issue `number`.
fn cancel_comment(number: u64, comment: &str) -> Value {
    let mut payload = fixture("github/issue_comment/created.payload.json");
    payload["repository"]["html_url"] = json!(format!("https://github.com/{REPO}"));
    payload["repository"]["full_name"] = json!(REPO);
    payload["issue"]["number"] = json!(number);
    payload["issue"]["html_url"] = json!(format!("https://github.com/{REPO}/issues/{number}"));
    payload["issue"]["labels"] = json!([{ "name": "ai-help" }]);
    payload["comment"]["id"] = json!(comment.parse::<u64>().expect("id"));
    payload["comment"]["body"] = json!("/cancel");
    payload["comment"]["user"]["login"] = json!("dev2");
    payload["sender"]["login"] = json!("dev2");
    payload
}

/// A task message `task_id` for issue `number`, asked for at `asked`.
fn older_task(task_id: &str, number: u64, asked: chrono::DateTime<chrono::Utc>) -> Value {
    json!({
        "version": 1, "task_id": task_id, "mode": "quickfix", "source": "github",
        "repo_url": format!("https://github.com/{REPO}"),
        "issue": {"tracker": "github", "key": format!("{REPO}#{number}"), "number": number,
                  "title": "Refunds are not rounded",
                  "url": format!("https://github.com/{REPO}/issues/{number}")},
        "trigger_user": "dev1",
        "trigger": {"event": "issues.labeled", "delivery_id": task_id, "received_at": asked}
    })
}

/// Puts `task` onto the file's task queue, as the ingest would.
fn publish(db: &Path, task: &Value) {
    let id = task["task_id"].as_str().expect("task_id");
    put_on_queue(db, QUEUE, task.to_string().as_bytes(), id);
}
