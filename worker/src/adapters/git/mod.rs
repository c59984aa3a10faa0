//! The git CLI, driven safely: shallow clones with a timeout and a size guard watched while
//! the clone runs, credentials passed through git's configuration-by-environment (never
//! argv, never a URL), symlinks checked out as plain files (`core.symlinks=false`, the
//! second wall of `crate::checkout`), model-given paths taken literally
//! (`GIT_LITERAL_PATHSPECS=1`), pushes that never drop a commit the agent did not write,
//! errors classified as transient (network) or not (not found, no access, rejected).
//!
//! The process environment is passed through, and our entries are appended after any
//! `GIT_CONFIG_COUNT` entries already there (tests map `https://github.com/` onto local bare
//! repositories with `url.<base>.insteadOf` that way). The system and global config files
//! are read once and then passed the same way, the files themselves turned off: a check
//! that writes `~/.gitconfig` steers no later git command of the worker.
//!
//! Files: this one (errors, how git is run), [`clone`](self::Git::shallow_clone_url) in
//! `clone.rs`, branches, commits and pushes in `branch.rs`, reading git's stderr in
//! `classify.rs`.

mod branch;
mod classify;
mod clone;
mod files;
#[cfg(test)]
mod tests;

pub use branch::{Basis, CommitSpec, Identity, Pushed, RemoteBranch};
pub use clone::{Cloned, tree_size};
pub use files::BranchFile;

use classify::classify;

use secrecy::{ExposeSecret, SecretString};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
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
    /// Whether retrying later may help (network trouble, a timeout, a cancelled run, a
    /// failure git does not explain); not found, no access, too large, a refused push and
    /// foreign commits on the branch fail the same way again.
    pub fn is_transient(&self) -> bool {
        !matches!(
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

/// The system and global git configuration (includes followed) read once, at the first
/// git command (a clone, before anything of a repository ran): every later command gets it
/// through the environment with the files themselves turned off.
fn operator_config() -> &'static [(String, String)] {
    static CAPTURED: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    CAPTURED.get_or_init(|| {
        ["--system", "--global"]
            .iter()
            .flat_map(|scope| {
                let listed = std::process::Command::new("git")
                    .args(["config", scope, "--includes", "--list", "-z"])
                    .env_remove("GIT_CONFIG_COUNT")
                    .stdin(Stdio::null())
                    .stderr(Stdio::null())
                    .output();
                let text = listed
                    .ok()
                    .filter(|out| out.status.success())
                    .map(|out| String::from_utf8_lossy(&out.stdout).into_owned())
                    .unwrap_or_default();
                parse_config_list(&text)
            })
            .collect()
    })
}

/// `git config --list -z`: `key\nvalue\0` per entry (a key alone for a valueless one).
fn parse_config_list(text: &str) -> Vec<(String, String)> {
    text.split('\0')
        .filter(|entry| !entry.is_empty())
        .map(|entry| match entry.split_once('\n') {
            Some((key, value)) => (key.to_owned(), value.to_owned()),
            None => (entry.to_owned(), "true".to_owned()),
        })
        .collect()
}

/// The `GIT_CONFIG_COUNT` entries of the worker's own environment (tests and operators map
/// hosts with `url.<base>.insteadOf` that way).
fn inherited_env_config() -> Vec<(String, String)> {
    let count: usize = std::env::var("GIT_CONFIG_COUNT")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    (0..count)
        .filter_map(|i| {
            let key = std::env::var(format!("GIT_CONFIG_KEY_{i}")).ok()?;
            let value = std::env::var(format!("GIT_CONFIG_VALUE_{i}")).unwrap_or_default();
            Some((key, value))
        })
        .collect()
}

/// How long a local git command (add, commit, rev-parse) may take.
pub(super) const LOCAL_OP: Duration = Duration::from_secs(120);

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
            // A `.git/config` written by something the repository ran (a check) must not
            // make the worker's own `git add` run a program with its environment.
            ("core.fsmonitor".into(), "false".into()),
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
        // The operator's system and global config as they were when the worker started,
        // then the environment's entries, then ours (later entries win): what a check may
        // write into `~/.gitconfig` or `/etc/gitconfig` later is never read.
        let all: Vec<(String, String)> = operator_config()
            .iter()
            .cloned()
            .chain(inherited_env_config())
            .chain(entries)
            .collect();
        let mut command = Command::new("git");
        for (i, (key, value)) in all.iter().enumerate() {
            command.env(format!("GIT_CONFIG_KEY_{i}"), key);
            command.env(format!("GIT_CONFIG_VALUE_{i}"), value);
        }
        command
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            // `refs/replace/*` would let a planted ref swap the commit git reads.
            .env("GIT_NO_REPLACE_OBJECTS", "1");
        command
            .env("GIT_CONFIG_COUNT", all.len().to_string())
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

    /// A local command in `repo`, `git <op> <args>` with [`LOCAL_OP`] to finish; returns
    /// stdout. The op names itself in errors (and decides literal pathspecs, see
    /// [`Git::command_for`]).
    pub(super) async fn local(
        &self,
        repo: &Path,
        op: &'static str,
        args: &[&str],
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        let argv = [&[op], args].concat();
        self.run(op, Some(repo), &argv, LOCAL_OP, cancel).await
    }

    /// A command in `repo` that talks to `origin` (`git <op> <args>`, `timeout` to finish):
    /// the whole (scrubbed) stderr when git failed, for the caller to read, since some
    /// failures are answers.
    pub(super) async fn remote(
        &self,
        repo: &Path,
        op: &'static str,
        args: &[&str],
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<Option<String>, GitError> {
        let argv = [&[op], args].concat();
        let command = self.command_for(op, Some(repo), &argv);
        let (_, failed) = self.output(op, command, timeout, cancel).await?;
        Ok(failed)
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
        let command = self.command_for(op, cwd, args);
        match self.output(op, command, timeout, cancel).await? {
            (stdout, None) => Ok(stdout),
            (_, Some(stderr)) => Err(classify(op, stderr.trim())),
        }
    }

    /// `git <args>` in `cwd` (see [`Git::command`]); the ops that take paths take the
    /// model's paths literally.
    fn command_for(&self, op: &'static str, cwd: Option<&Path>, args: &[&str]) -> Command {
        let mut command = self.command(cwd);
        command.args(args);
        if matches!(op, "add" | "commit" | "ls-files") {
            // Paths the model wrote are file names, never patterns: `*.md` adds `*.md`.
            command.env("GIT_LITERAL_PATHSPECS", "1");
        }
        command
    }

    /// Runs `command` within `timeout`: stdout, and the whole (scrubbed) stderr when git
    /// failed (some answers are told apart by a line before the last).
    async fn output(
        &self,
        op: &'static str,
        mut command: Command,
        timeout: Duration,
        cancel: &CancellationToken,
    ) -> Result<(String, Option<String>), GitError> {
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

    pub(super) fn scrub(&self, text: &str) -> String {
        match &self.token {
            Some(token) if !token.expose_secret().is_empty() => {
                text.replace(token.expose_secret(), "[redacted]")
            }
            _ => text.to_owned(),
        }
    }
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
