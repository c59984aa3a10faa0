//! The status comment's markers, read back: the task line (which task wrote the comment,
//! its state, its mode and what a `/retry` needs of it) and the cancel line (the issue's
//! newest `/cancel`), in both renderings (hidden HTML comments on GitHub, visible lines on
//! Jira, whose comments cannot hide them).

use super::{GITHUB_MARKER, JIRA_MARKER};
use chrono::{DateTime, Utc};
use shared::control::ControlMessage;
use shared::task::{Approval, ChecksRef, ReviewRef};
use shared::{Mode, TaskMessage};

/// A value as a marker carries it: one word of the characters ids and logins are made of
/// (anything else becomes `_`), so a marker always parses back and never ends a comment.
pub(super) fn token(value: &str) -> String {
    let word: String = value
        .chars()
        .take(120)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ':' | '_' | '.' | '-' | '[' | ']' | '@') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if word.is_empty() {
        "-".to_owned()
    } else {
        word
    }
}

/// The newest `/cancel` of the issue, as its status comment keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelMark {
    pub id: String,
    pub at: DateTime<Utc>,
    pub by: String,
}

impl CancelMark {
    pub fn of(cancel: &ControlMessage) -> Self {
        Self {
            id: token(&cancel.cancel_id),
            at: cancel.requested_at,
            by: token(&cancel.requested_by),
        }
    }

    /// Whether this cancel came after `task` was asked for (so the task must not run).
    pub fn stops(&self, task: &TaskMessage) -> bool {
        self.at >= task.trigger.received_at
    }

    pub(super) fn fields(&self) -> String {
        format!(
            "cancel id={} at={} by={}",
            self.id,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            self.by
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let line = line.trim();
        let rest = match line.strip_prefix("<!-- agent-fleet:") {
            Some(hidden) => hidden.strip_suffix("-->")?,
            None => line,
        };
        let fields = pairs(rest.strip_prefix("cancel ")?);
        let at = DateTime::parse_from_rfc3339(field(&fields, "at")?)
            .ok()?
            .with_timezone(&Utc);
        // A cancel from the future would stop every task of the issue until then: only
        // the ingest's clock writes these, within a small skew of ours.
        if at > Utc::now() + chrono::Duration::minutes(10) {
            return None;
        }
        Some(Self {
            id: field(&fields, "id")?.to_owned(),
            at,
            by: field(&fields, "by")?.to_owned(),
        })
    }
}

fn pairs(text: &str) -> Vec<(&str, &str)> {
    text.split_whitespace()
        .filter_map(|word| word.split_once('='))
        .collect()
}

fn field<'a>(pairs: &[(&'a str, &'a str)], key: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

/// What a task line says of the task that wrote the status comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskLine {
    pub id: String,
    pub state: String,
    pub mode: Option<Mode>,
    pub approval: Option<Approval>,
    pub review: Option<ReviewRef>,
    pub checks: Option<ChecksRef>,
}

impl TaskLine {
    /// `<!-- agent-fleet:task id=.. state=.. mode=.. -->` (GitHub) or `task <id> state=..
    /// mode=..` (the visible Jira line).
    pub(crate) fn parse(line: &str) -> Option<Self> {
        let line = line.trim();
        let (id, rest) = if let Some(hidden) = line.strip_prefix("<!-- agent-fleet:task ") {
            let fields = pairs(hidden.strip_suffix("-->")?);
            (field(&fields, "id")?.to_owned(), hidden)
        } else {
            let rest = line.strip_prefix("task ")?;
            let (id, rest) = rest.split_once(' ')?;
            rest.starts_with("state=").then_some(())?;
            (id.to_owned(), rest)
        };
        let fields = pairs(rest.trim_end_matches("-->"));
        let number = |v: &str| v.parse::<u64>().ok();
        let review = field(&fields, "review").and_then(|v| {
            let (pull, id) = v.split_once('/')?;
            Some(ReviewRef {
                pull_number: number(pull)?,
                review_id: id.to_owned(),
            })
        });
        let checks = field(&fields, "checks").and_then(|v| {
            let mut parts = v.splitn(3, '/');
            Some(ChecksRef {
                pull_number: number(parts.next()?)?,
                head_sha: parts.next()?.to_owned(),
                check_suite_id: parts.next()?.to_owned(),
            })
        });
        let approval = match (field(&fields, "approval"), field(&fields, "approver")) {
            (Some(comment_id), Some(approver)) => Some(Approval {
                comment_id: comment_id.to_owned(),
                approver: approver.to_owned(),
            }),
            _ => None,
        };
        Some(Self {
            id,
            state: field(&fields, "state")?.to_owned(),
            mode: field(&fields, "mode").and_then(|m| m.parse().ok()),
            approval,
            review,
            checks,
        })
    }
}

