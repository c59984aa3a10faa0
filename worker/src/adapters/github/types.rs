//! GitHub's answers as serde types, with real timestamps. A required field that is missing
//! is an error naming it (see `adapters::http::decode`); fields GitHub documents as
//! nullable (a comment's `user` after an account was deleted, an issue's `body`) say so in
//! their type.

use crate::adapters::http::id_string;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};

/// Text that must be present but may be `null` (nothing written): read as empty.
fn nullable_text<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

#[derive(Debug, Deserialize)]
struct User {
    login: String,
}

#[derive(Debug, Deserialize)]
struct CommentWire {
    #[serde(deserialize_with = "id_string")]
    id: String,
    #[serde(deserialize_with = "nullable_text")]
    body: String,
    /// `null` for a deleted account: nobody, whose comments are never the agent's.
    user: Option<User>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An issue (or pull request) comment.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "CommentWire")]
pub struct Comment {
    pub id: String,
    pub body: String,
    /// The author's login; empty for a deleted account.
    pub author: String,
    pub created_at: DateTime<Utc>,
    /// Moves when someone edits the comment (equal to `created_at` until then).
    pub updated_at: DateTime<Utc>,
}

impl From<CommentWire> for Comment {
    fn from(c: CommentWire) -> Self {
        Comment {
            id: c.id,
            body: c.body,
            author: c.user.map(|u| u.login).unwrap_or_default(),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// An issue, as far as the agent reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct Issue {
    pub number: u64,
    pub title: String,
    #[serde(deserialize_with = "nullable_text")]
    pub body: String,
}

#[derive(Debug, Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    branch: String,
}

#[derive(Debug, Deserialize)]
struct PullWire {
    number: u64,
    html_url: String,
    node_id: String,
    draft: bool,
    head: Head,
    #[serde(deserialize_with = "nullable_text")]
    body: String,
}

/// A pull request, as far as the agent cares.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "PullWire")]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
    pub node_id: String,
    pub draft: bool,
    /// The head branch's name.
    pub head: String,
    pub body: String,
}

impl From<PullWire> for PullRequest {
    fn from(p: PullWire) -> Self {
        PullRequest {
            number: p.number,
            url: p.html_url,
            node_id: p.node_id,
            draft: p.draft,
            head: p.head.branch,
            body: p.body,
        }
    }
}

/// `GET /repos/{o}/{r}/collaborators/{user}/permission`.
#[derive(Debug, Deserialize)]
pub(super) struct Permission {
    pub permission: String,
}

/// `GET /repos/{o}/{r}`: the size in KiB, which GitHub may leave out.
#[derive(Debug, Deserialize)]
pub(super) struct Repository {
    pub size: Option<u64>,
}

/// `GET /user` (a token: `login`) or `GET /app` (an App: `slug`).
#[derive(Debug, Deserialize)]
pub(super) struct Account {
    pub login: Option<String>,
    pub slug: Option<String>,
}

/// `GET /repos/{o}/{r}/installation`.
#[derive(Debug, Deserialize)]
pub(super) struct Installation {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
}

/// `POST /app/installations/{id}/access_tokens`.
#[derive(Debug, Deserialize)]
pub(super) struct InstallationToken {
    pub token: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_comment_reads_its_author_and_times_and_needs_them() {
        let comment: Comment = serde_json::from_value(json!({
            "id": 7, "body": null, "user": {"login": "dev1"},
            "created_at": "2026-11-21T12:00:00Z", "updated_at": "2026-11-21T13:00:00Z",
        }))
        .expect("comment");
        assert_eq!((comment.id.as_str(), comment.body.as_str()), ("7", ""));
        assert_eq!(comment.author, "dev1");
        assert!(comment.updated_at > comment.created_at);
        let missing = serde_json::from_value::<Comment>(json!({"id": "7", "body": "x"}))
            .expect_err("no times");
        assert!(missing.to_string().contains("created_at"), "{missing}");
    }

    #[test]
    fn a_pull_request_without_a_number_is_an_error_that_names_it() {
        let error = serde_json::from_value::<PullRequest>(json!({
            "html_url": "u", "node_id": "n", "draft": false, "head": {"ref": "b"}, "body": null,
        }))
        .expect_err("no number");
        assert!(error.to_string().contains("`number`"), "{error}");
    }
}
