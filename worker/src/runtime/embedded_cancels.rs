//! `/cancel` on `worker standalone`'s embedded queue: no exchange, no other worker. The
//! ingest's control messages go into `<queue>.cancels` in the queue's own file (durable,
//! like the fleet's, and kept across a restart); this process takes them one at a time and
//! gives each to the same handling as the fleet's durable consumer
//! (`control::handle`): the tasks of the issue running here stop (their processes killed,
//! their dirs removed, their deliveries acked), then, holding the issue's lock, the cancel
//! is written onto the status comment (a task of the issue still queued is skipped when it
//! starts). A busy issue waits again uncounted; a tracker failure is another delivery.

use super::Shared;
use super::control::{Recorded, handle};
use super::embedded::EmbeddedQueue;
use super::handler::TaskHandler;
use chrono::Utc;
use shared::control::ControlMessage;
use shared::queue::{Settle, WaitState};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// How long a cancel whose issue stayed locked waits before it is taken again.
const BUSY_PAUSE_MS: i64 = 1000;

/// `worker standalone` on its embedded queue: the file's `<queue>.cancels` (where the
/// ingest's control messages go) is taken in place of the exchange and the fleet's durable
/// queue, one process being the whole fleet: each cancel stops the tasks it applies to here
/// and is recorded as the fleet's durable consumer records it. Ends with `stop`.
pub fn consume<H: TaskHandler>(
    queue: EmbeddedQueue,
    shared: &Arc<Shared>,
    handler: &Arc<H>,
    stop: &CancellationToken,
) {
    let (shared, handler, stop) = (Arc::clone(shared), Arc::clone(handler), stop.clone());
    tokio::spawn(async move {
        loop {
            let lease = match queue.lease().await {
                Ok(lease) => lease,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the embedded cancels' queue");
                    None
                }
            };
            let Some(lease) = lease else {
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = queue.wait() => continue,
                }
            };
            let settle = match ControlMessage::from_slice(&lease.body) {
                Err(error) => {
                    tracing::warn!(%error, "unreadable cancel dropped");
                    Settle::Ack
                }
                Ok(cancel) => {
                    let cancel = Arc::new(cancel);
                    let count = lease.delivery_count;
                    let span = tracing::info_span!("cancel", issue = %cancel.issue_key, cancel_id = %cancel.cancel_id, delivery_count = count);
                    match handle(&cancel, count, &shared, &handler, false)
                        .instrument(span)
                        .await
                    {
                        Recorded::Done => Settle::Ack,
                        Recorded::Again => Settle::Requeue,
                        Recorded::Busy => Settle::Delay(WaitState {
                            not_before_ms: Utc::now().timestamp_millis() + BUSY_PAUSE_MS,
                            ..lease.wait
                        }),
                    }
                }
            };
            let requeued = settle != Settle::Ack;
            match lease.settle(settle).await {
                Ok(_) => tracing::info!(requeued, "cancel settled"),
                Err(error) => tracing::warn!(%error, "cannot settle the cancel; it comes back"),
            }
        }
    });
}