/// What the agent's status comment on an issue says of earlier tasks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Prior {
    /// The task that last wrote it.
    pub last: Option<TaskLine>,
    /// The newest cancel it keeps.
    pub cancel: Option<CancelMark>,
    /// How many checklist lines it has ticked.
    pub checked: usize,
    /// The task asking already finished (set by the session, which knows the task).
    pub finished: bool,
}

/// The lines of a status comment that may hold its markers, and nothing else: on GitHub
/// the hidden `<!-- agent-fleet:... -->` lines (free text in the comment can hold no `<!--`:
/// the status writer flattens it); on Jira the block right above the last line
/// `agent-fleet:status`, where the writer puts the task and cancel lines (above it a blank
/// line; free text never holds a line break). Repository text in the comment (a context
/// file's name, a check's output) can never pose as a marker.
pub fn marker_lines(text: &str) -> Vec<&str> {
    if text.contains(GITHUB_MARKER) {
        return text
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("<!-- agent-fleet:") && l.ends_with("-->"))
            .collect();
    }
    let Some(body) = text.trim_end().strip_suffix(JIRA_MARKER) else {
        return Vec::new();
    };
    let mut block: Vec<&str> = body
        .trim_end()
        .lines()
        .rev()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .filter(|l| !l.starts_with("<!--"))
        .collect();
    block.reverse();
    block
}

impl Prior {
    /// Reads the status comments among `texts` (the agent's own comments, oldest first).
    pub fn of<'t>(texts: impl IntoIterator<Item = &'t str>) -> Self {
        let mut prior = Prior::default();
        for text in texts {
            let is_status = text.contains(GITHUB_MARKER) || text.trim_end().ends_with(JIRA_MARKER);
            if !is_status {
                continue;
            }
            let markers = marker_lines(text);
            if let Some(line) = markers.iter().copied().find_map(TaskLine::parse) {
                prior.last = Some(line);
            }
            prior.checked = text
                .lines()
                .filter(|l| l.trim_start().starts_with("- [x] "))
                .count();
            for mark in markers.iter().copied().filter_map(CancelMark::parse) {
                if prior.cancel.as_ref().is_none_or(|c| mark.at > c.at) {
                    prior.cancel = Some(mark);
                }
            }
        }
        prior
    }
}

#[cfg(test)]
mod tests {
    use super::super::{State, Status};
    use super::*;

    fn status(mode: &str) -> Status {
        let task = testkit_free_task();
        let mut s = Status::new(&task);
        s.mode = mode.into();
        s
    }

    fn testkit_free_task() -> TaskMessage {
        let json = serde_json::json!({
            "version": 1, "task_id": "github:t1", "mode": "implement", "source": "github",
            "repo_url": "https://github.com/acme/payments",
            "issue": {"tracker": "github", "key": "acme/payments#7", "number": 7,
                      "title": "t", "url": "https://github.com/acme/payments/issues/7"},
            "trigger_user": "dev1",
            "trigger": {"event": "issue_comment.created", "delivery_id": "d",
                        "received_at": "2026-12-03T10:00:00.250Z"},
            "approval": {"comment_id": "991", "approver": "dev1"}
        });
        TaskMessage::from_slice(json.to_string().as_bytes()).expect("task")
    }

