//! GitHub deliveries: from a verified `X-GitHub-Event` payload to a task (the README's
//! "Triggers"). The ingest never calls GitHub; whatever needs the API (permissions, mapping
//! a PR back to its issue) is the worker's job.

use crate::normalize::{
    Command, CommandTask, Normalized, PayloadError, command_task, id_leaf, invalid, mentions_login,
    opt_text, parse_command, str_leaf, u64_leaf,
};
use crate::settings::IngestSettings;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use shared::task::{IssueRef, TriggerInfo};
use shared::{Mode, RepoUrl, TaskMessage, Tracker, task::TASK_VERSION};

/// Comment authors GitHub vouches for as part of the repository.
const TRUSTED_ASSOCIATIONS: [&str; 3] = ["OWNER", "MEMBER", "COLLABORATOR"];

/// The delivery's identity, from its headers.
#[derive(Debug, Clone)]
pub struct Delivery<'a> {
    pub event: &'a str,
    pub delivery_id: &'a str,
    pub received_at: DateTime<Utc>,
}

/// The parts of a GitHub payload the trigger table reads. Deserializing into these
/// projections skips everything else (`repository` alone has about a hundred fields)
/// without building it, which is most of the CPU a webhook costs when parsed whole. The
/// leaves stay JSON values, so that a missing or mistyped one is a 400 naming its whole
/// path (`issue.title`), checked in the order the trigger table reads them.
#[derive(Debug, Deserialize, Default)]
pub struct Payload {
    action: Option<Value>,
    sender: Option<Login>,
    label: Option<Named>,
    assignee: Option<Login>,
    comment: Option<Comment>,
    issue: Option<Issue>,
    repository: Option<Url>,
}

