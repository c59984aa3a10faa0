//! The worker library's items the tests use, named in this one place: the library's module
//! paths move (adapters, runtime), and a move is then fixed here, not in every test.
#![allow(unused_imports)]

pub use worker::agent::plan::{Plan, PlanFile};
pub use worker::agent::settings::AgentSettings;
pub use worker::git::{Git, GitError};
pub use worker::settings::WorkerSettings;
pub use worker::tracker::github::ApiError;

/// GitHub's JSON request helper, with a 404 being an error (not "absent").
pub async fn send_json_strict(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<Option<serde_json::Value>, ApiError> {
    worker::tracker::github::send_json(service, request, false).await
}
