//! The task message, version 1: the one contract between the ingest and the worker.
//!
//! Parsing is strict about the `version` (a missing or newer version is a poison message the
//! worker dead-letters) and lenient about everything else it does not know (unknown fields
//! are ignored, so an older worker can read a newer ingest's additions).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The only version this build writes and reads.
pub const TASK_VERSION: u64 = 1;

/// What the worker should do with the issue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Edit the code and open a pull request straight away.
    Quickfix,
    /// Post a plan and wait for `/approve` (or `/revise`).
    Plan,
    /// Carry out an approved plan.
    Implement,
    /// Address a review (or a mention) on the agent's pull request: a new commit on its head.
    Followup,
    /// Fix the agent's pull request after its CI failed: a `CI-Fix-Round: <n>` commit.
    Fixci,
}

impl Mode {
    pub const ALL: [Mode; 5] = [
        Mode::Quickfix,
        Mode::Plan,
        Mode::Implement,
        Mode::Followup,
        Mode::Fixci,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Quickfix => "quickfix",
            Mode::Plan => "plan",
            Mode::Implement => "implement",
            Mode::Followup => "followup",
            Mode::Fixci => "fixci",
        }
    }
}

crate::display_as_str!(Mode);

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let names = Mode::ALL.map(|m| (m.as_str(), m));
        crate::settings::one_of("mode", s, &names)
    }
}

/// Which tracker an issue (and the webhook that named it) comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tracker {
    Github,
    Jira,
}

impl Tracker {
    pub fn as_str(self) -> &'static str {
        match self {
            Tracker::Github => "github",
            Tracker::Jira => "jira",
        }
    }
}

crate::display_as_str!(Tracker);

/// A canonical repository URL: `https://<host>/<owner>/<name>`, without `.git` or a
/// trailing slash. Parsing at the boundary means the worker can trust `owner()`/`name()`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RepoUrl {
    url: String,
    owner_start: usize,
    name_start: usize,
}

impl RepoUrl {
    pub fn parse(input: &str) -> Result<Self, String> {
        let trimmed = input.trim();
        let rest = trimmed
            .strip_prefix("https://")
            .ok_or_else(|| format!("repository URL `{trimmed}` must start with https://"))?;
        let rest = rest.trim_end_matches('/');
        let rest = rest.strip_suffix(".git").unwrap_or(rest);
        let mut parts = rest.split('/');
        let (Some(host), Some(owner), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(format!(
                "repository URL `{trimmed}` must look like https://github.com/<owner>/<name>"
            ));
        };
        let valid_host = !host.is_empty()
            && !host.contains('@')
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !valid_host {
            return Err(format!(
                "repository URL `{trimmed}` has an invalid host (credentials are not allowed in it)"
            ));
        }
        for (what, part) in [("owner", owner), ("name", name)] {
            let valid = !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid {
                return Err(format!("repository URL `{trimmed}` has an invalid {what}"));
            }
        }
        let url = format!("https://{host}/{owner}/{name}");
        let owner_start = "https://".len() + host.len() + 1;
        let name_start = owner_start + owner.len() + 1;
        Ok(Self {
            url,
            owner_start,
            name_start,
        })
    }

    /// `owner/name` on github.com, else the full URL: what a user would type.
    pub fn from_slug(slug: &str) -> Result<Self, String> {
        Self::parse(&format!("https://github.com/{}", slug.trim()))
    }

