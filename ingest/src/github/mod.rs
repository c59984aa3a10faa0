//! GitHub deliveries: from a verified `X-GitHub-Event` payload to a task or a control
//! message (the README's "Triggers"): issues and their comments here, reviews and check
//! suites of the agent's pull requests in [`pulls`]. The ingest never calls GitHub;
//! whatever needs the API (permissions, mapping a PR back to its issue) is the worker's job.

pub mod pulls;

use crate::normalize::{
    Command, CommandTask, Normalized, PayloadError, Request, command_task, id_leaf, invalid,
    mentions_login, message, opt_text, parse_command, str_leaf, u64_leaf,
};
use crate::settings::IngestSettings;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use shared::task::IssueRef;
use shared::{Mode, RepoUrl, Tracker};

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
    repository: Option<Repository>,
    review: Option<pulls::Review>,
    pull_request: Option<pulls::Pull>,
    check_suite: Option<pulls::CheckSuite>,
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
struct Repository {
    id: Option<Value>,
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
    match delivery.event {
        "ping" => Ok(Normalized::Ping),
        "issues" | "issue_comment" => issue_event(delivery, payload, settings),
        "pull_request_review" => pulls::review(delivery, payload, settings),
        "check_suite" => pulls::check_suite(delivery, payload),
        _ => Ok(Normalized::Ignored("event not handled")),
    }
}

/// The agent's login, when configured.
fn agent(settings: &IngestSettings) -> Option<&str> {
    settings.common.agent_github_login.as_deref()
}

fn is_agent(settings: &IngestSettings, user: &str) -> bool {
    agent(settings).is_some_and(|a| a.eq_ignore_ascii_case(user))
}

/// Labels, assignments and comments on an issue (or on a pull request's conversation).
fn issue_event(
    delivery: &Delivery<'_>,
    payload: &Payload,
    settings: &IngestSettings,
) -> Result<Normalized, PayloadError> {
    let action = str_leaf(payload.action.as_ref(), "action")?;
    let sender = str_leaf(login(payload.sender.as_ref()), "sender.login")?;
    if is_agent(settings, sender) {
        return Ok(Normalized::Ignored("sent by the agent itself"));
    }
    let issue = payload.issue.as_ref();
    let labels = label_names(issue.and_then(|i| i.labels.as_ref()))?;
    let on_pull = issue.is_some_and(|i| i.pull_request.is_some());
    let request = match (delivery.event, action) {
        ("issues", "labeled") => {
            let name = payload.label.as_ref().and_then(|l| l.name.as_ref());
            let label = str_leaf(name, "label.name")?;
            match settings.trigger_labels.mode_of(label) {
                Some(mode) => Request::task(CommandTask::plain(mode)),
                None => return Ok(Normalized::Ignored("label is not a trigger label")),
            }
        }
        ("issues", "assigned") => {
            let assignee = str_leaf(login(payload.assignee.as_ref()), "assignee.login")?;
            if !is_agent(settings, assignee) {
                return Ok(Normalized::Ignored(
                    "assigned to someone other than the agent",
                ));
            }
            Request::task(CommandTask::plain(assignment_mode(&labels, settings)))
        }
        ("issue_comment", "created") => match comment_request(payload, settings, on_pull)? {
            Ok(request) => request,
            Err(reason) => return Ok(Normalized::Ignored(reason)),
        },
        _ => return Ok(Normalized::Ignored("action not handled")),
    };
    let repo_url = repo_url(payload)?;
    let number = u64_leaf(issue.and_then(|i| i.number.as_ref()), "issue.number")?;
    let title = str_leaf(issue.and_then(|i| i.title.as_ref()), "issue.title")?;
    let body = opt_text(issue.and_then(|i| i.body.as_ref())).unwrap_or("");
    let url = str_leaf(issue.and_then(|i| i.html_url.as_ref()), "issue.html_url")?;
    let mut request = request;
    retry_fallback(&mut request, &labels, settings);
    let mut issue = IssueRef {
        tracker: Tracker::Github,
        key: format!("{}#{number}", repo_url.full_name()),
        number: Some(number),
        title: title.to_owned(),
        body: body.to_owned(),
        url: url.to_owned(),
        labels,
        pull_request: on_pull,
    };
    // A command on an agent pull request is about the issue the PR's body names: keyed by
    // that issue, it shares the issue's lock (one task per branch at a time) and its
    // cancels. The worker still maps the PR to its issue through the API.
    if let Some(issue_number) = on_pull.then(|| pulls::issue_named_in(body)).flatten() {
        if matches!(request, Request::Cancel { .. }) {
            issue = pulls::issue_ref(&repo_url, issue_number, title);
        } else {
            issue.key = format!("{}#{issue_number}", repo_url.full_name());
        }
    }
    Ok(message(
        pulls::origin(delivery, action, repo_url, issue, sender),
        request,
    ))
}

/// What a new comment asks for, or why it asks for nothing (checked in the trigger
/// table's order: a command or a mention, then its author).
fn comment_request(
    payload: &Payload,
    settings: &IngestSettings,
    on_pull: bool,
) -> Result<Result<Request, &'static str>, PayloadError> {
    let comment = payload.comment.as_ref();
    let body = opt_text(comment.and_then(|c| c.body.as_ref())).unwrap_or("");
    let mention = agent(settings).is_some_and(|a| mentions_login(body, a));
    let command = match parse_command(body) {
        Some(command) => command,
        None if mention => Command::Mention(body.to_owned()),
        None => return Ok(Err("comment is not a command")),
    };
    let author = str_leaf(
        login(comment.and_then(|c| c.user.as_ref())),
        "comment.user.login",
    )?;
    if is_agent(settings, author) {
        return Ok(Err("comment written by the agent itself"));
    }
    let association = comment.and_then(|c| c.author_association.as_ref());
    let association = str_leaf(association, "comment.author_association")?;
    if !TRUSTED_ASSOCIATIONS.contains(&association) {
        return Ok(Err(
            "comment author is not an owner, member or collaborator",
        ));
    }
    let comment_id = id_leaf(comment.and_then(|c| c.id.as_ref()), "comment.id")?;
    if let (Command::Mention(text), true) = (&command, on_pull) {
        // Addressed on a pull request: a follow-up of that pull request (the worker checks
        // that it is the agent's), not a new QuickFix of the issue.
        return Ok(Ok(Request::task(CommandTask {
            comment_id: Some(comment_id),
            ..CommandTask::instructed(Mode::Followup, text)
        })));
    }
    Ok(command_task(
        command,
        comment_id,
        author,
        settings.default_mode,
    ))
}

/// `repository.html_url`, parsed.
fn repo_url(payload: &Payload) -> Result<RepoUrl, PayloadError> {
    let link = payload
        .repository
        .as_ref()
        .and_then(|r| r.html_url.as_ref());
    RepoUrl::parse(str_leaf(link, "repository.html_url")?)
        .map_err(|e| invalid("repository.html_url", &e))
}

/// A `/retry` runs the issue's last mode (the worker reads it); when it finds none, the
/// mode an assignment would take: a plan on an issue with a plan label, never straight to
/// a pull request the issue's people meant to review as a plan first.
pub fn retry_fallback(request: &mut Request, labels: &[String], settings: &IngestSettings) {
    if let Request::Task(task) = request
        && task.retry.is_some()
    {
        task.mode = assignment_mode(labels, settings);
    }
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
