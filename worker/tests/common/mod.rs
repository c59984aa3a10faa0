//! Test harness for the worker: spawns the real `worker` binary against the real broker with
//! its own queue, publishes tasks, and reads what the test-only recorder handler wrote. The
//! broker-side helpers (queue view and guard, task builder, waiting) come from `testkit`;
//! `internals` is the one place the tests name the worker library's paths.
#![allow(dead_code, unused_imports)]

use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::Value;
use shared::TaskMessage;
use shared::amqp::Publisher;
use shared::topology::Topology;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use testkit::{QueueGuard, QueueView, TaskBuilder};

pub mod internals;
pub mod pulls;
pub mod standins;
pub mod world;

pub use testkit::{BROKER, free_port, issue_number_of, wait_until};

/// One test's world: a queue, a shared workspace dir and a record dir.
/// Its queues are deleted when it is dropped, also when the test failed first.
pub struct Fleet {
    pub queue: String,
    pub root: tempfile::TempDir,
    pub delivery_limit: u32,
    view: QueueView,
    _connection: Connection,
    pub publisher: Publisher,
    _queues: QueueGuard,
}

impl Fleet {
    pub async fn new(prefix: &str, delivery_limit: u32) -> Self {
        let queue = testkit::unique_queue(prefix);
        let queues = QueueGuard::new(&queue);
        let connection = Connection::connect(BROKER, ConnectionProperties::default())
            .await
            .expect("RabbitMQ on 127.0.0.1:5672");
        let publisher = Publisher::open(
            &connection,
            &Topology::new(&queue, delivery_limit),
            Duration::from_secs(5),
        )
        .await
        .expect("topology");
        Self {
            view: QueueView::connect(&queue).await,
            queue,
            root: tempfile::tempdir().expect("tmp"),
            delivery_limit,
            _connection: connection,
            publisher,
            _queues: queues,
        }
    }

    pub fn workspace(&self) -> PathBuf {
        self.root.path().join("workspace")
    }

    pub fn records(&self) -> PathBuf {
        self.root.path().join("records")
    }

    pub fn spawn(&self, extra: &[(&str, &str)]) -> WorkerProc {
        self.spawn_args(&[], extra)
    }

    /// [`Fleet::spawn`], then waits until the worker is ready.
    pub async fn ready_worker(&self, extra: &[(&str, &str)]) -> WorkerProc {
        let worker = self.spawn(extra);
        worker.wait_ready().await;
        worker
    }

