//! The task ledger of `worker standalone` in its SQLite file (STANDALONE_DB, no
//! DATABASE_URL), end to end: the real binary on its embedded queue, the GitHub and LLM
//! stand-ins, signed webhooks. Its operator API shows a task that opened a PR with its
//! phases, tokens, cost and PR, and the audit trail its trigger, push and pull request; a
//! valid task that was dead-lettered and a poison message show in the dead letters, and
//! the replay of the valid one runs it to its PR; tokens are checked as in the fleet (401,
//! 403); a restarted process still has it all (it is a file). With DATABASE_URL, the same
//! command keeps its ledger in PostgreSQL and none in the file.

mod common;

use common::free_port;
use common::standins::Answer;
use common::world::{GITHUB_TOKEN, LLM_KEY, REPO, World, good_answer};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use testkit::wait::poll_until;
use testkit::webhook::{github_labeled, post_github};

const SECRET: &str = "standalone-ledger-secret";
const VIEWER: &str = "viewer-token-0123456789";
const OPERATOR: &str = "operator-token-0123456789";
const QUEUE: &str = "sa-ledger-tasks";
/// 1200 input and 80 output tokens per stand-in answer at 3/15 USD per million: 0.0048 USD.
const PRICES: &str = "test-model=3/15";
const LONG: Duration = Duration::from_secs(90);

