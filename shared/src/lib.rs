//! What the ingest and the worker must agree on, and nothing only one side uses.
//!
//! # Layout
//! - [`adf`]: Jira's rich-text format, read as text and built from text.
//! - [`task`]: the task message v1 (serde types, strict version check, `RepoUrl`).
//! - [`control`]: control messages on the fanout exchange `<queue>.control` (`cancel`).
//! - [`topology`]: the quorum task queue, its delivery limit and dead-letter side, declared
//!   from one place with errors that name the mismatching argument.
//! - [`settings`]: reading environment variables with errors that name the variable; the
//!   settings both services share; secrets redacted in `Debug`.
//! - [`amqp`]: connecting with backoff, the confirm-mode publisher, and the self-healing
//!   [`amqp::BrokerLink`].
//! - [`queue`]: the queue contract: how a delivery is settled, the wait state of a
//!   delayed retry, and [`queue::TaskSink`] (where accepted tasks go).
//! - [`signals`]: SIGTERM/SIGINT as one future.
//! - [`telemetry`]: tracing set-up, Prometheus exposition and the ops routes.

pub mod adf;
pub mod amqp;
pub mod control;
pub mod queue;
pub mod settings;
pub mod signals;
pub mod task;
pub mod telemetry;
pub mod topology;

/// `Display` through the type's `as_str(self) -> &'static str`, for the enums whose text is
/// their name on the wire and in settings (one impl instead of one per enum).
#[macro_export]
macro_rules! display_as_str {
    ($($ty:ty),+ $(,)?) => {$(
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

pub use task::{Mode, RepoUrl, TaskMessage, Tracker};
