//! The HTTP application: routes, the webhook handlers, and [`Application`], which binds
//! (port 0 in tests), keeps the broker link alive and shuts down gracefully.

use crate::admission::{self, Admission};
use crate::api::ApiState;
use crate::api::dead_letters::DeadLetterQueue;
use crate::dedupe::{Claim, Deliveries};
use crate::metrics::IngestMetrics;
use crate::normalize::{Normalized, PayloadError};
use crate::records::Records;
use crate::serve::{ServeLimits, serve};
use crate::settings::IngestSettings;
use crate::signature::{self, SignatureError};
use crate::{github, jira};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use fleet_ledger::AuditKind;
use fleet_ledger::sqlite::SqliteLedger;
use serde_json::{Value, json};
use shared::TaskMessage;
use shared::amqp::{BrokerLink, PublishError};
use shared::control::ControlMessage;
use shared::queue::TaskSink;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How long a publish may wait for the broker's confirm: well under GitHub's 10 s delivery
/// timeout, so a struggling broker turns into a quick 503 rather than a hung delivery.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(3);
/// What a 503 tells the sender to wait before retrying.
pub const RETRY_AFTER_SECS: u64 = 5;
/// How many published delivery ids a replica remembers for duplicate detection.
const REMEMBERED_DELIVERIES: usize = 100_000;

#[derive(Clone, Debug)]
struct AppState {
    settings: Arc<IngestSettings>,
    sink: Arc<dyn TaskSink>,
    deliveries: Deliveries,
    metrics: IngestMetrics,
    records: Records,
}

/// What `worker standalone` on its embedded queue hands the ingest: the queue tasks are
/// published to, its dead letters, and (used when `DATABASE_URL` is unset) the ledger in
/// the same SQLite file.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub sink: Arc<dyn TaskSink>,
    pub dead_letters: Arc<dyn DeadLetterQueue>,
    pub ledger: Option<SqliteLedger>,
}

/// A bound, ready-to-run ingest.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    cancel: CancellationToken,
    broker_task: Option<tokio::task::JoinHandle<()>>,
}

impl Application {
    /// Binds `settings.bind` and starts connecting to the broker in the background: the
    /// service is up (and `/readyz` says 503) even while the broker is not.
    pub async fn build(settings: IngestSettings) -> anyhow::Result<Self> {
        Self::build_with(settings, None).await
    }

    /// The same, on the embedded queue of `worker standalone` when given: publishing to
    /// it, taking its dead letters, and, without `DATABASE_URL`, recording in its ledger.
    pub async fn build_with(
        settings: IngestSettings,
        embedded: Option<Embedded>,
    ) -> anyhow::Result<Self> {
        let (sink, dead_queue, ledger) = match embedded {
            Some(e) => (Some(e.sink), Some(e.dead_letters), e.ledger),
            None => (None, None, None),
        };
        let listener = TcpListener::bind(settings.bind)
            .await
            .map_err(|e| anyhow::anyhow!("INGEST_BIND {}: cannot listen: {e}", settings.bind))?;
        let cancel = CancellationToken::new();
        let mut broker_link = None;
        let (sink, broker_task) = match sink {
            Some(sink) => (sink, None),
            None => {
                let (broker, task) = BrokerLink::spawn(
                    settings.common.amqp_url.clone(),
                    settings.common.topology(),
                    format!("agent-fleet ingest ({})", std::process::id()),
                    CONFIRM_TIMEOUT,
                    cancel.child_token(),
                );
                broker_link = Some(broker.clone());
                (Arc::new(broker) as Arc<dyn TaskSink>, Some(task))
            }
        };
        let metrics = IngestMetrics::new();
        let records = match ledger.filter(|_| settings.common.database_url.is_none()) {
            Some(db) => Records::sqlite(db, settings.common.ledger_buffer, &metrics.registry),
            None => {
                Records::start(&settings.common, &metrics.registry, cancel.child_token()).await?
            }
        };
        let api_state = ApiState {
            tokens: Arc::new(settings.api_tokens.clone()),
            records: records.clone(),
            sink: sink.clone(),
            broker: broker_link,
            dead_queue,
            topology: settings.common.topology(),
        };
        let api = crate::api::router(api_state.clone()).merge(crate::console::router(api_state));
        // Bodies are received (and bounded) by the admission layer, before any handler.
        let admission = Arc::new(Admission::new(
            settings.max_body_bytes,
            settings.request_timeout,
            settings.max_concurrency,
            metrics.clone(),
        ));
        let limits = ServeLimits {
            header_timeout: settings.request_timeout,
            // A request let in just before shutdown: its headers, its body, its publish.
            drain: settings.request_timeout * 2 + CONFIRM_TIMEOUT + Duration::from_secs(1),
        };
        let state = AppState {
            settings: Arc::new(settings),
            sink: sink.clone(),
            deliveries: Deliveries::new(REMEMBERED_DELIVERIES),
            metrics: metrics.clone(),
            records,
        };
        let webhooks = Router::new()
            .route("/webhooks/github", post(github_webhook))
            .route("/webhooks/jira", post(jira_webhook))
            .layer(DefaultBodyLimit::disable())
            .layer(axum::middleware::from_fn_with_state(
                admission,
                admission::receive,
            ))
            .with_state(state);
        let router = webhooks.merge(api).merge(shared::telemetry::ops_router(
            metrics.registry.clone(),
            Arc::new(move || sink.is_ready()),
        ));
        Ok(Self {
            listener,
            router,
            limits,
            cancel,
            broker_task,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// Serves until `shutdown` resolves: then stops accepting, lets in-flight requests
    /// finish (within a bound), and closes the broker channel and connection. Headers must
    /// arrive within `INGEST_REQUEST_TIMEOUT_SECS` (see [`crate::serve`]).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        tracing::info!(addr = %self.local_addr(), "ingest listening");
        serve(self.listener, self.router, self.limits, shutdown).await;
        self.cancel.cancel();
        if let Some(task) = self.broker_task {
            let _ = task.await;
        }
        tracing::info!("ingest stopped");
        Ok(())
    }
}

/// A webhook's answer, its metric label and what the logs say about it.
struct Answer {
    status: StatusCode,
    body: Value,
    outcome: &'static str,
    retry_after: bool,
}

impl Answer {
    fn new(status: StatusCode, outcome: &'static str, body: Value) -> Self {
        Self {
            status,
            body,
            outcome,
            retry_after: false,
        }
    }

    fn error(status: StatusCode, outcome: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, outcome, json!({ "error": message.into() }))
    }

    fn unavailable(message: impl Into<String>) -> Self {
        let mut answer = Self::error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        answer.retry_after = true;
        answer
    }

    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
        }
        response
    }
}

