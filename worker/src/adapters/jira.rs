//! A small Jira Cloud client (REST v3, ADF bodies) for what the agent does on Jira: the
//! issue's fields, comments (found again by their visible markers, only the agent's own
//! count), the agent's own account, and the approver's permission. Answers are read into
//! serde types with real timestamps; a missing required field is an error naming it.

use super::http::{self, ApiError, fetch, send_json, send_json_if_found};
use super::same_account;
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use shared::adf;

const SERVICE: &str = "Jira";

#[derive(Clone)]
pub struct Jira {
    http: reqwest::Client,
    base: String,
    email: String,
    token: SecretString,
}

impl std::fmt::Debug for Jira {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jira")
            .field("base", &self.base)
            .field("email", &self.email)
            .finish()
    }
}

/// A Jira comment: the thread's own shape, its `text` the body flattened from ADF and its
/// `raw` the ADF document (read from `CommentWire`).
pub type JiraComment = super::thread::ThreadComment;

/// Jira's timestamps: `2026-11-21T12:00:00.000+0000` (no colon in the offset), or RFC 3339.
fn jira_time<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
    let text = String::deserialize(d)?;
    DateTime::parse_from_rfc3339(&text)
        .or_else(|_| DateTime::parse_from_str(&text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| serde::de::Error::custom(format!("timestamp {text:?}: {e}")))
}

#[derive(Debug, Deserialize)]
struct Author {
    #[serde(rename = "accountId")]
    account_id: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct CommentWire {
    #[serde(deserialize_with = "http::id_string")]
    id: String,
    body: Value,
    /// Absent for an anonymous or deleted author: nobody, never the agent.
    author: Option<Author>,
    #[serde(deserialize_with = "jira_time")]
    created: DateTime<Utc>,
    #[serde(deserialize_with = "jira_time")]
    updated: DateTime<Utc>,
}

impl From<CommentWire> for JiraComment {
    fn from(c: CommentWire) -> Self {
        JiraComment {
            id: c.id,
            text: adf::body_text(&c.body),
            raw: c.body,
            author: c.author.map(|a| a.account_id).unwrap_or_default(),
            created: c.created,
            updated: c.updated,
        }
    }
}

/// One page of `GET /issue/{key}/comment`.
#[derive(Debug, Deserialize)]
struct CommentPage {
    comments: Vec<JiraComment>,
    total: usize,
}

#[derive(Debug, Deserialize)]
struct Posted {
    #[serde(deserialize_with = "http::id_string")]
    id: String,
}

#[derive(Debug, Deserialize)]
struct IssueWire {
    fields: Fields,
}

#[derive(Debug, Deserialize)]
struct Fields {
    summary: String,
    /// ADF, plain text on old instances, or `null` (no description).
    #[serde(default)]
    description: Value,
    /// Jira leaves out a field the issue's screen does not have: no labels then.
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Myself {
    #[serde(rename = "accountId")]
    account_id: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PermittedUser {
    #[serde(rename = "accountId")]
    account_id: String,
}

/// What the agent reads of a Jira issue: webhook payloads of comments carry none of it.
#[derive(Debug, Clone, Default)]
pub struct JiraIssue {
    pub summary: String,
    /// The description's ADF, flattened to text.
    pub description: String,
    pub labels: Vec<String>,
}

impl Jira {
    pub fn new(base: &str, email: &str, token: SecretString) -> Result<Self, ApiError> {
        let http = http::client(SERVICE)?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            email: email.to_owned(),
            token,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.email, Some(self.token.expose_secret()))
            .header("accept", "application/json")
    }

    pub async fn comments(&self, key: &str) -> Result<Vec<JiraComment>, ApiError> {
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let path = format!("/rest/api/3/issue/{key}/comment?startAt={start}&maxResults=100");
            let page: CommentPage =
                fetch(SERVICE, self.request(reqwest::Method::GET, &path)).await?;
            let (count, total) = (page.comments.len(), page.total);
            out.extend(page.comments);
            start += count;
            if count == 0 || start >= total {
                break;
            }
        }
        Ok(out)
    }

    pub async fn post_comment(&self, key: &str, body: Value) -> Result<String, ApiError> {
        let path = format!("/rest/api/3/issue/{key}/comment");
        let posted: Posted = fetch(
            SERVICE,
            self.request(reqwest::Method::POST, &path)
                .json(&json!({"body": body})),
        )
        .await?;
        Ok(posted.id)
    }

    /// The request that replaces a comment's body, for both edits below.
    fn comment_edit(&self, key: &str, id: &str, body: Value) -> reqwest::RequestBuilder {
        let path = format!("/rest/api/3/issue/{key}/comment/{id}");
        self.request(reqwest::Method::PUT, &path)
            .json(&json!({"body": body}))
    }

