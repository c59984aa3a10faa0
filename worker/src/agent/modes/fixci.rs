//! Fixci: the agent's pull request after its CI failed. The failing check runs of the head
//! commit (their output and annotations, CI's text: untrusted, shown to the model as data)
//! go through the same edit loop, and the fix is one commit on top carrying
//! `CI-Fix-Round: <n>`. A check suite of an older commit is stale (nothing done); past
//! `CI_FIX_ROUNDS` rounds on the pull request the agent says once that it stops, and asks
//! no LLM.
//!
//! Failing means a conclusion of `failure`, `timed_out`, `action_required` or
//! `startup_failure`. `cancelled` is not: a run is cancelled by a person or by a newer push
//! (whose own suite reports again), and its output says nothing about the code; `neutral`,
//! `skipped` and `stale` are not failures either.

use super::on_pull::{self, fenced, one_line};
use super::{ChangeStep, Finished, Job, Outcome};
use crate::adapters::github::{Annotation, CheckRun, PullHead, same_account};
use crate::agent::prompts;
use crate::agent::status::State;
use crate::runtime::handler::TaskError;

/// Fixci's steps: those of every mode that edits (the PR line: the PR was answered).
pub type Step = ChangeStep;

/// Conclusions that count as a failure to fix.
pub const FAILING: [&str; 4] = ["failure", "timed_out", "action_required", "startup_failure"];

/// The hidden line of the "stops here" comment: one per pull request.
pub const STOP_MARKER: &str = "<!-- agent-fleet:ci-fix-stop -->";

/// At most this many failing runs, and annotations per run, reach the prompt.
const MAX_RUNS: usize = 10;
const MAX_ANNOTATIONS: usize = 30;

/// Caps on CI's texts: a title, a summary, the details, one annotation, everything.
const MAX_TITLE_BYTES: usize = 300;
const MAX_SUMMARY_BYTES: usize = 4 * 1024;
const MAX_TEXT_BYTES: usize = 8 * 1024;
const MAX_ANNOTATION_BYTES: usize = 1024;
const MAX_CI_OUTPUT_BYTES: usize = 24 * 1024;

/// A failing run with its annotations.
#[derive(Debug, Clone)]
struct Failing {
    run: CheckRun,
    annotations: Vec<Annotation>,
}

