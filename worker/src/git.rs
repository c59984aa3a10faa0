//! The git CLI, driven safely: shallow clones with a timeout and a size guard, credentials
//! passed through git's configuration-by-environment (never argv, never a URL), errors
//! classified as permanent (not found, no access) or transient (network).
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
    /// The remote moved under us (someone pushed to the agent's branch): retrying would only
    /// clobber their work or fail the same way, so this is permanent.
    #[error("the push was rejected: {0}")]
    Rejected(String),
    #[error("git {op} failed: {detail}")]
    Failed { op: &'static str, detail: String },
}

impl GitError {
    /// Whether retrying later cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            GitError::NotFound(_) | GitError::Denied(_) | GitError::TooLarge { .. }
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
        let child = self.command(cwd).args(args).output();
        let output = tokio::select! {
            out = tokio::time::timeout(timeout, child) => match out {
                Err(_) => return Err(GitError::Timeout(op)),
                Ok(Err(e)) => return Err(GitError::Failed { op, detail: format!("cannot run git: {e}") }),
                Ok(Ok(output)) => output,
            },
            () = cancel.cancelled() => return Err(GitError::Cancelled),
        };
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = self.scrub(&String::from_utf8_lossy(&output.stderr));
        Err(classify(op, stderr.trim()))
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
        self.run("clone", None, &args, timeout, cancel).await?;
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

    /// Pushes HEAD to the agent's own `branch`: force-with-lease against what the remote had
    /// a moment ago, or nothing at all when the remote already has the same tree.
    pub async fn push_branch(
        &self,
        repo: &Path,
        branch: &str,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Pushed, GitError> {
        let remote = self.remote_head(repo, branch, timeout, cancel).await?;
        if let Some(remote_commit) = &remote {
            let fetched = self.fetch_branch(repo, branch, timeout, cancel).await?;
            if self.tree_of(repo, &fetched, cancel).await?
                == self.tree_of(repo, "HEAD", cancel).await?
            {
                return Ok(Pushed::Unchanged(remote_commit.clone()));
            }
        }
        let lease = format!(
            "--force-with-lease=refs/heads/{branch}:{}",
            remote.as_deref().unwrap_or("")
        );
        let target = format!("HEAD:refs/heads/{branch}");
        match self
            .run(
                "push",
                Some(repo),
                &["push", "-q", "--no-verify", &lease, "origin", &target],
                timeout,
                cancel,
            )
            .await
        {
            Ok(_) => {}
            Err(GitError::Failed { detail, .. })
                if detail.contains("rejected") || detail.contains("stale info") =>
            {
                return Err(GitError::Rejected(detail));
            }
            Err(other) => return Err(other),
        }
        Ok(Pushed::Updated(
            self.rev_parse(repo, &["HEAD"], cancel).await?,
        ))
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
    } else if lower.contains("authentication failed")
        || lower.contains("permission to")
        || lower.contains("403")
    {
        GitError::Denied(detail)
    } else {
        GitError::Failed { op, detail }
    }
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
