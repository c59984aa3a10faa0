//! Every real payload in `testdata/fixtures`, signed, gives the expected outcome: a message
//! with the expected fields and AMQP properties, or nothing.

mod common;

use testkit::ingest::json_answer;

use common::{AGENT_LOGIN, QueueView, TestApp, fixture, fixtures_dir};
use serde_json::{Value, json};
use shared::TaskMessage;
use testkit::webhook::github_labeled;

/// What one delivery should produce.
#[derive(Debug)]
enum Expect {
    Ping,
    Ignored,
    Task { mode: &'static str },
}

fn expected_github(event: &str, file: &str) -> Expect {
    match (event, file) {
        ("ping", _) => Expect::Ping,
        // With TRIGGER_LABELS adding `bug=quickfix`, the labeled fixtures (label "bug") count.
        ("issues", f) if f.starts_with("labeled") => Expect::Task { mode: "quickfix" },
        _ => Expect::Ignored,
    }
}

#[tokio::test]
async fn every_github_fixture_gives_its_expected_outcome() {
    let app = TestApp::ready(&[(
        "TRIGGER_LABELS",
        "ai-help=quickfix,ai-plan=plan,bug=quickfix",
    )])
    .await;
    let view = QueueView::connect(&app.queue).await;
    let mut checked = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(fixtures_dir().join("github"))
        .expect("github fixtures")
        .flatten()
        .filter(|e| e.path().is_dir())
        .collect();
    dirs.sort_by_key(|e| e.file_name());
    for dir in dirs {
        let event = dir.file_name().to_string_lossy().into_owned();
        let mut files: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .flatten()
            .collect();
        files.sort_by_key(|e| e.file_name());
        for file in files {
            let name = file.file_name().to_string_lossy().into_owned();
            let body = std::fs::read(file.path()).expect("fixture");
            let delivery = format!("fixture-{event}-{name}");
            let response = app.github(&event, &delivery, &body).await;
            let status = response.status().as_u16();
            let answer: Value = response.json().await.expect("JSON answer");
            let messages = view.drain().await;
            match expected_github(&event, &name) {
                Expect::Ping => {
                    assert_eq!(status, 200, "{event}/{name}: {answer}");
                    assert!(messages.is_empty(), "{event}/{name} published");
                }
                Expect::Ignored => {
                    assert_eq!(status, 202, "{event}/{name}: {answer}");
                    assert_eq!(answer["status"], "ignored", "{event}/{name}");
                    assert!(messages.is_empty(), "{event}/{name} published");
                }
                Expect::Task { mode } => {
                    assert_eq!(status, 202, "{event}/{name}: {answer}");
                    assert_eq!(messages.len(), 1, "{event}/{name}");
                    let message = &messages[0];
                    let task = TaskMessage::from_slice(&message.data).expect("valid task");
                    let expected_id = format!("github:{delivery}");
                    assert_eq!(answer["task_id"], expected_id.as_str());
                    assert_eq!(task.task_id, expected_id);
                    assert_eq!(task.mode.as_str(), mode);
                    assert_eq!(
                        task.repo_url.as_str(),
                        "https://github.com/Codertocat/Hello-World"
                    );
                    assert_eq!(task.issue.key, "Codertocat/Hello-World#1");
                    assert_eq!(task.issue.number, Some(1));
                    assert_eq!(task.trigger_user, "Codertocat");
                    assert_eq!(task.trigger.event, "issues.labeled");
                    assert_eq!(task.trigger.delivery_id, delivery);
                    let props = &message.properties;
                    assert_eq!(props.delivery_mode(), &Some(2), "persistent");
                    assert_eq!(
                        props.message_id().as_ref().map(|s| s.as_str()),
                        Some(expected_id.as_str())
                    );
                    assert_eq!(
                        props.content_type().as_ref().map(|s| s.as_str()),
                        Some("application/json")
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 45, "only {checked} GitHub fixtures found");
    app.shutdown().await;
}

fn with(mut payload: Value, pointer: &str, value: Value) -> Value {
    *payload
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    payload
}

/// The one task a delivery published (answered 202).
async fn published(response: reqwest::Response, view: &QueueView) -> TaskMessage {
    assert_eq!(response.status().as_u16(), 202);
    let messages = view.drain().await;
    assert_eq!(messages.len(), 1);
    TaskMessage::from_slice(&messages[0].data).expect("valid task")
}

/// Why a delivery was ignored (answered 202, nothing published).
async fn ignored(response: reqwest::Response, view: &QueueView) -> String {
    let answer = json_answer(response, 202).await;
    assert_eq!(answer["status"], "ignored", "{answer}");
    assert!(view.drain().await.is_empty());
    answer["reason"].as_str().unwrap_or_default().to_owned()
}

/// A GitHub delivery of `payload` as `event`, under a new delivery id.
async fn github(app: &TestApp, event: &str, payload: &Value) -> reqwest::Response {
    let delivery = uuid::Uuid::new_v4().to_string();
    app.github(event, &delivery, payload.to_string().as_bytes())
        .await
}

async fn one_task(app: &TestApp, view: &QueueView, event: &str, payload: &Value) -> TaskMessage {
    published(github(app, event, payload).await, view).await
}

async fn nothing(app: &TestApp, view: &QueueView, event: &str, payload: &Value) -> String {
    ignored(github(app, event, payload).await, view).await
}

/// A Jira delivery of `payload` with the webhook identifier `id`.
async fn jira(app: &TestApp, id: &str, payload: &Value) -> reqwest::Response {
    app.jira(id, payload.to_string().as_bytes()).await
}

#[tokio::test]
async fn github_triggers_from_real_payloads() {
    let app = TestApp::ready(&[]).await;
    let view = QueueView::connect(&app.queue).await;

    let task = one_task(&app, &view, "issues", &github_labeled("ai-plan")).await;
    assert_eq!(task.mode.as_str(), "plan");
    assert_eq!(task.issue.title, "Spelling error in the README file");
    assert!(task.approval.is_none());
    let task = one_task(&app, &view, "issues", &github_labeled("AI-Help")).await;
    assert_eq!(task.mode.as_str(), "quickfix");
    // Loop guard: the agent labeling its own issue starts nothing.
    let by_agent = with(
        github_labeled("ai-help"),
        "/sender/login",
        json!(AGENT_LOGIN),
    );
    assert_eq!(
        nothing(&app, &view, "issues", &by_agent).await,
        "sent by the agent itself"
    );

    let assigned = fixture("github/issues/assigned.payload.json");
    nothing(&app, &view, "issues", &assigned).await;
    let to_agent = with(assigned, "/assignee/login", json!(AGENT_LOGIN));
    let task = one_task(&app, &view, "issues", &to_agent).await;
    assert_eq!(
        task.mode.as_str(),
        "quickfix",
        "default mode without a plan label"
    );
    let with_plan_label = with(to_agent, "/issue/labels/0/name", json!("ai-plan"));
    let task = one_task(&app, &view, "issues", &with_plan_label).await;
    assert_eq!(task.mode.as_str(), "plan");

    let comment = fixture("github/issue_comment/created.payload.json");
    nothing(&app, &view, "issue_comment", &comment).await;
    let approve = with(comment.clone(), "/comment/body", json!("/approve"));
    let task = one_task(&app, &view, "issue_comment", &approve).await;
    assert_eq!(task.mode.as_str(), "implement");
    let approval = task.approval.expect("approval");
    assert_eq!(approval.approver, "Codertocat");
    assert_eq!(approval.comment_id, comment["comment"]["id"].to_string());
    assert_eq!(task.trigger.event, "issue_comment.created");

    let revise = with(
        comment.clone(),
        "/comment/body",
        json!("/revise keep the old API\nplease"),
    );
    let task = one_task(&app, &view, "issue_comment", &revise).await;
    assert_eq!(task.mode.as_str(), "plan");
    let revision = task.revision.expect("revision");
    assert_eq!(revision.feedback, "keep the old API\nplease");
    assert_eq!(revision.requested_by, "Codertocat");

    // On a pull request: passed on with the PR number, flagged for the worker.
    let mut on_pr = approve.clone();
    on_pr["issue"]["pull_request"] =
        json!({"url": "https://api.github.com/repos/Codertocat/Hello-World/pulls/1"});
    let task = one_task(&app, &view, "issue_comment", &on_pr).await;
    assert!(task.issue.pull_request);
    assert_eq!(task.issue.number, Some(1));

    let outsider = with(
        approve.clone(),
        "/comment/author_association",
        json!("NONE"),
    );
    nothing(&app, &view, "issue_comment", &outsider).await;
    let agent_comment = with(approve.clone(), "/comment/user/login", json!(AGENT_LOGIN));
    nothing(&app, &view, "issue_comment", &agent_comment).await;
    let edited = with(approve, "/action", json!("edited"));
    nothing(&app, &view, "issue_comment", &edited).await;
    app.shutdown().await;
}

#[tokio::test]
async fn every_jira_fixture_gives_its_expected_outcome() {
    let app = TestApp::ready(&[]).await;
    let view = QueueView::connect(&app.queue).await;
    // (file, mode or None for ignored, trigger user, issue key, approval comment id)
    let cases: [(&str, Option<&str>, &str, Option<&str>); 5] = [
        (
            "comment_created_adf.json",
            Some("implement"),
            "PAY-43",
            Some("10501"),
        ),
        (
            "comment_created_approve.json",
            Some("implement"),
            "PAY-43",
            Some("10500"),
        ),
        ("issue_assigned.json", Some("quickfix"), "PAY-42", None),
        ("issue_labeled.json", Some("plan"), "PAY-43", None),
        ("issue_updated_unrelated.json", None, "PAY-44", None),
    ];
    let dir_count = std::fs::read_dir(fixtures_dir().join("jira"))
        .expect("jira fixtures")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .count();
    assert_eq!(dir_count, cases.len(), "every Jira fixture has a case");
    for (file, mode, key, comment_id) in cases {
        let body = std::fs::read(fixtures_dir().join("jira").join(file)).expect("fixture");
        let identifier = format!("jira-{file}");
        let response = app.jira(&identifier, &body).await;
        assert_eq!(response.status().as_u16(), 202, "{file}");
        let answer: Value = response.json().await.expect("json");
        let messages = view.drain().await;
        let Some(mode) = mode else {
            assert_eq!(answer["status"], "ignored", "{file}");
            assert!(messages.is_empty(), "{file}");
            continue;
        };
        assert_eq!(messages.len(), 1, "{file}: {answer}");
        let task = TaskMessage::from_slice(&messages[0].data).expect("task");
        assert_eq!(task.task_id, format!("jira:{identifier}"));
        assert_eq!(task.mode.as_str(), mode, "{file}");
        assert_eq!(task.source.as_str(), "jira");
        assert_eq!(task.issue.tracker.as_str(), "jira");
        assert_eq!(task.issue.key, key);
        assert_eq!(task.issue.number, None);
        assert_eq!(task.repo_url.as_str(), "https://github.com/acme/payments");
        assert_eq!(task.trigger_user, "5b10ac8d82e05b22cc7d4ef5");
        assert_eq!(
            task.approval.as_ref().map(|a| a.comment_id.as_str()),
            comment_id,
            "{file}"
        );
        if file == "issue_assigned.json" {
            assert_eq!(task.issue.url, "https://acme.atlassian.net/browse/PAY-42");
            assert!(task.issue.body.contains("{{payments/refunds.py}}"));
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn jira_edge_cases_unmapped_project_revise_adf_and_loop_guard() {
    let app = TestApp::ready(&[
        ("JIRA_PROJECTS", "OPS=acme/ops"),
        ("JIRA_REPO_FROM_LABEL", "true"),
        ("JIRA_REPO_ALLOW", "acme/*,tools/ci"),
    ])
    .await;
    let view = QueueView::connect(&app.queue).await;
    let assigned = fixture("jira/issue_assigned.json");
    assert_eq!(
        ignored(jira(&app, "unmapped-1", &assigned).await, &view).await,
        "project not mapped to a repository"
    );
    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"agent_fleet_webhooks_ignored_total{reason="project not mapped to a repository",source="jira"} 1"#),
        "{metrics}"
    );

    // A `repo:` label maps the issue when JIRA_REPO_FROM_LABEL is on.
    let labeled = with(
        assigned.clone(),
        "/issue/fields/labels",
        json!(["ai-help", "repo:acme/billing"]),
    );
    let task = published(jira(&app, "label-1", &labeled).await, &view).await;
    assert_eq!(task.repo_url.as_str(), "https://github.com/acme/billing");

    // A label naming a repository outside JIRA_REPO_ALLOW: ignored, nothing published, and
    // no fallback to the project's repository either.
    for (n, repo) in ["evil/payments", "acme-evil/billing", "tools/other"]
        .iter()
        .enumerate()
    {
        let outside = with(
            assigned.clone(),
            "/issue/fields/labels",
            json!(["ai-help", format!("repo:{repo}")]),
        );
        let response = jira(&app, &format!("outside-{n}"), &outside).await;
        assert_eq!(
            ignored(response, &view).await,
            "repository label not in JIRA_REPO_ALLOW",
            "{repo}"
        );
    }
    let allowed = with(
        assigned.clone(),
        "/issue/fields/labels",
        json!(["repo:tools/ci"]),
    );
    let task = published(jira(&app, "allowed-1", &allowed).await, &view).await;
    assert_eq!(task.repo_url.as_str(), "https://github.com/tools/ci");

    // /revise in ADF, mapped through the label as well.
    let mut adf = fixture("jira/comment_created_adf.json");
    adf["comment"]["body"]["content"][0]["content"][0]["text"] =
        json!("/revise split the client first");
    adf["issue"]["fields"]["labels"] = json!(["repo:acme/billing"]);
    let task = published(jira(&app, "revise-1", &adf).await, &view).await;
    assert_eq!(task.mode.as_str(), "plan");
    assert_eq!(
        task.revision.expect("revision").feedback,
        "split the client first"
    );

    // Loop guard: the agent's own comment.
    let mut own = fixture("jira/comment_created_approve.json");
    own["comment"]["author"]["accountId"] = json!(common::AGENT_JIRA);
    ignored(jira(&app, "own-1", &own).await, &view).await;
    app.shutdown().await;
}
