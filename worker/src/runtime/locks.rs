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

/// The connections issue locks are taken on, kept open between tasks. A lock gets a
/// connection of its own, not the consuming one: a lock found taken is a channel error
/// (`RESOURCE_LOCKED`), which on the consuming connection was seen to end it, poisoning the
/// ackers of the deliveries in hand (a delayed retry's copy published, its original not
/// acked: the task ran twice). Opening a connection per task cost ~10 ms of pickup
/// (`benches/runtime.rs`); a released lock gives its connection back instead. A connection
/// that saw a refusal or an error is closed, never reused.
#[derive(Debug)]
pub struct LockConnections {
    url: AmqpUrl,
    idle: Mutex<Vec<Connection>>,
    keep: usize,
}

impl LockConnections {
    /// At most `keep` idle connections are kept (one per task slot is enough).
    pub fn new(url: AmqpUrl, keep: usize) -> Arc<Self> {
        Arc::new(Self {
            url,
            idle: Mutex::new(Vec::new()),
            keep: keep.max(1),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Connection>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn take(&self) -> Result<Connection, lapin::Error> {
        loop {
            let pooled = self.idle().pop();
            match pooled {
                Some(connection) if connection.status().connected() => return Ok(connection),
                Some(_) => continue,
                None => return shared::amqp::connect(&self.url, "agent-fleet issue locks").await,
            }
        }
    }

    async fn give_back(&self, connection: Connection) {
        if connection.status().connected() {
            let mut idle = self.idle();
            if idle.len() < self.keep {
                idle.push(connection);
                return;
            }
        }
        let _ = connection.close(200, "not needed".into()).await;
    }

    /// Closes the idle connections (shutdown).
    pub async fn close_idle(&self) {
        let idle = std::mem::take(&mut *self.idle());
        for connection in idle {
            let _ = connection.close(200, "worker stopping".into()).await;
        }
    }
}

/// The exclusive queue of one issue, held on a channel of its own.
#[derive(Debug)]
pub struct BrokerLock {
    held: Option<(Connection, Channel)>,
    pool: Arc<LockConnections>,
    queue: String,
}

/// Takes the broker lock `queue` (see `Topology::lock_queue`).
pub async fn acquire(pool: &Arc<LockConnections>, queue: &str) -> Result<BrokerLock, LockError> {
    let broker = |e: lapin::Error| LockError::Broker(e.to_string());
    let connection = pool.take().await.map_err(broker)?;
    let channel = match connection.create_channel().await {
        Ok(channel) => channel,
        Err(error) => {
            let _ = connection.close(200, "channel refused".into()).await;
            return Err(broker(error));
        }
    };
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
            pool: Arc::clone(pool),
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
    /// Deletes the lock queue (the next task of the issue may start anywhere), closes its
    /// channel and gives the connection back.
    pub async fn release(mut self) {
        if let Some(held) = self.held.take() {
            release_on(held, &self.queue, &self.pool).await;
        }
    }
}

async fn release_on(
    (connection, channel): (Connection, Channel),
    queue: &str,
    pool: &LockConnections,
) {
    let deleted = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let closed = channel.close(200, "issue lock released".into()).await;
    match (deleted, closed) {
        (Ok(_), Ok(())) => pool.give_back(connection).await,
        (deleted, closed) => {
            // The connection is in doubt (or gone, and the broker dropped the queue with
            // it): closing it releases the lock for certain.
            tracing::debug!(?deleted, ?closed, queue, "lock queue not released cleanly");
            let _ = connection.close(200, "issue lock released".into()).await;
        }
    }
}

impl Drop for BrokerLock {
    /// A lock dropped without `release` (an unwinding task) must not stay held until the
    /// connection closes.
    fn drop(&mut self) {
        if let Some(held) = self.held.take() {
            let queue = self.queue.clone();
            let pool = Arc::clone(&self.pool);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move { release_on(held, &queue, &pool).await });
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
