//! The ingest's answers to bad input, duplicates and broker trouble, against the real broker.

mod common;

use testkit::ingest::json_answer;

use common::{BrokerProxy, GITHUB_SECRET, QueueView, TestApp, fixture};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn labeled(label: &str) -> Vec<u8> {
    let mut payload = fixture("github/issues/labeled.payload.json");
    payload["label"]["name"] = json!(label);
    payload.to_string().into_bytes()
}

/// The `error` of an ingest's JSON answer.
fn error_of(answer: &Value) -> &str {
    answer["error"].as_str().expect("error")
}

#[tokio::test]
async fn signatures_are_checked_before_anything_else() {
    let app = TestApp::ready(&[("GITHUB_WEBHOOK_SECRET", "old-secret,gh-test-secret")]).await;
    let view = QueueView::connect(&app.queue).await;
    let body = labeled("ai-help");

    // GitHub's documented vector through the whole route: the body is not JSON, but the
    // signature is verified first and passes, so the answer is 400 (not 401).
    let vector_app =
        TestApp::spawn(&[("GITHUB_WEBHOOK_SECRET", "It's a Secret to Everybody")]).await;
    let response = vector_app
        .http
        .post(vector_app.url("/webhooks/github"))
        .header("x-github-event", "issues")
        .header("x-github-delivery", "vector")
        .header(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )
        .body("Hello, World!")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 400);
    vector_app.shutdown().await;

    // Wrong secret, tampered body, missing and malformed header: 401, nothing published.
    let wrong = app
        .github_signed("issues", "d1", &body, "not-the-secret")
        .await;
    assert_eq!(wrong.status().as_u16(), 401);
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let signature = testkit::webhook::sign(GITHUB_SECRET, &body);
    for (sig, payload) in [
        (Some(signature.as_str()), tampered.as_slice()),
        (None, body.as_slice()),
        (Some("sha1=0123"), body.as_slice()),
    ] {
        let mut request = app
            .http
            .post(app.url("/webhooks/github"))
            .header("x-github-event", "issues")
            .header("x-github-delivery", "d2")
            .body(payload.to_vec());
        if let Some(sig) = sig {
            request = request.header("x-hub-signature-256", sig);
        }
        let response = request.send().await.expect("sent");
        assert_eq!(response.status().as_u16(), 401);
    }
    // An unsigned body that is not even JSON is refused as 401, never parsed.
    let response = app
        .http
        .post(app.url("/webhooks/jira"))
        .body("{not json")
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status().as_u16(), 401);
    // Rotation: a delivery signed with the old secret still verifies.
    let old = app
        .github_signed("issues", "rotated", &body, "old-secret")
        .await;
    assert_eq!(old.status().as_u16(), 202);
    assert_eq!(view.drain().await.len(), 1);
    app.shutdown().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_4xx_and_never_a_500() {
    let app = TestApp::ready(&[("MAX_BODY_BYTES", "2048")]).await;
    let view = QueueView::connect(&app.queue).await;

    let response = app.github("issues", "big", &vec![b' '; 4096]).await;
    assert_eq!(response.status().as_u16(), 413);

    let response = app.github("issues", "bad-json", b"{\"action\": ").await;
    let answer = json_answer(response, 400).await;
    assert!(error_of(&answer).contains("malformed JSON"));

    let missing_title = json!({
        "action": "labeled", "label": {"name": "ai-help"}, "sender": {"login": "dev1"},
        "repository": {"html_url": "https://github.com/acme/payments"},
        "issue": {"number": 3, "html_url": "https://github.com/acme/payments/issues/3"}
    });
    let response = app
        .github("issues", "no-title", missing_title.to_string().as_bytes())
        .await;
    let answer = json_answer(response, 400).await;
    assert_eq!(answer["error"], "missing field `issue.title`");

    let response = app
        .http
        .post(app.url("/webhooks/github"))
        .header("x-github-delivery", "no-event")
        .header(
            "x-hub-signature-256",
            testkit::webhook::sign(GITHUB_SECRET, b"{}"),
        )
        .body("{}")
        .send()
        .await
        .expect("sent");
    let answer = json_answer(response, 400).await;
    assert_eq!(answer["error"], "missing header `x-github-event`");

    let response = app
        .github("deployment", "unsupported", b"{\"action\":\"created\"}")
        .await;
    let answer = json_answer(response, 202).await;
    assert_eq!(answer["status"], "ignored");

    let response = app.jira("no-event", b"{\"issue\": {}}").await;
    let answer = json_answer(response, 400).await;
    assert_eq!(answer["error"], "missing field `webhookEvent`");

    assert!(view.drain().await.is_empty());
    app.shutdown().await;
}

