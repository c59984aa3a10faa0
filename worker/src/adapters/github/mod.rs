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
    /// A rate limit (primary, secondary or 429) that lasts `retry_after` more: longer than
    /// this attempt may wait in-process, so the task is retried later (a delayed retry).
    #[error("{service} rate-limited the agent for {} s more: {detail}", retry_after.as_secs())]
    RateLimited {
        service: &'static str,
        retry_after: Duration,
        detail: String,
    },
}

impl ApiError {
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ApiError::Transient { .. } | ApiError::RateLimited { .. }
        )
    }
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Sends a request and classifies the answer; `Ok(None)` for 404 when `allow_404`. A rate
/// limit is waited out in-process when the task's wait budget allows (then the request is
/// sent again), else it is an [`ApiError::RateLimited`] (see `runtime::wait`).
pub async fn send_json(
    service: &'static str,
    request: reqwest::RequestBuilder,
    allow_404: bool,
) -> Result<Option<Value>, ApiError> {
    let mut request = request;
    loop {
        let again = request.try_clone();
        match send_once(service, request, allow_404).await {
            Err(ApiError::RateLimited { retry_after, .. })
                if again.is_some() && crate::runtime::wait::wait_out(retry_after).await =>
            {
                request = again.expect("checked");
            }
            other => return other,
        }
    }
}

/// GitHub's advice when a secondary rate limit names no time: wait at least a minute.
const RATE_LIMIT_DEFAULT_WAIT: Duration = Duration::from_secs(60);

/// How long a rate-limited answer asks the client to stay away, or `None` when the answer
/// is not a rate limit: 429, or 403 with `retry-after`, `x-ratelimit-remaining: 0` or
/// GitHub's "secondary rate limit" message. `retry-after` (seconds or an HTTP date) wins,
/// then `x-ratelimit-reset` (epoch seconds, plus a second of margin), else a minute.
fn rate_limit_wait(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    message: &str,
    now: std::time::SystemTime,
) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let exhausted = header("x-ratelimit-remaining") == Some("0");
    let said_so = message.to_ascii_lowercase().contains("rate limit");
    let retry_after = header("retry-after").and_then(|v| {
        v.parse::<u64>().map(Duration::from_secs).ok().or_else(|| {
            httpdate::parse_http_date(v)
                .ok()
                .map(|at| at.duration_since(now).unwrap_or_default())
        })
    });
    if !(status == 429 || (status == 403 && (retry_after.is_some() || exhausted || said_so))) {
        return None;
    }
    let reset = header("x-ratelimit-reset")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|_| exhausted)
        .map(|epoch| {
            let at = std::time::UNIX_EPOCH + Duration::from_secs(epoch);
            at.duration_since(now).unwrap_or_default() + Duration::from_secs(1)
        });
    let wait = retry_after.or(reset).unwrap_or(RATE_LIMIT_DEFAULT_WAIT);
    // At least a second (no hot loop on a reset that just passed), at most a day.
    Some(wait.clamp(Duration::from_secs(1), Duration::from_secs(86_400)))
}

async fn send_once(
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
    // A body cut short on a 2xx is not an empty success (an empty list of comments would
    // post a second status comment, an empty permission would refuse): retry the task.
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) if status.is_success() => {
            return Err(ApiError::Transient {
                service,
                detail: format!(
                    "{status} with a body that could not be read: {}",
                    without_url(&e)
                ),
            });
        }
        Err(_) => String::new(),
    };
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
    if let Some(retry_after) = rate_limit_wait(
        status.as_u16(),
        &headers,
        &message,
        std::time::SystemTime::now(),
    ) {
        return Err(ApiError::RateLimited {
            service,
            retry_after,
            detail: format!("{status}: {message}"),
        });
    }
    if status.is_server_error() {
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
        /// Ask installation tokens for `workflows: write` too (`ALLOW_WORKFLOW_EDITS`):
        /// GitHub refuses pushes touching `.github/workflows/` without it.
        workflows: bool,
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
    /// Moves when someone edits the comment (equal to `created_at` until then).
    pub updated_at: String,
}

