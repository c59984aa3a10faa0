//! A small GitHub REST client for what the agent does on GitHub: permission checks, issue
//! comments, pull requests, labels, reactions (a pull request's commits, reviews and check
//! runs, for the follow-up modes, are in `pulls`). Answers are read into the serde types of
//! `types`; auth (a token or a GitHub App) is in `auth`; sending and classifying
//! errors is `adapters::http`.

mod auth;
mod pulls;
mod types;

pub use super::http::ApiError;
pub use super::same_account;
pub use auth::{GithubAuth, authenticated_login};
pub use pulls::{Annotation, CheckOutput, CheckRun, PullCommit, PullHead, ReviewComment};
pub use types::{Comment, Issue, PullRequest};

// Transition (issue 12): `tracker::github::send_json` is now `adapters::http::send_json`.
#[doc(hidden)]
pub use super::http::send_json;

use super::http::{self, fetch, fetch_if_found, send_json_if_found};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use shared::RepoUrl;
use types::{Permission, Repository};

const SERVICE: &str = "GitHub";

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

impl GitHub {
    /// Resolves the credentials for `repo` (an installation token for App auth).
    pub async fn connect(api: &str, auth: &GithubAuth, repo: &RepoUrl) -> Result<Self, ApiError> {
        let http = http::client(SERVICE)?;
        let api = api.trim_end_matches('/').to_owned();
        let token = match auth {
            GithubAuth::Token(token) => token.clone(),
            GithubAuth::App {
                app_id,
                private_key,
                workflows,
            } => {
                auth::installation_token(&http, &api, app_id, private_key, *workflows, repo).await?
            }
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

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.request(reqwest::Method::GET, path)
    }

    fn repo_path(&self) -> String {
        format!("/repos/{}/{}", self.repo.owner(), self.repo.name())
    }

    /// The user's permission on the repository (`admin`, `maintain`, `write`, `triage`,
    /// `read`, `none`; `none` when GitHub does not know the user).
    pub async fn permission(&self, user: &str) -> Result<String, ApiError> {
        let path = format!("{}/collaborators/{user}/permission", self.repo_path());
        let found: Option<Permission> = fetch_if_found(SERVICE, self.get(&path)).await?;
        Ok(found.map_or_else(|| "none".to_owned(), |p| p.permission))
    }

    /// `write` or higher.
    pub async fn can_write(&self, user: &str) -> Result<bool, ApiError> {
        Ok(matches!(
            self.permission(user).await?.as_str(),
            "admin" | "maintain" | "write"
        ))
    }

    /// Whether `user` is an active member of the team `org/slug` (`triggers.allowed_teams`
    /// of `.agent-fleet.yml`). A team GitHub does not show the agent counts as no member:
    /// the refusal says which teams were asked.
    pub async fn in_team(&self, org: &str, slug: &str, user: &str) -> Result<bool, ApiError> {
        #[derive(serde::Deserialize)]
        struct Membership {
            state: String,
        }
        let path = format!("/orgs/{org}/teams/{slug}/memberships/{user}");
        let found: Option<Membership> = fetch_if_found(SERVICE, self.get(&path)).await?;
        Ok(found.is_some_and(|m| m.state == "active"))
    }

    /// Every comment of the issue (or pull request), oldest first. Anything but a list is
    /// an error, not "no comments" (that would post a second status comment).
    pub async fn comments(&self, number: u64) -> Result<Vec<Comment>, ApiError> {
        let mut out = Vec::new();
        for page in 1..=20 {
            let path = format!(
                "{}/issues/{number}/comments?per_page=100&page={page}",
                self.repo_path()
            );
            let items: Vec<Comment> = fetch(SERVICE, self.get(&path)).await?;
            let count = items.len();
            out.extend(items);
            if count < 100 {
                break;
            }
        }
        Ok(out)
    }

    /// Any issue or pull request comment of the repository, by id.
    pub async fn comment(&self, id: &str) -> Result<Option<Comment>, ApiError> {
        let path = format!("{}/issues/comments/{id}", self.repo_path());
        fetch_if_found(SERVICE, self.get(&path)).await
    }

    /// The issue's title and body as GitHub has them now.
    pub async fn issue_text(&self, number: u64) -> Result<(String, String), ApiError> {
        let issue = self.issue(number).await?;
        Ok((issue.title, issue.body))
    }

    pub async fn issue(&self, number: u64) -> Result<Issue, ApiError> {
        let path = format!("{}/issues/{number}", self.repo_path());
        fetch(SERVICE, self.get(&path)).await
    }

    pub async fn post_comment(&self, number: u64, body: &str) -> Result<Comment, ApiError> {
        let path = format!("{}/issues/{number}/comments", self.repo_path());
        let posted: Comment = fetch(
            SERVICE,
            self.request(reqwest::Method::POST, &path)
                .json(&json!({"body": body})),
        )
        .await?;
        Ok(Comment {
            body: body.to_owned(),
            ..posted
        })
    }

    /// The request that replaces a comment's body, for both edits below.
    fn comment_edit(&self, id: &str, body: &str) -> reqwest::RequestBuilder {
        let path = format!("{}/issues/comments/{id}", self.repo_path());
        self.request(reqwest::Method::PATCH, &path)
            .json(&json!({"body": body}))
    }

    pub async fn edit_comment(&self, id: &str, body: &str) -> Result<(), ApiError> {
        http::send_json(SERVICE, self.comment_edit(id, body)).await?;
        Ok(())
    }

    /// Edits a comment; `false` when it is gone (deleted by someone).
    pub async fn edit_comment_if_exists(&self, id: &str, body: &str) -> Result<bool, ApiError> {
        let found = send_json_if_found(SERVICE, self.comment_edit(id, body)).await?;
        Ok(found.is_some())
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
        let found: Option<Repository> =
            fetch_if_found(SERVICE, self.get(&self.repo_path())).await?;
        Ok(found.and_then(|r| r.size))
    }

    pub async fn pull(&self, number: u64) -> Result<Option<PullRequest>, ApiError> {
        let path = format!("{}/pulls/{number}", self.repo_path());
        fetch_if_found(SERVICE, self.get(&path)).await
    }

    /// The open pull request whose head is `branch` in this repository.
    pub async fn open_pull_for(&self, branch: &str) -> Result<Option<PullRequest>, ApiError> {
        let path = format!(
            "{}/pulls?state=open&head={}:{branch}&per_page=100",
            self.repo_path(),
            self.repo.owner()
        );
        let pulls: Vec<PullRequest> = fetch(SERVICE, self.get(&path)).await?;
        Ok(pulls.into_iter().find(|pr| pr.head == branch))
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
        match fetch(
            SERVICE,
            self.request(reqwest::Method::POST, &path).json(&payload),
        )
        .await
        {
            Ok(pull) => Ok(pull),
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
        fetch(
            SERVICE,
            self.request(reqwest::Method::PATCH, &path)
                .json(&json!({"title": title, "body": body})),
        )
        .await
    }

    /// Marks a draft ready for review (GraphQL: a REST PATCH of `draft` is ignored).
    pub async fn mark_ready(&self, pr: &PullRequest) -> Result<(), ApiError> {
        self.set_draft(pr, false).await
    }

    /// Turns an open pull request back into a draft (its checks fail now).
    pub async fn mark_draft(&self, pr: &PullRequest) -> Result<(), ApiError> {
        self.set_draft(pr, true).await
    }

    /// GraphQL's `convertPullRequestToDraft` or `markPullRequestReadyForReview` (REST has
    /// neither).
    async fn set_draft(&self, pr: &PullRequest, draft: bool) -> Result<(), ApiError> {
        let mutation = if draft {
            "convertPullRequestToDraft"
        } else {
            "markPullRequestReadyForReview"
        };
        let query = format!(
            "mutation($id: ID!) {{ {mutation}(input: {{pullRequestId: $id}}) {{ pullRequest {{ isDraft }} }} }}"
        );
        let value = http::send_json(
            SERVICE,
            self.request(reqwest::Method::POST, "/graphql")
                .json(&json!({"query": query, "variables": {"id": pr.node_id}})),
        )
        .await?;
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
        self.post(&path, json!({"reviewers": [reviewer]})).await
    }

    /// Removes a label; one that is already gone is fine.
    pub async fn remove_label(&self, number: u64, label: &str) -> Result<(), ApiError> {
        let path = format!("{}/issues/{number}/labels/{label}", self.repo_path());
        send_json_if_found(SERVICE, self.request(reqwest::Method::DELETE, &path)).await?;
        Ok(())
    }

    pub async fn react(&self, comment_id: &str, content: &str) -> Result<(), ApiError> {
        let path = format!(
            "{}/issues/comments/{comment_id}/reactions",
            self.repo_path()
        );
        self.post(&path, json!({"content": content})).await
    }

    /// A POST whose answer the agent does not read.
    async fn post(&self, path: &str, payload: Value) -> Result<(), ApiError> {
        http::send_json(
            SERVICE,
            self.request(reqwest::Method::POST, path).json(&payload),
        )
        .await?;
        Ok(())
    }
}
