//! The trackers the agent talks to: GitHub (issues, pull requests) and Jira (issues), and
//! [`IssueThread`], the one place that knows where a task's comments go.

pub mod github;
pub mod jira;

use github::{ApiError, GitHub};
use jira::Jira;
use serde_json::Value;

/// Where the people waiting on a task read about it: the GitHub issue or the Jira issue.
#[derive(Debug, Clone)]
pub enum IssueThread {
    Github { github: GitHub, number: u64 },
    Jira { jira: Jira, key: String },
}

/// A comment on the thread, flattened to text.
#[derive(Debug, Clone)]
pub struct ThreadComment {
    pub id: String,
    pub text: String,
    pub raw: Value,
    pub author: String,
    pub created: String,
}

impl IssueThread {
    pub async fn comments(&self) -> Result<Vec<ThreadComment>, ApiError> {
        Ok(match self {
            IssueThread::Github { github, number } => github
                .comments(*number)
                .await?
                .into_iter()
                .map(|c| ThreadComment {
                    raw: Value::String(c.body.clone()),
                    id: c.id,
                    text: c.body,
                    author: c.author,
                    created: c.created_at,
                })
                .collect(),
            IssueThread::Jira { jira, key } => jira
                .comments(key)
                .await?
                .into_iter()
                .map(|c| ThreadComment {
                    id: c.id,
                    text: c.text,
                    raw: c.body,
                    author: c.author,
                    created: c.created,
                })
                .collect(),
        })
    }

    /// Posts or edits the comment carrying `marker`. GitHub gets `markdown`; Jira gets an ADF
    /// document of `plain` (its comments cannot hide markers, so `plain` shows them).
    pub async fn upsert(
        &self,
        marker_github: &str,
        markdown: &str,
        marker_jira: &str,
        plain: &str,
        code: Option<(&str, &str)>,
    ) -> Result<String, ApiError> {
        match self {
            IssueThread::Github { github, number } => {
                github
                    .upsert_comment(*number, marker_github, markdown)
                    .await
            }
            IssueThread::Jira { jira, key } => {
                jira.upsert_comment(key, marker_jira, shared::adf::document(plain, code))
                    .await
            }
        }
    }

    /// Posts a new comment.
    pub async fn post(&self, markdown: &str, plain: &str) -> Result<String, ApiError> {
        match self {
            IssueThread::Github { github, number } => {
                Ok(github.post_comment(*number, markdown).await?.id)
            }
            IssueThread::Jira { jira, key } => {
                jira.post_comment(key, shared::adf::document(plain, None))
                    .await
            }
        }
    }
}
