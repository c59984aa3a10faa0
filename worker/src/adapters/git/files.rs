//! Reading one file of a branch without checking the branch out (the repository's
//! `.agent-fleet.yml` is read before anything else is cloned), and a second, detached
//! working tree of the checked-out commit (where checks run on the code before the change).

use super::{Git, GitError, LOCAL_OP};
use std::path::Path;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A file found on a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BranchFile {
    pub path: String,
    pub text: String,
}

/// How one path stands in a tree.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Absent,
    /// A regular file: its blob can be read.
    Blob,
    /// A link, a folder or a submodule: never followed, never read.
    Other(String),
}

impl Git {
    /// The first of `paths` that is a regular file on `branch` (else the default branch)
    /// of `url`. Nothing is checked out: a depth-1 clone without blobs into `scratch`
    /// (under the clone's guards: `timeout`, `max_bytes`), then only the one blob is
    /// fetched. A path that is a link (or a folder) is an error naming it: the config is
    /// the repository's own word, never a pointer elsewhere.
    #[allow(clippy::too_many_arguments)]
    pub async fn first_file_on_branch(
        &self,
        url: &str,
        branch: Option<&str>,
        paths: &[&str],
        scratch: &Path,
        timeout: Duration,
        max_bytes: u64,
        cancel: &CancellationToken,
    ) -> Result<Option<BranchFile>, GitError> {
        let dest = scratch.to_string_lossy().into_owned();
        let no_blobs = ["--filter=blob:none", "--no-checkout"];
        let args = super::clone::shallow_clone_args(&no_blobs, branch, url, &dest);
        // Where the server ignores the filter (a local mirror), this is a whole clone:
        // the same guards hold.
        self.watched_clone(&args, scratch, timeout, max_bytes, cancel)
            .await?;
        for path in paths {
            match self.entry(scratch, path, cancel).await? {
                Entry::Absent => continue,
                Entry::Other(kind) => {
                    return Err(GitError::Failed {
                        op: "show",
                        detail: format!("`{path}` is a {kind}, not a file; it is not read"),
                    });
                }
                Entry::Blob => {
                    let spec = format!("HEAD:{path}");
                    // The lazy fetch of the one blob: a local command's time is plenty.
                    let text = self
                        .local(scratch, "cat-file", &["blob", &spec], cancel)
                        .await?;
                    return Ok(Some(BranchFile {
                        path: (*path).to_owned(),
                        text,
                    }));
                }
            }
        }
        Ok(None)
    }

    /// What `path` is in the tree of HEAD (no blob is fetched to say so).
    async fn entry(
        &self,
        repo: &Path,
        path: &str,
        cancel: &CancellationToken,
    ) -> Result<Entry, GitError> {
        let listed = self
            .local(repo, "ls-tree", &["HEAD", "--", path], cancel)
            .await?;
        // `<mode> <type> <object>\t<path>`; only the exact path counts.
        let Some(line) = listed.lines().find(|l| l.split('\t').nth(1) == Some(path)) else {
            return Ok(Entry::Absent);
        };
        let mode = line.split_whitespace().next().unwrap_or_default();
        Ok(match mode {
            "100644" | "100755" => Entry::Blob,
            "120000" => Entry::Other("symbolic link".into()),
            "040000" => Entry::Other("folder".into()),
            other => Entry::Other(format!("tree entry of mode {other}")),
        })
    }

    /// A detached working tree of `repo`'s HEAD at `dest` (the commit before the agent's
    /// uncommitted edits), for running checks on the code as it was.
    pub async fn base_worktree(
        &self,
        repo: &Path,
        dest: &Path,
        cancel: &CancellationToken,
    ) -> Result<(), GitError> {
        let dest = dest.to_string_lossy().into_owned();
        let args = [
            "worktree",
            "add",
            "--detach",
            "--quiet",
            dest.as_str(),
            "HEAD",
        ];
        self.run("worktree", Some(repo), &args, LOCAL_OP, cancel)
            .await
            .map(drop)
    }
}
