//! The ingest, started in-process on port 0 (`ingest::Application`) with its own queue, and
//! signed deliveries and operator API calls to it. The ingest's own tests and the fleet
//! tests share it.

use crate::queues::QueueGuard;
use crate::webhook::{post_github, post_jira};
use futures_util::FutureExt;
use ingest::{Application, IngestSettings};
use shared::settings::Env;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

pub const GITHUB_SECRET: &str = "gh-test-secret";
pub const JIRA_SECRET: &str = "jira-test-secret";
pub const AGENT_LOGIN: &str = "fleet-agent[bot]";
pub const AGENT_JIRA: &str = "712020:2f3e0c4a-agent";

/// The settings every test starts from; `overrides` replace or remove (empty value) entries.
pub fn test_env(queue: &str, amqp_url: &str, overrides: &[(&str, &str)]) -> Env {
    let mut vars: HashMap<String, String> = [
        ("AMQP_URL", amqp_url),
        ("TASK_QUEUE", queue),
        ("TASK_DELIVERY_LIMIT", "5"),
        ("INGEST_BIND", "127.0.0.1:0"),
        ("GITHUB_WEBHOOK_SECRET", GITHUB_SECRET),
        ("JIRA_WEBHOOK_SECRET", JIRA_SECRET),
        ("AGENT_GITHUB_LOGIN", AGENT_LOGIN),
        ("AGENT_JIRA_ACCOUNT_ID", AGENT_JIRA),
        ("JIRA_PROJECTS", "PAY=https://github.com/acme/payments"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for (k, v) in overrides {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    Env::from_map(vars)
}

/// A running in-process ingest. Its queues are deleted when it is dropped.
#[derive(Debug)]
pub struct TestIngest {
    pub addr: SocketAddr,
    pub queue: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
    _queues: QueueGuard,
}

impl TestIngest {
    /// An ingest on a new queue `test-ingest-<uuid>` of the test broker.
    pub async fn spawn(overrides: &[(&str, &str)]) -> Self {
        Self::spawn_with_broker(crate::BROKER, overrides).await
    }

    pub async fn spawn_with_broker(amqp_url: &str, overrides: &[(&str, &str)]) -> Self {
        Self::spawn_on(&crate::unique_queue("ingest"), amqp_url, overrides).await
    }

    /// [`TestIngest::spawn`], then waits until it is ready (its broker connected).
    pub async fn ready(overrides: &[(&str, &str)]) -> Self {
        let app = Self::spawn(overrides).await;
        app.wait_ready(200).await;
        app
    }

    /// An ingest publishing to `queue` (a fleet test shares it with its workers).
    pub async fn spawn_on(queue: &str, amqp_url: &str, overrides: &[(&str, &str)]) -> Self {
        let queues = QueueGuard::new(queue);
        let settings =
            IngestSettings::from_env(&test_env(queue, amqp_url, overrides)).expect("settings");
        let app = Application::build(settings).await.expect("app builds");
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(stopped.map(|_| ())));
        Self {
            addr,
            queue: queue.to_owned(),
            http: reqwest::Client::new(),
            stop: Some(stop),
            server,
            _queues: queues,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The status a GET of `path` answers (`/healthz`, `/readyz`).
    pub async fn get_status(&self, path: &str) -> u16 {
        let response = self.http.get(self.url(path)).send().await.expect(path);
        response.status().as_u16()
    }

    /// Waits (bounded) until `/readyz` answers `want`.
    pub async fn wait_ready(&self, want: u16) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self
                .http
                .get(self.url("/readyz"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if status == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "/readyz never answered {want} (last {status})"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The `/metrics` page as rendered (the scrape must succeed).
    pub async fn metrics_text(&self) -> String {
        self.scrape().await.expect("metrics")
    }

    async fn scrape(&self) -> Result<String, reqwest::Error> {
        let response = self.http.get(self.url("/metrics")).send().await?;
        response.text().await
    }

    /// The value of a metric line (`name` with its labels, as rendered), if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self.scrape().await.ok()?;
        text.lines().find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Waits (bounded) until the metric line `name` reads `want`.
    pub async fn wait_metric(&self, name: &str, want: f64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let value = self.metric(name).await;
            if value == Some(want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} never reached {want} (last {value:?})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A GitHub delivery signed with the default secret.
    pub async fn github(&self, event: &str, delivery: &str, body: &[u8]) -> reqwest::Response {
        self.github_signed(event, delivery, body, GITHUB_SECRET)
            .await
    }

    pub async fn github_signed(
        &self,
        event: &str,
        delivery: &str,
        body: &[u8],
        secret: &str,
    ) -> reqwest::Response {
        let url = self.url("/webhooks/github");
        post_github(&self.http, &url, secret, event, delivery, body).await
    }

    /// A Jira delivery signed with the default secret.
    pub async fn jira(&self, identifier: &str, body: &[u8]) -> reqwest::Response {
        let url = self.url("/webhooks/jira");
        post_jira(&self.http, &url, JIRA_SECRET, identifier, body).await
    }

    /// A call of the operator API (`GET` or `POST` `path`, `token` as the bearer, none for
    /// an anonymous call): the status and the JSON answer (`Null` when it is not JSON).
    pub async fn api(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
    ) -> (u16, serde_json::Value) {
        let url = self.url(path);
        let request = match method {
            "POST" => self.http.post(url),
            "GET" => self.http.get(url),
            other => panic!("the API has no {other} routes"),
        };
        let request = match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Stops the server, asserting that it stops cleanly; the queues go with the guard.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("ingest stops within 10 s");
        result.expect("server task").expect("server ran cleanly");
    }
}

/// Asserts that the ingest answered `status` and returns its JSON answer.
pub async fn json_answer(response: reqwest::Response, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    response.json().await.expect("json")
}
