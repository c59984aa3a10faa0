//! Where a run's effects go. The modes write the status comment, push the agent's branch,
//! open pull requests and post comments only through a [`Publisher`]: [`Live`] does it on
//! the tracker and the remote; [`DryRun`] (`worker run --dry-run`) does none of it and
//! records what would have been published, for its caller to show.

use super::workspace::{Contents, Workspace};
use crate::adapters::git::Pushed;
use crate::adapters::github::{GitHub, PullRequest};
use crate::adapters::thread::IssueThread;
use crate::runtime::handler::TaskError;
use futures_util::future::BoxFuture;
use shared::Tracker;
use shared::task::Approval;
use std::sync::Mutex;

/// The status comment as it is to be published.
#[derive(Debug, Clone, Copy)]
pub struct StatusUpdate<'a> {
    /// The agent's account: only its comment carrying the marker is edited.
    pub author: &'a str,
    /// The comment's id once known.
    pub known: Option<&'a str>,
    pub markdown: &'a str,
    pub plain: &'a str,
}

/// A new comment on the issue: markdown for GitHub, an ADF document for Jira.
#[derive(Debug, Clone)]
pub struct Note {
    pub markdown: String,
    pub jira: serde_json::Value,
}

/// A commit of the agent's branch in `workspace`, to be pushed.
#[derive(Debug, Clone, Copy)]
pub struct Push<'a> {
    pub workspace: &'a Workspace,
    pub contents: Contents<'a>,
    pub message: &'a str,
}

/// Whether a pull request is opened as a draft.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draft {
    Yes,
    No,
}

/// A pull request to open (or the open one of its branch to update).
#[derive(Debug, Clone, Copy)]
pub struct NewPull<'a> {
    pub branch: &'a str,
    pub base: &'a str,
    pub title: &'a str,
    pub body: &'a str,
    pub draft: Draft,
}

/// An effect's future.
pub type Effect<'a, T> = BoxFuture<'a, Result<T, TaskError>>;

/// The effects of a run. `None` answers mean "recorded, not published".
pub trait Publisher: Send + Sync + std::fmt::Debug {
    /// Posts or edits the status comment; its id when it was published.
    fn status<'a>(&'a self, update: StatusUpdate<'a>) -> Effect<'a, Option<String>>;

    /// Before cloning for a change that will be pushed: refuses a repository the tracker
    /// reports over `max_bytes` (the clone's own guard stops one that grows past it).
    fn check_size(&self, max_bytes: u64) -> Effect<'_, ()>;

    /// After cloning: refuses an agent's branch the push would have to overwrite.
    fn check_branch<'a>(&'a self, workspace: &'a Workspace, current: &'a str) -> Effect<'a, ()>;

    /// Commits and pushes the agent's branch.
    fn push<'a>(&'a self, push: Push<'a>) -> Effect<'a, Option<Pushed>>;

    /// Opens a pull request, or updates the open one of its branch.
    fn open_pull<'a>(&'a self, pull: NewPull<'a>) -> Effect<'a, Option<PullRequest>>;

    /// Updates the title and description of pull request `number`.
    fn update_pull<'a>(
        &'a self,
        number: u64,
        title: &'a str,
        body: &'a str,
    ) -> Effect<'a, Option<PullRequest>>;

    /// Posts a new comment on the issue.
    fn comment<'a>(&'a self, note: &'a Note) -> Effect<'a, ()>;

    /// Answers review comment `comment_id` of pull request `pull` in its thread (followup).
    fn reply_in_thread<'a>(
        &'a self,
        pull: u64,
        comment_id: &'a str,
        body: &'a str,
    ) -> Effect<'a, ()>;

    /// Posts a comment on pull request `pull` itself (followup, fixci).
    fn comment_on_pull<'a>(&'a self, pull: u64, body: &'a str) -> Effect<'a, ()>;

    /// Turns `pr` back into a draft (it was ready, and the checks fail now). Best effort:
    /// a note for the status comment when it could not be done.
    fn mark_draft<'a>(&'a self, pr: &'a PullRequest) -> BoxFuture<'a, Option<String>>;

    /// Acknowledges the comment that started the task (an `eyes` reaction on GitHub; Jira
    /// has none). Best effort: a failure is logged, never the task's.
    fn acknowledge<'a>(&'a self, comment_id: &'a str) -> BoxFuture<'a, ()>;

    /// Hands an implemented pull request over to people: marks it ready for review, asks
    /// the approver for a review and reacts to the approval (GitHub). Best effort: the
    /// implementation is pushed and described by now, so a PR left in draft is worth a
    /// note (returned), not a failed task (and not a second implementation on retry).
    fn hand_over<'a>(
        &'a self,
        pr: &'a PullRequest,
        approval: &'a Approval,
        tracker: Tracker,
    ) -> BoxFuture<'a, Option<String>>;
}