impl From<PayloadError> for Answer {
    fn from(error: PayloadError) -> Self {
        Answer::error(StatusCode::BAD_REQUEST, "bad_request", error.to_string())
    }
}

impl From<SignatureError> for Answer {
    fn from(error: SignatureError) -> Self {
        Answer::error(StatusCode::UNAUTHORIZED, "unauthorized", error.to_string())
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

fn required_header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Answer> {
    header_str(headers, name).ok_or_else(|| {
        Answer::error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("missing header `{name}`"),
        )
    })
}

async fn github_webhook(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    let event = header_str(&headers, "x-github-event")
        .unwrap_or("unknown")
        .to_owned();
    let delivery_id = header_str(&headers, "x-github-delivery")
        .unwrap_or("")
        .to_owned();
    let answer = handle_github(&state, &headers, &body).await;
    finish(&state, "github", &event, &delivery_id, started, answer)
}

async fn handle_github(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Answer {
    if state.settings.github_secrets.is_empty() {
        return Answer::error(
            StatusCode::NOT_FOUND,
            "not_configured",
            "GitHub webhooks are not configured (GITHUB_WEBHOOK_SECRET is unset)",
        );
    }
    if let Err(e) = signature::verify(
        header_str(headers, "x-hub-signature-256"),
        body,
        &state.settings.github_secrets,
    ) {
        return e.into();
    }
    let delivery = match (
        required_header(headers, "x-github-event"),
        required_header(headers, "x-github-delivery"),
    ) {
        (Ok(event), Ok(delivery_id)) => github::Delivery {
            event,
            delivery_id,
            received_at: chrono::Utc::now(),
        },
        (Err(answer), _) | (_, Err(answer)) => return answer,
    };
    let payload = match github::parse_payload(body) {
        Ok(payload) => payload,
        Err(error) => return error.into(),
    };
    match github::normalize(&delivery, &payload, &state.settings) {
        Ok(normalized) => dispatch(state, "github", normalized).await,
        Err(e) => e.into(),
    }
}

async fn jira_webhook(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let started = Instant::now();
    let delivery_id = jira::delivery_id(
        header_str(&headers, "x-atlassian-webhook-identifier"),
        &body,
    );
    let (answer, event) = handle_jira(&state, &headers, &body, &delivery_id).await;
    finish(&state, "jira", &event, &delivery_id, started, answer)
}

async fn handle_jira(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
    delivery_id: &str,
) -> (Answer, String) {
    let unknown = || "unknown".to_owned();
    let Some(secret) = state.settings.jira_secret.clone() else {
        let answer = Answer::error(
            StatusCode::NOT_FOUND,
            "not_configured",
            "Jira webhooks are not configured (JIRA_WEBHOOK_SECRET is unset)",
        );
        return (answer, unknown());
    };
    if let Err(e) = signature::verify(header_str(headers, "x-hub-signature"), body, &[secret]) {
        return (e.into(), unknown());
    }
    let payload = match jira::parse_payload(body) {
        Ok(payload) => payload,
        Err(e) => return (e.into(), unknown()),
    };
    let event = payload.event().map_or_else(unknown, str::to_owned);
    let answer = match jira::normalize(delivery_id, chrono::Utc::now(), &payload, &state.settings) {
        Ok(normalized) => dispatch(state, "jira", normalized).await,
        Err(e) => e.into(),
    };
    (answer, event)
}

async fn dispatch(state: &AppState, source: &str, normalized: Normalized) -> Answer {
    match normalized {
        Normalized::Ping => Answer::new(StatusCode::OK, "ping", json!({ "status": "pong" })),
        Normalized::Ignored(reason) => {
            state.metrics.ignored(source, reason);
            Answer::new(
                StatusCode::ACCEPTED,
                "ignored",
                json!({ "status": "ignored", "reason": reason }),
            )
        }
        Normalized::Task(task) => publish_once(state, &task).await,
        Normalized::Control(message) => publish_control_once(state, &message).await,
    }
}

/// Publishes a cancel to every worker unless this replica already did; 202 once confirmed.
async fn publish_control_once(state: &AppState, message: &ControlMessage) -> Answer {
    let id = message.cancel_id.as_str();
    let guard = match state.deliveries.claim(id) {
        Claim::Duplicate => {
            return Answer::new(
                StatusCode::OK,
                "duplicate",
                json!({ "status": "duplicate", "cancel_id": id }),
            );
        }
        Claim::InFlight => return in_flight(),
        Claim::New(guard) => guard,
    };
    let started = Instant::now();
    match state.sink.publish_control(message).await {
        Ok(()) => {
            guard.published();
            state
                .records
                .cancel_requested(message, &message.requested_by, None);
            state
                .metrics
                .publish("confirmed", Some(started.elapsed().as_secs_f64()));
            tracing::info!(cancel_id = id, issue = %message.issue_key, "cancel published");
            Answer::new(
                StatusCode::ACCEPTED,
                "accepted",
                json!({ "status": "accepted", "control": "cancel", "cancel_id": id }),
            )
        }
        Err(error) => {
            state.metrics.publish("error", None);
            tracing::warn!(cancel_id = id, %error, "cancel not confirmed");
            Answer::unavailable(format!("the cancel was not queued ({error}); retry later"))
        }
    }
}

fn in_flight() -> Answer {
    let mut answer = Answer::error(
        StatusCode::CONFLICT,
        "in_flight",
        "the same delivery is being published right now",
    );
    answer.retry_after = true;
    answer
}

/// Publishes a task unless this replica already published it; answers 202 only after the
/// broker confirmed.
async fn publish_once(state: &AppState, task: &TaskMessage) -> Answer {
    let guard = match state.deliveries.claim(&task.task_id) {
        Claim::Duplicate => {
            return Answer::new(
                StatusCode::OK,
                "duplicate",
                json!({ "status": "duplicate", "task_id": task.task_id }),
            );
        }
        Claim::InFlight => return in_flight(),
        Claim::New(guard) => guard,
    };
    let started = Instant::now();
    let result = state.sink.publish(task).await;
    if let Err(PublishError::Unavailable) = result {
        state.metrics.publish("unavailable", None);
        return Answer::unavailable("the task queue is unavailable; retry later");
    }
    let seconds = started.elapsed().as_secs_f64();
    match result {
        Ok(()) => {
            guard.published();
            // Recorded once queued: a publish that failed (and is retried by the sender)
            // leaves no task in the ledger that never was.
            state
                .records
                .accepted(task, AuditKind::Trigger, &task.trigger_user);
            state.records.published(&task.task_id);
            state.metrics.publish("confirmed", Some(seconds));
            tracing::info!(
                task_id = %task.task_id,
                mode = %task.mode,
                issue = %task.issue.key,
                repo = %task.repo_url,
                "task published"
            );
            Answer::new(
                StatusCode::ACCEPTED,
                "accepted",
                json!({ "status": "accepted", "task_id": task.task_id }),
            )
        }
        Err(error) => {
            let outcome = match &error {
                PublishError::Unavailable => "unavailable",
                PublishError::Broker(_) | PublishError::Queue(_) => "error",
                PublishError::Nacked => "nacked",
                PublishError::Returned { .. } => "returned",
                PublishError::Timeout(_) => "timeout",
            };
            state.metrics.publish(outcome, Some(seconds));
            tracing::warn!(task_id = %task.task_id, %error, "publish not confirmed");
            Answer::unavailable(format!("the task was not queued ({error}); retry later"))
        }
    }
}

/// Logs and counts every answer in one place, then turns it into the response.
fn finish(
    state: &AppState,
    source: &str,
    event: &str,
    delivery_id: &str,
    started: Instant,
    answer: Answer,
) -> Response {
    let seconds = started.elapsed().as_secs_f64();
    // Unknown event names would explode the label set; keep only the ones we know.
    let event_label = match event {
        "issues"
        | "issue_comment"
        | "pull_request_review"
        | "check_suite"
        | "ping"
        | "jira:issue_updated"
        | "comment_created" => event,
        _ => "other",
    };
    state
        .metrics
        .webhook(source, event_label, answer.outcome, seconds);
    let status = answer.status.as_u16();
    if answer.status.is_client_error() || answer.status.is_server_error() {
        tracing::warn!(source, event, delivery_id, status, outcome = answer.outcome, body = %answer.body, "webhook refused");
    } else {
        tracing::info!(
            source,
            event,
            delivery_id,
            status,
            outcome = answer.outcome,
            "webhook answered"
        );
    }
    answer.into_response()
}
