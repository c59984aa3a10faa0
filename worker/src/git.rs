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
        if let Some(token) = &self.token {
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
        let started = Instant::now();
        let url = format!("{}.git", repo.as_str());
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
        args.extend(["--", url.as_str(), dest_str.as_str()]);
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