/// Publishes for real: the issue's thread, the repository's API, the remote.
#[derive(Debug, Clone)]
pub struct Live {
    pub github: GitHub,
    pub thread: IssueThread,
}

impl Publisher for Live {
    fn status<'a>(&'a self, update: StatusUpdate<'a>) -> Effect<'a, Option<String>> {
        Box::pin(async move {
            let id = self
                .thread
                .upsert(
                    update.author,
                    update.known,
                    super::status::GITHUB_MARKER,
                    update.markdown,
                    super::status::JIRA_MARKER,
                    update.plain,
                    None,
                )
                .await?;
            Ok(Some(id))
        })
    }

    fn check_size(&self, max_bytes: u64) -> Effect<'_, ()> {
        Box::pin(async move {
            match self.github.repo_size_kib().await {
                Ok(Some(kib)) if kib.saturating_mul(1024) > max_bytes => {
                    Err(TaskError::Permanent(format!(
                        "GitHub reports the repository at {} bytes, over the limit of {max_bytes} (CLONE_MAX_BYTES); raise CLONE_MAX_BYTES to let the agent work on it",
                        kib.saturating_mul(1024),
                    )))
                }
                Ok(_) => Ok(()),
                // The clone's own guard still holds: no reason to fail the task here.
                Err(error) => {
                    tracing::warn!(%error, "could not read the repository's size");
                    Ok(())
                }
            }
        })
    }

    fn check_branch<'a>(&'a self, workspace: &'a Workspace, current: &'a str) -> Effect<'a, ()> {
        Box::pin(workspace.check_branch_is_ours(current))
    }

    fn push<'a>(&'a self, push: Push<'a>) -> Effect<'a, Option<Pushed>> {
        Box::pin(async move {
            let pushed = push.workspace.commit_and_push(push.contents, push.message);
            Ok(Some(pushed.await?))
        })
    }

    fn open_pull<'a>(&'a self, pull: NewPull<'a>) -> Effect<'a, Option<PullRequest>> {
        Box::pin(async move {
            let draft = pull.draft == Draft::Yes;
            let pr = self
                .github
                .open_or_update_pull(pull.branch, pull.base, pull.title, pull.body, draft)
                .await?;
            Ok(Some(pr))
        })
    }

    fn update_pull<'a>(
        &'a self,
        number: u64,
        title: &'a str,
        body: &'a str,
    ) -> Effect<'a, Option<PullRequest>> {
        Box::pin(async move { Ok(Some(self.github.update_pull(number, title, body).await?)) })
    }

    fn comment<'a>(&'a self, note: &'a Note) -> Effect<'a, ()> {
        Box::pin(async move {
            match &self.thread {
                IssueThread::Github { github, number } => {
                    github.post_comment(*number, &note.markdown).await?;
                }
                IssueThread::Jira { jira, key } => {
                    jira.post_comment(key, note.jira.clone()).await?;
                }
            }
            Ok(())
        })
    }

    fn reply_in_thread<'a>(
        &'a self,
        pull: u64,
        comment_id: &'a str,
        body: &'a str,
    ) -> Effect<'a, ()> {
        Box::pin(async move {
            let github = &self.github;
            Ok(github
                .reply_to_review_comment(pull, comment_id, body)
                .await?)
        })
    }

    fn comment_on_pull<'a>(&'a self, pull: u64, body: &'a str) -> Effect<'a, ()> {
        Box::pin(async move {
            self.github.post_comment(pull, body).await?;
            Ok(())
        })
    }

    fn mark_draft<'a>(&'a self, pr: &'a PullRequest) -> BoxFuture<'a, Option<String>> {
        Box::pin(async move {
            let error = self.github.mark_draft(pr).await.err()?;
            tracing::warn!(%error, "could not turn the pull request back into a draft");
            Some(format!(
                "The pull request could not be turned back into a draft ({error}); its checks fail."
            ))
        })
    }

    fn acknowledge<'a>(&'a self, comment_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            if let IssueThread::Github { github, .. } = &self.thread
                && let Err(error) = github.react(comment_id, "eyes").await
            {
                tracing::debug!(%error, "could not acknowledge the comment");
            }
        })
    }

    fn hand_over<'a>(
        &'a self,
        pr: &'a PullRequest,
        approval: &'a Approval,
        tracker: Tracker,
    ) -> BoxFuture<'a, Option<String>> {
        Box::pin(self.ready_for_review(pr, approval, tracker))
    }
}

