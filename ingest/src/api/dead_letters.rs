//! Dead letters: `GET /api/v1/dead-letters` and `POST /api/v1/dead-letters/{id}/replay`.
//!
//! A dead letter is taken off `<queue>.dead` into the ledger before it is shown: each one is
//! kept there (body, reason, count, its whole `x-death` history) and only then acked off the
//! queue, so nothing is lost between the two. A replay publishes the kept body back onto the
//! task queue with publisher confirms, under its own `message_id`, and the ledger keeps the
//! history (a replayed message that dies again shows both deaths).
//!
//! `worker standalone` on its embedded queue has no `<queue>.dead`: its dead letters are
//! rows of its SQLite queue, which it hands over as a [`DeadLetterQueue`]; they are taken
//! into the ledger (kept, then removed from the queue) and replayed onto the embedded
//! queue the same way.

use super::tokens::Caller;
use super::{ApiError, ApiState, Operator, Params, Viewer, limit_param};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use fleet_ledger::dead::{Claim, DeadLetter, DeadLetterView};
use fleet_ledger::{AuditEntry, AuditKind, Event, EventKind, Store};
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;

/// What a [`DeadLetterQueue`] answers: an error is its own words (shown as a 503).
pub type QueueFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// A queue of dead letters other than RabbitMQ's: the embedded queue of `worker standalone`
/// (it lives in the worker; the operator API knows only this face of it).
pub trait DeadLetterQueue: Send + Sync + std::fmt::Debug {
    /// Up to `max` dead letters still on the queue, oldest first, each with the handle
    /// [`DeadLetterQueue::remove`] takes.
    fn dead(&self, max: usize) -> QueueFuture<'_, Vec<(i64, DeadLetter)>>;
    /// Removes a dead letter the ledger has kept.
    fn remove(&self, handle: i64) -> QueueFuture<'_, ()>;
    /// Puts a replayed body back onto the task queue (durably, before it answers).
    fn republish<'a>(&'a self, body: &'a [u8], message_id: &'a str) -> QueueFuture<'a, ()>;
}

/// The most dead letters one request takes off the queue (the rest wait for the next).
const TAKE_PER_REQUEST: usize = 500;

type Answer = Result<(StatusCode, Json<Value>), ApiError>;

/// `GET /api/v1/dead-letters?all=true&limit=`: those not replayed yet (`all`: every one).
pub async fn list(State(state): State<ApiState>, _: Viewer, params: Params) -> Answer {
    take_from_queue(&state).await?;
    let all = params.get("all").is_some_and(|v| v == "true" || v == "1");
    let letters = state
        .store()?
        .list_dead(all, limit_param(&params, 100)?)
        .await?;
    Ok((StatusCode::OK, Json(json!({ "dead_letters": letters }))))
}

/// The dead letters not replayed yet, newest first (the console's list).
pub async fn open_letters(state: &ApiState) -> Result<Vec<DeadLetterView>, ApiError> {
    take_from_queue(state).await?;
    Ok(state.store()?.list_dead(false, 100).await?)
}

/// `POST /api/v1/dead-letters/{message_id}/replay`.
pub async fn replay(
    State(state): State<ApiState>,
    Operator(caller): Operator,
    Path(message_id): Path<String>,
) -> Answer {
    let task_id = replay_letter(&state, &message_id, &caller).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "status": "replayed", "message_id": message_id, "task_id": task_id })),
    ))
}