#[derive(Debug, Deserialize, Default)]
struct Login {
    login: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
struct Named {
    name: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
struct Url {
    html_url: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
struct Comment {
    id: Option<Value>,
    body: Option<Value>,
    user: Option<Login>,
    author_association: Option<Value>,
}

#[derive(Debug, Deserialize, Default)]
struct Issue {
    number: Option<Value>,
    title: Option<Value>,
    body: Option<Value>,
    html_url: Option<Value>,
    labels: Option<Vec<Value>>,
    pull_request: Option<serde::de::IgnoredAny>,
}

fn login(user: Option<&Login>) -> Option<&Value> {
    user.and_then(|u| u.login.as_ref())
}

/// Parses a GitHub payload, keeping only what [`normalize`] reads.
pub fn parse_payload(body: &[u8]) -> Result<Payload, PayloadError> {
    crate::normalize::parse_payload(body)
}

pub fn normalize(
    delivery: &Delivery<'_>,
    payload: &Payload,
    settings: &IngestSettings,
) -> Result<Normalized, PayloadError> {
    if delivery.event == "ping" {
        return Ok(Normalized::Ping);
    }
    if !matches!(delivery.event, "issues" | "issue_comment") {
        return Ok(Normalized::Ignored("event not handled"));
    }
    let action = str_leaf(payload.action.as_ref(), "action")?;
    let sender = str_leaf(login(payload.sender.as_ref()), "sender.login")?;
    let agent = settings.common.agent_github_login.as_deref();
    if agent.is_some_and(|a| a.eq_ignore_ascii_case(sender)) {
        return Ok(Normalized::Ignored("sent by the agent itself"));
    }
    let issue = payload.issue.as_ref();
    let comment = payload.comment.as_ref();
    let labels = label_names(issue.and_then(|i| i.labels.as_ref()))?;
    let task = match (delivery.event, action) {
        ("issues", "labeled") => {
            let name = payload.label.as_ref().and_then(|l| l.name.as_ref());
            let label = str_leaf(name, "label.name")?;
            match settings.trigger_labels.mode_of(label) {
                Some(mode) => CommandTask::plain(mode),
                None => return Ok(Normalized::Ignored("label is not a trigger label")),
            }
        }
        ("issues", "assigned") => {
            let assignee = str_leaf(login(payload.assignee.as_ref()), "assignee.login")?;
            if !agent.is_some_and(|a| a.eq_ignore_ascii_case(assignee)) {
                return Ok(Normalized::Ignored(
                    "assigned to someone other than the agent",
                ));
            }
            CommandTask::plain(assignment_mode(&labels, settings))
        }
        ("issue_comment", "created") => {
            let body = opt_text(comment.and_then(|c| c.body.as_ref())).unwrap_or("");
            let on_pull = issue.is_some_and(|i| i.pull_request.is_some());
            let command = match parse_command(body) {
                Some(command) => command,
                None if agent.is_some_and(|a| mentions_login(body, a)) => {
                    if on_pull {
                        // A mention on a PR asks for a follow-up of that PR's review,
                        // a mode this build does not have: not a new QuickFix of the issue.
                        return Ok(Normalized::Ignored(
                            "a mention on a pull request (follow-ups are not supported yet)",
                        ));
                    }
                    Command::Mention(body.to_owned())
                }
                None => return Ok(Normalized::Ignored("comment is not a command")),
            };
            let user = comment.and_then(|c| c.user.as_ref());
            let author = str_leaf(login(user), "comment.user.login")?;
            if agent.is_some_and(|a| a.eq_ignore_ascii_case(author)) {
                return Ok(Normalized::Ignored("comment written by the agent itself"));
            }
            let association = comment.and_then(|c| c.author_association.as_ref());
            let association = str_leaf(association, "comment.author_association")?;
            if !TRUSTED_ASSOCIATIONS.contains(&association) {
                return Ok(Normalized::Ignored(
                    "comment author is not an owner, member or collaborator",
                ));
            }
            let comment_id = id_leaf(comment.and_then(|c| c.id.as_ref()), "comment.id")?;
            match command_task(command, comment_id, author, settings.default_mode) {
                Ok(task) => task,
                Err(reason) => return Ok(Normalized::Ignored(reason)),
            }
        }
        _ => return Ok(Normalized::Ignored("action not handled")),
    };
    let repo_link = payload
        .repository
        .as_ref()
        .and_then(|r| r.html_url.as_ref());
    let repo_url = RepoUrl::parse(str_leaf(repo_link, "repository.html_url")?)
        .map_err(|e| invalid("repository.html_url", &e))?;
    let number = u64_leaf(issue.and_then(|i| i.number.as_ref()), "issue.number")?;
    let issue = IssueRef {
        tracker: Tracker::Github,
        key: format!("{}#{number}", repo_url.full_name()),
        number: Some(number),
        title: str_leaf(issue.and_then(|i| i.title.as_ref()), "issue.title")?.to_owned(),
        body: opt_text(issue.and_then(|i| i.body.as_ref()))
            .unwrap_or("")
            .to_owned(),
        url: str_leaf(issue.and_then(|i| i.html_url.as_ref()), "issue.html_url")?.to_owned(),
        labels,
        pull_request: issue.is_some_and(|i| i.pull_request.is_some()),
    };
    Ok(Normalized::Task(Box::new(TaskMessage {
        version: TASK_VERSION,
        task_id: crate::normalize::task_id(Tracker::Github, delivery.delivery_id),
        mode: task.mode,
        source: Tracker::Github,
        repo_url,
        base_branch: None,
        issue,
        trigger_user: sender.to_owned(),
        trigger: TriggerInfo {
            event: format!("{}.{action}", delivery.event),
            delivery_id: delivery.delivery_id.to_owned(),
            received_at: delivery.received_at,
            comment_id: task.comment_id,
        },
        approval: task.approval,
        revision: task.revision,
        instruction: task.instruction,
        review: None,
        checks: None,
        retry: task.retry,
    })))
}

/// An assignment to the agent plans when the issue carries a plan label.
pub fn assignment_mode(labels: &[String], settings: &IngestSettings) -> Mode {
    if settings
        .trigger_labels
        .any_plan(labels.iter().map(String::as_str))
    {
        Mode::Plan
    } else {
        settings.default_mode
    }
}

/// An issue's labels: names, or objects with a `name`.
fn label_names(labels: Option<&Vec<Value>>) -> Result<Vec<String>, PayloadError> {
    let Some(labels) = labels else {
        return Ok(Vec::new());
    };
    labels
        .iter()
        .map(|label| match label {
            Value::String(name) => Ok(name.clone()),
            other => str_leaf(other.get("name"), "name")
                .map(str::to_owned)
                .map_err(|_| PayloadError::MissingField("issue.labels[].name".into())),
        })
        .collect()
}