struct Standalone {
    child: Child,
    port: u16,
    log: PathBuf,
    http: reqwest::Client,
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
    async fn start(world: &World, db: &Path, extra: &[(&str, &str)]) -> Self {
        let root = world.fleet.root.path();
        let port = free_port();
        let log = root.join(format!("standalone-{}.log", uuid::Uuid::new_v4().simple()));
        let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
        command
            .arg("standalone")
            .env_remove("AMQP_URL")
            .env_remove("DATABASE_URL")
            .env("STANDALONE_DB", db)
            .env("TASK_QUEUE", QUEUE)
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

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A signed `issues.labeled` (`ai-help`) for issue `number` of the world's repository,
    /// by `dev1`: 202 and the task id.
    async fn webhook(&self, world: &World, delivery: &str, number: u64) -> String {
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

    async fn call(&self, method: &str, path: &str, token: Option<&str>) -> (u16, Value) {
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
    async fn task_when(&self, task_id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
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
    async fn dead_letter(&self, message_id: &str) -> Value {
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

fn letter_in(body: &Value, message_id: &str) -> Option<Value> {
    body["dead_letters"]
        .as_array()?
        .iter()
        .find(|l| l["message_id"] == message_id)
        .cloned()
}

/// Puts a body no worker can read onto the embedded queue, as a broken publisher would.
fn publish_poison(db: &Path, message_id: &str) {
    let db = rusqlite::Connection::open(db).expect("db");
    db.busy_timeout(Duration::from_secs(5)).expect("timeout");
    let now = chrono::Utc::now().timestamp_millis();
    db.execute(
        "INSERT INTO messages (queue, body, message_id, state, enqueued_at, updated_at, position)
         VALUES (?1, ?2, ?3, 'ready', ?4, ?4, (SELECT COALESCE(MAX(position), 0) + 1 FROM messages))",
        rusqlite::params![QUEUE, b"\xff not a task".to_vec(), message_id, now],
    )
    .expect("poison published");
}

fn kinds_of(entries: &Value, task_id: &str) -> Vec<String> {
    entries["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["task_id"] == task_id)
        .filter_map(|e| e["kind"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn standalone_keeps_its_ledger_in_its_sqlite_file_and_serves_the_operator_api() {
    let world = World::new(
        "sa-ledger",
        5,
        &[(
            "edit",
            vec![
                Answer::Status(503, Some(0)),
                Answer::Status(503, Some(0)),
                Answer::Text(good_answer()),
            ],
        )],
    )
    .await;
    let db = world.fleet.root.path().join("standalone.db");
    let process = Standalone::start(&world, &db, &[]).await;

    // Tokens as in the fleet.
    assert_eq!(process.call("GET", "/api/v1/tasks", None).await.0, 401);
    let wrong = Some("not-a-token-0123456789");
    assert_eq!(process.call("GET", "/api/v1/audit", wrong).await.0, 401);

    // The LLM is down for both deliveries of the first task: a dead letter.
    let dead = process.webhook(&world, "sa-ledger-dead", 81).await;
    let letter = process.dead_letter(&dead).await;
    assert_eq!(letter["reason"], "delivery_limit", "{letter}");
    assert_eq!(letter["task_id"], dead.as_str(), "{letter}");
    let row = process
        .task_when(&dead, "the ledger shows it dead", |t| t["state"] == "dead")
        .await;
    assert_eq!(row["attempts"], 2, "{row}");

    // The next task opens its PR.
    let done = process.webhook(&world, "sa-ledger-done", 82).await;
    let row = process
        .task_when(&done, "the ledger shows it done", |t| {
            t["state"] == "done" && !t["pr_url"].is_null()
        })
        .await;
    let pulls = world.github.pulls();
    assert_eq!(pulls.len(), 1, "{pulls:?}");
    assert_eq!(row["pr_url"], pulls[0]["html_url"], "{row}");
    assert_eq!(row["issue"]["key"], format!("{REPO}#82"), "{row}");
    assert_eq!(row["trigger_user"], "dev1", "{row}");
    assert_eq!(
        (row["attempts"].as_i64(), row["llm_calls"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        row["tokens"],
        json!({ "input": 1200, "output": 80 }),
        "{row}"
    );
    assert!(
        (row["cost_usd"].as_f64().expect("cost") - 0.0048).abs() < 1e-9,
        "{row}"
    );
    let events = row["events"].as_array().expect("events");
    let phases: Vec<&str> = events
        .iter()
        .filter(|e| e["kind"] == "phase")
        .filter_map(|e| e["phase"].as_str())
        .collect();
    for phase in ["cloned", "context", "pushed", "pr"] {
        assert!(phases.contains(&phase), "{phase} in {phases:?}");
    }
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(kinds.first(), Some(&"received"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"finished"), "{kinds:?}");

    let (status, list) = process.call("GET", "/api/v1/tasks", Some(VIEWER)).await;
    assert_eq!(status, 200, "{list}");
    let listed: Vec<&str> = list["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["task_id"].as_str())
        .collect();
    assert_eq!(listed, [done.as_str(), dead.as_str()], "newest first");
    let (_, only_dead) = process
        .call("GET", "/api/v1/tasks?state=dead", Some(VIEWER))
        .await;
    assert_eq!(
        only_dead["tasks"].as_array().map(Vec::len),
        Some(1),
        "{only_dead}"
    );

    let (_, audit) = poll_until(
        "the audit has the PR",
        LONG,
        || process.call("GET", "/api/v1/audit", Some(VIEWER)),
        |(_, a)| kinds_of(a, &done).contains(&"pull_request".to_owned()),
    )
    .await;
    let kinds = kinds_of(&audit, &done);
    for kind in ["trigger", "permission", "push", "pull_request"] {
        assert!(kinds.contains(&kind.to_owned()), "{kind} in {kinds:?}");
    }
    let trigger = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["task_id"] == done.as_str() && e["kind"] == "trigger")
        .expect("trigger");
    assert_eq!(trigger["actor"], "dev1", "{trigger}");
    assert_eq!(
        trigger["detail"]["delivery_id"], "sa-ledger-done",
        "{trigger}"
    );

    // A poison message is rejected and listed.
    publish_poison(&db, "poison-1");
    let poison = process.dead_letter("poison-1").await;
    assert_eq!(poison["reason"], "rejected", "{poison}");
    assert_eq!(poison["task_id"], Value::Null, "{poison}");

    // The console reads the same ledger.
    let page = process
        .http
        .get(format!(
            "http://127.0.0.1:{}/console/tasks/{done}?token={VIEWER}",
            process.port
        ))
        .send()
        .await
        .expect("console");
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.expect("html");
    assert!(
        html.contains(pulls[0]["html_url"].as_str().expect("url")),
        "{html}"
    );

    // A restart keeps it all: the ledger is in the file.
    drop(process);
    let process = Standalone::start(&world, &db, &[]).await;
    let row = process
        .task_when(&done, "kept", |t| t["state"] == "done")
        .await;
    assert_eq!(row["pr_url"], pulls[0]["html_url"], "{row}");
    assert_eq!(process.dead_letter(&dead).await["reason"], "delivery_limit");
    process.dead_letter("poison-1").await;

    // Replays: a viewer may not, an unknown letter is 404, the dead task runs to its PR.
    let replay = format!("/api/v1/dead-letters/{dead}/replay");
    assert_eq!(process.call("POST", &replay, Some(VIEWER)).await.0, 403);
    let (status, body) = process
        .call(
            "POST",
            "/api/v1/dead-letters/nothing/replay",
            Some(OPERATOR),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = process.call("POST", &replay, Some(OPERATOR)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["task_id"], dead.as_str(), "{body}");
    assert_eq!(
        process.call("POST", &replay, Some(OPERATOR)).await.0,
        409,
        "replayed once"
    );
    let row = process
        .task_when(&dead, "the replayed task is done", |t| {
            t["state"] == "done" && !t["pr_url"].is_null()
        })
        .await;
    assert_eq!(world.github.pulls().len(), 2, "the replay opened its PR");
    assert_eq!(row["issue"]["key"], format!("{REPO}#81"), "{row}");
    let (_, open) = process
        .call("GET", "/api/v1/dead-letters", Some(VIEWER))
        .await;
    assert!(letter_in(&open, &dead).is_none(), "{open}");
    assert!(letter_in(&open, "poison-1").is_some(), "{open}");
    let (_, all) = process
        .call("GET", "/api/v1/dead-letters?all=true", Some(VIEWER))
        .await;
    let replayed = letter_in(&all, &dead).expect("kept after the replay");
    assert_eq!(replayed["replayed_by"], "alice", "{replayed}");
    let (_, audit) = process.call("GET", "/api/v1/audit", Some(VIEWER)).await;
    let entry = audit["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["kind"] == "replay")
        .cloned()
        .expect("the replay is audited");
    assert_eq!(entry["actor"], "alice", "{entry}");
    assert_eq!(entry["task_id"], dead.as_str(), "{entry}");

    // A retry publishes the task again under a new id, recorded in the same ledger.
    let (status, body) = process
        .call(
            "POST",
            &format!("/api/v1/tasks/{done}/retry"),
            Some(OPERATOR),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let retry = body["task_id"].as_str().expect("new id").to_owned();
    let row = process
        .task_when(&retry, "the retry is recorded", |_| true)
        .await;
    assert_eq!(row["issue"]["key"], format!("{REPO}#82"), "{row}");
    assert_eq!(
        process
            .call("POST", &format!("/api/v1/tasks/{done}/retry"), Some(VIEWER))
            .await
            .0,
        403
    );
}

/// The tables of the SQLite file whose names start with `ledger_`.
fn ledger_tables(db: &Path) -> Vec<String> {
    let db = rusqlite::Connection::open(db).expect("db");
    let mut statement = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'ledger_%'")
        .expect("sql");
    statement
        .query_map([], |r| r.get(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

#[tokio::test]
async fn with_database_url_standalone_keeps_its_ledger_in_postgresql() {
    let pg = testkit::db::TestDb::new("standalone_ledger").await;
    let url = pg.url();
    let world = World::new(
        "sa-ledger-pg",
        5,
        &[("edit", vec![Answer::Text(good_answer())])],
    )
    .await;
    let db = world.fleet.root.path().join("standalone.db");
    let process = Standalone::start(&world, &db, &[("DATABASE_URL", url.as_str())]).await;
    let task_id = process.webhook(&world, "sa-ledger-pg", 91).await;
    let pool = fleet_ledger::pool(&url, 2).expect("pool");
    let row = poll_until(
        "PostgreSQL shows the task done",
        LONG,
        || fleet_ledger::query::task(&pool, &task_id),
        |row| matches!(row, Ok(Some(row)) if row.state == "done" && row.pr_url.is_some()),
    )
    .await
    .expect("query")
    .expect("row");
    let served = process
        .task_when(&task_id, "the API shows it", |t| t["state"] == "done")
        .await;
    assert_eq!(served["pr_url"].as_str(), row.pr_url.as_deref(), "{served}");
    assert!(db.exists(), "the embedded queue is in the file");
    assert!(ledger_tables(&db).is_empty(), "{:?}", ledger_tables(&db));
}