    pub fn as_str(&self) -> &str {
        &self.url
    }
    pub fn host(&self) -> &str {
        &self.url["https://".len()..self.owner_start - 1]
    }
    pub fn owner(&self) -> &str {
        &self.url[self.owner_start..self.name_start - 1]
    }
    pub fn name(&self) -> &str {
        &self.url[self.name_start..]
    }
    /// `owner/name`.
    pub fn full_name(&self) -> &str {
        &self.url[self.owner_start..]
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

impl TryFrom<String> for RepoUrl {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<RepoUrl> for String {
    fn from(value: RepoUrl) -> Self {
        value.url
    }
}

/// The issue the task is about, as the tracker described it when the webhook fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueRef {
    pub tracker: Tracker,
    /// `owner/name#123` on GitHub, `PAY-42` on Jira.
    pub key: String,
    /// The GitHub issue (or pull request) number; `null` for Jira.
    pub number: Option<u64>,
    pub title: String,
    #[serde(default)]
    pub body: String,
    pub url: String,
    #[serde(default)]
    pub labels: Vec<String>,
    /// Set when a GitHub comment was made on a pull request: `number` is then the PR's, and
    /// the worker maps it back to its issue.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pull_request: bool,
}

/// The webhook delivery that produced the task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerInfo {
    /// `issues.labeled`, `issue_comment.created`, `jira:issue_updated`, ...
    pub event: String,
    pub delivery_id: String,
    pub received_at: DateTime<Utc>,
    /// The comment that started the task (a command or a mention), for the worker's
    /// acknowledgement (an `eyes` reaction on GitHub). Omitted for labels and assignments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment_id: Option<String>,
}

/// The `/approve` comment an `implement` task carries out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub comment_id: String,
    pub approver: String,
}

/// The `/revise <feedback>` comment a new plan version answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub comment_id: String,
    pub feedback: String,
    pub requested_by: String,
}

/// The review a `followup` task addresses: one task per review, its line comments batched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewRef {
    pub pull_number: u64,
    pub review_id: String,
}

/// The failed check suite a `fixci` task answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecksRef {
    pub pull_number: u64,
    /// The commit CI ran on: a task whose branch moved on since is stale.
    pub head_sha: String,
    pub check_suite_id: String,
}

/// The `/retry` comment: the worker runs the issue's last mode again (read from its status
/// comment's marker); the message's `mode` is only what to run when there is none.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryRequest {
    pub comment_id: String,
    pub requested_by: String,
}

/// Task message v1 (docs/contracts.md, "Task message, version 1").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMessage {
    pub version: u64,
    pub task_id: String,
    pub mode: Mode,
    pub source: Tracker,
    pub repo_url: RepoUrl,
    #[serde(default)]
    pub base_branch: Option<String>,
    pub issue: IssueRef,
    pub trigger_user: String,
    pub trigger: TriggerInfo,
    #[serde(default)]
    pub approval: Option<Approval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<Revision>,
    /// What the person asked in the comment that started the task (a mention of the
    /// agent, `/code <text>`, `/plan <text>`): the requester's words, untrusted text for
    /// the prompt. Capped by the ingest at [`MAX_INSTRUCTION_BYTES`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instruction: Option<String>,
    /// For `followup`: the review on the agent's pull request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewRef>,
    /// For `fixci`: the failed check suite of the agent's pull request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<ChecksRef>,
    /// Set by `/retry`: `mode` is replaced by the issue's last mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryRequest>,
}

/// The most of a comment the ingest puts into `instruction` (cut at a character boundary).
pub const MAX_INSTRUCTION_BYTES: usize = 16 * 1024;

/// Why a queue message is not a task this build can run. Every variant is permanent: the
/// message is dead-lettered, never retried.
#[derive(Debug, thiserror::Error)]
pub enum TaskParseError {
    #[error("message is not a JSON object: {0}")]
    NotJson(String),
    #[error("message has no `version` field")]
    MissingVersion,
    #[error("message `version` must be a positive integer")]
    InvalidVersion,
    #[error("message version {0} is not supported (this build reads version {TASK_VERSION})")]
    UnsupportedVersion(u64),
    #[error("message does not match task v1: {0}")]
    Invalid(String),
}

impl TaskMessage {
    pub fn from_slice(bytes: &[u8]) -> Result<Self, TaskParseError> {
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|e| TaskParseError::NotJson(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| TaskParseError::NotJson("top level is not an object".into()))?;
        let version = match object.get("version") {
            None | Some(serde_json::Value::Null) => return Err(TaskParseError::MissingVersion),
            Some(v) => v.as_u64().ok_or(TaskParseError::InvalidVersion)?,
        };
        if version != TASK_VERSION {
            return Err(TaskParseError::UnsupportedVersion(version));
        }
        serde_json::from_value(value).map_err(|e| TaskParseError::Invalid(e.to_string()))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a task message always serializes")
    }

