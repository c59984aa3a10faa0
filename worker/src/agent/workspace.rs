//! The task's checkout: the clone of the repository in the task's directory, everything
//! the agent reads from it (through [`crate::checkout`], the one read boundary for files a
//! repository may have made hostile), and everything git does to it (commit, push, diff).
//! File reads and other blocking work run on tokio's blocking pool ([`blocking`]).

use super::meter::Meter;
use super::prompts;
use crate::adapters::git::{Basis, BranchFile, CommitSpec, Git, GitError, Identity, Pushed};
use crate::checkout::Checkout;
use crate::runtime::handler::TaskError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What a commit holds.
#[derive(Debug, Clone, Copy)]
pub enum Contents<'a> {
    /// These edited paths.
    Files(&'a [String]),
    /// Nothing: the empty commit a plan's branch starts with.
    Nothing,
}

/// Where the clone comes from, the agent's branch and how git is run for the task.
#[derive(Debug)]
pub struct Workspace {
    git: Git,
    /// The task's own directory; the clone is `repo` in it.
    workdir: PathBuf,
    repo_dir: PathBuf,
    /// The URL cloned: the task's repository, or a local folder for `worker run`.
    source: String,
    /// The agent's branch for the issue.
    branch: String,
    /// The task's base branch (`None`: the repository's default).
    base_branch: Option<String>,
    identity: Identity,
    clone_timeout: Duration,
    clone_max_bytes: u64,
    cancel: CancellationToken,
    meter: Meter,
}

/// How a workspace is set up (all from the task, the settings and the task's directory).
#[derive(Debug)]
pub struct WorkspaceSpec {
    pub git: Git,
    pub workdir: PathBuf,
    pub source: String,
    pub branch: String,
    pub base_branch: Option<String>,
    pub identity: Identity,
    pub clone_timeout: Duration,
    pub clone_max_bytes: u64,
    pub cancel: CancellationToken,
    pub meter: Meter,
}

/// Runs blocking work (file reads, edit application, parsing) off the async runtime. A
/// panic there is the task's panic, as if it had run inline.
pub async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, TaskError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => Ok(value),
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(TaskError::Transient(format!("{what} did not run: {error}"))),
    }
}

impl Workspace {
    pub fn new(spec: WorkspaceSpec) -> Self {
        Self {
            git: spec.git,
            repo_dir: spec.workdir.join("repo"),
            workdir: spec.workdir,
            source: spec.source,
            branch: spec.branch,
            base_branch: spec.base_branch,
            identity: spec.identity,
            clone_timeout: spec.clone_timeout,
            clone_max_bytes: spec.clone_max_bytes,
            cancel: spec.cancel,
            meter: spec.meter,
        }
    }

    /// Where the repository is checked out.
    pub fn dir(&self) -> &Path {
        &self.repo_dir
    }

    /// The agent's branch for the issue.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The read boundary over the checkout.
    pub fn checkout(&self) -> Checkout {
        Checkout::new(&self.repo_dir)
    }

    /// A folder of the task's directory beside the clone (`config`, `base`, `sandbox`).
    pub fn scratch(&self, name: &str) -> PathBuf {
        self.workdir.join(name)
    }

    /// The task's directory (removed with everything in it before the delivery settles).
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    pub fn git(&self) -> &Git {
        &self.git
    }

    /// The URL the clone comes from.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// The branch work is based on when the task names none (`base_branch` of
    /// `.agent-fleet.yml`).
    pub fn set_base_branch(&mut self, base: Option<String>) {
        if self.base_branch.is_none() {
            self.base_branch = base;
        }
    }

    /// The task's base branch (`None`: the repository's default).
    pub fn base_branch(&self) -> Option<&str> {
        self.base_branch.as_deref()
    }

    pub fn clone_max_bytes(&self) -> u64 {
        self.clone_max_bytes
    }

    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// Clones the repository (at `branch`, else its default branch) under the clone's
    /// time and size guards, and returns the branch checked out.
    pub async fn clone(&self, branch: Option<&str>) -> Result<String, TaskError> {
        let cloned = self
            .git
            .shallow_clone_url(
                &self.source,
                branch,
                &self.repo_dir,
                self.clone_timeout,
                self.clone_max_bytes,
                &self.cancel,
            )
            .await?;
        self.meter.cloned(&cloned);
        tracing::info!(bytes = cloned.bytes, seconds = cloned.seconds, "cloned");
        Ok(self
            .git
            .current_branch(&self.repo_dir, &self.cancel)
            .await?)
    }

    /// The first of `paths` that is a file on the base branch (the task's, else the
    /// repository's default), read without checking anything out; `None` when none is.
    pub async fn base_file(&self, paths: &[&str]) -> Result<Option<BranchFile>, TaskError> {
        let scratch = self.scratch("base-file");
        let found = self
            .git
            .first_file_on_branch(
                &self.source,
                self.base_branch.as_deref(),
                paths,
                &scratch,
                self.clone_timeout,
                self.clone_max_bytes,
                &self.cancel,
            )
            .await;
        // Only the one file was needed: the scratch clone goes now, not with the task dir.
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        match found {
            Ok(file) => Ok(file),
            // A link or a folder where the file should be: the repository's doing.
            Err(GitError::Failed { op: "show", detail }) => Err(TaskError::Permanent(detail)),
            Err(other) => Err(other.into()),
        }
    }

