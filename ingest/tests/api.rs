//! The operator API against the real ingest, the real broker and the real PostgreSQL (a
//! database per test): a signed webhook's task shows in the list and its detail with the
//! audit entry of its trigger; a retry publishes the same task under a new id; a cancel
//! reaches `<queue>.cancels`; a rejected task lands in the dead letters with its `x-death`
//! history and its replay puts it back on the queue; and every refusal is the right one
//! (401 without a token, 403 for a viewer's write, 404 for an unknown task, 400 naming the
//! field).

mod common;

use common::{QueueView, TestApp};
use serde_json::{Value, json};
use shared::TaskMessage;
use shared::control::ControlMessage;
use std::time::Duration;
use testkit::db::TestDb;
use testkit::wait::poll_until;

const VIEWER: &str = "viewer-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";

struct Harness {
    app: TestApp,
    view: QueueView,
    _db: TestDb,
}

impl Harness {
    async fn start() -> Self {
        let db = TestDb::new("ingest_api").await;
        let tokens = format!("grafana:viewer:{VIEWER},alice:operator:{OPERATOR}");
        let app = TestApp::ready(&[("DATABASE_URL", &db.url()), ("API_TOKENS", &tokens)]).await;
        let view = QueueView::connect(&app.queue).await;
        Self { app, view, _db: db }
    }

    async fn call(&self, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
        let url = self.app.url(path);
        let request = match method {
            "POST" => self.app.http.post(url),
            _ => self.app.http.get(url),
        };
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Sends a labeled issue and returns its task as published.
    async fn labeled_task(&self) -> TaskMessage {
        let delivery = uuid::Uuid::new_v4().to_string();
        let body = testkit::webhook::github_labeled("ai-help").to_string();
        let response = self.app.github("issues", &delivery, body.as_bytes()).await;
        assert_eq!(response.status().as_u16(), 202);
        let mut messages = self.view.drain().await;
        assert_eq!(messages.len(), 1);
        TaskMessage::from_slice(&messages.remove(0).data).expect("task")
    }

    /// Waits until the ledger shows the task (its writes are buffered).
    async fn shown(&self, task_id: &str) -> Value {
        let path = format!("/api/v1/tasks/{task_id}");
        let (_, body) = poll_until(
            "the ledger shows the task",
            Duration::from_secs(20),
            || self.call("GET", &path, Some(VIEWER)),
            |(status, body)| {
                *status == 200 && body["events"].as_array().is_some_and(|e| e.len() >= 2)
            },
        )
        .await;
        body
    }
}

#[tokio::test]
async fn a_webhooks_task_is_listed_with_its_events_and_its_trigger_is_audited() {
    let h = Harness::start().await;
    let task = h.labeled_task().await;
    let detail = h.shown(&task.task_id).await;
    assert_eq!(detail["mode"], "quickfix");
    assert_eq!(detail["state"], "queued");
    assert_eq!(detail["issue"]["key"], task.issue.key);
    assert_eq!(detail["trigger_user"], task.trigger_user);
    let kinds: Vec<&str> = detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["received", "published"]);

    let (status, list) = h
        .call("GET", "/api/v1/tasks?state=queued", Some(VIEWER))
        .await;
    assert_eq!(status, 200);
    assert_eq!(list["tasks"][0]["task_id"], task.task_id);
    let (_, none) = h
        .call("GET", "/api/v1/tasks?state=done", Some(VIEWER))
        .await;
    assert_eq!(none["tasks"], json!([]));

    let (status, audit) = h.call("GET", "/api/v1/audit", Some(VIEWER)).await;
    assert_eq!(status, 200);
    let trigger = &audit["events"][0];
    assert_eq!(trigger["kind"], "trigger");
    assert_eq!(trigger["task_id"], task.task_id);
    assert_eq!(trigger["actor"], task.trigger_user);
    assert_eq!(trigger["detail"]["event"], "issues.labeled");
    h.app.shutdown().await;
}

#[tokio::test]
async fn retry_publishes_the_task_again_and_cancel_reaches_every_worker() {
    let h = Harness::start().await;
    let task = h.labeled_task().await;
    h.shown(&task.task_id).await;

    let path = format!("/api/v1/tasks/{}/retry", task.task_id);
    let (status, answer) = h.call("POST", &path, Some(OPERATOR)).await;
    assert_eq!(status, 202, "{answer}");
    let new_id = answer["task_id"]
        .as_str()
        .expect("a new task id")
        .to_owned();
    assert_ne!(new_id, task.task_id);
    let mut messages = h.view.drain().await;
    assert_eq!(messages.len(), 1);
    let again = TaskMessage::from_slice(&messages.remove(0).data).expect("task");
    assert_eq!(again.task_id, new_id);
    assert_eq!((again.mode, &again.issue), (task.mode, &task.issue));
    assert_eq!(again.trigger.event, "api.retry");
    h.shown(&new_id).await;

    let path = format!("/api/v1/tasks/{}/cancel", task.task_id);
    let (status, answer) = h.call("POST", &path, Some(OPERATOR)).await;
    assert_eq!(status, 202, "{answer}");
    let cancels = h.view.take(&format!("{}.cancels", h.app.queue)).await;
    assert_eq!(cancels.len(), 1);
    let cancel = ControlMessage::from_slice(&cancels[0].data).expect("cancel");
    assert_eq!(cancel.issue_key, task.issue.key);
    assert_eq!(cancel.requested_by, "alice");

    poll_until(
        "retry and cancel are audited",
        Duration::from_secs(20),
        || h.call("GET", "/api/v1/audit", Some(VIEWER)),
        |(_, audit)| {
            let kinds: Vec<&str> = audit["events"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["kind"].as_str())
                .collect();
            kinds.contains(&"retry") && kinds.contains(&"cancel")
        },
    )
    .await;
    h.app.shutdown().await;
}

