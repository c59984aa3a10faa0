//! The agent's branch: the base it starts from, commits, what the remote branch holds
//! (and whose commits those are), pushes that never drop a commit the agent did not write,
//! and the diff of the work.

use super::classify::{classify, classify_push};
use super::{Git, GitError, LOCAL_OP};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The author and committer of the agent's commits.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub email: String,
}

/// One commit: on which branch, which paths, what message; `allow_empty` makes the empty
/// commit a plan branch starts with.
#[derive(Debug, Clone, Copy)]
pub struct CommitSpec<'a> {
    pub branch: &'a str,
    pub paths: &'a [String],
    pub message: &'a str,
    pub allow_empty: bool,
}

/// What the work on the agent's branch is based on: the remote branch the branch starts
/// from, and whose commits are the agent's (its committer e-mail).
#[derive(Debug, Clone, Copy)]
pub struct Basis<'a> {
    pub base: &'a str,
    pub agent_email: &'a str,
}

/// The agent's branch on the remote, as [`Git::inspect_branch`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteBranch {
    pub head: String,
    /// Commits the agent did not write (short ids, newest first).
    pub foreign: Vec<String>,
    /// Whether `head` is present locally (its tree can be compared).
    pub fetched: bool,
}

impl RemoteBranch {
    /// A branch without commits the agent did not write: nothing beyond HEAD, or nothing
    /// beyond the base (then its head was not fetched).
    fn nothing_foreign(head: String, fetched: bool) -> Self {
        Self {
            head,
            foreign: Vec::new(),
            fetched,
        }
    }
}

/// What happened to a branch push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The branch now points at this commit.
    Updated(String),
    /// The remote branch already had exactly this tree: nothing pushed.
    Unchanged(String),
}

impl Git {
    /// The branch a fresh clone checked out (the repository's default branch).
    pub async fn current_branch(
        &self,
        repo: &Path,
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        self.rev_parse(repo, &["--abbrev-ref", "HEAD"], cancel)
            .await
    }

    /// Commits `change.paths` (added, changed or deleted) on `change.branch`, created from
    /// HEAD, as `identity`.
    pub async fn commit(
        &self,
        repo: &Path,
        change: &CommitSpec<'_>,
        identity: &Identity,
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        let CommitSpec {
            branch,
            paths,
            message,
            allow_empty,
        } = *change;
        self.local(repo, "checkout", &["-q", "-B", branch], cancel)
            .await?;
        if !paths.is_empty() {
            let mut args = vec!["-A", "--"];
            args.extend(paths.iter().map(String::as_str));
            self.local(repo, "add", &args, cancel).await?;
        }
        let mut command = self.command(Some(repo));
        command
            .args(["commit", "-q", "--no-verify", "-F", "-"])
            .env("GIT_LITERAL_PATHSPECS", "1")
            .env("GIT_AUTHOR_NAME", &identity.name)
            .env("GIT_AUTHOR_EMAIL", &identity.email)
            .env("GIT_COMMITTER_NAME", &identity.name)
            .env("GIT_COMMITTER_EMAIL", &identity.email)
            .stdin(Stdio::piped());
        if allow_empty {
            command.arg("--allow-empty");
        }
        let mut child = command.spawn().map_err(|e| GitError::Failed {
            op: "commit",
            detail: e.to_string(),
        })?;
        if let Some(mut stdin) = child.stdin.take() {
            use tokio::io::AsyncWriteExt;
            stdin
                .write_all(message.as_bytes())
                .await
                .map_err(|e| GitError::Failed {
                    op: "commit",
                    detail: e.to_string(),
                })?;
        }
        let output = tokio::time::timeout(LOCAL_OP, child.wait_with_output())
            .await
            .map_err(|_| GitError::Timeout("commit"))?
            .map_err(|e| GitError::Failed {
                op: "commit",
                detail: e.to_string(),
            })?;
        if !output.status.success() {
            let detail = self.scrub(&String::from_utf8_lossy(&output.stderr));
            let stdout = String::from_utf8_lossy(&output.stdout);
            return Err(GitError::Failed {
                op: "commit",
                detail: format!("{} {}", detail.trim(), stdout.trim()),
            });
        }
        self.rev_parse(repo, &["HEAD"], cancel).await
    }

