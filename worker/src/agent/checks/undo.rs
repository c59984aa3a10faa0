//! Putting the checkout back after a check ran: the edited files as the edits wrote them
//! (never writing through a link a check left) and, in the process sandbox, where a check
//! can write it, the clone's whole `.git` from a copy taken before the checks.

use super::super::modes::Job;
use super::super::workspace::blocking;
use crate::checkout::Checkout;
use crate::runtime::handler::TaskError;
use fleet_edits::ChangedFile;
use fleet_sandbox::Mode;
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The clone's `.git` as it was before the checks, in the process sandbox (bubblewrap
/// mounts it read-only): a check there can write anything in it (config, `commondir`,
/// `refs/replace`, the index, hooks), so the whole folder is put back from a copy, with no
/// git command run on the state the check left.
pub(super) struct GitState {
    snapshot: Option<PathBuf>,
}

impl GitState {
    pub(super) async fn of(job: &Job<'_>, mode: Mode) -> Result<Self, TaskError> {
        if mode != Mode::Process {
            return Ok(Self { snapshot: None });
        }
        let snapshot = job.workspace.scratch("git-before-checks");
        copy_tree(&job.workspace.dir().join(".git"), &snapshot).await?;
        Ok(Self {
            snapshot: Some(snapshot),
        })
    }
}

/// `cp -a` (git's folder holds only files and folders; links are kept as links).
async fn copy_tree(from: &Path, to: &Path) -> Result<(), TaskError> {
    // Whatever stands at `to` goes, without following it: a link there would make `cp`
    // write into the folder it points to.
    match tokio::fs::symlink_metadata(to).await {
        Ok(meta) if meta.is_dir() => {
            let _ = tokio::fs::remove_dir_all(to).await;
        }
        Ok(_) => {
            let _ = tokio::fs::remove_file(to).await;
        }
        Err(_) => {}
    }
    let status = tokio::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .stdin(std::process::Stdio::null())
        // A stopped task (timeout, `/cancel`) leaves no copy running into its removed dir.
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| TaskError::Transient(format!("cannot copy the clone's git state: {e}")))?;
    if status.success() {
        Ok(())
    } else {
        Err(TaskError::Transient(format!(
            "copying the clone's git state failed ({status})"
        )))
    }
}

/// The clone's `.git` back from its copy (process sandbox), then the edited files back to
/// what the edits wrote.
pub(super) async fn undo_side_effects(
    job: &Job<'_>,
    before: &GitState,
    applied: &[ChangedFile],
) -> Result<(), TaskError> {
    let dir = job.workspace.dir();
    let checkout = tokio::fs::symlink_metadata(dir).await;
    if !checkout.is_ok_and(|meta| meta.is_dir()) {
        return Err(TaskError::Permanent(
            "a check replaced the checkout itself; nothing of it is committed".into(),
        ));
    }
    if let Some(snapshot) = &before.snapshot {
        copy_tree(snapshot, &dir.join(".git")).await?;
    }
    let root = dir.to_path_buf();
    let files = applied.to_vec();
    blocking("restoring the edited files", move || restore(&root, &files))
        .await?
        .map_err(|e| {
            TaskError::Permanent(format!(
                "a check changed the checkout so that the edits cannot be restored: {e}"
            ))
        })
}

/// Puts each edited file back as the edits left it, unless it already is. A folder a check
/// replaced with a link (or a file) on the way is made a folder again: nothing is written
/// through a link.
fn restore(root: &Path, files: &[ChangedFile]) -> std::io::Result<()> {
    let checkout = Checkout::new(root);
    for file in files {
        if checkout
            .read_text(&file.path, file.new.len() as u64)
            .is_ok_and(|text| text == file.new)
        {
            continue;
        }
        tracing::warn!(path = file.path, "a check changed an edited file; restored");
        let mut dir = root.to_path_buf();
        let parts: Vec<&str> = file.path.split('/').collect();
        let (name, parents) = parts.split_last().expect("a path has a name");
        for part in parents {
            dir.push(part);
            match std::fs::symlink_metadata(&dir) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    std::fs::remove_file(&dir)?;
                    std::fs::create_dir(&dir)?;
                }
                Err(_) => std::fs::create_dir(&dir)?,
            }
        }
        let target = dir.join(name);
        match std::fs::symlink_metadata(&target) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&target)?,
            Ok(_) => std::fs::remove_file(&target)?,
            Err(_) => {}
        }
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&target)?
            .write_all(file.new.as_bytes())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changed(path: &str, new: &str) -> ChangedFile {
        ChangedFile {
            path: path.into(),
            previous: Some("old\n".into()),
            new: new.into(),
        }
    }

    #[test]
    fn restore_puts_back_edited_files_and_never_writes_through_a_link() {
        let root = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(root.path().join("src")).expect("mkdir");
        std::fs::write(root.path().join("src/a.py"), "reformatted by a check\n").expect("write");
        // A check replaced the folder of the second edited file with a link out.
        std::os::unix::fs::symlink(outside.path(), root.path().join("pkg")).expect("link");
        let files = [
            changed("src/a.py", "edited\n"),
            changed("pkg/b.py", "edited b\n"),
        ];
        restore(root.path(), &files).expect("restored");
        assert_eq!(
            std::fs::read_to_string(root.path().join("src/a.py")).expect("read"),
            "edited\n"
        );
        assert!(
            std::fs::symlink_metadata(root.path().join("pkg"))
                .expect("pkg")
                .is_dir()
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("pkg/b.py")).expect("read"),
            "edited b\n"
        );
        assert_eq!(
            std::fs::read_dir(outside.path()).expect("outside").count(),
            0,
            "nothing was written through the link"
        );
    }
}
