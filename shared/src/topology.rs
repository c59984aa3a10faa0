//! The queue topology, declared from this one place by both services with identical
//! arguments: the quorum task queue with its delivery limit, and the dead-letter exchange and
//! queue behind it.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, ExchangeKind};

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

    /// The arguments of the task queue, exactly as declared.
    pub fn queue_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(LongString::from("quorum")),
        );
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

    fn dead_letter_queue_arguments() -> FieldTable {
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
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.dead_letter_exchange.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.classify(&self.dead_letter_exchange, e))?;
        channel
            .queue_declare(
                self.dead_letter_queue.as_str().into(),
                durable,
                Self::dead_letter_queue_arguments(),
            )
            .await
            .map_err(|e| self.classify(&self.dead_letter_queue, e))?;
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
        channel
            .queue_declare(self.queue.as_str().into(), durable, self.queue_arguments())
            .await
            .map_err(|e| self.classify(&self.queue, e))?;
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
    fn broker_text_names_the_argument() {
        let text = "PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' for queue 'q' in vhost '/': received the value '3' of type 'signedint' but current is the value '5' of type 'signedint'";
        assert_eq!(inequivalent_argument(text), Some("x-delivery-limit"));
        assert_eq!(inequivalent_argument("PRECONDITION_FAILED - other"), None);
    }
}
