//! The outside systems the agent talks to, each behind a small typed client:
//!
//! - [`http`]: sending a REST request and classifying the answer (transient, rate limited,
//!   refused, invalid), shared by both trackers; [`http::ApiError`].
//! - [`github`]: the GitHub REST client (permissions, comments, pull requests, labels) and
//!   its auth (token or GitHub App), with serde types for GitHub's answers.
//! - [`jira`]: the Jira Cloud client (issues, ADF comments, permissions).
//! - [`thread`]: [`thread::IssueThread`], where a task's comments go on either tracker.
//! - [`git`]: the git CLI (shallow clone, commit, push) with credentials kept out of argv.

pub mod git;
pub mod github;
pub mod http;
pub mod jira;
pub mod thread;

/// Whether two logins (or Jira account ids) name the same account; an empty name is
/// nobody.
pub fn same_account(a: &str, b: &str) -> bool {
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}
