//! `/retry`: the task a retry message stands for. The ingest cannot know the last
//! mode, so it sends `DEFAULT_MODE` with `retry` set; the worker reads the last mode (and
//! what that mode needs) from the task line of the agent's status comment and runs it
//! again under the retry's own task id. Nothing is granted by the retry itself:
//! - `implement` carries the `/approve` comment the earlier run carried out, and binds it
//!   to the newest plan again ([`super::approval::bind_approval`]: still there, by the
//!   approver, newer than the plan, plan and issue unchanged); the approver must still
//!   have write access, as the person who asked for the retry must;
//! - `followup` carries its review and `fixci` its check suite (the mode itself checks
//!   that they still apply, e.g. that the head did not move); a follow-up asked by a PR
//!   comment has no review to carry and is refused with what to do instead.
//!
//! No earlier task on the issue: the message's own mode runs.

use super::status::TaskLine;
use crate::runtime::handler::TaskError;
use shared::{Mode, TaskMessage};

/// The task `task` runs as: `None` when it is not a retry or nothing earlier is known
/// (then it runs as it is), else the task of the last mode.
pub fn resolve(
    task: &TaskMessage,
    last: Option<&TaskLine>,
) -> Result<Option<TaskMessage>, TaskError> {
    if task.retry.is_none() {
        return Ok(None);
    }
    let Some((line, mode)) = last.and_then(|l| l.mode.map(|m| (l, m))) else {
        tracing::info!(mode = %task.mode, "a retry with no earlier task on the issue; running the message's mode");
        return Ok(None);
    };
    let mut again = task.clone();
    again.mode = mode;
    match mode {
        Mode::Implement => {
            again.approval = Some(line.approval.clone().ok_or_else(|| {
                TaskError::Permanent(
                    "the last implementation's approval is not on record, so `/retry` cannot carry it; reply `/approve` to implement the plan again".into(),
                )
            })?);
        }
        Mode::Followup => {
            again.review = Some(line.review.clone().ok_or_else(|| {
                TaskError::Permanent(
                    "the last follow-up answered a comment on the pull request, not a review, so `/retry` has nothing to carry; mention the agent on the pull request again".into(),
                )
            })?);
        }
        Mode::Fixci => {
            again.checks = Some(line.checks.clone().ok_or_else(|| {
                TaskError::Permanent(
                    "the last CI fix's check suite is not on record, so `/retry` cannot carry it; re-run the failed checks to get a new fix".into(),
                )
            })?);
        }
        Mode::Quickfix | Mode::Plan => {}
    }
    tracing::info!(last_task = %line.id, mode = %mode, "a retry runs the issue's last mode again");
    Ok(Some(again))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::task::Approval;

    fn retry_task() -> TaskMessage {
        let json = serde_json::json!({
            "version": 1, "task_id": "github:retry-1", "mode": "quickfix", "source": "github",
            "repo_url": "https://github.com/acme/payments",
            "issue": {"tracker": "github", "key": "acme/payments#7", "number": 7,
                      "title": "t", "url": "https://github.com/acme/payments/issues/7"},
            "trigger_user": "dev2",
            "trigger": {"event": "issue_comment.created", "delivery_id": "d",
                        "received_at": "2026-12-03T10:00:00Z"},
            "retry": {"comment_id": "55", "requested_by": "dev2"}
        });
        TaskMessage::from_slice(json.to_string().as_bytes()).expect("task")
    }

    fn line(mode: Mode) -> TaskLine {
        TaskLine {
            id: "github:before".into(),
            state: "failed".into(),
            mode: Some(mode),
            ..TaskLine::default()
        }
    }

    #[test]
    fn the_last_mode_runs_with_what_it_needs() {
        let task = retry_task();
        let again = resolve(&task, Some(&line(Mode::Plan)))
            .expect("ok")
            .expect("retried");
        assert_eq!(
            (again.mode, again.task_id.as_str()),
            (Mode::Plan, "github:retry-1")
        );
        assert_eq!(resolve(&task, None).expect("ok"), None, "nothing earlier");
        let mut plain = task.clone();
        plain.retry = None;
        assert_eq!(resolve(&plain, Some(&line(Mode::Plan))).expect("ok"), None);

        let mut implement = line(Mode::Implement);
        assert!(matches!(
            resolve(&task, Some(&implement)),
            Err(TaskError::Permanent(_))
        ));
        implement.approval = Some(Approval {
            comment_id: "991".into(),
            approver: "dev1".into(),
        });
        let again = resolve(&task, Some(&implement))
            .expect("ok")
            .expect("retried");
        assert_eq!(again.approval, implement.approval);
        assert!(matches!(
            resolve(&task, Some(&line(Mode::Followup))),
            Err(TaskError::Permanent(_))
        ));
        assert!(matches!(
            resolve(&task, Some(&line(Mode::Fixci))),
            Err(TaskError::Permanent(_))
        ));
    }
}
