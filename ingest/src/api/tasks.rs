//! Tasks and the audit trail: `GET /api/v1/tasks`, `GET /api/v1/tasks/{id}`,
//! `POST /api/v1/tasks/{id}/cancel`, `POST /api/v1/tasks/{id}/retry`, `GET /api/v1/audit`.

use super::{ApiError, ApiState, Operator, Params, Viewer, limit_param};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use fleet_ledger::AuditKind;
use fleet_ledger::query::{TaskFilter, TaskView};
use serde_json::{Value, json};
use shared::control::{ControlKind, ControlMessage};
use shared::task::{IssueRef, TriggerInfo};
use shared::{RepoUrl, TaskMessage, Tracker};

/// The states a task can be in (`?state=`).
const STATES: [&str; 7] = [
    "queued",
    "waiting",
    "running",
    "done",
    "failed",
    "cancelled",
    "dead",
];

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

fn ok(body: Value) -> Answer {
    Ok((StatusCode::OK, Json(body)))
}

/// `GET /api/v1/tasks?state=&repo=&user=&limit=`: most recently updated first.
pub async fn list(State(state): State<ApiState>, _: Viewer, params: Params) -> Answer {
    let store = state.store()?;
    let status = params.get("state").filter(|s| !s.is_empty()).cloned();
    if let Some(status) = &status
        && !STATES.contains(&status.as_str())
    {
        return Err(ApiError::field(
            "state",
            format!("`state` must be one of {}", STATES.join(", ")),
        ));
    }
    let filter = TaskFilter {
        state: status,
        repo: params.get("repo").filter(|s| !s.is_empty()).cloned(),
        user: params.get("user").filter(|s| !s.is_empty()).cloned(),
        limit: limit_param(&params, 100)?,
    };
    let tasks = store.tasks(&filter).await?;
    ok(json!({ "tasks": tasks }))
}

async fn known_task(state: &ApiState, task_id: &str) -> Result<TaskView, ApiError> {
    state
        .store()?
        .task(task_id)
        .await?
        .ok_or_else(|| ApiError::not_found("task", task_id))
}

/// `GET /api/v1/tasks/{task_id}`: the task with its events, oldest first.
pub async fn detail(
    State(state): State<ApiState>,
    _: Viewer,
    Path(task_id): Path<String>,
) -> Answer {
    let task = known_task(&state, &task_id).await?;
    let events = state.store()?.events(&task_id).await?;
    let mut body = serde_json::to_value(task).unwrap_or_default();
    body["events"] = json!(events);
    ok(body)
}

/// `POST /api/v1/tasks/{task_id}/cancel`: a cancel of the task's issue to every worker,
/// as a `/cancel` comment would send it.
pub async fn cancel(
    State(state): State<ApiState>,
    Operator(caller): Operator,
    Path(task_id): Path<String>,
) -> Answer {
    let task = known_task(&state, &task_id).await?;
    let message = state.store()?.message(&task_id).await?;
    let issue = issue_of(&task, message.as_ref())?;
    let repo_url = RepoUrl::parse(&task.repo_url).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("the task's repository is not usable: {e}"),
        )
    })?;
    let cancel = ControlMessage {
        kind: ControlKind::Cancel,
        issue_key: issue.key.clone(),
        requested_by: caller.name.clone(),
        cancel_id: format!("api:{}", uuid::Uuid::new_v4()),
        requested_at: Utc::now(),
        source: issue.tracker,
        repo_url,
        issue,
        comment_id: None,
    };
    state
        .sink
        .publish_control(&cancel)
        .await
        .map_err(unavailable)?;
    state
        .records
        .cancel_requested(&cancel, &caller.name, Some(&task_id));
    tracing::info!(
        task_id,
        by = caller.name,
        cancel_id = cancel.cancel_id,
        "cancel sent through the API"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "accepted",
            "cancel_id": cancel.cancel_id,
            "issue_key": cancel.issue_key,
        })),
    ))
}

/// `POST /api/v1/tasks/{task_id}/retry`: the task's message again, under a new task id.
pub async fn retry(
    State(state): State<ApiState>,
    Operator(caller): Operator,
    Path(task_id): Path<String>,
) -> Answer {
    known_task(&state, &task_id).await?;
    let message = state.store()?.message(&task_id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("the ledger has no task message for `{task_id}` to publish again"),
        )
    })?;
    let mut task = TaskMessage::from_slice(message.to_string().as_bytes()).map_err(|e| {
        ApiError::new(
            StatusCode::CONFLICT,
            format!("the recorded task message cannot be read: {e}"),
        )
    })?;
    let delivery_id = uuid::Uuid::new_v4().to_string();
    task.task_id = format!("api:{delivery_id}");
    task.trigger = TriggerInfo {
        event: "api.retry".to_owned(),
        delivery_id,
        received_at: Utc::now(),
        comment_id: None,
    };
    state.sink.publish(&task).await.map_err(unavailable)?;
    state
        .records
        .accepted(&task, AuditKind::Retry, &caller.name);
    state.records.published(&task.task_id);
    tracing::info!(
        task_id,
        retry = task.task_id,
        by = caller.name,
        "retry published through the API"
    );
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "task_id": task.task_id, "retry_of": task_id })),
    ))
}

/// `GET /api/v1/audit?since=<RFC 3339>&limit=`: oldest first.
pub async fn audit(State(state): State<ApiState>, _: Viewer, params: Params) -> Answer {
    let store = state.store()?;
    let since = match params.get("since").filter(|s| !s.is_empty()) {
        None => DateTime::<Utc>::UNIX_EPOCH,
        Some(text) => DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| {
                ApiError::field(
                    "since",
                    format!(
                        "`since` must be an RFC 3339 time (2026-12-01T00:00:00Z), not `{text}`"
                    ),
                )
            })?,
    };
    let entries = store.audit(since, limit_param(&params, 1000)?).await?;
    ok(json!({ "events": entries }))
}

/// The issue a task is about: from its recorded message, else rebuilt from its row.
fn issue_of(task: &TaskView, message: Option<&Value>) -> Result<IssueRef, ApiError> {
    if let Some(issue) = message
        .and_then(|m| m.get("issue"))
        .and_then(|i| serde_json::from_value::<IssueRef>(i.clone()).ok())
    {
        return Ok(issue);
    }
    let tracker = match task.issue.tracker.as_str() {
        "github" => Tracker::Github,
        "jira" => Tracker::Jira,
        _ => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "the ledger does not know the task's issue yet",
            ));
        }
    };
    let number = task
        .issue
        .key
        .rsplit_once('#')
        .and_then(|(_, n)| n.parse().ok());
    Ok(IssueRef {
        tracker,
        key: task.issue.key.clone(),
        number,
        title: String::new(),
        body: String::new(),
        url: task.issue.url.clone(),
        labels: Vec::new(),
        pull_request: false,
    })
}

fn unavailable(error: shared::amqp::PublishError) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the queue did not take it ({error}); retry later"),
    )
}
