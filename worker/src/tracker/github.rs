//! A small GitHub REST client for what the agent does on GitHub: permission checks, issue
//! comments, pull requests, labels. Auth is a token, or a GitHub App (a JWT signed with the
//! app's key, exchanged for an installation token per repository).
//!
//! Errors say what a caller can do: rate limits, 5xx and network trouble are transient (the
//! task is requeued); anything else is permanent.

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use shared::RepoUrl;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{service} is unavailable or rate-limited: {detail}")]
    Transient {
        service: &'static str,
        detail: String,
    },
    #[error("{service} answered {status}: {detail}")]
    Status {
        service: &'static str,
        status: u16,
        detail: String,
    },
    #[error("{service} request failed: {detail}")]
    Invalid {
        service: &'static str,
        detail: String,
    },
}

impl ApiError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ApiError::Transient { .. })
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Sends a request and classifies the answer; `Ok(None)` for 404 when `allow_404`.
pub async fn send_json(
    service: &'static str,
    request: reqwest::RequestBuilder,
    allow_404: bool,
) -> Result<Option<Value>, ApiError> {
    let response = request.send().await.map_err(|e| ApiError::Transient {
        service,
        detail: without_url(&e),
    })?;
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap_or_default();
    if status.is_success() {
        if text.trim().is_empty() {
            return Ok(Some(Value::Null));
        }
        return serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| ApiError::Invalid {
                service,
                detail: format!("unreadable JSON: {e}"),
            });
    }
    if status.as_u16() == 404 && allow_404 {
        return Ok(None);
    }
    let message = serde_json::from_str::<Value>(&text)
        .ok()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("errorMessages"))
                .map(|m| m.to_string())
        })
        .unwrap_or_else(|| text.chars().take(300).collect());
    let rate_limited = status.as_u16() == 429
        || (status.as_u16() == 403
            && (headers.get("retry-after").is_some()
                || headers
                    .get("x-ratelimit-remaining")
                    .is_some_and(|v| v.as_bytes() == b"0")
                || message.to_ascii_lowercase().contains("rate limit")));
    if rate_limited || status.is_server_error() {
        return Err(ApiError::Transient {
            service,
            detail: format!("{status}: {message}"),
        });
    }
    Err(ApiError::Status {
        service,
        status: status.as_u16(),
        detail: message,
    })
}

/// reqwest errors can carry the URL; ours never holds a secret, but keep messages short.
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), url.path());
    }
    text
}

/// How the agent authenticates to GitHub.
#[derive(Clone)]
pub enum GithubAuth {
    Token(SecretString),
    App {
        app_id: String,
        private_key: SecretString,
    },
}

impl std::fmt::Debug for GithubAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GithubAuth::Token(_) => f.write_str("Token([redacted])"),
            GithubAuth::App { app_id, .. } => {
                write!(f, "App {{ app_id: {app_id}, private_key: [redacted] }}")
            }
        }
    }
}

/// A GitHub client bound to one repository (App auth: with that repository's installation
/// token).
#[derive(Clone)]
pub struct GitHub {
    http: reqwest::Client,
    api: String,
    token: SecretString,
    pub repo: RepoUrl,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api", &self.api)
            .field("repo", &self.repo)
            .finish()
    }
}

/// An issue comment.
#[derive(Debug, Clone)]
pub struct Comment {
    pub id: String,
    pub body: String,
    pub author: String,
    pub created_at: String,
}

/// A pull request, as far as the agent cares.
#[derive(Debug, Clone)]
pub struct PullRequest {
    pub number: u64,
    pub url: String,
    pub node_id: String,
    pub draft: bool,
    pub head: String,
    pub body: String,
}

const SERVICE: &str = "GitHub";

