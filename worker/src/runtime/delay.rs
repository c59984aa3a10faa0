//! Delayed retries on the delivery side: the wait state a message carries (`x-fleet-*`
//! headers on the broker, columns in the embedded queue), the bounds that keep a task from
//! waiting forever, and the copy published to a delay queue (`<queue>.retry.<bucket>`, see
//! `shared::topology`).
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

/// Delayed retries this message took.
pub const WAITS: &str = "x-fleet-waits";
/// Their total delay, in milliseconds.
pub const WAITED_MS: &str = "x-fleet-waited-ms";
/// Not to be run before this time (Unix milliseconds): an early arrival goes back.
pub const NOT_BEFORE: &str = "x-fleet-not-before";
/// Failed deliveries of earlier copies, added to `x-delivery-count`.
pub const ATTEMPTS: &str = "x-fleet-attempts";

/// How long a task may wait in delayed retries (`TASK_MAX_WAITS`, `TASK_MAX_WAIT_SECS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitLimits {
    pub max_waits: u32,
    pub max_total: Duration,
}

/// What a message carries about its waits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitState {
    pub waits: u32,
    pub waited_ms: u64,
    pub not_before_ms: i64,
    pub attempts: u32,
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn int(headers: &FieldTable, name: &str) -> i64 {
    match headers.inner().get(name) {
        Some(AMQPValue::LongLongInt(v)) => *v,
        Some(AMQPValue::LongInt(v)) => (*v).into(),
        Some(AMQPValue::LongUInt(v)) => (*v).into(),
        Some(AMQPValue::ShortInt(v)) => (*v).into(),
        Some(AMQPValue::ShortUInt(v)) => (*v).into(),
        Some(AMQPValue::ShortShortInt(v)) => (*v).into(),
        Some(AMQPValue::ShortShortUInt(v)) => (*v).into(),
        _ => 0,
    }
}

impl WaitState {
    pub fn from_headers(headers: Option<&FieldTable>) -> Self {
        let Some(h) = headers else {
            return Self::default();
        };
        let non_negative = |v: i64| v.max(0);
        Self {
            waits: u32::try_from(non_negative(int(h, WAITS))).unwrap_or(u32::MAX),
            waited_ms: u64::try_from(non_negative(int(h, WAITED_MS))).unwrap_or(0),
            not_before_ms: int(h, NOT_BEFORE),
            attempts: u32::try_from(non_negative(int(h, ATTEMPTS))).unwrap_or(u32::MAX),
        }
    }

    /// Time left before the message is due, if any.
    pub fn remaining(&self, now_ms: i64) -> Option<Duration> {
        let left = self.not_before_ms.saturating_sub(now_ms);
        (left > 0).then(|| Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }

    /// The state after one more wait of `after`, or `None` when that would pass the limits
    /// (the attempt then counts as a plain transient failure). `failed`: the failed
    /// deliveries of this copy so far (its `x-delivery-count`).
    pub fn next(
        &self,
        after: Duration,
        failed: u32,
        limits: &WaitLimits,
        now_ms: i64,
    ) -> Option<Self> {
        let after_ms = u64::try_from(after.as_millis()).unwrap_or(u64::MAX).max(1);
        let waited_ms = self.waited_ms.saturating_add(after_ms);
        let max_ms = u64::try_from(limits.max_total.as_millis()).unwrap_or(u64::MAX);
        if self.waits >= limits.max_waits || waited_ms > max_ms {
            return None;
        }
        Some(Self {
            waits: self.waits + 1,
            waited_ms,
            not_before_ms: now_ms.saturating_add(i64::try_from(after_ms).unwrap_or(i64::MAX)),
            attempts: self.attempts.saturating_add(failed),
        })
    }

    /// The same wait again, for a copy that came back before its time.
    pub fn again(&self, failed: u32) -> Self {
        Self {
            attempts: self.attempts.saturating_add(failed),
            ..*self
        }
    }
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

    const LIMITS: WaitLimits = WaitLimits {
        max_waits: 3,
        max_total: Duration::from_secs(100),
    };

    #[test]
    fn waits_are_counted_and_bounded() {
        let start = WaitState::default();
        let one = start
            .next(Duration::from_secs(40), 2, &LIMITS, 1_000)
            .expect("fits");
        assert_eq!(
            one,
            WaitState {
                waits: 1,
                waited_ms: 40_000,
                not_before_ms: 41_000,
                attempts: 2
            }
        );
        assert_eq!(one.remaining(1_000), Some(Duration::from_secs(40)));
        assert_eq!(one.remaining(41_000), None, "due");
        assert!(
            one.next(Duration::from_secs(61), 0, &LIMITS, 0).is_none(),
            "total"
        );
        let two = one.next(Duration::from_secs(1), 0, &LIMITS, 0).expect("2");
        let three = two.next(Duration::from_secs(1), 0, &LIMITS, 0).expect("3");
        assert!(three.next(Duration::from_secs(1), 0, &LIMITS, 0).is_none());
        assert_eq!(one.again(1).attempts, 3);
        assert_eq!(one.again(1).not_before_ms, one.not_before_ms);
    }

    #[test]
    fn headers_round_trip_and_lock_backoff() {
        let mut headers = FieldTable::default();
        headers.insert(WAITS.into(), AMQPValue::LongLongInt(2));
        headers.insert(WAITED_MS.into(), AMQPValue::LongInt(5000));
        headers.insert(NOT_BEFORE.into(), AMQPValue::LongLongInt(77));
        let state = WaitState::from_headers(Some(&headers));
        assert_eq!(
            (state.waits, state.waited_ms, state.not_before_ms),
            (2, 5000, 77)
        );
        assert_eq!(WaitState::from_headers(None), WaitState::default());
        assert_eq!(lock_backoff(0), Duration::from_secs(5));
        assert_eq!(lock_backoff(2), Duration::from_secs(20));
        assert_eq!(lock_backoff(30), Duration::from_secs(60));
        assert!(broker_header("x-death") && !broker_header(WAITS));
    }
}
