//! Notifications against a real HTTP receiver: signed so the receiver can verify them,
//! retried through its failures, not retried when it refuses the body.

use axum::http::{HeaderMap, StatusCode};
use fleet_ledger::notify::{Notification, Notifier, NotifyConfig, SIGNATURE_HEADER, signature};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SECRET: &[u8] = b"notify-secret-for-tests";

/// A receiver that answers the statuses in `script` in turn (then 200) and keeps what it got.
async fn receiver(script: Vec<u16>) -> (String, Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(Mutex::new(script.into_iter()));
    let app = {
        let seen = Arc::clone(&seen);
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let (seen, script) = (Arc::clone(&seen), Arc::clone(&script));
                async move {
                    seen.lock().expect("lock").push((headers, body.to_vec()));
                    let status = script.lock().expect("lock").next().unwrap_or(200);
                    StatusCode::from_u16(status).expect("status")
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn finished(task: &str) -> Notification {
    Notification {
        kind: "task.finished",
        task_id: task.into(),
        issue_key: "acme/payments#7".into(),
        issue_url: "https://github.com/acme/payments/issues/7".into(),
        repo_url: "https://github.com/acme/payments".into(),
        mode: "quickfix".into(),
        outcome: "done".into(),
        pr_url: Some("https://github.com/acme/payments/pull/8".into()),
        cost_usd: 0.0135,
        error: None,
    }
}

/// A notifier to `url` with the test secret, and the registry its metrics are in.
fn notifier(url: String) -> (Notifier, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    let config = NotifyConfig {
        url,
        secret: SECRET.to_vec(),
    };
    (Notifier::start(config, &registry), registry)
}

async fn until(registry: &prometheus::Registry, outcome: &str) -> u64 {
    let read = || {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == "agent_fleet_notifications_total")
            .flat_map(|f| f.get_metric().to_vec())
            .filter(|m| m.get_label().iter().any(|l| l.value() == outcome))
            .map(|m| m.get_counter().get_value() as u64)
            .sum::<u64>()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while read() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    read()
}

#[tokio::test]
async fn a_notification_is_signed_and_retried_through_the_receivers_failures() {
    let (url, seen) = receiver(vec![503, 502]).await;
    let (notifier, registry) = notifier(url);
    notifier.send(finished("t-1"));
    assert_eq!(until(&registry, "delivered").await, 1);
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3, "two failures, then delivered");
    for (headers, body) in &seen {
        let sent = headers[SIGNATURE_HEADER].to_str().expect("ascii");
        assert_eq!(
            sent,
            signature(SECRET, body),
            "verifiable with the shared secret"
        );
        assert_ne!(sent, signature(b"another secret", body));
    }
    let body: serde_json::Value = serde_json::from_slice(&seen[0].1).expect("json");
    assert_eq!(body["type"], "task.finished");
    assert_eq!(body["task_id"], "t-1");
    assert_eq!(body["pr_url"], "https://github.com/acme/payments/pull/8");
    assert_eq!(body["outcome"], "done");
}

#[tokio::test]
async fn a_refused_body_is_not_sent_again() {
    let (url, seen) = receiver(vec![400]).await;
    let (notifier, registry) = notifier(url);
    notifier.send(finished("t-2"));
    assert_eq!(until(&registry, "refused").await, 1);
    assert_eq!(seen.lock().expect("lock").len(), 1);
}

#[tokio::test]
async fn drain_waits_for_the_queued_notifications() {
    let (url, seen) = receiver(vec![503]).await;
    let (notifier, _registry) = notifier(url);
    notifier.send(finished("t-3"));
    notifier.send(finished("t-4"));
    assert!(
        notifier.drain(Duration::from_secs(20)).await,
        "all delivered"
    );
    let bodies: Vec<serde_json::Value> = (seen.lock().expect("lock").iter())
        .map(|(_, body)| serde_json::from_slice(body).expect("json"))
        .collect();
    assert_eq!(
        bodies.len(),
        3,
        "one retried, then both delivered: {bodies:?}"
    );
    assert_eq!(bodies[2]["task_id"], "t-4");
}

#[test]
fn the_secret_never_shows_in_debug_output() {
    let config = NotifyConfig {
        url: "https://hooks.example.com/agent".into(),
        secret: SECRET.to_vec(),
    };
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("notify-secret-for-tests") && shown.contains("***"),
        "{shown}"
    );
    assert!(
        !shown.contains(&format!("{:?}", SECRET.to_vec())),
        "{shown}"
    );
}
