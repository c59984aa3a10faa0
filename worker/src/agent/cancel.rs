//! `/cancel` on the issue's side: the report of a task the runtime stopped, and the cancel
//! recorded by the worker that took it from the durable queue (when the report is not
//! there: nothing was running). Both write the status comment: "cancelled by @x", the
//! cancel's marker (kept by every later rewrite, so a task of the issue asked for before it
//! is skipped when it starts, see [`super::Agent`]'s `run_task`) and the task line of the
//! issue's last task (so `/retry` still finds its mode). The control message is trusted
//! like a task message: only the ingest publishes on the control exchange, after the same
//! author rules as `/approve`.

use super::Agent;
use super::session::{IssueSession, readable_user};
use super::status::{CancelMark, Prior, State};
use crate::runtime::handler::TaskError;
use shared::control::ControlMessage;
use shared::task::TriggerInfo;
use shared::{Mode, TaskMessage, Tracker};

/// The stopped `task`'s report (best effort: the runtime bounds it, a failure is logged).
pub async fn report(agent: &Agent, task: &TaskMessage, cancel: &ControlMessage) {
    let reported = async {
        let mut session = IssueSession::open(agent, task).await?;
        let prior = session.prior().await?;
        show(&mut session, cancel, &prior, true).await
    };
    match reported.await {
        Ok(()) => tracing::info!("the cancel is on the issue"),
        Err(error) => tracing::warn!(?error, "cannot report the cancel on the issue"),
    }
}

/// Records `cancel` on the issue unless it (or a newer cancel) is there already, and
/// acknowledges the `/cancel` comment.
pub async fn record(agent: &Agent, cancel: &ControlMessage) -> Result<(), TaskError> {
    let task = cancel_task(cancel);
    let mut session = IssueSession::open(agent, &task).await?;
    if let Some(comment_id) = &cancel.comment_id {
        session.publisher.acknowledge(comment_id).await;
    }
    let prior = session.prior().await?;
    let mark = CancelMark::of(cancel);
    if let Some(kept) = &prior.cancel
        && (kept.id == mark.id || kept.at > mark.at)
    {
        tracing::info!("the status comment has this cancel (or a newer one) already");
        return Ok(());
    }
    show(&mut session, cancel, &prior, false).await
}

/// Writes `cancel` onto the status comment: "cancelled by @x", its marker, and what
/// it stopped (`running`: this session's task; else nothing ran, and a task of the issue
/// still queued will be skipped). The task line of `prior` is kept when it is not this
/// session's task (a `/retry` still finds the last mode).
pub async fn show(
    session: &mut IssueSession<'_>,
    cancel: &ControlMessage,
    prior: &Prior,
    running: bool,
) -> Result<(), TaskError> {
    let mark = CancelMark::of(cancel);
    let by = cancelled_by(cancel, &mark);
    // The running task's own status (it may be a retry: its resolved mode is there).
    let its_own = running && (prior.last.as_ref()).is_some_and(|l| l.id == session.task.task_id);
    if let Some(line) = &prior.last
        && (its_own || !running)
    {
        session.status.resume(line);
        session.status.task_id.clone_from(&line.id);
    } else if !running {
        // Nothing ran before either: no mode for a retry to take.
        session.status.mode.clear();
    } else if session.task.retry.is_some()
        && let Some(line) = &prior.last
    {
        // A retry stopped before its first status write: the mode (and approval, review or
        // check suite) it retried stays for the next `/retry`, not the message's fallback.
        session.status.resume(line);
    }
    session.status.done = if its_own { prior.checked } else { 0 };
    session.status.state = State::Cancelled(by);
    session.status.keep_cancel(mark);
    session.status.notes = vec![if running {
        "It was stopped while it ran and pushes nothing more (a push already under way when the cancel came may have reached the branch).".to_owned()
    } else {
        "Nothing was running when the cancel came; a task of this issue still queued is skipped when it starts.".to_owned()
    }];
    session.publish_status().await
}

/// Who cancelled, as the status comment says it. Only the characters of a login or
/// account id reach the comment. An operator's cancel through the API (its id `api:...`)
/// names the API token, which is no account of the tracker's: in a code span, never an
/// @-mention of whoever happens to have that login.
fn cancelled_by(cancel: &ControlMessage, mark: &CancelMark) -> String {
    if cancel.cancel_id.starts_with("api:") {
        return format!("the operator `{}` (operator API)", mark.by);
    }
    match cancel.source {
        Tracker::Github => readable_user(&cancel.requested_by),
        Tracker::Jira => format!("the Jira user {}", mark.by),
    }
}

/// The issue a cancel names, as a task of its own (no mode of its own runs): what a
/// session needs to open the issue and write its status comment.
fn cancel_task(cancel: &ControlMessage) -> TaskMessage {
    TaskMessage {
        version: shared::task::TASK_VERSION,
        task_id: cancel.cancel_id.clone(),
        mode: Mode::Quickfix,
        source: cancel.source,
        repo_url: cancel.repo_url.clone(),
        base_branch: None,
        issue: cancel.issue.clone(),
        trigger_user: cancel.requested_by.clone(),
        trigger: TriggerInfo {
            event: "cancel".into(),
            delivery_id: cancel.cancel_id.clone(),
            received_at: cancel.requested_at,
            comment_id: cancel.comment_id.clone(),
        },
        approval: None,
        revision: None,
        instruction: None,
        review: None,
        checks: None,
        retry: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancel(id: &str, by: &str, source: &str) -> ControlMessage {
        let json = serde_json::json!({
            "type": "cancel", "issue_key": "acme/payments#1", "requested_by": by,
            "cancel_id": id, "requested_at": "2026-12-03T10:00:00Z", "source": source,
            "repo_url": "https://github.com/acme/payments",
            "issue": {"tracker": source, "key": "acme/payments#1", "number": 1, "title": "t",
                      "url": "https://github.com/acme/payments/issues/1"}
        });
        ControlMessage::from_slice(json.to_string().as_bytes()).expect("cancel")
    }

    fn by(id: &str, who: &str, source: &str) -> String {
        let cancel = cancel(id, who, source);
        cancelled_by(&cancel, &CancelMark::of(&cancel))
    }

    #[test]
    fn a_comment_s_cancel_mentions_its_author_and_an_api_cancel_names_its_token() {
        assert_eq!(by("github:d1", "dev2", "github"), "@dev2");
        assert_eq!(by("jira:7", "5b10ac8d", "jira"), "the Jira user 5b10ac8d");
        // A token named like somebody's login mentions nobody, on either tracker.
        assert_eq!(
            by("api:0f3c", "alice", "github"),
            "the operator `alice` (operator API)"
        );
        assert_eq!(
            by("api:0f3c", "@oncall", "jira"),
            "the operator `@oncall` (operator API)"
        );
        assert_eq!(
            by("api:0f3c", "ops`<b>", "github"),
            "the operator `ops__b_` (operator API)",
            "nothing leaves the code span"
        );
    }
}
