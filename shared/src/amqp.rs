//! Talking to RabbitMQ: connecting with backoff, the confirm-mode publisher both the ingest
//! and the tests use, and [`BrokerLink`], which keeps a publisher alive across broker
//! restarts so that a service can start (and stay up) without a broker.

use crate::control::ControlMessage;
use crate::settings::AmqpUrl;
use crate::task::TaskMessage;
use crate::topology::{Topology, TopologyError};
use futures_util::StreamExt;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Exponential backoff with a cap; deterministic jitter-free steps keep tests predictable.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            next: initial,
            max,
        }
    }

    /// The delay to wait before the next attempt; each call doubles it up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.initial;
    }
}

impl Default for Backoff {
    /// 200 ms doubling to 5 s: a restarted broker is found again within seconds.
    fn default() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(5))
    }
}

/// One connection attempt. `name` shows in the management UI.
pub async fn connect(url: &AmqpUrl, name: &str) -> lapin::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url.expose(), properties).await
}

/// Connects, retrying with backoff until it works or `cancel` fires (then `None`).
pub async fn connect_with_retry(
    url: &AmqpUrl,
    name: &str,
    cancel: &CancellationToken,
) -> Option<Connection> {
    let mut backoff = Backoff::default();
    loop {
        let attempt = tokio::select! {
            () = cancel.cancelled() => return None,
            attempt = tokio::time::timeout(Duration::from_secs(10), connect(url, name)) => attempt,
        };
        let error = match attempt {
            Ok(Ok(connection)) => return Some(connection),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "connection attempt timed out".to_owned(),
        };
        let delay = backoff.next_delay();
        tracing::warn!(
            broker = %url,
            %error,
            retry_in_ms = delay.as_millis() as u64,
            "cannot reach the broker"
        );
        tokio::select! {
            () = cancel.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// Resolves when the connection or the channel is no longer usable.
pub async fn wait_until_broken(connection: &Connection, channel: &Channel) {
    let mut events = connection.events_listener();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        if !connection.status().connected() || !channel.status().connected() {
            return;
        }
        tokio::select! {
            event = events.next() => match event {
                None | Some(lapin::Event::Error(_)) => return,
                Some(_) => {}
            },
            _ = tick.tick() => {}
        }
    }
}

/// Why a publish did not count.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("no broker connection")]
    Unavailable,
    #[error("publish failed: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the broker returned the message as unroutable ({code} {text})")]
    Returned { code: u16, text: String },
    #[error("no confirm from the broker within {0:?}")]
    Timeout(Duration),
    /// Another durable queue (the embedded one of `worker standalone`) failed.
    #[error("the queue did not take the task: {0}")]
    Queue(String),
}

/// A channel in confirm mode publishing task messages to the task queue.
#[derive(Clone, Debug)]
pub struct Publisher {
    channel: Channel,
    routing_key: ShortString,
    control_exchange: ShortString,
    confirm_timeout: Duration,
}

impl Publisher {
    /// Opens a channel, declares the topology and enables publisher confirms.
    pub async fn open(
        connection: &Connection,
        topology: &Topology,
        confirm_timeout: Duration,
    ) -> Result<Self, TopologyError> {
        let broker = |source| TopologyError::Broker {
            entity: "channel".to_owned(),
            source,
        };
        let channel = connection.create_channel().await.map_err(broker)?;
        topology.declare(&channel).await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(broker)?;
        Ok(Self {
            channel,
            routing_key: topology.queue.as_str().into(),
            control_exchange: topology.control_exchange().as_str().into(),
            confirm_timeout,
        })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes one task; `Ok` only once the broker confirmed it and did not return it.
    pub async fn publish(&self, task: &TaskMessage) -> Result<(), PublishError> {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(task.task_id.as_str().into())
            .with_type(task.mode.as_str().into())
            .with_app_id("agent-fleet".into());
        self.publish_bytes(&task.to_json(), properties).await
    }

    /// Publishes a control message to the fanout exchange `<queue>.control`; `Ok` once
    /// confirmed (the durable `<queue>.cancels` is bound to it, so it is always routed).
    pub async fn publish_control(&self, message: &ControlMessage) -> Result<(), PublishError> {
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_delivery_mode(2)
            .with_message_id(message.cancel_id.as_str().into())
            .with_type("cancel".into())
            .with_app_id("agent-fleet".into());
        let exchange = self.control_exchange.clone();
        self.publish_to(
            exchange,
            ShortString::from(""),
            &message.to_json(),
            properties,
        )
        .await
    }

    /// Publishes any body (tests use it for poison messages) with the same guarantees.
    pub async fn publish_bytes(
        &self,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let key = self.routing_key.clone();
        self.publish_to(ShortString::from(""), key, body, properties)
            .await
    }

    async fn publish_to(
        &self,
        exchange: ShortString,
        routing_key: ShortString,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        let confirmed = async {
            let confirm = self
                .channel
                .basic_publish(
                    exchange,
                    routing_key,
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    body,
                    properties,
                )
                .await?;
            confirm.await
        };
        let confirmation = tokio::time::timeout(self.confirm_timeout, confirmed)
            .await
            .map_err(|_| PublishError::Timeout(self.confirm_timeout))??;
        match confirmation {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(PublishError::Returned {
                    code: returned.reply_code,
                    text: returned.reply_text.to_string(),
                })
            }
            Confirmation::Nack(None) => Err(PublishError::Nacked),
            // confirm_select ran in `open`, so this would be a lapin bug; never count it.
            Confirmation::NotRequested => Err(PublishError::Nacked),
        }
    }
}

/// The live connection and its publisher.
type Live = (Arc<Connection>, Publisher);

/// A self-healing publisher: a background task connects (with backoff), declares the
/// topology, and reconnects whenever the connection breaks.
#[derive(Clone, Debug)]
pub struct BrokerLink {
    current: Arc<RwLock<Option<Live>>>,
}

impl BrokerLink {
    /// Starts the background task; it stops and closes the connection when `cancel` fires.
    pub fn spawn(
        url: AmqpUrl,
        topology: Topology,
        connection_name: String,
        confirm_timeout: Duration,
        cancel: CancellationToken,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let link = Self {
            current: Arc::new(RwLock::new(None)),
        };
        let task_link = link.clone();
        let handle = tokio::spawn(async move {
            task_link
                .run(url, topology, connection_name, confirm_timeout, cancel)
                .await;
        });
        (link, handle)
    }

    async fn run(
        &self,
        url: AmqpUrl,
        topology: Topology,
        name: String,
        confirm_timeout: Duration,
        cancel: CancellationToken,
    ) {
        let mut backoff = Backoff::default();
        while let Some(connection) = connect_with_retry(&url, &name, &cancel).await {
            let connection = Arc::new(connection);
            match Publisher::open(&connection, &topology, confirm_timeout).await {
                Ok(publisher) => {
                    backoff.reset();
                    tracing::info!(broker = %url, queue = %topology.queue, "broker connected");
                    let channel = publisher.channel().clone();
                    self.set(Some((connection.clone(), publisher)));
                    tokio::select! {
                        () = cancel.cancelled() => {}
                        () = wait_until_broken(&connection, &channel) => {
                            tracing::warn!(broker = %url, "broker connection lost; reconnecting");
                        }
                    }
                    self.set(None);
                }
                Err(error) => {
                    // A mismatch will not heal by itself, but an operator may fix the queue
                    // while we wait; keep the service up and say exactly what is wrong.
                    tracing::error!(broker = %url, %error, "cannot declare the queue topology");
                }
            }
            let _ = connection
                .close(200, "agent-fleet reconnecting or stopping".into())
                .await;
            if cancel.is_cancelled() {
                break;
            }
            let delay = backoff.next_delay();
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(delay) => {}
            }
        }
        self.set(None);
    }

    fn set(&self, value: Option<Live>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = value;
    }

    /// The publisher, when the broker is connected and the channel open.
    pub fn publisher(&self) -> Option<Publisher> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|(connection, publisher)| {
                connection.status().connected() && publisher.channel().status().connected()
            })
            .map(|(_, publisher)| publisher.clone())
    }

    pub fn is_ready(&self) -> bool {
        self.publisher().is_some()
    }

    /// The live connection, for a short-lived channel of one's own (a basic.get that must
    /// not leave an unacked message on the publishing channel).
    pub fn connection(&self) -> Option<Arc<Connection>> {
        let guard = self.current.read().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .filter(|(connection, _)| connection.status().connected())
            .map(|(connection, _)| connection.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let steps: Vec<u64> = (0..4).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(steps, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }
}
