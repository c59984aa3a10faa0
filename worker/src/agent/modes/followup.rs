//! Followup: a review (or a comment that mentions the agent) on the agent's own pull request,
//! answered with one commit on top of the branch. One task per review: all its line comments
//! go into ONE LLM call; the commit carries `Agent-Review: <id>`, so the same review
//! delivered twice gives one commit; each review thread gets a reply saying what changed
//! (one PR comment when there are no line comments).

use super::on_pull::{self, fenced, one_line};
use super::{ChangeStep, Finished, Job, Outcome};
use crate::adapters::github::{PullHead, ReviewComment, same_account};
use crate::agent::prompts;
use crate::agent::status::State;
use crate::runtime::handler::TaskError;

/// Followup's steps: those of every mode that edits (the PR line: the PR was answered).
pub type Step = ChangeStep;

/// At most this many line comments of one review reach the prompt (the rest are named).
const MAX_COMMENTS: usize = 30;

/// Each comment's text is cut here (and at `ISSUE_TEXT_MAX_BYTES`, whichever is smaller).
const MAX_COMMENT_BYTES: usize = 4 * 1024;

/// The end of each diff hunk kept: the commented line is its last.
const MAX_HUNK_BYTES: usize = 2 * 1024;

/// A review comment as the prompt and the reply use it.
#[derive(Debug, Clone)]
struct Asked {
    id: String,
    path: String,
    line: Option<u64>,
    author: String,
    body: String,
    hunk: String,
}

pub async fn run(job: &mut Job<'_>) -> Result<Outcome, TaskError> {
    let task = job.task;
    let pull = on_pull::agent_pull(job).await?;
    let review_id = task.review.as_ref().map(|r| r.review_id.clone());
    // Idempotent across task ids: the review's commit (or this task's) is on the PR already.
    let commits = job.session.github.pull_commits(pull.number).await?;
    let agent_email = job.agent.settings.git_email.clone();
    let agent_email = agent_email.as_str();
    let done = match &review_id {
        Some(id) => on_pull::commit_with(&commits, agent_email, "Agent-Review", id),
        None => on_pull::commit_with(&commits, agent_email, "Agent-Task", &task.task_id),
    };
    if let Some(commit) = done {
        let note = format!(
            "This request was already answered by commit {}.",
            on_pull::short(&commit.sha)
        );
        return on_pull::nothing_to_do(job, &pull, note).await;
    }
    let asked = match &review_id {
        Some(id) => review_comments(job, pull.number, id).await?,
        None => Vec::new(),
    };
    if asked.is_empty() && job.session.instruction_section().is_empty() {
        // A reply in a thread is a review of its own on GitHub: people answering each other
        // (or thanking the agent) ask for nothing.
        let note = format!(
            "The review on #{} asks the agent for nothing (no text, and no line comment that is not a reply to someone else); nothing was done.",
            pull.number
        );
        return on_pull::nothing_to_do(job, &pull, note).await;
    }
    on_pull::read_issue_text(job).await;
    on_pull::clone_branch(job).await?;
    let mut paths: Vec<String> = Vec::new();
    for a in &asked {
        if !paths.contains(&a.path) {
            paths.push(a.path.clone());
        }
    }
    let query: Vec<&str> = asked.iter().map(|a| a.body.as_str()).collect();
    let context = on_pull::context_led_by(job, &paths, &query.join("\n")).await?;
    let review = review_section(&asked);
    let prompt = super::issue_prompt(
        job,
        prompts::FOLLOWUP,
        &[
            ("pull_number", &pull.number.to_string()),
            ("review", &review),
            ("context", &context),
            ("edit_format", prompts::EDIT_FORMAT),
        ],
    );
    let edited = super::edit(job, prompt, None).await?;
    let (edited, _checks, draft) = super::verify(job, edited, None).await?;
    let summary = if edited.summary.is_empty() {
        format!("Address review feedback on #{}", pull.number)
    } else {
        edited.summary.clone()
    };
    let mut trailers = format!("Agent-Task: {}", task.task_id);
    if let Some(id) = &review_id {
        trailers.push_str(&format!("\nAgent-Review: {id}"));
    }
    let message = format!(
        "{summary}\n\nFollow-up by agent-fleet on pull request #{} for {}.\n\n{trailers}",
        pull.number, task.issue.key
    );
    let sha = on_pull::push_on_top(job, &pull, &edited, &message).await?;
    let files = on_pull::inline_files(&edited);
    let commit = on_pull::commit_words(sha.as_deref(), draft);
    answer(
        job,
        &pull,
        &asked,
        &summary,
        &commit,
        &edited.paths(),
        &files,
    )
    .await;

    job.llm.meter.pull_request(pull.number, &pull.url);
    let status = &mut job.session.status;
    status.pr_url = Some(pull.url.clone());
    status.state = State::Done;
    status.notes.insert(
        0,
        match &review_id {
            Some(_) => format!(
                "Answered the review of @{} on #{} ({} comment(s)) with {commit}.",
                one_line(&task.trigger_user, 39),
                pull.number,
                asked.len()
            ),
            None => format!("Answered the request on #{} with {commit}.", pull.number),
        },
    );
    job.session.reach(Step::PullRequest).await?;
    tracing::info!(
        pull = pull.number,
        comments = asked.len(),
        "follow-up pushed"
    );
    Ok(Outcome::new(
        job,
        Finished::PullRequest(Some(pull.url.clone())),
        edited.applied.len(),
    ))
}

