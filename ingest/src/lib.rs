//! The ingest: a thin, stateless front door that turns signed GitHub and Jira webhooks into
//! task messages on the queue, answering 202 only once the broker confirmed the publish.
//!
//! # Layout
//! - [`app`]: routes, handlers and [`Application`] (bind, serve, graceful shutdown).
//! - [`admission`]: receives webhook bodies under the size, time and concurrency bounds.
//! - [`serve`]: the HTTP/1 accept loop with its header read timeout.
//! - [`settings`]: the ingest's environment variables.
//! - [`signature`]: HMAC-SHA256 verification against one or more secrets.
//! - [`normalize`]: what both sources share (outcomes, 400 errors, `/approve`/`/revise`).
//! - [`github`], [`jira`]: each source's trigger table.
//! - where accepted tasks go is `shared::queue::TaskSink` (RabbitMQ, or `worker
//!   standalone`'s embedded queue).
//! - [`dedupe`]: the per-replica memory of published deliveries.
//! - [`metrics`]: counters and histograms, updated where each outcome is logged.
//! - [`records`]: what the ingest writes to the task ledger (`DATABASE_URL`).
//! - [`api`]: the operator API under `/api/v1` (tasks, cancel, retry, dead letters, audit).
//! - [`export`]: `ingest audit-export`, the audit trail as JSON lines.
//! - [`console`]: the operator console at `/console` (server-rendered HTML, no JavaScript).

pub mod admission;
pub mod api;
pub mod app;
pub mod console;
pub mod dedupe;
pub mod export;
pub mod github;
pub mod jira;
pub mod metrics;
pub mod normalize;
pub mod records;
pub mod serve;
pub mod settings;
pub mod signature;

pub use app::Application;
pub use settings::IngestSettings;