    pub async fn edit_comment(&self, key: &str, id: &str, body: Value) -> Result<(), ApiError> {
        send_json(SERVICE, self.comment_edit(key, id, body)).await?;
        Ok(())
    }

    /// Edits a comment; `false` when it is gone.
    pub async fn edit_comment_if_exists(
        &self,
        key: &str,
        id: &str,
        body: Value,
    ) -> Result<bool, ApiError> {
        let found = send_json_if_found(SERVICE, self.comment_edit(key, id, body)).await?;
        Ok(found.is_some())
    }

    /// Posts a comment, or edits the one `author` (the agent) wrote whose text contains
    /// `marker`: the marker is visible on Jira and anyone can type it.
    pub async fn upsert_comment(
        &self,
        key: &str,
        author: &str,
        marker: &str,
        body: Value,
    ) -> Result<String, ApiError> {
        let existing = self
            .comments(key)
            .await?
            .into_iter()
            .find(|c| same_account(&c.author, author) && c.text.contains(marker));
        match existing {
            Some(comment) => {
                self.edit_comment(key, &comment.id, body).await?;
                Ok(comment.id)
            }
            None => self.post_comment(key, body).await,
        }
    }

    /// The issue's summary, description (as text) and labels.
    pub async fn issue(&self, key: &str) -> Result<JiraIssue, ApiError> {
        let issue: IssueWire = fetch(
            SERVICE,
            self.request(reqwest::Method::GET, &format!("/rest/api/3/issue/{key}"))
                .query(&[("fields", "summary,description,labels")]),
        )
        .await
        .map_err(|e| match e {
            ApiError::Invalid { service, detail } => ApiError::Invalid {
                service,
                detail: format!("issue {key}: {detail}"),
            },
            other => other,
        })?;
        let fields = issue.fields;
        Ok(JiraIssue {
            summary: fields.summary,
            description: match &fields.description {
                Value::Null => String::new(),
                Value::String(text) => text.clone(),
                doc => adf::body_text(doc),
            },
            labels: fields.labels,
        })
    }

    /// The account the agent's credentials act as (`GET /myself`).
    pub async fn myself(&self) -> Result<String, ApiError> {
        let myself: Myself = fetch(
            SERVICE,
            self.request(reqwest::Method::GET, "/rest/api/3/myself"),
        )
        .await?;
        myself
            .account_id
            .filter(|id| !id.trim().is_empty())
            .ok_or_else(|| ApiError::Invalid {
                service: SERVICE,
                detail: "GET /myself named no accountId; set AGENT_JIRA_ACCOUNT_ID".into(),
            })
    }

    /// Whether the account may edit the issue (`EDIT_ISSUES`).
    ///
    /// `POST /permissions/check` for another account needs "Administer Jira"; "Find users
    /// with permissions" (`GET /user/permission/search`) needs only "Browse users and
    /// groups", which ordinary accounts have. It answers the users matching `accountId`
    /// that hold the permission on the issue: the account, or nobody. An agent account
    /// without "Browse users and groups" gets an empty list, so everyone is refused (fail
    /// closed) and `JIRA_APPROVERS` is the way out.
    pub async fn can_edit(&self, key: &str, account_id: &str) -> Result<bool, ApiError> {
        let users: Vec<PermittedUser> = fetch(
            SERVICE,
            self.request(reqwest::Method::GET, "/rest/api/3/user/permission/search")
                .query(&[
                    ("accountId", account_id),
                    ("permissions", "EDIT_ISSUES"),
                    ("issueKey", key),
                    ("maxResults", "50"),
                ]),
        )
        .await?;
        Ok(users
            .iter()
            .any(|u| same_account(&u.account_id, account_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_read_jira_times_and_need_them() {
        let comment: JiraComment = serde_json::from_value(json!({
            "id": "10", "author": {"accountId": "acc-1"}, "body": adf::document("hi", None),
            "created": "2026-11-21T12:00:00.000+0000", "updated": "2026-11-21T13:00:00.000+0100",
        }))
        .expect("comment");
        assert_eq!(
            (comment.author.as_str(), comment.text.trim()),
            ("acc-1", "hi")
        );
        assert_eq!(comment.created, comment.updated, "the same instant");
        let error = serde_json::from_value::<JiraComment>(json!({"id": "10", "body": null}))
            .expect_err("no times");
        assert!(error.to_string().contains("`created`"), "{error}");
    }

    #[test]
    fn an_issue_needs_its_summary() {
        let error = serde_json::from_value::<IssueWire>(json!({"fields": {"labels": []}}))
            .expect_err("no summary");
        assert!(error.to_string().contains("`summary`"), "{error}");
    }
}
