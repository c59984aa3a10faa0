//! `worker standalone`: one process serving the webhooks and working the tasks, on the
//! embedded durable queue (no AMQP_URL) and on RabbitMQ (with it).

mod common;

use common::{free_port, wait_until};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testkit::QueueGuard;
use testkit::webhook::{github_labeled, post_github};

const SECRET: &str = "standalone-secret";
const LONG: Duration = Duration::from_secs(60);

struct Standalone {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Standalone {
    fn start(root: &Path, extra: &[(&str, &str)], broker: bool) -> Self {
        let port = free_port();
        let log = root.join(format!("standalone-{}.log", uuid::Uuid::new_v4().simple()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
        command
            .arg("standalone")
            .env_remove("AMQP_URL")
            .env("WORKER_HANDLER", "test")
            .env("TEST_HANDLER_DIR", root.join("records"))
            .env("WORKSPACE_DIR", root.join("workspace"))
            .env("STANDALONE_DB", root.join("queue.db"))
            .env("INGEST_BIND", format!("127.0.0.1:{port}"))
            .env("METRICS_BIND", format!("127.0.0.1:{}", free_port()))
            .env("GITHUB_WEBHOOK_SECRET", SECRET)
            .env("LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        if broker {
            command.env("AMQP_URL", common::BROKER);
        }
        for (k, v) in extra {
            command.env(k, v);
        }
        Self {
            child: command.spawn().expect("spawn"),
            port,
            log,
        }
    }

    async fn ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let deadline = std::time::Instant::now() + LONG;
        loop {
            if reqwest::get(&url)
                .await
                .is_ok_and(|r| r.status().as_u16() == 200)
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn webhook(&self, delivery: &str, labels: &[&str]) -> (u16, Value) {
        let mut payload = github_labeled("ai-help");
        payload["issue"]["labels"] = json!(
            labels
                .iter()
                .map(|l| json!({"name": l}))
                .collect::<Vec<_>>()
        );
        let response = post_github(
            &reqwest::Client::new(),
            &format!("http://127.0.0.1:{}/webhooks/github", self.port),
            SECRET,
            "issues",
            delivery,
            payload.to_string().as_bytes(),
        )
        .await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// A record of the test handler for the GitHub delivery `delivery` (task `github:<id>`).
fn record(root: &Path, delivery: &str, kind: &str) -> Vec<String> {
    common::read_record(&root.join("records"), &format!("github:{delivery}"), kind)
}

/// Waits (bounded) until that record exists, and returns its lines.
async fn wait_record(root: &Path, delivery: &str, kind: &str) -> Vec<String> {
    common::wait_record(&root.join("records"), &format!("github:{delivery}"), kind).await
}

fn dead_rows(root: &Path) -> Vec<(String, u32)> {
    let db = rusqlite::Connection::open_with_flags(
        root.join("queue.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("db");
    let mut statement = db
        .prepare("SELECT death_reason, delivery_count FROM messages WHERE state = 'dead'")
        .expect("sql");
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[tokio::test]
async fn embedded_queue_serves_webhooks_and_works_tasks_with_the_same_semantics() {
    let root = tempfile::tempdir().expect("tmp");
    let process = Standalone::start(root.path(), &[("TASK_DELIVERY_LIMIT", "1")], false);
    process.ready().await;

    let (status, answer) = process.webhook("sa-1", &["ai-help"]).await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["task_id"], "github:sa-1");
    wait_record(root.path(), "sa-1", "done").await;
    assert_eq!(
        process.webhook("sa-1", &["ai-help"]).await.0,
        200,
        "duplicate"
    );

    // Requeue on a transient failure, then success.
    process
        .webhook("sa-flaky", &["ai-help", "test:fail-first=1"])
        .await;
    wait_record(root.path(), "sa-flaky", "done").await;
    assert_eq!(record(root.path(), "sa-flaky", "started").len(), 2);

    // Delivery limit 1: two attempts, reported, then a dead letter.
    process
        .webhook("sa-dead", &["ai-help", "test:fail=transient"])
        .await;
    wait_record(root.path(), "sa-dead", "exhausted").await;
    wait_until("dead letter", LONG, || !dead_rows(root.path()).is_empty()).await;
    assert_eq!(record(root.path(), "sa-dead", "started").len(), 2);
    assert_eq!(
        dead_rows(root.path()),
        vec![("delivery_limit".to_string(), 2)]
    );

    // Unsupported: dead-lettered at once.
    process
        .webhook("sa-reject", &["ai-help", "test:fail=unsupported"])
        .await;
    wait_until("rejected", LONG, || dead_rows(root.path()).len() == 2).await;
    assert_eq!(dead_rows(root.path())[1].0, "rejected");
    assert_eq!(record(root.path(), "sa-reject", "started").len(), 1);
}

#[tokio::test]
async fn embedded_queue_survives_a_crash() {
    let root = tempfile::tempdir().expect("tmp");
    let mut first = Standalone::start(root.path(), &[], false);
    first.ready().await;
    assert_eq!(
        first
            .webhook("sa-crash", &["ai-help", "test:sleep=4000"])
            .await
            .0,
        202
    );
    wait_record(root.path(), "sa-crash", "started").await;
    first.child.kill().expect("SIGKILL");
    let _ = first.child.wait();
    assert!(record(root.path(), "sa-crash", "done").is_empty());

    let second = Standalone::start(root.path(), &[], false);
    second.ready().await;
    wait_record(root.path(), "sa-crash", "done").await;
    let done = record(root.path(), "sa-crash", "done");
    assert_eq!(done.len(), 1);
    assert!(done[0].contains("attempt=2"), "{}", done[0]);
}

#[tokio::test]
async fn with_amqp_url_the_same_command_uses_rabbitmq() {
    let root = tempfile::tempdir().expect("tmp");
    let queue = testkit::unique_queue("standalone");
    let _queues = QueueGuard::new(&queue);
    let process = Standalone::start(root.path(), &[("TASK_QUEUE", &queue)], true);
    process.ready().await;
    assert_eq!(process.webhook("sa-broker", &["ai-help"]).await.0, 202);
    wait_record(root.path(), "sa-broker", "done").await;
    assert!(
        !root.path().join("queue.db").exists(),
        "no embedded queue with AMQP_URL"
    );
    let log = std::fs::read_to_string(&process.log).unwrap_or_default();
    assert!(log.contains("standalone: RabbitMQ"), "{log}");
}
