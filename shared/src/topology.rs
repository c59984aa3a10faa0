//! The queue topology, declared from this one place by both services with identical
//! arguments: the quorum task queue with its delivery limit, the dead-letter exchange and
//! queue behind it, and the delay queues `<queue>.retry.<bucket>` of delayed retries.
//!
//! A delayed retry (a rate limit, a task waiting for its issue's lock) is a copy of the
//! message published to one delay queue: every message of a delay queue has the same TTL
//! (`x-message-ttl`, one queue per bucket, because a per-message TTL only expires at the
//! head of a queue), and on expiry it is dead-lettered back onto `<queue>` through the
//! default exchange. A delay longer than a bucket takes several hops: the copy carries its
//! not-before time and the worker sends an early arrival back without running it.
//!
//! Control messages (`/cancel`) go to the fanout exchange `<queue>.control`: every worker
//! binds its own exclusive, auto-delete queue to it (declared by the worker, server-named),
//! and the durable quorum queue `<queue>.cancels` declared here keeps each one for the one
//! worker that records it on the issue (also while no worker runs: scaled to zero).
//!
//! Also the name of an issue's lock queue (`<queue>.lock.<issue>`), which is not declared
//! here: a worker declares it exclusively on its own connection while it works on the issue.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};
use std::time::Duration;

/// The delays of the delay queues, shortest first. Named by [`bucket_label`].
pub const RETRY_BUCKETS: [Duration; 4] = [
    Duration::from_secs(5),
    Duration::from_secs(30),
    Duration::from_secs(300),
    Duration::from_secs(1800),
];

/// `5s`, `30s`, `5m`, `30m`: the suffix of a delay queue's name.
pub fn bucket_label(delay: Duration) -> String {
    let secs = delay.as_secs();
    if secs >= 60 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// One delay queue: messages sit `delay`, then go back to the task queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryQueue {
    pub name: String,
    pub delay: Duration,
}

/// Names and limits of the task queue and its dead-letter side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    pub queue: String,
    pub dead_letter_exchange: String,
    pub dead_letter_queue: String,
    pub delivery_limit: u32,
}

/// Declaring the topology failed.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The broker already has the queue with other arguments: an operator must reconcile it
    /// (delete the queue, or change the settings to match). Retrying cannot help.
    #[error(
        "queue `{queue}` already exists with a different `{argument}` than this service declares \
         ({detail}); delete the queue or change the settings so that both agree"
    )]
    Mismatch {
        queue: String,
        argument: String,
        detail: String,
    },
    /// Anything else (connection lost, access refused): worth retrying.
    #[error("declaring `{entity}` failed: {source}")]
    Broker {
        entity: String,
        #[source]
        source: lapin::Error,
    },
}

impl TopologyError {
    /// A mismatch will not fix itself; everything else may.
    pub fn is_permanent(&self) -> bool {
        matches!(self, TopologyError::Mismatch { .. })
    }
}

impl Topology {
    pub fn new(queue: &str, delivery_limit: u32) -> Self {
        Self {
            queue: queue.to_owned(),
            dead_letter_exchange: format!("{queue}.dlx"),
            dead_letter_queue: format!("{queue}.dead"),
            delivery_limit,
        }
    }

    /// The delay queues, shortest first.
    pub fn retry_queues(&self) -> Vec<RetryQueue> {
        RETRY_BUCKETS
            .iter()
            .map(|delay| RetryQueue {
                name: format!("{}.retry.{}", self.queue, bucket_label(*delay)),
                delay: *delay,
            })
            .collect()
    }

    /// The delay queue for a wait of `remaining`: the longest bucket that does not overshoot
    /// it (the copy then comes back early and takes another hop), or the shortest bucket.
    pub fn retry_queue_for(&self, remaining: Duration) -> RetryQueue {
        let queues = self.retry_queues();
        queues
            .iter()
            .rev()
            .find(|q| q.delay <= remaining)
            .unwrap_or(&queues[0])
            .clone()
    }