/// The review's line comments, cleaned and capped; the agent's own are skipped (its
/// replies are never requests).
async fn review_comments(
    job: &Job<'_>,
    pull: u64,
    review_id: &str,
) -> Result<Vec<Asked>, TaskError> {
    let all = job.session.github.review_comments(pull, review_id).await?;
    let own = [
        Some(job.session.agent_account.as_str()),
        job.agent.settings.agent_login.as_deref(),
    ];
    let max = MAX_COMMENT_BYTES.min(job.agent.settings.issue_text_max_bytes);
    let agent = job.session.agent_account.as_str();
    let asked: Vec<Asked> = all
        .into_iter()
        .filter(|c: &ReviewComment| !own.iter().flatten().any(|a| same_account(a, &c.author)))
        // A reply in an existing thread counts only when it speaks to the agent.
        .filter(|c| !c.is_reply || mentions(&c.body, agent))
        .take(MAX_COMMENTS)
        .map(|c| Asked {
            body: on_pull::clean(job, &c.body, max),
            hunk: hunk_tail(&c.diff_hunk),
            path: one_line(&c.path, 300),
            line: c.line,
            author: one_line(&c.author, 39),
            id: c.id,
        })
        .collect();
    Ok(asked)
}

/// Whether `text` names the agent's login as `@login` (without an App's `[bot]`).
fn mentions(text: &str, login: &str) -> bool {
    let name = login.strip_suffix("[bot]").unwrap_or(login);
    !name.is_empty()
        && text
            .to_ascii_lowercase()
            .match_indices(&format!("@{}", name.to_ascii_lowercase()))
            .any(|(at, found)| {
                text[at + found.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !(c.is_alphanumeric() || c == '-' || c == '_'))
            })
}

/// The end of a diff hunk, at most [`MAX_HUNK_BYTES`], cut at a line break.
fn hunk_tail(hunk: &str) -> String {
    if hunk.len() <= MAX_HUNK_BYTES {
        return hunk.to_owned();
    }
    let mut start = hunk.len() - MAX_HUNK_BYTES;
    while !hunk.is_char_boundary(start) {
        start += 1;
    }
    let tail = &hunk[start..];
    tail.split_once('\n')
        .map_or(tail, |(_, rest)| rest)
        .to_owned()
}

/// The comments for the prompt: where each was written, the diff lines it is about, and
/// the reviewer's words (fenced: they cannot close their block and pose as the prompt).
fn review_section(asked: &[Asked]) -> String {
    if asked.is_empty() {
        return "(no line comments: the request is the comment quoted above)".into();
    }
    asked
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let line = a.line.map(|l| format!(" line {l}")).unwrap_or_default();
            let who = if a.author.is_empty() {
                "a reviewer".to_owned()
            } else {
                format!("@{}", a.author)
            };
            format!(
                "### Comment {} by {who} on `{}`{line}\n\nThe diff it was written on:\n{}\n\nWhat the reviewer wrote:\n{}\n",
                i + 1,
                a.path,
                fenced("diff", &a.hunk),
                fenced("text", &a.body),
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A reply in each review thread (one PR comment without line comments). Best effort: the
/// commit is pushed by now, and a redelivery would find it and answer nothing.
async fn answer(
    job: &mut Job<'_>,
    pull: &PullHead,
    asked: &[Asked],
    summary: &str,
    commit: &str,
    changed: &[String],
    files: &str,
) {
    let publisher = job.session.publisher.clone();
    let summary = one_line(summary, 300);
    let mut failed = 0;
    if asked.is_empty() {
        let body = format!(
            "agent-fleet pushed {commit}: {summary}\n\nFiles changed: {}.",
            if files.is_empty() { "none" } else { files }
        );
        if let Err(error) = publisher.comment_on_pull(pull.number, &body).await {
            tracing::warn!(%error, "could not comment on the pull request");
            failed += 1;
        }
    }
    for a in asked {
        let this_file = if changed.contains(&a.path) {
            format!("`{}` is changed there.", a.path)
        } else {
            format!("`{}` itself is not changed.", a.path)
        };
        let body = format!(
            "agent-fleet addressed this in {commit}: {summary}\n\n{this_file} Files changed: {}.",
            if files.is_empty() { "none" } else { files }
        );
        if let Err(error) = publisher.reply_in_thread(pull.number, &a.id, &body).await {
            tracing::warn!(%error, comment = a.id, "could not reply in the review thread");
            failed += 1;
        }
    }
    if failed > 0 {
        job.session.status.notes.push(format!(
            "{failed} answer(s) on the pull request could not be posted; the commit is pushed."
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_hunk_keeps_its_end_whole_lines() {
        let hunk = format!("@@ -1 +1 @@\n{}last line", "é line\n".repeat(600));
        let tail = hunk_tail(&hunk);
        assert!(tail.len() <= MAX_HUNK_BYTES && tail.ends_with("last line"));
        assert!(tail.starts_with("é line"), "{tail}");
        assert_eq!(hunk_tail("short"), "short");
    }
}
