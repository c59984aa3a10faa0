//! The worker: a stateless consumer of the task queue that clones the repository, selects
//! context, asks an LLM and publishes the result on GitHub/Jira, settling each delivery only
//! after its temp dir is gone.
//!
//! # Layout
//! - [`settings`]: the worker's environment variables.
//! - [`handler`]: the [`handler::TaskHandler`] interface and the typed errors that decide
//!   ack, requeue or dead-letter.
//! - [`runtime`]: consuming, settling, reconnecting, graceful shutdown, task dirs, metrics.
//! - [`handlers`]: the handlers (the test-only recorder; the agent).
//! - [`checkout`]: the read boundary of a cloned repository (no symlink in any component,
//!   nothing outside the root, only regular files, capped reads).
//! - [`git`]: shallow clone, commit and push with the git CLI, credentials kept out of argv.

pub mod agent;
pub mod checkout;
pub mod embedded;
pub mod git;
pub mod handler;
pub mod handlers;
pub mod oneshot;
pub mod runtime;
pub mod settings;
pub mod startup;
pub mod tracker;
