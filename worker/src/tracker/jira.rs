//! A small Jira Cloud client (REST v3, ADF bodies) for what the agent does on Jira: comments
//! (found again by their visible markers), and the approver's permission.

use super::github::{ApiError, send_json};
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

    /// Posts a comment, or edits the one whose text already contains `marker`.
    pub async fn upsert_comment(
        &self,
        key: &str,
        marker: &str,
        body: Value,
    ) -> Result<String, ApiError> {
        let existing = self
            .comments(key)
            .await?
            .into_iter()
            .find(|c| c.text.contains(marker));
        match existing {
            Some(comment) => {
                self.edit_comment(key, &comment.id, body).await?;
                Ok(comment.id)
            }
            None => self.post_comment(key, body).await,
        }
    }

    /// Whether the account may edit the issue (`EDIT_ISSUES`).
    pub async fn can_edit(&self, key: &str, account_id: &str) -> Result<bool, ApiError> {
        // The check takes numeric issue ids; the task knows the key. When the issue cannot
        // be read (deleted, or a proxy that only exposes the check), ask without it and
        // accept a grant on any issue or project.
        let issue_id: Option<u64> = match send_json(
            SERVICE,
            self.request(
                reqwest::Method::GET,
                &format!("/rest/api/3/issue/{key}?fields=summary"),
            ),
            true,
        )
        .await
        {
            Ok(issue) => issue.and_then(|i| match &i["id"] {
                Value::String(s) => s.parse().ok(),
                other => other.as_u64(),
            }),
            Err(error) if error.is_transient() => return Err(error),
            Err(_) => None,
        };
        let payload = json!({
            "accountId": account_id,
            "projectPermissions": [{"permissions": ["EDIT_ISSUES"], "issues": issue_id.into_iter().collect::<Vec<_>>()}]
        });
        let answer = send_json(
            SERVICE,
            self.request(reqwest::Method::POST, "/rest/api/3/permissions/check")
                .json(&payload),
            false,
        )
        .await?
        .unwrap_or(Value::Null);
        let granted_on = |entry: &Value, field: &str| -> Vec<u64> {
            entry[field]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|id| {
                    id.as_u64()
                        .or_else(|| id.as_str().and_then(|s| s.parse().ok()))
                })
                .collect()
        };
        Ok(answer["projectPermissions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["permission"] == "EDIT_ISSUES")
            .any(|p| match issue_id {
                Some(id) => granted_on(p, "issues").contains(&id),
                None => {
                    !granted_on(p, "issues").is_empty() || !granted_on(p, "projects").is_empty()
                }
            }))
    }
}