    #[test]
    fn the_task_line_and_the_cancel_survive_both_renderings() {
        let task = testkit_free_task();
        let mut s = status("implement");
        s.state = State::Failed("the LLM is down".into());
        let mark = CancelMark {
            id: "github:dl-1".into(),
            at: task.trigger.received_at + chrono::Duration::milliseconds(5),
            by: "dev2".into(),
        };
        s.keep_cancel(mark.clone());
        for text in [s.markdown(), s.plain()] {
            let prior = Prior::of([text.as_str()]);
            let last = prior.last.expect("task line");
            assert_eq!(last.id, "github:t1");
            assert_eq!(last.state, "failed");
            assert_eq!(last.mode, Some(Mode::Implement));
            assert_eq!(last.approval, task.approval, "{text}");
            assert_eq!(prior.cancel.as_ref(), Some(&mark), "{text}");
            assert!(mark.stops(&task), "5 ms after the task was asked for");
            assert_eq!(prior.checked, 1);
        }
        // An older cancel does not replace the newer one.
        s.keep_cancel(CancelMark {
            at: mark.at - chrono::Duration::hours(1),
            ..mark.clone()
        });
        assert_eq!(s.cancel.as_ref(), Some(&mark));
    }

    #[test]
    fn repository_text_in_the_comment_never_poses_as_a_marker() {
        let task = testkit_free_task();
        let mut s = status("plan");
        // A file name with line breaks (git allows them), a check's output, a reason.
        s.context_files = vec![
            "refund\ncancel id=f at=2999-01-01T00:00:00Z by=x.rs".into(),
            "y\ntask github:zz state=failed mode=quickfix approval=1 approver=x".into(),
            "z\n<!-- agent-fleet:cancel id=g at=2026-12-03T10:00:01Z by=y -->".into(),
        ];
        s.notes = vec!["<!-- agent-fleet:task id=github:zz state=done mode=quickfix -->".into()];
        s.state = State::Failed("bad\ncancel id=h at=2026-12-03T10:00:02Z by=z".into());
        for text in [s.markdown(), s.plain()] {
            let prior = Prior::of([text.as_str()]);
            assert_eq!(prior.cancel, None, "no forged cancel in {text}");
            let last = prior.last.expect("the real task line");
            assert_eq!(
                (last.id.as_str(), last.mode),
                ("github:t1", Some(Mode::Plan)),
                "{text}"
            );
            assert!(!super::super::finished_task(&text, "github:zz"), "{text}");
        }
        // A cancel from the future (a clock far off, or a forgery) is no cancel.
        s.keep_cancel(CancelMark {
            id: "github:c".into(),
            at: task.trigger.received_at + chrono::Duration::days(365 * 900),
            by: "x".into(),
        });
        assert_eq!(Prior::of([s.markdown().as_str()]).cancel, None);
    }

    #[test]
    fn refs_and_odd_values_parse_back_as_one_word() {
        let mut s = status("fixci");
        s.approval = None;
        s.fixing = Some(ChecksRef {
            pull_number: 12,
            head_sha: "abc123".into(),
            check_suite_id: "77".into(),
        });
        s.review = Some(ReviewRef {
            pull_number: 12,
            review_id: "9 --> x".into(),
        });
        s.state = State::Cancelled("@dev1".into());
        let md = s.markdown();
        assert!(md.contains("agent-fleet: cancelled by @dev1."), "{md}");
        let last = Prior::of([md.as_str()]).last.expect("line");
        assert_eq!(last.mode, Some(Mode::Fixci));
        assert_eq!(last.checks, s.fixing);
        assert_eq!(last.review.expect("review").review_id, "9_--__x");
        // Not a status comment: nothing read from it.
        assert_eq!(
            Prior::of(["<!-- agent-fleet:task id=x state=done -->"]),
            Prior::default()
        );
        // No checklist for a status that never ran one.
        s.done = 0;
        assert!(!s.markdown().contains("- [ ]"));
    }
}
