//! Where accepted tasks go. The service publishes to RabbitMQ through the self-healing
//! [`BrokerLink`]; `worker standalone` plugs in its embedded queue instead. Either way a
//! publish counts only once the queue has durably taken the task.

use shared::TaskMessage;
use shared::amqp::{BrokerLink, PublishError};
use std::future::Future;
use std::pin::Pin;

pub type PublishFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PublishError>> + Send + 'a>>;

/// A durable queue the ingest can hand tasks to.
pub trait TaskSink: Send + Sync + std::fmt::Debug {
    /// `Ok` only once the task is durably queued; `Err(Unavailable)` without trying when
    /// the queue cannot be reached right now.
    fn publish<'a>(&'a self, task: &'a TaskMessage) -> PublishFuture<'a>;
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

    fn is_ready(&self) -> bool {
        BrokerLink::is_ready(self)
    }
}
