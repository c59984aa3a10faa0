//! The agent's pull requests talking back, and the commands that steer a task, through the
//! real ingest and the real broker with GitHub's documented payloads (octokit's examples
//! for `pull_request_review` and `check_suite`, re-pointed at an agent branch): a review
//! becomes one `followup` task, a failed suite a `fixci` task, a mention on the PR a
//! `followup`; forks, other branches, outsiders and the agent's own reviews give nothing;
//! `/retry` asks for the last mode again and `/cancel` becomes a control message on
//! `<queue>.control` (kept in `<queue>.cancels`), on GitHub and on Jira.

mod common;

use common::{AGENT_JIRA, AGENT_LOGIN, QueueView, TestApp, fixture};
use serde_json::{Value, json};
use shared::TaskMessage;
use shared::control::ControlMessage;

fn with(mut payload: Value, pointer: &str, value: Value) -> Value {
    *payload
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    payload
}

/// What a delivery became: a task, a cancel, or the ingest's reason for nothing.
#[derive(Debug)]
enum Published {
    Task(Box<TaskMessage>),
    Cancel(Box<ControlMessage>),
    Ignored(String),
}

impl Published {
    fn task(self) -> TaskMessage {
        match self {
            Published::Task(task) => *task,
            other => panic!("expected a task, got {other:?}"),
        }
    }

    fn ignored(self) -> String {
        match self {
            Published::Ignored(reason) => reason,
            other => panic!("expected nothing, got {other:?}"),
        }
    }
}

struct Harness {
    app: TestApp,
    view: QueueView,
    cancels: String,
}

impl Harness {
    async fn start() -> Self {
        let app = TestApp::ready(&[]).await;
        let view = QueueView::connect(&app.queue).await;
        let cancels = format!("{}.cancels", app.queue);
        Self { app, view, cancels }
    }

    /// Sends `payload` (GitHub `event`, or Jira when `event` is `None`) and reads what
    /// reached the task queue and the cancels queue.
    async fn send(&self, event: Option<&str>, payload: &Value) -> Published {
        let delivery = uuid::Uuid::new_v4().to_string();
        let body = payload.to_string();
        let response = match event {
            Some(event) => self.app.github(event, &delivery, body.as_bytes()).await,
            None => self.app.jira(&delivery, body.as_bytes()).await,
        };
        assert_eq!(response.status().as_u16(), 202);
        let answer: Value = response.json().await.expect("JSON answer");
        let mut tasks = self.view.drain().await;
        let mut cancels = self.view.take(&self.cancels).await;
        match (answer["status"].as_str(), tasks.len(), cancels.len()) {
            (Some("accepted"), 1, 0) => Published::Task(Box::new(
                TaskMessage::from_slice(&tasks.remove(0).data).expect("valid task"),
            )),
            (Some("accepted"), 0, 1) => {
                assert_eq!(answer["control"], "cancel", "{answer}");
                Published::Cancel(Box::new(
                    ControlMessage::from_slice(&cancels.remove(0).data).expect("valid cancel"),
                ))
            }
            (Some("ignored"), 0, 0) => {
                Published::Ignored(answer["reason"].as_str().unwrap_or_default().to_owned())
            }
            other => panic!("unexpected outcome {other:?}: {answer}"),
        }
    }
}

/// GitHub's review example, on the agent's branch for issue 7.
fn agent_review() -> Value {
    let review = fixture("github/pull_request_review/submitted.payload.json");
    with(review, "/pull_request/head/ref", json!("agent/github-7"))
}

/// GitHub's completed suite example, failed, on the agent's branch for issue 7.
fn failed_suite() -> Value {
    let suite = fixture("github/check_suite/completed.payload.json");
    let suite = with(suite, "/check_suite/conclusion", json!("failure"));
    let suite = with(suite, "/check_suite/head_branch", json!("agent/github-7"));
    with(
        suite,
        "/check_suite/pull_requests/0/head/ref",
        json!("agent/github-7"),
    )
}