    /// The arguments of a delay queue, exactly as declared: a quorum queue (replicated like
    /// the task queue) whose messages expire after `delay` and are dead-lettered, at least
    /// once, onto the task queue through the default exchange.
    pub fn retry_queue_arguments(&self, delay: Duration) -> FieldTable {
        let mut args = Self::quorum_arguments();
        let text = |v: &str| AMQPValue::LongString(LongString::from(v));
        args.insert(
            ShortString::from("x-message-ttl"),
            AMQPValue::LongLongInt(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX)),
        );
        args.insert(ShortString::from("x-dead-letter-exchange"), text(""));
        args.insert(
            ShortString::from("x-dead-letter-routing-key"),
            text(self.queue.as_str()),
        );
        // At-least-once dead-lettering (RabbitMQ >= 3.10) needs reject-publish overflow.
        args.insert(
            ShortString::from("x-dead-letter-strategy"),
            text("at-least-once"),
        );
        args.insert(ShortString::from("x-overflow"), text("reject-publish"));
        args
    }

    /// The lock queue of an issue: `<queue>.lock.<key>`, the key reduced to characters that
    /// are safe in a queue name and followed by a hash of the whole key (so that keys that
    /// reduce to the same text do not share a lock).
    pub fn lock_queue(&self, issue_key: &str) -> String {
        let safe: String = issue_key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .take(120)
            .collect();
        // FNV-1a: stable across processes and versions (std's hasher is not).
        let hash = issue_key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        format!("{}.lock.{safe}.{:08x}", self.queue, hash >> 32)
    }

    /// The fanout exchange of control messages.
    pub fn control_exchange(&self) -> String {
        format!("{}.control", self.queue)
    }

    /// The durable queue of cancels, bound to [`Self::control_exchange`].
    pub fn cancel_queue(&self) -> String {
        format!("{}.cancels", self.queue)
    }

    /// The arguments of the task queue, exactly as declared.
    pub fn queue_arguments(&self) -> FieldTable {
        let mut args = Self::quorum_arguments();
        args.insert(
            ShortString::from("x-delivery-limit"),
            AMQPValue::LongInt(i32::try_from(self.delivery_limit).unwrap_or(i32::MAX)),
        );
        args.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(LongString::from(self.dead_letter_exchange.as_str())),
        );
        args
    }

    /// What every queue of the topology is declared with (a quorum queue); the dead-letter
    /// queue has nothing else.
    fn quorum_arguments() -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(LongString::from("quorum")),
        );
        args
    }

    /// Declares everything, idempotently. On a mismatch the broker closes the channel, so the
    /// caller must open a new one before going on.
    pub async fn declare(&self, channel: &Channel) -> Result<(), TopologyError> {
        self.declare_fanout(channel, &self.dead_letter_exchange)
            .await?;
        self.declare_queue(channel, &self.dead_letter_queue, Self::quorum_arguments())
            .await?;
        channel
            .queue_bind(
                self.dead_letter_queue.as_str().into(),
                self.dead_letter_exchange.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.classify(&self.dead_letter_queue, e))?;
        self.declare_queue(channel, &self.queue, self.queue_arguments())
            .await?;
        for retry in self.retry_queues() {
            self.declare_queue(
                channel,
                &retry.name,
                self.retry_queue_arguments(retry.delay),
            )
            .await?;
        }
        let control = self.control_exchange();
        self.declare_fanout(channel, &control).await?;
        let cancels = self.cancel_queue();
        self.declare_queue(channel, &cancels, Self::quorum_arguments())
            .await?;
        channel
            .queue_bind(
                cancels.as_str().into(),
                control.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.classify(&cancels, e))?;
        Ok(())
    }

    /// Declares one durable fanout exchange.
    async fn declare_fanout(&self, channel: &Channel, name: &str) -> Result<(), TopologyError> {
        channel
            .exchange_declare(
                name.into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.classify(name, e))
            .map(|_| ())
    }

    /// Declares one durable queue with `arguments`, a mismatch named after it.
    async fn declare_queue(
        &self,
        channel: &Channel,
        name: &str,
        arguments: FieldTable,
    ) -> Result<(), TopologyError> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(name.into(), durable, arguments)
            .await
            .map_err(|e| self.classify(name, e))?;
        Ok(())
    }

    fn classify(&self, entity: &str, error: lapin::Error) -> TopologyError {
        if let lapin::ErrorKind::ProtocolError(amqp) = error.kind() {
            let text = amqp.get_message().as_str();
            if text.contains("PRECONDITION_FAILED") {
                let argument = inequivalent_argument(text)
                    .unwrap_or("arguments")
                    .to_owned();
                return TopologyError::Mismatch {
                    queue: entity.to_owned(),
                    argument,
                    detail: text.to_owned(),
                };
            }
        }
        TopologyError::Broker {
            entity: entity.to_owned(),
            source: error,
        }
    }
}

/// RabbitMQ says `inequivalent arg 'x-delivery-limit' for queue ...`; the quoted name is the
/// argument that differs.
fn inequivalent_argument(text: &str) -> Option<&str> {
    let rest = text.split("inequivalent arg '").nth(1)?;
    rest.split('\'').next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_names_follow_the_queue() {
        let t = Topology::new("agent-tasks", 5);
        assert_eq!(t.dead_letter_exchange, "agent-tasks.dlx");
        assert_eq!(t.dead_letter_queue, "agent-tasks.dead");
    }

    #[test]
    fn retry_buckets_and_lock_names() {
        let t = Topology::new("agent-tasks", 5);
        let names: Vec<String> = t.retry_queues().into_iter().map(|q| q.name).collect();
        assert_eq!(
            names,
            [
                "agent-tasks.retry.5s",
                "agent-tasks.retry.30s",
                "agent-tasks.retry.5m",
                "agent-tasks.retry.30m"
            ]
        );
        let pick = |secs| t.retry_queue_for(Duration::from_secs(secs)).name;
        assert_eq!(pick(1), "agent-tasks.retry.5s");
        assert_eq!(pick(29), "agent-tasks.retry.5s");
        assert_eq!(pick(45), "agent-tasks.retry.30s");
        assert_eq!(pick(7200), "agent-tasks.retry.30m");
        let a = t.lock_queue("acme/payments#12");
        assert!(a.starts_with("agent-tasks.lock.acme_payments_12."), "{a}");
        assert_ne!(
            a,
            t.lock_queue("acme_payments#12"),
            "a hash tells them apart"
        );
        assert_eq!(a, t.lock_queue("acme/payments#12"), "stable");
        assert!(t.lock_queue(&"x".repeat(1000)).len() < 200);
    }

    #[test]
    fn broker_text_names_the_argument() {
        let text = "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received the value '3' of type 'signedint' but current is the value '5' of type 'signedint'";
        assert_eq!(inequivalent_argument(text), Some("x-delivery-limit"));
        assert_eq!(inequivalent_argument("PRECONDITION_FAILED - other"), None);
    }
}
