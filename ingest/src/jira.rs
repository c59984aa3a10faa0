//! Jira deliveries: from a verified `webhookEvent` payload to a task (the README's
//! "Triggers"), including the two comment body forms Jira sends (plain text and ADF).

use crate::github::assignment_mode;
use crate::normalize::{
    Normalized, PayloadError, command_task, field, id_field, opt_field, opt_str, parse_command,
    str_field,
};
use crate::settings::IngestSettings;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sha2::{Digest, Sha256};
use shared::adf::body_text;
use shared::task::{IssueRef, TriggerInfo};
use shared::{Mode, RepoUrl, TaskMessage, Tracker, task::TASK_VERSION};

/// The delivery id: Jira's `X-Atlassian-Webhook-Identifier` (stable across retries), or a
/// digest of the body when a sender omits the header (a retry repeats the body too).
pub fn delivery_id(identifier: Option<&str>, body: &[u8]) -> String {
    match identifier.map(str::trim).filter(|s| !s.is_empty()) {
        Some(id) => id.to_owned(),
        None => format!("body-{}", &hex::encode(Sha256::digest(body))[..32]),
    }
}

pub fn task_id(delivery_id: &str) -> String {
    format!("jira:{delivery_id}")
}

pub fn normalize(
    delivery_id: &str,
    received_at: DateTime<Utc>,
    payload: &Value,
    settings: &IngestSettings,
) -> Result<Normalized, PayloadError> {
    let event = str_field(payload, "webhookEvent")?;
    let agent = settings.common.agent_jira_account_id.as_deref();
    let labels: Vec<String> = opt_field(payload, "issue.fields.labels")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    let (trigger_user, mode, approval, revision) = match event {
        "jira:issue_updated" => {
            let user = str_field(payload, "user.accountId")?;
            if agent == Some(user) {
                return Ok(Normalized::Ignored("sent by the agent itself"));
            }
            let items = field(payload, "changelog.items")?
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default();
            let assigned_to_agent = items.iter().any(|item| {
                opt_str(item, "field") == Some("assignee")
                    && agent.is_some()
                    && opt_str(item, "to") == agent
            });
            let mode = if assigned_to_agent {
                assignment_mode(&labels, settings)
            } else if let Some(mode) = added_trigger_label(items, settings) {
                mode
            } else {
                return Ok(Normalized::Ignored("no trigger in the change"));
            };
            (user.to_owned(), mode, None, None)
        }
        "comment_created" => {
            let author = str_field(payload, "comment.author.accountId")?;
            if agent == Some(author) {
                return Ok(Normalized::Ignored("comment written by the agent itself"));
            }
            let body = body_text(field(payload, "comment.body")?);
            let Some(command) = parse_command(&body) else {
                return Ok(Normalized::Ignored("comment is not a command"));
            };
            let comment_id = id_field(payload, "comment.id")?;
            match command_task(command, comment_id, author) {
                Ok((mode, approval, revision)) => (author.to_owned(), mode, approval, revision),
                Err(reason) => return Ok(Normalized::Ignored(reason)),
            }
        }
        _ => return Ok(Normalized::Ignored("event not handled")),
    };
    let key = str_field(payload, "issue.key")?;
    let repo_url = match repository_for(key, payload, &labels, settings) {
        Ok(repo_url) => repo_url,
        Err(reason) => return Ok(Normalized::Ignored(reason)),
    };
    let issue = IssueRef {
        tracker: Tracker::Jira,
        key: key.to_owned(),
        number: None,
        title: str_field(payload, "issue.fields.summary")?.to_owned(),
        body: opt_field(payload, "issue.fields.description")
            .map(body_text)
            .unwrap_or_default(),
        url: browse_url(payload, key),
        labels,
        pull_request: false,
    };
    Ok(Normalized::Task(Box::new(TaskMessage {
        version: TASK_VERSION,
        task_id: task_id(delivery_id),
        mode,
        source: Tracker::Jira,
        repo_url,
        base_branch: None,
        issue,
        trigger_user,
        trigger: TriggerInfo {
            event: event.to_owned(),
            delivery_id: delivery_id.to_owned(),
            received_at,
        },
        approval,
        revision,
    })))
}

/// The mode of the first trigger label a `labels` change adds (Jira sends the label sets
/// before and after as space-separated strings).
fn added_trigger_label(items: &[Value], settings: &IngestSettings) -> Option<Mode> {
    items
        .iter()
        .filter(|item| opt_str(item, "field") == Some("labels"))
        .find_map(|item| {
            let before: Vec<&str> = opt_str(item, "fromString")
                .unwrap_or("")
                .split_whitespace()
                .collect();
            opt_str(item, "toString")
                .unwrap_or("")
                .split_whitespace()
                .filter(|label| !before.contains(label))
                .find_map(|label| settings.trigger_labels.mode_of(label))
        })
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
    payload: &Value,
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
    let project = opt_str(payload, "issue.fields.project.key")
        .or_else(|| key.split_once('-').map(|(p, _)| p))
        .ok_or(NOT_MAPPED)?;
    settings
        .jira_projects
        .get(&project.to_ascii_uppercase())
        .cloned()
        .ok_or(NOT_MAPPED)
}

/// `https://<site>/browse/<KEY>`, from the `self` link of the issue (or of the comment).
fn browse_url(payload: &Value, key: &str) -> String {
    ["issue.self", "comment.self"]
        .iter()
        .filter_map(|path| opt_str(payload, path))
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
        let payload = json!({"issue": {"self": "https://acme.atlassian.net/rest/api/2/10043"}});
        assert_eq!(
            browse_url(&payload, "PAY-43"),
            "https://acme.atlassian.net/browse/PAY-43"
        );
        assert_eq!(browse_url(&json!({}), "PAY-43"), "");
    }
}
