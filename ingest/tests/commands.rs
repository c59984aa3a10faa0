//! The comment triggers beyond `/approve` and `/revise`, through the real ingest and the
//! real broker with signed real-shaped payloads: a mention of the agent, `/code <text>` and
//! `/plan <text>` on GitHub and Jira become tasks whose `instruction` is the person's words;
//! the agent's own comments, outsiders and look-alike logins give nothing.

mod common;

use common::{AGENT_JIRA, AGENT_LOGIN, QueueView, TestApp, fixture};
use serde_json::{Value, json};
use shared::TaskMessage;

fn with(mut payload: Value, pointer: &str, value: Value) -> Value {
    *payload
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer}")) = value;
    payload
}

async fn started() -> (TestApp, QueueView) {
    let app = TestApp::ready(&[]).await;
    let view = QueueView::connect(&app.queue).await;
    (app, view)
}

/// Sends `payload` as a GitHub `issue_comment` (or a Jira delivery) and returns what was
/// published: a task, or `None` with the ingest's reason.
async fn outcome(
    app: &TestApp,
    view: &QueueView,
    jira: bool,
    payload: &Value,
) -> Result<TaskMessage, String> {
    let delivery = uuid::Uuid::new_v4().to_string();
    let body = payload.to_string();
    let response = if jira {
        app.jira(&delivery, body.as_bytes()).await
    } else {
        app.github("issue_comment", &delivery, body.as_bytes())
            .await
    };
    assert_eq!(response.status().as_u16(), 202);
    let answer: Value = response.json().await.expect("JSON answer");
    let mut messages = view.drain().await;
    match answer["status"].as_str() {
        Some("accepted") => {
            assert_eq!(messages.len(), 1, "{answer}");
            Ok(TaskMessage::from_slice(&messages.remove(0).data).expect("valid task"))
        }
        _ => {
            assert!(messages.is_empty(), "ignored, yet published: {answer}");
            Err(answer["reason"].as_str().unwrap_or_default().to_owned())
        }
    }
}

#[tokio::test]
async fn github_mentions_code_and_plan_carry_the_comment_as_the_instruction() {
    let (app, view) = started().await;
    let comment = fixture("github/issue_comment/created.payload.json");
    let body = |text: &str| with(comment.clone(), "/comment/body", json!(text));

    let mention = "@fleet-agent please round refunds to cents, not to whole units";
    let task = outcome(&app, &view, false, &body(mention))
        .await
        .expect("a task");
    assert_eq!(task.mode.as_str(), "quickfix", "DEFAULT_MODE");
    assert_eq!(task.instruction.as_deref(), Some(mention));
    assert_eq!(task.trigger.event, "issue_comment.created");
    assert_eq!(task.trigger_user, "Codertocat");
    assert_eq!(
        task.trigger.comment_id,
        Some(comment["comment"]["id"].to_string()),
        "the comment to acknowledge"
    );

    let task = outcome(&app, &view, false, &body("/code use Decimal, not float"))
        .await
        .expect("a task");
    assert_eq!(task.mode.as_str(), "quickfix");
    assert_eq!(task.instruction.as_deref(), Some("use Decimal, not float"));

    let task = outcome(&app, &view, false, &body("/plan\nsplit the refund module"))
        .await
        .expect("a task");
    assert_eq!(task.mode.as_str(), "plan");
    assert_eq!(task.instruction.as_deref(), Some("split the refund module"));

    let task = outcome(&app, &view, false, &body("/code"))
        .await
        .expect("a task");
    assert_eq!(task.instruction, None, "no text, no instruction");

    for (why, payload) in [
        (
            "the agent's own comment",
            with(body(mention), "/comment/user/login", json!(AGENT_LOGIN)),
        ),
        (
            "the agent as sender",
            with(body(mention), "/sender/login", json!(AGENT_LOGIN)),
        ),
        (
            "an outsider",
            with(body(mention), "/comment/author_association", json!("NONE")),
        ),
        ("a longer login", body("@fleet-agents please fix")),
        ("a mention in code", body("run `@fleet-agent` by hand")),
        ("a command word that goes on", body("/codes are nice")),
    ] {
        let reason = outcome(&app, &view, false, &payload).await.expect_err(why);
        assert!(!reason.is_empty(), "{why}: a reason");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn jira_mention_nodes_and_commands_carry_the_comment_as_the_instruction() {
    let (app, view) = started().await;
    let adf = fixture("jira/comment_created_adf.json");
    let paragraph = |content: Value| {
        with(
            adf.clone(),
            "/comment/body/content",
            json!([{"type": "paragraph", "content": content}]),
        )
    };
    let mention = paragraph(json!([
        {"type": "mention", "attrs": {"id": AGENT_JIRA, "text": "@Fleet Agent"}},
        {"type": "text", "text": " add an idempotency key"}
    ]));
    let task = outcome(&app, &view, true, &mention).await.expect("a task");
    assert_eq!(task.mode.as_str(), "quickfix");
    assert_eq!(
        task.instruction.as_deref(),
        Some("@Fleet Agent add an idempotency key")
    );
    assert_eq!(task.issue.key, "PAY-43");
    assert_eq!(task.trigger.comment_id.as_deref(), Some("10501"));

    let code = paragraph(json!([{"type": "text", "text": "/plan keep the old client"}]));
    let task = outcome(&app, &view, true, &code).await.expect("a task");
    assert_eq!(task.mode.as_str(), "plan");
    assert_eq!(task.instruction.as_deref(), Some("keep the old client"));

    let someone_else = paragraph(json!([
        {"type": "mention", "attrs": {"id": "5b10ac8d82e05b22cc7d4ef5", "text": "@Dana"}},
        {"type": "text", "text": " have a look"}
    ]));
    outcome(&app, &view, true, &someone_else)
        .await
        .expect_err("a mention of someone else");
    let own = with(mention, "/comment/author/accountId", json!(AGENT_JIRA));
    outcome(&app, &view, true, &own)
        .await
        .expect_err("the agent's own comment");
    app.shutdown().await;
}