#[tokio::test]
async fn a_dead_letter_is_listed_with_its_history_and_replayed_onto_the_queue() {
    let h = Harness::start().await;
    let task = h.labeled_task().await;
    // A worker that gives up on it: published again, then rejected without requeue.
    h.view.dead_letter(&task.to_json(), &task.task_id).await;
    let dead_queue = format!("{}.dead", h.app.queue);

    let (status, list) = h.call("GET", "/api/v1/dead-letters", Some(VIEWER)).await;
    assert_eq!(status, 200, "{list}");
    let letter = &list["dead_letters"][0];
    assert_eq!(letter["message_id"], task.task_id);
    assert_eq!(letter["task_id"], task.task_id);
    assert_eq!(letter["reason"], "rejected");
    assert_eq!(letter["count"], 1);
    assert!(letter["first_death_at"].is_string(), "{letter}");
    assert_eq!(h.view.count(&dead_queue).await, 0, "moved into the ledger");

    let path = format!("/api/v1/dead-letters/{}/replay", task.task_id);
    let (status, _) = h.call("POST", &path, Some(VIEWER)).await;
    assert_eq!(status, 403, "a viewer cannot replay");
    // Six replays at once (two operators, double clicks): exactly one goes through.
    let answers =
        futures_util::future::join_all((0..6).map(|_| h.call("POST", &path, Some(OPERATOR)))).await;
    let mut statuses: Vec<u16> = answers.iter().map(|(status, _)| *status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409, 409, 409, 409, 409], "{answers:?}");
    let back = h.view.drain().await;
    assert_eq!(back.len(), 1, "back on the task queue, once");
    assert_eq!(
        TaskMessage::from_slice(&back[0].data)
            .expect("task")
            .task_id,
        task.task_id
    );
    let (status, _) = h.call("POST", &path, Some(OPERATOR)).await;
    assert_eq!(status, 409, "replayed once");
    let (_, open) = h.call("GET", "/api/v1/dead-letters", Some(VIEWER)).await;
    assert_eq!(open["dead_letters"], json!([]));
    let (_, all) = h
        .call("GET", "/api/v1/dead-letters?all=true", Some(VIEWER))
        .await;
    assert_eq!(
        all["dead_letters"][0]["history"][0]["reason"], "rejected",
        "history kept"
    );
    assert_eq!(all["dead_letters"][0]["replayed_by"], "alice");
    h.app.shutdown().await;
}

#[tokio::test]
async fn refusals_are_401_403_404_and_400_naming_the_field() {
    let h = Harness::start().await;
    let task = h.labeled_task().await;
    h.shown(&task.task_id).await;
    let cancel = format!("/api/v1/tasks/{}/cancel", task.task_id);
    for (method, path, token, want) in [
        ("GET", "/api/v1/tasks", None, 401),
        (
            "GET",
            "/api/v1/tasks",
            Some("not-a-token-at-all-really"),
            401,
        ),
        (
            "GET",
            "/api/v1/tasks?token=viewer-token-0123456789",
            None,
            401,
        ),
        ("POST", cancel.as_str(), Some(VIEWER), 403),
        ("GET", "/api/v1/tasks/github:unknown", Some(VIEWER), 404),
        (
            "POST",
            "/api/v1/tasks/github:unknown/retry",
            Some(OPERATOR),
            404,
        ),
        (
            "POST",
            "/api/v1/dead-letters/nope/replay",
            Some(OPERATOR),
            404,
        ),
    ] {
        let (status, body) = h.call(method, path, token).await;
        assert_eq!(status, want, "{method} {path}: {body}");
        if want != 200 {
            assert!(body["error"].is_string(), "{body}");
        }
    }
    for (path, field) in [
        ("/api/v1/tasks?state=exploded", "state"),
        ("/api/v1/tasks?limit=0", "limit"),
        ("/api/v1/tasks?limit=ten", "limit"),
        ("/api/v1/audit?since=yesterday", "since"),
    ] {
        let (status, body) = h.call("GET", path, Some(VIEWER)).await;
        assert_eq!(status, 400, "{path}");
        assert_eq!(body["field"], field, "{path}: {body}");
    }
    h.app.shutdown().await;
}

#[tokio::test]
async fn the_audit_trail_exports_as_json_lines() {
    let h = Harness::start().await;
    let first = h.labeled_task().await;
    let second = h.labeled_task().await;
    h.shown(&second.task_id).await;
    h.shown(&first.task_id).await;
    let export = |since: &str| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ingest"));
        command
            .arg("audit-export")
            .env("DATABASE_URL", h._db.url())
            .env_remove("AMQP_URL");
        if !since.is_empty() {
            command.args(["--since", since]);
        }
        command.output().expect("ingest audit-export runs")
    };
    let output = export("");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<Value> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON entry per line"))
        .collect();
    let ids: Vec<&str> = lines.iter().filter_map(|l| l["task_id"].as_str()).collect();
    assert_eq!(
        ids,
        [first.task_id.as_str(), second.task_id.as_str()],
        "in order"
    );
    assert!(lines.iter().all(|l| l["kind"] == "trigger"));
    let later = export("2999-01-01T00:00:00Z");
    assert!(later.status.success());
    assert!(later.stdout.is_empty(), "nothing after --since");
    let bad = export("yesterday");
    assert_eq!(bad.status.code(), Some(2), "a bad --since is a usage error");
    h.app.shutdown().await;
}
