//! Shallow clones with a timeout and a size guard watched while the clone runs; a clone
//! that passes either is killed with its whole process group, and so is one whose future
//! is dropped (its task aborted).

use super::classify::classify;
use super::{Git, GitError};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// What a clone produced.
#[derive(Debug, Clone)]
pub struct Cloned {
    pub dir: PathBuf,
    pub bytes: u64,
    pub seconds: f64,
}

/// `git clone --depth 1 --single-branch --no-tags --quiet <extra> [--branch B] -- <url> <dest>`.
pub(super) fn shallow_clone_args<'a>(
    extra: &[&'a str],
    branch: Option<&'a str>,
    url: &'a str,
    dest: &'a str,
) -> Vec<&'a str> {
    let mut args = vec![
        "clone",
        "--depth",
        "1",
        "--single-branch",
        "--no-tags",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    if let Some(branch) = branch {
        args.extend(["--branch", branch]);
    }
    args.extend(["--", url, dest]);
    args
}

impl Git {
    /// `git clone --depth 1 --single-branch --no-tags [--branch B]` of `url` into `dest`:
    /// the task's repository (`https://github.com/<owner>/<name>`, no `.git` suffix: GitHub
    /// answers both, and a local mirror reached through `insteadOf` may be named either
    /// way) or, for `worker run`, a local folder with `file://`.
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
        let args = shallow_clone_args(&[], branch, url, &dest_str);
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
    pub(super) async fn watched_clone(
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
        let mut group = Group(child.id());
        let output = child.wait_with_output();
        tokio::pin!(output);
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut pause = Duration::from_millis(200);
        let stopped = loop {
            tokio::select! {
                out = &mut output => {
                    // Ended by itself: its group is gone (and its id may be reused).
                    group.disarm();
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
        if let Some(group) = group.disarm() {
            kill_group(group).await;
        }
        Err(stopped)
    }
}

/// The clone's process group while it runs. Dropped armed (the clone's future was dropped:
/// its task was aborted on a timeout or a `/cancel`), it kills the group: `kill_on_drop`
/// reaches git itself, not the helpers it started (upload-pack, remote-https, index-pack),
/// which would go on writing into a task dir being removed.
struct Group(Option<u32>);

impl Group {
    fn disarm(&mut self) -> Option<u32> {
        self.0.take()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(group) = self.0.take() {
            let _ = std::process::Command::new("sh")
                .args(["-c", "kill -s KILL -- -\"$1\" 2>/dev/null", "sh"])
                .arg(group.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
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
