//! The operator API under `/api/v1` (docs/contracts.md, "Operator API"): what runs, what it
//! cost, why it failed, and the hands to stop, retry and replay. Reads come from the ledger
//! (`DATABASE_URL`, or the SQLite file of `worker standalone` without it); a cancel goes to
//! the workers through the control exchange; a retry or a replay is a confirmed publish
//! onto the task queue (RabbitMQ, or the embedded queue).
//!
//! Every request names its caller with a bearer token of `API_TOKENS` (the console also
//! takes `?token=`; the API does not: URLs end up in access logs): none or an unknown one
//! is 401, a viewer's write 403. Bad input is
//! a 400 naming the field; an unknown task or dead letter a 404.
//!
//! | module | role |
//! |---|---|
//! | [`tokens`] | `API_TOKENS` and the roles |
//! | [`tasks`] | task list, detail, cancel, retry; the audit trail |
//! | [`dead_letters`] | dead letters taken off `<queue>.dead` into the ledger, and their replay |

pub mod dead_letters;
pub mod tasks;
pub mod tokens;

use crate::records::Records;
use axum::Router;
use axum::extract::{FromRequestParts, Query};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use dead_letters::DeadLetterQueue;
use fleet_ledger::Store;
use serde_json::json;
use shared::amqp::BrokerLink;
use shared::queue::TaskSink;
use shared::topology::Topology;
use std::collections::HashMap;
use std::sync::Arc;
use tokens::{ApiTokens, Caller, Role};

/// What the API's handlers share.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub tokens: Arc<ApiTokens>,
    pub records: Records,
    pub sink: Arc<dyn TaskSink>,
    /// The broker, for the dead letters (`None` on the embedded queue).
    pub broker: Option<BrokerLink>,
    /// The embedded queue's dead letters (`worker standalone` without RabbitMQ).
    pub dead_queue: Option<Arc<dyn DeadLetterQueue>>,
    pub topology: Topology,
}

impl ApiState {
    /// The ledger's store, or the 503 that says how to get one.
    pub fn store(&self) -> Result<&Store, ApiError> {
        self.records.store().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the task ledger is not configured: set DATABASE_URL",
            )
        })
    }
}

/// The `/api/v1` routes.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/api/v1/tasks", get(tasks::list))
        .route("/api/v1/tasks/{task_id}", get(tasks::detail))
        .route("/api/v1/tasks/{task_id}/cancel", post(tasks::cancel))
        .route("/api/v1/tasks/{task_id}/retry", post(tasks::retry))
        .route("/api/v1/audit", get(tasks::audit))
        .route("/api/v1/dead-letters", get(dead_letters::list))
        .route(
            "/api/v1/dead-letters/{message_id}/replay",
            post(dead_letters::replay),
        )
        .with_state(state)
}

/// An API answer that is not a success: its status and what the caller can do about it.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    field: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            field: None,
        }
    }

    /// A 400 naming the field (a query parameter or a path segment).
    pub fn field(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field),
            ..Self::new(StatusCode::BAD_REQUEST, message)
        }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("no {what} `{id}`"))
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl From<fleet_ledger::StoreError> for ApiError {
    fn from(error: fleet_ledger::StoreError) -> Self {
        tracing::warn!(%error, "operator API: the ledger did not answer");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the task ledger does not answer right now; retry later",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.message });
        if let Some(field) = self.field {
            body["field"] = json!(field);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"agent-fleet\""),
            );
        }
        response
    }
}

/// The caller of an API request: `Authorization: Bearer <token>` only (a token in a URL
/// ends up in proxies' access logs).
pub fn bearer_caller(parts: &Parts, tokens: &ApiTokens) -> Result<Caller, ApiError> {
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "an API token is required (Authorization: Bearer <token>)",
            )
        })?;
    tokens
        .caller(presented)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the API token is not valid"))
}

/// The caller of a console request: `Authorization: Bearer <token>`, else `?token=<token>`
/// (the console's links carry it).
pub fn caller_of(parts: &Parts, tokens: &ApiTokens) -> Result<Caller, ApiError> {
    let from_header = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let from_query = || {
        Query::<HashMap<String, String>>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|Query(q)| q.get("token").cloned())
    };
    let presented = from_header.or_else(from_query).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "an API token is required (Authorization: Bearer <token>)",
        )
    })?;
    tokens
        .caller(&presented)
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the API token is not valid"))
}

/// A caller that may read.
#[derive(Debug)]
pub struct Viewer(pub Caller);

/// A caller that may also write (cancel, retry, replay).
#[derive(Debug)]
pub struct Operator(pub Caller);

impl FromRequestParts<ApiState> for Viewer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        bearer_caller(parts, &state.tokens).map(Viewer)
    }
}

impl FromRequestParts<ApiState> for Operator {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let caller = bearer_caller(parts, &state.tokens)?;
        if caller.role < Role::Operator {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token `{}` is a viewer's: cancel, retry and replay need an operator's",
                    caller.name
                ),
            ));
        }
        Ok(Operator(caller))
    }
}

/// A query's parameters, each read by name with its own error.
pub type Params = Query<HashMap<String, String>>;

/// `limit`: 1..=1000, `default` when absent.
pub fn limit_param(params: &HashMap<String, String>, default: i64) -> Result<i64, ApiError> {
    match params.get("limit") {
        None => Ok(default),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(ApiError::field(
                "limit",
                format!("`limit` must be a whole number from 1 to 1000, not `{text}`"),
            )),
        },
    }
}
