//! What binds an `/approve` to a plan: the approval comment, its author and time, the
//! hash it names, the plan comment unedited and the issue's text unchanged since the plan
//! was written. Used by [`super::modes::implement`] before anything is cloned.

use super::plan::{self, PostedPlan};
use super::session::IssueSession;
use crate::runtime::handler::TaskError;
use shared::Tracker;

/// The approval approves the newest plan as the agent posted it, for the issue as it was:
/// the `/approve` comment still exists, was written by the approver after the plan, names
/// that plan if it names one (`/approve <hash>`); the plan comment is unedited; the issue's
/// text is the one the plan was written for. Anything else is refused with what to do.
pub async fn bind_approval(
    session: &IssueSession<'_>,
    approval: &shared::task::Approval,
    comments: &[crate::adapters::thread::ThreadComment],
    newest: &PostedPlan,
) -> Result<(), TaskError> {
    // The approval may be on the issue or (GitHub) on the plan's pull request.
    let mut found = comments
        .iter()
        .find(|c| c.id == approval.comment_id)
        .map(|c| (c.created, c.id.clone(), c.text.clone(), c.author.clone()));
    if found.is_none() && session.task.issue.tracker == Tracker::Github {
        found = session
            .github
            .comment(&approval.comment_id)
            .await?
            .map(|c| (c.created_at, c.id, c.body, c.author));
    }
    let Some((created, id, text, author)) = found else {
        return Err(TaskError::Permanent(format!(
            "the `/approve` comment ({}) is gone (deleted?), so nothing approves plan v{}; reply `/approve` again to implement it",
            approval.comment_id, newest.version
        )));
    };
    // An author the tracker does not name (deleted, anonymous) cannot be the approver.
    if !crate::adapters::same_account(&author, &approval.approver) {
        return Err(TaskError::Permanent(format!(
            "the `/approve` comment ({id}) was not written by {}; reply `/approve` yourself to implement the plan",
            approval.approver
        )));
    }
    if !plan::is_newer(&created, &id, &newest.created, &newest.comment_id) {
        return Err(TaskError::Permanent(format!(
            "that approval is older than the newest plan (v{}); reply `/approve` again to implement it",
            newest.version
        )));
    }
    if newest.edited {
        return Err(TaskError::Permanent(format!(
            "plan v{} (`{}`) was edited after agent-fleet posted it, so it is not the plan that was reviewed; reply `/revise <feedback>` for a new version",
            newest.version, newest.hash
        )));
    }
    if let Some(named) = named_hash(&text)
        && !newest.hash.starts_with(&named)
    {
        return Err(TaskError::Permanent(format!(
            "that approval names plan `{named}`, which is not the newest plan (v{}, `{}`); reply `/approve {}` to implement the newest",
            newest.version, newest.hash, newest.hash
        )));
    }
    if let Some(recorded) = &newest.issue_hash
        && *recorded != plan::issue_hash(&session.issue.title, &session.issue.body)
    {
        return Err(TaskError::Permanent(format!(
            "the issue's text changed after plan v{} (`{}`) was written, so the plan may not fit it any more; reply `/revise <feedback>` for a plan of the current text, then `/approve` it",
            newest.version, newest.hash
        )));
    }
    Ok(())
}

/// The plan hash an approval names: `/approve <hex>` (at least 7 hex digits, as shown in
/// the plan's heading), or `None` for a plain `/approve`.
fn named_hash(text: &str) -> Option<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("/approve"))?;
    let word = line
        .trim_start_matches("/approve")
        .split_whitespace()
        .next()?;
    let word = word.trim_matches(|c: char| c == '`' || c == '(' || c == ')');
    (word.len() >= 7 && word.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| word.to_ascii_lowercase())
}
