//! QuickFix: from a labeled issue straight to a pull request.

use super::{Finished, Job, Outcome};
use crate::agent::edit_loop;
use crate::agent::prompts;
use crate::agent::publisher::{Draft, NewPull};
use crate::agent::status::{State, Step as Line};
use crate::agent::workspace::Contents;
use crate::git::Pushed;
use crate::handler::TaskError;

/// QuickFix's steps, as its checklist shows them (the edit loop ticks `LLM` and `syntax`).
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Cloned,
    Context,
    Pushed,
    PullRequest,
}

impl From<Step> for Line {
    fn from(step: Step) -> Line {
        match step {
            Step::Cloned => Line::Cloned,
            Step::Context => Line::Context,
            Step::Pushed => Line::Pushed,
            Step::PullRequest => Line::Pr,
        }
    }
}

pub async fn run(job: &mut Job<'_>) -> Result<Outcome, TaskError> {
    let task = job.task;
    let base = super::clone(job, task.base_branch.as_deref()).await?;
    job.session.reach(Step::Cloned).await?;
    let selection = super::select_context(job, "").await?;
    job.session.reach(Step::Context).await?;
    let (title, body) = job.session.issue_text();
    let prompt = prompts::render(
        prompts::QUICKFIX,
        &[
            ("repo", task.repo_url.full_name()),
            ("issue_key", &task.issue.key),
            ("issue_title", &title),
            ("issue_body", &body),
            ("context", &selection.context),
            ("edit_format", prompts::EDIT_FORMAT),
        ],
    );
    let system = super::system_prompt(job).await?;
    let policy = super::policy(job, None);
    let edited = edit_loop::edit(
        &mut job.session,
        &job.llm,
        &job.workspace,
        &system,
        prompt,
        policy,
    )
    .await?;
    let paths: Vec<String> = edited.applied.iter().map(|f| f.path.clone()).collect();
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
        .push(&job.workspace, Contents::Files(&paths), &message)
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
    let usage = job.session.usage;
    let body = format!(
        "{summary}\n\n### Files changed\n{files}\n\n### Context used\n{context}\n\n### Token usage\n{} input, {} output tokens.\n\n{}\n\n{}",
        usage.input_tokens,
        usage.output_tokens,
        job.session.issue_reference(),
        job.session.pull_marker(),
    );
    let pr = publisher
        .open_pull(NewPull {
            branch: job.workspace.branch(),
            base: &base,
            title: &title,
            body: &body,
            draft: Draft::No,
        })
        .await?;
    let pr_url = pr.as_ref().map(|pr| pr.url.clone());
    job.session.status.pr_url = pr_url.clone();
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
