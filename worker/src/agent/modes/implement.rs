//! Implement: carry out the newest plan, approved by `/approve`, on the plan's branch, and
//! turn its draft PR into the implementation's pull request. What binds an approval to a
//! plan is in [`crate::agent::approval`].

use super::{Finished, Job, Outcome};
use crate::adapters::github::PullRequest;
use crate::agent::approval::bind_approval;
use crate::agent::checks::ChecksReport;
use crate::agent::prompts;
use crate::agent::publisher::{Draft, Push};
use crate::agent::status::State;
use crate::agent::workspace::{Contents, blocking};
use crate::runtime::handler::TaskError;

/// Implement's steps: those of every mode that edits and opens a pull request.
pub type Step = super::ChangeStep;

/// Pull request templates GitHub recognises, in its order of preference.
const PR_TEMPLATES: [&str; 5] = [
    ".github/pull_request_template.md",
    ".github/PULL_REQUEST_TEMPLATE.md",
    "pull_request_template.md",
    "PULL_REQUEST_TEMPLATE.md",
    "docs/pull_request_template.md",
];

/// GitHub itself ignores templates past this size; a bigger one is not a template.
const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

/// Plan files larger than this are left to the context selection (which excerpts).
const MAX_PLAN_FILE_BYTES: u64 = 60_000;

pub async fn run(job: &mut Job<'_>) -> Result<Outcome, TaskError> {
    let task = job.task;
    let approval = task
        .approval
        .clone()
        .ok_or_else(|| TaskError::Unsupported("an implement task without `approval`".into()))?;
    let (comments, newest) = super::plan::newest_plan(job).await?;
    let Some(newest) = newest else {
        return Err(TaskError::Permanent(
            "there is no plan to approve yet: add the plan label (or assign the issue to the agent) to get one, then reply `/approve`".into(),
        ));
    };
    bind_approval(&job.session, &approval, &comments, &newest).await?;
    job.llm.meter.audit(
        fleet_ledger::AuditKind::Approval,
        Some(&approval.approver),
        serde_json::json!({ "plan_hash": newest.hash, "plan_version": newest.version }),
    );
    let branch = job.workspace.branch().to_owned();
    super::clone(job, Some(&branch))
        .await
        .map_err(|error| match error {
            TaskError::Permanent(reason) => TaskError::Permanent(format!(
                "the plan's branch `{branch}` cannot be cloned: {reason}"
            )),
            other => other,
        })?;
    job.session.reach(Step::Cloned).await?;
    let trailer = format!("Plan-Hash: {}", newest.hash);
    let head_message = job.workspace.head_message().await?;
    let pr = job.session.github.open_pull_for(&branch).await?;
    if head_message.lines().any(|l| l.trim() == trailer) {
        tracing::info!(
            version = newest.version,
            "this plan version is already implemented; nothing new to do"
        );
        let status = &mut job.session.status;
        status.pr_url = pr.map(|p| p.url);
        status.reach(Step::PullRequest.into());
        status.state = State::Done;
        status.notes = vec![format!("Plan v{} is already implemented.", newest.version)];
        job.session.publish_status().await?;
        return Ok(Outcome::new(job, Finished::AlreadyDone, 0));
    }
    let plan_text = newest.plan.to_json();
    let paths = newest.plan.paths();
    let selection = super::select_context(
        job,
        &format!("{}\n{}", newest.plan.summary, paths.join("\n")),
    )
    .await?;
    job.session.reach(Step::Context).await?;
    let context = with_plan_files(job, selection.context, paths.clone()).await?;
    let prompt = super::issue_prompt(
        job,
        prompts::IMPLEMENT,
        &[
            ("plan_version", &newest.version.to_string()),
            ("plan", &plan_text),
            ("plan_files", &paths.join(", ")),
            ("context", &context),
            ("edit_format", prompts::EDIT_FORMAT),
        ],
    );
    let edited = super::edit(job, prompt, Some(paths.clone())).await?;
    // Read before the checks run: a check may rewrite the template.
    let template = pr_template(job).await?;
    let (edited, checks, draft) = super::verify(job, edited, Some(paths.clone())).await?;
    let changed = edited.paths();
    let message = format!(
        "{}\n\nImplements plan v{} for {} (approved by {}).\n\n{trailer}",
        if edited.summary.is_empty() {
            newest.plan.summary.clone()
        } else {
            edited.summary.clone()
        },
        newest.version,
        task.issue.key,
        approval.approver
    );
    let publisher = job.session.publisher.clone();
    publisher
        .push(Push {
            workspace: &job.workspace,
            contents: Contents::Files(&changed),
            message: &message,
        })
        .await?;
    job.session.reach(Step::Pushed).await?;

    let files = super::files_list(&edited.applied);
    let usage = super::usage_line(job);
    let pr_body = format!(
        "{}\n\n{}### Plan v{} (`{}`), approved by {}\n{}\n\n### Files changed\n{files}\n\n{}\n{}### Token usage\n{usage}\n\n{}\n\n{}",
        newest.plan.summary.trim(),
        if template.trim().is_empty() {
            String::new()
        } else {
            format!("{}\n\n", template.trim())
        },
        newest.version,
        newest.hash,
        approval.approver,
        newest
            .plan
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| format!("{}. {s}", i + 1))
            .collect::<Vec<_>>()
            .join("\n"),
        checks.section,
        expected_tests(&newest.plan.tests, &checks),
        job.session.issue_reference(),
        job.session.pull_marker(),
    );
    let title = format!("{} (agent-fleet)", job.session.issue.title.trim());
    let pr = match pr {
        Some(existing) => publisher
            .update_pull(existing.number, &title, &pr_body)
            .await?
            .map(|updated| {
                job.llm.meter.pull_request(updated.number, &updated.url);
                PullRequest {
                    draft: existing.draft,
                    node_id: existing.node_id,
                    ..updated
                }
            }),
        None => {
            let base = job
                .workspace
                .default_branch()
                .await
                .unwrap_or_else(|_| "main".into());
            super::open_pull(job, &base, &title, &pr_body, draft).await?
        }
    };
    // An implemented plan whose checks fail stays (or becomes again) a draft.
    let pr = match pr {
        Some(pr) => Some(super::keep_draft(job, pr, draft).await),
        None => None,
    };
    let ready_note = match &pr {
        // Failing checks keep the plan's draft a draft: the evidence is in its body.
        Some(_) if matches!(draft, Draft::Yes) => None,
        Some(pr) => {
            let tracker = task.issue.tracker;
            publisher.hand_over(pr, &approval, tracker).await
        }
        None => None,
    };
    let pr_url = pr.as_ref().map(|pr| pr.url.clone());
    let status = &mut job.session.status;
    status.pr_url = pr_url.clone();
    status.state = State::Done;
    // First, and with what the run noted so far (config warnings, failing checks).
    status.notes.insert(
        0,
        format!(
            "Implemented plan v{} (`{}`), approved by {}.",
            newest.version, newest.hash, approval.approver
        ),
    );
    status.notes.extend(ready_note);
    job.session.reach(Step::PullRequest).await?;
    if let Some(pr) = &pr {
        tracing::info!(pr = pr.number, version = newest.version, "plan implemented");
    }
    Ok(Outcome::new(
        job,
        Finished::PullRequest(pr_url),
        edited.applied.len(),
    ))
}

