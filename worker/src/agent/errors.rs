//! The agent's one settle vocabulary: every adapter error becomes a [`TaskError`] through
//! `From`, by one polarity (`is_transient`), and [`deferred`] turns a transient failure
//! that followed a long rate limit into a delayed retry at the handler's boundary.

use crate::adapters::git::GitError;
use crate::adapters::github::ApiError;
use crate::runtime::handler::TaskError;
use fleet_llm::LlmError;
use std::time::Duration;

/// How long a task waits (a delayed retry) when the LLM server still answers "overloaded"
/// or "rate-limited" after the client's own retries: an immediate requeue would spend the
/// delivery limit in seconds against a server that asked for patience.
pub const LLM_OVERLOAD_DEFERRAL: Duration = Duration::from_secs(60);

/// Transient errors are retried (requeue); the others will not get better and are
/// reported on the issue.
fn by_polarity(transient: bool, reason: String) -> TaskError {
    if transient {
        TaskError::Transient(reason)
    } else {
        TaskError::Permanent(reason)
    }
}

impl From<ApiError> for TaskError {
    fn from(e: ApiError) -> Self {
        by_polarity(e.is_transient(), e.to_string())
    }
}

impl From<GitError> for TaskError {
    fn from(e: GitError) -> Self {
        by_polarity(e.is_transient(), e.to_string())
    }
}

impl From<LlmError> for TaskError {
    fn from(e: LlmError) -> Self {
        if let LlmError::Http {
            status: 429 | 529, ..
        } = e
        {
            crate::runtime::wait::defer_current(LLM_OVERLOAD_DEFERRAL);
        }
        by_polarity(e.is_transient(), e.to_string())
    }
}

/// Says which setting names the agent when its identity could not be read from the token.
pub fn unknown_identity(setting: &str, error: ApiError) -> TaskError {
    by_polarity(
        error.is_transient(),
        format!(
            "the agent's own account is unknown (needed to tell its comments from anyone else's): set {setting}, or give credentials that may read it ({error})"
        ),
    )
}

/// A transient failure after a rate limit that outlasted the in-process wait (recorded in
/// the attempt's wait budget by the tracker client, or by an overloaded LLM) is a delayed
/// retry: the task comes back when the limit has passed instead of spending its delivery
/// limit in seconds. Applied once, where the handler hands its result to the runtime.
pub fn deferred(error: TaskError) -> TaskError {
    match error {
        TaskError::Transient(reason) => match crate::runtime::wait::current_deferral() {
            Some(after) => TaskError::Delayed { reason, after },
            None => TaskError::Transient(reason),
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wait::WaitBudget;

    fn llm_http(status: u16) -> LlmError {
        LlmError::Http {
            status,
            attempts: 4,
            message: "busy".into(),
        }
    }

    async fn settled_as(error: LlmError) -> TaskError {
        let budget = WaitBudget::new(Default::default(), Duration::from_secs(60));
        budget
            .scope(async move { deferred(TaskError::from(error)) })
            .await
    }

    #[tokio::test]
    async fn an_llm_still_overloaded_after_its_retries_is_a_delayed_retry() {
        for status in [429, 529] {
            match settled_as(llm_http(status)).await {
                TaskError::Delayed { after, .. } => {
                    assert_eq!(after, LLM_OVERLOAD_DEFERRAL, "HTTP {status}")
                }
                other => panic!("HTTP {status} settled as {other:?}"),
            }
        }
        assert!(matches!(
            settled_as(llm_http(502)).await,
            TaskError::Transient(_)
        ));
        assert!(matches!(
            settled_as(llm_http(401)).await,
            TaskError::Permanent(_)
        ));
    }
}