#[tokio::test]
async fn a_review_on_the_agents_pull_request_is_one_followup_task() {
    let h = Harness::start().await;
    let review = with(
        agent_review(),
        "/review/body",
        json!("Please also cover negative amounts."),
    );
    let task = h.send(Some("pull_request_review"), &review).await.task();
    assert_eq!(task.mode.as_str(), "followup");
    let asked = task.review.as_ref().expect("the review");
    assert_eq!(asked.pull_number, 2);
    assert_eq!(asked.review_id, "237895671");
    assert_eq!(
        task.issue.key, "Codertocat/Hello-World#7",
        "keyed by its issue"
    );
    assert_eq!(task.issue.number, Some(7));
    assert!(!task.issue.pull_request);
    assert_eq!(task.trigger_user, "Codertocat");
    assert_eq!(task.trigger.event, "pull_request_review.submitted");
    assert_eq!(
        task.instruction.as_deref(),
        Some("Please also cover negative amounts.")
    );

    let changes = with(agent_review(), "/review/state", json!("changes_requested"));
    let task = h.send(Some("pull_request_review"), &changes).await.task();
    assert_eq!(task.review.expect("review").review_id, "237895671");
    assert_eq!(task.instruction, None, "a review without a body");

    let mut fork = agent_review();
    fork["pull_request"]["head"]["repo"]["id"] = json!(99);
    let mut deleted_fork = agent_review();
    deleted_fork["pull_request"]["head"]["repo"] = Value::Null;
    for (why, payload) in [
        (
            "not the agent's branch",
            fixture("github/pull_request_review/submitted.payload.json"),
        ),
        ("from a fork", fork),
        ("from a deleted fork", deleted_fork),
        (
            "an approval",
            with(agent_review(), "/review/state", json!("approved")),
        ),
        (
            "by an outsider",
            with(agent_review(), "/review/author_association", json!("NONE")),
        ),
        (
            "by the agent",
            with(agent_review(), "/review/user/login", json!(AGENT_LOGIN)),
        ),
        (
            "sent by the agent",
            with(agent_review(), "/sender/login", json!(AGENT_LOGIN)),
        ),
        (
            "dismissed",
            fixture("github/pull_request_review/dismissed.payload.json"),
        ),
    ] {
        let reason = h
            .send(Some("pull_request_review"), &payload)
            .await
            .ignored();
        assert!(!reason.is_empty(), "{why}");
    }
    h.app.shutdown().await;
}

#[tokio::test]
async fn a_failed_check_suite_on_the_agents_pull_request_is_a_fixci_task() {
    let h = Harness::start().await;
    // CI is an app: no author rules, and the agent's own push may be what it checked.
    let by_agent = with(failed_suite(), "/sender/login", json!(AGENT_LOGIN));
    let task = h.send(Some("check_suite"), &by_agent).await.task();
    assert_eq!(task.mode.as_str(), "fixci");
    let checks = task.checks.expect("the suite");
    assert_eq!(checks.pull_number, 2);
    assert_eq!(checks.head_sha, "ec26c3e57ca3a959ca5aad62de7213c562f8c821");
    assert_eq!(checks.check_suite_id, "118578147");
    assert_eq!(task.issue.key, "Codertocat/Hello-World#7");

    let mut fork = failed_suite();
    fork["check_suite"]["pull_requests"][0]["head"]["repo"]["id"] = json!(99);
    let mut no_pulls = failed_suite();
    no_pulls["check_suite"]["pull_requests"] = json!([]);
    for (why, payload) in [
        (
            "a success ends the loop",
            with(failed_suite(), "/check_suite/conclusion", json!("success")),
        ),
        (
            "not the agent's branch",
            fixture("github/check_suite/completed.payload.json"),
        ),
        ("from a fork", fork),
        ("a branch without a pull request", no_pulls),
        (
            "requested, not completed",
            fixture("github/check_suite/requested.payload.json"),
        ),
    ] {
        let reason = h.send(Some("check_suite"), &payload).await.ignored();
        assert!(!reason.is_empty(), "{why}");
    }
    h.app.shutdown().await;
}

