//! The pull request side of the agent's follow-ups (`followup`, `fixci`): whose pull request
//! it is (head branch, head and base repository, state, head commit), its commits (for the
//! trailers that make follow-ups idempotent), a review's line comments and the replies in
//! their threads, and the check runs of a commit with their annotations. The answers are
//! read into the serde types below; what they say is untrusted text for the caller to clean.

use super::{GitHub, SERVICE};
use crate::adapters::http::{ApiError, fetch, fetch_if_found, id_string};
use serde::{Deserialize, Deserializer};
use serde_json::json;

/// Text that may be `null` or absent: read as empty.
fn text_or_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

/// GitHub's page size for lists (its maximum).
const PAGE: usize = 100;

#[derive(Debug, Deserialize)]
struct RepoName {
    full_name: String,
}

#[derive(Debug, Deserialize)]
struct HeadWire {
    #[serde(rename = "ref")]
    branch: String,
    #[serde(default, deserialize_with = "text_or_empty")]
    sha: String,
    /// `null` when the head's repository (a fork) was deleted.
    #[serde(default)]
    repo: Option<RepoName>,
}

#[derive(Debug, Deserialize)]
struct BaseWire {
    #[serde(default)]
    repo: Option<RepoName>,
}

#[derive(Debug, Deserialize)]
struct PullHeadWire {
    number: u64,
    html_url: String,
    state: String,
    head: HeadWire,
    #[serde(default)]
    base: Option<BaseWire>,
    #[serde(default)]
    user: Option<Login>,
}

/// `GET /repos/{o}/{r}/pulls/{n}`: what tells whose pull request it is, and where it stands.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(from = "PullHeadWire")]
pub struct PullHead {
    pub number: u64,
    pub url: String,
    pub open: bool,
    /// The head branch's name.
    pub branch: String,
    /// The head commit (empty when GitHub left it out).
    pub sha: String,
    /// `owner/name` of the head's repository; `None` for a deleted fork.
    pub head_repo: Option<String>,
    /// `owner/name` of the base repository.
    pub base_repo: Option<String>,
    /// Who opened it (empty for a deleted account).
    pub author: String,
}

impl From<PullHeadWire> for PullHead {
    fn from(p: PullHeadWire) -> Self {
        PullHead {
            number: p.number,
            url: p.html_url,
            open: p.state == "open",
            branch: p.head.branch,
            sha: p.head.sha,
            head_repo: p.head.repo.map(|r| r.full_name),
            base_repo: p.base.and_then(|b| b.repo).map(|r| r.full_name),
            author: p.user.map(|u| u.login).unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize)]
struct CommitBody {
    #[serde(deserialize_with = "text_or_empty")]
    message: String,
    #[serde(default)]
    committer: Option<Person>,
}

#[derive(Debug, Deserialize)]
struct Person {
    #[serde(default, deserialize_with = "text_or_empty")]
    email: String,
}

#[derive(Debug, Deserialize)]
struct PullCommitWire {
    sha: String,
    commit: CommitBody,
}

/// One commit of a pull request (`GET /repos/{o}/{r}/pulls/{n}/commits`).
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "PullCommitWire")]
pub struct PullCommit {
    pub sha: String,
    pub message: String,
    /// The committer's e-mail (the agent's commits carry `AGENT_GIT_EMAIL`).
    pub committer_email: String,
}

impl From<PullCommitWire> for PullCommit {
    fn from(c: PullCommitWire) -> Self {
        PullCommit {
            sha: c.sha,
            committer_email: c.commit.committer.map(|p| p.email).unwrap_or_default(),
            message: c.commit.message,
        }
    }
}

#[derive(Debug, Deserialize)]
struct Login {
    login: String,
}

#[derive(Debug, Deserialize)]
struct ReviewCommentWire {
    #[serde(deserialize_with = "id_string")]
    id: String,
    #[serde(default, deserialize_with = "text_or_empty")]
    path: String,
    #[serde(default)]
    line: Option<u64>,
    #[serde(default)]
    original_line: Option<u64>,
    #[serde(default, deserialize_with = "text_or_empty")]
    diff_hunk: String,
    #[serde(default, deserialize_with = "text_or_empty")]
    body: String,
    #[serde(default)]
    user: Option<Login>,
    #[serde(default)]
    in_reply_to_id: Option<serde_json::Value>,
}

/// A line comment of a review (`GET /repos/{o}/{r}/pulls/{n}/reviews/{id}/comments`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(from = "ReviewCommentWire")]
pub struct ReviewComment {
    pub id: String,
    pub path: String,
    /// The line on the current diff, else the line it was written on (outdated comments).
    pub line: Option<u64>,
    pub diff_hunk: String,
    pub body: String,
    /// Empty for a deleted account.
    pub author: String,
    /// An answer in an existing thread (GitHub files each such answer as a review of its own).
    pub is_reply: bool,
}

impl From<ReviewCommentWire> for ReviewComment {
    fn from(c: ReviewCommentWire) -> Self {
        ReviewComment {
            id: c.id,
            path: c.path,
            line: c.line.or(c.original_line),
            diff_hunk: c.diff_hunk,
            body: c.body,
            author: c.user.map(|u| u.login).unwrap_or_default(),
            is_reply: c.in_reply_to_id.is_some_and(|id| !id.is_null()),
        }
    }
}

/// A check run's report (`output`); every field may be `null`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct CheckOutput {
    #[serde(default, deserialize_with = "text_or_empty")]
    pub title: String,
    #[serde(default, deserialize_with = "text_or_empty")]
    pub summary: String,
    #[serde(default, deserialize_with = "text_or_empty")]
    pub text: String,
}

