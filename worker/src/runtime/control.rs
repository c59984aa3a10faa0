//! `/cancel`: control messages from the fanout exchange `<queue>.control`
//! (docs/contracts.md, "Control messages"), and what this process does with them.
//!
//! Three parts:
//! - [`Cancels`], the registry of the tasks running here (issue, when the task was asked
//!   for) and of the cancels seen lately. A cancel of issue K stops every task of K running
//!   here that was asked for before it (`trigger.received_at <= requested_at`); a task of K
//!   that starts later here and was asked for before it does not run. Both under one lock:
//!   a cancel arriving while a task registers is never missed by both sides.
//! - the broadcast listener: each worker's own exclusive, auto-delete, server-named queue
//!   bound to the exchange, declared again on every connection (no acks). A connection
//!   whose listener cannot be set up, or whose channel closes, is dropped and made again:
//!   a worker takes no task it could not hear a cancel for. A broadcast lost with a
//!   connection is covered for *queued* tasks by the durable copy and the status comment;
//!   a task running on a worker whose connection was cut at that moment is not stopped
//!   (see the README's known limits).
//! - the durable consumer of `<queue>.cancels` (prefetch 1, manual acks; the workers share
//!   it, so one of them takes each cancel): the local part too, then, holding the issue's
//!   lock (so the task being stopped has reported first; a busy lock is waited for again
//!   and again, never counted as a failure), the handler writes the cancel
//!   onto the issue's status comment unless the running task's report did. A queued task
//!   of the issue reads it there when it starts, on any worker, also one started later.
//!
//! The embedded queue (`worker standalone` without a broker) has no control exchange: its
//! own durable `<queue>.cancels` in the same file takes both parts (`embedded_cancels`),
//! with the issue's lock of this process (the only one).

use super::Shared;
use super::delivery::delivery_count;
use super::handler::{TaskError, TaskHandler};
use super::locks::{self, LockError};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use lapin::Connection;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use shared::TaskMessage;
use shared::control::ControlMessage;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How many recent cancels are kept (the newest per issue), and for how long: enough for a
/// task queued (or waiting in a delay queue) behind its cancel.
const RECENT_MAX: usize = 1024;
const RECENT_AGE: Duration = Duration::from_secs(6 * 3600);

/// How long the durable consumer waits for the issue's lock (the stopped task reports
/// with it held, bounded by [`REPORT_WITHIN`]).
const LOCK_WAIT: Duration = Duration::from_secs(90);

/// How long a handler's cancel report or record may take.
pub const REPORT_WITHIN: Duration = Duration::from_secs(30);

/// Deliveries of one cancel before it is given up (a tracker down for a while).
const CANCEL_ATTEMPTS: u32 = 3;

#[derive(Debug)]
struct Running {
    issue: String,
    asked_at: DateTime<Utc>,
    stop: Option<oneshot::Sender<Arc<ControlMessage>>>,
}

#[derive(Debug, Default)]
struct Inner {
    running: HashMap<u64, Running>,
    /// issue key -> its newest cancel, and when it was seen.
    recent: HashMap<String, (Arc<ControlMessage>, Instant)>,
    next: u64,
}

/// The tasks running here and the cancels seen lately.
#[derive(Debug, Default)]
pub struct Cancels(Mutex<Inner>);

/// A running task's entry in [`Cancels`]; removed when dropped.
#[derive(Debug)]
pub struct Registration {
    cancels: Arc<Cancels>,
    id: u64,
    stop: oneshot::Receiver<Arc<ControlMessage>>,
}

