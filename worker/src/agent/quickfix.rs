//! QuickFix: from a labeled issue straight to a pull request.

use super::prompts;
use super::run::{Failure, Run};
use super::status::State;
use crate::git::Pushed;

pub async fn run(run: &mut Run<'_>) -> Result<(), Failure> {
    let base = run.clone_repo(run.task.base_branch.as_deref()).await?;
    run.step("cloned").await?;
    let selection = run.select_context("").await?;
    run.step("context").await?;
    let (title, body) = run.issue_text();
    let prompt = prompts::render(
        prompts::QUICKFIX,
        &[
            ("repo", run.task.repo_url.full_name()),
            ("issue_key", &run.task.issue.key),
            ("issue_title", &title),
            ("issue_body", &body),
            ("context", &selection.context),
            ("edit_format", prompts::EDIT_FORMAT),
        ],
    );
    let edited = run.edit(prompt, None).await?;
    if run.dry_run {
        let diff = run.git.diff(&run.repo_dir, &run.ctx.cancel).await?;
        println!("{diff}");
        eprintln!(
            "dry run: {} file(s) changed; {} input / {} output tokens; nothing pushed",
            edited.applied.len(),
            run.usage.input_tokens,
            run.usage.output_tokens
        );
        return Ok(());
    }
    let paths: Vec<String> = edited.applied.iter().map(|f| f.path.clone()).collect();
    let summary = if edited.summary.is_empty() {
        format!("Resolve {}", run.task.issue.key)
    } else {
        edited.summary.clone()
    };
    let message = format!(
        "{summary}\n\nProposed by agent-fleet for {} ({}).\n\nAgent-Task: {}",
        run.task.issue.key, run.task.issue.url, run.task.task_id
    );
    let pushed = run.commit_and_push(&paths, &message, false).await?;
    if let Pushed::Unchanged(_) = pushed {
        run.status
            .notes
            .push("The branch already had these changes; nothing new was pushed.".into());
    }
    run.step("pushed").await?;

    let branch = run.branch.clone();
    let title = format!("{} (agent-fleet)", run.task.issue.title.trim());
    let files = super::run::files_list(&edited.applied);
    let context = selection
        .included
        .iter()
        .map(|p| format!("`{p}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let body = format!(
        "{summary}\n\n### Files changed\n{files}\n\n### Context used\n{context}\n\n### Token usage\n{} input, {} output tokens.\n\n{}\n\n{}",
        run.usage.input_tokens,
        run.usage.output_tokens,
        run.issue_reference(),
        run.pull_marker(),
    );
    let pr = run
        .github
        .open_or_update_pull(&branch, &base, &title, &body, false)
        .await?;
    run.status.pr_url = Some(pr.url.clone());
    run.status.state = State::Done;
    run.step("PR").await?;
    tracing::info!(pr = pr.number, url = %pr.url, "pull request ready");
    Ok(())
}
