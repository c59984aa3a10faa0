//! What both webhook sources share once a payload is verified and parsed: the outcome of
//! normalizing it, the errors that make it a 400, the `/approve` and `/revise` commands,
//! and the accessors of payload leaves that name the missing field by its whole path.

use chrono::{DateTime, Utc};
use serde_json::Value;
use shared::control::{ControlKind, ControlMessage};
use shared::task::{IssueRef, TASK_VERSION, TriggerInfo};
use shared::{RepoUrl, TaskMessage, Tracker};

/// What a verified delivery turns into.
#[derive(Debug)]
pub enum Normalized {
    /// A task to publish.
    Task(Box<TaskMessage>),
    /// A control message for every worker (`/cancel`): no task.
    Control(Box<ControlMessage>),
    /// Valid but not for us; the reason goes back in the 202 body and the logs.
    Ignored(&'static str),
    /// GitHub's `ping`.
    Ping,
}

/// A payload that cannot be a valid delivery of the event it claims to be (answers 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("malformed JSON: {0}")]
    Malformed(String),
    #[error("missing field `{0}`")]
    MissingField(String),
    #[error("invalid field `{field}`: {reason}")]
    InvalidField { field: String, reason: String },
}

/// Parses a tracker's payload into its typed projection (only what its `normalize` reads).
pub fn parse_payload<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, PayloadError> {
    serde_json::from_slice::<T>(body).map_err(|e| PayloadError::Malformed(e.to_string()))
}

/// The task id of a delivery: `<tracker>:<delivery id>`, stable across redeliveries of the
/// same delivery.
pub fn task_id(tracker: Tracker, delivery_id: &str) -> String {
    format!("{tracker}:{delivery_id}")
}

/// A leaf of a typed payload projection: missing or `null` is an error naming its path.
pub fn leaf<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a Value, PayloadError> {
    value
        .filter(|v| !v.is_null())
        .ok_or_else(|| PayloadError::MissingField(path.to_owned()))
}

pub fn str_leaf<'a>(value: Option<&'a Value>, path: &str) -> Result<&'a str, PayloadError> {
    leaf(value, path)?
        .as_str()
        .ok_or_else(|| invalid(path, "expected a string"))
}

pub fn u64_leaf(value: Option<&Value>, path: &str) -> Result<u64, PayloadError> {
    leaf(value, path)?
        .as_u64()
        .ok_or_else(|| invalid(path, "expected a non-negative integer"))
}

/// An id that trackers send as a number (GitHub) or a string (Jira), as a string.
pub fn id_leaf(value: Option<&Value>, path: &str) -> Result<String, PayloadError> {
    match leaf(value, path)? {
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err(invalid(path, "expected an id")),
    }
}

/// Optional text: absent, `null` or not a string is `None`.
pub fn opt_text(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str)
}

pub fn invalid(path: &str, reason: &str) -> PayloadError {
    PayloadError::InvalidField {
        field: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A command a human writes in a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Approve,
    /// `/revise <feedback>`; the feedback may span lines.
    Revise(String),
    /// `/code [text]`: a QuickFix, the text as the instruction.
    Code(String),
    /// `/plan [text]`: a plan, the text as the instruction.
    Plan(String),
    /// The comment mentions the agent: `DEFAULT_MODE`, the whole comment as the instruction.
    Mention(String),
    /// `/retry`: the issue's last mode again (the worker reads it from the status comment).
    Retry,
    /// `/cancel`: stop the issue's task, skip its queued ones.
    Cancel,
}

/// What a trigger asks for: a task, or a cancel of the issue's work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Task(Box<CommandTask>),
    Cancel { comment_id: String },
}

/// What a trigger asks for: the mode, and the approval, revision or instruction the task
/// carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTask {
    pub mode: shared::Mode,
    pub approval: Option<shared::task::Approval>,
    pub revision: Option<shared::task::Revision>,
    pub instruction: Option<String>,
    /// The comment the trigger is (for the worker's acknowledgement).
    pub comment_id: Option<String>,
    /// `/retry`: the worker runs the issue's last mode again.
    pub retry: Option<shared::task::RetryRequest>,
    /// `followup` of a review.
    pub review: Option<shared::task::ReviewRef>,
    /// `fixci` of a failed check suite.
    pub checks: Option<shared::task::ChecksRef>,
}

