//! Notifications: a signed POST to `NOTIFY_URL` per finished, failed or cancelled task,
//! `X-Agent-Fleet-Signature-256: sha256=<HMAC-SHA256 of the body with NOTIFY_SECRET>` (the
//! scheme GitHub uses for its webhooks, so receivers can reuse their verification code).
//!
//! Like the ledger, a notification never holds up a task: [`Notifier::send`] queues it
//! (bounded; a full queue drops and counts), one task delivers, retrying 5xx, 429 and
//! network errors with backoff up to [`MAX_ATTEMPTS`] times; a 4xx other than 429 is not
//! retried (the receiver refused that body).

use hmac::{Hmac, Mac};
use prometheus::{IntCounterVec, Opts, Registry};
use serde::Serialize;
use sha2::Sha256;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Agent-Fleet-Signature-256";
/// Deliveries of one notification at most.
pub const MAX_ATTEMPTS: u32 = 6;
const QUEUE: usize = 1000;
const BACKOFF_FIRST: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The body of a notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// `task.finished`, `task.failed` or `task.cancelled`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub task_id: String,
    pub issue_key: String,
    pub issue_url: String,
    pub repo_url: String,
    pub mode: String,
    pub outcome: String,
    pub pr_url: Option<String>,
    pub cost_usd: f64,
    pub error: Option<String>,
}

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Where notifications go, and how they are signed.
#[derive(Clone)]
pub struct NotifyConfig {
    pub url: String,
    pub secret: Vec<u8>,
}

/// The secret never shows in `Debug` output (logs of the settings, panics), nor does the
/// URL past its host: a receiver's URL often is a secret itself (a chat webhook's path).
impl std::fmt::Debug for NotifyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifyConfig")
            .field("url", &origin_of(&self.url))
            .field("secret", &"***")
            .finish()
    }
}

/// The handle tasks notify through; a disabled one (no `NOTIFY_URL`) does nothing.
#[derive(Debug, Clone)]
pub struct Notifier {
    sender: Option<mpsc::Sender<Notification>>,
    outcomes: IntCounterVec,
    /// Notifications queued or being delivered, for [`Notifier::drain`].
    pending: Arc<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    count: AtomicUsize,
    changed: Notify,
}

impl Notifier {
    pub fn disabled(registry: &Registry) -> Self {
        Self {
            sender: None,
            outcomes: outcomes(registry),
            pending: Arc::default(),
        }
    }

    pub fn start(config: NotifyConfig, registry: &Registry) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let outcomes = outcomes(registry);
        let pending = Arc::<Pending>::default();
        tokio::spawn(deliver_loop(
            config,
            receiver,
            outcomes.clone(),
            Arc::clone(&pending),
        ));
        Self {
            sender: Some(sender),
            outcomes,
            pending,
        }
    }

    /// Queues `notification`; returns at once.
    pub fn send(&self, notification: Notification) {
        let Some(sender) = &self.sender else { return };
        self.pending.count.fetch_add(1, Ordering::SeqCst);
        if sender.try_send(notification).is_err() {
            self.pending.count.fetch_sub(1, Ordering::SeqCst);
            self.outcomes.with_label_values(&["dropped"]).inc();
            tracing::warn!("notification queue full: a notification was dropped");
        }
    }

    /// Waits until every queued notification was delivered or given up, or `timeout`
    /// passed (a worker about to exit). `true` when none is left.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let changed = self.pending.changed.notified();
                if self.pending.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

fn outcomes(registry: &Registry) -> IntCounterVec {
    let counter = IntCounterVec::new(
        Opts::new(
            "agent_fleet_notifications_total",
            "Task notifications by outcome (delivered, failed after retries, refused, dropped).",
        ),
        &["outcome"],
    )
    .expect("metric");
    let _ = registry.register(Box::new(counter.clone()));
    counter
}

async fn deliver_loop(
    config: NotifyConfig,
    mut receiver: mpsc::Receiver<Notification>,
    outcomes: IntCounterVec,
    pending: Arc<Pending>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    while let Some(notification) = receiver.recv().await {
        let outcome = deliver(&client, &config, &notification).await;
        outcomes.with_label_values(&[outcome]).inc();
        pending.count.fetch_sub(1, Ordering::SeqCst);
        pending.changed.notify_waiters();
    }
}

/// `scheme://host[:port]` of `url`, the rest shown as `/***`.
fn origin_of(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Credentials before the host are no part of what may be shown.
    let host = host.rsplit('@').next().unwrap_or(host);
    format!("{}{host}/***", &url[..start])
}

/// Why a POST did not get through, without the URL (which may carry a secret).
fn reason_of(error: reqwest::Error) -> String {
    error.without_url().to_string()
}

async fn deliver(
    client: &reqwest::Client,
    config: &NotifyConfig,
    notification: &Notification,
) -> &'static str {
    let body = serde_json::to_vec(notification).unwrap_or_default();
    let signed = signature(&config.secret, &body);
    let mut backoff = BACKOFF_FIRST;
    for attempt in 1..=MAX_ATTEMPTS {
        let answer = client
            .post(&config.url)
            .header("content-type", "application/json")
            .header(SIGNATURE_HEADER, &signed)
            .body(body.clone())
            .send()
            .await;
        let retry = match answer {
            Ok(response) if response.status().is_success() => return "delivered",
            Ok(response) => {
                let status = response.status();
                if status.is_client_error() && status.as_u16() != 429 {
                    tracing::warn!(%status, task_id = notification.task_id, "notification refused");
                    return "refused";
                }
                format!("HTTP {status}")
            }
            Err(error) => reason_of(error),
        };
        if attempt < MAX_ATTEMPTS {
            tracing::debug!(
                attempt,
                reason = retry,
                "notification not delivered; retrying"
            );
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        } else {
            tracing::warn!(
                reason = retry,
                task_id = notification.task_id,
                "notification given up"
            );
        }
    }
    "failed"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_receivers_url_never_shows_in_debug_output_or_errors() {
        let config = NotifyConfig {
            url: "https://user:pw@hooks.example.com/T0/B0/tok3n-part?k=v".into(),
            secret: b"s".to_vec(),
        };
        let shown = format!("{config:?}");
        assert!(shown.contains("https://hooks.example.com/***"), "{shown}");
        for secret in ["tok3n", "pw", "k=v"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        let refused = reqwest::Client::new()
            .post("http://127.0.0.1:1/hook/tok3n-part")
            .send()
            .await
            .expect_err("nothing listens on port 1");
        let reason = reason_of(refused);
        assert!(!reason.contains("tok3n"), "{reason}");
    }
}
