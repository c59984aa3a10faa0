//! What the modes that work on the agent's open pull request share ([`super::followup`],
//! [`super::fixci`]): which pull request the task is about, the check that it is the agent's
//! own (its branch for the issue, in this repository, open), the trailers on its commits that
//! make the work idempotent, the clone of its branch (work builds on its head: commits people
//! pushed there are kept, nothing is force-pushed over them), context led by the files the
//! request names, and how untrusted text (review comments, CI output) is fenced in a prompt.

use super::{ChangeStep, Finished, Job, Outcome};
use crate::adapters::git::Pushed;
use crate::adapters::github::{PullCommit, PullHead, same_account};
use crate::agent::edit_loop::Edited;
use crate::agent::publisher::{Draft, Push};
use crate::agent::status::State;
use crate::agent::workspace::{Contents, blocking};
use crate::runtime::handler::TaskError;
use secrecy::ExposeSecret;

/// A file the request names is put into the prompt whole up to this size (a larger one is
/// left to the context selection, which excerpts).
const MAX_NAMED_FILE_BYTES: u64 = 60_000;

/// At most this many named files lead the context.
const MAX_NAMED_FILES: usize = 10;

/// The pull request a follow-up task is about: the review's, the check suite's, else the
/// pull request the comment was written on.
pub fn pull_number(task: &shared::TaskMessage) -> Option<u64> {
    let on_pull = task
        .issue
        .pull_request
        .then_some(task.issue.number)
        .flatten();
    (task.review.as_ref().map(|r| r.pull_number))
        .or(task.checks.as_ref().map(|c| c.pull_number))
        .or(on_pull)
}

/// The task's pull request, refused (permanently) unless it is the agent's own: its head is
/// the agent's branch for this issue, in this very repository (never a fork), and it is
/// open. The ingest ignores other pull requests already; this is the worker's own check.
pub async fn agent_pull(job: &Job<'_>) -> Result<PullHead, TaskError> {
    let number = pull_number(job.task).ok_or_else(|| {
        TaskError::Unsupported(format!(
            "a {} task that names no pull request",
            job.task.mode
        ))
    })?;
    let pull = job
        .session
        .github
        .pull_head(number)
        .await?
        .ok_or_else(|| TaskError::Permanent(format!("pull request #{number} was not found")))?;
    let branch = job.workspace.branch();
    if pull.branch != branch {
        return Err(TaskError::Permanent(format!(
            "pull request #{number} is not the agent's: its head is not `{branch}`, the agent's branch for this issue"
        )));
    }
    let repo = job.task.repo_url.full_name();
    let ours = |name: &Option<String>| {
        name.as_deref()
            .is_some_and(|n| n.eq_ignore_ascii_case(repo))
    };
    if !ours(&pull.head_repo) || !ours(&pull.base_repo) {
        return Err(TaskError::Permanent(format!(
            "pull request #{number} comes from another repository (a fork); the agent only builds on its own branch in {repo}"
        )));
    }
    // A branch name anyone with push access can choose: the pull request must also have
    // been opened by the agent (a person's PR on a branch named `agent/...` is theirs).
    if !same_account(&pull.author, &job.session.agent_account) {
        return Err(TaskError::Permanent(format!(
            "pull request #{number} was not opened by the agent; it only follows up on its own pull requests"
        )));
    }
    if !pull.open {
        return Err(TaskError::Permanent(format!(
            "pull request #{number} is closed"
        )));
    }
    Ok(pull)
}

/// The issue's own title and body for the prompt: a review's or a check suite's task carries
/// the pull request's title (or "CI failed on ...") and no body. Best effort: the task's
/// text stays when GitHub cannot say (Jira issues are read by the session already).
pub async fn read_issue_text(job: &mut Job<'_>) {
    let session = &mut job.session;
    let Some(number) = session.issue.number else {
        return;
    };
    if job.task.issue.tracker != shared::Tracker::Github || job.task.issue.pull_request {
        return;
    }
    match session.github.issue_text(number).await {
        Ok((title, body)) => (session.issue.title, session.issue.body) = (title, body),
        Err(error) => tracing::info!(%error, "the issue's text could not be read"),
    }
}

/// The trailer lines of a commit message: its last paragraph (a trailer written in the
/// subject or the body, which the LLM's summary fills, is not one).
fn trailers(message: &str) -> impl Iterator<Item = (&str, &str)> {
    let message = message.trim_end();
    let last = message.rsplit_once("\n\n").map_or(
        if message.contains('\n') { message } else { "" },
        |(_, last)| last,
    );
    last.lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim(), value.trim()))
}

/// Whether `message` carries the trailer `key: value`.
pub fn has_trailer(message: &str, key: &str, value: &str) -> bool {
    trailers(message).any(|(k, v)| k == key && v == value)
}

