//! QuickFix: from a labeled issue straight to a pull request.

use super::{Finished, Job, Outcome};
use crate::adapters::git::Pushed;
use crate::agent::prompts;
use crate::agent::publisher::Push;
use crate::agent::status::State;
use crate::agent::workspace::Contents;
use crate::runtime::handler::TaskError;

/// QuickFix's steps: those of every mode that edits and opens a pull request.
pub type Step = super::ChangeStep;

pub async fn run(job: &mut Job<'_>) -> Result<Outcome, TaskError> {
    let task = job.task;
    let base = super::clone(job, job.workspace.base_branch()).await?;
    job.session.reach(Step::Cloned).await?;
    let selection = super::select_context(job, "").await?;
    job.session.reach(Step::Context).await?;
    let prompt = super::issue_prompt(
        job,
        prompts::QUICKFIX,
        &[
            ("context", &selection.context),
            ("edit_format", prompts::EDIT_FORMAT),
        ],
    );
    let edited = super::edit(job, prompt, None).await?;
    let (edited, checks, draft) = super::verify(job, edited, None).await?;
    let paths = edited.paths();
    let summary = if edited.summary.is_empty() {
        format!("Resolve {}", task.issue.key)
    } else {
        edited.summary.clone()
    };
    let message = format!(
        "{summary}\n\nProposed by agent-fleet for {} ({}).\n\nAgent-Task: {}",
        task.issue.key, task.issue.url, task.task_id
    );
    let publisher = job.session.publisher.clone();
    let pushed = publisher
        .push(Push {
            workspace: &job.workspace,
            contents: Contents::Files(&paths),
            message: &message,
        })
        .await?;
    if let Some(Pushed::Unchanged(_)) = pushed {
        job.session
            .status
            .notes
            .push("The branch already had these changes; nothing new was pushed.".into());
    }
    job.session.reach(Step::Pushed).await?;

    let title = format!("{} (agent-fleet)", task.issue.title.trim());
    let files = super::files_list(&edited.applied);
    let context = selection
        .included
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let usage = super::usage_line(job);
    let body = format!(
        "{summary}\n\n### Files changed\n{files}\n\n{}\n### Context used\n{context}\n\n### Token usage\n{usage}\n\n{}\n\n{}",
        checks.section,
        job.session.issue_reference(),
        job.session.pull_marker(),
    );
    let pr = super::open_pull(job, &base, &title, &body, draft).await?;
    let pr_url = pr.as_ref().map(|pr| pr.url.clone());
    job.session.status.state = State::Done;
    job.session.reach(Step::PullRequest).await?;
    if let Some(pr) = &pr {
        tracing::info!(pr = pr.number, url = %pr.url, "pull request ready");
    }
    Ok(Outcome::new(
        job,
        Finished::PullRequest(pr_url),
        edited.applied.len(),
    ))
}
