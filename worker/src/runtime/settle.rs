//! Settling a delivery on its queue: ack, nack with requeue, reject, or a delayed retry (a
//! confirmed copy on a delay queue, then the ack it amounts to), counted and logged by how
//! it went (docs/contracts.md, "Settling a delivery").

use super::Shared;
use super::delay;
use super::delivery::Incoming;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use shared::queue::Settle;

/// Settles on the delivery's own channel. Returns whether the settle reached the queue
/// (`false` when the channel is gone: the broker then redelivers, and
/// [`super::local::LocalRuns`] replays the outcome) and the outcome to replay (a confirmed
/// delayed copy is replayed as the ack it amounts to).
pub(super) async fn settle(delivery: &Incoming, settle: Settle, shared: &Shared) -> (bool, Settle) {
    let (result, settled) = match (delivery, settle) {
        (Incoming::Embedded(lease), settle) => (
            lease.settle(settle).await.map_err(|e| e.to_string()),
            settle,
        ),
        (Incoming::Amqp(d, side), Settle::Delay(state)) => {
            let now = delay::now_ms();
            match delay::publish_copy(&side.retry, &side.topology, d, &state, now).await {
                Ok(queue) => {
                    tracing::info!(
                        retry_queue = %queue,
                        waits = state.waits,
                        due_in_ms = state.not_before_ms.saturating_sub(now),
                        "delayed retry published"
                    );
                    (ack(d).await, Settle::Ack)
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot publish the delayed retry; requeueing instead");
                    (requeue(d).await, Settle::Requeue)
                }
            }
        }
        (Incoming::Amqp(d, _), Settle::Ack) => (ack(d).await, settle),
        (Incoming::Amqp(d, _), Settle::Requeue) => (requeue(d).await, settle),
        (Incoming::Amqp(d, _), Settle::Reject) => (
            d.acker
                .reject(BasicRejectOptions { requeue: false })
                .await
                .map_err(|e| e.to_string()),
            settle,
        ),
    };
    let label = match settle {
        Settle::Ack => "ack",
        Settle::Requeue => "nack_requeue",
        Settle::Reject => "reject",
        Settle::Delay(_) if settled == Settle::Requeue => "nack_requeue",
        Settle::Delay(_) => "delay",
    };
    match result {
        Ok(true) => {
            shared.metrics.settles.with_label_values(&[label]).inc();
            tracing::info!(settle = label, "delivery settled");
            (true, settled)
        }
        Ok(false) | Err(_) => {
            shared.metrics.settles.with_label_values(&["failed"]).inc();
            tracing::warn!(
                settle = label,
                "could not settle: the channel is gone; the broker will redeliver"
            );
            (false, settled)
        }
    }
}

async fn ack(d: &Delivery) -> Result<bool, String> {
    d.acker
        .ack(BasicAckOptions::default())
        .await
        .map_err(|e| e.to_string())
}

async fn requeue(d: &Delivery) -> Result<bool, String> {
    d.acker
        .nack(BasicNackOptions {
            requeue: true,
            multiple: false,
        })
        .await
        .map_err(|e| e.to_string())
}