/// The agent's own commits among `commits` (committed as `agent_email`): only its
/// trailers count, a person's commit cannot claim a review or a round.
fn agents<'c>(
    commits: &'c [PullCommit],
    agent_email: &'c str,
) -> impl Iterator<Item = &'c PullCommit> {
    commits
        .iter()
        .filter(move |c| c.committer_email.eq_ignore_ascii_case(agent_email))
}

/// The first of the agent's `commits` that carries `key: value`.
pub fn commit_with<'c>(
    commits: &'c [PullCommit],
    agent_email: &'c str,
    key: &str,
    value: &str,
) -> Option<&'c PullCommit> {
    agents(commits, agent_email).find(|c| has_trailer(&c.message, key, value))
}

/// How many of the agent's `commits` carry a `key:` trailer (any value).
pub fn count_trailer(commits: &[PullCommit], agent_email: &str, key: &str) -> usize {
    agents(commits, agent_email)
        .filter(|c| trailers(&c.message).any(|(k, _)| k == key))
        .count()
}

/// The short form of a commit id for people.
pub fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The status comment of a task that found nothing to do (a redelivered review, a check
/// suite of an older commit): done, with `note`, pointing at the pull request.
pub async fn nothing_to_do(
    job: &mut Job<'_>,
    pull: &PullHead,
    note: String,
) -> Result<Outcome, TaskError> {
    tracing::info!(pull = pull.number, note, "nothing to do");
    let status = &mut job.session.status;
    status.pr_url = Some(pull.url.clone());
    status.state = State::Done;
    status.notes.push(note);
    job.session.publish_status().await?;
    Ok(Outcome::new(job, Finished::AlreadyDone, 0))
}

/// Clones the agent's branch (the pull request's head) to build on it. The agent's
/// "commits it did not write" refusal is not asked here: people are expected to push to a
/// branch under review, and a commit on top keeps their commits.
pub async fn clone_branch(job: &mut Job<'_>) -> Result<(), TaskError> {
    let branch = job.workspace.branch().to_owned();
    let current = super::clone(job, Some(&branch)).await?;
    if current != branch {
        return Err(TaskError::Permanent(format!(
            "the branch `{branch}` could not be checked out"
        )));
    }
    job.session.reach(ChangeStep::Cloned).await
}

/// The context: the files of `named` (existing ones, whole, up to a part of the budget)
/// first, then the usual selection for `query` in what is left of the budget.
pub async fn context_led_by(
    job: &mut Job<'_>,
    named: &[String],
    query: &str,
) -> Result<String, TaskError> {
    let budget = job.agent.settings.context_budget;
    let checkout = job.workspace.checkout();
    let wanted: Vec<String> = named.iter().take(MAX_NAMED_FILES).cloned().collect();
    // About four bytes a token; the named files take at most three quarters of the budget.
    let limit = budget.saturating_mul(3);
    let (lead, read) = blocking("reading the named files", move || {
        let (mut out, mut read) = (String::new(), Vec::new());
        for path in &wanted {
            match checkout.read_text(path, MAX_NAMED_FILE_BYTES) {
                Ok(text) if out.len() + text.len() <= limit => {
                    let fence = fence_for(&text);
                    out.push_str(&format!("{path}\n{fence}\n{text}\n{fence}\n\n"));
                    read.push(path.clone());
                }
                Ok(_) | Err(crate::checkout::Refused::Missing) => {}
                Err(refused) => tracing::info!(path, %refused, "a named file was not read"),
            }
        }
        (out, read)
    })
    .await?;
    let rest = budget.saturating_sub(lead.len() / 4).max(1000);
    let (title, body) = job.session.issue_text();
    let query = format!("{title}\n\n{body}\n\n{query}");
    let selection = job.workspace.select_context(query, rest).await?;
    let mut files = read;
    files.extend(
        (selection.included.iter())
            .filter(|p| !named.contains(p))
            .cloned(),
    );
    job.session.status.context_files = files;
    job.session.reach(ChangeStep::Context).await?;
    Ok(format!("{lead}{}", selection.context))
}

/// Commits the edits on top of the branch's head and pushes them (a fast-forward: the head
/// that was cloned is the new commit's parent). The commit id, when something was pushed.
/// A push refused because someone pushed to the branch while the agent worked (the PR's
/// head is not `pull`'s anymore) is retried: the next attempt builds on their commit.
pub async fn push_on_top(
    job: &mut Job<'_>,
    pull: &PullHead,
    edited: &Edited,
    message: &str,
) -> Result<Option<String>, TaskError> {
    let paths = edited.paths();
    let publisher = job.session.publisher.clone();
    let push = Push {
        workspace: &job.workspace,
        contents: Contents::Files(&paths),
        message,
    };
    let pushed = match publisher.push(push).await {
        Ok(pushed) => pushed,
        Err(TaskError::Permanent(reason)) => {
            let now = job.session.github.pull_head(pull.number).await;
            return Err(match now {
                Ok(Some(now)) if !now.sha.is_empty() && now.sha != pull.sha => {
                    tracing::info!(reason, "the branch moved while the agent worked");
                    TaskError::Transient(format!(
                        "someone pushed to `{}` while the agent worked; the task runs again on the new head",
                        pull.branch
                    ))
                }
                _ => TaskError::Permanent(reason),
            });
        }
        Err(other) => return Err(other),
    };
    let sha = match pushed {
        Some(Pushed::Updated(sha)) => Some(sha),
        Some(Pushed::Unchanged(_)) => {
            job.session
                .status
                .notes
                .push("The branch already had these changes; nothing new was pushed.".into());
            None
        }
        None => None,
    };
    job.session.reach(ChangeStep::Pushed).await?;
    Ok(sha)
}

/// How the answers name the commit: its short id (or that there is none), and, when the
/// repository's checks still fail with it, that they do.
pub fn commit_words(sha: Option<&str>, draft: Draft) -> String {
    let commit = sha.map_or_else(
        || "no new commit".to_owned(),
        |s| format!("commit {}", short(s)),
    );
    match draft {
        Draft::Yes => {
            format!("{commit} (the repository's checks still fail with it: see the status comment)")
        }
        Draft::No => commit,
    }
}

/// Untrusted text (written on GitHub by reviewers or by CI) as a prompt sees it: hidden
/// markup removed, at most `max_bytes`, the worker's secrets blanked out.
pub fn clean(job: &Job<'_>, text: &str, max_bytes: usize) -> String {
    let mut cleaned = crate::agent::prompts::sanitize_untrusted(text, max_bytes);
    let mut secrets = job.agent.settings.secret_values();
    secrets.push(job.session.github.token().expose_secret().to_owned());
    for secret in secrets.iter().filter(|s| s.len() >= 8) {
        cleaned = cleaned.replace(secret.as_str(), "[redacted]");
    }
    cleaned
}

/// A code fence longer than any run of backticks in `text`: the text cannot close it.
pub fn fence_for(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

/// `text` in a fence of its own (with `info` after the opening fence).
pub fn fenced(info: &str, text: &str) -> String {
    let fence = fence_for(text);
    format!("{fence}{info}\n{}\n{fence}", text.trim_end())
}

/// One line of untrusted text (a path, a check's name) for a heading: no line breaks, no
/// backticks, at most `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    text.chars()
        .filter(|c| !c.is_control() && *c != '`')
        .take(max)
        .collect::<String>()
        .trim()
        .to_owned()
}

/// The changed files as an inline list (`a.py`, `b.py`).
pub fn inline_files(edited: &Edited) -> String {
    edited
        .applied
        .iter()
        .map(|f| format!("`{}`", f.path))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const AGENT: &str = "fleet@example.com";

    fn commit(message: &str) -> PullCommit {
        commit_by(message, AGENT)
    }

    fn commit_by(message: &str, email: &str) -> PullCommit {
        PullCommit {
            sha: "0123456789abcdef".into(),
            message: message.into(),
            committer_email: email.into(),
        }
    }

    #[test]
    fn trailers_are_read_exactly_and_only_from_the_agents_commits() {
        let commits = [
            commit("Fix\n\nAgent-Task: t1\nAgent-Review: 77"),
            commit("Round\n\nCI-Fix-Round: 1"),
            commit("Mention of CI-Fix-Round in the text, no trailer"),
            commit("Agent-Review: 88\n\nA summary the LLM wrote"),
            commit("CI-Fix-Round: 9"),
            commit_by(
                "Mine\n\nAgent-Review: 99\nCI-Fix-Round: 2",
                "dana@example.com",
            ),
        ];
        assert!(commit_with(&commits, AGENT, "Agent-Review", "77").is_some());
        assert!(commit_with(&commits, AGENT, "Agent-Review", "7").is_none());
        assert!(
            commit_with(&commits, AGENT, "Agent-Review", "88").is_none(),
            "not a trailer"
        );
        assert!(
            commit_with(&commits, AGENT, "Agent-Review", "99").is_none(),
            "a person's commit"
        );
        assert_eq!(count_trailer(&commits, AGENT, "CI-Fix-Round"), 1);
        assert_eq!(short("0123456789abcdef"), "0123456789ab");
        assert_eq!(
            commit_words(Some("0123456789abcdef"), Draft::No),
            "commit 0123456789ab"
        );
        assert!(commit_words(None, Draft::Yes).contains("checks still fail"));
    }

    #[test]
    fn fences_outlast_the_backticks_inside() {
        assert_eq!(fence_for("plain"), "```");
        assert_eq!(fence_for("a ```` b"), "`````");
        let block = fenced("diff", "x\n```\ny");
        assert!(block.starts_with("````diff\n") && block.ends_with("\n````"));
        assert_eq!(one_line("lint\n`x`\u{7}", 80), "lintx");
    }
}