    /// The remote's default branch (what `origin/HEAD` names), e.g. `main`.
    pub async fn remote_default_branch(
        &self,
        repo: &Path,
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        let out = self
            .local(repo, "ls-remote", &["--symref", "origin", "HEAD"], cancel)
            .await?;
        out.lines()
            .find_map(|l| l.strip_prefix("ref: refs/heads/"))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_owned)
            .ok_or(GitError::NotFound(
                "the remote has no default branch".into(),
            ))
    }

    /// The commit `branch` points at on `origin`, if it exists.
    pub async fn remote_head(
        &self,
        repo: &Path,
        branch: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Option<String>, GitError> {
        let refname = format!("refs/heads/{branch}");
        let out = self
            .run(
                "ls-remote",
                Some(repo),
                &["ls-remote", "origin", &refname],
                timeout,
                cancel,
            )
            .await?;
        Ok(head_of(&out, &refname))
    }

    /// Fetches `branch` (depth 1) and returns its commit.
    pub async fn fetch_branch(
        &self,
        repo: &Path,
        branch: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        self.run(
            "fetch",
            Some(repo),
            &[
                "fetch",
                "-q",
                "--depth",
                "1",
                "--no-tags",
                "origin",
                &refspec,
            ],
            timeout,
            cancel,
        )
        .await?;
        let name = format!("refs/remotes/origin/{branch}");
        self.rev_parse(repo, &[&name], cancel).await
    }

    /// `git rev-parse <args>`, trimmed.
    async fn rev_parse(
        &self,
        repo: &Path,
        args: &[&str],
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        Ok(self
            .local(repo, "rev-parse", args, cancel)
            .await?
            .trim()
            .to_owned())
    }

    async fn tree_of(
        &self,
        repo: &Path,
        commit: &str,
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        let spec = format!("{commit}^{{tree}}");
        self.rev_parse(repo, &[&spec], cancel).await
    }

    /// What `origin/<branch>` holds beyond `origin/<base>`: its head, and the commits on
    /// it that the local HEAD does not contain and `agent_email` did not commit (short
    /// ids, newest first). `None` when the branch does not exist.
    pub async fn inspect_branch(
        &self,
        repo: &Path,
        branch: &str,
        basis: &Basis<'_>,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Option<RemoteBranch>, GitError> {
        let Some(head) = self.remote_head(repo, branch, timeout, cancel).await? else {
            return Ok(None);
        };
        // Work built on the branch's head (Implement clones the branch) loses nothing.
        if self.is_ancestor(repo, &head, "HEAD", cancel).await {
            return Ok(Some(RemoteBranch::nothing_foreign(head, true)));
        }
        // Only the commits the base lacks: the history of the base is not the agent's to
        // judge, and a shallow clone has none of it.
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        let exclude = format!("--shallow-exclude=refs/heads/{}", basis.base);
        let fetch = [
            "-q",
            "--no-tags",
            exclude.as_str(),
            "origin",
            refspec.as_str(),
        ];
        match self.remote(repo, "fetch", &fetch, timeout, cancel).await? {
            None => {
                let foreign = self
                    .foreign_commits(repo, &head, basis.agent_email, cancel)
                    .await?;
                Ok(Some(RemoteBranch {
                    head,
                    foreign,
                    fetched: true,
                }))
            }
            // Every commit of the branch is in the base (a merged branch): nothing to lose.
            Some(stderr) if stderr.contains("no commits selected for shallow requests") => {
                Ok(Some(RemoteBranch::nothing_foreign(head, false)))
            }
            Some(stderr) => Err(classify("fetch", stderr.trim())),
        }
    }

    /// The commits of `head` that HEAD lacks and `agent_email` did not commit (short ids,
    /// newest first).
    async fn foreign_commits(
        &self,
        repo: &Path,
        head: &str,
        agent_email: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, GitError> {
        let log = self
            .local(
                repo,
                "log",
                &["--format=%H %ce", head, "--not", "HEAD", "--"],
                cancel,
            )
            .await?;
        Ok(log
            .lines()
            .filter_map(|line| line.split_once(' '))
            .filter(|(_, email)| !email.trim().eq_ignore_ascii_case(agent_email))
            .map(|(commit, _)| commit.chars().take(12).collect())
            .collect())
    }

    async fn is_ancestor(
        &self,
        repo: &Path,
        ancestor: &str,
        of: &str,
        cancel: &CancellationToken,
    ) -> bool {
        self.local(repo, "merge-base", &["--is-ancestor", ancestor, of], cancel)
            .await
            .is_ok()
    }

    /// Pushes HEAD to the agent's own `branch`. The lease is the branch head that was
    /// inspected: a commit pushed after the inspection makes the push fail (permanent), and
    /// a branch holding commits the agent did not write ([`GitError::Foreign`]) is never
    /// replaced. Nothing is pushed when the remote already has the same tree.
    pub async fn push_branch(
        &self,
        repo: &Path,
        branch: &str,
        basis: &Basis<'_>,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Pushed, GitError> {
        let remote = self
            .inspect_branch(repo, branch, basis, timeout, cancel)
            .await?;
        if let Some(remote) = &remote {
            if remote.fetched
                && self.tree_of(repo, &remote.head, cancel).await?
                    == self.tree_of(repo, "HEAD", cancel).await?
            {
                return Ok(Pushed::Unchanged(remote.head.clone()));
            }
            if !remote.foreign.is_empty() {
                return Err(GitError::Foreign {
                    branch: branch.to_owned(),
                    commits: remote.foreign.clone(),
                });
            }
        }
        let lease = format!(
            "--force-with-lease=refs/heads/{branch}:{}",
            remote.as_ref().map_or("", |r| r.head.as_str())
        );
        let target = format!("HEAD:refs/heads/{branch}");
        let push = [
            "-q",
            "--no-verify",
            lease.as_str(),
            "origin",
            target.as_str(),
        ];
        if let Some(stderr) = self.remote(repo, "push", &push, timeout, cancel).await? {
            return Err(classify_push(stderr.trim()));
        }
        Ok(Pushed::Updated(
            self.rev_parse(repo, &["HEAD"], cancel).await?,
        ))
    }

    /// Which of `paths` are symbolic links in the index (checked out as plain files with
    /// `core.symlinks=false`): editing one would change where a link points.
    pub async fn links_among(
        &self,
        repo: &Path,
        paths: &[String],
        cancel: &CancellationToken,
    ) -> Result<Vec<String>, GitError> {
        if paths.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["-s", "-z", "--"];
        args.extend(paths.iter().map(String::as_str));
        let out = self.local(repo, "ls-files", &args, cancel).await?;
        Ok(out
            .split('\0')
            .filter_map(|entry| {
                let (meta, path) = entry.split_once('\t')?;
                meta.starts_with("120000 ").then(|| path.to_owned())
            })
            .collect())
    }

    /// `git diff` of the working tree against HEAD, new files included.
    pub async fn diff(&self, repo: &Path, cancel: &CancellationToken) -> Result<String, GitError> {
        self.local(repo, "add", &["-A", "--intent-to-add", "."], cancel)
            .await?;
        self.local(repo, "diff", &["--no-color"], cancel).await
    }
}

/// The commit of exactly `refname` in `git ls-remote` output. git matches the pattern as a
/// suffix: asked for `refs/heads/agent/github-1` it also lists a branch someone named
/// `a/refs/heads/agent/github-1`, sorted first.
fn head_of(ls_remote: &str, refname: &str) -> Option<String> {
    ls_remote.lines().find_map(|line| {
        let (sha, name) = line.split_once(char::is_whitespace)?;
        (name.trim() == refname).then(|| sha.to_owned())
    })
}

#[cfg(test)]
mod head_tests {
    use super::head_of;

    #[test]
    fn only_the_exact_ref_counts() {
        let out = "1111\trefs/heads/a/refs/heads/agent/github-1\n2222\trefs/heads/agent/github-1\n";
        assert_eq!(
            head_of(out, "refs/heads/agent/github-1").as_deref(),
            Some("2222")
        );
        let decoy_only = "1111\trefs/heads/a/refs/heads/agent/github-1\n";
        assert_eq!(head_of(decoy_only, "refs/heads/agent/github-1"), None);
        assert_eq!(head_of("", "refs/heads/x"), None);
    }
}
