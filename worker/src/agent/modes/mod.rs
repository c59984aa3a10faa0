//! The agent's modes, one module each: [`quickfix`] (issue → pull request), [`plan`]
//! (a plan comment and its draft PR, waiting for `/approve`), [`implement`] (the
//! approved plan carried out on its branch), [`followup`] (a review on the agent's PR
//! answered with a commit on top) and [`fixci`] (the agent's PR fixed after its CI failed);
//! the last two share [`on_pull`]. A mode is a script over the collaborators in
//! a [`Job`] (the issue session, the workspace, the LLM) with its own step enum, and
//! returns an [`Outcome`]; it publishes only through the session's publisher, so a dry run
//! needs nothing of it.
//!
//! To add a mode (`followup`, `fixci`, ...): a module here with `pub async fn run(job: &mut
//! Job<'_>) -> Result<Outcome, TaskError>` and its `Step` enum (a mode that edits and
//! opens a pull request reuses [`ChangeStep`]), and one arm in [`execute`].

pub mod fixci;
pub mod followup;
pub mod implement;
pub mod on_pull;
pub mod plan;
pub mod quickfix;

use super::Agent;
use super::checks::{self, ChecksReport};
use super::edit_loop::{self, Edited, Llm};
use super::publisher::{Draft, NewPull};
use super::repo_policy::RepoPolicy;
use super::session::IssueSession;
use super::workspace::Workspace;
use crate::adapters::github::PullRequest;
use crate::runtime::handler::TaskError;
use fleet_edits::Policy;
use fleet_llm::Usage;
use fleet_repo_config::OnFailure;
use shared::{Mode, TaskMessage};

/// Everything a mode works with.
#[derive(Debug)]
pub struct Job<'a> {
    pub agent: &'a Agent,
    pub task: &'a TaskMessage,
    pub session: IssueSession<'a>,
    pub workspace: Workspace,
    pub llm: Llm<'a>,
    /// The repository's `.agent-fleet.yml` (defaults until [`crate::agent::repo_policy::admit`] read it).
    pub repo: RepoPolicy,
}

/// How a mode ended (its failures are `TaskError`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// A pull request carries the change (its URL; `None` when nothing was published).
    PullRequest(Option<String>),
    /// A plan is posted and waits for approval.
    PlanPosted,
    /// This task's work was already on the tracker (a redelivery): nothing new was done.
    AlreadyDone,
}

/// What a mode did, for its caller to log or show.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub finished: Finished,
    /// The files the change touched.
    pub files_changed: usize,
    pub usage: Usage,
}

impl Outcome {
    fn new(job: &Job<'_>, finished: Finished, files_changed: usize) -> Self {
        Self {
            finished,
            files_changed,
            usage: job.session.spent.usage,
        }
    }
}

/// Runs the task's mode, once the run is authorized (the CLI's entry point too).
pub async fn execute(job: &mut Job<'_>) -> Result<Outcome, TaskError> {
    let result = match job.task.mode {
        Mode::Quickfix => quickfix::run(job).await,
        Mode::Plan => plan::run(job).await,
        Mode::Implement => implement::run(job).await,
        Mode::Followup => followup::run(job).await,
        Mode::Fixci => fixci::run(job).await,
    };
    // However the mode ended (a budget stop included), what it spent is the task's cost.
    job.llm.meter.task_cost(job.session.spent.cost_usd);
    result
}

/// Clones the repository (at `branch`, else its default branch) and returns the branch
/// checked out. Refused before cloning when the tracker reports the repository over
/// `CLONE_MAX_BYTES`; stopped while cloning when it grows past it; refused before any
/// LLM call when the agent's branch holds commits the agent did not write (the push
/// would have to drop them).
pub async fn clone(job: &Job<'_>, branch: Option<&str>) -> Result<String, TaskError> {
    let publisher = &job.session.publisher;
    publisher
        .check_size(job.workspace.clone_max_bytes())
        .await?;
    let current = job.workspace.clone(branch).await?;
    if current != job.workspace.branch() {
        publisher.check_branch(&job.workspace, &current).await?;
    }
    Ok(current)
}

/// Context selection for the issue's text and `extra_query`; the files chosen are shown
/// on the status comment.
pub async fn select_context(
    job: &mut Job<'_>,
    extra_query: &str,
) -> Result<fleet_context::Selection, TaskError> {
    let (title, body) = job.session.issue_text();
    let query = format!("{title}\n\n{body}\n\n{extra_query}");
    let selection = job
        .workspace
        .select_context(query, job.agent.settings.context_budget)
        .await?;
    job.session.status.context_files = selection.included.clone();
    Ok(selection)
}

/// A mode's prompt from `template`: the repository and the issue as the LLM may see it
/// (`repo`, `issue_key`, `issue_title`, `issue_body`), the requester's own words when the
/// task came from a comment (`instruction`), then the mode's own `values`.
pub fn issue_prompt(job: &Job<'_>, template: &str, values: &[(&str, &str)]) -> String {
    let (title, body) = job.session.issue_text();
    let instruction = job.session.instruction_section();
    let mut all = vec![
        ("repo", job.task.repo_url.full_name()),
        ("issue_key", job.task.issue.key.as_str()),
        ("issue_title", title.as_str()),
        ("issue_body", body.as_str()),
        ("instruction", instruction.as_str()),
    ];
    all.extend_from_slice(values);
    super::prompts::render(template, &all)
}

