//! The worker library's items the tests use, named in this one place: the library's module
//! paths move (adapters, runtime), and a move is then fixed here, not in every test.
#![allow(unused_imports)]

pub use worker::adapters::git::{Cloned, Git, GitError};
pub use worker::adapters::http::ApiError;
pub use worker::agent::plan::{Plan, PlanFile};
pub use worker::agent::settings::AgentSettings;
pub use worker::handlers::test_recorder::record_name;
pub use worker::settings::WorkerSettings;

/// GitHub's JSON request helper, with a 404 being an error (not "absent").
pub async fn send_json_strict(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<serde_json::Value, ApiError> {
    worker::adapters::http::send_json(service, request).await
}