impl Request {
    /// A task of `task`.
    pub fn task(task: CommandTask) -> Self {
        Request::Task(Box::new(task))
    }
}

impl CommandTask {
    /// A task of `mode` with nothing more (a label, an assignment).
    pub fn plain(mode: shared::Mode) -> Self {
        Self {
            mode,
            approval: None,
            revision: None,
            instruction: None,
            comment_id: None,
            retry: None,
            review: None,
            checks: None,
        }
    }

    pub fn instructed(mode: shared::Mode, text: &str) -> Self {
        Self {
            instruction: instruction(text),
            ..Self::plain(mode)
        }
    }
}

/// A comment's text as an instruction: trimmed, `None` when empty, capped at
/// [`shared::task::MAX_INSTRUCTION_BYTES`] on a character boundary.
pub fn instruction(text: &str) -> Option<String> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut end = text.len().min(shared::task::MAX_INSTRUCTION_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_owned())
}

/// The task a command comment asks for, given `default_mode` (for a mention). A `/revise`
/// without feedback asks for nothing (the reason is returned).
pub fn command_task(
    command: Command,
    comment_id: String,
    author: &str,
    default_mode: shared::Mode,
) -> Result<Request, &'static str> {
    if command == Command::Cancel {
        return Ok(Request::Cancel { comment_id });
    }
    let task = command_fields(command, comment_id.clone(), author, default_mode)?;
    Ok(Request::Task(Box::new(CommandTask {
        comment_id: Some(comment_id),
        ..task
    })))
}

fn command_fields(
    command: Command,
    comment_id: String,
    author: &str,
    default_mode: shared::Mode,
) -> Result<CommandTask, &'static str> {
    match command {
        Command::Approve => Ok(CommandTask {
            approval: Some(shared::task::Approval {
                comment_id,
                approver: author.to_owned(),
            }),
            ..CommandTask::plain(shared::Mode::Implement)
        }),
        Command::Revise(feedback) if feedback.is_empty() => Err("/revise without feedback"),
        Command::Revise(feedback) => Ok(CommandTask {
            revision: Some(shared::task::Revision {
                comment_id,
                feedback,
                requested_by: author.to_owned(),
            }),
            ..CommandTask::plain(shared::Mode::Plan)
        }),
        Command::Code(text) => Ok(CommandTask::instructed(shared::Mode::Quickfix, &text)),
        Command::Plan(text) => Ok(CommandTask::instructed(shared::Mode::Plan, &text)),
        // An implement needs an approval: a mention never implements by itself.
        Command::Mention(text) if default_mode == shared::Mode::Implement => {
            Ok(CommandTask::instructed(shared::Mode::Quickfix, &text))
        }
        Command::Mention(text) => Ok(CommandTask::instructed(default_mode, &text)),
        // The worker runs the issue's last mode; this one only when it finds none (never
        // implement: that needs an approval).
        Command::Retry => Ok(CommandTask {
            retry: Some(shared::task::RetryRequest {
                comment_id,
                requested_by: author.to_owned(),
            }),
            ..CommandTask::plain(match default_mode {
                shared::Mode::Plan => shared::Mode::Plan,
                _ => shared::Mode::Quickfix,
            })
        }),
        Command::Cancel => Err("/cancel is not a task"),
    }
}

