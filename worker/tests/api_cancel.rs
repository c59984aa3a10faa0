//! The operator API's cancel and retry end to end (issue 15): the real ingest (in-process,
//! `ingest::Application` through the test kit) and the real `worker` binary on one test
//! database and the test's own queues, the GitHub and LLM stand-ins. A signed `ai-help`
//! webhook starts a task whose LLM call is held; the API lists it `running`; an operator's
//! `POST /api/v1/tasks/{id}/cancel` ends it within 5 s (nothing pushed, the status comment
//! names the token, the ledger says `cancelled`, the audit has the cancel with its actor,
//! the delivery acked and nothing dead-lettered); `POST /retry` of the cancelled task starts
//! a new one that opens its pull request and shows `done` with it.

mod common;

use common::standins::Answer;
use common::world::*;
use common::{BROKER, WorkerProc};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use testkit::TestIngest;
use testkit::db::TestDb;
use testkit::wait::{poll_until, wait_until};
use testkit::webhook::github_labeled;

const OPERATOR: &str = "operator-token-0123456789";
const VIEWER: &str = "viewer-token-0123456789";
/// The operator token's name: the actor of its calls.
const ALICE: &str = "alice";
/// 1200 input and 80 output tokens per stand-in answer at 3/15 USD per million: 0.0048 USD.
const PRICES: &str = "test-model=3/15";
const ISSUE: u64 = 61;
const LONG: Duration = Duration::from_secs(60);

/// The world, with the ingest (webhooks and the API) and a worker on its queue and `db`.
async fn start(db: &TestDb) -> (World, TestIngest, WorkerProc) {
    let world = World::new(
        "api-cancel",
        5,
        &[("edit", vec![Answer::Text(good_answer())])],
    )
    .await;
    let url = db.url();
    let tokens = format!("grafana:viewer:{VIEWER},{ALICE}:operator:{OPERATOR}");
    let ingest = TestIngest::spawn_on(
        &world.fleet.queue,
        BROKER,
        &[
            ("DATABASE_URL", url.as_str()),
            ("API_TOKENS", tokens.as_str()),
        ],
    )
    .await;
    ingest.wait_ready(200).await;
    let worker = world.worker(&[("DATABASE_URL", url.as_str()), ("LLM_PRICES", PRICES)]);
    worker.wait_ready().await;
    (world, ingest, worker)
}

/// GitHub's `issues.labeled` (`ai-help`) by `dev1` on issue [`ISSUE`] of the world's
/// repository, signed; returns the task id the ingest answered with.
async fn label_issue(ingest: &TestIngest) -> String {
    let mut payload = github_labeled("ai-help");
    payload["sender"]["login"] = json!("dev1");
    payload["repository"]["html_url"] = json!(format!("https://github.com/{REPO}"));
    payload["repository"]["full_name"] = json!(REPO);
    payload["issue"]["number"] = json!(ISSUE);
    payload["issue"]["html_url"] = json!(format!("https://github.com/{REPO}/issues/{ISSUE}"));
    payload["issue"]["title"] = json!("Refunds are not rounded");
    payload["issue"]["body"] = json!("Round refund amounts in pay/refunds.py.");
    let body = payload.to_string();
    let response = ingest
        .github("issues", "api-cancel-label-1", body.as_bytes())
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(answer["status"], "accepted", "{answer}");
    answer["task_id"].as_str().expect("a task id").to_owned()
}

/// The task's detail once `done` holds for it (polled up to `within`).
async fn detail_when(
    ingest: &TestIngest,
    id: &str,
    what: &str,
    within: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let path = format!("/api/v1/tasks/{id}");
    let (_, detail) = poll_until(
        what,
        within,
        || ingest.api("GET", &path, Some(VIEWER)),
        |(status, body)| *status == 200 && done(body),
    )
    .await;
    detail
}

/// The rows of `GET /api/v1/tasks?state=<state>`.
async fn listed(ingest: &TestIngest, state: &str) -> Vec<Value> {
    let (status, list) = ingest
        .api("GET", &format!("/api/v1/tasks?state={state}"), Some(VIEWER))
        .await;
    assert_eq!(status, 200, "{list}");
    list["tasks"].as_array().cloned().unwrap_or_default()
}

fn has(rows: &[Value], id: &str) -> bool {
    rows.iter().any(|row| row["task_id"] == id)
}

fn logged(worker: &WorkerProc, message: &str) -> bool {
    worker.log_lines().iter().any(|l| l["message"] == message)
}