#[tokio::test]
async fn a_route_without_its_secret_answers_404_and_the_other_still_works() {
    let app = TestApp::ready(&[("JIRA_WEBHOOK_SECRET", "")]).await;
    let body = fixture("jira/issue_assigned.json").to_string();
    let response = app.jira("x", body.as_bytes()).await;
    let answer = json_answer(response, 404).await;
    assert!(error_of(&answer).contains("not configured"));
    let response = app
        .github(
            "ping",
            "p",
            fixture("github/ping/payload.json").to_string().as_bytes(),
        )
        .await;
    assert_eq!(response.status().as_u16(), 200);
    app.shutdown().await;
}

#[tokio::test]
async fn a_redelivered_webhook_publishes_one_message() {
    let app = TestApp::ready(&[]).await;
    let view = QueueView::connect(&app.queue).await;
    let body = labeled("ai-help");
    let first = app.github("issues", "same-delivery", &body).await;
    assert_eq!(first.status().as_u16(), 202);
    let second = app.github("issues", "same-delivery", &body).await;
    assert_eq!(second.status().as_u16(), 200);
    let answer: Value = second.json().await.expect("json");
    assert_eq!(answer["status"], "duplicate");
    assert_eq!(answer["task_id"], "github:same-delivery");
    assert_eq!(view.count(&app.queue).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn broker_down_means_a_fast_503_and_the_same_delivery_succeeds_later() {
    let proxy = BrokerProxy::start(false).await;
    let app = TestApp::spawn_with_broker(&proxy.url(), &[]).await;
    // The service starts without a broker: alive but not ready.
    assert_eq!(app.get_status("/healthz").await, 200);
    app.wait_ready(503).await;

    let body = labeled("ai-help");
    let started = Instant::now();
    let response = app.github("issues", "during-outage", &body).await;
    assert!(started.elapsed() < Duration::from_secs(5), "must fail fast");
    assert_eq!(response.status().as_u16(), 503);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=10).contains(&retry_after));

    proxy.set_enabled(true);
    app.wait_ready(200).await;
    let response = app.github("issues", "during-outage", &body).await;
    assert_eq!(
        response.status().as_u16(),
        202,
        "not remembered as seen after the 503"
    );
    let view = QueueView::connect(&app.queue).await;
    assert_eq!(view.count(&app.queue).await, 1);

    // The broker goes away under a running ingest: readiness drops, then recovers.
    proxy.set_enabled(false);
    app.wait_ready(503).await;
    let response = app.github("issues", "second-outage", &body).await;
    assert_eq!(response.status().as_u16(), 503);
    proxy.set_enabled(true);
    app.wait_ready(200).await;
    let response = app.github("issues", "second-outage", &body).await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(view.count(&app.queue).await, 2);
    app.shutdown().await;
}

#[tokio::test]
async fn a_returned_publish_is_a_503_and_is_not_remembered() {
    let app = TestApp::ready(&[]).await;
    let view = QueueView::connect(&app.queue).await;
    // Delete the queue under the running ingest: the mandatory publish comes back unroutable.
    view.delete_all().await;
    let body = labeled("ai-help");
    let response = app.github("issues", "returned", &body).await;
    let answer = json_answer(response, 503).await;
    assert!(error_of(&answer).contains("unroutable"), "{answer}");

    shared::topology::Topology::new(&app.queue, 5)
        .declare(&view.channel)
        .await
        .expect("declare again");
    let response = app.github("issues", "returned", &body).await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(view.count(&app.queue).await, 1);

    let metrics = app.metrics_text().await;
    assert!(
        metrics.contains(r#"agent_fleet_publishes_total{outcome="returned"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"agent_fleet_publishes_total{outcome="confirmed"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("agent_fleet_ready 1"), "{metrics}");
    app.shutdown().await;
}