/// Replays one dead letter for `caller` (an operator): claimed in the ledger first (of two
/// replays at once exactly one goes on), its body published back onto the task queue with
/// confirms (a failed publish gives the claim back), then audited. Returns its task id.
pub async fn replay_letter(
    state: &ApiState,
    message_id: &str,
    caller: &Caller,
) -> Result<Option<String>, ApiError> {
    take_from_queue(state).await?;
    let store = state.store()?;
    let publisher = match &state.dead_queue {
        Some(_) => None,
        None => Some(
            state
                .broker
                .as_ref()
                .and_then(|b| b.publisher())
                .ok_or_else(broker_away)?,
        ),
    };
    let (letter, body) = match store.claim_dead(message_id, &caller.name).await? {
        Claim::Claimed(letter, body) => (letter, body),
        Claim::Missing => return Err(ApiError::not_found("dead letter", message_id)),
        Claim::Taken(letter) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "dead letter `{message_id}` was replayed at {} by {}",
                    letter
                        .replayed_at
                        .map(|t| t.to_rfc3339())
                        .unwrap_or_default(),
                    letter.replayed_by.as_deref().unwrap_or("someone")
                ),
            ));
        }
    };
    let properties = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_delivery_mode(2)
        .with_message_id(message_id.into())
        .with_app_id("agent-fleet".into());
    let published = match (&state.dead_queue, publisher) {
        (Some(queue), _) => queue.republish(&body, message_id).await,
        (None, Some(publisher)) => publisher
            .publish_bytes(&body, properties)
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        (None, None) => Err("the broker is not connected".to_owned()),
    };
    if let Err(error) = published {
        store.unclaim_dead(message_id, &caller.name).await?;
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the task queue did not take the replay ({error}); retry later"),
        ));
    }
    let ledger = state.records.ledger();
    ledger.audit(AuditEntry::now(
        AuditKind::Replay,
        letter.task_id.as_deref(),
        Some(&caller.name),
        json!({ "message_id": message_id, "reason": letter.reason, "history": letter.history }),
    ));
    if let Some(task_id) = &letter.task_id {
        ledger.record(Event::now(task_id, EventKind::Published));
    }
    tracing::info!(message_id, by = caller.name, "dead letter replayed");
    Ok(letter.task_id.clone())
}

fn broker_away() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "the broker is not connected (dead letters need RabbitMQ); retry later",
    )
}

/// Moves what waits in `<queue>.dead` into the ledger: kept, then acked, one by one, on a
/// channel of its own that is closed at the end (a message it could not keep is nacked
/// back onto the queue, never left unacked on a channel that lives on).
async fn take_from_queue(state: &ApiState) -> Result<(), ApiError> {
    let store = state.store()?;
    if let Some(queue) = &state.dead_queue {
        return take_embedded(queue.as_ref(), store).await;
    }
    let Some(broker) = &state.broker else {
        return Ok(());
    };
    let connection = broker.connection().ok_or_else(broker_away)?;
    let channel = connection.create_channel().await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot open a channel: {e}"),
        )
    })?;
    let result = take_on(&channel, store, state.topology.dead_letter_queue.as_str()).await;
    let _ = channel.close(200, "dead letters taken".into()).await;
    result
}

/// The embedded queue's dead letters into the ledger: each kept, then removed from the
/// queue (one kept twice, its removal lost, is the same death: the ledger changes nothing).
async fn take_embedded(queue: &dyn DeadLetterQueue, store: &Store) -> Result<(), ApiError> {
    let unavailable = |e: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read the embedded queue's dead letters: {e}"),
        )
    };
    for (handle, letter) in queue.dead(TAKE_PER_REQUEST).await.map_err(unavailable)? {
        store.keep_dead(&letter).await?;
        queue.remove(handle).await.map_err(unavailable)?;
        tracing::info!(
            message_id = letter.message_id,
            reason = letter.reason,
            "dead letter kept in the ledger"
        );
    }
    Ok(())
}

async fn take_on(channel: &lapin::Channel, store: &Store, queue: &str) -> Result<(), ApiError> {
    let broker_error = |e: lapin::Error| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("cannot read {queue}: {e}"),
        )
    };
    for _ in 0..TAKE_PER_REQUEST {
        let message = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: false })
            .await
            .map_err(broker_error)?;
        let Some(message) = message else {
            break;
        };
        let delivery = message.delivery;
        let letter = dead_letter(
            &delivery.data,
            delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.as_str()),
            delivery.properties.headers().as_ref(),
        );
        // Kept first: what cannot be kept goes back onto the queue.
        if let Err(error) = store.keep_dead(&letter).await {
            let _ = delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await;
            return Err(error.into());
        }
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(broker_error)?;
        tracing::info!(
            message_id = letter.message_id,
            reason = letter.reason,
            "dead letter kept in the ledger"
        );
    }
    Ok(())
}

