//! A test's queues on the real broker: [`QueueView`] reads them (ready counts, draining),
//! [`QueueGuard`] deletes them when the test ends, also when an assertion failed first (a
//! manual cleanup at the end of a test is skipped by a panic, and the queues leak).

use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use shared::topology::Topology;
use std::time::Duration;

async fn connect() -> Connection {
    Connection::connect(crate::BROKER, ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672")
}

/// The broker's view of a test's task queue (and of any other queue by name).
#[derive(Debug)]
pub struct QueueView {
    pub queue: String,
    connection: Connection,
    pub channel: Channel,
}

impl QueueView {
    pub async fn connect(queue: &str) -> Self {
        let connection = connect().await;
        let channel = connection.create_channel().await.expect("channel");
        Self {
            queue: queue.to_owned(),
            connection,
            channel,
        }
    }

    /// Messages ready in `queue` (0 when it does not exist).
    pub async fn count(&self, queue: &str) -> u32 {
        self.declared(queue).await.map_or(0, |q| q.message_count())
    }

    /// Consumers of `queue` (0 when it does not exist), as the broker counts them now:
    /// when a consumer's connection is gone, its unacked deliveries are ready again.
    pub async fn consumers(&self, queue: &str) -> u32 {
        self.declared(queue).await.map_or(0, |q| q.consumer_count())
    }

    /// A passive declare of `queue`: what the broker says of it, `None` when it does not
    /// exist. On a channel of its own: a passive declare of a missing queue closes its
    /// channel.
    async fn declared(&self, queue: &str) -> Option<lapin::Queue> {
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()
    }

    /// Takes every ready message of `queue` (acked).
    pub async fn take(&self, queue: &str) -> Vec<lapin::message::Delivery> {
        let mut out = Vec::new();
        while let Some(message) = self
            .channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
        {
            out.push(message.delivery);
        }
        out
    }

    /// Dead-letters `body` the way a worker that gives up does: published to the task queue,
    /// taken, rejected without requeue; returns once the broker moved it to `<queue>.dead`.
    pub async fn dead_letter(&self, body: &[u8], message_id: &str) {
        let channel = self.connection.create_channel().await.expect("channel");
        channel
            .basic_publish(
                "".into(),
                self.queue.as_str().into(),
                lapin::options::BasicPublishOptions::default(),
                body,
                lapin::BasicProperties::default().with_message_id(message_id.into()),
            )
            .await
            .expect("publish");
        let taken = crate::wait::poll_until(
            "the message arrives",
            Duration::from_secs(10),
            || async {
                channel
                    .basic_get(
                        self.queue.as_str().into(),
                        BasicGetOptions { no_ack: false },
                    )
                    .await
                    .expect("basic.get")
                    .map(|m| m.delivery)
            },
            Option::is_some,
        )
        .await
        .expect("a delivery");
        taken
            .acker
            .reject(lapin::options::BasicRejectOptions { requeue: false })
            .await
            .expect("reject");
        let dead = format!("{}.dead", self.queue);
        crate::wait::poll_until(
            "dead-lettered",
            Duration::from_secs(10),
            || self.count(&dead),
            |n| *n > 0,
        )
        .await;
    }

    /// Takes every ready message of the task queue (acked).
    pub async fn drain(&self) -> Vec<lapin::message::Delivery> {
        self.take(&self.queue.clone()).await
    }

    /// Deletes the task queue's whole topology now (as [`QueueGuard`] does on drop).
    pub async fn delete_all(&self) {
        delete_topology(&Topology::new(&self.queue, 1)).await;
    }

    /// The connection, for a test that needs a channel of its own.
    pub fn connection(&self) -> &Connection {
        &self.connection
    }
}

/// Deletes a task queue's whole topology (the queue, `.dead`, the `.dlx` exchange and the
/// `.retry.*` delay queues) when dropped.
#[derive(Debug)]
pub struct QueueGuard {
    topology: Topology,
}

impl QueueGuard {
    /// Guards the topology of `queue` (its names do not depend on the delivery limit).
    pub fn new(queue: &str) -> Self {
        Self {
            topology: Topology::new(queue, 1),
        }
    }

    pub fn queue(&self) -> &str {
        &self.topology.queue
    }

    /// Deletes the topology now (errors ignored: parts may never have been declared).
    pub async fn delete(&self) {
        delete_topology(&self.topology).await;
    }
}

async fn delete_topology(topology: &Topology) {
    let connection = connect().await;
    let channel = connection.create_channel().await.expect("channel");
    let retry = topology.retry_queues().into_iter().map(|q| q.name);
    let named = [
        topology.queue.clone(),
        topology.dead_letter_queue.clone(),
        topology.cancel_queue(),
    ];
    for queue in named.into_iter().chain(retry) {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for exchange in [
        topology.dead_letter_exchange.clone(),
        topology.control_exchange(),
    ] {
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = connection.close(200, "test done".into()).await;
}

impl Drop for QueueGuard {
    fn drop(&mut self) {
        // Drop cannot await, and it may run inside the test's runtime (blocking it would
        // deadlock a current-thread runtime): delete from a thread with a runtime of its own,
        // bounded, so a broker problem cannot hang the test's end.
        let topology = self.topology.clone();
        let deleting = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), delete_topology(&topology)).await;
            });
        });
        let _ = deleting.join();
    }
}
