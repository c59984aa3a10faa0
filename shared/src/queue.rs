//! The queue contract both services and both queues (RabbitMQ, the embedded SQLite queue of
//! `worker standalone`) agree on: how a delivery is settled ([`Settle`]), the wait state a
//! delayed retry carries (the `x-fleet-*` headers, [`WaitState`]), and where accepted tasks
//! go ([`TaskSink`]). A publish counts only once the queue has durably taken the task.

use crate::TaskMessage;
use crate::amqp::{BrokerLink, PublishError};
use crate::control::ControlMessage;
use lapin::types::{AMQPValue, FieldTable};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// How a delivery is settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    Ack,
    Requeue,
    Reject,
    /// A delayed retry carrying this wait state: a copy to a delay queue, then an ack (on
    /// the embedded queue: back to ready with a not-before time). Remembered for a replay as
    /// the ack it amounts to once the copy is confirmed.
    Delay(WaitState),
}

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

pub type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send + 'a>>;

/// A durable queue the ingest can hand tasks to: RabbitMQ through the self-healing
/// [`BrokerLink`], or `worker standalone`'s embedded queue.
pub trait TaskSink: Send + Sync + std::fmt::Debug {
    /// `Ok` only once the task is durably queued; `Err(Unavailable)` without trying when
    /// the queue cannot be reached right now.
    fn publish<'a>(&'a self, task: &'a TaskMessage) -> PublishFuture<'a>;
    /// `Ok` once every worker's control queue can get `message` (`/cancel`): RabbitMQ's
    /// fanout, or the embedded queue's own durable cancels' queue.
    fn publish_control<'a>(&'a self, message: &'a ControlMessage) -> PublishFuture<'a>;
    /// Whether publishing can work right now (`/readyz`).
    fn is_ready(&self) -> bool;
}

impl TaskSink for BrokerLink {
    fn publish<'a>(&'a self, task: &'a TaskMessage) -> PublishFuture<'a> {
        Box::pin(async move {
            let publisher = self.publisher().ok_or(PublishError::Unavailable)?;
            publisher.publish(task).await
        })
    }

    fn publish_control<'a>(&'a self, message: &'a ControlMessage) -> PublishFuture<'a> {
        Box::pin(async move {
            let publisher = self.publisher().ok_or(PublishError::Unavailable)?;
            publisher.publish_control(message).await
        })
    }

    fn is_ready(&self) -> bool {
        BrokerLink::is_ready(self)
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
    fn headers_round_trip() {
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
    }
}
