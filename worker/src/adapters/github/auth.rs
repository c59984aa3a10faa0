//! How the agent authenticates to GitHub: a token, or a GitHub App (a JWT signed with the
//! app's key, exchanged for an installation token narrowed to one repository), and which
//! login those credentials act as.

use super::SERVICE;
use super::types::{Account, Installation, InstallationToken};
use crate::adapters::http::{self, ApiError, fetch};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use shared::RepoUrl;

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

/// The login the agent's credentials act as: `GET /user` for a token, `<slug>[bot]` from
/// `GET /app` for a GitHub App. Only the agent's own comments count as its markers.
pub async fn authenticated_login(api: &str, auth: &GithubAuth) -> Result<String, ApiError> {
    let http = http::client(SERVICE)?;
    let api = api.trim_end_matches('/');
    let (path, bearer) = match auth {
        GithubAuth::Token(token) => ("/user", token.expose_secret().to_owned()),
        GithubAuth::App {
            app_id,
            private_key,
            ..
        } => ("/app", app_jwt(app_id, private_key)?),
    };
    let account: Account = fetch(
        SERVICE,
        http.get(format!("{api}{path}"))
            .bearer_auth(bearer)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28"),
    )
    .await?;
    let name = match auth {
        GithubAuth::Token(_) => account.login,
        GithubAuth::App { .. } => account.slug.map(|slug| format!("{slug}[bot]")),
    };
    name.filter(|n| !n.trim().is_empty())
        .ok_or_else(|| ApiError::Invalid {
            service: SERVICE,
            detail: format!("GET {path} named no account; set AGENT_GITHUB_LOGIN"),
        })
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
pub(super) async fn installation_token(
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
    let installation: Installation = fetch(
        SERVICE,
        app_request(
            reqwest::Method::GET,
            format!("/repos/{}/{}/installation", repo.owner(), repo.name()),
        ),
    )
    .await?;
    let id = installation.id;
    let token: InstallationToken = fetch(
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
    )
    .await?;
    Ok(SecretString::from(token.token))
}