#[tokio::test]
async fn a_mention_on_a_pull_request_is_a_followup_of_that_pull_request() {
    let h = Harness::start().await;
    let mut payload = with(
        fixture("github/issue_comment/created.payload.json"),
        "/comment/body",
        json!("@fleet-agent rename `amount` to `cents`"),
    );
    payload["issue"]["pull_request"] =
        json!({"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"});
    let task = h.send(Some("issue_comment"), &payload).await.task();
    assert_eq!(task.mode.as_str(), "followup");
    assert!(
        task.issue.pull_request,
        "the worker maps the PR to its issue"
    );
    assert_eq!(
        task.instruction.as_deref(),
        Some("@fleet-agent rename `amount` to `cents`")
    );
    assert_eq!(
        task.trigger.comment_id,
        Some(payload["comment"]["id"].to_string())
    );
    // Keyed by the issue the PR's (last, the agent's own) marker names: it shares the
    // issue's lock with the review and check-suite tasks of the same branch.
    let mut marked = payload.clone();
    marked["issue"]["body"] = json!(
        "<!-- agent-fleet:issue key=Codertocat/Hello-World#9 number=9 task=x -->\n\
         <!-- agent-fleet:issue key=Codertocat/Hello-World#7 number=7 task=t -->"
    );
    let task = h.send(Some("issue_comment"), &marked).await.task();
    assert_eq!(task.issue.key, "Codertocat/Hello-World#7");
    assert!(task.issue.pull_request, "the worker still maps the PR");
    let own = with(payload, "/comment/user/login", json!(AGENT_LOGIN));
    h.send(Some("issue_comment"), &own).await.ignored();
    h.app.shutdown().await;
}

#[tokio::test]
async fn retry_and_cancel_on_github() {
    let h = Harness::start().await;
    let comment = fixture("github/issue_comment/created.payload.json");
    let body = |text: &str| with(comment.clone(), "/comment/body", json!(text));

    let task = h.send(Some("issue_comment"), &body("/retry")).await.task();
    assert_eq!(
        task.mode.as_str(),
        "quickfix",
        "DEFAULT_MODE when no plan label"
    );
    let mut planned = body("/retry");
    planned["issue"]["labels"] = json!([{"name": "ai-plan"}]);
    let plan = h.send(Some("issue_comment"), &planned).await.task();
    assert_eq!(
        plan.mode.as_str(),
        "plan",
        "a plan label: never straight to a PR"
    );
    let retry = task.retry.expect("a retry");
    assert_eq!(retry.requested_by, "Codertocat");
    assert_eq!(retry.comment_id, comment["comment"]["id"].to_string());

    let cancel = match h.send(Some("issue_comment"), &body("/cancel")).await {
        Published::Cancel(cancel) => cancel,
        other => panic!("a cancel: {other:?}"),
    };
    let number = comment["issue"]["number"].as_u64().expect("number");
    assert_eq!(cancel.issue_key, format!("Codertocat/Hello-World#{number}"));
    assert_eq!(cancel.requested_by, "Codertocat");
    assert!(cancel.cancel_id.starts_with("github:"));

    // On the agent's pull request, the cancel names the issue the PR's marker points at.
    let mut on_pull = body("/cancel");
    on_pull["issue"]["pull_request"] = json!({"url": "x"});
    on_pull["issue"]["body"] =
        json!("Fixes #7\n<!-- agent-fleet:issue key=Codertocat/Hello-World#7 number=7 task=t -->");
    match h.send(Some("issue_comment"), &on_pull).await {
        Published::Cancel(cancel) => assert_eq!(cancel.issue_key, "Codertocat/Hello-World#7"),
        other => panic!("a cancel: {other:?}"),
    }

    let outsider = with(
        body("/cancel"),
        "/comment/author_association",
        json!("NONE"),
    );
    h.send(Some("issue_comment"), &outsider).await.ignored();
    h.app.shutdown().await;
}

#[tokio::test]
async fn retry_and_cancel_on_jira() {
    let h = Harness::start().await;
    let adf = fixture("jira/comment_created_adf.json");
    let said = |text: &str| {
        with(
            adf.clone(),
            "/comment/body/content",
            json!([{"type": "paragraph", "content": [{"type": "text", "text": text}]}]),
        )
    };
    let task = h.send(None, &said("/retry")).await.task();
    assert!(task.retry.is_some());
    assert_eq!(task.issue.key, "PAY-43");
    match h.send(None, &said("/cancel")).await {
        Published::Cancel(cancel) => {
            assert_eq!(cancel.issue_key, "PAY-43");
            assert_eq!(cancel.source.as_str(), "jira");
            assert!(cancel.cancel_id.starts_with("jira:"));
        }
        other => panic!("a cancel: {other:?}"),
    }
    let own = with(
        said("/cancel"),
        "/comment/author/accountId",
        json!(AGENT_JIRA),
    );
    h.send(None, &own).await.ignored();
    h.app.shutdown().await;
}