/// Recognises a command at the start of a comment (after leading blanks). `/approved` or
/// `/codes` are not commands: the word must end there. Mentions are the caller's to find
/// (they depend on the tracker): see [`mentions_login`].
pub fn parse_command(body: &str) -> Option<Command> {
    let text = body.trim_start();
    let word_ends = |rest: &str| rest.chars().next().is_none_or(|c| !c.is_alphanumeric());
    let after = |word: &str| {
        text.strip_prefix(word)
            .filter(|rest| word_ends(rest))
            .map(|rest| rest.trim().to_owned())
    };
    if after("/approve").is_some() {
        return Some(Command::Approve);
    }
    if let Some(rest) = after("/revise") {
        return Some(Command::Revise(rest));
    }
    if let Some(rest) = after("/code") {
        return Some(Command::Code(rest));
    }
    if let Some(rest) = after("/plan") {
        return Some(Command::Plan(rest));
    }
    if after("/retry").is_some() {
        return Some(Command::Retry);
    }
    if after("/cancel").is_some() {
        return Some(Command::Cancel);
    }
    None
}

/// What every message built from a delivery shares, whichever it becomes.
#[derive(Debug, Clone)]
pub struct Origin {
    pub source: Tracker,
    pub delivery_id: String,
    /// `issues.labeled`, `pull_request_review.submitted`, `comment_created`, ...
    pub event: String,
    pub received_at: DateTime<Utc>,
    pub repo_url: RepoUrl,
    pub issue: IssueRef,
    pub trigger_user: String,
}

/// The task message or the control message a request becomes.
pub fn message(origin: Origin, request: Request) -> Normalized {
    let id = task_id(origin.source, &origin.delivery_id);
    match request {
        Request::Cancel { comment_id } => Normalized::Control(Box::new(ControlMessage {
            kind: ControlKind::Cancel,
            issue_key: origin.issue.key.clone(),
            requested_by: origin.trigger_user,
            cancel_id: id,
            requested_at: origin.received_at,
            source: origin.source,
            repo_url: origin.repo_url,
            issue: origin.issue,
            comment_id: Some(comment_id),
        })),
        Request::Task(task) => Normalized::Task(Box::new(TaskMessage {
            version: TASK_VERSION,
            task_id: id,
            mode: task.mode,
            source: origin.source,
            repo_url: origin.repo_url,
            base_branch: None,
            issue: origin.issue,
            trigger_user: origin.trigger_user,
            trigger: TriggerInfo {
                event: origin.event,
                delivery_id: origin.delivery_id,
                received_at: origin.received_at,
                comment_id: task.comment_id,
            },
            approval: task.approval,
            revision: task.revision,
            instruction: task.instruction,
            review: task.review,
            checks: task.checks,
            retry: task.retry,
        })),
    }
}

