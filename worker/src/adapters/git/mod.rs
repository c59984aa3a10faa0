//! The git CLI, driven safely: shallow clones with a timeout and a size guard watched while
//! the clone runs, credentials passed through git's configuration-by-environment (never
//! argv, never a URL), symlinks checked out as plain files (`core.symlinks=false`, the
//! second wall of `crate::checkout`), model-given paths taken literally
//! (`GIT_LITERAL_PATHSPECS=1`), pushes that never drop a commit the agent did not write,
//! errors classified as permanent (not found, no access, rejected) or transient (network).
//!
//! The process environment is passed through, and our entries are appended after any
//! `GIT_CONFIG_COUNT` entries already there (tests map `https://github.com/` onto local bare
//! repositories with `url.<base>.insteadOf` that way).

use secrecy::{ExposeSecret, SecretString};
use shared::RepoUrl;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("repository or branch not found: {0}")]
    NotFound(String),
    #[error("access denied: {0}")]
    Denied(String),
    #[error("the clone is {bytes} bytes, over the limit of {limit} (CLONE_MAX_BYTES)")]
    TooLarge { bytes: u64, limit: u64 },
    #[error("git {0} timed out")]
    Timeout(&'static str),
    #[error("cancelled")]
    Cancelled,
    /// The remote refused the push (its hooks, branch protection) or moved under us
    /// (someone pushed to the agent's branch): retrying would fail the same way or clobber
    /// their work, so this is permanent.
    #[error("the push was rejected: {0}")]
    Rejected(String),
    /// The agent's branch holds commits the agent did not write: replacing it would drop
    /// them.
    #[error(
        "the branch `{branch}` has {} commit(s) the agent did not write ({}); the agent never overwrites them: delete the branch (or remove those commits) and ask again, or carry on by hand",
        commits.len(),
        commits.join(", ")
    )]
    Foreign {
        branch: String,
        commits: Vec<String>,
    },
    #[error("git {op} failed: {detail}")]
    Failed { op: &'static str, detail: String },
}

impl GitError {
    /// Whether retrying later cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            GitError::NotFound(_)
                | GitError::Denied(_)
                | GitError::TooLarge { .. }
                | GitError::Rejected(_)
                | GitError::Foreign { .. }
        )
    }
}

/// How to run git for one task.
#[derive(Clone)]
pub struct Git {
    token: Option<SecretString>,
    /// The web origin the token is for (`https://github.com`).
    token_origin: String,
    /// Extra `git -c`-style entries, passed through the environment like the rest.
    extra_config: Vec<(String, String)>,
}

impl std::fmt::Debug for Git {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Git")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("token_origin", &self.token_origin)
            .finish()
    }
}

/// What a clone produced.
#[derive(Debug, Clone)]
pub struct Cloned {
    pub dir: PathBuf,
    pub bytes: u64,
    pub seconds: f64,
}

impl Git {
    /// `token` authenticates HTTPS requests to `origin` (e.g. `https://github.com`).
    pub fn new(token: Option<SecretString>, origin: &str) -> Self {
        Self {
            token,
            token_origin: origin.trim_end_matches('/').to_owned(),
            extra_config: Vec::new(),
        }
    }

    /// Adds a configuration entry (e.g. `url.<base>.insteadOf`) for every git command.
    pub fn with_config(mut self, key: &str, value: &str) -> Self {
        self.extra_config.push((key.to_owned(), value.to_owned()));
        self
    }

    /// A `git` command with our configuration appended to the inherited environment.
    pub fn command(&self, cwd: Option<&Path>) -> Command {
        let mut entries: Vec<(String, String)> = vec![
            // Tests and air-gapped mirrors use file:// remotes.
            ("protocol.file.allow".into(), "always".into()),
            ("core.hooksPath".into(), "/dev/null".into()),
            ("advice.detachedHead".into(), "false".into()),
            // A link in the repository is checked out as a plain file holding its target:
            // content, never a door to the worker's files (`/proc/self/environ`).
            ("core.symlinks".into(), "false".into()),
        ];
        if let Some(token) = self
            .token
            .as_ref()
            .filter(|t| !t.expose_secret().is_empty())
        {
            let basic =
                base64_encode(format!("x-access-token:{}", token.expose_secret()).as_bytes());
            entries.push((
                format!("http.{}/.extraheader", self.token_origin),
                format!("AUTHORIZATION: basic {basic}"),
            ));
        }
        entries.extend(self.extra_config.iter().cloned());
        let existing: usize = std::env::var("GIT_CONFIG_COUNT")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut command = Command::new("git");
        for (i, (key, value)) in entries.iter().enumerate() {
            command.env(format!("GIT_CONFIG_KEY_{}", existing + i), key);
            command.env(format!("GIT_CONFIG_VALUE_{}", existing + i), value);
        }
        command
            .env("GIT_CONFIG_COUNT", (existing + entries.len()).to_string())
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_ASKPASS", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        command
    }

