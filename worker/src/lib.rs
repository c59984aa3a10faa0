//! The worker: a stateless consumer of the task queue that clones the repository, selects
//! context, asks an LLM and publishes the result on GitHub/Jira, settling each delivery only
//! after its temp dir is gone.
//!
//! # Layout
//! - [`settings`]: the worker's environment variables.
//! - [`runtime`]: consuming, settling, reconnecting, graceful shutdown, task dirs, metrics;
//!   it owns the handler interface ([`runtime::handler`]: [`runtime::handler::TaskHandler`]
//!   and the typed errors that decide ack, requeue or dead-letter) and the embedded SQLite
//!   queue of `worker standalone` ([`runtime::embedded`]).
//! - [`handlers`]: the handlers (the test-only recorder; the agent).
//! - [`agent`]: the agent's modes (QuickFix, Plan, Implement), prompts, status comment.
//! - [`adapters`]: the outside systems the agent talks to: GitHub and Jira REST clients,
//!   the git CLI, the HTTP error classification they share, the issue thread over both
//!   trackers.
//! - [`checkout`]: the read boundary of a cloned repository (no symlink in any component,
//!   nothing outside the root, only regular files, capped reads).
//! - [`oneshot`]: `worker run`, one task without a queue.
//! - [`startup`]: wiring the pieces per way of running; the only place that names the
//!   `ingest` crate (`worker standalone` serves its routes).

pub mod adapters;
pub mod agent;
pub mod checkout;
pub mod handlers;
pub mod oneshot;
pub mod runtime;
pub mod settings;
pub mod startup;