impl Registration {
    /// Resolves when a cancel of the task's issue arrived.
    pub async fn cancelled(&mut self) -> Arc<ControlMessage> {
        match (&mut self.stop).await {
            Ok(cancel) => cancel,
            // The sender lives in the registry until this entry is dropped.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.cancels.inner().running.remove(&self.id);
    }
}

fn stops(cancel: &ControlMessage, issue: &str, asked_at: DateTime<Utc>) -> bool {
    !issue.is_empty() && cancel.issue_key == issue && asked_at <= cancel.requested_at
}

impl Cancels {
    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers `task` as running here, or returns the cancel seen lately that stops it.
    pub fn register(
        self: &Arc<Self>,
        task: &TaskMessage,
    ) -> Result<Registration, Arc<ControlMessage>> {
        let mut inner = self.inner();
        let asked_at = task.trigger.received_at;
        if let Some((cancel, _)) = inner.recent.get(&task.issue.key)
            && stops(cancel, &task.issue.key, asked_at)
        {
            return Err(cancel.clone());
        }
        let (tx, rx) = oneshot::channel();
        inner.next += 1;
        let id = inner.next;
        inner.running.insert(
            id,
            Running {
                issue: task.issue.key.clone(),
                asked_at,
                stop: Some(tx),
            },
        );
        Ok(Registration {
            cancels: Arc::clone(self),
            id,
            stop: rx,
        })
    }