    /// Runs git with `args`; returns stdout. Output is scrubbed of the token before it can
    /// reach an error message.
    pub async fn run(
        &self,
        op: &'static str,
        cwd: Option<&Path>,
        args: &[&str],
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        let (stdout, failed) = self.run_full(op, cwd, args, timeout, cancel).await?;
        match failed {
            None => Ok(stdout),
            Some(stderr) => Err(classify(op, stderr.trim())),
        }
    }

    /// Runs git; stdout, and the whole (scrubbed) stderr when git failed: some answers
    /// are told apart by a line before the last.
    async fn run_full(
        &self,
        op: &'static str,
        cwd: Option<&Path>,
        args: &[&str],
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(String, Option<String>), GitError> {
        let mut command = self.command(cwd);
        command.args(args);
        if matches!(op, "add" | "commit" | "ls-files") {
            // Paths the model wrote are file names, never patterns: `*.md` adds `*.md`.
            command.env("GIT_LITERAL_PATHSPECS", "1");
        }
        let child = command.output();
        let output = tokio::select! {
            out = tokio::time::timeout(timeout, child) => match out {
                Err(_) => return Err(GitError::Timeout(op)),
                Ok(Err(e)) => return Err(GitError::Failed { op, detail: format!("cannot run git: {e}") }),
                Ok(Ok(output)) => output,
            },
            () = cancel.cancelled() => return Err(GitError::Cancelled),
        };
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        if output.status.success() {
            return Ok((stdout, None));
        }
        let stderr = self.scrub(&String::from_utf8_lossy(&output.stderr));
        Ok((stdout, Some(stderr)))
    }

    fn scrub(&self, text: &str) -> String {
        match &self.token {
            Some(token) if !token.expose_secret().is_empty() => {
                text.replace(token.expose_secret(), "[redacted]")
            }
            _ => text.to_owned(),
        }
    }

    /// `git clone --depth 1 --single-branch --no-tags [--branch B]` into `dest`.
    pub async fn shallow_clone(
        &self,
        repo: &RepoUrl,
        branch: Option<&str>,
        dest: &Path,
        timeout: Duration,
        max_bytes: u64,
        cancel: &CancellationToken,
    ) -> Result<Cloned, GitError> {
        // No `.git` suffix: GitHub answers both, and a local mirror reached through
        // `insteadOf` may be named `<name>` or `<name>.git` (git finds either without it).
        self.shallow_clone_url(repo.as_str(), branch, dest, timeout, max_bytes, cancel)
            .await
    }

    /// The same from any git URL (`worker run` clones a local folder with `file://`).
    pub async fn shallow_clone_url(
        &self,
        url: &str,
        branch: Option<&str>,
        dest: &Path,
        timeout: Duration,
        max_bytes: u64,
        cancel: &CancellationToken,
    ) -> Result<Cloned, GitError> {
        let started = Instant::now();
        let dest_str = dest.to_string_lossy().into_owned();
        let mut args = vec![
            "clone",
            "--depth",
            "1",
            "--single-branch",
            "--no-tags",
            "--quiet",
        ];
        if let Some(branch) = branch {
            args.extend(["--branch", branch]);
        }
        args.extend(["--", url, dest_str.as_str()]);
        self.watched_clone(&args, dest, timeout, max_bytes, cancel)
            .await?;
        let dir = dest.to_path_buf();
        let measured = dir.clone();
        let bytes = tokio::task::spawn_blocking(move || tree_size(&measured))
            .await
            .unwrap_or(0);
        if bytes > max_bytes {
            return Err(GitError::TooLarge {
                bytes,
                limit: max_bytes,
            });
        }
        Ok(Cloned {
            dir,
            bytes,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Runs `git clone` in its own process group, measuring `dest` while it runs: a clone
    /// that passes `max_bytes` is killed (with its helpers: upload-pack, remote-https,
    /// index-pack) instead of filling the disk first and being measured after.
    async fn watched_clone(
        &self,
        args: &[&str],
        dest: &Path,
        timeout: Duration,
        max_bytes: u64,
        cancel: &CancellationToken,
    ) -> Result<(), GitError> {
        let mut command = self.command(None);
        command.args(args).process_group(0);
        let child = command.spawn().map_err(|e| GitError::Failed {
            op: "clone",
            detail: format!("cannot run git: {e}"),
        })?;
        let group = child.id();
        let output = child.wait_with_output();
        tokio::pin!(output);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut pause = Duration::from_millis(200);
        let stopped = loop {
            tokio::select! {
                out = &mut output => {
                    let output = out.map_err(|e| GitError::Failed {
                        op: "clone",
                        detail: format!("cannot run git: {e}"),
                    })?;
                    if output.status.success() {
                        return Ok(());
                    }
                    let stderr = self.scrub(&String::from_utf8_lossy(&output.stderr));
                    return Err(classify("clone", stderr.trim()));
                }
                () = &mut deadline => break GitError::Timeout("clone"),
                () = cancel.cancelled() => break GitError::Cancelled,
                () = tokio::time::sleep(pause) => {
                    let measured = dest.to_path_buf();
                    let started = Instant::now();
                    let bytes = tokio::task::spawn_blocking(move || tree_size(&measured))
                        .await
                        .unwrap_or(0);
                    if bytes > max_bytes {
                        break GitError::TooLarge { bytes, limit: max_bytes };
                    }
                    // Measuring a big tree takes time of its own: look less often then.
                    pause = Duration::from_millis(200).max(started.elapsed() * 4);
                }
            }
        };
        if let Some(group) = group {
            kill_group(group).await;
        }
        Err(stopped)
    }
}

/// SIGKILL to a process group (a clone and its helpers), through `sh` (the crate forbids
/// `unsafe`, so no libc call).
async fn kill_group(group: u32) {
    let result = Command::new("sh")
        .args(["-c", "kill -s KILL -- -\"$1\" 2>/dev/null", "sh"])
        .arg(group.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
    if let Err(error) = result {
        tracing::warn!(%error, group, "could not stop the clone's processes");
    }
}

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

/// What happened to a branch push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pushed {
    /// The branch now points at this commit.
    Updated(String),
    /// The remote branch already had exactly this tree: nothing pushed.
    Unchanged(String),
}

const LOCAL_OP: Duration = Duration::from_secs(120);

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
        self.run(
            "checkout",
            Some(repo),
            &["checkout", "-q", "-B", branch],
            LOCAL_OP,
            cancel,
        )
        .await?;
        if !paths.is_empty() {
            let mut args = vec!["add", "-A", "--"];
            args.extend(paths.iter().map(String::as_str));
            self.run("add", Some(repo), &args, LOCAL_OP, cancel).await?;
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
            .run(
                "ls-remote",
                Some(repo),
                &["ls-remote", "--symref", "origin", "HEAD"],
                LOCAL_OP,
                cancel,
            )
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
        Ok(out.split_whitespace().next().map(str::to_owned))
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
        let mut argv = vec!["rev-parse"];
        argv.extend_from_slice(args);
        Ok(self
            .run("rev-parse", Some(repo), &argv, LOCAL_OP, cancel)
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
            return Ok(Some(RemoteBranch {
                head,
                foreign: Vec::new(),
                fetched: true,
            }));
        }
        // Only the commits the base lacks: the history of the base is not the agent's to
        // judge, and a shallow clone has none of it.
        let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
        let exclude = format!("--shallow-exclude=refs/heads/{}", basis.base);
        let (_, failed) = self
            .run_full(
                "fetch",
                Some(repo),
                &["fetch", "-q", "--no-tags", &exclude, "origin", &refspec],
                timeout,
                cancel,
            )
            .await?;
        if let Some(stderr) = failed {
            // Every commit of the branch is in the base (a merged branch): nothing to lose.
            if stderr.contains("no commits selected for shallow requests") {
                return Ok(Some(RemoteBranch {
                    head,
                    foreign: Vec::new(),
                    fetched: false,
                }));
            }
            return Err(classify("fetch", stderr.trim()));
        }
        let log = self
            .run(
                "log",
                Some(repo),
                &["log", "--format=%H %ce", &head, "--not", "HEAD", "--"],
                LOCAL_OP,
                cancel,
            )
            .await?;
        let foreign = log
            .lines()
            .filter_map(|line| line.split_once(' '))
            .filter(|(_, email)| !email.trim().eq_ignore_ascii_case(basis.agent_email))
            .map(|(commit, _)| commit.chars().take(12).collect())
            .collect();
        Ok(Some(RemoteBranch {
            head,
            foreign,
            fetched: true,
        }))
    }

    async fn is_ancestor(
        &self,
        repo: &Path,
        ancestor: &str,
        of: &str,
        cancel: &CancellationToken,
    ) -> bool {
        self.run(
            "merge-base",
            Some(repo),
            &["merge-base", "--is-ancestor", ancestor, of],
            LOCAL_OP,
            cancel,
        )
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
        let (_, failed) = self
            .run_full(
                "push",
                Some(repo),
                &["push", "-q", "--no-verify", &lease, "origin", &target],
                timeout,
                cancel,
            )
            .await?;
        if let Some(stderr) = failed {
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
        let mut args = vec!["ls-files", "-s", "-z", "--"];
        args.extend(paths.iter().map(String::as_str));
        let out = self
            .run("ls-files", Some(repo), &args, LOCAL_OP, cancel)
            .await?;
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
        self.run(
            "add",
            Some(repo),
            &["add", "-A", "--intent-to-add", "."],
            LOCAL_OP,
            cancel,
        )
        .await?;
        self.run(
            "diff",
            Some(repo),
            &["diff", "--no-color"],
            LOCAL_OP,
            cancel,
        )
        .await
    }
}

fn classify(op: &'static str, stderr: &str) -> GitError {
    let lower = stderr.to_ascii_lowercase();
    let detail = stderr.lines().last().unwrap_or(stderr).to_owned();
    if lower.contains("repository not found")
        || lower.contains("does not appear to be a git repository")
        || lower.contains("could not find remote branch")
        || (lower.contains("remote branch") && lower.contains("not found"))
        || lower.contains("not found in upstream")
    {
        GitError::NotFound(detail)
    } else if denied(&lower) {
        GitError::Denied(detail)
    } else {
        GitError::Failed { op, detail }
    }
}

/// git's own words for "no access" (curl's HTTP status line, GitHub's `remote:` line, ssh),
/// not a `403` that happens to be in a URL, a path or a commit id.
fn denied(lower: &str) -> bool {
    lower.contains("authentication failed")
        || lower.contains("the requested url returned error: 401")
        || lower.contains("the requested url returned error: 403")
        || lower.contains("could not read username")
        || lower.contains("permission denied")
        || (lower.contains("remote: permission to") && lower.contains("denied"))
        || lower.contains("write access to repository not granted")
}

/// A failed push: refused by the remote (hook, branch protection, a lease that no longer
/// holds) is [`GitError::Rejected`]; the rest as for any command.
fn classify_push(stderr: &str) -> GitError {
    let lower = stderr.to_ascii_lowercase();
    if denied(&lower) {
        return classify("push", stderr);
    }
    if lower.contains("[rejected]")
        || lower.contains("[remote rejected]")
        || lower.contains("stale info")
        || lower.contains("pre-receive hook declined")
        || lower.contains("protected branch")
    {
        // The line that says why, not git's closing "failed to push some refs".
        let reason = stderr
            .lines()
            .find(|l| l.contains("rejected") || l.contains("stale info"))
            .unwrap_or(stderr)
            .trim()
            .to_owned();
        return GitError::Rejected(reason);
    }
    classify("push", stderr)
}

/// Bytes of all regular files below `dir` (symlinks not followed).
pub fn tree_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

fn base64_encode(input: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(TABLE[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
    }

    #[test]
    fn stderr_classification() {
        assert!(
            classify(
                "clone",
                "remote: Repository not found.\nfatal: repository 'x' not found"
            )
            .is_permanent()
        );
        assert!(
            classify(
                "clone",
                "fatal: '/tmp/x.git' does not appear to be a git repository"
            )
            .is_permanent()
        );
        assert!(
            classify(
                "clone",
                "warning: Could not find remote branch nope to clone."
            )
            .is_permanent()
        );
        assert!(
            !classify(
                "clone",
                "fatal: unable to access 'x': Could not resolve host: github.com"
            )
            .is_permanent()
        );
    }

    #[test]
    fn a_403_in_a_url_or_path_is_not_access_denied() {
        // A repository or host name with 403 in it: a network error, transient.
        for stderr in [
            "fatal: unable to access 'https://github.com/acme/x403/': Could not resolve host: github.com",
            "fatal: unable to access 'https://git403.example.com/a/b/': Failed to connect to git403.example.com port 443",
            "fatal: bad object 403e1d2c9a",
        ] {
            let error = classify("clone", stderr);
            assert!(
                matches!(error, GitError::Failed { .. }) && !error.is_permanent(),
                "{stderr}: {error:?}"
            );
        }
        // git's real words for no access.
        for stderr in [
            "remote: Permission to acme/payments.git denied to fleet-agent[bot].\nfatal: unable to access 'https://github.com/acme/payments/': The requested URL returned error: 403",
            "remote: Write access to repository not granted.\nfatal: unable to access 'https://github.com/acme/payments/': The requested URL returned error: 403",
            "fatal: Authentication failed for 'https://github.com/acme/payments/'",
            "fatal: could not read Username for 'https://github.com': terminal prompts disabled",
            "git@github.com: Permission denied (publickey).\nfatal: Could not read from remote repository.",
        ] {
            assert!(
                matches!(classify("push", stderr), GitError::Denied(_)),
                "{stderr}"
            );
        }
    }

    #[test]
    fn a_refused_push_is_rejected_and_permanent() {
        for stderr in [
            "remote: refusing\nTo /tmp/x.git\n ! [remote rejected] HEAD -> agent/github-1 (pre-receive hook declined)\nerror: failed to push some refs to '/tmp/x.git'",
            " ! [rejected]        HEAD -> agent/github-1 (stale info)\nerror: failed to push some refs to 'x'",
            "remote: error: GH006: Protected branch update failed for refs/heads/agent/github-1.\n ! [remote rejected] HEAD -> agent/github-1 (protected branch hook declined)",
        ] {
            let error = classify_push(stderr);
            assert!(
                matches!(error, GitError::Rejected(_)),
                "{stderr}: {error:?}"
            );
            assert!(error.is_permanent());
            assert!(error.to_string().contains("rejected"), "{error}");
        }
        assert!(
            !classify_push("fatal: unable to access 'x': Could not resolve host: github.com")
                .is_permanent()
        );
    }

    #[tokio::test]
    async fn model_given_paths_are_literal() {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = dir.path();
        let sh = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
                .args(args)
                .current_dir(repo)
                .status()
                .expect("git")
                .success();
            assert!(ok, "git {args:?}");
        };
        sh(&["init", "-q", "-b", "main"]);
        std::fs::write(repo.join("a.md"), "a\n").expect("write");
        sh(&["add", "."]);
        sh(&["commit", "-qm", "one"]);
        std::fs::write(repo.join("a.md"), "changed\n").expect("write");
        std::fs::write(repo.join("*.md"), "a file named *.md\n").expect("write");
        let git = Git::new(None, "https://github.com");
        let cancel = CancellationToken::new();
        let identity = Identity {
            name: "Agent".into(),
            email: "agent@example.com".into(),
        };
        let paths = vec!["*.md".to_owned()];
        git.commit(
            repo,
            &CommitSpec {
                branch: "agent/x",
                paths: &paths,
                message: "add the star file",
                allow_empty: false,
            },
            &identity,
            &cancel,
        )
        .await
        .expect("commit");
        let changed = git
            .run(
                "show",
                Some(repo),
                &["show", "--name-only", "--format=", "HEAD"],
                LOCAL_OP,
                &cancel,
            )
            .await
            .expect("show");
        // `*.md` as a pattern would have committed `a.md` too.
        assert_eq!(changed.trim(), "*.md");
    }

    #[test]
    fn the_token_never_reaches_argv_or_errors() {
        let git = Git::new(
            Some(SecretString::from("ghs_supersecret")),
            "https://github.com",
        );
        let command = git.command(None);
        let std = command.as_std();
        let argv: Vec<String> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(argv.iter().all(|a| !a.contains("supersecret")));
        assert_eq!(
            git.scrub("fatal: ghs_supersecret rejected"),
            "fatal: [redacted] rejected"
        );
        assert!(!format!("{git:?}").contains("supersecret"));
    }
}
