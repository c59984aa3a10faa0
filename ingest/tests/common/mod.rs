//! Test harness: an in-process ingest on port 0 with its own queue names, a client that
//! signs deliveries, a view of the queue through the real broker, and a TCP proxy that can
//! cut the ingest off from the broker.
#![allow(dead_code)]

pub mod raw;

use futures_util::FutureExt;
use ingest::{Application, IngestSettings};
use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use serde_json::Value;
use shared::settings::Env;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

pub const GITHUB_SECRET: &str = "gh-test-secret";
pub const JIRA_SECRET: &str = "jira-test-secret";
pub const AGENT_LOGIN: &str = "fleet-agent[bot]";
pub const AGENT_JIRA: &str = "712020:2f3e0c4a-agent";
pub const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

pub fn fixtures_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/fixtures")
}

pub fn fixture(relative: &str) -> Value {
    let path = fixtures_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).expect("fixture is JSON")
}

pub fn unique_queue(prefix: &str) -> String {
    format!("test-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

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

pub struct TestApp {
    pub addr: SocketAddr,
    pub queue: String,
    pub http: reqwest::Client,
    stop: Option<oneshot::Sender<()>>,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn spawn(overrides: &[(&str, &str)]) -> Self {
        Self::spawn_with_broker(BROKER, overrides).await
    }

    pub async fn spawn_with_broker(amqp_url: &str, overrides: &[(&str, &str)]) -> Self {
        let queue = unique_queue("ingest");
        let settings =
            IngestSettings::from_env(&test_env(&queue, amqp_url, overrides)).expect("settings");
        let app = Application::build(settings).await.expect("app builds");
        let addr = app.local_addr();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(stopped.map(|_| ())));
        Self {
            addr,
            queue,
            http: reqwest::Client::new(),
            stop: Some(stop),
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
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

    /// The value of a metric line (`name` with its labels, as rendered), if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let text = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
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
        self.http
            .post(self.url("/webhooks/github"))
            .header("content-type", "application/json")
            .header("x-github-event", event)
            .header("x-github-delivery", delivery)
            .header("x-hub-signature-256", ingest::signature::sign(secret, body))
            .body(body.to_vec())
            .send()
            .await
            .expect("request sent")
    }

    pub async fn jira(&self, identifier: &str, body: &[u8]) -> reqwest::Response {
        self.http
            .post(self.url("/webhooks/jira"))
            .header("content-type", "application/json")
            .header("x-atlassian-webhook-identifier", identifier)
            .header(
                "x-hub-signature",
                ingest::signature::sign(JIRA_SECRET, body),
            )
            .body(body.to_vec())
            .send()
            .await
            .expect("request sent")
    }

    /// Stops the server and deletes the test's queues.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.server)
            .await
            .expect("ingest stops within 10 s");
        result.expect("server task").expect("server ran cleanly");
        QueueView::connect(&self.queue).await.delete_all().await;
    }
}

/// The broker's view of a test's queues.
pub struct QueueView {
    pub queue: String,
    _connection: Connection,
    pub channel: Channel,
}

impl QueueView {
    pub async fn connect(queue: &str) -> Self {
        let connection = Connection::connect(BROKER, ConnectionProperties::default())
            .await
            .expect("broker on 127.0.0.1:5672");
        let channel = connection.create_channel().await.expect("channel");
        Self {
            queue: queue.to_owned(),
            _connection: connection,
            channel,
        }
    }

    /// Messages ready in `queue` (0 when it does not exist).
    pub async fn count(&self, queue: &str) -> u32 {
        let channel = self._connection.create_channel().await.expect("channel");
        let declared = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await;
        declared.map(|q| q.message_count()).unwrap_or(0)
    }

    /// Takes every ready message of the task queue (acked).
    pub async fn drain(&self) -> Vec<lapin::message::Delivery> {
        let mut out = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            out.push(message.delivery);
        }
        out
    }

    pub async fn delete_all(&self) {
        // The delay queues too: the ingest declares the whole topology.
        let retry_queues = shared::topology::Topology::new(&self.queue, 5)
            .retry_queues()
            .into_iter()
            .map(|q| q.name);
        for queue in [self.queue.clone(), format!("{}.dead", self.queue)]
            .into_iter()
            .chain(retry_queues)
        {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self
            .channel
            .exchange_delete(
                format!("{}.dlx", self.queue).as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

/// A TCP proxy to the broker that can be switched off: when off, it refuses new connections
/// and cuts the open ones, which is what a broker outage looks like to the ingest.
pub struct BrokerProxy {
    pub port: u16,
    enabled: Arc<AtomicBool>,
    cut: Arc<std::sync::Mutex<CancellationToken>>,
}

impl BrokerProxy {
    pub async fn start(enabled: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let enabled = Arc::new(AtomicBool::new(enabled));
        let cut = Arc::new(std::sync::Mutex::new(CancellationToken::new()));
        let (accept_enabled, accept_cut) = (enabled.clone(), cut.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !accept_enabled.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let token = accept_cut.lock().expect("lock").clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect("127.0.0.1:5672").await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = token.cancelled() => {}
                    }
                });
            }
        });
        Self { port, enabled, cut }
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::SeqCst);
        if !on {
            let mut token = self.cut.lock().expect("lock");
            token.cancel();
            *token = CancellationToken::new();
        }
    }
}