/// Whether `body` mentions `@login` (a GitHub login; an App's `[bot]` suffix is not part
/// of how people write it) as a whole word, outside code spans and blocks.
pub fn mentions_login(body: &str, login: &str) -> bool {
    let name = login.strip_suffix("[bot]").unwrap_or(login);
    if name.is_empty() {
        return false;
    }
    let needle = format!("@{}", name.to_ascii_lowercase());
    let mut in_block = false;
    for line in body.lines() {
        if line.trim_start().starts_with("```") {
            in_block = !in_block;
            continue;
        }
        if in_block {
            continue;
        }
        // Text outside inline code spans (every other backtick-separated piece).
        for piece in line.split('`').step_by(2) {
            let lower = piece.to_ascii_lowercase();
            let mut from = 0;
            while let Some(found) = lower[from..].find(&needle) {
                let start = from + found;
                let end = start + needle.len();
                let before_ok = lower[..start]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_'));
                let after_ok = lower[end..]
                    .chars()
                    .next()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_'));
                if before_ok && after_ok {
                    return true;
                }
                from = end;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn commands_are_recognised_only_at_the_start_as_whole_words() {
        assert_eq!(parse_command("/approve"), Some(Command::Approve));
        assert_eq!(
            parse_command("  \n/approve looks good"),
            Some(Command::Approve)
        );
        assert_eq!(parse_command("/approve."), Some(Command::Approve));
        assert_eq!(parse_command("/approved"), None);
        assert_eq!(parse_command("please /approve"), None);
        assert_eq!(
            parse_command("/revise use the retry helper\nand log it"),
            Some(Command::Revise("use the retry helper\nand log it".into()))
        );
        assert_eq!(
            parse_command("/revise"),
            Some(Command::Revise(String::new()))
        );
        assert_eq!(parse_command("/revisex"), None);
        assert_eq!(
            parse_command("/code use Decimal here"),
            Some(Command::Code("use Decimal here".into()))
        );
        assert_eq!(parse_command("/code"), Some(Command::Code(String::new())));
        assert_eq!(parse_command("/codes"), None);
        assert_eq!(
            parse_command("/plan\nsplit it in two"),
            Some(Command::Plan("split it in two".into()))
        );
        assert_eq!(parse_command("/planned"), None);
        assert_eq!(parse_command("/retry"), Some(Command::Retry));
        assert_eq!(parse_command(" /retry please"), Some(Command::Retry));
        assert_eq!(parse_command("/retrying"), None);
        assert_eq!(parse_command("/cancel"), Some(Command::Cancel));
        assert_eq!(parse_command("/cancel!"), Some(Command::Cancel));
        assert_eq!(parse_command("/cancelled"), None);
    }

    #[test]
    fn mentions_are_whole_logins_outside_code() {
        let agent = "fleet-agent[bot]";
        assert!(mentions_login("@fleet-agent please fix", agent));
        assert!(mentions_login("Hey @Fleet-Agent, look", agent));
        assert!(mentions_login("cc @fleet-agent", "fleet-agent"));
        assert!(
            !mentions_login("@fleet-agents fix", agent),
            "a longer login"
        );
        assert!(!mentions_login("@fleet-agent-2 fix", agent));
        assert!(!mentions_login("mail me at x@fleet-agent", agent));
        assert!(!mentions_login("run `@fleet-agent` literally", agent));
        assert!(!mentions_login("```\n@fleet-agent\n```", agent));
        assert!(
            !mentions_login("@fleet-agent", "[bot]"),
            "an empty login never matches"
        );
    }

    #[test]
    fn instructions_are_trimmed_capped_and_never_empty() {
        assert_eq!(instruction("  \n "), None);
        assert_eq!(instruction(" use cents\n").as_deref(), Some("use cents"));
        let long = "é".repeat(shared::task::MAX_INSTRUCTION_BYTES);
        let capped = instruction(&long).expect("text");
        assert!(capped.len() <= shared::task::MAX_INSTRUCTION_BYTES);
        assert!(capped.chars().all(|c| c == 'é'));
        let asked =
            |command| match command_task(command, "1".into(), "dev1", shared::Mode::Implement) {
                Ok(Request::Task(task)) => task,
                other => panic!("a task: {other:?}"),
            };
        let mention = asked(Command::Mention("@a do it".into()));
        assert_eq!(
            mention.mode,
            shared::Mode::Quickfix,
            "a mention never implements"
        );
        let retry = asked(Command::Retry);
        assert_eq!(retry.mode, shared::Mode::Quickfix, "nor does a retry");
        assert_eq!(retry.retry.expect("retry").requested_by, "dev1");
        assert_eq!(
            command_task(Command::Cancel, "5".into(), "dev1", shared::Mode::Plan),
            Ok(Request::Cancel {
                comment_id: "5".into()
            })
        );
    }

    #[test]
    fn accessors_name_the_missing_path() {
        let v = json!({"a": {"b": "x", "n": 3, "nul": null}});
        let at = |key: &str| v["a"].get(key);
        assert_eq!(str_leaf(at("b"), "a.b"), Ok("x"));
        assert_eq!(u64_leaf(at("n"), "a.n"), Ok(3));
        assert_eq!(id_leaf(at("n"), "a.n"), Ok("3".to_owned()));
        assert_eq!(
            str_leaf(at("c"), "a.c"),
            Err(PayloadError::MissingField("a.c".into()))
        );
        assert_eq!(
            str_leaf(at("nul"), "a.nul"),
            Err(PayloadError::MissingField("a.nul".into()))
        );
        assert!(matches!(
            str_leaf(at("n"), "a.n"),
            Err(PayloadError::InvalidField { .. })
        ));
    }
}
