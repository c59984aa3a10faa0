//! [`IssueThread`], the one place that knows where a task's comments go: the GitHub issue
//! or the Jira issue, with their comments flattened to one shape ([`ThreadComment`]).

use super::github::GitHub;
use super::http::ApiError;
use super::jira::Jira;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// Where the people waiting on a task read about it: the GitHub issue or the Jira issue.
#[derive(Debug, Clone)]
pub enum IssueThread {
    Github { github: GitHub, number: u64 },
    Jira { jira: Jira, key: String },
}

/// A comment on the thread, flattened to text. Jira's comments are read straight into it.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "super::jira::CommentWire")]
pub struct ThreadComment {
    pub id: String,
    pub text: String,
    pub raw: Value,
    pub author: String,
    pub created: DateTime<Utc>,
    /// When it was last edited (equal to `created` until someone edits it).
    pub updated: DateTime<Utc>,
}

impl ThreadComment {
    /// Whether `account` (the agent's login or Jira account id) wrote this comment.
    pub fn by(&self, account: &str) -> bool {
        super::same_account(&self.author, account)
    }
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
                    updated: c.updated_at,
                })
                .collect(),
            IssueThread::Jira { jira, key } => jira.comments(key).await?,
        })
    }

    /// Posts or edits the agent's own comment carrying `marker`: the one with id `known`
    /// when the caller has it (and it still exists), else the one `author` wrote with the
    /// marker; a comment by anyone else is never edited. GitHub gets `markdown`; Jira gets an
    /// ADF document of `plain` (its comments cannot hide markers, so `plain` shows them).
    /// Returns the comment's id.
    #[allow(clippy::too_many_arguments)]
    pub async fn upsert(
        &self,
        author: &str,
        known: Option<&str>,
        marker_github: &str,
        markdown: &str,
        marker_jira: &str,
        plain: &str,
        code: Option<(&str, &str)>,
    ) -> Result<String, ApiError> {
        match self {
            IssueThread::Github { github, number } => {
                if let Some(id) = known
                    && github.edit_comment_if_exists(id, markdown).await?
                {
                    return Ok(id.to_owned());
                }
                github
                    .upsert_comment(*number, author, marker_github, markdown)
                    .await
            }
            IssueThread::Jira { jira, key } => {
                let body = shared::adf::document(plain, code);
                if let Some(id) = known
                    && jira.edit_comment_if_exists(key, id, body.clone()).await?
                {
                    return Ok(id.to_owned());
                }
                jira.upsert_comment(key, author, marker_jira, body).await
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
