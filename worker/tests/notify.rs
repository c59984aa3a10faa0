//! Notifications from the worker, end to end (the worker binary with `NOTIFY_URL` and
//! `NOTIFY_SECRET`, the real broker, the GitHub and LLM stand-ins, a receiver on a local
//! port): one signed POST per ended task, `task.finished` with its PR and cost for a done
//! one, `task.failed` with the reason for a refused one; the receiver verifies the
//! signature with the shared secret.

mod common;

use axum::http::HeaderMap;
use common::standins::Answer;
use common::world::*;
use fleet_ledger::notify::{SIGNATURE_HEADER, signature};
use serde_json::Value;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use testkit::wait::wait_until;

const SECRET: &str = "notify-secret-for-the-worker-test";
/// 1200 input and 80 output tokens per stand-in answer at 3/15 USD per million: 0.0048 USD.
const PRICES: &str = "test-model=3/15";

type Seen = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver that answers 200 and keeps what it got.
async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let kept = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let kept = Arc::clone(&kept);
            async move {
                kept.lock().expect("lock").push((headers, body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

/// The notification about `task_id`, once one arrived and its signature checks out.
async fn notified(seen: &Seen, task_id: &str) -> Value {
    let find = || {
        seen.lock()
            .expect("lock")
            .iter()
            .filter_map(|(headers, body)| {
                let value: Value = serde_json::from_slice(body).ok()?;
                (value["task_id"] == task_id).then(|| (headers.clone(), body.clone(), value))
            })
            .collect::<Vec<_>>()
    };
    wait_until(
        &format!("a notification about {task_id}"),
        Duration::from_secs(60),
        || !find().is_empty(),
    )
    .await;
    let found = find();
    assert_eq!(found.len(), 1, "one notification per task: {found:?}");
    let (headers, body, value) = found.into_iter().next().expect("one");
    let signed = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .expect("signed");
    assert_eq!(
        signed,
        signature(SECRET.as_bytes(), &body),
        "the signature checks out"
    );
    assert_ne!(
        signed,
        signature(b"another secret", &body),
        "and only with the secret"
    );
    value
}

#[tokio::test]
async fn ended_tasks_are_notified_signed_with_their_outcome_pr_and_cost() {
    let (url, seen) = receiver().await;
    let (world, worker) = World::with_worker(
        "notify",
        5,
        &[("edit", vec![Answer::Text(good_answer())])],
        &[
            ("NOTIFY_URL", url.as_str()),
            ("NOTIFY_SECRET", SECRET),
            ("LLM_PRICES", PRICES),
        ],
    )
    .await;
    let done = world.task("github:notify-done", 91, "dev1");
    world.run(&worker, &done, "done").await;
    let pr_url = world.github.pulls()[0]["html_url"]
        .as_str()
        .expect("the PR's URL")
        .to_owned();
    let finished = notified(&seen, &done.task_id).await;
    assert_eq!(finished["type"], "task.finished", "{finished}");
    assert_eq!(finished["outcome"], "done", "{finished}");
    assert_eq!(finished["pr_url"], pr_url.as_str(), "{finished}");
    assert!(
        (finished["cost_usd"].as_f64().expect("cost") - 0.0048).abs() < 1e-9,
        "{finished}"
    );
    assert_eq!(finished["issue_key"], done.issue.key.as_str(), "{finished}");

    // `reader` may not ask: refused, a failure.
    let refused = world.task("github:notify-refused", 92, "reader");
    world.run(&worker, &refused, "failed").await;
    let failed = notified(&seen, &refused.task_id).await;
    assert_eq!(failed["type"], "task.failed", "{failed}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not have write access")),
        "{failed}"
    );
    assert_eq!(failed["pr_url"], Value::Null, "{failed}");
    let body = String::from_utf8_lossy(&seen.lock().expect("lock")[0].1).into_owned();
    assert!(!body.contains(SECRET), "the secret is never in the body");
}
