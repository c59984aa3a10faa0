//! What both webhook sources share once a payload is verified and parsed: the outcome of
//! normalizing it, the errors that make it a 400, the `/approve` and `/revise` commands,
//! and the accessors of payload leaves that name the missing field by its whole path.

use serde_json::Value;
use shared::{TaskMessage, Tracker};

/// What a verified delivery turns into.
#[derive(Debug)]
pub enum Normalized {
    /// A task to publish.
    Task(Box<TaskMessage>),
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
}

/// What a command comment asks for: the mode, and the approval or revision the task
/// carries. A `/revise` without feedback asks for nothing (the reason is returned).
pub type CommandTask = (
    shared::Mode,
    Option<shared::task::Approval>,
    Option<shared::task::Revision>,
);

pub fn command_task(
    command: Command,
    comment_id: String,
    author: &str,
) -> Result<CommandTask, &'static str> {
    match command {
        Command::Approve => Ok((
            shared::Mode::Implement,
            Some(shared::task::Approval {
                comment_id,
                approver: author.to_owned(),
            }),
            None,
        )),
        Command::Revise(feedback) if feedback.is_empty() => Err("/revise without feedback"),
        Command::Revise(feedback) => Ok((
            shared::Mode::Plan,
            None,
            Some(shared::task::Revision {
                comment_id,
                feedback,
                requested_by: author.to_owned(),
            }),
        )),
    }
}

/// Recognises a command at the start of a comment (after leading blanks). `/approved` or
/// `/revisedly` are not commands: the word must end there.
pub fn parse_command(body: &str) -> Option<Command> {
    let text = body.trim_start();
    let word_ends = |rest: &str| rest.chars().next().is_none_or(|c| !c.is_alphanumeric());
    if let Some(rest) = text.strip_prefix("/approve") {
        return word_ends(rest).then_some(Command::Approve);
    }
    if let Some(rest) = text.strip_prefix("/revise") {
        return word_ends(rest).then(|| Command::Revise(rest.trim().to_owned()));
    }
    None
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