fn event_kinds(detail: &Value) -> Vec<String> {
    detail["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn an_operator_cancels_a_running_task_through_the_api_and_retries_it() {
    let db = TestDb::new("worker_api_cancel").await;
    let (world, ingest, worker) = start(&db).await;
    world.llm.state.lock().expect("lock").hold = true;
    let id = label_issue(&ingest).await;
    wait_until("the LLM was asked", LONG, || {
        world.llm.state.lock().expect("lock").held == 1
    })
    .await;
    // Running as the worker said, and with its issue as the ingest said: the two write
    // the ledger on their own (the ingest's first writes into a database not yet migrated
    // fail and are retried), and until the ingest's `received` is there the API answers a
    // cancel 409 ("the ledger does not know the task's issue yet").
    detail_when(
        &ingest,
        &id,
        "the API shows the task running, with its issue",
        Duration::from_secs(30),
        |d| d["state"] == "running" && d["issue"]["key"] == format!("{REPO}#{ISSUE}"),
    )
    .await;
    assert!(
        has(&listed(&ingest, "running").await, &id),
        "listed running"
    );

    // The operator's cancel: the task ends within 5 s, and the ledger says so.
    let sent = Instant::now();
    let cancel_path = format!("/api/v1/tasks/{id}/cancel");
    let (status, answer) = ingest.api("POST", &cancel_path, Some(OPERATOR)).await;
    assert_eq!(status, 202, "{answer}");
    let cancel_id = answer["cancel_id"].as_str().expect("cancel id").to_owned();
    assert_eq!(answer["issue_key"], format!("{REPO}#{ISSUE}"), "{answer}");
    let detail = detail_when(
        &ingest,
        &id,
        "the ledger shows the task cancelled within 5 s",
        Duration::from_secs(5),
        |d| d["state"] == "cancelled",
    )
    .await;
    println!(
        "api cancel: the ledger showed the task cancelled {:?} after the POST",
        sent.elapsed()
    );
    assert_eq!(finished(&worker, &id).await, "cancelled");
    assert_eq!(detail["error"], format!("cancelled by {ALICE}"), "{detail}");
    let kinds = event_kinds(&detail);
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("received"),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"started".to_owned()), "{kinds:?}");
    assert_eq!(
        kinds.last().map(String::as_str),
        Some("cancelled"),
        "{kinds:?}"
    );
    // Nobody listens for the held answer any more.
    world.llm.state.lock().expect("lock").hold = false;

    // The durable copy of the cancel finds the stopped task's report on the issue.
    wait_until("the cancel was recorded", LONG, || {
        logged(
            &worker,
            "the status comment has this cancel (or a newer one) already",
        ) && logged(&worker, "cancel settled")
    })
    .await;
    let status = status_comments(&world.github, ISSUE);
    assert_eq!(status.len(), 1, "one status comment: {status:?}");
    let body = body_of(&status[0]);
    // The token's name, mentioning nobody: a GitHub user `alice` has nothing to do with it.
    assert!(
        body.contains("agent-fleet: cancelled by the operator `alice` (operator API)."),
        "{body}"
    );
    assert!(!body.contains("@alice"), "{body}");
    assert!(body.contains("stopped while it ran"), "{body}");
    assert!(
        body.contains(&format!("<!-- agent-fleet:cancel id={cancel_id} at=")),
        "{body}"
    );
    let branches = world.repos.git_in(
        REPO,
        &["branch", "--list", &format!("agent/github-{ISSUE}")],
    );
    assert!(branches.trim().is_empty(), "nothing pushed: {branches}");
    assert!(world.github.pulls().is_empty(), "no pull request");
    let queue = &world.fleet.queue;
    assert_eq!(world.fleet.ready(queue).await, 0, "the task queue is empty");
    let cancels = format!("{queue}.cancels");
    assert_eq!(world.fleet.ready(&cancels).await, 0, "the cancel was taken");
    assert!(
        world.fleet.take_dead().await.is_empty(),
        "nothing dead-lettered"
    );

    let (_, audit) = poll_until(
        "the audit has the cancel",
        Duration::from_secs(20),
        || ingest.api("GET", "/api/v1/audit", Some(VIEWER)),
        |(_, audit)| {
            audit["events"]
                .as_array()
                .is_some_and(|a| a.iter().any(|e| e["kind"] == "cancel"))
        },
    )
    .await;
    let entry = audit["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["kind"] == "cancel")
        .expect("the cancel entry");
    assert_eq!(entry["actor"], ALICE, "{entry}");
    assert_eq!(entry["detail"]["cancel_id"], cancel_id.as_str(), "{entry}");
    assert_eq!(entry["detail"]["issue_key"], format!("{REPO}#{ISSUE}"));

    // The retry of the cancelled task: a new task, asked for after the cancel, runs to a PR.
    let (status, answer) = ingest
        .api("POST", &format!("/api/v1/tasks/{id}/retry"), Some(OPERATOR))
        .await;
    assert_eq!(status, 202, "{answer}");
    let again = answer["task_id"]
        .as_str()
        .expect("a new task id")
        .to_owned();
    assert_ne!(again, id);
    assert_eq!(answer["retry_of"], id.as_str(), "{answer}");
    assert_eq!(
        finished(&worker, &again).await,
        "done",
        "{}",
        worker.log_text()
    );
    let pulls = world.github.pulls();
    assert_eq!(pulls.len(), 1, "one pull request");
    let pr_url = pulls[0]["html_url"].as_str().expect("the PR's URL");
    world.assert_fix_on(&format!("agent/github-{ISSUE}"));
    let done = detail_when(
        &ingest,
        &again,
        "the API shows the retry done with its PR",
        Duration::from_secs(30),
        |d| d["state"] == "done" && d["pr_url"] == pr_url,
    )
    .await;
    assert_eq!(done["llm_calls"], 1, "{done}");
    assert_eq!(
        done["tokens"],
        json!({"input": 1200, "output": 80}),
        "{done}"
    );
    assert!(
        done["cost_usd"]
            .as_f64()
            .is_some_and(|usd| (usd - 0.0048).abs() < 1e-9),
        "{done}"
    );
    assert!(event_kinds(&done).contains(&"pull_request".to_owned()));
    let rows = listed(&ingest, "done").await;
    assert!(has(&rows, &again), "listed done: {rows:?}");
    assert!(!has(&rows, &id), "the cancelled task stays cancelled");
    assert!(has(&listed(&ingest, "cancelled").await, &id));
    // Both deliveries were acked: when the worker is gone, nothing comes back.
    drop(worker);
    poll_until(
        "the worker's consumers are gone",
        Duration::from_secs(20),
        || world.fleet.consumers(queue),
        |n| *n == 0,
    )
    .await;
    assert_eq!(
        world.fleet.ready(queue).await,
        0,
        "every delivery was acked"
    );
    assert!(
        world.fleet.take_dead().await.is_empty(),
        "nothing dead-lettered"
    );
    ingest.shutdown().await;
}
