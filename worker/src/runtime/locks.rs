//! Per-issue serialization: two tasks for the same issue never run at the same time.
//!
//! Two walls. In this process, a set of the issue keys being worked on (several tasks at
//! once with `WORKER_CONCURRENCY` > 1; the embedded queue of `worker standalone`, whose
//! one process is the whole fleet). Across the fleet, a broker-held lock: the exclusive
//! queue `<queue>.lock.<issue>` declared on this worker's connection. A second declare from
//! another connection fails with `RESOURCE_LOCKED` (405), which closes the channel it was
//! sent on, hence one channel per lock. The broker drops the queue when the connection
//! closes, so a killed worker (even `kill -9`) releases its locks by itself.
//!
//! A task that finds its issue locked is not run: it waits as a delayed retry, which does
//! not count against the delivery limit.

use lapin::options::{QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use shared::settings::AmqpUrl;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};

/// The issue keys this process is working on.
#[derive(Debug, Clone, Default)]
pub struct IssueLocks(Arc<Mutex<HashSet<String>>>);

/// Held while a task of the issue runs here; dropping it releases the key.
#[derive(Debug)]
pub struct LocalLock {
    locks: IssueLocks,
    key: String,
}

impl IssueLocks {
    /// The lock of `key`, or `None` when a task of this process holds it.
    pub fn try_lock(&self, key: &str) -> Option<LocalLock> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        held.insert(key.to_owned()).then(|| LocalLock {
            locks: self.clone(),
            key: key.to_owned(),
        })
    }
}

impl Drop for LocalLock {
    fn drop(&mut self) {
        let mut held = self.locks.0.lock().unwrap_or_else(|p| p.into_inner());
        held.remove(&self.key);
    }
}

/// Why the broker lock was not taken.
#[derive(Debug)]
pub enum LockError {
    /// Another worker's connection holds it.
    Busy,
    /// The broker could not be asked (connection lost): the delivery cannot be settled
    /// either, so the caller requeues it.
    Broker(String),
}

/// The exclusive queue of one issue, on a connection of its own. Its own connection, not
/// the consuming one: a lock found taken is a channel error (`RESOURCE_LOCKED`), which on
/// the consuming connection was seen to end it, poisoning the ackers of the deliveries in
/// hand (a delayed retry's copy published, its original not acked: the task ran twice).
#[derive(Debug)]
pub struct BrokerLock {
    held: Option<(Connection, Channel)>,
    queue: String,
}

/// Takes the broker lock `queue` (see `Topology::lock_queue`).
pub async fn acquire(url: &AmqpUrl, queue: &str) -> Result<BrokerLock, LockError> {
    let broker = |e: lapin::Error| LockError::Broker(e.to_string());
    let connection = shared::amqp::connect(url, "agent-fleet issue lock")
        .await
        .map_err(broker)?;
    let channel = connection.create_channel().await.map_err(broker)?;
    let options = QueueDeclareOptions {
        exclusive: true,
        auto_delete: true,
        durable: false,
        ..QueueDeclareOptions::default()
    };
    match channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
    {
        Ok(_) => Ok(BrokerLock {
            held: Some((connection, channel)),
            queue: queue.to_owned(),
        }),
        Err(error) => {
            let _ = connection.close(200, "lock not taken".into()).await;
            if is_locked(&error) {
                Err(LockError::Busy)
            } else {
                Err(LockError::Broker(error.to_string()))
            }
        }
    }
}

fn is_locked(error: &lapin::Error) -> bool {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => {
            amqp.get_message().as_str().contains("RESOURCE_LOCKED")
        }
        _ => error.to_string().contains("RESOURCE_LOCKED"),
    }
}

impl BrokerLock {
    /// Deletes the lock queue (the next task of the issue may start anywhere) and closes
    /// its channel.
    pub async fn release(mut self) {
        if let Some(held) = self.held.take() {
            release_on(held, &self.queue).await;
        }
    }
}

async fn release_on((connection, channel): (Connection, Channel), queue: &str) {
    let deleted = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    if let Err(error) = deleted {
        // The connection is gone, and the broker dropped the queue with it.
        tracing::debug!(%error, queue, "lock queue not deleted");
    }
    let _ = channel.close(200, "issue lock released".into()).await;
    let _ = connection.close(200, "issue lock released".into()).await;
}

impl Drop for BrokerLock {
    /// A lock dropped without `release` (an unwinding task) must not stay held until the
    /// connection closes.
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            let queue = self.queue.clone();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { release_on(held, &queue).await });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_per_key_until_dropped() {
        let locks = IssueLocks::default();
        let first = locks.try_lock("acme/payments#1").expect("free");
        assert!(locks.try_lock("acme/payments#1").is_none(), "held");
        let other = locks.try_lock("acme/payments#2");
        assert!(other.is_some(), "another issue is not blocked");
        drop(first);
        assert!(locks.try_lock("acme/payments#1").is_some(), "released");
    }
}