    /// Applies `cancel` here: remembers it (bounded) and stops the tasks it applies to.
    /// Returns how many it stopped (a second copy of the same cancel stops none).
    pub fn apply(&self, cancel: &Arc<ControlMessage>) -> usize {
        if cancel.issue_key.is_empty() {
            return 0;
        }
        let mut inner = self.inner();
        let now = Instant::now();
        inner
            .recent
            .retain(|_, (_, seen)| now.duration_since(*seen) < RECENT_AGE);
        let newer = inner
            .recent
            .get(&cancel.issue_key)
            .is_none_or(|(kept, _)| kept.requested_at <= cancel.requested_at);
        if newer {
            if inner.recent.len() >= RECENT_MAX
                && !inner.recent.contains_key(&cancel.issue_key)
                && let Some(oldest) = (inner.recent.iter())
                    .min_by_key(|(_, (_, seen))| *seen)
                    .map(|(k, _)| k.clone())
            {
                inner.recent.remove(&oldest);
            }
            inner
                .recent
                .insert(cancel.issue_key.clone(), (cancel.clone(), now));
        }
        let mut stopped = 0;
        for running in inner.running.values_mut() {
            if stops(cancel, &running.issue, running.asked_at)
                && let Some(stop) = running.stop.take()
                && stop.send(cancel.clone()).is_ok()
            {
                stopped += 1;
            }
        }
        stopped
    }
}

/// Starts this connection's control listeners: the broadcast queue and the durable
/// cancels' consumer. They end with the connection; the durable one also on `give_up`.
pub async fn listen<H: TaskHandler>(
    connection: &Connection,
    shared: &Arc<Shared>,
    handler: &Arc<H>,
    give_up: &CancellationToken,
) -> Result<lapin::Channel, lapin::Error> {
    let topology = shared.settings.common.topology();
    let broadcast = connection.create_channel().await?;
    let watched = broadcast.clone();
    let own = broadcast
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                durable: false,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let exchange = topology.control_exchange();
    broadcast
        .queue_bind(
            own.name().as_str().into(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut heard = broadcast
        .basic_consume(
            own.name().as_str().into(),
            "control".into(),
            BasicConsumeOptions {
                no_ack: true,
                exclusive: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let on_broadcast = Arc::clone(shared);
    tokio::spawn(async move {
        // The channel must outlive its consumer.
        let _channel = broadcast;
        while let Some(Ok(delivery)) = heard.next().await {
            match ControlMessage::from_slice(&delivery.data) {
                Ok(cancel) => {
                    let cancel = Arc::new(cancel);
                    let stopped = on_broadcast.cancels.apply(&cancel);
                    tracing::info!(issue = %cancel.issue_key, cancel_id = %cancel.cancel_id, stopped, "cancel heard");
                }
                Err(error) => tracing::warn!(%error, "unreadable control message ignored"),
            }
        }
    });

    let durable = connection.create_channel().await?;
    durable.basic_qos(1, BasicQosOptions::default()).await?;
    let tag = format!("cancels-{}", std::process::id());
    let mut taken = durable
        .basic_consume(
            topology.cancel_queue().as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let (shared, handler, give_up) = (Arc::clone(shared), Arc::clone(handler), give_up.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = give_up.cancelled() => {
                    let _ = durable.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                    break;
                }
                next = taken.next() => match next {
                    Some(Ok(delivery)) => take(delivery, &shared, &handler).await,
                    _ => break,
                }
            }
        }
    });
    Ok(watched)
}

/// One cancel from the durable queue, settled in every case (a bad one never loops).
async fn take<H: TaskHandler>(delivery: Delivery, shared: &Arc<Shared>, handler: &Arc<H>) {
    let count = delivery_count(&delivery);
    let cancel = match ControlMessage::from_slice(&delivery.data) {
        Ok(cancel) => Arc::new(cancel),
        Err(error) => {
            tracing::warn!(%error, "unreadable cancel dropped");
            let _ = delivery.acker.ack(BasicAckOptions::default()).await;
            return;
        }
    };
    let span = tracing::info_span!("cancel", issue = %cancel.issue_key, cancel_id = %cancel.cancel_id, delivery_count = count);
    async {
        let again = handle(&cancel, count, shared, handler, true).await != Recorded::Done;
        let settled = if again {
            delivery
                .acker
                .nack(BasicNackOptions {
                    requeue: true,
                    multiple: false,
                })
                .await
        } else {
            delivery.acker.ack(BasicAckOptions::default()).await
        };
        match settled {
            Ok(_) => tracing::info!(requeued = again, "cancel settled"),
            Err(error) => {
                tracing::warn!(%error, "cannot settle the cancel; the broker will redeliver it")
            }
        }
    }
    .instrument(span)
    .await;
}

/// What became of a cancel taken from a durable queue.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Recorded {
    /// Recorded, or given up on: settled for good.
    Done,
    /// The issue stayed locked: it waits again, uncounted.
    Busy,
    /// The tracker failed it: another attempt.
    Again,
}

/// The part every durable cancel goes through (the fleet's `<queue>.cancels` and the
/// embedded queue's): the tasks it applies to here stop, then, holding the issue's locks
/// (the broker's too when `broker`), the handler records it on the status comment.
pub(super) async fn handle<H: TaskHandler>(
    cancel: &Arc<ControlMessage>,
    count: u32,
    shared: &Arc<Shared>,
    handler: &Arc<H>,
    broker: bool,
) -> Recorded {
    let stopped = shared.cancels.apply(cancel);
    tracing::info!(stopped, "cancel taken");
    let recorded = match lock_issue(&cancel.issue_key, shared, broker).await {
        Err(error) => Err(error),
        Ok(lock) => {
            let recorded = tokio::time::timeout(REPORT_WITHIN, handler.record_cancel(cancel))
                .await
                .unwrap_or_else(|_| Err(TaskError::Transient("took too long".into())));
            lock.release().await;
            recorded
        }
    };
    match &recorded {
        Ok(()) => {
            tracing::info!("cancel recorded");
            Recorded::Done
        }
        // Waiting for the issue's lock never uses up the cancel's attempts.
        Err(TaskError::Delayed { .. }) => {
            tracing::info!(error = ?recorded, "the issue is busy; the cancel waits again");
            Recorded::Busy
        }
        Err(TaskError::Transient(_)) if count + 1 < CANCEL_ATTEMPTS => {
            tracing::warn!(error = ?recorded, "cannot record the cancel yet; requeueing it");
            Recorded::Again
        }
        Err(error) => {
            tracing::warn!(?error, "cannot record the cancel; giving up on it");
            Recorded::Done
        }
    }
}

/// The issue's locks, held while the cancel is recorded.
struct Held(Option<locks::LocalLock>, Option<locks::BrokerLock>);

impl Held {
    async fn release(self) {
        let Held(local, broker) = self;
        if let Some(broker) = broker {
            broker.release().await;
        }
        drop(local);
    }
}

/// Takes the issue's locks (this process', then the broker's) as a task does, waiting
/// (bounded) while a task of the issue holds them: it is being stopped, or it came after
/// the cancel.
async fn lock_issue(key: &str, shared: &Shared, broker: bool) -> Result<Held, TaskError> {
    if key.is_empty() {
        return Ok(Held(None, None));
    }
    let queue = shared.settings.common.topology().lock_queue(key);
    let deadline = Instant::now() + LOCK_WAIT;
    let mut pause = Duration::from_millis(100);
    loop {
        if let Some(local) = shared.locks.try_lock(key) {
            if !broker {
                return Ok(Held(Some(local), None));
            }
            match locks::acquire(&shared.lock_connections, &queue).await {
                Ok(broker) => return Ok(Held(Some(local), Some(broker))),
                Err(LockError::Busy) => {}
                Err(LockError::Broker(error)) => return Err(TaskError::Transient(error)),
            }
        }
        if Instant::now() + pause > deadline {
            // Busy is no failure: a task of the issue runs (a newer one, or one elsewhere
            // that is being stopped); the cancel waits again, however long that takes.
            return Err(TaskError::Delayed {
                reason: format!("the issue stayed locked for {} s", LOCK_WAIT.as_secs()),
                after: LOCK_WAIT,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancel(issue: &str, at: &str) -> Arc<ControlMessage> {
        let json = serde_json::json!({
            "type": "cancel", "issue_key": issue, "requested_by": "dev1",
            "cancel_id": format!("github:{at}"), "requested_at": at, "source": "github",
            "repo_url": "https://github.com/acme/payments",
            "issue": {"tracker": "github", "key": issue, "number": 1, "title": "t",
                      "url": "https://github.com/acme/payments/issues/1"}
        });
        Arc::new(ControlMessage::from_slice(json.to_string().as_bytes()).expect("cancel"))
    }

    fn task(issue: &str, at: &str) -> TaskMessage {
        let json = serde_json::json!({
            "version": 1, "task_id": format!("github:{issue}{at}"), "mode": "quickfix",
            "source": "github", "repo_url": "https://github.com/acme/payments",
            "issue": {"tracker": "github", "key": issue, "number": 1, "title": "t",
                      "url": "https://github.com/acme/payments/issues/1"},
            "trigger_user": "dev1",
            "trigger": {"event": "issues.labeled", "delivery_id": "d", "received_at": at}
        });
        TaskMessage::from_slice(json.to_string().as_bytes()).expect("task")
    }

    #[tokio::test]
    async fn a_cancel_stops_the_older_tasks_of_its_issue_and_only_those() {
        let cancels = Arc::new(Cancels::default());
        let mut older = cancels
            .register(&task("a/b#1", "2026-12-03T10:00:00Z"))
            .expect("runs");
        let _newer = cancels
            .register(&task("a/b#1", "2026-12-03T10:05:00Z"))
            .expect("runs");
        let _other = cancels
            .register(&task("a/b#2", "2026-12-03T10:00:00Z"))
            .expect("runs");
        let c = cancel("a/b#1", "2026-12-03T10:01:00Z");
        assert_eq!(cancels.apply(&c), 1);
        assert_eq!(older.cancelled().await.cancel_id, c.cancel_id);
        assert_eq!(
            cancels.apply(&c),
            0,
            "the same cancel again stops nothing more"
        );
        // A task asked for before the cancel, starting after it: not run.
        let late = cancels.register(&task("a/b#1", "2026-12-03T09:59:00Z"));
        assert!(late.is_err());
        // One asked for after it runs.
        assert!(
            cancels
                .register(&task("a/b#1", "2026-12-03T10:02:00Z"))
                .is_ok()
        );
        drop(older);
        assert_eq!(cancels.inner().running.len(), 2, "dropped entries leave");
    }

    #[test]
    fn the_memory_of_cancels_is_bounded() {
        let cancels = Cancels::default();
        for i in 0..(RECENT_MAX + 10) {
            cancels.apply(&cancel(&format!("a/b#{i}"), "2026-12-03T10:00:00Z"));
        }
        assert_eq!(cancels.inner().recent.len(), RECENT_MAX);
        assert_eq!(cancels.apply(&cancel("", "2026-12-03T10:00:00Z")), 0);
    }
}
