//! Jira deliveries: from a verified `webhookEvent` payload to a task (the README's
//! "Triggers"), including the two comment body forms Jira sends (plain text and ADF).

use crate::github::assignment_mode;
use crate::normalize::{
    Command, CommandTask, Normalized, Origin, PayloadError, Request, command_task, id_leaf, leaf,
    message, opt_text, parse_command, str_leaf,
};
use crate::settings::IngestSettings;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::adf::{body_text, mentions};
use shared::task::IssueRef;
use shared::{Mode, RepoUrl, Tracker};

/// The delivery id: Jira's `X-Atlassian-Webhook-Identifier` (stable across retries), or a
/// digest of the body when a sender omits the header (a retry repeats the body too).
pub fn delivery_id(identifier: Option<&str>, body: &[u8]) -> String {
    match identifier.map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("body-{}", &hex::encode(Sha256::digest(body))[..32]),
    }
}

/// The parts of a Jira payload the trigger table reads. The leaves stay JSON values, so
/// that a missing or mistyped one is a 400 naming its whole path (`issue.fields.summary`).
#[derive(Debug, Deserialize, Default)]
pub struct Payload {
    #[serde(rename = "webhookEvent")]
    webhook_event: Option<Value>,
    user: Option<Account>,
    changelog: Option<Changelog>,
    comment: Option<Comment>,
    issue: Option<Issue>,
}

#[derive(Debug, Deserialize, Default)]
struct Account {
    #[serde(rename = "accountId")]
    account_id: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
struct Changelog {
    /// Changes as `{field, fromString, toString, to}`, read one key at a time.
    items: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
struct Comment {
    id: Option<Value>,
    body: Option<Value>,
    author: Option<Account>,
    #[serde(rename = "self")]
    link: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
struct Issue {
    key: Option<Value>,
    fields: Option<Fields>,
    #[serde(rename = "self")]
    link: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
struct Fields {
    summary: Option<Value>,
    description: Option<Value>,
    labels: Option<Value>,
    project: Option<Project>,
}

#[derive(Debug, Deserialize, Default)]
struct Project {
    key: Option<Value>,
}

impl Payload {
    /// `webhookEvent`, when it is a string (for the logs, before normalizing).
    pub fn event(&self) -> Option<&str> {
        opt_text(self.webhook_event.as_ref())
    }