pub async fn run(job: &mut Job<'_>) -> Result<Outcome, TaskError> {
    let task = job.task;
    let checks = task
        .checks
        .clone()
        .ok_or_else(|| TaskError::Unsupported("a fixci task without `checks`".into()))?;
    let pull = on_pull::agent_pull(job).await?;
    if !pull.sha.eq_ignore_ascii_case(&checks.head_sha) {
        let note = format!(
            "CI failed on {}, which is not the head of #{} anymore: nothing to fix.",
            on_pull::short(&one_line(&checks.head_sha, 40)),
            pull.number
        );
        return on_pull::nothing_to_do(job, &pull, note).await;
    }
    let commits = job.session.github.pull_commits(pull.number).await?;
    let agent_email = job.agent.settings.git_email.clone();
    let agent_email = agent_email.as_str();
    if let Some(commit) = on_pull::commit_with(&commits, agent_email, "Agent-Task", &task.task_id) {
        let note = format!(
            "This CI failure was already fixed by commit {}.",
            on_pull::short(&commit.sha)
        );
        return on_pull::nothing_to_do(job, &pull, note).await;
    }
    let rounds = on_pull::count_trailer(&commits, agent_email, "CI-Fix-Round");
    let limit = job.agent.settings.ci_fix_rounds as usize;
    if rounds >= limit {
        return stop(job, &pull, rounds, limit).await;
    }
    let round = rounds + 1;
    let failing = failing_runs(job, &pull.sha).await?;
    if failing.is_empty() {
        let note = format!(
            "No check run of {} failed in a way to fix (cancelled or still running ones are left alone).",
            on_pull::short(&pull.sha)
        );
        return on_pull::nothing_to_do(job, &pull, note).await;
    }
    on_pull::read_issue_text(job).await;
    on_pull::clone_branch(job).await?;
    let names: Vec<String> = failing.iter().map(|f| one_line(&f.run.name, 100)).collect();
    let mut paths: Vec<String> = Vec::new();
    for a in failing.iter().flat_map(|f| &f.annotations) {
        if !a.path.is_empty() && !paths.contains(&a.path) {
            paths.push(a.path.clone());
        }
    }
    let ci_output = ci_output(job, &failing);
    let query = format!("{}\n{}", names.join("\n"), paths.join("\n"));
    let context = on_pull::context_led_by(job, &paths, &query).await?;
    let prompt = super::issue_prompt(
        job,
        prompts::FIXCI,
        &[
            ("pull_number", &pull.number.to_string()),
            ("round", &round.to_string()),
            ("max_rounds", &limit.to_string()),
            ("ci_output", &ci_output),
            ("context", &context),
            ("edit_format", prompts::EDIT_FORMAT),
        ],
    );
    let edited = super::edit(job, prompt, None).await?;
    let (edited, _checks, draft) = super::verify(job, edited, None).await?;
    let summary = if edited.summary.is_empty() {
        format!("Fix the failing checks of #{}", pull.number)
    } else {
        edited.summary.clone()
    };
    let message = format!(
        "{summary}\n\nCI fix round {round} of {limit} by agent-fleet on pull request #{} ({}).\n\nCI-Fix-Round: {round}\nAgent-Task: {}",
        pull.number,
        names.join(", "),
        task.task_id
    );
    let sha = on_pull::push_on_top(job, &pull, &edited, &message).await?;
    let commit = on_pull::commit_words(sha.as_deref(), draft);
    let body = format!(
        "agent-fleet pushed {commit} for the failing checks ({}), fix round {round} of {limit}: {}\n\nFiles changed: {}.",
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
        one_line(&summary, 300),
        on_pull::inline_files(&edited),
    );
    let publisher = job.session.publisher.clone();
    if let Err(error) = publisher.comment_on_pull(pull.number, &body).await {
        tracing::warn!(%error, "could not comment on the pull request");
        job.session
            .status
            .notes
            .push("The comment on the pull request could not be posted; the fix is pushed.".into());
    }
    job.llm.meter.pull_request(pull.number, &pull.url);
    let status = &mut job.session.status;
    status.pr_url = Some(pull.url.clone());
    status.state = State::Done;
    status.notes.insert(
        0,
        format!(
            "CI fix round {round} of {limit} on #{}: {commit}.",
            pull.number
        ),
    );
    job.session.reach(Step::PullRequest).await?;
    tracing::info!(pull = pull.number, round, "CI fix pushed");
    Ok(Outcome::new(
        job,
        Finished::PullRequest(Some(pull.url.clone())),
        edited.applied.len(),
    ))
}

/// Past the limit: one comment on the pull request that the agent stops and why (found
/// again by its hidden marker, so a further failure does not say it twice); no clone, no LLM.
async fn stop(
    job: &mut Job<'_>,
    pull: &PullHead,
    rounds: usize,
    limit: usize,
) -> Result<Outcome, TaskError> {
    let agent = job.session.agent_account.clone();
    let said = job
        .session
        .github
        .comments(pull.number)
        .await?
        .iter()
        .any(|c| same_account(&c.author, &agent) && c.body.contains(STOP_MARKER));
    if !said {
        let body = format!(
            "agent-fleet stops fixing CI on this pull request: it made {rounds} fix round(s), the most `CI_FIX_ROUNDS` allows ({limit}), and the checks still fail. Please take over (a push of yours starts CI again; the agent does not).\n\n{STOP_MARKER}"
        );
        let publisher = job.session.publisher.clone();
        publisher.comment_on_pull(pull.number, &body).await?;
    }
    let note = format!(
        "CI still fails on #{} after {rounds} fix round(s) (`CI_FIX_ROUNDS` = {limit}): the agent stopped.",
        pull.number
    );
    on_pull::nothing_to_do(job, pull, note).await
}

