//! Delayed retries on the delivery side: the wait state a message carries (`x-fleet-*`
//! headers on the broker, columns in the embedded queue), the bounds that keep a task from
//! waiting forever, and the copy published to a delay queue (`<queue>.retry.<bucket>`, see
//! `shared::topology`). The wait state itself and its headers are the queue contract in
//! `shared::queue`.
//!
//! A delayed attempt publishes a copy (with confirms, same message id and properties) to
//! the delay queue and then acks the original: the copy is a new message, so the wait does
//! not use up the quorum queue's `x-delivery-limit`. Failed deliveries before the wait are
//! carried in `x-fleet-attempts`, so that waiting does not reset the limit either.

use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Confirmation};
use shared::topology::Topology;
use std::time::Duration;

use shared::queue::{ATTEMPTS, NOT_BEFORE, WAITED_MS, WAITS, WaitState};

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The wait of a task whose issue is locked by another: 5 s doubling to a minute (the
/// running task may take its whole timeout).
pub fn lock_backoff(waits: u32) -> Duration {
    let step = Duration::from_secs(5).saturating_mul(1 << waits.min(4));
    step.min(Duration::from_secs(60))
}

/// Headers the broker sets on a delivery; a fresh copy starts without them.
fn broker_header(name: &str) -> bool {
    name == "x-death"
        || name == "x-delivery-count"
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
}

/// Publishes the copy of `delivery` carrying `state` to the delay queue that fits the time
/// left; returns that queue's name once the broker confirmed it.
pub async fn publish_copy(
    channel: &Channel,
    topology: &Topology,
    delivery: &Delivery,
    state: &WaitState,
    now_ms: i64,
) -> Result<String, String> {
    let retry = topology.retry_queue_for(state.remaining(now_ms).unwrap_or_default());
    let mut headers = FieldTable::default();
    if let Some(original) = delivery.properties.headers() {
        for (name, value) in original {
            if !broker_header(name.as_str()) {
                headers.insert(name.clone(), value.clone());
            }
        }
    }
    let long = |v: i64| AMQPValue::LongLongInt(v);
    headers.insert(ShortString::from(WAITS), long(state.waits.into()));
    headers.insert(
        ShortString::from(WAITED_MS),
        long(i64::try_from(state.waited_ms).unwrap_or(i64::MAX)),
    );
    headers.insert(ShortString::from(NOT_BEFORE), long(state.not_before_ms));
    headers.insert(ShortString::from(ATTEMPTS), long(state.attempts.into()));
    let properties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    let confirmed = async {
        channel
            .basic_publish(
                "".into(),
                retry.name.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &delivery.data,
                properties,
            )
            .await?
            .await
    };
    match tokio::time::timeout(Duration::from_secs(10), confirmed).await {
        Err(_) => Err("no confirm from the broker within 10 s".to_owned()),
        Ok(Err(error)) => Err(error.to_string()),
        Ok(Ok(Confirmation::Ack(None))) => Ok(retry.name),
        Ok(Ok(other)) => Err(format!("the broker did not take the copy: {other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_backoff_doubles_to_a_minute() {
        assert_eq!(lock_backoff(0), Duration::from_secs(5));
        assert_eq!(lock_backoff(2), Duration::from_secs(20));
        assert_eq!(lock_backoff(30), Duration::from_secs(60));
        assert!(broker_header("x-death") && !broker_header(WAITS));
    }
}