/// The steps of a mode that edits the repository and opens a pull request (QuickFix,
/// Implement), and the checklist line each ticks; the edit loop ticks `LLM` and `syntax`.
#[derive(Debug, Clone, Copy)]
pub enum ChangeStep {
    Cloned,
    Context,
    Pushed,
    PullRequest,
}

impl From<ChangeStep> for super::status::Step {
    fn from(step: ChangeStep) -> Self {
        use super::status::Step as Line;
        match step {
            ChangeStep::Cloned => Line::Cloned,
            ChangeStep::Context => Line::Context,
            ChangeStep::Pushed => Line::Pushed,
            ChangeStep::PullRequest => Line::Pr,
        }
    }
}

/// The edit policy, limited to `allowed_paths` when given (a plan's files).
pub fn policy(job: &Job<'_>, allowed_paths: Option<Vec<String>>) -> Policy {
    Policy {
        allow_workflow_edits: job.agent.settings.allow_workflow_edits,
        protected_paths: job.agent.settings.protected_paths.clone(),
        allowed_paths,
        ..Policy::default()
    }
}

/// The system prompt for the task's repository.
pub async fn system_prompt(job: &Job<'_>) -> Result<String, TaskError> {
    job.workspace
        .system_prompt(job.task.repo_url.full_name())
        .await
}

/// The edit loop for `prompt`, limited to `allowed_paths` when given (a plan's files).
pub async fn edit(
    job: &mut Job<'_>,
    prompt: String,
    allowed_paths: Option<Vec<String>>,
) -> Result<Edited, TaskError> {
    let system = system_prompt(job).await?;
    let policy = policy(job, allowed_paths);
    let editor = edit_loop::Editor {
        llm: &job.llm,
        workspace: &job.workspace,
        system: &system,
        policy: &policy,
    };
    edit_loop::edit(&mut job.session, editor, prompt).await
}

/// Runs the repository's checks on the edits ([`crate::agent::checks`]) and decides how
/// the pull request opens: ready when no new failure remains; a draft with the evidence
/// when some do and `on_failure: draft` (the default); with `on_failure: none` the task
/// ends here, nothing pushed, and the issue says why.
pub async fn verify(
    job: &mut Job<'_>,
    edited: Edited,
    allowed_paths: Option<Vec<String>>,
) -> Result<(Edited, ChecksReport, Draft), TaskError> {
    let (edited, report) = checks::verify(job, edited, allowed_paths).await?;
    if !report.failing {
        return Ok((edited, report, Draft::No));
    }
    let still = format!(
        "the checks still fail after {} repair round(s) ({})",
        report.rounds,
        report.failing_names.join(", ")
    );
    match job.repo.config.on_failure {
        OnFailure::Draft => {
            job.session.status.notes.push(format!(
                "{}: the pull request is a draft that shows the failures.",
                capitalized(&still)
            ));
            Ok((edited, report, Draft::Yes))
        }
        OnFailure::None => Err(TaskError::Permanent(format!(
            "{still}; no pull request was opened (`on_failure: none` in the repository's config)"
        ))),
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Opens (or updates) the pull request of the agent's branch, and shows it on the status
/// comment (not yet published).
pub async fn open_pull(
    job: &mut Job<'_>,
    base: &str,
    title: &str,
    body: &str,
    draft: Draft,
) -> Result<Option<PullRequest>, TaskError> {
    let pull = NewPull {
        branch: job.workspace.branch(),
        base,
        title,
        body,
        draft,
    };
    let pr = job.session.publisher.open_pull(pull).await?;
    let pr = match pr {
        Some(pr) => Some(keep_draft(job, pr, draft).await),
        None => None,
    };
    job.session.status.pr_url = pr.as_ref().map(|pr| pr.url.clone());
    if let Some(pr) = &pr {
        job.llm.meter.pull_request(pr.number, &pr.url);
    }
    Ok(pr)
}

/// A pull request that must be a draft (its checks fail) but was open and ready before
/// (an earlier run's): turned back into a draft.
pub async fn keep_draft(job: &mut Job<'_>, mut pr: PullRequest, draft: Draft) -> PullRequest {
    if matches!(draft, Draft::Yes) && !pr.draft {
        let note = job.session.publisher.mark_draft(&pr).await;
        pr.draft = note.is_none();
        job.session.status.notes.extend(note);
    }
    pr
}

/// The PR body's token line: tokens, and the cost when `LLM_PRICES` prices the model.
pub fn usage_line(job: &Job<'_>) -> String {
    let spent = &job.session.spent;
    let cost = if spent.cost_usd > 0.0 {
        format!(" About ${:.4}.", spent.cost_usd)
    } else {
        String::new()
    };
    format!(
        "{} input, {} output tokens in {} LLM call(s).{cost}",
        spent.usage.input_tokens, spent.usage.output_tokens, spent.calls
    )
}

/// The changed files as a markdown list for a PR body.
pub fn files_list(files: &[fleet_edits::ChangedFile]) -> String {
    files
        .iter()
        .map(|f| {
            format!(
                "- `{}`{}",
                f.path,
                if f.previous.is_none() { " (new)" } else { "" }
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}