/// One check run of a commit (`GET /repos/{o}/{r}/commits/{sha}/check-runs`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct CheckRun {
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    pub name: String,
    /// `None` while the run has not completed.
    #[serde(default)]
    pub conclusion: Option<String>,
    #[serde(default)]
    pub output: CheckOutput,
}

#[derive(Debug, Deserialize)]
struct CheckRuns {
    check_runs: Vec<CheckRun>,
}

/// An annotation of a check run (`GET /repos/{o}/{r}/check-runs/{id}/annotations`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Annotation {
    #[serde(deserialize_with = "text_or_empty")]
    pub path: String,
    #[serde(default)]
    pub start_line: Option<u64>,
    #[serde(default)]
    pub end_line: Option<u64>,
    #[serde(default, deserialize_with = "text_or_empty")]
    pub annotation_level: String,
    #[serde(default, deserialize_with = "text_or_empty")]
    pub title: String,
    #[serde(default, deserialize_with = "text_or_empty")]
    pub message: String,
}

/// Ids GitHub hands out are numbers: anything else never goes into a URL path.
fn numeric(what: &str, id: &str) -> Result<(), ApiError> {
    if !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    Err(ApiError::Invalid {
        service: SERVICE,
        detail: format!("{what} is not a GitHub id"),
    })
}

impl GitHub {
    /// The pull request as far as deciding whose it is goes; `None` when there is none.
    pub async fn pull_head(&self, number: u64) -> Result<Option<PullHead>, ApiError> {
        let path = format!("{}/pulls/{number}", self.repo_path());
        fetch_if_found(SERVICE, self.get(&path)).await
    }

    /// The pull request's commits, oldest first (GitHub lists at most 250).
    pub async fn pull_commits(&self, number: u64) -> Result<Vec<PullCommit>, ApiError> {
        let base = format!("{}/pulls/{number}/commits", self.repo_path());
        self.pages(&base, 3).await
    }

    /// The line comments of review `review_id` on pull request `number`.
    pub async fn review_comments(
        &self,
        number: u64,
        review_id: &str,
    ) -> Result<Vec<ReviewComment>, ApiError> {
        numeric("the review id", review_id)?;
        let base = format!(
            "{}/pulls/{number}/reviews/{review_id}/comments",
            self.repo_path()
        );
        self.pages(&base, 5).await
    }

    /// Answers review comment `comment_id` in its thread.
    pub async fn reply_to_review_comment(
        &self,
        number: u64,
        comment_id: &str,
        body: &str,
    ) -> Result<(), ApiError> {
        numeric("the review comment id", comment_id)?;
        let path = format!(
            "{}/pulls/{number}/comments/{comment_id}/replies",
            self.repo_path()
        );
        self.post(&path, json!({"body": body})).await
    }

    /// The check runs of commit `sha` (at most 500).
    pub async fn check_runs(&self, sha: &str) -> Result<Vec<CheckRun>, ApiError> {
        if sha.len() != 40 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::Invalid {
                service: SERVICE,
                detail: "the head commit is not a full commit id".into(),
            });
        }
        let mut out = Vec::new();
        for page in 1..=5 {
            let path = format!(
                "{}/commits/{sha}/check-runs?per_page={PAGE}&page={page}",
                self.repo_path()
            );
            let runs: CheckRuns = fetch(SERVICE, self.get(&path)).await?;
            let count = runs.check_runs.len();
            out.extend(runs.check_runs);
            if count < PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// The first hundred annotations of check run `id`.
    pub async fn annotations(&self, id: &str) -> Result<Vec<Annotation>, ApiError> {
        numeric("the check run id", id)?;
        let path = format!(
            "{}/check-runs/{id}/annotations?per_page={PAGE}",
            self.repo_path()
        );
        fetch(SERVICE, self.get(&path)).await
    }

    /// Up to `max_pages` pages of the list at `base`.
    async fn pages<T: serde::de::DeserializeOwned>(
        &self,
        base: &str,
        max_pages: usize,
    ) -> Result<Vec<T>, ApiError> {
        let mut out = Vec::new();
        for page in 1..=max_pages {
            let path = format!("{base}?per_page={PAGE}&page={page}");
            let items: Vec<T> = fetch(SERVICE, self.get(&path)).await?;
            let count = items.len();
            out.extend(items);
            if count < PAGE {
                break;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_pull_from_a_deleted_fork_has_no_head_repository() {
        let pull: PullHead = serde_json::from_value(json!({
            "number": 5, "html_url": "u", "state": "open",
            "head": {"ref": "agent/github-1", "sha": "abc", "repo": null},
            "base": {"ref": "main", "repo": {"full_name": "acme/payments"}},
        }))
        .expect("pull");
        assert_eq!(pull.head_repo, None);
        assert_eq!(pull.base_repo.as_deref(), Some("acme/payments"));
        assert!(pull.open);
    }

    #[test]
    fn an_outdated_review_comment_keeps_its_original_line() {
        let comment: ReviewComment = serde_json::from_value(json!({
            "id": 9, "path": "a.py", "line": null, "original_line": 4,
            "diff_hunk": null, "body": "x", "user": null,
        }))
        .expect("comment");
        assert_eq!((comment.line, comment.author.as_str()), (Some(4), ""));
    }

    #[test]
    fn ids_that_are_not_numbers_never_reach_a_path() {
        assert!(numeric("id", "123").is_ok());
        for bad in ["", "1/../x", "12a", "123456789012345678901"] {
            assert!(numeric("id", bad).is_err(), "{bad}");
        }
    }
}