    /// The short key used in logs and metrics: `acme/payments#123` or `PAY-42`.
    pub fn issue_key(&self) -> &str {
        &self.issue.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> serde_json::Value {
        serde_json::json!({
          "version": 1,
          "task_id": "github:7f1c2e60-8a5e-11ee-9b3c-0b1c2d3e4f50",
          "mode": "plan",
          "source": "github",
          "repo_url": "https://github.com/acme/payments",
          "base_branch": null,
          "issue": {
            "tracker": "github",
            "key": "acme/payments#123",
            "number": 123,
            "title": "Refund endpoint returns 500 ...",
            "body": "...",
            "url": "https://github.com/acme/payments/issues/123",
            "labels": ["ai-plan", "backend"]
          },
          "trigger_user": "dev1",
          "trigger": {"event": "issues.labeled", "delivery_id": "7f1c2e60", "received_at": "2026-11-21T10:40:00Z"},
          "approval": null
        })
    }

    #[test]
    fn design_example_round_trips_unchanged() {
        let value = example();
        let task = TaskMessage::from_slice(value.to_string().as_bytes()).expect("parses");
        assert_eq!(task.mode, Mode::Plan);
        assert_eq!(task.repo_url.owner(), "acme");
        assert_eq!(task.repo_url.name(), "payments");
        let back: serde_json::Value = serde_json::from_slice(&task.to_json()).expect("json");
        assert_eq!(back, value);
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let mut value = example();
        value["future_field"] = serde_json::json!({"x": 1});
        value["issue"]["extra"] = serde_json::json!(true);
        assert!(TaskMessage::from_slice(value.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn missing_or_newer_version_is_a_typed_error() {
        let mut value = example();
        value.as_object_mut().expect("object").remove("version");
        assert!(matches!(
            TaskMessage::from_slice(value.to_string().as_bytes()),
            Err(TaskParseError::MissingVersion)
        ));
        value["version"] = serde_json::json!(2);
        assert!(matches!(
            TaskMessage::from_slice(value.to_string().as_bytes()),
            Err(TaskParseError::UnsupportedVersion(2))
        ));
        value["version"] = serde_json::json!("1");
        assert!(matches!(
            TaskMessage::from_slice(value.to_string().as_bytes()),
            Err(TaskParseError::InvalidVersion)
        ));
        assert!(matches!(
            TaskMessage::from_slice(b"{not json"),
            Err(TaskParseError::NotJson(_))
        ));
        let mut value = example();
        value["mode"] = serde_json::json!("destroy");
        assert!(matches!(
            TaskMessage::from_slice(value.to_string().as_bytes()),
            Err(TaskParseError::Invalid(_))
        ));
    }

    #[test]
    fn implement_and_revision_round_trip() {
        let mut value = example();
        value["mode"] = serde_json::json!("implement");
        value["approval"] = serde_json::json!({"comment_id": "99", "approver": "dev1"});
        value["revision"] = serde_json::json!({"comment_id": "98", "feedback": "use a trait", "requested_by": "dev2"});
        let task = TaskMessage::from_slice(value.to_string().as_bytes()).expect("parses");
        let back: serde_json::Value = serde_json::from_slice(&task.to_json()).expect("json");
        assert_eq!(back, value);
    }

    #[test]
    fn repo_url_is_canonical() {
        for input in [
            "https://github.com/acme/payments",
            "https://github.com/acme/payments.git",
            "https://github.com/acme/payments/",
        ] {
            let url = RepoUrl::parse(input).expect(input);
            assert_eq!(url.as_str(), "https://github.com/acme/payments");
            assert_eq!(url.full_name(), "acme/payments");
            assert_eq!(url.host(), "github.com");
        }
        for bad in [
            "http://github.com/a/b",
            "https://github.com/a",
            "https://github.com/a/b/c",
            "https://user:pw@github.com/a/b",
            "https://github.com/../b",
            "https://github.com/a/b c",
        ] {
            assert!(RepoUrl::parse(bad).is_err(), "{bad} should be refused");
        }
        assert_eq!(
            RepoUrl::from_slug("acme/payments").expect("slug").as_str(),
            "https://github.com/acme/payments"
        );
    }
}