    fn fields(&self) -> Option<&Fields> {
        self.issue.as_ref().and_then(|i| i.fields.as_ref())
    }
}

fn account(a: Option<&Account>) -> Option<&Value> {
    a.and_then(|a| a.account_id.as_ref())
}

/// Parses a Jira payload, keeping only what [`normalize`] reads.
pub fn parse_payload(body: &[u8]) -> Result<Payload, PayloadError> {
    crate::normalize::parse_payload(body)
}

pub fn normalize(
    delivery_id: &str,
    received_at: DateTime<Utc>,
    payload: &Payload,
    settings: &IngestSettings,
) -> Result<Normalized, PayloadError> {
    let event = str_leaf(payload.webhook_event.as_ref(), "webhookEvent")?;
    let agent = settings.common.agent_jira_account_id.as_deref();
    let fields = payload.fields();
    let comment = payload.comment.as_ref();
    let labels: Vec<String> = fields
        .and_then(|f| f.labels.as_ref())
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let (trigger_user, task) = match event {
        "jira:issue_updated" => {
            let user = str_leaf(account(payload.user.as_ref()), "user.accountId")?;
            if agent == Some(user) {
                return Ok(Normalized::Ignored("sent by the agent itself"));
            }
            let items = payload.changelog.as_ref().and_then(|c| c.items.as_ref());
            let items = leaf(items, "changelog.items")?
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let assigned_to_agent = items.iter().any(|item| {
                text_of(item, "field") == Some("assignee")
                    && agent.is_some()
                    && text_of(item, "to") == agent
            });
            let mode = if assigned_to_agent {
                assignment_mode(&labels, settings)
            } else if let Some(mode) = added_trigger_label(items, settings) {
                mode
            } else {
                return Ok(Normalized::Ignored("no trigger in the change"));
            };
            (user.to_owned(), Request::task(CommandTask::plain(mode)))
        }
        "comment_created" => {
            let author = comment.and_then(|c| account(c.author.as_ref()));
            let author = str_leaf(author, "comment.author.accountId")?;
            if agent == Some(author) {
                return Ok(Normalized::Ignored("comment written by the agent itself"));
            }
            let document = leaf(comment.and_then(|c| c.body.as_ref()), "comment.body")?;
            let body = body_text(document);
            let command = match parse_command(&body) {
                Some(command) => command,
                None if agent.is_some_and(|a| mentions(document, a)) => Command::Mention(body),
                None => return Ok(Normalized::Ignored("comment is not a command")),
            };
            let comment_id = id_leaf(comment.and_then(|c| c.id.as_ref()), "comment.id")?;
            match command_task(command, comment_id, author, settings.default_mode) {
                Ok(task) => (author.to_owned(), task),
                Err(reason) => return Ok(Normalized::Ignored(reason)),
            }
        }
        _ => return Ok(Normalized::Ignored("event not handled")),
    };
    let key = str_leaf(
        payload.issue.as_ref().and_then(|i| i.key.as_ref()),
        "issue.key",
    )?;
    let repo_url = match repository_for(key, payload, &labels, settings) {
        Ok(repo_url) => repo_url,
        Err(reason) => return Ok(Normalized::Ignored(reason)),
    };
    let mut task = task;
    crate::github::retry_fallback(&mut task, &labels, settings);
    let issue = IssueRef {
        tracker: Tracker::Jira,
        key: key.to_owned(),
        number: None,
        title: str_leaf(
            fields.and_then(|f| f.summary.as_ref()),
            "issue.fields.summary",
        )?
        .to_owned(),
        body: fields
            .and_then(|f| f.description.as_ref())
            .filter(|d| !d.is_null())
            .map(body_text)
            .unwrap_or_default(),
        url: browse_url(payload, key),
        labels,
        pull_request: false,
    };
    Ok(message(
        Origin {
            source: Tracker::Jira,
            delivery_id: delivery_id.to_owned(),
            event: event.to_owned(),
            received_at,
            repo_url,
            issue,
            trigger_user,
        },
        task,
    ))
}

/// The mode of the first trigger label a `labels` change adds (Jira sends the label sets
/// before and after as space-separated strings).
fn added_trigger_label(items: &[Value], settings: &IngestSettings) -> Option<Mode> {
    items
        .iter()
        .filter(|item| text_of(item, "field") == Some("labels"))
        .find_map(|item| {
            let before: Vec<&str> = text_of(item, "fromString")
                .unwrap_or("")
                .split_whitespace()
                .collect();
            text_of(item, "toString")
                .unwrap_or("")
                .split_whitespace()
                .filter(|label| !before.contains(label))
                .find_map(|label| settings.trigger_labels.mode_of(label))
        })
}

/// A string under `key` of a changelog item, if any.
fn text_of<'a>(item: &'a Value, key: &str) -> Option<&'a str> {
    opt_text(item.get(key))
}

/// Why a delivery whose label names a repository outside `JIRA_REPO_ALLOW` is ignored.
pub const REPO_NOT_ALLOWED: &str = "repository label not in JIRA_REPO_ALLOW";
const NOT_MAPPED: &str = "project not mapped to a repository";

/// A `repo:owner/name` label (when enabled) wins over the project mapping, but only for a
/// repository on `JIRA_REPO_ALLOW`: anyone who can edit a Jira issue can add a label, so a
/// label outside the list ignores the delivery (it does not fall back to the project's
/// repository either: the editor asked for another one).
fn repository_for(
    key: &str,
    payload: &Payload,
    labels: &[String],
    settings: &IngestSettings,
) -> Result<RepoUrl, &'static str> {
    if settings.jira_repo_from_label {
        let from_label = labels
            .iter()
            .filter_map(|l| l.strip_prefix("repo:"))
            .find_map(|slug| RepoUrl::from_slug(slug).ok());
        if let Some(repo) = from_label {
            return if settings.jira_repo_allow.allows(&repo) {
                Ok(repo)
            } else {
                Err(REPO_NOT_ALLOWED)
            };
        }
    }
    let project = payload
        .fields()
        .and_then(|f| f.project.as_ref())
        .and_then(|p| opt_text(p.key.as_ref()))
        .or_else(|| key.split_once('-').map(|(p, _)| p))
        .ok_or(NOT_MAPPED)?;
    settings
        .jira_projects
        .get(&project.to_ascii_uppercase())
        .cloned()
        .ok_or(NOT_MAPPED)
}

/// `https://<site>/browse/<KEY>`, from the `self` link of the issue (or of the comment).
fn browse_url(payload: &Payload, key: &str) -> String {
    let issue = payload.issue.as_ref().and_then(|i| i.link.as_ref());
    let comment = payload.comment.as_ref().and_then(|c| c.link.as_ref());
    [issue, comment]
        .into_iter()
        .filter_map(opt_text)
        .find_map(|link| {
            let after_scheme = link.find("://")? + 3;
            let host_end = link[after_scheme..]
                .find('/')
                .map_or(link.len(), |i| after_scheme + i);
            Some(format!("{}/browse/{key}", &link[..host_end]))
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn delivery_id_falls_back_to_a_stable_body_digest() {
        assert_eq!(delivery_id(Some("abc"), b"x"), "abc");
        let a = delivery_id(None, b"same body");
        assert_eq!(a, delivery_id(Some("  "), b"same body"));
        assert_ne!(a, delivery_id(None, b"other body"));
    }

    #[test]
    fn browse_url_comes_from_the_self_link() {
        let payload: Payload = serde_json::from_value(
            json!({"issue": {"self": "https://acme.atlassian.net/rest/api/2/10043"}}),
        )
        .expect("payload");
        assert_eq!(
            browse_url(&payload, "PAY-43"),
            "https://acme.atlassian.net/browse/PAY-43"
        );
        assert_eq!(browse_url(&Payload::default(), "PAY-43"), "");
    }
}
