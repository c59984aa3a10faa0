//! The real `worker standalone` binary for the standalone tests (included by each as a
//! module): started on its embedded queue and SQLite file with the agent on the world's
//! stand-ins, signed webhooks, the operator API.
#![allow(dead_code)]

use super::common::free_port;
use super::common::world::{GITHUB_TOKEN, LLM_KEY, REPO, World};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testkit::wait::poll_until;
use testkit::webhook::{github_labeled, post_github};

pub const SECRET: &str = "standalone-ledger-secret";
pub const VIEWER: &str = "viewer-token-0123456789";
pub const OPERATOR: &str = "operator-token-0123456789";
/// 1200 input and 80 output tokens per stand-in answer at 3/15 USD per million: 0.0048 USD.
pub const PRICES: &str = "test-model=3/15";
pub const LONG: Duration = Duration::from_secs(90);

pub struct Standalone {
    child: Child,
    pub port: u16,
    log: PathBuf,
    pub http: reqwest::Client,
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Standalone {
    /// `worker standalone` with the agent on the world's stand-ins, its queue and ledger in
    /// `db`. The LLM is not retried and a task gets two deliveries: an LLM that is down
    /// twice dead-letters it.
    pub async fn start(world: &World, db: &Path, queue: &str, extra: &[(&str, &str)]) -> Self {
        let root = world.fleet.root.path();
        let port = free_port();
        let log = root.join(format!("standalone-{}.log", uuid::Uuid::new_v4().simple()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
        command
            .arg("standalone")
            .env_remove("AMQP_URL")
            .env_remove("DATABASE_URL")
            .env("STANDALONE_DB", db)
            .env("TASK_QUEUE", queue)
            .env("TASK_DELIVERY_LIMIT", "1")
            .env("LLM_MAX_RETRIES", "0")
            .env("LLM_PRICES", PRICES)
            .env("WORKSPACE_DIR", root.join("workspace"))
            .env("INGEST_BIND", format!("127.0.0.1:{port}"))
            .env("METRICS_BIND", format!("127.0.0.1:{}", free_port()))
            .env("GITHUB_WEBHOOK_SECRET", SECRET)
            .env(
                "API_TOKENS",
                format!("grafana:viewer:{VIEWER},alice:operator:{OPERATOR}"),
            )
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .env("WORKER_HANDLER", "agent")
            .env("GITHUB_API_URL", &world.github.url)
            .env("GITHUB_TOKEN", GITHUB_TOKEN)
            .env("LLM_PROVIDER", "anthropic")
            .env("LLM_MODEL", "test-model")
            .env("LLM_BASE_URL", &world.llm.url)
            .env("ANTHROPIC_API_KEY", LLM_KEY)
            .env("AGENT_GITHUB_LOGIN", "fleet-agent[bot]")
            .env("AGENT_GIT_NAME", "Fleet Agent")
            .env("AGENT_GIT_EMAIL", "fleet@example.com")
            .envs(world.repos.git_env())
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"));
        let process = Self {
            child: command.spawn().expect("spawn"),
            port,
            log,
            http: reqwest::Client::new(),
        };
        let ready = format!("http://127.0.0.1:{port}/readyz");
        let http = process.http.clone();
        poll_until(
            "standalone is ready",
            LONG,
            || http.get(&ready).send(),
            |r| r.as_ref().is_ok_and(|r| r.status().as_u16() == 200),
        )
        .await
        .unwrap_or_else(|_| panic!("{}", process.log_text()));
        process
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A signed `issues.labeled` (`ai-help`) for issue `number` of the world's repository,
    /// by `dev1`: 202 and the task id.
    pub async fn webhook(&self, world: &World, delivery: &str, number: u64) -> String {
        let title = "Refunds are not rounded";
        let body = "Refund amounts like 10.005 must be rounded in pay/refunds.py";
        world.github.issue_if_unknown(number, title, body);
        let mut payload = github_labeled("ai-help");
        payload["repository"]["html_url"] = json!(format!("https://github.com/{REPO}"));
        payload["repository"]["full_name"] = json!(REPO);
        payload["issue"]["number"] = json!(number);
        payload["issue"]["title"] = json!(title);
        payload["issue"]["body"] = json!(body);
        payload["issue"]["html_url"] = json!(format!("https://github.com/{REPO}/issues/{number}"));
        payload["issue"]["labels"] = json!([{ "name": "ai-help" }]);
        payload["sender"]["login"] = json!("dev1");
        let response = post_github(
            &self.http,
            &format!("http://127.0.0.1:{}/webhooks/github", self.port),
            SECRET,
            "issues",
            delivery,
            payload.to_string().as_bytes(),
        )
        .await;
        let status = response.status().as_u16();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        assert_eq!(status, 202, "{answer}");
        answer["task_id"].as_str().expect("task_id").to_owned()
    }

    pub async fn call(&self, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
        let url = format!("http://127.0.0.1:{}{path}", self.port);
        let request = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Waits until `GET /api/v1/tasks/{task_id}` satisfies `done`, and returns it.
    pub async fn task_when(
        &self,
        task_id: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let path = format!("/api/v1/tasks/{task_id}");
        poll_until(
            what,
            LONG,
            || self.call("GET", &path, Some(VIEWER)),
            |(status, body)| *status == 200 && done(body),
        )
        .await
        .1
    }

    /// Waits until the open dead letters hold one with `message_id`, and returns it.
    pub async fn dead_letter(&self, message_id: &str) -> Value {
        let (_, body) = poll_until(
            "the dead letter is listed",
            LONG,
            || self.call("GET", "/api/v1/dead-letters", Some(VIEWER)),
            |(status, body)| *status == 200 && letter_in(body, message_id).is_some(),
        )
        .await;
        letter_in(&body, message_id).expect("listed")
    }
}

/// Puts `body` onto `queue` of the embedded queue's file `db` as the ingest's publish would
/// (ready, at the back), straight through SQLite: for what no webhook sends (a poison body,
/// a task asked for earlier).
pub fn put_on_queue(db: &Path, queue: &str, body: &[u8], message_id: &str) {
    let db = rusqlite::Connection::open(db).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("timeout");
    let now = chrono::Utc::now().timestamp_millis();
    db.execute(
        "INSERT INTO messages (queue, body, message_id, state, enqueued_at, updated_at, position)
         VALUES (?1, ?2, ?3, 'ready', ?4, ?4, (SELECT COALESCE(MAX(position), 0) + 1 FROM messages))",
        rusqlite::params![queue, body, message_id, now],
    )
    .expect("put on the queue");
}

pub fn letter_in(body: &Value, message_id: &str) -> Option<Value> {
    body["dead_letters"]
        .as_array()?
        .iter()
        .find(|l| l["message_id"] == message_id)
        .cloned()
}

impl Standalone {
    /// A signed GitHub delivery of `event` with `payload`: its status and answer.
    pub async fn github(&self, event: &str, delivery: &str, payload: &Value) -> (u16, Value) {
        let response = post_github(
            &self.http,
            &format!("http://127.0.0.1:{}/webhooks/github", self.port),
            SECRET,
            event,
            delivery,
            payload.to_string().as_bytes(),
        )
        .await;
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Whether the process logged a line whose message is `message`.
    pub fn logged(&self, message: &str) -> bool {
        testkit::outcome::json_lines(&self.log)
            .iter()
            .any(|l| l["message"] == message)
    }

    /// Waits for task `id` to finish and asserts its logged outcome (the log on failure).
    pub async fn assert_outcome(&self, id: &str, want: &str) {
        testkit::assert_outcome(&self.log, id, want).await;
    }
}
