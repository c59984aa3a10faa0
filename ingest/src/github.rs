//! GitHub deliveries: from a verified `X-GitHub-Event` payload to a task (the README's
//! "Triggers"). The ingest never calls GitHub; whatever needs the API (permissions, mapping
//! a PR back to its issue) is the worker's job.

use crate::normalize::{
    Normalized, PayloadError, command_task, field, id_field, invalid, opt_str, parse_command,
    str_field, u64_field,
};
use crate::settings::IngestSettings;
use chrono::{DateTime, Utc};
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
/// without building it, which is most of the CPU a webhook costs when parsed whole.
mod sparse {
    use serde::Deserialize;
    use serde_json::{Map, Value};

    #[derive(Deserialize, Default)]
    pub struct Login {
        login: Option<Value>,
    }
    #[derive(Deserialize, Default)]
    pub struct Named {
        name: Option<Value>,
    }
    #[derive(Deserialize, Default)]
    pub struct Url {
        html_url: Option<Value>,
    }
    #[derive(Deserialize, Default)]
    pub struct Comment {
        id: Option<Value>,
        body: Option<Value>,
        user: Option<Login>,
        author_association: Option<Value>,
    }
    #[derive(Deserialize, Default)]
    pub struct Issue {
        number: Option<Value>,
        title: Option<Value>,
        body: Option<Value>,
        html_url: Option<Value>,
        labels: Option<Vec<Value>>,
        pull_request: Option<serde::de::IgnoredAny>,
    }
    #[derive(Deserialize, Default)]
    pub struct Payload {
        action: Option<Value>,
        sender: Option<Login>,
        label: Option<Named>,
        assignee: Option<Login>,
        comment: Option<Comment>,
        issue: Option<Issue>,
        repository: Option<Url>,
    }

    fn object(entries: Vec<(&str, Option<Value>)>) -> Value {
        let map: Map<String, Value> = entries
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
            .collect();
        Value::Object(map)
    }

    impl Login {
        fn value(self) -> Value {
            object(vec![("login", self.login)])
        }
    }

    impl Payload {
        /// The same JSON shape as the payload, holding only what is read.
        pub fn into_value(self) -> Value {
            object(vec![
                ("action", self.action),
                ("sender", self.sender.map(Login::value)),
                ("label", self.label.map(|l| object(vec![("name", l.name)]))),
                ("assignee", self.assignee.map(Login::value)),
                (
                    "comment",
                    self.comment.map(|c| {
                        object(vec![
                            ("id", c.id),
                            ("body", c.body),
                            ("user", c.user.map(Login::value)),
                            ("author_association", c.author_association),
                        ])
                    }),
                ),
                (
                    "issue",
                    self.issue.map(|i| {
                        object(vec![
                            ("number", i.number),
                            ("title", i.title),
                            ("body", i.body),
                            ("html_url", i.html_url),
                            ("labels", i.labels.map(Value::Array)),
                            (
                                "pull_request",
                                i.pull_request.map(|_| Value::Object(Map::new())),
                            ),
                        ])
                    }),
                ),
                (
                    "repository",
                    self.repository
                        .map(|r| object(vec![("html_url", r.html_url)])),
                ),
            ])
        }
    }
}

/// Parses a GitHub payload, keeping only what [`normalize`] reads.
pub fn parse_payload(body: &[u8]) -> Result<Value, PayloadError> {
    serde_json::from_slice::<sparse::Payload>(body)
        .map(sparse::Payload::into_value)
        .map_err(|e| PayloadError::Malformed(e.to_string()))
}

/// The task id of a GitHub delivery: stable across redeliveries of the same delivery.
pub fn task_id(delivery_id: &str) -> String {
    format!("github:{delivery_id}")
}

pub fn normalize(
    delivery: &Delivery<'_>,
    payload: &Value,
    settings: &IngestSettings,
) -> Result<Normalized, PayloadError> {
    if delivery.event == "ping" {
        return Ok(Normalized::Ping);
    }
    if !matches!(delivery.event, "issues" | "issue_comment") {
        return Ok(Normalized::Ignored("event not handled"));
    }
    let action = str_field(payload, "action")?;
    let sender = str_field(payload, "sender.login")?;
    let agent = settings.common.agent_github_login.as_deref();
    if agent.is_some_and(|a| a.eq_ignore_ascii_case(sender)) {
        return Ok(Normalized::Ignored("sent by the agent itself"));
    }
    let labels = label_names(payload)?;
    let (mode, approval, revision) = match (delivery.event, action) {
        ("issues", "labeled") => {
            let label = str_field(payload, "label.name")?;
            match settings.trigger_labels.mode_of(label) {
                Some(mode) => (mode, None, None),
                None => return Ok(Normalized::Ignored("label is not a trigger label")),
            }
        }
        ("issues", "assigned") => {
            let assignee = str_field(payload, "assignee.login")?;
            if !agent.is_some_and(|a| a.eq_ignore_ascii_case(assignee)) {
                return Ok(Normalized::Ignored(
                    "assigned to someone other than the agent",
                ));
            }
            (assignment_mode(&labels, settings), None, None)
        }
        ("issue_comment", "created") => {
            let body = opt_str(payload, "comment.body").unwrap_or("");
            let Some(command) = parse_command(body) else {
                return Ok(Normalized::Ignored("comment is not a command"));
            };
            let author = str_field(payload, "comment.user.login")?;
            if agent.is_some_and(|a| a.eq_ignore_ascii_case(author)) {
                return Ok(Normalized::Ignored("comment written by the agent itself"));
            }
            let association = str_field(payload, "comment.author_association")?;
            if !TRUSTED_ASSOCIATIONS.contains(&association) {
                return Ok(Normalized::Ignored(
                    "comment author is not an owner, member or collaborator",
                ));
            }
            let comment_id = id_field(payload, "comment.id")?;
            match command_task(command, comment_id, author) {
                Ok(fields) => fields,
                Err(reason) => return Ok(Normalized::Ignored(reason)),
            }
        }
        _ => return Ok(Normalized::Ignored("action not handled")),
    };
    let repo_url = RepoUrl::parse(str_field(payload, "repository.html_url")?)
        .map_err(|e| invalid("repository.html_url", &e))?;
    let number = u64_field(payload, "issue.number")?;
    let issue = IssueRef {
        tracker: Tracker::Github,
        key: format!("{}#{number}", repo_url.full_name()),
        number: Some(number),
        title: str_field(payload, "issue.title")?.to_owned(),
        body: opt_str(payload, "issue.body").unwrap_or("").to_owned(),
        url: str_field(payload, "issue.html_url")?.to_owned(),
        labels,
        pull_request: field(payload, "issue.pull_request").is_ok(),
    };
    Ok(Normalized::Task(Box::new(TaskMessage {
        version: TASK_VERSION,
        task_id: task_id(delivery.delivery_id),
        mode,
        source: Tracker::Github,
        repo_url,
        base_branch: None,
        issue,
        trigger_user: sender.to_owned(),
        trigger: TriggerInfo {
            event: format!("{}.{action}", delivery.event),
            delivery_id: delivery.delivery_id.to_owned(),
            received_at: delivery.received_at,
        },
        approval,
        revision,
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

fn label_names(payload: &Value) -> Result<Vec<String>, PayloadError> {
    let Some(labels) = payload.pointer("/issue/labels").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    labels
        .iter()
        .map(|label| match label {
            Value::String(name) => Ok(name.clone()),
            other => str_field(other, "name")
                .map(str::to_owned)
                .map_err(|_| PayloadError::MissingField("issue.labels[].name".into())),
        })
        .collect()
}