/// The failing runs of `sha` (at most [`MAX_RUNS`]) with their annotations.
async fn failing_runs(job: &Job<'_>, sha: &str) -> Result<Vec<Failing>, TaskError> {
    let github = &job.session.github;
    let runs = github.check_runs(sha).await?;
    let mut out = Vec::new();
    for run in runs.into_iter().filter(is_failing).take(MAX_RUNS) {
        let mut annotations = github.annotations(&run.id).await?;
        // Failures first: they are what to fix; notices last.
        annotations.sort_by_key(|a| match a.annotation_level.as_str() {
            "failure" => 0,
            "warning" => 1,
            _ => 2,
        });
        annotations.truncate(MAX_ANNOTATIONS);
        out.push(Failing { run, annotations });
    }
    Ok(out)
}

fn is_failing(run: &CheckRun) -> bool {
    run.conclusion
        .as_deref()
        .is_some_and(|c| FAILING.contains(&c))
}

/// CI's report of each failing run, cleaned and capped, each text in a fence of its own:
/// the model sees it as CI output, never as instructions.
fn ci_output(job: &Job<'_>, failing: &[Failing]) -> String {
    let mut out = String::new();
    for (i, f) in failing.iter().enumerate() {
        let run = &f.run;
        let mut part = format!(
            "### Check `{}`: {}\n",
            one_line(&run.name, 100),
            run.conclusion.as_deref().unwrap_or("")
        );
        let title = one_line(
            &on_pull::clean(job, &run.output.title, MAX_TITLE_BYTES),
            300,
        );
        if !title.is_empty() {
            part.push_str(&format!("Title (CI output): {title}\n"));
        }
        for (what, text, max) in [
            ("Summary", &run.output.summary, MAX_SUMMARY_BYTES),
            ("Details", &run.output.text, MAX_TEXT_BYTES),
        ] {
            let cleaned = on_pull::clean(job, text, max);
            if !cleaned.trim().is_empty() {
                part.push_str(&format!(
                    "{what} (CI output):\n{}\n",
                    fenced("text", &cleaned)
                ));
            }
        }
        if !f.annotations.is_empty() {
            let lines: Vec<String> = f
                .annotations
                .iter()
                .map(|a| annotation_line(job, a))
                .collect();
            part.push_str(&format!(
                "Annotations (CI output):\n{}\n",
                fenced("text", &lines.join("\n"))
            ));
        }
        if out.len() + part.len() > MAX_CI_OUTPUT_BYTES {
            out.push_str(&format!(
                "\n({} more failing check(s) left out: the CI output is capped.)\n",
                failing.len() - i
            ));
            break;
        }
        out.push_str(&part);
        out.push('\n');
    }
    out
}

/// `path:start-end [level] title: message`, one line.
fn annotation_line(job: &Job<'_>, a: &Annotation) -> String {
    let lines = match (a.start_line, a.end_line) {
        (Some(s), Some(e)) if e != s => format!(":{s}-{e}"),
        (Some(s), _) => format!(":{s}"),
        _ => String::new(),
    };
    let title = one_line(&on_pull::clean(job, &a.title, MAX_TITLE_BYTES), 200);
    let message = on_pull::clean(job, &a.message, MAX_ANNOTATION_BYTES);
    let message: String = message.split_whitespace().collect::<Vec<_>>().join(" ");
    format!(
        "{}{lines} [{}] {}{message}",
        one_line(&a.path, 300),
        one_line(&a.annotation_level, 20),
        if title.is_empty() {
            String::new()
        } else {
            format!("{title}: ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(conclusion: Option<&str>) -> CheckRun {
        CheckRun {
            id: "1".into(),
            name: "ci".into(),
            conclusion: conclusion.map(str::to_owned),
            output: Default::default(),
        }
    }

    #[test]
    fn only_real_failures_are_fixed() {
        for c in FAILING {
            assert!(is_failing(&run(Some(c))), "{c}");
        }
        for c in [
            Some("cancelled"),
            Some("success"),
            Some("neutral"),
            Some("skipped"),
            None,
        ] {
            assert!(!is_failing(&run(c)), "{c:?}");
        }
    }
}