impl Comment {
    fn from_json(c: &Value) -> Self {
        Comment {
            id: id_string(&c["id"]),
            body: c["body"].as_str().unwrap_or("").to_owned(),
            author: c["user"]["login"].as_str().unwrap_or("").to_owned(),
            created_at: c["created_at"].as_str().unwrap_or("").to_owned(),
            updated_at: c["updated_at"].as_str().unwrap_or("").to_owned(),
        }
    }
}

/// Whether two logins (or Jira account ids) name the same account.
pub fn same_account(a: &str, b: &str) -> bool {
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

fn http_client() -> Result<reqwest::Client, ApiError> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent("agent-fleet")
        .build()
        .map_err(|e| ApiError::Invalid {
            service: SERVICE,
            detail: e.to_string(),
        })
}

/// The login the agent's credentials act as: `GET /user` for a token, `<slug>[bot]` from
/// `GET /app` for a GitHub App. Only the agent's own comments count as its markers.
pub async fn authenticated_login(api: &str, auth: &GithubAuth) -> Result<String, ApiError> {
    let http = http_client()?;
    let api = api.trim_end_matches('/');
    let (path, bearer) = match auth {
        GithubAuth::Token(token) => ("/user", token.expose_secret().to_owned()),
        GithubAuth::App {
            app_id,
            private_key,
            ..
        } => ("/app", app_jwt(app_id, private_key)?),
    };
    let value = send_json(
        SERVICE,
        http.get(format!("{api}{path}"))
            .bearer_auth(bearer)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28"),
        false,
    )
    .await?
    .unwrap_or(Value::Null);
    let name = match auth {
        GithubAuth::Token(_) => value["login"].as_str().map(str::to_owned),
        GithubAuth::App { .. } => value["slug"].as_str().map(|slug| format!("{slug}[bot]")),
    };
    name.filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::Invalid {
            service: SERVICE,
            detail: format!("GET {path} named no account; set AGENT_GITHUB_LOGIN"),
        })
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
        let http = http_client()?;
        let api = api.trim_end_matches('/').to_owned();
        let token = match auth {
            GithubAuth::Token(token) => token.clone(),
            GithubAuth::App {
                app_id,
                private_key,
                workflows,
            } => installation_token(&http, &api, app_id, private_key, *workflows, repo).await?,
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
            // Anything but a list is not "no comments" (that would post a second status).
            let items = value.as_array().cloned().ok_or_else(|| ApiError::Invalid {
                service: SERVICE,
                detail: format!("the comments of #{number} are not a list"),
            })?;
            let count = items.len();
            out.extend(items.iter().map(Comment::from_json));
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
                .map(|c| Comment::from_json(&c)),
        )
    }

    /// The issue's title and body as GitHub has them now.
    pub async fn issue_text(&self, number: u64) -> Result<(String, String), ApiError> {
        let issue = self.issue(number).await?;
        let title = issue["title"].as_str().ok_or_else(|| ApiError::Invalid {
            service: SERVICE,
            detail: format!("issue #{number} has no title in GitHub's answer"),
        })?;
        Ok((
            title.to_owned(),
            issue["body"].as_str().unwrap_or("").to_owned(),
        ))
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
            body: body.to_owned(),
            ..Comment::from_json(&value)
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

    /// Edits a comment; `false` when it is gone (deleted by someone).
    pub async fn edit_comment_if_exists(&self, id: &str, body: &str) -> Result<bool, ApiError> {
        let path = format!("{}/issues/comments/{id}", self.repo_path());
        Ok(send_json(
            SERVICE,
            self.request(reqwest::Method::PATCH, &path)
                .json(&json!({"body": body})),
            true,
        )
        .await?
        .is_some())
    }

    /// Posts a comment, or edits the one `author` (the agent) wrote that carries `marker`:
    /// anyone can write the marker, only the agent's own comment is ever edited.
    pub async fn upsert_comment(
        &self,
        number: u64,
        author: &str,
        marker: &str,
        body: &str,
    ) -> Result<String, ApiError> {
        let existing = self
            .comments(number)
            .await?
            .into_iter()
            .find(|c| same_account(&c.author, author) && c.body.contains(marker));
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

    /// The repository's size as GitHub reports it (`GET /repos/{o}/{r}` -> `size`, KiB),
    /// read before a clone; `None` when the API does not say.
    pub async fn repo_size_kib(&self) -> Result<Option<u64>, ApiError> {
        let path = self.repo_path();
        Ok(
            send_json(SERVICE, self.request(reqwest::Method::GET, &path), true)
                .await?
                .and_then(|v| v.get("size").and_then(Value::as_u64)),
        )
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

/// What an installation token is asked for: push the branch, open and update the PR, comment
/// and unlabel the issue (`metadata: read` comes with any of them).
fn installation_permissions(workflows: bool) -> Value {
    let mut permissions = json!({
        "contents": "write",
        "pull_requests": "write",
        "issues": "write",
        "metadata": "read",
    });
    if workflows {
        permissions["workflows"] = json!("write");
    }
    permissions
}

/// A 10-minute RS256 JWT that authenticates as the App itself.
fn app_jwt(app_id: &str, private_key: &SecretString) -> Result<String, ApiError> {
    let now = chrono::Utc::now().timestamp();
    let claims = json!({"iat": now - 60, "exp": now + 540, "iss": app_id});
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose_secret().as_bytes())
        .map_err(|_| ApiError::Invalid {
            service: SERVICE,
            detail: "GITHUB_APP_PRIVATE_KEY is not an RSA PEM key".into(),
        })?;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .map_err(|e| ApiError::Invalid {
        service: SERVICE,
        detail: format!("cannot sign the app JWT: {e}"),
    })
}

/// App auth: the App's JWT exchanged for the repository installation's token.
async fn installation_token(
    http: &reqwest::Client,
    api: &str,
    app_id: &str,
    private_key: &SecretString,
    workflows: bool,
    repo: &RepoUrl,
) -> Result<SecretString, ApiError> {
    let jwt = app_jwt(app_id, private_key)?;
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
        // Narrowed to the task's repository and to what the agent does there, so a token
        // that leaks (or a checkout that reads it) reaches nothing else the App may.
        app_request(
            reqwest::Method::POST,
            format!("/app/installations/{id}/access_tokens"),
        )
        .json(&json!({
            "repositories": [repo.name()],
            "permissions": installation_permissions(workflows),
        })),
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

#[cfg(test)]
mod rate_limit_tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).expect("value"));
        }
        map
    }

    #[test]
    fn rate_limits_are_recognised_with_their_wait() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let reset = headers(&[
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1800000025"),
        ]);
        assert_eq!(
            rate_limit_wait(403, &reset, "API rate limit exceeded", now),
            Some(Duration::from_secs(26))
        );
        assert_eq!(
            rate_limit_wait(429, &headers(&[("retry-after", "7")]), "", now),
            Some(Duration::from_secs(7))
        );
        let date = httpdate::fmt_http_date(now + Duration::from_secs(90));
        assert_eq!(
            rate_limit_wait(403, &headers(&[("retry-after", &date)]), "", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            rate_limit_wait(
                403,
                &HeaderMap::new(),
                "You have exceeded a secondary rate limit",
                now
            ),
            Some(Duration::from_secs(60)),
            "a secondary limit without a time: a minute"
        );
        assert_eq!(
            rate_limit_wait(403, &HeaderMap::new(), "Resource not accessible", now),
            None,
            "a plain 403 is a refusal"
        );
        assert_eq!(rate_limit_wait(500, &reset, "", now), None);
        let past = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "1")]);
        assert_eq!(
            rate_limit_wait(403, &past, "", SystemTime::now()),
            Some(Duration::from_secs(1)),
            "a reset in the past waits a second"
        );
    }
}