    /// Refuses, before any LLM call, an agent's branch that holds commits the agent did
    /// not write: a later push would have to drop them. `current` is the cloned branch.
    pub async fn check_branch_is_ours(&self, current: &str) -> Result<(), TaskError> {
        let basis = self.basis(current);
        let (dir, branch, timeout) = (&self.repo_dir, &self.branch, self.clone_timeout);
        let remote = (self.git)
            .inspect_branch(dir, branch, &basis, timeout, &self.cancel)
            .await?;
        match remote.filter(|r| !r.foreign.is_empty()) {
            Some(remote) => Err(GitError::Foreign {
                branch: self.branch.clone(),
                commits: remote.foreign,
            }
            .into()),
            None => Ok(()),
        }
    }

    /// Commits `contents` on the agent's branch and pushes it. The push never drops a
    /// commit the agent did not write (it is refused and reported instead), and a rejected
    /// push is permanent.
    pub async fn commit_and_push(
        &self,
        contents: Contents<'_>,
        message: &str,
    ) -> Result<Pushed, TaskError> {
        let started = Instant::now();
        let (paths, allow_empty): (&[String], bool) = match contents {
            Contents::Files(paths) => (paths, false),
            Contents::Nothing => (&[], true),
        };
        let cancel = &self.cancel;
        // A link checked out as a plain file (`core.symlinks=false`) still is a link in
        // the index: an edit of it would re-point the link.
        let links = self.git.links_among(&self.repo_dir, paths, cancel).await?;
        if !links.is_empty() {
            return Err(TaskError::Permanent(format!(
                "the edits change {}, a symbolic link in the repository; the agent does not change links: edit the file it points to instead",
                links
                    .iter()
                    .map(|l| format!("`{l}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        // What the branch is based on: the branch that was cloned (QuickFix, Plan), or,
        // when the agent's branch itself was cloned (Implement), the repository's base.
        let current = self.git.current_branch(&self.repo_dir, cancel).await?;
        let base = if current == self.branch {
            match &self.base_branch {
                Some(base) => base.clone(),
                None => self.default_branch().await?,
            }
        } else {
            current
        };
        let change = CommitSpec {
            branch: &self.branch,
            paths,
            message,
            allow_empty,
        };
        self.git
            .commit(&self.repo_dir, &change, &self.identity, cancel)
            .await?;
        let basis = self.basis(&base);
        let (dir, branch, timeout) = (&self.repo_dir, &self.branch, self.clone_timeout);
        let pushed = (self.git)
            .push_branch(dir, branch, &basis, timeout, cancel)
            .await?;
        self.meter.phase("publish", started.elapsed().as_secs_f64());
        tracing::info!(?pushed, branch = self.branch, "branch published");
        let (sha, changed) = match &pushed {
            Pushed::Updated(sha) => (sha, true),
            Pushed::Unchanged(sha) => (sha, false),
        };
        self.meter.audit(
            fleet_ledger::AuditKind::Push,
            None,
            serde_json::json!({ "branch": self.branch, "sha": sha, "pushed": changed }),
        );
        Ok(pushed)
    }

    /// Work on the agent's branch based on `base`: the agent's commits are those with its
    /// committer e-mail.
    fn basis<'b>(&'b self, base: &'b str) -> Basis<'b> {
        Basis {
            base,
            agent_email: &self.identity.email,
        }
    }

    /// The repository's default branch, as the remote names it.
    pub async fn default_branch(&self) -> Result<String, TaskError> {
        Ok(self
            .git
            .remote_default_branch(&self.repo_dir, &self.cancel)
            .await?)
    }

    /// The message of the commit checked out.
    pub async fn head_message(&self) -> Result<String, TaskError> {
        Ok(self
            .git
            .run(
                "log",
                Some(&self.repo_dir),
                &["log", "-1", "--format=%B"],
                Duration::from_secs(60),
                &self.cancel,
            )
            .await?)
    }

    /// The working tree's changes against the checkout, as a diff.
    pub async fn diff(&self) -> Result<String, TaskError> {
        Ok(self.git.diff(&self.repo_dir, &self.cancel).await?)
    }

    /// The system prompt, with the repository's own instructions file (read through the
    /// checkout boundary, off the runtime).
    pub async fn system_prompt(&self, repo: &str) -> Result<String, TaskError> {
        let dir = self.repo_dir.clone();
        let instructions = blocking("reading the repository's instructions", move || {
            prompts::repo_instructions(&dir)
        })
        .await?;
        Ok(prompts::render(
            prompts::SYSTEM,
            &[("repo", repo), ("repo_instructions", &instructions)],
        ))
    }

    /// Context selection for `query` within `budget` tokens (blocking work, off the
    /// runtime).
    pub async fn select_context(
        &self,
        query: String,
        budget: usize,
    ) -> Result<fleet_context::Selection, TaskError> {
        let started = Instant::now();
        let repo = self.repo_dir.clone();
        let options = fleet_context::SelectOptions {
            budget,
            ..fleet_context::SelectOptions::default()
        };
        let selection =
            tokio::task::spawn_blocking(move || fleet_context::select(&repo, &query, &options))
                .await
                .map_err(|e| TaskError::Transient(format!("context selection did not run: {e}")))?
                .map_err(|e| TaskError::Permanent(format!("context selection failed: {e:#}")))?;
        self.meter.phase("context", started.elapsed().as_secs_f64());
        tracing::info!(
            files = selection.included.len(),
            tokens = selection.tokens,
            "context selected"
        );
        Ok(selection)
    }
}