impl GitHub {
    /// Resolves the credentials for `repo` (an installation token for App auth).
    pub async fn connect(api: &str, auth: &GithubAuth, repo: &RepoUrl) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .user_agent("agent-fleet")
            .build()
            .map_err(|e| ApiError::Invalid {
                service: SERVICE,
                detail: e.to_string(),
            })?;
        let api = api.trim_end_matches('/').to_owned();
        let token = match auth {
            GithubAuth::Token(token) => token.clone(),
            GithubAuth::App {
                app_id,
                private_key,
            } => installation_token(&http, &api, app_id, private_key, repo).await?,
        };
        Ok(Self {
            http,
            api,
            token,
            repo: repo.clone(),
        })
    }

    /// The token git should use for this repository.
    pub fn token(&self) -> &SecretString {
        &self.token
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(self.token.expose_secret())
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    }

    fn repo_path(&self) -> String {
        format!("/repos/{}/{}", self.repo.owner(), self.repo.name())
    }

    /// The user's permission on the repository (`admin`, `maintain`, `write`, `triage`,
    /// `read`, `none`), read as plain JSON.
    pub async fn permission(&self, user: &str) -> Result<String, ApiError> {
        let path = format!("{}/collaborators/{user}/permission", self.repo_path());
        let value = send_json(SERVICE, self.request(reqwest::Method::GET, &path), true).await?;
        Ok(value
            .and_then(|v| {
                v.get("permission")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "none".to_owned()))
    }

    /// `write` or higher.
    pub async fn can_write(&self, user: &str) -> Result<bool, ApiError> {
        Ok(matches!(
            self.permission(user).await?.as_str(),
            "admin" | "maintain" | "write"
        ))
    }

    pub async fn comments(&self, number: u64) -> Result<Vec<Comment>, ApiError> {
        let mut out = Vec::new();
        for page in 1..=20 {
            let path = format!(
                "{}/issues/{number}/comments?per_page=100&page={page}",
                self.repo_path()
            );
            let value = send_json(SERVICE, self.request(reqwest::Method::GET, &path), false)
                .await?
                .unwrap_or(Value::Null);
            let items = value.as_array().cloned().unwrap_or_default();
            let count = items.len();
            out.extend(items.iter().map(|c| Comment {
                id: id_string(&c["id"]),
                body: c["body"].as_str().unwrap_or("").to_owned(),
                author: c["user"]["login"].as_str().unwrap_or("").to_owned(),
                created_at: c["created_at"].as_str().unwrap_or("").to_owned(),
            }));
            if count < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// Any issue or pull request comment of the repository, by id.
    pub async fn comment(&self, id: &str) -> Result<Option<Comment>, ApiError> {
        let path = format!("{}/issues/comments/{id}", self.repo_path());
        Ok(
            send_json(SERVICE, self.request(reqwest::Method::GET, &path), true)
                .await?
                .map(|c| Comment {
                    id: id_string(&c["id"]),
                    body: c["body"].as_str().unwrap_or("").to_owned(),
                    author: c["user"]["login"].as_str().unwrap_or("").to_owned(),
                    created_at: c["created_at"].as_str().unwrap_or("").to_owned(),
                }),
        )
    }

    pub async fn post_comment(&self, number: u64, body: &str) -> Result<Comment, ApiError> {
        let path = format!("{}/issues/{number}/comments", self.repo_path());
        let value = send_json(
            SERVICE,
            self.request(reqwest::Method::POST, &path)
                .json(&json!({"body": body})),
            false,
        )
        .await?
        .unwrap_or(Value::Null);
        Ok(Comment {
            id: id_string(&value["id"]),
            body: body.to_owned(),
            author: value["user"]["login"].as_str().unwrap_or("").to_owned(),
            created_at: value["created_at"].as_str().unwrap_or("").to_owned(),
        })
    }

    pub async fn edit_comment(&self, id: &str, body: &str) -> Result<(), ApiError> {
        let path = format!("{}/issues/comments/{id}", self.repo_path());
        send_json(
            SERVICE,
            self.request(reqwest::Method::PATCH, &path)
                .json(&json!({"body": body})),
            false,
        )
        .await?;
        Ok(())
    }

    /// Posts a comment, or edits the one that already carries `marker` (idempotent).
    pub async fn upsert_comment(
        &self,
        number: u64,
        marker: &str,
        body: &str,
    ) -> Result<String, ApiError> {
        let existing = self
            .comments(number)
            .await?
            .into_iter()
            .find(|c| c.body.contains(marker));
        match existing {
            Some(comment) => {
                if comment.body != body {
                    self.edit_comment(&comment.id, body).await?;
                }
                Ok(comment.id)
            }
            None => Ok(self.post_comment(number, body).await?.id),
        }
    }

    pub async fn issue(&self, number: u64) -> Result<Value, ApiError> {
        let path = format!("{}/issues/{number}", self.repo_path());
        Ok(
            send_json(SERVICE, self.request(reqwest::Method::GET, &path), false)
                .await?
                .unwrap_or(Value::Null),
        )
    }

    pub async fn pull(&self, number: u64) -> Result<Option<PullRequest>, ApiError> {
        let path = format!("{}/pulls/{number}", self.repo_path());
        Ok(
            send_json(SERVICE, self.request(reqwest::Method::GET, &path), true)
                .await?
                .map(|v| pull_from(&v)),
        )
    }

    /// The open pull request whose head is `branch` in this repository.
    pub async fn open_pull_for(&self, branch: &str) -> Result<Option<PullRequest>, ApiError> {
        let path = format!(
            "{}/pulls?state=open&head={}:{branch}&per_page=100",
            self.repo_path(),
            self.repo.owner()
        );
        let value = send_json(SERVICE, self.request(reqwest::Method::GET, &path), false)
            .await?
            .unwrap_or(Value::Null);
        Ok(value
            .as_array()
            .into_iter()
            .flatten()
            .map(pull_from)
            .find(|pr| pr.head == branch))
    }

    /// Opens a pull request, or updates the open one of `branch` (also when creation
    /// answers 422 because one exists).
    pub async fn open_or_update_pull(
        &self,
        branch: &str,
        base: &str,
        title: &str,
        body: &str,
        draft: bool,
    ) -> Result<PullRequest, ApiError> {
        if let Some(existing) = self.open_pull_for(branch).await? {
            return self.update_pull(existing.number, title, body).await;
        }
        let path = format!("{}/pulls", self.repo_path());
        let payload =
            json!({"title": title, "head": branch, "base": base, "body": body, "draft": draft});
        match send_json(
            SERVICE,
            self.request(reqwest::Method::POST, &path).json(&payload),
            false,
        )
        .await
        {
            Ok(value) => Ok(pull_from(&value.unwrap_or(Value::Null))),
            Err(error) if error.status() == Some(422) => match self.open_pull_for(branch).await? {
                Some(existing) => self.update_pull(existing.number, title, body).await,
                None => Err(error),
            },
            Err(error) => Err(error),
        }
    }

    pub async fn update_pull(
        &self,
        number: u64,
        title: &str,
        body: &str,
    ) -> Result<PullRequest, ApiError> {
        let path = format!("{}/pulls/{number}", self.repo_path());
        let value = send_json(
            SERVICE,
            self.request(reqwest::Method::PATCH, &path)
                .json(&json!({"title": title, "body": body})),
            false,
        )
        .await?
        .unwrap_or(Value::Null);
        Ok(pull_from(&value))
    }

    /// Marks a draft ready for review (GraphQL: a REST PATCH of `draft` is ignored).
    pub async fn mark_ready(&self, pr: &PullRequest) -> Result<(), ApiError> {
        let query = "mutation($id: ID!) { markPullRequestReadyForReview(input: {pullRequestId: $id}) { pullRequest { isDraft } } }";
        let value = send_json(
            SERVICE,
            self.request(reqwest::Method::POST, "/graphql")
                .json(&json!({"query": query, "variables": {"id": pr.node_id}})),
            false,
        )
        .await?
        .unwrap_or(Value::Null);
        if let Some(errors) = value.get("errors") {
            return Err(ApiError::Invalid {
                service: SERVICE,
                detail: errors.to_string(),
            });
        }
        Ok(())
    }

    pub async fn request_review(&self, number: u64, reviewer: &str) -> Result<(), ApiError> {
        let path = format!("{}/pulls/{number}/requested_reviewers", self.repo_path());
        send_json(
            SERVICE,
            self.request(reqwest::Method::POST, &path)
                .json(&json!({"reviewers": [reviewer]})),
            false,
        )
        .await?;
        Ok(())
    }

    pub async fn remove_label(&self, number: u64, label: &str) -> Result<(), ApiError> {
        let path = format!("{}/issues/{number}/labels/{label}", self.repo_path());
        send_json(SERVICE, self.request(reqwest::Method::DELETE, &path), true).await?;
        Ok(())
    }

    pub async fn react(&self, comment_id: &str, content: &str) -> Result<(), ApiError> {
        let path = format!(
            "{}/issues/comments/{comment_id}/reactions",
            self.repo_path()
        );
        send_json(
            SERVICE,
            self.request(reqwest::Method::POST, &path)
                .json(&json!({"content": content})),
            false,
        )
        .await?;
        Ok(())
    }
}

fn id_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn pull_from(v: &Value) -> PullRequest {
    PullRequest {
        number: v["number"].as_u64().unwrap_or(0),
        url: v["html_url"].as_str().unwrap_or("").to_owned(),
        node_id: v["node_id"].as_str().unwrap_or("").to_owned(),
        draft: v["draft"].as_bool().unwrap_or(false),
        head: v["head"]["ref"].as_str().unwrap_or("").to_owned(),
        body: v["body"].as_str().unwrap_or("").to_owned(),
    }
}

/// App auth: a 10-minute RS256 JWT for the app, exchanged for the repository installation's
/// token.
async fn installation_token(
    http: &reqwest::Client,
    api: &str,
    app_id: &str,
    private_key: &SecretString,
    repo: &RepoUrl,
) -> Result<SecretString, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iat": now - 60, "exp": now + 540, "iss": app_id});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose_secret().as_bytes())
        .map_err(|_| ApiError::Invalid {
            service: SERVICE,
            detail: "GITHUB_APP_PRIVATE_KEY is not an RSA PEM key".into(),
        })?;
    let jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| ApiError::Invalid {
        service: SERVICE,
        detail: format!("cannot sign the app JWT: {e}"),
    })?;
    let app_request = |method, path: String| {
        http.request(method, format!("{api}{path}"))
            .bearer_auth(&jwt)
            .header("accept", "application/vnd.github+json")
    };
    let installation = send_json(
        SERVICE,
        app_request(
            reqwest::Method::GET,
            format!("/repos/{}/{}/installation", repo.owner(), repo.name()),
        ),
        false,
    )
    .await?
    .unwrap_or(Value::Null);
    let id = id_string(&installation["id"]);
    let token = send_json(
        SERVICE,
        app_request(
            reqwest::Method::POST,
            format!("/app/installations/{id}/access_tokens"),
        ),
        false,
    )
    .await?
    .unwrap_or(Value::Null);
    token["token"]
        .as_str()
        .map(|t| SecretString::from(t.to_owned()))
        .ok_or_else(|| ApiError::Invalid {
            service: SERVICE,
            detail: "no installation token in the answer".into(),
        })
}
