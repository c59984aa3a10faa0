//! The test kit: what the workspace's integration tests share, in one dev-only crate, so
//! that a test says what it checks and not how it talks to the broker or signs a webhook.
//!
//! | module | role |
//! |---|---|
//! | [`wait`] | [`wait_until`]: poll a condition against a deadline (no sleep-and-hope); the same for a `/readyz` |
//! | [`task`] | [`TaskBuilder`]: v1 task messages with test defaults |
//! | [`webhook`] | HMAC signatures, signed GitHub/Jira POSTs, the webhook fixtures |
//! | [`http`] | [`http::headers`]: a header map from (name, value) pairs |
//! | [`queues`] | [`QueueView`] (count, consumers, drain) and [`QueueGuard`] (deletes a test's queues on drop) |
//! | [`outcome`] | the outcome a worker logged for a task, and the assertion on it |
//! | [`knobs`] | a bench's `--name N` arguments, the property tests' case count |
//! | [`fuzz`] | the property tests' configuration and input pieces |
//! | [`proxy`] | [`CutProxy`]: a TCP proxy that can be cut (a broker or database outage) |
//! | [`ingest`] | the ingest started in-process on port 0 ([`TestIngest`]), signed deliveries and operator API calls to it |
//! | [`db`] | [`db::TestDb`]: a PostgreSQL database of the test's own |
//! | [`browser`] | [`browser::Browser`]: headless Chromium driven through chromedriver (WebDriver) |
//!
//! It is a dev-dependency only (of `shared`, `ingest`, `worker`, `fleet-edits`, `fleet-llm`,
//! `fleet-repo-config` and `fleet-ledger`); no library depends on it.
//! Every test still names its own queues ([`unique_queue`]): tests run in parallel on one
//! broker.

pub mod browser;
pub mod db;
pub mod fuzz;
pub mod http;
pub mod ingest;
pub mod knobs;
pub mod outcome;
pub mod proxy;
pub mod queues;
pub mod task;
pub mod wait;
pub mod webhook;

pub use ingest::TestIngest;
pub use outcome::{assert_outcome, logged_outcome};
pub use proxy::CutProxy;
pub use queues::{QueueGuard, QueueView};
pub use task::{TaskBuilder, issue_number_of};
pub use wait::wait_until;

/// The broker every test talks to (the CI starts it; see `.ci/run`).
pub const BROKER: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A queue name no other test (or run) uses: `test-<prefix>-<uuid>`.
pub fn unique_queue(prefix: &str) -> String {
    format!("test-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// A TCP port free at the time of asking (for a child process to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
