//! Plan: post a plan (a new version for `/revise`), open the draft PR on the agent's
//! branch, and wait for `/approve` (which starts [`super::implement`]).

use super::{Finished, Job, Outcome};
use crate::adapters::thread::ThreadComment;
use crate::agent::plan::{self, Plan, PostedPlan};
use crate::agent::prompts;
use crate::agent::publisher::{Draft, Note, Push};
use crate::agent::status::{State, Step as Line};
use crate::agent::workspace::{Contents, blocking};
use crate::runtime::handler::TaskError;
use fleet_llm::{Message, Phase};

/// Plan's steps, and the checklist line each ticks (the line after `LLM` reads `syntax`
/// on every mode: for a plan it means the plan was checked against the repository).
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Cloned,
    Context,
    Planned,
    Validated,
    Pushed,
    DraftPullRequest,
}

impl From<Step> for Line {
    fn from(step: Step) -> Line {
        match step {
            Step::Cloned => Line::Cloned,
            Step::Context => Line::Context,
            Step::Planned => Line::Llm,
            Step::Validated => Line::Syntax,
            Step::Pushed => Line::Pushed,
            Step::DraftPullRequest => Line::Pr,
        }
    }
}

/// The thread's comments and the newest plan the agent itself posted there (only its own
/// account's comments count).
pub async fn newest_plan(
    job: &Job<'_>,
) -> Result<(Vec<ThreadComment>, Option<PostedPlan>), TaskError> {
    let comments = job.session.thread.comments().await?;
    let newest = plan::posted(&comments, &job.session.agent_account).pop();
    Ok((comments, newest))
}

pub async fn run(job: &mut Job<'_>) -> Result<Outcome, TaskError> {
    let task = job.task;
    let (comments, previous) = newest_plan(job).await?;
    if plan::posted_by_task(&comments, &task.task_id, &job.session.agent_account) {
        tracing::info!("the plan of this task is already posted (redelivery)");
        job.session.status.state = State::WaitingForApproval;
        job.session.publish_status().await?;
        return Ok(Outcome::new(job, Finished::AlreadyDone, 0));
    }
    let base = super::clone(job, job.workspace.base_branch()).await?;
    job.session.reach(Step::Cloned).await?;
    let feedback = task
        .revision
        .as_ref()
        .map(|r| r.feedback.clone())
        .unwrap_or_default();
    let selection = super::select_context(job, &feedback).await?;
    job.session.reach(Step::Context).await?;
    let revision = match (&task.revision, &previous) {
        (Some(revision), Some(previous)) => format!(
            "\n## Revision requested\n\nThe current plan (v{}) is:\n\n{}\n\n@{} asks for changes: {}\n\nWrite a new plan that takes this feedback into account.\n",
            previous.version,
            previous.plan.to_json(),
            revision.requested_by,
            prompts::sanitize_issue_text(&revision.feedback)
        ),
        (Some(revision), None) => format!(
            "\n## Requested by the reviewer\n\n{}\n",
            prompts::sanitize_issue_text(&revision.feedback)
        ),
        _ => String::new(),
    };
    let prompt = super::issue_prompt(
        job,
        prompts::PLAN,
        &[("revision", &revision), ("context", &selection.context)],
    );
    let system = super::system_prompt(job).await?;
    let plan = ask_for_plan(job, &system, prompt).await?;
    let version = previous.as_ref().map_or(1, |p| p.version + 1);
    let hash = plan.hash();
    // What the plan was written for: an approval checks the issue still says it.
    let issue_hash = plan::issue_hash(&job.session.issue.title, &job.session.issue.body);
    job.session.reach(Step::Validated).await?;

    let publisher = job.session.publisher.clone();
    let message = format!(
        "agent-fleet: plan for {}\n\nPlan v{version}, hash {hash}.",
        task.issue.key
    );
    publisher
        .push(Push {
            workspace: &job.workspace,
            contents: Contents::Nothing,
            message: &message,
        })
        .await?;
    job.session.reach(Step::Pushed).await?;
    let pr_body = format!(
        "Draft: agent-fleet's plan v{version} for this issue. It is implemented on this branch after `/approve`.\n\n{}\n\n{}\n\n{}",
        plan.github_comment(version, &task.task_id, None)
            .lines()
            .filter(|l| !l.starts_with("<!--") && !l.starts_with('{') && *l != "-->")
            .collect::<Vec<_>>()
            .join("\n"),
        job.session.issue_reference(),
        job.session.pull_marker()
    );
    let title = format!("Plan: {} (agent-fleet)", job.session.issue.title.trim());
    let pr = super::open_pull(job, &base, &title, &pr_body, Draft::Yes).await?;
    let pr_url = pr.as_ref().map(|pr| pr.url.clone());
    job.session.reach(Step::DraftPullRequest).await?;

    let (text, json) = plan.jira_comment(version, &task.task_id, Some(&issue_hash));
    let note = Note {
        markdown: plan.github_comment(version, &task.task_id, Some(&issue_hash)),
        jira: shared::adf::document(&text, Some(("json", &json))),
    };
    publisher.comment(&note).await?;
    job.session.status.state = State::WaitingForApproval;
    job.session.status.notes = vec![format!(
        "Plan v{version} (`{hash}`) is posted below; draft PR: {}",
        pr_url.as_deref().unwrap_or("(not opened)")
    )];
    job.session.publish_status().await?;
    if let Some(pr) = &pr {
        tracing::info!(version, hash, pr = pr.number, "plan posted");
    }
    Ok(Outcome::new(job, Finished::PlanPosted, 0))
}

/// Asks for the plan, with one round to correct a plan that cannot be used.
async fn ask_for_plan(job: &mut Job<'_>, system: &str, prompt: String) -> Result<Plan, TaskError> {
    let mut messages = vec![Message::user(prompt)];
    let answer = job
        .llm
        .ask(
            &mut job.session.spent,
            Phase::Plan,
            system,
            messages.clone(),
        )
        .await?;
    job.session.reach(Step::Planned).await?;
    match validate(job, &answer).await? {
        Ok(plan) => Ok(plan),
        Err(problem) => {
            tracing::info!(%problem, "asking for a corrected plan");
            messages.push(Message::assistant(answer));
            messages.push(Message::user(format!(
                "That plan cannot be used: {problem}\n\nAnswer again with one corrected JSON object of the same shape, and nothing else."
            )));
            let again = job
                .llm
                .ask(&mut job.session.spent, Phase::Repair, system, messages)
                .await?;
            validate(job, &again).await?.map_err(|p| {
                TaskError::Permanent(format!(
                    "the plan is still invalid after a repair round: {p}"
                ))
            })
        }
    }
}

/// The plan in `answer`, or what is wrong with it; the files it names are looked up in the
/// checkout off the runtime.
async fn validate(job: &Job<'_>, answer: &str) -> Result<Result<Plan, String>, TaskError> {
    let plan = match Plan::parse(answer) {
        Ok(plan) => plan,
        Err(problem) => return Ok(Err(problem)),
    };
    let repo = job.workspace.dir().to_path_buf();
    blocking("checking the plan's files", move || {
        let missing = plan.missing_files(&repo);
        if missing.is_empty() {
            Ok(plan)
        } else {
            Err(format!(
                "these files do not exist in the repository (say `new file` in `change` for files to create): {}",
                missing.join(", ")
            ))
        }
    })
    .await
}