/// The repository's pull request template, read through the checkout boundary (a link such
/// as `.github/pull_request_template.md -> /proc/self/environ` is never followed), capped.
async fn pr_template(job: &Job<'_>) -> Result<String, TaskError> {
    let checkout = job.workspace.checkout();
    blocking("reading the pull request template", move || {
        PR_TEMPLATES
            .iter()
            .find_map(|t| checkout.read_prefix(t, MAX_TEMPLATE_BYTES).ok())
            .map(|prefix| prefix.text)
            .unwrap_or_default()
    })
    .await
}

/// The plan's existing files in full (they are what the edits must match), then the
/// selected context. Each is read through the checkout boundary: a plan naming
/// `docs/ref/environ` with `docs/ref -> /proc/self` reads nothing.
async fn with_plan_files(
    job: &Job<'_>,
    context: String,
    paths: Vec<String>,
) -> Result<String, TaskError> {
    let checkout = job.workspace.checkout();
    blocking("reading the plan's files", move || {
        let mut out = String::new();
        for path in &paths {
            match checkout.read_text(path, MAX_PLAN_FILE_BYTES) {
                Ok(text) if !context.contains(&format!("{path}\n```")) => {
                    out.push_str(&format!("{path}\n```\n{text}```\n\n"));
                }
                Ok(_) | Err(crate::checkout::Refused::Missing) => {}
                Err(refused) => tracing::info!(path, %refused, "a plan file was not read"),
            }
        }
        out.push_str(&context);
        out
    })
    .await
}

/// What the implement report says of the checks the plan expected to pass (its `tests`):
/// each check the plan names with its result, or, when it names none of them, how the
/// checks that ran ended. Empty when the plan expected nothing.
fn expected_tests(tests: &str, checks: &ChecksReport) -> String {
    let expected = tests.trim();
    if expected.is_empty() {
        return String::new();
    }
    let wanted = expected.to_lowercase();
    let named: Vec<String> = checks
        .results
        .iter()
        .filter(|(name, _)| wanted.contains(&name.to_lowercase()))
        .map(|(name, verdict)| format!("`{name}` {}", verdict.as_str()))
        .collect();
    let outcome = if !named.is_empty() {
        named.join(", ")
    } else if checks.results.is_empty() {
        "no check ran".to_owned()
    } else if checks.failing {
        format!("still failing: {}", checks.failing_names.join(", "))
    } else {
        "every check that ran passed".to_owned()
    };
    format!(
        "**The plan expected these tests to pass:** {}\n**Result:** {outcome}.\n\n",
        readable_line(expected)
    )
}

/// The plan's text on one line (it is the model's words, shown in a PR body).
fn readable_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
