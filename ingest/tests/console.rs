//! The console in a real browser (Debian's headless Chromium through chromedriver), against
//! the real ingest, broker and PostgreSQL: a finished task shows with its pull request link
//! and its cost, its timeline opens, the login form signs a viewer in with a cookie, and an
//! operator's replay button puts a dead letter back on the task queue. Screenshots are
//! saved under the test's target temp dir.

mod common;

use common::{QueueView, TestApp};
use fleet_ledger::event::Record;
use fleet_ledger::{Event, EventKind, Outcome};
use std::time::Duration;
use testkit::browser::Browser;
use testkit::db::TestDb;
use testkit::wait::poll_until;

const VIEWER: &str = "viewer-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";
const PR: &str = "https://github.com/acme/payments/pull/7";

/// A finished task as the workers would have recorded it.
async fn seed_finished_task(url: &str, task_id: &str) {
    let pool = fleet_ledger::pool(url, 2).expect("pool");
    fleet_ledger::store::migrate(&pool).await.expect("migrate");
    let events = [
        EventKind::Received {
            tracker: "github".into(),
            issue_key: "acme/payments#7".into(),
            issue_url: "https://github.com/acme/payments/issues/7".into(),
            repo_url: "https://github.com/acme/payments".into(),
            mode: "quickfix".into(),
            trigger_user: "dev1".into(),
            message: None,
        },
        EventKind::Started {
            attempt: 1,
            worker: "w1".into(),
        },
        EventKind::LlmCall {
            phase: "edit".into(),
            input_tokens: 1200,
            output_tokens: 300,
            cost_usd: 0.0123,
        },
        EventKind::Check {
            name: "tests".into(),
            result: "passed".into(),
            duration_ms: 900,
        },
        EventKind::Finished {
            outcome: Outcome::Done,
            pr_url: Some(PR.into()),
            error: None,
        },
    ];
    let records: Vec<Record> = events
        .into_iter()
        .map(|kind| Record::Event(Event::now(task_id, kind)))
        .collect();
    fleet_ledger::store::write(&pool, &records)
        .await
        .expect("seeded");
}

fn shot(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("console-{name}.png"))
}

#[tokio::test]
async fn the_console_shows_a_finished_task_and_replays_a_dead_letter() {
    let db = TestDb::new("ingest_console").await;
    let tokens = format!("grafana:viewer:{VIEWER},alice:operator:{OPERATOR}");
    let app = TestApp::ready(&[("DATABASE_URL", &db.url()), ("API_TOKENS", &tokens)]).await;
    let view = QueueView::connect(&app.queue).await;
    let task_id = format!("github:{}", uuid::Uuid::new_v4());
    seed_finished_task(&db.url(), &task_id).await;
    let browser = Browser::start().await;

    browser
        .open(&app.url(&format!("/console?token={OPERATOR}")))
        .await;
    let row = format!("#recent tr[data-task=\"{task_id}\"]");
    let link = browser
        .find(&format!("{row} a.pr"))
        .await
        .expect("the finished task with its PR link");
    assert_eq!(browser.attribute(&link, "href").await.as_deref(), Some(PR));
    let cost = browser.find(&format!("{row} td.cost")).await.expect("cost");
    assert_eq!(browser.text(&cost).await, "$0.0123");
    let overview = shot("overview");
    browser.screenshot(&overview).await;
    let png = std::fs::read(&overview).expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG"),
        "a PNG at {}",
        overview.display()
    );

    let issue = browser.find(&format!("{row} a")).await.expect("issue link");
    browser.click(&issue).await;
    browser.wait_for_url("/console/tasks/").await;
    let body = browser.find("table").await.expect("the timeline");
    let timeline = browser.text(&body).await;
    for kind in ["received", "started", "llm_call", "check", "finished"] {
        assert!(timeline.contains(kind), "{kind} in {timeline}");
    }

    // A dead letter, and the operator's replay button.
    let message_id = format!("github:{}", uuid::Uuid::new_v4());
    view.dead_letter(br#"{"version": 1, "task_id": "x"}"#, &message_id)
        .await;
    browser
        .open(&app.url(&format!("/console/dead-letters?token={OPERATOR}")))
        .await;
    let button = browser
        .find(&format!("tr[data-message=\"{message_id}\"] button.replay"))
        .await
        .expect("a replay button");
    browser.screenshot(&shot("dead-letters")).await;
    browser.click(&button).await;
    let back = poll_until(
        "the replayed message is back on the task queue",
        Duration::from_secs(10),
        || view.drain(),
        |messages| !messages.is_empty(),
    )
    .await;
    assert_eq!(
        back[0].properties.message_id().as_ref().map(|m| m.as_str()),
        Some(message_id.as_str())
    );
    assert!(browser.url().await.contains("/console/dead-letters"));
    assert!(
        browser
            .find(&format!("tr[data-message=\"{message_id}\"]"))
            .await
            .is_none(),
        "replayed: no longer listed"
    );
    app.shutdown().await;
}

#[tokio::test]
async fn a_viewer_signs_in_with_the_form_and_sees_no_replay_button() {
    let db = TestDb::new("ingest_console").await;
    let tokens = format!("grafana:viewer:{VIEWER},alice:operator:{OPERATOR}");
    let app = TestApp::ready(&[("DATABASE_URL", &db.url()), ("API_TOKENS", &tokens)]).await;
    let view = QueueView::connect(&app.queue).await;
    let browser = Browser::start().await;
    browser.open(&app.url("/console")).await;
    let field = browser
        .find("input[name=token]")
        .await
        .expect("the login form");
    browser.type_text(&field, VIEWER).await;
    let submit = browser.find("button[type=submit]").await.expect("submit");
    browser.click(&submit).await;
    // Signed in: the task lists.
    browser.wait_for("#recent").await;

    let message_id = format!("github:{}", uuid::Uuid::new_v4());
    view.dead_letter(b"not a task", &message_id).await;
    browser.open(&app.url("/console/dead-letters")).await;
    browser
        .find(&format!("tr[data-message=\"{message_id}\"]"))
        .await
        .expect("the viewer sees the dead letter (the cookie signed it in)");
    assert!(
        browser.find("button.replay").await.is_none(),
        "but no replay button"
    );
    app.shutdown().await;
}
