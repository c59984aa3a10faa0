//! Plan mode: post a plan (a new version for `/revise`), open the draft PR on the agent's
//! branch, and wait for `/approve`; then Implement: carry out the newest plan on that branch.

use super::plan::{self, Plan, PostedPlan};
use super::prompts;
use super::run::{Failure, Run};
use super::status::State;
use crate::tracker::IssueThread;
use fleet_llm::{Message, Phase};
use shared::Tracker;

/// The thread's comments and the newest plan the agent itself posted there (only its own
/// account's comments count: `Run::agent_account`).
async fn newest_plan(
    run: &Run<'_>,
) -> Result<(Vec<crate::tracker::ThreadComment>, Option<PostedPlan>), Failure> {
    let comments = run.thread.comments().await?;
    let newest = plan::posted(&comments, &run.agent_account).pop();
    Ok((comments, newest))
}

pub async fn plan(run: &mut Run<'_>) -> Result<(), Failure> {
    let (comments, previous) = newest_plan(run).await?;
    if plan::posted_by_task(&comments, &run.task.task_id, &run.agent_account) {
        tracing::info!("the plan of this task is already posted (redelivery)");
        run.status.state = State::WaitingForApproval;
        return run.publish_status().await;
    }
    let base = run.clone_repo(run.task.base_branch.as_deref()).await?;
    run.step("cloned").await?;
    let feedback = run
        .task
        .revision
        .as_ref()
        .map(|r| r.feedback.clone())
        .unwrap_or_default();
    let selection = run.select_context(&feedback).await?;
    run.step("context").await?;
    let revision = match (&run.task.revision, &previous) {
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
    let (title, body) = run.issue_text();
    let prompt = prompts::render(
        prompts::PLAN,
        &[
            ("repo", run.task.repo_url.full_name()),
            ("issue_key", &run.task.issue.key),
            ("issue_title", &title),
            ("issue_body", &body),
            ("revision", &revision),
            ("context", &selection.context),
        ],
    );
    let system = run.system_prompt();
    let mut messages = vec![Message::user(prompt)];
    let answer = run.ask(Phase::Plan, &system, messages.clone()).await?;
    run.step("LLM").await?;
    let plan = match validate(run, &answer) {
        Ok(plan) => plan,
        Err(problem) => {
            tracing::info!(%problem, "asking for a corrected plan");
            messages.push(Message::assistant(answer));
            messages.push(Message::user(format!(
                "That plan cannot be used: {problem}\n\nAnswer again with one corrected JSON object of the same shape, and nothing else."
            )));
            let again = run.ask(Phase::Repair, &system, messages).await?;
            validate(run, &again).map_err(|p| {
                Failure::Permanent(format!(
                    "the plan is still invalid after a repair round: {p}"
                ))
            })?
        }
    };
    let version = previous.as_ref().map_or(1, |p| p.version + 1);
    let hash = plan.hash();
    // What the plan was written for: an approval checks the issue still says it.
    let issue_hash = plan::issue_hash(&run.issue_title, &run.issue_body);
    if run.dry_run {
        println!(
            "{}",
            plan.github_comment_for(version, &run.task.task_id, Some(&issue_hash))
        );
        return Ok(());
    }
    run.step("syntax").await?;

    let message = format!(
        "agent-fleet: plan for {}\n\nPlan v{version}, hash {hash}.",
        run.task.issue.key
    );
    run.commit_and_push(&[], &message, true).await?;
    run.step("pushed").await?;
    let pr_body = format!(
        "Draft: agent-fleet's plan v{version} for this issue. It is implemented on this branch after `/approve`.\n\n{}\n\n{}\n\n{}",
        plan.github_comment(version, &run.task.task_id)
            .lines()
            .filter(|l| !l.starts_with("<!--") && !l.starts_with('{') && *l != "-->")
            .collect::<Vec<_>>()
            .join("\n"),
        run.issue_reference(),
        run.pull_marker()
    );
    let title = format!("Plan: {} (agent-fleet)", run.issue_title.trim());
    let pr = run
        .github
        .open_or_update_pull(&run.branch.clone(), &base, &title, &pr_body, true)
        .await?;
    run.status.pr_url = Some(pr.url.clone());
    run.step("PR").await?;

    match &run.thread {
        IssueThread::Github { github, number } => {
            let body = plan.github_comment_for(version, &run.task.task_id, Some(&issue_hash));
            github.post_comment(*number, &body).await?;
        }
        IssueThread::Jira { jira, key } => {
            let (text, json) = plan.jira_comment_for(version, &run.task.task_id, Some(&issue_hash));
            jira.post_comment(key, shared::adf::document(&text, Some(("json", &json))))
                .await?;
        }
    }
    run.status.state = State::WaitingForApproval;
    run.status.notes = vec![format!(
        "Plan v{version} (`{hash}`) is posted below; draft PR: {}",
        pr.url
    )];
    run.publish_status().await?;
    tracing::info!(version, hash, pr = pr.number, "plan posted");
    Ok(())
}

fn validate(run: &Run<'_>, answer: &str) -> Result<Plan, String> {
    let plan = Plan::parse(answer)?;
    let missing = plan.missing_files(&run.repo_dir);
    if !missing.is_empty() {
        return Err(format!(
            "these files do not exist in the repository (say `new file` in `change` for files to create): {}",
            missing.join(", ")
        ));
    }
    Ok(plan)
}

/// The approval approves the newest plan as the agent posted it, for the issue as it was:
/// the `/approve` comment still exists, was written by the approver after the plan, names
/// that plan if it names one (`/approve <hash>`); the plan comment is unedited; the issue's
/// text is the one the plan was written for. Anything else is refused with what to do.
async fn bind_approval(
    run: &Run<'_>,
    approval: &shared::task::Approval,
    comments: &[crate::tracker::ThreadComment],
    newest: &PostedPlan,
) -> Result<(), Failure> {
    // The approval may be on the issue or (GitHub) on the plan's pull request.
    let mut found = comments
        .iter()
        .find(|c| c.id == approval.comment_id)
        .map(|c| (c.created, c.id.clone(), c.text.clone(), c.author.clone()));
    if found.is_none() && run.task.issue.tracker == Tracker::Github {
        found = run
            .github
            .comment(&approval.comment_id)
            .await?
            .map(|c| (c.created_at, c.id, c.body, c.author));
    }
    let Some((created, id, text, author)) = found else {
        return Err(Failure::Permanent(format!(
            "the `/approve` comment ({}) is gone (deleted?), so nothing approves plan v{}; reply `/approve` again to implement it",
            approval.comment_id, newest.version
        )));
    };
    if !author.is_empty() && !crate::tracker::github::same_account(&author, &approval.approver) {
        return Err(Failure::Permanent(format!(
            "the `/approve` comment ({id}) was not written by {}; reply `/approve` yourself to implement the plan",
            approval.approver
        )));
    }
    if !plan::is_newer(&created, &id, &newest.created, &newest.comment_id) {
        return Err(Failure::Permanent(format!(
            "that approval is older than the newest plan (v{}); reply `/approve` again to implement it",
            newest.version
        )));
    }
    if newest.edited {
        return Err(Failure::Permanent(format!(
            "plan v{} (`{}`) was edited after agent-fleet posted it, so it is not the plan that was reviewed; reply `/revise <feedback>` for a new version",
            newest.version, newest.hash
        )));
    }
    if let Some(named) = named_hash(&text)
        && !newest.hash.starts_with(&named)
    {
        return Err(Failure::Permanent(format!(
            "that approval names plan `{named}`, which is not the newest plan (v{}, `{}`); reply `/approve {}` to implement the newest",
            newest.version, newest.hash, newest.hash
        )));
    }
    if let Some(recorded) = &newest.issue_hash
        && *recorded != plan::issue_hash(&run.issue_title, &run.issue_body)
    {
        return Err(Failure::Permanent(format!(
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

/// Pull request templates GitHub recognises, in its order of preference.
const PR_TEMPLATES: [&str; 5] = [
    ".github/pull_request_template.md",
    ".github/PULL_REQUEST_TEMPLATE.md",
    "pull_request_template.md",
    "PULL_REQUEST_TEMPLATE.md",
    "docs/pull_request_template.md",
];

pub async fn implement(run: &mut Run<'_>) -> Result<(), Failure> {
    let approval = run
        .task
        .approval
        .clone()
        .ok_or_else(|| Failure::Unsupported("an implement task without `approval`".into()))?;
    let (comments, newest) = newest_plan(run).await?;
    let Some(newest) = newest else {
        return Err(Failure::Permanent(
            "there is no plan to approve yet: add the plan label (or assign the issue to the agent) to get one, then reply `/approve`".into(),
        ));
    };
    bind_approval(run, &approval, &comments, &newest).await?;
    let branch = run.branch.clone();
    run.clone_repo(Some(&branch))
        .await
        .map_err(|failure| match failure {
            Failure::Permanent(reason) => Failure::Permanent(format!(
                "the plan's branch `{branch}` cannot be cloned: {reason}"
            )),
            other => other,
        })?;
    run.step("cloned").await?;
    let trailer = format!("Plan-Hash: {}", newest.hash);
    let head_message = run
        .git
        .run(
            "log",
            Some(&run.repo_dir),
            &["log", "-1", "--format=%B"],
            std::time::Duration::from_secs(60),
            &run.ctx.cancel,
        )
        .await?;
    let pr = run.github.open_pull_for(&branch).await?;
    if head_message.lines().any(|l| l.trim() == trailer) {
        tracing::info!(
            version = newest.version,
            "this plan version is already implemented; nothing new to do"
        );
        run.status.pr_url = pr.map(|p| p.url);
        run.status.reach("PR");
        run.status.state = State::Done;
        run.status.notes = vec![format!("Plan v{} is already implemented.", newest.version)];
        return run.publish_status().await;
    }
    let plan_text = newest.plan.to_json();
    let paths = newest.plan.paths();
    let selection = run
        .select_context(&format!("{}\n{}", newest.plan.summary, paths.join("\n")))
        .await?;
    run.step("context").await?;
    let (title, body) = run.issue_text();
    let prompt = prompts::render(
        prompts::IMPLEMENT,
        &[
            ("repo", run.task.repo_url.full_name()),
            ("issue_key", &run.task.issue.key),
            ("issue_title", &title),
            ("issue_body", &body),
            ("plan_version", &newest.version.to_string()),
            ("plan", &plan_text),
            ("plan_files", &paths.join(", ")),
            (
                "context",
                &with_plan_files(&selection.context, &run.repo_dir, &paths),
            ),
            ("edit_format", prompts::EDIT_FORMAT),
        ],
    );
    let edited = run.edit(prompt, Some(paths.clone())).await?;
    let changed: Vec<String> = edited.applied.iter().map(|f| f.path.clone()).collect();
    let message = format!(
        "{}\n\nImplements plan v{} for {} (approved by {}).\n\n{trailer}",
        if edited.summary.is_empty() {
            newest.plan.summary.clone()
        } else {
            edited.summary.clone()
        },
        newest.version,
        run.task.issue.key,
        approval.approver
    );
    run.commit_and_push(&changed, &message, false).await?;
    run.step("pushed").await?;

    let template = pr_template(&run.repo_dir);
    let files = super::run::files_list(&edited.applied);
    let pr_body = format!(
        "{}\n\n{}### Plan v{} (`{}`), approved by {}\n{}\n\n### Files changed\n{files}\n\n### Token usage\n{} input, {} output tokens.\n\n{}\n\n{}",
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
        run.usage.input_tokens,
        run.usage.output_tokens,
        run.issue_reference(),
        run.pull_marker(),
    );
    let base = match pr.as_ref() {
        Some(_) => String::new(),
        None => run
            .git
            .remote_default_branch(&run.repo_dir, &run.ctx.cancel)
            .await
            .unwrap_or_else(|_| "main".into()),
    };
    let title = format!("{} (agent-fleet)", run.issue_title.trim());
    let pr = match pr {
        Some(existing) => {
            let updated = run
                .github
                .update_pull(existing.number, &title, &pr_body)
                .await?;
            crate::tracker::github::PullRequest {
                draft: existing.draft,
                node_id: existing.node_id,
                ..updated
            }
        }
        None => {
            run.github
                .open_or_update_pull(&branch, &base, &title, &pr_body, false)
                .await?
        }
    };
    // The implementation is pushed and described by now: a PR left in draft is worth a
    // note, not a failed task (and not a second implementation on retry).
    let mut ready_note = None;
    if pr.draft
        && let Err(error) = run.github.mark_ready(&pr).await
    {
        tracing::warn!(%error, "could not mark the pull request ready for review");
        ready_note = Some(format!(
            "The pull request could not be marked ready for review ({error}); please do it by hand."
        ));
    }
    if run.task.issue.tracker == Tracker::Github {
        if let Err(error) = run
            .github
            .request_review(pr.number, &approval.approver)
            .await
        {
            tracing::warn!(%error, "could not request a review from the approver");
        }
        if let Err(error) = run.github.react(&approval.comment_id, "rocket").await {
            tracing::debug!(%error, "could not react to the approval");
        }
    }
    run.status.pr_url = Some(pr.url.clone());
    run.status.state = State::Done;
    run.status.notes = vec![format!(
        "Implemented plan v{} (`{}`), approved by {}.",
        newest.version, newest.hash, approval.approver
    )];
    run.status.notes.extend(ready_note);
    run.step("PR").await?;
    tracing::info!(pr = pr.number, version = newest.version, "plan implemented");
    Ok(())
}

/// The repository's pull request template, read through the checkout boundary (a link such
/// as `.github/pull_request_template.md -> /proc/self/environ` is never followed), capped.
fn pr_template(repo: &std::path::Path) -> String {
    let checkout = crate::checkout::Checkout::new(repo);
    PR_TEMPLATES
        .iter()
        .find_map(|t| checkout.read_prefix(t, MAX_TEMPLATE_BYTES).ok())
        .map(|prefix| prefix.text)
        .unwrap_or_default()
}

/// GitHub itself ignores templates past this size; a bigger one is not a template.
const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

/// Plan files larger than this are left to the context selection (which excerpts).
const MAX_PLAN_FILE_BYTES: u64 = 60_000;

/// The plan's existing files in full (they are what the edits must match), then the
/// selected context. Each is read through the checkout boundary: a plan naming
/// `docs/ref/environ` with `docs/ref -> /proc/self` reads nothing.
fn with_plan_files(context: &str, repo: &std::path::Path, paths: &[String]) -> String {
    let checkout = crate::checkout::Checkout::new(repo);
    let mut out = String::new();
    for path in paths {
        match checkout.read_text(path, MAX_PLAN_FILE_BYTES) {
            Ok(text) if !context.contains(&format!("{path}\n```")) => {
                out.push_str(&format!("{path}\n```\n{text}```\n\n"));
            }
            Ok(_) | Err(crate::checkout::Refused::Missing) => {}
            Err(refused) => tracing::info!(path, %refused, "a plan file was not read"),
        }
    }
    out.push_str(context);
    out
}