/// A dead letter from what the broker gave: its id (the `message_id`, else a digest of the
/// body), the task id when the body is a task, and its `x-death` history.
pub fn dead_letter(
    body: &[u8],
    message_id: Option<&str>,
    headers: Option<&FieldTable>,
) -> DeadLetter {
    let message_id = message_id
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("body-{}", &hex::encode(Sha256::digest(body))[..32]));
    let task_id = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("task_id").and_then(Value::as_str).map(str::to_owned));
    let deaths = headers
        .and_then(|h| h.inner().get("x-death"))
        .map(json_of)
        .unwrap_or_else(|| json!([]));
    let first = deaths.get(0);
    let reason = first
        .and_then(|d| d.get("reason"))
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let count = first
        .and_then(|d| d.get("count"))
        .and_then(Value::as_i64)
        .unwrap_or(1);
    // Each entry's `time` is when the message first died for that queue and reason.
    let first_death_at = deaths
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|d| d.get("time").and_then(Value::as_i64))
        .min()
        .and_then(|secs| DateTime::<Utc>::from_timestamp(secs, 0));
    DeadLetter {
        message_id,
        task_id,
        body: body.to_vec(),
        reason,
        count,
        first_death_at,
        history: if deaths.is_array() {
            deaths
        } else {
            json!([deaths])
        },
    }
}

/// An AMQP header value as JSON (timestamps as Unix seconds, bytes as text).
fn json_of(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(n) => json!(n),
        AMQPValue::ShortShortUInt(n) => json!(n),
        AMQPValue::ShortInt(n) => json!(n),
        AMQPValue::ShortUInt(n) => json!(n),
        AMQPValue::LongInt(n) => json!(n),
        AMQPValue::LongUInt(n) => json!(n),
        AMQPValue::LongLongInt(n) => json!(n),
        AMQPValue::Timestamp(n) => json!(n),
        AMQPValue::Float(n) => json!(n),
        AMQPValue::Double(n) => json!(n),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::ByteArray(b) => json!(String::from_utf8_lossy(b.as_slice())),
        AMQPValue::FieldArray(items) => {
            Value::Array(items.as_slice().iter().map(json_of).collect())
        }
        AMQPValue::FieldTable(table) => Value::Object(
            table
                .inner()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), json_of(v)))
                .collect(),
        ),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lapin::types::{FieldArray, LongString};

    #[test]
    fn x_death_headers_become_reason_count_and_history() {
        let mut death = FieldTable::default();
        death.insert(
            "reason".into(),
            AMQPValue::LongString(LongString::from("delivery_limit")),
        );
        death.insert("count".into(), AMQPValue::LongLongInt(6));
        death.insert("time".into(), AMQPValue::Timestamp(1_764_000_000));
        death.insert(
            "queue".into(),
            AMQPValue::LongString(LongString::from("agent-tasks")),
        );
        let mut headers = FieldTable::default();
        headers.insert(
            "x-death".into(),
            AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::FieldTable(death)])),
        );
        let letter = dead_letter(
            br#"{"task_id":"github:1"}"#,
            Some("github:1"),
            Some(&headers),
        );
        assert_eq!(letter.message_id, "github:1");
        assert_eq!(letter.task_id.as_deref(), Some("github:1"));
        assert_eq!(letter.reason, "delivery_limit");
        assert_eq!(letter.count, 6);
        assert_eq!(
            letter.first_death_at.map(|t| t.timestamp()),
            Some(1_764_000_000)
        );
        assert_eq!(letter.history[0]["queue"], "agent-tasks");

        let poison = dead_letter(b"\xff not json", None, None);
        assert!(poison.message_id.starts_with("body-"));
        assert_eq!(poison.task_id, None);
        assert_eq!(poison.reason, "unknown");
        assert_eq!(poison.history, json!([]));
    }
}
