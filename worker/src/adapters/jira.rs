//! A small Jira Cloud client (REST v3, ADF bodies) for what the agent does on Jira: the
//! issue's fields, comments (found again by their visible markers, only the agent's own
//! count), the agent's own account, and the approver's permission.

use super::github::{ApiError, same_account, send_json};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use shared::adf;
use std::time::Duration;

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

/// A Jira comment, its body as plain text (ADF flattened) and the raw body.
#[derive(Debug, Clone)]
pub struct JiraComment {
    pub id: String,
    pub text: String,
    pub body: Value,
    pub author: String,
    pub created: String,
    /// Moves when someone edits the comment.
    pub updated: String,
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
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent("agent-fleet")
            .build()
            .map_err(|e| ApiError::Invalid {
                service: SERVICE,
                detail: e.to_string(),
            })?;
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
            let value = send_json(SERVICE, self.request(reqwest::Method::GET, &path), false)
                .await?
                .unwrap_or(Value::Null);
            let items = value["comments"].as_array().cloned().unwrap_or_default();
            let count = items.len();
            out.extend(items.iter().map(|c| JiraComment {
                id: match &c["id"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
                text: adf::body_text(&c["body"]),
                body: c["body"].clone(),
                author: c["author"]["accountId"].as_str().unwrap_or("").to_owned(),
                created: c["created"].as_str().unwrap_or("").to_owned(),
                updated: c["updated"].as_str().unwrap_or("").to_owned(),
            }));
            let total = value["total"].as_u64().unwrap_or(0) as usize;
            start += count;
            if count == 0 || start >= total {
                break;
            }
        }
        Ok(out)
    }

    pub async fn post_comment(&self, key: &str, body: Value) -> Result<String, ApiError> {
        let path = format!("/rest/api/3/issue/{key}/comment");
        let value = send_json(
            SERVICE,
            self.request(reqwest::Method::POST, &path)
                .json(&json!({"body": body})),
            false,
        )
        .await?
        .unwrap_or(Value::Null);
        Ok(value["id"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| value["id"].to_string()))
    }

    pub async fn edit_comment(&self, key: &str, id: &str, body: Value) -> Result<(), ApiError> {
        let path = format!("/rest/api/3/issue/{key}/comment/{id}");
        send_json(
            SERVICE,
            self.request(reqwest::Method::PUT, &path)
                .json(&json!({"body": body})),
            false,
        )
        .await?;
        Ok(())
    }

    /// Edits a comment; `false` when it is gone.
    pub async fn edit_comment_if_exists(
        &self,
        key: &str,
        id: &str,
        body: Value,
    ) -> Result<bool, ApiError> {
        let path = format!("/rest/api/3/issue/{key}/comment/{id}");
        Ok(send_json(
            SERVICE,
            self.request(reqwest::Method::PUT, &path)
                .json(&json!({"body": body})),
            true,
        )
        .await?
        .is_some())
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
        let value = send_json(
            SERVICE,
            self.request(reqwest::Method::GET, &format!("/rest/api/3/issue/{key}"))
                .query(&[("fields", "summary,description,labels")]),
            false,
        )
        .await?
        .unwrap_or(Value::Null);
        let fields = &value["fields"];
        if !fields.is_object() {
            return Err(ApiError::Invalid {
                service: SERVICE,
                detail: format!("issue {key} came without fields"),
            });
        }
        Ok(JiraIssue {
            summary: fields["summary"].as_str().unwrap_or("").to_owned(),
            description: match &fields["description"] {
                Value::Null => String::new(),
                Value::String(text) => text.clone(),
                doc => adf::body_text(doc),
            },
            labels: fields["labels"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|l| l.as_str().map(str::to_owned))
                .collect(),
        })
    }

    /// The account the agent's credentials act as (`GET /myself`).
    pub async fn myself(&self) -> Result<String, ApiError> {
        let value = send_json(
            SERVICE,
            self.request(reqwest::Method::GET, "/rest/api/3/myself"),
            false,
        )
        .await?
        .unwrap_or(Value::Null);
        value["accountId"]
            .as_str()
            .filter(|id| !id.trim().is_empty())
            .map(str::to_owned)
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
        let answer = send_json(
            SERVICE,
            self.request(reqwest::Method::GET, "/rest/api/3/user/permission/search")
                .query(&[
                    ("accountId", account_id),
                    ("permissions", "EDIT_ISSUES"),
                    ("issueKey", key),
                    ("maxResults", "50"),
                ]),
            false,
        )
        .await?
        .unwrap_or(Value::Null);
        let users = answer.as_array().ok_or_else(|| ApiError::Invalid {
            service: SERVICE,
            detail: "the permission search did not answer a list of users".into(),
        })?;
        Ok(users.iter().any(|u| {
            u["accountId"]
                .as_str()
                .is_some_and(|id| same_account(id, account_id))
        }))
    }
}