impl Live {
    async fn ready_for_review(
        &self,
        pr: &PullRequest,
        approval: &Approval,
        tracker: Tracker,
    ) -> Option<String> {
        let mut ready_note = None;
        if pr.draft
            && let Err(error) = self.github.mark_ready(pr).await
        {
            tracing::warn!(%error, "could not mark the pull request ready for review");
            ready_note = Some(format!(
                "The pull request could not be marked ready for review ({error}); please do it by hand."
            ));
        }
        if tracker == Tracker::Github {
            let github = &self.github;
            if let Err(error) = github.request_review(pr.number, &approval.approver).await {
                tracing::warn!(%error, "could not request a review from the approver");
            }
            if let Err(error) = github.react(&approval.comment_id, "rocket").await {
                tracing::debug!(%error, "could not react to the approval");
            }
        }
        ready_note
    }
}

/// What a dry run would have published.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// The diff of each push (non-empty ones).
    pub diffs: Vec<String>,
    /// The title and body of each pull request.
    pub pulls: Vec<(String, String)>,
    /// Each comment's markdown (issue and pull request comments, review thread replies).
    pub comments: Vec<String>,
}

/// Publishes nothing, asks no API; records the diffs, pull requests and comments.
#[derive(Debug, Default)]
pub struct DryRun {
    recorded: Mutex<Recorded>,
}

impl DryRun {
    /// Everything recorded so far.
    pub fn recorded(&self) -> Recorded {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // A panic while recording leaves a usable record: nothing to poison.
        self.recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn record_pull(&self, title: &str, body: &str) {
        self.lock().pulls.push((title.to_owned(), body.to_owned()));
    }
}

impl Publisher for DryRun {
    fn status<'a>(&'a self, _update: StatusUpdate<'a>) -> Effect<'a, Option<String>> {
        Box::pin(async { Ok(None) })
    }

    fn check_size(&self, _max_bytes: u64) -> Effect<'_, ()> {
        Box::pin(async { Ok(()) })
    }

    fn check_branch<'a>(&'a self, _workspace: &'a Workspace, _current: &'a str) -> Effect<'a, ()> {
        Box::pin(async { Ok(()) })
    }

    fn push<'a>(&'a self, push: Push<'a>) -> Effect<'a, Option<Pushed>> {
        Box::pin(async move {
            if let Contents::Files(_) = push.contents {
                let diff = push.workspace.diff().await?;
                self.lock().diffs.push(diff);
            }
            Ok(None)
        })
    }

    fn open_pull<'a>(&'a self, pull: NewPull<'a>) -> Effect<'a, Option<PullRequest>> {
        Box::pin(async move {
            self.record_pull(pull.title, pull.body);
            Ok(None)
        })
    }

    fn update_pull<'a>(
        &'a self,
        _number: u64,
        title: &'a str,
        body: &'a str,
    ) -> Effect<'a, Option<PullRequest>> {
        Box::pin(async move {
            self.record_pull(title, body);
            Ok(None)
        })
    }

    fn comment<'a>(&'a self, note: &'a Note) -> Effect<'a, ()> {
        Box::pin(async move {
            self.lock().comments.push(note.markdown.clone());
            Ok(())
        })
    }

    fn reply_in_thread<'a>(
        &'a self,
        _pull: u64,
        _comment_id: &'a str,
        body: &'a str,
    ) -> Effect<'a, ()> {
        Box::pin(async move {
            self.lock().comments.push(body.to_owned());
            Ok(())
        })
    }

    fn comment_on_pull<'a>(&'a self, _pull: u64, body: &'a str) -> Effect<'a, ()> {
        Box::pin(async move {
            self.lock().comments.push(body.to_owned());
            Ok(())
        })
    }

    fn mark_draft<'a>(&'a self, _pr: &'a PullRequest) -> BoxFuture<'a, Option<String>> {
        Box::pin(async { None })
    }

    fn acknowledge<'a>(&'a self, _comment_id: &'a str) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }

    fn hand_over<'a>(
        &'a self,
        _pr: &'a PullRequest,
        _approval: &'a Approval,
        _tracker: Tracker,
    ) -> BoxFuture<'a, Option<String>> {
        Box::pin(async { None })
    }
}
