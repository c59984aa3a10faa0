//! Task directories under `WORKSPACE_DIR`: one per delivery, named
//! `agent-fleet-task-<pid>-<task>-<random>`, removed before the delivery is settled, and swept
//! at start-up when a killed predecessor left them behind.
//!
//! The pid in the name lets several workers share one `WORKSPACE_DIR` (a host running three
//! `worker` processes on the default temp dir): the sweep removes only entries whose process
//! is gone, or that carry this process' own pid (a restarted container is often pid 1 again).
//! `worker run` names its dir the same way; an entry whose name carries no pid is not ours
//! to judge and is kept (it used to be swept, deleting a running `worker run`'s checkout).

use std::path::{Path, PathBuf};

pub const PREFIX: &str = "agent-fleet-task-";

/// Creates the directory for one task.
pub fn create(workspace: &Path, task_id: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(workspace)?;
    let safe: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-{safe}-", std::process::id()))
        .tempdir_in(workspace)?;
    Ok(dir.keep())
}

/// Removes a task directory (and everything in it). Missing is fine.
pub fn remove(dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Removes what dead predecessors left; returns the removed paths.
pub fn sweep(workspace: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(workspace) else {
        return Vec::new();
    };
    let me = std::process::id();
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rest = name.strip_prefix(PREFIX)?;
            let owner: Option<u32> = rest.split('-').next().and_then(|p| p.parse().ok());
            let orphaned = match owner {
                Some(pid) if pid == me => true,
                Some(pid) => !process_alive(pid),
                None => false,
            };
            orphaned.then(|| entry.path())
        })
        .filter(|path| {
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
            match removed {
                Ok(()) => true,
                Err(error) => {
                    tracing::warn!(path = %path.display(), %error, "cannot sweep a leftover task dir");
                    false
                }
            }
        })
        .collect()
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        // Without /proc we cannot tell; be safe and keep the entry.
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_removes_only_orphans_with_the_prefix() {
        let root = tempfile::tempdir().expect("tmp");
        let mine = create(root.path(), "github:abc/def#1").expect("create");
        assert!(
            mine.file_name()
                .expect("name")
                .to_string_lossy()
                .starts_with(PREFIX)
        );
        std::fs::write(mine.join("f"), "x").expect("write");
        // A live foreign process (pid 1 always exists) keeps its dir.
        let live = root.path().join(format!("{PREFIX}1-task-x"));
        std::fs::create_dir(&live).expect("mkdir");
        // A dead one (pid beyond pid_max) loses it.
        let dead = root.path().join(format!("{PREFIX}4194999-task-y"));
        std::fs::create_dir(&dead).expect("mkdir");
        let unrelated = root.path().join("keep-me");
        std::fs::create_dir(&unrelated).expect("mkdir");
        // No pid in the name (an older `worker run`): not ours to judge.
        let no_pid = root.path().join(format!("{PREFIX}run-abc"));
        std::fs::create_dir(&no_pid).expect("mkdir");

        let removed = sweep(root.path());
        assert!(!mine.exists(), "own pid means a predecessor's leftover");
        assert!(!dead.exists());
        assert!(live.exists());
        assert!(unrelated.exists());
        assert!(no_pid.exists());
        assert_eq!(removed.len(), 2);
    }

    #[test]
    fn remove_is_idempotent() {
        let root = tempfile::tempdir().expect("tmp");
        let dir = create(root.path(), "t").expect("create");
        remove(&dir).expect("remove");
        remove(&dir).expect("again");
        assert!(!dir.exists());
    }
}