    pub fn spawn_args(&self, args: &[&str], extra: &[(&str, &str)]) -> WorkerProc {
        let port = free_port();
        let log = self
            .root
            .path()
            .join(format!("worker-{}.log", uuid::Uuid::new_v4().simple()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
        command
            .args(args)
            .env("AMQP_URL", BROKER)
            .env("TASK_QUEUE", &self.queue)
            .env("TASK_DELIVERY_LIMIT", self.delivery_limit.to_string())
            .env("WORKER_HANDLER", "test")
            .env("TEST_HANDLER_DIR", self.records())
            .env("WORKSPACE_DIR", self.workspace())
            .env("METRICS_BIND", format!("127.0.0.1:{port}"))
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawn worker");
        WorkerProc { child, port, log }
    }

    pub fn task(&self, id: &str, labels: &[&str]) -> TaskMessage {
        TaskBuilder::github(id).labels(labels).build()
    }

    pub async fn publish(&self, task: &TaskMessage) {
        self.publisher.publish(task).await.expect("published");
    }

    /// Publishes a task built by [`Fleet::task`].
    pub async fn publish_task(&self, id: &str, labels: &[&str]) {
        self.publish(&self.task(id, labels)).await;
    }

    pub async fn publish_raw(&self, body: &[u8]) {
        self.publisher
            .publish_bytes(body, BasicProperties::default().with_delivery_mode(2))
            .await
            .expect("published");
    }

    /// Ready messages in a queue.
    pub async fn ready(&self, queue: &str) -> u32 {
        self.view.count(queue).await
    }

    /// Consumers of a queue (a worker's consumers go with its connection).
    pub async fn consumers(&self, queue: &str) -> u32 {
        self.view.consumers(queue).await
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }

    /// Takes the dead-lettered messages.
    pub async fn take_dead(&self) -> Vec<lapin::message::Delivery> {
        self.view.take(&self.dead_queue()).await
    }

    /// Lines of a record file of the test handler (`started`, `done`, `exhausted`).
    pub fn record(&self, task_id: &str, kind: &str) -> Vec<String> {
        read_record(&self.records(), task_id, kind)
    }

    /// Waits (bounded) until task `task_id` has a `kind` record, and returns its lines.
    pub async fn wait_record(&self, task_id: &str, kind: &str) -> Vec<String> {
        wait_record(&self.records(), task_id, kind).await
    }
}

/// How long a test waits for the test handler to write a record.
pub const RECORD_WAIT: Duration = Duration::from_secs(60);

/// Lines of the test handler's record file for `task_id` and `kind` under the records dir
/// `dir` (the file named as the handler names it).
pub fn read_record(dir: &Path, task_id: &str, kind: &str) -> Vec<String> {
    let name = internals::record_name(task_id);
    std::fs::read_to_string(dir.join(format!("{name}.{kind}")))
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Waits (bounded by [`RECORD_WAIT`]) until the record exists, and returns its lines.
pub async fn wait_record(dir: &Path, task_id: &str, kind: &str) -> Vec<String> {
    wait_until(&format!("{task_id}: {kind}"), RECORD_WAIT, || {
        !read_record(dir, task_id, kind).is_empty()
    })
    .await;
    read_record(dir, task_id, kind)
}

/// The `workdir=` of a record line.
pub fn workdir_of(line: &str) -> PathBuf {
    PathBuf::from(line.split("workdir=").nth(1).expect("workdir in record"))
}

pub fn pid_of(line: &str) -> u32 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .expect("pid in record")
}

pub struct WorkerProc {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
}

impl WorkerProc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn wait_ready(&self) {
        let url = format!("http://127.0.0.1:{}/readyz", self.port);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status().as_u16() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "worker never became ready; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit, at most `within`.
    pub async fn exit_status(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "worker did not exit; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The JSON log lines.
    pub fn log_lines(&self) -> Vec<Value> {
        testkit::outcome::json_lines(&self.log)
    }

    /// Waits for task `id` to finish and asserts its logged outcome (the log on failure).
    pub async fn assert_outcome(&self, id: &str, want: &str) {
        testkit::assert_outcome(&self.log, id, want).await;
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Closes this process' broker connection from the broker side, as an operator (or a
/// broker restart) would. Only this worker's connection: tests run in parallel.
pub fn close_broker_connection_of(pid: u32) {
    let output = Command::new("rabbitmqctl")
        .args(["list_connections", "pid", "client_properties", "-q"])
        .output()
        .expect("rabbitmqctl");
    let text = String::from_utf8_lossy(&output.stdout);
    let wanted = format!("agent-fleet worker ({pid})");
    let conn_pid = text
        .lines()
        .find(|line| line.contains(&wanted))
        .and_then(|line| line.split('\t').next())
        .unwrap_or_else(|| panic!("no broker connection for {wanted}: {text}"))
        .to_owned();
    let status = Command::new("rabbitmqctl")
        .args(["close_connection", &conn_pid, "closed by test", "-q"])
        .status()
        .expect("rabbitmqctl");
    assert!(status.success());
}

/// The `reason` of the first `x-death` entry of a dead-lettered message.
pub fn death_reason(message: &lapin::message::Delivery) -> String {
    use lapin::types::AMQPValue;
    let headers = message.properties.headers().clone().unwrap_or_default();
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death").cloned() else {
        return String::new();
    };
    match deaths.as_slice().first() {
        Some(AMQPValue::FieldTable(death)) => match death.inner().get("reason") {
            Some(AMQPValue::LongString(reason)) => {
                String::from_utf8_lossy(reason.as_bytes()).into_owned()
            }
            _ => String::new(),
        },
        _ => String::new(),
    }
}

pub fn exists(path: &Path) -> bool {
    path.exists()
}
